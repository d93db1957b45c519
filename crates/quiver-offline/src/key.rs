//! Entity keys: one or more join key columns turned into a hashable [`Key`] per row.
//!
//! A single integer key stays an `i64` (the fast, common case); composite and string keys are
//! encoded with Arrow's row format, which is order- and type-preserving, so equal key tuples give
//! equal bytes.

use std::hash::{BuildHasherDefault, Hasher};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::Result;
use crate::key_space::NO_ID;

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

/// Key lookup of a [`KeyGroups`]: plain `i64` keys skip the [`Key`] enum on the hot path.
#[derive(Debug)]
enum Lookup {
    /// Dense integer keys: the group's `[start, end)` itself at `key - min` (`(0, 0)`: none, a
    /// group is never empty). No hashing, and one random access per probe instead of two (the
    /// probe of a 10M-row feature table is bound by such misses).
    Dense {
        min: i64,
        spans: Vec<(u32, u32)>,
    },
    Int(FxHashMap<i64, u32>),
    Any(FxHashMap<Key, u32>),
}

impl Lookup {
    /// Integer keys whose range is at most 4x their count (plus slack) are indexed directly.
    fn ints(map: FxHashMap<i64, u32>, spans: &[(u32, u32)]) -> Self {
        let (Some(min), Some(max)) = (map.keys().min().copied(), map.keys().max().copied()) else {
            return Lookup::Int(map);
        };
        let range = (max as i128 - min as i128 + 1) as u128;
        if range > (4 * map.len() as u128 + 1024) || range > (1 << 26) {
            return Lookup::Int(map);
        }
        let mut direct = vec![(0, 0); range as usize];
        for (k, id) in map {
            direct[(k - min) as usize] = spans[id as usize];
        }
        Lookup::Dense { min, spans: direct }
    }

    /// The `[start, end)` of integer key `v`'s group.
    #[inline]
    fn int(&self, v: i64, spans: &[(u32, u32)]) -> Option<(u32, u32)> {
        match self {
            Lookup::Dense { min, spans } => {
                let off = v.checked_sub(*min)?;
                let span = *spans.get(usize::try_from(off).ok()?)?;
                (span.0 != span.1).then_some(span)
            }
            Lookup::Int(m) => m.get(&v).map(|id| spans[*id as usize]),
            Lookup::Any(m) => m.get(&Key::Int(v)).map(|id| spans[*id as usize]),
        }
    }
}

/// The key columns of one batch, ready for lookups.
pub enum BatchKeys<'a> {
    /// A single int64 key column.
    Int(&'a Int64Array),
    /// Encoded keys (composite or string).
    Encoded(Vec<Option<Key>>),
    /// Ids of a [`KeySpace`](crate::key_space::KeySpace) ([`NO_ID`]: no entity row's key).
    Ids(Vec<u32>),
}

impl<'a> BatchKeys<'a> {
    /// From key columns already cast to their declared types.
    pub fn new(columns: &'a [ArrayRef]) -> Result<Self> {
        if columns.len() == 1 && columns[0].data_type() == &DataType::Int64 {
            return Ok(BatchKeys::Int(columns[0].as_primitive::<Int64Type>()));
        }
        Ok(BatchKeys::Encoded(encode_keys(columns)?))
    }

    /// The key of row `i` (`None` when a key column is null).
    pub fn key(&self, i: usize) -> Option<Key> {
        match self {
            BatchKeys::Int(a) => a.is_valid(i).then(|| Key::Int(a.value(i))),
            BatchKeys::Encoded(k) => k[i].clone(),
            BatchKeys::Ids(ids) => (ids[i] != NO_ID).then(|| Key::Int(i64::from(ids[i]))),
        }
    }
}

/// Rows grouped by key and sorted by time within each group: the index both the point-in-time
/// join (over entity rows) and the window aggregation (over events) search.
#[derive(Debug)]
pub struct KeyGroups {
    /// Row numbers, grouped by key, by time within a group.
    pub(crate) rows: Vec<u32>,
    /// The time of each entry of `rows`.
    pub(crate) ts: Vec<i64>,
    /// Group id -> `[start, end)` in `rows`.
    spans: Vec<(u32, u32)>,
    lookup: Lookup,
    len: usize,
    /// The first slot of each hash partition, and the end: partition `p` holds the slots
    /// `part_bounds[p]..part_bounds[p + 1]` (one partition unless built by
    /// [`KeyGroups::from_ids`] with more).
    part_bounds: Vec<u32>,
}

