//! Drift between a reference and a current data set, with the defaults of Evidently 0.7's
//! DataDriftPreset (checked against Evidently itself in `tests/parity/drift_parity.py`).
//!
//! * [`stattests`] holds the tests (ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div,
//!   hellinger) and Evidently's default choice; [`ks`] the Kolmogorov–Smirnov p-values as
//!   scipy computes them; [`special`] the distribution functions.
//! * [`column`] gathers one column's values from Arrow batches; [`read`] streams data sets
//!   (Parquet or CSV files, any DataFusion frame) a group of columns at a time, so memory holds
//!   a few columns, not the table; [`sets`] opens the data sets a run names (files, time
//!   ranges, a model's training sample, the prediction log) and runs the comparison the CLI
//!   and the Python package share.
//! * [`compare_column`] decides a column's kind as Evidently does (floats numeric; integers
//!   categorical with at most 10 distinct values; strings categorical, or text when more than
//!   half the values are distinct; booleans categorical; numeric lists embeddings), drops nulls,
//!   NaN and infinities, picks the test and reports the score, null shares and new / missing
//!   categories. [`drift`] runs it over every column, in parallel, and the data set drifts when
//!   the share of drifted columns reaches `drift_share` (0.5); with `by_week`, each embedding
//!   column's current vectors are averaged per ISO week of the set's time column and compared
//!   with the reference's mean vector ([`embedding::WeeklyMeans`]).

pub mod column;
pub mod declared;
pub mod embedding;
pub mod html;
pub mod ks;
pub mod read;
pub mod sets;
pub mod special;
pub mod stattests;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde_json::{Value, json};

use column::{ColumnData, ColumnValues};
pub use read::Dataset;
pub use stattests::{Key, Sample, StatTest, default_test};

/// A drift error: bad input (an empty set, an all-null column, a missing column, a test that
/// does not apply), or data that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something about the input, said in full.
    #[error("{0}")]
    Input(String),
    /// A column that cannot be compared.
    #[error("column '{column}': {message}")]
    Column { column: String, message: String },
    /// Reading the data failed.
    #[error("{0}")]
    Read(String),
}

/// `Result` with the drift [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a column holds, as far as drift goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Numeric,
    Categorical,
    Embedding,
}

impl Kind {
    /// The name in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Numeric => "numeric",
            Kind::Categorical => "categorical",
            Kind::Embedding => "embedding",
        }
    }
}

/// A feature's own test and threshold (`drift: {stattest: psi, threshold: 0.2}` in YAML).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureOverride {
    /// The test instead of the default choice.
    pub stattest: Option<StatTest>,
    /// The threshold instead of the test's default.
    pub threshold: Option<f64>,
}

/// Settings of a drift run.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    /// The data set drifts when at least this share of its columns drift (Evidently: 0.5).
    pub drift_share: f64,
    /// Per-feature tests and thresholds.
    pub overrides: BTreeMap<String, FeatureOverride>,
    /// The columns to compare (default: every column of both sets).
    pub features: Option<Vec<String>>,
    /// Columns read and compared together (memory holds this many columns of both sets).
    pub columns_per_pass: usize,
    /// Embedding drift settings.
    pub embedding: embedding::EmbeddingOptions,
    /// For each embedding column, the mean-embedding cosine similarity to the reference's for
    /// each ISO week of the current set (`--by week`; needs the current set's time column).
    pub by_week: bool,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            drift_share: 0.5,
            overrides: BTreeMap::new(),
            features: None,
            columns_per_pass: 8,
            embedding: embedding::EmbeddingOptions::default(),
            by_week: false,
        }
    }
}

/// Shares of each side per bin (numeric: 20 equal-width bins over both sets; categorical: the
/// 20 most frequent categories), for the report's plots.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// One feature's result.
#[derive(Debug, Clone)]
pub struct FeatureDrift {
    pub name: String,
    pub kind: Kind,
    /// The test or method name (Evidently's names; embeddings: `model`).
    pub stattest: String,
    /// The p-value for tests, the distance otherwise (embeddings: the domain classifier's
    /// ROC AUC).
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// Values compared (nulls, NaN and infinities removed).
    pub reference_rows: usize,
    pub current_rows: usize,
    pub reference_null_share: f64,
    pub current_null_share: f64,
    /// Categories seen only in the current set / only in the reference set.
    pub new_categories: Vec<String>,
    pub missing_categories: Vec<String>,
    pub histogram: Histogram,
    /// Embedding drift details (cosine distance of the means, MMD, per-period similarity).
    pub embedding: Option<embedding::EmbeddingDrift>,
}

