//! Logistic (binary and multinomial) and ridge regression on standardized features, trained by a
//! deterministic full-batch L-BFGS.
//!
//! Each feature is standardized with the mean and (population) standard deviation of its
//! non-missing training values (a constant or all-missing column gets scale 1); a missing value
//! (NaN) becomes 0 after standardization, i.e. the training mean. The trained weights apply to the
//! standardized features, which is what [`LinearModel::predict`] expects.
//!
//! The objective is scikit-learn's: with `l2 = 1 / C`,
//! `Σ_i s_i · loss_i + (l2 / 2) · Σ_k ‖w_k‖²` (sample weights `s_i`, intercepts not penalized),
//! where `loss` is the logistic loss (binary), the softmax cross-entropy over all `num_class`
//! outputs (multinomial, every class has its own weight vector as in
//! `LogisticRegression(multi_class="multinomial")`), or half the squared error (regression, which
//! is `Ridge(alpha=l2)`). It is minimized, divided by `Σ s_i`, until the largest absolute gradient
//! component is at most `tol`.
//!
//! Categorical features are refused: their integer codes are not magnitudes. One-hot or hash
//! encode them into numeric columns first.

use std::collections::VecDeque;

use crate::{Dataset, Error, LinearModel, Objective, Result};

/// Training parameters of [`train_linear`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinearParams {
    /// L2 penalty strength on the weights (not the intercept): `l2 = 1 / C` of scikit-learn's
    /// `LogisticRegression`, `alpha` of `Ridge`. Default 1.0 (`C = 1`).
    pub l2: f64,
    /// Maximum number of L-BFGS iterations. Default 1000.
    pub max_iter: usize,
    /// Stop when every component of the gradient of the objective divided by the total sample
    /// weight is at most this in absolute value. Default 1e-6.
    pub tol: f64,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            l2: 1.0,
            max_iter: 1000,
            tol: 1e-6,
        }
    }
}

/// The keys [`LinearParams::set`] accepts.
pub const LINEAR_PARAM_KEYS: &str = "l2, C (= 1/l2), max_iter, tol";

impl LinearParams {
    /// Sets one parameter from a `key=value` pair (`--params l2=0.5`). Keys: `l2`, `C`
    /// (inverse regularization, `l2 = 1/C`), `max_iter`, `tol`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |what: &str| {
            Error::Invalid(format!("linear parameter {key}={value:?}: expected {what}"))
        };
        let float = |v: &str| v.trim().parse::<f64>().ok();
        match key {
            "l2" => match float(value) {
                Some(v) if v.is_finite() && v >= 0.0 => self.l2 = v,
                _ => return Err(bad("a finite number >= 0")),
            },
            "C" | "c" => match float(value) {
                Some(v) if v.is_finite() && v > 0.0 => self.l2 = 1.0 / v,
                _ => return Err(bad("a finite number > 0")),
            },
            "max_iter" => match value.trim().parse::<usize>() {
                Ok(v) if v > 0 => self.max_iter = v,
                _ => return Err(bad("a positive integer")),
            },
            "tol" => match float(value) {
                Some(v) if v.is_finite() && v > 0.0 => self.tol = v,
                _ => return Err(bad("a finite number > 0")),
            },
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown linear model parameter {key:?}; valid keys: {LINEAR_PARAM_KEYS}"
                )));
            }
        }
        Ok(())
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// One standardized feature column.
enum Column {
    /// `z[i]`, the standardized values (0 where missing).
    Dense(Vec<f64>),
    /// A mostly-zero column kept as its non-zero raw values divided by the scale: `z[i] = u[i] - c`
    /// with `u[i] = vals[k]` at `rows[k]` and 0 elsewhere, `c = mean / scale`; a missing value is
    /// stored as `mean / scale` so that it standardizes to 0.
    Sparse {
        rows: Vec<u32>,
        vals: Vec<f64>,
        c: f64,
    },
}

/// The loss being minimized.
#[derive(Clone, Copy, PartialEq)]
enum Loss {
    Logistic,
    Softmax,
    Squared,
}

