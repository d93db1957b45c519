//! Evaluation metrics: ROC-AUC, PR-AUC (average precision), log loss, Brier score, calibration,
//! ROC/PR curve points, confusion matrix, per-class precision/recall/F1, accuracy, macro F1, and
//! RMSE/MAE/R² for regression; [`evaluate`] bundles those that apply to a task into one
//! [`Evaluation`], which is stored as JSON with each model version.
//!
//! Conventions (matching scikit-learn where there is a choice):
//! - Binary labels are `0.0` or `1.0`; class labels are integers `0..n_classes` (as `f64` in
//!   [`evaluate`], `usize` in the class-level functions).
//! - [`roc_auc`] sorts by score and takes one point per *distinct* score (ties form one diagonal
//!   step), then sums trapezoids — `sklearn.metrics.roc_auc_score`.
//! - [`pr_auc`] is **average precision**, `Σ (R_k − R_{k−1}) P_k` over distinct thresholds in
//!   decreasing order, as `sklearn.metrics.average_precision_score` (not the trapezoidal area under
//!   the PR curve, which is optimistic).
//! - Probabilities are clipped to `[1e-15, 1 − 1e-15]` in log loss.
//! - Confusion matrices are indexed `[true class][predicted class]`.

use serde::{Deserialize, Serialize};

use crate::{Error, Objective, Result};

/// Probabilities are clipped to `[EPS, 1 - EPS]` in [`log_loss`].
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// At most this many points are kept by [`roc_curve`] and [`pr_curve`] (endpoints always kept).
pub const MAX_CURVE_POINTS: usize = 200;

/// The threshold at which [`evaluate`] turns binary probabilities into classes: positive when
/// `p >= 0.5`.
pub const BINARY_THRESHOLD: f64 = 0.5;

/// One equal-width bin of a calibration (reliability) diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// The bin covers predicted probabilities in `[lo, hi)` (the last bin also includes 1.0).
    pub lo: f64,
    pub hi: f64,
    /// Number of rows whose prediction falls in the bin (always > 0: empty bins are omitted).
    pub count: usize,
    /// Mean predicted probability of those rows.
    pub mean_predicted: f64,
    /// Fraction of those rows whose label is 1.
    pub observed_rate: f64,
}

/// One point of a ROC curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Rows with score `>= threshold` are predicted positive; `None` for the first point
    /// (nothing predicted positive).
    pub threshold: Option<f64>,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// One point of a precision-recall curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    /// Rows with score `>= threshold` are predicted positive; `None` for the first point
    /// (recall 0, precision 1 by convention).
    pub threshold: Option<f64>,
    pub recall: f64,
    pub precision: f64,
}

/// Precision, recall and F1 of one class (one-vs-rest). Undefined ratios (0/0) are 0, as
/// scikit-learn's `zero_division` default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of rows whose true class is `class`.
    pub support: u64,
    /// Number of rows predicted as `class`.
    pub predicted: u64,
}

/// Which kind of task an [`Evaluation`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Binary,
    Multiclass,
    Regression,
}

/// Every metric that applies to a task, computed on one evaluation set. Fields that do not apply
/// to the task are `None` and left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub task: Task,
    pub n_rows: usize,
    /// Binary and multiclass: number of classes (2 for binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_classes: Option<usize>,
    /// Binary: area under the ROC curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Binary: area under the precision-recall curve, computed as average precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_auc: Option<f64>,
    /// Binary and multiclass: mean negative log-likelihood (natural log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<f64>,
    /// Binary: mean squared error of the probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brier: Option<f64>,
    /// Binary (at `decision_threshold`) and multiclass (arg-max class): fraction correct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Binary: probability at or above which a row is predicted positive (0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_threshold: Option<f64>,
    /// Binary and multiclass: `confusion_matrix[true][predicted]` row counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion_matrix: Option<Vec<Vec<u64>>>,
    /// Multiclass: one-vs-rest precision, recall, F1 and support per class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<Vec<ClassMetrics>>,
    /// Multiclass: unweighted mean of the per-class F1 (see [`macro_f1`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    /// Binary: 10 equal-width calibration bins (empty bins omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Vec<CalibrationBin>>,
    /// Binary: ROC curve points for plotting (at most [`MAX_CURVE_POINTS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_curve: Option<Vec<RocPoint>>,
    /// Binary: precision of the positive class at the decision threshold (0 if nothing is
    /// predicted positive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Binary: recall of the positive class at the decision threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Binary: F1 of the positive class at the decision threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Binary: precision-recall curve points for plotting (at most [`MAX_CURVE_POINTS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_curve: Option<Vec<PrPoint>>,
    /// Regression: root mean squared error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Regression: mean absolute error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Regression: coefficient of determination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
}

