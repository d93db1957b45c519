//! One training run: training set → encode → split → train → evaluate → register → track.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use quiver_core::FeatureRef;
use quiver_core::registry::ObjectKind;
use quiver_ml::gbdt::{GbdtParams, train as train_gbdt};
use quiver_ml::linear::{LinearParams, train_linear};
use quiver_ml::metrics::{Evaluation, evaluate};
use quiver_ml::{Dataset, Input, Model, ModelArtifact, Objective};
use quiver_offline::OfflineEngine;
use quiver_registry::{AppliedRegistry, NewModelVersion, SqlMetadataStore};
use serde_json::json;

use crate::encoding::{Learn, is_text, learn};
use crate::evaluation::{headline, importance, shap_summary};
use crate::labels::{Task, labels, task_name};
use crate::split::{Split, split_rows};
use crate::tracking::Logged;
use crate::{Error, Progress, Result, Step};

/// The learner.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Histogram gradient-boosted trees (native missing values and categories).
    Gbdt,
    /// Logistic regression (linear regression for a regression task), standardized inputs;
    /// text features are frequency-encoded, since a linear model takes numbers, not category
    /// codes.
    Logistic,
}

impl Algorithm {
    /// The learner's name in the registry (`gbdt`, `logistic`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Gbdt => "gbdt",
            Algorithm::Logistic => "logistic",
        }
    }
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The feature service whose features the model reads.
    pub service: String,
    /// The label table (Parquet or CSV): join keys, a timestamp column and the label.
    pub labels: PathBuf,
    /// The label column.
    pub label: String,
    /// The label table's timestamp column.
    pub timestamp_column: String,
    /// What to predict (`None`: implied by the label, see [`crate::labels::labels`]).
    pub task: Option<Task>,
    /// The learner.
    pub algorithm: Algorithm,
    /// Learner parameters as `key=value` (LightGBM names for GBDT).
    pub params: Vec<String>,
    /// How rows are split.
    pub split: Split,
    /// The model's name in the registry (default: the service's name).
    pub name: Option<String>,
    /// Point this alias at the new version.
    pub promote: Option<String>,
    /// Also score the test rows with the version this alias of the model names (the
    /// champion, for a deployment's gate), before the new version is registered.
    pub compare_with: Option<String>,
    /// Train on label rows whose entity no view knows (all features missing).
    pub allow_unknown_entities: bool,
    /// Features (`view:feature` or `feature`) to encode by their training frequency.
    pub frequency_encode: Vec<String>,
}

impl TrainRequest {
    /// A GBDT on `service` predicting `label` from the label table `labels`, with every other
    /// setting at its default (timestamp column `event_timestamp`, split by time).
    pub fn new(service: &str, labels: PathBuf, label: &str) -> TrainRequest {
        TrainRequest {
            service: service.to_string(),
            labels,
            label: label.to_string(),
            timestamp_column: "event_timestamp".into(),
            task: None,
            algorithm: Algorithm::Gbdt,
            params: vec![],
            split: Split::Time,
            name: None,
            promote: None,
            compare_with: None,
            allow_unknown_entities: false,
            frequency_encode: vec![],
        }
    }
}

/// A registered version and how it did.
#[derive(Debug)]
pub struct Trained {
    /// The model's name.
    pub name: String,
    /// The new version.
    pub version: i64,
    /// The task.
    pub objective: Objective,
    /// The evaluation on the test split.
    pub evaluation: Evaluation,
    /// Gain and split importance per model input, largest first (zeros for a linear model).
    pub importance: Vec<(String, f64, u64)>,
    /// Whether the model is a tree ensemble.
    pub trees: bool,
    /// Training rows.
    pub train_rows: usize,
    /// Seconds spent in the learner.
    pub train_seconds: f64,
    /// The MLflow server and what the version became there, when tracking is on.
    pub tracked: Option<(String, Logged)>,
    /// The version `compare_with` named, evaluated on the same test rows (`None` when the
    /// alias names no version yet).
    pub baseline: Option<Baseline>,
}

/// An earlier version evaluated on a new version's test rows.
#[derive(Debug)]
pub struct Baseline {
    /// Its version number.
    pub version: i64,
    /// Its evaluation on the new test rows.
    pub evaluation: Evaluation,
}

