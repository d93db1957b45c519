//! Embedding drift: Evidently's default method (a domain classifier told to separate reference
//! from current vectors; drift when its ROC AUC on held-out rows exceeds 0.55), beside the
//! cosine distance between the mean embeddings and the (unbiased) squared maximum mean
//! discrepancy with an RBF kernel whose width is the median pairwise distance.
//!
//! The classifier is a logistic regression (log loss, L2 penalty 1e-4 as scikit-learn's
//! `SGDClassifier(loss="log_loss")` that Evidently's `model()` method uses) fitted on half the
//! rows (shuffled with a fixed seed) by full-batch gradient descent and scored on the other
//! half; the AUC differs from scikit-learn's by the optimizer's details, not by the method.

use serde_json::{Value, json};

use super::column::{ColumnData, ColumnValues};
use super::{FeatureDrift, Histogram, Kind};

/// Settings of embedding drift.
#[derive(Debug, Clone)]
pub struct EmbeddingOptions {
    /// Drift when the domain classifier's ROC AUC exceeds this (Evidently: 0.55).
    pub auc_threshold: f64,
    /// Rows of each side used at most (a seeded sample beyond).
    pub max_rows: usize,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        EmbeddingOptions {
            auc_threshold: 0.55,
            max_rows: 5000,
        }
    }
}

/// Embedding drift details.
#[derive(Debug, Clone)]
pub struct EmbeddingDrift {
    pub dim: usize,
    pub roc_auc: f64,
    pub cosine_distance: f64,
    pub mmd2: f64,
    /// The mean of every reference vector (the reference of the per-week similarity).
    pub reference_mean: Vec<f64>,
    /// Per ISO week of the current set (`--by week`), in time order; empty when not asked.
    pub by_week: Vec<WeekSimilarity>,
}

impl EmbeddingDrift {
    /// The JSON object.
    pub fn to_json(&self) -> Value {
        json!({"dim": self.dim, "roc_auc": self.roc_auc, "cosine_distance": self.cosine_distance, "mmd2": self.mmd2})
    }
}

/// The current set's mean embedding of one ISO week against the reference's mean embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct WeekSimilarity {
    /// `2025-W14` (ISO 8601 week-based year and week, UTC).
    pub week: String,
    /// Vectors of the week (nulls left out).
    pub rows: usize,
    /// Cosine similarity of the week's mean vector to the reference's (NaN when either mean
    /// is the zero vector).
    pub cosine_similarity: f64,
}

impl WeekSimilarity {
    /// `{"week", "rows", "cosine_similarity"}` (a NaN similarity as null).
    pub fn to_json(&self) -> Value {
        json!({
            "week": self.week,
            "rows": self.rows,
            "cosine_similarity": serde_json::Number::from_f64(self.cosine_similarity)
                .map_or(Value::Null, Value::Number),
        })
    }
}

/// cos(a, b); NaN when either is the zero vector.
pub fn cosine_similarity(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return f64::NAN;
    }
    dot / (na * nb)
}

/// Sums of a vector column's values per ISO week of a time column, batch by batch.
#[derive(Debug, Default)]
pub struct WeeklyMeans {
    weeks: std::collections::BTreeMap<(i32, u32), (usize, Vec<f64>)>,
}

