use quiver_core::Duration;
use quiver_core::recommender::AlsSolver;
use quiver_core::registry::ObjectKind;

use super::{MINIMAL, err, registry};

/// The issue's declaration, verbatim (the content view replaced by one MINIMAL declares).
const RECS: &str = r#"
recommenders:
  - name: shop_recs
    interactions:
      source: stats_src
      user: user_id
      item: product_id
      event_type: event_type
      weights: {view: 1, add_to_cart: 2, purchase: 3}
      half_life: 30d                 # time decay of each interaction's weight
      window: 180d
      min_user_interactions: 1
    algorithm: {type: als, factors: 64, regularization: 0.05, alpha: 10, iterations: 15, seed: 42}
    cold_start: {min_interactions: 5, popularity: {window: 90d, half_life: 7d}, content: stats}
"#;

#[test]
fn recommenders_load_with_their_parameters() {
    let r = registry(&[("quiver.yaml", MINIMAL), ("features/recs.yaml", RECS)]).unwrap();
    let rec = &r.recommenders["shop_recs"];
    assert_eq!(rec.interactions.source, "stats_src");
    assert_eq!(rec.interactions.weights["purchase"], 3.0);
    assert_eq!(
        rec.interactions.half_life,
        Some(Duration::from_seconds(30 * 86_400))
    );
    assert_eq!(rec.algorithm.factors, 64);
    assert_eq!(rec.algorithm.alpha, 10.0);
    assert_eq!(rec.algorithm.solver, AlsSolver::Cg);
    assert_eq!(rec.algorithm.cg_steps, 3);
    let cold = rec.cold_start.as_ref().unwrap();
    assert_eq!(cold.min_interactions, 5);
    assert_eq!(
        cold.popularity.half_life,
        Some(Duration::from_seconds(7 * 86_400))
    );
    let back = quiver_core::Registry::from_json(&r.to_json()).unwrap();
    assert_eq!(
        back.recommenders["shop_recs"].interactions,
        rec.interactions
    );
    assert_eq!(back.recommenders["shop_recs"].algorithm, rec.algorithm);
    assert!(
        r.object_hash(ObjectKind::Recommender, "shop_recs")
            .is_some()
    );
    assert_eq!(r.names(ObjectKind::Recommender), vec!["shop_recs"]);
}

#[test]
fn bad_recommenders_are_refused_with_file_line_and_field() {
    let cases = [
        (
            RECS.replace("source: stats_src", "source: stats_srd"),
            "features/recs.yaml:5:15: recommender 'shop_recs', field 'interactions.source': no source 'stats_srd'; did you mean 'stats_src'?",
        ),
        (
            RECS.replace("factors: 64", "factors: 0"),
            "field 'algorithm.factors': 0: use 1 to 1024",
        ),
        (
            RECS.replace("alpha: 10", "alpha: -1"),
            "field 'algorithm.alpha'",
        ),
        (
            RECS.replace("type: als", "type: bpr"),
            "the only algorithm is als",
        ),
        (
            RECS.replace("half_life: 30d", "half_life: 30x"),
            "features/recs.yaml:10:18: recommender 'shop_recs', field 'interactions.half_life'",
        ),
        (
            RECS.replace("      event_type: event_type\n", ""),
            "weights per event type need `event_type:`",
        ),
        (
            RECS.replace("content: stats", "content: nope"),
            "no feature view 'nope'",
        ),
        (
            RECS.replace("min_user_interactions: 1", "min_user_interaction: 1"),
            "min_user_interaction",
        ),
    ];
    for (text, want) in cases {
        let e = err(&[("quiver.yaml", MINIMAL), ("features/recs.yaml", &text)]);
        assert!(e.contains(want), "want {want:?} in {e:?}");
    }
}
