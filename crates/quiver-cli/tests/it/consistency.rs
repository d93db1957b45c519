//! `quiver consistency`: a clean store reports every cell equal; one value changed in the store
//! (embedded, and Redis for real) is reported as exactly that cell.

use std::path::Path;
use std::time::Duration;

use quiver_online::{EntityKey, KeyValue, OnlineRow, Value, ViewWrite};
use serde_json::Value as Json;

use super::{fails, ok, quiver};

const USERS: i64 = 300;

fn repo(root: &Path, project: &str, online_store: &str) {
    std::fs::write(
        root.join("quiver.yaml"),
        format!(
            "project: {project}\n{online_store}\nentities:\n  - {{name: user, join_keys: [user_id]}}\nsources:\n  - {{name: src, type: parquet, path: data/stats.parquet, timestamp_field: event_timestamp}}\nfeature_views:\n  - name: stats\n    entities: [user]\n    source: src\n    features: [{{name: score, type: float64}}, {{name: visits, type: int64}}, {{name: tier, type: string}}]\nfeature_services:\n  - {{name: svc, features: [\"stats:*\"]}}\n"
        ),
    )
    .unwrap();
    super::write_user_stats(&root.join("data/stats.parquet"), USERS);
}

fn report(root: &Path, extra: &[&str]) -> Json {
    let mut args = vec!["--json", "consistency", "--service", "svc"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(quiver(root, &args))).unwrap()
}

fn feature<'a>(r: &'a Json, name: &str) -> &'a Json {
    r["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == name)
        .unwrap_or_else(|| panic!("no {name} in {r}"))
}

/// Replaces value `slot` of `user`'s row of `view` in the online store by `change(old)` (same
/// event time, so the write replaces the row); returns the old value.
async fn rewrite(
    root: &Path,
    project: &str,
    view: &str,
    features: &[&str],
    user: i64,
    slot: usize,
    change: impl FnOnce(&Value) -> Value,
) -> Value {
    let settings = quiver_core::repo::RepoSettings::load(root).unwrap();
    let store = quiver_online::open_store(&settings, root, project).unwrap();
    let features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
    let key = EntityKey::new(&[KeyValue::Int(user)]);
    let row = store
        .read(view, std::slice::from_ref(&key), &features)
        .await
        .unwrap()
        .remove(0)
        .unwrap_or_else(|| panic!("user {user} is not online in {view}"));
    let mut values = row.values.clone();
    values[slot] = change(&row.values[slot]);
    let write = ViewWrite {
        view,
        features: &features,
        ttl_us: None,
    };
    let stats = store
        .write_batch(
            &write,
            &[OnlineRow {
                key,
                event_ts: row.event_ts,
                values,
            }],
        )
        .await
        .unwrap();
    assert_eq!(stats.written, 1);
    store.sync().await.unwrap();
    row.values[slot].clone()
}

/// Changes user 17's `visits` in the store from 51 to 58.
async fn corrupt(root: &Path, project: &str) {
    let old = rewrite(
        root,
        project,
        "stats",
        &["score", "visits", "tier"],
        17,
        1,
        |_| Value::Int64(58),
    )
    .await;
    assert_eq!(old, Value::Int64(51));
}

