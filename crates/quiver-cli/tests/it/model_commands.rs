//! What `quiver models ...`, `train --model logistic`, `demo run --json`, `plan` and
//! `registry list` tell a user: messages that agree with what is stored, errors that exit
//! non-zero and say what exists, and output that names what it shows.

use std::path::Path;

use super::{demo, fails, ok, quiver};

fn json(o: &str) -> serde_json::Value {
    serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"))
}

/// `quiver train` of model `churn` on the demo's service and labels, with `extra` arguments;
/// returns its output.
fn train(repo: &Path, extra: &[&str]) -> String {
    let labels = repo.join("data/labels.parquet");
    let base = [
        "train",
        "--service",
        "churn_v1",
        "--labels",
        labels.to_str().unwrap(),
        "--label",
        "churned",
        "--name",
        "churn",
    ];
    ok(quiver(repo, &[&base[..], extra].concat()))
}

/// Trains a small extra GBDT version of `churn` and returns its number.
fn train_version(repo: &Path) -> i64 {
    json(&train(
        repo,
        &["--json", "--params", "num_trees=5,num_leaves=4"],
    ))["version"]
        .as_i64()
        .unwrap()
}

#[test]
fn models_list_of_an_unknown_name_fails_and_lists_the_known_models() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    let e = fails(quiver(repo, &["models", "list", "nope"]));
    assert!(
        e.contains("no model named 'nope'") && e.contains("(models: churn)"),
        "{e}"
    );
    assert!(!e.contains("no models registered"), "{e}");
    let listed = json(&ok(quiver(repo, &["--json", "models", "list", "churn"])));
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn promote_messages_and_rollback_agree() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo); // churn version 1 is champion
    assert_eq!(train_version(repo), 2);
    assert_eq!(train_version(repo), 3);

    // Promoting the version an alias names already changes nothing and promises no rollback.
    let o = ok(quiver(
        repo,
        &["models", "promote", "churn", "2", "--alias", "challenger"],
    ));
    assert!(!o.contains("rollback"), "{o}");
    let o = ok(quiver(
        repo,
        &["models", "promote", "churn", "2", "--alias", "challenger"],
    ));
    assert!(
        o.contains("names version 2 already: nothing changed") && !o.contains("restores"),
        "{o}"
    );
    let e = fails(quiver(
        repo,
        &["models", "rollback", "churn", "--alias", "challenger"],
    ));
    assert!(e.contains("nothing to roll back to"), "{e}");

    // Promotions stack, rollbacks pop: 1, 2, 3 -> 2 -> 1, never forward to 3 again.
    let o = ok(quiver(repo, &["models", "promote", "churn", "2"]));
    assert!(o.contains("(was 1;"), "{o}");
    let o = ok(quiver(repo, &["models", "promote", "churn", "3"]));
    assert!(
        o.contains("(was 2; `quiver models rollback churn --alias champion` restores it)"),
        "{o}"
    );
    let o = ok(quiver(repo, &["models", "rollback", "churn"]));
    assert!(o.contains("version 3 -> 2"), "{o}");
    let o = ok(quiver(repo, &["models", "rollback", "churn"]));
    assert!(o.contains("version 2 -> 1"), "{o}");
    let e = fails(quiver(repo, &["models", "rollback", "churn"]));
    assert!(e.contains("nothing to roll back to"), "{e}");
    let champion = json(&ok(quiver(
        repo,
        &["--json", "models", "show", "churn@champion"],
    )));
    assert_eq!(champion["version"], 1);
}

#[test]
fn the_rollout_shows_in_models_list_and_show() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    train_version(repo);
    ok(quiver(
        repo,
        &["models", "promote", "churn", "2", "--alias", "challenger"],
    ));
    let listed = json(&ok(quiver(repo, &["--json", "models", "list"])));
    assert_eq!(listed[0]["rollout"]["mode"], "off", "{listed}");
    ok(quiver(
        repo,
        &[
            "models", "rollout", "churn", "--mode", "canary", "--share", "0.25",
        ],
    ));
    let table = ok(quiver(repo, &["models", "list"]));
    assert!(
        table.contains("rollout") && table.matches("canary 25%").count() == 2,
        "champion and challenger rows show the canary: {table}"
    );
    let listed = json(&ok(quiver(repo, &["--json", "models", "list"])));
    for v in listed.as_array().unwrap() {
        assert_eq!(
            (
                v["rollout"]["mode"].as_str(),
                v["rollout"]["share"].as_f64()
            ),
            (Some("canary"), Some(0.25)),
            "{v}"
        );
    }
    ok(quiver(
        repo,
        &["models", "rollout", "churn", "--mode", "shadow"],
    ));
    let shown = ok(quiver(repo, &["models", "show", "churn"]));
    assert!(
        shown.contains("rollout") && shown.contains("shadow"),
        "{shown}"
    );
    let shown = json(&ok(quiver(repo, &["--json", "models", "show", "churn:2"])));
    assert_eq!(shown["rollout"]["mode"], "shadow", "{shown}");
}

