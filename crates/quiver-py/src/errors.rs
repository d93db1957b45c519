//! Python exceptions: `quiver.QuiverError` and one subclass per kind of failure, each carrying
//! the message the `quiver` command prints for the same failure.
//!
//! The library crates' errors are sorted here, in one place: definitions and the registry
//! (YAML, unknown features and services, breaking plans) are [`DefinitionError`]; entity
//! frames, sources, label tables and other input data are [`DataError`]; the metadata store and
//! the online store (unreachable, locked, corrupt) are [`StoreError`]; training, scoring and
//! model files are [`ModelError`].

use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    quiver,
    QuiverError,
    PyException,
    "Every error Quiver raises; the message is the one the `quiver` command prints."
);
create_exception!(
    quiver,
    DefinitionError,
    QuiverError,
    "The definitions or the registry: YAML, an unknown feature, view or service, a breaking plan, nothing applied yet."
);
create_exception!(
    quiver,
    DataError,
    QuiverError,
    "Input data: an entity or label frame (missing column, wrong type), a source, a request."
);
create_exception!(
    quiver,
    StoreError,
    QuiverError,
    "The metadata store or the online store: unreachable, locked by a running server, corrupt."
);
create_exception!(
    quiver,
    ModelError,
    QuiverError,
    "Training, scoring or a model file; an unknown model, version or alias."
);

/// A failure of a call, sorted into the exception it raises.
#[derive(Debug)]
pub enum Failure {
    /// [`DefinitionError`].
    Definition(String),
    /// [`DataError`].
    Data(String),
    /// [`StoreError`].
    Store(String),
    /// [`ModelError`].
    Model(String),
    /// [`QuiverError`] itself (a bug or an unexpected state).
    Other(String),
}

/// Result of a call.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        match f {
            Failure::Definition(m) => DefinitionError::new_err(m),
            Failure::Data(m) => DataError::new_err(m),
            Failure::Store(m) => StoreError::new_err(m),
            Failure::Model(m) => ModelError::new_err(m),
            Failure::Other(m) => QuiverError::new_err(m),
        }
    }
}

impl From<quiver_core::Error> for Failure {
    fn from(e: quiver_core::Error) -> Self {
        match e {
            quiver_core::Error::Io { .. } => Failure::Data(e.to_string()),
            _ => Failure::Definition(e.to_string()),
        }
    }
}

impl From<quiver_offline::Error> for Failure {
    fn from(e: quiver_offline::Error) -> Self {
        match e {
            quiver_offline::Error::Definition(d) => d.into(),
            quiver_offline::Error::Internal(_) => Failure::Other(e.to_string()),
            _ => Failure::Data(e.to_string()),
        }
    }
}

impl From<quiver_registry::Error> for Failure {
    fn from(e: quiver_registry::Error) -> Self {
        use quiver_registry::Error as E;
        match e {
            E::Database { .. } | E::Corrupt { .. } => Failure::Store(e.to_string()),
            E::Conflict { .. } | E::Breaking { .. } => Failure::Definition(e.to_string()),
            E::Model(_) => Failure::Model(e.to_string()),
        }
    }
}

impl From<quiver_online::OnlineError> for Failure {
    fn from(e: quiver_online::OnlineError) -> Self {
        match e {
            quiver_online::OnlineError::Config(_) => Failure::Definition(e.to_string()),
            _ => Failure::Store(e.to_string()),
        }
    }
}

impl From<quiver_pipeline::Error> for Failure {
    fn from(e: quiver_pipeline::Error) -> Self {
        use quiver_pipeline::Error as E;
        match e {
            E::Core(c) => c.into(),
            E::Registry(r) => r.into(),
            E::Offline(o) => o.into(),
            E::Invalid(_) | E::Arrow(_) | E::Io { .. } => Failure::Data(e.to_string()),
            E::Ml(_) => Failure::Model(e.to_string()),
            _ => Failure::Other(e.to_string()),
        }
    }
}

impl From<quiver_monitor::drift::Error> for Failure {
    fn from(e: quiver_monitor::drift::Error) -> Self {
        Failure::Data(e.to_string())
    }
}

impl From<quiver_monitor::quality::QualityError> for Failure {
    fn from(e: quiver_monitor::quality::QualityError) -> Self {
        Failure::Data(e.to_string())
    }
}

impl From<quiver_recs::Error> for Failure {
    fn from(e: quiver_recs::Error) -> Self {
        Failure::Data(e.to_string())
    }
}

impl From<quiver_recs::DataCheckError> for Failure {
    fn from(e: quiver_recs::DataCheckError) -> Self {
        use quiver_recs::DataCheckError as E;
        match e {
            E::Sources(e) => e.into(),
            E::Quality(e) => e.into(),
            E::Recommenders(e) => e.into(),
        }
    }
}

impl From<quiver_server::ApiError> for Failure {
    fn from(e: quiver_server::ApiError) -> Self {
        match e.status.as_u16() {
            404 => Failure::Definition(e.message),
            503 => Failure::Store(e.message),
            400..=499 => Failure::Data(e.message),
            _ => Failure::Other(e.message),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for Failure {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Failure::Data(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for Failure {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Failure::Data(e.to_string())
    }
}
