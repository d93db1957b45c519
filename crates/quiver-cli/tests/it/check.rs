//! `quiver check`, `quiver check history`, quality sets at `apply`, and the materialization gate
//! from the command line.

use std::path::Path;

use super::{fails, ok, quiver};

const QUIVER_YAML: &str = r#"
project: shop
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: events, type: csv, path: data/events.csv, timestamp_field: ts}
feature_views:
  - name: spend
    entities: [user]
    source: events
    features:
      - {name: amount, type: float64}
      - {name: event_type, type: string}
"#;

const QUALITY_YAML: &str = r#"
quality:
  - name: events_checks
    source: events
    checks:
      - {type: schema}
      - {type: not_null, columns: [user_id, event_type]}
      - {type: range, column: amount, min: 0, max: 10000}
      - {type: allowed_values, column: event_type, values: [view, purchase]}
      - {type: unique, columns: [event_id]}
      - {type: freshness, max_age: 1d}
      - {type: sql, expr: "amount > 0 OR event_type <> 'purchase'"}
"#;

fn events(extra: &str) -> String {
    let mut s = String::from("event_id,user_id,event_type,amount,ts\n");
    for i in 0..40 {
        let kind = if i % 4 == 0 { "purchase" } else { "view" };
        let amount = if kind == "purchase" {
            10.0 + i as f64
        } else {
            0.0
        };
        s.push_str(&format!(
            "{i},{},{kind},{amount},2025-03-{:02}T{:02}:00:00\n",
            i % 5 + 1,
            i % 28 + 1,
            i % 24
        ));
    }
    s.push_str(extra);
    s
}

fn repo(dir: &Path, quality: &str, extra_rows: &str) {
    std::fs::write(dir.join("quiver.yaml"), QUIVER_YAML).unwrap();
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::write(dir.join("features/quality.yaml"), quality).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/events.csv"), events(extra_rows)).unwrap();
}

#[test]
fn apply_refuses_bad_checks_with_file_line_and_check() {
    let d = tempfile::tempdir().unwrap();
    // A source column that is not in the data: known only from the data.
    repo(
        d.path(),
        &QUALITY_YAML.replace("column: amount, min", "column: amout, min"),
        "",
    );
    let e = fails(quiver(d.path(), &["apply"]));
    assert!(
        e.contains("quality.yaml:8:9: quality 'events_checks', field 'checks[2] (range)': source events has no column 'amout'; did you mean 'amount'?"),
        "{e}"
    );
    assert!(e.contains("nothing was stored"), "{e}");
    // An unknown type, and a source that does not exist: refused before reading any data.
    repo(
        d.path(),
        &QUALITY_YAML.replace("type: unique", "type: uniq"),
        "",
    );
    let e = fails(quiver(d.path(), &["apply"]));
    assert!(
        e.contains("quality.yaml:10:9: quality 'events_checks', field 'checks[4] (uniq)': unknown check type 'uniq'; did you mean 'unique'?"),
        "{e}"
    );
    repo(
        d.path(),
        &QUALITY_YAML.replace("source: events", "source: event"),
        "",
    );
    let e = fails(quiver(d.path(), &["apply"]));
    assert!(
        e.contains("field 'source': no source 'event'; did you mean 'events'?"),
        "{e}"
    );
    // A SQL expression that does not fit the data.
    repo(
        d.path(),
        &QUALITY_YAML.replace("amount > 0 OR", "amount > 'x' OR nope AND"),
        "",
    );
    let e = fails(quiver(d.path(), &["apply"]));
    assert!(e.contains("field 'checks[6] (sql)': expr:"), "{e}");
    // Nothing was stored by any of them.
    let e = fails(quiver(d.path(), &["check"]));
    assert!(e.contains("nothing applied yet"), "{e}");
}

