//! The A/B report recovers what a simulation put in: users with a known true CTR and CVR per
//! arm, their exposures written as the server writes them and their outcome events in the
//! declared source; and a skewed split fails the sample-ratio check.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use quiver_recs::ab::{self, AbReport, Exposure};

const DECL: &str = r#"project: ab_sim
sources:
  - name: events
    type: csv
    path: data/events.csv
    timestamp_field: event_timestamp
recommenders:
  - name: shop_recs
    interactions:
      source: events
      user: user_id
      item: product_id
      event_type: event_type
      weights: {view: 1, purchase: 3}
experiments:
  - name: cf_vs_pop
    recommender: shop_recs
    arms: {popularity: 0.5, cf: 0.5}
    salt: "2026-12"
    outcomes: {source: events, click: view, conversion: purchase, window: 24h}
"#;

/// True CTR per arm (popularity, the control; cf), and the share of clicks that convert.
const CTR: [f64; 2] = [0.05, 0.08];
const CONVERT: f64 = 0.25;
const USERS: u64 = 4000;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
/// 2026-11-01T00:00:00Z.
const START: i64 = 1_793_491_200_000_000;

/// splitmix64: a seeded stream of uniform numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the simulation did, per arm: exposures, clicked and converted exposures.
#[derive(Debug, Default, Clone, Copy)]
struct Truth {
    users: u64,
    exposures: u64,
    clicked: u64,
    converted: u64,
}

fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Simulates the experiment into `root`: users assigned by `arm_of`, 1 to 3 exposures each,
/// three days apart (so that no event falls in two exposures' windows), five items shown each
/// time; a click on one of them within 20 hours with the arm's CTR, a purchase of it 10 minutes
/// later for a quarter of the clicks; and events that must not count (a view outside the
/// window, views of items never shown, add-to-cart on shown items).
fn simulate(root: &Path, seed: u64, arm_of: impl Fn(&str) -> usize) -> [Truth; 2] {
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("quiver.yaml"), DECL).unwrap();
    let mut rng = Rng(seed);
    let mut truth = [Truth::default(); 2];
    let mut events = String::from("user_id,product_id,event_type,event_timestamp\n");
    let mut exposures = Vec::new();
    let (exp, rec): (Arc<str>, Arc<str>) = (Arc::from("cf_vs_pop"), Arc::from("shop_recs"));
    for u in 0..USERS {
        let user = u.to_string();
        let arm = arm_of(&user);
        truth[arm].users += 1;
        let n = 1 + rng.below(3) as i64;
        for k in 0..n {
            let t = START + k * 3 * DAY + rng.below(12) as i64 * HOUR;
            let items: Vec<String> = (0..5).map(|_| format!("p{}", rng.below(200))).collect();
            truth[arm].exposures += 1;
            if rng.uniform() < CTR[arm] {
                truth[arm].clicked += 1;
                let item = &items[rng.below(5) as usize];
                let at = t + rng.below(20) as i64 * HOUR + 60_000_000;
                writeln!(events, "{u},{item},view,{}", time(at)).unwrap();
                if rng.uniform() < CONVERT {
                    truth[arm].converted += 1;
                    writeln!(events, "{u},{item},purchase,{}", time(at + 10 * 60_000_000)).unwrap();
                }
            }
            // Noise: an add-to-cart of a shown item in the window, a view of an item never
            // shown, a view of a shown item two days later (outside the 24h window).
            writeln!(events, "{u},{},add_to_cart,{}", items[0], time(t + HOUR)).unwrap();
            writeln!(events, "{u},q{},view,{}", rng.below(50), time(t + 2 * HOUR)).unwrap();
            if rng.uniform() < 0.1 {
                writeln!(events, "{u},{},view,{}", items[1], time(t + 2 * DAY)).unwrap();
            }
            exposures.push(Exposure {
                ts_us: t,
                experiment: Arc::clone(&exp),
                arm: Arc::from(["popularity", "cf"][arm]),
                recommender: Arc::clone(&rec),
                version: 1,
                user: user.clone(),
                items,
                source: ["popularity", "cf"][arm],
            });
        }
    }
    std::fs::write(root.join("data/events.csv"), events).unwrap();
    // The exposures, as the server's log writes them.
    let dir = ab::exposures_dir(root, "cf_vs_pop").join("date=2026-11-01");
    std::fs::create_dir_all(&dir).unwrap();
    let batch = ab::exposures_batch(&exposures).unwrap();
    let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    truth
}

async fn report(root: &Path) -> AbReport {
    let registry = quiver_core::repo::load_registry(root).unwrap();
    // Well after every exposure's window closed.
    ab::report(&registry, root, "cf_vs_pop", Some(START + 60 * DAY))
        .await
        .unwrap()
}

fn experiment(root: &Path) -> quiver_core::experiment::Experiment {
    quiver_core::repo::load_registry(root).unwrap().experiments["cf_vs_pop"].clone()
}

