//! Windowed aggregations computed as of each entity timestamp.

use super::*;

const YAML: &str = r#"
project: t
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: events, type: parquet, path: data/events.parquet, timestamp_field: ts}]
feature_views:
  - name: p
    entities: [user]
    source: events
    aggregations:
      - {name: n, function: count, column: amount, window: 2d, filter: "event_type = 'purchase'"}
      - {name: n_all, function: count, window: 2d}
      - {name: total, function: sum, column: amount, window: 2d, filter: "event_type = 'purchase'"}
      - {name: avg, function: mean, column: amount, window: 2d, filter: "event_type = 'purchase'"}
      - {name: lo, function: min, column: amount, window: 2d, filter: "event_type = 'purchase'"}
      - {name: hi, function: max, column: amount, window: 2d, filter: "event_type = 'purchase'"}
      - {name: sd, function: stddev, column: amount, window: 2d, filter: "event_type = 'purchase'"}
      - {name: kinds, function: count_distinct, column: event_type, window: 2d}
      - {name: last_type, function: last, column: event_type, window: 2d, type: string}
      - {name: days_since, function: time_since_last, window: 365d, filter: "event_type = 'purchase'"}
      - {name: log_total, function: sum, expr: "log1p(amount)", window: 2d}
"#;

fn repo() -> Repo {
    let repo = Repo::new(YAML);
    // user 1: purchase 10 at day 0, view at day 1, purchase 20 at day 1.5, purchase null at day 2.
    write_parquet(
        &repo.path("data/events.parquet"),
        &batch(vec![
            (
                "user_id",
                i64_col(&[Some(1), Some(1), Some(1), Some(1), Some(2)]),
            ),
            (
                "ts",
                ts_col(&[
                    Some(0),
                    Some(DAY),
                    Some(DAY + DAY / 2),
                    Some(2 * DAY),
                    Some(0),
                ]),
            ),
            (
                "event_type",
                str_col(&[
                    Some("purchase"),
                    Some("view"),
                    Some("purchase"),
                    Some("purchase"),
                    Some("view"),
                ]),
            ),
            (
                "amount",
                f64_col(&[Some(10.0), None, Some(20.0), None, Some(1.0)]),
            ),
        ]),
    );
    repo
}

#[tokio::test]
async fn window_is_open_at_the_start_and_closed_at_t() {
    let repo = repo();
    let e = batch(vec![
        (
            "user_id",
            i64_col(&[Some(1), Some(1), Some(1), Some(1), Some(2), Some(3)]),
        ),
        (
            "event_timestamp",
            ts_col(&[
                Some(-1),
                Some(0),
                Some(DAY + DAY / 2),
                Some(2 * DAY),
                Some(DAY),
                Some(DAY),
            ]),
        ),
    ]);
    let out = repo.historical(&e, &["p:*"]).await.unwrap();
    // At day 2 the event at day 0 is exactly at t - window: excluded.
    assert_eq!(
        i64s(&out, "n"),
        [Some(0), Some(1), Some(2), Some(1), Some(0), Some(0)],
        "count skips null amounts"
    );
    assert_eq!(
        i64s(&out, "n_all"),
        [Some(0), Some(1), Some(3), Some(3), Some(1), Some(0)]
    );
    assert_eq!(
        f64s(&out, "total"),
        [None, Some(10.0), Some(30.0), Some(20.0), None, None]
    );
    assert_eq!(
        f64s(&out, "avg"),
        [None, Some(10.0), Some(15.0), Some(20.0), None, None]
    );
    assert_eq!(
        f64s(&out, "lo"),
        [None, Some(10.0), Some(10.0), Some(20.0), None, None]
    );
    assert_eq!(
        f64s(&out, "hi"),
        [None, Some(10.0), Some(20.0), Some(20.0), None, None]
    );
    let sd = f64s(&out, "sd");
    assert!(
        (sd[2].unwrap() - 50f64.sqrt()).abs() < 1e-12,
        "sample stddev of 10, 20"
    );
    assert_eq!(sd[1], None, "stddev needs two values");
    assert_eq!(
        i64s(&out, "kinds"),
        [Some(0), Some(1), Some(2), Some(2), Some(1), Some(0)]
    );
    assert_eq!(
        strs(&out, "last_type"),
        [
            None,
            Some("purchase".into()),
            Some("purchase".into()),
            Some("purchase".into()),
            Some("view".into()),
            None
        ]
    );
    assert_eq!(
        f64s(&out, "days_since"),
        [None, Some(0.0), Some(0.0), Some(0.0), None, None]
    );
    let lt = f64s(&out, "log_total");
    assert!((lt[2].unwrap() - (10f64.ln_1p() + 20f64.ln_1p())).abs() < 1e-12);
}

