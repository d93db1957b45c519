use quiver_core::plan::{Op, plan};
use quiver_core::registry::ObjectKind;

use super::{MINIMAL, registry};

#[test]
fn first_apply_adds_everything() {
    let r = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let p = plan(None, &r);
    assert_eq!(p.counts(), (4, 0, 0));
    assert_eq!(p.breaking().count(), 0);
    assert!(plan(Some(&r), &r).is_empty());
}

#[test]
fn changes_are_listed_field_by_field() {
    let old = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let new = registry(&[("quiver.yaml", &MINIMAL.replace("ttl: 30d", "ttl: 7d"))]).unwrap();
    let p = plan(Some(&old), &new);
    let view = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureView)
        .unwrap();
    assert_eq!(view.op, Op::Change);
    assert_eq!(view.fields.len(), 1);
    assert_eq!(view.fields[0].path, "ttl");
    assert_eq!(view.fields[0].old.as_deref(), Some("30d"));
    assert_eq!(view.fields[0].new.as_deref(), Some("7d"));
    assert!(view.breaking.is_empty(), "a TTL change is not breaking");
    // The service's hash covers the view, so the service shows as changed too (no field changes).
    let svc = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureService)
        .unwrap();
    assert_eq!(svc.op, Op::Change);
    assert!(svc.fields.is_empty() && svc.breaking.is_empty());
}

#[test]
fn type_change_of_a_used_feature_is_breaking() {
    let old = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let new = registry(&[(
        "quiver.yaml",
        &MINIMAL.replace("{name: f_int, type: int64}", "{name: f_int, type: float64}"),
    )])
    .unwrap();
    let p = plan(Some(&old), &new);
    let view = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureView)
        .unwrap();
    assert_eq!(view.fields[0].path, "features[f_int].type");
    assert_eq!(
        view.breaking,
        ["feature 'f_int' changes type int64 -> float64 while a service reads it"]
    );
    assert!(p.to_string().contains("[BREAKING]"));
    assert!(p.to_string().contains("needs --allow-breaking"));
}

#[test]
fn removing_a_feature_or_service_is_breaking_but_adding_is_not() {
    let old = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let removed = MINIMAL.replace("      - {name: f_str, type: string}\n", "");
    let p = plan(Some(&old), &registry(&[("quiver.yaml", &removed)]).unwrap());
    let view = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureView)
        .unwrap();
    assert_eq!(view.fields[0].path, "features[f_str]");
    assert!(view.fields[0].new.is_none());
    assert!(view.breaking[0].contains("'f_str' removed"));
    let svc = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureService)
        .unwrap();
    assert!(svc.breaking[0].contains("drops features: stats:f_str"));

    let no_service = MINIMAL
        .split("feature_services:")
        .next()
        .unwrap()
        .to_string();
    let p = plan(
        Some(&old),
        &registry(&[("quiver.yaml", &no_service)]).unwrap(),
    );
    assert_eq!(p.counts(), (0, 0, 1));
    assert!(p.changes[0].breaking[0].contains("service removed"));

    let added = MINIMAL.replace(
        "      - {name: f_str, type: string}\n",
        "      - {name: f_str, type: string}\n      - {name: f_new, type: bool}\n",
    );
    let p = plan(Some(&old), &registry(&[("quiver.yaml", &added)]).unwrap());
    assert_eq!(p.breaking().count(), 0, "{p}");
    let view = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureView)
        .unwrap();
    assert_eq!(view.fields[0].path, "features[f_new]");
}

#[test]
fn unused_view_changes_are_not_breaking() {
    let old = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let no_service = MINIMAL
        .split("feature_services:")
        .next()
        .unwrap()
        .to_string();
    let old_unused = registry(&[("quiver.yaml", &no_service)]).unwrap();
    let changed = no_service.replace("{name: f_int, type: int64}", "{name: f_int, type: string}");
    let p = plan(
        Some(&old_unused),
        &registry(&[("quiver.yaml", &changed)]).unwrap(),
    );
    assert_eq!(p.breaking().count(), 0);
    let _ = old;
}

#[test]
fn a_service_that_drops_and_adds_features_lists_each() {
    let old = registry(&[("quiver.yaml", MINIMAL)]).unwrap();
    let new = registry(&[(
        "quiver.yaml",
        &MINIMAL.replace(
            r#"features: ["stats:f_float", "stats:*"]"#,
            r#"features: ["stats:f_str", "stats:f_float"]"#,
        ),
    )])
    .unwrap();
    let p = plan(Some(&old), &new);
    let svc = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureService)
        .unwrap();
    let shown: Vec<(&str, Option<&str>, Option<&str>)> = svc
        .fields
        .iter()
        .map(|f| (f.path.as_str(), f.old.as_deref(), f.new.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            ("features", Some("stats:f_int"), None),
            ("patterns", Some("stats:*"), None),
            ("patterns", None, Some("stats:f_str")),
        ]
    );
    let text = p.to_string();
    assert!(
        text.contains("    - features: stats:f_int\n")
            && text.contains("    - patterns: stats:*\n")
            && text.contains("    + patterns: stats:f_str\n"),
        "{text}"
    );
    assert!(
        !text.contains("[\"") && !text.contains("[{"),
        "no JSON arrays: {text}"
    );

    // The same features in another order: one change that says so.
    let reordered = registry(&[(
        "quiver.yaml",
        &MINIMAL.replace(
            r#"features: ["stats:f_float", "stats:*"]"#,
            r#"features: ["stats:f_int", "stats:*"]"#,
        ),
    )])
    .unwrap();
    let p = plan(Some(&old), &reordered);
    let svc = p
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::FeatureService)
        .unwrap();
    let order = svc
        .fields
        .iter()
        .find(|f| f.path == "features (order)")
        .unwrap();
    assert_eq!(
        (order.old.as_deref(), order.new.as_deref()),
        (
            Some("stats:f_float, stats:f_int, stats:f_str"),
            Some("stats:f_int, stats:f_float, stats:f_str")
        )
    );
}