async fn clean_then_corrupted(online_store: &str, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = format!("cons{tag}{}", std::process::id());
    repo(root, &project, online_store);
    ok(quiver(root, &["apply"]));

    // Before any materialization there is nothing to compare: a clear error.
    let o = fails(quiver(root, &["consistency", "--service", "svc"]));
    assert!(o.contains("never materialized"), "{o}");
    let o = fails(quiver(root, &["consistency", "--service", "nope"]));
    assert!(o.contains("no feature service 'nope'"), "{o}");

    ok(quiver(root, &["materialize", "2024-01-01", "2025-06-01"]));
    let r = report(root, &[]);
    assert_eq!(r["unequal"], 0, "{r}");
    assert_eq!(r["views"][0]["as_of"], "2025-06-01T00:00:00Z", "{r}");
    assert_eq!(r["views"][0]["sampled"], USERS, "{r}");
    for f in ["stats:score", "stats:visits", "stats:tier"] {
        let f = feature(&r, f);
        assert_eq!(f["compared"], USERS, "{f}");
        assert_eq!(f["equal"], USERS, "{f}");
        assert_eq!(f["max_abs_diff"], Json::Null, "{f}");
    }
    assert_eq!(r["diffs"], serde_json::json!([]));

    corrupt(root, &project).await;
    let r = report(root, &[]);
    assert_eq!(r["unequal"], 1, "{r}");
    let visits = feature(&r, "stats:visits");
    assert_eq!(
        (
            &visits["compared"],
            &visits["equal"],
            &visits["mismatched"],
            &visits["missing_online"],
            &visits["extra"]
        ),
        (
            &Json::from(USERS),
            &Json::from(USERS - 1),
            &Json::from(1),
            &Json::from(0),
            &Json::from(0)
        ),
        "{visits}"
    );
    assert_eq!(visits["max_abs_diff"], 7.0);
    for f in ["stats:score", "stats:tier"] {
        assert_eq!(feature(&r, f)["equal"], USERS, "{r}");
    }
    assert_eq!(
        r["diffs"],
        serde_json::json!([{"feature": "stats:visits", "entity": {"user_id": 17},
            "class": "mismatched", "offline": 51, "online": 58}])
    );
    // A smaller sample is the same entities every time.
    let a = report(root, &["--sample", "40"]);
    assert_eq!(a["views"][0]["sampled"], 40);
    assert_eq!(feature(&a, "stats:score")["compared"], 40);
    assert_eq!(a, report(root, &["--sample", "40"]));
    // The table names the cell; --fail-on-mismatch exits 1.
    let o = fails(quiver(
        root,
        &["consistency", "--service", "svc", "--fail-on-mismatch"],
    ));
    assert!(
        o.contains("mismatched stats:visits {\"user_id\":17}: offline 51 online 58"),
        "{o}"
    );
    assert!(o.contains("1 cells differ"), "{o}");
    if !online_store.is_empty() {
        let settings = quiver_core::repo::RepoSettings::load(root).unwrap();
        let store = quiver_online::open_store(&settings, root, &project).unwrap();
        store.delete_view("stats").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_finds_the_one_changed_cell_in_the_embedded_store() {
    clean_then_corrupted("", "e").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_finds_the_one_changed_cell_in_redis() {
    if !super::redis_up() {
        return;
    }
    clean_then_corrupted(
        "online_store: {type: redis, url: \"redis://127.0.0.1:6379\", timeout_ms: 30000}",
        "r",
    )
    .await;
}

/// Rows of a model version's prediction log, waiting for the writer (it flushes every 100 ms).
fn logged_rows(repo: &Path, version: i64, at_least: usize) -> usize {
    let dir = repo.join(format!(
        ".quiver/prediction_log/model=churn/version={version}"
    ));
    let started = std::time::Instant::now();
    loop {
        let mut n = 0;
        for date in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(date.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = f.path();
                if path.extension().is_some_and(|e| e == "parquet") {
                    let r = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                        std::fs::File::open(&path).unwrap(),
                    )
                    .unwrap();
                    n += r.metadata().file_metadata().num_rows() as usize;
                }
            }
        }
        if n >= at_least || started.elapsed() > Duration::from_secs(20) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_report(root: &Path, target: &str) -> Json {
    serde_json::from_str(&ok(quiver(
        root,
        &["--json", "consistency", "--log", target],
    )))
    .unwrap()
}

/// `quiver consistency --log`: predictions served by a real server from a store materialized
/// up to now agree with `historical` at the logged times, every feature; after one user's age
/// is changed in the online store, the predictions served from then on show exactly that cell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_of_the_prediction_log_finds_the_served_value_that_differs() {
    use super::models::{post, serve};

    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    super::demo(repo); // churn version 1, champion
    let mut yaml = std::fs::read_to_string(repo.join("quiver.yaml")).unwrap();
    yaml.push_str("\nserver:\n  prediction_log: {sample_rate: 1, flush_interval_ms: 100}\n");
    std::fs::write(repo.join("quiver.yaml"), yaml).unwrap();
    // The online store as of now, so that what is served is what `historical` computes now.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    ok(quiver(repo, &["materialize", "2000-01-01", &now]));
    // The demo's own /predict call was served from an older materialization: start afresh.
    std::fs::remove_dir_all(repo.join(".quiver/prediction_log")).unwrap();

    let everything = "churn@2000-01-01..2100-01-01";
    let o = fails(quiver(repo, &["consistency", "--log", everything]));
    assert!(o.contains("no prediction log at"), "{o}");

    let server = serve(repo);
    let users: Vec<String> = (1..=20).map(|u| u.to_string()).collect();
    let (status, p) = post(
        server.1,
        "/predict",
        &format!(
            r#"{{"model": "churn", "entities": {{"user_id": [{}]}}}}"#,
            users.join(",")
        ),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(logged_rows(repo, 1, 20), 20);
    drop(server);

    let r = log_report(repo, everything);
    assert_eq!(r["unequal"], 0, "{r}");
    assert_eq!(r["versions"][0]["version"], 1, "{r}");
    assert_eq!(r["versions"][0]["logged"], 20, "{r}");
    assert_eq!(r["versions"][0]["compared"], 20, "{r}");
    let features = r["features"].as_array().unwrap();
    // Every feature of churn_v1 the model reads: 4 profile, 7 purchase, 4 engagement, 1 cart,
    // 6 review features.
    assert_eq!(features.len(), 22, "{r}");
    for f in features {
        assert_eq!(f["compared"], 20, "{f}");
        assert_eq!(f["equal"], 20, "{f}");
    }
    assert!(
        features
            .iter()
            .any(|f| f["feature"] == "user_profile:country"),
        "{r}"
    );

    // Serve a value the offline engine does not have: user 7's age, changed in the store.
    let profile = ["age", "country", "plan", "is_premium"];
    let old = rewrite(repo, "churn", "user_profile", &profile, 7, 0, |v| match v {
        Value::Int64(a) => Value::Int64(a + 7),
        other => panic!("age is {other:?}"),
    })
    .await;
    let Value::Int64(age) = old else {
        panic!("age is {old:?}")
    };
    let since = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();

    let server = serve(repo);
    let (status, p) = post(
        server.1,
        "/predict",
        r#"{"model": "churn", "entities": {"user_id": [7, 8]}}"#,
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(logged_rows(repo, 1, 22), 22);
    drop(server);

    let r = log_report(repo, &format!("churn:1@{since}..2100-01-01"));
    assert_eq!(r["versions"][0]["compared"], 2, "{r}");
    assert_eq!(r["unequal"], 1, "{r}");
    for f in r["features"].as_array().unwrap() {
        if f["feature"] == "user_profile:age" {
            assert_eq!(
                (&f["compared"], &f["equal"], &f["mismatched"]),
                (&Json::from(2), &Json::from(1), &Json::from(1)),
                "{f}"
            );
            assert_eq!(f["max_abs_diff"], 7.0, "{f}");
        } else {
            assert_eq!(
                (&f["compared"], &f["equal"]),
                (&Json::from(2), &Json::from(2)),
                "{f}"
            );
        }
    }
    let diffs = r["diffs"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{r}");
    assert_eq!(diffs[0]["feature"], "user_profile:age");
    assert_eq!(diffs[0]["class"], "mismatched");
    assert_eq!(diffs[0]["entity"]["user_id"], 7);
    assert_eq!(diffs[0]["offline"], age as f64);
    assert_eq!(diffs[0]["online"], (age + 7) as f64);
    // Over the whole log: the same one cell among 22 predictions; the table names it and
    // --fail-on-mismatch exits 1.
    let all = log_report(repo, everything);
    assert_eq!(all["unequal"], 1, "{all}");
    assert_eq!(all["versions"][0]["compared"], 22, "{all}");
    let o = fails(quiver(
        repo,
        &["consistency", "--log", everything, "--fail-on-mismatch"],
    ));
    assert!(o.contains("mismatched user_profile:age {"), "{o}");
    assert!(
        o.contains("churn version 1: 22 of 22 logged predictions compared"),
        "{o}"
    );
    // --sample caps the predictions compared.
    let o = ok(quiver(
        repo,
        &[
            "--json",
            "consistency",
            "--log",
            everything,
            "--sample",
            "5",
        ],
    ));
    let five: Json = serde_json::from_str(&o).unwrap();
    assert_eq!(five["versions"][0]["compared"], 5, "{five}");

    // Bad targets are clear errors.
    let o = fails(quiver(
        repo,
        &["consistency", "--log", "churn@2025-02-01..2025-01-01"],
    ));
    assert!(o.contains("ends before it starts"), "{o}");
    let o = fails(quiver(repo, &["consistency", "--log", "churn"]));
    assert!(o.contains("MODEL[:VERSION]@START..END"), "{o}");
    let o = fails(quiver(
        repo,
        &["consistency", "--log", "churn@2001-01-01..2002-01-01"],
    ));
    assert!(o.contains("no logged prediction to compare"), "{o}");
    let o = fails(quiver(repo, &["consistency"]));
    assert!(o.contains("--service") && o.contains("--log"), "{o}");
}
