//! A repository materialized into the Redis Cluster of `ci/redis-cluster.sh` (127.0.0.1:7000..)
//! and served by `quiver serve` answers `/get-online-features` exactly as the same repository
//! on the single Redis does.

use std::path::Path;

use serde_json::Value as Json;

use super::models::{post, serve};
use super::ok;

const USERS: i64 = 200;

/// Two views of one entity (so a request reads two keys per entity), one service.
fn repo(root: &Path, project: &str, online_store: &str) {
    std::fs::write(
        root.join("quiver.yaml"),
        format!(
            "project: {project}\nonline_store: {online_store}\nentities:\n  - {{name: user, join_keys: [user_id]}}\nsources:\n  - {{name: src, type: parquet, path: data/users.parquet, timestamp_field: event_timestamp}}\nfeature_views:\n  - name: stats\n    entities: [user]\n    source: src\n    features: [{{name: score, type: float64}}, {{name: visits, type: int64}}]\n  - name: profile\n    entities: [user]\n    source: src\n    features: [{{name: tier, type: string}}]\nfeature_services:\n  - {{name: svc, features: [\"stats:*\", \"profile:*\"]}}\n"
        ),
    )
    .unwrap();
    super::write_user_stats(&root.join("data/users.parquet"), USERS);
}

/// Materializes the repository into `online_store` and returns the answers of the feature
/// server to a features request and a service request (users 0..80 and one unknown user).
async fn served(tag: &str, online_store: &str) -> Option<(Json, Json)> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = format!("scale{tag}{}", std::process::id());
    repo(root, &project, online_store);
    let settings = quiver_core::repo::RepoSettings::load(root).unwrap();
    let store = quiver_online::open_store(&settings, root, &project).unwrap();
    if let Err(e) = store.health().await {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is not reachable (CI=true): {e}",
            store.describe()
        );
        eprintln!("SKIPPED: {e}");
        return None;
    }
    ok(quiver(root, &["apply"]));
    let o = ok(quiver(root, &["materialize", "2024-01-01", "2025-06-01"]));
    assert!(o.contains(&USERS.to_string()), "{o}");
    let server = serve(root);
    let mut users: Vec<i64> = (0..80).collect();
    users.push(99_999);
    let entities = serde_json::json!({ "user_id": users });
    let (status, features) = post(
        server.1,
        "/get-online-features",
        &serde_json::json!({
            "features": ["stats:score", "stats:visits", "profile:tier"],
            "entities": entities,
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{features}");
    let (status, service) = post(
        server.1,
        "/get-online-features",
        &serde_json::json!({ "feature_service": "svc", "entities": entities }).to_string(),
    );
    assert_eq!(status, 200, "{service}");
    drop(server);
    for view in ["stats", "profile"] {
        assert_eq!(store.delete_view(view).await.unwrap(), USERS as u64);
    }
    Some((features, service))
}

fn quiver(root: &Path, args: &[&str]) -> std::process::Output {
    super::quiver(root, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_served_from_the_redis_cluster_answers_as_on_one_redis() {
    let Some(single) = served("r", "{type: redis, url: \"redis://127.0.0.1:6379\"}").await else {
        return;
    };
    let Some(cluster) = served(
        "c",
        "{type: redis_cluster, nodes: [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"], timeout_ms: 5000}",
    )
    .await
    else {
        return;
    };
    // The answers are real: user 17's values and the unknown user's nulls.
    let (features, _) = &cluster;
    let results = features["results"].as_array().unwrap();
    let visits = results
        .iter()
        .find(|r| r["values"].as_array().unwrap().len() == 81 && r["values"][17] == 51)
        .unwrap_or_else(|| panic!("user 17's visits (51) in {features}"));
    assert_eq!(visits["values"][80], Json::Null, "{visits}");
    assert_eq!(single, cluster);
}
