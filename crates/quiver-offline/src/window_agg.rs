//! Windowed aggregations as of each entity timestamp, from raw events.
//!
//! The value at entity time `t` covers the events with timestamp in `(t - window, t]` (and that
//! pass the aggregation's filter). Events are grouped by key and sorted by time once; each entity
//! row then binary-searches its window. Empty windows give 0 for `count` and `count_distinct` and
//! null for every other function; `stddev` is the sample standard deviation (null below 2 values).
//! `mean` of a vector column (an embedding, `list<float32>`) is the element-wise mean of the
//! window's non-null vectors: a user's mean review embedding over 90 days, say.
//!
//! The decayed functions weigh each event by [`decay`]`(t - t_e, half_life)` =
//! `2^(-(t - t_e) / half_life)`: 1 for an event at `t`, 1/2 one half-life earlier.
//! `decayed_sum` is `Σ value_e · decay` over the window's non-null values (null when there are
//! none, as for `sum`); `decayed_share` is, for each declared category `c` in order,
//! `Σ_{e: value_e = c} decay / Σ_{e: value_e not null} decay` (null when the window has no
//! non-null value). Events of undeclared categories count in the denominator only, so a vector
//! sums to 1 minus their share. The same code runs for `historical` (as of each entity row) and
//! for materialization (as of the end of the range), so the two agree to the bit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Builder, Float64Builder, Int64Builder, ListBuilder,
    RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use quiver_core::{AggFunction, Aggregation, Source, ValueType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::{Key, KeyGroups, encode_keys};
use crate::source::source_error;
use crate::types::{arrow_type, is_vector};

/// One aggregation to compute (what a cluster's plan carries of it, too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AggSpec {
    /// The feature's name (named in errors).
    pub name: String,
    /// Function.
    pub function: AggFunction,
    /// Window length, microseconds.
    pub window: i64,
    /// Unit of `time_since_last`, microseconds.
    pub unit: i64,
    /// Half-life of the decayed functions, microseconds (positive; unused by the others).
    pub half_life: i64,
    /// The categories of `decayed_share`, in output order.
    pub categories: Vec<String>,
    /// Output type.
    pub value_type: ValueType,
}

impl AggSpec {
    /// What computing the aggregation `a` takes.
    pub fn of(a: &Aggregation) -> Self {
        AggSpec {
            name: a.name.clone(),
            function: a.function,
            window: a.window.micros(),
            unit: a.unit.map(|u| u.micros()).unwrap_or(1_000_000),
            half_life: a.half_life.map_or(0, |h| h.micros()),
            categories: a.categories.clone(),
            value_type: a.value_type,
        }
    }

    /// The Arrow type of the output.
    pub fn output(&self) -> DataType {
        arrow_type(self.value_type)
    }
}

/// Every aggregation of one filter group for every entity row: `events` is the group's frame
/// (`nkeys` key columns, the event time in UTC µs, then anything), `values[i]` the column
/// aggregation `i` aggregates (`None` for `count` of rows and `time_since_last`). Events are
/// indexed by key and time once; ties on time keep the order of `events`. Errors name `source`
/// and the aggregation. The one implementation of windowed aggregation: the engine's own path,
/// materialization and a cluster's partitions all call it.
pub fn aggregate_events(
    events: &RecordBatch,
    nkeys: usize,
    values: &[Option<usize>],
    specs: &[AggSpec],
    entity_keys: &[Option<Key>],
    entity_ts: &[Option<i64>],
    source: &Source,
) -> Result<Vec<ArrayRef>> {
    let event_keys = encode_keys(&events.columns()[..nkeys])?;
    let ts = events
        .column(nkeys)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::Internal("event times are not UTC microseconds".into()))?;
    let ts: Vec<Option<i64>> = ts.iter().collect();
    let index = EventIndex::new(event_keys, &ts);
    specs
        .iter()
        .zip(values)
        .map(|(spec, v)| {
            aggregate(
                &index,
                v.map(|i| events.column(i)),
                entity_keys,
                entity_ts,
                spec,
            )
            .map_err(|e| source_error(source, format!("aggregation '{}': {e}", spec.name)))
        })
        .collect()
}

/// Events grouped by key, sorted by time.
pub type EventIndex = KeyGroups;

/// The weight of an event `age` microseconds old: `2^(-age / half_life)` (both in microseconds,
/// `half_life` positive). Ages are never negative here: the window ends at `t`.
#[inline]
pub fn decay(age: i64, half_life: i64) -> f64 {
    (-(age as f64) / half_life as f64).exp2()
}

/// Positions (into the sorted order) of the events of `key` in `(t - window, t]`.
fn window(events: &EventIndex, key: &Key, t: i64, window: i64) -> (usize, usize) {
    let Some((s, e)) = events.group(key) else {
        return (0, 0);
    };
    let g = &events.ts[s..e];
    let lo = s + g.partition_point(|x| *x <= t.saturating_sub(window));
    let hi = s + g.partition_point(|x| *x <= t);
    (lo, hi.max(lo))
}