/// The training problem: standardized columns, targets, sample weights.
struct Problem {
    cols: Vec<Column>,
    n: usize,
    k: usize,
    loss: Loss,
    /// 0/1 (logistic), class index (softmax) or standardized target (squared).
    y: Vec<f64>,
    s: Vec<f64>,
    s_sum: f64,
    l2: f64,
}

impl Problem {
    fn d(&self) -> usize {
        self.cols.len()
    }

    /// Objective (divided by `s_sum`) at `theta = [w_0 (d), ..., w_{k-1} (d), b (k)]`; writes its
    /// gradient into `grad`. `buf` holds `k * n` margins, then residuals.
    fn eval(&self, theta: &[f64], grad: &mut [f64], buf: &mut [f64]) -> f64 {
        let (n, k, d) = (self.n, self.k, self.d());
        // Margins.
        for o in 0..k {
            let mut base = theta[k * d + o];
            for (j, col) in self.cols.iter().enumerate() {
                if let Column::Sparse { c, .. } = col {
                    base -= theta[o * d + j] * c;
                }
            }
            buf[o * n..(o + 1) * n].fill(base);
        }
        for (j, col) in self.cols.iter().enumerate() {
            for o in 0..k {
                let w = theta[o * d + j];
                if w == 0.0 {
                    continue;
                }
                let m = &mut buf[o * n..(o + 1) * n];
                match col {
                    Column::Dense(z) => m.iter_mut().zip(z).for_each(|(m, z)| *m += w * z),
                    Column::Sparse { rows, vals, .. } => {
                        for (&r, &v) in rows.iter().zip(vals) {
                            m[r as usize] += w * v;
                        }
                    }
                }
            }
        }
        // Loss, and residuals s_i * dloss/dmargin in place of the margins.
        let mut loss = 0.0;
        match self.loss {
            Loss::Logistic => {
                for ((r, &y), &s) in buf[..n].iter_mut().zip(&self.y).zip(&self.s) {
                    let m = *r;
                    let softplus = if m > 0.0 {
                        m + (-m).exp().ln_1p()
                    } else {
                        m.exp().ln_1p()
                    };
                    loss += s * (softplus - y * m);
                    let p = if m >= 0.0 {
                        1.0 / (1.0 + (-m).exp())
                    } else {
                        let e = m.exp();
                        e / (1.0 + e)
                    };
                    *r = s * (p - y);
                }
            }
            Loss::Squared => {
                for ((m, &y), &s) in buf[..n].iter_mut().zip(&self.y).zip(&self.s) {
                    let r = *m - y;
                    loss += s * 0.5 * r * r;
                    *m = s * r;
                }
            }
            Loss::Softmax => {
                for i in 0..n {
                    let max = (0..k)
                        .map(|o| buf[o * n + i])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let mut sum = 0.0;
                    for o in 0..k {
                        sum += (buf[o * n + i] - max).exp();
                    }
                    let lse = max + sum.ln();
                    let (c, s) = (self.y[i] as usize, self.s[i]);
                    loss += s * (lse - buf[c * n + i]);
                    for o in 0..k {
                        let p = (buf[o * n + i] - lse).exp();
                        buf[o * n + i] = s * (p - f64::from(u8::from(o == c)));
                    }
                }
            }
        }
        // Gradient.
        let mut penalty = 0.0;
        for o in 0..k {
            let r = &buf[o * n..(o + 1) * n];
            let r_sum: f64 = r.iter().sum();
            grad[k * d + o] = r_sum / self.s_sum;
            for (j, col) in self.cols.iter().enumerate() {
                let g = match col {
                    Column::Dense(z) => r.iter().zip(z).map(|(r, z)| r * z).sum::<f64>(),
                    Column::Sparse { rows, vals, c } => {
                        rows.iter()
                            .zip(vals)
                            .map(|(&i, v)| r[i as usize] * v)
                            .sum::<f64>()
                            - c * r_sum
                    }
                };
                let w = theta[o * d + j];
                penalty += w * w;
                grad[o * d + j] = (g + self.l2 * w) / self.s_sum;
            }
        }
        (loss + 0.5 * self.l2 * penalty) / self.s_sum
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Minimizes `problem` from `x` by L-BFGS (10 correction pairs, backtracking Armijo line search)
/// until the largest gradient component is at most `tol`, `max_iter` iterations, or no further
/// decrease is possible in floating point. Returns the number of iterations.
fn lbfgs(problem: &Problem, x: &mut Vec<f64>, max_iter: usize, tol: f64) -> usize {
    const HISTORY: usize = 10;
    let dim = x.len();
    let mut buf = vec![0.0; problem.k * problem.n];
    let mut g = vec![0.0; dim];
    let mut f = problem.eval(x, &mut g, &mut buf);
    let mut hist: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let mut x_new = vec![0.0; dim];
    let mut g_new = vec![0.0; dim];
    for iter in 0..max_iter {
        if g.iter().all(|v| v.abs() <= tol) {
            return iter;
        }
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(hist.len());
        for (s, y, rho) in hist.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
            alphas.push(a);
        }
        if let Some((s, y, _)) = hist.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|q| *q *= gamma);
        }
        for ((s, y, rho), a) in hist.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut gd = dot(&g, &dir);
        if !(gd < 0.0 && gd.is_finite()) {
            hist.clear();
            dir = g.iter().map(|v| -v).collect();
            gd = -dot(&g, &g);
        }
        let mut t = if hist.is_empty() {
            (1.0 / dot(&g, &g).sqrt()).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..60 {
            x_new
                .iter_mut()
                .zip(x.iter().zip(&dir))
                .for_each(|(xn, (x, d))| *xn = x + t * d);
            let f_new = problem.eval(&x_new, &mut g_new, &mut buf);
            if f_new.is_finite() && f_new <= f + 1e-4 * t * gd {
                accepted = Some(f_new);
                break;
            }
            // Backtrack to the minimizer of the quadratic through f, f'(0) and f(t), kept within
            // [0.1 t, 0.5 t].
            let next = if f_new.is_finite() {
                -gd * t * t / (2.0 * (f_new - f - t * gd))
            } else {
                0.1 * t
            };
            t = next.clamp(0.1 * t, 0.5 * t);
        }
        let Some(f_new) = accepted else {
            // No decrease representable any more: as converged as floating point allows.
            return iter;
        };
        let s: Vec<f64> = x_new.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && sy > 0.0 {
            if hist.len() == HISTORY {
                hist.pop_front();
            }
            hist.push_back((s, y, 1.0 / sy));
        }
        std::mem::swap(x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        f = f_new;
    }
    max_iter
}

/// Mean and population standard deviation of the non-missing values (scale 1 for a constant or
/// all-missing column).
fn standardization(col: &[f64]) -> (f64, f64) {
    let (mut count, mut sum) = (0usize, 0.0);
    for &v in col.iter().filter(|v| !v.is_nan()) {
        count += 1;
        sum += v;
    }
    if count == 0 {
        return (0.0, 1.0);
    }
    let mean = sum / count as f64;
    let var = col
        .iter()
        .filter(|v| !v.is_nan())
        .map(|v| (v - mean) * (v - mean))
        .sum::<f64>()
        / count as f64;
    let std = var.sqrt();
    let scale = if std > 1e-12 * mean.abs().max(1.0) {
        std
    } else {
        1.0
    };
    (mean, scale)
}

/// Builds the standardized column: sparse when fewer than a third of its values are non-zero.
fn standardize(col: &[f64], mean: f64, scale: f64) -> Column {
    let value = |v: f64| if v.is_nan() { mean } else { v };
    let nnz = col.iter().filter(|&&v| value(v) != 0.0).count();
    if nnz * 3 < col.len() {
        let mut rows = Vec::with_capacity(nnz);
        let mut vals = Vec::with_capacity(nnz);
        for (i, &v) in col.iter().enumerate() {
            let v = value(v);
            if v != 0.0 {
                rows.push(i as u32);
                vals.push(v / scale);
            }
        }
        Column::Sparse {
            rows,
            vals,
            c: mean / scale,
        }
    } else {
        Column::Dense(
            col.iter()
                .map(|&v| if v.is_nan() { 0.0 } else { (v - mean) / scale })
                .collect(),
        )
    }
}

/// Trains a linear model for `objective`: binary logistic regression (labels 0/1), multinomial
/// logistic regression (labels `0..num_class`, every class present), or ridge regression, with
/// optional non-negative sample `weights`. See the module documentation for the objective,
/// standardization and missing values. Errors on empty or mismatched input, NaN/infinite labels or
/// weights, a single class, an infinite feature value (naming the feature and row) and
/// categorical features.
pub fn train_linear(
    objective: Objective,
    train: &Dataset,
    y: &[f64],
    weights: Option<&[f64]>,
    params: &LinearParams,
) -> Result<LinearModel> {
    let d = train.n_features();
    if d == 0 {
        return Err(invalid("linear model: the training set has no features"));
    }
    let n = y.len();
    if n == 0 {
        return Err(invalid("linear model: empty training set (0 rows)"));
    }
    if n > u32::MAX as usize {
        return Err(invalid(format!("linear model: too many rows ({n})")));
    }
    for (name, col) in train.names.iter().zip(&train.columns) {
        if col.len() != n {
            return Err(invalid(format!(
                "linear model: length mismatch: {n} labels but feature {name:?} has {} rows",
                col.len()
            )));
        }
    }
    if let Some(w) = weights
        && w.len() != n
    {
        return Err(invalid(format!(
            "linear model: length mismatch: {n} labels but {} weights",
            w.len()
        )));
    }
    if !(params.l2.is_finite() && params.l2 >= 0.0) {
        return Err(invalid(format!(
            "linear model: l2 must be finite and >= 0, got {}",
            params.l2
        )));
    }
    if !(params.tol.is_finite() && params.tol > 0.0) {
        return Err(invalid(format!(
            "linear model: tol must be finite and > 0, got {}",
            params.tol
        )));
    }
    if let Some(j) = train.categorical.iter().position(|&c| c) {
        return Err(invalid(format!(
            "linear model: feature {:?} is categorical; linear models need numeric inputs, so \
             one-hot or hash encode it into numeric columns (or train a tree model)",
            train.names[j]
        )));
    }
    for (name, col) in train.names.iter().zip(&train.columns) {
        if let Some(i) = col.iter().position(|v| v.is_infinite()) {
            return Err(invalid(format!(
                "linear model: feature {name:?} has an infinite value ({}) at row {i}",
                col[i]
            )));
        }
    }
    for (i, &v) in y.iter().enumerate() {
        if !v.is_finite() {
            return Err(invalid(format!(
                "linear model: label at row {i} is not finite ({v})"
            )));
        }
    }
    let s: Vec<f64> = match weights {
        Some(w) => {
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(invalid(format!(
                    "linear model: weight {} at row {i} is not a finite non-negative number",
                    w[i]
                )));
            }
            w.to_vec()
        }
        None => vec![1.0; n],
    };
    let s_sum: f64 = s.iter().sum();
    if s_sum <= 0.0 {
        return Err(invalid("linear model: every sample weight is 0"));
    }