#[tokio::test]
async fn time_since_last_in_days() {
    let repo = repo();
    let e = batch(vec![
        ("user_id", i64_col(&[Some(1)])),
        ("event_timestamp", ts_col(&[Some(5 * DAY)])),
    ]);
    let out = repo.historical(&e, &["p:days_since", "p:n"]).await.unwrap();
    assert_eq!(
        f64s(&out, "days_since"),
        [Some(3.0)],
        "last purchase (day 2, amount null) counts as an event"
    );
    assert_eq!(i64s(&out, "n"), [Some(0)]);
}

#[tokio::test]
async fn latest_for_an_aggregation_view_is_computed_as_of() {
    let repo = repo();
    let out = repo.engine().latest("p", us(2 * DAY), None).await.unwrap();
    let users = i64s(&out, "user_id");
    let i = users.iter().position(|u| *u == Some(1)).unwrap();
    assert_eq!(i64s(&out, "n")[i], Some(1));
    assert_eq!(f64s(&out, "total")[i], Some(20.0));
}

/// The rows of a `list<float32>` column (null rows as `None`).
fn vectors(b: &RecordBatch, name: &str) -> Vec<Option<Vec<f32>>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float32Type;
    let c = b.column_by_name(name).unwrap().as_list::<i32>();
    (0..c.len())
        .map(|i| {
            (!c.is_null(i)).then(|| c.value(i).as_primitive::<Float32Type>().values().to_vec())
        })
        .collect()
}

#[tokio::test]
async fn mean_of_vectors_is_element_wise_over_the_window() {
    use datafusion::arrow::array::ListArray;
    use datafusion::arrow::datatypes::Float64Type as F64;
    // Vectors computed elsewhere and stored in the source (embeddings, say), list<float64>.
    let repo = Repo::new(
        r#"
project: t
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: events, type: parquet, path: data/events.parquet, timestamp_field: ts}]
feature_views:
  - name: p
    entities: [user]
    source: events
    aggregations:
      - {name: vmean, function: mean, column: vec, window: 2d, type: "list<float32>"}
      - {name: vlast, function: last, column: vec, window: 2d, type: "list<float32>"}
"#,
    );
    let vecs: ArrayRef = Arc::new(ListArray::from_iter_primitive::<F64, _, _>(vec![
        Some(vec![Some(10.0), Some(20.0)]),
        None,
        Some(vec![Some(20.0), Some(40.0)]),
        Some(vec![Some(30.0), Some(-1.0)]),
    ]));
    write_parquet(
        &repo.path("data/events.parquet"),
        &batch(vec![
            ("user_id", i64_col(&[Some(1), Some(1), Some(1), Some(2)])),
            (
                "ts",
                ts_col(&[Some(0), Some(DAY), Some(DAY + DAY / 2), Some(0)]),
            ),
            ("vec", vecs),
        ]),
    );
    let e = batch(vec![
        (
            "user_id",
            i64_col(&[Some(1), Some(1), Some(1), Some(1), Some(3), Some(2)]),
        ),
        (
            "event_timestamp",
            ts_col(&[
                Some(-1),
                Some(0),
                Some(DAY + DAY / 2),
                Some(2 * DAY + DAY / 2),
                Some(DAY),
                Some(DAY),
            ]),
        ),
    ]);
    let out = repo.historical(&e, &["p:vmean", "p:vlast"]).await.unwrap();
    assert_eq!(
        vectors(&out, "vmean"),
        [
            None,
            Some(vec![10.0, 20.0]),
            Some(vec![15.0, 30.0]),
            Some(vec![20.0, 40.0]),
            None,
            Some(vec![30.0, -1.0]),
        ],
        "element-wise mean of the non-null vectors in (t - 2d, t]; none: null"
    );
    assert_eq!(vectors(&out, "vlast")[2], Some(vec![20.0, 40.0]));
    // Materialization computes the same as of its end.
    let latest = repo
        .engine()
        .latest("p", us(DAY + DAY / 2), None)
        .await
        .unwrap();
    let i = i64s(&latest, "user_id")
        .iter()
        .position(|u| *u == Some(1))
        .unwrap();
    assert_eq!(vectors(&latest, "vmean")[i], Some(vec![15.0, 30.0]));
}

