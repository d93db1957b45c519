//! Commands that need the embedded online store while `quiver serve` holds it.
//!
//! The embedded store is a redb file that one process opens. `quiver serve` announces itself
//! in `.quiver/server.json` (its URL and process id) for as long as it runs; when a command
//! finds the store locked, it looks there and sends the same operation to the server's HTTP API
//! (`POST /materialize`, `/materialize-incremental`, `/online/clear`), with the bearer token the
//! server reads (`QUIVER_SERVER_TOKEN`, or `server.token_env` / `server.token`). When no server
//! is announced, or it does not answer, the error says which command works.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use quiver_core::repo::RepoSettings;
use serde_json::{Value as Json, json};

/// Where a running server announces itself, relative to the repository.
const ANNOUNCEMENT: &str = ".quiver/server.json";

/// The announcement of a running server; removed when dropped (the server stopped).
pub struct Announced(PathBuf);

impl Drop for Announced {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `.quiver/server.json` for a server listening on `addr` (written to a temporary name
/// and renamed, so a reader never sees half of it).
pub fn announce(
    repo: &Path,
    addr: std::net::SocketAddr,
    store: &str,
) -> std::io::Result<Announced> {
    let path = repo.join(ANNOUNCEMENT);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A server on every interface is reached on loopback from this machine.
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let body = json!({
        "url": format!("http://{host}:{}", addr.port()),
        "pid": std::process::id(),
        "store": store,
        "started_at": chrono::Utc::now().to_rfc3339(),
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&body).expect("json"))?;
    std::fs::rename(&tmp, &path)?;
    Ok(Announced(path))
}

/// The URL of the server announced for `repo`, if its process is still alive.
fn announced_url(repo: &Path) -> Option<String> {
    let text = std::fs::read_to_string(repo.join(ANNOUNCEMENT)).ok()?;
    let v: Json = serde_json::from_str(&text).ok()?;
    let pid = v["pid"].as_u64()?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    v["url"].as_str().map(str::to_string)
}

/// Whether `e` says the embedded store is held by another process.
pub fn is_locked(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<quiver_online::OnlineError>(),
            Some(quiver_online::OnlineError::Locked { .. })
        )
    })
}

/// Sends `body` to `endpoint` of the server that holds the store of `repo`, and returns its
/// JSON answer. `command` is what the user ran, for the error when no server answers.
pub async fn post(repo: &Path, endpoint: &str, body: Json, command: &str) -> anyhow::Result<Json> {
    let Some(url) = announced_url(repo) else {
        anyhow::bail!(
            "the embedded online store of {} is held by another process, and no running `quiver serve` is announced in {}: stop that process and run `{command}` again, or start `quiver --repo {} serve` and run it again (it then goes through the server)",
            repo.display(),
            repo.join(ANNOUNCEMENT).display(),
            repo.display()
        );
    };
    let settings = RepoSettings::load(repo)?;
    let config = quiver_server::ServerConfig::from_settings(&settings);
    let Some(token) = config.token else {
        anyhow::bail!(
            "`quiver serve` at {url} holds the embedded online store, so `{command}` must go through its {endpoint} endpoint, which needs the server's bearer token: set {} for both `quiver serve` and this command (or use curl -X POST {url}{endpoint} -H 'Authorization: Bearer …')",
            config.token_source
        );
    };
    let target = format!("{url}{endpoint}");
    let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .post(&target)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .with_context(|| format!("cannot reach `quiver serve` at {target}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((status, text))
    })
    .await??;
    let (status, text) = answer;
    let json: Json = serde_json::from_str(&text)
        .with_context(|| format!("`quiver serve` at {url}{endpoint} answered {status}: {text}"))?;
    if !(200..300).contains(&status) {
        anyhow::bail!(
            "`quiver serve` at {url}{endpoint} answered {status}: {}",
            json["error"].as_str().unwrap_or(&text)
        );
    }
    Ok(json)
}