/// Evaluates version `v` of a model on the label rows `test_rows` of `label_table` (its own
/// features, point in time, encoded its own way), against the labels `y`.
#[allow(clippy::too_many_arguments)]
async fn evaluate_version(
    repo: &Path,
    registry: &quiver_core::Registry,
    v: &quiver_registry::ModelVersion,
    label_table: &datafusion::arrow::array::RecordBatch,
    test_rows: &[usize],
    y: &[f64],
    objective: Objective,
    req: &TrainRequest,
    progress: &Arc<dyn Progress>,
) -> Result<Evaluation> {
    let artifact = crate::artifacts::load_artifact(repo, v).await?;
    if artifact.model.objective() != objective {
        return Err(Error::Invalid(format!(
            "model {} version {} predicts {} and the new version {}: they cannot be compared on one gate",
            v.name,
            v.version,
            task_name(artifact.model.objective()),
            task_name(objective)
        )));
    }
    let idx = datafusion::arrow::array::UInt64Array::from_iter_values(
        test_rows.iter().map(|&i| i as u64),
    );
    let taken = label_table
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c, &idx, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let test_table = datafusion::arrow::array::RecordBatch::try_new(label_table.schema(), taken)?;
    let (_, _, preds) = crate::scoring::score_rows(
        repo,
        registry.clone(),
        &artifact,
        &test_table,
        &req.timestamp_column,
        &req.labels.display().to_string(),
        progress,
    )
    .await
    .map_err(|e| {
        Error::Invalid(format!(
            "model {} version {} cannot score the new test rows: {e}",
            v.name, v.version
        ))
    })?;
    Ok(evaluate(objective, y, &preds)?)
}

/// Learner parameters from `key=value` pairs.
fn learner_params(req: &TrainRequest) -> Result<(GbdtParams, LinearParams)> {
    let mut gparams = GbdtParams {
        early_stopping_rounds: Some(20),
        ..GbdtParams::default()
    };
    let mut lparams = LinearParams::default();
    for kv in &req.params {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Error::Invalid(format!(
                "--params {kv}: write key=value, e.g. --params num_trees=300,learning_rate=0.05"
            )));
        };
        match req.algorithm {
            Algorithm::Gbdt => gparams.set(k.trim(), v.trim())?,
            Algorithm::Logistic => lparams.set(k.trim(), v.trim())?,
        }
    }
    Ok((gparams, lparams))
}

