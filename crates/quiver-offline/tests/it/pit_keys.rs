//! Point-in-time joins over every key type (string, composite string + integer, sparse and
//! dense 64-bit integers, int32) against a brute-force reference, with a skewed key; several
//! views in one call; and the same call on 1, 2 and 8 threads and hash partitions, and as the
//! shuffled plan a cluster runs (`with_exchange`) over 1, 2 and 8 partitions, byte for byte.

use std::collections::HashMap;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use quiver_offline::engine::no_progress;

use super::*;

const YAML: &str = r#"
project: t
entities:
  - {name: dense, join_keys: [user_id], value_type: int64}
  - {name: sparse, join_keys: [account], value_type: int64}
  - {name: named, join_keys: [user_name], value_type: string}
  - {name: store, join_keys: [country, store_id], value_types: [string, int64]}
  - {name: shop, join_keys: [shop_id], value_type: int32}
sources:
  - {name: dense_src, type: parquet, path: data/dense.parquet, timestamp_field: ts, created_timestamp_field: created}
  - {name: sparse_src, type: parquet, path: data/sparse.parquet, timestamp_field: ts, created_timestamp_field: created}
  - {name: named_src, type: parquet, path: data/named.parquet, timestamp_field: ts, created_timestamp_field: created}
  - {name: store_src, type: parquet, path: data/store.parquet, timestamp_field: ts, created_timestamp_field: created}
  - {name: shop_src, type: parquet, path: data/shop.parquet, timestamp_field: ts, created_timestamp_field: created}
feature_views:
  - {name: dense, entities: [dense], source: dense_src, ttl: 40s, features: [{name: v, type: float64}, {name: s, type: string}]}
  - {name: sparse, entities: [sparse], source: sparse_src, ttl: 0, features: [{name: v, type: float64}, {name: s, type: string}]}
  - {name: named, entities: [named], source: named_src, ttl: 25s, features: [{name: v, type: float64}, {name: s, type: string}]}
  - {name: store, entities: [store], source: store_src, ttl: 60s, features: [{name: v, type: float64}, {name: s, type: string}]}
  - {name: shop, entities: [shop], source: shop_src, ttl: 30s, features: [{name: v, type: float64}, {name: s, type: string}]}
"#;

/// (view, TTL in seconds, 0 unbounded).
const VIEWS: [(&str, i64); 5] = [
    ("dense", 40),
    ("sparse", 0),
    ("named", 25),
    ("store", 60),
    ("shop", 30),
];

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// A key number: key 0 holds about 15% of the rows (a skewed key, past the join's sweep
/// threshold), the others spread over `n`; `None` now and then (a null key).
fn key(s: &mut u64, n: u64) -> Option<u64> {
    match lcg(s) % 100 {
        0 => None,
        1..15 => Some(0),
        _ => Some(1 + lcg(s) % n),
    }
}

/// The columns of key number `k` of `view` (name, array), for rows of these key numbers.
fn key_columns(view: &str, keys: &[Option<u64>]) -> Vec<(&'static str, ArrayRef)> {
    let ints = |f: fn(u64) -> i64| i64_col(&keys.iter().map(|k| k.map(f)).collect::<Vec<_>>());
    match view {
        "dense" => vec![("user_id", ints(|k| k as i64))],
        // A dense int32 key: looked up into ids rather than read as an `Int64` column.
        "shop" => vec![(
            "shop_id",
            Arc::new(datafusion::arrow::array::Int32Array::from(
                keys.iter()
                    .map(|k| k.map(|k| k as i32 + 7))
                    .collect::<Vec<_>>(),
            )),
        )],
        "sparse" => vec![(
            "account",
            ints(|k| (k as i64).wrapping_mul(0x5851_f42d_4c95_7f2d) ^ i64::MIN),
        )],
        "named" => {
            let names: Vec<Option<String>> = keys
                .iter()
                .map(|k| k.map(|k| format!("user-{k:04}-with-a-long-name")))
                .collect();
            vec![(
                "user_name",
                str_col(&names.iter().map(|n| n.as_deref()).collect::<Vec<_>>()),
            )]
        }
        _ => {
            let country: Vec<Option<&str>> = keys
                .iter()
                .map(|k| k.map(|k| ["fr", "de", "it"][(k % 3) as usize]))
                .collect();
            vec![
                ("country", str_col(&country)),
                ("store_id", ints(|k| (k / 3) as i64 * 1_000_000_007)),
            ]
        }
    }
}

