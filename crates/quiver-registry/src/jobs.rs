//! Job runs, leases and per-job state: what the scheduler (`quiver-jobs`) records.
//!
//! * `quiver_job_runs`: one row per attempt of a run, keyed `JOB@SLOT#ATTEMPT` so that two
//!   schedulers enqueueing the same slot make one row (`INSERT ... ON CONFLICT DO NOTHING`).
//! * `quiver_job_leases`: at most one row per job, naming the scheduler that runs it and until
//!   when (a heartbeat extends it). Taking a lease is one statement, `INSERT ... ON CONFLICT (job)
//!   DO UPDATE ... WHERE expires < now`, atomic on SQLite and PostgreSQL alike, so two schedulers
//!   on one registry never run a job twice at once. A run whose scheduler died keeps a lease
//!   that expires; the next scheduler marks the run abandoned.
//! * `quiver_job_state`: paused or not, and the last schedule slot enqueued.
//!
//! Times are microseconds since the epoch, passed in by the caller (the scheduler's clock), so
//! tests can drive them.

use serde::Serialize;
use sqlx::Row;

use crate::{Result, SqlMetadataStore};

pub(crate) const JOB_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS quiver_job_runs (
        id TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        scheduled_us BIGINT NOT NULL,
        attempt BIGINT NOT NULL,
        run_trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        not_before_us BIGINT NOT NULL,
        started_us BIGINT,
        ended_us BIGINT,
        owner TEXT,
        error TEXT,
        summary TEXT)",
    "CREATE INDEX IF NOT EXISTS quiver_job_runs_job ON quiver_job_runs (job, scheduled_us)",
    "CREATE TABLE IF NOT EXISTS quiver_job_leases (
        job TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        run_id TEXT NOT NULL,
        expires_us BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quiver_job_state (
        job TEXT PRIMARY KEY,
        paused BIGINT NOT NULL,
        last_slot_us BIGINT)",
];

/// One attempt of a job run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    /// `JOB@SLOT#ATTEMPT`.
    pub id: String,
    /// The job.
    pub job: String,
    /// The schedule slot (or the request time of a manual run), µs.
    pub scheduled_us: i64,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// `pending`, `running`, `succeeded`, `failed`, `abandoned` or `skipped`.
    pub status: String,
    /// Not started before this time (a retry's backoff), µs.
    pub not_before_us: i64,
    /// When it started, µs.
    pub started_us: Option<i64>,
    /// When it ended, µs.
    pub ended_us: Option<i64>,
    /// The scheduler that ran it.
    pub owner: Option<String>,
    /// Why it failed, was abandoned or skipped.
    pub error: Option<String>,
    /// What it did (rows written, metrics, ...), as JSON.
    pub summary: Option<serde_json::Value>,
}

const RUN_COLUMNS: &str = "id, job, scheduled_us, attempt, run_trigger, status, not_before_us, started_us, ended_us, owner, error, summary";

fn run_from(r: &sqlx::any::AnyRow) -> JobRun {
    JobRun {
        id: r.get(0),
        job: r.get(1),
        scheduled_us: r.get(2),
        attempt: r.get(3),
        trigger: r.get(4),
        status: r.get(5),
        not_before_us: r.get(6),
        started_us: r.try_get(7).ok().flatten(),
        ended_us: r.try_get(8).ok().flatten(),
        owner: r.try_get(9).ok().flatten(),
        error: r.try_get(10).ok().flatten(),
        summary: r
            .try_get::<Option<String>, _>(11)
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok()),
    }
}

/// The id of attempt `attempt` of `job`'s run for `slot`.
pub fn run_id(job: &str, slot_us: i64, attempt: i64) -> String {
    format!("{job}@{slot_us}#{attempt}")
}

impl SqlMetadataStore {
    /// Enqueues an attempt (status `pending`); returns false when it already exists.
    pub async fn enqueue_run(
        &self,
        job: &str,
        slot_us: i64,
        attempt: i64,
        trigger: &str,
        not_before_us: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO quiver_job_runs (id, job, scheduled_us, attempt, run_trigger, status, not_before_us)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(run_id(job, slot_us, attempt))
        .bind(job)
        .bind(slot_us)
        .bind(attempt)
        .bind(trigger)
        .bind(not_before_us)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .rows_affected();
        Ok(n == 1)
    }

