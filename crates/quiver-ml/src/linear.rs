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
    /// Every parameter as (name, value text): what a run logs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        vec![
            ("l2".to_string(), self.l2.to_string()),
            ("max_iter".to_string(), self.max_iter.to_string()),
            ("tol".to_string(), self.tol.to_string()),
        ]
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    // A fixed 40-row dataset (x1, x2, x3 binary), generated once with numpy (seed 7) and
    // hard-coded here and in reference/sklearn_linear.py with the same literals. The sklearn references
    // below (scikit-learn 1.9.1) standardize exactly as `train_linear` does:
    //   Z = (X - nanmean(X, 0)) / nanstd(X, 0); Z[isnan(Z)] = 0
    // and fit on Z; each was also confirmed to ~1e-7 by minimizing
    // `C * Σ s_i loss_i + ||w||² / 2` directly with scipy's BFGS (gtol 1e-12).
    #[allow(clippy::approx_constant)] // data, not an approximation of pi (3.14)
    const X: [[f64; 3]; 40] = [
        [5.0, 8.8, 1.0],
        [5.6, 5.1, 1.0],
        [4.45, 8.47, 0.0],
        [3.22, 6.4, 1.0],
        [4.09, 7.42, 0.0],
        [3.02, 0.91, 0.0],
        [5.12, 5.41, 0.0],
        [7.68, 5.08, 1.0],
        [4.02, 8.71, 1.0],
        [3.76, 3.61, 1.0],
        [5.98, 5.98, 1.0],
        [5.71, 0.59, 1.0],
        [5.21, 3.88, 0.0],
        [3.14, 3.23, 0.0],
        [4.94, 1.5, 1.0],
        [6.39, 8.16, 0.0],
        [2.31, 3.79, 0.0],
        [4.08, 9.79, 0.0],
        [1.2, 5.9, 1.0],
        [2.42, 6.05, 0.0],
        [1.32, 6.38, 1.0],
        [4.53, 6.76, 1.0],
        [2.47, 1.51, 1.0],
        [5.54, 4.4, 0.0],
        [5.31, 2.4, 1.0],
        [4.63, 4.02, 1.0],
        [-0.03, 0.97, 0.0],
        [3.92, 9.68, 0.0],
        [4.9, 2.15, 0.0],
        [5.23, 6.72, 1.0],
        [1.94, 3.0, 0.0],
        [4.04, 8.74, 0.0],
        [3.04, 6.62, 1.0],
        [3.38, 1.32, 0.0],
        [7.12, 8.45, 1.0],
        [3.38, 9.45, 0.0],
        [4.93, 9.04, 1.0],
        [6.77, 5.7, 0.0],
        [3.83, 1.45, 0.0],
        [4.78, 1.92, 1.0],
    ];
    const YB: [f64; 40] = [
        0., 1., 0., 0., 0., 0., 0., 1., 0., 0., 0., 1., 0., 1., 0., 0., 1., 0., 0., 1., 0., 0., 0.,
        0., 1., 1., 0., 0., 1., 0., 0., 0., 1., 0., 1., 0., 0., 1., 0., 0.,
    ];
    const Y3: [f64; 40] = [
        0., 0., 0., 2., 2., 1., 0., 0., 0., 1., 2., 1., 1., 1., 2., 0., 1., 2., 2., 1., 2., 2., 1.,
        1., 1., 1., 1., 0., 1., 0., 1., 0., 2., 2., 0., 2., 2., 0., 1., 2.,
    ];
    const YR: [f64; 40] = [
        2.5, 7.13, 0.45, 1.93, -0.84, 4.31, 2.67, 10.55, -0.21, 4.61, 6.18, 8.77, 6.43, 3.59, 7.75,
        3.83, 0.81, -4.33, -0.67, -1.27, -1.04, 2.31, 4.23, 4.61, 9.23, 6.06, -0.83, -0.34, 5.07,
        4.08, -1.31, 0.64, 2.23, 4.93, 6.59, -2.38, 2.38, 5.34, 4.38, 7.69,
    ];
    const W: [f64; 40] = [
        2.2, 1.4, 1.3, 1.4, 0.3, 2.6, 1.7, 1.3, 1.7, 2.2, 1.3, 2.5, 2.8, 1.3, 0.6, 2.3, 3.0, 0.6,
        2.2, 2.5, 2.8, 0.5, 0.5, 3.0, 0.5, 0.7, 1.8, 1.4, 2.3, 0.7, 2.8, 0.8, 2.4, 0.4, 1.5, 0.3,
        1.1, 1.1, 2.2, 1.5,
    ];

    fn dataset(rows: &[[f64; 3]]) -> Dataset {
        let columns = (0..3)
            .map(|j| rows.iter().map(|r| r[j]).collect())
            .collect();
        Dataset::new(
            vec!["x1".into(), "x2".into(), "x3".into()],
            vec![false; 3],
            columns,
        )
    }

    fn tight() -> LinearParams {
        LinearParams {
            tol: 1e-10,
            ..LinearParams::default()
        }
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{got:?} != {want:?} (tol {tol})");
        }
    }

    fn err_msg<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(Error::Invalid(m)) => m,
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }

    const BINARY: Objective = Objective::Binary { sigmoid: 1.0 };

    #[test]
    fn binary_matches_sklearn() {
        let ds = dataset(&X);
        // LogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(Z, YB)
        let m = train_linear(BINARY, &ds, &YB, None, &tight()).unwrap();
        assert_close(
            &m.weights[0],
            &[
                0.6415635895619599,
                -0.49916312112254124,
                0.11323205177003462,
            ],
            1e-6,
        );
        assert_close(&m.intercept, &[-0.9561531022834614], 1e-6);
        // ... .fit(Z, YB, sample_weight=W)
        let m = train_linear(BINARY, &ds, &YB, Some(&W), &tight()).unwrap();
        assert_close(
            &m.weights[0],
            &[0.3871258951298037, -0.4115284594558994, 0.149945132418345],
            1e-6,
        );
        assert_close(&m.intercept, &[-0.7760726306294732], 1e-6);
        // LogisticRegression(C=0.1, ...).fit(Z, YB), set through the C key.
        let mut p = tight();
        p.set("C", "0.1").unwrap();
        assert!((p.l2 - 10.0).abs() < 1e-12);
        let m = train_linear(BINARY, &ds, &YB, None, &p).unwrap();
        assert_close(
            &m.weights[0],
            &[0.285295154960528, -0.21241365530017936, 0.0844110384769193],
            1e-6,
        );
        assert_close(&m.intercept, &[-0.8706860336840829], 1e-6);
        // Default tolerance still agrees to 1e-4.
        let m = train_linear(BINARY, &ds, &YB, None, &LinearParams::default()).unwrap();
        assert_close(
            &m.weights[0],
            &[
                0.6415635895619599,
                -0.49916312112254124,
                0.11323205177003462,
            ],
            1e-4,
        );
        // Predictions are probabilities through the model's own predictor.
        let p0 = m.predict(&X[0])[0];
        assert!(p0 > 0.0 && p0 < 1.0);
    }

    #[test]
    fn sigmoid_is_folded_into_the_weights() {
        let ds = dataset(&X);
        let a = train_linear(BINARY, &ds, &YB, None, &tight()).unwrap();
        let b = train_linear(Objective::Binary { sigmoid: 2.0 }, &ds, &YB, None, &tight()).unwrap();
        assert_close(
            &b.weights[0],
            &a.weights[0].iter().map(|w| w / 2.0).collect::<Vec<_>>(),
            1e-9,
        );
        for row in &X {
            assert!((a.predict(row)[0] - b.predict(row)[0]).abs() < 1e-9);
        }
    }

    #[test]
    fn multinomial_matches_sklearn() {
        let ds = dataset(&X);
        let obj = Objective::Multiclass { num_class: 3 };
        let m = train_linear(obj, &ds, &Y3, None, &tight()).unwrap();
        // LogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(Z, Y3) (multinomial): coef_
        // rows, and intercept_ minus its mean (softmax intercepts are defined up to a shift; ours
        // sum to 0).
        let coef = [
            [
                1.0642632847789328,
                1.0017879920449038,
                -0.015514378746050701,
            ],
            [
                -0.5076694286488336,
                -1.2317340036590443,
                -0.39919563506952305,
            ],
            [-0.5565938561300993, 0.22994601161414038, 0.4147100138155737],
        ];
        for (w, c) in m.weights.iter().zip(&coef) {
            assert_close(w, c, 1e-6);
        }
        assert_close(
            &m.intercept,
            &[-0.4903456547246075, 0.13741587169238417, 0.3529297830322234],
            1e-6,
        );
        // It learned the problem: training accuracy well above the 40% majority rate.
        let correct = X
            .iter()
            .zip(&Y3)
            .filter(|(row, y)| {
                let p = m.predict(&row[..]);
                let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                best as f64 == **y
            })
            .count();
        assert!(correct >= 24, "{correct}/40 correct");
    }

    /// Solves `a x = b` by Gaussian elimination with partial pivoting.
    fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
                .unwrap();
            a.swap(c, p);
            b.swap(c, p);
            let (top, bottom) = a.split_at_mut(c + 1);
            let pivot = &top[c];
            for (r, row) in bottom.iter_mut().enumerate() {
                let f = row[c] / pivot[c];
                row[c..]
                    .iter_mut()
                    .zip(&pivot[c..])
                    .for_each(|(x, p)| *x -= f * p);
                b[c + 1 + r] -= f * b[c];
            }
        }
        let mut x = vec![0.0; n];
        for c in (0..n).rev() {
            x[c] = (b[c] - (c + 1..n).map(|k| a[c][k] * x[k]).sum::<f64>()) / a[c][c];
        }
        x
    }

    #[test]
    fn ridge_matches_closed_form_and_sklearn() {
        let ds = dataset(&X);
        let l2 = 1.0;
        let m = train_linear(Objective::Regression, &ds, &YR, None, &tight()).unwrap();
        // Closed form: with standardized (centered) Z and an unpenalized intercept, b = mean(y) and
        // (ZᵀZ + l2 I) w = Zᵀ (y - mean(y)).
        let z: Vec<Vec<f64>> = (0..3)
            .map(|j| {
                let col: Vec<f64> = X.iter().map(|r| r[j]).collect();
                let mean = col.iter().sum::<f64>() / 40.0;
                let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 40.0).sqrt();
                col.iter().map(|v| (v - mean) / sd).collect()
            })
            .collect();
        let y_mean = YR.iter().sum::<f64>() / 40.0;
        let a = (0..3)
            .map(|i| {
                (0..3)
                    .map(|j| dot(&z[i], &z[j]) + if i == j { l2 } else { 0.0 })
                    .collect()
            })
            .collect();
        let yc: Vec<f64> = YR.iter().map(|y| y - y_mean).collect();
        let b = (0..3).map(|i| dot(&z[i], &yc)).collect();
        let w = solve(a, b);
        assert_close(&m.weights[0], &w, 1e-6);
        assert_close(&m.intercept, &[y_mean], 1e-6);
        // Ridge(alpha=1.0).fit(Z, YR)
        assert_close(
            &m.weights[0],
            &[2.4601929549584343, -2.197154501776849, 0.9423852591733243],
            1e-6,
        );
        assert_close(&m.intercept, &[3.201500000000002], 1e-6);
        // Ridge(alpha=1.0).fit(Z, YR, sample_weight=W)
        let m = train_linear(Objective::Regression, &ds, &YR, Some(&W), &tight()).unwrap();
        assert_close(
            &m.weights[0],
            &[2.4728790101317206, -2.0266299415236406, 0.890584697772403],
            1e-6,
        );
        assert_close(&m.intercept, &[3.2360999414821174], 1e-6);
    }

    #[test]
    fn missing_values_standardize_to_zero() {
        let mut rows = X;
        rows[3][0] = f64::NAN;
        rows[10][1] = f64::NAN;
        rows[25][0] = f64::NAN;
        let ds = dataset(&rows);
        let m = train_linear(BINARY, &ds, &YB, None, &tight()).unwrap();
        // numpy nanmean / nanstd of the columns.
        assert_close(&m.mean, &[4.224210526315791, 5.217435897435897, 0.5], 1e-12);
        assert_close(
            &m.scale,
            &[1.6529521144064567, 2.8496537962902395, 0.5],
            1e-12,
        );
        // LogisticRegression(C=1.0, ...).fit(Z, YB) with Z's NaNs set to 0 after standardizing.
        assert_close(
            &m.weights[0],
            &[0.6077340162783073, -0.4866262079213268, 0.11383976129879565],
            1e-6,
        );
        assert_close(&m.intercept, &[-0.9441149697118906], 1e-6);
        // A missing input predicts like the training mean.
        let with_mean = [m.mean[0], 7.0, 1.0];
        let missing = [f64::NAN, 7.0, 1.0];
        assert_eq!(m.predict(&missing), m.predict(&with_mean));
    }

    #[test]
    fn constant_and_sparse_columns() {
        // A constant column gets scale 1 and weight 0; a mostly-zero column (taking the sparse
        // path) gives the same model as the dense computation would: compare against the same
        // column shifted so it is dense (standardization makes the shift irrelevant).
        let n = 300;
        let y: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i % 7 < 3))).collect();
        let sparse: Vec<f64> = (0..n)
            .map(|i| {
                if i % 7 == 0 {
                    2.0
                } else if i % 11 == 0 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let dense: Vec<f64> = sparse.iter().map(|v| v + 5.0).collect();
        let noise: Vec<f64> = (0..n).map(|i| ((i * 37) % 17) as f64).collect();
        let names = vec!["c".to_string(), "s".to_string(), "x".to_string()];
        let a = Dataset::new(
            names.clone(),
            vec![false; 3],
            vec![vec![4.0; n], sparse, noise.clone()],
        );
        let b = Dataset::new(names, vec![false; 3], vec![vec![4.0; n], dense, noise]);
        let ma = train_linear(BINARY, &a, &y, None, &tight()).unwrap();
        let mb = train_linear(BINARY, &b, &y, None, &tight()).unwrap();
        assert_eq!((ma.mean[0], ma.scale[0], ma.weights[0][0]), (4.0, 1.0, 0.0));
        assert_close(&ma.weights[0], &mb.weights[0], 1e-8);
        assert_close(&ma.intercept, &mb.intercept, 1e-8);
    }

    #[test]
    fn params_set() {
        let mut p = LinearParams::default();
        assert_eq!((p.l2, p.max_iter, p.tol), (1.0, 1000, 1e-6));
        p.set("l2", "0.5").unwrap();
        p.set("max_iter", "50").unwrap();
        p.set("tol", "1e-8").unwrap();
        assert_eq!((p.l2, p.max_iter, p.tol), (0.5, 50, 1e-8));
        p.set("C", "4").unwrap();
        assert_eq!(p.l2, 0.25);
        let e = err_msg(p.set("alpha", "1"));
        assert!(
            e.contains("\"alpha\"") && e.contains("l2, C (= 1/l2), max_iter, tol"),
            "{e}"
        );
        assert!(err_msg(p.set("C", "0")).contains("> 0"));
        assert!(err_msg(p.set("max_iter", "x")).contains("positive integer"));
        assert!(err_msg(p.set("l2", "-1")).contains(">= 0"));
    }

    #[test]
    fn input_errors() {
        let ds = dataset(&X);
        let p = LinearParams::default();
        let e = err_msg(train_linear(BINARY, &ds, &YB[..39], None, &p));
        assert!(e.contains("length mismatch"), "{e}");
        let e = err_msg(train_linear(BINARY, &ds, &YB, Some(&W[..3]), &p));
        assert!(e.contains("length mismatch"), "{e}");
        let empty = dataset(&[]);
        assert!(err_msg(train_linear(BINARY, &empty, &[], None, &p)).contains("empty"));
        let mut y = YB;
        y[5] = f64::NAN;
        assert!(err_msg(train_linear(BINARY, &ds, &y, None, &p)).contains("label at row 5"));
        y[5] = 2.0;
        assert!(err_msg(train_linear(BINARY, &ds, &y, None, &p)).contains("label 2 at row 5"));
        let e = err_msg(train_linear(BINARY, &ds, &[1.0; 40], None, &p));
        assert!(e.contains("only one class"), "{e}");
        let m3 = Objective::Multiclass { num_class: 3 };
        assert!(err_msg(train_linear(m3, &ds, &[1.0; 40], None, &p)).contains("only one class"));
        let two: Vec<f64> = Y3.iter().map(|&v| v.min(1.0)).collect();
        assert!(err_msg(train_linear(m3, &ds, &two, None, &p)).contains("class 2 has no"));
        let mut y3 = Y3;
        y3[7] = 3.0;
        assert!(err_msg(train_linear(m3, &ds, &y3, None, &p)).contains("label 3 at row 7"));
        let mut rows = X;
        rows[12][1] = f64::INFINITY;
        let e = err_msg(train_linear(BINARY, &dataset(&rows), &YB, None, &p));
        assert!(
            e.contains("\"x2\"") && e.contains("row 12") && e.contains("infinite"),
            "{e}"
        );
        let mut cat = dataset(&X);
        cat.categorical[2] = true;
        let e = err_msg(train_linear(BINARY, &cat, &YB, None, &p));
        assert!(
            e.contains("\"x3\" is categorical") && e.contains("one-hot"),
            "{e}"
        );
        let mut w = W;
        w[4] = -1.0;
        assert!(
            err_msg(train_linear(BINARY, &ds, &YB, Some(&w), &p)).contains("weight -1 at row 4")
        );
        assert!(
            err_msg(train_linear(
                Objective::Regression,
                &ds,
                &[f64::INFINITY; 40],
                None,
                &p
            ))
            .contains("not finite")
        );
    }
}