/// A column left out, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// The result of a drift run.
#[derive(Debug, Clone)]
pub struct DriftReport {
    pub dataset_drift: bool,
    pub share_drifted: f64,
    pub drift_share: f64,
    pub reference_rows: usize,
    pub current_rows: usize,
    pub features: Vec<FeatureDrift>,
    pub skipped: Vec<Skipped>,
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

impl FeatureDrift {
    /// The feature's JSON object (the contract scripts rely on, plus details).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "kind": self.kind.name(),
            "stattest": self.stattest,
            "score": num(self.score),
            "threshold": num(self.threshold),
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_null_share": num(self.reference_null_share),
            "current_null_share": num(self.current_null_share),
        });
        if self.kind == Kind::Categorical {
            v["new_categories"] = json!(self.new_categories);
            v["missing_categories"] = json!(self.missing_categories);
        }
        if let Some(e) = &self.embedding {
            v["embedding"] = e.to_json();
            if !e.by_week.is_empty() {
                v["by_week"] = e
                    .by_week
                    .iter()
                    .map(embedding::WeekSimilarity::to_json)
                    .collect();
            }
        }
        v
    }
}

impl DriftReport {
    /// `{"dataset_drift", "share_drifted", "features": [...]}` plus the skipped columns.
    pub fn to_json(&self) -> Value {
        json!({
            "dataset_drift": self.dataset_drift,
            "share_drifted": num(self.share_drifted),
            "drift_share": num(self.drift_share),
            "number_of_columns": self.features.len(),
            "number_of_drifted_columns": self.features.iter().filter(|f| f.drifted).count(),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "features": self.features.iter().map(FeatureDrift::to_json).collect::<Vec<_>>(),
            "skipped": self.skipped.iter().map(|s| json!({"name": s.name, "reason": s.reason})).collect::<Vec<_>>(),
        })
    }

    /// The summary of features' results.
    pub fn new(
        features: Vec<FeatureDrift>,
        skipped: Vec<Skipped>,
        drift_share: f64,
        reference_rows: usize,
        current_rows: usize,
    ) -> DriftReport {
        let drifted = features.iter().filter(|f| f.drifted).count();
        let share = if features.is_empty() {
            0.0
        } else {
            drifted as f64 / features.len() as f64
        };
        DriftReport {
            dataset_drift: !features.is_empty() && share >= drift_share,
            share_drifted: share,
            drift_share,
            reference_rows,
            current_rows,
            features,
            skipped,
        }
    }
}

/// A boolean column facing numbers, as 0/1 numbers: the prediction log and a model's drift
/// reference keep a boolean input as the model saw it (0 or 1), so `model:` or `log:` against a
/// file or `service:` compares them so.
fn bools_as_numbers(c: ColumnValues, other: &ColumnData) -> ColumnValues {
    let ColumnData::Bools([f, t]) = c.data else {
        return c;
    };
    if !matches!(other, ColumnData::Numeric { .. }) {
        return c;
    }
    let mut values = vec![0.0; f as usize];
    values.resize((f + t) as usize, 1.0);
    ColumnValues {
        data: ColumnData::Numeric {
            values,
            integer: true,
        },
        ..c
    }
}

fn type_name(d: &ColumnData) -> &'static str {
    match d {
        ColumnData::Numeric { .. } => "numeric",
        ColumnData::Strings(_) => "string",
        ColumnData::Bools(_) => "boolean",
        ColumnData::Vectors { .. } => "vector",
        ColumnData::Unsupported(_) => "unsupported",
    }
}

