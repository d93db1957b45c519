//! `quiver train`: a point-in-time training set from a feature service and a label table, a
//! time-based (or stratified random) train / validation / test split, a GBDT or logistic model,
//! its evaluation on the test split, and a new version in the model registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use quiver_core::FeatureRef;
use quiver_core::registry::ObjectKind;
use quiver_ml::gbdt::{GbdtParams, train as train_gbdt};
use quiver_ml::linear::{LinearParams, train_linear};
use quiver_ml::metrics::{Evaluation, evaluate};
use quiver_ml::{Dataset, Encoding, Input, Model, ModelArtifact, Objective};
use quiver_offline::engine::Progress;
use quiver_offline::types::is_vector;
use quiver_offline::{HistoricalOptions, OfflineEngine};
use quiver_registry::NewModelVersion;
use serde_json::json;

use crate::output::{Output, plural, thousands};
use crate::registry_cmd::{open_store, stored};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Task {
    Binary,
    Multiclass,
    Regression,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// Histogram gradient-boosted trees (native missing values and categories).
    Gbdt,
    /// Logistic regression (linear regression for --task regression), standardized inputs;
    /// text features are frequency-encoded (as with --frequency-encode), since a linear model
    /// takes numbers, not category codes.
    Logistic,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// Oldest 70% train, next 15% validation, newest 15% test (by label time).
    Time,
    /// Stratified random 70/15/15 (seeded).
    Random,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The feature service whose features the model reads.
    #[arg(long)]
    pub service: String,
    /// The label table (Parquet or CSV): join keys, a timestamp column and the label.
    #[arg(long)]
    pub labels: PathBuf,
    /// The label column.
    #[arg(long)]
    pub label: String,
    /// The label table's timestamp column.
    #[arg(long, default_value = "event_timestamp")]
    pub timestamp_column: String,
    /// What to predict (default: binary for a boolean or 0/1 label, multiclass for text,
    /// regression for other numbers).
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// The learner.
    #[arg(long, value_enum, default_value = "gbdt")]
    pub model: Algorithm,
    /// Learner parameters, LightGBM names for gbdt (num_trees=300,num_leaves=63,
    /// learning_rate=0.05,early_stopping_rounds=20,class_weight=balanced,seed=7), l2/C,
    /// max_iter for logistic.
    #[arg(long, value_delimiter = ',')]
    pub params: Vec<String>,
    /// How rows are split into train / validation / test.
    #[arg(long, value_enum, default_value = "time")]
    pub split: Split,
    /// The model's name in the registry (default: the service's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Point this alias (e.g. champion) at the new version.
    #[arg(long)]
    pub promote: Option<String>,
    /// Train even when some label rows name entities that no feature view knows (their
    /// features are all missing); by default such rows are an error.
    #[arg(long)]
    pub allow_unknown_entities: bool,
    /// Encode these features (`view:feature` or just `feature`, comma-separated) by their
    /// frequency in the training split instead of category codes: each value becomes the share
    /// of training rows holding it (unseen values 0). For high-cardinality ids (sellers,
    /// merchants); text or integer features. The table is stored in the model, so `/predict`
    /// and `models predict` encode exactly as training did. `--model logistic` encodes every
    /// text feature this way.
    #[arg(long, value_delimiter = ',', value_name = "FEATURES")]
    pub frequency_encode: Vec<String>,
}

pub struct Quiet;
impl Progress for Quiet {
    fn rows_read(&self, _view: &str, _rows: usize) {}
}

/// A label column turned into numbers, with the task it implies.
struct Labels {
    y: Vec<f64>,
    objective: Objective,
    classes: Vec<String>,
}

