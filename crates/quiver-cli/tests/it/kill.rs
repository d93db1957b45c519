//! Kill `quiver materialize` mid-run (SIGKILL), then check that every entity holds either its
//! old row or its new row, never a mix, and that re-running completes the job. On the embedded
//! store and on Redis.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use quiver_online::{EntityKey, KeyValue, OnlineStore, Value};

use super::{ok, quiver};

const USERS: i64 = 20_000;
const T1: i64 = 1_735_689_600_000_000; // 2025-01-01
const T2: i64 = T1 + 86_400_000_000; // a day later

/// Version `v` of every user's row: f_k = v * 1e6 + u * 10 + k.
fn write_version(root: &Path, v: i64, ts: i64) {
    let users: Vec<i64> = (0..USERS).collect();
    let mut cols: Vec<(String, ArrayRef)> = vec![
        ("user_id".into(), Arc::new(Int64Array::from(users.clone()))),
        (
            "event_timestamp".into(),
            Arc::new(
                TimestampMicrosecondArray::from(vec![ts; USERS as usize]).with_timezone("UTC"),
            ),
        ),
    ];
    for k in 0..5 {
        cols.push((
            format!("f{k}"),
            Arc::new(Float64Array::from(
                users
                    .iter()
                    .map(|u| (v * 1_000_000 + u * 10 + k) as f64)
                    .collect::<Vec<_>>(),
            )),
        ));
    }
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    let path = root.join(format!("data/stats/v{v}.parquet"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// How many entities hold version 1 and version 2; panics on any mixed or missing row.
async fn versions(store: &dyn OnlineStore) -> (usize, usize) {
    let keys: Vec<EntityKey> = (0..USERS)
        .map(|u| EntityKey::new(&[KeyValue::Int(u)]))
        .collect();
    let features: Vec<String> = (0..5).map(|k| format!("f{k}")).collect();
    let rows = store.read("stats", &keys, &features).await.unwrap();
    let (mut old, mut new) = (0, 0);
    for (u, row) in rows.into_iter().enumerate() {
        let row = row.unwrap_or_else(|| panic!("user {u} lost its row"));
        let v = match row.event_ts {
            T1 => 1,
            T2 => 2,
            other => panic!("user {u}: unexpected event time {other}"),
        };
        let expected: Vec<Value> = (0..5)
            .map(|k| Value::Float64((v * 1_000_000 + u as i64 * 10 + k) as f64))
            .collect();
        assert_eq!(row.values, expected, "user {u} holds a mix of rows");
        if v == 1 { old += 1 } else { new += 1 }
    }
    (old, new)
}

async fn kill_and_rerun(online_store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("quiver.yaml"),
        format!(
            "project: kill{}\n{online_store}\nentities:\n  - {{name: user, join_keys: [user_id]}}\nsources:\n  - {{name: src, type: parquet, path: data/stats, timestamp_field: event_timestamp}}\nfeature_views:\n  - name: stats\n    entities: [user]\n    source: src\n    features: [{{name: f0, type: float64}}, {{name: f1, type: float64}}, {{name: f2, type: float64}}, {{name: f3, type: float64}}, {{name: f4, type: float64}}]\n",
            std::process::id()
        ),
    )
    .unwrap();
    write_version(root, 1, T1);
    ok(quiver(root, &["apply"]));
    ok(quiver(
        root,
        &["materialize", "2024-01-01", "2025-01-01T12:00:00Z"],
    ));
    write_version(root, 2, T2);

    // Slowed down (a pause after each committed batch) so that the kill lands mid-run.
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--repo")
        .arg(root)
        .args([
            "materialize",
            "2024-01-01",
            "2025-06-01",
            "--batch-rows",
            "500",
        ])
        .env("QUIVER_MATERIALIZE_PAUSE_MS", "40")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().contains("batch 5 committed") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let settings = quiver_core::repo::RepoSettings::load(root).unwrap();
    let project = format!("kill{}", std::process::id());
    {
        let store = quiver_online::open_store(&settings, root, &project).unwrap();
        let (old, new) = versions(&*store).await;
        assert!(
            new >= 2_500 && old > 0,
            "killed mid-run: {old} old, {new} new"
        );
    }
    // Re-running completes the job.
    ok(quiver(root, &["materialize", "2024-01-01", "2025-06-01"]));
    let store = quiver_online::open_store(&settings, root, &project).unwrap();
    assert_eq!(versions(&*store).await, (0, USERS as usize));
    store.delete_view("stats").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_materialization_into_the_embedded_store_leaves_no_mixed_rows() {
    kill_and_rerun("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_materialization_into_redis_leaves_no_mixed_rows() {
    if !super::redis_up() {
        return;
    }
    // A 20,000-key check read on a loaded CI machine may take more than the 1 s default.
    kill_and_rerun(
        "online_store: {type: redis, url: \"redis://127.0.0.1:6379\", timeout_ms: 30000}",
    )
    .await;
}
