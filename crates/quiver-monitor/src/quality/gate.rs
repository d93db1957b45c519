//! The materialization gate: the quality sets on what a materialization reads run first.
//!
//! The sets that count are those on the source of each view being materialized and those on
//! the views themselves. A failing check of error severity in a set with `on_failure: block`
//! (the default for error severity) stops the run before anything is written, with a message
//! naming each failing check; failures of `on_failure: warn` sets and of warn-severity checks
//! are returned as warnings and the run goes on. Every run of the gate is stored
//! (trigger `materialize`) like `quiver check`'s.

use std::sync::Arc;

use quiver_core::{OnFailure, QualitySet, QualityTarget};
use quiver_offline::OfflineEngine;
use quiver_online::OnlineStore;
use quiver_online::materialize::{
    MaterializeOptions, MaterializeProgress, ViewReport, materialize, select_views,
};
use quiver_registry::SqlMetadataStore;

use super::record::record_reports;
use super::scan::{NoScanProgress, ScanProgress, run_set};
use super::{QualityError, Result, SetReport, Status};

/// What the gate saw.
#[derive(Debug, Clone, Default)]
pub struct GateOutcome {
    /// The sets that ran.
    pub reports: Vec<SetReport>,
    /// One line per failing check that did not block.
    pub warnings: Vec<String>,
}

/// The quality sets a materialization of `views` (every online view when empty) must pass.
pub fn sets_for_views<'r>(
    engine: &'r OfflineEngine,
    views: &[String],
) -> Result<Vec<&'r QualitySet>> {
    let reg = engine.registry();
    let selected = select_views(reg, views)?;
    Ok(reg
        .quality
        .values()
        .filter(|q| match &q.target {
            QualityTarget::Source(s) => selected.iter().any(|v| &v.source == s),
            QualityTarget::View(n) => selected.iter().any(|v| &v.name == n),
        })
        .collect())
}

fn line(r: &SetReport, c: &super::CheckResult) -> String {
    format!(
        "quality '{}' checks[{}] ({}{}) on {}: {}",
        r.quality,
        c.index,
        c.check_type,
        if c.columns.is_empty() {
            String::new()
        } else {
            format!(" {}", c.columns.join(", "))
        },
        r.target,
        c.message
    )
}

/// Runs the gate of a materialization of `views` up to `end_us`: the sets on what it reads,
/// checked as of `end_us`, stored, and judged. Returns the outcome when the run may go on,
/// [`QualityError::Blocked`] when it may not.
pub async fn run_gate(
    engine: &OfflineEngine,
    meta: &SqlMetadataStore,
    views: &[String],
    end_us: i64,
    registry_version: i64,
    progress: &Arc<dyn ScanProgress>,
) -> Result<GateOutcome> {
    let sets = sets_for_views(engine, views)?;
    let mut reports = Vec::with_capacity(sets.len());
    for set in &sets {
        reports.push(run_set(engine, set, end_us, progress).await?);
    }
    record_reports(meta, &reports, "materialize", registry_version).await?;
    let mut blocking = Vec::new();
    let mut warnings = Vec::new();
    for (set, r) in sets.iter().zip(&reports) {
        for c in r.results.iter().filter(|c| c.status != Status::Pass) {
            if c.status == Status::Fail && set.on_failure == OnFailure::Block {
                blocking.push(line(r, c));
            } else {
                warnings.push(line(r, c));
            }
        }
    }
    if !blocking.is_empty() {
        return Err(QualityError::Blocked {
            message: format!(
                "materialization blocked by {} failing quality check(s); nothing was written:\n  {}\nfix the data (see `quiver check history`), or give the set `on_failure: warn` to materialize anyway",
                blocking.len(),
                blocking.join("\n  ")
            ),
            reports,
        });
    }
    Ok(GateOutcome { reports, warnings })
}

/// [`quiver_online::materialize::materialize`] behind the gate: the quality sets on what it
/// reads run first (as of the run's END); when one blocks, nothing is written, and each failed
/// error-severity check is alerted as `check_failed` (trigger `materialize`) through `alerter`
/// (the posts are awaited; what was sent is added to the error's message). The one entry point
/// the CLI, the server, the scheduler and the Python package materialize through.
pub async fn materialize_checked(
    engine: &OfflineEngine,
    store: &dyn OnlineStore,
    meta: &SqlMetadataStore,
    opts: &MaterializeOptions,
    progress: Arc<dyn MaterializeProgress>,
    registry_version: i64,
    alerter: &quiver_jobs::Alerter,
) -> Result<(GateOutcome, Vec<ViewReport>)> {
    let no: Arc<dyn ScanProgress> = Arc::new(NoScanProgress);
    let outcome = run_gate(
        engine,
        meta,
        &opts.views,
        opts.end_us,
        registry_version,
        &no,
    )
    .await;
    let outcome = match outcome {
        Err(QualityError::Blocked { message, reports }) => {
            let alerts =
                crate::alerts::check_failed(&engine.registry().project, "materialize", &reports);
            let mut said = Vec::new();
            for body in alerts {
                for d in alerter.deliver(body.clone()).await {
                    match d {
                        quiver_jobs::alerts::Delivery::Sent(url) => {
                            said.push(format!("alert {} sent to {url}", body["key"]))
                        }
                        quiver_jobs::alerts::Delivery::Suppressed(url) => said.push(format!(
                            "alert {} not sent to {url}: sent within its repeat_interval",
                            body["key"]
                        )),
                        quiver_jobs::alerts::Delivery::Failed(..) => {}
                    }
                }
            }
            let message = if said.is_empty() {
                message
            } else {
                format!("{message}\n{}", said.join("\n"))
            };
            return Err(QualityError::Blocked { message, reports });
        }
        other => other?,
    };
    let reports = materialize(engine, store, meta, opts, progress).await?;
    Ok((outcome, reports))
}
