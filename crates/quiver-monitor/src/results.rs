//! Stored monitoring results as the server shows them: the newest quality run of each set
//! (`GET /monitoring/checks`), the newest drift run of a model (`GET /monitoring/drift/{model}`)
//! and the drift gauges `quiver_feature_drift_score{model,feature}` and
//! `quiver_dataset_drift{model}`, set from the stored runs (so a run by `quiver drift` in
//! another process shows on the server's `/metrics` at its next refresh).

use quiver_registry::SqlMetadataStore;
use serde_json::{Value, json};

/// The gauge of each feature's drift score (p-value or distance, as in the report).
pub const FEATURE_DRIFT_SCORE: &str = "quiver_feature_drift_score";
/// The gauge of a model's data-set drift: 1 drifted, 0 not.
pub const DATASET_DRIFT: &str = "quiver_dataset_drift";

/// `{"runs": [...]}`: the newest run of each quality set, with every check's result.
pub async fn latest_checks(meta: &SqlMetadataStore) -> Result<Value, quiver_registry::Error> {
    let runs = meta.latest_quality_runs().await?;
    let failing = runs.iter().filter(|r| r.status == "fail").count();
    Ok(json!({"runs": runs, "failing_sets": failing}))
}

/// The newest drift run of `model` (`None`: never compared).
pub async fn latest_drift(
    meta: &SqlMetadataStore,
    model: &str,
) -> Result<Option<Value>, quiver_registry::Error> {
    Ok(meta.latest_drift_run(model).await?.map(|r| {
        json!({
            "model": r.model,
            "id": r.id,
            "checked_at": quiver_online::format_time(r.checked_us),
            "reference": r.reference,
            "current": r.current,
            "dataset_drift": r.dataset_drift,
            "share_drifted": r.share_drifted,
            "report": r.report,
        })
    }))
}

/// Sets the drift gauges from the newest stored run of every model.
pub async fn set_drift_gauges(meta: &SqlMetadataStore) -> Result<(), quiver_registry::Error> {
    for run in meta.latest_drift_runs().await? {
        metrics::gauge!(DATASET_DRIFT, "model" => run.model.clone())
            .set(f64::from(u8::from(run.dataset_drift)));
        for f in run.report["features"].as_array().into_iter().flatten() {
            if let (Some(name), Some(score)) = (f["name"].as_str(), f["score"].as_f64()) {
                metrics::gauge!(FEATURE_DRIFT_SCORE, "model" => run.model.clone(), "feature" => name.to_string())
                    .set(score);
            }
        }
    }
    Ok(())
}
