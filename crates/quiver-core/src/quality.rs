//! Data-quality checks, declared in the registry per source or per view:
//!
//! ```yaml
//! quality:
//!   - name: events_checks
//!     source: events                 # or view: user_purchases
//!     severity: error                # error (default) | warn
//!     on_failure: block              # block (default for error) | warn: what materialization does
//!     checks:
//!       - {type: schema}
//!       - {type: not_null, columns: [user_id, event_type]}
//!       - {type: null_share, column: amount, max: 0.05}
//!       - {type: range, column: amount, min: 0, max: 10000}
//!       - {type: allowed_values, column: event_type, values: [view, add_to_cart, purchase]}
//!       - {type: unique, columns: [event_id]}
//!       - {type: freshness, max_age: 5m}
//!       - {type: volume, every: 1h, lookback: 14d, max_z: 4}
//!       - {type: sql, expr: "amount > 0 OR event_type <> 'purchase'", max_failing_share: 0}
//! ```
//!
//! Validation here checks what can be checked without data: the target exists, every check has
//! a known type and the fields that type needs (and no others), thresholds make sense, and a
//! view's checks name the view's columns. A source's columns and the SQL of `sql` checks are
//! checked against the data at `apply` (by `quiver-monitor`), since a source declares no columns.
//! Errors name the file, line, quality set and check (`checks[2] (range)`). The checks run in
//! `quiver-monitor`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::error::{Error, Located, Result};
use crate::registry::{Registry, suggest};
use crate::yaml::S;

/// A named set of checks on one source or view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualitySet {
    /// Name.
    pub name: String,
    /// What the checks read.
    pub target: QualityTarget,
    /// Severity of the set's checks (a check may override it).
    pub severity: Severity,
    /// What a materialization reading the target does when a check fails.
    pub on_failure: OnFailure,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Where it was defined.
    #[serde(skip)]
    pub at: Located,
}

/// The rows a quality set checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityTarget {
    /// Every row of a source, all its columns.
    Source(String),
    /// A feature view's rows: join keys, `event_timestamp` and features (one row per source row
    /// for a plain view; one row per entity, as of the check time, for an aggregation view).
    View(String),
}

impl QualityTarget {
    /// `source` or `view`.
    pub fn kind(&self) -> &'static str {
        match self {
            QualityTarget::Source(_) => "source",
            QualityTarget::View(_) => "view",
        }
    }

    /// The source's or view's name.
    pub fn name(&self) -> &str {
        match self {
            QualityTarget::Source(n) | QualityTarget::View(n) => n,
        }
    }
}

impl std::fmt::Display for QualityTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// How serious a failing check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A failure is `fail`: `quiver check` exits 1 and materialization blocks by default.
    #[default]
    Error,
    /// A failure is `warn`: reported, never blocking.
    Warn,
}

impl Severity {
    /// `error` or `warn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

/// What materialization does when a check of its sources fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Nothing is written; the error names the failing checks.
    Block,
    /// The failures are reported and the rows are written.
    Warn,
}

/// A scalar of an `allowed_values` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text.
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "{s}"),
        }
    }
}

/// One check of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What it checks.
    #[serde(flatten)]
    pub kind: CheckKind,
    /// Overrides the set's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Where it was defined.
    #[serde(skip)]
    pub at: Located,
}

/// The kinds of checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckKind {
    /// The declared columns are present with the declared types (for a source: the join keys,
    /// timestamps and columns its views read; for a view: its keys, `event_timestamp` and
    /// features); extra columns are reported, not failed.
    Schema,
    /// No nulls in these columns.
    NotNull {
        /// Columns.
        columns: Vec<String>,
    },
    /// At most `max` (0 to 1) of the rows are null in `column`.
    NullShare {
        /// Column.
        column: String,
        /// Largest share of nulls.
        max: f64,
    },
    /// Non-null values lie in `[min, max]` (NaN is out of range).
    Range {
        /// Column.
        column: String,
        /// Smallest value allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Largest value allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// Non-null values are one of `values`.
    AllowedValues {
        /// Column.
        column: String,
        /// The allowed values.
        values: Vec<Scalar>,
    },
    /// No two rows share the values of `columns` (rows with a null in them are not compared).
    Unique {
        /// Columns.
        columns: Vec<String>,
    },
    /// The newest event time is at most `max_age` before now (or `--as-of`).
    Freshness {
        /// Largest age.
        max_age: Duration,
    },
    /// The row count of the last `every` bucket is within `max_z` robust z-scores (median and
    /// 1.4826 x MAD) of the buckets of the `lookback` before it.
    Volume {
        /// Bucket width.
        every: Duration,
        /// How far back the reference buckets go.
        lookback: Duration,
        /// Largest robust z-score (default 4).
        max_z: f64,
    },
    /// Rows where the SQL expression is not true (false or null) fail; at most
    /// `max_failing_share` of the rows may (default 0).
    Sql {
        /// A boolean SQL expression over the target's columns.
        expr: String,
        /// Largest share of failing rows.
        max_failing_share: f64,
    },
}

