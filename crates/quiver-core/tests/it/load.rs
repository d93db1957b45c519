use quiver_core::{AggFunction, Duration, FeatureRef, ValueType};

use super::{MINIMAL, err, registry};

#[test]
fn minimal_example_loads_as_written() {
    let r = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    assert_eq!(r.project, "shop");
    let v = &r.views["stats"];
    assert_eq!(v.ttl, Duration::from_seconds(30 * 86_400));
    assert_eq!(
        v.outputs(),
        vec![
            ("f_float", ValueType::Float64),
            ("f_int", ValueType::Int64),
            ("f_str", ValueType::String)
        ]
    );
    let s = &r.services["churn_v1"];
    let names: Vec<String> = s.features.iter().map(FeatureRef::to_string).collect();
    assert_eq!(
        names,
        ["stats:f_float", "stats:f_int", "stats:f_str"],
        "duplicates removed, order kept"
    );
    assert_eq!(
        r.sources["stats_src"].created_timestamp_field.as_deref(),
        Some("created")
    );
}

#[test]
fn definitions_split_across_files_and_composite_keys() {
    let main = "project: p\nentities:\n  - {name: store, join_keys: [store_id, region], value_types: [int64, string]}\n";
    let feats = r#"
sources:
  - {name: s, type: csv, path: "data/*.csv", timestamp_field: ts, delimiter: ";"}
  - {name: pg, type: postgres, table: sales, timestamp_field: ts, connection: "$PG_URL"}
feature_views:
  - name: sales
    entities: [store]
    source: pg
    ttl: 0
    description: daily sales
    owner: ml-team
    tags: {tier: gold}
    features:
      - {name: revenue, type: float64, description: "sum of sales"}
      - {name: log_revenue, type: float64, expr: "ln(revenue + 1)"}
      - {name: units, type: int64, column: n_units}
"#;
    let r = registry(&[("quiver.yaml", main), ("features/sales.yaml", feats)]).unwrap();
    let keys = r.view_join_keys(&r.views["sales"]);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].value_type, ValueType::String);
    assert!(r.views["sales"].ttl.is_zero(), "ttl: 0 is unbounded");
    assert_eq!(r.views["sales"].features[2].source_column(), "n_units");
    assert_eq!(r.views["sales"].tags["tier"], "gold");
}

#[test]
fn aggregations_parse_with_defaults() {
    let text = r#"
project: shop
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: events, type: parquet, path: e.parquet, timestamp_field: ts}]
feature_views:
  - name: user_purchases
    entities: [user]
    source: events
    aggregations:
      - {name: purchase_count_30d, function: count, column: amount, window: 30d, filter: "event_type = 'purchase'"}
      - {name: avg_purchase_amount_30d, function: mean, column: amount, window: 30d, filter: "event_type = 'purchase'"}
      - {name: days_since_last_purchase, function: time_since_last, window: 365d, filter: "event_type = 'purchase'"}
"#;
    let r = registry(&[("quiver.yaml", text)]).unwrap();
    let a = &r.views["user_purchases"].aggregations;
    assert_eq!(a[0].function, AggFunction::Count);
    assert_eq!(a[0].value_type, ValueType::Int64);
    assert_eq!(a[1].value_type, ValueType::Float64);
    assert_eq!(
        a[2].unit,
        Some(Duration::from_seconds(86_400)),
        "time_since_last defaults to days"
    );
    assert_eq!(a[2].window, Duration::from_seconds(365 * 86_400));
}

#[test]
fn broken_yaml_names_file_line_and_column() {
    let e = err(&[(
        "quiver.yaml",
        "project: shop\nentities:\n  - name: user\n    join_keys: [user_id\n",
    )]);
    assert!(e.starts_with("quiver.yaml:"), "{e}");
    let line: u32 = e.split(':').nth(1).unwrap().parse().unwrap();
    assert!(line >= 4, "{e}");
}

#[test]
fn unknown_key_is_rejected_with_location() {
    let text = MINIMAL.replace("    ttl: 30d", "    ttll: 30d");
    let e = err(&[("quiver.yaml", &text)]);
    assert!(e.contains("unknown field `ttll`"), "{e}");
    assert!(!e.contains("error: line"), "location is not repeated: {e}");
    assert!(e.starts_with("quiver.yaml:17:5:"), "{e}");
}

#[test]
fn wrong_scalar_type_is_rejected() {
    let text = MINIMAL.replace("join_keys: [user_id]", "join_keys: user_id");
    let e = err(&[("quiver.yaml", &text)]);
    assert!(e.starts_with("quiver.yaml:5:"), "{e}");
}