#[cfg(test)]
mod scale_tests {
    use super::*;

    /// 100k rows × (2000 hashed 0/1 text features, ~20 set per row, + 20 dense features).
    /// Run in release: `cargo test -p quiver-ml --release -- --ignored --nocapture large`.
    #[test]
    #[ignore = "timing check; run in release"]
    fn large_hashed_problem_trains_in_seconds() {
        let (n, hashed, dense) = (100_000usize, 2000usize, 20usize);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut columns = vec![vec![0.0; n]; hashed + dense];
        let mut y = vec![0.0; n];
        for i in 0..n {
            let mut score = 0.0;
            for _ in 0..20 {
                let j = (next() % hashed as u64) as usize;
                columns[j][i] = 1.0;
                score += if j.is_multiple_of(3) { 0.4 } else { -0.1 };
            }
            for j in 0..dense {
                let v = (next() % 10_000) as f64 / 1000.0;
                columns[hashed + j][i] = v;
                score += if j < 5 { 0.1 * (v - 5.0) } else { 0.0 };
            }
            let u = (next() % 1_000_000) as f64 / 1e6;
            y[i] = f64::from(u8::from(u < 1.0 / (1.0 + (-score).exp())));
        }
        let names = (0..hashed + dense).map(|j| format!("f{j}")).collect();
        let ds = Dataset::new(names, vec![false; hashed + dense], columns);
        let start = std::time::Instant::now();
        let m = train_linear(
            Objective::Binary { sigmoid: 1.0 },
            &ds,
            &y,
            None,
            &LinearParams::default(),
        )
        .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let y3: Vec<f64> = y
            .iter()
            .zip(&ds.columns[hashed])
            .map(|(y, v)| y + f64::from(u8::from(*v > 7.0)))
            .collect();
        let start3 = std::time::Instant::now();
        let m3 = train_linear(
            Objective::Multiclass { num_class: 3 },
            &ds,
            &y3,
            None,
            &LinearParams::default(),
        )
        .unwrap();
        let secs3 = start3.elapsed().as_secs_f64();
        let preds: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let mut row = Vec::new();
                ds.row(i, &mut row);
                m.predict(&row)
            })
            .collect();
        let auc = crate::metrics::evaluate(m.objective, &y, &preds)
            .unwrap()
            .roc_auc
            .unwrap();
        eprintln!(
            "binary {secs:.2}s (train AUC {auc:.4}), multiclass {secs3:.2}s, w3[0][0..3] {:?}",
            &m3.weights[0][..3]
        );
        assert!(auc > 0.7);
    }
}