#[test]
fn only_mean_and_last_aggregate_vectors() {
    let yaml = YAML.replace(
        "      - {name: n_all,",
        "      - {name: vsum, function: sum, column: amount, window: 2d, type: \"list<float32>\"}\n      - {name: n_all,",
    );
    let repo = Repo::new(&yaml);
    let err = load_registry(repo.dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("aggregations.vsum.type") && err.contains("only mean"),
        "{err}"
    );
}

const SHUFFLED_YAML: &str = r#"
project: t
entities:
  - {name: user, join_keys: [user_id]}
  - {name: store, join_keys: [country, store_id], value_types: [string, int64]}
sources:
  - {name: events, type: parquet, path: data/events.parquet, timestamp_field: ts}
  - {name: profiles, type: parquet, path: data/profiles.parquet, timestamp_field: ts}
feature_views:
  - {name: pv, entities: [store], source: profiles, ttl: 5h, features: [{name: score, type: float64}, {name: tier, type: string}]}
  - name: u
    entities: [user]
    source: events
    aggregations:
      - {name: n, function: count, column: amount, window: 2h, filter: "kind = 'buy'"}
      - {name: total, function: sum, column: amount, window: 2h, filter: "kind = 'buy'"}
      - {name: sd, function: stddev, column: amount, window: 6h}
      - {name: kinds, function: count_distinct, column: kind, window: 6h}
      - {name: last_kind, function: last, column: kind, window: 6h, type: string}
      - {name: since, function: time_since_last, window: 1d, unit: 1h}
      - {name: decayed, function: decayed_sum, column: amount, window: 1d, half_life: 2h}
      - {name: shares, function: decayed_share, column: kind, window: 1d, half_life: 2h, categories: [buy, view], type: "list<float64>"}
  - name: s
    entities: [store]
    source: events
    aggregations:
      - {name: n_all, function: count, window: 3h}
      - {name: hi, function: max, column: amount, window: 3h}
      - {name: avg, function: mean, column: amount, window: 3h, filter: "amount > 2"}
"#;

