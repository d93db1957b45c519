//! Recommenders, declared in the registry like feature views:
//!
//! ```yaml
//! recommenders:
//!   - name: shop_recs
//!     interactions:
//!       source: events                 # a declared source: one row per interaction
//!       user: user_id                  # its user and item id columns
//!       item: product_id
//!       event_type: event_type         # optional: the column `weights` looks up
//!       weights: {view: 1, add_to_cart: 2, purchase: 3}
//!       half_life: 30d                 # time decay of each interaction's weight
//!       window: 180d                   # interactions older than this are left out
//!       min_user_interactions: 1
//!     algorithm: {type: als, factors: 64, regularization: 0.05, alpha: 10, iterations: 15, seed: 42}
//!     cold_start: {min_interactions: 5, popularity: {window: 90d, half_life: 7d}, content: product_embedding}
//!     item_attributes: product_attributes  # optional: a view keyed by item id, for filters
//! ```
//!
//! Validation here checks what needs no data: the source exists, the names and numbers make
//! sense (factors 1..=1024, regularization >= 0, alpha > 0, ...). The columns are checked
//! against the source's schema by `quiver apply` (through `quiver-recs`), which names this
//! file and line when one is missing. Training, evaluation and serving live in `quiver-recs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::error::{Error, Located, Result};
use crate::registry::{Registry, suggest};
use crate::yaml::S;

/// A declared recommender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommender {
    /// Name.
    pub name: String,
    /// Where the interactions come from and how they are weighted.
    pub interactions: InteractionsSpec,
    /// The model and its parameters.
    pub algorithm: AlgorithmSpec,
    /// What users and items with too little history get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStart>,
    /// A plain feature view keyed by the item id whose features `/recommend` filters on
    /// (`"filter": {"category": "shoes"}`); each item's latest values are stored with every
    /// trained version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_attributes: Option<String>,
    /// Where `/recommend` reads each user's factors and history.
    #[serde(default, skip_serializing_if = "ServingSpec::is_default")]
    pub serving: ServingSpec,
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

/// `interactions:` of a recommender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionsSpec {
    /// The source holding one row per interaction (its timestamp field dates them).
    pub source: String,
    /// The user id column.
    pub user: String,
    /// The item id column.
    pub item: String,
    /// The event type column that `weights` looks up (none: every row weighs 1, or its
    /// `weight` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Weight of each event type; types not listed are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
    /// A numeric column multiplying each row's weight (e.g. a quantity or a rating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// Each interaction's weight halves every `half_life` of age (none: no decay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life: Option<Duration>,
    /// Only interactions younger than this count (none: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Users with fewer distinct interacted items are left out of training.
    pub min_user_interactions: u32,
}

/// The solver of each ALS least-squares step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlsSolver {
    /// Conjugate gradient, `cg_steps` steps from the previous factors (`implicit`'s default).
    #[default]
    Cg,
    /// The exact solution by Cholesky factorization.
    Cholesky,
}

/// `algorithm:` of a recommender (only `type: als` so far).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmSpec {
    /// `als`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Latent factors.
    pub factors: u32,
    /// L2 regularization (`implicit`'s `regularization`: added to the diagonal as is).
    pub regularization: f64,
    /// Confidence scale: the confidence of an interaction is `alpha` times its weight.
    pub alpha: f64,
    /// ALS iterations (one user pass and one item pass each).
    pub iterations: u32,
    /// Seed of the factors' initialization.
    pub seed: u64,
    /// `cg` (default) or `cholesky`.
    pub solver: AlsSolver,
    /// Conjugate-gradient steps per solve (default 3, as `implicit`).
    pub cg_steps: u32,
}

/// `cold_start:` of a recommender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStart {
    /// Users with fewer interactions get popularity blended in (fully CF from this many).
    pub min_interactions: u32,
    /// How popularity is computed.
    pub popularity: PopularitySpec,
    /// A feature view of item embeddings for new items (content similarity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// Where the served version's per-user state (factors, the items each user interacted with
