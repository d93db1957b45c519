//! HTTP tests of every endpoint, status and error, on the embedded store and Redis, and the
//! Redis-outage test.

mod decayed;
mod monitoring;
mod ops;
mod outage;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use quiver_core::repo::load_registry;
use quiver_online::OnlineStore;
use quiver_registry::SqlMetadataStore;
use quiver_server::{AppState, ServerConfig, router};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const TOKEN: &str = "s3cret-token";
/// 2025-01-01T00:00:00Z in µs.
pub const T0: i64 = 1_735_689_600_000_000;
pub const HOUR: i64 = 3_600_000_000;

pub const YAML: &str = r#"
project: srv
entities:
  - {name: user, join_keys: [user_id]}
  - {name: city, join_keys: [city], value_type: string}
sources:
  - {name: stats_src, type: parquet, path: data/stats, timestamp_field: event_timestamp}
  - {name: city_src, type: parquet, path: data/cities.parquet, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [user]
    source: stats_src
    features:
      - {name: f0, type: float64}
      - {name: f1, type: float64}
      - {name: tier, type: string}
  - name: fresh
    entities: [user]
    source: stats_src
    ttl: 1d
    features:
      - {name: f0, type: float64}
  - name: cities
    entities: [city]
    source: city_src
    features:
      - {name: population, type: int64}
feature_services:
  - name: svc
    features: ["stats:f1", "cities:population", "stats:f0"]
"#;

pub fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let b = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), b.schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
}

/// Users 1..=5: f0 = u, f1 = u * 10, tier "t{u}", at T0 + u hours; cities "paris" and "oslo".
pub fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("quiver.yaml"), YAML).unwrap();
    let users: Vec<i64> = (1..=5).collect();
    write_parquet(
        &root.join("data/stats/part-0.parquet"),
        vec![
            (
                "user_id",
                Arc::new(Int64Array::from(users.clone())) as ArrayRef,
            ),
            (
                "event_timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from(
                        users.iter().map(|u| T0 + u * HOUR).collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            (
                "f0",
                Arc::new(Float64Array::from(
                    users.iter().map(|u| *u as f64).collect::<Vec<_>>(),
                )),
            ),
            (
                "f1",
                Arc::new(Float64Array::from(
                    users.iter().map(|u| *u as f64 * 10.0).collect::<Vec<_>>(),
                )),
            ),
            (
                "tier",
                Arc::new(StringArray::from(
                    users.iter().map(|u| format!("t{u}")).collect::<Vec<_>>(),
                )),
            ),
        ],
    );
    write_parquet(
        &root.join("data/cities.parquet"),
        vec![
            (
                "city",
                Arc::new(StringArray::from(vec!["paris", "oslo"])) as ArrayRef,
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![T0, T0]).with_timezone("UTC")),
            ),
            (
                "population",
                Arc::new(Int64Array::from(vec![2_100_000, 700_000])),
            ),
        ],
    );
    dir
}

pub fn config(token: Option<&str>) -> ServerConfig {
    ServerConfig {
        max_body_bytes: 4096,
        max_entities: 100,
        token: token.map(str::to_string),
        protect_reads: false,
        token_source: "test".into(),
        prediction_log: quiver_server::prediction_log::PredictionLogConfig::from_settings(
            None,
            Path::new(""),
        ),
    }
}

pub async fn state(
    root: &Path,
    store: Arc<dyn OnlineStore>,
    config: ServerConfig,
) -> Arc<AppState> {
    let registry = load_registry(root).unwrap();
    let meta = SqlMetadataStore::open(".quiver/registry.db", root)
        .await
        .unwrap();
    AppState::new(registry, 1, root.to_path_buf(), store, meta, config)
}

/// Sends one request; returns status and JSON (or the text as a JSON string).
pub async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<String>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

pub async fn post(
    app: &axum::Router,
    path: &str,
    body: Value,
    token: Option<&str>,
) -> (StatusCode, Value) {
    call(app, "POST", path, Some(body.to_string()), token).await
}

fn embedded(root: &Path) -> Arc<dyn OnlineStore> {
    Arc::new(quiver_online::embedded::EmbeddedStore::open(&root.join(".quiver/online")).unwrap())
}