/// Parses `models predict --out FILE.csv`'s score column.
fn predicted_scores(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let j = header.iter().position(|h| *h == "score").unwrap();
    lines
        .map(|l| l.split(',').nth(j).unwrap().parse().unwrap())
        .collect()
}

/// `models score` on the CSV that `historical` writes: one line per row with named
/// contributions that sum to the raw score, and the scores of `models predict`.
fn score_matches_predict(repo: &Path, model: &str) {
    let labels = repo.join("data/labels.parquet");
    let labels = labels.to_str().unwrap();
    let set = repo.join("set.csv");
    ok(quiver(
        repo,
        &[
            "-q",
            "historical",
            "--entities",
            labels,
            "--service",
            "churn_v1",
            "--out",
            set.to_str().unwrap(),
        ],
    ));
    let header = std::fs::read_to_string(&set).unwrap();
    assert!(
        header.contains(",nl,") || header.contains(",free,"),
        "the set has text"
    );
    assert!(header.contains(",false,"), "the set has booleans");
    let scored = ok(quiver(
        repo,
        &["models", "score", model, set.to_str().unwrap()],
    ));
    let predicted = repo.join("predicted.csv");
    ok(quiver(
        repo,
        &[
            "models",
            "predict",
            model,
            "--entities",
            labels,
            "--out",
            predicted.to_str().unwrap(),
        ],
    ));
    let expected = predicted_scores(&predicted);
    let lines: Vec<serde_json::Value> = scored.lines().map(json).collect();
    assert_eq!(lines.len(), expected.len());
    for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
        let p = line["pred"][0].as_f64().unwrap();
        assert!(
            (p - want).abs() <= 1e-12,
            "{model} row {i}: score {p}, models predict {want}"
        );
        let contrib = line["contrib"].as_object().unwrap();
        assert!(
            contrib.contains_key("user_profile__country")
                && contrib.contains_key("user_profile__is_premium")
                && contrib.keys().next_back().map(String::as_str) == Some("bias"),
            "{line}"
        );
        let raw: f64 = contrib.values().map(|v| v.as_f64().unwrap()).sum();
        let p_from_raw = 1.0 / (1.0 + (-raw).exp());
        assert!((p_from_raw - p).abs() < 1e-9, "{model} row {i}: {line}");
    }
}

#[test]
fn models_score_takes_what_historical_writes_and_names_contributions() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    score_matches_predict(repo, "churn:1");
}

#[test]
fn logistic_trains_on_text_features() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    let o = train(repo, &["--model", "logistic"]);
    assert!(
        !o.contains("early stopping"),
        "logistic does not stop early: {o}"
    );
    assert!(
        o.contains("encoded by their frequency in the training split: user_profile:country, user_profile:plan"),
        "{o}"
    );
    assert!(o.contains("registered model churn version 2"), "{o}");
    let shown = json(&ok(quiver(repo, &["--json", "models", "show", "churn:2"])));
    assert_eq!(shown["algorithm"], "logistic");
    let auc = shown["details"]["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.7, "test ROC-AUC {auc}");
    // The encoding is stored: batch scoring and CSV scoring encode the text the same way.
    score_matches_predict(repo, "churn:2");
    // GBDT still says what its validation rows are for.
    let o = train(repo, &["--params", "num_trees=5"]);
    assert!(o.contains("early stopping on"), "{o}");
}

#[test]
fn demo_run_json_is_one_document() {
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["--json", "demo", "run", "--users", "200", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let doc = json(&text);
    assert_eq!(doc["model"]["name"], "churn", "{doc}");
    assert!(doc["training_set"]["rows"].as_u64().unwrap() > 0);
    assert!(doc["online_features"]["results"].is_array());
    assert_eq!(
        doc["prediction"]["predictions"].as_array().unwrap().len(),
        2
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["demo", "run", "--users", "200", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("22 features x 2 users served online"),
        "{text}"
    );
}

#[test]
fn plan_and_registry_list_use_the_users_words() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    let features = ok(quiver(repo, &["registry", "list", "features"]));
    assert!(
        features.contains("count_distinct(session_id) over 30d")
            && features.contains("time_since_last(*) over 365d"),
        "{features}"
    );
    assert!(
        !features.contains("countdistinct") && !features.contains("timesincelast"),
        "{features}"
    );
    let views = ok(quiver(repo, &["registry", "list", "views"]));
    assert!(
        views.contains("1 aggregation ") && !views.contains("1 aggregations"),
        "{views}"
    );

    // A breaking change to a service lists the features it drops, one per line.
    let services = repo.join("features/services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    std::fs::write(&services, text.replace("      - \"user_reviews:*\"\n", "")).unwrap();
    let p = ok(quiver(repo, &["plan"]));
    assert!(
        p.contains("    - features: user_reviews:avg_rating_90d\n")
            && p.contains("    - patterns: user_reviews:*\n"),
        "{p}"
    );
    assert!(!p.contains("[{\"view\""), "no JSON arrays: {p}");
}
