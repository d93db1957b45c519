//! One scan of a quality set's target computing every check (see the [module](super) overview).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::DFSchema;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, ExprSchemable, cast as cast_expr, ident};
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use quiver_core::quality::Scalar;
use quiver_core::{CheckKind, QualitySet, QualityTarget, Registry, ValueType};
use quiver_offline::OfflineEngine;
use quiver_offline::source::{clean, source_frame};
use quiver_offline::types::{compatible, describe, is_string, is_timestamp_like, timestamp_type};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::volume::robust_z;
use super::{CheckResult, Result, SetReport, Status, now_us, rfc3339};

/// Examples kept per failing check.
pub const MAX_EXAMPLES: usize = 5;

/// Progress of a scan, reported per batch.
pub trait ScanProgress: Send + Sync {
    /// `rows` more rows of `quality`'s target were read.
    fn rows_scanned(&self, _quality: &str, _rows: u64) {}
}

/// Progress that reports nothing.
pub struct NoScanProgress;
impl ScanProgress for NoScanProgress {}

/// What a target column must be, for the schema check.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Declared {
    Type(ValueType),
    Timestamp,
    Present,
}

impl std::fmt::Display for Declared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declared::Type(t) => write!(f, "{t}"),
            Declared::Timestamp => write!(f, "timestamp"),
            Declared::Present => write!(f, "any"),
        }
    }
}

/// The columns the registry declares for a set's target, in order, without duplicates: for a
/// source, its timestamps, the join keys of the views reading it, their plain features' columns
/// (with the declared types) and their aggregations' columns (present); for a view, its keys,
/// `event_timestamp` and outputs.
fn declared_columns(reg: &Registry, set: &QualitySet) -> Vec<(String, Declared)> {
    let mut out: Vec<(String, Declared)> = Vec::new();
    let mut add = |name: &str, d: Declared| {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), d));
        }
    };
    match &set.target {
        QualityTarget::Source(s) => {
            let Some(source) = reg.sources.get(s) else {
                return out;
            };
            add(&source.timestamp_field, Declared::Timestamp);
            if let Some(c) = &source.created_timestamp_field {
                add(c, Declared::Timestamp);
            }
            for view in reg.views.values().filter(|v| &v.source == s) {
                for k in reg.view_join_keys(view) {
                    add(&k.name, Declared::Type(k.value_type));
                }
                for f in view.features.iter().filter(|f| f.expr.is_none()) {
                    add(f.source_column(), Declared::Type(f.value_type));
                }
                for a in &view.aggregations {
                    if let Some(c) = &a.column {
                        add(c, Declared::Present);
                    }
                }
            }
        }
        QualityTarget::View(v) => {
            let Some(view) = reg.views.get(v) else {
                return out;
            };
            for k in reg.view_join_keys(view) {
                add(&k.name, Declared::Type(k.value_type));
            }
            add("event_timestamp", Declared::Timestamp);
            for (n, t) in view.outputs() {
                add(n, Declared::Type(t));
            }
        }
    }
    out
}

/// The source a set reads (a view's source for a view target).
pub fn source_of(reg: &Registry, set: &QualitySet) -> String {
    match &set.target {
        QualityTarget::Source(s) => s.clone(),
        QualityTarget::View(v) => reg
            .views
            .get(v)
            .map(|v| v.source.clone())
            .unwrap_or_default(),
    }
}

/// The rows a set checks, as a `DataFrame`, and whether a cluster should scan them (a source or
/// a plain view's rows, not an aggregation view's latest values, computed already); a message
/// when they cannot be read.
pub(crate) async fn target_frame(
    engine: &OfflineEngine,
    set: &QualitySet,
    as_of_us: i64,
) -> std::result::Result<(DataFrame, bool), String> {
    let reg = engine.registry();
    match &set.target {
        QualityTarget::Source(s) => {
            let source = reg
                .sources
                .get(s)
                .ok_or_else(|| format!("no source '{s}' in the registry"))?;
            let df = source_frame(engine.session(), engine.root(), source)
                .await
                .map_err(|e| e.to_string())?;
            Ok((df, true))
        }
        QualityTarget::View(v) => {
            let view = reg
                .views
                .get(v)
                .ok_or_else(|| format!("no feature view '{v}' in the registry"))?;
            if view.is_aggregation() {
                let batch = engine
                    .latest(v, as_of_us, None)
                    .await
                    .map_err(|e| e.to_string())?;
                let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(clean)?;
                let df = engine
                    .session()
                    .read_table(Arc::new(table))
                    .map_err(clean)?;
                Ok((df, false))
            } else {
                let df = engine.view_rows(v).await.map_err(|e| e.to_string())?;
                Ok((df, true))
            }
        }
    }
}

fn quote(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

fn sql_literal(v: &Scalar, as_text: bool) -> std::result::Result<String, String> {
    Ok(match (v, as_text) {
        (Scalar::Str(s), true) => format!("'{}'", s.replace('\'', "''")),
        (other, true) => format!("'{other}'"),
        (Scalar::Str(s), false) => {
            return Err(format!("value '{s}' is not a number"));
        }
        (Scalar::Bool(b), false) => b.to_string(),
        (Scalar::Int(i), false) => i.to_string(),
        (Scalar::Float(x), false) => format!("{x:?}"),
    })
}

/// What the fold does for one check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Fold {
    /// Nothing to fold: decided before the scan (schema, or a check that cannot run).
    None,
    /// Count the rows where boolean column `pred` is true; keep examples of `show`; with
    /// `minmax`, also the smallest and largest value of that column (range).
    Pred {
        pred: usize,
        show: Vec<usize>,
        minmax: Option<usize>,
    },
    /// Distinct values of `keys` (rows with a null in them skipped).
    Unique { keys: Vec<usize>, show: Vec<usize> },
    /// Newest event time (every set folds it; this marks the check).
    Freshness,
    /// Rows per `every` bucket back from the as-of time, `buckets` of them (the last first).
    Volume { every_us: i64, buckets: usize },
}

