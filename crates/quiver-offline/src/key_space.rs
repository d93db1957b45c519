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

/// One slot of a [`Slots`] table: a hash tag, the id (plus one; 0 when empty) and the start
/// of the key itself, so that most lookups read one cache line (half of one: 32 bytes).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
struct Slot<P> {
    tag: u32,
    id: u32,
    inline: P,
}

/// An open-addressing table (linear probing, at most half full) of [`Slot`]s whose `inline`
/// part holds the key, or its start: a key is found by comparing the tag and the inline part,
/// then, for keys longer than that, what the caller's `rest` compares.
#[derive(Debug)]
struct Slots<P> {
    slots: Vec<Slot<P>>,
    len: usize,
}

/// Rows looked up at once: their slots are loaded before any is compared, so that the cache
/// misses of a block overlap instead of following one another.
const BLOCK: usize = 16;

impl<P: Copy + Default + PartialEq> Slots<P> {
    fn with_capacity(n: usize) -> Self {
        Slots {
            slots: vec![Slot::default(); (n * 2).next_power_of_two().max(16)],
            len: 0,
        }
    }

    /// The id of the key (hash `h`, inline part `inline`, the rest compared by `rest`), from
    /// the slot `at` on (its content `first` already read), or the empty slot where it would
    /// go.
    #[inline]
    fn find_from(
        &self,
        mut at: usize,
        first: Slot<P>,
        h: u64,
        inline: &P,
        rest: impl Fn(u32) -> bool,
    ) -> std::result::Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let tag = (h >> 32) as u32;
        let mut s = first;
        loop {
            if s.id == 0 {
                return Err(at);
            }
            if s.tag == tag && s.inline == *inline && rest(s.id - 1) {
                return Ok(s.id - 1);
            }
            at = (at + 1) & mask;
            s = self.slots[at];
        }
    }

    #[inline]
    fn find(
        &self,
        h: u64,
        inline: &P,
        rest: impl Fn(u32) -> bool,
    ) -> std::result::Result<u32, usize> {
        let at = h as usize & (self.slots.len() - 1);
        self.find_from(at, self.slots[at], h, inline, rest)
    }

    /// Looks up `n` keys, `key(k)` giving key `k`'s hash and inline part, [`BLOCK`] at a time;
    /// `found(k, id)` is told each answer.
    fn find_many(
        &self,
        n: usize,
        key: impl Fn(usize) -> (u64, P),
        rest: impl Fn(usize, u32) -> bool,
        mut found: impl FnMut(usize, Option<u32>),
    ) {
        let mask = self.slots.len() - 1;
        let mut keys = [(0u64, P::default()); BLOCK];
        let mut first = [Slot::<P>::default(); BLOCK];
        for start in (0..n).step_by(BLOCK) {
            let m = BLOCK.min(n - start);
            for (j, k) in keys[..m].iter_mut().enumerate() {
                *k = key(start + j);
            }
            for j in 0..m {
                first[j] = self.slots[keys[j].0 as usize & mask];
            }
            for j in 0..m {
                let (h, inline) = &keys[j];
                let at = *h as usize & mask;
                let id = self
                    .find_from(at, first[j], *h, inline, |id| rest(start + j, id))
                    .ok();
                found(start + j, id);
            }
        }
    }

    /// Fills the empty slot `at` (from a find) with `id`; grows (rehashing with `hash_of`)
    /// past half full.
    fn insert(&mut self, at: usize, h: u64, inline: P, id: u32, hash_of: impl Fn(u32) -> u64) {
        self.slots[at] = Slot {
            tag: (h >> 32) as u32,
            id: id + 1,
            inline,
        };
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            let grown = vec![Slot::default(); self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            let mask = self.slots.len() - 1;
            for s in old.into_iter().filter(|s| s.id != 0) {
                let mut i = hash_of(s.id - 1) as usize & mask;
                while self.slots[i].id != 0 {
                    i = (i + 1) & mask;
                }
                self.slots[i] = s;
            }
        }
    }
}

/// Bytes of a string kept in its slot.
const HEAD: usize = 20;

/// A string's length and first [`HEAD`] bytes (zero-padded).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct StrHead {
    len: u32,
    head: [u8; HEAD],
}

#[inline]
fn str_head(s: &[u8]) -> StrHead {
    let mut head = [0u8; HEAD];
    let n = s.len().min(HEAD);
    head[..n].copy_from_slice(&s[..n]);
    StrHead {
        len: s.len() as u32,
        head,
    }
}

/// Distinct strings numbered `0..len` in first-seen order.
#[derive(Debug)]
pub struct StrDict {
    slots: Slots<StrHead>,
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

    /// Whether the bytes of `id` past its head equal those of `s` (of the same length and
    /// head).
    #[inline]
    fn rest_equals(&self, id: u32, s: &[u8]) -> bool {
        s.len() <= HEAD || {
            let start = self.offsets[id as usize];
            self.bytes[start + HEAD..self.offsets[id as usize + 1]] == s[HEAD..]
        }
    }

    /// The id of `s`, if it was inserted.
    #[inline]
    pub fn find(&self, s: &[u8]) -> Option<u32> {
        self.slots
            .find(hash_bytes(s), &str_head(s), |id| self.rest_equals(id, s))
            .ok()
    }

    /// The ids of `strings` (`None` for those not inserted), told to `found` by index.
    fn find_many(&self, strings: &[&[u8]], found: impl FnMut(usize, Option<u32>)) {
        self.slots.find_many(
            strings.len(),
            |k| (hash_bytes(strings[k]), str_head(strings[k])),
            |k, id| self.rest_equals(id, strings[k]),
            found,
        );
    }