impl Evaluation {
    fn empty(task: Task, n_rows: usize) -> Self {
        Evaluation {
            task,
            n_rows,
            n_classes: None,
            roc_auc: None,
            pr_auc: None,
            log_loss: None,
            brier: None,
            accuracy: None,
            decision_threshold: None,
            confusion_matrix: None,
            per_class: None,
            macro_f1: None,
            precision: None,
            recall: None,
            f1: None,
            calibration: None,
            roc_curve: None,
            pr_curve: None,
            rmse: None,
            mae: None,
            r2: None,
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// Errors unless `a` and `b` have the same, non-zero length.
fn check_lengths(what: &str, a_name: &str, a: usize, b_name: &str, b: usize) -> Result<()> {
    if a != b {
        return Err(invalid(format!(
            "{what}: length mismatch: {a_name} has {a} rows but {b_name} has {b}"
        )));
    }
    if a == 0 {
        return Err(invalid(format!("{what}: empty input (0 rows)")));
    }
    Ok(())
}

fn check_binary_labels(what: &str, y: &[f64]) -> Result<()> {
    for (i, &v) in y.iter().enumerate() {
        if v != 0.0 && v != 1.0 {
            return Err(invalid(format!(
                "{what}: label {v} at row {i} is outside the binary labels {{0, 1}}"
            )));
        }
    }
    Ok(())
}

fn check_finite_predictions(what: &str, p: &[f64]) -> Result<()> {
    for (i, &v) in p.iter().enumerate() {
        if v.is_nan() {
            return Err(invalid(format!("{what}: prediction at row {i} is NaN")));
        }
        if v.is_infinite() {
            return Err(invalid(format!(
                "{what}: prediction at row {i} is infinite ({v})"
            )));
        }
    }
    Ok(())
}

fn check_probabilities(what: &str, p: &[f64]) -> Result<()> {
    check_finite_predictions(what, p)?;
    for (i, &v) in p.iter().enumerate() {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(format!(
                "{what}: prediction {v} at row {i} is not a probability in [0, 1]"
            )));
        }
    }
    Ok(())
}

fn check_weights(what: &str, n: usize, w: Option<&[f64]>) -> Result<()> {
    if let Some(w) = w {
        if w.len() != n {
            return Err(invalid(format!(
                "{what}: length mismatch: y has {n} rows but weights has {}",
                w.len()
            )));
        }
        for (i, &v) in w.iter().enumerate() {
            if !v.is_finite() || v < 0.0 {
                return Err(invalid(format!(
                    "{what}: weight {v} at row {i} is not a finite non-negative number"
                )));
            }
        }
    }
    Ok(())
}

/// Validated binary inputs.
fn check_binary(what: &str, y: &[f64], p: &[f64], w: Option<&[f64]>) -> Result<()> {
    check_lengths(what, "y", y.len(), "predictions", p.len())?;
    check_weights(what, y.len(), w)?;
    check_binary_labels(what, y)?;
    check_finite_predictions(what, p)
}

/// Cumulative weighted true and false positives at each distinct score, scores descending
/// (scikit-learn's `_binary_clf_curve`): `(threshold, tp, fp)`.
fn binary_clf_curve(y: &[f64], p: &[f64], w: Option<&[f64]>) -> Vec<(f64, f64, f64)> {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        let wi = w.map_or(1.0, |w| w[i]);
        if y[i] == 1.0 {
            tp += wi;
        } else {
            fp += wi;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| p[j] != p[i]);
        if last_of_tie {
            out.push((p[i], tp, fp));
        }
    }
    out
}

/// Full ROC curve (not thinned): one point per distinct score plus the origin.
fn roc_points(what: &str, y: &[f64], p: &[f64], w: Option<&[f64]>) -> Result<Vec<RocPoint>> {
    check_binary(what, y, p, w)?;
    let curve = binary_clf_curve(y, p, w);
    let &(_, pos, neg) = curve.last().expect("non-empty input");
    if pos <= 0.0 || neg <= 0.0 {
        let only = if pos <= 0.0 {
            "negative (0)"
        } else {
            "positive (1)"
        };
        return Err(invalid(format!(
            "{what}: only one class present: every (weighted) label is {only}; \
             ROC AUC needs both classes"
        )));
    }
    let mut pts = Vec::with_capacity(curve.len() + 1);
    pts.push(RocPoint {
        threshold: None,
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
    });
    pts.extend(curve.iter().map(|&(t, tp, fp)| RocPoint {
        threshold: Some(t),
        false_positive_rate: fp / neg,
        true_positive_rate: tp / pos,
    }));
    Ok(pts)
}

/// Full PR curve (not thinned): one point per distinct score, after the (recall 0, precision 1)
/// start.
fn pr_points(what: &str, y: &[f64], p: &[f64], w: Option<&[f64]>) -> Result<Vec<PrPoint>> {
    check_binary(what, y, p, w)?;
    let curve = binary_clf_curve(y, p, w);
    let &(_, pos, _) = curve.last().expect("non-empty input");
    if pos <= 0.0 {
        return Err(invalid(format!(
            "{what}: only one class present: no (weighted) positive label (1); \
             precision-recall needs positives"
        )));
    }
    let mut pts = Vec::with_capacity(curve.len() + 1);
    pts.push(PrPoint {
        threshold: None,
        recall: 0.0,
        precision: 1.0,
    });
    pts.extend(curve.iter().map(|&(t, tp, fp)| PrPoint {
        threshold: Some(t),
        recall: tp / pos,
        precision: if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 },
    }));
    Ok(pts)
}

/// Keeps at most `max` (>= 2) points, evenly spaced by index, always keeping the first and last.
fn thin<T: Clone>(pts: Vec<T>, max: usize) -> Vec<T> {
    let n = pts.len();
    if n <= max {
        return pts;
    }
    (0..max)
        .map(|k| pts[(k * (n - 1) + (max - 1) / 2) / (max - 1)].clone())
        .collect()
}

