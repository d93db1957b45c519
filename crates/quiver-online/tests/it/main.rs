//! The online-store conformance suite (run on the embedded store and on the local Redis), and
//! materialization correctness.

mod cluster;
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

/// Some nodes of the Redis Cluster the tests use (`ci/redis-cluster.sh start`: 127.0.0.1:7000..),
/// or `QUIVER_TEST_REDIS_CLUSTER` (comma-separated URLs).
pub fn cluster_nodes() -> Vec<String> {
    std::env::var("QUIVER_TEST_REDIS_CLUSTER")
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_else(|_| {
            (7000..7003)
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect()
        })
}

/// Whether the Redis Cluster at `nodes` answers with `cluster_state:ok`; under CI a missing
/// cluster fails the test, elsewhere the test says it skipped.
pub async fn cluster_available(nodes: &[String]) -> bool {
    let state = async {
        let client = redis::cluster::ClusterClient::new(nodes.to_vec()).ok()?;
        let mut con = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            client.get_async_connection(),
        )
        .await
        .ok()?
        .ok()?;
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut con)
            .await
            .ok()
    }
    .await;
    let ok = state.is_some_and(|s| s.lines().any(|l| l.trim() == "cluster_state:ok"));
    if !ok {
        let nodes = nodes.join(", ");
        assert!(
            !ci(),
            "the Redis Cluster at {nodes} is not reachable or not ok (CI=true; start it with ci/redis-cluster.sh start)"
        );
        eprintln!(
            "SKIPPED: the Redis Cluster at {nodes} is not reachable (start it with ci/redis-cluster.sh start)"
        );
    }
    ok
}