#[test]
fn semantic_errors_name_file_line_object_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    entities: [user]\n    source: stats_src",
            "    entities: [usr]\n    source: stats_src",
            "quiver.yaml:15:16: feature view 'stats', field 'entities': no entity 'usr'; did you mean 'user'?",
        ),
        (
            "    source: stats_src",
            "    source: nope",
            "field 'source': no source 'nope'",
        ),
        (
            "ttl: 30d",
            "ttl: 30y",
            "field 'ttl': '30y' has unknown unit 'y'",
        ),
        (
            "{name: f_int, type: int64}",
            "{name: f_int, type: integer}",
            "field 'features.f_int.type': unknown type 'integer'",
        ),
        (
            "{name: f_str, type: string}",
            "{name: f_int, type: string}",
            "feature 'f_int' is declared twice",
        ),
        (
            "\"stats:f_float\", ",
            "\"stats:f_flot\", ",
            "feature service 'churn_v1', field 'features': 'stats:f_flot': view 'stats' has no feature 'f_flot'; did you mean 'f_float'?",
        ),
        (
            "type: parquet ",
            "type: parket ",
            "field 'type': unknown source type 'parket'",
        ),
        (
            "    path: data/stats.parquet",
            "    table: t",
            "field 'table': 'table' does not apply to a parquet source",
        ),
        (
            "{name: f_str, type: string}",
            "{name: user_id, type: string}",
            "has the name of a join key",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(MINIMAL.contains(from), "case text {from:?}");
        let e = err(&[("quiver.yaml", &MINIMAL.replacen(from, to, 1))]);
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
        assert!(e.starts_with("quiver.yaml:"), "{e}");
    }
}

#[test]
fn duplicate_names_across_files_point_at_both() {
    let extra = "entities:\n  - name: user\n    join_keys: [uid]\n";
    let e = err(&[("quiver.yaml", MINIMAL), ("features/more.yaml", extra)]);
    assert!(e.starts_with("features/more.yaml:2:"), "{e}");
    assert!(
        e.contains("duplicate name: already defined at quiver.yaml:4:"),
        "{e}"
    );
}

#[test]
fn project_is_required_and_only_in_main_file() {
    let e = err(&[("quiver.yaml", "entities: []\n")]);
    assert!(e.contains("must name the project"), "{e}");
    let e = err(&[
        ("quiver.yaml", MINIMAL),
        ("features/x.yaml", "project: other\n"),
    ]);
    assert!(e.contains("'project' belongs in quiver.yaml"), "{e}");
}

#[test]
fn aggregation_errors() {
    let base = r#"
project: shop
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: events, type: parquet, path: e.parquet, timestamp_field: ts}]
feature_views:
  - name: v
    entities: [user]
    source: events
    aggregations:
      - AGG
"#;
    let cases = [
        (
            "{name: a, function: median, column: x, window: 1d}",
            "unknown function 'median'",
        ),
        (
            "{name: a, function: sum, window: 1d}",
            "'sum' needs a 'column'",
        ),
        (
            "{name: a, function: sum, column: x, window: 0}",
            "a window must be longer than 0",
        ),
        (
            "{name: a, function: sum, column: x, window: 1d, unit: 1h}",
            "'unit' applies only to time_since_last",
        ),
        (
            "{name: a, function: sum, column: x, expr: \"x+1\", window: 1d}",
            "either 'column' or 'expr'",
        ),
    ];
    for (agg, expected) in cases {
        let e = err(&[("quiver.yaml", &base.replace("AGG", agg))]);
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
}

#[test]
fn resolving_feature_references() {
    let r = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let refs = r
        .resolve_features(&["stats:f_int", "stats:f_float", "stats:f_int"])
        .unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].full_name(), "stats__f_int");
    let e = r.resolve_features(&["stat:f_int"]).unwrap_err().to_string();
    assert!(
        e.contains("no feature view 'stat'; did you mean 'stats'?"),
        "{e}"
    );
    let e = r.resolve_features(&["f_int"]).unwrap_err().to_string();
    assert!(e.contains("'view:feature'"), "{e}");
    let e = r.service_features("churn").unwrap_err().to_string();
    assert!(e.contains("unknown feature service 'churn'"), "{e}");
}

#[test]
fn registry_round_trips_through_json_with_same_hashes() {
    use quiver_core::registry::ObjectKind;
    let r = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let back = quiver_core::Registry::from_json(&r.to_json()).unwrap();
    for kind in ObjectKind::ALL {
        for name in r.names(kind) {
            assert_eq!(r.object_hash(kind, &name), back.object_hash(kind, &name));
        }
    }
}