/// Area under the ROC curve, with optional sample weights. Ties in `p` form one diagonal step
/// (trapezoid), as `sklearn.metrics.roc_auc_score`. Errors if only one class has positive weight.
pub fn roc_auc(y: &[f64], p: &[f64], w: Option<&[f64]>) -> Result<f64> {
    let pts = roc_points("roc_auc", y, p, w)?;
    Ok(pts
        .windows(2)
        .map(|s| {
            (s[1].false_positive_rate - s[0].false_positive_rate)
                * (s[1].true_positive_rate + s[0].true_positive_rate)
                / 2.0
        })
        .sum())
}

/// Area under the precision-recall curve, computed as **average precision**
/// `Σ_k (R_k − R_{k−1}) · P_k` over distinct thresholds (scores descending, `R_0 = 0`), exactly
/// `sklearn.metrics.average_precision_score`. This step-wise sum does not interpolate between
/// points (linear interpolation in PR space overestimates the area). Optional sample weights.
/// Errors if there is no positive label.
pub fn pr_auc(y: &[f64], p: &[f64], w: Option<&[f64]>) -> Result<f64> {
    let pts = pr_points("pr_auc", y, p, w)?;
    Ok(pts
        .windows(2)
        .map(|s| (s[1].recall - s[0].recall) * s[1].precision)
        .sum())
}

/// ROC curve points for plotting, from the origin (threshold `None`) to (1, 1), thinned to at
/// most [`MAX_CURVE_POINTS`] points (first and last kept).
pub fn roc_curve(y: &[f64], p: &[f64], w: Option<&[f64]>) -> Result<Vec<RocPoint>> {
    Ok(thin(roc_points("roc_curve", y, p, w)?, MAX_CURVE_POINTS))
}

/// Precision-recall curve points for plotting, from (recall 0, precision 1) through each distinct
/// threshold in decreasing order to recall 1, thinned to at most [`MAX_CURVE_POINTS`] points
/// (first and last kept).
pub fn pr_curve(y: &[f64], p: &[f64], w: Option<&[f64]>) -> Result<Vec<PrPoint>> {
    Ok(thin(pr_points("pr_curve", y, p, w)?, MAX_CURVE_POINTS))
}

/// Binary log loss `−mean(y ln p + (1 − y) ln(1 − p))`, `p` clipped to `[1e-15, 1 − 1e-15]`.
pub fn log_loss(y: &[f64], p: &[f64]) -> Result<f64> {
    let what = "log_loss";
    check_lengths(what, "y", y.len(), "predictions", p.len())?;
    check_binary_labels(what, y)?;
    check_probabilities(what, p)?;
    let sum: f64 = y
        .iter()
        .zip(p)
        .map(|(&y, &p)| {
            let p = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            if y == 1.0 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    Ok(sum / y.len() as f64)
}

/// Checks that `y` holds integer class labels in `0..n_classes`; returns them as `usize`.
fn class_labels(what: &str, y: &[f64], n_classes: usize) -> Result<Vec<usize>> {
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && v >= 0.0 && v < n_classes as f64 {
                Ok(v as usize)
            } else {
                Err(invalid(format!(
                    "{what}: label {v} at row {i} is outside the classes 0..{n_classes} \
                     (labels must be integers 0 to {})",
                    n_classes.saturating_sub(1)
                )))
            }
        })
        .collect()
}

/// Checks that every row of `probs` has `n_classes` probabilities.
fn check_prob_rows(what: &str, probs: &[Vec<f64>], n_classes: usize) -> Result<()> {
    for (i, row) in probs.iter().enumerate() {
        if row.len() != n_classes {
            return Err(invalid(format!(
                "{what}: prediction row {i} has {} values, expected {n_classes} (one per class)",
                row.len()
            )));
        }
        for (k, &v) in row.iter().enumerate() {
            if v.is_nan() {
                return Err(invalid(format!(
                    "{what}: prediction at row {i}, class {k} is NaN"
                )));
            }
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(format!(
                    "{what}: prediction {v} at row {i}, class {k} is not a probability in [0, 1]"
                )));
            }
        }
    }
    Ok(())
}

/// Multiclass log loss `−mean(ln p[y])` over probability rows (`probs[i][k]` = probability that
/// row `i` is class `k`; labels are class indices `0..n_classes` as `f64`). The true class's
/// probability is clipped to `[1e-15, 1 − 1e-15]`; rows are not renormalized.
pub fn log_loss_multiclass(y: &[f64], probs: &[Vec<f64>]) -> Result<f64> {
    let what = "log_loss";
    check_lengths(what, "y", y.len(), "predictions", probs.len())?;
    let n_classes = probs[0].len();
    check_prob_rows(what, probs, n_classes)?;
    let labels = class_labels(what, y, n_classes)?;
    let sum: f64 = labels
        .iter()
        .zip(probs)
        .map(|(&c, row)| -row[c].clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln())
        .sum();
    Ok(sum / y.len() as f64)
}

/// Brier score `mean((p − y)²)` for binary labels.
pub fn brier(y: &[f64], p: &[f64]) -> Result<f64> {
    let what = "brier";
    check_lengths(what, "y", y.len(), "predictions", p.len())?;
    check_binary_labels(what, y)?;
    check_probabilities(what, p)?;
    Ok(y.iter().zip(p).map(|(y, p)| (p - y) * (p - y)).sum::<f64>() / y.len() as f64)
}