/// and their weights) lives while it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserFactors {
    /// Written to the online store when a server loads the version, read per request: the
    /// server keeps only the item side in memory, and a job can update a user's row between
    /// trainings.
    #[default]
    Online,
    /// Kept in the server's memory with the version.
    Memory,
}

/// `serving:` of a recommender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingSpec {
    /// `online` (default) or `memory`.
    #[serde(default)]
    pub user_factors: UserFactors,
    /// How long a user's row in the online store is served after it was written (default 24h);
    /// the server writes the rows again when half of it has passed.
    #[serde(default = "ServingSpec::default_ttl")]
    pub ttl: Duration,
}

impl ServingSpec {
    /// 24 hours.
    pub const DEFAULT_TTL: Duration = Duration::from_seconds(86_400);

    fn default_ttl() -> Duration {
        Self::DEFAULT_TTL
    }

    /// Whether this is what an absent `serving:` means.
    pub fn is_default(&self) -> bool {
        *self == ServingSpec::default()
    }
}

impl Default for ServingSpec {
    fn default() -> Self {
        ServingSpec {
            user_factors: UserFactors::Online,
            ttl: Self::DEFAULT_TTL,
        }
    }
}

/// `popularity:` of `cold_start:`: time-decayed sums of interaction weights per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopularitySpec {
    /// Only interactions younger than this count (none: the interactions' window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Weight halves every `half_life` of age (none: the interactions' half-life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life: Option<Duration>,
}

/// `recommenders:` item, as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecommender {
    /// Name.
    pub name: S<String>,
    /// Interactions.
    pub interactions: S<RawInteractions>,
    /// Algorithm.
    pub algorithm: Option<S<RawAlgorithm>>,
    /// Cold start.
    pub cold_start: Option<S<RawColdStart>>,
    /// The feature view of item attributes to filter on.
    pub item_attributes: Option<S<String>>,
    /// Where user factors are served from.
    pub serving: Option<S<RawServing>>,
    /// Free text.
    pub description: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `interactions:` as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInteractions {
    /// Source name.
    pub source: S<String>,
    /// User column.
    pub user: S<String>,
    /// Item column.
    pub item: S<String>,
    /// Event type column.
    pub event_type: Option<S<String>>,
    /// Weights per event type.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// Weight column.
    pub weight: Option<S<String>>,
    /// Half-life.
    pub half_life: Option<S<String>>,
    /// Window.
    pub window: Option<S<String>>,
    /// Fewest interactions per user (default 1).
    pub min_user_interactions: Option<S<u32>>,
}

/// `algorithm:` as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlgorithm {
    /// `als`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Factors (default 64).
    pub factors: Option<u32>,
    /// Regularization (default 0.01).
    pub regularization: Option<f64>,
    /// Alpha (default 1).
    pub alpha: Option<f64>,
    /// Iterations (default 15).
    pub iterations: Option<u32>,
    /// Seed (default 42).
    pub seed: Option<u64>,
    /// `cg` or `cholesky`.
    pub solver: Option<String>,
    /// CG steps (default 3).
    pub cg_steps: Option<u32>,
}

/// `cold_start:` as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColdStart {
    /// Default 5.
    pub min_interactions: Option<u32>,
    /// Popularity.
    pub popularity: Option<RawPopularity>,
    /// Content embedding view.
    pub content: Option<String>,
}

/// `serving:` as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServing {
    /// `online` or `memory`.
    pub user_factors: Option<String>,
    /// A duration.
    pub ttl: Option<String>,
}

/// `popularity:` as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPopularity {
    /// Window.
    pub window: Option<String>,
    /// Half-life.
    pub half_life: Option<String>,
}