    // Targets and initial intercepts.
    let (loss, k, targets, init_b, y_shift, y_scale) = match objective {
        Objective::Binary { sigmoid } => {
            if !(sigmoid.is_finite() && sigmoid > 0.0) {
                return Err(invalid(format!(
                    "linear model: binary sigmoid must be finite and > 0, got {sigmoid}"
                )));
            }
            if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
                return Err(invalid(format!(
                    "linear model: label {} at row {i} is not a binary label (0 or 1)",
                    y[i]
                )));
            }
            let pos: f64 = y.iter().zip(&s).map(|(y, s)| y * s).sum();
            if pos <= 0.0 || pos >= s_sum {
                let only = if pos <= 0.0 { 0 } else { 1 };
                return Err(invalid(format!(
                    "linear model: only one class in the training labels (every label is \
                     {only}); binary classification needs both 0 and 1"
                )));
            }
            let rate = pos / s_sum;
            (
                Loss::Logistic,
                1,
                y.to_vec(),
                vec![(rate / (1.0 - rate)).ln()],
                0.0,
                1.0,
            )
        }
        Objective::Multiclass { num_class } => {
            if num_class < 2 {
                return Err(invalid(format!(
                    "linear model: multiclass needs num_class >= 2, got {num_class}"
                )));
            }
            let mut class_w = vec![0.0; num_class];
            for (i, (&v, &w)) in y.iter().zip(&s).enumerate() {
                if v.fract() != 0.0 || v < 0.0 || v >= num_class as f64 {
                    return Err(invalid(format!(
                        "linear model: label {v} at row {i} is outside the classes \
                         0..{num_class} (integers 0 to {})",
                        num_class - 1
                    )));
                }
                class_w[v as usize] += w;
            }
            let present = class_w.iter().filter(|&&w| w > 0.0).count();
            if present < 2 {
                return Err(invalid(
                    "linear model: only one class in the training labels; multiclass \
                     classification needs at least two",
                ));
            }
            if let Some(c) = class_w.iter().position(|&w| w <= 0.0) {
                return Err(invalid(format!(
                    "linear model: class {c} has no training rows (with positive weight); every \
                     class 0..{num_class} must occur"
                )));
            }
            let logs: Vec<f64> = class_w.iter().map(|w| (w / s_sum).ln()).collect();
            let mean_log = logs.iter().sum::<f64>() / num_class as f64;
            let b = logs.iter().map(|l| l - mean_log).collect();
            (Loss::Softmax, num_class, y.to_vec(), b, 0.0, 1.0)
        }
        Objective::Regression => {
            // Train on the standardized target (the ridge solution scales with it exactly).
            let mean = y.iter().zip(&s).map(|(y, s)| y * s).sum::<f64>() / s_sum;
            let var = y
                .iter()
                .zip(&s)
                .map(|(y, s)| s * (y - mean) * (y - mean))
                .sum::<f64>()
                / s_sum;
            let scale = if var.sqrt() > 1e-12 * mean.abs().max(1.0) {
                var.sqrt()
            } else {
                1.0
            };
            let t = y.iter().map(|v| (v - mean) / scale).collect();
            (Loss::Squared, 1, t, vec![0.0], mean, scale)
        }
    };

    let (mean, scale): (Vec<f64>, Vec<f64>) =
        train.columns.iter().map(|c| standardization(c)).unzip();
    let cols = train
        .columns
        .iter()
        .zip(mean.iter().zip(&scale))
        .map(|(c, (&m, &sc))| standardize(c, m, sc))
        .collect();
    let problem = Problem {
        cols,
        n,
        k,
        loss,
        y: targets,
        s,
        s_sum,
        l2: params.l2,
    };
    let mut theta = vec![0.0; k * d + k];
    theta[k * d..].copy_from_slice(&init_b);
    lbfgs(&problem, &mut theta, params.max_iter, params.tol);

    // Back to the model's parametrization.
    let divisor = match objective {
        Objective::Binary { sigmoid } => sigmoid,
        _ => 1.0,
    };
    let weights: Vec<Vec<f64>> = (0..k)
        .map(|o| {
            theta[o * d..(o + 1) * d]
                .iter()
                .map(|w| w * y_scale / divisor)
                .collect()
        })
        .collect();
    let intercept: Vec<f64> = theta[k * d..]
        .iter()
        .map(|b| (y_shift + b * y_scale) / divisor)
        .collect();
    Ok(LinearModel {
        objective,
        feature_names: train.names.clone(),
        mean,
        scale,
        weights,
        intercept,
    })
}