impl CheckKind {
    /// The `type` as written: `schema`, `not_null`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Schema => "schema",
            CheckKind::NotNull { .. } => "not_null",
            CheckKind::NullShare { .. } => "null_share",
            CheckKind::Range { .. } => "range",
            CheckKind::AllowedValues { .. } => "allowed_values",
            CheckKind::Unique { .. } => "unique",
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::Volume { .. } => "volume",
            CheckKind::Sql { .. } => "sql",
        }
    }

    /// The columns the check names (none for schema, freshness, volume and sql).
    pub fn columns(&self) -> Vec<&str> {
        match self {
            CheckKind::NotNull { columns } | CheckKind::Unique { columns } => {
                columns.iter().map(String::as_str).collect()
            }
            CheckKind::NullShare { column, .. }
            | CheckKind::Range { column, .. }
            | CheckKind::AllowedValues { column, .. } => vec![column.as_str()],
            _ => vec![],
        }
    }
}

/// Every check type, as written.
pub const CHECK_TYPES: [&str; 9] = [
    "schema",
    "not_null",
    "null_share",
    "range",
    "allowed_values",
    "unique",
    "freshness",
    "volume",
    "sql",
];

impl QualitySet {
    /// The severity of check `i` (its own or the set's).
    pub fn severity_of(&self, check: &Check) -> Severity {
        check.severity.unwrap_or(self.severity)
    }

    /// How check `i` is named in messages: `checks[2] (range)`.
    pub fn check_label(&self, i: usize) -> String {
        format!("checks[{i}] ({})", self.checks[i].kind.type_name())
    }
}

impl Registry {
    /// The quality sets whose checks read `source` directly, and those on views reading it.
    pub fn quality_sets_of_source(&self, source: &str) -> Vec<&QualitySet> {
        self.quality
            .values()
            .filter(|q| match &q.target {
                QualityTarget::Source(s) => s == source,
                QualityTarget::View(v) => self.views.get(v).is_some_and(|v| v.source == source),
            })
            .collect()
    }

    /// The timestamp column of a quality set's target: the source's `timestamp_field`, or
    /// `event_timestamp` for a view.
    pub fn quality_timestamp_column(&self, set: &QualitySet) -> String {
        match &set.target {
            QualityTarget::Source(s) => self
                .sources
                .get(s)
                .map(|s| s.timestamp_field.clone())
                .unwrap_or_default(),
            QualityTarget::View(_) => "event_timestamp".to_string(),
        }
    }
}

/// `quality:` item, as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuality {
    /// Name.
    pub name: S<String>,
    /// A source to check.
    pub source: Option<S<String>>,
    /// A view to check (instead of a source).
    pub view: Option<S<String>>,
    /// `error` (default) or `warn`.
    pub severity: Option<S<String>>,
    /// `block` or `warn` (default: block for error severity, warn for warn).
    pub on_failure: Option<S<String>>,
    /// The checks.
    pub checks: Vec<S<RawCheck>>,
    /// Free text.
    pub description: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `checks:` item, as read: every field of every type, checked against the type after reading.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// The check type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Columns (not_null, unique).
    pub columns: Option<Vec<String>>,
    /// Column (null_share, range, allowed_values).
    pub column: Option<String>,
    /// Lower bound (range).
    pub min: Option<f64>,
    /// Upper bound (range) or largest share (null_share).
    pub max: Option<f64>,
    /// Allowed values (allowed_values).
    pub values: Option<Vec<Scalar>>,
    /// Largest age (freshness).
    pub max_age: Option<String>,
    /// Bucket width (volume).
    pub every: Option<String>,
    /// Reference period (volume).
    pub lookback: Option<String>,
    /// Largest robust z-score (volume).
    pub max_z: Option<f64>,
    /// SQL expression (sql).
    pub expr: Option<String>,
    /// Largest share of failing rows (sql).
    pub max_failing_share: Option<f64>,
    /// `error` or `warn`, overriding the set's.
    pub severity: Option<String>,
}

