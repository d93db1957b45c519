//! The online store from the command line while `quiver serve` holds it, `online clear`, the
//! incremental END check, and output into a closed pipe.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::models::{Server, serve_with_env};
use super::{demo, fails, ok, quiver, text};

const TOKEN: &str = "cli-test-token";

fn json(o: &str) -> serde_json::Value {
    serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"))
}

/// `quiver` with `QUIVER_SERVER_TOKEN` set (or removed).
fn quiver_with_token(repo: &Path, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_quiver"));
    c.arg("--repo").arg(repo).args(args);
    match token {
        Some(t) => c.env("QUIVER_SERVER_TOKEN", t),
        None => c.env_remove("QUIVER_SERVER_TOKEN"),
    };
    c.output().unwrap()
}

/// `quiver serve` with the token, once it has announced itself in `.quiver/server.json`.
fn serve_with_token(repo: &Path) -> Server {
    let server = serve_with_env(repo, &[("QUIVER_SERVER_TOKEN", TOKEN)], &[]);
    let started = Instant::now();
    while !repo.join(".quiver/server.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not announce itself"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn features(port: u16, users: &str) -> serde_json::Value {
    let body = format!(
        r#"{{"features": ["user_profile:country"], "entities": {{"user_id": [{users}]}}}}"#
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    json(r.split("\r\n\r\n").nth(1).unwrap_or(""))
}

#[test]
fn the_cli_reaches_the_online_store_through_a_running_server() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);

    // An incremental END before the watermark is refused, and nothing moves.
    let e = fails(quiver(repo, &["materialize-incremental", "2001-01-01"]));
    assert!(e.contains("is before the watermark of feature view"), "{e}");

    let server = serve_with_token(repo);
    let port = server.1;
    assert_eq!(
        features(port, "1, 2")["results"][1]["statuses"],
        serde_json::json!(["PRESENT", "PRESENT"])
    );

    // Without the token, the error names what to set.
    let e = fails(quiver_with_token(
        repo,
        None,
        &["online", "clear", "--views", "user_profile"],
    ));
    assert!(e.contains("QUIVER_SERVER_TOKEN"), "{e}");
    assert!(!e.contains("Cannot acquire lock"), "{e}");

    // With it, `online clear` goes through the server: the view is empty, others are kept.
    let o = ok(quiver_with_token(
        repo,
        Some(TOKEN),
        &["--json", "online", "clear", "--views", "user_profile"],
    ));
    let v = json(&o);
    assert_eq!(v["views"][0]["view"], "user_profile", "{o}");
    assert!(v["views"][0]["rows"].as_u64().unwrap() >= 300, "{o}");
    assert_eq!(v["views"][0]["watermark_reset"], true, "{o}");
    assert_eq!(
        features(port, "1, 2")["results"][1]["statuses"],
        serde_json::json!(["NOT_FOUND", "NOT_FOUND"])
    );

    // `materialize` goes through the server too, and the table shows START as given.
    let o = ok(quiver_with_token(
        repo,
        Some(TOKEN),
        &[
            "materialize",
            "2000-01-01",
            "2030-01-01",
            "--views",
            "user_profile",
        ],
    ));
    assert!(o.contains("through the running server"), "{o}");
    assert!(o.contains("2000-01-01T00:00:00Z"), "{o}");
    assert!(!o.contains("1999-12-31"), "{o}");
    assert!(o.contains("materialized 1 view into"), "{o}");
    assert_eq!(
        features(port, "1, 2")["results"][1]["statuses"],
        serde_json::json!(["PRESENT", "PRESENT"])
    );
    // A newer END moved the watermark: an incremental END before it is refused by the server.
    let e = fails(quiver_with_token(
        repo,
        Some(TOKEN),
        &[
            "materialize-incremental",
            "2025-01-01",
            "--views",
            "user_profile",
        ],
    ));
    assert!(e.contains("is before the watermark"), "{e}");

    // A stopped server leaves no announcement behind.
    drop(server);
    let o = ok(quiver(
        repo,
        &["--json", "online", "clear", "--views", "user_profile"],
    ));
    assert_eq!(json(&o)["views"][0]["watermark_reset"], true, "{o}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    for args in [
        &["registry", "describe", "user_purchases"][..],
        &["models", "show", "churn"],
        &["registry", "list", "features"],
    ] {
        for _ in 0..3 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
                .arg("--repo")
                .arg(repo)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Close the reading end before the command writes, as `| head -0` does.
            drop(child.stdout.take());
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let status = child.wait().unwrap();
            assert!(
                status.success() && !err.contains("panicked"),
                "{args:?}: {status} {err}"
            );
        }
    }
    // The same commands write their whole output into an open pipe.
    let o = quiver(repo, &["registry", "describe", "user_purchases"]);
    assert!(text(&o).contains("user_purchases"));
}

/// `QUIVER__ONLINE_STORE` (what the container image and compose.yaml set) replaces quiver.yaml's
/// store: the embedded demo store keeps its rows, Redis gets its own, and the server reads
/// whichever the variable names.
#[test]
fn the_online_store_variable_replaces_the_files_store() {
    if !super::redis_up() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    demo(repo);
    // Database 11 of the local Redis: no other test writes there.
    let redis = [("QUIVER__ONLINE_STORE", "redis://127.0.0.1:6379/11")];
    let with_env = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--repo")
            .arg(repo)
            .args(args)
            .envs(redis)
            .output()
            .unwrap()
    };
    ok(with_env(&["online", "clear", "--views", "user_profile"]));
    {
        let server = serve_with_env(repo, &redis, &[]);
        assert_eq!(
            features(server.1, "1, 2")["results"][1]["statuses"],
            serde_json::json!(["NOT_FOUND", "NOT_FOUND"]),
            "the cleared Redis view is read, not the embedded store"
        );
    }
    {
        let server = serve_with_env(repo, &[], &[]);
        assert_eq!(
            features(server.1, "1, 2")["results"][1]["statuses"],
            serde_json::json!(["PRESENT", "PRESENT"]),
            "the embedded store kept its rows"
        );
    }
    ok(with_env(&["-q", "materialize", "2000-01-01", "2025-06-30"]));
    let server = serve_with_env(repo, &redis, &[]);
    assert_eq!(
        features(server.1, "1, 2")["results"][1]["statuses"],
        serde_json::json!(["PRESENT", "PRESENT"])
    );
    drop(server);
    // A store that cannot be reached is named with the variable that chose it.
    let e = fails(
        Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--repo")
            .arg(repo)
            .args(["-q", "materialize", "2000-01-01", "2025-06-30"])
            .env("QUIVER__ONLINE_STORE", "redis://127.0.0.1:1")
            .output()
            .unwrap(),
    );
    assert!(e.contains("127.0.0.1:1"), "{e}");
}
