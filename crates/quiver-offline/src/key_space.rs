//! The entity keys of one retrieval, numbered densely: every key type at integer-key speed.
//!
//! A [`KeySpace`] is built once per call and per join-key list from the entity rows' key
//! columns. Each distinct key tuple gets an id in `0..len()`; the entity rows are then indexed by
//! id with a counting sort ([`KeyGroups::from_ids`](crate::key::KeyGroups::from_ids)), and each
//! feature row's key is looked up once, per batch, into the same id space (keys no entity row
//! has get none, so those rows are dropped before the probe). After that, every key type takes
//! the path of a dense integer key: one array access from id to the entity rows of the key.
//!
//! - One integer column whose values span at most 4x the rows: the id is `value - min` (no
//!   table at all; the feature side reads the `Int64` column directly).
//! - One string column (`Utf8`, `LargeUtf8`, `Utf8View`, or a dictionary of those): a
//!   [`StrDict`], an open-addressing table over the bytes. A dictionary column is looked up once
//!   per dictionary value, not per row.
//! - Anything else (sparse 64-bit integers, composite keys of any mix of types): each column
//!   becomes a 64-bit word (an integer's value, a string's id in its column's [`StrDict`]) and
//!   the tuple of words is numbered by a [`WordTable`].
//!
//! Each id also has a hash of its key's *values* (not of the id, which depends on the entity
//! rows' order), which places it in one of the call's hash partitions ([`KeySpace::part_of`]).

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, GenericStringArray, Int64Array, OffsetSizeTrait,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    ArrowNativeType, DataType, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};

use crate::error::{Error, Result};

/// The id of a key no entity row has (or a null key): the row never matches.
pub const NO_ID: u32 = u32::MAX;

/// Murmur3's 64-bit finalizer: every input bit moves every output bit.
#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A fast hash of a byte string (8 bytes per step, then [`fmix64`]).
#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    fmix64(h)
}

/// The hash of an integer key value.
#[inline]
pub fn hash_int(v: i64) -> u64 {
    fmix64(v as u64 ^ 0x2545_f491_4f6c_dd1d)
}

/// An open-addressing table (linear probing) of `(hash tag, id)` slots; what a slot's id stands
/// for is the caller's: [`StrDict`] and [`WordTable`] keep the keys themselves.
#[derive(Debug, Default)]
struct Slots {
    /// `tag << 32 | (id + 1)`, 0 when empty; the tag is the hash's high 32 bits.
    slots: Vec<u64>,
    len: usize,
}

impl Slots {
    fn with_capacity(n: usize) -> Self {
        Slots {
            slots: vec![0; (n * 2).next_power_of_two().max(16)],
            len: 0,
        }
    }

