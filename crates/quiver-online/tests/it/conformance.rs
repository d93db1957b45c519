//! One suite, every backend: the guarantees `OnlineStore` documents.

use std::time::Duration;

use quiver_online::embedded::EmbeddedStore;
use quiver_online::redis_store::RedisStore;
use quiver_online::{EntityKey, KeyValue, OnlineRow, OnlineStore, Value, ViewRead, ViewWrite};

use crate::{cluster_available, cluster_nodes, redis_available, redis_url, unique_project};

fn key(i: i64) -> EntityKey {
    EntityKey::new(&[KeyValue::Int(i)])
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

async fn suite(store: &dyn OnlineStore) {
    store.health().await.unwrap();
    let t = now_us();
    let features = names(&["f", "i", "s", "b", "ts", "emb", "tags", "ints", "d"]);
    let all_types = vec![
        Value::Float64(1.5),
        Value::Int64(-3),
        Value::String("héllo wörld".into()),
        Value::Bool(true),
        Value::Timestamp(1_700_000_000_123_456),
        Value::Float32List(vec![0.25, -1.0, 3.5e-8]),
        Value::StringList(vec!["a".into(), "b c".into()]),
        Value::Int64List(vec![i64::MIN, 0, i64::MAX]),
        Value::Float64List(vec![f64::MAX, -0.0]),
    ];
    let write = ViewWrite {
        view: "stats",
        features: &features,
        ttl_us: Some(86_400_000_000),
    };
    let rows = vec![
        OnlineRow {
            key: key(1),
            event_ts: t,
            values: all_types.clone(),
        },
        OnlineRow {
            key: key(2),
            event_ts: t - 10,
            values: vec![Value::Null; features.len()],
        },
    ];
    let s = store.write_batch(&write, &rows).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (2, 0));

    // Every type round-trips; a missing entity is None; nulls stay null.
    let got = store
        .read("stats", &[key(1), key(3), key(2)], &features)
        .await
        .unwrap();
    assert_eq!(got[0].as_ref().unwrap().values, all_types);
    assert_eq!(got[0].as_ref().unwrap().event_ts, t);
    assert!(got[1].is_none());
    assert_eq!(got[2].as_ref().unwrap().values, vec![Value::Null; 9]);
    assert_eq!(got[2].as_ref().unwrap().event_ts, t - 10);

    // Several views in one call answer as the single reads do, each in its own key order.
    let other = names(&["f"]);
    let several = store
        .read_views(&[
            ViewRead {
                view: "stats",
                keys: &[key(2), key(1)],
                features: &features,
            },
            ViewRead {
                view: "absent_view",
                keys: &[key(1)],
                features: &other,
            },
            ViewRead {
                view: "stats",
                keys: &[],
                features: &other,
            },
        ])
        .await
        .unwrap();
    assert_eq!(several.len(), 3);
    assert_eq!(several[0].len(), 2);
    assert_eq!(several[0][1].as_ref().unwrap().values, all_types);
    assert_eq!(several[0][0].as_ref().unwrap().event_ts, t - 10);
    assert_eq!(several[1], vec![None]);
    assert!(several[2].is_empty());

    // A subset in any order, and a feature the row does not have, read as null.
    let got = store
        .read("stats", &[key(1)], &names(&["emb", "nope", "f"]))
        .await
        .unwrap();
    assert_eq!(
        got[0].as_ref().unwrap().values,
        vec![
            Value::Float32List(vec![0.25, -1.0, 3.5e-8]),
            Value::Null,
            Value::Float64(1.5)
        ]
    );

    // An older row never replaces a newer one; an equal or newer one does, as a whole.
    let one = names(&["f"]);
    let w1 = ViewWrite {
        view: "stats",
        features: &one,
        ttl_us: Some(86_400_000_000),
    };
    let older = [OnlineRow {
        key: key(1),
        event_ts: t - 1,
        values: vec![Value::Float64(99.0)],
    }];
    let s = store.write_batch(&w1, &older).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (0, 1));
    let got = store.read("stats", &[key(1)], &one).await.unwrap();
    assert_eq!(got[0].as_ref().unwrap().values, vec![Value::Float64(1.5)]);
    let same_time = [OnlineRow {
        key: key(1),
        event_ts: t,
        values: vec![Value::Float64(2.5)],
    }];
    let s = store.write_batch(&w1, &same_time).await.unwrap();
    assert_eq!(s.written, 1);
    let newer = [OnlineRow {
        key: key(2),
        event_ts: t + 5,
        values: vec![Value::Float64(7.0)],
    }];
    store.write_batch(&w1, &newer).await.unwrap();
    let got = store.read("stats", &[key(1), key(2)], &one).await.unwrap();
    assert_eq!(got[0].as_ref().unwrap().values, vec![Value::Float64(2.5)]);
    assert_eq!(got[1].as_ref().unwrap().values, vec![Value::Float64(7.0)]);
    assert_eq!(got[1].as_ref().unwrap().event_ts, t + 5);

    // Views and key types are separate namespaces.
    let other = ViewWrite {
        view: "other",
        features: &one,
        ttl_us: None,
    };
    let skey = EntityKey::new(&[KeyValue::Str("1".into()), KeyValue::Int(7)]);
    store
        .write_batch(
            &other,
            &[OnlineRow {
                key: skey.clone(),
                event_ts: t,
                values: vec![Value::Float64(-1.0)],
            }],
        )
        .await
        .unwrap();
    assert!(store.read("other", &[key(1)], &one).await.unwrap()[0].is_none());
    assert_eq!(
        store
            .read("other", std::slice::from_ref(&skey), &one)
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap()
            .values,
        vec![Value::Float64(-1.0)]
    );

    // Many rows in one batch (bigger than any internal chunk).
    let many: Vec<OnlineRow> = (100..2_600)
        .map(|i| OnlineRow {
            key: key(i),
            event_ts: t,
            values: vec![Value::Float64(i as f64)],
        })
        .collect();
    assert_eq!(store.write_batch(&w1, &many).await.unwrap().written, 2_500);
    let keys: Vec<EntityKey> = (100..2_600).map(key).collect();
    let got = store.read("stats", &keys, &one).await.unwrap();
    for (i, g) in (100..2_600).zip(got) {
        assert_eq!(g.unwrap().values, vec![Value::Float64(i as f64)]);
    }

    // Big batches mixing absent keys, keys holding an older row and keys holding a newer one:
    // each row is decided on its own, whichever path (mostly new keys, mostly existing) the
    // batch takes.
    let row = |i: i64, ts: i64, v: f64| OnlineRow {
        key: key(i),
        event_ts: ts,
        values: vec![Value::Float64(v)],
    };
    let mixed = ViewWrite {
        view: "mixed",
        features: &one,
        ttl_us: Some(86_400_000_000),
    };
    let preload: Vec<OnlineRow> = (5_000..7_000)
        .filter(|i| i % 4 == 1 || i % 4 == 2)
        .map(|i| row(i, if i % 4 == 1 { t - 100 } else { t + 100 }, -(i as f64)))
        .collect();
    assert_eq!(
        store.write_batch(&mixed, &preload).await.unwrap().written,
        1_000
    );
    let first: Vec<OnlineRow> = (5_000..7_000).map(|i| row(i, t, i as f64)).collect();
    let s = store.write_batch(&mixed, &first).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (1_500, 500));
    let keys: Vec<EntityKey> = (5_000..7_000).map(key).collect();
    for (i, g) in (5_000..7_000).zip(store.read("mixed", &keys, &one).await.unwrap()) {
        let g = g.unwrap();
        let (ts, v) = if i % 4 == 2 {
            (t + 100, -(i as f64))
        } else {
            (t, i as f64)
        };
        assert_eq!(
            (g.event_ts, g.values.clone()),
            (ts, vec![Value::Float64(v)]),
            "key {i}"
        );
    }
    // Now every key but the last 200 exists.
    let second: Vec<OnlineRow> = (5_000..7_200).map(|i| row(i, t + 200, 0.5)).collect();
    let s = store.write_batch(&mixed, &second).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (2_200, 0));
    let keys: Vec<EntityKey> = (5_000..7_200).map(key).collect();
    for g in store.read("mixed", &keys, &one).await.unwrap() {
        assert_eq!(g.unwrap().event_ts, t + 200);
    }
    assert_eq!(store.delete_view("mixed").await.unwrap(), 2_200);

    // Deferred writes (the materializer's) obey the same rules, are read before `sync`, and
    // `sync` succeeds.
    let deferred: Vec<OnlineRow> = (0..300).map(|i| row(i, t + (i % 2), 2.0)).collect();
    let s = store.write_batch_deferred(&mixed, &deferred).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (300, 0));
    let older: Vec<OnlineRow> = (0..300).map(|i| row(i, t, 3.0)).collect();
    let s = store.write_batch_deferred(&mixed, &older).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (150, 150));
    let keys: Vec<EntityKey> = (0..300).map(key).collect();
    for (i, g) in store
        .read("mixed", &keys, &one)
        .await
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let g = g.unwrap();
        let want = if i % 2 == 0 { 3.0 } else { 2.0 };
        assert_eq!(
            (g.event_ts, g.values),
            (t + (i as i64 % 2), vec![Value::Float64(want)])
        );
    }
    store.sync().await.unwrap();
    assert_eq!(store.delete_view("mixed").await.unwrap(), 300);

    // Deleting a view leaves the others.
    assert_eq!(store.delete_view("stats").await.unwrap(), 2_502);
    assert!(store.read("stats", &[key(1)], &one).await.unwrap()[0].is_none());
    assert!(store.read("other", &[skey], &one).await.unwrap()[0].is_some());
    assert_eq!(store.delete_view("other").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join(".quiver/online")).unwrap();
    suite(&store).await;
    // Reopening the file finds what was committed.
    let features = names(&["f"]);
    store
        .write_batch(
            &ViewWrite {
                view: "v",
                features: &features,
                ttl_us: None,
            },
            &[OnlineRow {
                key: key(9),
                event_ts: 1,
                values: vec![Value::Float64(9.0)],
            }],
        )
        .await
        .unwrap();
    // So does a deferred write once synced.
    store
        .write_batch_deferred(
            &ViewWrite {
                view: "v",
                features: &features,
                ttl_us: None,
            },
            &[OnlineRow {
                key: key(10),
                event_ts: 1,
                values: vec![Value::Float64(10.0)],
            }],
        )
        .await
        .unwrap();
    store.sync().await.unwrap();
    drop(store);
    let store = EmbeddedStore::open(&dir.path().join(".quiver/online")).unwrap();
    let got = store
        .read("v", &[key(9), key(10)], &features)
        .await
        .unwrap();
    assert_eq!(got[0].as_ref().unwrap().values, vec![Value::Float64(9.0)]);
    assert_eq!(got[1].as_ref().unwrap().values, vec![Value::Float64(10.0)]);
}

