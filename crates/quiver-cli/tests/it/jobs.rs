//! `quiver jobs` and the scheduler inside `quiver serve --scheduler`, on the demo repository
//! (which declares the churn example's jobs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::models::serve_with_env;
use super::{champion_of, demo, fails, ok, quiver};

fn json(o: &str) -> serde_json::Value {
    serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"))
}

fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    (
        r[9..12].parse().unwrap(),
        json(r.split("\r\n\r\n").nth(1).unwrap_or("")),
    )
}

#[test]
fn jobs_run_now_are_recorded_and_a_serving_scheduler_runs_queued_ones() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    let list = json(&ok(quiver(repo, &["--json", "jobs", "list"])));
    let names: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "export_scores",
            "quality_hourly",
            "ranking_nightly",
            "retrain_weekly",
            "snapshot_daily",
            "sync_online"
        ]
    );
    assert_eq!(list["jobs"][5]["schedule"], "*/15 * * * *");
    assert!(list["jobs"][5]["next_run"].is_string(), "{list}");

    // Run one now: it is recorded with its summary.
    let o = ok(quiver(repo, &["jobs", "run", "sync_online"]));
    assert!(o.contains("job sync_online succeeded"), "{o}");
    let history = json(&ok(quiver(
        repo,
        &["--json", "jobs", "history", "sync_online"],
    )));
    let run = &history[0];
    assert_eq!(run["status"], "succeeded", "{history}");
    assert_eq!(
        (run["attempt"].as_i64(), run["trigger"].as_str()),
        (Some(1), Some("manual"))
    );
    assert!(
        run["summary"]["views"].as_array().unwrap().len() == 5,
        "{run}"
    );
    for k in ["scheduled_at", "started_at", "ended_at"] {
        assert!(run[k].as_str().unwrap().ends_with('Z'), "{run}");
    }

    // A failing command is retried, then the run fails with its error and a non-zero exit.
    let jobs_file = repo.join("features/jobs.yaml");
    let text = std::fs::read_to_string(&jobs_file).unwrap();
    std::fs::write(
        &jobs_file,
        text.replace("retry_delay: 10s", "retry_delay: 1s").replace(
            r#"task: {command: ["python3", "-c","#,
            r#"task: {command: ["python3", "-c", "import sys; sys.exit('no disk left')"], x: {command: ["python3", "-c","#,
        ),
    )
    .unwrap();
    // (an unknown field in a task is refused by apply, naming the file and line)
    let e = fails(quiver(repo, &["apply"]));
    assert!(e.contains("features/jobs.yaml:"), "{e}");
    std::fs::write(
        &jobs_file,
        text.replace("retry_delay: 10s", "retry_delay: 1s").replace(
            r#"["python3", "-c", "import os; print('rows in labels:', os.path.getsize('data/labels.parquet'))"]"#,
            r#"["python3", "-c", "import sys; sys.exit('no disk left')"]"#,
        ),
    )
    .unwrap();
    ok(quiver(repo, &["apply"]));
    let e = fails(quiver(repo, &["jobs", "run", "export_scores"]));
    assert!(e.contains("failed after 3 attempts"), "{e}");
    let history = json(&ok(quiver(
        repo,
        &["--json", "jobs", "history", "export_scores"],
    )));
    let attempts: Vec<(i64, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, vec![(3, "failed"), (2, "failed"), (1, "failed")]);
    assert!(
        history[0]["error"]
            .as_str()
            .unwrap()
            .contains("no disk left"),
        "{history}"
    );
    std::fs::write(&jobs_file, &text).unwrap();
    ok(quiver(repo, &["apply"]));

    // A check job runs the quality sets now: the demo's clickstream stops on 2025-06-30, so
    // the (warn-severity) freshness check warns and the run succeeds, saying so; results are
    // stored with the trigger `job`.
    ok(quiver(repo, &["jobs", "run", "quality_hourly"]));
    let history = json(&ok(quiver(
        repo,
        &["--json", "jobs", "history", "quality_hourly"],
    )));
    let sets = &history[0]["summary"]["quality"];
    assert_eq!(sets[0]["quality"], "events_checks", "{history}");
    assert_eq!(sets[0]["status"], "pass", "{history}");
    assert_eq!(sets[1]["quality"], "events_timeliness", "{history}");
    assert_eq!(sets[1]["status"], "warn", "{history}");
    let checks = ok(quiver(
        repo,
        &["--json", "check", "history", "events_timeliness"],
    ));
    assert!(checks.contains("\"job\""), "{checks}");
    // An error-severity failure fails the run, naming the check: make the range impossible.
    let quality_file = repo.join("features/quality.yaml");
    let quality = std::fs::read_to_string(&quality_file).unwrap();
    std::fs::write(
        &quality_file,
        quality.replace("min: 0, max: 100000", "min: 0, max: 1"),
    )
    .unwrap();
    ok(quiver(repo, &["apply"]));
    let e = fails(quiver(repo, &["jobs", "run", "quality_hourly"]));
    assert!(e.contains("events_checks #") && e.contains("range"), "{e}");
    std::fs::write(&quality_file, &quality).unwrap();
    ok(quiver(repo, &["apply"]));

    // Pause, resume, unknown names, the Airflow export.
    ok(quiver(repo, &["jobs", "pause", "sync_online"]));
    let list = json(&ok(quiver(repo, &["--json", "jobs", "list"])));
    assert_eq!(list["jobs"][5]["paused"], true);
    assert!(list["jobs"][5]["next_run"].is_null());
    ok(quiver(repo, &["jobs", "resume", "sync_online"]));
    let e = fails(quiver(repo, &["jobs", "run", "sync_onlin"]));
    assert!(e.contains("did you mean 'sync_online'"), "{e}");
    let dag = repo.join("dag.py");
    ok(quiver(
        repo,
        &["jobs", "export", "--airflow", dag.to_str().unwrap()],
    ));
    let text = std::fs::read_to_string(&dag).unwrap();
    assert!(text.contains("jobs run sync_online --retries 0"), "{text}");

    // The scheduler in the server runs a queued run (POST /jobs/NAME/run) on the server's
    // own embedded store.
    let server = serve_with_env(repo, &[("QUIVER_SERVER_TOKEN", "t0k")], &["--scheduler"]);
    let port = server.1;
    let (s, v) = http(port, "POST", "/jobs/sync_online/run", None);
    assert_eq!(s, 401, "{v}");
    let (s, v) = http(port, "POST", "/jobs/nope/run", Some("t0k"));
    assert_eq!(s, 404, "{v}");
    let (s, v) = http(port, "POST", "/jobs/sync_online/run", Some("t0k"));
    assert_eq!(s, 202, "{v}");
    let id = v["run"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (s, runs) = http(port, "GET", "/jobs/sync_online/runs", None);
        assert_eq!(s, 200);
        let run = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run"] == id.as_str())
            .cloned();
        if let Some(r) = run.filter(|r| r["status"] == "succeeded") {
            assert!(r["scheduler"].is_string());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the queued run did not succeed: {runs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (s, jobs) = http(port, "GET", "/jobs", None);
    assert_eq!(s, 200);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 6);
}

#[test]
fn snapshots_and_resumable_backfills_from_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    let o = ok(quiver(
        repo,
        &[
            "--json",
            "backfill",
            "user_profile",
            "--from",
            "2025-06-01",
            "--to",
            "2025-06-03",
        ],
    ));
    let v = json(&o);
    let snaps = v["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 3, "{o}");
    assert!(
        snaps
            .iter()
            .all(|s| s["skipped"] == false && s["rows"].as_u64().unwrap() > 0)
    );
    let first = snaps[0]["path"].as_str().unwrap();
    assert!(
        first.starts_with(".quiver/offline/user_profile/version=")
            && first.ends_with("date=2025-06-01/part-0.parquet"),
        "{first}"
    );
    // A second run finds every partition finished.
    let o = ok(quiver(
        repo,
        &[
            "backfill",
            "user_profile",
            "--from",
            "2025-06-01",
            "--to",
            "2025-06-03",
        ],
    ));
    assert!(o.contains("3 finished before and skipped"), "{o}");
    // A service's views, as of a time; and the snapshot job of the example.
    let v = json(&ok(quiver(
        repo,
        &[
            "--json",
            "snapshot",
            "--service",
            "churn_v1",
            "--as-of",
            "2025-06-30",
        ],
    )));
    let views: Vec<&str> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["view"].as_str().unwrap())
        .collect();
    assert!(
        views.contains(&"user_purchases") && !views.contains(&"basket_context"),
        "{v}"
    );
    ok(quiver(repo, &["jobs", "run", "snapshot_daily"]));
    let e = fails(quiver(
        repo,
        &[
            "backfill",
            "user_profile",
            "--from",
            "2025-06-03",
            "--to",
            "2025-06-01",
        ],
    ));
    assert!(e.contains("--from"), "{e}");
}

