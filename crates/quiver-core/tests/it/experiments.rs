//! `experiments:` (A/B tests over recommenders) and a recommender's `item_attributes:`: loaded
//! in order, refused with file, line and field, planned like other objects.

use quiver_core::Duration;
use quiver_core::plan::{Op, plan};
use quiver_core::registry::ObjectKind;

use super::{MINIMAL, err, registry};

/// A recommender and the issue's experiment (its source replaced by one MINIMAL declares).
const EXP: &str = r#"
recommenders:
  - name: shop_recs
    interactions:
      source: stats_src
      user: user_id
      item: product_id
      event_type: event_type
      weights: {view: 1, purchase: 3}
experiments:
  - name: cf_vs_pop
    recommender: shop_recs
    arms: {popularity: 0.25, cf: 0.75}
    salt: "2026-12"
    outcomes: {source: stats_src, click: view, conversion: purchase, window: 24h}
"#;

fn load(text: &str) -> quiver_core::Registry {
    registry(&[("quiver.yaml", MINIMAL), ("features/exp.yaml", text)]).unwrap()
}

fn refused(text: &str) -> String {
    err(&[("quiver.yaml", MINIMAL), ("features/exp.yaml", text)])
}

#[test]
fn experiments_load_in_declaration_order() {
    let r = load(EXP);
    let e = &r.experiments["cf_vs_pop"];
    assert_eq!(e.recommender, "shop_recs");
    // The first arm is the control: the file's order, not the alphabet's.
    assert_eq!(e.arm_names(), ["popularity", "cf"]);
    assert_eq!(e.arms[1].share, 0.75);
    assert_eq!(e.salt, "2026-12");
    assert_eq!(e.outcomes.source, "stats_src");
    assert_eq!(
        (e.outcomes.click.as_str(), e.outcomes.conversion.as_str()),
        ("view", "purchase")
    );
    assert_eq!(e.outcomes.window, Duration::from_seconds(86_400));
    let back = quiver_core::Registry::from_json(&r.to_json()).unwrap();
    assert_eq!(back.experiments["cf_vs_pop"].arms, e.arms);
    assert_eq!(back.experiments["cf_vs_pop"].outcomes, e.outcomes);
    assert!(r.object_hash(ObjectKind::Experiment, "cf_vs_pop").is_some());
    assert_eq!(r.names(ObjectKind::Experiment), ["cf_vs_pop"]);
    assert_eq!(
        ObjectKind::parse("experiment"),
        Some(ObjectKind::Experiment)
    );
    // Decimal shares that sum to 1 up to rounding.
    let r = load(&EXP.replace(
        "{popularity: 0.25, cf: 0.75}",
        "{cf: 0.1, popularity: 0.2, blend: 0.7}",
    ));
    assert_eq!(r.experiments["cf_vs_pop"].arms.len(), 3);
}

