//! What an operator relies on: every error is JSON, `apply` reaches a running server, the
//! online store can be emptied over HTTP, and memory stays bounded when nobody scrapes
//! `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use quiver_core::plan::plan;
use quiver_core::repo::load_registry;
use quiver_registry::{MetadataStore, SqlMetadataStore};
use quiver_server::{AppState, router};
use serde_json::json;
use tower::ServiceExt;

use super::{TOKEN, YAML, call, config, embedded, materialized_app, post, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_with_its_status() {
    let dir = repo();
    let app = router(super::state(dir.path(), embedded(dir.path()), config(Some(TOKEN))).await);
    // A body over the limit (413) and a wrong method (405) come from axum itself.
    let big = format!(
        "{{\"features\": [\"stats:f0\"], \"entities\": {{\"user_id\": [{}]}}}}",
        "1,".repeat(3000) + "1"
    );
    for (method, path, body, status, needle) in [
        (
            "POST",
            "/get-online-features",
            Some(big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "server.max_body_bytes",
        ),
        (
            "GET",
            "/predict",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST",
        ),
        (
            "DELETE",
            "/metrics",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET",
        ),
    ] {
        let mut req = Request::builder().method(method).uri(path);
        req = req.header("content-type", "application/json");
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/json",
            "{method} {path}"
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(resp.headers().contains_key(header::ALLOW));
        }
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["status"], status.as_u16(), "{v}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{method} {path}: {v}"
        );
    }
    // Errors a handler makes keep their own message.
    let (s, v) = post(&app, "/write-to-online-store", json!({}), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["status"], 401, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_picks_up_a_new_registry_version() {
    let dir = repo();
    let root = dir.path();
    let meta = SqlMetadataStore::open(".quiver/registry.db", root)
        .await
        .unwrap();
    let v1 = load_registry(root).unwrap();
    let version = meta.apply(&v1, &plan(None, &v1), 0).await.unwrap();
    let state = AppState::new(
        v1.clone(),
        version,
        root.to_path_buf(),
        embedded(root),
        meta.clone(),
        config(Some(TOKEN)),
    );
    let app = router(Arc::clone(&state));
    let (_, ready) = call(&app, "GET", "/ready", None, None).await;
    assert_eq!(ready["registry_version"], version);
    let (s, _) = call(&app, "GET", "/registry/views/extra", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Nothing new: nothing changes.
    assert_eq!(state.refresh_registry().await.unwrap(), None);

    // `apply` a second version with one more view.
    let yaml = YAML.replace(
        "feature_services:",
        "  - name: extra\n    entities: [user]\n    source: stats_src\n    features:\n      - {name: f1, type: float64}\nfeature_services:",
    );
    std::fs::write(root.join("quiver.yaml"), yaml).unwrap();
    let v2 = load_registry(root).unwrap();
    let version2 = meta
        .apply(&v2, &plan(Some(&v1), &v2), version)
        .await
        .unwrap();
    assert_eq!(version2, version + 1);

    // The upkeep notices it within a round.
    let upkeep = state.spawn_upkeep(Duration::from_millis(20));
    let started = std::time::Instant::now();
    loop {
        let (_, ready) = call(&app, "GET", "/ready", None, None).await;
        if ready["registry_version"] == version2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still serving {ready}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    upkeep.abort();
    let (s, v) = call(&app, "GET", "/registry/views/extra", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list) = call(&app, "GET", "/registry/views", None, None).await;
    assert_eq!(list["registry_version"], version2);
    // The new view is served: materialize it and read it.
    let (s, v) = post(
        &app,
        "/materialize",
        json!({"start_ts": "2024-12-31T00:00:00Z", "end_ts": "2025-01-02T00:00:00Z", "feature_views": ["extra"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(
        &app,
        "/get-online-features",
        json!({"features": ["extra:f1"], "entities": {"user_id": [3]}}),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][1]["values"], json!([30.0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_store_is_emptied_over_http() {
    let dir = repo();
    let app = materialized_app(embedded(dir.path()), dir.path()).await;
    let (s, _) = post(&app, "/online/clear", json!({}), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = post(
        &app,
        "/online/clear",
        json!({"feature_views": ["stat"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("stats"), "{v}");
    let (s, v) = post(
        &app,
        "/online/clear",
        json!({"feature_views": ["stats"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["views"],
        json!([{"view": "stats", "rows": 5, "watermark_reset": true}])
    );
    let (_, v) = post(
        &app,
        "/get-online-features",
        json!({"features": ["stats:f0", "fresh:f0"], "entities": {"user_id": [1]}}),
        None,
    )
    .await;
    assert_eq!(v["results"][1]["statuses"], json!(["NOT_FOUND"]), "{v}");
    assert_eq!(
        v["results"][2]["values"],
        json!([1.0]),
        "other views are kept: {v}"
    );
    // The watermark is gone, so an incremental run starts over and writes the view again.
    let (s, v) = post(
        &app,
        "/materialize-incremental",
        json!({"end_ts": "2025-01-02T00:00:00Z", "feature_views": ["stats"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["views"][0]["written"], 5, "{v}");
    // An END before the watermark is refused.
    let (s, v) = post(
        &app,
        "/materialize-incremental",
        json!({"end_ts": "2025-01-01T00:00:00Z", "feature_views": ["stats"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("before the watermark"),
        "{v}"
    );
    // An empty body clears every view.
    let (s, v) = call(&app, "POST", "/online/clear", None, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["views"].as_array().unwrap().len(), 3, "{v}");
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Runs the measurement in a process of its own (this test binary, filtered to
/// [`bounded_memory_child`]), so that other tests running beside it do not move its resident
/// memory.
#[test]
fn memory_stays_bounded_when_nobody_scrapes_metrics() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ops::bounded_memory_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("QUIVER_TEST_MEMORY_CHILD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by memory_stays_bounded_when_nobody_scrapes_metrics in a process of its own"]
async fn bounded_memory_child() {
    if std::env::var_os("QUIVER_TEST_MEMORY_CHILD").is_none() {
        return;
    }
    let dir = repo();
    let state = super::state(dir.path(), embedded(dir.path()), config(Some(TOKEN))).await;
    let upkeep = state.spawn_upkeep(Duration::from_millis(100));
    let app = router(Arc::clone(&state));
    let health = || {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .uri("/health")
                .body(Body::empty())
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
    };
    // Warm up (allocator arenas, thread-local metric handles), then measure.
    for _ in 0..20_000 {
        health().await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = rss();
    let requests = 300_000u64;
    for i in 0..requests {
        health().await;
        if i % 20_000 == 0 {
            // Let the upkeep run on a busy runtime, as it does on a loaded server.
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let grown = rss().saturating_sub(before);
    upkeep.abort();
    println!("{requests} requests without a scrape: resident memory grew by {grown} bytes");
    // Each request records one latency sample (8 bytes and its share of a block): kept until
    // a scrape, 300,000 of them hold several MiB; drained every 100 ms, a few KiB.
    assert!(
        grown < 2 << 20,
        "{requests} requests without a scrape grew resident memory by {grown} bytes"
    );
}
