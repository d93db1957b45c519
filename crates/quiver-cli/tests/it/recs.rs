//! `quiver recs`: apply refuses bad declarations, train registers a version, evaluate reports
//! the model against popularity, bad input fails without storing anything.

use std::fmt::Write;
use std::path::Path;

use super::{fails, ok, quiver};

const DECL: &str = r#"project: recs_it
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
      half_life: 30d
    algorithm: {type: als, factors: 8, regularization: 0.05, alpha: 10, iterations: 10, seed: 42}
"#;

/// 80 users in two taste groups over 40 products; user u's held-out product is written to
/// `holdout.csv`.
fn repo(dir: &Path) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let (mut events, mut holdout) = (
        String::from("user_id,product_id,event_type,event_timestamp\n"),
        String::from("user_id,product_id\n"),
    );
    for u in 0..80u32 {
        let base = if u % 2 == 0 { 0 } else { 20 };
        for k in 0..10u32 {
            let p = base + (u + k * 3) % 20;
            let t = if k % 3 == 0 { "purchase" } else { "view" };
            if k == 9 {
                writeln!(holdout, "{u},p{p}").unwrap();
            } else {
                writeln!(events, "{u},p{p},{t},2025-06-{:02}T10:00:00", 1 + k).unwrap();
            }
        }
    }
    writeln!(events, "5,p3,impression,2025-06-20T10:00:00").unwrap();
    std::fs::write(dir.join("data/events.csv"), events).unwrap();
    std::fs::write(dir.join("data/holdout.csv"), holdout).unwrap();
    std::fs::write(dir.join("quiver.yaml"), DECL).unwrap();
}

#[test]
fn recommenders_train_register_and_evaluate() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    repo(r);
    // A column the source lacks: apply names the file, line and field, and stores nothing.
    std::fs::write(
        r.join("quiver.yaml"),
        DECL.replace("item: product_id", "item: product"),
    )
    .unwrap();
    let e = fails(quiver(r, &["apply"]));
    assert!(
        e.contains("quiver.yaml:8:")
            && e.contains("recommender 'shop_recs', field 'interactions.item'")
            && e.contains("has no column 'product'; known: user_id, product_id"),
        "{e}"
    );
    assert!(fails(quiver(r, &["recs", "train", "shop_recs"])).contains("nothing applied yet"));
    std::fs::write(r.join("quiver.yaml"), DECL).unwrap();
    ok(quiver(r, &["apply"]));
    let e = fails(quiver(r, &["recs", "train", "shop_rec"]));
    assert!(
        e.contains("no recommender 'shop_rec'") && e.contains("did you mean 'shop_recs'"),
        "{e}"
    );

    let out = ok(quiver(
        r,
        &[
            "--json",
            "recs",
            "train",
            "shop_recs",
            "--promote",
            "champion",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(
        (v["users"].as_u64(), v["items"].as_u64()),
        (Some(80), Some(40))
    );
    // The impression row is not weighted: 80 users x 9 interactions.
    assert_eq!(v["interactions"], 720);
    let list = ok(quiver(r, &["models", "list", "shop_recs"]));
    assert!(list.contains("champion") && list.contains("als"), "{list}");

    let holdout = r.join("data/holdout.csv");
    let holdout = holdout.to_str().unwrap();
    let e = fails(quiver(
        r,
        &["recs", "evaluate", "shop_recs", "--test", "nowhere.csv"],
    ));
    assert!(e.contains("nowhere.csv: no such file"), "{e}");
    let out = ok(quiver(
        r,
        &[
            "--json",
            "recs",
            "evaluate",
            "shop_recs@champion",
            "--test",
            holdout,
            "--k",
            "5",
        ],
    ));
    let e: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    for key in [
        "precision@5",
        "map@5",
        "ndcg@5",
        "auc@5",
        "coverage",
        "diversity",
        "novelty",
    ] {
        assert!(
            e[key].is_number() && e["baseline"][key].is_number(),
            "{key}: {e}"
        );
    }
    assert_eq!(e["users"], 80);
    // Tastes are learned: the held-out product is in the model's top 5 far more often than
    // in popularity's.
    let (m, b) = (
        e["precision@5"].as_f64().unwrap(),
        e["baseline"]["precision@5"].as_f64().unwrap(),
    );
    assert!(m > 0.3 && m > 2.0 * b, "model {m} vs popularity {b}");

    // Bad input: k out of range, an empty interactions file; nothing registered.
    for k in ["0", "-1", "100000"] {
        let e = fails(quiver(
            r,
            &["recs", "evaluate", "shop_recs", "--test", holdout, "--k", k],
        ));
        assert!(e.contains("ask for 1 to 10000"), "{e}");
    }
    let empty = r.join("data/empty.csv");
    std::fs::write(&empty, "user_id,product_id\n").unwrap();
    let e = fails(quiver(
        r,
        &[
            "recs",
            "train",
            "shop_recs",
            "--interactions",
            empty.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("no interactions"), "{e}");
    let e = fails(quiver(
        r,
        &["recs", "train", "shop_recs", "--params", "factors=0"],
    ));
    assert!(e.contains("factors"), "{e}");
    let list = ok(quiver(r, &["--json", "models", "list", "shop_recs"]));
    assert!(!list.contains("\"version\": 2"), "{list}");
}