impl AlgorithmSpec {
    /// Checks the numbers; the message names the field.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.kind != "als" {
            return Err((
                "type",
                format!("'{}': the only algorithm is als", self.kind),
            ));
        }
        if !(1..=1024).contains(&self.factors) {
            return Err(("factors", format!("{}: use 1 to 1024", self.factors)));
        }
        if !(self.regularization >= 0.0 && self.regularization.is_finite()) {
            return Err((
                "regularization",
                format!("{}: use a number >= 0", self.regularization),
            ));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(("alpha", format!("{}: use a number > 0", self.alpha)));
        }
        if !(1..=1000).contains(&self.iterations) {
            return Err(("iterations", format!("{}: use 1 to 1000", self.iterations)));
        }
        if !(1..=100).contains(&self.cg_steps) {
            return Err(("cg_steps", format!("{}: use 1 to 100", self.cg_steps)));
        }
        Ok(())
    }
}

impl Default for AlgorithmSpec {
    fn default() -> Self {
        AlgorithmSpec {
            kind: "als".into(),
            factors: 64,
            regularization: 0.01,
            alpha: 1.0,
            iterations: 15,
            seed: 42,
            solver: AlsSolver::Cg,
            cg_steps: 3,
        }
    }
}

/// Where a located YAML value is, in `file`.
pub(crate) fn at<T>(file: &std::path::Path, s: &S<T>) -> Located {
    Located {
        file: file.to_path_buf(),
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

/// Validates one recommender against the registry built so far (sources).
pub(crate) fn build_recommender(
    file: &std::path::Path,
    raw: RawRecommender,
    reg: &Registry,
    name: String,
) -> Result<Recommender> {
    const K: &str = "recommender";
    let rec_at = at(file, &raw.name);
    let bad = |a: Located, field: &str, m: String| Error::invalid(&a, K, &name, field, m);
    let inter_at = at(file, &raw.interactions);
    let ri = raw.interactions.value;
    if !reg.sources.contains_key(&ri.source.value) {
        return Err(bad(
            at(file, &ri.source),
            "interactions.source",
            format!(
                "no source '{}'{}",
                ri.source.value,
                suggest(&ri.source.value, reg.sources.keys())
            ),
        ));
    }
    for (field, s) in [
        ("interactions.user", &ri.user),
        ("interactions.item", &ri.item),
    ] {
        if s.value.trim().is_empty() {
            return Err(bad(at(file, s), field, "name a column".into()));
        }
    }
    if ri.user.value == ri.item.value {
        return Err(bad(
            at(file, &ri.item),
            "interactions.item",
            format!("'{}' is also the user column", ri.item.value),
        ));
    }
    if !ri.weights.is_empty() && ri.event_type.is_none() {
        return Err(bad(
            inter_at.clone(),
            "interactions.weights",
            "weights per event type need `event_type:` (the column holding the type)".into(),
        ));
    }
    for (t, w) in &ri.weights {
        if !(w.is_finite() && *w >= 0.0) {
            return Err(bad(
                inter_at.clone(),
                "interactions.weights",
                format!("weight of '{t}' is {w}: use a number >= 0"),
            ));
        }
    }
    let duration = |s: &Option<S<String>>, field: &str| -> Result<Option<Duration>> {
        match s {
            None => Ok(None),
            Some(s) => {
                let d = Duration::parse(&s.value).map_err(|m| bad(at(file, s), field, m))?;
                if d.is_zero() {
                    return Err(bad(
                        at(file, s),
                        field,
                        "0 is not allowed: remove the field for none".into(),
                    ));
                }
                Ok(Some(d))
            }
        }
    };
    let half_life = duration(&ri.half_life, "interactions.half_life")?;
    let window = duration(&ri.window, "interactions.window")?;
    let interactions = InteractionsSpec {
        source: ri.source.value,
        user: ri.user.value,
        item: ri.item.value,
        event_type: ri.event_type.map(|s| s.value),
        weights: ri.weights,
        weight: ri.weight.map(|s| s.value),
        half_life,
        window,
        min_user_interactions: ri.min_user_interactions.map_or(1, |m| m.value).max(1),
    };
    let mut algorithm = AlgorithmSpec::default();
    if let Some(a) = &raw.algorithm {
        let r = &a.value;
        if let Some(k) = &r.kind {
            algorithm.kind = k.clone();
        }
        algorithm.factors = r.factors.unwrap_or(algorithm.factors);
        algorithm.regularization = r.regularization.unwrap_or(algorithm.regularization);
        algorithm.alpha = r.alpha.unwrap_or(algorithm.alpha);
        algorithm.iterations = r.iterations.unwrap_or(algorithm.iterations);
        algorithm.seed = r.seed.unwrap_or(algorithm.seed);
        algorithm.cg_steps = r.cg_steps.unwrap_or(algorithm.cg_steps);
        algorithm.solver = match r.solver.as_deref() {
            None | Some("cg") => AlsSolver::Cg,
            Some("cholesky") => AlsSolver::Cholesky,
            Some(o) => {
                return Err(bad(
                    at(file, a),
                    "algorithm.solver",
                    format!("'{o}': use cg or cholesky"),
                ));
            }
        };
        algorithm
            .check()
            .map_err(|(f, m)| bad(at(file, a), &format!("algorithm.{f}"), m))?;
    }
    let cold_start = match raw.cold_start {
        None => None,
        Some(c) => {
            let c_at = at(file, &c);
            let c = c.value;
            let dur = |t: &Option<String>, field: &str| -> Result<Option<Duration>> {
                t.as_ref()
                    .map(|t| Duration::parse(t).map_err(|m| bad(c_at.clone(), field, m)))
                    .transpose()
            };
            let (pw, ph) = match &c.popularity {
                Some(p) => (
                    dur(&p.window, "cold_start.popularity.window")?,
                    dur(&p.half_life, "cold_start.popularity.half_life")?,
                ),
                None => (None, None),
            };
            if let Some(v) = &c.content
                && !reg.views.contains_key(v)
            {
                return Err(bad(
                    c_at,
                    "cold_start.content",
                    format!("no feature view '{v}'{}", suggest(v, reg.views.keys())),
                ));
            }
            Some(ColdStart {
                min_interactions: c.min_interactions.unwrap_or(5),
                popularity: PopularitySpec {
                    window: pw,
                    half_life: ph,
                },
                content: c.content,
            })
        }
    };
    let item_attributes = match raw.item_attributes {
        None => None,
        Some(v) => {
            let problem = match reg.views.get(&v.value) {
                None => Some(format!(
                    "no feature view '{}'{}",
                    v.value,
                    suggest(&v.value, reg.views.keys())
                )),
                Some(view) if view.is_aggregation() || view.is_request() => Some(format!(
                    "'{}' is an aggregation or request-time view: name a plain view with one row per item",
                    v.value
                )),
                Some(view) if reg.view_join_keys(view).len() != 1 => Some(format!(
                    "'{}' is keyed by {} join keys: name a view keyed by the item id alone",
                    v.value,
                    reg.view_join_keys(view).len()
                )),
                Some(_) => None,
            };
            if let Some(m) = problem {
                return Err(bad(at(file, &v), "item_attributes", m));
            }
            Some(v.value)
        }
    };
    let serving = match raw.serving {
        None => ServingSpec::default(),
        Some(sv) => {
            let sv_at = at(file, &sv);
            let user_factors = match sv.value.user_factors.as_deref() {
                None | Some("online") => UserFactors::Online,
                Some("memory") => UserFactors::Memory,
                Some(o) => {
                    return Err(bad(
                        sv_at,
                        "serving.user_factors",
                        format!("'{o}': use online or memory"),
                    ));
                }
            };
            let ttl = match &sv.value.ttl {
                None => ServingSpec::DEFAULT_TTL,
                Some(t) => {
                    let d = Duration::parse(t).map_err(|m| bad(sv_at.clone(), "serving.ttl", m))?;
                    if d.seconds() < 60 {
                        return Err(bad(
                            sv_at,
                            "serving.ttl",
                            format!(
                                "'{t}': use at least 1m (the server rewrites the rows at half of it)"
                            ),
                        ));
                    }
                    d
                }
            };
            ServingSpec { user_factors, ttl }
        }
    };
    Ok(Recommender {
        interactions,
        algorithm,
        cold_start,
        item_attributes,
        serving,
        description: raw.description,
        owner: raw.owner,
        tags: raw.tags,
        at: rec_at,
        name,
    })
}