impl WeeklyMeans {
    /// Adds one batch: `vectors` (a list of numbers) and `times` (a timestamp) of the same rows.
    /// Rows with a null vector or time are left out.
    pub fn push(
        &mut self,
        vectors: &datafusion::arrow::array::ArrayRef,
        times: &datafusion::arrow::array::ArrayRef,
    ) -> Result<(), String> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
        let list = cast(vectors, &DataType::new_list(DataType::Float64, true))
            .map_err(|e| e.to_string())?;
        let list = list.as_list::<i32>();
        let times = cast(times, &DataType::Timestamp(TimeUnit::Microsecond, None))
            .and_then(|t| cast(&t, &DataType::Int64))
            .map_err(|e| format!("the time column: {e}"))?;
        let times = times.as_primitive::<Int64Type>();
        for i in 0..list.len() {
            if list.is_null(i) || times.is_null(i) {
                continue;
            }
            let Some(at) = chrono::DateTime::from_timestamp_micros(times.value(i)) else {
                continue;
            };
            let week = chrono::Datelike::iso_week(&at);
            let item = list.value(i);
            let item = item.as_primitive::<Float64Type>();
            let (n, sum) = self
                .weeks
                .entry((week.year(), week.week()))
                .or_insert_with(|| (0, vec![0.0; item.len()]));
            if sum.len() != item.len() {
                return Err(format!(
                    "vectors of different lengths ({} and {})",
                    sum.len(),
                    item.len()
                ));
            }
            *n += 1;
            for (s, v) in sum.iter_mut().zip(item.iter()) {
                *s += v.unwrap_or(f64::NAN);
            }
        }
        Ok(())
    }

    /// Each week's mean against `reference_mean`, in time order.
    pub fn finish(self, reference_mean: &[f64]) -> Vec<WeekSimilarity> {
        self.weeks
            .into_iter()
            .map(|((year, week), (n, sum))| {
                let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
                WeekSimilarity {
                    week: format!("{year}-W{week:02}"),
                    rows: n,
                    cosine_similarity: cosine_similarity(&mean, reference_mean),
                }
            })
            .collect()
    }
}

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

fn rows(values: &[f32], dim: usize) -> Vec<&[f32]> {
    values.chunks_exact(dim).collect()
}

fn sample<'a>(v: Vec<&'a [f32]>, max: usize, rng: &mut Rng) -> Vec<&'a [f32]> {
    if v.len() <= max {
        return v;
    }
    let mut idx: Vec<usize> = (0..v.len()).collect();
    rng.shuffle(&mut idx);
    idx.truncate(max);
    idx.sort_unstable();
    idx.into_iter().map(|i| v[i]).collect()
}

fn mean(v: &[&[f32]], dim: usize) -> Vec<f64> {
    let mut m = vec![0.0; dim];
    for r in v {
        for (a, b) in m.iter_mut().zip(r.iter()) {
            *a += f64::from(*b);
        }
    }
    m.iter().map(|x| x / v.len() as f64).collect()
}

/// 1 - cos(a, b).
pub fn cosine_distance(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    1.0 - dot / (na * nb)
}

fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

/// Unbiased MMD² with an RBF kernel, width from the median reference-current distance.
pub fn mmd2(x: &[&[f32]], y: &[&[f32]]) -> f64 {
    let mut d: Vec<f64> = Vec::new();
    for a in x.iter().take(300) {
        for b in y.iter().take(300) {
            d.push(dist2(a, b).sqrt());
        }
    }
    d.sort_unstable_by(f64::total_cmp);
    let med = if d.is_empty() {
        1.0
    } else if d.len() % 2 == 1 {
        d[d.len() / 2]
    } else {
        (d[d.len() / 2 - 1] + d[d.len() / 2]) / 2.0
    };
    let gamma = if med > 0.0 { 1.0 / (med * med) } else { 1.0 };
    let k = |a: &[f32], b: &[f32]| (-gamma * dist2(a, b)).exp();
    let (m, n) = (x.len() as f64, y.len() as f64);
    if m < 2.0 || n < 2.0 {
        return 0.0;
    }
    let within = |v: &[&[f32]]| -> f64 {
        let mut s = 0.0;
        for i in 0..v.len() {
            for j in (i + 1)..v.len() {
                s += 2.0 * k(v[i], v[j]);
            }
        }
        s
    };
    let mut cross = 0.0;
    for a in x {
        for b in y {
            cross += k(a, b);
        }
    }
    within(x) / (m * (m - 1.0)) + within(y) / (n * (n - 1.0)) - 2.0 * cross / (m * n)
}

