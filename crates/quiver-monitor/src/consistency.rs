//! Online/offline consistency (train/serve skew, measured).
//!
//! [`service`] compares, for a deterministic sample of entities, what the online store serves
//! with what the offline engine computes as of the last materialization's end (each view's
//! watermark): the offline rows are `engine.latest(view, W, W - ttl)` — what `historical`
//! gives at W and what materialization wrote — converted to online [`Value`]s by the
//! materializer's own [`rows_of`], and a cell is equal exactly when the two values' online
//! encodings ([`Value::to_bytes`], what the store holds and the server decodes) are equal. One
//! rule, so a float that differs in its last bit, a `-0.0` for a `0.0` or an int32 for an
//! int64 is a mismatch, as it would be served differently.
//!
//! The sample: every entity of the offline rows, ordered by a fixed 64-bit hash of its encoded
//! key (FNV-1a), the first N. The same entities come back run after run, spread over the key
//! space, and an entity keeps its place as others come and go.
//!
//! Each cell falls in exactly one class: `equal`, `mismatched` (both sides hold a value and the
//! values differ), `missing_online` (offline holds a value, the store holds no row or a null),
//! `extra` (the store holds a value where the offline engine has none), so
//! `compared = equal + mismatched + missing_online + extra`.
//!
//! [`log()`] does the same for the prediction log: each logged prediction's inputs against
//! `historical` at the logged time, recorded by the rule `/predict` logged them by (see
//! [`mod@log`]); the tally per feature is this module's, one implementation for both.

mod log;
pub use log::{VersionSummary, log};

use datafusion::arrow::array::{Array, RecordBatch};
use quiver_core::{Registry, ValueType};
use quiver_offline::OfflineEngine;
use quiver_online::materialize::{key_of, rows_of};
use quiver_online::{EntityKey, OnlineStore, Value};
use quiver_registry::SqlMetadataStore;
use serde::Serialize;
use serde_json::{Value as Json, json};

/// A consistency error: bad input (unknown service, nothing materialized) or a failing store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What the user asked for cannot be answered, said in full.
    #[error("{0}")]
    Input(String),
    /// Reading the offline data failed.
    #[error(transparent)]
    Offline(#[from] quiver_offline::Error),
    /// Reading the online store failed.
    #[error(transparent)]
    Online(#[from] quiver_online::OnlineError),
    /// Reading the metadata store failed.
    #[error(transparent)]
    Metadata(#[from] quiver_registry::Error),
}

/// `Result` with the consistency [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Counts for one feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeatureConsistency {
    /// `view:feature`.
    pub feature: String,
    /// Cells compared (sampled entities).
    pub compared: u64,
    /// Cells whose encodings are equal (both null included).
    pub equal: u64,
    /// Both sides hold a value and they differ.
    pub mismatched: u64,
    /// Offline holds a value; the store holds no row or a null.
    pub missing_online: u64,
    /// The store holds a value where offline has none.
    pub extra: u64,
    /// The largest |online - offline| over numeric mismatches (`None`: no numeric mismatch;
    /// infinite when one side is NaN or infinite).
    pub max_abs_diff: Option<f64>,
}

impl FeatureConsistency {
    fn new(feature: String) -> Self {
        FeatureConsistency {
            feature,
            ..Default::default()
        }
    }

    fn count(&mut self, offline: &Value, online: Option<&Value>) -> Option<Class> {
        self.compared += 1;
        let online_null = online.is_none_or(Value::is_null);
        let class = if online.is_some_and(|v| v.to_bytes() == offline.to_bytes()) {
            self.equal += 1;
            return None;
        } else if online_null {
            // Offline is not null here, or the two would be equal.
            self.missing_online += 1;
            Class::MissingOnline
        } else if offline.is_null() {
            self.extra += 1;
            Class::Extra
        } else {
            self.mismatched += 1;
            Class::Mismatched
        };
        if let Some(d) = online.and_then(|on| abs_diff(offline, on)) {
            self.max_abs_diff = Some(self.max_abs_diff.map_or(d, |m| m.max(d)));
        }
        Some(class)
    }

    /// The counts as JSON (`max_abs_diff` null when there is none; infinities as text).
    pub fn to_json(&self) -> Json {
        json!({
            "feature": self.feature,
            "compared": self.compared,
            "equal": self.equal,
            "mismatched": self.mismatched,
            "missing_online": self.missing_online,
            "extra": self.extra,
            "max_abs_diff": self.max_abs_diff.map(number_json),
        })
    }
}

fn number_json(x: f64) -> Json {
    if x.is_finite() {
        json!(x)
    } else {
        json!(x.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Mismatched,
    MissingOnline,
    Extra,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Mismatched => "mismatched",
            Class::MissingOnline => "missing_online",
            Class::Extra => "extra",
        }
    }
}

/// One cell that is not equal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellDiff {
    /// `view:feature`.
    pub feature: String,
    /// The entity's join keys.
    pub entity: Json,
    /// `mismatched`, `missing_online` or `extra`.
    pub class: &'static str,
    /// The offline value.
    pub offline: Json,
    /// The online value (null: no value or no row).
    pub online: Json,
}

