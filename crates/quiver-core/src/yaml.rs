//! The YAML schema, as read from files, before validation. Names and references keep their
//! source location so that validation errors can point at them.
//!
//! Unknown keys are rejected everywhere (`deny_unknown_fields`), so a typo such as `ttll:`
//! fails with the file, line and column of the key.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A scalar with its location.
pub type S<T> = Spanned<T>;

/// One definition file: `quiver.yaml` or a file under `features/`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    /// The project name (only in `quiver.yaml`).
    pub project: Option<S<String>>,
    /// A description of the project (only in `quiver.yaml`).
    pub description: Option<String>,
    /// The metadata store: a SQLite path or a `postgresql://` URL (only in `quiver.yaml`).
    pub registry: Option<S<String>>,
    /// The online store (only in `quiver.yaml`); the embedded store when absent.
    pub online_store: Option<S<RawOnlineStore>>,
    /// Feature-server settings (only in `quiver.yaml`).
    pub server: Option<S<RawServer>>,
    /// Experiment tracking (only in `quiver.yaml`).
    pub tracking: Option<S<RawTracking>>,
    /// Where alerts go (only in `quiver.yaml`).
    pub alerts: Option<S<RawAlerts>>,
    /// Where model and recommender versions' files are kept besides `.quiver/artifacts`: an
    /// `s3://bucket/prefix` URL (only in `quiver.yaml`).
    pub artifacts: Option<S<String>>,
    /// Where offline snapshots are written and read: a folder (relative to the repository;
    /// default `.quiver/offline`) or an `s3://bucket/prefix` URL (only in `quiver.yaml`).
    pub offline_store: Option<S<String>>,
    /// How `s3://` URLs are reached: the endpoint of an S3-compatible store and the region
    /// (only in `quiver.yaml`).
    pub storage: Option<S<RawStorage>>,
    /// Where point-in-time joins run: the embedded engine (default) or a Ballista cluster
    /// (only in `quiver.yaml`).
    pub offline_engine: Option<S<RawOfflineEngine>>,
    /// Entities.
    #[serde(default)]
    pub entities: Vec<RawEntity>,
    /// Data sources.
    #[serde(default)]
    pub sources: Vec<RawSource>,
    /// Feature views.
    #[serde(default)]
    pub feature_views: Vec<RawFeatureView>,
    /// Feature services.
    #[serde(default)]
    pub feature_services: Vec<RawFeatureService>,
    /// Scheduled jobs.
    #[serde(default)]
    pub jobs: Vec<crate::job::RawJob>,
    /// Recommenders.
    #[serde(default)]
    pub recommenders: Vec<crate::recommender::RawRecommender>,
    /// Data-quality check sets.
    #[serde(default)]
    pub quality: Vec<crate::quality::RawQuality>,
    /// A/B experiments over recommenders.
    #[serde(default)]
    pub experiments: Vec<crate::experiment::RawExperiment>,
}

/// `offline_engine:` in `quiver.yaml`.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawOfflineEngine {
    /// `embedded` (default) or `ballista`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The Ballista scheduler, `df://HOST:50050` (`ballista` only).
    pub url: Option<String>,
    /// Hash partitions of the join keys a join is shuffled into (default 8): the tasks of its
    /// join stage.
    pub partitions: Option<usize>,
}

/// `storage:` in `quiver.yaml`: how object-storage URLs (`s3://bucket/key`) are reached.
/// Credentials always come from the environment (`AWS_ACCESS_KEY_ID`, ...), never from a file.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// The S3 API endpoint of an S3-compatible store (MinIO, Ceph, moto), e.g.
    /// `http://10.0.0.5:9000` (`http://` is allowed). Default: `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// The region (default: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
}

/// `online_store:` in `quiver.yaml`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawOnlineStore {
    /// `embedded` (default), `redis` or `redis_cluster`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Embedded store file, relative to the repository (default `.quiver/online`).
    pub path: Option<String>,
    /// Redis URL, e.g. `redis://127.0.0.1:6379` (`redis` only).
    pub url: Option<String>,
    /// Some nodes of a Redis Cluster, e.g. `[redis://10.0.0.1:7000, redis://10.0.0.2:7000]`
    /// (`redis_cluster` only): the client learns the rest of the cluster from them.
    pub nodes: Option<Vec<String>>,
    /// How many replicas of each master must hold a write before it is acknowledged (Redis
    /// `WAIT`), so that a master's failover loses nothing acknowledged (`redis_cluster` only;
    /// default 0: acknowledged once the master has it).
    pub replica_acks: Option<u32>,
    /// How long Redis keeps a value past its view's TTL, so that reads can still report it as
    /// expired (`OUTSIDE_MAX_AGE`) rather than missing; a duration such as `1d` (default: one TTL).
    pub expiry_grace: Option<String>,
    /// How long a read or write may wait for the store before failing, e.g. `500ms`... in
    /// milliseconds (default 1000).
    pub timeout_ms: Option<u64>,
}