/// ROC AUC of scores against 0/1 labels (ties share their rank).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Domain classifier AUC: logistic regression (standardized inputs, gradient descent)
/// trained on a shuffled half, scored on the other half.
pub fn domain_classifier_auc(x: &[&[f32]], y: &[&[f32]], dim: usize, rng: &mut Rng) -> f64 {
    let mut data: Vec<(&[f32], bool)> = x
        .iter()
        .map(|r| (*r, true))
        .chain(y.iter().map(|r| (*r, false)))
        .collect();
    rng.shuffle(&mut data);
    let half = data.len() / 2;
    let (train, test) = data.split_at(half);
    if train.is_empty() || test.is_empty() {
        return 0.5;
    }
    // Standardize with the training half's mean and deviation.
    let mut mu = vec![0.0f64; dim];
    let mut sd = vec![0.0f64; dim];
    for (r, _) in train {
        for (m, v) in mu.iter_mut().zip(r.iter()) {
            *m += f64::from(*v);
        }
    }
    mu.iter_mut().for_each(|m| *m /= train.len() as f64);
    for (r, _) in train {
        for ((s, m), v) in sd.iter_mut().zip(&mu).zip(r.iter()) {
            *s += (f64::from(*v) - m).powi(2);
        }
    }
    sd.iter_mut()
        .for_each(|s| *s = (*s / train.len() as f64).sqrt().max(1e-12));
    let z = |r: &[f32], i: usize| (f64::from(r[i]) - mu[i]) / sd[i];
    let zs: Vec<Vec<f64>> = train
        .iter()
        .map(|(r, _)| (0..dim).map(|k| z(r, k)).collect())
        .collect();
    let targets: Vec<f64> = train.iter().map(|(_, l)| f64::from(u8::from(*l))).collect();
    // Full-batch gradient descent on the L2-regularized log loss (convex; standardized inputs
    // make a fixed step converge).
    let mut w = vec![0.0f64; dim];
    let mut b = 0.0f64;
    let (alpha, step) = (1e-4, 0.5);
    let n = zs.len() as f64;
    for _ in 0..150 {
        let mut gw = vec![0.0f64; dim];
        let mut gb = 0.0;
        for (x, t) in zs.iter().zip(&targets) {
            let s: f64 = b + x.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
            let g = 1.0 / (1.0 + (-s).exp()) - t;
            for (acc, a) in gw.iter_mut().zip(x) {
                *acc += g * a;
            }
            gb += g;
        }
        for (wk, g) in w.iter_mut().zip(&gw) {
            *wk -= step * (g / n + alpha * *wk);
        }
        b -= step * gb / n;
    }
    let scores: Vec<f64> = test
        .iter()
        .map(|(r, _)| b + (0..dim).map(|k| w[k] * z(r, k)).sum::<f64>())
        .collect();
    let labels: Vec<bool> = test.iter().map(|(_, l)| *l).collect();
    roc_auc(&scores, &labels)
}

