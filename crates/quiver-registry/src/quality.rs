//! Data-quality results with their history: what `quiver check` and the materialization gate
//! record (the checks themselves run in `quiver-monitor`).
//!
//! * `quiver_quality_runs`: one row per run of a quality set (when, as of when, what started it,
//!   the worst status).
//! * `quiver_quality_results`: one row per check of a run: type, columns, status, observed value,
//!   threshold and example rows (JSON).
//!
//! A run and its results are written in one transaction: a run that fails half-way leaves
//! nothing, never a run with some of its checks.

use serde::Serialize;
use sqlx::Row;

use crate::{Result, SqlMetadataStore};

pub(crate) const QUALITY_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS quiver_quality_runs (
        id TEXT PRIMARY KEY,
        quality TEXT NOT NULL,
        target TEXT NOT NULL,
        checked_us BIGINT NOT NULL,
        as_of_us BIGINT NOT NULL,
        run_trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        registry_version BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS quiver_quality_runs_quality ON quiver_quality_runs (quality, checked_us)",
    "CREATE TABLE IF NOT EXISTS quiver_quality_results (
        run_id TEXT NOT NULL,
        check_index BIGINT NOT NULL,
        check_type TEXT NOT NULL,
        columns_json TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL,
        observed TEXT NOT NULL,
        threshold TEXT NOT NULL,
        examples TEXT NOT NULL,
        message TEXT NOT NULL,
        violations BIGINT NOT NULL,
        PRIMARY KEY (run_id, check_index))",
];

/// One check's result, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredCheckResult {
    /// Position of the check in its set.
    pub index: i64,
    /// `schema`, `not_null`, ...
    pub check_type: String,
    /// The columns it names.
    pub columns: Vec<String>,
    /// `error` or `warn`.
    pub severity: String,
    /// `pass`, `warn` or `fail`.
    pub status: String,
    /// What was measured.
    pub observed: serde_json::Value,
    /// The limit it was held to.
    pub threshold: serde_json::Value,
    /// Up to 5 failing rows.
    pub examples: serde_json::Value,
    /// One line for people.
    pub message: String,
    /// Failing rows (or cells, or 1 for a set-level failure); 0 when it passed.
    pub violations: i64,
}

/// One run of a quality set, with its results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityRun {
    /// `QUALITY@CHECKED_US#N`.
    pub id: String,
    /// The quality set.
    pub quality: String,
    /// `source NAME` or `view NAME`.
    pub target: String,
    /// When it ran, µs since the epoch.
    pub checked_us: i64,
    /// The time freshness and volume were measured against, µs.
    pub as_of_us: i64,
    /// `check`, `materialize`, `job`, ...
    pub trigger: String,
    /// The worst status of its checks: `pass`, `warn` or `fail`.
    pub status: String,
    /// The registry version whose definitions ran.
    pub registry_version: i64,
    /// Each check's result, in the set's order.
    pub results: Vec<StoredCheckResult>,
}

impl SqlMetadataStore {
    /// Stores a run and its results in one transaction; the id is made unique if another run
    /// of the same set was stored in the same microsecond. Returns the id used.
    pub async fn record_quality_run(&self, run: &QualityRun) -> Result<String> {
        let mut tx = self.begin_write().await?;
        let id = self
            .next_run_id(
                &mut tx,
                "quiver_quality_runs",
                "quality",
                &run.quality,
                run.checked_us,
            )
            .await?;
        sqlx::query(
            "INSERT INTO quiver_quality_runs (id, quality, target, checked_us, as_of_us, run_trigger, status, registry_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&run.quality)
        .bind(&run.target)
        .bind(run.checked_us)
        .bind(run.as_of_us)
        .bind(&run.trigger)
        .bind(&run.status)
        .bind(run.registry_version)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        for r in &run.results {
            sqlx::query(
                "INSERT INTO quiver_quality_results (run_id, check_index, check_type, columns_json, severity, status, observed, threshold, examples, message, violations)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&id)
            .bind(r.index)
            .bind(&r.check_type)
            .bind(serde_json::to_string(&r.columns).expect("json"))
            .bind(&r.severity)
            .bind(&r.status)
            .bind(r.observed.to_string())
            .bind(r.threshold.to_string())
            .bind(r.examples.to_string())
            .bind(&r.message)
            .bind(r.violations)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Past runs, newest first: of one quality set, or of all; at most `limit`.
    pub async fn quality_runs(&self, quality: Option<&str>, limit: i64) -> Result<Vec<QualityRun>> {
        let cols =
            "id, quality, target, checked_us, as_of_us, run_trigger, status, registry_version";
        let rows = match quality {
            Some(q) => sqlx::query(&format!(
                "SELECT {cols} FROM quiver_quality_runs WHERE quality = $1 ORDER BY checked_us DESC, id DESC LIMIT $2"
            ))
            .bind(q)
            .bind(limit)
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query(&format!(
                "SELECT {cols} FROM quiver_quality_runs ORDER BY checked_us DESC, id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(&self.pool)
            .await,
        }
        .map_err(|e| self.err(e))?;
        let mut runs = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.get(0);
            runs.push(QualityRun {
                results: self.quality_results(&id).await?,
                id,
                quality: r.get(1),
                target: r.get(2),
                checked_us: r.get(3),
                as_of_us: r.get(4),
                trigger: r.get(5),
                status: r.get(6),
                registry_version: r.get(7),
            });
        }
        Ok(runs)
    }

    /// The newest run of each quality set, by name.
    pub async fn latest_quality_runs(&self) -> Result<Vec<QualityRun>> {
        let names: Vec<String> =
            sqlx::query("SELECT DISTINCT quality FROM quiver_quality_runs ORDER BY quality")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.extend(self.quality_runs(Some(&n), 1).await?);
        }
        Ok(out)
    }

    async fn quality_results(&self, run_id: &str) -> Result<Vec<StoredCheckResult>> {
        let rows = sqlx::query(
            "SELECT check_index, check_type, columns_json, severity, status, observed, threshold, examples, message, violations
             FROM quiver_quality_results WHERE run_id = $1 ORDER BY check_index",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s));
        Ok(rows
            .into_iter()
            .map(|r| StoredCheckResult {
                index: r.get(0),
                check_type: r.get(1),
                columns: serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default(),
                severity: r.get(3),
                status: r.get(4),
                observed: json(r.get(5)),
                threshold: json(r.get(6)),
                examples: json(r.get(7)),
                message: r.get(8),
                violations: r.get(9),
            })
            .collect())
    }
}
