//! # quiver-recs
//!
//! Recommenders declared in the registry (`recommenders:`, see
//! `quiver_core::recommender`): interactions aggregated into a sparse confidence matrix,
//! implicit-feedback ALS (Hu, Koren, Volinsky) as the `implicit` library computes it, ranking
//! metrics, popularity, and the model's files.
//!
//! Data flows through these modules, in order:
//!
//! 1. [`interactions`]: interaction rows (user, item, event type, weight, time) weighted by
//!    event type, decayed by age (half-life) and cut by a window, summed per (user, item) into a
//!    users × items [`csr::Csr`] matrix with the id maps, and checked (empty, too few).
//! 2. [`als`]: user and item factors fitted to that matrix (conjugate gradient or Cholesky,
//!    rayon over rows, seeded), the training loss, and the fold-in of an unknown user.
//! 3. [`model`]: the fitted recommender: top-k for a user (screened in 8 bits by [`quant`],
//!    cut exactly by partial sort, seen items excluded), similar items (cosine of item factors), popularity; its files
//!    ([`artifact`]: factors in a little-endian layout a server maps without copying).
//! 4. [`metrics`]: precision, MAP, NDCG and AUC at k with `implicit.evaluation`'s definitions,
//!    catalog coverage, diversity and novelty, for the model and the popularity baseline.
//! 5. [`source`], [`split`], [`train`], [`tune`]: reading a declared source or a file,
//!    splitting, training and registering a version, and the parameter grid.
//! 6. [`serve`]: answering a request from a loaded version: CF, popularity, the cold-start
//!    blend and fold-in, exclusions and filters on item attributes ([`attributes`]), similar
//!    items (what `POST /recommend` wires).
//!    With `serving: {user_factors: online}` the per-user state comes from the online store
//!    ([`users`]) instead of the loaded version.
//! 7. [`ab`]: A/B experiments (`experiments:`): stable assignment of users to arms, the
//!    exposure log's rows, and the report (CTR and CVR per arm with intervals, lifts with
//!    z-tests, the sample-ratio-mismatch check, its HTML page).
//!
//! Everything here returns [`Error`]; nothing prints.

#![warn(missing_docs)]

pub mod ab;
pub mod als;
pub mod artifact;
pub mod attributes;
pub mod content;
pub mod csr;
pub mod evaluate;
pub mod interactions;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod popularity;
pub mod quant;
pub mod registry;
pub mod serve;
pub mod source;
pub mod split;
pub mod topk;
pub mod train;
pub mod tune;
pub mod users;

pub use als::{AlsFactors, AlsParams, Factors, Solver};
pub use csr::Csr;
pub use interactions::{IdMap, Interaction, InteractionLog, Interactions, WeightRule};
pub use model::RecModel;

use std::path::PathBuf;

/// What can go wrong. [`Error::Invalid`] is the user's to fix (empty interactions, an unknown
/// id, k out of range, a missing column) and its message says what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist yet (an experiment with no exposures logged).
    #[error("{0}")]
    NotFound(String),
    /// The online store failed, or holds a user row that does not fit the version.
    #[error(transparent)]
    Online(#[from] quiver_online::OnlineError),
    /// A file that cannot be read or written.
    #[error("{path}: {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model file that is not what it should be.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why `apply` refused definitions against their data ([`check_against_data`]).
#[derive(Debug, thiserror::Error)]
pub enum DataCheckError {
    /// A source or view does not fit its files or tables.
    #[error(transparent)]
    Sources(#[from] quiver_offline::Error),
    /// A quality set names a column or type the data lacks.
    #[error(transparent)]
    Quality(#[from] quiver_monitor::quality::QualityError),
    /// A recommender or experiment does not fit its source.
    #[error(transparent)]
    Recommenders(#[from] Error),
}

/// The checks `quiver apply` (and the Python package's `apply`) run against the data before
/// storing anything, in order: sources and views against their schemas, quality sets against
/// their columns, recommenders and experiments against their sources. It lives here, in the
/// lowest crate that sees all three.
pub async fn check_against_data(
    registry: &quiver_core::Registry,
    root: &std::path::Path,
) -> Result<(), DataCheckError> {
    let engine = quiver_offline::OfflineEngine::new(registry.clone(), root);
    engine.validate().await?;
    quiver_monitor::quality::validate_against_data(&engine).await?;
    source::validate(registry, root).await?;
    Ok(())
}