async fn materialized_app(store: Arc<dyn OnlineStore>, root: &Path) -> axum::Router {
    let app = router(state(root, store, config(Some(TOKEN))).await);
    let (s, v) = post(
        &app,
        "/materialize",
        json!({"start_ts": "2024-12-31T00:00:00Z", "end_ts": "2025-01-02T00:00:00Z"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let views = v["views"].as_array().unwrap();
    let stats = views.iter().find(|x| x["view"] == "stats").unwrap();
    assert_eq!(stats["written"], 5);
    app
}

/// The read path, on any store.
/// `expired_kept`: whether the store still holds rows past their TTL (the embedded store does;
/// Redis expires them one TTL plus a grace period after their event time).
async fn online_features_suite(app: &axum::Router, expired_kept: bool) {
    // Features in the order requested, join keys first, values and statuses per row.
    let (s, v) = post(
        app,
        "/get-online-features",
        json!({"features": ["stats:tier", "stats:f0", "fresh:f0"], "entities": {"user_id": [2, 9, 5]}}),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["metadata"]["feature_names"],
        json!(["user_id", "tier", "f0", "f0"])
    );
    let r = &v["results"];
    assert_eq!(r[0]["values"], json!([2, 9, 5]));
    assert_eq!(r[0]["statuses"], json!(["PRESENT", "PRESENT", "PRESENT"]));
    assert_eq!(r[1]["values"], json!(["t2", null, "t5"]));
    assert_eq!(r[1]["statuses"], json!(["PRESENT", "NOT_FOUND", "PRESENT"]));
    assert_eq!(
        r[1]["event_timestamps"],
        json!([
            "2025-01-01T02:00:00Z",
            "1970-01-01T00:00:00Z",
            "2025-01-01T05:00:00Z"
        ])
    );
    assert_eq!(r[2]["values"], json!([2.0, null, 5.0]));
    // `fresh` has a 1-day TTL and 2025 data: served, but marked expired.
    if expired_kept {
        assert_eq!(r[3]["values"], json!([2.0, null, 5.0]));
        assert_eq!(
            r[3]["statuses"],
            json!(["OUTSIDE_MAX_AGE", "NOT_FOUND", "OUTSIDE_MAX_AGE"])
        );
    } else {
        assert_eq!(r[3]["values"], json!([null, null, null]));
        assert_eq!(
            r[3]["statuses"],
            json!(["NOT_FOUND", "NOT_FOUND", "NOT_FOUND"])
        );
    }

    // Full names, and a service over two entities.
    let (s, v) = post(
        app,
        "/get-online-features",
        json!({"feature_service": "svc", "entities": {"user_id": [1], "city": ["oslo"]}, "full_feature_names": true}),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["metadata"]["feature_names"],
        json!([
            "user_id",
            "city",
            "stats__f1",
            "cities__population",
            "stats__f0"
        ])
    );
    assert_eq!(v["results"][2]["values"], json!([10.0]));
    assert_eq!(v["results"][3]["values"], json!([700_000]));
    assert_eq!(v["results"][4]["values"], json!([1.0]));
}

async fn errors_suite(app: &axum::Router) {
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"features": ["stats:nope"], "entities": {"user_id": [1]}}),
            StatusCode::BAD_REQUEST,
            "nope",
        ),
        (
            json!({"features": ["stat:f0"], "entities": {"user_id": [1]}}),
            StatusCode::BAD_REQUEST,
            "stats",
        ),
        (
            json!({"feature_service": "svx", "entities": {"user_id": [1]}}),
            StatusCode::NOT_FOUND,
            "svx",
        ),
        (
            json!({"features": ["stats:f0"], "entities": {"user_id": ["one"]}}),
            StatusCode::BAD_REQUEST,
            "entities.user_id[0] is \"one\", but join key 'user_id' is int64",
        ),
        (
            json!({"features": ["cities:population"], "entities": {"city": [3]}}),
            StatusCode::BAD_REQUEST,
            "join key 'city' is string",
        ),
        (
            json!({"features": ["stats:f0"], "entities": {"customer": [1]}}),
            StatusCode::BAD_REQUEST,
            "no 'user_id'",
        ),
        (
            json!({"features": ["stats:f0"], "entities": {"user_id": 1}}),
            StatusCode::BAD_REQUEST,
            "must be a list",
        ),
        (
            json!({"features": ["stats:f0", "cities:population"], "entities": {"user_id": [1, 2], "city": ["oslo"]}}),
            StatusCode::BAD_REQUEST,
            "every join key needs one value per row",
        ),
        (
            json!({"entities": {"user_id": [1]}}),
            StatusCode::BAD_REQUEST,
            "no features requested",
        ),
        (
            json!({"features": ["stats:f0"], "entities": {"user_id": (0..101).collect::<Vec<_>>()}}),
            StatusCode::BAD_REQUEST,
            "the limit is 100",
        ),
        (
            json!({"features": ["stats:f0"]}),
            StatusCode::BAD_REQUEST,
            "entities",
        ),
    ];
    for (body, status, needle) in cases {
        let (s, v) = post(app, "/get-online-features", body.clone(), None).await;
        assert_eq!(s, status, "{body} -> {v}");
        let m = v["error"].as_str().unwrap_or_default();
        assert!(m.contains(needle), "{body}: '{m}' lacks '{needle}'");
    }
    let (s, v) = call(
        app,
        "POST",
        "/get-online-features",
        Some("{\"features\": [".into()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().contains("malformed JSON"),
        "{v}"
    );
    let big = format!(
        "{{\"features\": [\"stats:f0\"], \"entities\": {{\"user_id\": [{}]}}}}",
        "1,".repeat(3000) + "1"
    );
    let (s, _) = call(app, "POST", "/get-online-features", Some(big), None).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, v) = call(app, "GET", "/nope", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("/docs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_serving_on_the_embedded_store() {
    let dir = repo();
    let app = materialized_app(embedded(dir.path()), dir.path()).await;
    online_features_suite(&app, true).await;
    errors_suite(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_serving_on_redis() {
    if !outage::redis_available().await {
        return;
    }
    let dir = repo();
    let project = format!("srv{}x{}", std::process::id(), T0 % 7);
    let store = Arc::new(
        quiver_online::redis_store::RedisStore::new(
            "redis://127.0.0.1:6379",
            &project,
            None,
            Duration::from_secs(2),
        )
        .unwrap(),
    );
    let app = materialized_app(store.clone(), dir.path()).await;
    online_features_suite(&app, false).await;
    for v in ["stats", "fresh", "cities"] {
        store.delete_view(v).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_and_reads_can() {
    let dir = repo();
    let body = json!({"feature_view_name": "stats", "df": {"user_id": [1], "event_timestamp": ["2025-02-01 00:00:00"], "f0": [1.0], "f1": [2.0], "tier": ["x"]}});
    // No token configured: writes are refused, reads work.
    let app = router(state(dir.path(), embedded(dir.path()), config(None)).await);
    let (s, v) = post(
        &app,
        "/write-to-online-store",
        body.clone(),
        Some("anything"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["error"].as_str().unwrap().contains("none is configured"));
    drop(app);
    let app = router(state(dir.path(), embedded(dir.path()), config(Some(TOKEN))).await);
    let (s, v) = post(&app, "/write-to-online-store", body.clone(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = post(&app, "/write-to-online-store", body.clone(), Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post(&app, "/materialize", json!({}), Some("s3cret-tokem")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = post(&app, "/write-to-online-store", body, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["written"], 1);
    let read = json!({"features": ["stats:tier"], "entities": {"user_id": [1]}});
    let (s, v) = post(&app, "/get-online-features", read.clone(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["results"][1]["values"], json!(["x"]));
    drop(app);
    // protect_reads: reads need it too.
    let mut c = config(Some(TOKEN));
    c.protect_reads = true;
    let app = router(state(dir.path(), embedded(dir.path()), c).await);
    let (s, _) = post(&app, "/get-online-features", read.clone(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post(&app, "/get-online-features", read, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&app, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_online_and_offline_then_materialize_incrementally() {
    let dir = repo();
    let app = router(state(dir.path(), embedded(dir.path()), config(Some(TOKEN))).await);
    let rows = json!({"user_id": [1, 7], "event_timestamp": ["2025-03-01T00:00:00Z", 1740787200.5], "f0": [100.5, 7.0], "f1": [null, 70.0], "tier": ["gold", "new"]});
    let (s, v) = post(
        &app,
        "/push",
        json!({"push_source_name": "stats_src", "df": rows, "to": "online_and_offline"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rows"], 2);
    let file = v["offline_file"].as_str().unwrap();
    assert!(dir.path().join(file).is_file(), "{file}");
    // Online: both views of the source got the rows.
    let (_, v) = post(
        &app,
        "/get-online-features",
        json!({"features": ["stats:f0", "stats:f1", "fresh:f0"], "entities": {"user_id": [7, 1]}}),
        None,
    )
    .await;
    assert_eq!(v["results"][1]["values"], json!([7.0, 100.5]));
    assert_eq!(v["results"][2]["values"], json!([70.0, null]));
    assert_eq!(v["results"][3]["values"], json!([7.0, 100.5]));
    // Offline: the pushed rows are now part of the source; an older materialization does not
    // overwrite them, and the offline engine sees them.
    let (s, v) = post(
        &app,
        "/materialize",
        json!({"start_ts": "2024-01-01", "end_ts": "2025-12-31"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let stats = v["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["view"] == "stats")
        .unwrap()
        .clone();
    assert_eq!(stats["entities"], 6, "{stats}");
    let (_, v) = post(
        &app,
        "/get-online-features",
        json!({"features": ["stats:tier"], "entities": {"user_id": [1, 3]}}),
        None,
    )
    .await;
    assert_eq!(v["results"][1]["values"], json!(["gold", "t3"]));
    // Incremental from the watermark: nothing new.
    let (s, v) = post(
        &app,
        "/materialize-incremental",
        json!({"end_ts": "2026-01-01T00:00:00Z", "feature_views": ["stats"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["views"][0]["entities"], 0);
    assert_eq!(v["views"][0]["start"], "2025-12-31T00:00:00Z");

    // Bad pushes write nothing and say why.
    for (body, status, needle) in [
        (
            json!({"push_source_name": "nope", "df": {"user_id": [1]}}),
            StatusCode::NOT_FOUND,
            "no source 'nope'",
        ),
        (
            json!({"push_source_name": "stats_src", "df": {"user_id": [1], "event_timestamp": ["2025-01-01"], "f0": [1.0], "f1": [1.0]}}),
            StatusCode::BAD_REQUEST,
            "df has no column 'tier'",
        ),
        (
            json!({"push_source_name": "stats_src", "df": {"user_id": [1], "event_timestamp": ["yesterday"], "f0": [1.0], "f1": [1.0], "tier": ["a"]}}),
            StatusCode::BAD_REQUEST,
            "df.event_timestamp[0]",
        ),
        (
            json!({"push_source_name": "stats_src", "df": {"user_id": [1], "event_timestamp": ["2025-01-01"], "f0": ["high"], "f1": [1.0], "tier": ["a"]}}),
            StatusCode::BAD_REQUEST,
            "\"high\" is not of type float64",
        ),
        (
            json!({"push_source_name": "stats_src", "df": {"user_id": [1]}, "to": "both"}),
            StatusCode::BAD_REQUEST,
            "online_and_offline",
        ),
        (
            json!({"push_source_name": "city_src", "df": {"city": ["rome"], "ts": ["2025-01-01"], "population": [1]}, "to": "offline"}),
            StatusCode::BAD_REQUEST,
            "not a directory; offline push appends a new Parquet file to the source's directory: move its files into a folder, set `path: data/cities/`",
        ),
        (
            json!({"push_source_name": "stats_src", "df": {"user_id": [1], "event_timestamp": ["2025-01-01"], "f0": [1.0], "f1": [1.0], "tier": ["a"], "extra": [1]}, "to": "offline"}),
            StatusCode::BAD_REQUEST,
            "df column 'extra' is not in the files",
        ),
    ] {
        let (s, v) = post(&app, "/push", body.clone(), Some(TOKEN)).await;
        assert_eq!(s, status, "{body} -> {v}");
        let m = v["error"].as_str().unwrap_or_default();
        assert!(m.contains(needle), "{body}: '{m}' lacks '{needle}'");
    }
    let files = std::fs::read_dir(dir.path().join("data/stats"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "only the one good push added a file");
    let (s, v) = post(
        &app,
        "/materialize",
        json!({"start_ts": "2025-02-01", "end_ts": "2025-01-01"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = post(
        &app,
        "/materialize",
        json!({"feature_views": ["statz"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("did you mean 'stats'"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_openapi_docs_and_registry() {
    let dir = repo();
    let app = router(state(dir.path(), embedded(dir.path()), config(Some(TOKEN))).await);
    let (s, v) = call(&app, "GET", "/health", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = call(&app, "GET", "/ready", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["online_store"]["ok"], true);
    post(
        &app,
        "/get-online-features",
        json!({"features": ["stats:f0"], "entities": {"user_id": [424242]}}),
        None,
    )
    .await;
    post(
        &app,
        "/get-online-features",
        json!({"features": ["nope:f0"], "entities": {"user_id": [1]}}),
        None,
    )
    .await;
    let (s, v) = call(&app, "GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    for needle in [
        "quiver_http_requests_total{endpoint=\"/get-online-features\",status=\"200\"}",
        "quiver_http_requests_total{endpoint=\"/get-online-features\",status=\"400\"}",
        "quiver_http_request_duration_seconds_bucket{endpoint=\"/get-online-features\"",
        "quiver_online_store_read_seconds",
        "quiver_entities_not_found_total",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    let (s, v) = call(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let documented = v["paths"].as_object().expect("openapi.json has paths");
    for path in [
        "/get-online-features",
        "/predict",
        "/predict/batch",
        "/push",
        "/write-to-online-store",
        "/materialize",
        "/materialize-incremental",
        "/online/clear",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/registry/entities",
        "/registry/sources",
        "/registry/views",
        "/registry/views/{name}",
        "/registry/services",
        "/registry/services/{name}",
    ] {
        assert!(documented.contains_key(path), "openapi.json lacks {path}");
    }
    // Every documented operation is routed, with its method (the README is checked against
    // openapi.json by quiver-cli's docs test).
    for (path, ops) in documented {
        let probe = path.replace(
            "{name}",
            if path.contains("services") {
                "svc"
            } else {
                "stats"
            },
        );
        let ops = ops.as_object().expect("operations");
        assert!(!ops.is_empty(), "{path} documents no operation");
        for method in ops.keys() {
            let method = method.to_ascii_uppercase();
            let (s, v) = call(&app, &method, &probe, Some("{}".into()), None).await;
            // A handler's own 404 (no such job) names the object; the fallback's does not.
            let unrouted = s == StatusCode::METHOD_NOT_ALLOWED
                || (s == StatusCode::NOT_FOUND
                    && v["error"]
                        .as_str()
                        .unwrap_or("")
                        .contains("no such endpoint"));
            assert!(
                !unrouted,
                "{method} {path} is documented but not routed ({s}: {v})"
            );
        }
    }
    let (s, v) = call(&app, "GET", "/docs", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.as_str().unwrap().contains("/openapi.json"));
    let (s, v) = call(&app, "GET", "/registry/views", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cities", "fresh", "stats"]);
    let (s, v) = call(&app, "GET", "/registry/views/stats", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["used_by_services"], json!(["svc"]));
    assert_eq!(v["hash"].as_str().unwrap().len(), 64);
    let (s, v) = call(&app, "GET", "/registry/services/svx", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("svc"), "{v}");
}

/// A view of SQL-expression features takes online pushes: the server computes them with the
/// same compiled expressions as the offline engine, so materializing the pushed rows afterwards
/// (computed offline by DataFusion) leaves identical values.
#[tokio::test]
async fn pushed_rows_of_expression_views_equal_their_materialized_values() {
    let dir = repo();
    let main = dir.path().join("quiver.yaml");
    let yaml = std::fs::read_to_string(&main).unwrap().replace(
        "feature_services:",
        r#"  - name: derived
    entities: [user]
    source: stats_src
    features:
      - {name: tier_len, type: int64, expr: "text_length(tier)"}
      - {name: ratio, type: float64, expr: "f0 / nullif(f1, 0)"}
      - {name: tier_bucket, type: int64, expr: "hash_bucket(tier, 16)"}
      - {name: loud, type: float64, expr: "uppercase_ratio(tier) + log1p(f0)"}
feature_services:"#,
    );
    std::fs::write(&main, yaml).unwrap();
    let app = router(state(dir.path(), embedded(dir.path()), config(Some(TOKEN))).await);
    let rows = json!({"user_id": [1, 7], "event_timestamp": ["2025-03-01T00:00:00Z", "2025-03-01T00:00:00Z"], "f0": [100.5, 7.0], "f1": [0.0, 70.0], "tier": ["GOLD tier", "new"]});
    let (s, v) = post(
        &app,
        "/push",
        json!({"push_source_name": "stats_src", "df": rows, "to": "online_and_offline"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let read = json!({"features": ["derived:tier_len", "derived:ratio", "derived:tier_bucket", "derived:loud"], "entities": {"user_id": [1, 7]}});
    let (_, pushed) = post(&app, "/get-online-features", read.clone(), None).await;
    assert_eq!(pushed["results"][1]["values"], json!([9, 3]));
    assert_eq!(pushed["results"][2]["values"], json!([null, 0.1]));
    let (s, v) = post(
        &app,
        "/materialize",
        json!({"start_ts": "2025-02-28", "end_ts": "2025-03-02", "feature_views": ["derived"]}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["views"][0]["entities"], 2,
        "the pushed rows were rewritten offline: {v}"
    );
    let (_, materialized) = post(&app, "/get-online-features", read, None).await;
    assert_eq!(pushed["results"], materialized["results"]);
    // An expression over a column the push lacks is refused, naming the feature.
    let (s, v) = post(
        &app,
        "/push",
        json!({"push_source_name": "stats_src", "df": {"user_id": [1], "event_timestamp": ["2025-03-02T00:00:00Z"], "f0": [1.0], "f1": [1.0]}, "to": "online"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}
