//! Finding and reading the definition files of a Quiver repository.
//!
//! A repository is a directory with a `quiver.yaml`; definitions may also live in any `*.yaml` or
//! `*.yml` file under `features/` (searched recursively, in path order so that loading is
//! deterministic).

use std::path::{Path, PathBuf};

use crate::error::{Error, Located, Result};
use crate::registry::Registry;
use crate::yaml::{
    DefinitionFile, RawAlerts, RawOfflineEngine, RawOnlineStore, RawServer, RawStorage, RawTracking,
};

/// The main file of a repository.
pub const MAIN_FILE: &str = "quiver.yaml";
/// The folder searched for more definition files.
pub const FEATURES_DIR: &str = "features";

/// The definition files of a repository, in load order (`quiver.yaml` first).
pub fn definition_files(root: &Path) -> Result<Vec<PathBuf>> {
    let main = root.join(MAIN_FILE);
    if !main.is_file() {
        return Err(Error::Io {
            path: main,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not a Quiver repository (no quiver.yaml); create one with `quiver init DIR` or pass --repo",
            ),
        });
    }
    let mut files = vec![main];
    let mut extra = Vec::new();
    collect_yaml(&root.join(FEATURES_DIR), &mut extra)?;
    extra.sort();
    files.extend(extra);
    Ok(files)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one definition file's text; `file` is only used in error messages.
pub fn parse_definitions(file: &Path, text: &str) -> Result<DefinitionFile> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(DefinitionFile::default());
    }
    serde_saphyr::from_str::<DefinitionFile>(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        Error::Yaml {
            at: Located {
                file: file.to_path_buf(),
                line,
                column,
            },
            message: first_line(&e.to_string()),
        }
    })
}

/// serde-saphyr renders a snippet after the message; the CLI prints its own location, so only
/// the message is kept.
fn first_line(message: &str) -> String {
    let mut m = message.lines().next().unwrap_or("").trim();
    m = m.strip_prefix("error:").unwrap_or(m).trim_start();
    // Drop a leading "line X column Y:" and a trailing " at line X column Y".
    if let (true, Some(i)) = (m.starts_with("line "), m.find(": ")) {
        m = &m[i + 2..];
    }
    match m.find(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m.to_string(),
    }
}

/// Reads and validates every definition file of the repository at `root`. File paths in errors
/// are relative to `root` when possible.
pub fn load_registry(root: &Path) -> Result<Registry> {
    let mut parsed = Vec::new();
    for path in definition_files(root)? {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let shown = path
            .strip_prefix(root)
            .map(Path::to_path_buf)
            .unwrap_or(path);
        let defs = parse_definitions(&shown, &text)?;
        parsed.push((shown, defs));
    }
    Registry::from_files(parsed)
}

/// The project's settings from `quiver.yaml` that pick stores; read without validating
/// definitions so that commands which only need a store can start fast.
#[derive(Debug, Clone, Default)]
pub struct RepoSettings {
    /// `registry:` — a SQLite path (relative to the repository) or a `postgresql://` URL.
    pub registry: Option<String>,
    /// `online_store:` with where it was written, for error messages.
    pub online_store: Option<(Located, RawOnlineStore)>,
    /// `server:` settings.
    pub server: RawServer,
    /// `tracking:` settings.
    pub tracking: RawTracking,
    /// `alerts:` settings.
    pub alerts: RawAlerts,
    /// `project:`.
    pub project: Option<String>,
    /// `artifacts:`: an object-storage URL that versions' files are copied to when they are
    /// registered and fetched from when they are missing locally ([`ARTIFACTS_ENV`] replaces
    /// it).
    pub artifacts: Option<String>,
    /// `offline_store:`: where offline snapshots live, a folder relative to the repository or
    /// an `s3://` URL ([`OFFLINE_STORE_ENV`] replaces it); `.quiver/offline` when absent.
    pub offline_store: Option<String>,
    /// `storage:`: how `s3://` URLs are reached.
    pub storage: RawStorage,
    /// `offline_engine:`: where point-in-time joins run.
    pub offline_engine: Option<RawOfflineEngine>,
}

impl RepoSettings {
    /// Reads the settings from `quiver.yaml`.
    pub fn load(root: &Path) -> Result<Self> {
        let main = root.join(MAIN_FILE);
        let text = std::fs::read_to_string(&main).map_err(|source| Error::Io {
            path: main.clone(),
            source,
        })?;
        let defs = parse_definitions(Path::new(MAIN_FILE), &text)?;
        let at = |line: u64, column: u64| Located {
            file: PathBuf::from(MAIN_FILE),
            line,
            column,
        };
        let online_store = defs
            .online_store
            .map(|o| (at(o.referenced.line(), o.referenced.column()), o.value));
        let online_store = match std::env::var(ONLINE_STORE_ENV) {
            Ok(url) if !url.trim().is_empty() => Some(online_store_from_env(
                url.trim(),
                online_store.map(|(_, raw)| raw),
            )),
            _ => online_store,
        };
        Ok(RepoSettings {
            registry: defs.registry.map(|r| r.value),
            online_store,
            server: defs.server.map(|s| s.value).unwrap_or_default(),
            tracking: defs.tracking.map(|t| t.value).unwrap_or_default(),
            alerts: defs.alerts.map(|a| a.value).unwrap_or_default(),
            project: defs.project.map(|p| p.value),
            artifacts: match std::env::var(ARTIFACTS_ENV) {
                Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
                _ => defs.artifacts.map(|a| a.value),
            },
            offline_store: match std::env::var(OFFLINE_STORE_ENV) {
                Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
                _ => defs.offline_store.map(|a| a.value),
            },
            storage: defs.storage.map(|s| s.value).unwrap_or_default(),
            offline_engine: defs.offline_engine.map(|s| s.value),
        })
    }
}

/// The environment variable that replaces `artifacts:` (an `s3://bucket/prefix` URL).
pub const ARTIFACTS_ENV: &str = "QUIVER__ARTIFACTS";

/// The environment variable that replaces `offline_store:` (a folder or an `s3://` URL).
pub const OFFLINE_STORE_ENV: &str = "QUIVER__OFFLINE_STORE";

/// The environment variable that replaces `online_store:` (a deployment's twin of
/// `QUIVER__REGISTRY`): a Redis URL (`redis://`, `rediss://`, `unix://`) selects `type: redis`,
/// anything else is the embedded store's folder.
pub const ONLINE_STORE_ENV: &str = "QUIVER__ONLINE_STORE";

/// `online_store:` as [`ONLINE_STORE_ENV`] says, keeping the file's `timeout_ms` and, when the
/// file's store is a Redis too, its `expiry_grace`; errors name the variable.
fn online_store_from_env(value: &str, file: Option<RawOnlineStore>) -> (Located, RawOnlineStore) {
    let file = file.unwrap_or_default();
    let redis = ["redis://", "rediss://", "unix://"]
        .iter()
        .any(|scheme| value.starts_with(scheme));
    let file_is_redis = matches!(file.kind.as_deref(), Some("redis" | "redis_cluster"));
    let raw = RawOnlineStore {
        kind: Some(if redis { "redis" } else { "embedded" }.to_string()),
        path: (!redis).then(|| value.to_string()),
        url: redis.then(|| value.to_string()),
        expiry_grace: if redis && file_is_redis {
            file.expiry_grace
        } else {
            None
        },
        timeout_ms: file.timeout_ms,
        ..Default::default()
    };
    let at = Located {
        file: PathBuf::from(format!("${ONLINE_STORE_ENV}")),
        line: 1,
        column: 1,
    };
    (at, raw)
}
