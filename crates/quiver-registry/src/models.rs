//! The model registry: versions of named models, and aliases (`champion`, `challenger`, ...)
//! that point at one version each, with the alias history that `rollback` walks back. That
//! history is a stack: a promotion that moves an alias pushes, a rollback pops.
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
        action TEXT NOT NULL DEFAULT 'promote',
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
        /// Mixed into the hash of every entity key (see [`canary_point`]), so that two rollouts
        /// pick different entities. Chosen by [`SqlMetadataStore::set_rollout`] when a canary
        /// starts and kept while it runs, so raising the share only adds entities.
        #[serde(default)]
        salt: u64,
    },
}

impl Rollout {
    /// A canary of `share` whose salt [`SqlMetadataStore::set_rollout`] chooses.
    pub fn canary(share: f64) -> Rollout {
        Rollout::Canary { share, salt: 0 }
    }

    /// Whether the entity whose key parts are `key` goes to the challenger: only in a canary,
    /// for the entities whose [`canary_point`] is below the share.
    pub fn to_challenger<'a>(&self, key: impl IntoIterator<Item = &'a [u8]>) -> bool {
        match *self {
            Rollout::Canary { share, salt } => canary_point(salt, key) < share,
            _ => false,
        }
    }
}

/// An entity's position in [0, 1) for canary assignment: the first 8 bytes of
/// SHA-256(salt as 8 little-endian bytes, then for each key part its length as 8 little-endian
/// bytes and its bytes), as a big-endian integer scaled to [0, 1). A key part is the canonical
/// text of one join-key value (an integer in decimal, a string as itself).
///
/// SHA-256 mixes every input bit into every output bit, so consecutive ids land independently
/// and the share of entities below `s` is `s` up to sampling noise (tested on 100,000 sequential
/// ids). Until stop 20 this was FNV-1a of the JSON text, whose high bits barely move for short
/// keys that differ in their last byte: a 10% canary took 12.5% of the demo's users, in runs.
pub fn canary_point<'a>(salt: u64, key: impl IntoIterator<Item = &'a [u8]>) -> f64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(salt.to_le_bytes());
    for part in key {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let d = h.finalize();
    let x = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (x >> 11) as f64 / (1u64 << 53) as f64
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

/// What a row of an alias's history records (column `action` of `quiver_model_aliases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AliasAction {
    /// The alias was pointed at the row's version (pushed on the alias's stack).
    Promote,
    /// The alias was moved back to the row's version (the versions above it popped).
    Rollback,
}

impl AliasAction {
    fn as_str(self) -> &'static str {
        match self {
            AliasAction::Promote => "promote",
            AliasAction::Rollback => "rollback",
        }
    }

    /// Rows written before the column existed read as `promote` (its default).
    fn parse(s: &str) -> AliasAction {
        if s == "rollback" {
            AliasAction::Rollback
        } else {
            AliasAction::Promote
        }
    }
}

/// Replays an alias's history (oldest first) into its stack of versions, the current one last:
/// a promotion pushes its version, a rollback pops down to the version it restored.
fn alias_stack(history: &[(i64, AliasAction)]) -> Vec<i64> {
    let mut stack = Vec::new();
    for &(version, action) in history {
        if action == AliasAction::Rollback {
            while stack.last().is_some_and(|v| *v != version) {
                stack.pop();
            }
        }
        if stack.last() != Some(&version) {
            stack.push(version);
        }
    }
    stack
}