/// Compares one column of the two sets. `Ok(Err(skipped))` for a column drift is not computed
/// for (text, dates); `Err` for one that cannot be compared (no values on a side, a test that
/// does not apply, different types).
pub fn compare_column(
    name: &str,
    reference: ColumnValues,
    current: ColumnValues,
    ov: Option<&FeatureOverride>,
    options: &DriftOptions,
) -> Result<std::result::Result<FeatureDrift, Skipped>> {
    let col_err = |message: String| Error::Column {
        column: name.to_string(),
        message,
    };
    let skip = |reason: String| {
        Ok(Err(Skipped {
            name: name.to_string(),
            reason,
        }))
    };
    if let ColumnData::Unsupported(t) = &current.data {
        return skip(format!("type {t} (dates and times are not compared)"));
    }
    let reference = bools_as_numbers(reference, &current.data);
    let current = bools_as_numbers(current, &reference.data);
    let same_type =
        std::mem::discriminant(&reference.data) == std::mem::discriminant(&current.data);
    if !same_type {
        return Err(col_err(format!(
            "{} in the reference set but {} in the current set",
            type_name(&reference.data),
            type_name(&current.data)
        )));
    }
    // The kind, from the current set, as Evidently infers it.
    let kind = match &current.data {
        ColumnData::Numeric { integer: false, .. } => Kind::Numeric,
        ColumnData::Numeric { integer: true, .. } => {
            if current.n_unique() <= 10 {
                Kind::Categorical
            } else {
                Kind::Numeric
            }
        }
        ColumnData::Strings(c) => {
            if c.len() as f64 > current.count() as f64 * 0.5 {
                return skip(format!(
                    "text: {} distinct values in {} (more than half are distinct; Evidently compares such columns as text)",
                    c.len(),
                    current.count()
                ));
            }
            Kind::Categorical
        }
        ColumnData::Bools(_) => Kind::Categorical,
        ColumnData::Vectors { .. } => Kind::Embedding,
        ColumnData::Unsupported(_) => unreachable!(),
    };
    for (side, v) in [("reference", &reference), ("current", &current)] {
        if v.rows == 0 {
            return Err(Error::Input(format!("the {side} set has no rows")));
        }
        if v.count() == 0 {
            return Err(col_err(format!(
                "no values in the {side} set ({} rows, all null, NaN or infinite); leave it out with --features",
                v.rows
            )));
        }
    }
    let (ref_null, cur_null) = (reference.null_share(), current.null_share());
    let (ref_rows, cur_rows) = (reference.count(), current.count());
    if kind == Kind::Embedding {
        let e =
            embedding::compare(name, reference, current, &options.embedding).map_err(col_err)?;
        let mut f = e;
        f.reference_null_share = ref_null;
        f.current_null_share = cur_null;
        return Ok(Ok(f));
    }
    let numeric = kind == Kind::Numeric;
    let r = reference.into_sample(!numeric);
    let c = current.into_sample(!numeric);
    let n_unique = stattests::n_unique_union(&r, &c);
    let test = match ov.and_then(|o| o.stattest) {
        Some(t) => {
            if !t.allows(numeric) {
                return Err(col_err(format!(
                    "the {} test does not apply to {} columns",
                    t.name(),
                    kind.name()
                )));
            }
            t
        }
        None => default_test(numeric, r.len(), n_unique),
    };
    let threshold = ov
        .and_then(|o| o.threshold)
        .unwrap_or_else(|| test.default_threshold());
    let score = test.score(&r, &c, numeric);
    let (new_categories, missing_categories) = if numeric {
        (Vec::new(), Vec::new())
    } else {
        let mut new = Vec::new();
        let mut missing = Vec::new();
        for (k, a, b) in stattests::union_counts(&r, &c) {
            if a == 0 {
                new.push(k.to_string());
            } else if b == 0 {
                missing.push(k.to_string());
            }
        }
        (new, missing)
    };
    Ok(Ok(FeatureDrift {
        name: name.to_string(),
        kind,
        stattest: test.name().to_string(),
        score,
        threshold,
        drifted: test.drifted(score, threshold),
        reference_rows: ref_rows,
        current_rows: cur_rows,
        reference_null_share: ref_null,
        current_null_share: cur_null,
        new_categories,
        missing_categories,
        histogram: histogram(&r, &c, numeric),
        embedding: None,
    }))
}

fn histogram(r: &Sample, c: &Sample, numeric: bool) -> Histogram {
    match (numeric, r, c) {
        (true, Sample::Numeric { values: a, .. }, Sample::Numeric { values: b, .. }) => {
            let lo = a[0].min(b[0]);
            let hi = a[a.len() - 1].max(b[b.len() - 1]);
            let bins = 20usize;
            let width = if hi > lo {
                (hi - lo) / bins as f64
            } else {
                1.0
            };
            let shares = |v: &[f64]| -> Vec<f64> {
                let mut h = vec![0.0; bins];
                for x in v {
                    let i = (((x - lo) / width) as usize).min(bins - 1);
                    h[i] += 1.0;
                }
                h.iter().map(|n| n / v.len() as f64).collect()
            };
            Histogram {
                labels: (0..bins)
                    .map(|i| format!("{:.4}", lo + width * i as f64))
                    .collect(),
                reference: shares(a),
                current: shares(b),
            }
        }
        _ => {
            let (nr, nc) = (r.len() as f64, c.len() as f64);
            let mut u = stattests::union_counts(r, c);
            u.sort_by_key(|x| std::cmp::Reverse(x.1 + x.2));
            u.truncate(20);
            Histogram {
                labels: u.iter().map(|x| x.0.to_string()).collect(),
                reference: u.iter().map(|x| x.1 as f64 / nr).collect(),
                current: u.iter().map(|x| x.2 as f64 / nc).collect(),
            }
        }
    }
}

