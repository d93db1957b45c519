//! Alerts from `quiver check` and `quiver drift` to a local webhook receiver: each payload's
//! fields, the routing by event, the repeat interval (kept in the metadata store, so two
//! processes agree), and the older `alerts: {webhook: URL}` form.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{fails, ok, quiver};

/// A webhook receiver on 127.0.0.1: every request's path and JSON body, answered 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    assert!(!lower.starts_with("transfer-encoding"), "{line}");
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                sink.lock()
                    .unwrap()
                    .push((path, serde_json::from_slice(&body).unwrap()));
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .unwrap();
            }
        });
        Receiver { url, got }
    }

    fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

fn repo(dir: &Path, alerts: &str) {
    std::fs::write(
        dir.join("quiver.yaml"),
        format!(
            "project: shop\n{alerts}\nentities:\n  - {{name: user, join_keys: [user_id]}}\nsources:\n  - {{name: events, type: csv, path: data/events.csv, timestamp_field: ts}}\nquality:\n  - name: events_checks\n    source: events\n    checks:\n      - {{type: not_null, columns: [amount]}}\n      - {{type: range, column: amount, min: 0, max: 100}}\n  - name: soft\n    source: events\n    severity: warn\n    checks:\n      - {{type: not_null, columns: [amount]}}\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut s = String::from("user_id,amount,ts\n");
    for i in 0..30 {
        let amount = if i == 7 {
            String::new()
        } else {
            format!("{}", i % 10)
        };
        s.push_str(&format!(
            "{},{amount},2025-03-01T{:02}:00:00\n",
            i % 3,
            i % 24
        ));
    }
    std::fs::write(dir.join("data/events.csv"), s).unwrap();
    // Two data sets far apart, for drift.
    let (mut a, mut b) = (String::from("x\n"), String::from("x\n"));
    for i in 0..200 {
        a.push_str(&format!("{}\n", (i % 50) as f64 * 0.1));
        b.push_str(&format!("{}\n", 10.0 + (i % 50) as f64 * 0.1));
    }
    std::fs::write(dir.join("data/ref.csv"), a).unwrap();
    std::fs::write(dir.join("data/cur.csv"), b).unwrap();
}

#[test]
fn alerts_go_to_their_webhooks_once_per_interval() {
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    repo(
        d.path(),
        &format!(
            "alerts:\n  - {{webhook: \"{0}/checks\", on: [check_failed, job_failed], repeat_interval: 1h}}\n  - {{webhook: \"{0}/drift\", on: [drift]}}",
            rx.url
        ),
    );
    ok(quiver(d.path(), &["apply"]));

    // The failed error-severity check is posted once; the warn set's failure is not an alert.
    let o = fails(quiver(d.path(), &["check"]));
    assert!(
        o.contains("alert \"check_failed:events_checks#0\" sent"),
        "{o}"
    );
    let got = rx.take();
    assert_eq!(got.len(), 1, "{got:?}");
    let (path, body) = &got[0];
    assert_eq!(path, "/checks");
    assert_eq!(body["alert"], "check_failed");
    assert_eq!(body["key"], "check_failed:events_checks#0");
    assert_eq!(body["project"], "shop");
    assert_eq!(body["quality"], "events_checks");
    assert_eq!(body["check"], "not_null");
    assert_eq!(body["columns"], serde_json::json!(["amount"]));
    assert_eq!(body["violations"], 1);
    assert_eq!(body["trigger"], "check");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Quiver shop: quality check events_checks #0 (not_null) failed on source events"
        ),
        "{text}"
    );

    // Run again (another process): within the hour, not re-sent.
    let o = fails(quiver(d.path(), &["check"]));
    assert!(o.contains("sent within its repeat_interval"), "{o}");
    assert_eq!(rx.take(), vec![]);

    // Drift of two plain files is alerted only with --fail-on-drift, to the drift webhook, every
    // time (that rule has no interval).
    let root = d.path().to_str().unwrap();
    let (r, c) = (
        format!("{root}/data/ref.csv"),
        format!("{root}/data/cur.csv"),
    );
    ok(quiver(
        d.path(),
        &["drift", "--reference", &r, "--current", &c],
    ));
    assert_eq!(rx.take(), vec![]);
    for _ in 0..2 {
        fails(quiver(
            d.path(),
            &[
                "drift",
                "--reference",
                &r,
                "--current",
                &c,
                "--fail-on-drift",
            ],
        ));
    }
    let got = rx.take();
    assert_eq!(got.len(), 2, "{got:?}");
    for (path, body) in &got {
        assert_eq!(path, "/drift");
        assert_eq!(body["alert"], "drift");
        assert_eq!(body["model"], Value::Null);
        assert_eq!(body["drifted_features"], serde_json::json!(["x"]));
        assert_eq!(body["share_drifted"], 1.0);
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .starts_with("Quiver shop: data drift (100% of columns drifted: x)"),
            "{body}"
        );
    }
}

