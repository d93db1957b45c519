//! The Redis Cluster store beyond the conformance suite: the key layout (one entity's views in
//! one slot), resharding (`ASK` while a slot migrates, `MOVED` after) and a master's failover.
//! The destructive tests run on a cluster of their own (ports 7100-7105, started and stopped
//! here with ci/redis-cluster.sh), so the shared one on 7000 stays healthy.

use std::process::Command;
use std::time::{Duration, Instant};

use quiver_online::redis_store::RedisStore;
use quiver_online::{EntityKey, KeyValue, OnlineRow, OnlineStore, Value, ViewWrite};

use crate::{ci, cluster_available, cluster_nodes, unique_project};

fn key(i: i64) -> EntityKey {
    EntityKey::new(&[KeyValue::Int(i)])
}

/// The store's key of `entity` in `view` (the layout docs/architecture.md documents).
fn cluster_key(project: &str, view: &str, entity: &EntityKey) -> Vec<u8> {
    let mut k = format!("quiver:{project}:{view}:{{").into_bytes();
    k.extend_from_slice(&entity.0);
    k.push(b'}');
    k
}

async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn keyslot(port: u16, key: &[u8]) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut node(port).await)
        .await
        .unwrap()
}

/// A master of the cluster: its id, port and slot ranges.
#[derive(Debug, Clone)]
struct Master {
    id: String,
    port: u16,
    slots: Vec<(u16, u16)>,
}

async fn masters(port: u16) -> Vec<Master> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut node(port).await)
        .await
        .unwrap();
    nodes
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let flags: Vec<&str> = f[2].split(',').collect();
            if !flags.contains(&"master") || flags.contains(&"fail") {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit_once(':')?.1.parse().ok()?;
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (s.parse().unwrap(), s.parse().unwrap()),
                })
                .collect();
            Some(Master {
                id: f[0].to_string(),
                port,
                slots,
            })
        })
        .collect()
}

