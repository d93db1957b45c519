//! The model registry: versions of named models, and aliases (`champion`, `challenger`, ...)
//! that point at one version each, with the alias history that `rollback` walks back.
//!
//! A version's artifacts (the model file, its evaluation) live in the artifact store; the row
//! here names their directory, relative to the artifact root. Every write is one transaction.

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::Row;

use crate::{Error, Result, SqlMetadataStore, now};

pub(crate) const MODEL_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS quiver_model_versions (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        task TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        feature_service TEXT NOT NULL,
        service_hash TEXT NOT NULL,
        artifact TEXT NOT NULL,
        details TEXT NOT NULL,
        deleted BIGINT NOT NULL,
        PRIMARY KEY (name, version))",
    "CREATE TABLE IF NOT EXISTS quiver_model_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        seq BIGINT NOT NULL,
        version BIGINT NOT NULL,
        changed_at TEXT NOT NULL,
        PRIMARY KEY (name, alias, seq))",
    "CREATE TABLE IF NOT EXISTS quiver_model_rollouts (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        changed_at TEXT NOT NULL)",
];

/// How `/predict` uses a model's `challenger` next to its `champion`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Rollout {
    /// Only the champion is scored.
    Off,
    /// The challenger is scored too and compared, but only the champion's score is returned.
    Shadow,
    /// A stable `share` of entities (by a hash of the entity key) get the challenger's score.
    Canary {
        /// 0.0 to 1.0.
        share: f64,
    },
}

/// A version to register.
#[derive(Debug, Clone, Serialize)]
pub struct NewModelVersion {
    /// Model name.
    pub name: String,
    /// `binary`, `multiclass` or `regression`.
    pub task: String,
    /// `gbdt`, `logistic`, `lightgbm` (imported), ...
    pub algorithm: String,
    /// The feature service it reads.
    pub feature_service: String,
    /// That service's content hash when the model was trained.
    pub service_hash: String,
    /// The artifact directory, relative to the artifact root.
    pub artifact: String,
    /// Params, metrics, training-set range and rows, label definition, git commit, ...
    pub details: Json,
}

/// A registered version.
#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    /// Model name.
    pub name: String,
    /// 1, 2, ...
    pub version: i64,
    /// When it was registered (RFC 3339, UTC).
    pub created_at: String,
    /// `binary`, `multiclass` or `regression`.
    pub task: String,
    /// How it was made.
    pub algorithm: String,
    /// The feature service it reads.
    pub feature_service: String,
    /// That service's content hash at training time.
    pub service_hash: String,
    /// Artifact directory, relative to the artifact root.
    pub artifact: String,
    /// Params, metrics, lineage.
    pub details: Json,
    /// Aliases that name this version now.
    pub aliases: Vec<String>,
}

