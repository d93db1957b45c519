//! Golden point-in-time cases. Each names the rule it pins down.

use super::*;

const STATS: &str = r#"
project: t
entities:
  - {name: user, join_keys: [user_id], value_type: int64}
sources:
  - {name: src, type: parquet, path: data/stats.parquet, timestamp_field: event_timestamp, created_timestamp_field: created}
feature_views:
  - name: stats
    entities: [user]
    source: src
    ttl: 1d
    features:
      - {name: f, type: float64}
      - {name: s, type: string}
"#;

/// Feature rows: (user, ts seconds after T0, created seconds, f, s).
/// (user, ts seconds after T0, created seconds, f, s).
type Row<'a> = (i64, i64, i64, Option<f64>, Option<&'a str>);

fn stats_repo(yaml: &str, rows: &[Row<'_>]) -> Repo {
    let repo = Repo::new(yaml);
    let b = batch(vec![
        (
            "user_id",
            i64_col(&rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>()),
        ),
        (
            "event_timestamp",
            ts_col(&rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>()),
        ),
        (
            "created",
            ts_col(&rows.iter().map(|r| Some(r.2)).collect::<Vec<_>>()),
        ),
        ("f", f64_col(&rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        ("s", str_col(&rows.iter().map(|r| r.4).collect::<Vec<_>>())),
    ]);
    write_parquet(&repo.path("data/stats.parquet"), &b);
    repo
}

fn entities(rows: &[(i64, i64)]) -> RecordBatch {
    batch(vec![
        (
            "user_id",
            i64_col(&rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>()),
        ),
        (
            "event_timestamp",
            ts_col(&rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>()),
        ),
    ])
}

#[tokio::test]
async fn exact_timestamp_match_is_included() {
    let repo = stats_repo(
        STATS,
        &[
            (1, 100, 100, Some(1.0), Some("a")),
            (1, 200, 200, Some(2.0), Some("b")),
        ],
    );
    let out = repo
        .historical(&entities(&[(1, 200), (1, 199)]), &["stats:f", "stats:s"])
        .await
        .unwrap();
    assert_eq!(f64s(&out, "f"), [Some(2.0), Some(1.0)]);
    assert_eq!(strs(&out, "s"), [Some("b".into()), Some("a".into())]);
}

#[tokio::test]
async fn ttl_lower_edge_is_inclusive() {
    let repo = stats_repo(STATS, &[(1, 0, 0, Some(1.0), None)]);
    let out = repo
        .historical(&entities(&[(1, DAY), (1, DAY + 1)]), &["stats:f"])
        .await
        .unwrap();
    assert_eq!(
        f64s(&out, "f"),
        [Some(1.0), None],
        "t - ttl == ts matches; one second later it has expired"
    );
}

#[tokio::test]
async fn rows_before_the_first_feature_row_get_nulls_and_are_kept() {
    let repo = stats_repo(STATS, &[(1, 100, 100, Some(1.0), Some("a"))]);
    let out = repo
        .historical(&entities(&[(1, 99), (2, 100), (1, 100)]), &["stats:f"])
        .await
        .unwrap();
    assert_eq!(out.num_rows(), 3, "unmatched entity rows are returned");
    assert_eq!(f64s(&out, "f"), [None, None, Some(1.0)]);
}

#[tokio::test]
async fn the_future_never_leaks() {
    let repo = stats_repo(
        STATS,
        &[
            (1, 100, 100, Some(1.0), None),
            (1, 101, 50, Some(9.0), None),
        ],
    );
    let out = repo
        .historical(&entities(&[(1, 100)]), &["stats:f"])
        .await
        .unwrap();
    assert_eq!(f64s(&out, "f"), [Some(1.0)]);
}

#[tokio::test]
async fn equal_timestamps_break_ties_by_created_whatever_the_file_order() {
    let rows = [
        (1, 100, 300, Some(3.0), None),
        (1, 100, 200, Some(2.0), None),
        (1, 100, 250, Some(2.5), None),
    ];
    let repo = stats_repo(STATS, &rows);
    let out = repo
        .historical(&entities(&[(1, 150)]), &["stats:f"])
        .await
        .unwrap();
    assert_eq!(f64s(&out, "f"), [Some(3.0)], "latest created wins");
}

#[tokio::test]
async fn a_null_in_the_latest_row_stays_null() {
    let repo = stats_repo(
        STATS,
        &[
            (1, 100, 100, Some(1.0), Some("old")),
            (1, 200, 200, None, Some("new")),
        ],
    );
    let out = repo
        .historical(&entities(&[(1, 300)]), &["stats:f", "stats:s"])
        .await
        .unwrap();
    assert_eq!(f64s(&out, "f"), [None], "no fallback to the older row");
    assert_eq!(strs(&out, "s"), [Some("new".into())]);
}

#[tokio::test]
async fn unbounded_ttl_reaches_any_age() {
    let yaml = STATS.replace("ttl: 1d", "ttl: 0");
    let repo = stats_repo(&yaml, &[(1, 0, 0, Some(1.0), None)]);
    let out = repo
        .historical(&entities(&[(1, 400 * DAY)]), &["stats:f"])
        .await
        .unwrap();
    assert_eq!(f64s(&out, "f"), [Some(1.0)]);
    let yaml = STATS.replace("    ttl: 1d\n", "");
    let repo = stats_repo(&yaml, &[(1, 0, 0, Some(1.0), None)]);
    let out = repo
        .historical(&entities(&[(1, 400 * DAY)]), &["stats:f"])
        .await
        .unwrap();
    assert_eq!(f64s(&out, "f"), [Some(1.0)], "absent ttl is unbounded too");
}

#[tokio::test]
async fn duplicates_order_and_extra_columns_pass_through() {
    let repo = stats_repo(
        STATS,
        &[
            (1, 100, 100, Some(1.0), None),
            (2, 100, 100, Some(2.0), None),
        ],
    );
    let e = batch(vec![
        (
            "label",
            str_col(&[Some("x"), Some("y"), Some("z"), Some("w")]),
        ),
        ("user_id", i64_col(&[Some(2), Some(1), Some(2), Some(1)])),
        (
            "event_timestamp",
            ts_col(&[Some(150), Some(150), Some(150), Some(50)]),
        ),
    ]);
    let out = repo.historical(&e, &["stats:f"]).await.unwrap();
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["label", "user_id", "event_timestamp", "f"]);
    assert_eq!(f64s(&out, "f"), [Some(2.0), Some(1.0), Some(2.0), None]);
    assert_eq!(
        strs(&out, "label"),
        [
            Some("x".into()),
            Some("y".into()),
            Some("z".into()),
            Some("w".into())
        ]
    );
}

#[tokio::test]
async fn full_names_and_requested_order() {
    let repo = stats_repo(STATS, &[(1, 100, 100, Some(1.0), Some("a"))]);
    let e = repo.engine();
    let refs = e
        .registry()
        .resolve_features(&["stats:s", "stats:f"])
        .unwrap();
    let opts = HistoricalOptions {
        full_names: true,
        ..Default::default()
    };
    let out = e
        .historical(
            &entities(&[(1, 100)]),
            &refs,
            &opts,
            "",
            &quiver_offline::engine::no_progress(),
        )
        .await
        .unwrap();
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["user_id", "event_timestamp", "stats__s", "stats__f"]
    );
}

#[tokio::test]
async fn string_and_composite_keys() {
    let yaml = r#"
project: t
entities:
  - {name: store, join_keys: [country, store_id], value_types: [string, int64]}
sources:
  - {name: src, type: parquet, path: data/sales.parquet, timestamp_field: ts}
feature_views:
  - {name: sales, entities: [store], source: src, ttl: 0, features: [{name: revenue, type: float64}]}
"#;
    let repo = Repo::new(yaml);
    write_parquet(
        &repo.path("data/sales.parquet"),
        &batch(vec![
            ("country", str_col(&[Some("fr"), Some("de"), Some("fr")])),
            ("store_id", i64_col(&[Some(1), Some(1), Some(2)])),
            ("ts", ts_col(&[Some(10), Some(10), Some(10)])),
            ("revenue", f64_col(&[Some(1.0), Some(2.0), Some(3.0)])),
        ]),
    );
    let e = batch(vec![
        (
            "country",
            str_col(&[Some("de"), Some("fr"), Some("fr"), Some("it"), None]),
        ),
        (
            "store_id",
            i64_col(&[Some(1), Some(2), Some(1), Some(1), Some(1)]),
        ),
        ("event_timestamp", ts_col(&[Some(20); 5])),
    ]);
    let out = repo.historical(&e, &["sales:revenue"]).await.unwrap();
    assert_eq!(
        f64s(&out, "revenue"),
        [Some(2.0), Some(3.0), Some(1.0), None, None],
        "a null key never matches"
    );
}

#[tokio::test]
async fn several_views_with_different_entities() {
    let yaml = r#"
project: t
entities:
  - {name: user, join_keys: [user_id]}
  - {name: product, join_keys: [product_id], value_type: string}
sources:
  - {name: u, type: parquet, path: data/u.parquet, timestamp_field: ts}
  - {name: p, type: csv, path: data/p.csv, timestamp_field: ts}
feature_views:
  - {name: users, entities: [user], source: u, ttl: 10d, features: [{name: age, type: int64}]}
  - {name: products, entities: [product], source: p, ttl: 10d, features: [{name: price, type: float64}]}
"#;
    let repo = Repo::new(yaml);
    write_parquet(
        &repo.path("data/u.parquet"),
        &batch(vec![
            ("user_id", i64_col(&[Some(1), Some(1)])),
            ("ts", ts_col(&[Some(0), Some(DAY)])),
            ("age", i64_col(&[Some(30), Some(31)])),
        ]),
    );
    std::fs::write(repo.path("data/p.csv"), "product_id,ts,price\nA,2025-01-01T00:00:00Z,9.5\nA,2025-01-03T00:00:00Z,10.5\nB,2025-01-01T00:00:00Z,1.0\n").unwrap();
    let e = batch(vec![
        ("user_id", i64_col(&[Some(1), Some(1)])),
        ("product_id", str_col(&[Some("A"), Some("B")])),
        ("event_timestamp", ts_col(&[Some(DAY), Some(3 * DAY)])),
    ]);
    let out = repo
        .historical(&e, &["products:price", "users:age"])
        .await
        .unwrap();
    assert_eq!(i64s(&out, "age"), [Some(31), Some(31)]);
    assert_eq!(f64s(&out, "price"), [Some(9.5), Some(1.0)]);
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        &names[3..],
        ["price", "age"],
        "features in the order requested"
    );
}

