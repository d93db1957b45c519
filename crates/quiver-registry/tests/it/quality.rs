//! Quality results with history, on SQLite and PostgreSQL.

use quiver_registry::SqlMetadataStore;
use quiver_registry::quality::{QualityRun, StoredCheckResult};
use serde_json::json;

fn run(quality: &str, checked_us: i64, status: &str) -> QualityRun {
    QualityRun {
        id: String::new(),
        quality: quality.into(),
        target: "source events".into(),
        checked_us,
        as_of_us: checked_us - 5,
        trigger: "check".into(),
        status: status.into(),
        registry_version: 3,
        results: vec![
            StoredCheckResult {
                index: 0,
                check_type: "not_null".into(),
                columns: vec!["user_id".into(), "event".into()],
                severity: "error".into(),
                status: status.into(),
                observed: json!({"failing_rows": 2, "share": 0.5}),
                threshold: json!({"max_failing_rows": 0}),
                examples: json!([{"user_id": null, "event": "home"}]),
                message: "2 rows with a null".into(),
                violations: 2,
            },
            StoredCheckResult {
                index: 1,
                check_type: "freshness".into(),
                columns: vec![],
                severity: "warn".into(),
                status: "pass".into(),
                observed: json!({"age_seconds": 12.5}),
                threshold: json!({"max_age_seconds": 300}),
                examples: json!([]),
                message: "newest event 12.5 s old".into(),
                violations: 0,
            },
        ],
    }
}

async fn quality_suite(store: SqlMetadataStore) {
    assert!(store.quality_runs(None, 10).await.unwrap().is_empty());
    let first = store
        .record_quality_run(&run("events_checks", 1_000, "fail"))
        .await
        .unwrap();
    // Two runs of one set in the same microsecond get distinct ids.
    let second = store
        .record_quality_run(&run("events_checks", 1_000, "pass"))
        .await
        .unwrap();
    assert_ne!(first, second);
    store
        .record_quality_run(&run("events_checks", 2_000, "pass"))
        .await
        .unwrap();
    store
        .record_quality_run(&run("view_checks", 1_500, "warn"))
        .await
        .unwrap();

    let history = store.quality_runs(Some("events_checks"), 10).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].checked_us, 2_000, "newest first");
    let failed = history.iter().find(|r| r.id == first).unwrap();
    let expected = run("events_checks", 1_000, "fail");
    assert_eq!(failed.results, expected.results, "results read back equal");
    assert_eq!(
        (
            failed.as_of_us,
            failed.registry_version,
            failed.trigger.as_str()
        ),
        (995, 3, "check")
    );
    assert_eq!(store.quality_runs(None, 2).await.unwrap().len(), 2);
    let latest = store.latest_quality_runs().await.unwrap();
    let names: Vec<(&str, i64)> = latest
        .iter()
        .map(|r| (r.quality.as_str(), r.checked_us))
        .collect();
    assert_eq!(names, [("events_checks", 2_000), ("view_checks", 1_500)]);

    // A run that fails half-way (here, two results for one check) stores nothing: no run
    // without its results, and the history is as before.
    let mut broken = run("events_checks", 3_000, "fail");
    broken.results[1].index = 0;
    assert!(store.record_quality_run(&broken).await.is_err());
    let after = store.quality_runs(Some("events_checks"), 10).await.unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].checked_us, 2_000);
}

#[tokio::test]
async fn sqlite_quality_results() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetadataStore::open("registry.db", dir.path())
        .await
        .unwrap();
    quality_suite(store).await;
}

#[tokio::test]
async fn postgres_quality_results() {
    if let Some(url) = quiver_test_utils::postgres_schema_url("quiver_quality").await {
        let store = SqlMetadataStore::open(&url, std::path::Path::new("."))
            .await
            .unwrap();
        quality_suite(store).await;
    }
}