#[test]
fn a_standalone_scheduler_serves_its_job_metrics() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--repo")
        .arg(repo)
        .args(["-q", "scheduler", "--metrics-port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _stop = super::models::Server(child, port);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no metrics port"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    for job in [
        "sync_online",
        "ranking_nightly",
        "retrain_weekly",
        "snapshot_daily",
        "export_scores",
        "quality_hourly",
    ] {
        let series =
            format!("batch_job_executions_total{{job_name=\"{job}\",status=\"succeeded\"}} 0");
        assert!(text.contains(&series), "no {series} in:\n{text}");
    }
}

/// `quiver models deployments churn --json`, until `id` reaches `status` (60 s at most).
fn wait_for_deployment(repo: &std::path::Path, id: &str, status: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let all = json(&ok(quiver(
            repo,
            &["--json", "models", "deployments", "churn"],
        )));
        if let Some(d) = all.as_array().unwrap().iter().find(|d| d["id"] == id)
            && d["status"] == status
        {
            return d.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{id} did not become {status}: {all}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_deploy_job_shadows_then_promotes_or_rolls_back_while_predict_answers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo); // churn version 1 is the champion
    let jobs_file = repo.join("features/jobs.yaml");
    let text = std::fs::read_to_string(&jobs_file).unwrap();
    assert!(text.contains("promote_after: 24h"), "{text}");
    std::fs::write(
        &jobs_file,
        text.replace("promote_after: 24h", "promote_after: 3s"),
    )
    .unwrap();
    ok(quiver(repo, &["apply"]));
    let server = serve_with_env(repo, &[], &["--scheduler"]);
    let port = server.1;

    // Load on /predict for the whole cycle: every answer must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..3)
        .map(|t| {
            let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(
                        r#"{{"model": "churn", "entities": {{"user_id": [{}, {}]}}}}"#,
                        t + 1,
                        t + 100
                    );
                    let (s, v) = super::models::post(port, "/predict", &body);
                    if s == 200 {
                        answered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{s}: {v}"));
                    }
                }
                errors
            })
        })
        .collect();

    // 1. Retrained on the same labels: no worse than the champion (min_gain 0), so challenger
    //    in shadow; 3 s later the server's scheduler promotes it (no disagreement).
    let o = ok(quiver(repo, &["jobs", "run", "retrain_weekly"]));
    assert!(o.contains("succeeded"), "{o}");
    let dep = wait_for_deployment(repo, "churn@2", "promoted");
    let steps: Vec<&str> = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["evaluated", "gate_passed", "rollout_started", "promoted"]
    );
    let evaluated = &dep["steps"][0];
    assert_eq!(evaluated["champion_version"], 1);
    assert!(evaluated["champion"].as_f64().unwrap() > 0.5, "{dep}");
    let observed = &dep["steps"][3]["observed"];
    assert!(observed["predictions"].as_i64().unwrap() > 0, "{dep}");
    assert_eq!(champion_of(repo, "churn"), 2);

    // 2. A rollout that cannot gather enough traffic is rolled back: the champion stays.
    std::fs::write(
        &jobs_file,
        text.replace(
            "promote_after: 24h",
            "promote_after: 3s\n      min_predictions: 1000000000",
        ),
    )
    .unwrap();
    ok(quiver(repo, &["apply"]));
    ok(quiver(repo, &["jobs", "run", "retrain_weekly"]));
    let dep = wait_for_deployment(repo, "churn@3", "rolled_back");
    let last = dep["steps"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("fewer than min_predictions 1000000000"),
        "{last}"
    );
    // Let the server answer a while longer after the rollback, then stop the load.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = load.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(
        errors.is_empty(),
        "failed requests: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(answered.load(Ordering::Relaxed) > 50, "too little load");
    assert_eq!(champion_of(repo, "churn"), 2);
    // Approving a deployment that is over is refused.
    let e = fails(quiver(repo, &["models", "approve", "churn", "3"]));
    assert!(e.contains("is rolled_back: nothing to approve"), "{e}");
    drop(server);
}