/// Windowed aggregations as the shuffled plan a cluster runs (`with_exchange`: the events and
/// the entity rows repartitioned by key, each partition aggregating its share) over 1, 2 and 8
/// partitions equal the engine's own path value for value, for an integer and a composite
/// string + integer key, with many events at the same time (ties keep the scan's order, so
/// `last` and the sums agree to the bit), null keys and values, and empty windows; and so does
/// `latest` (materialization: `LatestExec` per partition for the plain view) of every view.
#[tokio::test]
async fn windows_over_shuffled_partitions_equal_the_engine() {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    let repo = Repo::new(SHUFFLED_YAML);
    let mut state = 7u64;
    let mut next = move |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let n = 20_000;
    let (mut users, mut countries, mut stores, mut ts, mut kinds, mut amounts) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        users.push((next(50) != 0).then(|| next(300) as i64));
        countries.push(["de", "fr", "us"][next(3) as usize]);
        stores.push((next(40) != 0).then(|| next(20) as i64));
        // Minutes over 2 days: about 7 events per user and minute share a time.
        ts.push(Some(60 * next(2 * 24 * 60) as i64));
        kinds.push(["buy", "view", "cart"][next(3) as usize]);
        amounts.push((next(10) != 0).then(|| next(1000) as f64 / 7.0));
    }
    let events = batch(vec![
        ("user_id", i64_col(&users)),
        (
            "country",
            str_col(&countries.iter().map(|c| Some(*c)).collect::<Vec<_>>()),
        ),
        ("store_id", i64_col(&stores)),
        ("ts", ts_col(&ts)),
        (
            "kind",
            str_col(&kinds.iter().map(|k| Some(*k)).collect::<Vec<_>>()),
        ),
        ("amount", f64_col(&amounts)),
    ]);
    let path = repo.path("data/events.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Small row groups: several scan partitions, so the shuffle interleaves them.
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1_500))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        events.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&events).unwrap();
    w.close().unwrap();
    // A plain view's rows, each at its own time (exact duplicates resolve to either row).
    let p = 5_000;
    write_parquet(
        &repo.path("data/profiles.parquet"),
        &batch(vec![
            (
                "country",
                str_col(
                    &(0..p)
                        .map(|_| Some(["de", "fr", "us"][next(3) as usize]))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "store_id",
                i64_col(
                    &(0..p)
                        .map(|_| (next(50) != 0).then(|| next(20) as i64))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "ts",
                ts_col(&(0..p).map(|i| Some(i as i64 * 31)).collect::<Vec<_>>()),
            ),
            (
                "score",
                f64_col(
                    &(0..p)
                        .map(|_| (next(9) != 0).then(|| next(100) as f64))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "tier",
                str_col(
                    &(0..p)
                        .map(|_| Some(["a", "b"][next(2) as usize]))
                        .collect::<Vec<_>>(),
                ),
            ),
        ]),
    );

    let m = 3_000;
    let entities = batch(vec![
        (
            "user_id",
            i64_col(
                &(0..m)
                    .map(|_| (next(30) != 0).then(|| next(320) as i64))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "country",
            str_col(
                &(0..m)
                    .map(|_| Some(["de", "fr", "us", "it"][next(4) as usize]))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "store_id",
            i64_col(&(0..m).map(|_| Some(next(22) as i64)).collect::<Vec<_>>()),
        ),
        (
            "event_timestamp",
            ts_col(
                &(0..m)
                    .map(|_| Some(60 * next(3 * 24 * 60) as i64 - 3600))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]);
    let features = [
        "u:n",
        "u:total",
        "u:sd",
        "u:kinds",
        "u:last_kind",
        "u:since",
        "u:decayed",
        "u:shares",
        "s:n_all",
        "s:hi",
        "s:avg",
        "pv:score",
        "pv:tier",
    ];
    let opts = HistoricalOptions {
        full_names: true,
        ..HistoricalOptions::default()
    };
    let run = |e: OfflineEngine| {
        let entities = entities.clone();
        let opts = opts.clone();
        async move {
            let refs = e.registry().resolve_features(&features).unwrap();
            e.historical(
                &entities,
                &refs,
                &opts,
                "",
                &quiver_offline::engine::no_progress(),
            )
            .await
            .unwrap()
        }
    };
    let local = run(repo.engine()).await;
    // The data has what the test is about: ties, empty windows, values.
    let n_col = i64s(&local, "u__n");
    assert!(n_col.contains(&Some(0)) && n_col.iter().any(|v| v.unwrap_or(0) > 3));
    assert!(f64s(&local, "s__avg").iter().any(Option::is_some));
    for parts in [1, 2, 8] {
        let shuffled = run(repo.engine().with_exchange(parts)).await;
        same(
            &shuffled,
            &local,
            &format!("historical over {parts} partitions"),
        );
    }
    let as_of = us(DAY + DAY / 3);
    for view in ["u", "s", "pv"] {
        let sorted = |b: RecordBatch| {
            let keys: Vec<String> = (0..b.num_rows())
                .map(|i| {
                    (0..b.num_columns() - 1)
                        .map(|c| {
                            datafusion::arrow::util::display::array_value_to_string(b.column(c), i)
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            let mut order: Vec<usize> = (0..b.num_rows()).collect();
            order.sort_by(|a, c| keys[*a].cmp(&keys[*c]));
            let idx = datafusion::arrow::array::UInt32Array::from(
                order.iter().map(|i| *i as u32).collect::<Vec<_>>(),
            );
            datafusion::arrow::compute::take_record_batch(&b, &idx).unwrap()
        };
        let local = sorted(repo.engine().latest(view, as_of, None).await.unwrap());
        assert!(local.num_rows() > 10, "{view}: {} keys", local.num_rows());
        let shuffled = repo
            .engine()
            .with_exchange(4)
            .latest(view, as_of, None)
            .await
            .unwrap();
        same(
            &sorted(shuffled),
            &local,
            &format!("latest of {view} over 4 partitions"),
        );
    }
}

/// Asserts two batches equal, naming the first column and row that differ.
fn same(got: &RecordBatch, want: &RecordBatch, what: &str) {
    use datafusion::arrow::util::display::array_value_to_string;
    assert_eq!(got.schema(), want.schema(), "{what}");
    assert_eq!(got.num_rows(), want.num_rows(), "{what}");
    for (c, f) in want.schema().fields().iter().enumerate() {
        if got.column(c) != want.column(c) {
            let row = (0..want.num_rows())
                .find(|i| got.column(c).slice(*i, 1) != want.column(c).slice(*i, 1))
                .unwrap_or(0);
            panic!(
                "{what}: column {} differs first at row {row}: {} where the engine has {}",
                f.name(),
                array_value_to_string(got.column(c), row).unwrap(),
                array_value_to_string(want.column(c), row).unwrap()
            );
        }
    }
}
