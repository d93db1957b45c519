//! The online-store conformance suite (run on the embedded store and on the local Redis), and
//! materialization correctness.

mod conformance;
mod materialize;

/// Whether tests must fail (not skip) when a service is missing.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("QUIVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether Redis answers; under CI a missing Redis fails the test.
pub async fn redis_available() -> bool {
    let ok = async {
        let c = redis::Client::open(redis_url()).ok()?;
        let mut con = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            c.get_multiplexed_async_connection(),
        )
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
        assert!(!ci(), "Redis at {} is not reachable (CI=true)", redis_url());
        eprintln!("SKIPPED: Redis at {} is not reachable", redis_url());
    }
    ok
}

/// A project name no other test run shares, so Redis keys never collide.
pub fn unique_project(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{tag}{}x{nanos}", std::process::id())
}