/// A check decided before the scan.
struct Decided {
    passed: bool,
    observed: Value,
    threshold: Value,
    message: String,
    violations: u64,
}

/// The shared plan of a scan (what a cluster's plan carries of it, in [`super::fold_exec`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Spec {
    folds: Vec<Fold>,
    /// Column of the event time (µs, UTC), if the target has a usable one.
    ts: Option<usize>,
    as_of_us: i64,
    names: Vec<String>,
}

/// A fast hash for the keys of unique checks (a multiply-rotate mix per 8 bytes and the
/// splitmix64 finalizer, so that every bit of the result depends on every bit of the key). Keys
/// come from the user's own data, so resistance to crafted collisions (std's SipHash, three
/// times slower here) buys nothing.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    fn write_i64(&mut self, v: i64) {
        self.mix(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type Keys<T> = HashSet<T, std::hash::BuildHasherDefault<KeyHasher>>;

/// Keys seen by a unique check: an integer key's values (sorted when a partition ends, the
/// partitions' runs merged, duplicates counted in one sequential pass: a hash set of 10M keys
/// was two thirds of a 10M-row scan, all in random memory accesses), or other keys' row
/// encodings in a hash set.
enum KeySet {
    Ints(Vec<i64>),
    Rows(Keys<Box<[u8]>>, RowConverter),
}

/// One partition's (then the merged) state of a check.
enum State {
    None,
    Pred {
        failing: u64,
        examples: Vec<Value>,
        min: f64,
        max: f64,
    },
    Unique {
        non_null: u64,
        set: KeySet,
        examples: Vec<Value>,
    },
    Volume(Vec<u64>),
}

pub(crate) struct Partial {
    rows: u64,
    newest: Option<i64>,
    later_rows: u64,
    states: Vec<State>,
}

impl Partial {
    /// Nothing folded yet, for rows of `schema`.
    pub(crate) fn new(spec: &Spec, schema: &datafusion::arrow::datatypes::Schema) -> Result<Self> {
        Ok(Partial {
            rows: 0,
            newest: None,
            later_rows: 0,
            states: spec
                .folds
                .iter()
                .map(|f| new_state(f, schema))
                .collect::<Result<_>>()?,
        })
    }

    /// Ends a partition's fold: integer keys of unique checks sorted (what [`merge`] expects).
    pub(crate) fn finish(mut self) -> Self {
        for s in self.states.iter_mut() {
            if let State::Unique {
                set: KeySet::Ints(v),
                ..
            } = s
            {
                v.sort_unstable();
            }
        }
        self
    }

    /// The partial as bytes (JSON), for a cluster's task to send back.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let finite = |x: f64| x.is_finite().then_some(x);
        let states: Vec<Value> = self
            .states
            .iter()
            .map(|s| match s {
                State::None => json!({"none": null}),
                State::Pred {
                    failing,
                    examples,
                    min,
                    max,
                } => json!({"pred": {"failing": failing, "examples": examples, "min": finite(*min), "max": finite(*max)}}),
                State::Unique {
                    non_null,
                    set,
                    examples,
                } => {
                    let set = match set {
                        KeySet::Ints(v) => json!({"ints": v}),
                        KeySet::Rows(rows, _) => {
                            json!({"rows": rows.iter().map(|r| r.as_ref()).collect::<Vec<&[u8]>>()})
                        }
                    };
                    json!({"unique": {"non_null": non_null, "set": set, "examples": examples}})
                }
                State::Volume(counts) => json!({ "volume": counts }),
            })
            .collect();
        serde_json::to_vec(&json!({
            "rows": self.rows,
            "newest": self.newest,
            "later_rows": self.later_rows,
            "states": states,
        }))
        .expect("JSON of plain values")
    }

    /// [`to_bytes`](Self::to_bytes)'s partial back, for rows of `schema`.
    pub(crate) fn from_bytes(
        spec: &Spec,
        schema: &datafusion::arrow::datatypes::Schema,
        bytes: &[u8],
    ) -> std::result::Result<Self, String> {
        let bad = |what: &str| format!("a cluster task's quality fold: bad {what}");
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        let mut part = Partial::new(spec, schema).map_err(|e| e.to_string())?;
        part.rows = v["rows"].as_u64().ok_or_else(|| bad("rows"))?;
        part.newest = v["newest"].as_i64();
        part.later_rows = v["later_rows"].as_u64().ok_or_else(|| bad("later_rows"))?;
        let states = v["states"].as_array().ok_or_else(|| bad("states"))?;
        if states.len() != part.states.len() {
            return Err(bad("number of states"));
        }
        let examples = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let u64s = |v: &Value| -> Vec<u64> {
            v.as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        for (s, w) in part.states.iter_mut().zip(states) {
            match s {
                State::None => {}
                State::Pred {
                    failing,
                    examples: ex,
                    min,
                    max,
                } => {
                    let w = &w["pred"];
                    *failing = w["failing"].as_u64().ok_or_else(|| bad("pred"))?;
                    *ex = examples(&w["examples"]);
                    *min = w["min"].as_f64().unwrap_or(f64::INFINITY);
                    *max = w["max"].as_f64().unwrap_or(f64::NEG_INFINITY);
                }
                State::Unique {
                    non_null,
                    set,
                    examples: ex,
                } => {
                    let w = &w["unique"];
                    *non_null = w["non_null"].as_u64().ok_or_else(|| bad("unique"))?;
                    *ex = examples(&w["examples"]);
                    match set {
                        KeySet::Ints(v) => {
                            *v = w["set"]["ints"]
                                .as_array()
                                .ok_or_else(|| bad("unique keys"))?
                                .iter()
                                .map(|x| x.as_i64().ok_or_else(|| bad("unique key")))
                                .collect::<std::result::Result<_, _>>()?;
                        }
                        KeySet::Rows(rows, _) => {
                            for r in w["set"]["rows"]
                                .as_array()
                                .ok_or_else(|| bad("unique keys"))?
                            {
                                let r: Vec<u8> = serde_json::from_value(r.clone())
                                    .map_err(|_| bad("unique key"))?;
                                rows.insert(r.into_boxed_slice());
                            }
                        }
                    }
                }
                State::Volume(counts) => {
                    let got = u64s(&w["volume"]);
                    if got.len() != counts.len() {
                        return Err(bad("volume"));
                    }
                    *counts = got;
                }
            }
        }
        Ok(part)
    }
}

fn json_cell(a: &ArrayRef, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    let text = array_value_to_string(a, i).unwrap_or_default();
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        d if d.is_numeric() => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        _ => Value::String(text),
    }
}