/// What was compared for one view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewSummary {
    /// The view.
    pub view: String,
    /// Its materialization watermark (RFC 3339), the time offline values are computed as of;
    /// `None` when never materialized (then nothing was compared).
    pub as_of: Option<String>,
    /// Entities the offline engine holds at the watermark (within the TTL).
    pub offline_entities: u64,
    /// Entities sampled.
    pub sampled: u64,
    /// Sampled entities the store holds no row for.
    pub missing_rows: u64,
    /// Sampled entities whose online row is newer than the offline one (pushed after the
    /// materialization, say): their cells are compared all the same.
    pub newer_online: u64,
    /// Why nothing was compared, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result of [`service`] or [`log()`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `service:NAME` or `log:MODEL[:VERSION]@START..END`.
    pub target: String,
    /// Per view (services; empty for logs).
    pub views: Vec<ViewSummary>,
    /// Per model version (logs; empty for services).
    pub versions: Vec<VersionSummary>,
    /// Per feature, in the service's (or the log's) order.
    pub features: Vec<FeatureConsistency>,
    /// The first cells that differ (at most [`MAX_DIFFS`]).
    pub diffs: Vec<CellDiff>,
}

/// Cells that differ listed in a report, at most.
pub const MAX_DIFFS: usize = 20;

impl Report {
    /// Cells that are not equal, over every feature.
    pub fn unequal(&self) -> u64 {
        self.features
            .iter()
            .map(|f| f.mismatched + f.missing_online + f.extra)
            .sum()
    }

    /// The JSON report: `{"target", "views", "features", "diffs", "unequal"}`, plus
    /// `"versions"` for a log.
    pub fn to_json(&self) -> Json {
        let mut v = json!({
            "target": self.target,
            "views": self.views,
            "features": self.features.iter().map(FeatureConsistency::to_json).collect::<Vec<_>>(),
            "diffs": self.diffs,
            "unequal": self.unequal(),
        });
        if !self.versions.is_empty() {
            v["versions"] = json!(self.versions);
        }
        v
    }

    fn record(&mut self, f: usize, class: Class, entity: &dyn Fn() -> Json, off: Json, on: Json) {
        if self.diffs.len() < MAX_DIFFS {
            self.diffs.push(CellDiff {
                feature: self.features[f].feature.clone(),
                entity: entity(),
                class: class.name(),
                offline: off,
                online: on,
            });
        }
    }
}

/// |a - b| of two numbers, or the largest over the components of two vectors of one length
/// (infinite when a side is NaN or infinite where the other is not); `None` otherwise.
fn abs_diff(a: &Value, b: &Value) -> Option<f64> {
    let one = |x: f64, y: f64| {
        if x == y || (x.is_nan() && y.is_nan()) {
            return 0.0;
        }
        let d = (x - y).abs();
        if d.is_nan() { f64::INFINITY } else { d }
    };
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return Some(one(x, y));
    }
    let (x, y) = (components(a)?, components(b)?);
    (x.len() == y.len()).then(|| {
        x.iter()
            .zip(&y)
            .map(|(x, y)| one(*x, *y))
            .fold(0.0, f64::max)
    })
}

fn components(v: &Value) -> Option<Vec<f64>> {
    match v {
        Value::Float64List(v) => Some(v.clone()),
        Value::Float32List(v) => Some(v.iter().map(|x| f64::from(*x)).collect()),
        Value::Int64List(v) => Some(v.iter().map(|x| *x as f64).collect()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int64(x) => Some(*x as f64),
        Value::Int32(x) => Some(f64::from(*x)),
        Value::Float64(x) => Some(*x),
        Value::Float32(x) => Some(f64::from(*x)),
        _ => None,
    }
}

/// A value for display in a report (not for comparing: that is the encoding's job).
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int64(x) | Value::Timestamp(x) => json!(x),
        Value::Int32(x) => json!(x),
        Value::Float64(x) => number_json(*x),
        Value::Float32(x) => number_json(f64::from(*x)),
        Value::String(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::Float32List(v) => json!(v),
        Value::Float64List(v) => json!(v),
        Value::Int64List(v) => json!(v),
        Value::StringList(v) => json!(v),
    }
}

