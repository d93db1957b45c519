//! Scheduled jobs, declared in the registry like every other object:
//!
//! ```yaml
//! jobs:
//!   - name: sync_online
//!     schedule: "*/15 * * * *"           # cron (5 fields, or 6 with seconds first), or @daily...
//!     timezone: Europe/Paris             # IANA name; UTC when absent
//!     task: {materialize_incremental: {views: [user_purchases]}}
//!     depends_on: [other_job]
//!     retries: 3                         # default 3, exponential backoff with jitter
//!     retry_delay: 30s
//!     timeout: 1h
//!     catchup: latest                    # latest | all | none
//! ```
//!
//! Validation here checks what can be checked without running anything: the cron expression and
//! time zone, the views and services a task names, the dependencies (known, no cycle). The
//! scheduler that runs them is the `quiver-jobs` crate.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::error::{Error, Located, Result};
use crate::registry::{Registry, suggest};
use crate::yaml::S;

/// A scheduled job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Name.
    pub name: String,
    /// The cron expression, as written.
    pub schedule: String,
    /// IANA time zone of the schedule (`None`: UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// What it does.
    pub task: JobTask,
    /// Jobs whose latest run must have succeeded before this one runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Further attempts after a failure.
    pub retries: u32,
    /// The delay before the first retry; each further one doubles it (with jitter).
    pub retry_delay: Duration,
    /// Longest a run may take (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// What to run after the scheduler was down.
    pub catchup: Catchup,
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

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobTask {
    /// `quiver materialize-incremental now` for these views (every online view when empty).
    MaterializeIncremental {
        /// Views.
        #[serde(default)]
        views: Vec<String>,
    },
    /// `quiver train` on a feature service: a new version of `model`.
    Train {
        /// The model name.
        model: String,
        /// The feature service.
        service: String,
        /// The label table (relative to the repository).
        labels: String,
        /// The label column.
        label: String,
        /// `gbdt` (default) or `logistic`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        algorithm: Option<String>,
        /// Training parameters (`key: value`, LightGBM names).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, String>,
        /// An alias to give the new version (e.g. `challenger`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        promote: Option<String>,
    },
    /// Today's snapshot of these views in the offline store (every view with `offline:` when
    /// empty), then the pruning of snapshots past their `retain`.
    Snapshot {
        /// Views.
        #[serde(default)]
        views: Vec<String>,
    },
    /// A program and its arguments, run in the repository folder.
    Command(Vec<String>),
}

impl JobTask {
    /// `materialize_incremental`, `train`, `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            JobTask::MaterializeIncremental { .. } => "materialize_incremental",
            JobTask::Train { .. } => "train",
            JobTask::Snapshot { .. } => "snapshot",
            JobTask::Command(_) => "command",
        }
    }
}

/// What a scheduler runs for the slots it missed while it was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// Only the latest missed slot.
    #[default]
    Latest,
    /// Every missed slot, oldest first.
    All,
    /// None: wait for the next slot.
    None,
}

/// `jobs:` item, as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// Name.
    pub name: S<String>,
    /// Cron expression.
    pub schedule: S<String>,
    /// IANA time zone.
    pub timezone: Option<S<String>>,
    /// The task.
    pub task: S<JobTask>,
    /// Dependencies.
    #[serde(default)]
    pub depends_on: Vec<S<String>>,
    /// Retries (default 3).
    pub retries: Option<S<u32>>,
    /// First retry delay (default 30s).
    pub retry_delay: Option<S<String>>,
    /// Run time limit.
    pub timeout: Option<S<String>>,
    /// `latest` (default), `all`, `none`.
    pub catchup: Option<S<String>>,
    /// Free text.
    pub description: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A parsed schedule: a cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// Parses `expr` (5 fields, 6 with seconds first, or `@hourly`, `@daily`, ...) in `timezone`
    /// (an IANA name; UTC when `None`).
    pub fn parse(expr: &str, timezone: Option<&str>) -> std::result::Result<Schedule, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| {
                format!(
                    "'{expr}' is not a cron expression ({e}): use 5 fields `minute hour day-of-month month day-of-week`, e.g. \"*/15 * * * *\" or \"0 2 * * *\", or @hourly / @daily / @weekly"
                )
            })?;
        let tz = match timezone {
            None => chrono_tz::UTC,
            Some(t) => chrono_tz::Tz::from_str(t).map_err(|_| {
                format!("'{t}' is not a time zone: use an IANA name such as UTC or Europe/Paris")
            })?,
        };
        Ok(Schedule { cron, tz })
    }

    /// The first slot strictly after `after_us` (microseconds since the epoch, UTC).
    pub fn next_after(&self, after_us: i64) -> Option<i64> {
        let t = chrono::DateTime::from_timestamp_micros(after_us)?.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&t, false)
            .ok()
            .map(|n| n.timestamp_micros())
    }

    /// The latest slot at or before `at_us`.
    pub fn latest_at_or_before(&self, at_us: i64) -> Option<i64> {
        let t = chrono::DateTime::from_timestamp_micros(at_us)?.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&t, true)
            .ok()
            .map(|n| n.timestamp_micros())
    }
}