/// Drift of every column (or `options.features`) of `current` against `reference`, reading
/// `options.columns_per_pass` columns at a time and comparing them in parallel.
pub async fn drift(
    reference: &Dataset,
    current: &Dataset,
    options: &DriftOptions,
) -> Result<DriftReport> {
    let ref_cols = reference.columns();
    let cur_cols = current.columns();
    let mut skipped: Vec<Skipped> = Vec::new();
    for (name, reason) in reference.left_out().iter().chain(current.left_out()) {
        if !skipped.iter().any(|s| &s.name == name) {
            skipped.push(Skipped {
                name: name.clone(),
                reason: reason.clone(),
            });
        }
    }
    let columns: Vec<String> = match &options.features {
        Some(list) => {
            for f in list {
                for (side, cols, set) in [
                    ("reference", &ref_cols, reference),
                    ("current", &cur_cols, current),
                ] {
                    if !cols.contains(f) {
                        return Err(Error::Input(format!(
                            "no column '{f}' in the {side} set {} (its columns: {})",
                            set.label(),
                            cols.join(", ")
                        )));
                    }
                }
            }
            list.clone()
        }
        None => {
            for c in &cur_cols {
                if !ref_cols.contains(c) {
                    skipped.push(Skipped {
                        name: c.clone(),
                        reason: "only in the current set".into(),
                    });
                }
            }
            for c in &ref_cols {
                if !cur_cols.contains(c) {
                    skipped.push(Skipped {
                        name: c.clone(),
                        reason: "only in the reference set".into(),
                    });
                }
            }
            cur_cols
                .iter()
                .filter(|c| ref_cols.contains(c))
                .cloned()
                .collect()
        }
    };
    for name in options.overrides.keys() {
        if !columns.contains(name) {
            return Err(Error::Input(format!(
                "a drift setting names column '{name}', which is not compared (columns: {})",
                columns.join(", ")
            )));
        }
    }
    let reference_rows = reference.rows().await?;
    let current_rows = current.rows().await?;
    if reference_rows == 0 {
        return Err(Error::Input(format!(
            "the reference set {} has no rows",
            reference.label()
        )));
    }
    if current_rows == 0 {
        return Err(Error::Input(format!(
            "the current set {} has no rows",
            current.label()
        )));
    }
    let mut features = Vec::new();
    let per_pass = if reference.columnar() && current.columnar() {
        options.columns_per_pass.max(1)
    } else {
        columns.len().max(1)
    };
    for group in columns.chunks(per_pass) {
        let r = reference.read(group).await?;
        let c = current.read(group).await?;
        let results: Vec<_> = group
            .par_iter()
            .zip(r.into_par_iter().zip(c.into_par_iter()))
            .map(|(name, (r, c))| compare_column(name, r, c, options.overrides.get(name), options))
            .collect();
        for res in results {
            match res? {
                Ok(f) => features.push(f),
                Err(s) => skipped.push(s),
            }
        }
    }
    if options.by_week {
        weekly(current, &mut features).await?;
    }
    Ok(DriftReport::new(
        features,
        skipped,
        options.drift_share,
        reference_rows,
        current_rows,
    ))
}

/// The per-week similarity of each embedding feature (`--by week`).
async fn weekly(current: &Dataset, features: &mut [FeatureDrift]) -> Result<()> {
    if features.iter().all(|f| f.embedding.is_none()) {
        return Ok(());
    }
    let time = current.time_column().ok_or_else(|| {
        Error::Input(format!(
            "--by week needs the time of each row of the current set {}: give FILE@START..END, log:..., service:... or a file with an event_timestamp column",
            current.label()
        ))
    })?;
    for f in features.iter_mut() {
        let Some(e) = f.embedding.as_mut() else {
            continue;
        };
        e.by_week = current.weekly(&f.name, &time, &e.reference_mean).await?;
    }
    Ok(())
}

#[cfg(test)]
mod bool_tests {
    use super::*;

    fn column(data: ColumnData, rows: usize) -> ColumnValues {
        ColumnValues {
            rows,
            nulls: 0,
            infinite: 0,
            data,
        }
    }

    #[test]
    fn a_boolean_column_against_numbers_is_compared_as_zeros_and_ones() {
        // The model's reference keeps a boolean input as 0/1; the service's set as booleans.
        let reference = column(
            ColumnData::Numeric {
                values: [0.0, 1.0].repeat(50),
                integer: false,
            },
            100,
        );
        let current = column(ColumnData::Bools([90, 10]), 100);
        let f = compare_column(
            "is_premium",
            reference,
            current,
            None,
            &DriftOptions::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.kind, Kind::Categorical);
        assert!(f.drifted, "50% true against 10% true: {f:?}");
        // Strings against numbers stay an error naming both types.
        let e = compare_column(
            "is_premium",
            column(
                ColumnData::Numeric {
                    values: vec![0.0, 1.0],
                    integer: false,
                },
                2,
            ),
            column(ColumnData::Strings(Default::default()), 0),
            None,
            &DriftOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("numeric in the reference set but string"), "{e}");
    }
}
