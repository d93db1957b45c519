//! `drift: {stattest, threshold}` declared on a feature: stored by `apply` (a settings-only
//! change that versions no value), used by `quiver drift` unless a flag says otherwise, and an
//! unknown test refused by `apply` with the file.

use super::{fails, ok, quiver};

const YAML: &str = r#"
project: shop
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: events, type: csv, path: data/events.csv, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [user]
    source: events
    features:
      - {name: amount, type: float64DRIFT}
"#;

fn json(o: &str) -> serde_json::Value {
    serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"))
}

#[test]
fn declared_drift_tests_are_stored_used_and_checked() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    std::fs::create_dir_all(repo.join("data")).unwrap();
    let mut events = String::from("user_id,amount,ts\n");
    let (mut a, mut b) = (String::from("amount\n"), String::from("amount\n"));
    for i in 0..300 {
        events.push_str(&format!("{},{},2025-03-01T00:00:00\n", i % 7, i % 13));
        a.push_str(&format!("{}\n", (i % 50) as f64));
        b.push_str(&format!("{}\n", (i % 50) as f64 + 3.0));
    }
    std::fs::write(repo.join("data/events.csv"), events).unwrap();
    std::fs::write(repo.join("data/ref.csv"), a).unwrap();
    std::fs::write(repo.join("data/cur.csv"), b).unwrap();
    let write = |drift: &str| {
        std::fs::write(repo.join("quiver.yaml"), YAML.replace("DRIFT", drift)).unwrap()
    };
    write("");
    ok(quiver(repo, &["apply"]));
    let (r, c) = (
        repo.join("data/ref.csv").display().to_string(),
        repo.join("data/cur.csv").display().to_string(),
    );
    let drift = |extra: &[&str]| {
        let mut args = vec!["--json", "drift", "--reference", &r, "--current", &c];
        args.extend_from_slice(extra);
        json(&ok(quiver(repo, &args)))["features"][0].clone()
    };
    // Over 1,000 rows? No: 300, so Evidently's default for a number is ks.
    assert_eq!(drift(&[])["stattest"], "ks");

    // A settings-only change is a change to store, and keeps the view's content hash.
    write(", drift: {stattest: psi, threshold: 0.3}");
    let plan = ok(quiver(repo, &["plan"]));
    assert!(plan.contains("stats"), "{plan}");
    let o = ok(quiver(repo, &["apply"]));
    assert!(o.contains("Applied registry version 2"), "{o}");
    let f = drift(&[]);
    assert_eq!(
        (f["stattest"].as_str(), f["threshold"].as_f64()),
        (Some("psi"), Some(0.3)),
        "{f}"
    );
    // Not selected by --features: the declared test is not applied (nor an error).
    let o = json(&ok(quiver(
        repo,
        &[
            "--json",
            "drift",
            "--reference",
            &r,
            "--current",
            &c,
            "--features",
            "amount",
        ],
    )));
    assert_eq!(o["features"][0]["stattest"], "psi", "{o}");
    // A flag still wins.
    let f = drift(&["--stattest", "amount=wasserstein"]);
    assert_eq!(f["stattest"], "wasserstein", "{f}");
    assert_eq!(f["threshold"], 0.3, "{f}");

    // An unknown test is refused at apply, naming the file and the feature.
    write(", drift: {stattest: psy}");
    let e = fails(quiver(repo, &["apply"]));
    assert!(
        e.contains("quiver.yaml")
            && e.contains("amount.drift.stattest")
            && e.contains("unknown test 'psy'"),
        "{e}"
    );
    write(", drift: {threshold: -1}");
    let e = fails(quiver(repo, &["apply"]));
    assert!(e.contains("amount.drift.threshold"), "{e}");
}
