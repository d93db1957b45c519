//! Quiver's training pipeline as a library: what `quiver train`, `quiver models ...`, the
//! scheduler's `train` task and the server's `/predict` call.
//!
//! One training run flows through these modules, in order:
//!
//! 1. [`training_set`]: the label table ([`labels`] turns its label column into numbers and a
//!    task) joined point in time with a feature service's features, checked (every label row
//!    names a known entity).
//! 2. [`split`]: train / validation / test rows, by time or stratified at random.
//! 3. [`encoding`]: each feature column made into model inputs; the encodings (category
//!    vocabularies, frequencies) are learned on the training rows only.
//! 4. [`train`]: a GBDT or logistic model from `quiver-ml`, evaluated on the test rows
//!    ([`evaluation`]: metrics, importance, SHAP summary).
//! 5. [`artifacts`] + `quiver-registry`: the model file written under the artifact root and a
//!    new version registered with its lineage (service and its hash, label, split, time range,
//!    registry version, git commit).
//! 6. [`tracking`]: the version mirrored to MLflow when the repository names a tracking server.
//!
//! Around the run: [`versions`] resolves `NAME`, `NAME:VERSION`, `NAME@ALIAS`; [`import`]
//! registers a LightGBM model trained elsewhere; [`scoring`] scores entity rows offline with
//! point-in-time features (`models predict`) and a CSV of feature values with contributions
//! (`models score`); [`report`] renders a version's HTML report; [`prediction_log`] holds the
//! prediction log's layout and the rule by which `/predict` records an input.
//!
//! **One encoding.** [`encoding`] reads Arrow columns (training, offline scoring) and online
//! store values (`/predict`) into `quiver_ml::FeatureValue`s, and every value goes through
//! the single rule `quiver_ml::Encoding::encode`. `/predict` and `models predict` agree bit
//! for bit because they run the same code, not because two copies are kept equal.
//!
//! Callers report progress through [`Progress`] (the CLI draws lines and bars; the scheduler
//! passes `()`), and get errors as [`Error`]; this crate prints nothing.

#![warn(missing_docs)]

pub mod artifacts;
pub mod encoding;
pub mod evaluation;
pub mod import;
pub mod labels;
pub mod prediction_log;
pub mod reference;
pub mod report;
pub mod scoring;
pub mod split;
pub mod tracking;
pub mod train;
pub mod training_set;
pub mod versions;

pub use labels::Task;
pub use split::Split;
pub use train::{Algorithm, Baseline, TrainRequest, Trained, train};

use std::path::PathBuf;

/// What can go wrong in the pipeline. [`Error::Invalid`] is the user's to fix (a label column
/// that is not there, an empty split, an unknown feature) and its message says how; the others
/// pass on what a lower layer said.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be carried out as given; the message names the file, column, row or
    /// feature at fault and what to do.
    #[error("{0}")]
    Invalid(String),
    /// Definitions or the registry snapshot (unknown service or feature).
    #[error(transparent)]
    Core(#[from] quiver_core::Error),
    /// The metadata store (unknown model, version or alias; the database).
    #[error(transparent)]
    Registry(#[from] quiver_registry::Error),
    /// Reading the label table or building the training set.
    #[error(transparent)]
    Offline(#[from] quiver_offline::Error),
    /// Training, parameters or a model file.
    #[error(transparent)]
    Ml(#[from] quiver_ml::Error),
    /// An Arrow kernel (a cast that cannot be done).
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// The MLflow tracking server.
    #[error(transparent)]
    Mlflow(#[from] quiver_registry::mlflow::MlflowError),
    /// A file that cannot be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `cannot read`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Quiver's own work is done (`done` says what stands and how to re-send), but mirroring it
    /// to MLflow failed.
    #[error("{done}")]
    Tracking {
        /// What Quiver did and how to finish the MLflow side.
        done: String,
        /// Why MLflow failed.
        source: Box<Error>,
    },
    /// Not the user's doing: likely a bug in Quiver.
    #[error("internal error (likely a bug in Quiver): {0}")]
    Internal(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How a long operation reports progress. Every method defaults to doing nothing, so `()` is
/// the silent implementation (the scheduler's).
pub trait Progress: Send + Sync {
    /// A step of a training run begins, or a decision was made that a person should hear of.
    fn step(&self, step: &Step<'_>) {
        let _ = step;
    }
    /// `rows` more rows of `view` were read while building a training set or scoring.
    fn rows_read(&self, view: &str, rows: usize) {
        let _ = (view, rows);
    }
}

impl Progress for () {}

/// The steps of a training run, as [`Progress::step`] reports them.
#[derive(Debug)]
pub enum Step<'a> {
    /// Building the training set: `label_rows` label rows x `features` features of `service`.
    TrainingSet {
        /// The feature service.
        service: &'a str,
        /// Rows of the label table.
        label_rows: usize,
        /// Features of the service.
        features: usize,
    },
    /// A linear model reads these text features by their frequency in the training split.
    FrequencyForLinear {
        /// The features (`view:feature`).
        features: &'a [String],
    },
    /// Training starts.
    Training {
        /// The learner.
        algorithm: Algorithm,
        /// The task.
        objective: quiver_ml::Objective,
        /// Training rows.
        train_rows: usize,
        /// Validation rows used for early stopping (GBDT), if any.
        early_stopping_rows: Option<usize>,
    },
}

/// A [`Progress`] as the offline engine's row counter.
pub(crate) struct RowsRead(pub std::sync::Arc<dyn Progress>);

impl quiver_offline::engine::Progress for RowsRead {
    fn rows_read(&self, view: &str, rows: usize) {
        self.0.rows_read(view, rows);
    }
}
