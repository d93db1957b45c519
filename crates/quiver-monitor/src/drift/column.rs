//! One column's values gathered from Arrow batches, as they stream in: numbers into a vector
//! (nulls, NaN and infinities counted, not kept), strings and booleans into value counts,
//! vectors into one flat buffer. No row is ever materialized.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};

use super::stattests::{Key, Sample};

/// The values of one column of one data set.
#[derive(Debug)]
pub struct ColumnValues {
    /// Rows seen (with nulls).
    pub rows: usize,
    /// Nulls (and NaN, which pandas counts as null).
    pub nulls: usize,
    /// Infinite values (dropped before the tests, as Evidently drops them).
    pub infinite: usize,
    /// The values.
    pub data: ColumnData,
}

/// The values by type.
#[derive(Debug)]
pub enum ColumnData {
    /// Finite numbers (unsorted until [`ColumnValues::into_sample`]). `integer`: the Arrow type
    /// is an integer type.
    Numeric { values: Vec<f64>, integer: bool },
    /// Counts of strings.
    Strings(HashMap<Box<str>, u64>),
    /// Counts of false and true.
    Bools([u64; 2]),
    /// Vectors of `dim` numbers each, flat.
    Vectors { dim: usize, values: Vec<f32> },
    /// A type drift is not computed for (dates, times, ...), with its name.
    Unsupported(String),
}

/// What a column of this Arrow type becomes.
pub fn empty_for(dt: &DataType) -> ColumnData {
    use DataType::*;
    match dt {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => ColumnData::Numeric {
            values: Vec::new(),
            integer: true,
        },
        Float16 | Float32 | Float64 | Decimal128(..) | Decimal256(..) => ColumnData::Numeric {
            values: Vec::new(),
            integer: false,
        },
        Utf8 | LargeUtf8 | Utf8View => ColumnData::Strings(HashMap::new()),
        Dictionary(_, v) if matches!(**v, Utf8 | LargeUtf8 | Utf8View) => {
            ColumnData::Strings(HashMap::new())
        }
        Boolean => ColumnData::Bools([0, 0]),
        List(f) | LargeList(f) | FixedSizeList(f, _) if f.data_type().is_numeric() => {
            ColumnData::Vectors {
                dim: 0,
                values: Vec::new(),
            }
        }
        other => ColumnData::Unsupported(format!("{other}")),
    }
}

impl ColumnValues {
    /// No values yet, for a column of Arrow type `dt`.
    pub fn new(dt: &DataType) -> ColumnValues {
        ColumnValues {
            rows: 0,
            nulls: 0,
            infinite: 0,
            data: empty_for(dt),
        }
    }

    /// Adds one batch's array of the column.
    pub fn push(&mut self, array: &ArrayRef) -> Result<(), String> {
        self.rows += array.len();
        match &mut self.data {
            ColumnData::Numeric { values, .. } => {
                let a = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
                let a = a.as_primitive::<Float64Type>();
                values.reserve(a.len());
                let raw = a.values();
                if a.null_count() == 0 {
                    for &v in raw.iter() {
                        if v.is_finite() {
                            values.push(v);
                        } else if v.is_nan() {
                            self.nulls += 1;
                        } else {
                            self.infinite += 1;
                        }
                    }
                } else {
                    for (i, &v) in raw.iter().enumerate() {
                        if a.is_null(i) || v.is_nan() {
                            self.nulls += 1;
                        } else if v.is_finite() {
                            values.push(v);
                        } else {
                            self.infinite += 1;
                        }
                    }
                }
            }
            ColumnData::Strings(counts) => {
                let a = cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
                let a = a.as_string::<i32>();
                self.nulls += a.null_count();
                for s in a.iter().flatten() {
                    match counts.get_mut(s) {
                        Some(n) => *n += 1,
                        None => {
                            counts.insert(s.into(), 1);
                        }
                    }
                }
            }
            ColumnData::Bools(counts) => {
                let a = array.as_boolean();
                self.nulls += a.null_count();
                let t = a.true_count();
                counts[1] += t as u64;
                counts[0] += (a.len() - a.null_count() - t) as u64;
            }
            ColumnData::Vectors { dim, values } => {
                let target = DataType::new_list(DataType::Float32, true);
                let a = cast(array, &target).map_err(|e| e.to_string())?;
                let list = a.as_list::<i32>();
                for i in 0..list.len() {
                    if list.is_null(i) {
                        self.nulls += 1;
                        continue;
                    }
                    let item = list.value(i);
                    let item = item.as_primitive::<Float32Type>();
                    if *dim == 0 && values.is_empty() {
                        *dim = item.len();
                    }
                    if item.len() != *dim {
                        return Err(format!(
                            "vectors of different lengths ({} and {})",
                            *dim,
                            item.len()
                        ));
                    }
                    if item.null_count() > 0 || item.values().iter().any(|v| !v.is_finite()) {
                        return Err("a vector holds a null, NaN or infinite number".into());
                    }
                    values.extend_from_slice(item.values());
                }
            }
            ColumnData::Unsupported(_) => {}
        }
        Ok(())
    }

