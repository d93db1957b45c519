//! Monitoring state beside the quality results: drift runs per model, and when each alert was
//! last sent.
//!
//! * `quiver_drift_runs`: one row per `quiver drift` run whose reference or current set is a
//!   model's (`model:` or `log:`): when, the two sets as written, the data-set verdict and the
//!   JSON report. `GET /monitoring/drift/{model}` and the `quiver_*drift*` gauges read the
//!   newest row of a model.
//! * `quiver_alerts_sent`: one row per alert key (an event and its subject, per webhook) with the
//!   time it was last posted. Claiming a send is one conditional upsert, atomic on SQLite and
//!   PostgreSQL alike, so separate processes (a scheduler, a `quiver check` in cron) agree on
//!   whether an alert is still within its repeat interval.

use serde::Serialize;
use sqlx::Row;

use crate::{Result, SqlMetadataStore};

pub(crate) const MONITORING_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS quiver_drift_runs (
        id TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        reference TEXT NOT NULL,
        current_set TEXT NOT NULL,
        checked_us BIGINT NOT NULL,
        dataset_drift BIGINT NOT NULL,
        share_drifted TEXT NOT NULL,
        report TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS quiver_drift_runs_model ON quiver_drift_runs (model, checked_us)",
    "CREATE TABLE IF NOT EXISTS quiver_alerts_sent (
        alert_key TEXT PRIMARY KEY,
        sent_us BIGINT NOT NULL)",
];

/// One stored drift run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftRun {
    /// `MODEL@CHECKED_US#N`.
    pub id: String,
    /// The model whose data was compared.
    pub model: String,
    /// The reference set as given (`model:churn:3`, `log:churn@...`, a file).
    pub reference: String,
    /// The current set as given.
    pub current: String,
    /// When it ran, µs since the epoch.
    pub checked_us: i64,
    /// Whether the data set drifted.
    pub dataset_drift: bool,
    /// Share of drifted columns.
    pub share_drifted: f64,
    /// The JSON report (`quiver drift --json`'s contract).
    pub report: serde_json::Value,
}

impl SqlMetadataStore {
    /// Stores a drift run; returns its id (made unique within a microsecond).
    pub async fn record_drift_run(&self, run: &DriftRun) -> Result<String> {
        let mut tx = self.begin_write().await?;
        let id = self
            .next_run_id(
                &mut tx,
                "quiver_drift_runs",
                "model",
                &run.model,
                run.checked_us,
            )
            .await?;
        sqlx::query(
            "INSERT INTO quiver_drift_runs (id, model, reference, current_set, checked_us, dataset_drift, share_drifted, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&run.model)
        .bind(&run.reference)
        .bind(&run.current)
        .bind(run.checked_us)
        .bind(i64::from(run.dataset_drift))
        .bind(run.share_drifted.to_string())
        .bind(run.report.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// The newest drift run of `model`, if any.
    pub async fn latest_drift_run(&self, model: &str) -> Result<Option<DriftRun>> {
        Ok(self.drift_runs(Some(model), 1).await?.into_iter().next())
    }

    /// The newest drift run of each model, by model name.
    pub async fn latest_drift_runs(&self) -> Result<Vec<DriftRun>> {
        let names: Vec<String> =
            sqlx::query("SELECT DISTINCT model FROM quiver_drift_runs ORDER BY model")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.extend(self.latest_drift_run(&n).await?);
        }
        Ok(out)
    }

    /// Past drift runs, newest first (of one model, or of all); at most `limit`.
    pub async fn drift_runs(&self, model: Option<&str>, limit: i64) -> Result<Vec<DriftRun>> {
        let cols =
            "id, model, reference, current_set, checked_us, dataset_drift, share_drifted, report";
        let rows = match model {
            Some(m) => {
                sqlx::query(&format!(
                    "SELECT {cols} FROM quiver_drift_runs WHERE model = $1 ORDER BY checked_us DESC, id DESC LIMIT $2"
                ))
                .bind(m)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {cols} FROM quiver_drift_runs ORDER BY checked_us DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let report: String = r.get(7);
                DriftRun {
                    id: r.get(0),
                    model: r.get(1),
                    reference: r.get(2),
                    current: r.get(3),
                    checked_us: r.get(4),
                    dataset_drift: r.get::<i64, _>(5) != 0,
                    share_drifted: r.get::<String, _>(6).parse().unwrap_or(f64::NAN),
                    report: serde_json::from_str(&report)
                        .unwrap_or(serde_json::Value::String(report)),
                }
            })
            .collect())
    }

    /// Claims the right to send alert `key` at `now_us`: true (and the send time recorded)
    /// when it was never sent or last sent at least `repeat_us` ago; false while it is within
    /// its repeat interval. Atomic: of several processes claiming at once, one wins.
    pub async fn claim_alert(&self, key: &str, now_us: i64, repeat_us: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO quiver_alerts_sent (alert_key, sent_us) VALUES ($1, $2)
             ON CONFLICT (alert_key) DO UPDATE SET sent_us = $2
             WHERE quiver_alerts_sent.sent_us <= $3",
        )
        .bind(key)
        .bind(now_us)
        .bind(now_us.saturating_sub(repeat_us))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() == 1)
    }
}