/// FNV-1a, 64 bits: the sampling order (fixed, so samples repeat across runs and machines).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The indices of the rows of `keys` to compare: at most `n`, by ascending hash of the key.
fn sample(keys: &[Option<EntityKey>], n: usize) -> Vec<usize> {
    let mut order: Vec<(u64, &[u8], usize)> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| k.as_ref().map(|k| (fnv1a(&k.0), k.0.as_slice(), i)))
        .collect();
    order.sort_unstable();
    order.truncate(n);
    let mut rows: Vec<usize> = order.into_iter().map(|(_, _, i)| i).collect();
    rows.sort_unstable();
    rows
}

fn service_views(registry: &Registry, name: &str) -> Result<Vec<(String, Vec<String>)>> {
    let svc = registry.services.get(name).ok_or_else(|| {
        Error::Input(format!(
            "no feature service '{name}'{}",
            quiver_core::registry::suggest(name, registry.services.keys())
        ))
    })?;
    let mut views: Vec<(String, Vec<String>)> = Vec::new();
    for f in &svc.features {
        match views.iter_mut().find(|(v, _)| *v == f.view) {
            Some((_, fs)) => fs.push(f.feature.clone()),
            None => views.push((f.view.clone(), vec![f.feature.clone()])),
        }
    }
    Ok(views)
}

/// Compares the online store with the offline engine for `sample` entities of each view of
/// service `name`, as of each view's watermark (see the module documentation).
pub async fn service(
    engine: &OfflineEngine,
    store: &dyn OnlineStore,
    meta: &SqlMetadataStore,
    name: &str,
    sample_size: usize,
) -> Result<Report> {
    if sample_size == 0 {
        return Err(Error::Input("--sample: give at least 1 entity".into()));
    }
    let registry = engine.registry();
    let views = service_views(registry, name)?;
    let watermarks = meta.watermarks().await?;
    let mut report = Report {
        target: format!("service:{name}"),
        views: Vec::new(),
        versions: Vec::new(),
        features: Vec::new(),
        diffs: Vec::new(),
    };
    for (view_name, wanted) in &views {
        let view = &registry.views[view_name];
        let first = report.features.len();
        report.features.extend(
            wanted
                .iter()
                .map(|f| FeatureConsistency::new(format!("{view_name}:{f}"))),
        );
        let mut summary = ViewSummary {
            view: view_name.clone(),
            as_of: None,
            offline_entities: 0,
            sampled: 0,
            missing_rows: 0,
            newer_online: 0,
            note: None,
        };
        if view.is_request() {
            summary.note = Some("a request-time view: computed per request, not stored".into());
            report.views.push(summary);
            continue;
        }
        if !view.online {
            summary.note = Some("online: false, not served".into());
            report.views.push(summary);
            continue;
        }
        let Some(&watermark) = watermarks.get(view_name) else {
            summary.note =
                Some("never materialized (no watermark): run quiver materialize first".into());
            report.views.push(summary);
            continue;
        };
        summary.as_of = Some(quiver_online::format_time(watermark));
        let since = (!view.ttl.is_zero()).then(|| watermark.saturating_sub(view.ttl.micros()));
        let batch = engine.latest(view_name, watermark, since).await?;
        let join_keys = registry.view_join_keys(view);
        let key_types: Vec<ValueType> = join_keys.iter().map(|k| k.value_type).collect();
        let keys: Vec<Option<EntityKey>> = (0..batch.num_rows())
            .map(|i| key_of(&batch, i, &key_types))
            .collect::<Result<_, String>>()
            .map_err(Error::Input)?;
        summary.offline_entities = keys.iter().filter(|k| k.is_some()).count() as u64;
        let rows = sample(&keys, sample_size);
        summary.sampled = rows.len() as u64;
        let take =
            datafusion::arrow::array::UInt32Array::from_iter_values(rows.iter().map(|&i| i as u32));
        let picked = datafusion::arrow::compute::take_record_batch(&batch, &take)
            .map_err(|e| Error::Input(format!("view '{view_name}': {e}")))?;
        let outputs = view.outputs();
        let types: Vec<ValueType> = outputs.iter().map(|(_, t)| *t).collect();
        let all_names: Vec<String> = outputs.iter().map(|(n, _)| n.to_string()).collect();
        let (offline_rows, _) = rows_of(&picked, &key_types, &types)
            .map_err(|e| Error::Input(format!("view '{view_name}': {e}")))?;
        let slots: Vec<usize> = wanted
            .iter()
            .map(|f| {
                all_names
                    .iter()
                    .position(|n| n == f)
                    .expect("a view feature")
            })
            .collect();
        let keys: Vec<EntityKey> = offline_rows.iter().map(|r| r.key.clone()).collect();
        let online = store.read(view_name, &keys, wanted).await?;
        for (i, (off, on)) in offline_rows.iter().zip(&online).enumerate() {
            match on {
                None => summary.missing_rows += 1,
                Some(s) if s.event_ts > off.event_ts => summary.newer_online += 1,
                Some(_) => {}
            }
            let entity = || entity_json(&picked, i, &join_keys);
            for (j, &slot) in slots.iter().enumerate() {
                let offline = &off.values[slot];
                let online = on.as_ref().map(|s| &s.values[j]);
                if let Some(class) = report.features[first + j].count(offline, online) {
                    report.record(
                        first + j,
                        class,
                        &entity,
                        value_json(offline),
                        online.map_or(Json::Null, value_json),
                    );
                }
            }
        }
        report.views.push(summary);
    }
    if report.views.iter().all(|v| v.as_of.is_none()) {
        let notes: Vec<String> = report
            .views
            .iter()
            .map(|v| format!("{}: {}", v.view, v.note.as_deref().unwrap_or("")))
            .collect();
        return Err(Error::Input(format!(
            "service '{name}': no view to compare ({})",
            notes.join("; ")
        )));
    }
    Ok(report)
}