/// Rows, timestamps and `[start, end)` spans of `(key, ts, row)` items sorted by key then time;
/// `group` is told each distinct key with its group id.
fn group_sorted<K: PartialEq>(
    items: &[(K, i64, u32)],
    mut group: impl FnMut(&K, u32),
) -> (Vec<u32>, Vec<i64>, Vec<(u32, u32)>) {
    let mut rows = Vec::with_capacity(items.len());
    let mut tss = Vec::with_capacity(items.len());
    let mut spans = Vec::new();
    let mut start = 0u32;
    for i in 0..items.len() {
        rows.push(items[i].2);
        tss.push(items[i].1);
        if i + 1 == items.len() || items[i + 1].0 != items[i].0 {
            group(&items[i].0, spans.len() as u32);
            spans.push((start, i as u32 + 1));
            start = i as u32 + 1;
        }
    }
    (rows, tss, spans)
}

/// What [`KeyGroups::new`] builds: rows, times, group spans and the lookup.
type Grouped = (Vec<u32>, Vec<i64>, Vec<(u32, u32)>, Lookup);

/// Integer keys whose range is at most 4x the number of rows (plus slack): grouped by a
/// counting sort on the key, then each small group sorted by `(ts, row)`. The same order as
/// sorting `(key, ts, row)` outright, in linear time: a 1M-row entity table is indexed before
/// the probe can start, so this is on the critical path (the comparison sort took about 40%
/// of that serial start).
fn dense_groups(items: &[(i64, i64, u32)]) -> Option<Grouped> {
    let (min, max) = items
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), (k, _, _)| {
            (lo.min(*k), hi.max(*k))
        });
    if items.is_empty() {
        return None;
    }
    let range = (max as i128 - min as i128 + 1) as u128;
    if range > 4 * items.len() as u128 + 1024 || range > (1 << 26) {
        return None;
    }
    let range = range as usize;
    let mut starts = vec![0u32; range + 1];
    for (k, _, _) in items {
        starts[(k - min) as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    let mut sorted = vec![(0i64, 0u32); items.len()];
    for (k, t, row) in items {
        let at = &mut next[(k - min) as usize];
        sorted[*at as usize] = (*t, *row);
        *at += 1;
    }
    let mut spans = Vec::new();
    let mut direct = vec![(0u32, 0u32); range];
    for (g, w) in starts.windows(2).enumerate() {
        let (s, e) = (w[0], w[1]);
        if e > s {
            sorted[s as usize..e as usize].sort_unstable();
            spans.push((s, e));
            direct[g] = (s, e);
        }
    }
    let rows = sorted.iter().map(|x| x.1).collect();
    let tss = sorted.iter().map(|x| x.0).collect();
    let lookup = if range as u128 <= 4 * spans.len() as u128 + 1024 {
        Lookup::Dense { min, spans: direct }
    } else {
        // Many rows per key over a sparse range: a hash map is smaller than the direct table.
        let ids = direct
            .iter()
            .enumerate()
            .filter(|(_, (s, e))| e > s)
            .enumerate()
            .map(|(id, (g, _))| (min + g as i64, id as u32))
            .collect();
        Lookup::Int(ids)
    };
    Some((rows, tss, spans, lookup))
}

/// `(key, time, row)` of the rows with an integer key and a time, in row order. Sized once:
/// collected from a filter it grew by doubling, copied into fresh memory at each step.
fn int_items(keys: Vec<Option<Key>>, ts: &[Option<i64>]) -> Vec<(i64, i64, u32)> {
    let mut items = Vec::with_capacity(keys.len());
    for (i, (k, t)) in keys.into_iter().zip(ts).enumerate() {
        if let (Some(Key::Int(v)), Some(t)) = (k, t) {
            items.push((v, *t, i as u32));
        }
    }
    items
}

impl KeyGroups {
    /// Indexes rows; rows with a null key or timestamp are left out (they never match).
    pub fn new(keys: Vec<Option<Key>>, ts: &[Option<i64>]) -> Self {
        let len = keys.len();
        let all_int = keys.iter().all(|k| !matches!(k, Some(Key::Bytes(_))));
        let (rows, tss, spans, lookup) = if all_int {
            // Integer keys sort as plain tuples: about twice as fast as through `Key`.
            let mut items = int_items(keys, ts);
            if let Some(grouped) = dense_groups(&items) {
                grouped
            } else {
                items.sort_unstable();
                let mut ints = FxHashMap::default();
                let (rows, tss, spans) = group_sorted(&items, |k, id| {
                    ints.insert(*k, id);
                });
                let lookup = Lookup::ints(ints, &spans);
                (rows, tss, spans, lookup)
            }
        } else {
            let mut items: Vec<(Key, i64, u32)> = keys
                .into_iter()
                .zip(ts)
                .enumerate()
                .filter_map(|(i, (k, t))| Some((k?, (*t)?, i as u32)))
                .collect();
            items.sort_unstable();
            let mut anys = FxHashMap::default();
            let (rows, tss, spans) = group_sorted(&items, |k: &Key, id| {
                anys.insert(k.clone(), id);
            });
            (rows, tss, spans, Lookup::Any(anys))
        };
        let part_bounds = vec![0, rows.len() as u32];
        KeyGroups {
            rows,
            ts: tss,
            spans,
            lookup,
            len,
            part_bounds,
        }
    }

    /// Indexes rows by dense key id (`ids[row]` in `0..n_ids`, or [`NO_ID`]), as numbered by a
    /// [`KeySpace`](crate::key_space::KeySpace): a counting sort by id, then each group by
    /// `(time, row)`; rows without an id or a time are left out. Feature rows then find their
    /// group at `value - min` ([`BatchKeys::Int`], `min` of a dense integer key space) or at
    /// their id ([`BatchKeys::Ids`], `min` 0).
    ///
    /// With `parts` > 1 the groups are laid out by hash partition (`part_of(id)`), so that each
    /// partition's slots are one contiguous range ([`KeyGroups::part_range`]): a join of one
    /// partition owns just those slots. Within a partition, and with one partition, groups are in
    /// id order.
    pub fn from_ids(
        ids: &[u32],
        n_ids: usize,
        ts: &[Option<i64>],
        min: i64,
        part_of: impl Fn(u32) -> u32,
        parts: usize,
    ) -> Self {
        let parts = parts.max(1);
        // Layout position of each id (identity with one partition), and each partition's first
        // position.
        let mut part_start = vec![0u32; parts + 1];
        let order: Option<Vec<u32>> = (parts > 1).then(|| {
            let of: Vec<u32> = (0..n_ids as u32).map(&part_of).collect();
            for p in &of {
                part_start[*p as usize + 1] += 1;
            }
            for p in 1..=parts {
                part_start[p] += part_start[p - 1];
            }
            let mut next = part_start.clone();
            of.iter()
                .map(|p| {
                    let at = next[*p as usize];
                    next[*p as usize] += 1;
                    at
                })
                .collect()
        });
        if order.is_none() {
            part_start[1] = n_ids as u32;
        }
        let pos = |id: u32| order.as_ref().map_or(id, |o| o[id as usize]) as usize;
        let mut starts = vec![0u32; n_ids + 1];
        for (id, t) in ids.iter().zip(ts) {
            if *id != NO_ID && t.is_some() {
                starts[pos(*id) + 1] += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let total = starts[n_ids] as usize;
        let mut next = starts.clone();
        let mut sorted = vec![(0i64, 0u32); total];
        for (row, (id, t)) in ids.iter().zip(ts).enumerate() {
            if let (true, Some(t)) = (*id != NO_ID, t) {
                let at = &mut next[pos(*id)];
                sorted[*at as usize] = (*t, row as u32);
                *at += 1;
            }
        }
        let mut spans = Vec::new();
        for w in starts.windows(2) {
            let (s, e) = (w[0], w[1]);
            if e > s {
                sorted[s as usize..e as usize].sort_unstable();
                spans.push((s, e));
            }
        }
        let direct: Vec<(u32, u32)> = (0..n_ids as u32)
            .map(|id| {
                let p = pos(id);
                (starts[p], starts[p + 1])
            })
            .collect();
        let part_bounds = part_start.iter().map(|p| starts[*p as usize]).collect();
        KeyGroups {
            rows: sorted.iter().map(|x| x.1).collect(),
            ts: sorted.iter().map(|x| x.0).collect(),
            spans,
            lookup: Lookup::Dense { min, spans: direct },
            len: ids.len(),
            part_bounds,
        }
    }

    /// Number of hash partitions.
    pub fn parts(&self) -> usize {
        self.part_bounds.len() - 1
    }

    /// The slots of hash partition `p`.
    pub fn part_range(&self, p: usize) -> std::ops::Range<usize> {
        self.part_bounds[p] as usize..self.part_bounds[p + 1] as usize
    }

    /// Number of slots (rows indexed, left-out rows not counted).
    pub fn slots(&self) -> usize {
        self.rows.len()
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
        self.spans.len()
    }

    /// The `[start, end)` range of `key`'s group in `rows` / `ts`.
    pub(crate) fn group(&self, key: &Key) -> Option<(usize, usize)> {
        let (s, e) = match (&self.lookup, key) {
            (l, Key::Int(v)) => l.int(*v, &self.spans)?,
            (Lookup::Any(m), k) => self.spans[*m.get(k)? as usize],
            (_, Key::Bytes(_)) => return None,
        };
        Some((s as usize, e as usize))
    }

    /// The group of row `i` of a batch.
    #[inline]
    pub(crate) fn group_of(&self, keys: &BatchKeys<'_>, i: usize) -> Option<(usize, usize)> {
        let (s, e) = match keys {
            BatchKeys::Int(a) => {
                if a.is_null(i) {
                    return None;
                }
                self.lookup.int(a.value(i), &self.spans)?
            }
            BatchKeys::Encoded(k) => return self.group(k[i].as_ref()?),
            BatchKeys::Ids(ids) => {
                // Ids index the direct table as they are (a dense integer space's `min` is
                // already taken off).
                let Lookup::Dense { spans, .. } = &self.lookup else {
                    return None;
                };
                let span = *spans.get(ids[i] as usize)?;
                if span.0 == span.1 {
                    return None;
                }
                span
            }
        };
        Some((s as usize, e as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(keys: &[i64]) -> KeyGroups {
        let ks = keys.iter().map(|k| Some(Key::Int(*k))).collect();
        let ts: Vec<Option<i64>> = keys.iter().map(|_| Some(0)).collect();
        KeyGroups::new(ks, &ts)
    }

    #[test]
    fn dense_and_sparse_integer_keys_find_the_same_groups() {
        let dense = groups(&[5, 6, 6, 9, 10]);
        assert!(matches!(dense.lookup, Lookup::Dense { .. }));
        let sparse = groups(&[5, 6, 6, 9, i64::MAX / 2]);
        assert!(matches!(sparse.lookup, Lookup::Int(_)));
        for g in [&dense, &sparse] {
            assert_eq!(g.group(&Key::Int(6)), Some((1, 3)));
            assert_eq!(g.group(&Key::Int(5)), Some((0, 1)));
            assert_eq!(g.group(&Key::Int(7)), None, "gap");
            assert_eq!(g.group(&Key::Int(4)), None, "below the range");
            assert_eq!(g.group(&Key::Int(i64::MIN)), None);
            assert_eq!(g.group(&Key::Int(1_000_000)), None, "above the range");
        }
    }

    /// The counting sort orders rows exactly as sorting `(key, ts, row)` does, including rows
    /// with equal times, and picks the same lookups.
    #[test]
    fn counting_sort_groups_equal_a_full_sort() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        // Dense keys (a few absent), times with many ties; then two keys far apart, many rows
        // each (dense enough to count, too sparse for a direct table).
        let dense: Vec<(i64, i64, u32)> = (0..5000)
            .map(|i| (next(700) as i64 - 300, next(20) as i64, i))
            .collect();
        let sparse: Vec<(i64, i64, u32)> = (0..2000)
            .map(|i| (if i % 2 == 0 { 0 } else { 5000 }, next(50) as i64, i))
            .collect();
        for (items, want_dense) in [(dense, true), (sparse, false)] {
            let (rows, tss, spans, lookup) = dense_groups(&items).expect("counted");
            assert_eq!(matches!(lookup, Lookup::Dense { .. }), want_dense);
            let mut sorted = items.clone();
            sorted.sort_unstable();
            let (want_rows, want_ts, want_spans) = group_sorted(&sorted, |_, _| {});
            assert_eq!(rows, want_rows);
            assert_eq!(tss, want_ts);
            assert_eq!(spans, want_spans);
            for (k, _, _) in &items {
                let (s, e) = lookup.int(*k, &spans).expect("present");
                assert!(sorted[s as usize..e as usize].iter().all(|x| x.0 == *k));
            }
            assert_eq!(lookup.int(-301, &spans), None);
        }
    }
}
