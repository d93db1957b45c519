//! Alternating least squares for implicit feedback (Hu, Koren, Volinsky 2008), computed as
//! the `implicit` library's CPU model (0.7) computes it, so that its parameters mean the same:
//!
//! * The confidence of an interaction is `alpha × weight` (`implicit` 0.7 multiplies the
//!   user × item matrix by `alpha` inside `fit`); its preference is 1. A negative value is a
//!   dislike with confidence `|value|` and preference 0. Absent entries have confidence 1 and
//!   preference 0.
//! * Each half-iteration solves, for every user `u` (then every item, roles swapped),
//!   `(YᵀY + Yᵀ(Cᵤ − I)Y + λI) xᵤ = YᵀCᵤpᵤ` with `λ = regularization`, added as is (not scaled
//!   by the number of interactions).
//! * The conjugate-gradient solver ([`Solver::Cg`], the default) takes `cg_steps` (3) steps
//!   from the previous iteration's factors, with `YᵀY + λI` computed once per half-iteration and
//!   `Yᵀ(Cᵤ − I)Y p` applied through the user's items without forming the matrix; a row with
//!   no interactions gets zero factors. [`Solver::Cholesky`] solves each system exactly.
//! * Factors start uniform in `[0, 0.01)`, users first, then items, from the seed.
//! * [`training_loss`] is `implicit`'s `calculate_loss`: the weighted squared error plus
//!   `λ (‖X‖² + ‖Y‖²)`, divided by the sum of confidences plus the absent entries.
//!
//! Users are solved in parallel (rayon, chunks of rows), each with per-thread scratch
//! vectors allocated once per chunk, over contiguous `f32` factor rows.

use rayon::prelude::*;

use crate::csr::Csr;
use crate::kernels::{axpy, cholesky_solve, dot, symv, syr, vectorized};
use crate::{Error, Result};

/// A dense row-major matrix of factors: one row per user or item.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Factors {
    /// Rows.
    pub rows: usize,
    /// Factors per row.
    pub dim: usize,
    /// `rows × dim` values.
    pub data: Vec<f32>,
}

impl Factors {
    /// Zeros.
    pub fn zeros(rows: usize, dim: usize) -> Factors {
        Factors {
            rows,
            dim,
            data: vec![0.0; rows * dim],
        }
    }

    /// Row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// `YᵀY` (`dim × dim`, row-major), summed over chunks of rows in parallel.
    pub fn gram(&self) -> Vec<f32> {
        let d = self.dim;
        if self.rows == 0 || d == 0 {
            return vec![0.0; d * d];
        }
        self.data
            .par_chunks(d * 1024)
            .map(|rows| {
                let mut g = vec![0f32; d * d];
                vectorized(
                    #[inline(always)]
                    || {
                        for r in rows.chunks_exact(d) {
                            syr(1.0, r, &mut g);
                        }
                    },
                );
                g
            })
            .reduce(
                || vec![0f32; d * d],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(&b) {
                        *x += y;
                    }
                    a
                },
            )
    }
}

/// How each least-squares system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Conjugate gradient, this many steps from the previous factors.
    Cg(u32),
    /// Exact, by Cholesky factorization.
    Cholesky,
}

/// ALS parameters, with `implicit`'s meanings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsParams {
    /// Latent factors.
    pub factors: usize,
    /// L2 regularization.
    pub regularization: f32,
    /// Confidence scale.
    pub alpha: f32,
    /// Iterations.
    pub iterations: u32,
    /// Seed of the initial factors.
    pub seed: u64,
    /// Solver.
    pub solver: Solver,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Compute the training loss after each iteration (one more pass over the data).
    pub calculate_training_loss: bool,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 100,
            regularization: 0.01,
            alpha: 1.0,
            iterations: 15,
            seed: 42,
            solver: Solver::Cg(3),
            threads: 0,
            calculate_training_loss: false,
        }
    }
}