/// Trains a model on `req.service` with the labels of `req.labels`, evaluates it on the test
/// split, registers it in `store` as a new version (promoted if asked) with its lineage, and
/// logs it to MLflow when the repository names a tracking server. `applied` is the registry
/// the service is read from.
pub async fn train(
    repo: &Path,
    store: &SqlMetadataStore,
    applied: &AppliedRegistry,
    req: &TrainRequest,
    progress: &Arc<dyn Progress>,
) -> Result<Trained> {
    let registry = &applied.registry;
    let features: Vec<FeatureRef> = registry.service_features(&req.service)?.to_vec();
    let service_hash = registry
        .object_hash(ObjectKind::FeatureService, &req.service)
        .ok_or_else(|| Error::Internal(format!("service {} has no hash", req.service)))?;
    let name = req.name.clone().unwrap_or_else(|| req.service.clone());
    if !quiver_registry::models::valid_name(&name) {
        return Err(Error::Invalid(format!(
            "--name {name}: use letters, digits, _ - . and start with a letter"
        )));
    }
    let engine = OfflineEngine::new(registry.clone(), repo);
    let label_table = engine.read_table(&req.labels).await?;
    let labels_file = req.labels.display().to_string();
    if label_table.num_rows() == 0 {
        return Err(Error::Invalid(format!(
            "{labels_file}: the label table has no rows"
        )));
    }
    let lab = labels(&label_table, &req.label, req.task, &labels_file)?;

    progress.step(&Step::TrainingSet {
        service: &req.service,
        label_rows: label_table.num_rows(),
        features: features.len(),
    });
    let training_set = crate::training_set::build(
        &engine,
        &label_table,
        &req.labels,
        &features,
        &req.timestamp_column,
        req.allow_unknown_entities,
        progress,
    )
    .await?;
    let (set, ts) = (&training_set.set, &training_set.ts);

    // Split, then learn encodings on the training rows only.
    let (gparams, lparams) = learner_params(req)?;
    let [train_idx, valid_idx, test_idx] =
        split_rows(req.split, ts, &lab.y, lab.objective, gparams.seed);
    for (part, idx) in [
        ("train", &train_idx),
        ("validation", &valid_idx),
        ("test", &test_idx),
    ] {
        if idx.is_empty() {
            return Err(Error::Invalid(format!(
                "the {part} split is empty ({} label rows): give more label rows",
                ts.len()
            )));
        }
    }
    let asked = |f: &FeatureRef| {
        req.frequency_encode
            .iter()
            .any(|n| n.trim() == f.to_string() || n.trim() == f.feature)
    };
    for n in &req.frequency_encode {
        let n = n.trim();
        if !features
            .iter()
            .any(|f| n == f.to_string() || n == f.feature)
        {
            return Err(Error::Invalid(format!(
                "--frequency-encode {n}: service {} has no such feature (it has {})",
                req.service,
                features
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut inputs = Vec::with_capacity(features.len());
    let mut columns = Vec::with_capacity(features.len());
    let mut categorical = Vec::with_capacity(features.len());
    let mut column_names = Vec::with_capacity(features.len());
    let mut input_full_names = Vec::with_capacity(features.len());
    let mut frequency_for_linear = Vec::new();
    for f in &features {
        let col = set.column_by_name(&f.full_name()).ok_or_else(|| {
            Error::Internal(format!("training set has no column {}", f.full_name()))
        })?;
        // A linear model takes numbers: category codes would be read as magnitudes.
        let for_linear = req.algorithm == Algorithm::Logistic && is_text(col.data_type());
        if for_linear && !asked(f) {
            frequency_for_linear.push(f.to_string());
        }
        let how = if asked(f) || for_linear {
            Learn::Frequency
        } else {
            Learn::Default
        };
        for (encoding, values) in learn(&f.to_string(), col, &train_idx, how)? {
            input_full_names.push(f.full_name());
            column_names.push(encoding.column_name(&f.full_name()));
            categorical.push(matches!(encoding, quiver_ml::Encoding::Category { .. }));
            inputs.push(Input {
                feature: f.to_string(),
                encoding,
            });
            columns.push(values);
        }
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
        progress.step(&Step::FrequencyForLinear {
            features: &frequency_for_linear,
        });
    }
    progress.step(&Step::Training {
        algorithm: req.algorithm,
        objective: lab.objective,
        train_rows: train.n_rows(),
        // The linear solver runs to convergence: the validation rows are not used.
        early_stopping_rows: (req.algorithm == Algorithm::Gbdt).then(|| valid.n_rows()),
    });
    let t0 = Instant::now();
    let (model, params_json, best_iteration) = match req.algorithm {
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
    let trees = matches!(model, Model::Trees(_));
    let artifact = ModelArtifact {
        format: ModelArtifact::FORMAT,
        inputs,
        model,
        classes: lab.classes.clone(),
    };
    // The version to beat, on the same rows, before the new one is registered.
    let baseline = match &req.compare_with {
        None => None,
        Some(alias) => match store.model_by_alias(&name, alias).await {
            Ok(v) => Some(Baseline {
                version: v.version,
                evaluation: evaluate_version(
                    repo,
                    registry,
                    &v,
                    &label_table,
                    &test_idx,
                    &y_test,
                    lab.objective,
                    req,
                    progress,
                )
                .await?,
            }),
            Err(quiver_registry::Error::Model(_)) => None,
            Err(e) => return Err(e.into()),
        },
    };
    let eval_json = serde_json::to_value(&evaluation).expect("evaluations serialize");
    let rel = crate::artifacts::write_artifact(repo, &name, &artifact, Some(&eval_json))?;
    crate::reference::write(
        &crate::artifacts::artifact_root(repo).join(&rel),
        set,
        &artifact.inputs,
        &input_full_names,
        &all.columns,
        &train_idx,
        lab.objective,
        &lab.classes,
        &preds,
    )?;
    crate::artifacts::push(repo, &rel).await?;
    let details = json!({
        "params": params_json.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "param_overrides": req.params,
        "best_iteration": best_iteration,
        "train_seconds": train_seconds,
        "metrics": headline(&evaluation),
        "importance": imp.iter().map(|(n, g, s)| json!({"feature": n, "gain": g, "splits": s})).collect::<Vec<_>>(),
        "shap_summary": shap.iter().map(|(n, v)| json!({"feature": n, "mean_abs_shap": v})).collect::<Vec<_>>(),
        "label": {"file": req.labels, "column": req.label, "timestamp_column": req.timestamp_column, "classes": lab.classes},
        "split": {"kind": req.split.name(), "train_rows": train.n_rows(), "validation_rows": valid.n_rows(), "test_rows": test.n_rows()},
        "time_range": {"start": time_range.0, "end": time_range.1},
        "registry_version": applied.version,
        "git_commit": crate::artifacts::git_commit(repo),
        "features": features.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
    });
    let version = store
        .register_model(&NewModelVersion {
            name: name.clone(),
            task: task_name(lab.objective).into(),
            algorithm: req.algorithm.name().into(),
            feature_service: req.service.clone(),
            service_hash,
            artifact: rel,
            details,
        })
        .await?;
    if let Some(alias) = &req.promote {
        store.promote_model(&name, version, alias).await?;
    }
    let tracked = if crate::tracking::tracking(repo)?.is_some() {
        let v = store.model_version(&name, version).await?;
        crate::tracking::log_registered(repo, v).await?
    } else {
        None
    };
    Ok(Trained {
        name,
        version,
        objective: lab.objective,
        evaluation,
        importance: imp,
        trees,
        train_rows: train.n_rows(),
        train_seconds,
        tracked,
        baseline,
    })
}
