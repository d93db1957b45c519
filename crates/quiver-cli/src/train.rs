//! `quiver train`: the arguments of a training run and what it prints. The run itself (training
//! set, split, encoding, training, evaluation, registration, MLflow) is
//! `quiver_pipeline::train`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use quiver_pipeline::evaluation::headline;
use quiver_pipeline::labels::task_name;
use quiver_pipeline::{TrainRequest, Trained};
use serde_json::json;

use crate::output::{Output, thousands};
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

impl TrainArgs {
    /// The library's request.
    pub fn request(self) -> TrainRequest {
        TrainRequest {
            service: self.service,
            labels: self.labels,
            label: self.label,
            timestamp_column: self.timestamp_column,
            task: self.task.map(|t| match t {
                Task::Binary => quiver_pipeline::Task::Binary,
                Task::Multiclass => quiver_pipeline::Task::Multiclass,
                Task::Regression => quiver_pipeline::Task::Regression,
            }),
            algorithm: match self.model {
                Algorithm::Gbdt => quiver_pipeline::Algorithm::Gbdt,
                Algorithm::Logistic => quiver_pipeline::Algorithm::Logistic,
            },
            params: self.params,
            split: match self.split {
                Split::Time => quiver_pipeline::Split::Time,
                Split::Random => quiver_pipeline::Split::Random,
            },
            name: self.name,
            promote: self.promote,
            compare_with: None,
            allow_unknown_entities: self.allow_unknown_entities,
            frequency_encode: self.frequency_encode,
        }
    }
}

/// Trains, evaluates and registers (`quiver_pipeline::train`), then prints the test metrics,
/// the importance table and the new version.
pub async fn run(repo: &Path, args: TrainArgs, out: &Output) -> anyhow::Result<Trained> {
    let started = Instant::now();
    let applied = stored(repo).await?;
    let store = open_store(repo).await?;
    let request = args.request();
    let progress = out.pipeline_progress();
    let shown: Arc<dyn quiver_pipeline::Progress> = progress.clone();
    let trained = quiver_pipeline::train(repo, &store, &applied, &request, &shown).await;
    progress.finish();
    let trained = trained?;
    let metrics = headline(&trained.evaluation);
    let mut rows = vec![];
    for (k, v) in metrics.as_object().expect("object") {
        if let Some(x) = v.as_f64() {
            rows.push(vec![k.clone(), format!("{x:.4}")]);
        }
    }
    out.table(&["test metric", "value"], rows);
    // A linear model has no splits: its importance would be a table of zeros.
    if trained.trees {
        out.table(
            &["feature", "gain", "splits"],
            trained
                .importance
                .iter()
                .take(10)
                .map(|(n, g, s)| vec![n.clone(), format!("{g:.1}"), s.to_string()])
                .collect(),
        );
    }
    let (name, version) = (&trained.name, trained.version);
    out.say(format!(
        "registered model {name} version {version}{} ({} on {} training rows, {:.1} s; total {:.1} s)",
        request
            .promote
            .as_ref()
            .map(|a| format!(" as {a}"))
            .unwrap_or_default(),
        task_name(trained.objective),
        thousands(trained.train_rows as u64),
        trained.train_seconds,
        started.elapsed().as_secs_f64()
    ));
    if let Some((url, l)) = &trained.tracked {
        out.say(format!(
            "logged to MLflow {url}: run {} in experiment {}, model version {}",
            l.run_id, l.experiment_id, l.mlflow_version
        ));
    }
    out.emit(&json!({
        "name": name,
        "version": version,
        "metrics": metrics,
        "mlflow": trained.tracked.as_ref().map(|(url, l)| json!({"url": url, "run_id": l.run_id, "experiment_id": l.experiment_id, "version": l.mlflow_version})),
    }));
    Ok(trained)
}
