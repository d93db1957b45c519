//! Entity keys: one or more join key columns turned into a hashable [`Key`] per row.
//!
//! A single integer key stays an `i64` (the fast, common case); composite and string keys are
//! encoded with Arrow's row format, which is order- and type-preserving, so equal key tuples give
//! equal bytes.

use std::hash::{BuildHasherDefault, Hasher};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::Result;

/// A hashable entity key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A single integer key.
    Int(i64),
    /// Encoded composite or string key.
    Bytes(Box<[u8]>),
}

/// FxHash (the rustc hasher): fast, not DoS-resistant, fine for keys of our own tables.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.hash = (self.hash.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Encodes key columns (already cast to their declared types) into one [`Key`] per row;
/// rows with a null in any key column get `None` (they never match, as in SQL).
pub fn encode_keys(columns: &[ArrayRef]) -> Result<Vec<Option<Key>>> {
    let n = columns.first().map(|c| c.len()).unwrap_or(0);
    if columns.len() == 1 && columns[0].data_type() == &DataType::Int64 {
        let a = columns[0].as_primitive::<Int64Type>();
        return Ok((0..n)
            .map(|i| a.is_valid(i).then(|| Key::Int(a.value(i))))
            .collect());
    }
    let fields: Vec<SortField> = columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let rows = converter.convert_columns(columns)?;
    Ok((0..n)
        .map(|i| {
            columns
                .iter()
                .all(|c| c.is_valid(i))
                .then(|| Key::Bytes(rows.row(i).as_ref().into()))
        })
        .collect())
}

/// Casts key columns to the Arrow types of their declared key types (string keys become `Utf8`).
pub fn cast_keys(columns: &[ArrayRef], types: &[DataType]) -> Result<Vec<ArrayRef>> {
    columns
        .iter()
        .zip(types)
        .map(|(c, t)| {
            Ok(if c.data_type() == t {
                c.clone()
            } else {
                cast(c, t)?
            })
        })
        .collect()
}

/// Rows grouped by key and sorted by time within each group: the index both the point-in-time
/// join (over entity rows) and the window aggregation (over events) search.
#[derive(Debug)]
pub struct KeyGroups {
    /// Row numbers, grouped by key, by time within a group.
    pub(crate) rows: Vec<u32>,
    /// The time of each entry of `rows`.
    pub(crate) ts: Vec<i64>,
    /// Key -> (start, length) in `rows`.
    pub(crate) groups: FxHashMap<Key, (u32, u32)>,
    len: usize,
}

impl KeyGroups {
    /// Indexes rows; rows with a null key or timestamp are left out (they never match).
    pub fn new(keys: Vec<Option<Key>>, ts: &[Option<i64>]) -> Self {
        let len = keys.len();
        let mut items: Vec<(Key, i64, u32)> = keys
            .into_iter()
            .zip(ts)
            .enumerate()
            .filter_map(|(i, (k, t))| Some((k?, (*t)?, i as u32)))
            .collect();
        items.sort_unstable();
        let mut groups = FxHashMap::default();
        let (mut rows, mut tss) = (
            Vec::with_capacity(items.len()),
            Vec::with_capacity(items.len()),
        );
        let mut start = 0u32;
        for i in 0..items.len() {
            rows.push(items[i].2);
            tss.push(items[i].1);
            if i + 1 == items.len() || items[i + 1].0 != items[i].0 {
                groups.insert(items[i].0.clone(), (start, i as u32 + 1 - start));
                start = i as u32 + 1;
            }
        }
        KeyGroups {
            rows,
            ts: tss,
            groups,
            len,
        }
    }

    /// Number of rows indexed (including left-out ones).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no rows were given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of distinct keys.
    pub fn distinct_keys(&self) -> usize {
        self.groups.len()
    }

    /// The `[start, end)` range of `key`'s group in `rows` / `ts`.
    pub(crate) fn group(&self, key: &Key) -> Option<(usize, usize)> {
        self.groups
            .get(key)
            .map(|&(s, l)| (s as usize, (s + l) as usize))
    }
}
