//! `quiver train`, `quiver models` and `/predict` end to end on the demo repository.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{demo, fails, ok, quiver};

fn json(o: &str) -> serde_json::Value {
    serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"))
}

/// `quiver serve` on a free port, killed on drop.
pub struct Server(pub Child, pub u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(repo: &Path) -> Server {
    serve_with_env(repo, &[], &[])
}

/// `quiver serve` with extra environment variables and arguments.
pub fn serve_with_env(repo: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--repo")
        .arg(repo)
        // One runtime worker: the tests' servers share the machine with cargo's test threads.
        .args(["-q", "serve", "--workers", "1", "--port", &port.to_string()])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server(child, port)
}

/// POST over plain HTTP/1.1; returns (status, JSON body).
pub fn post(port: u16, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r[9..12].parse().unwrap();
    let body = r.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, json(body))
}

#[test]
fn train_register_promote_rollback_and_predict() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo); // trains churn version 1 and makes it champion
    let labels = repo.join("data/labels.parquet");
    let labels = labels.to_str().unwrap();

    let list = json(&ok(quiver(repo, &["--json", "models", "list"])));
    let v1 = &list[0];
    assert_eq!(
        (v1["name"].as_str(), v1["version"].as_i64()),
        (Some("churn"), Some(1))
    );
    assert_eq!(v1["aliases"], serde_json::json!(["champion"]));
    let auc = v1["details"]["metrics"]["roc_auc"].as_f64().unwrap();
    // The demo's churners go quiet before the label time: the model must learn it.
    assert!(auc > 0.75, "test ROC-AUC {auc}");
    assert!(v1["details"]["importance"].as_array().unwrap().len() > 5);
    let artifact = repo
        .join(".quiver/artifacts")
        .join(v1["artifact"].as_str().unwrap());
    assert!(artifact.join("model.json").is_file() && artifact.join("evaluation.json").is_file());

    // The HTML report: plots inline, no network.
    let report = repo.join("churn.html");
    ok(quiver(
        repo,
        &[
            "models",
            "report",
            "churn:1",
            "--out",
            report.to_str().unwrap(),
        ],
    ));
    let html = std::fs::read_to_string(&report).unwrap();
    for needle in [
        "ROC (AUC",
        "Calibration",
        "total gain",
        "SHAP summary",
        "user_engagement__",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    assert!(!v1["details"]["shap_summary"].as_array().unwrap().is_empty());

    // A second version: random split, fewer trees; the champion stays on version 1.
    let o = ok(quiver(
        repo,
        &[
            "train",
            "--service",
            "churn_v1",
            "--labels",
            labels,
            "--label",
            "churned",
            "--name",
            "churn",
            "--split",
            "random",
            "--params",
            "num_trees=30,num_leaves=7",
        ],
    ));
    assert!(o.contains("registered model churn version 2"), "{o}");
    let shown = ok(quiver(repo, &["models", "show", "churn"]));
    assert!(
        shown.contains("model churn version 1 [champion]")
            && shown.contains("matches the registry"),
        "{shown}"
    );
    // `models show` lists the version's training parameters, as its --help says.
    let shown = ok(quiver(repo, &["models", "show", "churn:2"]));
    assert!(
        shown.contains("param num_trees") && shown.contains("param num_leaves"),
        "{shown}"
    );

    // Bad input: each names the culprit, nothing is registered.
    let base = ["train", "--service", "churn_v1", "--labels", labels];
    let e = fails(quiver(repo, &[&base[..], &["--label", "nope"]].concat()));
    assert!(e.contains("no column 'nope'"), "{e}");
    let e = fails(quiver(
        repo,
        &[&base[..], &["--label", "user_id", "--task", "binary"]].concat(),
    ));
    assert!(e.contains("--task binary needs 0/1"), "{e}");
    let e = fails(quiver(
        repo,
        &[
            &base[..],
            &["--label", "churned", "--params", "num_treez=3"],
        ]
        .concat(),
    ));
    assert!(e.contains("num_treez"), "{e}");
    let e = fails(quiver(
        repo,
        &[
            "train",
            "--service",
            "nope",
            "--labels",
            labels,
            "--label",
            "churned",
        ],
    ));
    assert!(e.contains("nope"), "{e}");
    // Labels naming an unknown entity, or none: each refused, naming the row.
    let train_on = |file: &str, rows: &str| {
        let path = repo.join(file);
        std::fs::write(&path, format!("user_id,event_timestamp,churned\n{rows}")).unwrap();
        let args = [
            "train",
            "--service",
            "churn_v1",
            "--label",
            "churned",
            "--labels",
        ];
        fails(quiver(
            repo,
            &[&args[..], &[path.to_str().unwrap()]].concat(),
        ))
    };
    let e = train_on(
        "labels_unknown.csv",
        "1,2025-06-01T00:00:00Z,1\n999999,2025-06-01T00:00:00Z,0\n2,2025-06-01T00:00:00Z,0\n",
    );
    assert!(
        e.contains("1 of 3 label rows name entities that no feature view knows")
            && e.contains("user_id=999999 at row 2"),
        "{e}"
    );
    let e = train_on(
        "labels_no_key.csv",
        "1,2025-06-01T00:00:00Z,1\n,2025-06-01T00:00:00Z,0\n",
    );
    assert!(e.contains("label row 2 has no user_id"), "{e}");
    assert_eq!(
        json(&ok(quiver(repo, &["--json", "models", "list"])))
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Aliases.
    let e = fails(quiver(repo, &["models", "delete", "churn", "1"]));
    assert!(e.contains("named by alias champion"), "{e}");
    ok(quiver(
        repo,
        &["models", "promote", "churn", "2", "--alias", "champion"],
    ));
    ok(quiver(
        repo,
        &["models", "promote", "churn", "1", "--alias", "challenger"],
    ));

    let server = serve(repo);
    let port = server.1;
    let (status, p) = post(
        port,
        "/predict",
        r#"{"model": "churn", "entities": {"user_id": [1, 2, 999999]}}"#,
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["version"], 2);
    let preds = p["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    for q in preds {
        let s = q["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s), "{q}");
    }
    assert!(
        preds[0]["missing"].as_array().unwrap().len()
            < preds[2]["missing"].as_array().unwrap().len(),
        "an unknown user misses every feature: {p}"
    );
    let (status, p1) = post(
        port,
        "/predict",
        r#"{"model": "churn", "alias": "challenger", "entities": {"user_id": [1]}}"#,
    );
    assert_eq!((status, p1["version"].as_i64()), (200, Some(1)), "{p1}");
    let (status, p1v) = post(
        port,
        "/predict",
        r#"{"model": "churn", "version": 1, "entities": {"user_id": [1]}}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(p1v["predictions"], p1["predictions"]);

    // Errors.
    let (status, e) = post(
        port,
        "/predict",
        r#"{"model": "nope", "entities": {"user_id": [1]}}"#,
    );
    assert_eq!(status, 404, "{e}");
    let (status, e) = post(
        port,
        "/predict",
        r#"{"model": "churn", "alias": "staging", "entities": {"user_id": [1]}}"#,
    );
    assert_eq!(status, 404, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("no alias 'staging'"),
        "{e}"
    );
    let (status, _) = post(
        port,
        "/predict",
        r#"{"model": "churn", "entities": {"user_id": [1]"#,
    );
    assert_eq!(status, 400);
    let (status, e) = post(
        port,
        "/predict",
        r#"{"model": "churn", "entities": {"user_id": ["x"]}}"#,
    );
    assert_eq!(status, 400, "{e}");

    // Canary: a stable ~30% of entities get the challenger (version 1).
    let e = fails(quiver(
        repo,
        &["models", "rollout", "nope", "--mode", "shadow"],
    ));
    assert!(e.contains("needs a challenger"), "{e}");
    ok(quiver(
        repo,
        &[
            "models", "rollout", "churn", "--mode", "canary", "--share", "0.3",
        ],
    ));
    let ids: Vec<String> = (1..=2000).map(|i| i.to_string()).collect();
    let body = format!(
        r#"{{"model": "churn", "entities": {{"user_id": [{}]}}}}"#,
        ids.join(",")
    );
    let arms = |p: &serde_json::Value| -> Vec<(String, i64)> {
        p["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["arm"].as_str().unwrap().to_string(),
                    r["version"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    std::thread::sleep(Duration::from_millis(1100));
    let (status, c1) = post(port, "/predict/batch", &body);
    assert_eq!(status, 200, "{c1}");
    let a1 = arms(&c1);
    let to_challenger = a1
        .iter()
        .filter(|(a, v)| a == "challenger" && *v == 1)
        .count();
    assert_eq!(
        a1.iter()
            .filter(|(a, v)| a == "champion" && *v == 2)
            .count(),
        2000 - to_challenger
    );
    // 2000 x 0.3 = 600, sd 20.5: 4.4 sd either side.
    assert!(
        (510..=690).contains(&to_challenger),
        "{to_challenger} of 2000 to the challenger"
    );
    assert_eq!(c1["rollout"]["served_by_challenger"], to_challenger as u64);
    let (_, c2) = post(port, "/predict/batch", &body);
    assert_eq!(arms(&c2), a1, "an entity always lands in the same arm");
    // Naming a version or alias bypasses the rollout.
    let (_, pinned) = post(
        port,
        "/predict",
        r#"{"model": "churn", "alias": "champion", "entities": {"user_id": [1, 2, 3]}}"#,
    );
    assert!(
        pinned.get("rollout").is_none() && pinned["predictions"][0].get("arm").is_none(),
        "{pinned}"
    );

    // Shadow: everyone gets the champion; the challenger is scored and compared.
    ok(quiver(
        repo,
        &["models", "rollout", "churn", "--mode", "shadow"],
    ));
    std::thread::sleep(Duration::from_millis(1100));
    let (status, sh) = post(port, "/predict/batch", &body);
    assert_eq!(status, 200, "{sh}");
    assert!(arms(&sh).iter().all(|(a, v)| a == "champion" && *v == 2));
    assert_eq!(sh["rollout"]["mode"], "shadow");
    assert_eq!(sh["rollout"]["challenger_version"], 1);
    let metrics = {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    };
    for m in [
        "quiver_shadow_predictions_total",
        "quiver_shadow_disagreements_total",
        "quiver_predictions_total",
        "quiver_predict_seconds",
    ] {
        assert!(metrics.contains(m), "/metrics lacks {m}");
    }
    ok(quiver(
        repo,
        &["models", "rollout", "churn", "--mode", "off"],
    ));

    // Rollback moves the champion back; the server picks it up without a restart.
    let o = ok(quiver(
        repo,
        &["models", "rollback", "churn", "--alias", "champion"],
    ));
    assert!(o.contains("version 2 -> 1"), "{o}");
    std::thread::sleep(Duration::from_millis(1200));
    let (status, p) = post(
        port,
        "/predict",
        r#"{"model": "churn", "entities": {"user_id": [1]}}"#,
    );
    assert_eq!((status, p["version"].as_i64()), (200, Some(1)), "{p}");

    // Change what the service reads while the server runs: it picks up the new registry
    // version without a restart, and the old models are refused, never scored on other
    // features.
    let ready = |port: u16| -> serde_json::Value {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        json(r.split("\r\n\r\n").nth(1).unwrap_or(""))
    };
    let before = ready(port)["registry_version"].as_i64().unwrap();
    let services = repo.join("features/services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    std::fs::write(&services, text.replace("      - \"user_reviews:*\"\n", "")).unwrap();
    ok(quiver(repo, &["apply", "--allow-breaking"]));
    let started = Instant::now();
    while ready(port)["registry_version"].as_i64() == Some(before) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server still serves registry version {before} after apply"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ready(port)["registry_version"].as_i64(), Some(before + 1));
    let (status, e) = post(
        port,
        "/predict",
        r#"{"model": "churn", "entities": {"user_id": [1]}}"#,
    );
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("has changed since"),
        "{e}"
    );
    let shown = ok(quiver(repo, &["models", "show", "churn:1"]));
    assert!(shown.contains("CHANGED since training"), "{shown}");
}

/// Train/serve parity and the prediction log: `quiver models predict` (offline, point-in-time
/// features as of T) and `/predict` (online store materialized as of T) give bit-identical
/// scores, unknown entities included; sampled requests land in the Parquet prediction log with
/// their inputs and scores.
#[test]
fn offline_scores_equal_online_scores_and_predictions_are_logged() {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};

    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo); // churn version 1, champion; materialized as of the data's last day
    // Version 2 encodes country and plan by their frequency in the training split: the table
    // travels in the model, so offline and online scores must still agree bit for bit.
    let labels = repo.join("data/labels.parquet");
    let train = |more: &[&str]| {
        let mut args = vec![
            "train",
            "--service",
            "churn_v1",
            "--labels",
            labels.to_str().unwrap(),
            "--label",
            "churned",
        ];
        args.extend_from_slice(more);
        quiver(repo, &args)
    };
    ok(train(&[
        "--name",
        "churn",
        "--frequency-encode",
        "user_profile:country,plan",
        "--promote",
        "champion",
    ]));
    let mut model_files = vec![repo.join(".quiver")];
    let mut frequency_tables = 0;
    while let Some(p) = model_files.pop() {
        if p.is_dir() {
            model_files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.file_name().is_some_and(|n| n == "model.json") {
            let text = std::fs::read_to_string(&p).unwrap();
            frequency_tables += text.matches(r#""type":"frequency""#).count();
        }
    }
    assert_eq!(
        frequency_tables, 2,
        "country and plan are frequency-encoded in version 2"
    );
    let e = train(&["--frequency-encode", "user_profile:nope"]);
    assert!(!e.status.success());
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("--frequency-encode user_profile:nope"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    let mut yaml = std::fs::read_to_string(repo.join("quiver.yaml")).unwrap();
    yaml.push_str("\nserver:\n  prediction_log: {sample_rate: 0.5, flush_interval_ms: 100}\n");
    std::fs::write(repo.join("quiver.yaml"), yaml).unwrap();

    // Materialize as of T, long after the data ends: every aggregation window is empty then, so
    // rows materialized earlier must not linger.
    let t = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    ok(quiver(repo, &["materialize", "2000-01-01", &t]));
    let users: Vec<i64> = (1..=60).chain([999_999]).collect();
    let mut csv = String::from("user_id,event_timestamp\n");
    for u in &users {
        csv.push_str(&format!("{u},{t}\n"));
    }
    let entities = repo.join("entities.csv");
    std::fs::write(&entities, csv).unwrap();
    let preds = repo.join("preds.csv");
    ok(quiver(
        repo,
        &[
            "models",
            "predict",
            "churn",
            "--entities",
            entities.to_str().unwrap(),
            "--out",
            preds.to_str().unwrap(),
        ],
    ));
    let offline: Vec<f64> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(offline.len(), users.len());

    // The demo's own request was logged; start from an empty log.
    let log_dir = repo.join(".quiver/prediction_log");
    assert!(log_dir.is_dir(), "the demo's /predict call was logged");
    std::fs::remove_dir_all(&log_dir).unwrap();
    let server = serve(repo);
    let port = server.1;
    let mut single = Vec::new();
    for u in 1..=10 {
        let (status, p) = post(
            port,
            "/predict",
            &format!(r#"{{"model": "churn", "entities": {{"user_id": [{u}]}}}}"#),
        );
        assert_eq!(status, 200, "{p}");
        single.push(p["predictions"][0]["score"].as_f64().unwrap());
    }
    let ids: Vec<String> = users.iter().map(i64::to_string).collect();
    let (status, p) = post(
        port,
        "/predict",
        &format!(
            r#"{{"model": "churn", "entities": {{"user_id": [{}]}}}}"#,
            ids.join(",")
        ),
    );
    assert_eq!(status, 200, "{p}");
    let online: Vec<f64> = p["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["score"].as_f64().unwrap())
        .collect();
    for (i, (a, b)) in offline.iter().zip(&online).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "user {}: offline {a} != online {b}",
            users[i]
        );
    }
    assert_eq!(
        &online[..10],
        &single[..],
        "batch and single requests agree"
    );
    let (_, features) = post(
        port,
        "/get-online-features",
        r#"{"features": ["user_profile:age"], "entities": {"user_id": [2, 4, 6, 8, 10]}}"#,
    );
    let ages: Vec<f64> = features["results"][1]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();

    // Sampling 0.5 logs requests 2, 4, ..., 10 (users 2, 4, ..., 10); the batch request is the
    // 11th, not logged. The writer flushes every 100 ms.
    let dir = repo.join(".quiver/prediction_log/model=churn/version=2");
    let started = Instant::now();
    let rows = loop {
        let mut batches = Vec::new();
        if let Ok(dates) = std::fs::read_dir(&dir) {
            for date in dates {
                for f in std::fs::read_dir(date.unwrap().path()).unwrap() {
                    let path = f.unwrap().path();
                    if path.extension().is_some_and(|e| e == "parquet") {
                        let r = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                            std::fs::File::open(&path).unwrap(),
                        )
                        .unwrap()
                        .build()
                        .unwrap();
                        batches.extend(r.map(Result::unwrap));
                    }
                }
            }
        }
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        if n >= 5 || started.elapsed() > Duration::from_secs(10) {
            break batches;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut logged: Vec<(i64, f64, f64, String)> = Vec::new();
    for b in &rows {
        let user = b
            .column_by_name("user_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let score = b
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        let age = b
            .column_by_name("user_profile__age")
            .unwrap()
            .as_primitive::<Float64Type>();
        let arm = b.column_by_name("arm").unwrap().as_string::<i32>();
        let version = b
            .column_by_name("version")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(b.column_by_name("user_profile__country").is_some());
        for i in 0..b.num_rows() {
            assert_eq!(version.value(i), 2);
            assert!(!age.is_null(i));
            logged.push((
                user.value(i),
                score.value(i),
                age.value(i),
                arm.value(i).to_string(),
            ));
        }
    }
    logged.sort_by_key(|r| r.0);
    assert_eq!(
        logged.iter().map(|r| r.0).collect::<Vec<_>>(),
        [2, 4, 6, 8, 10],
        "{logged:?}"
    );
    for (k, (user, score, age, arm)) in logged.iter().enumerate() {
        assert_eq!(
            *score,
            single[*user as usize - 1],
            "logged score of user {user}"
        );
        assert_eq!(*age, ages[k], "logged age of user {user}");
        assert_eq!(arm, "champion");
    }

    // Drift of what was served against what the version was trained on: the inputs against a
    // sample of its training split, the scores against its test-split predictions.
    drop(server);
    let v = json(&ok(quiver(
        repo,
        &[
            "--json",
            "drift",
            "--reference",
            "model:churn",
            "--current",
            "log:churn:2@2000-01-01..2100-01-01",
            // (served long after the data ends, the windowed features are all null)
            "--features",
            "user_profile__age,user_profile__country",
        ],
    )));
    let names: Vec<&str> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"user_profile__age"), "{v}");
    assert!(
        !names.contains(&"score"),
        "scores are prediction drift: {v}"
    );
    let age = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "user_profile__age")
        .unwrap();
    assert_eq!(age["current_rows"], 5, "{age}");
    assert!(age["reference_rows"].as_u64().unwrap() > 100, "{age}");
    let p = &v["prediction_drift"]["features"][0];
    assert_eq!(p["name"], "score", "{v}");
    assert_eq!(p["current_rows"], 5, "{p}");
    assert!(p["reference_rows"].as_u64().unwrap() > 10, "{p}");
    // A version without a reference (imported models, older versions) is a clear error.
    let e = fails(quiver(
        repo,
        &[
            "drift",
            "--reference",
            "model:nope",
            "--current",
            "log:churn@2000-01-01..2100-01-01",
        ],
    ));
    assert!(e.contains("model:nope"), "{e}");
}

fn read_parquet(path: &Path) -> Vec<datafusion::arrow::array::RecordBatch> {
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Request-time features (the demo's `basket_context`: request field `basket_amount` and the
/// user's purchase statistics): `historical` (basket_amount from the entity rows, statistics point
/// in time) and `/get-online-features` (basket_amount from the request, statistics from the
/// online store) give identical values; a model trained on them scores identically offline
/// (`models predict`) and through `/predict` with `request_data`.
#[test]
fn request_time_features_are_the_same_offline_and_online() {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;

    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    // The data's last day: aggregation windows are full there.
    let t = "2025-06-30T00:00:00Z";
    ok(quiver(repo, &["materialize", "2000-01-01", t]));
    let users: Vec<i64> = (1..=300).collect();
    let amount = |u: i64| -> Option<f64> { (u % 17 != 0).then_some((u * 37 % 200) as f64 + 0.25) };
    let mut csv = String::from("user_id,event_timestamp,basket_amount,large\n");
    for &u in &users {
        let a = amount(u);
        let label = a.is_some_and(|a| a > 120.0);
        csv.push_str(&format!(
            "{u},{t},{},{}\n",
            a.map(|a| a.to_string()).unwrap_or_default(),
            u8::from(label)
        ));
    }
    let entities = repo.join("baskets.csv");
    std::fs::write(&entities, csv).unwrap();
    let hist = repo.join("baskets.parquet");
    ok(quiver(
        repo,
        &[
            "historical",
            "--entities",
            entities.to_str().unwrap(),
            "--features",
            "basket_context:*",
            "--full-names",
            "--out",
            hist.to_str().unwrap(),
        ],
    ));
    let offline = read_parquet(&hist);
    let b = &offline[0];
    assert_eq!(b.num_rows(), users.len());
    let ratio = b
        .column_by_name("basket_context__basket_vs_avg_30d")
        .unwrap()
        .as_primitive::<Float64Type>()
        .clone();
    let log = b
        .column_by_name("basket_context__basket_log")
        .unwrap()
        .as_primitive::<Float64Type>()
        .clone();
    assert!(
        (0..ratio.len()).filter(|&i| !ratio.is_null(i)).count() > 20,
        "some users have a 30-day average at the data's end"
    );
    assert_eq!(log.value(0), (amount(1).unwrap()).ln_1p());

    std::fs::write(
        repo.join("features/basket.yaml"),
        "feature_services:\n  - name: basket_v1\n    features: [\"user_purchases:*\", \"basket_context:*\"]\n",
    )
    .unwrap();
    ok(quiver(repo, &["apply"]));
    ok(quiver(
        repo,
        &[
            "train",
            "--service",
            "basket_v1",
            "--labels",
            entities.to_str().unwrap(),
            "--label",
            "large",
            "--name",
            "basket",
            "--split",
            "random",
            "--promote",
            "champion",
            "--allow-unknown-entities",
        ],
    ));
    let preds = repo.join("basket_preds.csv");
    ok(quiver(
        repo,
        &[
            "models",
            "predict",
            "basket",
            "--entities",
            entities.to_str().unwrap(),
            "--out",
            preds.to_str().unwrap(),
        ],
    ));
    let offline_scores: Vec<f64> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();

    let server = serve(repo);
    let port = server.1;
    let ids: Vec<String> = users.iter().map(i64::to_string).collect();
    let amounts: Vec<String> = users
        .iter()
        .map(|&u| amount(u).map(|a| a.to_string()).unwrap_or("null".into()))
        .collect();
    let (status, online) = post(
        port,
        "/get-online-features",
        &format!(
            r#"{{"features": ["basket_context:basket_vs_avg_30d", "basket_context:basket_log"], "entities": {{"user_id": [{}], "basket_amount": [{}]}}}}"#,
            ids.join(","),
            amounts.join(",")
        ),
    );
    assert_eq!(status, 200, "{online}");
    let values = |k: usize| -> Vec<Option<f64>> {
        online["results"][k]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64())
            .collect()
    };
    let col = |a: &datafusion::arrow::array::Float64Array| -> Vec<Option<f64>> {
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| a.value(i)))
            .collect()
    };
    assert_eq!(
        values(2),
        col(&ratio),
        "basket_vs_avg_30d offline vs online"
    );
    assert_eq!(values(3), col(&log), "basket_log offline vs online");

    let (status, p) = post(
        port,
        "/predict/batch",
        &format!(
            r#"{{"model": "basket", "entities": {{"user_id": [{}]}}, "request_data": {{"basket_amount": [{}]}}}}"#,
            ids.join(","),
            amounts.join(",")
        ),
    );
    assert_eq!(status, 200, "{p}");
    let online_scores: Vec<f64> = p["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["score"].as_f64().unwrap())
        .collect();
    assert_eq!(online_scores.len(), offline_scores.len());
    for (i, (a, b)) in offline_scores.iter().zip(&online_scores).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "user {}: offline {a} != online {b}",
            i + 1
        );
    }
    // A missing request field is a 400 naming it; one value applies to every row.
    let (status, e) = post(
        port,
        "/predict",
        r#"{"model": "basket", "entities": {"user_id": [1]}}"#,
    );
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("'basket_amount'"),
        "{e}"
    );
    let (status, one) = post(
        port,
        "/predict",
        r#"{"model": "basket", "entities": {"user_id": [1, 2]}, "request_data": {"basket_amount": 150.25}}"#,
    );
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["predictions"].as_array().unwrap().len(), 2);
}
