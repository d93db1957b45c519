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