#[tokio::test]
async fn derived_features_by_sql_expression() {
    let yaml = r#"
project: t
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: r, type: parquet, path: data/r.parquet, timestamp_field: ts}]
feature_views:
  - name: reviews
    entities: [user]
    source: r
    features:
      - {name: log_amount, type: float64, expr: "log1p(amount)"}
      - {name: helpful_ratio, type: float64, expr: "helpful_votes / nullif(total_votes, 0)"}
      - {name: votes, type: int64, column: total_votes}
"#;
    let repo = Repo::new(yaml);
    write_parquet(
        &repo.path("data/r.parquet"),
        &batch(vec![
            ("user_id", i64_col(&[Some(1), Some(2)])),
            ("ts", ts_col(&[Some(0), Some(0)])),
            ("amount", f64_col(&[Some(0.5), Some(1.0)])),
            ("helpful_votes", f64_col(&[Some(3.0), Some(1.0)])),
            ("total_votes", i64_col(&[Some(4), Some(0)])),
        ]),
    );
    let out = repo
        .historical(&entities(&[(1, 10), (2, 10)]), &["reviews:*"])
        .await
        .unwrap();
    assert_eq!(
        f64s(&out, "log_amount"),
        [Some(0.5f64.ln_1p()), Some(1.0f64.ln_1p())]
    );
    assert_eq!(f64s(&out, "helpful_ratio"), [Some(0.75), None]);
    assert_eq!(i64s(&out, "votes"), [Some(4), Some(0)]);
}

