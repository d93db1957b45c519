//! Errors of the domain model. Every user error carries where it happened.

use std::fmt;
use std::path::PathBuf;

/// A place in a definition file: file, 1-based line and column (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Located {
    /// The YAML file, as given to the loader.
    pub file: PathBuf,
    /// 1-based line, 0 if unknown.
    pub line: u64,
    /// 1-based column, 0 if unknown.
    pub column: u64,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        } else {
            write!(f, "{}", self.file.display())
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while loading or validating definitions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not match the schema (unknown key, wrong type, ...).
    #[error("{at}: {message}")]
    Yaml {
        /// Where.
        at: Located,
        /// The parser's message.
        message: String,
    },
    /// A definition is well-formed YAML but invalid (missing reference, duplicate name, ...).
    #[error("{0}")]
    Invalid(Box<Invalid>),
    /// A feature reference (`view:feature`) that the registry does not define.
    #[error("unknown feature '{reference}': {message}")]
    UnknownFeature {
        /// The reference as given.
        reference: String,
        /// Why, and what exists instead.
        message: String,
    },
    /// A feature service that the registry does not define.
    #[error("unknown feature service '{name}'{hint}")]
    UnknownService {
        /// The name as given.
        name: String,
        /// A suggestion, starting with `; ` or empty.
        hint: String,
    },
}

/// The details of [`Error::Invalid`].
#[derive(Debug)]
pub struct Invalid {
    /// Where.
    pub at: Located,
    /// `entity`, `source`, `feature view`, `feature service` or `project`.
    pub kind: &'static str,
    /// The object's name.
    pub object: String,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} '{}', field '{}': {}",
            self.at, self.kind, self.object, self.field, self.message
        )
    }
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(
        at: &Located,
        kind: &'static str,
        object: &str,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid(Box::new(Invalid {
            at: at.clone(),
            kind,
            object: object.to_string(),
            field: field.to_string(),
            message: message.into(),
        }))
    }
}