#[test]
fn bad_experiments_are_refused_with_file_line_and_field() {
    let arms = "{popularity: 0.25, cf: 0.75}";
    let cases = [
        (
            EXP.replace("recommender: shop_recs", "recommender: shop_rec"),
            "features/exp.yaml:12:18: experiment 'cf_vs_pop', field 'recommender': no recommender 'shop_rec'; did you mean 'shop_recs'?",
        ),
        (
            EXP.replace(arms, "{cf: 0.5, popularity: 0.4}"),
            "features/exp.yaml:13:11: experiment 'cf_vs_pop', field 'arms': the shares sum to 0.9",
        ),
        (
            EXP.replace(arms, "{cf: 1.5, popularity: -0.5}"),
            "field 'arms.cf': share 1.5: use a number above 0 and at most 1",
        ),
        (
            EXP.replace(arms, "{cf: 0.5, popularity: -0.5}"),
            "field 'arms.popularity': share -0.5: use a number above 0",
        ),
        (
            EXP.replace(arms, "{cf: 0.5, content: 0.5}"),
            "field 'arms.content': unknown arm 'content'; known: cf, popularity, blend",
        ),
        (
            EXP.replace(arms, "{cf: 0.5, popularty: 0.5}"),
            "unknown arm 'popularty'; did you mean 'popularity'?",
        ),
        (
            EXP.replace(arms, "{cf: 1}"),
            "field 'arms': 1 arm(s): an experiment compares two or more arms",
        ),
        (
            EXP.replace(arms, "[cf, popularity]"),
            "features/exp.yaml:13:",
        ),
        (
            EXP.replace("source: stats_src, click", "source: stats, click"),
            "features/exp.yaml:15:24: experiment 'cf_vs_pop', field 'outcomes.source': no source 'stats'",
        ),
        (
            EXP.replace("window: 24h", "window: 0s"),
            "field 'outcomes.window': 0: an outcome must be counted",
        ),
        (
            EXP.replace("window: 24h", "window: 24x"),
            "features/exp.yaml:15:",
        ),
        (EXP.replace("click: view", "clicks: view"), "clicks"),
        (
            EXP.replace("salt: \"2026-12\"", "salt: \"\""),
            "field 'salt': give a non-empty text",
        ),
        (
            EXP.replace(
                "      event_type: event_type\n      weights: {view: 1, purchase: 3}\n",
                "",
            ),
            "field 'outcomes': recommender 'shop_recs' declares no `interactions.event_type`",
        ),
        (
            format!(
                "{EXP}  - name: again\n    recommender: shop_recs\n    arms: {{cf: 0.5, blend: 0.5}}\n    salt: x\n    outcomes: {{source: stats_src, click: view, conversion: purchase, window: 1h}}\n"
            ),
            "experiment 'again', field 'recommender': recommender 'shop_recs' is already split by experiment 'cf_vs_pop'",
        ),
        (
            format!(
                "{EXP}  - name: cf_vs_pop\n    recommender: shop_recs\n    arms: {{cf: 0.5, blend: 0.5}}\n    salt: x\n    outcomes: {{source: stats_src, click: view, conversion: purchase, window: 1h}}\n"
            ),
            "duplicate name",
        ),
    ];
    for (text, want) in cases {
        let e = refused(&text);
        assert!(e.contains(want), "want {want:?} in {e:?}");
    }
}

#[test]
fn a_new_salt_or_split_is_a_breaking_change_and_a_description_is_not() {
    let old = load(EXP);
    let change = |text: &str| {
        let p = plan(Some(&old), &load(text));
        let c = p
            .changes
            .into_iter()
            .find(|c| c.kind == ObjectKind::Experiment)
            .expect("a change");
        assert_eq!(c.op, Op::Change);
        c.breaking
    };
    let b = change(&EXP.replace("\"2026-12\"", "\"2027-01\""));
    assert!(
        b[0].contains("salt changes from '2026-12' to '2027-01'"),
        "{b:?}"
    );
    let b = change(&EXP.replace("{popularity: 0.25, cf: 0.75}", "{popularity: 0.5, cf: 0.5}"));
    assert!(b[0].contains("users are reassigned"), "{b:?}");
    let b = change(&EXP.replace("window: 24h", "window: 48h"));
    assert!(b.is_empty(), "{b:?}");
    let p = plan(None, &old);
    assert!(
        p.changes
            .iter()
            .any(|c| c.kind == ObjectKind::Experiment && c.op == Op::Add)
    );
}

#[test]
fn item_attributes_name_a_plain_view_keyed_by_one_key() {
    let with = |v: &str| {
        EXP.replace(
            "      weights: {view: 1, purchase: 3}\n",
            &format!("      weights: {{view: 1, purchase: 3}}\n    item_attributes: {v}\n"),
        )
    };
    let r = load(&with("stats"));
    assert_eq!(
        r.recommenders["shop_recs"].item_attributes.as_deref(),
        Some("stats")
    );
    let e = refused(&with("stat"));
    assert!(
        e.contains("features/exp.yaml:10:22: recommender 'shop_recs', field 'item_attributes': no feature view 'stat'; did you mean 'stats'?"),
        "{e}"
    );
}