#[tokio::test]
async fn embedded_store_refuses_a_second_opener_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online");
    let _first = EmbeddedStore::open(&path).unwrap();
    let second = EmbeddedStore::open(&path).err().expect("second open fails");
    let m = second.to_string();
    assert!(m.contains("POST /materialize"), "{m}");
}

#[tokio::test]
async fn redis_store_conforms() {
    if !redis_available().await {
        return;
    }
    let store = RedisStore::new(
        &redis_url(),
        &unique_project("conf"),
        None,
        Duration::from_secs(2),
    )
    .unwrap();
    suite(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_conforms() {
    let nodes = cluster_nodes();
    if !cluster_available(&nodes).await {
        return;
    }
    let store = RedisStore::cluster(
        &nodes,
        &unique_project("cconf"),
        None,
        Duration::from_secs(2),
        0,
    )
    .unwrap();
    assert!(store.describe().starts_with("redis_cluster ("));
    suite(&store).await;
    // The same guarantees when every write waits for a replica of each master (the cluster of
    // ci/redis-cluster.sh has one per master).
    let store = RedisStore::cluster(
        &nodes,
        &unique_project("cconfw"),
        None,
        Duration::from_secs(2),
        1,
    )
    .unwrap();
    suite(&store).await;
}

#[tokio::test]
async fn redis_keys_expire_one_ttl_plus_grace_after_their_event_time() {
    if !redis_available().await {
        return;
    }
    let project = unique_project("exp");
    let grace_us = 60_000_000;
    let store = RedisStore::new(
        &redis_url(),
        &project,
        Some(grace_us),
        Duration::from_secs(2),
    )
    .unwrap();
    let features = names(&["f"]);
    let ttl_us = 3_600_000_000;
    let t = now_us();
    let w = ViewWrite {
        view: "v",
        features: &features,
        ttl_us: Some(ttl_us),
    };
    let rows = [
        // Fresh: expires at t + ttl + grace.
        OnlineRow {
            key: key(1),
            event_ts: t,
            values: vec![Value::Float64(1.0)],
        },
        // Older than ttl + grace already: gone at once.
        OnlineRow {
            key: key(2),
            event_ts: t - ttl_us - grace_us - 1_000_000,
            values: vec![Value::Float64(2.0)],
        },
    ];
    store.write_batch(&w, &rows).await.unwrap();
    let c = redis::Client::open(redis_url()).unwrap();
    let mut con = c.get_multiplexed_async_connection().await.unwrap();
    let mut k1 = format!("quiver:{project}:v:").into_bytes();
    k1.extend_from_slice(&key(1).0);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&k1)
        .query_async(&mut con)
        .await
        .unwrap();
    let expected_ms = (ttl_us + grace_us) / 1000;
    assert!(
        pttl > expected_ms - 10_000 && pttl <= expected_ms,
        "PTTL {pttl} ms, expected about {expected_ms}"
    );
    let got = store.read("v", &[key(1), key(2)], &features).await.unwrap();
    assert!(got[0].is_some());
    assert!(got[1].is_none(), "a row past ttl + grace is not kept");
    // Views without a TTL keep keys forever.
    let forever = ViewWrite {
        view: "v2",
        features: &features,
        ttl_us: None,
    };
    store.write_batch(&forever, &rows[..1]).await.unwrap();
    let mut k = format!("quiver:{project}:v2:").into_bytes();
    k.extend_from_slice(&key(1).0);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&k)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(pttl, -1);
    store.delete_view("v").await.unwrap();
    store.delete_view("v2").await.unwrap();
}

