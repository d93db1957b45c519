//! # quiver-registry
//!
//! The metadata store: every applied registry, with a version history per object.
//!
//! * [`MetadataStore`] is the trait the rest of Quiver uses; [`SqlMetadataStore`] implements it on
//!   SQLite (the default, a file at `.quiver/registry.db`) and PostgreSQL (`registry:
//!   postgresql://...` in `quiver.yaml`) with the same SQL through sqlx's `Any` driver, so both
//!   run the same tests.
//! * [`MetadataStore::apply`] stores a registry in one transaction: a new registry version, and a
//!   new object version for each object whose content hash changed (removals are recorded too).
//!   It takes the version the plan was made against and refuses to apply over a newer one, so two
//!   people applying at once cannot silently overwrite each other. A failed apply writes nothing.
//!
//! Tables are prefixed `quiver_` and created on open.

use std::path::Path;
use std::str::FromStr as _;

use quiver_core::Registry;
use quiver_core::plan::{Op, Plan};
use quiver_core::registry::ObjectKind;
use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

pub mod deployments;
pub mod jobs;
pub mod mlflow;
pub mod models;
pub mod monitoring;
pub mod quality;
pub use deployments::{Deployment, RolloutStats};
pub use jobs::JobRun;
pub use models::{ModelVersion, NewModelVersion, Rollout, canary_point};
pub use monitoring::DriftRun;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be reached or a statement failed.
    #[error("metadata store {url}: {source}")]
    Database {
        /// The store (password removed).
        url: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// Someone applied since the plan was made.
    #[error(
        "the registry changed while you planned (stored version is now {current}, the plan was made against {expected}): run plan again"
    )]
    Conflict {
        /// The version the plan was made against.
        expected: i64,
        /// The stored version.
        current: i64,
    },
    /// A stored registry could not be decoded (a newer Quiver wrote it, or it was edited by hand).
    #[error("stored registry version {version} cannot be read: {message}")]
    Corrupt {
        /// Registry version.
        version: i64,
        /// Why.
        message: String,
    },
    /// A model-registry request that cannot be done (unknown model, version or alias; deleting
    /// a version an alias names, ...). The message says what exists.
    #[error("{0}")]
    Model(String),
    /// `apply` without `allow_breaking` met a plan with breaking changes.
    #[error(
        "apply refused: {count} breaking change(s) (marked [BREAKING] in the plan); rerun with --allow-breaking to apply them (nothing was stored)"
    )]
    Breaking {
        /// How many changes are breaking.
        count: usize,
    },
}

/// Where a repository's metadata store is when neither `QUIVER__REGISTRY` nor quiver.yaml's
/// `registry:` names one (relative to the repository).
pub const DEFAULT_LOCATION: &str = ".quiver/registry.db";

/// A plan of the definitions against the stored registry (see [`SqlMetadataStore::plan`]).
#[derive(Debug, Clone)]
pub struct PlannedApply {
    /// The stored version the plan was made against (0: nothing applied yet).
    pub base_version: i64,
    /// What applying would change.
    pub plan: Plan,
}

/// One applied registry.
#[derive(Debug, Clone)]
pub struct AppliedRegistry {
    /// Registry version, 1 for the first apply.
    pub version: i64,
    /// When (RFC 3339, UTC).
    pub applied_at: String,
    /// The registry.
    pub registry: Registry,
}

/// One version of one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectVersion {
    /// Kind.
    pub kind: ObjectKind,
    /// Name.
    pub name: String,
    /// Object version, 1 for the first.
    pub version: i64,
    /// Content hash.
    pub hash: String,
    /// The registry version that introduced it.
    pub registry_version: i64,
    /// When.
    pub applied_at: String,
    /// Whether this version records the removal of the object.
    pub removed: bool,
}

/// A summary of one apply, for `quiver registry history`.
#[derive(Debug, Clone, Serialize)]
pub struct ApplySummary {
    /// Registry version.
    pub version: i64,
    /// When.
    pub applied_at: String,
    /// Added, changed, removed.
    pub counts: (i64, i64, i64),
}