#[test]
fn check_reports_stores_history_and_gates_materialization() {
    let d = tempfile::tempdir().unwrap();
    repo(d.path(), QUALITY_YAML, "");
    ok(quiver(d.path(), &["apply"]));
    let as_of = ["--as-of", "2025-03-29"];
    let out = ok(quiver(d.path(), &["check", as_of[0], as_of[1]]));
    assert!(
        out.contains("events_checks on source events: 40 rows"),
        "{out}"
    );
    assert!(out.contains("7 passed, 0 warned, 0 failed"), "{out}");

    // Bad rows: a negative purchase, an unknown event type, a repeated id.
    std::fs::write(
        d.path().join("data/events.csv"),
        events("40,1,purchase,-5.0,2025-03-28T10:00:00\n41,2,refund,3.0,2025-03-28T11:00:00\n7,3,view,0.0,2025-03-28T12:00:00\n"),
    )
    .unwrap();
    let o = quiver(
        d.path(),
        &["--json", "check", "events_checks", as_of[0], as_of[1]],
    );
    assert_eq!(o.status.code(), Some(1), "{}", super::text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    let status = |t: &str| {
        results
            .iter()
            .find(|r| r["type"] == t)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    for (t, s) in [
        ("schema", "pass"),
        ("not_null", "pass"),
        ("range", "fail"),
        ("allowed_values", "fail"),
        ("unique", "fail"),
        ("freshness", "pass"),
        ("sql", "fail"),
    ] {
        assert_eq!(status(t), s, "{t}: {v}");
    }
    let range = results.iter().find(|r| r["type"] == "range").unwrap();
    for key in [
        "quality",
        "type",
        "columns",
        "status",
        "observed",
        "threshold",
        "examples",
    ] {
        assert!(range.get(key).is_some(), "{key} missing: {range}");
    }
    assert_eq!(range["examples"][0]["amount"], -5.0);
    assert_eq!(range["observed"]["out_of_range_rows"], 1);
    assert_eq!(range["columns"], serde_json::json!(["amount"]));

    // The table names the failing checks and shows their rows.
    let o = quiver(d.path(), &["check", as_of[0], as_of[1]]);
    assert_eq!(o.status.code(), Some(1));
    let t = super::text(&o);
    assert!(t.contains("FAIL") && t.contains("failing rows"), "{t}");
    assert!(t.contains("4 error-severity checks failed"), "{t}");

    // History, newest first.
    let h = ok(quiver(
        d.path(),
        &["--json", "check", "history", "events_checks"],
    ));
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    let runs = h["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["status"], "fail");
    assert_eq!(runs[2]["status"], "pass");
    assert_eq!(runs[0]["results"].as_array().unwrap().len(), 7);
    let e = fails(quiver(d.path(), &["check", "history", "event_checks"]));
    assert!(
        e.contains("no quality set 'event_checks'; did you mean 'events_checks'?"),
        "{e}"
    );

    // Materialization runs the checks first and is blocked: nothing written.
    let e = fails(quiver(
        d.path(),
        &["materialize", "2025-01-01", "2025-03-29"],
    ));
    assert!(
        e.contains("materialization blocked by 4 failing quality check(s); nothing was written"),
        "{e}"
    );
    assert!(
        e.contains("quality 'events_checks' checks[2] (range amount) on source events"),
        "{e}"
    );
    let h = ok(quiver(d.path(), &["--json", "check", "history"]));
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["runs"][0]["trigger"], "materialize");
    // With on_failure: warn it writes and warns.
    std::fs::write(
        d.path().join("features/quality.yaml"),
        QUALITY_YAML.replace(
            "    source: events\n",
            "    source: events\n    on_failure: warn\n",
        ),
    )
    .unwrap();
    ok(quiver(d.path(), &["apply"]));
    let o = ok(quiver(
        d.path(),
        &["--json", "materialize", "2025-01-01", "2025-03-29"],
    ));
    assert!(
        o.contains("warning: quality 'events_checks' checks[2] (range amount)"),
        "{o}"
    );
    assert!(o.contains("\"entities\": 5"), "{o}");
}
