//! Errors of the offline engine.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the offline engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid definitions or references (unknown feature, ...).
    #[error(transparent)]
    Definition(#[from] quiver_core::Error),
    /// A source's data does not match its definition (missing column, wrong type, bad file).
    #[error("source '{source_name}' ({location}): {message}")]
    Source {
        /// The source.
        source_name: String,
        /// Its path, table or query.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The entity rows given to a retrieval are unusable (missing column, wrong key type).
    #[error("entity rows{file}: {message}")]
    Entities {
        /// ` (FILE)` or empty.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A SQL expression in a definition does not parse or does not fit the source.
    #[error("feature view '{view}', {field}: {message}")]
    Expression {
        /// The view.
        view: String,
        /// The field (`features.x.expr`, `aggregations.y.filter`).
        field: String,
        /// Why.
        message: String,
    },
    /// Output column names collide (use full feature names).
    #[error("{0}")]
    Output(String),
    /// An engine failure that is likely a bug in Quiver.
    #[error("internal error (likely a bug in Quiver): {0}")]
    Internal(String),
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Internal(e.to_string())
    }
}
