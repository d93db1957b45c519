//! Redis goes away and comes back: requests fail fast with 503, /ready says so, /health stays
//! up, and the server recovers by itself.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use quiver_server::router;
use serde_json::json;

use crate::{TOKEN, call, config, post, repo, state};

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether the machine's Redis answers; under CI a missing Redis fails the test.
pub async fn redis_available() -> bool {
    let ok = async {
        let c = redis::Client::open("redis://127.0.0.1:6379").ok()?;
        let mut con =
            tokio::time::timeout(Duration::from_secs(2), c.get_multiplexed_async_connection())
                .await
                .ok()?
                .ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .ok()
    }
    .await
    .is_some();
    if !ok {
        assert!(!ci(), "Redis at 127.0.0.1:6379 is not reachable (CI=true)");
        eprintln!("SKIPPED: Redis at 127.0.0.1:6379 is not reachable");
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct RedisServer(Child);

impl RedisServer {
    fn start(port: u16) -> Option<RedisServer> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(RedisServer(child));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_gives_503_and_the_server_recovers() {
    let port = free_port();
    let Some(redis) = RedisServer::start(port) else {
        assert!(!ci(), "cannot start redis-server (CI=true)");
        eprintln!("SKIPPED: redis-server cannot be started");
        return;
    };
    let dir = repo();
    let store = Arc::new(
        quiver_online::redis_store::RedisStore::new(
            &format!("redis://127.0.0.1:{port}"),
            "outage",
            None,
            Duration::from_millis(500),
        )
        .unwrap(),
    );
    let app = router(state(dir.path(), store, config(Some(TOKEN))).await);
    let read = json!({"features": ["stats:f0"], "entities": {"user_id": [1]}});
    let write = json!({"feature_view_name": "stats", "df": {"user_id": [1], "event_timestamp": ["2025-02-01"], "f0": [1.0], "f1": [2.0], "tier": ["x"]}});
    let (s, v) = post(&app, "/write-to-online-store", write.clone(), Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(&app, "/get-online-features", read.clone(), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][1]["values"], json!([1.0]));

    drop(redis);
    // Many concurrent requests all fail fast with 503; none hangs.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, read) = (app.clone(), read.clone());
        tasks.push(tokio::spawn(async move {
            post(&app, "/get-online-features", read, None).await
        }));
    }
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(v["error"].as_str().unwrap().contains("unavailable"), "{v}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let (s, v) = post(&app, "/write-to-online-store", write.clone(), Some(TOKEN)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let (s, v) = call(&app, "GET", "/ready", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["online_store"]["ok"], false);
    let (s, _) = call(&app, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);

    // Redis returns (empty: it kept nothing): the same server answers again by itself.
    let _redis = RedisServer::start(port).expect("restart redis-server");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, v) = post(&app, "/get-online-features", read.clone(), None).await;
        if s == StatusCode::OK {
            assert_eq!(v["results"][1]["statuses"], json!(["NOT_FOUND"]));
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {s} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, _) = call(&app, "GET", "/ready", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = post(&app, "/write-to-online-store", write, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