/// Embedding drift of one vector column.
pub fn compare(
    name: &str,
    reference: ColumnValues,
    current: ColumnValues,
    options: &EmbeddingOptions,
) -> Result<FeatureDrift, String> {
    let (ref_rows, cur_rows) = (reference.count(), current.count());
    let (
        ColumnData::Vectors {
            dim: d1,
            values: v1,
        },
        ColumnData::Vectors {
            dim: d2,
            values: v2,
        },
    ) = (reference.data, current.data)
    else {
        return Err("not a vector column on both sides".into());
    };
    if d1 != d2 {
        return Err(format!(
            "vectors of {d1} numbers in the reference set but {d2} in the current set"
        ));
    }
    if d1 == 0 {
        return Err("vectors of length 0".into());
    }
    let dim = d1;
    let reference_mean = mean(&rows(&v1, dim), dim);
    let mut rng = Rng::new(42);
    let x = sample(rows(&v1, dim), options.max_rows, &mut rng);
    let y = sample(rows(&v2, dim), options.max_rows, &mut rng);
    let cosine = cosine_distance(&mean(&x, dim), &mean(&y, dim));
    let auc = domain_classifier_auc(&x, &y, dim, &mut rng);
    let xs: Vec<&[f32]> = x.iter().take(1000).copied().collect();
    let ys: Vec<&[f32]> = y.iter().take(1000).copied().collect();
    let mmd = mmd2(&xs, &ys).max(0.0);
    Ok(FeatureDrift {
        name: name.to_string(),
        kind: Kind::Embedding,
        stattest: "model".into(),
        score: auc,
        threshold: options.auc_threshold,
        drifted: auc > options.auc_threshold,
        reference_rows: ref_rows,
        current_rows: cur_rows,
        reference_null_share: 0.0,
        current_null_share: 0.0,
        new_categories: Vec::new(),
        missing_categories: Vec::new(),
        histogram: Histogram::default(),
        embedding: Some(EmbeddingDrift {
            dim,
            roc_auc: auc,
            cosine_distance: cosine,
            mmd2: mmd,
            reference_mean,
            by_week: Vec::new(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_means_follow_iso_weeks_and_find_the_shifted_week() {
        use datafusion::arrow::array::TimestampMicrosecondArray;
        use datafusion::arrow::array::{ArrayRef, Float32Builder, ListBuilder};
        use std::sync::Arc;
        // 2025-03-31 is the Monday of 2025-W14; a row every 6 hours for three weeks. The
        // vectors lie near (1, 0, 0) until the third week, which moves to (0, 1, 0).
        let monday = 1_743_379_200_000_000i64;
        let step = 6 * 3_600_000_000i64;
        let mut rng = Rng::new(3);
        let mut noise = || (rng.next_u64() % 1000) as f32 / 10_000.0;
        let mut vectors = ListBuilder::new(Float32Builder::new());
        let mut times = Vec::new();
        for i in 0..84i64 {
            let t = monday + i * step;
            let third = t >= monday + 14 * 86_400_000_000;
            let v = if third {
                [noise(), 1.0, noise()]
            } else {
                [1.0, noise(), noise()]
            };
            if i == 5 {
                vectors.append(false); // a null vector is left out
            } else {
                vectors.values().append_slice(&v);
                vectors.append(true);
            }
            times.push(t);
        }
        let vectors: ArrayRef = Arc::new(vectors.finish());
        let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC"));
        let mut weeks = WeeklyMeans::default();
        weeks
            .push(&vectors.slice(0, 40), &times.slice(0, 40))
            .unwrap();
        weeks
            .push(&vectors.slice(40, 44), &times.slice(40, 44))
            .unwrap();
        let w = weeks.finish(&[1.0, 0.0, 0.0]);
        let names: Vec<&str> = w.iter().map(|x| x.week.as_str()).collect();
        assert_eq!(names, ["2025-W14", "2025-W15", "2025-W16"]);
        assert_eq!(w.iter().map(|x| x.rows).collect::<Vec<_>>(), [27, 28, 28]);
        assert!(
            w[0].cosine_similarity > 0.99 && w[1].cosine_similarity > 0.99,
            "{w:?}"
        );
        assert!(w[2].cosine_similarity < 0.2, "{w:?}");
        assert!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]).is_nan());
    }

    #[test]
    fn roc_auc_counts_ordered_pairs() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert_eq!(roc_auc(&[1.0, 1.0], &[true, false]), 0.5);
    }

    #[test]
    fn shifted_embeddings_drift_and_equal_ones_do_not() {
        let mut rng = Rng::new(7);
        let mut gauss = || {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            ((-2.0 * u.max(1e-300).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        };
        let a: Vec<f32> = (0..800 * 8).map(|_| gauss()).collect();
        let b: Vec<f32> = (0..800 * 8).map(|_| gauss()).collect();
        let c: Vec<f32> = (0..800 * 8)
            .map(|i| gauss() + if i % 8 == 0 { 1.0 } else { 0.0 })
            .collect();
        let (ra, rb, rc) = (rows(&a, 8), rows(&b, 8), rows(&c, 8));
        let same = domain_classifier_auc(&ra, &rb, 8, &mut Rng::new(42));
        let shifted = domain_classifier_auc(&ra, &rc, 8, &mut Rng::new(42));
        assert!(same < 0.55, "{same}");
        assert!(shifted > 0.7, "{shifted}");
        assert!(mmd2(&ra[..300], &rc[..300]) > mmd2(&ra[..300], &rb[..300]));
        assert!(
            cosine_distance(&mean(&ra, 8), &mean(&rc, 8))
                > cosine_distance(&mean(&ra, 8), &mean(&rb, 8))
        );
    }
}