fn row_json(batch: &RecordBatch, show: &[usize], names: &[String], i: usize) -> Value {
    let mut m = serde_json::Map::new();
    for &c in show {
        m.insert(names[c].clone(), json_cell(batch.column(c), i));
    }
    Value::Object(m)
}

fn new_state(fold: &Fold, schema: &datafusion::arrow::datatypes::Schema) -> Result<State> {
    Ok(match fold {
        Fold::None | Fold::Freshness => State::None,
        Fold::Pred { .. } => State::Pred {
            failing: 0,
            examples: Vec::new(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        },
        Fold::Unique { keys, .. } => {
            let int = keys.len() == 1 && is_integer(schema.field(keys[0]).data_type());
            State::Unique {
                non_null: 0,
                set: if int {
                    KeySet::Ints(Vec::new())
                } else {
                    let fields = keys
                        .iter()
                        .map(|&k| SortField::new(schema.field(k).data_type().clone()))
                        .collect();
                    KeySet::Rows(Keys::default(), RowConverter::new(fields)?)
                },
                examples: Vec::new(),
            }
        }
        Fold::Volume { buckets, .. } => State::Volume(vec![0; buckets + 1]),
    })
}

fn is_integer(d: &DataType) -> bool {
    d.is_integer()
}

impl From<datafusion::arrow::error::ArrowError> for super::QualityError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        super::QualityError::Offline(e.into())
    }
}