/// The metadata store's operations.
pub trait MetadataStore {
    /// The latest applied registry, if any.
    fn current(&self) -> impl Future<Output = Result<Option<AppliedRegistry>>> + Send;
    /// Stores `registry` as the next version, given the `plan` made against `base_version`
    /// (`0` when the store was empty). Returns the new version, or the current one if the plan
    /// is empty.
    fn apply(
        &self,
        registry: &Registry,
        plan: &Plan,
        base_version: i64,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// Every version of one object, oldest first.
    fn history(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> impl Future<Output = Result<Vec<ObjectVersion>>> + Send;
    /// Every apply, oldest first.
    fn applies(&self) -> impl Future<Output = Result<Vec<ApplySummary>>> + Send;
}

/// The SQL metadata store (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlMetadataStore {
    pub(crate) pool: AnyPool,
    url: String,
    /// SQLite (not PostgreSQL): write transactions begin `IMMEDIATE` ([`Self::begin_write`]).
    sqlite: bool,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS quiver_registry_versions (
        version BIGINT PRIMARY KEY,
        applied_at TEXT NOT NULL,
        project TEXT NOT NULL,
        registry_json TEXT NOT NULL,
        added BIGINT NOT NULL,
        changed BIGINT NOT NULL,
        removed BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quiver_object_versions (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        hash TEXT NOT NULL,
        definition TEXT NOT NULL,
        registry_version BIGINT NOT NULL,
        removed BIGINT NOT NULL,
        PRIMARY KEY (kind, name, version))",
    "CREATE TABLE IF NOT EXISTS quiver_watermarks (
        view_name TEXT PRIMARY KEY,
        watermark_us BIGINT NOT NULL,
        updated_at TEXT NOT NULL)",
];

fn redact(url: &str) -> String {
    // postgresql://user:secret@host -> postgresql://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl SqlMetadataStore {
    /// Opens (and creates) the store. `location` is a `postgres://` / `postgresql://` URL, a
    /// `sqlite:` URL, or a file path for SQLite (relative paths are relative to `base`).
    pub async fn open(location: &str, base: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = if location.starts_with("postgres://")
            || location.starts_with("postgresql://")
            || location.starts_with("sqlite:")
        {
            location.to_string()
        } else {
            let path = base.join(location);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::Database {
                    url: path.display().to_string(),
                    source: sqlx::Error::Io(e),
                })?;
            }
            format!("sqlite://{}?mode=rwc", path.display())
        };
        let shown = if url.starts_with("sqlite://") && !location.starts_with("sqlite:") {
            base.join(location).display().to_string()
        } else {
            redact(&url)
        };
        let db = |source| Error::Database {
            url: shown.clone(),
            source,
        };
        let opts = AnyConnectOptions::from_str(&url).map_err(db)?;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(db)?;
        if url.starts_with("sqlite:") {
            // WAL lets readers (a server) work while a writer applies.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(db)?;
        }
        for stmt in SCHEMA
            .iter()
            .chain(models::MODEL_SCHEMA)
            .chain(jobs::JOB_SCHEMA)
            .chain(quality::QUALITY_SCHEMA)
            .chain(monitoring::MONITORING_SCHEMA)
            .chain(deployments::DEPLOYMENT_SCHEMA)
        {
            sqlx::query(stmt).execute(&pool).await.map_err(db)?;
        }
        models::migrate_model_schema(&pool).await.map_err(db)?;
        Ok(SqlMetadataStore {
            pool,
            url: shown,
            sqlite: url.starts_with("sqlite:"),
        })
    }

    /// The id of a run of `subject` checked at `checked_us`, stored in `table` (whose `column`
    /// names the subject): `SUBJECT@CHECKED_US#N`, N one more than the runs of the same subject
    /// stored in that microsecond, read in the storing transaction `tx`.
    pub(crate) async fn next_run_id(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        table: &str,
        column: &str,
        subject: &str,
        checked_us: i64,
    ) -> Result<String> {
        let taken: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} = $1 AND checked_us = $2"
        ))
        .bind(subject)
        .bind(checked_us)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| self.err(e))?
        .get(0);
        Ok(format!("{subject}@{checked_us}#{}", taken + 1))
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock first (`BEGIN
    /// IMMEDIATE`, waiting out the busy timeout): a deferred transaction that reads, then
    /// writes, fails at once with "database is locked" when another connection (a server beside
    /// the CLI) committed in between, because SQLite cannot upgrade a stale read snapshot.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let tx = if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
        };
        tx.map_err(|e| self.err(e))
    }

    pub(crate) fn err(&self, source: sqlx::Error) -> Error {
        Error::Database {
            url: self.url.clone(),
            source,
        }
    }

    /// Opens a repository's metadata store: `QUIVER__REGISTRY` when set, else `configured`
    /// (quiver.yaml's `registry:`), else [`DEFAULT_LOCATION`]; relative paths are relative to
    /// `repo`. What `quiver`, the server and the Python package all open.
    pub async fn open_repo(repo: &Path, configured: Option<&str>) -> Result<Self> {
        let location = std::env::var("QUIVER__REGISTRY")
            .ok()
            .or_else(|| configured.map(str::to_string))
            .unwrap_or_else(|| DEFAULT_LOCATION.to_string());
        Self::open(&location, repo).await
    }

    /// The plan of `defs` against the stored registry (`quiver plan`).
    pub async fn plan(&self, defs: &Registry) -> Result<PlannedApply> {
        let current = self.current().await?;
        Ok(PlannedApply {
            base_version: current.as_ref().map(|c| c.version).unwrap_or(0),
            plan: quiver_core::plan::plan(current.as_ref().map(|c| &c.registry), defs),
        })
    }

    /// Applies `defs` as `planned` (made by [`SqlMetadataStore::plan`]): refuses a plan with
    /// breaking changes unless `allow_breaking` ([`Error::Breaking`]) and a registry applied
    /// by someone else since the plan ([`Error::Conflict`]); returns the stored version.
    pub async fn apply_planned(
        &self,
        defs: &Registry,
        planned: &PlannedApply,
        allow_breaking: bool,
    ) -> Result<i64> {
        let count = planned.plan.breaking().count();
        if count > 0 && !allow_breaking {
            return Err(Error::Breaking { count });
        }
        self.apply(defs, &planned.plan, planned.base_version).await
    }

    /// The store's location, with any password removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every view's materialization watermark (microseconds since the epoch, UTC): the end of
    /// the last successful materialization.
    pub async fn watermarks(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT view_name, watermark_us FROM quiver_watermarks")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect())
    }

    /// Advances `view`'s watermark to `watermark_us` (never moves it back). Call only after the
    /// rows up to it are written.
    pub async fn advance_watermark(&self, view: &str, watermark_us: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let current: Option<i64> =
            sqlx::query("SELECT watermark_us FROM quiver_watermarks WHERE view_name = $1")
                .bind(view)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?
                .map(|r| r.get(0));
        match current {
            Some(c) if c >= watermark_us => {}
            Some(_) => {
                sqlx::query(
                    "UPDATE quiver_watermarks SET watermark_us = $1, updated_at = $2 WHERE view_name = $3",
                )
                .bind(watermark_us)
                .bind(now())
                .bind(view)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO quiver_watermarks (view_name, watermark_us, updated_at) VALUES ($1, $2, $3)",
                )
                .bind(view)
                .bind(watermark_us)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Forgets the watermarks of `views` (every view when empty), so that the next
    /// `materialize-incremental` starts from END minus the TTL again: for an online store that
    /// was emptied. Returns how many were removed.
    pub async fn clear_watermarks(&self, views: &[String]) -> Result<u64> {
        let mut removed = 0;
        if views.is_empty() {
            removed = sqlx::query("DELETE FROM quiver_watermarks")
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?
                .rows_affected();
        }
        for v in views {
            removed += sqlx::query("DELETE FROM quiver_watermarks WHERE view_name = $1")
                .bind(v)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?
                .rows_affected();
        }
        Ok(removed)
    }

    /// The newest applied registry version (0 when nothing is applied): one cheap query, for a
    /// server that polls for `apply`.
    pub async fn latest_version(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query("SELECT MAX(version) FROM quiver_registry_versions")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?
            .try_get(0)
            .ok()
            .flatten();
        Ok(v.unwrap_or(0))
    }

    /// The definitions stored for one object, oldest first: `(object version, definition as
    /// applied)`, `Null` for a version that records the object's removal. What the web UI
    /// shows and diffs.
    pub async fn object_definitions(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Vec<(i64, serde_json::Value)>> {
        let rows = sqlx::query(
            "SELECT version, definition FROM quiver_object_versions WHERE kind = $1 AND name = $2 ORDER BY version",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.get(0);
                let text: String = r.get(1);
                serde_json::from_str(&text)
                    .map(|d| (version, d))
                    .map_err(|e| Error::Corrupt {
                        version,
                        message: format!("{} {name} version {version}: {e}", kind.as_str()),
                    })
            })
            .collect()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl MetadataStore for SqlMetadataStore {
    async fn current(&self) -> Result<Option<AppliedRegistry>> {
        let row = sqlx::query(
            "SELECT version, applied_at, registry_json FROM quiver_registry_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.get(0);
        let json: String = row.get(2);
        let registry = Registry::from_json(&json).map_err(|e| Error::Corrupt {
            version,
            message: e.to_string(),
        })?;
        Ok(Some(AppliedRegistry {
            version,
            applied_at: row.get(1),
            registry,
        }))
    }

    async fn apply(&self, registry: &Registry, plan: &Plan, base_version: i64) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let current: i64 =
            sqlx::query("SELECT COALESCE(MAX(version), 0) FROM quiver_registry_versions")
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.err(e))?
                .get(0);
        if current != base_version {
            return Err(Error::Conflict {
                expected: base_version,
                current,
            });
        }
        if plan.is_empty() && current > 0 {
            return Ok(current);
        }
        let version = current + 1;
        let at = now();
        let (a, c, r) = plan.counts();
        sqlx::query(
            "INSERT INTO quiver_registry_versions (version, applied_at, project, registry_json, added, changed, removed)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(version)
        .bind(&at)
        .bind(&registry.project)
        .bind(registry.to_json())
        .bind(a as i64)
        .bind(c as i64)
        .bind(r as i64)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        for change in &plan.changes {
            let prev: i64 = sqlx::query(
                "SELECT COALESCE(MAX(version), 0) FROM quiver_object_versions WHERE kind = $1 AND name = $2",
            )
            .bind(change.kind.as_str())
            .bind(&change.name)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
            .get(0);
            let (hash, definition, removed) = match change.op {
                Op::Remove => (
                    change.old_hash.clone().unwrap_or_default(),
                    "null".to_string(),
                    1i64,
                ),
                _ => (
                    change.new_hash.clone().unwrap_or_default(),
                    registry
                        .object_json(change.kind, &change.name)
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "null".into()),
                    0,
                ),
            };
            sqlx::query(
                "INSERT INTO quiver_object_versions (kind, name, version, hash, definition, registry_version, removed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(change.kind.as_str())
            .bind(&change.name)
            .bind(prev + 1)
            .bind(hash)
            .bind(definition)
            .bind(version)
            .bind(removed)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(version)
    }

    async fn history(&self, kind: ObjectKind, name: &str) -> Result<Vec<ObjectVersion>> {
        let rows = sqlx::query(
            "SELECT o.version, o.hash, o.registry_version, r.applied_at, o.removed
             FROM quiver_object_versions o JOIN quiver_registry_versions r ON r.version = o.registry_version
             WHERE o.kind = $1 AND o.name = $2 ORDER BY o.version",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|row| ObjectVersion {
                kind,
                name: name.to_string(),
                version: row.get(0),
                hash: row.get(1),
                registry_version: row.get(2),
                applied_at: row.get(3),
                removed: row.get::<i64, _>(4) != 0,
            })
            .collect())
    }

    async fn applies(&self) -> Result<Vec<ApplySummary>> {
        let rows = sqlx::query(
            "SELECT version, applied_at, added, changed, removed FROM quiver_registry_versions ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|row| ApplySummary {
                version: row.get(0),
                applied_at: row.get(1),
                counts: (row.get(2), row.get(3), row.get(4)),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgresql://u:secret@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(redact("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
