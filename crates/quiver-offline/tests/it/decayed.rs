//! `decayed_sum` and `decayed_share` as of each entity timestamp, against hand-computed values
//! and a brute-force reference (every event scanned for every entity row, the decay written as
//! `0.5^(age / half_life)`), with events exactly at the window's edges, null values and ties;
//! and materialization (`latest`) against `historical` at the same time.

use super::*;

const HOUR: i64 = 3_600;

const YAML: &str = r#"
project: t
entities: [{name: product, join_keys: [product_id]}]
sources: [{name: events, type: parquet, path: data/events.parquet, timestamp_field: ts}]
feature_views:
  - name: d
    entities: [product]
    source: events
    aggregations:
      - {name: dsum, function: decayed_sum, column: amount, window: 2d, half_life: 1d}
      - {name: popularity, function: decayed_sum, expr: "CASE event_type WHEN 'purchase' THEN 3 WHEN 'add_to_cart' THEN 2 WHEN 'view' THEN 1 ELSE 0 END", window: 2d, half_life: 12h}
      - {name: bought, function: decayed_sum, column: amount, window: 2d, half_life: 1d, filter: "event_type = 'purchase'"}
      - {name: share, function: decayed_share, column: category, categories: [a, b], window: 2d, half_life: 1d}
      - {name: share32, function: decayed_share, column: category, categories: [b, a], window: 2d, half_life: 1d, type: "list<float32>"}
"#;

/// One event: key, time (seconds after T0), event type, amount, category.
type Event = (i64, i64, &'static str, Option<f64>, Option<&'static str>);

/// Product 1: an event at 0; a tie at 1d (null amount and null category among them); 2d; 3d.
/// Product 2: one event at 12h. Product 3: none.
const EVENTS: &[Event] = &[
    (1, 0, "purchase", Some(3.0), Some("a")),
    (1, DAY, "view", None, None),
    (1, DAY, "add_to_cart", Some(2.0), Some("b")),
    (1, DAY, "purchase", Some(1.0), Some("a")),
    (1, 2 * DAY, "view", Some(5.0), Some("c")),
    (1, 3 * DAY, "refund", Some(1.0), Some("b")),
    (2, DAY / 2, "view", Some(4.0), Some("b")),
];

fn repo() -> Repo {
    let repo = Repo::new(YAML);
    write_parquet(
        &repo.path("data/events.parquet"),
        &batch(vec![
            (
                "product_id",
                i64_col(&EVENTS.iter().map(|e| Some(e.0)).collect::<Vec<_>>()),
            ),
            (
                "ts",
                ts_col(&EVENTS.iter().map(|e| Some(e.1)).collect::<Vec<_>>()),
            ),
            (
                "event_type",
                str_col(&EVENTS.iter().map(|e| Some(e.2)).collect::<Vec<_>>()),
            ),
            (
                "amount",
                f64_col(&EVENTS.iter().map(|e| e.3).collect::<Vec<_>>()),
            ),
            (
                "category",
                str_col(&EVENTS.iter().map(|e| e.4).collect::<Vec<_>>()),
            ),
        ]),
    );
    repo
}

/// The events of `key` in `(t - window, t]` that `keep` selects, with their decay factors.
fn in_window(
    key: i64,
    t: i64,
    window: i64,
    half_life: i64,
    keep: impl Fn(&Event) -> bool,
) -> Vec<(&'static Event, f64)> {
    EVENTS
        .iter()
        .filter(|e| e.0 == key && e.1 > t - window && e.1 <= t && keep(e))
        .map(|e| (e, 0.5f64.powf((t - e.1) as f64 / half_life as f64)))
        .collect()
}

/// Brute-force `decayed_sum` of `value` (null when no event has a value).
fn brute_sum(
    key: i64,
    t: i64,
    half_life: i64,
    keep: impl Fn(&Event) -> bool,
    value: impl Fn(&Event) -> Option<f64>,
) -> Option<f64> {
    let w: Vec<(f64, f64)> = in_window(key, t, 2 * DAY, half_life, keep)
        .into_iter()
        .filter_map(|(e, d)| value(e).map(|v| (v, d)))
        .collect();
    (!w.is_empty()).then(|| w.iter().map(|(v, d)| v * d).sum())
}

