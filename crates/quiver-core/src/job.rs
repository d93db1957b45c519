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
//!   - name: retrain_weekly
//!     schedule: "0 3 * * 1"
//!     task: {train: {model: churn, service: churn_v1, labels: data/labels.parquet, label: churned}}
//!     deploy:                            # only on a train task: see [`Deploy`]
//!       gate: {metric: roc_auc, min_gain: 0.0}
//!       rollout: shadow                  # or {canary: 0.1}
//!       promote_after: 24h
//!       max_disagreement: 0.05
//!       approval: auto                   # or manual: `quiver models approve NAME VERSION`
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
    /// How a `train` task's new version is gated, rolled out and promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
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
    /// `quiver check` of these quality sets (every set when empty): the run fails when an
    /// error-severity check fails.
    Check {
        /// Quality sets.
        #[serde(default)]
        names: Vec<String>,
    },
    /// `quiver recs train RECOMMENDER`: a new version of a recommender (its factors, and its
    /// content vectors), trained on its source as of now.
    RecsTrain {
        /// The recommender.
        recommender: String,
        /// An alias to give the new version (e.g. `champion`: serving swaps it in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        promote: Option<String>,
    },
    /// A program and its arguments, run in the repository folder.
    Command(Vec<String>),
}

impl JobTask {
    /// `materialize_incremental`, `train`, `snapshot`, `check`, `recs_train`, `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            JobTask::RecsTrain { .. } => "recs_train",
            JobTask::MaterializeIncremental { .. } => "materialize_incremental",
            JobTask::Train { .. } => "train",
            JobTask::Snapshot { .. } => "snapshot",
            JobTask::Check { .. } => "check",
            JobTask::Command(_) => "command",
        }
    }
}

/// `deploy:` of a `train` job: the gated retrain-and-deploy pipeline (run by `quiver-jobs`).
///
/// The new version and the current champion are evaluated on the same new test rows; the new
/// one becomes `challenger` only when `gate.metric` improves by at least `gate.min_gain`. Then
/// the rollout starts (shadow, or a canary share), and `promote_after` later it is promoted to
/// `champion` when the challenger scored at least `min_predictions` rows, disagreed with the
/// champion on at most `max_disagreement` of them and failed at most `max_errors` times; else
/// it is rolled back. With `approval: manual`, a passing rollout waits for
/// `quiver models approve NAME VERSION`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    /// The metric and the gain over the champion a new version needs.
    pub gate: Gate,
    /// How the challenger is tried.
    pub rollout: DeployRollout,
    /// How long the rollout runs before the decision.
    pub promote_after: Duration,
    /// The largest share of scored rows on which challenger and champion may decide
    /// differently (0 to 1).
    pub max_disagreement: f64,
    /// The most challenger errors (a version that cannot load or score) allowed.
    pub max_errors: u64,
    /// The fewest rows the challenger must have scored for a decision to promote.
    pub min_predictions: u64,
    /// Whether promotion waits for a person.
    pub approval: Approval,
}

/// The gate of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// An evaluation metric (`roc_auc`, `log_loss`, `rmse`, ...).
    pub metric: String,
    /// The least improvement over the champion (in the metric's good direction).
    pub min_gain: f64,
}

/// How a deployment tries its challenger.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployRollout {
    /// The challenger scores every request beside the champion; the champion answers.
    Shadow,
    /// A stable share of entities gets the challenger's answer.
    Canary(f64),
}

/// Whether a passing rollout is promoted by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Promoted when the rollout passes.
    #[default]
    Auto,
    /// Waits for `quiver models approve`.
    Manual,
}

/// Whether a larger value of evaluation metric `metric` is better (`None`: not a metric a gate
/// can use).
pub fn metric_higher_is_better(metric: &str) -> Option<bool> {
    match metric {
        "roc_auc" | "pr_auc" | "accuracy" | "precision" | "recall" | "f1" | "macro_f1" | "r2" => {
            Some(true)
        }
        "log_loss" | "brier" | "rmse" | "mae" => Some(false),
        _ => None,
    }
}

/// The gate metrics, for messages.
const GATE_METRICS: &str = "roc_auc, pr_auc, accuracy, precision, recall, f1, macro_f1, r2 (higher is better) or log_loss, brier, rmse, mae (lower is better)";

