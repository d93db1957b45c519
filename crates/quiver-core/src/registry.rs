//! The validated registry: an immutable snapshot of every definition, with content hashes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::duration::Duration;
use crate::error::{Error, Located, Result};
use crate::value_type::ValueType;
use crate::yaml::{
    DefinitionFile, RawAggregation, RawEntity, RawFeature, RawFeatureService, RawFeatureView,
    RawSource, S,
};

/// A join key column of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinKey {
    /// Column name.
    pub name: String,
    /// Its type.
    pub value_type: ValueType,
}

/// Something features are about (a user, a product), identified by its join keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Name.
    pub name: String,
    /// Join key columns.
    pub join_keys: Vec<JoinKey>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Where it was defined (not part of the content).
    #[serde(skip)]
    pub at: Located,
}

/// Where a source's rows live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceKind {
    /// Parquet file, directory or glob.
    Parquet {
        /// Path relative to the repository, or absolute.
        path: String,
    },
    /// CSV file, directory or glob, with a header row.
    Csv {
        /// Path relative to the repository, or absolute.
        path: String,
        /// Field delimiter.
        delimiter: char,
    },
    /// A PostgreSQL table or query.
    Postgres {
        /// Connection URL; `$NAME` reads an environment variable.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
        /// Table.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<String>,
        /// Query.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    },
}

impl SourceKind {
    /// `parquet`, `csv` or `postgres`.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::Parquet { .. } => "parquet",
            SourceKind::Csv { .. } => "csv",
            SourceKind::Postgres { .. } => "postgres",
        }
    }

    /// A short human description: the path, table or query.
    pub fn location(&self) -> String {
        match self {
            SourceKind::Parquet { path } | SourceKind::Csv { path, .. } => path.clone(),
            SourceKind::Postgres { table: Some(t), .. } => format!("table {t}"),
            SourceKind::Postgres { query, .. } => {
                format!("query {}", query.as_deref().unwrap_or(""))
            }
        }
    }
}

/// A table of timestamped rows that feature views read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Name.
    pub name: String,
    /// Kind and location.
    #[serde(flatten)]
    pub kind: SourceKind,
    /// Event timestamp column.
    pub timestamp_field: String,
    /// Creation timestamp column (tie-break).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Where it was defined.
    #[serde(skip)]
    pub at: Located,
}

/// A feature read from a source column or derived by a SQL expression over the source's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Source column when it differs from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// SQL expression over source columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How `quiver drift` tests this feature, instead of its default choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSettings>,
}

/// `drift: {stattest: psi, threshold: 0.2}` on a feature or an aggregation: the test and the
/// threshold `quiver drift` uses for it (a `--stattest` or `--threshold` flag still wins). The
/// test's name is checked by `apply` against the tests `quiver-monitor` knows. Not part of the
/// view's content hash: it changes no value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DriftSettings {
    /// ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div or hellinger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stattest: Option<String>,
    /// The threshold of the test (a p-value for tests, a distance otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

// Thresholds are checked finite when loaded, so equality is an equivalence.
impl Eq for DriftSettings {}

impl Feature {
    /// The source column read, when the feature is not an expression.
    pub fn source_column(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.name)
    }
}

/// An aggregation function over a window of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunction {
    /// Number of events (with a column: of non-null values).
    Count,
    /// Sum of values.
    Sum,
    /// Mean of values.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sample standard deviation (n - 1).
    Stddev,
    /// Number of distinct non-null values.
    CountDistinct,
    /// Value of the latest event.
    Last,
    /// Time since the latest event, in the aggregation's unit.
    TimeSinceLast,
    /// Sum of values, each weighted by `2^(-age / half_life)` (age = t - the event's time).
    DecayedSum,
    /// Each declared category's share of the time-decayed event weights (weights
    /// `2^(-age / half_life)`): a vector over `categories`, in their order.
    DecayedShare,
}

impl AggFunction {
    const NAMES: [(&'static str, AggFunction); 11] = [
        ("count", AggFunction::Count),
        ("sum", AggFunction::Sum),
        ("mean", AggFunction::Mean),
        ("min", AggFunction::Min),
        ("max", AggFunction::Max),
        ("stddev", AggFunction::Stddev),
        ("count_distinct", AggFunction::CountDistinct),
        ("last", AggFunction::Last),
        ("time_since_last", AggFunction::TimeSinceLast),
        ("decayed_sum", AggFunction::DecayedSum),
        ("decayed_share", AggFunction::DecayedShare),
    ];

    /// Parses the YAML spelling (`avg` is accepted for `mean`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        let s = if s == "avg" { "mean".to_string() } else { s };
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let all: Vec<_> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                format!("unknown function '{s}': use one of {}", all.join(", "))
            })
    }

    /// The YAML spelling (`count_distinct`, `time_since_last`, ...).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .expect("every function has a name")
    }

    /// Whether the function needs a value column or expression.
    pub fn needs_value(self) -> bool {
        !matches!(self, AggFunction::Count | AggFunction::TimeSinceLast)
    }

    /// Whether the function weighs events by age and so needs a `half_life`.
    pub fn is_decayed(self) -> bool {
        matches!(self, AggFunction::DecayedSum | AggFunction::DecayedShare)
    }

    /// The output type when none is declared.
    pub fn default_type(self) -> ValueType {
        match self {
            AggFunction::Count | AggFunction::CountDistinct => ValueType::Int64,
            AggFunction::DecayedShare => ValueType::Float64List,
            _ => ValueType::Float64,
        }
    }
}

/// A windowed aggregation over a raw event source, computed as of each entity timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregation {
    /// Output feature name.
    pub name: String,
    /// Function.
    pub function: AggFunction,
    /// Column aggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Expression aggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Window length: events with timestamp in (t - window, t].
    pub window: Duration,
    /// Event filter (SQL predicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Output type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Unit of `time_since_last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Duration>,
    /// Half-life of an event's weight (`decayed_sum`, `decayed_share`; longer than 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life: Option<Duration>,
    /// The categories of `decayed_share`, in the order of the output vector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How `quiver drift` tests this feature, instead of its default choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSettings>,
}

