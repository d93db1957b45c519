//! Exact top-k over many items, screened with 8-bit factors.
//!
//! Scoring every item in `f32` streams `items × dim × 4` bytes per request (25.6 MB for 100k
//! items of 64 factors): more than the caches hold, so a request costs about a millisecond of
//! memory bandwidth. [`QuantizedItems`] keeps a second copy of the item factors as `i8` codes
//! with one scale per item (a quarter of the bytes, in the last-level cache), laid out in
//! blocks of 16 items so that vector instructions advance 16 dot products at once.
//!
//! The 8-bit scores only screen; the answer is exact. Each approximate score `s·(x·q)` comes
//! with a bound on its error (`‖x‖·‖v − s·q‖` by Cauchy–Schwarz, plus a margin for `f32`
//! rounding), so every item's exact score lies in `[lo, hi]`. With `θ` the k-th largest
//! `lo`, at least `k` items score at least `θ`, so no item with `hi < θ` can be in the top k.
//! The few items with `hi ≥ θ` are scored exactly, by the same `f32` function as before, and
//! cut: the list (order, ties to the lower index, scores) is the one full `f32` scoring gives.

use crate::als::Factors;
use crate::kernels::vectorized;
use crate::topk::{top_k, top_k_iter};

/// Items per block: one 512-bit register of `f32` sums.
const BLOCK: usize = 16;

/// The item factors as 8-bit codes in blocks of 16 items, with what the error bound needs.
#[derive(Debug, Clone)]
pub struct QuantizedItems {
    items: usize,
    dim: usize,
    /// `[block][factor][item of the block]`: one factor of 16 items is 16 contiguous bytes.
    codes: Vec<i8>,
    /// Per item (padded to whole blocks): the code scale `s` (`v ≈ s · q`).
    scale: Vec<f32>,
    /// `‖v − s·q‖₂` plus a margin for `f32` rounding: `|x·v − s·(x·q)| ≤ ‖x‖ · residual`.
    residual: Vec<f32>,
}

impl QuantizedItems {
    /// Quantizes `f` (each item's largest factor in magnitude becomes ±127).
    pub fn new(f: &Factors) -> QuantizedItems {
        let dim = f.dim;
        let blocks = f.rows.div_ceil(BLOCK);
        let padded = blocks * BLOCK;
        // The `f32` rounding of a dot product of `dim` terms is at most `dim · 2⁻²⁴ · ‖x‖·‖v‖`
        // (for the exact score and for the screening sum alike), with room to spare.
        let rounding = (dim as f64 * 1.2e-7).max(1e-5);
        let mut q = QuantizedItems {
            items: f.rows,
            dim,
            codes: vec![0; padded * dim],
            scale: vec![0.0; padded],
            residual: vec![0.0; padded],
        };
        for i in 0..f.rows {
            let v = f.row(i);
            let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            let s = if max > 0.0 && max.is_finite() {
                max / 127.0
            } else {
                0.0
            };
            let (b, j) = (i / BLOCK, i % BLOCK);
            let (mut rr, mut vv, mut qq) = (0f64, 0f64, 0f64);
            for (d, &x) in v.iter().enumerate() {
                let c = if s > 0.0 {
                    (x / s).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                };
                q.codes[(b * dim + d) * BLOCK + j] = c;
                let sc = s as f64 * c as f64;
                rr += (x as f64 - sc) * (x as f64 - sc);
                vv += (x as f64) * (x as f64);
                qq += sc * sc;
            }
            q.scale[i] = s;
            q.residual[i] = (rr.sqrt() + rounding * (vv.sqrt() + qq.sqrt())) as f32;
        }
        q
    }