    /// One attempt by id.
    pub async fn job_run(&self, id: &str) -> Result<Option<JobRun>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM quiver_job_runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.as_ref().map(run_from))
    }

    /// Pending attempts whose backoff is over, oldest slot first.
    pub async fn due_runs(&self, now_us: i64) -> Result<Vec<JobRun>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM quiver_job_runs WHERE status = 'pending' AND not_before_us <= $1 ORDER BY scheduled_us, attempt"
        ))
        .bind(now_us)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(run_from).collect())
    }

    /// Takes `job`'s lease for `run_id` until `now + ttl` if nobody holds a live one, and marks
    /// the run `running`. Returns false (and changes nothing) when another scheduler holds the
    /// lease or the run is no longer pending.
    pub async fn claim_run(
        &self,
        job: &str,
        run_id: &str,
        owner: &str,
        now_us: i64,
        ttl_us: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let leased = sqlx::query(
            "INSERT INTO quiver_job_leases (job, owner, run_id, expires_us) VALUES ($1, $2, $3, $4)
             ON CONFLICT (job) DO UPDATE SET owner = excluded.owner, run_id = excluded.run_id, expires_us = excluded.expires_us
             WHERE quiver_job_leases.expires_us < $5",
        )
        .bind(job)
        .bind(owner)
        .bind(run_id)
        .bind(now_us + ttl_us)
        .bind(now_us)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .rows_affected();
        if leased != 1 {
            tx.rollback().await.map_err(|e| self.err(e))?;
            return Ok(false);
        }
        let started = sqlx::query(
            "UPDATE quiver_job_runs SET status = 'running', started_us = $1, owner = $2 WHERE id = $3 AND status = 'pending'",
        )
        .bind(now_us)
        .bind(owner)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .rows_affected();
        if started != 1 {
            tx.rollback().await.map_err(|e| self.err(e))?;
            return Ok(false);
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Extends `owner`'s lease on `job`; false when it was lost (expired and taken).
    pub async fn heartbeat(
        &self,
        job: &str,
        owner: &str,
        now_us: i64,
        ttl_us: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE quiver_job_leases SET expires_us = $1 WHERE job = $2 AND owner = $3",
        )
        .bind(now_us + ttl_us)
        .bind(job)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Ends a running attempt (`succeeded`, `failed`) and releases the lease. False when the
    /// attempt was no longer `owner`'s to end (it was declared abandoned meanwhile).
    pub async fn finish_run(
        &self,
        run: &JobRun,
        owner: &str,
        status: &str,
        error: Option<&str>,
        summary: Option<&serde_json::Value>,
        now_us: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE quiver_job_runs SET status = $1, ended_us = $2, error = $3, summary = $4
             WHERE id = $5 AND status = 'running' AND owner = $6",
        )
        .bind(status)
        .bind(now_us)
        .bind(error)
        .bind(summary.map(|s| s.to_string()))
        .bind(&run.id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .rows_affected();
        sqlx::query("DELETE FROM quiver_job_leases WHERE job = $1 AND owner = $2")
            .bind(&run.job)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Marks a pending attempt `skipped` (a dependency failed) with the reason.
    pub async fn skip_run(&self, run_id: &str, reason: &str, now_us: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE quiver_job_runs SET status = 'skipped', ended_us = $1, error = $2 WHERE id = $3 AND status = 'pending'",
        )
        .bind(now_us)
        .bind(reason)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Marks `abandoned` every running attempt whose scheduler's lease has expired or is gone
    /// (the scheduler died), and returns them.
    pub async fn abandon_expired(&self, now_us: i64) -> Result<Vec<JobRun>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM quiver_job_runs r WHERE r.status = 'running' AND NOT EXISTS (
                SELECT 1 FROM quiver_job_leases l WHERE l.job = r.job AND l.owner = r.owner AND l.run_id = r.id AND l.expires_us >= $1)"
        ))
        .bind(now_us)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let mut abandoned = Vec::new();
        for r in rows.iter().map(run_from) {
            let n = sqlx::query(
                "UPDATE quiver_job_runs SET status = 'abandoned', ended_us = $1, error = $2 WHERE id = $3 AND status = 'running'",
            )
            .bind(now_us)
            .bind(format!(
                "its scheduler ({}) stopped sending heartbeats: the lease expired",
                r.owner.as_deref().unwrap_or("unknown")
            ))
            .bind(&r.id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?
            .rows_affected();
            if n == 1 {
                sqlx::query("DELETE FROM quiver_job_leases WHERE job = $1 AND run_id = $2 AND expires_us < $3")
                    .bind(&r.job)
                    .bind(&r.id)
                    .bind(now_us)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
                abandoned.push(JobRun {
                    status: "abandoned".into(),
                    ..r
                });
            }
        }
        Ok(abandoned)
    }

    /// Runs of `job` (every job when `None`), newest first, at most `limit`.
    pub async fn job_runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<JobRun>> {
        let (by_job, all) = (
            format!(
                "SELECT {RUN_COLUMNS} FROM quiver_job_runs WHERE job = $1 ORDER BY scheduled_us DESC, attempt DESC LIMIT $2"
            ),
            format!(
                "SELECT {RUN_COLUMNS} FROM quiver_job_runs ORDER BY scheduled_us DESC, attempt DESC LIMIT $1"
            ),
        );
        let rows = match job {
            Some(j) => sqlx::query(&by_job).bind(j).bind(limit),
            None => sqlx::query(&all).bind(limit),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(run_from).collect())
    }

    /// Whether `job` is paused, and the last schedule slot enqueued for it.
    pub async fn job_state(&self, job: &str) -> Result<(bool, Option<i64>)> {
        let row = sqlx::query("SELECT paused, last_slot_us FROM quiver_job_state WHERE job = $1")
            .bind(job)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.map_or((false, None), |r| {
            (r.get::<i64, _>(0) != 0, r.try_get(1).ok().flatten())
        }))
    }

    /// Pauses or resumes `job`.
    pub async fn set_job_paused(&self, job: &str, paused: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO quiver_job_state (job, paused) VALUES ($1, $2)
             ON CONFLICT (job) DO UPDATE SET paused = excluded.paused",
        )
        .bind(job)
        .bind(i64::from(paused))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Moves `job`'s last enqueued slot forward to `slot_us` (never back).
    pub async fn set_last_slot(&self, job: &str, slot_us: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO quiver_job_state (job, paused, last_slot_us) VALUES ($1, 0, $2)
             ON CONFLICT (job) DO UPDATE SET last_slot_us = excluded.last_slot_us
             WHERE quiver_job_state.last_slot_us IS NULL OR quiver_job_state.last_slot_us < excluded.last_slot_us",
        )
        .bind(job)
        .bind(slot_us)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