/// A group of features over the same entities and source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    /// Name.
    pub name: String,
    /// Entities (their join keys, in order, key the view).
    pub entities: Vec<String>,
    /// Source name.
    pub source: String,
    /// Max age of a value; zero is unbounded.
    pub ttl: Duration,
    /// Plain and derived features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Windowed aggregations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<Aggregation>,
    /// Materialized online.
    pub online: bool,
    /// Daily snapshots in the offline store and how long they are kept (not part of the view's
    /// content hash: retention changes no value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineSnapshots>,
    /// For a request-time view: the request fields and input views its expressions read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Where it was defined.
    #[serde(skip)]
    pub at: Located,
}

/// A view's snapshot settings (`offline: {snapshots: daily, retain: 90d}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineSnapshots {
    /// Snapshots are taken daily.
    pub daily: bool,
    /// Kept this long (`None`: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<Duration>,
}

/// What a request-time view computes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// Fields sent with each request, in declaration order.
    pub fields: Vec<RequestField>,
    /// Views whose features the expressions read (as `view__feature`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
}

/// A request field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestField {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
}

impl FeatureView {
    /// Whether the view is computed at request time (from request data and other views).
    pub fn is_request(&self) -> bool {
        self.request.is_some()
    }

    /// Whether the view is made of windowed aggregations.
    pub fn is_aggregation(&self) -> bool {
        !self.aggregations.is_empty()
    }

    /// Every output feature, `(name, type)`, in declaration order.
    pub fn outputs(&self) -> Vec<(&str, ValueType)> {
        self.features
            .iter()
            .map(|f| (f.name.as_str(), f.value_type))
            .chain(
                self.aggregations
                    .iter()
                    .map(|a| (a.name.as_str(), a.value_type)),
            )
            .collect()
    }

    /// The type of one output feature.
    pub fn output_type(&self, feature: &str) -> Option<ValueType> {
        self.outputs()
            .into_iter()
            .find(|(n, _)| *n == feature)
            .map(|(_, t)| t)
    }
}

/// A reference to one feature of one view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeatureRef {
    /// View name.
    pub view: String,
    /// Feature name.
    pub feature: String,
}

impl FeatureRef {
    /// `view__feature`, the column name with full feature names.
    pub fn full_name(&self) -> String {
        format!("{}__{}", self.view, self.feature)
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.view, self.feature)
    }
}

/// A named, versioned set of features that a model consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureService {
    /// Name.
    pub name: String,
    /// References as written (`view:feature`, `view:*`).
    pub patterns: Vec<String>,
    /// The resolved features, in order, without duplicates.
    pub features: Vec<FeatureRef>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Where it was defined.
    #[serde(skip)]
    pub at: Located,
}

/// The validated snapshot of all definitions of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Project name.
    pub project: String,
    /// Project description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Entities by name.
    pub entities: BTreeMap<String, Entity>,
    /// Sources by name.
    pub sources: BTreeMap<String, Source>,
    /// Feature views by name.
    pub views: BTreeMap<String, FeatureView>,
    /// Feature services by name.
    pub services: BTreeMap<String, FeatureService>,
    /// Scheduled jobs by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jobs: BTreeMap<String, crate::job::Job>,
    /// Recommenders by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recommenders: BTreeMap<String, crate::recommender::Recommender>,
    /// Data-quality check sets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quality: BTreeMap<String, crate::quality::QualitySet>,
    /// A/B experiments over recommenders by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub experiments: BTreeMap<String, crate::experiment::Experiment>,
}

/// The kinds of registry objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Entity.
    Entity,
    /// Source.
    Source,
    /// Feature view.
    FeatureView,
    /// Feature service.
    FeatureService,
    /// Scheduled job.
    Job,
    /// Recommender.
    Recommender,
    /// Data-quality check set.
    Quality,
    /// A/B experiment over a recommender.
    Experiment,
}

impl ObjectKind {
    /// Every kind in dependency order.
    pub const ALL: [ObjectKind; 8] = [
        ObjectKind::Entity,
        ObjectKind::Source,
        ObjectKind::FeatureView,
        ObjectKind::FeatureService,
        ObjectKind::Job,
        ObjectKind::Recommender,
        ObjectKind::Quality,
        ObjectKind::Experiment,
    ];

    /// Human name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::FeatureView => "feature_view",
            ObjectKind::FeatureService => "feature_service",
            ObjectKind::Job => "job",
            ObjectKind::Recommender => "recommender",
            ObjectKind::Quality => "quality",
            ObjectKind::Experiment => "experiment",
        }
    }

    /// Parses [`ObjectKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Content hash of a serializable definition (canonical JSON, SHA-256, hex).
pub fn content_hash<T: Serialize>(value: &T) -> String {
    sha256_hex(&serde_json::to_vec(value).expect("definitions serialize"))
}

impl Registry {
    /// Validates parsed definition files (the first is `quiver.yaml`) into a registry.
    pub fn from_files(files: Vec<(PathBuf, DefinitionFile)>) -> Result<Registry> {
        Builder::default().build(files)
    }

    /// Reads a registry stored as JSON (see [`Registry::to_json`]).
    pub fn from_json(json: &str) -> serde_json::Result<Registry> {
        serde_json::from_str(json)
    }

