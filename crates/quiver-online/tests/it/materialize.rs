//! Materialization: the online value equals the offline latest value for every entity, on both
//! backends; incremental runs continue from the watermark; older rows never win.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use quiver_core::repo::load_registry;
use quiver_offline::OfflineEngine;
use quiver_online::embedded::EmbeddedStore;
use quiver_online::materialize::{MaterializeOptions, NoProgress, materialize, rows_of};
use quiver_online::redis_store::RedisStore;
use quiver_online::{OnlineStore, Value};
use quiver_registry::SqlMetadataStore;

use crate::{redis_available, redis_url, unique_project};

const T0: i64 = 1_735_689_600_000_000; // 2025-01-01T00:00:00Z in µs
const HOUR: i64 = 3_600_000_000;

const YAML: &str = r#"
project: mat
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: stats_src, type: parquet, path: data/stats, timestamp_field: event_timestamp}
  - {name: events, type: parquet, path: data/events.parquet, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [user]
    source: stats_src
    ttl: 3650d
    features:
      - {name: score, type: float64}
      - {name: label, type: string}
  - name: activity
    entities: [user]
    source: events
    aggregations:
      - {name: clicks_1d, function: count, column: amount, window: 1d}
      - {name: spend_1d, function: sum, column: amount, window: 1d}
"#;

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
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

/// `n` users, each with 3 rows at hours 1..=3 (`score = user * 10 + hour`); user 0 has a null
/// score at its latest row.
fn stats_file(root: &Path, name: &str, n: i64, hours: &[i64]) {
    let mut ids = Vec::new();
    let mut ts = Vec::new();
    let mut score = Vec::new();
    let mut label = Vec::new();
    for u in 0..n {
        for &h in hours {
            ids.push(u);
            ts.push(T0 + h * HOUR + u);
            score.push((u != 0 || h != *hours.last().unwrap()).then_some((u * 10 + h) as f64));
            label.push(format!("u{u}h{h}"));
        }
    }
    write_parquet(
        &root.join("data/stats").join(name),
        vec![
            ("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            (
                "event_timestamp",
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            ),
            ("score", Arc::new(Float64Array::from(score))),
            ("label", Arc::new(StringArray::from(label))),
        ],
    );
}

fn events_file(root: &Path) {
    // user u has u events in the last day before hour 24, each of amount 2.0, plus one old one.
    let (mut ids, mut ts, mut amount) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..20i64 {
        for k in 0..u {
            ids.push(u);
            ts.push(T0 + 20 * HOUR + k);
            amount.push(2.0);
        }
        ids.push(u);
        ts.push(T0 - 48 * HOUR);
        amount.push(100.0);
    }
    write_parquet(
        &root.join("data/events.parquet"),
        vec![
            ("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            ),
            ("amount", Arc::new(Float64Array::from(amount))),
        ],
    );
}

fn opts(start: Option<i64>, end: i64, incremental: bool) -> MaterializeOptions {
    MaterializeOptions {
        start_us: start,
        end_us: end,
        views: vec![],
        incremental,
        batch_rows: 7,
    }
}

/// The online rows must equal the offline engine's latest rows, entity by entity.
async fn assert_online_equals_offline(
    engine: &OfflineEngine,
    store: &dyn OnlineStore,
    view: &str,
    as_of: i64,
) {
    let latest = engine.latest(view, as_of, None).await.unwrap();
    let v = &engine.registry().views[view];
    let types: Vec<_> = v.outputs().iter().map(|(_, t)| *t).collect();
    let features: Vec<String> = v.outputs().iter().map(|(n, _)| n.to_string()).collect();
    let key_types = vec![quiver_core::ValueType::Int64];
    let (expected, _) = rows_of(&latest, &key_types, &types).unwrap();
    assert!(!expected.is_empty());
    let keys: Vec<_> = expected.iter().map(|r| r.key.clone()).collect();
    let got = store.read(view, &keys, &features).await.unwrap();
    for (e, g) in expected.iter().zip(got) {
        let g = g.unwrap_or_else(|| panic!("entity {:?} missing online", e.key));
        assert_eq!(g.values, e.values);
        assert_eq!(g.event_ts, e.event_ts);
    }
}

async fn run_backend(store: Arc<dyn OnlineStore>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("quiver.yaml"), YAML).unwrap();
    stats_file(root, "part-0.parquet", 50, &[1, 2, 3]);
    events_file(root);
    let engine = OfflineEngine::new(load_registry(root).unwrap(), root);
    let meta = SqlMetadataStore::open(".quiver/registry.db", root)
        .await
        .unwrap();

    // Full run up to hour 2: the hour-2 rows are online.
    let end = T0 + 2 * HOUR + 1_000;
    let reports = materialize(
        &engine,
        &*store,
        &meta,
        &opts(None, end, false),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let stats = reports.iter().find(|r| r.view == "stats").unwrap();
    assert_eq!(stats.entities, 50);
    assert_eq!(stats.stats.written, 50);
    assert_online_equals_offline(&engine, &*store, "stats", end).await;
    let wm = meta.watermarks().await.unwrap();
    assert_eq!(wm["stats"], end);

    // Aggregations are computed as of END.
    let agg_end = T0 + 24 * HOUR;
    materialize(
        &engine,
        &*store,
        &meta,
        &MaterializeOptions {
            views: vec!["activity".into()],
            ..opts(None, agg_end, false)
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_online_equals_offline(&engine, &*store, "activity", agg_end).await;
    let key = quiver_online::EntityKey::new(&[quiver_online::KeyValue::Int(5)]);
    let got = store
        .read("activity", &[key], &["clicks_1d".into(), "spend_1d".into()])
        .await
        .unwrap();
    assert_eq!(
        got[0].as_ref().unwrap().values,
        vec![Value::Int64(5), Value::Float64(10.0)]
    );

    // Incremental to hour 4 picks up the hour-3 rows (user 0's latest score is null: it stays
    // null, it does not fall back).
    let end2 = T0 + 4 * HOUR;
    let reports = materialize(
        &engine,
        &*store,
        &meta,
        &MaterializeOptions {
            views: vec!["stats".into()],
            ..opts(None, end2, true)
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(reports[0].start_us, Some(end));
    assert_eq!(reports[0].stats.written, 50);
    assert_online_equals_offline(&engine, &*store, "stats", end2).await;
    let key0 = quiver_online::EntityKey::new(&[quiver_online::KeyValue::Int(0)]);
    let got = store
        .read("stats", &[key0], &["score".into()])
        .await
        .unwrap();
    assert_eq!(got[0].as_ref().unwrap().values, vec![Value::Null]);
    assert_eq!(meta.watermarks().await.unwrap()["stats"], end2);

    // Nothing new: an incremental run writes nothing.
    let reports = materialize(
        &engine,
        &*store,
        &meta,
        &MaterializeOptions {
            views: vec!["stats".into()],
            ..opts(None, end2 + HOUR, true)
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(reports[0].entities, 0);

    // Re-running an old range cannot move entities back in time.
    let reports = materialize(
        &engine,
        &*store,
        &meta,
        &MaterializeOptions {
            views: vec!["stats".into()],
            ..opts(None, end, false)
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(reports[0].stats.written, 0);
    assert_eq!(reports[0].stats.skipped_older, 50);
    assert_online_equals_offline(&engine, &*store, "stats", end2).await;
    // The watermark never moves back.
    assert_eq!(meta.watermarks().await.unwrap()["stats"], end2 + HOUR);

    // Unknown views are named with a suggestion.
    let err = materialize(
        &engine,
        &*store,
        &meta,
        &MaterializeOptions {
            views: vec!["stat".into()],
            ..opts(None, end, false)
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("did you mean 'stats'"), "{err}");
    store.delete_view("stats").await.unwrap();
    store.delete_view("activity").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_into_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("online")).unwrap();
    run_backend(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_into_redis() {
    if !redis_available().await {
        return;
    }
    let store = RedisStore::new(
        &redis_url(),
        &unique_project("mat"),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    run_backend(Arc::new(store)).await;
}
