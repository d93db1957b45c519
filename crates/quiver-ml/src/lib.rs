//! Quiver's models.
//!
//! - [`tree`]: one decision tree in LightGBM's layout, and its predictor.
//! - [`model`]: [`Model`] = a tree ensemble or a linear model, with its [`Objective`].
//! - [`encoding`]: how a feature value becomes a model input ([`Encoding::encode`], the one
//!   rule training, offline scoring and `/predict` apply).
//! - [`artifact`]: what a model version stores (the model and each input's encoding).
//! - [`dataset`]: a column-major feature matrix (NaN = missing) with feature kinds.
//! - [`gbdt`]: histogram-based gradient boosting (binary, multiclass, regression).
//! - [`linear`]: logistic / linear regression with standardization.
//! - [`lightgbm`]: reading LightGBM text models into a [`TreeEnsemble`].
//! - [`shap`]: TreeSHAP contributions.
//! - [`metrics`]: ROC-AUC, PR-AUC, log loss, Brier, calibration, confusion matrix, per-class P/R/F1.

pub mod artifact;
pub mod dataset;
pub mod encoding;
pub mod gbdt;
pub mod lightgbm;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod report;
pub mod shap;
pub mod tree;

pub use artifact::{Input, ModelArtifact};
pub use dataset::Dataset;
pub use encoding::{Components, Encoding, FeatureValue};
pub use model::{LinearModel, Model, Objective, TreeEnsemble, top_class};
pub use tree::Tree;

/// What can go wrong in training, import and scoring; the message names the culprit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input data or parameters are unusable (single class, empty split, NaN label, ...).
    #[error("{0}")]
    Invalid(String),
    /// A model file could not be read (names the line or field).
    #[error("model file: {0}")]
    ModelFile(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