/// A fitted model's factors.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsFactors {
    /// One row per user.
    pub users: Factors,
    /// One row per item.
    pub items: Factors,
    /// The training loss after each iteration (when asked for).
    pub losses: Vec<f64>,
}

/// SplitMix64: the seeded stream of the initial factors.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 random bits, as NumPy draws `float32`s.
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 * (1.0 / 16_777_216.0)
    }
}

fn random_factors(rng: &mut SplitMix, rows: usize, dim: usize) -> Factors {
    Factors {
        rows,
        dim,
        data: (0..rows * dim).map(|_| rng.uniform() * 0.01).collect(),
    }
}

/// Runs `f` on a pool of `threads` workers (0: rayon's global pool).
pub(crate) fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    if threads == 0 {
        return Ok(f());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))?;
    Ok(pool.install(f))
}

/// Fits user and item factors to a users × items matrix of interaction weights (before
/// `alpha`). `on_iteration(i, loss)` is called after each iteration.
pub fn fit(
    user_items: &Csr,
    params: &AlsParams,
    on_iteration: &mut (dyn FnMut(u32, Option<f64>) + Send),
) -> Result<AlsFactors> {
    check_params(params)?;
    if user_items.nnz() == 0 {
        return Err(Error::Invalid(
            "the interaction matrix is empty: nothing to train on".into(),
        ));
    }
    let cui = if params.alpha == 1.0 {
        user_items.clone()
    } else {
        user_items.scaled(params.alpha)
    };
    let ciu = cui.transpose();
    let mut rng = SplitMix(params.seed);
    let mut users = random_factors(&mut rng, cui.rows, params.factors);
    let mut items = random_factors(&mut rng, cui.cols, params.factors);
    let mut losses = Vec::new();
    in_pool(params.threads, || -> Result<()> {
        for it in 0..params.iterations {
            solve(
                &cui,
                &mut users,
                &items,
                params.regularization,
                params.solver,
            )?;
            solve(
                &ciu,
                &mut items,
                &users,
                params.regularization,
                params.solver,
            )?;
            let loss = params
                .calculate_training_loss
                .then(|| training_loss(&cui, &users, &items, params.regularization));
            losses.extend(loss);
            on_iteration(it + 1, loss);
        }
        Ok(())
    })??;
    Ok(AlsFactors {
        users,
        items,
        losses,
    })
}

fn check_params(p: &AlsParams) -> Result<()> {
    let bad = |m: String| Err(Error::Invalid(m));
    if !(1..=1024).contains(&p.factors) {
        return bad(format!("factors = {}: use 1 to 1024", p.factors));
    }
    if !(p.regularization >= 0.0 && p.regularization.is_finite()) {
        return bad(format!(
            "regularization = {}: use a number >= 0",
            p.regularization
        ));
    }
    if !(p.alpha > 0.0 && p.alpha.is_finite()) {
        return bad(format!("alpha = {}: use a number > 0", p.alpha));
    }
    if p.iterations == 0 {
        return bad("iterations = 0: use at least 1".into());
    }
    if p.solver == Solver::Cg(0) {
        return bad("cg_steps = 0: use at least 1".into());
    }
    Ok(())
}

/// Rows solved per parallel task (and per call into the vectorized kernels).
const CHUNK_ROWS: usize = 64;