#[tokio::test]
async fn redis_replaces_a_key_of_another_type() {
    if !redis_available().await {
        return;
    }
    // A hash of the layout before stop 10 under a row's key: the write replaces it.
    let project = unique_project("type");
    let store = RedisStore::new(&redis_url(), &project, None, Duration::from_secs(2)).unwrap();
    let c = redis::Client::open(redis_url()).unwrap();
    let mut con = c.get_multiplexed_async_connection().await.unwrap();
    let mut k = format!("quiver:{project}:v:").into_bytes();
    k.extend_from_slice(&key(1).0);
    let _: () = redis::cmd("HSET")
        .arg(&k)
        .arg("f")
        .arg("1.0")
        .query_async(&mut con)
        .await
        .unwrap();
    let features = names(&["f"]);
    let w = ViewWrite {
        view: "v",
        features: &features,
        ttl_us: None,
    };
    let rows = [OnlineRow {
        key: key(1),
        event_ts: now_us(),
        values: vec![Value::Float64(3.0)],
    }];
    let s = store.write_batch(&w, &rows).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (1, 0));
    let got = store.read("v", &[key(1)], &features).await.unwrap();
    assert_eq!(got[0].as_ref().unwrap().values, vec![Value::Float64(3.0)]);
    store.delete_view("v").await.unwrap();
}