/// `deploy:` as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    gate: RawGate,
    #[serde(default)]
    rollout: Option<RawRollout>,
    promote_after: Option<String>,
    max_disagreement: Option<f64>,
    max_errors: Option<u64>,
    min_predictions: Option<u64>,
    approval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    metric: String,
    #[serde(default)]
    min_gain: f64,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRollout {
    Named(String),
    Canary { canary: f64 },
}

impl RawDeploy {
    fn build(self) -> std::result::Result<Deploy, (&'static str, String)> {
        if metric_higher_is_better(&self.gate.metric).is_none() {
            return Err((
                "gate",
                format!("metric '{}': use {GATE_METRICS}", self.gate.metric),
            ));
        }
        if !self.gate.min_gain.is_finite() {
            return Err(("gate", "min_gain must be a number".into()));
        }
        let rollout = match self.rollout {
            None => DeployRollout::Shadow,
            Some(RawRollout::Named(n)) if n == "shadow" => DeployRollout::Shadow,
            Some(RawRollout::Named(n)) => {
                return Err((
                    "rollout",
                    format!("'{n}': use shadow or {{canary: SHARE}} (e.g. {{canary: 0.1}})"),
                ));
            }
            Some(RawRollout::Canary { canary }) => {
                if !(canary > 0.0 && canary <= 1.0) {
                    return Err((
                        "rollout",
                        format!("canary share {canary}: give a share above 0 and at most 1"),
                    ));
                }
                DeployRollout::Canary(canary)
            }
        };
        let promote_after = match &self.promote_after {
            Some(d) => Duration::parse(d).map_err(|m| ("promote_after", m))?,
            None => Duration::parse("24h").expect("valid"),
        };
        let max_disagreement = self.max_disagreement.unwrap_or(0.05);
        if !(0.0..=1.0).contains(&max_disagreement) {
            return Err((
                "max_disagreement",
                format!("{max_disagreement}: give a share between 0 and 1"),
            ));
        }
        let approval = match self.approval.as_deref() {
            None | Some("auto") => Approval::Auto,
            Some("manual") => Approval::Manual,
            Some(o) => return Err(("approval", format!("'{o}': use auto or manual"))),
        };
        Ok(Deploy {
            gate: Gate {
                metric: self.gate.metric,
                min_gain: self.gate.min_gain,
            },
            rollout,
            promote_after,
            max_disagreement,
            max_errors: self.max_errors.unwrap_or(0),
            min_predictions: self.min_predictions.unwrap_or(1),
            approval,
        })
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
    /// The deployment of a train task's new version.
    pub deploy: Option<S<RawDeploy>>,
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
        JobTask::Check { names } => {
            for n in names {
                if !reg.quality.contains_key(n) {
                    return Err(bad(
                        task_at,
                        "task",
                        format!("no quality set '{n}'{}", suggest(n, reg.quality.keys())),
                    ));
                }
            }
            if names.is_empty() && reg.quality.is_empty() {
                return Err(bad(
                    task_at,
                    "task",
                    "check names no quality sets and the registry declares none (quality:)".into(),
                ));
            }
        }
        JobTask::RecsTrain { recommender, .. } => {
            if !reg.recommenders.contains_key(recommender) {
                return Err(bad(
                    task_at,
                    "task",
                    format!(
                        "no recommender '{recommender}'{}",
                        suggest(recommender, reg.recommenders.keys())
                    ),
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
    let deploy = match raw.deploy {
        None => None,
        Some(d) => {
            let d_at = at(file, &d);
            if let JobTask::Train {
                promote: Some(alias),
                ..
            } = &raw.task.value
            {
                return Err(bad(
                    d_at,
                    "deploy",
                    format!(
                        "a train task with deploy: cannot also promote to '{alias}': the deployment moves the aliases (challenger, then champion)"
                    ),
                ));
            }
            if !matches!(raw.task.value, JobTask::Train { .. }) {
                return Err(bad(
                    d_at,
                    "deploy",
                    format!(
                        "deploy: applies to a train task, and this job's task is {}",
                        raw.task.value.kind()
                    ),
                ));
            }
            Some(
                d.value
                    .build()
                    .map_err(|(field, m)| bad(d_at.clone(), &format!("deploy.{field}"), m))?,
            )
        }
    };
    Ok(Job {
        deploy,
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
