//! `quiver consistency`: a clean store reports every cell equal; one value changed in the store
//! (embedded, and Redis for real) is reported as exactly that cell.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use quiver_online::{EntityKey, KeyValue, OnlineRow, Value, ViewWrite};
use serde_json::Value as Json;

use super::{fails, ok, quiver};

const USERS: i64 = 300;
const T: i64 = 1_735_689_600_000_000; // 2025-01-01

fn write_data(root: &Path) {
    let users: Vec<i64> = (0..USERS).collect();
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("user_id", Arc::new(Int64Array::from(users.clone()))),
        (
            "event_timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(
                    users.iter().map(|u| T + u * 1_000_000).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ),
        (
            "score",
            Arc::new(Float64Array::from(
                users.iter().map(|u| *u as f64 / 7.0).collect::<Vec<_>>(),
            )),
        ),
        (
            "visits",
            Arc::new(Int64Array::from(
                users.iter().map(|u| u * 3).collect::<Vec<_>>(),
            )),
        ),
        (
            "tier",
            Arc::new(StringArray::from(
                users
                    .iter()
                    .map(|u| {
                        if u % 5 == 0 {
                            None
                        } else {
                            Some(format!("t{}", u % 3))
                        }
                    })
                    .collect::<Vec<_>>(),
            )),
        ),
    ];
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    let path = root.join("data/stats.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn repo(root: &Path, project: &str, online_store: &str) {
    std::fs::write(
        root.join("quiver.yaml"),
        format!(
            "project: {project}\n{online_store}\nentities:\n  - {{name: user, join_keys: [user_id]}}\nsources:\n  - {{name: src, type: parquet, path: data/stats.parquet, timestamp_field: event_timestamp}}\nfeature_views:\n  - name: stats\n    entities: [user]\n    source: src\n    features: [{{name: score, type: float64}}, {{name: visits, type: int64}}, {{name: tier, type: string}}]\nfeature_services:\n  - {{name: svc, features: [\"stats:*\"]}}\n"
        ),
    )
    .unwrap();
    write_data(root);
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

/// Changes user 17's `visits` in the store (same event time, so the write replaces the row).
async fn corrupt(root: &Path, project: &str) {
    let settings = quiver_core::repo::RepoSettings::load(root).unwrap();
    let store = quiver_online::open_store(&settings, root, project).unwrap();
    let features: Vec<String> = ["score", "visits", "tier"].map(String::from).to_vec();
    let key = EntityKey::new(&[KeyValue::Int(17)]);
    let row = store
        .read("stats", std::slice::from_ref(&key), &features)
        .await
        .unwrap()
        .remove(0)
        .expect("user 17 is online");
    assert_eq!(row.values[1], Value::Int64(51));
    let mut values = row.values.clone();
    values[1] = Value::Int64(58);
    let write = ViewWrite {
        view: "stats",
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
    let up = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:6379".parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_ok();
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Redis is not reachable (CI=true)"
        );
        eprintln!("SKIPPED: Redis is not reachable");
        return;
    }
    clean_then_corrupted(
        "online_store: {type: redis, url: \"redis://127.0.0.1:6379\", timeout_ms: 30000}",
        "r",
    )
    .await;
}