/// Reliability diagram with `bins` equal-width bins over [0, 1]: bin `b` holds predictions in
/// `[b/bins, (b+1)/bins)` (the last also holds 1.0). **Empty bins are omitted**, so every returned
/// bin has `count > 0` and finite means; bins are in increasing order.
pub fn calibration(y: &[f64], p: &[f64], bins: usize) -> Result<Vec<CalibrationBin>> {
    let what = "calibration";
    if bins == 0 {
        return Err(invalid(format!(
            "{what}: the number of bins must be at least 1"
        )));
    }
    check_lengths(what, "y", y.len(), "predictions", p.len())?;
    check_binary_labels(what, y)?;
    check_probabilities(what, p)?;
    let mut count = vec![0usize; bins];
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    for (&y, &p) in y.iter().zip(p) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        sum_p[b] += p;
        sum_y[b] += y;
    }
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| CalibrationBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count: count[b],
            mean_predicted: sum_p[b] / count[b] as f64,
            observed_rate: sum_y[b] / count[b] as f64,
        })
        .collect())
}

/// `cm[t][p]` = number of rows with true class `t` predicted as class `p`, for classes
/// `0..n_classes`. Errors on a label outside that range.
pub fn confusion_matrix(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<Vec<Vec<u64>>> {
    let what = "confusion_matrix";
    check_lengths(what, "y_true", y_true.len(), "y_pred", y_pred.len())?;
    let mut cm = vec![vec![0u64; n_classes]; n_classes];
    for (i, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
        for (name, c) in [("true", t), ("predicted", p)] {
            if c >= n_classes {
                return Err(invalid(format!(
                    "{what}: {name} label {c} at row {i} is outside the classes 0..{n_classes}"
                )));
            }
        }
        cm[t][p] += 1;
    }
    Ok(cm)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// One-vs-rest precision, recall, F1 and support of each class from a confusion matrix
/// (`cm[true][predicted]`). 0/0 is 0.
pub fn per_class(cm: &[Vec<u64>]) -> Vec<ClassMetrics> {
    let n = cm.len();
    (0..n)
        .map(|c| {
            let tp = cm[c][c] as f64;
            let support: u64 = cm[c].iter().sum();
            let predicted: u64 = cm.iter().map(|row| row[c]).sum();
            let precision = ratio(tp, predicted as f64);
            let recall = ratio(tp, support as f64);
            let f1 = ratio(2.0 * precision * recall, precision + recall);
            ClassMetrics {
                class: c,
                precision,
                recall,
                f1,
                support,
                predicted,
            }
        })
        .collect()
}

/// Unweighted mean F1 over the classes that occur (in the true labels or the predictions), as
/// `sklearn.metrics.f1_score(average="macro")` without an explicit `labels`; classes that never
/// occur are left out rather than counted as F1 = 0. 0 when no class occurs.
pub fn macro_f1(per_class: &[ClassMetrics]) -> f64 {
    let present: Vec<f64> = per_class
        .iter()
        .filter(|c| c.support > 0 || c.predicted > 0)
        .map(|c| c.f1)
        .collect();
    if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    }
}

/// Fraction of rows whose predicted class equals the true class.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    check_lengths("accuracy", "y_true", y_true.len(), "y_pred", y_pred.len())?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / y_true.len() as f64)
}

fn check_regression(what: &str, y: &[f64], p: &[f64]) -> Result<()> {
    check_lengths(what, "y", y.len(), "predictions", p.len())?;
    for (i, &v) in y.iter().enumerate() {
        if !v.is_finite() {
            return Err(invalid(format!(
                "{what}: label at row {i} is not finite ({v})"
            )));
        }
    }
    check_finite_predictions(what, p)
}

/// Root mean squared error.
pub fn rmse(y: &[f64], p: &[f64]) -> Result<f64> {
    check_regression("rmse", y, p)?;
    Ok((y.iter().zip(p).map(|(y, p)| (p - y) * (p - y)).sum::<f64>() / y.len() as f64).sqrt())
}

/// Mean absolute error.
pub fn mae(y: &[f64], p: &[f64]) -> Result<f64> {
    check_regression("mae", y, p)?;
    Ok(y.iter().zip(p).map(|(y, p)| (p - y).abs()).sum::<f64>() / y.len() as f64)
}

/// Coefficient of determination `1 − SS_res / SS_tot`. When `y` is constant (`SS_tot = 0`) it is
/// 1.0 for perfect predictions and 0.0 otherwise, as scikit-learn's `r2_score`.
pub fn r2(y: &[f64], p: &[f64]) -> Result<f64> {
    check_regression("r2", y, p)?;
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let ss_tot: f64 = y.iter().map(|y| (y - mean) * (y - mean)).sum();
    let ss_res: f64 = y.iter().zip(p).map(|(y, p)| (p - y) * (p - y)).sum();
    Ok(if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    })
}

/// Index of the largest value (the first on ties).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = k;
        }
    }
    best
}

/// Takes the single output of each prediction row.
fn single_outputs(what: &str, preds: &[Vec<f64>]) -> Result<Vec<f64>> {
    preds
        .iter()
        .enumerate()
        .map(|(i, row)| match row.as_slice() {
            [v] => Ok(*v),
            _ => Err(invalid(format!(
                "{what}: prediction row {i} has {} values, expected 1",
                row.len()
            ))),
        })
        .collect()
}

