//! `GET /monitoring/checks`, `GET /monitoring/drift/{model}` and the drift gauges, from results
//! stored in the metadata store (as `quiver check` and `quiver drift` store them).

use std::time::Duration;

use axum::http::StatusCode;
use quiver_registry::quality::{QualityRun, StoredCheckResult};
use quiver_registry::{DriftRun, SqlMetadataStore};
use quiver_server::router;
use serde_json::json;

use super::{TOKEN, call, config, embedded, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_results_are_served_and_exported() {
    let dir = repo();
    let state = super::state(dir.path(), embedded(dir.path()), config(Some(TOKEN))).await;
    let app = router(state.clone());
    let (s, v) = call(&app, "GET", "/monitoring/checks", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"runs": [], "failing_sets": 0}));
    let (s, v) = call(&app, "GET", "/monitoring/drift/churn", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no drift result stored for model 'churn'"),
        "{v}"
    );

    // Another process stores results.
    let meta = SqlMetadataStore::open(".quiver/registry.db", dir.path())
        .await
        .unwrap();
    meta.record_quality_run(&QualityRun {
        id: String::new(),
        quality: "events_checks".into(),
        target: "source src".into(),
        checked_us: 1_000,
        as_of_us: 1_000,
        trigger: "check".into(),
        status: "fail".into(),
        registry_version: 1,
        results: vec![StoredCheckResult {
            index: 0,
            check_type: "not_null".into(),
            columns: vec!["f0".into()],
            severity: "error".into(),
            status: "fail".into(),
            observed: json!({"null_cells": 3}),
            threshold: json!({"max_null_cells": 0}),
            examples: json!([]),
            message: "3 nulls".into(),
            violations: 3,
        }],
    })
    .await
    .unwrap();
    for (at, drift, score) in [(10, false, 0.2), (20, true, 0.001)] {
        meta.record_drift_run(&DriftRun {
            id: String::new(),
            model: "churn".into(),
            reference: "model:churn:1".into(),
            current: "log:churn@2025-01-01..2025-02-01".into(),
            checked_us: at,
            dataset_drift: drift,
            share_drifted: if drift { 1.0 } else { 0.0 },
            report: json!({"dataset_drift": drift, "share_drifted": if drift { 1.0 } else { 0.0 },
                "features": [{"name": "tenure", "score": score, "drifted": drift}]}),
        })
        .await
        .unwrap();
    }
    let (s, v) = call(&app, "GET", "/monitoring/checks", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["failing_sets"], 1, "{v}");
    assert_eq!(v["runs"][0]["quality"], "events_checks");
    assert_eq!(v["runs"][0]["results"][0]["violations"], 3);
    let (s, v) = call(&app, "GET", "/monitoring/drift/churn", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["dataset_drift"], true, "{v}");
    assert_eq!(v["current"], "log:churn@2025-01-01..2025-02-01");
    assert_eq!(v["report"]["features"][0]["score"], 0.001);

    // The upkeep's first round sets the gauges from the newest run.
    let upkeep = state.spawn_upkeep(Duration::from_millis(50));
    let mut text = String::new();
    for _ in 0..100 {
        let (_, v) = call(&app, "GET", "/metrics", None, None).await;
        text = v.as_str().unwrap_or_default().to_string();
        if text.contains("quiver_dataset_drift{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upkeep.abort();
    assert!(
        text.contains(r#"quiver_dataset_drift{model="churn"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"quiver_feature_drift_score{model="churn",feature="tenure"} 0.001"#),
        "{text}"
    );
}

/// The metric names in backticks on README lines that start with `prefix` (the `/metrics` row
/// is checked against the server's catalog by the docs test; the job metrics line names the
/// scheduler's).
fn readme_metrics(readme: &str, prefix: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n{prefix}"))
        .unwrap_or_else(|| panic!("README has no line starting {prefix}"));
    let rest = &readme[start + 1..];
    // The paragraph (or table row) that starts there.
    let line = &rest[..rest.find("\n\n").unwrap_or(rest.len())];
    let line = if prefix.starts_with('|') {
        line.lines().next().unwrap()
    } else {
        line
    };
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.split('{').next().unwrap().to_string())
        .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_') && s.contains('_'))
        .collect()
}

#[test]
fn every_metric_the_dashboards_query_is_exported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut exported = readme_metrics(&readme, "| `GET /metrics` |");
    exported.extend(readme_metrics(
        &readme,
        "Metrics (in `/metrics` of `serve --scheduler`",
    ));
    for must in [
        "quiver_http_requests_total",
        "quiver_dataset_drift",
        "batch_job_executions_total",
        "data_quality_checks_total",
    ] {
        assert!(
            exported.iter().any(|e| e == must),
            "{must} not in {exported:?}"
        );
    }
    let functions = [
        "rate",
        "increase",
        "sum",
        "by",
        "histogram_quantile",
        "time",
        "le",
    ];
    let mut queried = 0;
    for name in ["serving", "data_quality", "drift", "jobs"] {
        let path = root.join(format!("deploy/grafana/{name}.json"));
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(!dash["panels"].as_array().unwrap().is_empty(), "{name}");
        for panel in dash["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                // Identifiers outside label matchers, strings and ranges.
                let mut open: Option<char> = None;
                let mut cleaned = String::new();
                for c in expr.chars() {
                    match (open, c) {
                        (None, '{') => open = Some('}'),
                        (None, '[') => open = Some(']'),
                        (Some(close), c) if c == close => open = None,
                        (None, c) => cleaned.push(c),
                        _ => {}
                    }
                }
                for word in cleaned.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.is_empty() || word.chars().next().unwrap().is_ascii_digit() {
                        continue;
                    }
                    let bare = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| word.strip_suffix(s))
                        .unwrap_or(word);
                    if functions.contains(&word) || !word.contains('_') {
                        // Label names in `by (...)` are plain words (endpoint, model, ...).
                        continue;
                    }
                    if ["job_name", "check_type"].contains(&word) {
                        continue;
                    }
                    assert!(
                        exported.iter().any(|e| e == bare),
                        "{name}.json queries `{word}`, which /metrics does not export: {expr}"
                    );
                    queried += 1;
                }
            }
        }
    }
    assert!(queried >= 20, "{queried} metric references");
    let prom = std::fs::read_to_string(root.join("deploy/prometheus.yml")).unwrap();
    assert!(prom.contains("metrics_path: /metrics") && prom.contains("localhost:6566"));
}