    /// The id whose key `eq` accepts among the slots of hash `h`, or the empty slot to fill.
    #[inline]
    fn find(&self, h: u64, eq: impl Fn(u32) -> bool) -> std::result::Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let tag = h >> 32;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return Err(i);
            }
            if s >> 32 == tag {
                let id = (s as u32) - 1;
                if eq(id) {
                    return Ok(id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Fills the empty slot `at` with `id` (from [`find`](Self::find)); grows (rehashing with
    /// `hash_of`) past half full.
    fn insert(&mut self, at: usize, h: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        self.slots[at] = (h >> 32) << 32 | (u64::from(id) + 1);
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            let grown = vec![0; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            let mask = self.slots.len() - 1;
            for s in old.into_iter().filter(|s| *s != 0) {
                let h = hash_of((s as u32) - 1);
                let mut i = h as usize & mask;
                while self.slots[i] != 0 {
                    i = (i + 1) & mask;
                }
                self.slots[i] = s;
            }
        }
    }
}

/// Distinct strings numbered `0..len` in first-seen order.
#[derive(Debug, Default)]
pub struct StrDict {
    slots: Slots,
    /// Id -> start of its bytes in `bytes` (one more entry than ids).
    offsets: Vec<usize>,
    bytes: Vec<u8>,
    hashes: Vec<u64>,
}

impl StrDict {
    fn with_capacity(n: usize) -> Self {
        StrDict {
            slots: Slots::with_capacity(n),
            offsets: vec![0],
            bytes: Vec::new(),
            hashes: Vec::new(),
        }
    }

    fn get(&self, id: u32) -> &[u8] {
        &self.bytes[self.offsets[id as usize]..self.offsets[id as usize + 1]]
    }

    /// The id of `s`, if it was inserted.
    #[inline]
    pub fn find(&self, s: &[u8]) -> Option<u32> {
        self.slots.find(hash_bytes(s), |id| self.get(id) == s).ok()
    }

    /// The id of `s`, inserting it if new.
    pub fn insert(&mut self, s: &[u8]) -> u32 {
        let h = hash_bytes(s);
        match self.slots.find(h, |id| self.get(id) == s) {
            Ok(id) => id,
            Err(at) => {
                let id = self.hashes.len() as u32;
                self.bytes.extend_from_slice(s);
                self.offsets.push(self.bytes.len());
                self.hashes.push(h);
                let hashes = &self.hashes;
                self.slots.insert(at, h, id, |i| hashes[i as usize]);
                id
            }
        }
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Distinct tuples of `width` 64-bit words numbered `0..len` in first-seen order.
#[derive(Debug)]
pub struct WordTable {
    width: usize,
    slots: Slots,
    words: Vec<u64>,
    hashes: Vec<u64>,
}

#[inline]
fn hash_words(w: &[u64]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for x in w {
        h = fmix64(h ^ *x);
    }
    h
}

impl WordTable {
    fn new(width: usize, n: usize) -> Self {
        WordTable {
            width,
            slots: Slots::with_capacity(n),
            words: Vec::new(),
            hashes: Vec::new(),
        }
    }

    fn get(&self, id: u32) -> &[u64] {
        let at = id as usize * self.width;
        &self.words[at..at + self.width]
    }

    /// The id of `w`, if it was inserted.
    #[inline]
    pub fn find(&self, w: &[u64]) -> Option<u32> {
        self.slots.find(hash_words(w), |id| self.get(id) == w).ok()
    }

    /// The id of `w`, inserting it if new (`new` says whether it was).
    fn insert(&mut self, w: &[u64], new: &mut bool) -> u32 {
        let h = hash_words(w);
        match self.slots.find(h, |id| self.get(id) == w) {
            Ok(id) => id,
            Err(at) => {
                *new = true;
                let id = self.hashes.len() as u32;
                self.words.extend_from_slice(w);
                self.hashes.push(h);
                let hashes = &self.hashes;
                self.slots.insert(at, h, id, |i| hashes[i as usize]);
                id
            }
        }
    }
}

/// How one key column becomes a 64-bit word.
#[derive(Debug)]
enum Column {
    /// An integer: its value.
    Int,
    /// A string: its id in the column's dictionary of the entity rows' strings.
    Str(StrDict),
}

#[derive(Debug)]
enum Kind {
    /// One integer column over a dense range: id = value - min.
    DenseInt { min: i64, len: usize },
    /// One string column: its dictionary's id.
    Str(StrDict),
    /// Words per column, numbered by tuple.
    Words {
        columns: Vec<Column>,
        tuples: WordTable,
    },
}

/// The entity keys of one call numbered `0..len()` (see the module docs).
#[derive(Debug)]
pub struct KeySpace {
    kind: Kind,
    /// Per id, the hash of the key's values (for partitions).
    hashes: Vec<u64>,
}

/// A key column as the words it is made of: an integer column cast to `Int64`, a string column
/// as it is (any string representation).
enum KeyColumn {
    Int(Int64Array),
    Str(ArrayRef),
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

fn key_column(a: &ArrayRef) -> Result<KeyColumn> {
    let t = a.data_type();
    if is_string(t) {
        return Ok(KeyColumn::Str(a.clone()));
    }
    if matches!(t, DataType::Int64) {
        return Ok(KeyColumn::Int(a.as_primitive::<Int64Type>().clone()));
    }
    let integer = matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Null
    );
    if integer {
        let c = cast(a, &DataType::Int64)?;
        return Ok(KeyColumn::Int(c.as_primitive::<Int64Type>().clone()));
    }
    // Anything else (booleans, dates): through its string form, on both sides alike.
    Ok(KeyColumn::Str(cast(a, &DataType::Utf8)?))
}

/// Sets `out[row] = id_of(bytes)` for each valid row of a string column of any representation
/// (null rows are left alone); a dictionary column's values are looked up once each.
fn str_ids(a: &dyn Array, out: &mut [u32], id_of: &mut impl FnMut(&[u8]) -> u32) -> Result<()> {
    fn strings<O: OffsetSizeTrait>(
        a: &GenericStringArray<O>,
        out: &mut [u32],
        id_of: &mut impl FnMut(&[u8]) -> u32,
    ) {
        let offsets = a.value_offsets();
        let values = a.value_data();
        let nulls = a.null_count() > 0;
        for (i, o) in out.iter_mut().enumerate() {
            if !nulls || a.is_valid(i) {
                let (s, e) = (offsets[i].as_usize(), offsets[i + 1].as_usize());
                *o = id_of(&values[s..e]);
            }
        }
    }
    match a.data_type() {
        DataType::Utf8 => strings(a.as_string::<i32>(), out, id_of),
        DataType::LargeUtf8 => strings(a.as_string::<i64>(), out, id_of),
        DataType::Utf8View => {
            let v = a.as_string_view();
            for (i, o) in out.iter_mut().enumerate() {
                if v.is_valid(i) {
                    *o = id_of(v.value(i).as_bytes());
                }
            }
        }
        DataType::Dictionary(k, _) => {
            macro_rules! dict {
                ($t:ty) => {{
                    let d = a.as_dictionary::<$t>();
                    let mut value_ids = vec![NO_ID; d.values().len()];
                    str_ids(d.values().as_ref(), &mut value_ids, id_of)?;
                    for (i, o) in out.iter_mut().enumerate() {
                        if d.is_valid(i) {
                            *o = value_ids[d.keys().value(i).as_usize()];
                        }
                    }
                }};
            }
            match k.as_ref() {
                DataType::Int8 => dict!(Int8Type),
                DataType::Int16 => dict!(Int16Type),
                DataType::Int32 => dict!(Int32Type),
                DataType::Int64 => dict!(Int64Type),
                DataType::UInt8 => dict!(UInt8Type),
                DataType::UInt16 => dict!(UInt16Type),
                DataType::UInt32 => dict!(UInt32Type),
                DataType::UInt64 => dict!(UInt64Type),
                other => return Err(Error::Internal(format!("dictionary keys of {other}"))),
            }
        }
        other => return Err(Error::Internal(format!("string key of type {other}"))),
    }
    Ok(())
}

/// Integer keys whose range is at most 4x the rows (plus slack) and under 2^26 are numbered by
/// their offset from the smallest.
fn dense_range(a: &Int64Array) -> Option<(i64, usize)> {
    let valid = a.len() - a.null_count();
    if valid == 0 {
        return None;
    }
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for (i, v) in a.values().iter().enumerate() {
        if a.is_valid(i) {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    let range = (hi as i128 - lo as i128 + 1) as u128;
    (range <= 4 * valid as u128 + 1024 && range <= 1 << 26).then_some((lo, range as usize))
}

impl KeySpace {
    /// Numbers the entity rows' keys: the space, and each row's id ([`NO_ID`] for a null key).
    pub fn build(columns: &[ArrayRef]) -> Result<(KeySpace, Vec<u32>)> {
        let n = columns.first().map_or(0, |c| c.len());
        let cols = columns.iter().map(key_column).collect::<Result<Vec<_>>>()?;
        let mut ids = vec![NO_ID; n];
        match cols.as_slice() {
            [KeyColumn::Int(a)] => {
                if let Some((min, len)) = dense_range(a) {
                    for (i, (o, v)) in ids.iter_mut().zip(a.values()).enumerate() {
                        if a.is_valid(i) {
                            *o = (v - min) as u32;
                        }
                    }
                    let hashes = (0..len as i64).map(|o| hash_int(min + o)).collect();
                    let kind = Kind::DenseInt { min, len };
                    return Ok((KeySpace { kind, hashes }, ids));
                }
            }
            [KeyColumn::Str(a)] => {
                let mut dict = StrDict::with_capacity(1024);
                str_ids(a.as_ref(), &mut ids, &mut |s| dict.insert(s))?;
                let hashes = dict.hashes.clone();
                let kind = Kind::Str(dict);
                return Ok((KeySpace { kind, hashes }, ids));
            }
            _ => {}
        }
        // Words: each column's word per row (string ids from a dictionary per column), then
        // the tuples numbered. A row with any null stays NO_ID.
        let width = cols.len();
        let mut words = vec![0u64; n * width];
        let mut valid = vec![true; n];
        let mut value_hash = vec![0u64; n];
        let mut columns = Vec::with_capacity(width);
        for (c, col) in cols.iter().enumerate() {
            match col {
                KeyColumn::Int(a) => {
                    for (i, v) in a.values().iter().enumerate() {
                        words[i * width + c] = *v as u64;
                        value_hash[i] = fmix64(value_hash[i] ^ hash_int(*v));
                        valid[i] &= a.is_valid(i);
                    }
                    columns.push(Column::Int);
                }
                KeyColumn::Str(a) => {
                    let mut dict = StrDict::with_capacity(1024);
                    let mut sid = vec![NO_ID; n];
                    str_ids(a.as_ref(), &mut sid, &mut |s| dict.insert(s))?;
                    for (i, s) in sid.iter().enumerate() {
                        if *s == NO_ID {
                            valid[i] = false;
                        } else {
                            words[i * width + c] = u64::from(*s);
                            value_hash[i] = fmix64(value_hash[i] ^ dict.hashes[*s as usize]);
                        }
                    }
                    columns.push(Column::Str(dict));
                }
            }
        }
        let mut tuples = WordTable::new(width, 1024);
        let mut hashes = Vec::new();
        for i in 0..n {
            if valid[i] {
                let mut new = false;
                ids[i] = tuples.insert(&words[i * width..(i + 1) * width], &mut new);
                if new {
                    hashes.push(value_hash[i]);
                }
            }
        }
        let kind = Kind::Words { columns, tuples };
        Ok((KeySpace { kind, hashes }, ids))
    }

    /// Number of ids (distinct keys; for a dense integer range, the range).
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hash partition (of `parts`) of key `id`.
    #[inline]
    pub fn part_of(&self, id: u32, parts: usize) -> u32 {
        (self.hashes[id as usize] % parts as u64) as u32
    }

    /// `Some(min)` when ids are `value - min` of one integer column: the feature side then reads
    /// its `Int64` keys directly (see [`BatchKeys`](crate::key::BatchKeys)).
    pub fn dense_min(&self) -> Option<i64> {
        match self.kind {
            Kind::DenseInt { min, .. } => Some(min),
            _ => None,
        }
    }

    /// The id of each row of a feature batch's key columns ([`NO_ID`] when no entity row has the
    /// key, or a key column is null). `out` is overwritten.
    pub fn lookup(&self, columns: &[ArrayRef], out: &mut Vec<u32>) -> Result<()> {
        let n = columns.first().map_or(0, |c| c.len());
        out.clear();
        out.resize(n, NO_ID);
        let cols = columns.iter().map(key_column).collect::<Result<Vec<_>>>()?;
        match (&self.kind, cols.as_slice()) {
            (Kind::DenseInt { min, len }, [KeyColumn::Int(a)]) => {
                for (i, (o, v)) in out.iter_mut().zip(a.values()).enumerate() {
                    let off = v.wrapping_sub(*min) as u64;
                    if off < *len as u64 && a.is_valid(i) {
                        *o = off as u32;
                    }
                }
            }
            (Kind::Str(dict), [KeyColumn::Str(a)]) => {
                str_ids(a.as_ref(), out, &mut |s| dict.find(s).unwrap_or(NO_ID))?;
            }
            (Kind::Words { columns, tuples }, cols) if cols.len() == columns.len() => {
                let width = cols.len();
                let mut words = vec![0u64; n * width];
                let mut valid = vec![true; n];
                let mut sid = Vec::new();
                for (c, (col, how)) in cols.iter().zip(columns).enumerate() {
                    match (col, how) {
                        (KeyColumn::Int(a), Column::Int) => {
                            for (i, v) in a.values().iter().enumerate() {
                                words[i * width + c] = *v as u64;
                                valid[i] &= a.is_valid(i);
                            }
                        }
                        (KeyColumn::Str(a), Column::Str(dict)) => {
                            sid.clear();
                            sid.resize(n, NO_ID);
                            str_ids(a.as_ref(), &mut sid, &mut |s| dict.find(s).unwrap_or(NO_ID))?;
                            for (i, s) in sid.iter().enumerate() {
                                if *s == NO_ID {
                                    valid[i] = false;
                                } else {
                                    words[i * width + c] = u64::from(*s);
                                }
                            }
                        }
                        _ => {
                            return Err(Error::Internal(
                                "feature and entity key columns differ in kind".into(),
                            ));
                        }
                    }
                }
                for (i, o) in out.iter_mut().enumerate() {
                    if valid[i] {
                        *o = tuples
                            .find(&words[i * width..(i + 1) * width])
                            .unwrap_or(NO_ID);
                    }
                }
            }
            _ => {
                return Err(Error::Internal(
                    "feature and entity key columns differ in kind".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{DictionaryArray, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::Int32Type;

    use super::*;

    #[test]
    fn strings_of_every_representation_find_the_same_ids() {
        let entity: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("bb"),
            None,
            Some("a"),
            Some("a string longer than twelve bytes"),
        ]));
        let (space, ids) = KeySpace::build(&[entity]).unwrap();
        assert_eq!(ids, [0, 1, NO_ID, 0, 2]);
        assert_eq!(space.len(), 3);
        let rows = [
            Some("a string longer than twelve bytes"),
            Some("zz"),
            None,
            Some("bb"),
        ];
        let want = [2, NO_ID, NO_ID, 1];
        let view: ArrayRef = Arc::new(StringViewArray::from(rows.to_vec()));
        let dict: ArrayRef = Arc::new(rows.iter().copied().collect::<DictionaryArray<Int32Type>>());
        let plain: ArrayRef = Arc::new(StringArray::from(rows.to_vec()));
        for a in [view, dict, plain] {
            let mut out = Vec::new();
            space.lookup(&[a], &mut out).unwrap();
            assert_eq!(out, want);
        }
    }

    #[test]
    fn sparse_and_composite_keys_are_numbered_by_tuple() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(i64::MAX),
            Some(-5),
            Some(i64::MAX),
            None,
        ]));
        let (space, ids) = KeySpace::build(std::slice::from_ref(&ints)).unwrap();
        assert_eq!(space.dense_min(), None);
        assert_eq!(ids, [0, 1, 0, NO_ID]);
        let strs: ArrayRef = Arc::new(StringArray::from(vec!["x", "x", "y", "x"]));
        let (pair, ids) = KeySpace::build(&[strs.clone(), ints.clone()]).unwrap();
        assert_eq!(ids, [0, 1, 2, NO_ID]);
        let f_strs: ArrayRef = Arc::new(StringViewArray::from(vec!["y", "x", "x", "q"]));
        let f_ints: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX, i64::MAX, 7, -5]));
        let mut out = Vec::new();
        pair.lookup(&[f_strs, f_ints], &mut out).unwrap();
        assert_eq!(out, [2, 0, NO_ID, NO_ID]);
        // Many keys: the tables grow and still find every one.
        let many: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..50_000).map(|i| format!("user-{i}")),
        ));
        let (space, ids) = KeySpace::build(std::slice::from_ref(&many)).unwrap();
        assert_eq!(ids, (0..50_000).collect::<Vec<u32>>());
        space.lookup(&[many], &mut out).unwrap();
        assert_eq!(out, ids);
    }

    #[test]
    fn dense_integers_are_offsets() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![10, 12, 10, 11]));
        let (space, ids) = KeySpace::build(std::slice::from_ref(&a)).unwrap();
        assert_eq!(space.dense_min(), Some(10));
        assert_eq!(ids, [0, 2, 0, 1]);
        let f: ArrayRef = Arc::new(Int64Array::from(vec![9, 13, 11, i64::MIN]));
        let mut out = Vec::new();
        space.lookup(&[f], &mut out).unwrap();
        assert_eq!(out, [NO_ID, NO_ID, 1, NO_ID]);
    }
}