/// `decayed_sum` and `decayed_share`: `half_life` (> 0) required by them and refused elsewhere,
/// `categories` required by `decayed_share` (no duplicates) and refused elsewhere; each error
/// names the file, line and column of the culprit, the view and the field.
#[test]
fn decayed_aggregations_need_a_positive_half_life_and_share_needs_categories() {
    let text = r#"project: shop
entities: [{name: user, join_keys: [user_id]}, {name: product, join_keys: [product_id]}]
sources: [{name: events, type: parquet, path: e.parquet, timestamp_field: ts}]
feature_views:
  - name: pop
    entities: [product]
    source: events
    aggregations:
      - {name: popularity, function: decayed_sum, expr: "CASE event_type WHEN 'purchase' THEN 3 ELSE 1 END", window: 90d, half_life: 30d}
      - {name: affinity, function: decayed_share, column: category, categories: [shoes, books], window: 90d, half_life: 7d}
      - {name: n, function: count, window: 90d}
"#;
    let r = registry(&[("quiver.yaml", text)]).unwrap();
    let a = &r.views["pop"].aggregations;
    assert_eq!(a[0].function, AggFunction::DecayedSum);
    assert_eq!(a[0].value_type, ValueType::Float64);
    assert_eq!(a[0].half_life, Some(Duration::from_seconds(30 * 86_400)));
    assert_eq!(a[1].function, AggFunction::DecayedShare);
    assert_eq!(
        a[1].value_type,
        ValueType::Float64List,
        "a share per category"
    );
    assert_eq!(a[1].categories, ["shoes", "books"]);
    assert_eq!((a[2].half_life, a[2].categories.len()), (None, 0));
    // Neither new field shows in the definition of an aggregation without it (so the content
    // hashes of existing views do not change).
    let json = serde_json::to_string(&a[2]).unwrap();
    assert!(
        !json.contains("half_life") && !json.contains("categories"),
        "{json}"
    );

    let cases: &[(&str, &str, &str)] = &[
        (
            ", half_life: 30d}",
            "}",
            "quiver.yaml:9:38: feature view 'pop', field 'aggregations.popularity.half_life': 'decayed_sum' needs a 'half_life'",
        ),
        (
            "half_life: 30d",
            "half_life: 0",
            "quiver.yaml:9:134: feature view 'pop', field 'aggregations.popularity.half_life': the half-life must be longer than 0",
        ),
        (
            "half_life: 30d",
            "half_life: -3d",
            "field 'aggregations.popularity.half_life': '-3d' is not a duration",
        ),
        (
            "{name: n, function: count, window: 90d}",
            "{name: n, function: sum, column: amount, window: 90d, half_life: 7d}",
            "quiver.yaml:11:74: feature view 'pop', field 'aggregations.n.half_life': 'half_life' applies only to decayed_sum and decayed_share, not to sum",
        ),
        (
            "{name: n, function: count, window: 90d}",
            "{name: n, function: count, window: 90d, categories: [a]}",
            "field 'aggregations.n.categories': 'categories' applies only to decayed_share, not to count",
        ),
        (
            "categories: [shoes, books], ",
            "",
            "field 'aggregations.affinity.categories': 'decayed_share' needs 'categories'",
        ),
        (
            "categories: [shoes, books]",
            "categories: [shoes, books, shoes]",
            "field 'aggregations.affinity.categories': 'shoes' is listed twice",
        ),
        (
            "categories: [shoes, books]",
            "categories: []",
            "field 'aggregations.affinity.categories': lists no categories",
        ),
        (
            "column: category, categories",
            "column: category, type: float64, categories",
            "field 'aggregations.affinity.type': decayed_share gives one share per category: declare list<float64> (the default) or list<float32>, not float64",
        ),
        (
            "expr: \"CASE event_type WHEN 'purchase' THEN 3 ELSE 1 END\", window: 90d,",
            "expr: \"CASE event_type WHEN 'purchase' THEN 3 ELSE 1 END\", window: 90d, type: \"list<float64>\",",
            "field 'aggregations.popularity.type': 'decayed_sum' gives one number",
        ),
        (
            "column: category, categories",
            "categories",
            "field 'aggregations.affinity.column': 'decayed_share' needs a 'column' (or 'expr') to aggregate",
        ),
    ];
    for (from, to, want) in cases {
        assert!(text.contains(from), "{from}");
        let e = err(&[("quiver.yaml", &text.replacen(from, to, 1))]);
        assert!(e.contains(want), "{from} -> {to}:\n{e}\nwanted: {want}");
    }
}