/// One feature row: key number, ts, created, value (null now and then).
type FeatureRow = (Option<u64>, i64, i64, Option<f64>);

fn write_small_groups(path: &Path, b: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Small row groups: the scan is split into many partitions, several per worker.
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(700))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        b.schema(),
        Some(props),
    )
    .unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
}

/// Feature rows of every view (keys over 400 numbers, 200 distinct seconds and 3 created
/// values, so exact ties are common), written to the repository.
fn feature_rows(repo: &Repo, seed: u64, n: usize) -> HashMap<&'static str, Vec<FeatureRow>> {
    let mut s = seed;
    let mut all = HashMap::new();
    for (view, _) in VIEWS {
        let rows: Vec<FeatureRow> = (0..n)
            .map(|i| {
                let k = key(&mut s, 420);
                let ts = (lcg(&mut s) % 200) as i64;
                let created = (lcg(&mut s) % 3) as i64;
                let v = (!lcg(&mut s).is_multiple_of(10)).then_some(i as f64);
                (k, ts, created, v)
            })
            .collect();
        let keys: Vec<Option<u64>> = rows.iter().map(|r| r.0).collect();
        let mut cols = key_columns(view, &keys);
        cols.push((
            "ts",
            ts_col(&rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>()),
        ));
        cols.push((
            "created",
            ts_col(&rows.iter().map(|r| Some(r.2)).collect::<Vec<_>>()),
        ));
        cols.push(("v", f64_col(&rows.iter().map(|r| r.3).collect::<Vec<_>>())));
        let s_values: Vec<Option<String>> =
            rows.iter().map(|r| r.3.map(|v| format!("s{v}"))).collect();
        cols.push((
            "s",
            str_col(&s_values.iter().map(|x| x.as_deref()).collect::<Vec<_>>()),
        ));
        write_small_groups(&repo.path(&format!("data/{view}.parquet")), &batch(cols));
        all.insert(view, rows);
    }
    all
}

/// Entity rows, each view's key numbers of them, their times.
type Entities = (
    RecordBatch,
    HashMap<&'static str, Vec<Option<u64>>>,
    Vec<i64>,
);

/// Entity rows: one key number per view (keys over 400 numbers: some have no feature rows)
/// and a time.
fn entity_rows(seed: u64, n: usize) -> Entities {
    let mut s = seed;
    let mut cols = Vec::new();
    let mut keys = HashMap::new();
    for (view, _) in VIEWS {
        let k: Vec<Option<u64>> = (0..n).map(|_| key(&mut s, 400)).collect();
        cols.extend(key_columns(view, &k));
        keys.insert(view, k);
    }
    let ts: Vec<i64> = (0..n).map(|_| (lcg(&mut s) % 230) as i64).collect();
    cols.push((
        "event_timestamp",
        ts_col(&ts.iter().copied().map(Some).collect::<Vec<_>>()),
    ));
    (batch(cols), keys, ts)
}

/// The reference: for each entity row, the latest feature row of its key at or before its time
/// (within the TTL) by `(ts, created)`, the later row in the file on an exact tie.
fn brute_force(
    rows: &[FeatureRow],
    keys: &[Option<u64>],
    ts: &[i64],
    ttl: i64,
) -> Vec<Option<f64>> {
    let mut by_key: HashMap<u64, Vec<&FeatureRow>> = HashMap::new();
    for r in rows {
        if let Some(k) = r.0 {
            by_key.entry(k).or_default().push(r);
        }
    }
    keys.iter()
        .zip(ts)
        .map(|(k, t)| {
            let mut best: Option<&FeatureRow> = None;
            for r in by_key.get(&(*k)?)? {
                let inside = r.1 <= *t && (ttl == 0 || r.1 >= t - ttl);
                if inside && best.is_none_or(|b| (r.1, r.2) >= (b.1, b.2)) {
                    best = Some(r);
                }
            }
            best?.3
        })
        .collect()
}

async fn historical_on(
    repo: &Repo,
    entities: &RecordBatch,
    features: &[&str],
    threads: usize,
    parts: usize,
) -> RecordBatch {
    let e = repo
        .engine()
        .with_threads(threads)
        .with_key_partitions(parts);
    historical_with_engine(e, entities, features).await
}

/// The plan a cluster runs: both sides shuffled by key into `parts` partitions, a
/// `PitJoinExec` per partition.
async fn historical_exchanged(
    repo: &Repo,
    entities: &RecordBatch,
    features: &[&str],
    parts: usize,
) -> RecordBatch {
    historical_with_engine(repo.engine().with_exchange(parts), entities, features).await
}

