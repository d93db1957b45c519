//! Windowed aggregations as of each entity timestamp, from raw events.
//!
//! The value at entity time `t` covers the events with timestamp in `(t - window, t]` (and that
//! pass the aggregation's filter). Events are grouped by key and sorted by time once; each entity
//! row then binary-searches its window. Empty windows give 0 for `count` and `count_distinct` and
//! null for every other function; `stddev` is the sample standard deviation (null below 2 values).
//! `mean` of a vector column (an embedding, `list<float32>`) is the element-wise mean of the
//! window's non-null vectors: a user's mean review embedding over 90 days, say.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Builder, Float64Builder, Int64Builder, ListBuilder,
    UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use quiver_core::AggFunction;

use crate::error::{Error, Result};
use crate::key::{Key, KeyGroups};
use crate::types::is_vector;

/// One aggregation to compute.
#[derive(Debug, Clone)]
pub struct AggSpec {
    /// Function.
    pub function: AggFunction,
    /// Window length, microseconds.
    pub window: i64,
    /// Unit of `time_since_last`, microseconds.
    pub unit: i64,
    /// Output type.
    pub output: DataType,
}

/// Events grouped by key, sorted by time.
pub type EventIndex = KeyGroups;

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
    if is_vector(out.data_type()) != is_vector(&spec.output) {
        return Err(Error::Output(format!(
            "the values are {} but the declared type is {}: a mean (or last) of vectors is declared `type: list<float32>`; other aggregations of vectors are not supported",
            values.map_or(DataType::Null, |v| v.data_type().clone()),
            spec.output
        )));
    }
    Ok(if out.data_type() == &spec.output {
        out
    } else {
        cast(&out, &spec.output)?
    })
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
