//! The decayed aggregations online: after `/materialize` up to a time, `/get-online-features`
//! serves exactly what `historical` computes for entity rows at that time (a weighted,
//! time-decayed popularity per product and a category-share vector per user).

use super::*;
use quiver_offline::{HistoricalOptions, OfflineEngine};

const DAY: i64 = 86_400_000_000;

const RANKING: &str = r#"
project: ranking
entities:
  - {name: user, join_keys: [user_id]}
  - {name: product, join_keys: [product_id]}
sources:
  - {name: events, type: parquet, path: data/events.parquet, timestamp_field: event_timestamp}
feature_views:
  - name: product_popularity
    entities: [product]
    source: events
    aggregations:
      - {name: popularity_90d, function: decayed_sum, expr: "CASE event_type WHEN 'purchase' THEN 3 WHEN 'add_to_cart' THEN 2 WHEN 'view' THEN 1 ELSE 0 END", window: 90d, half_life: 30d}
  - name: user_category_affinity
    entities: [user]
    source: events
    aggregations:
      - {name: affinity_90d, function: decayed_share, column: category, categories: [shoes, books, games], window: 90d, half_life: 30d}
"#;

/// 20 users, 12 products, 600 events over 120 days from T0 (whole hours, so that many tie),
/// every 17th category null and some categories undeclared.
fn ranking_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("quiver.yaml"), RANKING).unwrap();
    let mut x: u64 = 7;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    let (mut users, mut products, mut ts, mut types, mut cats) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..600 {
        users.push(1 + next(20) as i64);
        products.push(1 + next(12) as i64);
        ts.push(T0 + next(120 * 24) as i64 * HOUR);
        types.push(["view", "view", "view", "add_to_cart", "purchase", "refund"][next(6) as usize]);
        cats.push((i % 17 != 0).then(|| ["shoes", "books", "games", "toys"][next(4) as usize]));
    }
    write_parquet(
        &dir.path().join("data/events.parquet"),
        vec![
            ("user_id", Arc::new(Int64Array::from(users)) as ArrayRef),
            ("product_id", Arc::new(Int64Array::from(products))),
            (
                "event_timestamp",
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            ),
            ("event_type", Arc::new(StringArray::from(types))),
            ("category", Arc::new(StringArray::from(cats))),
        ],
    );
    dir
}

/// `historical` for `feature` with one entity row per key of `key_column` at `at`.
async fn offline(root: &Path, key_column: &str, keys: &[i64], at: i64, feature: &str) -> Value {
    let engine = OfflineEngine::new(load_registry(root).unwrap(), root);
    let n = keys.len();
    let entities = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new(
                key_column,
                datafusion::arrow::datatypes::DataType::Int64,
                true,
            ),
            Field::new(
                "event_timestamp",
                datafusion::arrow::datatypes::DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
        ])),
        vec![
            Arc::new(Int64Array::from(keys.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(vec![at; n]).with_timezone("UTC")),
        ],
    )
    .unwrap();
    let refs = engine.registry().resolve_features(&[feature]).unwrap();
    let out = engine
        .historical(
            &entities,
            &refs,
            &HistoricalOptions::default(),
            "",
            &quiver_offline::engine::no_progress(),
        )
        .await
        .unwrap();
    let column = out.column(out.num_columns() - 1);
    let t = engine.registry().views[&refs[0].view]
        .output_type(&refs[0].feature)
        .unwrap();
    let values: Vec<Value> = (0..n)
        .map(
            |i| match quiver_online::Value::from_array(column, i, t).unwrap() {
                quiver_online::Value::Null => Value::Null,
                quiver_online::Value::Float64(x) => json!(x),
                quiver_online::Value::Float64List(xs) => json!(xs),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    Value::Array(values)
}

#[tokio::test]
async fn materialized_decayed_features_are_served_as_historical_computes_them() {
    let dir = ranking_repo();
    let root = dir.path();
    let app = router(state(root, embedded(root), config(Some(TOKEN))).await);
    let end = T0 + 100 * DAY + 7 * HOUR;
    let (s, v) = post(
        &app,
        "/materialize",
        json!({"start_ts": "2024-12-01T00:00:00Z", "end_ts": quiver_online::format_time(end)}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let products: Vec<i64> = (1..=12).collect();
    let users: Vec<i64> = (1..=21).collect(); // user 21 has no events
    for (key, keys, feature) in [
        ("product_id", &products, "product_popularity:popularity_90d"),
        ("user_id", &users, "user_category_affinity:affinity_90d"),
    ] {
        let (s, online) = post(
            &app,
            "/get-online-features",
            json!({"features": [feature], "entities": {key: keys}}),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{online}");
        let served = &online["results"][1];
        let want = offline(root, key, keys, end, feature).await;
        assert_eq!(
            served["values"], want,
            "{feature}: online == offline as of {end}"
        );
        // Every value is as of the materialization's end, the row's event timestamp.
        let present = served["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .zip(served["event_timestamps"].as_array().unwrap())
            .filter(|(s, _)| *s == "PRESENT")
            .map(|(_, t)| t.as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert!(!present.is_empty());
        assert!(
            present
                .iter()
                .all(|t| *t == quiver_online::format_time(end)),
            "{present:?}"
        );
        if key == "user_id" {
            // Three shares per user, summing to at most 1 (the undeclared category "toys"
            // takes the rest); none for the user without events.
            let values = want.as_array().unwrap();
            for v in &values[..20] {
                let s: Vec<f64> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                assert_eq!(s.len(), 3);
                assert!(s.iter().sum::<f64>() <= 1.0 + 1e-12 && s.iter().all(|x| *x >= 0.0));
            }
            assert_eq!(values[20], Value::Null);
        }
    }
}