#[tokio::test]
async fn redis_rewriting_a_stored_row_keeps_it_and_follows_a_changed_ttl() {
    if !redis_available().await {
        return;
    }
    // The second run of a job writes every row again over a loaded store: an identical row is
    // left as stored (and counted as written), a changed one replaces it, an older one does not,
    // and an identical row under a changed TTL gets the new expiry.
    let project = unique_project("same");
    let store = RedisStore::new(&redis_url(), &project, None, Duration::from_secs(2)).unwrap();
    let c = redis::Client::open(redis_url()).unwrap();
    let mut con = c.get_multiplexed_async_connection().await.unwrap();
    let features = names(&["f"]);
    let hour = 3_600_000_000;
    let t = now_us();
    let row = |k: i64, ts: i64, v: f64| OnlineRow {
        key: key(k),
        event_ts: ts,
        values: vec![Value::Float64(v)],
    };
    let w = ViewWrite {
        view: "v",
        features: &features,
        ttl_us: Some(hour),
    };
    // Over 500 rows so that the batch takes the script path after the NX probe.
    let first: Vec<OnlineRow> = (0..1200).map(|k| row(k, t, k as f64)).collect();
    let s = store.write_batch(&w, &first).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (1200, 0));
    let pttl = async |con: &mut redis::aio::MultiplexedConnection, k: i64| -> i64 {
        let mut rk = format!("quiver:{project}:v:").into_bytes();
        rk.extend_from_slice(&key(k).0);
        redis::cmd("PTTL").arg(&rk).query_async(con).await.unwrap()
    };
    let before = pttl(&mut con, 7).await;
    assert!(before > hour / 1000, "{before}");

    // Same rows again, except: key 3 newer with a new value, key 4 older, key 5 same time with a
    // new value.
    let mut again = first.clone();
    again[3] = row(3, t + 1, 30.0);
    again[4] = row(4, t - 1, 40.0);
    again[5] = row(5, t, 50.0);
    let s = store.write_batch(&w, &again).await.unwrap();
    assert_eq!((s.written, s.skipped_older), (1199, 1));
    let keys: Vec<EntityKey> = (0..1200).map(key).collect();
    let got = store.read("v", &keys, &features).await.unwrap();
    for (k, g) in got.iter().enumerate() {
        let g = g.as_ref().unwrap_or_else(|| panic!("key {k} lost"));
        let (ts, v) = match k {
            3 => (t + 1, 30.0),
            5 => (t, 50.0),
            _ => (t, k as f64),
        };
        assert_eq!(
            (g.event_ts, &g.values),
            (ts, &vec![Value::Float64(v)]),
            "key {k}"
        );
    }

    // The view's TTL doubled: identical rows are rewritten with the later expiry.
    let w2 = ViewWrite {
        view: "v",
        features: &features,
        ttl_us: Some(2 * hour),
    };
    let s = store.write_batch(&w2, &again).await.unwrap();
    assert_eq!(s.written + s.skipped_older, 1200);
    let after = pttl(&mut con, 7).await;
    assert!(
        after > before + 2 * hour / 1000 - 60_000,
        "expiry follows the TTL: {before} ms, then {after} ms"
    );
    store.delete_view("v").await.unwrap();
}

#[tokio::test]
async fn redis_down_fails_fast_as_unavailable() {
    // Nothing listens on port 1.
    let store = RedisStore::new(
        "redis://127.0.0.1:1",
        "down",
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = store.health().await.unwrap_err();
    assert!(
        matches!(err, quiver_online::OnlineError::Unavailable { .. }),
        "{err}"
    );
    let features = names(&["f"]);
    let err = store.read("v", &[key(1)], &features).await.unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