async fn historical_with_engine(
    e: quiver_offline::OfflineEngine,
    entities: &RecordBatch,
    features: &[&str],
) -> RecordBatch {
    let refs = e.registry().resolve_features(features).unwrap();
    let opts = HistoricalOptions {
        full_names: true,
        ..HistoricalOptions::default()
    };
    e.historical(entities, &refs, &opts, "", &no_progress())
        .await
        .unwrap()
}

fn parquet_bytes(b: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, b.schema(), None).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
    out
}

fn all_features() -> Vec<String> {
    VIEWS
        .iter()
        .flat_map(|(v, _)| [format!("{v}:v"), format!("{v}:s")])
        .collect()
}

#[tokio::test]
async fn every_key_type_equals_a_brute_force_scan_and_views_join_together() {
    let repo = Repo::new(YAML);
    let rows = feature_rows(&repo, 1, 6_000);
    let (entities, keys, ts) = entity_rows(2, 3_000);
    let features = all_features();
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    // All four views in one call, then each alone: the same values.
    let together = historical_on(&repo, &entities, &features, 2, 1).await;
    let exchanged = historical_exchanged(&repo, &entities, &features, 8).await;
    for (view, ttl) in VIEWS {
        let want = brute_force(&rows[view], &keys[view], &ts, ttl);
        assert_eq!(
            f64s(&exchanged, &format!("{view}__v")),
            want,
            "view {view}, shuffled over 8 partitions"
        );
        let want = brute_force(&rows[view], &keys[view], &ts, ttl);
        let got = f64s(&together, &format!("{view}__v"));
        assert_eq!(got, want, "view {view}");
        let strings = strs(&together, &format!("{view}__s"));
        let want_s: Vec<Option<String>> = want.iter().map(|v| v.map(|v| format!("s{v}"))).collect();
        assert_eq!(strings, want_s, "view {view}");
        assert!(
            want.iter().filter(|v| v.is_some()).count() > 1_000 && want.iter().any(Option::is_none),
            "view {view}: the data matches some rows, not all"
        );
        let v = format!("{view}:v");
        let alone = historical_on(&repo, &entities, &[v.as_str()], 1, 1).await;
        assert_eq!(
            f64s(&alone, &format!("{view}__v")),
            want,
            "view {view} alone"
        );
    }
}

/// The same call on 1, 2 and 8 threads and 1, 2 and 8 hash partitions of the keys: the output
/// is the same, byte for byte (exact ties included, which this data is full of).
#[tokio::test]
async fn results_do_not_depend_on_threads_or_partitions() {
    let repo = Repo::new(YAML);
    feature_rows(&repo, 3, 5_000);
    let (entities, _, _) = entity_rows(4, 2_500);
    let features = all_features();
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    let reference = parquet_bytes(&historical_on(&repo, &entities, &features, 1, 1).await);
    for (threads, parts) in [
        (1, 2),
        (1, 8),
        (2, 1),
        (2, 2),
        (2, 8),
        (8, 1),
        (8, 8),
        (3, 5),
    ] {
        let got = historical_on(&repo, &entities, &features, threads, parts).await;
        assert!(
            parquet_bytes(&got) == reference,
            "{threads} threads, {parts} partitions"
        );
    }
    for parts in [1, 2, 8] {
        let got = historical_exchanged(&repo, &entities, &features, parts).await;
        assert!(
            parquet_bytes(&got) == reference,
            "exchanged over {parts} partitions"
        );
    }
}

/// An entity file of several large row groups is read in the file's order, every time (the
/// scan's partitions used to share out the file as they went, so `historical`'s rows came back in
/// another order from run to run: 2 of 6 runs on the 30M x 3M benchmark's entity file).
#[tokio::test]
async fn entity_files_are_read_in_their_order() {
    let repo = Repo::new(YAML);
    let n = 3_000_000i64;
    let ids: Vec<Option<i64>> = (0..n).map(|i| Some((i * 7919) % n)).collect();
    let path = repo.path("data/entities.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let entities = batch(vec![("user_id", i64_col(&ids))]);
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        entities.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&entities).unwrap();
    w.close().unwrap();
    let engine = repo.engine();
    for _ in 0..6 {
        let read = engine.read_table(&path).await.unwrap();
        assert!(
            i64s(&read, "user_id") == ids,
            "rows out of the file's order"
        );
    }
}