/// One half-iteration: every row of `x` solved against the fixed `y` (`cui` holds the
/// confidences, `alpha` applied).
pub fn solve(
    cui: &Csr,
    x: &mut Factors,
    y: &Factors,
    regularization: f32,
    solver: Solver,
) -> Result<()> {
    let d = x.dim;
    let mut yty = y.gram();
    for j in 0..d {
        yty[j * d + j] += regularization;
    }
    let failed = std::sync::atomic::AtomicUsize::new(usize::MAX);
    x.data
        .par_chunks_mut(d * CHUNK_ROWS)
        .enumerate()
        .for_each(|(chunk, rows)| {
            let first = chunk * CHUNK_ROWS;
            let mut scratch = Scratch::new(d);
            vectorized(
                #[inline(always)]
                || {
                    for (k, xu) in rows.chunks_exact_mut(d).enumerate() {
                        let (items, conf) = cui.row(first + k);
                        let ok = match solver {
                            Solver::Cg(steps) => {
                                cg_row(xu, items, conf, y, &yty, steps, &mut scratch);
                                true
                            }
                            Solver::Cholesky => {
                                cholesky_row(xu, items, conf, y, &yty, &mut scratch)
                            }
                        };
                        if !ok {
                            failed.fetch_min(first + k, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                },
            );
        });
    let row = failed.into_inner();
    if row != usize::MAX {
        return Err(Error::Invalid(format!(
            "the least-squares system of row {row} is not positive definite: increase the regularization"
        )));
    }
    Ok(())
}

/// Per-thread vectors, allocated once per chunk of rows.
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
    a: Vec<f32>,
    work: Vec<f64>,
}

impl Scratch {
    fn new(d: usize) -> Scratch {
        Scratch {
            r: vec![0.0; d],
            p: vec![0.0; d],
            ap: vec![0.0; d],
            a: Vec::new(),
            work: Vec::new(),
        }
    }
}

/// `implicit`'s `_least_squares_cg` for one row, step for step.
#[inline(always)]
fn cg_row(
    x: &mut [f32],
    items: &[u32],
    conf: &[f32],
    y: &Factors,
    yty: &[f32],
    steps: u32,
    s: &mut Scratch,
) {
    if items.is_empty() {
        x.fill(0.0);
        return;
    }
    let Scratch { r, p, ap, .. } = s;
    // r = YᵀCᵤpᵤ − (YᵀCᵤY + λI) x
    symv(yty, x, -1.0, r);
    for (&i, &c) in items.iter().zip(conf) {
        let yi = y.row(i as usize);
        let (target, c) = if c > 0.0 { (c, c) } else { (0.0, -c) };
        let t = target - (c - 1.0) * dot(yi, x);
        axpy(t, yi, r);
    }
    p.copy_from_slice(r);
    let mut rsold = dot(r, r);
    if rsold < 1e-20 {
        return;
    }
    for _ in 0..steps {
        // Ap = (YᵀCᵤY + λI) p without forming YᵀCᵤY.
        symv(yty, p, 1.0, ap);
        for (&i, &c) in items.iter().zip(conf) {
            let yi = y.row(i as usize);
            let t = (c.abs() - 1.0) * dot(yi, p);
            axpy(t, yi, ap);
        }
        let alpha = rsold / dot(p, ap);
        axpy(alpha, p, x);
        axpy(-alpha, ap, r);
        let rsnew = dot(r, r);
        if rsnew < 1e-20 {
            break;
        }
        let beta = rsnew / rsold;
        for (pi, ri) in p.iter_mut().zip(r.iter()) {
            *pi = beta.mul_add(*pi, *ri);
        }
        rsold = rsnew;
    }
}

/// `implicit`'s `_least_squares` for one row: the exact solution.
#[inline(always)]
fn cholesky_row(
    x: &mut [f32],
    items: &[u32],
    conf: &[f32],
    y: &Factors,
    yty: &[f32],
    s: &mut Scratch,
) -> bool {
    if items.is_empty() {
        x.fill(0.0);
        return true;
    }
    let d = x.len();
    s.a.clear();
    s.a.extend_from_slice(yty);
    s.work.resize(d * d, 0.0);
    let b = &mut s.r;
    b.fill(0.0);
    for (&i, &c) in items.iter().zip(conf) {
        let yi = y.row(i as usize);
        let c = if c > 0.0 {
            axpy(c, yi, b);
            c
        } else {
            -c
        };
        syr(c - 1.0, yi, &mut s.a);
    }
    if !cholesky_solve(&s.a, b, &mut s.work) {
        return false;
    }
    x.copy_from_slice(b);
    true
}

/// `implicit`'s `calculate_loss`: `Σ cᵤᵢ (pᵤᵢ − xᵤ·yᵢ)² + λ (‖X‖² + ‖Y‖²)` over all user-item
/// pairs (absent ones with confidence 1, preference 0), divided by `Σ cᵤᵢ + (absent pairs)`.
/// `cui` holds the confidences (`alpha` applied).
pub fn training_loss(cui: &Csr, x: &Factors, y: &Factors, regularization: f32) -> f64 {
    let d = x.dim;
    let yty = y.gram();
    let (loss, total_conf, user_norm) = (0..cui.rows)
        .into_par_iter()
        .with_min_len(CHUNK_ROWS)
        .map_init(
            || vec![0f32; d],
            |r, u| {
                let xu = x.row(u);
                vectorized(
                    #[inline(always)]
                    || {
                        symv(&yty, xu, 1.0, r);
                        let (items, conf) = cui.row(u);
                        let mut loss = 0f64;
                        let mut total = 0f64;
                        for (&i, &c) in items.iter().zip(conf) {
                            let yi = y.row(i as usize);
                            let (t, c) = if c > 0.0 { (-2.0 * c, c) } else { (0.0, -c) };
                            let t = t + (c - 1.0) * dot(yi, xu);
                            axpy(t, yi, r);
                            total += f64::from(c);
                            loss += f64::from(c);
                        }
                        loss += f64::from(dot(r, xu));
                        (loss, total, f64::from(dot(xu, xu)))
                    },
                )
            },
        )
        .reduce(|| (0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let item_norm: f64 = (0..y.rows)
        .map(|i| f64::from(dot(y.row(i), y.row(i))))
        .sum();
    let loss = loss + f64::from(regularization) * (item_norm + user_norm);
    let absent = (cui.rows * cui.cols - cui.nnz()) as f64;
    loss / (total_conf + absent)
}

/// Factors of a user the model has not seen, from the items they interacted with (`weights`
/// before `alpha`), solved exactly against the fixed item factors: `implicit`'s
/// `recalculate_user`. `yty` is the item factors' [`Factors::gram`].
pub fn fold_in(
    items: &[u32],
    weights: &[f32],
    item_factors: &Factors,
    yty: &[f32],
    regularization: f32,
    alpha: f32,
) -> Result<Vec<f32>> {
    let d = item_factors.dim;
    if let Some(bad) = items.iter().find(|i| **i as usize >= item_factors.rows) {
        return Err(Error::Invalid(format!(
            "item index {bad} is outside the model's {} items",
            item_factors.rows
        )));
    }
    let mut a = yty.to_vec();
    for j in 0..d {
        a[j * d + j] += regularization;
    }
    let conf: Vec<f32> = weights.iter().map(|w| w * alpha).collect();
    let mut x = vec![0f32; d];
    let mut s = Scratch::new(d);
    let ok = vectorized(
        #[inline(always)]
        || cholesky_row(&mut x, items, &conf, item_factors, &a, &mut s),
    );
    if !ok {
        return Err(Error::Invalid(
            "the user's least-squares system is not positive definite: increase the regularization"
                .into(),
        ));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blocks of users with disjoint tastes; user 0 has not seen item 0.
    fn blocks() -> Csr {
        let mut t = Vec::new();
        for u in 0..20u32 {
            for i in 0..10u32 {
                if (u, i) != (0, 0) {
                    let item = if u < 10 { i } else { i + 10 };
                    t.push((u, item, 1.0 + (i % 2) as f32));
                }
            }
        }
        Csr::from_triplets(20, 20, &t)
    }

    fn params(solver: Solver) -> AlsParams {
        AlsParams {
            factors: 8,
            regularization: 0.1,
            alpha: 5.0,
            iterations: 10,
            solver,
            threads: 2,
            calculate_training_loss: true,
            ..AlsParams::default()
        }
    }

    #[test]
    fn both_solvers_learn_the_blocks_and_the_loss_falls() {
        let m = blocks();
        for solver in [Solver::Cg(3), Solver::Cholesky] {
            let f = fit(&m, &params(solver), &mut |_, _| {}).unwrap();
            assert!(
                f.losses.windows(2).all(|w| w[1] <= w[0] + 1e-6),
                "{:?}",
                f.losses
            );
            // A user of the first block scores its block's unseen items above the other's.
            let score = |u: usize, i: usize| dot(f.users.row(u), f.items.row(i));
            // (The held-out score itself is small: 8 factors nearly fit the hole, as in
            // `implicit`, whose loss on this data is within 5% of ours after 10 iterations.)
            let inside = score(0, 0);
            let outside = (10..20).map(|i| score(0, i)).fold(f32::MIN, f32::max);
            assert!(inside > outside + 0.01, "{solver:?}: {inside} vs {outside}");
            assert!(
                score(0, 1) > 0.9,
                "{solver:?}: a seen item scores near its preference 1"
            );
            assert!(
                *f.losses.last().unwrap() < 0.0125,
                "{solver:?}: {:?}",
                f.losses
            );
        }
        // Seeded: the same factors twice, whatever the threads.
        let a = fit(&m, &params(Solver::Cg(3)), &mut |_, _| {}).unwrap();
        let b = fit(
            &m,
            &AlsParams {
                threads: 1,
                ..params(Solver::Cg(3))
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn cg_converges_to_the_exact_solution() {
        // Many CG steps from the same start reach Cholesky's answer of one half-iteration.
        let m = blocks();
        let mut rng = SplitMix(1);
        let y = random_factors(&mut rng, 20, 8);
        let mut x_cg = random_factors(&mut rng, 20, 8);
        let mut x_ch = x_cg.clone();
        solve(&m, &mut x_cg, &y, 0.1, Solver::Cg(50)).unwrap();
        solve(&m, &mut x_ch, &y, 0.1, Solver::Cholesky).unwrap();
        for (a, b) in x_cg.data.iter().zip(&x_ch.data) {
            assert!((a - b).abs() < 1e-2 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn folding_in_a_known_user_gives_their_factors() {
        // After a final exact user solve, fold-in of a user's own row reproduces their row.
        let m = blocks();
        let p = AlsParams {
            solver: Solver::Cholesky,
            ..params(Solver::Cholesky)
        };
        let f = fit(&m, &p, &mut |_, _| {}).unwrap();
        let mut users = f.users.clone();
        solve(
            &m.scaled(p.alpha),
            &mut users,
            &f.items,
            p.regularization,
            Solver::Cholesky,
        )
        .unwrap();
        let (items, w) = m.row(3);
        let x = fold_in(
            items,
            w,
            &f.items,
            &f.items.gram(),
            p.regularization,
            p.alpha,
        )
        .unwrap();
        for (a, b) in x.iter().zip(users.row(3)) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn bad_parameters_and_empty_data_are_refused() {
        let m = blocks();
        for (p, want) in [
            (
                AlsParams {
                    factors: 0,
                    ..params(Solver::Cg(3))
                },
                "factors = 0",
            ),
            (
                AlsParams {
                    alpha: 0.0,
                    ..params(Solver::Cg(3))
                },
                "alpha = 0",
            ),
            (
                AlsParams {
                    regularization: -1.0,
                    ..params(Solver::Cg(3))
                },
                "regularization = -1",
            ),
            (params(Solver::Cg(0)), "cg_steps = 0"),
        ] {
            let e = fit(&m, &p, &mut |_, _| {}).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let e = fit(
            &Csr::from_triplets(3, 3, &[]),
            &params(Solver::Cg(3)),
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
