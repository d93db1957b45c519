//! Request-time views: what loads, what is refused and how the error reads.

use quiver_core::registry::ObjectKind;

use crate::{MINIMAL, err, registry};

const VIEW: &str = r#"
feature_views:
  - name: ctx
    request_data:
      - {name: amount, type: float64}
    inputs: [stats]
    features:
      - {name: ratio, type: float64, expr: "amount / stats__f_float"}
"#;

#[test]
fn a_request_view_loads_without_source_or_entities_and_is_not_materialized() {
    let r = registry(&[("quiver.yaml", MINIMAL), ("features/ctx.yaml", VIEW)]).unwrap();
    let v = &r.views["ctx"];
    assert!(v.is_request() && !v.online && v.source.is_empty() && v.entities.is_empty());
    let spec = v.request.as_ref().unwrap();
    assert_eq!(spec.inputs, ["stats"]);
    assert_eq!(spec.fields[0].name, "amount");
    assert_eq!(
        r.resolve_features(&["ctx:*"]).unwrap()[0].to_string(),
        "ctx:ratio"
    );
}

#[test]
fn an_input_change_changes_the_request_views_hash() {
    let before = registry(&[("quiver.yaml", MINIMAL), ("features/ctx.yaml", VIEW)]).unwrap();
    let changed = MINIMAL.replace("ttl: 30d", "ttl: 7d");
    let after = registry(&[("quiver.yaml", &changed), ("features/ctx.yaml", VIEW)]).unwrap();
    assert_ne!(
        before.object_hash(ObjectKind::FeatureView, "ctx"),
        after.object_hash(ObjectKind::FeatureView, "ctx")
    );
}

#[test]
fn bad_request_views_are_refused_naming_the_field() {
    let cases = [
        (
            VIEW.replace("    inputs: [stats]\n", "    inputs: [stat]\n"),
            "no feature view 'stat'",
        ),
        (
            VIEW.replace(
                "    inputs: [stats]\n",
                "    inputs: [stats]\n    source: stats_src\n",
            ),
            "reads no source",
        ),
        (
            VIEW.replace(", expr: \"amount / stats__f_float\"", ""),
            "features.ratio.expr",
        ),
        (
            VIEW.replace("type: float64}\n    inputs", "type: decimal}\n    inputs"),
            "request_data.amount.type",
        ),
    ];
    for (text, needle) in cases {
        let e = err(&[("quiver.yaml", MINIMAL), ("features/ctx.yaml", &text)]);
        assert!(e.contains(needle), "{needle}: {e}");
        assert!(e.contains("ctx"), "names the view: {e}");
    }
    // A view without a source and without request data says what it needs.
    let e = err(&[(
        "quiver.yaml",
        &MINIMAL.replace("    source: stats_src\n", ""),
    )]);
    assert!(e.contains("needs a source"), "{e}");
}
