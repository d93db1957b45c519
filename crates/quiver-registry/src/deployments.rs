//! Model deployments and the rollout tallies they are decided on.
//!
//! * `quiver_model_deployments`: one row per deployed version (`NAME@VERSION`): the job that
//!   trained it, the policy (the job's `deploy:`), its status (`rejected`, `rolling_out`,
//!   `awaiting_approval`, `promoted`, `rolled_back`), when the rollout is decided, and every step
//!   taken so far as a JSON list. The state machine that moves it is `quiver_jobs::deploy`.
//! * `quiver_rollout_stats`: per model and challenger version, how many rows the challenger
//!   scored, on how many it decided differently from the champion, and how many times it
//!   failed. Servers add their counts every second ([`SqlMetadataStore::add_rollout_stats`]),
//!   so several servers (and a scheduler in another process) see one sum. Errors whose version
//!   is unknown (the challenger alias names nothing loadable) are counted under version
//!   [`UNKNOWN_VERSION`].
//!
//! Times are microseconds since the epoch, passed in by the caller.

use serde::Serialize;
use sqlx::Row;

use crate::{Error, Result, SqlMetadataStore};

pub(crate) const DEPLOYMENT_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS quiver_model_deployments (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        champion_version BIGINT,
        job TEXT NOT NULL,
        status TEXT NOT NULL,
        policy TEXT NOT NULL,
        started_us BIGINT NOT NULL,
        decide_us BIGINT NOT NULL,
        errors_at_start BIGINT NOT NULL,
        approved_by TEXT,
        steps TEXT NOT NULL,
        updated_us BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quiver_rollout_stats (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        predictions BIGINT NOT NULL,
        disagreements BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        PRIMARY KEY (name, version))",
];

/// The version under which challenger errors of an unknown version are counted.
pub const UNKNOWN_VERSION: i64 = -1;

/// A deployment of one model version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    /// `NAME@VERSION`.
    pub id: String,
    /// The model.
    pub name: String,
    /// The version deployed.
    pub version: i64,
    /// The champion when it started.
    pub champion_version: Option<i64>,
    /// The job that trained it.
    pub job: String,
    /// `rejected`, `rolling_out`, `awaiting_approval`, `promoted` or `rolled_back`.
    pub status: String,
    /// The job's `deploy:` as JSON.
    pub policy: serde_json::Value,
    /// When the rollout started, µs.
    pub started_us: i64,
    /// When the rollout is decided, µs.
    pub decide_us: i64,
    /// The unknown-version error count when it started (errors after it count against it).
    pub errors_at_start: i64,
    /// Who approved it (`approval: manual`).
    pub approved_by: Option<String>,
    /// Every step so far, oldest first: `{"at_us", "step", ...}`.
    pub steps: Vec<serde_json::Value>,
    /// Last change, µs.
    pub updated_us: i64,
}

impl Deployment {
    /// Whether it still waits for a decision (rolling out, or awaiting approval).
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "rolling_out" | "awaiting_approval")
    }
}

/// A challenger's tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RolloutStats {
    /// Rows the challenger scored.
    pub predictions: i64,
    /// Rows on which its decision differed from the champion's.
    pub disagreements: i64,
    /// Times it could not be loaded or scored.
    pub errors: i64,
}

const COLUMNS: &str = "id, name, version, champion_version, job, status, policy, started_us, decide_us, errors_at_start, approved_by, steps, updated_us";

fn from_row(r: &sqlx::any::AnyRow) -> Deployment {
    let json =
        |i: usize| serde_json::from_str(&r.get::<String, _>(i)).unwrap_or(serde_json::Value::Null);
    Deployment {
        id: r.get(0),
        name: r.get(1),
        version: r.get(2),
        champion_version: r.try_get(3).ok().flatten(),
        job: r.get(4),
        status: r.get(5),
        policy: json(6),
        started_us: r.get(7),
        decide_us: r.get(8),
        errors_at_start: r.get(9),
        approved_by: r.try_get(10).ok().flatten(),
        steps: match json(11) {
            serde_json::Value::Array(a) => a,
            _ => vec![],
        },
        updated_us: r.get(12),
    }
}