/// The join keys of row `i` of a batch whose first columns are the keys.
fn entity_json(batch: &RecordBatch, i: usize, keys: &[quiver_core::registry::JoinKey]) -> Json {
    let mut m = serde_json::Map::new();
    for (c, k) in keys.iter().enumerate() {
        let col = batch.column(c);
        let v = if col.is_null(i) {
            Json::Null
        } else {
            Value::from_array(col, i, k.value_type)
                .map(|v| value_json(&v))
                .unwrap_or(Json::Null)
        };
        m.insert(k.name.clone(), v);
    }
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_fall_in_one_class_each() {
        let mut f = FeatureConsistency::new("v:f".into());
        assert_eq!(
            f.count(&Value::Float64(1.0), Some(&Value::Float64(1.0))),
            None
        );
        assert_eq!(f.count(&Value::Null, Some(&Value::Null)), None);
        assert_eq!(
            f.count(&Value::Float64(1.0), Some(&Value::Float64(3.5))),
            Some(Class::Mismatched)
        );
        // The encoding decides: -0.0 is not 0.0, an int32 is not an int64.
        assert_eq!(
            f.count(&Value::Float64(0.0), Some(&Value::Float64(-0.0))),
            Some(Class::Mismatched)
        );
        assert_eq!(
            f.count(&Value::Int64(1), Some(&Value::Int32(1))),
            Some(Class::Mismatched)
        );
        assert_eq!(
            f.count(&Value::Float64(2.0), None),
            Some(Class::MissingOnline)
        );
        assert_eq!(
            f.count(&Value::Float64(2.0), Some(&Value::Null)),
            Some(Class::MissingOnline)
        );
        assert_eq!(
            f.count(&Value::Null, Some(&Value::String("x".into()))),
            Some(Class::Extra)
        );
        assert_eq!(
            (f.compared, f.equal, f.mismatched, f.missing_online, f.extra),
            (8, 2, 3, 2, 1)
        );
        assert_eq!(f.max_abs_diff, Some(2.5));
        // NaN on one side is an infinite difference.
        f.count(&Value::Float64(f64::NAN), Some(&Value::Float64(1.0)));
        assert_eq!(f.max_abs_diff, Some(f64::INFINITY));
        assert_eq!(f.to_json()["max_abs_diff"], "inf");
    }

    #[test]
    fn the_sample_is_deterministic_and_stable() {
        let keys: Vec<Option<EntityKey>> = (0..1000)
            .map(|u| Some(EntityKey::new(&[quiver_online::KeyValue::Int(u)])))
            .collect();
        let a = sample(&keys, 10);
        assert_eq!(a, sample(&keys, 10));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // Spread over the key space, not the first ten.
        assert!(a.iter().any(|&i| i >= 100), "{a:?}");
        // Removing an entity outside the sample leaves the sample as it was.
        let outside = (0..1000).find(|i| !a.contains(i)).unwrap();
        let mut fewer = keys.clone();
        fewer[outside] = None;
        assert_eq!(sample(&fewer, 10), a);
        assert_eq!(sample(&keys, 5000).len(), 1000);
    }
}
