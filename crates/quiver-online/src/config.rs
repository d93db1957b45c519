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
    let kind = raw.kind.as_deref().unwrap_or("embedded");
    // Fields that belong to other types are refused, naming the types they belong to.
    for (field, set, types) in [
        ("path", raw.path.is_some(), &["embedded"][..]),
        ("url", raw.url.is_some(), &["redis"][..]),
        ("nodes", raw.nodes.is_some(), &["redis_cluster"][..]),
        (
            "replica_acks",
            raw.replica_acks.is_some(),
            &["redis_cluster"][..],
        ),
        (
            "expiry_grace",
            raw.expiry_grace.is_some(),
            &["redis", "redis_cluster"][..],
        ),
    ] {
        if set && KINDS.contains(&kind) && !types.contains(&kind) {
            let types: Vec<String> = types.iter().map(|t| format!("`type: {t}`")).collect();
            return Err(bad(
                field,
                format!("only applies to {}", types.join(" and ")),
            ));
        }
    }
    let grace = || {
        raw.expiry_grace
            .as_deref()
            .map(|g| quiver_core::Duration::parse(g).map(|d| d.micros()))
            .transpose()
            .map_err(|m| bad("expiry_grace", m))
    };
    match kind {
        "embedded" => {
            let path = raw.path.as_deref().unwrap_or(DEFAULT_EMBEDDED_PATH);
            Ok(Arc::new(EmbeddedStore::open(&root.join(path))?))
        }
        "redis" => {
            let url = raw.url.as_deref().ok_or_else(|| {
                bad(
                    "url",
                    "a Redis store needs `url: redis://HOST:PORT` (or ${VAR} from the environment)"
                        .into(),
                )
            })?;
            let url = expand_env(url).map_err(|m| bad("url", m))?;
            Ok(Arc::new(RedisStore::new(&url, project, grace()?, timeout)?))
        }
        "redis_cluster" => {
            let nodes = raw.nodes.as_deref().unwrap_or_default();
            if nodes.is_empty() {
                return Err(bad(
                    "nodes",
                    "a Redis Cluster store needs `nodes: [redis://HOST:PORT, ...]` (some of the cluster's nodes; ${VAR} from the environment)".into(),
                ));
            }
            let nodes = nodes
                .iter()
                .map(|n| expand_env(n))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|m| bad("nodes", m))?;
            Ok(Arc::new(RedisStore::cluster(
                &nodes,
                project,
                grace()?,
                timeout,
                raw.replica_acks.unwrap_or(0),
            )?))
        }
        other => Err(bad(
            "type",
            format!("unknown online store '{other}': use {}", KINDS.join(", ")),
        )),
    }
}

/// The online store types `online_store.type` accepts.
pub const KINDS: [&str; 3] = ["embedded", "redis", "redis_cluster"];

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