fn at<T>(file: &std::path::Path, s: &S<T>) -> Located {
    Located {
        file: file.to_path_buf(),
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

fn severity(text: &str) -> std::result::Result<Severity, String> {
    match text {
        "error" => Ok(Severity::Error),
        "warn" | "warning" => Ok(Severity::Warn),
        other => Err(format!("'{other}': use error or warn")),
    }
}

/// Validates one quality set against the registry built so far (sources and views).
pub(crate) fn build_quality(
    file: &std::path::Path,
    raw: RawQuality,
    reg: &Registry,
    name: String,
) -> Result<QualitySet> {
    const K: &str = "quality";
    let set_at = at(file, &raw.name);
    let bad = |a: &Located, field: &str, m: String| Error::invalid(a, K, &name, field, m);
    let target = match (&raw.source, &raw.view) {
        (Some(_), Some(v)) => {
            return Err(bad(
                &at(file, v),
                "view",
                "name either a source or a view, not both".into(),
            ));
        }
        (None, None) => {
            return Err(bad(
                &set_at,
                "source",
                "name what to check: `source: NAME` or `view: NAME`".into(),
            ));
        }
        (Some(s), None) => {
            if !reg.sources.contains_key(&s.value) {
                return Err(bad(
                    &at(file, s),
                    "source",
                    format!(
                        "no source '{}'{}",
                        s.value,
                        suggest(&s.value, reg.sources.keys())
                    ),
                ));
            }
            QualityTarget::Source(s.value.clone())
        }
        (None, Some(v)) => match reg.views.get(&v.value) {
            None => {
                return Err(bad(
                    &at(file, v),
                    "view",
                    format!(
                        "no feature view '{}'{}",
                        v.value,
                        suggest(&v.value, reg.views.keys())
                    ),
                ));
            }
            Some(view) if view.is_request() => {
                return Err(bad(
                    &at(file, v),
                    "view",
                    format!(
                        "feature view '{}' is computed at request time: it has no stored rows to check; check the views it reads",
                        v.value
                    ),
                ));
            }
            Some(_) => QualityTarget::View(v.value.clone()),
        },
    };
    let severity_set = match &raw.severity {
        Some(s) => severity(&s.value).map_err(|m| bad(&at(file, s), "severity", m))?,
        None => Severity::Error,
    };
    let on_failure = match &raw.on_failure {
        Some(s) => match s.value.as_str() {
            "block" => OnFailure::Block,
            "warn" => OnFailure::Warn,
            other => {
                return Err(bad(
                    &at(file, s),
                    "on_failure",
                    format!("'{other}': use block or warn"),
                ));
            }
        },
        None if severity_set == Severity::Error => OnFailure::Block,
        None => OnFailure::Warn,
    };
    if raw.checks.is_empty() {
        return Err(bad(
            &set_at,
            "checks",
            "no checks: add at least one, e.g. `- {type: not_null, columns: [user_id]}`".into(),
        ));
    }
    // The columns a view target has; a source's are known only from its data.
    let view_columns: Option<Vec<String>> = match &target {
        QualityTarget::View(v) => {
            let view = &reg.views[v];
            let mut cols: Vec<String> = reg
                .view_join_keys(view)
                .into_iter()
                .map(|k| k.name)
                .collect();
            cols.push("event_timestamp".into());
            cols.extend(view.outputs().into_iter().map(|(n, _)| n.to_string()));
            Some(cols)
        }
        QualityTarget::Source(_) => None,
    };
    let mut checks = Vec::with_capacity(raw.checks.len());
    for (i, rc) in raw.checks.into_iter().enumerate() {
        let check_at = at(file, &rc);
        let rc = rc.value;
        let kind_name = rc.kind.clone().unwrap_or_default();
        let field = format!("checks[{i}] ({kind_name})");
        let fail = |m: String| Error::invalid(&check_at, K, &name, &field, m);
        if rc.kind.is_none() {
            return Err(Error::invalid(
                &check_at,
                K,
                &name,
                &format!("checks[{i}]"),
                format!("a check needs `type:` ({})", CHECK_TYPES.join(", ")),
            ));
        }
        let given: Vec<&str> = [
            ("columns", rc.columns.is_some()),
            ("column", rc.column.is_some()),
            ("min", rc.min.is_some()),
            ("max", rc.max.is_some()),
            ("values", rc.values.is_some()),
            ("max_age", rc.max_age.is_some()),
            ("every", rc.every.is_some()),
            ("lookback", rc.lookback.is_some()),
            ("max_z", rc.max_z.is_some()),
            ("expr", rc.expr.is_some()),
            ("max_failing_share", rc.max_failing_share.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        let takes: &[&str] = match kind_name.as_str() {
            "schema" => &[],
            "not_null" | "unique" => &["columns"],
            "null_share" => &["column", "max"],
            "range" => &["column", "min", "max"],
            "allowed_values" => &["column", "values"],
            "freshness" => &["max_age"],
            "volume" => &["every", "lookback", "max_z"],
            "sql" => &["expr", "max_failing_share"],
            other => {
                return Err(fail(format!(
                    "unknown check type '{other}'{}",
                    suggest(other, CHECK_TYPES.iter())
                )));
            }
        };
        if let Some(extra) = given.iter().find(|g| !takes.contains(g)) {
            return Err(fail(format!(
                "a {kind_name} check takes no `{extra}`{}",
                if takes.is_empty() {
                    String::new()
                } else {
                    format!(" (it takes {})", takes.join(", "))
                }
            )));
        }
        let column = |c: &Option<String>| -> Result<String> {
            c.clone().ok_or_else(|| fail("needs `column:`".into()))
        };
        let columns = |c: &Option<Vec<String>>| -> Result<Vec<String>> {
            match c {
                Some(c) if !c.is_empty() => Ok(c.clone()),
                _ => Err(fail("needs `columns: [...]` (at least one)".into())),
            }
        };
        let duration = |d: &Option<String>, f: &str| -> Result<Duration> {
            let text = d.as_ref().ok_or_else(|| fail(format!("needs `{f}:`")))?;
            let parsed = Duration::parse(text).map_err(|m| fail(format!("{f}: {m}")))?;
            if parsed.is_zero() {
                return Err(fail(format!("{f}: must be more than 0")));
            }
            Ok(parsed)
        };
        let share = |x: Option<f64>, f: &str, default: Option<f64>| -> Result<f64> {
            let v = x
                .or(default)
                .ok_or_else(|| fail(format!("needs `{f}:` (a share from 0 to 1)")))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(fail(format!("{f}: {v} is not a share from 0 to 1")));
            }
            Ok(v)
        };
        let kind = match kind_name.as_str() {
            "schema" => CheckKind::Schema,
            "not_null" => CheckKind::NotNull {
                columns: columns(&rc.columns)?,
            },
            "unique" => CheckKind::Unique {
                columns: columns(&rc.columns)?,
            },
            "null_share" => CheckKind::NullShare {
                column: column(&rc.column)?,
                max: share(rc.max, "max", None)?,
            },
            "range" => {
                if rc.min.is_none() && rc.max.is_none() {
                    return Err(fail("needs `min:`, `max:` or both".into()));
                }
                if let (Some(lo), Some(hi)) = (rc.min, rc.max)
                    && lo > hi
                {
                    return Err(fail(format!("min {lo} is above max {hi}")));
                }
                if rc.min.is_some_and(f64::is_nan) || rc.max.is_some_and(f64::is_nan) {
                    return Err(fail("min and max must be numbers, not NaN".into()));
                }
                CheckKind::Range {
                    column: column(&rc.column)?,
                    min: rc.min,
                    max: rc.max,
                }
            }
            "allowed_values" => match &rc.values {
                Some(v) if !v.is_empty() => CheckKind::AllowedValues {
                    column: column(&rc.column)?,
                    values: v.clone(),
                },
                _ => return Err(fail("needs `values: [...]` (at least one)".into())),
            },
            "freshness" => CheckKind::Freshness {
                max_age: duration(&rc.max_age, "max_age")?,
            },
            "volume" => {
                let every = duration(&rc.every, "every")?;
                let lookback = duration(&rc.lookback, "lookback")?;
                let buckets = lookback.seconds() / every.seconds();
                if buckets < 3 {
                    return Err(fail(format!(
                        "lookback {lookback} holds {buckets} bucket(s) of {every}: give at least 3 (e.g. every: 1h, lookback: 14d)"
                    )));
                }
                if buckets > 100_000 {
                    return Err(fail(format!(
                        "lookback {lookback} holds {buckets} buckets of {every}: at most 100,000"
                    )));
                }
                let max_z = rc.max_z.unwrap_or(4.0);
                if max_z.is_nan() || max_z <= 0.0 {
                    return Err(fail(format!("max_z: {max_z} must be above 0")));
                }
                CheckKind::Volume {
                    every,
                    lookback,
                    max_z,
                }
            }
            "sql" => {
                let expr = rc
                    .expr
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .ok_or_else(|| fail("needs `expr:` (a boolean SQL expression)".into()))?;
                CheckKind::Sql {
                    expr,
                    max_failing_share: share(rc.max_failing_share, "max_failing_share", Some(0.0))?,
                }
            }
            _ => unreachable!("unknown types are refused above"),
        };
        if let Some(cols) = &view_columns {
            for c in kind.columns() {
                if !cols.iter().any(|v| v == c) {
                    return Err(fail(format!(
                        "view '{}' has no column '{c}'{}",
                        target.name(),
                        suggest(c, cols.iter())
                    )));
                }
            }
        }
        let sev = match &rc.severity {
            Some(s) => Some(severity(s).map_err(&fail)?),
            None => None,
        };
        checks.push(Check {
            kind,
            severity: sev,
            at: check_at,
        });
    }
    Ok(QualitySet {
        name,
        target,
        severity: severity_set,
        on_failure,
        checks,
        description: raw.description,
        owner: raw.owner,
        tags: raw.tags,
        at: set_at,
    })
}
