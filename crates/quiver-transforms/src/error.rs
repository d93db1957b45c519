//! The crate's error type.

use datafusion::error::DataFusionError;

/// What went wrong compiling or evaluating a feature expression; the message names the
/// expression and quotes DataFusion's diagnosis (unknown function or column, wrong type, ...).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The expression could not be parsed or planned against the input schema.
    #[error("cannot compile feature expression `{expr}`: {source}")]
    Compile {
        /// The SQL expression as given.
        expr: String,
        /// DataFusion's error.
        #[source]
        source: DataFusionError,
    },
    /// The compiled expression failed on a batch.
    #[error("cannot evaluate feature expression `{expr}`: {source}")]
    Evaluate {
        /// The SQL expression as given.
        expr: String,
        /// DataFusion's error.
        #[source]
        source: DataFusionError,
    },
    /// The batch does not have the schema the expression was compiled for.
    #[error(
        "cannot evaluate feature expression `{expr}`: the batch's schema ({got}) is not the one it was compiled for ({want})"
    )]
    SchemaMismatch {
        /// The SQL expression as given.
        expr: String,
        /// The compiled-for field list.
        want: String,
        /// The batch's field list.
        got: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