/// `tracking:` in `quiver.yaml`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTracking {
    /// An MLflow tracking server, e.g. `http://127.0.0.1:5000`: training runs are logged there
    /// and model versions registered there with the same aliases.
    pub mlflow: Option<String>,
    /// The MLflow experiment runs go to (default: the project name).
    pub experiment: Option<String>,
}

/// `alerts:` in `quiver.yaml`: where failed jobs, failed checks and drift are reported. Either
/// one rule (`alerts: {webhook: URL}`: every event, every time) or a list of rules
/// (`alerts: [{webhook: URL, on: [check_failed, drift, job_failed], repeat_interval: 1h}]`).
#[derive(Debug, Default, Clone)]
pub struct RawAlerts {
    /// The rules, in order.
    pub rules: Vec<RawAlertRule>,
}

/// One alert rule: where to post, which events, and how long the same alert stays quiet.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAlertRule {
    /// A URL that receives each alert as a JSON `POST` (Slack-compatible `text` field
    /// included); `${VAR}` reads the environment.
    pub webhook: Option<String>,
    /// The events posted here (`check_failed`, `drift`, `job_failed`, ...; default: every
    /// event).
    pub on: Option<Vec<String>>,
    /// The same alert is not posted again within this long, e.g. `1h` (default: `0s`, every
    /// time).
    pub repeat_interval: Option<String>,
}

impl<'de> Deserialize<'de> for RawAlerts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum: untagged buffering reads the key `on` as the
        // YAML 1.1 boolean, which then matches no field.
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = RawAlerts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "`{webhook: URL}` or a list of `{webhook: URL, on: [check_failed, drift, job_failed], repeat_interval: 1h}`",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawAlerts, A::Error> {
                let rule =
                    RawAlertRule::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawAlerts { rules: vec![rule] })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawAlerts, A::Error> {
                let mut rules = Vec::new();
                while let Some(rule) = seq.next_element::<RawAlertRule>()? {
                    rules.push(rule);
                }
                Ok(RawAlerts { rules })
            }
        }
        d.deserialize_any(Shape)
    }
}

/// A view's `offline:`: daily snapshots of its values in the offline store (written by a
/// `snapshot` job or `quiver snapshot` / `backfill`), kept for `retain`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawOfflineSnapshots {
    /// `daily` (the only cadence so far).
    pub snapshots: S<String>,
    /// How long snapshots are kept, e.g. `90d` (default: forever).
    pub retain: Option<S<String>>,
}

/// `server:` in `quiver.yaml`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Largest accepted request body in bytes (default 1 MiB); larger bodies get 413.
    pub max_body_bytes: Option<usize>,
    /// Most entity rows accepted in one request (default 10,000); more get 400.
    pub max_entities: Option<usize>,
    /// The environment variable holding the bearer token (default `QUIVER_SERVER_TOKEN`).
    pub token_env: Option<String>,
    /// The bearer token itself (prefer `token_env`: a token in a file ends up in git).
    pub token: Option<String>,
    /// Require the token on read endpoints too (default false: only writes and admin calls).
    pub protect_reads: Option<bool>,
    /// The /predict log (default: every request, under `.quiver/prediction_log`).
    pub prediction_log: Option<RawPredictionLog>,
}

/// `server: {prediction_log: ...}` in `quiver.yaml`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPredictionLog {
    /// Share of /predict requests logged, 0 to 1 (default 1; 0 turns the log off).
    pub sample_rate: Option<f64>,
    /// Folder of the Parquet files, relative to the repository (default `.quiver/prediction_log`).
    pub path: Option<String>,
    /// Most rows per file (default 100,000).
    pub flush_rows: Option<usize>,
    /// Longest a logged row waits in memory before it is written, in milliseconds (default 10,000).
    pub flush_interval_ms: Option<u64>,
}

