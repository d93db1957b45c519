//! Running quality sets by name, storing their results with history, and counting them in the
//! Prometheus metrics.

use std::sync::Arc;

use quiver_core::QualityTarget;
use quiver_offline::OfflineEngine;
use quiver_registry::SqlMetadataStore;
use quiver_registry::quality::{QualityRun, StoredCheckResult};

use super::scan::{ScanProgress, run_set};
use super::{QualityError, Result, SetReport};

/// Metric: checks run, by type and status.
pub const CHECKS_TOTAL: &str = "data_quality_checks_total";
/// Metric: failing rows (or cells, or 1 for set-level failures), by check type.
pub const VIOLATIONS_TOTAL: &str = "data_quality_violations_total";
/// Metric: age of the newest event of a source at its last check, seconds.
pub const FRESHNESS_SECONDS: &str = "quiver_data_freshness_seconds";

/// The quality sets named (every set when `names` is empty), refusing unknown names.
pub fn select_sets<'r>(
    engine: &'r OfflineEngine,
    names: &[String],
) -> Result<Vec<&'r quiver_core::QualitySet>> {
    let reg = engine.registry();
    if names.is_empty() {
        if reg.quality.is_empty() {
            return Err(QualityError::Invalid(
                "the registry declares no quality sets: add `quality:` to a definition file (see `quiver check --help`) and apply".into(),
            ));
        }
        return Ok(reg.quality.values().collect());
    }
    names
        .iter()
        .map(|n| {
            reg.quality.get(n).ok_or_else(|| {
                QualityError::Invalid(format!(
                    "no quality set '{n}'{}",
                    quiver_core::registry::suggest(n, reg.quality.keys())
                ))
            })
        })
        .collect()
}

/// Runs the named quality sets (every set when empty) as of `as_of_us`, stores each run with
/// `trigger` (`check`, `materialize`, `job`) and the registry version, and counts them in the
/// metrics. The results are stored whatever they are; the caller decides what a failure means
/// (`quiver check` exits 1 when an error-severity check fails).
pub async fn check(
    engine: &OfflineEngine,
    meta: &SqlMetadataStore,
    names: &[String],
    as_of_us: i64,
    trigger: &str,
    registry_version: i64,
    progress: &Arc<dyn ScanProgress>,
) -> Result<Vec<SetReport>> {
    let sets = select_sets(engine, names)?;
    let mut reports = Vec::with_capacity(sets.len());
    for set in sets {
        reports.push(run_set(engine, set, as_of_us, progress).await?);
    }
    record_reports(meta, &reports, trigger, registry_version).await?;
    Ok(reports)
}

/// Stores each report (a run and its results, one transaction each) and counts it in the
/// metrics: `data_quality_checks_total{check_type,status}`,
/// `data_quality_violations_total{check_type}` and `quiver_data_freshness_seconds{source}`.
pub async fn record_reports(
    meta: &SqlMetadataStore,
    reports: &[SetReport],
    trigger: &str,
    registry_version: i64,
) -> Result<()> {
    for r in reports {
        let run = stored_run(r, trigger, registry_version);
        meta.record_quality_run(&run).await?;
        count(r);
    }
    Ok(())
}

/// A report as the metadata store keeps it (and as reports render it; the id is given when it
/// is stored).
pub fn stored_run(r: &SetReport, trigger: &str, registry_version: i64) -> QualityRun {
    QualityRun {
        id: String::new(),
        quality: r.quality.clone(),
        target: r.target.clone(),
        checked_us: r.checked_us,
        as_of_us: r.as_of_us,
        trigger: trigger.to_string(),
        status: r.status().as_str().to_string(),
        registry_version,
        results: r
            .results
            .iter()
            .map(|c| StoredCheckResult {
                index: c.index as i64,
                check_type: c.check_type.to_string(),
                columns: c.columns.clone(),
                severity: c.severity.as_str().to_string(),
                status: c.status.as_str().to_string(),
                observed: c.observed.clone(),
                threshold: c.threshold.clone(),
                examples: serde_json::Value::Array(c.examples.clone()),
                message: c.message.clone(),
                violations: c.violations as i64,
            })
            .collect(),
    }
}

/// Counts one report in the metrics (a no-op without a recorder, as in the CLI).
pub fn count(r: &SetReport) {
    for c in &r.results {
        metrics::counter!(CHECKS_TOTAL, "check_type" => c.check_type, "status" => c.status.as_str())
            .increment(1);
        if c.violations > 0 {
            metrics::counter!(VIOLATIONS_TOTAL, "check_type" => c.check_type)
                .increment(c.violations);
        }
    }
    if let Some(newest) = r.newest_us {
        metrics::gauge!(FRESHNESS_SECONDS, "source" => r.source.clone())
            .set((r.as_of_us - newest) as f64 / 1e6);
    }
}

/// The sources that have quality sets (directly or through a view): the label values of
/// `quiver_data_freshness_seconds` a server registers at start.
pub fn checked_sources(reg: &quiver_core::Registry) -> Vec<String> {
    let mut out: Vec<String> = reg
        .quality
        .values()
        .filter_map(|q| match &q.target {
            QualityTarget::Source(s) => Some(s.clone()),
            QualityTarget::View(v) => reg.views.get(v).map(|v| v.source.clone()),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Sets `quiver_data_freshness_seconds{source}` from the newest stored run of each quality set
/// with a freshness check (a server calls it at start, so the gauge survives a restart); and
/// registers the `data_quality_*` counters of every check type at 0.
pub async fn restore_metrics(meta: &SqlMetadataStore, reg: &quiver_core::Registry) -> Result<()> {
    for t in quiver_core::quality::CHECK_TYPES {
        for s in ["pass", "warn", "fail"] {
            metrics::counter!(CHECKS_TOTAL, "check_type" => t, "status" => s).increment(0);
        }
        metrics::counter!(VIOLATIONS_TOTAL, "check_type" => t).increment(0);
    }
    for run in meta.latest_quality_runs().await? {
        let source = match run.target.split_once(' ') {
            Some(("source", s)) => s.to_string(),
            Some(("view", v)) => match reg.views.get(v) {
                Some(view) => view.source.clone(),
                None => continue,
            },
            _ => continue,
        };
        if let Some(age) = run
            .results
            .iter()
            .find(|r| r.check_type == "freshness")
            .and_then(|r| r.observed["age_seconds"].as_f64())
        {
            metrics::gauge!(FRESHNESS_SECONDS, "source" => source).set(age);
        }
    }
    Ok(())
}