    /// Values kept (not null, finite).
    pub fn count(&self) -> usize {
        self.rows - self.nulls - self.infinite
    }

    /// Share of nulls among the rows (0 with no rows).
    pub fn null_share(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.nulls as f64 / self.rows as f64
        }
    }

    /// Distinct values (for type inference).
    pub fn n_unique(&self) -> usize {
        match &self.data {
            ColumnData::Numeric { values, .. } => {
                let mut v = values.clone();
                v.sort_unstable_by(f64::total_cmp);
                v.dedup();
                v.len()
            }
            ColumnData::Strings(c) => c.len(),
            ColumnData::Bools(c) => c.iter().filter(|n| **n > 0).count(),
            ColumnData::Vectors { .. } | ColumnData::Unsupported(_) => 0,
        }
    }

    /// The values for the tests: sorted numbers (`as_counts` false) or value counts.
    pub fn into_sample(self, as_counts: bool) -> Sample {
        let no_nulls = self.nulls == 0;
        match self.data {
            ColumnData::Numeric {
                mut values,
                integer,
            } => {
                sort_f64(&mut values);
                let s = Sample::Numeric {
                    values,
                    integer: integer && no_nulls,
                };
                if as_counts {
                    Sample::Counts(s.counts())
                } else {
                    s
                }
            }
            ColumnData::Strings(c) => {
                let mut v: Vec<(Key, u64)> = c
                    .into_iter()
                    .map(|(k, n)| (Key::Str(k.into()), n))
                    .collect();
                v.sort();
                Sample::Counts(v)
            }
            ColumnData::Bools(c) => Sample::Counts(
                [(Key::Bool(false), c[0]), (Key::Bool(true), c[1])]
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .collect(),
            ),
            ColumnData::Vectors { .. } | ColumnData::Unsupported(_) => Sample::Counts(Vec::new()),
        }
    }
}

/// Sorts finite numbers ascending: an LSD radix sort on the order-preserving bit pattern for
/// long columns (linear time), the standard sort for short ones.
pub fn sort_f64(values: &mut [f64]) {
    if values.len() < 4096 {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    let key = |v: f64| -> u64 {
        let b = (v + 0.0).to_bits();
        if b >> 63 == 1 { !b } else { b | (1 << 63) }
    };
    let mut keys: Vec<u64> = values.iter().map(|&v| key(v)).collect();
    let mut tmp = vec![0u64; keys.len()];
    for pass in 0..4 {
        let shift = pass * 16;
        let mut counts = vec![0usize; 1 << 16];
        for &k in &keys {
            counts[((k >> shift) & 0xffff) as usize] += 1;
        }
        // A pass where every key has the same digit changes nothing.
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = sum;
            sum += n;
        }
        for &k in &keys {
            let d = ((k >> shift) & 0xffff) as usize;
            tmp[counts[d]] = k;
            counts[d] += 1;
        }
        std::mem::swap(&mut keys, &mut tmp);
    }
    for (v, k) in values.iter_mut().zip(keys) {
        let b = if k >> 63 == 1 { k & !(1 << 63) } else { !k };
        *v = f64::from_bits(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_like_a_comparison_sort() {
        let mut state = 12345u64;
        let mut v: Vec<f64> = (0..20_000)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let x = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                if i % 7 == 0 { x * 1e6 } else { x }
            })
            .collect();
        v.push(-0.0);
        v.push(0.0);
        let mut expected = v.clone();
        expected.sort_by(|a, b| (a + 0.0).total_cmp(&(b + 0.0)));
        sort_f64(&mut v);
        assert_eq!(v, expected);
    }
}
