use quiver_core::quality::Scalar;
use quiver_core::registry::ObjectKind;
use quiver_core::{CheckKind, Duration, OnFailure, QualityTarget, Severity};

use super::{MINIMAL, err, registry};

const QUALITY: &str = r#"
quality:
  - name: src_checks
    source: stats_src
    checks:
      - {type: schema}
      - {type: not_null, columns: [user_id, f_str]}
      - {type: null_share, column: f_float, max: 0.05}
      - {type: range, column: f_float, min: 0, max: 10000}
      - {type: allowed_values, column: f_str, values: [view, add_to_cart, purchase]}
      - {type: unique, columns: [user_id, event_timestamp]}
      - {type: freshness, max_age: 5m}
      - {type: volume, every: 1h, lookback: 14d, max_z: 4}
      - {type: sql, expr: "f_float > 0 OR f_str <> 'purchase'", max_failing_share: 0}
  - name: view_checks
    view: stats
    severity: warn
    checks:
      - {type: range, column: f_int, min: 0}
      - {type: not_null, columns: [user_id, event_timestamp], severity: error}
"#;

#[test]
fn quality_sets_load_with_their_defaults() {
    let r = registry(&[("quiver.yaml", MINIMAL), ("features/quality.yaml", QUALITY)]).unwrap();
    let src = &r.quality["src_checks"];
    assert_eq!(src.target, QualityTarget::Source("stats_src".into()));
    assert_eq!(
        (src.severity, src.on_failure),
        (Severity::Error, OnFailure::Block)
    );
    assert_eq!(src.checks.len(), 9);
    assert_eq!(
        src.checks[4].kind,
        CheckKind::AllowedValues {
            column: "f_str".into(),
            values: vec![
                Scalar::Str("view".into()),
                Scalar::Str("add_to_cart".into()),
                Scalar::Str("purchase".into())
            ]
        }
    );
    assert_eq!(
        src.checks[7].kind,
        CheckKind::Volume {
            every: Duration::from_seconds(3600),
            lookback: Duration::from_seconds(14 * 86_400),
            max_z: 4.0
        }
    );
    assert_eq!(src.checks[3].at.line, 9, "each check keeps its line");
    let view = &r.quality["view_checks"];
    assert_eq!(
        (view.severity, view.on_failure),
        (Severity::Warn, OnFailure::Warn)
    );
    assert_eq!(view.severity_of(&view.checks[1]), Severity::Error);
    assert_eq!(r.quality_sets_of_source("stats_src").len(), 2);
    // Quality sets round-trip through the stored JSON and have content hashes.
    let back = quiver_core::Registry::from_json(&r.to_json()).unwrap();
    assert_eq!(
        serde_json::to_value(&back.quality).unwrap(),
        serde_json::to_value(&r.quality).unwrap()
    );
    assert!(r.object_hash(ObjectKind::Quality, "src_checks").is_some());
}

#[test]
fn bad_checks_are_refused_with_file_line_and_check() {
    let cases: Vec<(String, &str)> = vec![
        (
            QUALITY.replace("{type: schema}", "{type: schemas}"),
            "features/quality.yaml:6:9: quality 'src_checks', field 'checks[0] (schemas)': unknown check type 'schemas'; did you mean 'schema'?",
        ),
        (
            QUALITY.replace("source: stats_src", "source: stats"),
            "features/quality.yaml:4:13: quality 'src_checks', field 'source': no source 'stats'",
        ),
        (
            QUALITY.replace("view: stats", "view: stat"),
            "quality 'view_checks', field 'view': no feature view 'stat'; did you mean 'stats'?",
        ),
        (
            QUALITY.replace("column: f_int", "column: f_intt"),
            "features/quality.yaml:19:9: quality 'view_checks', field 'checks[0] (range)': view 'stats' has no column 'f_intt'; did you mean 'f_int'?",
        ),
        (
            QUALITY.replace("min: 0, max: 10000", "min: 10, max: 1"),
            "field 'checks[3] (range)': min 10 is above max 1",
        ),
        (
            QUALITY.replace("column: f_float, max: 0.05", "column: f_float, max: 5"),
            "field 'checks[2] (null_share)': max: 5 is not a share from 0 to 1",
        ),
        (
            QUALITY.replace("max_age: 5m", "max_age: soon"),
            "field 'checks[6] (freshness)': max_age: 'soon' is not a duration",
        ),
        (
            QUALITY.replace("lookback: 14d", "lookback: 2h"),
            "field 'checks[7] (volume)': lookback 2h holds 2 bucket(s) of 1h",
        ),
        (
            QUALITY.replace("{type: schema}", "{type: schema, column: x}"),
            "field 'checks[0] (schema)': a schema check takes no `column`",
        ),
        (
            QUALITY.replace(
                "{type: not_null, columns: [user_id, f_str]}",
                "{type: not_null}",
            ),
            "field 'checks[1] (not_null)': needs `columns: [...]`",
        ),
        (
            QUALITY.replace("{type: schema}", "{columns: [a]}"),
            "field 'checks[0]': a check needs `type:`",
        ),
        (
            QUALITY.replace("    source: stats_src\n", ""),
            "quality 'src_checks', field 'source': name what to check",
        ),
        (
            QUALITY.replace("severity: warn", "severity: fatal"),
            "quality 'view_checks', field 'severity': 'fatal': use error or warn",
        ),
        (
            QUALITY.replace("{type: schema}", "{type: schema, colour: red}"),
            "features/quality.yaml:6",
        ),
    ];
    for (text, needle) in cases {
        let e = err(&[("quiver.yaml", MINIMAL), ("features/quality.yaml", &text)]);
        assert!(e.contains(needle), "'{e}' lacks '{needle}'");
    }
}