#[tokio::test]
async fn latest_per_entity_between_since_and_as_of() {
    let repo = stats_repo(
        STATS,
        &[
            (1, 100, 100, Some(1.0), None),
            (1, 200, 200, Some(2.0), None),
            (1, 300, 300, Some(3.0), None),
            (2, 50, 50, Some(5.0), None),
        ],
    );
    let e = repo.engine();
    let out = e.latest("stats", us(250), None).await.unwrap();
    assert_eq!(out.num_rows(), 2);
    let users = i64s(&out, "user_id");
    let f = f64s(&out, "f");
    let mut pairs: Vec<_> = users.into_iter().zip(f).collect();
    pairs.sort_by_key(|p| p.0);
    assert_eq!(pairs, [(Some(1), Some(2.0)), (Some(2), Some(5.0))]);
    let out = e.latest("stats", us(250), Some(us(100))).await.unwrap();
    assert_eq!(
        i64s(&out, "user_id"),
        [Some(1)],
        "rows at or before since are skipped"
    );
    assert_eq!(f64s(&out, "f"), [Some(2.0)]);
    let ts = out
        .column_by_name("event_timestamp")
        .unwrap()
        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    assert_eq!(ts, us(200));
}

#[tokio::test]
async fn latest_as_an_arrow_stream() {
    use futures::StreamExt;
    let repo = stats_repo(
        STATS,
        &[
            (1, 100, 100, Some(1.0), None),
            (2, 50, 50, Some(5.0), None),
            (3, 60, 60, None, Some("x")),
        ],
    );
    let e = repo.engine();
    let whole = e.latest("stats", us(250), None).await.unwrap();
    let mut stream = e.latest_stream("stats", us(250), None, 2).await.unwrap();
    let mut sizes = Vec::new();
    let mut users = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b.unwrap();
        sizes.push(b.num_rows());
        users.extend(i64s(&b, "user_id"));
    }
    assert_eq!(sizes, [2, 1]);
    assert_eq!(users, i64s(&whole, "user_id"));
}