    /// Items.
    pub fn len(&self) -> usize {
        self.items
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The best `k` items by `w · (x · item) + offset(i)` (best first, ties to the lower
    /// index) among those `skip` says no to, equal to scoring every item with `exact` (which
    /// must compute that same expression in `f32`: the candidates are scored by it).
    pub fn top_k(
        &self,
        x: &[f32],
        w: f32,
        offset: impl Fn(usize) -> f32,
        k: usize,
        mut skip: impl FnMut(u32) -> bool,
        exact: impl Fn(usize) -> f32,
    ) -> Vec<(u32, f32)> {
        thread_local! {
            static BUF: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        if k == 0 || self.items == 0 {
            return Vec::new();
        }
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_finite() || x.len() != self.dim {
            // NaN or infinite factors: no bound holds; score everything exactly.
            return top_k_iter((0..self.items).map(|i| (i as u32, exact(i))), k, &mut skip);
        }
        // ‖x‖ from a sum in f32 may be a little low: round it up.
        let norm = norm * (1.0 + 1e-5);
        BUF.with_borrow_mut(|(lo, hi)| {
            let n = self.items;
            lo.clear();
            lo.resize(self.scale.len(), 0.0);
            hi.clear();
            hi.resize(self.scale.len(), 0.0);
            // lo = s · (x · q), then the interval around each score.
            approx_dots(&self.codes, &self.scale, x, lo);
            let (lo, hi) = (&mut lo[..n], &mut hi[..n]);
            let aw = w.abs();
            vectorized(
                #[inline(always)]
                || {
                    for (i, ((l, h), &r)) in lo
                        .iter_mut()
                        .zip(hi.iter_mut())
                        .zip(&self.residual[..n])
                        .enumerate()
                    {
                        let base = w * *l;
                        let off = offset(i);
                        let a = base + off;
                        let e = aw * norm * r + 1e-5 * (base.abs() + off.abs()) + f32::MIN_POSITIVE;
                        *l = a - e;
                        *h = a + e;
                    }
                },
            );
            let kth = top_k(lo, k, &mut skip);
            let theta = if kth.len() == k {
                kth[k - 1].1
            } else {
                f32::NEG_INFINITY
            };
            let mut candidates = Vec::new();
            for (i, &h) in hi.iter().enumerate() {
                if h >= theta || h.is_nan() {
                    candidates.push(i as u32);
                }
            }
            let mut scores = Vec::with_capacity(candidates.len());
            vectorized(
                #[inline(always)]
                || scores.extend(candidates.iter().map(|&i| exact(i as usize))),
            );
            top_k_iter(candidates.into_iter().zip(scores), k, &mut skip)
        })
    }
}

/// `out[i] = s_i · (x · q_i)` for every item, 16 items at a time (`out` has the padded
/// length): each code widened to `f32` and multiplied in, so a block's 16 sums advance by one
/// vector multiply-add per factor (safe Rust that LLVM vectorizes inside [`vectorized`]).
fn approx_dots(codes: &[i8], scale: &[f32], x: &[f32], out: &mut [f32]) {
    let block_len = x.len() * BLOCK;
    if block_len == 0 {
        out.fill(0.0);
        return;
    }
    vectorized(
        #[inline(always)]
        || {
            for ((block, out), s) in codes
                .chunks_exact(block_len)
                .zip(out.chunks_exact_mut(BLOCK))
                .zip(scale.chunks_exact(BLOCK))
            {
                let mut acc = [0f32; BLOCK];
                for (lanes, &u) in block.chunks_exact(BLOCK).zip(x) {
                    for j in 0..BLOCK {
                        acc[j] = (lanes[j] as f32).mul_add(u, acc[j]);
                    }
                }
                for j in 0..BLOCK {
                    out[j] = acc[j] * s[j];
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::dot;
    use crate::model::top_k_scored;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn factors(rows: usize, dim: usize, seed: u64) -> Factors {
        let mut s = seed;
        Factors {
            rows,
            dim,
            data: (0..rows * dim).map(|_| lcg(&mut s)).collect(),
        }
    }

    #[test]
    fn the_kernel_scores_the_codes_of_every_item() {
        for (rows, dim) in [(1, 1), (17, 5), (100, 64), (333, 30)] {
            let f = factors(rows, dim, rows as u64);
            let q = QuantizedItems::new(&f);
            let mut s = 7;
            let x: Vec<f32> = (0..dim).map(|_| lcg(&mut s)).collect();
            let mut got = vec![0f32; q.scale.len()];
            approx_dots(&q.codes, &q.scale, &x, &mut got);
            for (i, &g) in got.iter().enumerate().take(rows) {
                let (b, j) = (i / BLOCK, i % BLOCK);
                let want: f64 = (0..dim)
                    .map(|d| x[d] as f64 * q.codes[(b * dim + d) * BLOCK + j] as f64)
                    .sum::<f64>()
                    * q.scale[i] as f64;
                assert!((g as f64 - want).abs() < 1e-5, "{rows}x{dim} item {i}");
                // Within the bound of the exact score.
                let exact = dot(f.row(i), &x);
                let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
                assert!(
                    (exact - g).abs() <= norm * q.residual[i],
                    "{rows}x{dim} item {i}"
                );
            }
        }
    }

    #[test]
    fn the_screened_top_k_equals_full_scoring() {
        for (rows, dim, seed) in [(5, 3, 1), (1000, 64, 2), (4099, 16, 3), (2000, 7, 4)] {
            let f = factors(rows, dim, seed);
            let q = QuantizedItems::new(&f);
            let pop: Vec<f32> = (0..rows).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
            let mut s = seed * 11;
            for user in 0..20 {
                let x: Vec<f32> = (0..dim).map(|_| lcg(&mut s) * 3.0).collect();
                for k in [1, 10, 50, rows + 3] {
                    let skip = |i: u32| i % 7 == (user % 7) as u32;
                    let want = top_k_scored(rows, k, skip, |i| dot(f.row(i), &x));
                    let got = q.top_k(&x, 1.0, |_| 0.0, k, skip, |i| dot(f.row(i), &x));
                    assert_eq!(got, want, "cf {rows}x{dim} user {user} k {k}");
                    // The cold-start blend: w · score + (1 − w) · popularity.
                    let w = 0.4f32;
                    let b = 0.6f32;
                    let want = top_k_scored(rows, k, skip, |i| w * dot(f.row(i), &x) + b * pop[i]);
                    let got = q.top_k(
                        &x,
                        w,
                        |i| b * pop[i],
                        k,
                        skip,
                        |i| w * dot(f.row(i), &x) + b * pop[i],
                    );
                    assert_eq!(got, want, "blend {rows}x{dim} user {user} k {k}");
                }
            }
        }
    }

    #[test]
    fn ties_zero_factors_and_a_zero_user_keep_full_scoring_order() {
        // Duplicated items tie exactly: the lower index wins, as in full scoring.
        let mut f = factors(64, 8, 9);
        let row = f.row(3).to_vec();
        for i in [10, 20, 40] {
            f.data[i * 8..(i + 1) * 8].copy_from_slice(&row);
        }
        f.data[5 * 8..6 * 8].fill(0.0);
        let q = QuantizedItems::new(&f);
        for x in [row.clone(), vec![0.0; 8]] {
            let want = top_k_scored(64, 12, |_| false, |i| dot(f.row(i), &x));
            let got = q.top_k(&x, 1.0, |_| 0.0, 12, |_| false, |i| dot(f.row(i), &x));
            assert_eq!(got, want);
        }
        // Fewer eligible items than k.
        let want = top_k_scored(64, 10, |i| i > 4, |i| dot(f.row(i), &row));
        let got = q.top_k(&row, 1.0, |_| 0.0, 10, |i| i > 4, |i| dot(f.row(i), &row));
        assert_eq!(got, want);
        assert_eq!(got.len(), 5);
    }
}