/// Brings a store created by an older Quiver up to [`MODEL_SCHEMA`]: adds the alias history's
/// `action` column (older rows read as promotions). Runs on open; SQLite has no
/// `ADD COLUMN IF NOT EXISTS`, so the column is probed first, and a concurrent open that added
/// it in between is not an error.
pub(crate) async fn migrate_model_schema(
    pool: &sqlx::AnyPool,
) -> std::result::Result<(), sqlx::Error> {
    const PROBE: &str = "SELECT action FROM quiver_model_aliases WHERE 1 = 0";
    if sqlx::query(PROBE).execute(pool).await.is_ok() {
        return Ok(());
    }
    if let Err(e) = sqlx::query(
        "ALTER TABLE quiver_model_aliases ADD COLUMN action TEXT NOT NULL DEFAULT 'promote'",
    )
    .execute(pool)
    .await
    {
        sqlx::query(PROBE).execute(pool).await.map_err(|_| e)?;
    }
    Ok(())
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
        let mut tx = self.begin_write().await?;
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

    /// Points `alias` at `version` (atomically) and returns the version it named before. When
    /// the alias names `version` already, nothing is written and `Some(version)` comes back:
    /// a promotion is pushed on the alias's history only when it moves the alias, so that
    /// [`rollback_model`](Self::rollback_model) undoes exactly the promotions that changed it.
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
        let mut tx = self.begin_write().await?;
        let last = sqlx::query(
            "SELECT seq, version FROM quiver_model_aliases WHERE name = $1 AND alias = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .map(|r| (r.get::<i64, _>(0), r.get::<i64, _>(1)));
        if last.is_some_and(|(_, v)| v == version) {
            return Ok(Some(version));
        }
        let seq = last.map_or(1, |(s, _)| s + 1);
        self.append_alias_row(&mut tx, name, alias, seq, version, AliasAction::Promote)
            .await?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(last.map(|(_, v)| v).filter(|v| *v > 0))
    }

    /// Moves `alias` back to the version it named before its current one was promoted, and
    /// returns (from, to). The history is a stack: promotions push, rollbacks pop, so after
    /// promoting 1, 2, 3 rollbacks go 3 -> 2 -> 1 and then refuse. Versions deleted since are
    /// skipped.
    pub async fn rollback_model(&self, name: &str, alias: &str) -> Result<(i64, i64)> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT seq, version, action FROM quiver_model_aliases WHERE name = $1 AND alias = $2 ORDER BY seq",
        )
        .bind(name)
        .bind(alias)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let history: Vec<(i64, AliasAction)> = rows
            .iter()
            .map(|r| (r.get(1), AliasAction::parse(&r.get::<String, _>(2))))
            .collect();
        let Some(last_seq) = rows.last().map(|r| r.get::<i64, _>(0)) else {
            return Err(Error::Model(format!(
                "model '{name}' has no alias '{alias}' to roll back"
            )));
        };
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
        let mut stack = alias_stack(&history);
        let current = stack.pop().unwrap_or(0);
        while stack.last().is_some_and(|v| !existing.contains(v)) {
            stack.pop();
        }
        let Some(&previous) = stack.last() else {
            return Err(Error::Model(format!(
                "alias '{alias}' of model '{name}' names version {current} and no earlier promotion is left to undo: nothing to roll back to (promote a version with `quiver models promote {name} VERSION --alias {alias}`)"
            )));
        };
        self.append_alias_row(
            &mut tx,
            name,
            alias,
            last_seq + 1,
            previous,
            AliasAction::Rollback,
        )
        .await?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok((current, previous))
    }

    /// Appends one row to an alias's history.
    async fn append_alias_row(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        name: &str,
        alias: &str,
        seq: i64,
        version: i64,
        action: AliasAction,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO quiver_model_aliases (name, alias, seq, version, changed_at, action) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(name)
        .bind(alias)
        .bind(seq)
        .bind(version)
        .bind(now())
        .bind(action.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
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
    /// Sets how `/predict` uses the challenger of `name`. A canary keeps the salt of the canary
    /// it replaces (so changing the share keeps the entities already in it, and adds or drops
    /// the fewest); a new canary gets a new salt. Returns the rollout as stored.
    pub async fn set_rollout(&self, name: &str, mut rollout: Rollout) -> Result<Rollout> {
        if let Rollout::Canary { share, .. } = rollout
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
        if let Rollout::Canary { salt, .. } = &mut rollout {
            *salt = match self.rollout(name).await? {
                Rollout::Canary { salt: kept, .. } if kept != 0 => kept,
                _ => new_salt(name),
            };
        }
        let mut tx = self.begin_write().await?;
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
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(rollout)
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

/// A fresh canary salt: a hash of the model name and the current time in nanoseconds (never 0,
/// which marks a canary stored before salts existed).
fn new_salt(name: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let d = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(nanos.to_le_bytes())
        .finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")).max(1)
}

/// The artifact store of a repository: `.quiver/artifacts` under its root.
pub fn artifact_root(repo: &std::path::Path) -> std::path::PathBuf {
    repo.join(".quiver/artifacts")
}

#[cfg(test)]
mod tests {
    use super::{Rollout, canary_point};

    /// The arm of each of the ids 1..=n under a canary of `share` with `salt`.
    fn arms(share: f64, salt: u64, n: u64) -> Vec<bool> {
        let r = Rollout::Canary { share, salt };
        (1..=n)
            .map(|id| r.to_challenger([id.to_string().as_bytes()]))
            .collect()
    }

    /// Wald-Wolfowitz runs test: the z-score of the number of runs in `xs` against what
    /// independent draws with the same counts give.
    fn runs_z(xs: &[bool]) -> f64 {
        let n1 = xs.iter().filter(|x| **x).count() as f64;
        let n2 = xs.len() as f64 - n1;
        let n = n1 + n2;
        let runs = 1 + xs.windows(2).filter(|w| w[0] != w[1]).count();
        let mu = 2.0 * n1 * n2 / n + 1.0;
        let var = (mu - 1.0) * (mu - 2.0) / (n - 1.0);
        (runs as f64 - mu) / var.sqrt()
    }

    #[test]
    fn a_canary_takes_the_share_asked_of_sequential_ids_independently() {
        for share in [0.01, 0.1, 0.25, 0.5, 0.9] {
            for salt in [1, 0x9e37_79b9_7f4a_7c15, u64::MAX] {
                let a = arms(share, salt, 100_000);
                let got = a.iter().filter(|x| **x).count() as f64 / a.len() as f64;
                assert!(
                    (got - share).abs() <= 0.01,
                    "share {share}, salt {salt}: {got}"
                );
                let z = runs_z(&a);
                assert!(
                    z.abs() < 4.0,
                    "share {share}, salt {salt}: neighbouring ids are not independent (runs z = {z:.2})"
                );
                // The longest run of consecutive ids in the challenger is what chance gives
                // (about log(n) / log(1/share)); the old FNV hash sent ids 1-79 there at 0.5.
                let longest = a.split(|x| !*x).map(<[bool]>::len).max().unwrap_or(0);
                let chance = (a.len() as f64).ln() / (1.0 / share).ln();
                assert!(
                    (longest as f64) < 2.0 * chance + 10.0,
                    "share {share}: a run of {longest} ids (chance: about {chance:.0})"
                );
            }
        }
    }

    #[test]
    fn two_salts_pick_different_entities_and_a_larger_share_keeps_the_smaller() {
        let (a, b) = (arms(0.1, 7, 100_000), arms(0.1, 8, 100_000));
        let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count() as f64 / 100_000.0;
        // Independent picks overlap in about share² = 1% of entities.
        assert!((both - 0.01).abs() < 0.003, "overlap {both}");
        let wider = arms(0.3, 7, 100_000);
        assert!(a.iter().zip(&wider).all(|(x, w)| !*x || *w));
        // Off and shadow send nobody to the challenger; the point is stable and in [0, 1).
        assert!(!Rollout::Shadow.to_challenger([b"1".as_slice()]));
        let p = canary_point(3, [b"42".as_slice(), b"x".as_slice()]);
        assert!((0.0..1.0).contains(&p));
        assert_eq!(p, canary_point(3, [b"42".as_slice(), b"x".as_slice()]));
        assert_ne!(
            p,
            canary_point(3, [b"42x".as_slice()]),
            "parts are delimited"
        );
    }
}