/// Every metric that applies to `objective`, from labels `y` and per-row predictions `preds`
/// (what [`crate::Model::predict`] returns: `[probability]` for binary, one probability per class
/// for multiclass, `[value]` for regression).
///
/// - Binary (labels 0/1): `roc_auc`, `pr_auc`, `log_loss`, `brier`, `accuracy` and the 2×2
///   `confusion_matrix` at `p >= 0.5`, 10-bin `calibration`, `roc_curve`, `pr_curve`. Errors if the
///   labels hold only one class (AUC is undefined).
/// - Multiclass (labels `0..num_class`): `accuracy` and `confusion_matrix` of the arg-max class,
///   `log_loss`, `per_class`, `macro_f1`.
/// - Regression: `rmse`, `mae`, `r2`.
pub fn evaluate(objective: Objective, y: &[f64], preds: &[Vec<f64>]) -> Result<Evaluation> {
    let what = "evaluate";
    check_lengths(what, "y", y.len(), "predictions", preds.len())?;
    let n = y.len();
    match objective {
        Objective::Binary { .. } => {
            let p = single_outputs(what, preds)?;
            check_binary_labels(what, y)?;
            check_probabilities(what, &p)?;
            let truth: Vec<usize> = y.iter().map(|&v| v as usize).collect();
            let pred: Vec<usize> = p
                .iter()
                .map(|&v| usize::from(v >= BINARY_THRESHOLD))
                .collect();
            let mut e = Evaluation::empty(Task::Binary, n);
            e.n_classes = Some(2);
            e.roc_auc = Some(roc_auc(y, &p, None)?);
            e.pr_auc = Some(pr_auc(y, &p, None)?);
            e.log_loss = Some(log_loss(y, &p)?);
            e.brier = Some(brier(y, &p)?);
            e.accuracy = Some(accuracy(&truth, &pred)?);
            e.decision_threshold = Some(BINARY_THRESHOLD);
            let cm = confusion_matrix(&truth, &pred, 2)?;
            let positive = &per_class(&cm)[1];
            e.precision = Some(positive.precision);
            e.recall = Some(positive.recall);
            e.f1 = Some(positive.f1);
            e.confusion_matrix = Some(cm);
            e.calibration = Some(calibration(y, &p, 10)?);
            e.roc_curve = Some(roc_curve(y, &p, None)?);
            e.pr_curve = Some(pr_curve(y, &p, None)?);
            Ok(e)
        }
        Objective::Multiclass { num_class } => {
            check_prob_rows(what, preds, num_class)?;
            let truth = class_labels(what, y, num_class)?;
            let pred: Vec<usize> = preds.iter().map(|row| argmax(row)).collect();
            let cm = confusion_matrix(&truth, &pred, num_class)?;
            let classes = per_class(&cm);
            let mut e = Evaluation::empty(Task::Multiclass, n);
            e.n_classes = Some(num_class);
            e.accuracy = Some(accuracy(&truth, &pred)?);
            e.log_loss = Some(log_loss_multiclass(y, preds)?);
            e.macro_f1 = Some(macro_f1(&classes));
            e.per_class = Some(classes);
            e.confusion_matrix = Some(cm);
            Ok(e)
        }
        Objective::Regression => {
            let p = single_outputs(what, preds)?;
            let mut e = Evaluation::empty(Task::Regression, n);
            e.rmse = Some(rmse(y, &p)?);
            e.mae = Some(mae(y, &p)?);
            e.r2 = Some(r2(y, &p)?);
            Ok(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} != {b} (tol {tol})");
    }

    fn err_msg<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(Error::Invalid(m)) => m,
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }

    // The sklearn reference data (computed with scikit-learn 1.9.1 / numpy 2.4.6 by
    // reference/sklearn_metrics.py; each test's comment names the sklearn call). Scores are rounded to one decimal, so there are many ties.
    const Y: [f64; 24] = [
        0., 1., 1., 0., 1., 0., 0., 1., 1., 0., 0., 1., 0., 1., 1., 0., 0., 0., 1., 1., 0., 1., 0.,
        1.,
    ];
    const P: [f64; 24] = [
        0.1, 0.8, 0.6, 0.3, 0.6, 0.6, 0.2, 0.9, 0.4, 0.4, 0.1, 0.7, 0.3, 0.6, 0.8, 0.2, 0.5, 0.1,
        0.3, 0.9, 0.7, 0.5, 0.4, 1.0,
    ];
    const W: [f64; 24] = [
        1., 2., 0.5, 1., 1., 3., 1., 0.25, 1., 2., 1., 1., 1.5, 1., 1., 0.5, 2., 1., 1., 1., 1.,
        4., 1., 1.,
    ];

    #[test]
    fn roc_auc_by_hand() {
        // y=[0,0,1,1], p=[0.1,0.4,0.35,0.8]: of the 4 (pos, neg) pairs, 0.8 beats both negatives,
        // 0.35 beats 0.1 but not 0.4 => 3/4.
        close(
            roc_auc(&[0., 0., 1., 1.], &[0.1, 0.4, 0.35, 0.8], None).unwrap(),
            0.75,
            1e-15,
        );
        // Ties: y=[0,1,0,1], p=[0.5,0.5,0.2,0.9]. Pairs: 0.9>0.5, 0.9>0.2, 0.5=0.5 (counts 1/2),
        // 0.5>0.2 => 3.5/4 = 0.875. Curve: (0,0) (0,.5) (.5,1) (1,1); trapezoids
        // 0 + .5*(.5+1)/2 + .5*(1+1)/2 = .375 + .5 = .875.
        close(
            roc_auc(&[0., 1., 0., 1.], &[0.5, 0.5, 0.2, 0.9], None).unwrap(),
            0.875,
            1e-15,
        );
        // Weights: same as the first case with the negative at 0.4 weighted 3:
        // pairs weighted by w_pos*w_neg: 0.8 beats 0.1 (1) and 0.4 (3); 0.35 beats 0.1 (1)
        // => 5 / (2 * 4) = 0.625.
        close(
            roc_auc(
                &[0., 0., 1., 1.],
                &[0.1, 0.4, 0.35, 0.8],
                Some(&[1., 3., 1., 1.]),
            )
            .unwrap(),
            0.625,
            1e-15,
        );
    }

    #[test]
    fn pr_auc_by_hand() {
        // y=[0,0,1,1], p=[0.1,0.4,0.35,0.8], descending: 0.8(+) P=1 R=.5; 0.4(-) P=.5 R=.5;
        // 0.35(+) P=2/3 R=1; 0.1(-) P=.5 R=1. AP = .5*1 + 0*.5 + .5*(2/3) + 0 = 5/6.
        close(
            pr_auc(&[0., 0., 1., 1.], &[0.1, 0.4, 0.35, 0.8], None).unwrap(),
            5.0 / 6.0,
            1e-15,
        );
        // Ties: y=[0,1,0,1], p=[0.5,0.5,0.2,0.9]: 0.9(+) P=1 R=.5; tie 0.5 (+,-) P=2/3 R=1.
        // AP = .5*1 + .5*2/3 = 5/6.
        close(
            pr_auc(&[0., 1., 0., 1.], &[0.5, 0.5, 0.2, 0.9], None).unwrap(),
            5.0 / 6.0,
            1e-15,
        );
    }

    #[test]
    fn auc_against_sklearn_with_ties_and_weights() {
        // roc_auc_score(Y, P) / roc_auc_score(Y, P, sample_weight=W)
        close(roc_auc(&Y, &P, None).unwrap(), 0.8784722222222223, 1e-12);
        close(
            roc_auc(&Y, &P, Some(&W)).unwrap(),
            0.8114406779661018,
            1e-12,
        );
        // average_precision_score(Y, P) / average_precision_score(Y, P, sample_weight=W)
        close(pr_auc(&Y, &P, None).unwrap(), 0.866666502357292, 1e-12);
        close(pr_auc(&Y, &P, Some(&W)).unwrap(), 0.7941732614459263, 1e-12);
    }

    #[test]
    fn roc_curve_against_sklearn() {
        // roc_curve(Y, P, drop_intermediate=False): (fpr, tpr, threshold), rounded to 6 places.
        let expected = [
            (0.0, 0.0, None),
            (0.0, 0.083333, Some(1.0)),
            (0.0, 0.25, Some(0.9)),
            (0.0, 0.416667, Some(0.8)),
            (0.083333, 0.5, Some(0.7)),
            (0.166667, 0.75, Some(0.6)),
            (0.25, 0.833333, Some(0.5)),
            (0.416667, 0.916667, Some(0.4)),
            (0.583333, 1.0, Some(0.3)),
            (0.75, 1.0, Some(0.2)),
            (1.0, 1.0, Some(0.1)),
        ];
        let got = roc_curve(&Y, &P, None).unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, &(fpr, tpr, thr)) in got.iter().zip(&expected) {
            close(g.false_positive_rate, fpr, 1e-6);
            close(g.true_positive_rate, tpr, 1e-6);
            assert_eq!(g.threshold, thr);
        }
        let pr = pr_curve(&Y, &P, None).unwrap();
        assert_eq!(pr.len(), expected.len());
        assert_eq!(
            (pr[0].recall, pr[0].precision, pr[0].threshold),
            (0.0, 1.0, None)
        );
        // Last point: everything predicted positive: recall 1, precision = 12/24.
        assert_eq!((pr[10].recall, pr[10].precision), (1.0, 0.5));
    }

    #[test]
    fn curves_are_thinned_keeping_endpoints() {
        let n = 1000;
        let y: Vec<f64> = (0..n).map(|i| (i % 3 == 0) as u8 as f64).collect();
        let p: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64 / n as f64).collect();
        let roc = roc_curve(&y, &p, None).unwrap();
        assert_eq!(roc.len(), MAX_CURVE_POINTS);
        assert_eq!(
            (roc[0].false_positive_rate, roc[0].true_positive_rate),
            (0.0, 0.0)
        );
        let last = roc.last().unwrap();
        assert_eq!(
            (last.false_positive_rate, last.true_positive_rate),
            (1.0, 1.0)
        );
        assert!(
            roc.windows(2)
                .all(|s| s[0].false_positive_rate <= s[1].false_positive_rate)
        );
        let pr = pr_curve(&y, &p, None).unwrap();
        assert_eq!(pr.len(), MAX_CURVE_POINTS);
        assert_eq!(pr[0].recall, 0.0);
        assert_eq!(pr.last().unwrap().recall, 1.0);
    }

    #[test]
    fn log_loss_and_brier() {
        // Hand: y=[1,0], p=[0.8,0.4]: -(ln 0.8 + ln 0.6)/2; Brier ((0.2)^2 + (0.4)^2)/2 = 0.1.
        close(
            log_loss(&[1., 0.], &[0.8, 0.4]).unwrap(),
            -(0.8f64.ln() + 0.6f64.ln()) / 2.0,
            1e-15,
        );
        close(brier(&[1., 0.], &[0.8, 0.4]).unwrap(), 0.1, 1e-15);
        // Clipping: p=0 for a positive costs -ln(1e-15) = 34.538776394910684.
        close(log_loss(&[1.], &[0.0]).unwrap(), 34.538776394910684, 1e-9);
        // sklearn: log_loss(Y, P) (P holds a 1.0 for a positive: clipped) and brier_score_loss(Y, P)
        close(log_loss(&Y, &P).unwrap(), 0.44459796532134144, 1e-12);
        close(brier(&Y, &P).unwrap(), 0.14500000000000002, 1e-12);
    }

    #[test]
    fn calibration_bins() {
        // 4 bins of width 0.25. p=0.1,0.2 -> bin 0 (y 0,1); p=0.6 -> bin 2 (y 1); p=1.0 -> last bin
        // (y 1), p=0.75 -> bin 3 (y 0). Bin 1 is empty and omitted.
        let y = [0., 1., 1., 1., 0.];
        let p = [0.1, 0.2, 0.6, 1.0, 0.75];
        let bins = calibration(&y, &p, 4).unwrap();
        assert_eq!(bins.len(), 3);
        assert_eq!((bins[0].lo, bins[0].hi, bins[0].count), (0.0, 0.25, 2));
        close(bins[0].mean_predicted, 0.15, 1e-15);
        close(bins[0].observed_rate, 0.5, 1e-15);
        assert_eq!(
            (bins[1].lo, bins[1].count, bins[1].observed_rate),
            (0.5, 1, 1.0)
        );
        assert_eq!((bins[2].lo, bins[2].hi, bins[2].count), (0.75, 1.0, 2));
        close(bins[2].mean_predicted, 0.875, 1e-15);
        close(bins[2].observed_rate, 0.5, 1e-15);
        assert!(err_msg(calibration(&y, &p, 0)).contains("bins"));
    }

    // sklearn multiclass reference: yc, probability rows PC; argmax = [0,1,2,1,0,0,1,2,2,1]
    // (row 5's tie between classes 0 and 1 goes to the first, as numpy's argmax).
    const YC: [f64; 10] = [0., 1., 2., 2., 1., 0., 1., 2., 0., 1.];
    fn pc() -> Vec<Vec<f64>> {
        [
            [0.7, 0.2, 0.1],
            [0.1, 0.6, 0.3],
            [0.2, 0.2, 0.6],
            [0.3, 0.4, 0.3],
            [0.5, 0.4, 0.1],
            [0.4, 0.4, 0.2],
            [0.2, 0.5, 0.3],
            [0.1, 0.1, 0.8],
            [0.3, 0.3, 0.4],
            [0.25, 0.5, 0.25],
        ]
        .iter()
        .map(|r| r.to_vec())
        .collect()
    }

    #[test]
    fn multiclass_against_sklearn() {
        let e = evaluate(Objective::Multiclass { num_class: 3 }, &YC, &pc()).unwrap();
        // log_loss(yc, P, labels=[0,1,2])
        close(e.log_loss.unwrap(), 0.7228291176304996, 1e-12);
        // accuracy_score(yc, P.argmax(1)); confusion_matrix(yc, pred, labels=[0,1,2])
        close(e.accuracy.unwrap(), 0.7, 1e-15);
        assert_eq!(
            e.confusion_matrix.as_ref().unwrap(),
            &vec![vec![2, 0, 1], vec![1, 3, 0], vec![0, 1, 2]]
        );
        // precision_recall_fscore_support(yc, pred): P = R = F1 = [2/3, 3/4, 2/3], support [3,4,3]
        let pc = e.per_class.as_ref().unwrap();
        for (c, (v, s)) in [(2.0 / 3.0, 3), (0.75, 4), (2.0 / 3.0, 3)]
            .iter()
            .enumerate()
        {
            assert_eq!(pc[c].class, c);
            close(pc[c].precision, *v, 1e-15);
            close(pc[c].recall, *v, 1e-15);
            close(pc[c].f1, *v, 1e-15);
            assert_eq!(pc[c].support, *s);
        }
        // f1_score(yc, pred, average='macro')
        close(e.macro_f1.unwrap(), 0.6944444444444443, 1e-12);
        assert!(e.roc_auc.is_none() && e.rmse.is_none());
    }

    #[test]
    fn per_class_by_hand() {
        // cm rows = true: [[1,1,0],[0,0,0],[2,0,1]]; class 1 never true but predicted once:
        // precision 0/1 = 0, recall 0/0 = 0, f1 0. Class 0: precision 1/3, recall 1/2,
        // f1 = 2*(1/3)(1/2)/(5/6) = 0.4. Class 2: precision 1/1, recall 1/3, f1 = 0.5.
        let cm = confusion_matrix(&[0, 0, 2, 2, 2], &[0, 1, 0, 0, 2], 4).unwrap();
        let pc = per_class(&cm);
        close(pc[0].f1, 0.4, 1e-15);
        assert_eq!(
            (pc[1].precision, pc[1].recall, pc[1].f1, pc[1].predicted),
            (0.0, 0.0, 0.0, 1)
        );
        close(pc[2].f1, 0.5, 1e-15);
        // Class 3 never occurs and is left out of the macro average: (0.4 + 0 + 0.5) / 3 = 0.3.
        close(macro_f1(&pc), 0.3, 1e-15);
        close(
            accuracy(&[0, 0, 2, 2, 2], &[0, 1, 0, 0, 2]).unwrap(),
            0.4,
            1e-15,
        );
    }

    #[test]
    fn regression_against_sklearn() {
        let y = [3.0, -0.5, 2.0, 7.0, 4.2, 1.1];
        let p = [2.5, 0.0, 2.0, 8.0, 3.9, 1.5];
        // Hand: errors .5 .5 0 1 .3 .4: MAE 2.7/6 = .45; MSE (.25+.25+0+1+.09+.16)/6 = 1.75/6.
        // sklearn: sqrt(mean_squared_error) 0.5400617248673217, r2_score 0.9486200822078684
        let e = evaluate(Objective::Regression, &y, &p.map(|v| vec![v])).unwrap();
        close(e.mae.unwrap(), 0.45, 1e-12);
        close(e.rmse.unwrap(), (1.75f64 / 6.0).sqrt(), 1e-12);
        close(e.rmse.unwrap(), 0.5400617248673217, 1e-12);
        close(e.r2.unwrap(), 0.9486200822078684, 1e-12);
        // Constant y: 1 when perfect, else 0 (sklearn's force_finite).
        assert_eq!(r2(&[2., 2.], &[2., 2.]).unwrap(), 1.0);
        assert_eq!(r2(&[2., 2.], &[2., 3.]).unwrap(), 0.0);
    }

    #[test]
    fn binary_evaluation_and_json() {
        let preds: Vec<Vec<f64>> = P.iter().map(|&p| vec![p]).collect();
        let e = evaluate(Objective::Binary { sigmoid: 1.0 }, &Y, &preds).unwrap();
        close(e.roc_auc.unwrap(), 0.8784722222222223, 1e-12);
        close(e.pr_auc.unwrap(), 0.866666502357292, 1e-12);
        close(e.log_loss.unwrap(), 0.44459796532134144, 1e-12);
        close(e.brier.unwrap(), 0.145, 1e-12);
        // At p >= 0.5: positives predicted positive: all 12 but 0.4 and 0.3 => tp 10, fn 2;
        // negatives with p >= 0.5: 0.6, 0.5, 0.7 => fp 3, tn 9. Accuracy 19/24.
        assert_eq!(
            e.confusion_matrix.as_ref().unwrap(),
            &vec![vec![9, 3], vec![2, 10]]
        );
        close(e.accuracy.unwrap(), 19.0 / 24.0, 1e-15);
        // Positive class: precision 10/13, recall 10/12, F1 = 2pr/(p+r) = 20/25.
        close(e.precision.unwrap(), 10.0 / 13.0, 1e-15);
        close(e.recall.unwrap(), 10.0 / 12.0, 1e-15);
        close(e.f1.unwrap(), 0.8, 1e-12);
        let cal = e.calibration.as_ref().unwrap();
        assert_eq!(cal.iter().map(|b| b.count).sum::<usize>(), 24);
        assert_eq!(e.roc_curve.as_ref().unwrap().len(), 11);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["task"], "binary");
        assert!(json.get("rmse").is_none() && json.get("per_class").is_none());
        assert!(json["roc_curve"][0]["threshold"].is_null());
        let back: Evaluation = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn errors_name_the_problem() {
        let b = Objective::Binary { sigmoid: 1.0 };
        assert!(err_msg(roc_auc(&[0., 1.], &[0.5], None)).contains("length mismatch"));
        assert!(err_msg(roc_auc(&[], &[], None)).contains("empty"));
        assert!(err_msg(roc_auc(&[0., 1.], &[0.5, f64::NAN], None)).contains("row 1 is NaN"));
        assert!(err_msg(roc_auc(&[1., 1.], &[0.5, 0.2], None)).contains("only one class"));
        assert!(err_msg(roc_auc(&[0., 0.], &[0.5, 0.2], None)).contains("only one class"));
        assert!(err_msg(pr_auc(&[0., 0.], &[0.5, 0.2], None)).contains("only one class"));
        assert!(err_msg(roc_auc(&[0., 2.], &[0.5, 0.2], None)).contains("label 2 at row 1"));
        assert!(err_msg(roc_auc(&[0., 1.], &[0.5, 0.2], Some(&[1.0]))).contains("weights"));
        assert!(err_msg(log_loss(&[0., 1.], &[0.5, 1.5])).contains("not a probability"));
        assert!(err_msg(evaluate(b, &[0., 1.], &[vec![0.2], vec![f64::NAN]])).contains("NaN"));
        assert!(
            err_msg(evaluate(b, &[0., 1.], &[vec![0.2, 0.8], vec![0.1]])).contains("expected 1")
        );
        let m = Objective::Multiclass { num_class: 3 };
        let rows = vec![vec![0.2, 0.3, 0.5]; 2];
        assert!(err_msg(evaluate(m, &[0., 3.], &rows)).contains("label 3 at row 1"));
        assert!(err_msg(evaluate(m, &[0., 1.5], &rows)).contains("label 1.5"));
        assert!(err_msg(evaluate(m, &[0.], &rows)).contains("length mismatch"));
        assert!(err_msg(confusion_matrix(&[0, 1], &[0, 5], 2)).contains("predicted label 5"));
        assert!(err_msg(rmse(&[1.0, f64::NAN], &[1.0, 2.0])).contains("label at row 1"));
        assert!(err_msg(rmse(&[1.0, 2.0], &[1.0, f64::NAN])).contains("NaN"));
    }
}