/// Valid model and alias names: letters, digits, `_`, `-`, `.`, starting with a letter.
pub fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl SqlMetadataStore {
    /// Registers the next version of `new.name` and returns its number.
    pub async fn register_model(&self, new: &NewModelVersion) -> Result<i64> {
        if !valid_name(&new.name) {
            return Err(Error::Model(format!(
                "'{}' is not a valid model name: use letters, digits, _ - . and start with a letter",
                new.name
            )));
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let last: Option<i64> =
            sqlx::query("SELECT MAX(version) FROM quiver_model_versions WHERE name = $1")
                .bind(&new.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.err(e))?
                .try_get(0)
                .ok();
        let version = last.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO quiver_model_versions (name, version, created_at, task, algorithm, feature_service, service_hash, artifact, details, deleted)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
        )
        .bind(&new.name)
        .bind(version)
        .bind(now())
        .bind(&new.task)
        .bind(&new.algorithm)
        .bind(&new.feature_service)
        .bind(&new.service_hash)
        .bind(&new.artifact)
        .bind(new.details.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(version)
    }

    async fn current_aliases(&self, name: Option<&str>) -> Result<Vec<(String, String, i64)>> {
        // The current target of an alias is its row with the highest seq.
        let sql = "SELECT a.name, a.alias, a.version FROM quiver_model_aliases a
             WHERE a.seq = (SELECT MAX(b.seq) FROM quiver_model_aliases b WHERE b.name = a.name AND b.alias = a.alias)
               AND ($1 = '' OR a.name = $1)
             ORDER BY a.name, a.alias";
        let rows = sqlx::query(sql)
            .bind(name.unwrap_or(""))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .filter(|(_, _, v): &(String, String, i64)| *v > 0)
            .collect())
    }

    /// Every version of every model (or of one), by name then version.
    pub async fn model_versions(&self, name: Option<&str>) -> Result<Vec<ModelVersion>> {
        let rows = sqlx::query(
            "SELECT name, version, created_at, task, algorithm, feature_service, service_hash, artifact, details
             FROM quiver_model_versions WHERE ($1 = '' OR name = $1) AND deleted = 0 ORDER BY name, version",
        )
        .bind(name.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let aliases = self.current_aliases(name).await?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let version: i64 = r.get(1);
                let details: String = r.get(8);
                Ok(ModelVersion {
                    aliases: aliases
                        .iter()
                        .filter(|(n, _, v)| *n == name && *v == version)
                        .map(|(_, a, _)| a.clone())
                        .collect(),
                    created_at: r.get(2),
                    task: r.get(3),
                    algorithm: r.get(4),
                    feature_service: r.get(5),
                    service_hash: r.get(6),
                    artifact: r.get(7),
                    details: serde_json::from_str(&details).map_err(|e| {
                        Error::Model(format!(
                            "model {name} version {version}: details unreadable: {e}"
                        ))
                    })?,
                    name,
                    version,
                })
            })
            .collect()
    }

    /// One version; an error naming the versions that exist when it does not.
    pub async fn model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let all = self.model_versions(Some(name)).await?;
        if all.is_empty() {
            return Err(Error::Model(format!("no model named '{name}'")));
        }
        let known = all
            .iter()
            .map(|v| v.version.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        all.into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| {
                Error::Model(format!(
                    "model '{name}' has no version {version} (versions: {known})"
                ))
            })
    }

    /// The version an alias names now.
    pub async fn model_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let aliases = self.current_aliases(Some(name)).await?;
        match aliases.iter().find(|(_, a, _)| a == alias) {
            Some((_, _, v)) => self.model_version(name, *v).await,
            None => {
                let all = self.model_versions(Some(name)).await?;
                if all.is_empty() {
                    return Err(Error::Model(format!("no model named '{name}'")));
                }
                let names: Vec<_> = aliases.iter().map(|(_, a, _)| a.as_str()).collect();
                Err(Error::Model(format!(
                    "model '{name}' has no alias '{alias}' (aliases: {}); promote a version with `quiver models promote {name} VERSION --alias {alias}`",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )))
            }
        }
    }

    /// Points `alias` at `version` (atomically) and returns the version it named before.
    pub async fn promote_model(
        &self,
        name: &str,
        version: i64,
        alias: &str,
    ) -> Result<Option<i64>> {
        if !valid_name(alias) || alias.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Model(format!(
                "'{alias}' is not a valid alias: use letters, digits, _ - . and start with a letter"
            )));
        }
        self.model_version(name, version).await?;
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let last = sqlx::query(
            "SELECT seq, version FROM quiver_model_aliases WHERE name = $1 AND alias = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .map(|r| (r.get::<i64, _>(0), r.get::<i64, _>(1)));
        let seq = last.map_or(1, |(s, _)| s + 1);
        sqlx::query(
            "INSERT INTO quiver_model_aliases (name, alias, seq, version, changed_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(alias)
        .bind(seq)
        .bind(version)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(last.map(|(_, v)| v).filter(|v| *v > 0))
    }

    /// Moves `alias` back to the version it named before its current one; returns (from, to).
    pub async fn rollback_model(&self, name: &str, alias: &str) -> Result<(i64, i64)> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let rows = sqlx::query(
            "SELECT seq, version FROM quiver_model_aliases WHERE name = $1 AND alias = $2 ORDER BY seq DESC",
        )
        .bind(name)
        .bind(alias)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let history: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let Some(&(seq, current)) = history.first() else {
            return Err(Error::Model(format!(
                "model '{name}' has no alias '{alias}' to roll back"
            )));
        };
        // The previous target is the latest earlier entry naming another, still existing version.
        let existing: Vec<i64> = sqlx::query(
            "SELECT version FROM quiver_model_versions WHERE name = $1 AND deleted = 0",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
        // Walk back past the entries that earlier rollbacks already undid: a rollback appends the
        // restored version, so the history reads newest first; skip versions equal to current.
        let previous = history
            .iter()
            .skip(1)
            .map(|(_, v)| *v)
            .find(|v| *v != current && *v > 0 && existing.contains(v));
        let Some(previous) = previous else {
            return Err(Error::Model(format!(
                "alias '{alias}' of model '{name}' has named only version {current}: nothing to roll back to"
            )));
        };
        sqlx::query(
            "INSERT INTO quiver_model_aliases (name, alias, seq, version, changed_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(alias)
        .bind(seq + 1)
        .bind(previous)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok((current, previous))
    }

    /// Deletes a version (its number is never reused); refused while an alias names it. Returns
    /// its artifact directory.
    pub async fn delete_model_version(&self, name: &str, version: i64) -> Result<String> {
        let v = self.model_version(name, version).await?;
        if !v.aliases.is_empty() {
            return Err(Error::Model(format!(
                "model '{name}' version {version} is named by alias {}: promote another version first",
                v.aliases.join(", ")
            )));
        }
        // A tombstone, so that a version number is never given out twice.
        sqlx::query(
            "UPDATE quiver_model_versions SET deleted = 1 WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(v.artifact)
    }
}

impl SqlMetadataStore {
    /// Sets how `/predict` uses the challenger of `name`.
    pub async fn set_rollout(&self, name: &str, rollout: Rollout) -> Result<()> {
        if let Rollout::Canary { share } = rollout
            && !(0.0..=1.0).contains(&share)
        {
            return Err(Error::Model(format!(
                "canary share {share} is not between 0 and 1"
            )));
        }
        if rollout != Rollout::Off {
            self.model_by_alias(name, "challenger").await.map_err(|e| {
                Error::Model(format!(
                    "{e}: a shadow or canary rollout needs a challenger"
                ))
            })?;
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        sqlx::query("DELETE FROM quiver_model_rollouts WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query(
            "INSERT INTO quiver_model_rollouts (name, config, changed_at) VALUES ($1, $2, $3)",
        )
        .bind(name)
        .bind(serde_json::to_string(&rollout).expect("serializes"))
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The rollout of `name` (`Off` unless set).
    pub async fn rollout(&self, name: &str) -> Result<Rollout> {
        let row = sqlx::query("SELECT config FROM quiver_model_rollouts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        match row {
            None => Ok(Rollout::Off),
            Some(r) => serde_json::from_str(&r.get::<String, _>(0))
                .map_err(|e| Error::Model(format!("rollout of {name} unreadable: {e}"))),
        }
    }
}

/// The artifact store of a repository: `.quiver/artifacts` under its root.
pub fn artifact_root(repo: &std::path::Path) -> std::path::PathBuf {
    repo.join(".quiver/artifacts")
}
