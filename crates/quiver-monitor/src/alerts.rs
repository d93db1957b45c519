//! The bodies of monitoring alerts (posted by `quiver_jobs::Alerter`): Slack-compatible
//! (`text`) with structured fields beside it, and a `key` naming the alert's subject, so the
//! same failure is recognised as the same alert by the repeat interval.
//!
//! * `check_failed`: one per failed error-severity check (`key`: `check_failed:SET#INDEX`).
//! * `drift`: one per drifted data set of a model (`key`: `drift:MODEL`) or, without a model,
//!   per pair of data sets compared.

use serde_json::{Value, json};

use crate::quality::{SetReport, Status};

/// The `check_failed` alerts of some quality runs: one per failed error-severity check.
pub fn check_failed(project: &str, trigger: &str, reports: &[SetReport]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in reports {
        for c in r.results.iter().filter(|c| c.status == Status::Fail) {
            out.push(json!({
                "alert": "check_failed",
                "key": format!("check_failed:{}#{}", r.quality, c.index),
                "project": project,
                "quality": r.quality,
                "target": r.target,
                "check": c.check_type,
                "index": c.index,
                "columns": c.columns,
                "observed": c.observed,
                "threshold": c.threshold,
                "violations": c.violations,
                "trigger": trigger,
                "text": format!(
                    "Quiver {project}: quality check {} #{} ({}) failed on {}: {}",
                    r.quality, c.index, c.check_type, r.target, c.message
                ),
            }));
        }
    }
    out
}

/// The `drift` alert of a drift report (`quiver drift --json`'s document), when the data set
/// drifted; `model` names the model whose data it is.
pub fn drift(
    project: &str,
    model: Option<&str>,
    reference: &str,
    current: &str,
    report: &Value,
) -> Option<Value> {
    if report["dataset_drift"] != Value::Bool(true) {
        return None;
    }
    let drifted: Vec<&str> = report["features"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter(|f| f["drifted"] == Value::Bool(true))
                .filter_map(|f| f["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let subject = model.map_or_else(|| format!("{reference} -> {current}"), str::to_string);
    Some(json!({
        "alert": "drift",
        "key": format!("drift:{subject}"),
        "project": project,
        "model": model,
        "reference": reference,
        "current": current,
        "share_drifted": report["share_drifted"],
        "drifted_features": drifted,
        "text": format!(
            "Quiver {project}: data drift{} ({} of columns drifted: {}), {current} against {reference}",
            model.map(|m| format!(" for model {m}")).unwrap_or_default(),
            report["share_drifted"].as_f64().map(|s| format!("{:.0}%", s * 100.0)).unwrap_or_default(),
            drifted.join(", ")
        ),
    }))
}