/// Computes one aggregation for every entity row. `values` is the aggregated column of the
/// events (absent for `count` of rows and `time_since_last`).
pub fn aggregate(
    events: &EventIndex,
    values: Option<&ArrayRef>,
    entity_keys: &[Option<Key>],
    entity_ts: &[Option<i64>],
    spec: &AggSpec,
) -> Result<ArrayRef> {
    use AggFunction::*;
    let windows: Vec<Option<(usize, usize)>> = entity_keys
        .iter()
        .zip(entity_ts)
        .map(|(k, t)| Some(window(events, k.as_ref()?, (*t)?, spec.window)))
        .collect();
    let n = windows.len();
    let idx = |w: &(usize, usize)| events.rows[w.0..w.1].iter().map(|i| *i as usize);
    let out: ArrayRef = match spec.function {
        Mean if values.is_some_and(|v| is_vector(v.data_type())) => {
            vector_mean(values.expect("checked"), &windows, &idx)?
        }
        Count | CountDistinct => {
            let mut b = Int64Builder::with_capacity(n);
            let floats = match values {
                Some(v) if spec.function == CountDistinct && v.data_type().is_numeric() => {
                    Some(cast(v, &DataType::Float64)?)
                }
                _ => None,
            };
            let strings = match values {
                Some(v) if spec.function == CountDistinct && floats.is_none() => {
                    Some(cast(v, &DataType::Utf8)?)
                }
                _ => None,
            };
            for w in &windows {
                let Some(w) = w else {
                    b.append_value(0);
                    continue;
                };
                let c = match (spec.function, values) {
                    (Count, None) => (w.1 - w.0) as i64,
                    (Count, Some(v)) => idx(w).filter(|i| v.is_valid(*i)).count() as i64,
                    _ => {
                        if let Some(f) = &floats {
                            let f = f.as_primitive::<Float64Type>();
                            idx(w)
                                .filter(|i| f.is_valid(*i))
                                .map(|i| f.value(i).to_bits())
                                .collect::<HashSet<_>>()
                                .len() as i64
                        } else if let Some(s) = &strings {
                            let s = s.as_string::<i32>();
                            idx(w)
                                .filter(|i| s.is_valid(*i))
                                .map(|i| s.value(i))
                                .collect::<HashSet<_>>()
                                .len() as i64
                        } else {
                            0
                        }
                    }
                };
                b.append_value(c);
            }
            Arc::new(b.finish())
        }
        Sum | Mean | Min | Max | Stddev => {
            let v = cast(
                values.expect("validated: the function has a column"),
                &DataType::Float64,
            )?;
            let v = v.as_primitive::<Float64Type>();
            let mut b = Float64Builder::with_capacity(n);
            for w in &windows {
                let vals = w
                    .iter()
                    .flat_map(&idx)
                    .filter(|i| v.is_valid(*i))
                    .map(|i| v.value(i));
                let r = match spec.function {
                    Sum => {
                        let (mut s, mut c) = (0.0, 0);
                        vals.for_each(|x| {
                            s += x;
                            c += 1
                        });
                        (c > 0).then_some(s)
                    }
                    Mean => {
                        let (mut s, mut c) = (0.0, 0);
                        vals.for_each(|x| {
                            s += x;
                            c += 1
                        });
                        (c > 0).then(|| s / c as f64)
                    }
                    Min => vals.reduce(f64::min),
                    Max => vals.reduce(f64::max),
                    _ => {
                        // Welford's online variance.
                        let (mut c, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
                        for x in vals {
                            c += 1;
                            let d = x - mean;
                            mean += d / c as f64;
                            m2 += d * (x - mean);
                        }
                        (c >= 2).then(|| (m2 / (c - 1) as f64).sqrt())
                    }
                };
                b.append_option(r);
            }
            Arc::new(b.finish())
        }
        DecayedSum => {
            let v = cast(
                values.expect("validated: the function has a column"),
                &DataType::Float64,
            )?;
            let v = v.as_primitive::<Float64Type>();
            let h = positive_half_life(spec)?;
            let mut b = Float64Builder::with_capacity(n);
            for (w, t) in windows.iter().zip(entity_ts) {
                let (Some(w), Some(t)) = (w, t) else {
                    b.append_null();
                    continue;
                };
                let (mut s, mut c) = (0.0, 0usize);
                for j in w.0..w.1 {
                    let i = events.rows[j] as usize;
                    if v.is_valid(i) {
                        s += v.value(i) * decay(t - events.ts[j], h);
                        c += 1;
                    }
                }
                b.append_option((c > 0).then_some(s));
            }
            Arc::new(b.finish())
        }
        DecayedShare => decayed_share(
            values.expect("validated: the function has a column"),
            events,
            &windows,
            entity_ts,
            spec,
        )?,
        Last => {
            let v = values.expect("validated: last has a column");
            let picks: UInt32Array = windows
                .iter()
                .map(|w| w.filter(|w| w.1 > w.0).map(|w| events.rows[w.1 - 1]))
                .collect();
            take(v.as_ref(), &picks, None)?
        }
        TimeSinceLast => {
            let mut b = Float64Builder::with_capacity(n);
            for (w, t) in windows.iter().zip(entity_ts) {
                let r = match (w, t) {
                    (Some(w), Some(t)) if w.1 > w.0 => {
                        Some((t - events.ts[w.1 - 1]) as f64 / spec.unit as f64)
                    }
                    _ => None,
                };
                b.append_option(r);
            }
            Arc::new(b.finish())
        }
    };
    let output = spec.output();
    if is_vector(out.data_type()) != is_vector(&output) {
        return Err(Error::Output(format!(
            "the values are {} but the declared type is {}: a mean (or last) of vectors is declared `type: list<float32>`; other aggregations of vectors are not supported",
            values.map_or(DataType::Null, |v| v.data_type().clone()),
            output
        )));
    }
    Ok(if out.data_type() == &output {
        out
    } else {
        cast(&out, &output)?
    })
}

fn positive_half_life(spec: &AggSpec) -> Result<i64> {
    if spec.half_life <= 0 {
        return Err(Error::Output(format!(
            "{} needs a half-life longer than 0",
            spec.function.name()
        )));
    }
    Ok(spec.half_life)
}

/// Each window's vector of category shares of the decayed weights (see the module's
/// documentation), as `list<float64>`; values are compared as text.
fn decayed_share(
    values: &ArrayRef,
    events: &EventIndex,
    windows: &[Option<(usize, usize)>],
    entity_ts: &[Option<i64>],
    spec: &AggSpec,
) -> Result<ArrayRef> {
    let h = positive_half_life(spec)?;
    let v = cast(values, &DataType::Utf8)?;
    let v = v.as_string::<i32>();
    let slot: HashMap<&str, usize> = spec
        .categories
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let k = spec.categories.len();
    let mut out = ListBuilder::with_capacity(Float64Builder::new(), windows.len());
    let mut per = vec![0f64; k];
    for (w, t) in windows.iter().zip(entity_ts) {
        let (Some(w), Some(t)) = (w, t) else {
            out.append(false);
            continue;
        };
        per.iter_mut().for_each(|x| *x = 0.0);
        let (mut total, mut c) = (0.0, 0usize);
        for j in w.0..w.1 {
            let i = events.rows[j] as usize;
            if v.is_null(i) {
                continue;
            }
            let d = decay(t - events.ts[j], h);
            total += d;
            c += 1;
            if let Some(&s) = slot.get(v.value(i)) {
                per[s] += d;
            }
        }
        if c == 0 {
            out.append(false);
        } else {
            out.values().extend(per.iter().map(|x| Some(x / total)));
            out.append(true);
        }
    }
    Ok(Arc::new(out.finish()))
}

/// The element-wise mean of each window's non-null vectors (null for none), as `list<float32>`;
/// sums are kept in f64. Vectors of different lengths in one window are an error.
fn vector_mean<'a, I: Iterator<Item = usize>>(
    values: &ArrayRef,
    windows: &'a [Option<(usize, usize)>],
    idx: &impl Fn(&'a (usize, usize)) -> I,
) -> Result<ArrayRef> {
    let item = Arc::new(Field::new_list_field(DataType::Float64, true));
    let v = cast(values, &DataType::List(item))?;
    let v = v.as_list::<i32>();
    let flat = v.values().as_primitive::<Float64Type>();
    let offsets = v.value_offsets();
    let mut out = ListBuilder::new(Float32Builder::new());
    let mut sum: Vec<f64> = Vec::new();
    for w in windows {
        let mut count = 0usize;
        for i in w.iter().flat_map(idx) {
            if v.is_null(i) {
                continue;
            }
            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
            if count == 0 {
                sum.clear();
                sum.resize(b - a, 0.0);
            } else if b - a != sum.len() {
                return Err(Error::Output(format!(
                    "vectors of different lengths ({} and {}) in one window: a mean needs equal lengths",
                    sum.len(),
                    b - a
                )));
            }
            for (s, j) in sum.iter_mut().zip(a..b) {
                *s += if flat.is_null(j) {
                    f64::NAN
                } else {
                    flat.value(j)
                };
            }
            count += 1;
        }
        if count == 0 {
            out.append(false);
        } else {
            let c = count as f64;
            out.values()
                .extend(sum.iter().map(|s| Some((s / c) as f32)));
            out.append(true);
        }
    }
    Ok(Arc::new(out.finish()))
}
