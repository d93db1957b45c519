//! What `quiver jobs list` / `history` and `GET /jobs` show: one implementation for the CLI
//! and the server.

use quiver_core::{Job, JobTask, Registry};
use quiver_registry::{JobRun, SqlMetadataStore};
use serde_json::{Value as Json, json};

/// RFC 3339 (UTC, seconds) of microseconds since the epoch.
pub fn time_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| us.to_string())
}

/// One attempt as JSON: `job`, `run`, `scheduled_at`, `started_at`, `ended_at`, `status`,
/// `attempt`, `trigger`, `error`, `summary`, `scheduler`.
pub fn run_json(r: &JobRun) -> Json {
    json!({
        "job": r.job,
        "run": r.id,
        "scheduled_at": time_text(r.scheduled_us),
        "started_at": r.started_us.map(time_text),
        "ended_at": r.ended_us.map(time_text),
        "status": r.status,
        "attempt": r.attempt,
        "trigger": r.trigger,
        "error": r.error,
        "summary": r.summary,
        "scheduler": r.owner,
    })
}

/// What a task does, in one line.
pub fn describe_task(job: &Job) -> String {
    match &job.task {
        JobTask::MaterializeIncremental { views } if views.is_empty() => {
            "materialize_incremental (every online view)".into()
        }
        JobTask::MaterializeIncremental { views } => {
            format!("materialize_incremental {}", views.join(","))
        }
        JobTask::Train { model, service, .. } => format!("train {model} on {service}"),
        JobTask::Snapshot { views } if views.is_empty() => {
            "snapshot (every view with offline:)".into()
        }
        JobTask::Snapshot { views } => format!("snapshot {}", views.join(",")),
        JobTask::Check { names } if names.is_empty() => "check every quality set".to_string(),
        JobTask::Check { names } => format!("check {}", names.join(",")),
        JobTask::RecsTrain { recommender, .. } => format!("train recommender {recommender}"),
        JobTask::Command(argv) => format!("command {}", argv.join(" ")),
    }
}

/// Every job with its schedule, next slot, pause state and latest attempt.
pub async fn jobs_json(
    meta: &SqlMetadataStore,
    registry: &Registry,
    now_us: i64,
) -> quiver_registry::Result<Vec<Json>> {
    let mut out = Vec::new();
    for job in registry.jobs.values() {
        let (paused, _) = meta.job_state(&job.name).await?;
        let last = meta.job_runs(Some(&job.name), 1).await?;
        let next = job.schedule().next_after(now_us);
        out.push(json!({
            "job": job.name,
            "schedule": job.schedule,
            "timezone": job.timezone.as_deref().unwrap_or("UTC"),
            "task": describe_task(job),
            "depends_on": job.depends_on,
            "retries": job.retries,
            "timeout": job.timeout.map(|t| t.to_string()),
            "catchup": format!("{:?}", job.catchup).to_lowercase(),
            "paused": paused,
            "next_run": if paused { None } else { next.map(time_text) },
            "last_run": last.first().map(run_json),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339() {
        assert_eq!(super::time_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::time_text(1_772_409_600_000_000),
            "2026-03-02T00:00:00Z"
        );
        assert_eq!(
            super::time_text(951_782_400_000_000 + 3_723_000_000),
            "2000-02-29T01:02:03Z"
        );
    }
}