/// Brute-force `decayed_share` over `categories`.
fn brute_share(key: i64, t: i64, categories: &[&str]) -> Option<Vec<f64>> {
    let w: Vec<(&str, f64)> = in_window(key, t, 2 * DAY, DAY, |_| true)
        .into_iter()
        .filter_map(|(e, d)| e.4.map(|c| (c, d)))
        .collect();
    let total: f64 = w.iter().map(|(_, d)| d).sum();
    (!w.is_empty()).then(|| {
        categories
            .iter()
            .map(|c| {
                w.iter()
                    .filter(|(x, _)| x == c)
                    .map(|(_, d)| d)
                    .sum::<f64>()
                    / total
            })
            .collect()
    })
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

/// The rows of a `list<float64>` (or `list<float32>`, widened) column, null rows as `None`.
fn shares(b: &RecordBatch, name: &str) -> Vec<Option<Vec<f64>>> {
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    let c = b.column_by_name(name).unwrap();
    let c = cast(
        c,
        &DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
    )
    .unwrap();
    let c = c.as_list::<i32>();
    (0..c.len())
        .map(|i| {
            (!c.is_null(i)).then(|| c.value(i).as_primitive::<Float64Type>().values().to_vec())
        })
        .collect()
}

fn popularity_weight(e: &Event) -> Option<f64> {
    Some(match e.2 {
        "purchase" => 3.0,
        "add_to_cart" => 2.0,
        "view" => 1.0,
        _ => 0.0,
    })
}

/// Entity rows: every event time of product 1 and the times just around its window edges, then
/// product 2 and product 3 (no events).
fn entity_rows() -> Vec<(i64, i64)> {
    let mut rows: Vec<(i64, i64)> = [-1, 0, 1, DAY - 1, DAY, DAY + 1, 2 * DAY - 1, 2 * DAY]
        .into_iter()
        .chain([2 * DAY + 1, 3 * DAY - 1, 3 * DAY, 3 * DAY + HOUR, 5 * DAY])
        .chain([5 * DAY + 1])
        .map(|t| (1, t))
        .collect();
    rows.extend([
        (2, 0),
        (2, DAY / 2),
        (2, 2 * DAY + DAY / 2),
        (2, 3 * DAY),
        (3, DAY),
    ]);
    rows
}

#[tokio::test]
async fn decayed_sum_and_share_equal_hand_and_brute_force_values() {
    let repo = repo();
    let rows = entity_rows();
    let e = batch(vec![
        (
            "product_id",
            i64_col(&rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>()),
        ),
        (
            "event_timestamp",
            ts_col(&rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>()),
        ),
    ]);
    let out = repo.historical(&e, &["d:*"]).await.unwrap();
    let (dsum, pop, bought) = (
        f64s(&out, "dsum"),
        f64s(&out, "popularity"),
        f64s(&out, "bought"),
    );
    let (share, share32) = (shares(&out, "share"), shares(&out, "share32"));

    // By hand, product 1 (half-life 1d, window 2d):
    // at 0: 3; at 1d: 3/2 + 2 + 1 (the null amount skipped); at 2d: the event at 0 is exactly at
    // t - window and left out: (2 + 1)/2 + 5; at 3d: the tie at 1d is at the edge: 5/2 + 1.
    let at = |t: i64| rows.iter().position(|r| *r == (1, t)).unwrap();
    assert_eq!(dsum[at(-1)], None, "before any event: null, as for sum");
    assert_eq!(dsum[at(0)], Some(3.0), "an event at t weighs 1");
    assert_eq!(dsum[at(DAY)], Some(4.5));
    assert_eq!(dsum[at(2 * DAY)], Some(6.5));
    assert_eq!(dsum[at(3 * DAY)], Some(3.5));
    assert_eq!(dsum[at(5 * DAY)], None, "every event has left the window");
    // Popularity weights (half-life 12h) at 1d: purchase 3 a day old (1/4), then the tie:
    // view 1 + add_to_cart 2 + purchase 3.
    assert_eq!(pop[at(DAY)], Some(0.75 + 6.0));
    // The filter keeps purchases only: at 1d, 3/2 + 1.
    assert_eq!(bought[at(DAY)], Some(2.5));
    // Shares at 1d (weights a: 1/2 + 1, b: 1; the null category left out): a 0.6, b 0.4.
    assert_eq!(share[at(DAY)], Some(vec![0.6, 0.4]));
    // At 2d the undeclared category c (weight 1) counts in the total only: a 1/2, b 1/2 of
    // 2 in all.
    assert_eq!(share[at(2 * DAY)], Some(vec![0.25, 0.25]));
    assert_eq!(share[at(-1)], None);
    // Product 3 has no events; product 2's only event is exactly at t - window at 2d12h.
    let p3 = rows.iter().position(|r| *r == (3, DAY)).unwrap();
    assert_eq!((dsum[p3], &share[p3]), (None, &None));
    let p2 = rows
        .iter()
        .position(|r| *r == (2, 2 * DAY + DAY / 2))
        .unwrap();
    assert_eq!((dsum[p2], &share[p2]), (None, &None));

    // Brute force, every row.
    for (i, &(key, t)) in rows.iter().enumerate() {
        let want = brute_sum(key, t, DAY, |_| true, |e| e.3);
        assert!(
            close(dsum[i], want),
            "dsum {key}@{t}: {:?} vs {want:?}",
            dsum[i]
        );
        let want = brute_sum(key, t, DAY / 2, |_| true, popularity_weight);
        assert!(
            close(pop[i], want),
            "popularity {key}@{t}: {:?} vs {want:?}",
            pop[i]
        );
        let want = brute_sum(key, t, DAY, |e| e.2 == "purchase", |e| e.3);
        assert!(
            close(bought[i], want),
            "bought {key}@{t}: {:?} vs {want:?}",
            bought[i]
        );
        let want = brute_share(key, t, &["a", "b"]);
        match (&share[i], &want) {
            (Some(got), Some(want)) => {
                assert_eq!(got.len(), 2);
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        close(Some(*g), Some(*w)),
                        "share {key}@{t}: {got:?} vs {want:?}"
                    );
                }
            }
            (None, None) => {}
            _ => panic!("share {key}@{t}: {:?} vs {want:?}", share[i]),
        }
        let want32 = brute_share(key, t, &["b", "a"]);
        match (&share32[i], &want32) {
            (Some(got), Some(want)) => {
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (g - w).abs() < 1e-6,
                        "share32 {key}@{t}: {got:?} vs {want:?}"
                    );
                }
            }
            (None, None) => {}
            _ => panic!("share32 {key}@{t}: {:?} vs {want32:?}", share32[i]),
        }
    }
}