impl Job {
    /// The job's schedule (validated when the job was loaded).
    pub fn schedule(&self) -> Schedule {
        Schedule::parse(&self.schedule, self.timezone.as_deref())
            .expect("schedules are validated when loaded")
    }
}

fn at<T>(file: &std::path::Path, s: &S<T>) -> Located {
    Located {
        file: file.to_path_buf(),
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

/// Validates one job against the registry built so far (views and services).
pub(crate) fn build_job(
    file: &std::path::Path,
    raw: RawJob,
    reg: &Registry,
    name: String,
) -> Result<Job> {
    const K: &str = "job";
    let job_at = at(file, &raw.name);
    let bad = |s_at: Located, field: &str, m: String| Error::invalid(&s_at, K, &name, field, m);
    Schedule::parse(
        &raw.schedule.value,
        raw.timezone.as_ref().map(|t| t.value.as_str()),
    )
    .map_err(|m| {
        let field_at = match &raw.timezone {
            Some(t) if m.contains("time zone") => at(file, t),
            _ => at(file, &raw.schedule),
        };
        bad(
            field_at,
            if m.contains("time zone") {
                "timezone"
            } else {
                "schedule"
            },
            m,
        )
    })?;
    let task_at = at(file, &raw.task);
    match &raw.task.value {
        JobTask::MaterializeIncremental { views } => {
            for v in views {
                match reg.views.get(v) {
                    None => {
                        return Err(bad(
                            task_at,
                            "task",
                            format!("no feature view '{v}'{}", suggest(v, reg.views.keys())),
                        ));
                    }
                    Some(view) if !view.online => {
                        return Err(bad(
                            task_at,
                            "task",
                            format!(
                                "feature view '{v}' has `online: false`: it is never materialized"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        JobTask::Train {
            model,
            service,
            labels,
            algorithm,
            ..
        } => {
            if !reg.services.contains_key(service) {
                return Err(bad(
                    task_at,
                    "task",
                    format!(
                        "no feature service '{service}'{}",
                        suggest(service, reg.services.keys())
                    ),
                ));
            }
            if model.is_empty()
                || !model
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                || !model
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(bad(
                    task_at,
                    "task",
                    format!(
                        "'{model}' is not a valid model name: use letters, digits, _ - . and start with a letter"
                    ),
                ));
            }
            if labels.is_empty() {
                return Err(bad(
                    task_at,
                    "task",
                    "train needs `labels:` (a file)".into(),
                ));
            }
            if let Some(a) = algorithm
                && !matches!(a.as_str(), "gbdt" | "logistic")
            {
                return Err(bad(
                    task_at,
                    "task",
                    format!("algorithm '{a}': use gbdt or logistic"),
                ));
            }
        }
        JobTask::Snapshot { views } => {
            for v in views {
                match reg.views.get(v) {
                    None => {
                        return Err(bad(
                            task_at,
                            "task",
                            format!("no feature view '{v}'{}", suggest(v, reg.views.keys())),
                        ));
                    }
                    Some(view) if view.is_request() => {
                        return Err(bad(
                            task_at,
                            "task",
                            format!(
                                "feature view '{v}' is computed at request time: it has nothing to snapshot"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
            if views.is_empty() && !reg.views.values().any(|v| v.offline.is_some()) {
                return Err(bad(
                    task_at,
                    "task",
                    "snapshot names no views and no view declares `offline: {snapshots: daily}`"
                        .into(),
                ));
            }
        }
        JobTask::Command(argv) => {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(bad(
                    task_at,
                    "task",
                    "command needs a program, e.g. [\"python3\", \"scripts/export.py\"]".into(),
                ));
            }
        }
    }
    let duration = |s: &S<String>, field: &str| -> Result<Duration> {
        Duration::parse(&s.value).map_err(|m| bad(at(file, s), field, m))
    };
    let retries = raw.retries.as_ref().map_or(3, |r| r.value);
    if retries > 100 {
        return Err(bad(
            at(file, raw.retries.as_ref().expect("set")),
            "retries",
            format!("{retries} retries: at most 100"),
        ));
    }
    let retry_delay = match &raw.retry_delay {
        Some(d) => duration(d, "retry_delay")?,
        None => Duration::parse("30s").expect("valid"),
    };
    let timeout = match &raw.timeout {
        Some(d) => {
            let t = duration(d, "timeout")?;
            if t.is_zero() {
                return Err(bad(
                    at(file, d),
                    "timeout",
                    "a timeout of 0 would fail every run: remove it for no limit".into(),
                ));
            }
            Some(t)
        }
        None => None,
    };
    let catchup = match &raw.catchup {
        None => Catchup::Latest,
        Some(c) => match c.value.as_str() {
            "latest" => Catchup::Latest,
            "all" => Catchup::All,
            "none" => Catchup::None,
            other => {
                return Err(bad(
                    at(file, c),
                    "catchup",
                    format!("'{other}': use latest, all or none"),
                ));
            }
        },
    };
    Ok(Job {
        schedule: raw.schedule.value,
        timezone: raw.timezone.map(|t| t.value),
        task: raw.task.value,
        depends_on: raw.depends_on.into_iter().map(|d| d.value).collect(),
        retries,
        retry_delay,
        timeout,
        catchup,
        description: raw.description,
        owner: raw.owner,
        tags: raw.tags,
        at: job_at,
        name,
    })
}

/// Checks every job's `depends_on`: known jobs, and no cycle.
pub(crate) fn check_dependencies(jobs: &BTreeMap<String, Job>) -> Result<()> {
    for job in jobs.values() {
        for d in &job.depends_on {
            if !jobs.contains_key(d) {
                return Err(Error::invalid(
                    &job.at,
                    "job",
                    &job.name,
                    "depends_on",
                    format!("no job '{d}'{}", suggest(d, jobs.keys())),
                ));
            }
        }
    }
    // Depth-first search from each job; a job met again on the current path closes a cycle.
    fn visit<'a>(
        jobs: &'a BTreeMap<String, Job>,
        name: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> std::result::Result<(), Vec<String>> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(i) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Err(cycle);
        }
        path.push(name);
        for d in &jobs[name].depends_on {
            visit(jobs, d, path, done)?;
        }
        path.pop();
        done.insert(name);
        Ok(())
    }
    let mut done = std::collections::BTreeSet::new();
    for name in jobs.keys() {
        if let Err(cycle) = visit(jobs, name, &mut Vec::new(), &mut done) {
            let job = &jobs[&cycle[0]];
            return Err(Error::invalid(
                &job.at,
                "job",
                &job.name,
                "depends_on",
                format!("dependency cycle: {}", cycle.join(" -> ")),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    /// 2026-03-28T00:00:00Z in microseconds.
    const MAR28: i64 = 1_774_656_000_000_000;
    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn schedules_find_their_slots_in_their_time_zone() {
        let every15 = Schedule::parse("*/15 * * * *", None).unwrap();
        assert_eq!(every15.next_after(MAR28), Some(MAR28 + HOUR / 4));
        assert_eq!(
            every15.latest_at_or_before(MAR28 + HOUR / 4 + 1),
            Some(MAR28 + HOUR / 4)
        );
        assert_eq!(every15.latest_at_or_before(MAR28), Some(MAR28));
        // 02:00 in Paris is 01:00 UTC on 28 March (CET), 00:00 UTC on 30 March (CEST).
        let paris = Schedule::parse("0 2 * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(paris.next_after(MAR28), Some(MAR28 + HOUR));
        assert_eq!(
            paris.next_after(MAR28 + 2 * 24 * HOUR),
            Some(MAR28 + 3 * 24 * HOUR)
        );
        assert!(Schedule::parse("@daily", None).is_ok());
        for bad in ["*/15 * * *", "61 * * * *", "every day", ""] {
            let e = Schedule::parse(bad, None).unwrap_err();
            assert!(e.contains("not a cron expression"), "{bad}: {e}");
        }
        let e = Schedule::parse("0 2 * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(e.contains("not a time zone"), "{e}");
    }
}
