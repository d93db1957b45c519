//! Drift runs and alert claims, on SQLite and PostgreSQL.

use quiver_registry::{DriftRun, SqlMetadataStore};
use serde_json::json;

fn run(model: &str, checked_us: i64, drift: bool) -> DriftRun {
    DriftRun {
        id: String::new(),
        model: model.into(),
        reference: format!("model:{model}:1"),
        current: format!("log:{model}@2025-01-01..2025-02-01"),
        checked_us,
        dataset_drift: drift,
        share_drifted: if drift { 0.75 } else { 0.25 },
        report: json!({"dataset_drift": drift, "features": [{"name": "x", "score": 0.01}]}),
    }
}

async fn monitoring_suite(store: SqlMetadataStore) {
    assert_eq!(store.latest_drift_run("churn").await.unwrap(), None);
    let a = store
        .record_drift_run(&run("churn", 100, false))
        .await
        .unwrap();
    let b = store
        .record_drift_run(&run("churn", 100, true))
        .await
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("churn@100#1", "churn@100#2"));
    store
        .record_drift_run(&run("churn", 50, false))
        .await
        .unwrap();
    store
        .record_drift_run(&run("spam", 10, false))
        .await
        .unwrap();
    let latest = store.latest_drift_run("churn").await.unwrap().unwrap();
    assert_eq!(latest.id, "churn@100#2");
    assert!(latest.dataset_drift);
    assert_eq!(latest.share_drifted, 0.75);
    assert_eq!(latest.report["features"][0]["score"], 0.01);
    let all = store.latest_drift_runs().await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["churn@100#2", "spam@10#1"]
    );
    assert_eq!(store.drift_runs(Some("churn"), 10).await.unwrap().len(), 3);

    // An alert is claimed once per interval; another key is independent.
    let hour = 3_600_000_000;
    assert!(store.claim_alert("drift:churn", 1_000, hour).await.unwrap());
    assert!(!store.claim_alert("drift:churn", 1_001, hour).await.unwrap());
    assert!(store.claim_alert("drift:spam", 1_001, hour).await.unwrap());
    assert!(
        !store
            .claim_alert("drift:churn", 1_000 + hour - 1, hour)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_alert("drift:churn", 1_000 + hour, hour)
            .await
            .unwrap()
    );
    // With no interval, every claim wins.
    assert!(store.claim_alert("job_failed:x", 5, 0).await.unwrap());
    assert!(store.claim_alert("job_failed:x", 5, 0).await.unwrap());
}

#[tokio::test]
async fn sqlite_monitoring_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetadataStore::open("registry.db", dir.path())
        .await
        .unwrap();
    monitoring_suite(store).await;
}

#[tokio::test]
async fn postgres_monitoring_state() {
    if let Some(url) = quiver_test_utils::postgres_schema_url("quiver_monitoring").await {
        let store = SqlMetadataStore::open(&url, std::path::Path::new("."))
            .await
            .unwrap();
        monitoring_suite(store).await;
    }
}