fn labels(batch: &RecordBatch, column: &str, task: Option<Task>) -> anyhow::Result<Labels> {
    let Some(col) = batch.column_by_name(column) else {
        bail!(
            "--label {column}: the label table has no column '{column}' (it has: {})",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if let Some(row) = (0..col.len()).find(|&i| col.is_null(i)) {
        bail!(
            "label column '{column}' is null at row {}: drop or fill such rows",
            row + 1
        );
    }
    let dt = col.data_type().clone();
    let text = is_text(&dt);
    let numeric = dt.is_numeric() || dt == DataType::Boolean;
    if !text && !numeric {
        bail!("label column '{column}' has type {dt}: use a boolean, number or text label");
    }
    if text {
        let s = cast(col, &DataType::Utf8)?;
        let s = s.as_string::<i32>();
        let mut classes: Vec<String> = s.iter().map(|v| v.unwrap_or("").to_string()).collect();
        classes.sort();
        classes.dedup();
        let task = task.unwrap_or(if classes.len() == 2 {
            Task::Binary
        } else {
            Task::Multiclass
        });
        if task == Task::Regression {
            bail!("label column '{column}' is text: --task regression needs a numeric label");
        }
        let y = s
            .iter()
            .map(|v| {
                classes
                    .binary_search(&v.unwrap_or("").to_string())
                    .expect("known") as f64
            })
            .collect();
        let objective = match task {
            Task::Binary if classes.len() == 2 => Objective::Binary { sigmoid: 1.0 },
            Task::Binary => bail!(
                "label column '{column}' has {} classes ({}): --task binary needs exactly 2",
                classes.len(),
                classes
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => Objective::Multiclass {
                num_class: classes.len(),
            },
        };
        return Ok(Labels {
            y,
            objective,
            classes,
        });
    }
    let f = cast(col, &DataType::Float64)?;
    let y: Vec<f64> = f.as_primitive::<Float64Type>().values().to_vec();
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        bail!(
            "label column '{column}' is {} at row {}: labels must be finite",
            y[i],
            i + 1
        );
    }
    let integral = y.iter().all(|v| v.fract() == 0.0 && *v >= 0.0);
    let binary01 = y.iter().all(|v| *v == 0.0 || *v == 1.0);
    let task = task.unwrap_or(if dt == DataType::Boolean || binary01 {
        Task::Binary
    } else if dt.is_integer() && integral && y.iter().cloned().fold(0.0, f64::max) < 100.0 {
        Task::Multiclass
    } else {
        Task::Regression
    });
    let objective = match task {
        Task::Binary => {
            if !binary01 {
                let bad = y
                    .iter()
                    .position(|v| *v != 0.0 && *v != 1.0)
                    .expect("exists");
                bail!(
                    "label column '{column}' has {} at row {}: --task binary needs 0/1 or true/false",
                    y[bad],
                    bad + 1
                );
            }
            Objective::Binary { sigmoid: 1.0 }
        }
        Task::Multiclass => {
            if !integral {
                bail!(
                    "label column '{column}' is not a non-negative integer: --task multiclass needs class codes 0..k-1 or text classes"
                );
            }
            Objective::Multiclass {
                num_class: y.iter().cloned().fold(0.0, f64::max) as usize + 1,
            }
        }
        Task::Regression => Objective::Regression,
    };
    Ok(Labels {
        y,
        objective,
        classes: vec![],
    })
}

/// Label rows must name an entity: a null join key is an error, and so is a row whose entity
/// no view knows (every feature null apart from counts, which are 0 for anyone), unless
/// `--allow-unknown-entities`.
fn check_entities(
    registry: &quiver_core::Registry,
    features: &[FeatureRef],
    set: &RecordBatch,
    args: &TrainArgs,
) -> anyhow::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    for f in features {
        for k in registry.view_join_keys(&registry.views[&f.view]) {
            if !keys.contains(&k.name) {
                keys.push(k.name);
            }
        }
    }
    let key_cols: Vec<(&str, &dyn Array)> = keys
        .iter()
        .filter_map(|k| set.column_by_name(k).map(|c| (k.as_str(), c.as_ref())))
        .collect();
    for (k, c) in &key_cols {
        if let Some(i) = (0..c.len()).find(|&i| c.is_null(i)) {
            bail!(
                "{}: label row {} has no {k} (null): every label row must name its entity",
                args.labels.display(),
                i + 1
            );
        }
    }
    let informative: Vec<&dyn Array> = features
        .iter()
        .filter(|f| {
            !registry.views[&f.view].aggregations.iter().any(|a| {
                a.name == f.feature
                    && matches!(
                        a.function,
                        quiver_core::registry::AggFunction::Count
                            | quiver_core::registry::AggFunction::CountDistinct
                    )
            })
        })
        .filter_map(|f| set.column_by_name(&f.full_name()).map(|c| c.as_ref()))
        .collect();
    if informative.is_empty() || args.allow_unknown_entities {
        return Ok(());
    }
    let unknown: Vec<usize> = (0..set.num_rows())
        .filter(|&i| informative.iter().all(|c| c.is_null(i)))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let show = |i: usize| {
        let key = key_cols
            .iter()
            .map(|(k, c)| {
                let v = datafusion::arrow::util::display::array_value_to_string(*c, i)
                    .unwrap_or_default();
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        format!("{key} at row {}", i + 1)
    };
    bail!(
        "{}: {} of {} label rows name entities that no feature view knows as of their label time (every feature is missing), e.g. {}: fix the labels, or pass --allow-unknown-entities to train on them anyway",
        args.labels.display(),
        unknown.len(),
        set.num_rows(),
        unknown
            .iter()
            .take(3)
            .map(|&i| show(i))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Encodes one feature column: numbers (and booleans) as f64, text as category codes learned on
/// the training rows.
fn encode(
    name: &str,
    col: &dyn Array,
    train_rows: &[usize],
) -> anyhow::Result<(Encoding, Vec<f64>)> {
    let dt = col.data_type();
    if dt.is_numeric() || *dt == DataType::Boolean {
        let f = cast(col, &DataType::Float64)?;
        let f = f.as_primitive::<Float64Type>();
        let v: Vec<f64> = (0..f.len())
            .map(|i| if f.is_null(i) { f64::NAN } else { f.value(i) })
            .collect();
        if let Some(i) = v.iter().position(|x| x.is_infinite()) {
            bail!(
                "feature '{name}' is {} at training-set row {}: features must be finite (null is fine: it is treated as missing)",
                v[i],
                i + 1
            );
        }
        return Ok((Encoding::Number, v));
    }
    if is_text(dt) {
        let s = cast(col, &DataType::Utf8)?;
        let s = s.as_string::<i32>();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in train_rows {
            if !s.is_null(i) {
                *counts.entry(s.value(i)).or_default() += 1;
            }
        }
        let mut vocabulary: Vec<String> = counts.keys().map(|k| k.to_string()).collect();
        vocabulary.sort();
        let v = s
            .iter()
            .map(|x| x.map_or(f64::NAN, |x| Encoding::category_code(&vocabulary, x)))
            .collect();
        return Ok((Encoding::Category { vocabulary }, v));
    }
    bail!(
        "feature '{name}' has type {dt}, which the model cannot take yet (numbers, booleans, text and vectors of numbers are supported): remove it from the service or train on another service"
    )
}

/// A column of vectors as its components: one f64 column per component (null or short vector:
/// NaN). The length is the vectors' (they must all be equal). `None` when it is not a vector.
fn encode_vector(name: &str, col: &dyn Array) -> anyhow::Result<Option<Vec<Vec<f64>>>> {
    if !is_vector(col.data_type()) {
        return Ok(None);
    }
    let list = vector_rows(col)?;
    let list = list.as_list::<i32>();
    let mut dim = None;
    for i in 0..list.len() {
        if list.is_null(i) {
            continue;
        }
        let n = list.value_length(i) as usize;
        match dim {
            None => dim = Some(n),
            Some(d) if d != n => bail!(
                "feature '{name}' holds vectors of different lengths ({d} and {n}, training-set row {}): a model takes fixed-length vectors",
                i + 1
            ),
            _ => {}
        }
    }
    let dim = dim.unwrap_or(0);
    if dim == 0 {
        bail!("feature '{name}' is a vector column with no non-empty vector in the training set");
    }
    let mut out = vec![vec![f64::NAN; list.len()]; dim];
    fill_components(list, &mut out);
    Ok(Some(out))
}

/// A vector column as `list<float64>`.
fn vector_rows(col: &dyn Array) -> anyhow::Result<datafusion::arrow::array::ArrayRef> {
    let item = std::sync::Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
        DataType::Float64,
        true,
    ));
    Ok(cast(col, &DataType::List(item))?)
}

/// Writes component `k` of row `i` to `out[k][i]` (rows that are null or too short keep NaN).
fn fill_components(list: &datafusion::arrow::array::ListArray, out: &mut [Vec<f64>]) {
    let values = list.values().as_primitive::<Float64Type>();
    let offsets = list.value_offsets();
    for i in 0..list.len() {
        if list.is_null(i) {
            continue;
        }
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        for (k, j) in (a..b).enumerate().take(out.len()) {
            out[k][i] = if values.is_null(j) {
                f64::NAN
            } else {
                values.value(j)
            };
        }
    }
}

/// Whether a column holds text.
fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Encodes one text or integer feature column by its frequency in the training rows.
fn encode_frequency(
    name: &str,
    col: &dyn Array,
    train_rows: &[usize],
) -> anyhow::Result<(Encoding, Vec<f64>)> {
    let dt = col.data_type();
    if !(is_text(dt) || dt.is_integer()) {
        bail!(
            "--frequency-encode {name}: the feature is {dt}; frequency encoding takes text or integers"
        );
    }
    let s = cast(col, &DataType::Utf8)?;
    let s = s.as_string::<i32>();
    let frequencies = Encoding::learn_frequencies(
        train_rows
            .iter()
            .filter(|&&i| !s.is_null(i))
            .map(|&i| s.value(i)),
    );
    let v = s
        .iter()
        .map(|x| x.map_or(f64::NAN, |x| Encoding::frequency(&frequencies, x)))
        .collect();
    Ok((Encoding::Frequency { frequencies }, v))
}

/// Encodes a feature column for scoring with a trained encoding: numbers as f64 (null: NaN),
/// text (or integers, by their decimal text) as the training vocabulary's codes (unknown or
/// null: NaN) — exactly what /predict does to online values.
pub fn apply_encoding(
    name: &str,
    col: &dyn Array,
    encoding: &Encoding,
) -> anyhow::Result<Vec<f64>> {
    let dt = col.data_type();
    match encoding {
        Encoding::Number => {
            if !(dt.is_numeric() || *dt == DataType::Boolean) {
                bail!("feature '{name}' has type {dt}, but the model takes a number there");
            }
            let f = cast(col, &DataType::Float64)?;
            let f = f.as_primitive::<Float64Type>();
            Ok((0..f.len())
                .map(|i| if f.is_null(i) { f64::NAN } else { f.value(i) })
                .collect())
        }
        Encoding::Element { index } => {
            if !is_vector(dt) {
                bail!("feature '{name}' has type {dt}, but the model takes a vector there");
            }
            let list = vector_rows(col)?;
            let list = list.as_list::<i32>();
            let values = list.values().as_primitive::<Float64Type>();
            let offsets = list.value_offsets();
            Ok((0..list.len())
                .map(|i| {
                    let j = offsets[i] as usize + index;
                    if list.is_null(i) || j >= offsets[i + 1] as usize || values.is_null(j) {
                        f64::NAN
                    } else {
                        values.value(j)
                    }
                })
                .collect())
        }
        Encoding::Category { vocabulary } => {
            text_codes(name, col, |x| Encoding::category_code(vocabulary, x))
        }
        Encoding::Frequency { frequencies } => {
            text_codes(name, col, |x| Encoding::frequency(frequencies, x))
        }
    }
}

/// A column read as text (integers by their decimal text), each value mapped by `code`; null is
/// missing (NaN).
fn text_codes(name: &str, col: &dyn Array, code: impl Fn(&str) -> f64) -> anyhow::Result<Vec<f64>> {
    let s = cast(col, &DataType::Utf8)
        .with_context(|| format!("feature '{name}' ({}) as text", col.data_type()))?;
    Ok(s.as_string::<i32>()
        .iter()
        .map(|x| x.map_or(f64::NAN, &code))
        .collect())
}

/// Train / validation / test row indices.
fn split_rows(
    kind: Split,
    ts: &[i64],
    y: &[f64],
    objective: Objective,
    seed: u64,
) -> [Vec<usize>; 3] {
    let n = ts.len();
    match kind {
        Split::Time => {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by_key(|&i| (ts[i], i));
            let a = n * 70 / 100;
            let b = n * 85 / 100;
            [idx[..a].to_vec(), idx[a..b].to_vec(), idx[b..].to_vec()]
        }
        Split::Random => {
            // Stratified by class (one group for regression), shuffled with a seeded SplitMix64.
            let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
            let mut next = move || {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            };
            let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
            for (i, label) in y.iter().enumerate() {
                let g = if matches!(objective, Objective::Regression) {
                    0
                } else {
                    *label as i64
                };
                groups.entry(g).or_default().push(i);
            }
            let mut out = [Vec::new(), Vec::new(), Vec::new()];
            for (_, mut g) in groups {
                for i in (1..g.len()).rev() {
                    let j = (next() % (i as u64 + 1)) as usize;
                    g.swap(i, j);
                }
                let a = g.len() * 70 / 100;
                let b = g.len() * 85 / 100;
                out[0].extend_from_slice(&g[..a]);
                out[1].extend_from_slice(&g[a..b]);
                out[2].extend_from_slice(&g[b..]);
            }
            for part in &mut out {
                part.sort_unstable();
            }
            out
        }
    }
}

/// Gain and split-count importance per feature of a tree model.
pub fn importance(model: &Model) -> Vec<(String, f64, u64)> {
    let names = model.feature_names();
    let mut gain = vec![0.0; names.len()];
    let mut splits = vec![0u64; names.len()];
    if let Model::Trees(t) = model {
        for tree in &t.trees {
            for (node, f) in tree.split_feature.iter().enumerate() {
                gain[*f as usize] += tree.split_gain[node];
                splits[*f as usize] += 1;
            }
        }
    }
    let mut out: Vec<_> = names
        .iter()
        .cloned()
        .zip(gain)
        .zip(splits)
        .map(|((n, g), s)| (n, g, s))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)));
    out
}