#[test]
fn the_single_webhook_form_posts_every_event_every_time() {
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    repo(
        d.path(),
        &format!("alerts: {{webhook: \"{}/all\"}}", rx.url),
    );
    ok(quiver(d.path(), &["apply"]));
    fails(quiver(d.path(), &["check", "events_checks"]));
    fails(quiver(d.path(), &["check", "events_checks"]));
    let got = rx.take();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .all(|(p, b)| p == "/all" && b["alert"] == "check_failed")
    );
    // A check job: the failed check alerts as check_failed (trigger job), the failed run as
    // job_failed.
    std::fs::create_dir_all(d.path().join("features")).unwrap();
    std::fs::write(
        d.path().join("features/jobs.yaml"),
        "jobs:\n  - {name: hourly_checks, schedule: \"5 * * * *\", task: {check: {names: [events_checks]}}, retries: 0}\n",
    )
    .unwrap();
    ok(quiver(d.path(), &["apply"]));
    let e = fails(quiver(d.path(), &["jobs", "run", "hourly_checks"]));
    assert!(e.contains("events_checks #0 not_null"), "{e}");
    // The job alert is posted off the command's thread: wait for it briefly.
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    while got.len() < 2 && started.elapsed() < std::time::Duration::from_secs(10) {
        got.extend(rx.take());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|(_, b)| {
            (
                b["alert"].as_str().unwrap(),
                b["trigger"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(kinds.contains(&("check_failed", "job")), "{got:?}");
    assert!(kinds.iter().any(|(a, _)| *a == "job_failed"), "{got:?}");
    // A materialization the gate blocks alerts too (trigger materialize), and writes nothing.
    std::fs::write(
        d.path().join("features/views.yaml"),
        "feature_views:\n  - {name: spend, entities: [user], source: events, features: [{name: amount, type: float64}]}\n",
    )
    .unwrap();
    ok(quiver(d.path(), &["apply"]));
    let e = fails(quiver(
        d.path(),
        &["materialize", "2025-01-01", "2025-04-01"],
    ));
    assert!(e.contains("materialization blocked"), "{e}");
    let got = rx.take();
    assert!(
        got.iter()
            .any(|(_, b)| b["alert"] == "check_failed" && b["trigger"] == "materialize"),
        "{got:?}"
    );
    // The same run through a server that holds the store (`quiver materialize` posts it to
    // /materialize): refused naming the check, and the server alerts it too.
    let token = [("QUIVER_SERVER_TOKEN", "alerts-test-token")];
    let _server = super::models::serve_with_env(d.path(), &token, &[]);
    let started = std::time::Instant::now();
    while !d.path().join(".quiver/server.json").exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let e = fails(
        std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--repo")
            .arg(d.path())
            .args(["materialize", "2025-01-01", "2025-04-01"])
            .envs(token)
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("/materialize") && e.contains("materialization blocked"),
        "{e}"
    );
    assert!(
        e.contains("sent to"),
        "the server says what it alerted: {e}"
    );
    let got = rx.take();
    assert!(
        got.iter().any(|(p, b)| p == "/all"
            && b["alert"] == "check_failed"
            && b["trigger"] == "materialize"),
        "{got:?}"
    );
}

#[test]
fn bad_alert_rules_are_refused_with_the_field() {
    let d = tempfile::tempdir().unwrap();
    repo(
        d.path(),
        "alerts:\n  - {webhook: \"http://127.0.0.1:9/x\", on: [check_fail]}",
    );
    ok(quiver(d.path(), &["apply"]));
    let o = fails(quiver(d.path(), &["check"]));
    assert!(
        o.contains("alerts.on: unknown event 'check_fail' (one of check_failed, drift, job_failed"),
        "{o}"
    );
    repo(d.path(), "alerts:\n  - {on: [drift], repeat_interval: 1h}");
    let o = fails(quiver(d.path(), &["check"]));
    assert!(
        o.contains("alerts.webhook: a rule needs a webhook URL"),
        "{o}"
    );
    repo(
        d.path(),
        "alerts:\n  - {webhook: \"http://127.0.0.1:9/x\", repeat_interval: soon}",
    );
    let o = fails(quiver(d.path(), &["check"]));
    assert!(o.contains("alerts.repeat_interval:"), "{o}");
    repo(
        d.path(),
        "alerts: {webhook: \"http://127.0.0.1:9/x\", every: 1h}",
    );
    let o = fails(quiver(d.path(), &["check"]));
    assert!(o.contains("unknown field `every`"), "{o}");
}
