//! Data-quality checks: the `quality:` sets of the registry ([`quiver_core::QualitySet`]) run
//! over their source or view on the offline engine, stored with history in the metadata store,
//! counted in Prometheus metrics, and used as a gate before materialization.
//!
//! * [`scan`] runs every check of a set in **one scan** of the target: DataFusion reads the
//!   source (projection pushed into the Parquet/CSV scan) and evaluates one boolean "failing
//!   row" column per row-level check (`not_null`, `null_share`, `range`, `allowed_values`,
//!   `sql`) and the event time; each partition of the scan is folded on its own task into
//!   counts, the newest event time, the row count per time bucket (volume), the distinct keys
//!   (unique) and the first 5 failing rows of each check; the partitions' folds are merged.
//!   `schema` compares the target's columns with what the registry declares and reads no rows.
//! * [`volume`] is the robust z-score of the volume check.
//! * [`record`] runs sets, stores each run and its results in one transaction, and counts
//!   `data_quality_checks_total{check_type,status}`, `data_quality_violations_total{check_type}`
//!   and sets `quiver_data_freshness_seconds{source}` ([`check`] does all three).
//! * [`gate`] is the materialization rule: the sets on the sources (and views) a run reads are
//!   checked first; a failing error-severity check of a set with `on_failure: block` stops the
//!   run before anything is written ([`materialize_checked`]).
//! * [`validate`] checks a registry's quality sets against the data at `apply`: columns of
//!   source targets exist, `sql` expressions parse, `range` columns are numbers.

pub mod fold_exec;
pub mod gate;
pub mod record;
pub mod scan;
pub mod validate;
pub mod volume;

use quiver_core::Severity;
use serde::Serialize;
use serde_json::Value;

pub use gate::{GateOutcome, materialize_checked, run_gate};
pub use record::{check, record_reports, stored_run};
pub use scan::{NoScanProgress, ScanProgress, run_set};
pub use validate::validate_against_data;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within its threshold.
    Pass,
    /// A warn-severity check that failed.
    Warn,
    /// An error-severity check that failed.
    Fail,
}

impl Status {
    /// `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// The status of a check of `severity` that passed or not.
    pub fn of(passed: bool, severity: Severity) -> Status {
        match (passed, severity) {
            (true, _) => Status::Pass,
            (false, Severity::Warn) => Status::Warn,
            (false, Severity::Error) => Status::Fail,
        }
    }
}

/// The result of one check of a set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The quality set.
    pub quality: String,
    /// Position of the check in the set.
    pub index: usize,
    /// `schema`, `not_null`, ...
    #[serde(rename = "type")]
    pub check_type: &'static str,
    /// The columns it names.
    pub columns: Vec<String>,
    /// Its severity.
    pub severity: Severity,
    /// pass / warn / fail.
    pub status: Status,
    /// What was measured (JSON object).
    pub observed: Value,
    /// The limit it was held to (JSON object).
    pub threshold: Value,
    /// Up to 5 failing rows (JSON objects of the relevant columns).
    pub examples: Vec<Value>,
    /// One line for people: what was seen against what was allowed.
    pub message: String,
    /// Failing rows (cells for `not_null`, 1 for a set-level failure such as freshness); 0 when
    /// it passed.
    pub violations: u64,
}

/// One run of a quality set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetReport {
    /// The quality set.
    pub quality: String,
    /// `source NAME` or `view NAME`.
    pub target: String,
    /// The source whose data was read (a view's source for a view target).
    pub source: String,
    /// The time freshness and volume were measured against, µs.
    pub as_of_us: i64,
    /// When it ran, µs.
    pub checked_us: i64,
    /// Rows scanned.
    pub rows: u64,
    /// The newest event time at or before `as_of_us`, µs.
    pub newest_us: Option<i64>,
    /// Wall time of the scan.
    pub seconds: f64,
    /// Each check's result, in the set's order.
    pub results: Vec<CheckResult>,
}

impl SetReport {
    /// The worst status of its checks.
    pub fn status(&self) -> Status {
        self.results
            .iter()
            .map(|r| r.status)
            .max()
            .unwrap_or(Status::Pass)
    }
}

/// Errors of the quality checks.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// A name that is not a quality set, or a definition that does not fit the data (at apply).
    #[error("{0}")]
    Invalid(String),
    /// Materialization stopped by failing checks; nothing was written.
    #[error("{message}")]
    Blocked {
        /// Which checks failed, and how to go on.
        message: String,
        /// The reports of the sets that ran.
        reports: Vec<SetReport>,
    },
    /// Reading the data failed for a reason that is not the data's (a bug, an engine error).
    #[error(transparent)]
    Offline(#[from] quiver_offline::Error),
    /// Storing results failed.
    #[error(transparent)]
    Metadata(#[from] quiver_registry::Error),
    /// The materialization after the checks failed.
    #[error(transparent)]
    Materialize(#[from] quiver_online::materialize::MaterializeError),
}

/// Result alias of the quality checks.
pub type Result<T, E = QualityError> = std::result::Result<T, E>;

/// RFC 3339 text of a time in µs (UTC).
pub(crate) fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| us.to_string())
}

/// Microseconds since the epoch, now.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