    /// Serializes the registry (locations are not kept).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("registry serializes")
    }

    /// The content hash of one object, or `None` if it does not exist. A view's hash covers its
    /// source and entities; a service's hash covers every view it reads, so that any change to
    /// what a model would receive changes the service's hash.
    pub fn object_hash(&self, kind: ObjectKind, name: &str) -> Option<String> {
        match kind {
            ObjectKind::Entity => self.entities.get(name).map(content_hash),
            ObjectKind::Source => self.sources.get(name).map(content_hash),
            ObjectKind::FeatureView => self.views.get(name).map(|v| {
                // Retention and drift settings change no value.
                let without_retention = FeatureView {
                    offline: None,
                    features: v
                        .features
                        .iter()
                        .map(|f| Feature {
                            drift: None,
                            ..f.clone()
                        })
                        .collect(),
                    aggregations: v
                        .aggregations
                        .iter()
                        .map(|a| Aggregation {
                            drift: None,
                            ..a.clone()
                        })
                        .collect(),
                    ..v.clone()
                };
                let mut parts = vec![content_hash(&without_retention)];
                parts.extend(self.sources.get(&v.source).map(content_hash));
                for input in v.request.iter().flat_map(|r| &r.inputs) {
                    if input != name {
                        parts.extend(self.object_hash(ObjectKind::FeatureView, input));
                    }
                }
                parts.extend(
                    v.entities
                        .iter()
                        .filter_map(|e| self.entities.get(e))
                        .map(content_hash),
                );
                sha256_hex(parts.join(",").as_bytes())
            }),
            ObjectKind::FeatureService => self.services.get(name).map(|s| {
                let mut parts = vec![content_hash(s)];
                let views: BTreeSet<&str> = s.features.iter().map(|f| f.view.as_str()).collect();
                for v in views {
                    parts.extend(self.object_hash(ObjectKind::FeatureView, v));
                }
                sha256_hex(parts.join(",").as_bytes())
            }),
            ObjectKind::Job => self.jobs.get(name).map(content_hash),
            ObjectKind::Recommender => self.recommenders.get(name).map(|r| {
                let mut parts = vec![content_hash(r)];
                parts.extend(self.sources.get(&r.interactions.source).map(content_hash));
                sha256_hex(parts.join(",").as_bytes())
            }),
            ObjectKind::Quality => self.quality.get(name).map(content_hash),
            ObjectKind::Experiment => self.experiments.get(name).map(content_hash),
        }
    }

    /// The definition of one object as JSON, or `None`.
    pub fn object_json(&self, kind: ObjectKind, name: &str) -> Option<serde_json::Value> {
        let v = match kind {
            ObjectKind::Entity => serde_json::to_value(self.entities.get(name)?),
            ObjectKind::Source => serde_json::to_value(self.sources.get(name)?),
            ObjectKind::FeatureView => serde_json::to_value(self.views.get(name)?),
            ObjectKind::FeatureService => serde_json::to_value(self.services.get(name)?),
            ObjectKind::Job => serde_json::to_value(self.jobs.get(name)?),
            ObjectKind::Recommender => serde_json::to_value(self.recommenders.get(name)?),
            ObjectKind::Quality => serde_json::to_value(self.quality.get(name)?),
            ObjectKind::Experiment => serde_json::to_value(self.experiments.get(name)?),
        };
        Some(v.expect("definitions serialize"))
    }

    /// Names of the objects of one kind, sorted.
    pub fn names(&self, kind: ObjectKind) -> Vec<String> {
        match kind {
            ObjectKind::Entity => self.entities.keys().cloned().collect(),
            ObjectKind::Source => self.sources.keys().cloned().collect(),
            ObjectKind::FeatureView => self.views.keys().cloned().collect(),
            ObjectKind::FeatureService => self.services.keys().cloned().collect(),
            ObjectKind::Job => self.jobs.keys().cloned().collect(),
            ObjectKind::Recommender => self.recommenders.keys().cloned().collect(),
            ObjectKind::Quality => self.quality.keys().cloned().collect(),
            ObjectKind::Experiment => self.experiments.keys().cloned().collect(),
        }
    }

    /// The join keys of a view: its entities' join keys, in order.
    pub fn view_join_keys(&self, view: &FeatureView) -> Vec<JoinKey> {
        view.entities
            .iter()
            .filter_map(|e| self.entities.get(e))
            .flat_map(|e| e.join_keys.iter().cloned())
            .collect()
    }

    /// Resolves `view:feature` and `view:*` references, in order and without duplicates.
    pub fn resolve_features<S: AsRef<str>>(&self, refs: &[S]) -> Result<Vec<FeatureRef>> {
        let mut out = Vec::new();
        for r in refs {
            for f in self
                .resolve_one(r.as_ref())
                .map_err(|message| Error::UnknownFeature {
                    reference: r.as_ref().to_string(),
                    message,
                })?
            {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    fn resolve_one(&self, r: &str) -> std::result::Result<Vec<FeatureRef>, String> {
        let (view_name, feature) = r
            .split_once(':')
            .ok_or_else(|| "write features as 'view:feature' or 'view:*'".to_string())?;
        let view = self.views.get(view_name).ok_or_else(|| {
            format!(
                "no feature view '{view_name}'{}",
                suggest(view_name, self.views.keys())
            )
        })?;
        if feature == "*" {
            return Ok(view
                .outputs()
                .into_iter()
                .map(|(n, _)| FeatureRef {
                    view: view_name.to_string(),
                    feature: n.to_string(),
                })
                .collect());
        }
        if view.output_type(feature).is_none() {
            let names: Vec<&str> = view.outputs().into_iter().map(|(n, _)| n).collect();
            return Err(format!(
                "view '{view_name}' has no feature '{feature}'{}",
                suggest(feature, names.iter())
            ));
        }
        Ok(vec![FeatureRef {
            view: view_name.to_string(),
            feature: feature.to_string(),
        }])
    }

    /// The features of a service.
    pub fn service_features(&self, name: &str) -> Result<&[FeatureRef]> {
        self.services
            .get(name)
            .map(|s| s.features.as_slice())
            .ok_or_else(|| Error::UnknownService {
                name: name.to_string(),
                hint: suggest(name, self.services.keys()),
            })
    }

    /// The services that read a view.
    pub fn services_using_view(&self, view: &str) -> Vec<&str> {
        self.services
            .values()
            .filter(|s| s.features.iter().any(|f| f.view == view))
            .map(|s| s.name.as_str())
            .collect()
    }
}

/// `; did you mean 'x'?` when a close name exists, else `; known: a, b, c` (or empty).
pub fn suggest<'a, I, T>(name: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a T>,
    T: AsRef<str> + ?Sized + 'a,
{
    let all: Vec<&str> = candidates.into_iter().map(|c| c.as_ref()).collect();
    if let Some(best) = all
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
    {
        return format!("; did you mean '{}'?", best.1);
    }
    if all.is_empty() {
        String::new()
    } else {
        let shown: Vec<&str> = all.iter().take(12).copied().collect();
        format!("; known: {}", shown.join(", "))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Default)]
struct Builder {
    file: PathBuf,
}

impl Builder {
    fn at<T>(&self, s: &S<T>) -> Located {
        Located {
            file: self.file.clone(),
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }

    fn name(&self, kind: &'static str, s: &S<String>) -> Result<String> {
        if !is_identifier(&s.value) {
            return Err(Error::invalid(
                &self.at(s),
                kind,
                &s.value,
                "name",
                "names start with a letter or '_' and contain only letters, digits and '_'",
            ));
        }
        Ok(s.value.clone())
    }

    fn build(mut self, files: Vec<(PathBuf, DefinitionFile)>) -> Result<Registry> {
        let mut project: Option<(String, Option<String>)> = None;
        let mut raw_entities = Vec::new();
        let mut raw_sources = Vec::new();
        let mut raw_views = Vec::new();
        let mut raw_services = Vec::new();
        let mut raw_jobs = Vec::new();
        let mut raw_recommenders = Vec::new();
        let mut raw_quality = Vec::new();
        let mut raw_experiments = Vec::new();
        for (i, (file, defs)) in files.into_iter().enumerate() {
            self.file = file.clone();
            if i == 0 {
                let Some(p) = &defs.project else {
                    return Err(Error::invalid(
                        &Located {
                            file,
                            line: 1,
                            column: 1,
                        },
                        "project",
                        "",
                        "project",
                        "quiver.yaml must name the project: add `project: NAME`",
                    ));
                };
                let name = self.name("project", p)?;
                project = Some((name, defs.description.clone()));
            } else {
                for (field, present) in [
                    ("project", defs.project.as_ref().map(|p| self.at(p))),
                    ("registry", defs.registry.as_ref().map(|p| self.at(p))),
                    (
                        "online_store",
                        defs.online_store.as_ref().map(|p| self.at(p)),
                    ),
                    ("server", defs.server.as_ref().map(|p| self.at(p))),
                    ("tracking", defs.tracking.as_ref().map(|p| self.at(p))),
                    ("alerts", defs.alerts.as_ref().map(|p| self.at(p))),
                    ("artifacts", defs.artifacts.as_ref().map(|p| self.at(p))),
                    (
                        "offline_store",
                        defs.offline_store.as_ref().map(|p| self.at(p)),
                    ),
                    ("storage", defs.storage.as_ref().map(|p| self.at(p))),
                    (
                        "offline_engine",
                        defs.offline_engine.as_ref().map(|p| self.at(p)),
                    ),
                ] {
                    if let Some(at) = present {
                        return Err(Error::invalid(
                            &at,
                            "project",
                            "",
                            field,
                            format!("'{field}' belongs in quiver.yaml, not in a features/ file"),
                        ));
                    }
                }
            }
            raw_entities.extend(defs.entities.into_iter().map(|d| (file.clone(), d)));
            raw_sources.extend(defs.sources.into_iter().map(|d| (file.clone(), d)));
            raw_views.extend(defs.feature_views.into_iter().map(|d| (file.clone(), d)));
            raw_services.extend(defs.feature_services.into_iter().map(|d| (file.clone(), d)));
            raw_jobs.extend(defs.jobs.into_iter().map(|d| (file.clone(), d)));
            raw_recommenders.extend(defs.recommenders.into_iter().map(|d| (file.clone(), d)));
            raw_quality.extend(defs.quality.into_iter().map(|d| (file.clone(), d)));
            raw_experiments.extend(defs.experiments.into_iter().map(|d| (file.clone(), d)));
        }
        let (project, description) = project.unwrap_or_default();
        let mut reg = Registry {
            project,
            description,
            entities: BTreeMap::new(),
            sources: BTreeMap::new(),
            views: BTreeMap::new(),
            services: BTreeMap::new(),
            jobs: BTreeMap::new(),
            recommenders: BTreeMap::new(),
            quality: BTreeMap::new(),
            experiments: BTreeMap::new(),
        };
        let mut seen: HashMap<(&'static str, String), Located> = HashMap::new();
        let mut check_dup = |kind: &'static str, name: &str, at: &Located| -> Result<()> {
            if let Some(first) = seen.get(&(kind, name.to_string())) {
                return Err(Error::invalid(
                    at,
                    kind,
                    name,
                    "name",
                    format!("duplicate name: already defined at {first}"),
                ));
            }
            seen.insert((kind, name.to_string()), at.clone());
            Ok(())
        };
        for (file, raw) in raw_entities {
            self.file = file;
            let e = self.entity(raw)?;
            check_dup("entity", &e.name, &e.at)?;
            reg.entities.insert(e.name.clone(), e);
        }
        for (file, raw) in raw_sources {
            self.file = file;
            let s = self.source(raw)?;
            check_dup("source", &s.name, &s.at)?;
            reg.sources.insert(s.name.clone(), s);
        }
        for (file, raw) in raw_views {
            self.file = file;
            let v = self.view(raw, &reg)?;
            check_dup("feature view", &v.name, &v.at)?;
            reg.views.insert(v.name.clone(), v);
        }
        for v in reg.views.values() {
            let Some(spec) = &v.request else { continue };
            for input in &spec.inputs {
                let problem = match reg.views.get(input) {
                    None => Some(format!(
                        "no feature view '{input}'{}",
                        suggest(input, reg.views.keys())
                    )),
                    Some(i) if i.is_request() => Some(format!(
                        "'{input}' is itself a request-time view: list the views it reads instead"
                    )),
                    Some(_) => None,
                };
                if let Some(message) = problem {
                    return Err(Error::invalid(
                        &v.at,
                        "feature view",
                        &v.name,
                        "inputs",
                        message,
                    ));
                }
            }
        }
        for (file, raw) in raw_services {
            self.file = file;
            let s = self.service(raw, &reg)?;
            check_dup("feature service", &s.name, &s.at)?;
            reg.services.insert(s.name.clone(), s);
        }
        for (file, raw) in raw_recommenders {
            self.file = file;
            let name = self.name("recommender", &raw.name)?;
            let r = crate::recommender::build_recommender(&self.file, raw, &reg, name)?;
            check_dup("recommender", &r.name, &r.at)?;
            reg.recommenders.insert(r.name.clone(), r);
        }
        for (file, raw) in raw_experiments {
            self.file = file;
            let name = self.name("experiment", &raw.name)?;
            let e = crate::experiment::build_experiment(&self.file, raw, &reg, name)?;
            check_dup("experiment", &e.name, &e.at)?;
            reg.experiments.insert(e.name.clone(), e);
        }
        for (file, raw) in raw_quality {
            self.file = file;
            let name = self.name("quality", &raw.name)?;
            let q = crate::quality::build_quality(&self.file, raw, &reg, name)?;
            check_dup("quality", &q.name, &q.at)?;
            reg.quality.insert(q.name.clone(), q);
        }
        // Last: a job may name any other object (a view, a service, a quality set).
        for (file, raw) in raw_jobs {
            self.file = file;
            let name = self.name("job", &raw.name)?;
            let j = crate::job::build_job(&self.file, raw, &reg, name)?;
            check_dup("job", &j.name, &j.at)?;
            reg.jobs.insert(j.name.clone(), j);
        }
        crate::job::check_dependencies(&reg.jobs)?;
        Ok(reg)
    }

    fn value_type(
        &self,
        kind: &'static str,
        object: &str,
        field: &str,
        s: &S<String>,
    ) -> Result<ValueType> {
        s.value
            .parse()
            .map_err(|m: String| Error::invalid(&self.at(s), kind, object, field, m))
    }

    fn entity(&self, raw: RawEntity) -> Result<Entity> {
        const K: &str = "entity";
        let name = self.name(K, &raw.name)?;
        let at = self.at(&raw.name);
        if raw.join_keys.is_empty() {
            return Err(Error::invalid(
                &at,
                K,
                &name,
                "join_keys",
                "needs at least one join key",
            ));
        }
        let types: Vec<ValueType> = match (&raw.value_type, &raw.value_types) {
            (Some(_), Some(ts)) => {
                return Err(Error::invalid(
                    &self.at(&ts[0]),
                    K,
                    &name,
                    "value_types",
                    "give either value_type (all keys) or value_types (one per key), not both",
                ));
            }
            (_, Some(ts)) => {
                if ts.len() != raw.join_keys.len() {
                    return Err(Error::invalid(
                        &at,
                        K,
                        &name,
                        "value_types",
                        format!("{} types for {} join keys", ts.len(), raw.join_keys.len()),
                    ));
                }
                ts.iter()
                    .map(|t| self.value_type(K, &name, "value_types", t))
                    .collect::<Result<_>>()?
            }
            (Some(t), None) => {
                vec![self.value_type(K, &name, "value_type", t)?; raw.join_keys.len()]
            }
            (None, None) => vec![ValueType::Int64; raw.join_keys.len()],
        };
        let mut join_keys = Vec::new();
        for (k, value_type) in raw.join_keys.iter().zip(types) {
            if !matches!(
                value_type,
                ValueType::Int64 | ValueType::Int32 | ValueType::String
            ) {
                return Err(Error::invalid(
                    &self.at(k),
                    K,
                    &name,
                    "value_type",
                    format!("join keys are int64, int32 or string, not {value_type}"),
                ));
            }
            if !is_identifier(&k.value) {
                return Err(Error::invalid(
                    &self.at(k),
                    K,
                    &name,
                    "join_keys",
                    format!("'{}' is not a column name", k.value),
                ));
            }
            if join_keys.iter().any(|j: &JoinKey| j.name == k.value) {
                return Err(Error::invalid(
                    &self.at(k),
                    K,
                    &name,
                    "join_keys",
                    format!("'{}' appears twice", k.value),
                ));
            }
            join_keys.push(JoinKey {
                name: k.value.clone(),
                value_type,
            });
        }
        Ok(Entity {
            name,
            join_keys,
            description: raw.description,
            owner: raw.owner,
            tags: raw.tags,
            at,
        })
    }

    fn source(&self, raw: RawSource) -> Result<Source> {
        const K: &str = "source";
        let name = self.name(K, &raw.name)?;
        let at = self.at(&raw.name);
        let need = |field: &str, v: &Option<S<String>>| -> Result<String> {
            match v {
                Some(s) if !s.value.trim().is_empty() => Ok(s.value.clone()),
                _ => Err(Error::invalid(
                    &at,
                    K,
                    &name,
                    field,
                    format!("a {} source needs '{field}'", raw.kind.value),
                )),
            }
        };
        let reject = |field: &str, v: &Option<S<String>>| -> Result<()> {
            match v {
                Some(s) => Err(Error::invalid(
                    &self.at(s),
                    K,
                    &name,
                    field,
                    format!("'{field}' does not apply to a {} source", raw.kind.value),
                )),
                None => Ok(()),
            }
        };
        let kind = match raw.kind.value.as_str() {
            "parquet" | "file" => {
                reject("delimiter", &raw.delimiter)?;
                for (f, v) in [
                    ("connection", &raw.connection),
                    ("table", &raw.table),
                    ("query", &raw.query),
                ] {
                    reject(f, v)?;
                }
                SourceKind::Parquet {
                    path: need("path", &raw.path)?,
                }
            }
            "csv" => {
                for (f, v) in [
                    ("connection", &raw.connection),
                    ("table", &raw.table),
                    ("query", &raw.query),
                ] {
                    reject(f, v)?;
                }
                let delimiter = match &raw.delimiter {
                    None => ',',
                    Some(d) => {
                        let mut cs = d.value.chars();
                        match (cs.next(), cs.next()) {
                            (Some(c), None) if c.is_ascii() => c,
                            _ => {
                                let m = "the delimiter is one ASCII character";
                                return Err(Error::invalid(&self.at(d), K, &name, "delimiter", m));
                            }
                        }
                    }
                };
                SourceKind::Csv {
                    path: need("path", &raw.path)?,
                    delimiter,
                }
            }
            "postgres" | "postgresql" => {
                reject("path", &raw.path)?;
                reject("delimiter", &raw.delimiter)?;
                if raw.table.is_some() == raw.query.is_some() {
                    return Err(Error::invalid(
                        &at,
                        K,
                        &name,
                        "table",
                        "a postgres source needs exactly one of 'table' or 'query'",
                    ));
                }
                SourceKind::Postgres {
                    connection: raw.connection.map(|c| c.value),
                    table: raw.table.map(|t| t.value),
                    query: raw.query.map(|q| q.value),
                }
            }
            other => {
                return Err(Error::invalid(
                    &self.at(&raw.kind),
                    K,
                    &name,
                    "type",
                    format!("unknown source type '{other}': use parquet, csv or postgres"),
                ));
            }
        };
        if raw.timestamp_field.value.trim().is_empty() {
            return Err(Error::invalid(
                &self.at(&raw.timestamp_field),
                K,
                &name,
                "timestamp_field",
                "is empty",
            ));
        }
        Ok(Source {
            name,
            kind,
            timestamp_field: raw.timestamp_field.value,
            created_timestamp_field: raw.created_timestamp_field.map(|c| c.value),
            description: raw.description,
            owner: raw.owner,
            tags: raw.tags,
            at,
        })
    }

    fn duration(&self, object: &str, field: &str, s: &S<String>) -> Result<Duration> {
        Duration::parse(&s.value)
            .map_err(|m| Error::invalid(&self.at(s), "feature view", object, field, m))
    }

    fn view(&self, raw: RawFeatureView, reg: &Registry) -> Result<FeatureView> {
        const K: &str = "feature view";
        let name = self.name(K, &raw.name)?;
        let at = self.at(&raw.name);
        let is_request = raw.request_data.is_some() || raw.inputs.is_some();
        if raw.entities.is_empty() && !is_request {
            return Err(Error::invalid(
                &at,
                K,
                &name,
                "entities",
                "needs at least one entity",
            ));
        }
        let mut key_names = Vec::new();
        for e in &raw.entities {
            let Some(entity) = reg.entities.get(&e.value) else {
                return Err(Error::invalid(
                    &self.at(e),
                    K,
                    &name,
                    "entities",
                    format!(
                        "no entity '{}'{}",
                        e.value,
                        suggest(&e.value, reg.entities.keys())
                    ),
                ));
            };
            key_names.extend(entity.join_keys.iter().map(|k| k.name.clone()));
        }
        let source = match (&raw.source, is_request) {
            (Some(src), true) => {
                return Err(Error::invalid(
                    &self.at(src),
                    K,
                    &name,
                    "source",
                    "a request-time view (request_data / inputs) reads no source: remove 'source'",
                ));
            }
            (None, true) => String::new(),
            (None, false) => {
                return Err(Error::invalid(
                    &at,
                    K,
                    &name,
                    "source",
                    "needs a source (or request_data and inputs, for a view computed at request time)",
                ));
            }
            (Some(src), false) => {
                if !reg.sources.contains_key(&src.value) {
                    return Err(Error::invalid(
                        &self.at(src),
                        K,
                        &name,
                        "source",
                        format!(
                            "no source '{}'{}",
                            src.value,
                            suggest(&src.value, reg.sources.keys())
                        ),
                    ));
                }
                src.value.clone()
            }
        };
        let request = if is_request {
            if !raw.aggregations.is_empty() {
                return Err(Error::invalid(
                    &self.at(&raw.aggregations[0].name),
                    K,
                    &name,
                    "aggregations",
                    "a request-time view computes features from request data and other views; aggregate in an input view instead",
                ));
            }
            if let Some(f) = raw.features.iter().find(|f| f.expr.is_none()) {
                return Err(Error::invalid(
                    &self.at(&f.name),
                    K,
                    &name,
                    &format!("features.{}.expr", f.name.value),
                    "every feature of a request-time view is an 'expr' over request fields and input views' features (view__feature)",
                ));
            }
            let mut fields = Vec::new();
            for f in raw.request_data.iter().flatten() {
                let fname = self.name(K, &f.name)?;
                if fields.iter().any(|x: &RequestField| x.name == fname) {
                    return Err(Error::invalid(
                        &self.at(&f.name),
                        K,
                        &name,
                        "request_data",
                        format!("field '{fname}' is declared twice"),
                    ));
                }
                let value_type =
                    self.value_type(K, &name, &format!("request_data.{fname}.type"), &f.ty)?;
                fields.push(RequestField {
                    name: fname,
                    value_type,
                });
            }
            let inputs: Vec<String> = raw
                .inputs
                .iter()
                .flatten()
                .map(|i| i.value.clone())
                .collect();
            Some(RequestSpec { fields, inputs })
        } else {
            None
        };
        let ttl = match &raw.ttl {
            Some(t) => self.duration(&name, "ttl", t)?,
            None => Duration::default(),
        };
        if raw.features.is_empty() && raw.aggregations.is_empty() {
            return Err(Error::invalid(
                &at,
                K,
                &name,
                "features",
                "declares no features and no aggregations",
            ));
        }
        if !raw.features.is_empty() && !raw.aggregations.is_empty() {
            return Err(Error::invalid(
                &self.at(&raw.aggregations[0].name),
                K,
                &name,
                "aggregations",
                "a view has either features (latest row) or aggregations (windows over events), not both: split it in two views",
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        let mut check_name = |s: &S<String>| -> Result<String> {
            let n = self.name(K, s).map_err(|_| {
                Error::invalid(
                    &self.at(s),
                    K,
                    &name,
                    "features",
                    format!("'{}' is not a valid feature name", s.value),
                )
            })?;
            if seen.contains(&n) {
                return Err(Error::invalid(
                    &self.at(s),
                    K,
                    &name,
                    "features",
                    format!("feature '{n}' is declared twice"),
                ));
            }
            if key_names.contains(&n) {
                return Err(Error::invalid(
                    &self.at(s),
                    K,
                    &name,
                    "features",
                    format!("feature '{n}' has the name of a join key"),
                ));
            }
            seen.push(n.clone());
            Ok(n)
        };
        let mut features = Vec::new();
        for f in raw.features {
            features.push(self.feature(&name, f, &mut check_name)?);
        }
        let offline = match &raw.offline {
            None => None,
            Some(o) => {
                let at_o = self.at(o);
                if request.is_some() {
                    return Err(Error::invalid(
                        &at_o,
                        K,
                        &name,
                        "offline",
                        "a request-time view has no stored values to snapshot",
                    ));
                }
                if o.value.snapshots.value != "daily" {
                    return Err(Error::invalid(
                        &self.at(&o.value.snapshots),
                        K,
                        &name,
                        "offline.snapshots",
                        format!("'{}': use daily", o.value.snapshots.value),
                    ));
                }
                let retain = o
                    .value
                    .retain
                    .as_ref()
                    .map(|r| self.duration(&name, "offline.retain", r))
                    .transpose()?;
                Some(OfflineSnapshots {
                    daily: true,
                    retain,
                })
            }
        };
        let mut aggregations = Vec::new();
        for a in raw.aggregations {
            aggregations.push(self.aggregation(&name, a, &mut check_name)?);
        }
        Ok(FeatureView {
            name,
            entities: raw.entities.into_iter().map(|e| e.value).collect(),
            source,
            ttl,
            features,
            aggregations,
            online: raw.online.unwrap_or(true) && request.is_none(),
            offline,
            request,
            description: raw.description,
            owner: raw.owner,
            tags: raw.tags,
            at,
        })
    }

    fn feature(
        &self,
        view: &str,
        raw: RawFeature,
        check_name: &mut impl FnMut(&S<String>) -> Result<String>,
    ) -> Result<Feature> {
        let name = check_name(&raw.name)?;
        let value_type = self.value_type(
            "feature view",
            view,
            &format!("features.{name}.type"),
            &raw.ty,
        )?;
        if let (Some(_), Some(e)) = (&raw.column, &raw.expr) {
            return Err(Error::invalid(
                &self.at(e),
                "feature view",
                view,
                &format!("features.{name}"),
                "give either 'column' or 'expr', not both",
            ));
        }
        if let Some(e) = raw.expr.as_ref().filter(|e| e.value.trim().is_empty()) {
            return Err(Error::invalid(
                &self.at(e),
                "feature view",
                view,
                &format!("features.{name}.expr"),
                "is empty",
            ));
        }
        let drift = match raw.drift {
            Some(d) => Some(self.drift_settings(view, &name, d)?),
            None => None,
        };
        Ok(Feature {
            name,
            value_type,
            column: raw.column.map(|c| c.value),
            expr: raw.expr.map(|e| e.value),
            description: raw.description,
            drift,
        })
    }

    /// A feature's `drift:`: a threshold is a number from 0 (the test's name is checked by
    /// `apply` against `quiver-monitor`'s tests).
    fn drift_settings(
        &self,
        view: &str,
        feature: &str,
        raw: S<DriftSettings>,
    ) -> Result<DriftSettings> {
        if let Some(t) = raw.value.threshold
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(Error::invalid(
                &self.at(&raw),
                "feature view",
                view,
                &format!("{feature}.drift.threshold"),
                format!("{t}: give a number from 0"),
            ));
        }
        Ok(raw.value)
    }

    /// A duration that must be longer than 0 (`what` names it in the error).
    fn positive_duration(
        &self,
        view: &str,
        field: &str,
        s: &S<String>,
        what: &str,
    ) -> Result<Duration> {
        let d = self.duration(view, field, s)?;
        if d.is_zero() {
            return Err(Error::invalid(
                &self.at(s),
                "feature view",
                view,
                field,
                format!("{what} must be longer than 0"),
            ));
        }
        Ok(d)
    }

    fn aggregation(
        &self,
        view: &str,
        raw: RawAggregation,
        check_name: &mut impl FnMut(&S<String>) -> Result<String>,
    ) -> Result<Aggregation> {
        const K: &str = "feature view";
        let name = check_name(&raw.name)?;
        let field = |f: &str| format!("aggregations.{name}.{f}");
        let function = AggFunction::parse(&raw.function.value)
            .map_err(|m| Error::invalid(&self.at(&raw.function), K, view, &field("function"), m))?;
        if let (Some(_), Some(e)) = (&raw.column, &raw.expr) {
            return Err(Error::invalid(
                &self.at(e),
                K,
                view,
                &field("expr"),
                "give either 'column' or 'expr', not both",
            ));
        }
        let has_value = raw.column.is_some() || raw.expr.is_some();
        if function.needs_value() && !has_value {
            return Err(Error::invalid(
                &self.at(&raw.function),
                K,
                view,
                &field("column"),
                format!(
                    "'{}' needs a 'column' (or 'expr') to aggregate",
                    raw.function.value
                ),
            ));
        }
        let window = self.duration(view, &field("window"), &raw.window)?;
        if window.is_zero() {
            return Err(Error::invalid(
                &self.at(&raw.window),
                K,
                view,
                &field("window"),
                "a window must be longer than 0",
            ));
        }
        let value_type = match &raw.ty {
            Some(t) => self.value_type(K, view, &field("type"), t)?,
            None => function.default_type(),
        };
        if function == AggFunction::DecayedShare
            && !matches!(value_type, ValueType::Float64List | ValueType::Float32List)
        {
            return Err(Error::invalid(
                &self.at(raw.ty.as_ref().expect("the default is a list")),
                K,
                view,
                &field("type"),
                format!(
                    "decayed_share gives one share per category: declare list<float64> (the default) or list<float32>, not {value_type}"
                ),
            ));
        }
        if value_type.element().is_some()
            && !matches!(
                function,
                AggFunction::Mean | AggFunction::Last | AggFunction::DecayedShare
            )
        {
            return Err(Error::invalid(
                &self.at(raw.ty.as_ref().expect("a list type is declared")),
                K,
                view,
                &field("type"),
                format!(
                    "'{}' gives one number, not a {value_type}: only mean (element-wise, for embeddings) and last take vectors",
                    raw.function.value
                ),
            ));
        }
        let unit = match &raw.unit {
            Some(u) if function == AggFunction::TimeSinceLast => {
                Some(self.positive_duration(view, &field("unit"), u, "the unit")?)
            }
            Some(u) => {
                return Err(Error::invalid(
                    &self.at(u),
                    K,
                    view,
                    &field("unit"),
                    "'unit' applies only to time_since_last",
                ));
            }
            None if function == AggFunction::TimeSinceLast => Some(Duration::from_seconds(86_400)),
            None => None,
        };
        let half_life = match &raw.half_life {
            Some(h) if function.is_decayed() => {
                Some(self.positive_duration(view, &field("half_life"), h, "the half-life")?)
            }
            Some(h) => {
                return Err(Error::invalid(
                    &self.at(h),
                    K,
                    view,
                    &field("half_life"),
                    format!(
                        "'half_life' applies only to decayed_sum and decayed_share, not to {}",
                        function.name()
                    ),
                ));
            }
            None if function.is_decayed() => {
                return Err(Error::invalid(
                    &self.at(&raw.function),
                    K,
                    view,
                    &field("half_life"),
                    format!(
                        "'{}' needs a 'half_life' (e.g. half_life: 30d): an event's weight halves every half-life of age",
                        function.name()
                    ),
                ));
            }
            None => None,
        };
        let categories = match &raw.categories {
            Some(c) if function == AggFunction::DecayedShare => {
                if c.value.is_empty() {
                    return Err(Error::invalid(
                        &self.at(c),
                        K,
                        view,
                        &field("categories"),
                        "lists no categories",
                    ));
                }
                let mut seen = BTreeSet::new();
                for cat in &c.value {
                    if !seen.insert(cat.value.as_str()) {
                        return Err(Error::invalid(
                            &self.at(cat),
                            K,
                            view,
                            &field("categories"),
                            format!("'{}' is listed twice", cat.value),
                        ));
                    }
                }
                c.value.iter().map(|c| c.value.clone()).collect()
            }
            Some(c) => {
                return Err(Error::invalid(
                    &self.at(c),
                    K,
                    view,
                    &field("categories"),
                    format!(
                        "'categories' applies only to decayed_share, not to {}",
                        function.name()
                    ),
                ));
            }
            None if function == AggFunction::DecayedShare => {
                return Err(Error::invalid(
                    &self.at(&raw.function),
                    K,
                    view,
                    &field("categories"),
                    "'decayed_share' needs 'categories': the values whose shares make the vector, in order (e.g. categories: [shoes, books])",
                ));
            }
            None => Vec::new(),
        };
        let drift = match raw.drift {
            Some(d) => Some(self.drift_settings(view, &name, d)?),
            None => None,
        };
        Ok(Aggregation {
            name,
            function,
            column: raw.column.map(|c| c.value),
            expr: raw.expr.map(|e| e.value),
            window,
            filter: raw.filter.map(|f| f.value),
            value_type,
            unit,
            half_life,
            categories,
            description: raw.description,
            drift,
        })
    }

    fn service(&self, raw: RawFeatureService, reg: &Registry) -> Result<FeatureService> {
        const K: &str = "feature service";
        let name = self.name(K, &raw.name)?;
        let at = self.at(&raw.name);
        if raw.features.is_empty() {
            return Err(Error::invalid(
                &at,
                K,
                &name,
                "features",
                "lists no features",
            ));
        }
        let mut features: Vec<FeatureRef> = Vec::new();
        for r in &raw.features {
            let resolved = reg.resolve_one(&r.value).map_err(|m| {
                Error::invalid(
                    &self.at(r),
                    K,
                    &name,
                    "features",
                    format!("'{}': {m}", r.value),
                )
            })?;
            for f in resolved {
                if !features.contains(&f) {
                    features.push(f);
                }
            }
        }
        Ok(FeatureService {
            name,
            patterns: raw.features.into_iter().map(|f| f.value).collect(),
            features,
            description: raw.description,
            owner: raw.owner,
            tags: raw.tags,
            at,
        })
    }
}