#[tokio::test]
async fn the_report_recovers_the_true_rates_and_the_lift() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::write(root.join("quiver.yaml"), DECL).unwrap();
    let e = experiment(root);
    let truth = simulate(root, 7, |u| ab::assign(&e, u));
    let r = report(root).await;
    assert_eq!(
        r.arms.iter().map(|a| a.arm.as_str()).collect::<Vec<_>>(),
        ["popularity", "cf"]
    );
    for (a, t) in r.arms.iter().zip(truth) {
        // Every exposure and outcome is found, and none of the noise counts.
        assert_eq!(
            (a.users, a.exposures, a.ctr.count, a.cvr.count),
            (t.users, t.exposures, t.clicked, t.converted),
            "{}",
            a.arm
        );
    }
    for (i, a) in r.arms.iter().enumerate() {
        let (ctr, cvr) = (CTR[i], CTR[i] * CONVERT);
        assert!(
            a.ctr.ci[0] <= ctr && ctr <= a.ctr.ci[1],
            "{}: true CTR {ctr} outside {:?}",
            a.arm,
            a.ctr.ci
        );
        assert!(
            a.cvr.ci[0] <= cvr && cvr <= a.cvr.ci[1],
            "{}: true CVR {cvr} outside {:?}",
            a.arm,
            a.cvr.ci
        );
        // Clicks are independent across a user's exposures: no design effect to speak of.
        assert!(a.ctr.design_effect < 1.2, "{}", a.ctr.design_effect);
        assert!(a.ctr.ci[1] - a.ctr.ci[0] < 0.02, "{:?}", a.ctr.ci);
    }
    assert!(r.arms[0].ctr_lift.is_none());
    let lift = r.arms[1].ctr_lift.as_ref().unwrap();
    // True lift 0.08 / 0.05 - 1 = 60%.
    assert!(lift.lift > 0.0 && lift.z > 0.0, "{lift:?}");
    assert!(lift.ci[0] <= 0.6 && 0.6 <= lift.ci[1], "{lift:?}");
    assert!(lift.p_value < 0.001, "{lift:?}");
    assert!(!r.srm.mismatch && r.srm.p_value > 0.001, "{:?}", r.srm);
    assert_eq!(r.srm.df, 1);
    assert_eq!((r.open_window_exposures, r.users_in_several_arms), (0, 0));

    // JSON and HTML.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["arms"][1]["arm"], "cf");
    assert!(json["arms"][1]["ctr_lift"]["p_value"].is_number());
    assert!(json["arms"][0]["ctr_lift"].is_null());
    let html = ab::html(&r);
    assert!(html.contains("<svg") && html.contains("No sample ratio mismatch"));
    assert!(!html.contains("<script") && !html.contains("src="));

    // As of a time before the last exposures' windows close: they are counted and flagged.
    let registry = quiver_core::repo::load_registry(root).unwrap();
    let early = ab::report(
        &registry,
        root,
        "cf_vs_pop",
        Some(START + 6 * DAY + 5 * HOUR),
    )
    .await
    .unwrap();
    assert!(early.open_window_exposures > 0);
    assert!(early.arms[0].exposures < r.arms[0].exposures);
}

#[tokio::test]
async fn a_skewed_split_fails_the_sample_ratio_check() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    // 55% of users in cf instead of the declared 50%.
    let truth = simulate(root, 11, |u| {
        usize::from(quiver_registry::canary_point(9, [u.as_bytes()]) < 0.55)
    });
    assert!(truth[1].users > truth[0].users + 200, "{truth:?}");
    let r = report(root).await;
    assert!(r.srm.mismatch, "{:?}", r.srm);
    assert!(r.srm.p_value < 1e-6, "{:?}", r.srm);
    assert!(ab::html(&r).contains("Sample ratio mismatch"));
}

#[tokio::test]
async fn unknown_experiments_and_missing_exposures_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::write(root.join("quiver.yaml"), DECL).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(
        root.join("data/events.csv"),
        "user_id,product_id,event_type,event_timestamp\n1,p1,view,2026-11-01T00:00:00\n",
    )
    .unwrap();
    let registry = quiver_core::repo::load_registry(root).unwrap();
    let e = ab::report(&registry, root, "cf_vs_po", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no experiment 'cf_vs_po'") && e.contains("did you mean 'cf_vs_pop'"),
        "{e}"
    );
    let e = ab::report(&registry, root, "cf_vs_pop", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no exposures logged yet"), "{e}");

    // Apply's data check: the outcome event types must occur in the source.
    let e = quiver_recs::source::validate(&registry, root)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("experiment 'cf_vs_pop', field 'outcomes.conversion': source 'events' has no event type 'purchase'")
            && e.contains("known: view"),
        "{e}"
    );
    std::fs::write(
        root.join("data/events.csv"),
        "user_id,product,event_type,event_timestamp\n1,p1,view,2026-11-01T00:00:00\n",
    )
    .unwrap();
    let e = quiver_recs::source::validate(&registry, root)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no column 'product_id'"), "{e}");
}