/// `entities:` item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntity {
    /// Name.
    pub name: S<String>,
    /// Join key columns (several make a composite key).
    pub join_keys: Vec<S<String>>,
    /// Type of every join key (default int64).
    pub value_type: Option<S<String>>,
    /// One type per join key, for composite keys of mixed types.
    pub value_types: Option<Vec<S<String>>>,
    /// Free text.
    pub description: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `sources:` item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Name.
    pub name: S<String>,
    /// `parquet`, `csv` or `postgres`.
    #[serde(rename = "type")]
    pub kind: S<String>,
    /// File, directory or glob (parquet, csv), relative to the repository.
    pub path: Option<S<String>>,
    /// CSV field delimiter (default `,`).
    pub delimiter: Option<S<String>>,
    /// PostgreSQL URL (postgres); `$NAME` reads an environment variable.
    pub connection: Option<S<String>>,
    /// Table (postgres).
    pub table: Option<S<String>>,
    /// Query (postgres), instead of a table.
    pub query: Option<S<String>>,
    /// Event timestamp column.
    pub timestamp_field: S<String>,
    /// Creation timestamp column, used to break ties between equal event timestamps.
    pub created_timestamp_field: Option<S<String>>,
    /// Free text.
    pub description: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `feature_views:` item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeatureView {
    /// Name.
    pub name: S<String>,
    /// Entities whose join keys key the view (none for a request-time view).
    #[serde(default)]
    pub entities: Vec<S<String>>,
    /// The source it reads (absent for a request-time view).
    pub source: Option<S<String>>,
    /// Fields the caller sends with each request: makes this a request-time view, whose
    /// features are SQL expressions over these fields and the `inputs` views' features.
    pub request_data: Option<Vec<RawRequestField>>,
    /// Views whose features a request-time view's expressions read, as `view__feature`.
    pub inputs: Option<Vec<S<String>>>,
    /// Maximum age of a value (`30d`); absent or `0` means unbounded.
    pub ttl: Option<S<String>>,
    /// Features read from source columns or derived by SQL expressions.
    #[serde(default)]
    pub features: Vec<RawFeature>,
    /// Windowed aggregations over the source's events.
    #[serde(default)]
    pub aggregations: Vec<RawAggregation>,
    /// Whether the view is materialized online (default true).
    pub online: Option<bool>,
    /// Snapshots in the offline store: `{snapshots: daily, retain: 90d}`.
    pub offline: Option<S<RawOfflineSnapshots>>,
    /// Free text.
    pub description: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `request_data:` item of a request-time view.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequestField {
    /// Name.
    pub name: S<String>,
    /// Value type.
    #[serde(rename = "type")]
    pub ty: S<String>,
}

/// `features:` item of a view.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeature {
    /// Name.
    pub name: S<String>,
    /// Value type.
    #[serde(rename = "type")]
    pub ty: S<String>,
    /// Source column, when it differs from the name.
    pub column: Option<S<String>>,
    /// SQL expression over source columns (e.g. `log1p(amount)`).
    pub expr: Option<S<String>>,
    /// Free text.
    pub description: Option<String>,
    /// `{stattest: psi, threshold: 0.2}`: how `quiver drift` tests it.
    pub drift: Option<S<crate::registry::DriftSettings>>,
}

/// `aggregations:` item of a view.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregation {
    /// Name.
    pub name: S<String>,
    /// count, sum, mean, min, max, stddev, count_distinct, last, time_since_last, decayed_sum,
    /// decayed_share.
    pub function: S<String>,
    /// The column aggregated.
    pub column: Option<S<String>>,
    /// A SQL expression aggregated instead of a column.
    pub expr: Option<S<String>>,
    /// The window: events in (t - window, t].
    pub window: S<String>,
    /// A SQL predicate selecting the events.
    pub filter: Option<S<String>>,
    /// Output type (defaults depend on the function).
    #[serde(rename = "type")]
    pub ty: Option<S<String>>,
    /// Unit of `time_since_last` (default `1d`: days).
    pub unit: Option<S<String>>,
    /// Half-life of an event's weight (`decayed_sum`, `decayed_share`).
    pub half_life: Option<S<String>>,
    /// The categories of `decayed_share`, in the order of its output vector.
    pub categories: Option<S<Vec<S<String>>>>,
    /// Free text.
    pub description: Option<String>,
    /// `{stattest: psi, threshold: 0.2}`: how `quiver drift` tests it.
    pub drift: Option<S<crate::registry::DriftSettings>>,
}

/// `feature_services:` item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeatureService {
    /// Name.
    pub name: S<String>,
    /// `view:feature` or `view:*` references.
    pub features: Vec<S<String>>,
    /// Free text.
    pub description: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}