    /// The id of `s`, inserting it if new.
    pub fn insert(&mut self, s: &[u8]) -> u32 {
        let h = hash_bytes(s);
        let head = str_head(s);
        match self.slots.find(h, &head, |id| self.rest_equals(id, s)) {
            Ok(id) => id,
            Err(at) => {
                let id = self.hashes.len() as u32;
                self.bytes.extend_from_slice(s);
                self.offsets.push(self.bytes.len());
                self.hashes.push(h);
                let hashes = &self.hashes;
                self.slots.insert(at, h, head, id, |i| hashes[i as usize]);
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

/// Words of a tuple kept in its slot.
const WORDS: usize = 3;

/// Distinct tuples of `width` 64-bit words numbered `0..len` in first-seen order.
#[derive(Debug)]
pub struct WordTable {
    width: usize,
    slots: Slots<[u64; WORDS]>,
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

#[inline]
fn words_head(w: &[u64]) -> [u64; WORDS] {
    let mut head = [0u64; WORDS];
    let n = w.len().min(WORDS);
    head[..n].copy_from_slice(&w[..n]);
    head
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

    #[inline]
    fn rest_equals(&self, id: u32, w: &[u64]) -> bool {
        self.width <= WORDS || {
            let at = id as usize * self.width;
            self.words[at + WORDS..at + self.width] == w[WORDS..]
        }
    }

    /// The id of `w`, if it was inserted.
    #[inline]
    pub fn find(&self, w: &[u64]) -> Option<u32> {
        self.slots
            .find(hash_words(w), &words_head(w), |id| self.rest_equals(id, w))
            .ok()
    }

    /// The ids of the tuples of `words` (`width` words each) whose `valid` is set, into `out`
    /// ([`NO_ID`] for those not inserted).
    fn find_many(&self, words: &[u64], valid: &[bool], out: &mut [u32]) {
        let width = self.width;
        let tuple = |k: usize| &words[k * width..(k + 1) * width];
        self.slots.find_many(
            out.len(),
            |k| (hash_words(tuple(k)), words_head(tuple(k))),
            |k, id| self.rest_equals(id, tuple(k)),
            |k, id| {
                if valid[k] {
                    out[k] = id.unwrap_or(NO_ID);
                }
            },
        );
    }

    /// The id of `w`, inserting it if new (`new` says whether it was).
    fn insert(&mut self, w: &[u64], new: &mut bool) -> u32 {
        let h = hash_words(w);
        let head = words_head(w);
        match self.slots.find(h, &head, |id| self.rest_equals(id, w)) {
            Ok(id) => id,
            Err(at) => {
                *new = true;
                let id = self.hashes.len() as u32;
                self.words.extend_from_slice(w);
                self.hashes.push(h);
                let hashes = &self.hashes;
                self.slots.insert(at, h, head, id, |i| hashes[i as usize]);
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
    match a.data_type() {
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
        _ => for_each_str(a, |i, s| out[i] = id_of(s))?,
    }
    Ok(())
}

/// Looks up the strings of a key column (any representation) in `dict`: `out[row]` is the id
/// ([`NO_ID`] when absent; null rows are left alone). A dictionary column's values are looked up
/// once each; other columns' rows [`BLOCK`] at a time.
fn find_strs(dict: &StrDict, a: &dyn Array, out: &mut [u32]) -> Result<()> {
    if let DataType::Dictionary(..) = a.data_type() {
        return str_ids(a, out, &mut |s| dict.find(s).unwrap_or(NO_ID));
    }
    let mut rows: Vec<u32> = Vec::with_capacity(out.len());
    let mut strings: Vec<&[u8]> = Vec::with_capacity(out.len());
    for_each_str(a, |row, s| {
        rows.push(row as u32);
        strings.push(s);
    })?;
    dict.find_many(&strings, |k, id| {
        out[rows[k] as usize] = id.unwrap_or(NO_ID)
    });
    Ok(())
}

/// Calls `f(row, bytes)` for each valid row of a `Utf8`, `LargeUtf8` or `Utf8View` column.
fn for_each_str<'a>(a: &'a dyn Array, mut f: impl FnMut(usize, &'a [u8])) -> Result<()> {
    fn strings<'a, O: OffsetSizeTrait>(
        a: &'a GenericStringArray<O>,
        f: &mut impl FnMut(usize, &'a [u8]),
    ) {
        let offsets = a.value_offsets();
        let values = a.value_data();
        let nulls = a.null_count() > 0;
        for i in 0..a.len() {
            if !nulls || a.is_valid(i) {
                f(i, &values[offsets[i].as_usize()..offsets[i + 1].as_usize()]);
            }
        }
    }
    match a.data_type() {
        DataType::Utf8 => strings(a.as_string::<i32>(), &mut f),
        DataType::LargeUtf8 => strings(a.as_string::<i64>(), &mut f),
        DataType::Utf8View => {
            let v = a.as_string_view();
            for i in 0..v.len() {
                if v.is_valid(i) {
                    f(i, v.value(i).as_bytes());
                }
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
            (Kind::Str(dict), [KeyColumn::Str(a)]) => find_strs(dict, a.as_ref(), out)?,
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
                            find_strs(dict, a.as_ref(), &mut sid)?;
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
                tuples.find_many(&words, &valid, out);
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