/// The id of the deployment of `name` version `version`.
pub fn deployment_id(name: &str, version: i64) -> String {
    format!("{name}@{version}")
}

impl SqlMetadataStore {
    /// Records a new deployment. Fails when the version was deployed before.
    pub async fn create_deployment(&self, d: &Deployment) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO quiver_model_deployments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&d.id)
        .bind(&d.name)
        .bind(d.version)
        .bind(d.champion_version)
        .bind(&d.job)
        .bind(&d.status)
        .bind(d.policy.to_string())
        .bind(d.started_us)
        .bind(d.decide_us)
        .bind(d.errors_at_start)
        .bind(&d.approved_by)
        .bind(serde_json::Value::Array(d.steps.clone()).to_string())
        .bind(d.updated_us)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Moves a deployment from status `from` to `to`, appending `step`; returns false (and
    /// changes nothing) when it is no longer in `from` (another scheduler moved it first).
    pub async fn advance_deployment(
        &self,
        id: &str,
        from: &str,
        to: &str,
        step: serde_json::Value,
        approved_by: Option<&str>,
        now_us: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM quiver_model_deployments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        else {
            return Err(Error::Model(format!("no deployment {id}")));
        };
        let d = from_row(&row);
        if d.status != from {
            tx.rollback().await.map_err(|e| self.err(e))?;
            return Ok(false);
        }
        let mut steps = d.steps;
        steps.push(step);
        let n = sqlx::query(
            "UPDATE quiver_model_deployments SET status = $1, steps = $2, updated_us = $3, approved_by = COALESCE($4, approved_by)
             WHERE id = $5 AND status = $6",
        )
        .bind(to)
        .bind(serde_json::Value::Array(steps).to_string())
        .bind(now_us)
        .bind(approved_by)
        .bind(id)
        .bind(from)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .rows_affected();
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// One deployment.
    pub async fn deployment(&self, name: &str, version: i64) -> Result<Option<Deployment>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM quiver_model_deployments WHERE id = $1"
        ))
        .bind(deployment_id(name, version))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.as_ref().map(from_row))
    }

    /// Deployments (of `name`, or of every model), newest first.
    pub async fn deployments(&self, name: Option<&str>, limit: i64) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM quiver_model_deployments WHERE ($1 = '' OR name = $1) ORDER BY started_us DESC, version DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(name.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Deployments still rolling out or awaiting approval, oldest first.
    pub async fn open_deployments(&self) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM quiver_model_deployments WHERE status IN ('rolling_out', 'awaiting_approval') ORDER BY started_us"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Adds a server's counts to the challenger tally of `name` version `version`.
    pub async fn add_rollout_stats(
        &self,
        name: &str,
        version: i64,
        add: RolloutStats,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO quiver_rollout_stats (name, version, predictions, disagreements, errors) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name, version) DO UPDATE SET
               predictions = quiver_rollout_stats.predictions + excluded.predictions,
               disagreements = quiver_rollout_stats.disagreements + excluded.disagreements,
               errors = quiver_rollout_stats.errors + excluded.errors",
        )
        .bind(name)
        .bind(version)
        .bind(add.predictions)
        .bind(add.disagreements)
        .bind(add.errors)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The challenger tally of `name` version `version` (zeros when none).
    pub async fn rollout_stats(&self, name: &str, version: i64) -> Result<RolloutStats> {
        let row = sqlx::query(
            "SELECT predictions, disagreements, errors FROM quiver_rollout_stats WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.map_or_else(RolloutStats::default, |r| RolloutStats {
            predictions: r.get(0),
            disagreements: r.get(1),
            errors: r.get(2),
        }))
    }
}