/// Mean |SHAP value| per feature over up to 1,000 test rows (all outputs summed), largest
/// first; empty for linear models.
pub fn shap_summary(model: &Model, test: &Dataset) -> Vec<(String, f64)> {
    let Model::Trees(t) = model else {
        return vec![];
    };
    let n = test.n_rows().min(1000);
    let mut sums = vec![0.0; t.feature_names.len()];
    let mut row = Vec::new();
    for i in 0..n {
        test.row(i, &mut row);
        for per_output in quiver_ml::shap::tree_shap(t, &row) {
            for (j, v) in per_output.iter().take(sums.len()).enumerate() {
                sums[j] += v.abs();
            }
        }
    }
    let mut out: Vec<(String, f64)> = t
        .feature_names
        .iter()
        .cloned()
        .zip(sums.into_iter().map(|s| s / n.max(1) as f64))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

fn git_commit(repo: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The artifact root of a repository.
pub fn artifact_root(repo: &Path) -> PathBuf {
    quiver_registry::models::artifact_root(repo)
}

/// Writes a model version's files into a fresh directory named by their content and returns
/// the directory relative to the artifact root.
pub fn write_artifact(
    repo: &Path,
    name: &str,
    artifact: &ModelArtifact,
    evaluation: Option<&serde_json::Value>,
) -> anyhow::Result<String> {
    let text = artifact.to_json();
    let hash = quiver_core::registry::content_hash(&text);
    let rel = format!("models/{name}/{}", &hash[..16]);
    let dir = artifact_root(repo).join(&rel);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join("model.json.tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("model.json"))?;
    if let Some(e) = evaluation {
        std::fs::write(
            dir.join("evaluation.json"),
            serde_json::to_string_pretty(e)?,
        )?;
    }
    Ok(rel)
}

fn task_name(o: Objective) -> &'static str {
    match o {
        Objective::Binary { .. } => "binary",
        Objective::Multiclass { .. } => "multiclass",
        Objective::Regression => "regression",
    }
}

/// Trains, evaluates and registers; returns (name, version, evaluation).
pub async fn run(
    repo: &Path,
    args: TrainArgs,
    out: &Output,
) -> anyhow::Result<(String, i64, Evaluation)> {
    let started = Instant::now();
    let applied = stored(repo).await?;
    let registry = applied.registry;
    let features: Vec<FeatureRef> = registry.service_features(&args.service)?.to_vec();
    let service_hash = registry
        .object_hash(ObjectKind::FeatureService, &args.service)
        .context("service hash")?;
    let name = args.name.clone().unwrap_or_else(|| args.service.clone());
    if !quiver_registry::models::valid_name(&name) {
        bail!("--name {name}: use letters, digits, _ - . and start with a letter");
    }
    let engine = OfflineEngine::new(registry.clone(), repo);
    let label_table = engine.read_table(&args.labels).await?;
    if label_table.num_rows() == 0 {
        bail!("{}: the label table has no rows", args.labels.display());
    }
    let lab = labels(&label_table, &args.label, args.task)
        .with_context(|| format!("{}", args.labels.display()))?;

    out.say(format!(
        "== building the training set: {} x {} of service {}",
        plural(label_table.num_rows() as u64, "label row"),
        plural(features.len() as u64, "feature"),
        args.service
    ));
    let opts = HistoricalOptions {
        timestamp_column: args.timestamp_column.clone(),
        full_names: true,
    };
    let progress: Arc<dyn Progress> = Arc::new(Quiet);
    let set = engine
        .historical(
            &label_table,
            &features,
            &opts,
            &args.labels.display().to_string(),
            &progress,
        )
        .await?;
    check_entities(&registry, &features, &set, &args)?;
    // Any time unit or zone -> microseconds since the epoch.
    let ts_col = cast(
        &cast(
            set.column_by_name(&args.timestamp_column)
                .context("timestamp column")?,
            &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
        )?,
        &DataType::Int64,
    )?;
    let ts: Vec<i64> = ts_col
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .values()
        .to_vec();

    // Split, then learn encodings on the training rows only.
    let mut gparams = GbdtParams {
        early_stopping_rounds: Some(20),
        ..GbdtParams::default()
    };
    let mut lparams = LinearParams::default();
    for kv in &args.params {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--params {kv}: write key=value, e.g. --params num_trees=300,learning_rate=0.05");
        };
        match args.model {
            Algorithm::Gbdt => gparams.set(k.trim(), v.trim())?,
            Algorithm::Logistic => lparams.set(k.trim(), v.trim())?,
        }
    }
    let [train_idx, valid_idx, test_idx] =
        split_rows(args.split, &ts, &lab.y, lab.objective, gparams.seed);
    for (part, idx) in [
        ("train", &train_idx),
        ("validation", &valid_idx),
        ("test", &test_idx),
    ] {
        if idx.is_empty() {
            bail!(
                "the {part} split is empty ({} label rows): give more label rows",
                ts.len()
            );
        }
    }
    for n in &args.frequency_encode {
        let n = n.trim();
        if !features
            .iter()
            .any(|f| n == f.to_string() || n == f.feature)
        {
            bail!(
                "--frequency-encode {n}: service {} has no such feature (it has {})",
                args.service,
                features
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut inputs = Vec::with_capacity(features.len());
    let mut columns = Vec::with_capacity(features.len());
    let mut categorical = Vec::with_capacity(features.len());
    let mut column_names = Vec::with_capacity(features.len());
    let mut frequency_for_linear = Vec::new();
    for f in &features {
        let col = set
            .column_by_name(&f.full_name())
            .with_context(|| format!("training set has no column {}", f.full_name()))?;
        if let Some(components) = encode_vector(&f.to_string(), col.as_ref())? {
            for (index, values) in components.into_iter().enumerate() {
                let encoding = Encoding::Element { index };
                column_names.push(encoding.column_name(&f.full_name()));
                categorical.push(false);
                inputs.push(Input {
                    feature: f.to_string(),
                    encoding,
                });
                columns.push(values);
            }
            continue;
        }
        column_names.push(f.full_name());
        let asked = args
            .frequency_encode
            .iter()
            .any(|n| n.trim() == f.to_string() || n.trim() == f.feature);
        // A linear model takes numbers: category codes would be read as magnitudes.
        let for_linear = args.model == Algorithm::Logistic && is_text(col.data_type());
        if for_linear && !asked {
            frequency_for_linear.push(f.to_string());
        }
        let frequency = asked || for_linear;
        let (encoding, values) = if frequency {
            encode_frequency(&f.to_string(), col.as_ref(), &train_idx)?
        } else {
            encode(&f.to_string(), col.as_ref(), &train_idx)?
        };
        categorical.push(matches!(encoding, Encoding::Category { .. }));
        inputs.push(Input {
            feature: f.to_string(),
            encoding,
        });
        columns.push(values);
    }
    let all = Dataset::new(column_names, categorical, columns);
    let take_y = |idx: &[usize]| idx.iter().map(|&i| lab.y[i]).collect::<Vec<f64>>();
    let (train, valid, test) = (
        all.take(&train_idx),
        all.take(&valid_idx),
        all.take(&test_idx),
    );
    let (y_train, y_valid, y_test) = (take_y(&train_idx), take_y(&valid_idx), take_y(&test_idx));
    let time_range = (
        ts.iter().min().map(|t| quiver_online::format_time(*t)),
        ts.iter().max().map(|t| quiver_online::format_time(*t)),
    );

    if !frequency_for_linear.is_empty() {
        out.say(format!(
            "== logistic: text features encoded by their frequency in the training split: {}",
            frequency_for_linear.join(", ")
        ));
    }
    out.say(format!(
        "== training {} ({}) on {} rows{}",
        match args.model {
            Algorithm::Gbdt => "gbdt",
            Algorithm::Logistic => "logistic",
        },
        task_name(lab.objective),
        thousands(train.n_rows() as u64),
        match args.model {
            Algorithm::Gbdt => format!(
                ", early stopping on {} validation rows",
                thousands(valid.n_rows() as u64)
            ),
            // The linear solver runs to convergence: the validation rows are not used.
            Algorithm::Logistic => String::new(),
        }
    ));
    let t0 = Instant::now();
    let (model, params_json, best_iteration) = match args.model {
        Algorithm::Gbdt => {
            let (m, report) = tokio::task::block_in_place(|| {
                train_gbdt(
                    lab.objective,
                    &train,
                    &y_train,
                    None,
                    Some((&valid, &y_valid)),
                    &gparams,
                )
            })?;
            (
                Model::Trees(m),
                gparams.pairs(),
                Some(report.best_iteration),
            )
        }
        Algorithm::Logistic => {
            let m = tokio::task::block_in_place(|| {
                train_linear(lab.objective, &train, &y_train, None, &lparams)
            })?;
            (Model::Linear(m), lparams.pairs(), None)
        }
    };
    let train_seconds = t0.elapsed().as_secs_f64();
    let mut row = Vec::new();
    let preds: Vec<Vec<f64>> = (0..test.n_rows())
        .map(|i| {
            test.row(i, &mut row);
            model.predict(&row)
        })
        .collect();
    let evaluation = evaluate(lab.objective, &y_test, &preds)?;
    let imp = importance(&model);
    let shap = shap_summary(&model, &test);
    let artifact = ModelArtifact {
        format: ModelArtifact::FORMAT,
        inputs,
        model,
        classes: lab.classes.clone(),
    };
    let eval_json = serde_json::to_value(&evaluation)?;
    let rel = write_artifact(repo, &name, &artifact, Some(&eval_json))?;
    let details = json!({
        "params": params_json.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "param_overrides": args.params,
        "best_iteration": best_iteration,
        "train_seconds": train_seconds,
        "metrics": headline(&evaluation),
        "importance": imp.iter().map(|(n, g, s)| json!({"feature": n, "gain": g, "splits": s})).collect::<Vec<_>>(),
        "shap_summary": shap.iter().map(|(n, v)| json!({"feature": n, "mean_abs_shap": v})).collect::<Vec<_>>(),
        "label": {"file": args.labels, "column": args.label, "timestamp_column": args.timestamp_column, "classes": lab.classes},
        "split": {"kind": format!("{:?}", args.split).to_lowercase(), "train_rows": train.n_rows(), "validation_rows": valid.n_rows(), "test_rows": test.n_rows()},
        "time_range": {"start": time_range.0, "end": time_range.1},
        "registry_version": applied.version,
        "git_commit": git_commit(repo),
        "features": features.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
    });
    let store = open_store(repo).await?;
    let version = store
        .register_model(&NewModelVersion {
            name: name.clone(),
            task: task_name(lab.objective).into(),
            algorithm: match args.model {
                Algorithm::Gbdt => "gbdt",
                Algorithm::Logistic => "logistic",
            }
            .into(),
            feature_service: args.service.clone(),
            service_hash,
            artifact: rel,
            details,
        })
        .await?;
    if let Some(alias) = &args.promote {
        store.promote_model(&name, version, alias).await?;
    }
    let tracked = match crate::tracking::tracking(repo)? {
        Some(t) => {
            let v = store.model_version(&name, version).await?;
            let url = t.client.url().to_string();
            let repo = repo.to_path_buf();
            let logged = crate::tracking::off_thread(
                format!(
                    "model {name} version {version} is registered in Quiver, but logging it to MLflow failed (re-send it with `quiver models track {name}:{version}`)"
                ),
                move || crate::tracking::log_version(&repo, &t, &v),
            )
            .await?;
            Some((url, logged))
        }
        None => None,
    };
    let mut rows = vec![];
    for (k, v) in headline(&evaluation).as_object().expect("object") {
        if let Some(x) = v.as_f64() {
            rows.push(vec![k.clone(), format!("{x:.4}")]);
        }
    }
    out.table(&["test metric", "value"], rows);
    // A linear model has no splits: its importance would be a table of zeros.
    if matches!(artifact.model, Model::Trees(_)) {
        out.table(
            &["feature", "gain", "splits"],
            imp.iter()
                .take(10)
                .map(|(n, g, s)| vec![n.clone(), format!("{g:.1}"), s.to_string()])
                .collect(),
        );
    }
    out.say(format!(
        "registered model {name} version {version}{} ({} on {} training rows, {:.1} s; total {:.1} s)",
        args.promote.as_ref().map(|a| format!(" as {a}")).unwrap_or_default(),
        task_name(lab.objective),
        thousands(train.n_rows() as u64),
        train_seconds,
        started.elapsed().as_secs_f64()
    ));
    if let Some((url, l)) = &tracked {
        out.say(format!(
            "logged to MLflow {url}: run {} in experiment {}, model version {}",
            l.run_id, l.experiment_id, l.mlflow_version
        ));
    }
    out.emit(&json!({
        "name": name,
        "version": version,
        "metrics": headline(&evaluation),
        "mlflow": tracked.as_ref().map(|(url, l)| json!({"url": url, "run_id": l.run_id, "experiment_id": l.experiment_id, "version": l.mlflow_version})),
    }));
    Ok((name, version, evaluation))
}

/// The scalar metrics of an evaluation (no curves or tables).
pub fn headline(e: &Evaluation) -> serde_json::Value {
    let mut v = serde_json::to_value(e).expect("serializes");
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| x.is_number());
    }
    v
}
