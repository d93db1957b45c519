//! Opening the online store named by `quiver.yaml`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quiver_core::repo::RepoSettings;

use crate::embedded::EmbeddedStore;
use crate::redis_store::RedisStore;
use crate::store::{OnlineError, OnlineStore, Result};

/// Where the embedded store lives unless `online_store.path` says otherwise.
pub const DEFAULT_EMBEDDED_PATH: &str = ".quiver/online";

/// Opens the online store configured in `settings` for `project` (repository at `root`).
pub fn open_store(
    settings: &RepoSettings,
    root: &Path,
    project: &str,
) -> Result<Arc<dyn OnlineStore>> {
    let Some((at, raw)) = &settings.online_store else {
        return Ok(Arc::new(EmbeddedStore::open(
            &root.join(DEFAULT_EMBEDDED_PATH),
        )?));
    };
    let bad = |field: &str, message: String| {
        OnlineError::Config(format!(
            "{}:{}:{}: online_store.{field}: {message}",
            at.file.display(),
            at.line,
            at.column
        ))
    };
    let timeout = Duration::from_millis(raw.timeout_ms.unwrap_or(1000).max(1));
    match raw.kind.as_deref().unwrap_or("embedded") {
        "embedded" => {
            for (field, set) in [
                ("url", raw.url.is_some()),
                ("expiry_grace", raw.expiry_grace.is_some()),
            ] {
                if set {
                    return Err(bad(field, "only applies to `type: redis`".into()));
                }
            }
            let path = raw.path.as_deref().unwrap_or(DEFAULT_EMBEDDED_PATH);
            Ok(Arc::new(EmbeddedStore::open(&root.join(path))?))
        }
        "redis" => {
            if raw.path.is_some() {
                return Err(bad("path", "only applies to `type: embedded`".into()));
            }
            let url = raw.url.as_deref().ok_or_else(|| {
                bad(
                    "url",
                    "a Redis store needs `url: redis://HOST:PORT` (or ${VAR} from the environment)"
                        .into(),
                )
            })?;
            let url = expand_env(url).map_err(|m| bad("url", m))?;
            let grace = raw
                .expiry_grace
                .as_deref()
                .map(|g| quiver_core::Duration::parse(g).map(|d| d.micros()))
                .transpose()
                .map_err(|m| bad("expiry_grace", m))?;
            Ok(Arc::new(RedisStore::new(&url, project, grace, timeout)?))
        }
        other => Err(bad(
            "type",
            format!("unknown online store '{other}': use embedded or redis"),
        )),
    }
}

/// Replaces `${VAR}` with the environment variable's value, so passwords stay out of YAML.
pub fn expand_env(text: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err(format!("unclosed ${{ in '{text}'"));
        };
        let var = &rest[start + 2..start + end];
        out.push_str(
            &std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        );
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