#[tokio::test]
async fn materialization_computes_the_same_values_as_of_its_end() {
    let repo = repo();
    let engine = repo.engine();
    for end in [DAY, 2 * DAY, 3 * DAY + HOUR] {
        let latest = engine.latest("d", us(end), None).await.unwrap();
        let keys = i64s(&latest, "product_id");
        let e = batch(vec![
            ("product_id", i64_col(&keys)),
            ("event_timestamp", ts_col(&vec![Some(end); keys.len()])),
        ]);
        let offline = repo.historical(&e, &["d:*"]).await.unwrap();
        for f in ["dsum", "popularity", "bought"] {
            assert_eq!(f64s(&latest, f), f64s(&offline, f), "{f} as of {end}");
        }
        for f in ["share", "share32"] {
            assert_eq!(shares(&latest, f), shares(&offline, f), "{f} as of {end}");
        }
    }
    // As of 3d1h, product 2's only event (at 12h) has left the window: its row is written with
    // the empty-window values (null), not kept stale.
    let latest = engine.latest("d", us(3 * DAY + HOUR), None).await.unwrap();
    let p2 = i64s(&latest, "product_id")
        .iter()
        .position(|k| *k == Some(2))
        .unwrap();
    assert_eq!(f64s(&latest, "dsum")[p2], None);
    assert_eq!(shares(&latest, "share")[p2], None);
}