fn owner(masters: &[Master], slot: u16) -> &Master {
    masters
        .iter()
        .find(|m| m.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
        .unwrap_or_else(|| panic!("no master holds slot {slot}: {masters:?}"))
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ci/redis-cluster.sh");

/// A cluster of its own for a destructive test, stopped when dropped (even when the test fails).
struct OwnCluster {
    base: u16,
}

impl OwnCluster {
    /// Starts it; `None` (the test skips) when redis-server is not installed outside CI.
    fn start(base: u16) -> Option<OwnCluster> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(!ci(), "redis-server is not installed (CI=true)");
            eprintln!("SKIPPED: redis-server is not installed");
            return None;
        }
        let cluster = OwnCluster { base };
        cluster.script("start");
        Some(cluster)
    }

    fn script(&self, what: &str) {
        let out = Command::new("bash")
            .args([SCRIPT, what, &self.base.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ci/redis-cluster.sh {what} {}: {}{}",
            self.base,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn nodes(&self) -> Vec<String> {
        (self.base..self.base + 3)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([SCRIPT, "stop", &self.base.to_string()])
            .output();
    }
}

fn row(i: i64, ts: i64, v: f64) -> OnlineRow {
    OnlineRow {
        key: key(i),
        event_ts: ts,
        values: vec![Value::Float64(v)],
    }
}

fn feature() -> Vec<String> {
    vec!["f".to_string()]
}

fn write(view: &'static str) -> ViewWrite<'static> {
    static F: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ViewWrite {
        view,
        features: F.get_or_init(feature),
        ttl_us: None,
    }
}

/// Reads view `view` for `keys`: the value of each, `None` where absent.
async fn values(
    store: &dyn OnlineStore,
    view: &str,
    keys: &[EntityKey],
) -> quiver_online::store::Result<Vec<Option<f64>>> {
    Ok(store
        .read(view, keys, &feature())
        .await?
        .into_iter()
        .map(|r| {
            r.map(|r| match r.values[0] {
                Value::Float64(v) => v,
                ref other => panic!("{other:?}"),
            })
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keys_put_one_entitys_views_in_one_slot() {
    let nodes = cluster_nodes();
    if !cluster_available(&nodes).await {
        return;
    }
    let project = unique_project("slot");
    let store = RedisStore::cluster(&nodes, &project, None, Duration::from_secs(2), 0).unwrap();
    let port: u16 = nodes[0].rsplit(':').next().unwrap().parse().unwrap();
    let entities = [
        key(7),
        key(0x7d7b), // `}` and `{` bytes inside the key
        EntityKey::new(&[KeyValue::Str("a}b{c".into()), KeyValue::Int(1)]),
    ];
    for view in ["a", "b"] {
        let rows: Vec<OnlineRow> = entities
            .iter()
            .map(|k| OnlineRow {
                key: k.clone(),
                event_ts: 1,
                values: vec![Value::Float64(1.0)],
            })
            .collect();
        store.write_batch(&write(view), &rows).await.unwrap();
    }
    let client = redis::cluster::ClusterClient::new(nodes.clone()).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    let mut slots = std::collections::HashSet::new();
    for e in &entities {
        let (ka, kb) = (cluster_key(&project, "a", e), cluster_key(&project, "b", e));
        let exists: u64 = redis::cmd("EXISTS")
            .arg(&ka)
            .arg(&kb)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(exists, 2, "both views' keys in the documented layout");
        let slot = keyslot(port, &ka).await;
        assert_eq!(slot, keyslot(port, &kb).await, "one entity, one slot");
        slots.insert(slot);
    }
    assert_eq!(slots.len(), 3, "different entities spread over slots");
    assert_eq!(store.delete_view("a").await.unwrap(), 3);
    assert_eq!(store.delete_view("b").await.unwrap(), 3);
}

/// Resharding and failover on a cluster of the test's own: a slot migrated under the store
/// (reads and writes follow `ASK`, then `MOVED`), then its master killed: reads fail only until
/// the replica takes over (within 30 s), then every acknowledged write reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_follows_resharding_and_survives_a_master_failover() {
    let Some(cluster) = OwnCluster::start(7100) else {
        return;
    };
    let nodes = cluster.nodes();
    let base = cluster.base;
    let project = unique_project("fail");
    // Every write waits for the master's replica (WAIT 1): acknowledged means replicated.
    let store = RedisStore::cluster(&nodes, &project, None, Duration::from_secs(1), 1).unwrap();
    let n = 300;
    let keys: Vec<EntityKey> = (0..n).map(key).collect();
    let a: Vec<OnlineRow> = (0..n).map(|i| row(i, 10, i as f64)).collect();
    let b: Vec<OnlineRow> = (0..n).map(|i| row(i, 10, -(i as f64))).collect();
    store.write_batch(&write("a"), &a).await.unwrap();
    store.write_batch(&write("b"), &b).await.unwrap();
    let mut want_a: Vec<Option<f64>> = (0..n).map(|i| Some(i as f64)).collect();
    let want_b: Vec<Option<f64>> = (0..n).map(|i| Some(-(i as f64))).collect();
    assert_eq!(values(&store, "a", &keys).await.unwrap(), want_a);

    // Move entity 1's slot to another master, one key at a time.
    let (ka, kb) = (
        cluster_key(&project, "a", &key(1)),
        cluster_key(&project, "b", &key(1)),
    );
    let slot = keyslot(base, &ka).await;
    let all = masters(base).await;
    let src = owner(&all, slot).clone();
    let dst = all.iter().find(|m| m.id != src.id).unwrap().clone();
    let setslot = async |port: u16, args: &[&str]| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(args)
            .query_async(&mut node(port).await)
            .await
            .unwrap();
    };
    setslot(dst.port, &["IMPORTING", &src.id]).await;
    setslot(src.port, &["MIGRATING", &dst.id]).await;
    let migrate = async |k: &[u8]| {
        let _: String = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(dst.port)
            .arg(k)
            .arg(0)
            .arg(5000)
            .query_async(&mut node(src.port).await)
            .await
            .unwrap();
    };
    migrate(&ka).await;
    // View a's key now answers from the importing master (ASK), view b's from the source.
    assert_eq!(
        values(&store, "a", &keys[1..2]).await.unwrap(),
        vec![Some(1.0)]
    );
    assert_eq!(
        values(&store, "b", &keys[1..2]).await.unwrap(),
        vec![Some(-1.0)]
    );
    // A newer row for the migrated key is written where the key now lives.
    let s = store
        .write_batch(&write("a"), &[row(1, 20, 100.0)])
        .await
        .unwrap();
    assert_eq!(s.written, 1);
    want_a[1] = Some(100.0);
    assert_eq!(
        values(&store, "a", &keys[1..2]).await.unwrap(),
        vec![Some(100.0)]
    );
    migrate(&kb).await;
    for m in &all {
        setslot(m.port, &["NODE", &dst.id]).await;
    }
    // Every node, replicas included, learns the new owner by gossip.
    let moved = Instant::now();
    for port in base..base + 6 {
        while owner(&masters(port).await, slot).id != dst.id {
            assert!(
                moved.elapsed() < Duration::from_secs(20),
                "node {port} never saw slot {slot} move"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The store's slot map is stale now: MOVED, a refreshed map, the right answers.
    assert_eq!(values(&store, "a", &keys).await.unwrap(), want_a);
    assert_eq!(values(&store, "b", &keys).await.unwrap(), want_b);

    // Kill the master that now holds entity 1's slot.
    let victim = owner(&masters(base).await, slot).clone();
    let info = Command::new("redis-cli")
        .args(["-p", &victim.port.to_string(), "info", "server"])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&info.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:").map(|p| p.trim().to_string()))
        .expect("process_id in INFO server");
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );

    // Keep reading (and writing new entities); errors are allowed only until the replica has
    // taken over, and only for 30 s.
    let killed = Instant::now();
    let mut acknowledged: Vec<i64> = Vec::new();
    let mut attempt = 0;
    let mut failures = 0;
    loop {
        attempt += 1;
        let extra = 10_000 + attempt;
        if store
            .write_batch(&write("a"), &[row(extra, 30, extra as f64)])
            .await
            .is_ok()
        {
            acknowledged.push(extra);
        }
        match (
            values(&store, "a", &keys).await,
            values(&store, "b", &keys).await,
        ) {
            (Ok(ga), Ok(gb)) => {
                assert_eq!(ga, want_a, "view a after {:?}", killed.elapsed());
                assert_eq!(gb, want_b, "view b after {:?}", killed.elapsed());
                break;
            }
            (ra, rb) => {
                failures += 1;
                eprintln!(
                    "after {:?}: {:?}",
                    killed.elapsed(),
                    ra.err().or(rb.err()).map(|e| e.to_string())
                );
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no failover within 30 s ({failures} failed reads)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "failover: reads failed {failures} times over {:?}",
        killed.elapsed()
    );
    // Asked of a node still alive (the victim may be the first one).
    let alive = (base..base + 6).find(|&p| p != victim.port).unwrap();
    let survivors = masters(alive).await;
    assert!(
        survivors.iter().all(|m| m.port != victim.port),
        "a replica took over from {}: {survivors:?}",
        victim.port
    );
    // Full service from now on: every read succeeds and every acknowledged write is there.
    for i in 0..5 {
        assert_eq!(
            values(&store, "a", &keys).await.unwrap(),
            want_a,
            "read {i}"
        );
        assert_eq!(
            values(&store, "b", &keys).await.unwrap(),
            want_b,
            "read {i}"
        );
    }
    let extra_keys: Vec<EntityKey> = acknowledged.iter().map(|&i| key(i)).collect();
    let got = values(&store, "a", &extra_keys).await.unwrap();
    for (i, g) in acknowledged.iter().zip(got) {
        assert_eq!(g, Some(*i as f64), "acknowledged write of entity {i} lost");
    }

    // The promoted master has no replica while the killed node is down: a write that asks for
    // one is refused, clearly, not acknowledged unsafely.
    let refused: Vec<OnlineRow> = (0..n).map(|i| row(i, 40, 0.5)).collect();
    let err = store
        .write_batch(&write("b"), &refused)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("replica_acks"), "{err}");

    // The killed node comes back as a replica; the cluster is whole again and writes are
    // acknowledged.
    cluster.script("start");
    assert_eq!(values(&store, "a", &keys).await.unwrap(), want_a);
    let s = store
        .write_batch(&write("a"), &[row(30_000, 50, 3.0)])
        .await
        .unwrap();
    assert_eq!(s.written, 1);
    assert_eq!(
        values(&store, "a", &[key(30_000)]).await.unwrap(),
        vec![Some(3.0)]
    );
}