pub(crate) fn fold_batch(spec: &Spec, part: &mut Partial, batch: &RecordBatch) -> Result<()> {
    let n = batch.num_rows();
    part.rows += n as u64;
    let ts = match spec.ts {
        Some(c) => Some(cast(batch.column(c), &timestamp_type())?),
        None => None,
    };
    let ts = ts
        .as_ref()
        .map(|a| a.as_primitive::<TimestampMicrosecondType>());
    if let Some(ts) = ts {
        for i in 0..n {
            if ts.is_valid(i) {
                let t = ts.value(i);
                if t <= spec.as_of_us {
                    part.newest = Some(part.newest.map_or(t, |m| m.max(t)));
                } else {
                    part.later_rows += 1;
                }
            }
        }
    }
    for (fold, state) in spec.folds.iter().zip(part.states.iter_mut()) {
        match (fold, state) {
            (
                Fold::Pred { pred, show, minmax },
                State::Pred {
                    failing,
                    examples,
                    min,
                    max,
                },
            ) => {
                let p = batch.column(*pred).as_boolean();
                let bad = p.true_count();
                *failing += bad as u64;
                if bad > 0 && examples.len() < MAX_EXAMPLES {
                    for i in 0..n {
                        if examples.len() >= MAX_EXAMPLES {
                            break;
                        }
                        if p.is_valid(i) && p.value(i) {
                            examples.push(row_json(batch, show, &spec.names, i));
                        }
                    }
                }
                if let Some(c) = minmax {
                    let v = cast(batch.column(*c), &DataType::Float64)?;
                    let v = v.as_primitive::<Float64Type>();
                    for i in 0..n {
                        if v.is_valid(i) {
                            let x = v.value(i);
                            if !x.is_nan() {
                                *min = min.min(x);
                                *max = max.max(x);
                            }
                        }
                    }
                }
            }
            (
                Fold::Unique { keys, show },
                State::Unique {
                    non_null,
                    set,
                    examples,
                },
            ) => match set {
                KeySet::Ints(v) => {
                    let k = cast(batch.column(keys[0]), &DataType::Int64)?;
                    let k = k.as_primitive::<Int64Type>();
                    if k.null_count() == 0 {
                        v.extend_from_slice(k.values());
                        *non_null += n as u64;
                    } else {
                        for i in 0..n {
                            if k.is_valid(i) {
                                v.push(k.value(i));
                                *non_null += 1;
                            }
                        }
                    }
                }
                KeySet::Rows(s, conv) => {
                    let cols: Vec<ArrayRef> =
                        keys.iter().map(|&k| batch.column(k).clone()).collect();
                    let rows = conv.convert_columns(&cols)?;
                    for i in 0..n {
                        if cols.iter().any(|c| c.is_null(i)) {
                            continue;
                        }
                        *non_null += 1;
                        let bytes: Box<[u8]> = rows.row(i).as_ref().into();
                        if !s.insert(bytes) && examples.len() < MAX_EXAMPLES {
                            examples.push(row_json(batch, show, &spec.names, i));
                        }
                    }
                }
            },
            (Fold::Volume { every_us, buckets }, State::Volume(counts)) => {
                if let Some(ts) = ts {
                    for i in 0..n {
                        if ts.is_valid(i) {
                            let back = spec.as_of_us - ts.value(i);
                            if back >= 0 {
                                let k = (back / every_us) as usize;
                                if k <= *buckets {
                                    counts[k] += 1;
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn key_json(conv: &RowConverter, bytes: &[u8], names: &[String], keys: &[usize]) -> Value {
    let parser = conv.parser();
    let row = parser.parse(bytes);
    match conv.convert_rows([row]) {
        Ok(cols) => {
            let mut m = serde_json::Map::new();
            for (c, &k) in cols.iter().zip(keys) {
                m.insert(names[k].clone(), json_cell(c, 0));
            }
            Value::Object(m)
        }
        Err(_) => Value::Null,
    }
}

pub(crate) fn merge(spec: &Spec, into: &mut Partial, other: Partial) {
    into.rows += other.rows;
    into.later_rows += other.later_rows;
    into.newest = match (into.newest, other.newest) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    for ((fold, a), b) in spec
        .folds
        .iter()
        .zip(into.states.iter_mut())
        .zip(other.states)
    {
        match (a, b) {
            (
                State::Pred {
                    failing,
                    examples,
                    min,
                    max,
                },
                State::Pred {
                    failing: f2,
                    examples: e2,
                    min: mn2,
                    max: mx2,
                },
            ) => {
                *failing += f2;
                examples.extend(e2);
                examples.truncate(MAX_EXAMPLES);
                *min = min.min(mn2);
                *max = max.max(mx2);
            }
            (
                State::Unique {
                    non_null,
                    set,
                    examples,
                },
                State::Unique {
                    non_null: n2,
                    set: s2,
                    examples: e2,
                },
            ) => {
                *non_null += n2;
                examples.extend(e2);
                let keys = match fold {
                    Fold::Unique { keys, .. } => keys.as_slice(),
                    _ => &[],
                };
                match (set, s2) {
                    (KeySet::Ints(a), KeySet::Ints(b)) => {
                        *a = merge_sorted(std::mem::take(a), b);
                    }
                    (KeySet::Rows(a, conv), KeySet::Rows(b, _)) => {
                        let (mut big, small) = if a.len() >= b.len() {
                            (std::mem::take(a), b)
                        } else {
                            (b, std::mem::take(a))
                        };
                        for v in small {
                            if big.contains(&v) {
                                if examples.len() < MAX_EXAMPLES {
                                    examples.push(key_json(conv, &v, &spec.names, keys));
                                }
                            } else {
                                big.insert(v);
                            }
                        }
                        *a = big;
                    }
                    _ => {}
                }
                examples.truncate(MAX_EXAMPLES);
            }
            (State::Volume(a), State::Volume(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
            _ => {}
        }
    }
}

/// Runs every check of `set` in one scan of its target, as of `as_of_us` (freshness and
/// volume measure against it; rows after it count for the other checks but not for those
/// two). A target that cannot be read, or a check that cannot run on it (a missing column, a
/// SQL expression that does not fit), fails that check with the reason; only an engine failure
/// is an error.
pub async fn run_set(
    engine: &OfflineEngine,
    set: &QualitySet,
    as_of_us: i64,
    progress: &Arc<dyn ScanProgress>,
) -> Result<SetReport> {
    let started = Instant::now();
    let checked_us = now_us();
    let reg = engine.registry();
    let source = source_of(reg, set);
    let report = |rows, newest, results| SetReport {
        quality: set.name.clone(),
        target: set.target.to_string(),
        source: source.clone(),
        as_of_us,
        checked_us,
        rows,
        newest_us: newest,
        seconds: started.elapsed().as_secs_f64(),
        results,
    };
    let all_fail = |why: &str| -> Vec<CheckResult> {
        (0..set.checks.len())
            .map(|i| {
                let c = &set.checks[i];
                CheckResult {
                    quality: set.name.clone(),
                    index: i,
                    check_type: c.kind.type_name(),
                    columns: c.kind.columns().iter().map(|s| s.to_string()).collect(),
                    severity: set.severity_of(c),
                    status: Status::of(false, set.severity_of(c)),
                    observed: json!({"error": why}),
                    threshold: Value::Null,
                    examples: vec![],
                    message: why.to_string(),
                    violations: 1,
                }
            })
            .collect()
    };
    let (df, on_cluster) = match target_frame(engine, set, as_of_us).await {
        Ok(df) => df,
        Err(why) => {
            let why = format!("cannot read {}: {why}", set.target);
            return Ok(report(0, None, all_fail(&why)));
        }
    };
    let schema: DFSchema = df.schema().clone();
    let arrow_schema = schema.as_arrow();
    let column_names: Vec<String> = arrow_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let type_of = |c: &str| -> Option<DataType> {
        arrow_schema
            .field_with_name(c)
            .ok()
            .map(|f| f.data_type().clone())
    };
    let missing = |c: &str| -> String {
        format!(
            "column '{c}' not found in {}{}; columns: {}",
            set.target,
            quiver_core::registry::suggest(c, column_names.iter()),
            column_names.join(", ")
        )
    };
    let ts_name = reg.quality_timestamp_column(set);
    let ts_problem: Option<String> = match type_of(&ts_name) {
        None => Some(format!("timestamp {}", missing(&ts_name))),
        Some(d) if !is_timestamp_like(&d) => Some(format!(
            "timestamp column '{ts_name}' is {}, not a timestamp",
            describe(&d)
        )),
        Some(_) => None,
    };

    // The projection: raw columns (by name), then one boolean column per row-level check.
    let mut proj: Vec<(String, Expr)> = Vec::new();
    let col_index = |name: &str, proj: &mut Vec<(String, Expr)>| -> usize {
        if let Some(i) = proj.iter().position(|(n, _)| n == name) {
            return i;
        }
        proj.push((name.to_string(), ident(name)));
        proj.len() - 1
    };
    let ts_col = ts_problem.is_none().then(|| col_index(&ts_name, &mut proj));
    let parse = |sql: &str| -> std::result::Result<Expr, String> {
        let e = engine
            .session()
            .parse_sql_expr(sql, &schema)
            .map_err(clean)?;
        let t = e.get_type(&schema).map_err(clean)?;
        if !matches!(t, DataType::Boolean | DataType::Null) {
            return Err(format!("'{sql}' is {}, not a condition", describe(&t)));
        }
        Ok(e)
    };
    let mut folds: Vec<Fold> = Vec::new();
    let mut decided: Vec<Option<Decided>> = Vec::new();
    let decide_fail = |message: String| Decided {
        passed: false,
        observed: json!({"error": message}),
        threshold: Value::Null,
        message,
        violations: 1,
    };
    for (i, check) in set.checks.iter().enumerate() {
        if let Some(c) = check
            .kind
            .columns()
            .into_iter()
            .find(|c| type_of(c).is_none())
        {
            folds.push(Fold::None);
            decided.push(Some(decide_fail(missing(c))));
            continue;
        }
        let show_of = |cols: &[&str], proj: &mut Vec<(String, Expr)>| -> Vec<usize> {
            let mut v: Vec<usize> = cols.iter().map(|c| col_index(c, proj)).collect();
            if let Some(t) = ts_col
                && !v.contains(&t)
            {
                v.push(t);
            }
            v
        };
        let pred_sql: std::result::Result<Option<String>, String> = match &check.kind {
            CheckKind::NotNull { columns } => Ok(Some(
                columns
                    .iter()
                    .map(|c| format!("{} IS NULL", quote(c)))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            )),
            CheckKind::NullShare { column, .. } => Ok(Some(format!("{} IS NULL", quote(column)))),
            CheckKind::Range { column, min, max } => {
                let d = type_of(column).expect("checked");
                if !d.is_numeric() {
                    Err(format!(
                        "column '{column}' is {}, not a number: a range check needs numbers",
                        describe(&d)
                    ))
                } else {
                    let q = quote(column);
                    let mut parts = Vec::new();
                    if let Some(lo) = min {
                        parts.push(format!("{q} < {lo:?}"));
                    }
                    if let Some(hi) = max {
                        parts.push(format!("{q} > {hi:?}"));
                    }
                    if d.is_floating() {
                        parts.push(format!("isnan(CAST({q} AS DOUBLE))"));
                    }
                    Ok(Some(parts.join(" OR ")))
                }
            }
            CheckKind::AllowedValues { column, values } => {
                let d = type_of(column).expect("checked");
                let as_text = is_string(&d);
                values
                    .iter()
                    .map(|v| sql_literal(v, as_text))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|m| format!("{m} but column '{column}' is {}", describe(&d)))
                    .map(|vals| {
                        Some(format!(
                            "{q} IS NOT NULL AND {q} NOT IN ({})",
                            vals.join(", "),
                            q = quote(column)
                        ))
                    })
            }
            CheckKind::Sql { expr, .. } => parse(expr)
                .map_err(|m| format!("expr: {m}"))
                .map(|_| Some(format!("NOT COALESCE(({expr}), FALSE)"))),
            _ => Ok(None),
        };
        let pred_sql = match pred_sql {
            Ok(p) => p,
            Err(m) => {
                folds.push(Fold::None);
                decided.push(Some(decide_fail(m)));
                continue;
            }
        };
        if let Some(sql) = pred_sql {
            let e = match parse(&sql) {
                Ok(e) => e,
                Err(m) => {
                    folds.push(Fold::None);
                    decided.push(Some(decide_fail(m)));
                    continue;
                }
            };
            let shown: Vec<String> = match &check.kind {
                CheckKind::Sql { .. } => {
                    let mut refs: Vec<String> =
                        e.column_refs().iter().map(|c| c.name.clone()).collect();
                    refs.sort();
                    refs.dedup();
                    refs
                }
                k => k.columns().iter().map(|s| s.to_string()).collect(),
            };
            let shown_refs: Vec<&str> = shown.iter().map(String::as_str).collect();
            let show = show_of(&shown_refs, &mut proj);
            let minmax = match &check.kind {
                CheckKind::Range { column, .. } => Some(col_index(column, &mut proj)),
                _ => None,
            };
            proj.push((format!("__quiver_check_{i}"), e));
            folds.push(Fold::Pred {
                pred: proj.len() - 1,
                show,
                minmax,
            });
            decided.push(None);
            continue;
        }
        match &check.kind {
            CheckKind::Schema => {
                let declared = declared_columns(reg, set);
                let mut missing_cols = Vec::new();
                let mut wrong = Vec::new();
                for (name, d) in &declared {
                    match type_of(name) {
                        None => missing_cols.push(name.clone()),
                        Some(actual) => {
                            let ok = match d {
                                Declared::Type(t) => compatible(&actual, *t),
                                Declared::Timestamp => is_timestamp_like(&actual),
                                Declared::Present => true,
                            };
                            if !ok {
                                wrong.push(json!({"column": name, "declared": d.to_string(), "actual": describe(&actual)}));
                            }
                        }
                    }
                }
                let extra: Vec<&String> = column_names
                    .iter()
                    .filter(|c| !declared.iter().any(|(n, _)| n == *c))
                    .collect();
                let passed = missing_cols.is_empty() && wrong.is_empty();
                let mut parts = Vec::new();
                if !missing_cols.is_empty() {
                    parts.push(format!("missing {}", missing_cols.join(", ")));
                }
                for w in &wrong {
                    parts.push(format!(
                        "{} is {} (declared {})",
                        w["column"].as_str().unwrap_or(""),
                        w["actual"].as_str().unwrap_or(""),
                        w["declared"].as_str().unwrap_or("")
                    ));
                }
                if !extra.is_empty() {
                    parts.push(format!(
                        "{} extra column(s): {}",
                        extra.len(),
                        extra
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let message = if parts.is_empty() {
                    format!(
                        "{} declared columns present with their types",
                        declared.len()
                    )
                } else {
                    parts.join("; ")
                };
                folds.push(Fold::None);
                decided.push(Some(Decided {
                    passed,
                    observed: json!({"missing": missing_cols, "wrong_type": wrong, "extra": extra}),
                    threshold: json!({"columns": declared.iter().map(|(n, d)| (n.clone(), Value::String(d.to_string()))).collect::<serde_json::Map<_, _>>()}),
                    message,
                    violations: (missing_cols.len() + wrong.len()) as u64,
                }));
            }
            CheckKind::Unique { columns } => {
                let keys: Vec<usize> = columns.iter().map(|c| col_index(c, &mut proj)).collect();
                let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
                let show = show_of(&refs, &mut proj);
                folds.push(Fold::Unique { keys, show });
                decided.push(None);
            }
            CheckKind::Freshness { .. } | CheckKind::Volume { .. } if ts_problem.is_some() => {
                folds.push(Fold::None);
                decided.push(Some(decide_fail(ts_problem.clone().expect("set"))));
            }
            CheckKind::Freshness { .. } => {
                folds.push(Fold::Freshness);
                decided.push(None);
            }
            CheckKind::Volume {
                every, lookback, ..
            } => {
                folds.push(Fold::Volume {
                    every_us: every.micros(),
                    buckets: (lookback.seconds() / every.seconds()) as usize,
                });
                decided.push(None);
            }
            _ => unreachable!("row-level checks have a predicate"),
        }
    }

    // The scan: one stream per partition, each folded on its own task.
    let names: Vec<String> = proj.iter().map(|(n, _)| n.clone()).collect();
    let exprs: Vec<Expr> = proj
        .into_iter()
        .map(|(n, e)| match e {
            Expr::Column(_) => e,
            e => e.alias(n),
        })
        .collect();
    let spec = Arc::new(Spec {
        folds,
        ts: ts_col,
        as_of_us,
        names,
    });
    let scanned: std::result::Result<Partial, String> = async {
        let df = if exprs.is_empty() {
            df.select(vec![
                cast_expr(datafusion::prelude::lit(true), DataType::Boolean).alias("__quiver_row"),
            ])
        } else {
            df.select(exprs)
        }
        .map_err(clean)?;
        let out_schema = Arc::new(df.schema().as_arrow().clone());
        let runner = if on_cluster {
            engine.cluster().map_err(|e| e.to_string())?
        } else {
            None
        };
        let mut merged = Partial::new(&spec, &out_schema).map_err(|e| e.to_string())?;
        if let Some(runner) = runner {
            // Each of the cluster's tasks folds its scan partition; the partials merge here.
            let (mut state, logical) = df.into_parts();
            state.config_mut().options_mut().execution.target_partitions = runner.partitions();
            let plan = state.create_physical_plan(&logical).await.map_err(clean)?;
            let plan = Arc::new(super::fold_exec::FoldExec::new(plan, Arc::clone(&spec)));
            // One partial per partition, or the job runs again: a lost executor can make
            // Ballista send a partition twice or not at all.
            let parts = datafusion::physical_plan::ExecutionPlan::properties(plan.as_ref())
                .output_partitioning()
                .partition_count();
            let batches = quiver_offline::engine::run_on_cluster(runner, plan, |batches| {
                let got: usize = batches.iter().map(RecordBatch::num_rows).sum();
                if got == parts {
                    Ok(())
                } else {
                    Err(format!("the job returned {got} partial states for {parts} scan partitions (an executor lost during the job can make Ballista return a partition twice or not at all)"))
                }
            })
            .await
            .map_err(|e| format!("on the cluster: {e}"))?;
            for b in &batches {
                let col = b.column(0).as_binary::<i32>();
                for i in 0..b.num_rows() {
                    let part = Partial::from_bytes(&spec, &out_schema, col.value(i))?;
                    merge(&spec, &mut merged, part);
                }
            }
            progress.rows_scanned(&set.name, merged.rows);
            return Ok(merged);
        }
        let streams = df.execute_stream_partitioned().await.map_err(clean)?;
        let mut tasks = Vec::new();
        for mut stream in streams {
            let spec = Arc::clone(&spec);
            let progress = Arc::clone(progress);
            let quality = set.name.clone();
            let out_schema = Arc::clone(&out_schema);
            tasks.push(tokio::spawn(async move {
                let mut part = Partial::new(&spec, &out_schema).map_err(|e| e.to_string())?;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(clean)?;
                    let spec2 = Arc::clone(&spec);
                    // The fold is CPU work: off the async threads, one batch at a time.
                    part = tokio::task::spawn_blocking(move || {
                        fold_batch(&spec2, &mut part, &batch).map(|()| part)
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                    progress.rows_scanned(&quality, part.rows);
                }
                // Integer keys of unique checks are sorted here, on each partition's own task.
                tokio::task::spawn_blocking(move || part.finish())
                    .await
                    .map_err(|e| e.to_string())
            }));
        }
        for t in tasks {
            let part = t.await.map_err(|e| e.to_string())??;
            merge(&spec, &mut merged, part);
        }
        Ok(merged)
    }
    .await;
    let part = match scanned {
        Ok(p) => p,
        Err(why) => {
            let why = format!("cannot read {}: {why}", set.target);
            return Ok(report(0, None, all_fail(&why)));
        }
    };

    // Results.
    let rows = part.rows;
    let share = |n: u64| {
        if rows == 0 {
            0.0
        } else {
            n as f64 / rows as f64
        }
    };
    let mut results = Vec::with_capacity(set.checks.len());
    for (i, ((check, state), decided)) in
        set.checks.iter().zip(part.states).zip(decided).enumerate()
    {
        let severity = set.severity_of(check);
        let (d, examples) = match decided {
            Some(d) => (d, vec![]),
            None => evaluate(&check.kind, state, rows, &share, part.newest, as_of_us),
        };
        results.push(CheckResult {
            quality: set.name.clone(),
            index: i,
            check_type: check.kind.type_name(),
            columns: check.kind.columns().iter().map(|s| s.to_string()).collect(),
            severity,
            status: Status::of(d.passed, severity),
            observed: d.observed,
            threshold: d.threshold,
            examples: if d.passed { vec![] } else { examples },
            message: d.message,
            violations: if d.passed { 0 } else { d.violations },
        });
    }
    Ok(report(rows, part.newest, results))
}

/// Two sorted runs as one.
fn merge_sorted(a: Vec<i64>, b: Vec<i64>) -> Vec<i64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn fmt_num(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.4}")
    }
}

/// The verdict of a folded check, with its examples.
fn evaluate(
    kind: &CheckKind,
    state: State,
    rows: u64,
    share: &dyn Fn(u64) -> f64,
    newest: Option<i64>,
    as_of_us: i64,
) -> (Decided, Vec<Value>) {
    match (kind, state) {
        (
            k,
            State::Pred {
                failing,
                examples,
                min,
                max: mx,
            },
        ) => {
            let s = share(failing);
            let d = match k {
                CheckKind::NotNull { columns } => Decided {
                    passed: failing == 0,
                    observed: json!({"null_rows": failing, "rows": rows}),
                    threshold: json!({"max_null_rows": 0}),
                    message: format!(
                        "{failing} of {rows} rows with a null in {}",
                        columns.join(", ")
                    ),
                    violations: failing,
                },
                CheckKind::NullShare { column, max } => Decided {
                    passed: s <= *max,
                    observed: json!({"null_share": s, "null_rows": failing, "rows": rows}),
                    threshold: json!({"max": max}),
                    message: format!(
                        "{:.2}% of {column} null ({failing} of {rows} rows; at most {:.2}%)",
                        s * 100.0,
                        max * 100.0
                    ),
                    violations: failing,
                },
                CheckKind::Range {
                    column,
                    min: lo,
                    max: hi,
                } => {
                    let bounds = format!(
                        "[{}, {}]",
                        lo.map(fmt_num).unwrap_or_else(|| "-inf".into()),
                        hi.map(fmt_num).unwrap_or_else(|| "inf".into())
                    );
                    let seen = if min <= mx {
                        format!("; values from {} to {}", fmt_num(min), fmt_num(mx))
                    } else {
                        String::new()
                    };
                    Decided {
                        passed: failing == 0,
                        observed: json!({"out_of_range_rows": failing, "rows": rows,
                            "min": (min <= mx).then_some(min), "max": (min <= mx).then_some(mx)}),
                        threshold: json!({"min": lo, "max": hi}),
                        message: format!("{failing} rows of {column} outside {bounds}{seen}"),
                        violations: failing,
                    }
                }
                CheckKind::AllowedValues { column, values } => Decided {
                    passed: failing == 0,
                    observed: json!({"other_rows": failing, "rows": rows}),
                    threshold: json!({"values": values}),
                    message: format!(
                        "{failing} rows of {column} with a value not in [{}]",
                        values
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    violations: failing,
                },
                CheckKind::Sql {
                    expr,
                    max_failing_share,
                } => Decided {
                    passed: s <= *max_failing_share,
                    observed: json!({"failing_rows": failing, "failing_share": s, "rows": rows}),
                    threshold: json!({"max_failing_share": max_failing_share}),
                    message: format!(
                        "{failing} of {rows} rows ({:.2}%) where `{expr}` is not true (at most {:.2}%)",
                        s * 100.0,
                        max_failing_share * 100.0
                    ),
                    violations: failing,
                },
                _ => unreachable!("only row-level checks fold a predicate"),
            };
            (d, examples)
        }
        (
            CheckKind::Unique { columns },
            State::Unique {
                non_null,
                set,
                examples,
            },
        ) => {
            let mut examples = examples;
            let distinct = match &set {
                KeySet::Ints(v) => {
                    let mut distinct = 0u64;
                    for (i, x) in v.iter().enumerate() {
                        if i == 0 || *x != v[i - 1] {
                            distinct += 1;
                        } else if examples.len() < MAX_EXAMPLES && (i < 2 || v[i - 2] != *x) {
                            examples.push(json!({ columns[0].clone(): x }));
                        }
                    }
                    distinct
                }
                KeySet::Rows(s, _) => s.len() as u64,
            };
            let dups = non_null - distinct;
            (
                Decided {
                    passed: dups == 0,
                    observed: json!({"duplicate_rows": dups, "distinct": distinct, "rows": rows}),
                    threshold: json!({"max_duplicate_rows": 0}),
                    message: format!(
                        "{dups} rows repeat the ({}) of an earlier row ({distinct} distinct)",
                        columns.join(", ")
                    ),
                    violations: dups,
                },
                examples,
            )
        }
        (CheckKind::Freshness { max_age }, _) => {
            let d = match newest {
                None => Decided {
                    passed: false,
                    observed: json!({"newest": null, "age_seconds": null}),
                    threshold: json!({"max_age": max_age.to_string(), "max_age_seconds": max_age.seconds()}),
                    message: format!("no rows at or before {}", rfc3339(as_of_us)),
                    violations: 1,
                },
                Some(t) => {
                    let age = (as_of_us - t) as f64 / 1e6;
                    let passed = as_of_us - t <= max_age.micros();
                    Decided {
                        passed,
                        observed: json!({"newest": rfc3339(t), "age_seconds": age}),
                        threshold: json!({"max_age": max_age.to_string(), "max_age_seconds": max_age.seconds()}),
                        message: format!(
                            "newest event {} is {} old at {} (at most {max_age})",
                            rfc3339(t),
                            human_age(age),
                            rfc3339(as_of_us)
                        ),
                        violations: u64::from(!passed),
                    }
                }
            };
            (d, vec![])
        }
        (
            CheckKind::Volume {
                every,
                lookback,
                max_z,
            },
            State::Volume(counts),
        ) => {
            let last = counts[0] as f64;
            let reference: Vec<f64> = counts[1..].iter().map(|&c| c as f64).collect();
            let s = robust_z(last, &reference);
            let passed = s.z.abs() <= *max_z;
            let z_text = if s.z.is_finite() {
                format!("{:.2}", s.z)
            } else {
                format!("{}", s.z)
            };
            (
                Decided {
                    passed,
                    observed: json!({
                        "rows": counts[0],
                        "median": s.median,
                        "mad": s.mad,
                        "z": if s.z.is_finite() { json!(s.z) } else { json!(s.z.to_string()) },
                        "bucket_start": rfc3339(as_of_us - every.micros()),
                        "bucket_end": rfc3339(as_of_us),
                    }),
                    threshold: json!({"max_z": max_z, "every": every.to_string(), "lookback": lookback.to_string()}),
                    message: format!(
                        "{} rows in the last {every} against a median of {} over {lookback} (MAD {}): z = {z_text} (at most {max_z})",
                        counts[0],
                        fmt_num(s.median),
                        fmt_num(s.mad)
                    ),
                    violations: u64::from(!passed),
                },
                vec![],
            )
        }
        (k, _) => (
            Decided {
                passed: false,
                observed: Value::Null,
                threshold: Value::Null,
                message: format!("internal error: no state for a {} check", k.type_name()),
                violations: 1,
            },
            vec![],
        ),
    }
}

fn human_age(seconds: f64) -> String {
    let s = seconds.abs();
    let sign = if seconds < 0.0 { "-" } else { "" };
    if s < 120.0 {
        format!("{sign}{s:.0}s")
    } else if s < 7200.0 {
        format!("{sign}{:.1}m", s / 60.0)
    } else if s < 172_800.0 {
        format!("{sign}{:.1}h", s / 3600.0)
    } else {
        format!("{sign}{:.1}d", s / 86_400.0)
    }
}
