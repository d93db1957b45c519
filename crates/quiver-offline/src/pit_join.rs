//! The point-in-time join and its sibling, latest-per-key.
//!
//! Semantics (equal to Feast's `get_historical_features`): for an entity row with keys `k` and
//! timestamp `t`, the answer is the feature row with keys `k` and event timestamp `ts` such that
//! `t - ttl <= ts <= t` (both ends inclusive; no lower bound when the TTL is zero), the latest by
//! `(ts, created)`; among rows equal on both, the one read last wins. The chosen row's values are
//! returned as they are: a null stays null, it never falls back to an older row.
//!
//! How: the entity rows are indexed once, grouped by key and sorted by time ([`EntityIndex`]).
//! Feature rows then stream by in any order; each probes its key's group, and a binary search
//! finds the entity rows whose window contains it. The best candidate per entity row is kept as a
//! (batch, row) reference in a slot laid out in index order, so that one feature row touches one
//! contiguous run of memory (the probe is bound by cache misses, not arithmetic). Each partition
//! of the scan is probed by its own [`PitJoin`] on its own core; [`PitJoin::merge`] combines them. After each batch only the rows that are some entity row's current best
//! are kept (compacted with `take`), and batches that no longer hold any best row are dropped, so
//! memory is bounded by the entity table, not by the feature table.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayData, ArrayRef, RecordBatch, RecordBatchOptions, TimestampMicrosecondArray,
    UInt32Array, make_array, new_null_array,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::compute::{concat, interleave, take_record_batch};
use datafusion::arrow::datatypes::ArrowNativeType;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::key::{BatchKeys, FxHashMap, Key, KeyGroups};

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Best {
    ts: i64,
    created: i64,
    batch: u32,
    row: u32,
}

impl Best {
    const EMPTY: Best = Best {
        ts: i64::MIN,
        created: i64::MIN,
        batch: NONE,
        row: 0,
    };

    #[inline]
    fn loses_to(&self, ts: i64, created: i64) -> bool {
        self.batch == NONE || (ts, created) >= (self.ts, self.created)
    }
}

/// Entity rows grouped by key, sorted by timestamp within each group.
pub type EntityIndex = KeyGroups;

/// Batches of candidate rows, compacted and reference-counted.
#[derive(Default)]
struct Retained {
    batches: Vec<Option<RecordBatch>>,
    live: Vec<u32>,
    /// The scan partition each batch came from (decides exact ties in [`PitJoin::merge`]).
    part: Vec<u32>,
    /// Scratch of [`Retained::compact`], kept warm between batches.
    remap: Vec<u32>,
}

impl Retained {
    /// Forgets the row `old` pointed at.
    #[inline]
    fn release(&mut self, old: &Best) {
        if old.batch != NONE {
            let b = old.batch as usize;
            self.live[b] -= 1;
            if self.live[b] == 0 {
                self.batches[b] = None;
            }
        }
    }

    /// Keeps only the rows of `chunk` (rows numbered across its batches in order) that some
    /// entry of `best` points at, as batch `b`. `touched` lists (once each) the entries of `best`
    /// that moved to batch `b`.
    fn compact(
        &mut self,
        b: u32,
        part: u32,
        chunk: &[Candidates<'_>],
        best: &mut [Best],
        touched: &[u32],
    ) -> Result<()> {
        let total: usize = chunk.iter().map(|c| c.values.num_rows()).sum();
        let remap = &mut self.remap;
        remap.clear();
        remap.resize(total, NONE);
        // Mark the rows still some slot's best, then number them in row order, so that the
        // copy below reads the batches front to back (in slot order it would read at random).
        const KEEP: u32 = 0;
        let mut live = 0u32;
        for &t in touched {
            let w = &best[t as usize];
            if w.batch == b {
                remap[w.row as usize] = KEEP;
                live += 1;
            }
        }
        let mut take: Vec<u32> = Vec::new();
        for (row, slot) in remap.iter_mut().enumerate() {
            if *slot == KEEP {
                *slot = take.len() as u32;
                take.push(row as u32);
            }
        }
        for &t in touched {
            let w = &mut best[t as usize];
            if w.batch == b {
                w.row = remap[w.row as usize];
            }
        }
        let kept = if live == 0 {
            None
        } else if let [one] = chunk {
            if take.len() == one.values.num_rows() {
                // Every row is kept, in order.
                Some(one.values.clone())
            } else {
                Some(take_record_batch(one.values, &UInt32Array::from(take))?)
            }
        } else {
            Some(gather_rows(chunk, &take)?)
        };
        debug_assert_eq!(self.batches.len(), b as usize);
        self.batches.push(kept);
        self.live.push(live);
        self.part.push(part);
        Ok(())
    }

    /// One output column per column of `schema`, `n` rows: row `to_row[j]` (or `j` without
    /// `to_row`) takes the value `best[j]` points at; rows nothing points at, or that point at
    /// nothing, are null.
    fn gather(
        &self,
        schema: &SchemaRef,
        best: &[Best],
        to_row: Option<&[u32]>,
        n: usize,
    ) -> Result<Vec<ArrayRef>> {
        // Source 0 is a one-row null batch for unmatched rows; batch b is source 1 + dense[b].
        let mut dense = vec![NONE; self.batches.len()];
        let mut sources: Vec<&RecordBatch> = Vec::new();
        for (b, batch) in self.batches.iter().enumerate() {
            if let Some(batch) = batch {
                dense[b] = sources.len() as u32 + 1;
                sources.push(batch);
            }
        }
        let mut indices = vec![(0u32, 0u32); n];
        for (j, x) in best.iter().enumerate() {
            if x.batch != NONE {
                let at = to_row.map_or(j, |r| r[j] as usize);
                indices[at] = (dense[x.batch as usize], x.row);
            }
        }
        let fields = schema.fields();
        let nulls: Vec<ArrayRef> = fields
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let arrays = |c: usize| -> Vec<&dyn Array> {
            let mut a: Vec<&dyn Array> = vec![nulls[c].as_ref()];
            a.extend(sources.iter().map(|s| s.column(c).as_ref()));
            a
        };
        // Each column is a random gather over the retained batches (bound by cache misses), so
        // the rows are split into one range per core. A fixed-width column is written in place,
        // each range straight into its part of the output; the others (strings, booleans,
        // nested) are gathered per range by `interleave`, then appended.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if n < 1 << 16 { 1 } else { threads };
        // Ranges of a multiple of 64 rows, so that each range's validity bits are whole bytes.
        let per = n.div_ceil(threads).next_multiple_of(64).max(64);
        (0..fields.len())
            .map(|c| {
                let arrays = arrays(c);
                match gather_fixed(&arrays, &indices, per)? {
                    Some(a) => Ok(a),
                    None => gather_any(&arrays, &indices, per),
                }
            })
            .collect()
    }
}

/// `interleave` over ranges of `per` rows, on one thread each, appended.
fn gather_any(arrays: &[&dyn Array], indices: &[(u32, u32)], per: usize) -> Result<ArrayRef> {
    let one = |rows: &[(u32, u32)]| -> Result<ArrayRef> {
        let rows: Vec<(usize, usize)> = rows
            .iter()
            .map(|&(s, r)| (s as usize, r as usize))
            .collect();
        Ok(interleave(arrays, &rows)?)
    };
    if indices.len() <= per {
        return one(indices);
    }
    let parts: Vec<ArrayRef> = std::thread::scope(|scope| {
        let one = &one;
        let handles: Vec<_> = indices
            .chunks(per)
            .map(|rows| scope.spawn(move || one(rows)))
            .collect();
        joined(handles, "a gather thread panicked")
    })?;
    let pieces: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
    Ok(concat(&pieces)?)
}

/// The gather of a fixed-width column (numbers, times, dates, decimals), written in place: one
/// output buffer, each range of `per` rows filled by its own thread. `None` for other types.
fn gather_fixed(
    arrays: &[&dyn Array],
    indices: &[(u32, u32)],
    per: usize,
) -> Result<Option<ArrayRef>> {
    let data_type = arrays[0].data_type().clone();
    let Some(width) = data_type.primitive_width() else {
        return Ok(None);
    };
    let data: Vec<ArrayData> = arrays.iter().map(|a| a.to_data()).collect();
    let values = match width {
        1 => gather_values::<u8>(&data, indices, per),
        2 => gather_values::<u16>(&data, indices, per),
        4 => gather_values::<u32>(&data, indices, per),
        8 => gather_values::<u64>(&data, indices, per),
        16 => gather_values::<i128>(&data, indices, per),
        _ => return Ok(None),
    };
    // Validity, range by range (whole bytes each: `per` is a multiple of 64), then joined.
    let valid = |rows: &[(u32, u32)]| {
        let bits = BooleanBuffer::collect_bool(rows.len(), |i| {
            let (s, r) = rows[i];
            data[s as usize].is_valid(r as usize)
        });
        let nulls = rows.len() - bits.count_set_bits();
        (bits, nulls)
    };
    let parts: Vec<(BooleanBuffer, usize)> = if indices.len() <= per {
        vec![valid(indices)]
    } else {
        std::thread::scope(|scope| {
            let valid = &valid;
            let handles: Vec<_> = indices
                .chunks(per)
                .map(|rows| scope.spawn(move || Ok(valid(rows))))
                .collect();
            joined(handles, "a gather thread panicked")
        })?
    };
    let null_count: usize = parts.iter().map(|(_, n)| n).sum();
    let mut builder = ArrayData::builder(data_type)
        .len(indices.len())
        .add_buffer(values);
    if null_count > 0 {
        let mut bytes = Vec::with_capacity(indices.len().div_ceil(8));
        for (bits, _) in &parts {
            bytes.extend_from_slice(&bits.inner().as_slice()[..bits.len().div_ceil(8)]);
        }
        builder = builder
            .null_bit_buffer(Some(Buffer::from_vec(bytes)))
            .null_count(null_count);
    }
    Ok(Some(make_array(builder.build()?)))
}

/// The values (as `T`, of the column's width) of `data[s]` at row `r` for each `(s, r)`, ranges
/// of `per` rows written on their own threads.
fn gather_values<T: ArrowNativeType>(
    data: &[ArrayData],
    indices: &[(u32, u32)],
    per: usize,
) -> Buffer {
    let sources: Vec<&[T]> = data.iter().map(|d| &d.buffer::<T>(0)[..d.len()]).collect();
    let mut out = vec![T::default(); indices.len()];
    let fill = |out: &mut [T], rows: &[(u32, u32)]| {
        for (o, &(s, r)) in out.iter_mut().zip(rows) {
            *o = sources[s as usize][r as usize];
        }
    };
    if indices.len() <= per {
        fill(&mut out, indices);
    } else {
        std::thread::scope(|scope| {
            for (o, rows) in out.chunks_mut(per).zip(indices.chunks(per)) {
                let fill = &fill;
                scope.spawn(move || fill(o, rows));
            }
        });
    }
    Buffer::from_vec(out)
}

/// The results of scoped threads, in order; a thread that panicked is an internal error.
fn joined<T>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>,
    panicked: &str,
) -> Result<Vec<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| crate::Error::Internal(panicked.into()))?
        })
        .collect()
}

/// The rows `rows` (ascending, numbered across the batches of `chunk` in order) of `chunk`'s
/// values, as one batch: the scan's batches are probed in place and only the kept rows copied.
fn gather_rows(chunk: &[Candidates<'_>], rows: &[u32]) -> Result<RecordBatch> {
    let mut indices = Vec::with_capacity(rows.len());
    let (mut part, mut start, mut end) = (0usize, 0usize, chunk[0].values.num_rows());
    for &r in rows {
        let r = r as usize;
        while r >= end {
            part += 1;
            start = end;
            end += chunk[part].values.num_rows();
        }
        indices.push((part, r - start));
    }
    let schema = chunk[0].values.schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> =
                chunk.iter().map(|p| p.values.column(c).as_ref()).collect();
            Ok(interleave(&arrays, &indices)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )?)
}

/// One feature batch prepared for probing: keys, timestamps and the values to carry.
pub struct Candidates<'a> {
    /// Key columns.
    pub keys: &'a BatchKeys<'a>,
    /// Event timestamps (UTC microseconds); null never matches.
    pub ts: &'a TimestampMicrosecondArray,
    /// Created timestamps (tie-break), if the source has them.
    pub created: Option<&'a TimestampMicrosecondArray>,
    /// The values to return for a match (any columns).
    pub values: &'a RecordBatch,
}

#[inline]
fn created_at(c: Option<&TimestampMicrosecondArray>, row: usize) -> i64 {
    match c {
        Some(a) if a.is_valid(row) => a.value(row),
        _ => i64::MIN,
    }
}

/// The streaming point-in-time join of one feature view (or one scan partition of it) against
/// indexed entity rows: all of them, or the slots of one hash partition of their keys
/// ([`PitJoin::for_part`]).
pub struct PitJoin {
    index: Arc<EntityIndex>,
    /// The first slot this join owns: slot `j` is `best[j - lo]`.
    lo: usize,
    ttl: Option<i64>,
    /// Best candidate per index position (not per entity row: see the module docs).
    best: Vec<Best>,
    retained: Retained,
    schema: SchemaRef,
    touched: Vec<u32>,
    /// Scratch of [`PitJoin::push`] and of the sweep, kept warm between batches.
    probes: Probes,
    run: Vec<Probe>,
}

/// A feature row about to probe its key's group of slots `start..end`.
#[derive(Clone, Copy, Default)]
struct Probe {
    start: u32,
    end: u32,
    row: u32,
    ts: i64,
    created: i64,
}

/// The rows of a chunk of feature batches that found their key's group, in slot order (and in
/// row order within a group): computed once per chunk and shared by the joins of every hash
/// partition, each taking the probes of its slots.
#[derive(Default)]
pub struct Probes {
    found: Vec<Probe>,
    ordered: Vec<Probe>,
    counts: Vec<usize>,
}

impl Probes {
    /// The probes of `chunk` (consecutive batches, rows numbered across them in order) against
    /// `idx`.
    pub fn fill(&mut self, idx: &EntityIndex, chunk: &[Candidates<'_>]) {
        // Pass 1, in row order: each row's group, with its times copied next to it. Then a
        // stable counting sort by where the group's slots live, so that pass 2 walks the slots
        // in memory order and reads nothing else at random: the probe is bound by cache misses
        // (copying the times here, rather than reading them by row in pass 2, halved its time).
        // Row order within a group, which decides exact ties, is kept.
        let found = &mut self.found;
        found.clear();
        // Sized once: grown by doubling, it was copied into fresh memory at each step.
        found.reserve(chunk.iter().map(|c| c.values.num_rows()).sum());
        let mut offset = 0u32;
        for c in chunk {
            let ts_values = c.ts.values();
            let ts_nulls = c.ts.null_count() > 0;
            for row in 0..c.values.num_rows() {
                if ts_nulls && c.ts.is_null(row) {
                    continue;
                }
                if let Some((start, end)) = idx.group_of(c.keys, row) {
                    found.push(Probe {
                        start: start as u32,
                        end: end as u32,
                        row: offset + row as u32,
                        ts: ts_values[row],
                        created: created_at(c.created, row),
                    });
                }
            }
            offset += c.values.num_rows() as u32;
        }
        // Two stable counting-sort passes (least significant digit first): by the low bits of
        // the group's first slot, then by the high bits. The result is in slot order, so pass 2
        // walks slots and entity times front to back and the prefetcher keeps up (sorting by
        // the high bits alone left each 2,048-slot bucket's slots read in random order: a
        // quarter of the probe's time was that load). Every element of both buffers is written
        // before it is read, so they are only resized, never cleared.
        const LOW: u32 = 11;
        let counts = &mut self.counts;
        let high_len = (idx.slots() >> LOW) + 2;
        counts.clear();
        counts.resize((1 << LOW) + 1 + high_len, 0);
        let (low, high) = counts.split_at_mut((1 << LOW) + 1);
        for f in found.iter() {
            low[(f.start & ((1 << LOW) - 1)) as usize + 1] += 1;
            high[(f.start >> LOW) as usize + 1] += 1;
        }
        for i in 1..low.len() {
            low[i] += low[i - 1];
        }
        for i in 1..high.len() {
            high[i] += high[i - 1];
        }
        let ordered = &mut self.ordered;
        ordered.resize(found.len(), Probe::default());
        for f in found.iter() {
            let slot = &mut low[(f.start & ((1 << LOW) - 1)) as usize];
            ordered[*slot] = *f;
            *slot += 1;
        }
        // Back into `found`, by the high bits: stable, so slot order and row order hold.
        for f in ordered.iter() {
            let slot = &mut high[(f.start >> LOW) as usize];
            found[*slot] = *f;
            *slot += 1;
        }
    }

    /// The probes of the groups starting in slots `lo..hi` (a partition's).
    fn within(&self, lo: usize, hi: usize) -> &[Probe] {
        let a = self.found.partition_point(|p| (p.start as usize) < lo);
        let b = a + self.found[a..].partition_point(|p| (p.start as usize) < hi);
        &self.found[a..b]
    }
}

/// Groups of more entity rows than this are joined by a sort-merge sweep instead of a search
/// per feature row: a key holding a tenth of a million entity rows would otherwise have each of
/// its feature rows walk every entity row of its TTL window.
const SWEEP_SLOTS: usize = 64;

/// Offers the row `p` (of batch `b`) to slot `j` of `best`.
#[inline]
fn offer(
    best: &mut [Best],
    retained: &mut Retained,
    touched: &mut Vec<u32>,
    j: usize,
    p: &Probe,
    b: u32,
) {
    let cur = best[j];
    if cur.loses_to(p.ts, p.created) {
        if cur.batch != b {
            retained.release(&cur);
            touched.push(j as u32);
        }
        best[j] = Best {
            ts: p.ts,
            created: p.created,
            batch: b,
            row: p.row,
        };
    }
}

impl PitJoin {
    /// A join over every slot of `index` whose values have `schema`; `ttl_micros` of 0 means
    /// unbounded.
    pub fn new(index: Arc<EntityIndex>, ttl_micros: i64, schema: SchemaRef) -> Self {
        let slots = 0..index.slots();
        Self::over(index, slots, ttl_micros, schema)
    }

    /// A join over the slots of hash partition `part` of `index`.
    pub fn for_part(
        index: Arc<EntityIndex>,
        part: usize,
        ttl_micros: i64,
        schema: SchemaRef,
    ) -> Self {
        let slots = index.part_range(part);
        Self::over(index, slots, ttl_micros, schema)
    }

    fn over(
        index: Arc<EntityIndex>,
        slots: std::ops::Range<usize>,
        ttl_micros: i64,
        schema: SchemaRef,
    ) -> Self {
        PitJoin {
            index,
            lo: slots.start,
            ttl: (ttl_micros > 0).then_some(ttl_micros),
            best: vec![Best::EMPTY; slots.len()],
            retained: Retained::default(),
            schema,
            touched: Vec::new(),
            probes: Probes::default(),
            run: Vec::new(),
        }
    }

    /// Probes a chunk of consecutive feature batches (read in place; their rows are numbered
    /// across the chunk in order) of scan partition `part`. One join takes its partitions in
    /// increasing order; on an exact `(ts, created)` tie the row pushed last wins.
    pub fn push(&mut self, chunk: &[Candidates<'_>], part: u32) -> Result<()> {
        let mut probes = std::mem::take(&mut self.probes);
        probes.fill(&self.index, chunk);
        let hi = self.lo + self.best.len();
        let r = self.apply(probes.within(self.lo, hi), chunk, part);
        self.probes = probes;
        r
    }

    /// Applies the probes of this join's slots (from [`Probes::fill`] over `chunk`).
    fn apply(&mut self, probes: &[Probe], chunk: &[Candidates<'_>], part: u32) -> Result<()> {
        let b = self.retained.batches.len() as u32;
        let idx = Arc::clone(&self.index);
        let lo = self.lo;
        self.touched.clear();
        let mut i = 0;
        while i < probes.len() {
            let p = probes[i];
            let (start, end) = (p.start as usize, p.end as usize);
            if end - start > SWEEP_SLOTS {
                let mut k = i + 1;
                while k < probes.len() && probes[k].start == p.start {
                    k += 1;
                }
                self.sweep(&probes[i..k], b);
                i = k;
                continue;
            }
            // Entity rows with ts <= t <= ts + ttl take this row as a candidate: the first by a
            // binary search, the last by walking on (the walk reads those times anyway).
            let first = start + idx.ts[start..end].partition_point(|e| *e < p.ts);
            let limit = self.ttl.map_or(i64::MAX, |ttl| p.ts.saturating_add(ttl));
            for j in first..end {
                if idx.ts[j] > limit {
                    break;
                }
                offer(
                    &mut self.best,
                    &mut self.retained,
                    &mut self.touched,
                    j - lo,
                    &p,
                    b,
                );
            }
            i += 1;
        }
        self.retained
            .compact(b, part, chunk, &mut self.best, &self.touched)?;
        Ok(())
    }

    /// The probes of one large group (all with the same slots), merged with its entity rows:
    /// sorted by `(ts, created, row)`, the best row at or before an entity row's time is the last
    /// one passed, and no other can be in its window if that one is not. The same answers as the
    /// search per probe, ties included (the later row wins), in time linear in the group.
    fn sweep(&mut self, group: &[Probe], b: u32) {
        let run = &mut self.run;
        run.clear();
        run.extend_from_slice(group);
        run.sort_unstable_by_key(|p| (p.ts, p.created, p.row));
        let (start, end) = (group[0].start as usize, group[0].end as usize);
        let ts = &self.index.ts;
        let first = start + ts[start..end].partition_point(|e| *e < run[0].ts);
        let mut k = 0;
        for (j, &t) in (first..end).zip(&ts[first..end]) {
            while k < run.len() && run[k].ts <= t {
                k += 1;
            }
            let c = &run[k - 1];
            if self.ttl.is_some_and(|ttl| t > c.ts.saturating_add(ttl)) {
                continue;
            }
            offer(
                &mut self.best,
                &mut self.retained,
                &mut self.touched,
                j - self.lo,
                c,
                b,
            );
        }
    }

    /// Combines joins of disjoint partitions of the same feature table over the same index. On
    /// an exact `(ts, created)` tie the row of the later partition wins, as a later row does
    /// within one partition.
    pub fn merge(mut parts: Vec<PitJoin>) -> PitJoin {
        let mut acc = parts.remove(0);
        for part in parts {
            let offset = acc.retained.batches.len() as u32;
            let mut live = part.retained.live;
            let part_of = part.retained.part;
            for (j, p) in part.best.into_iter().enumerate() {
                if p.batch == NONE {
                    continue;
                }
                let cur = acc.best[j];
                let wins = if cur.batch != NONE && (p.ts, p.created) == (cur.ts, cur.created) {
                    part_of[p.batch as usize] > acc.retained.part[cur.batch as usize]
                } else {
                    cur.loses_to(p.ts, p.created)
                };
                let p = Best {
                    batch: p.batch + offset,
                    ..p
                };
                if wins {
                    acc.retained.release(&cur);
                    acc.best[j] = p;
                } else {
                    // The part's row is not used: let its batch go if nothing else needs it.
                    let b = (p.batch - offset) as usize;
                    live[b] -= 1;
                }
            }
            for (batch, l) in part.retained.batches.into_iter().zip(live) {
                acc.retained.batches.push(if l == 0 { None } else { batch });
                acc.retained.live.push(l);
            }
            acc.retained.part.extend(part_of);
        }
        acc
    }

    /// Joins of consecutive slot ranges (the hash partitions of one index, in order) as one
    /// join over all of them: their slots laid end to end, their retained batches renumbered.
    fn concat(mut parts: Vec<PitJoin>) -> PitJoin {
        let mut acc = parts.remove(0);
        for part in parts {
            debug_assert_eq!(part.lo, acc.lo + acc.best.len(), "partitions in slot order");
            let offset = acc.retained.batches.len() as u32;
            acc.best.extend(part.best.into_iter().map(|p| {
                if p.batch == NONE {
                    p
                } else {
                    Best {
                        batch: p.batch + offset,
                        ..p
                    }
                }
            }));
            acc.retained.batches.extend(part.retained.batches);
            acc.retained.live.extend(part.retained.live);
            acc.retained.part.extend(part.retained.part);
        }
        acc
    }

    /// Number of entity rows that found a match so far.
    pub fn matched(&self) -> usize {
        self.best.iter().filter(|b| b.batch != NONE).count()
    }

    /// The values for every entity row, in entity row order (nulls where nothing matched).
    pub fn finish(self) -> Result<Vec<ArrayRef>> {
        let rows = &self.index.rows[self.lo..self.lo + self.best.len()];
        self.retained
            .gather(&self.schema, &self.best, Some(rows), self.index.len())
    }
}

/// One worker's joins of a view, one per hash partition of the entity keys
/// ([`EntityIndex::parts`]). Each chunk's probes are found once and each partition's join takes
/// those of its slots: a partition's join depends on nothing but its own keys' rows, so the
/// answer is the same for any number of partitions, and a partition is the unit of work a
/// cluster would hand to a node (after routing feature rows by the same hash).
pub struct PartitionedJoin {
    index: Arc<EntityIndex>,
    probes: Probes,
    parts: Vec<PitJoin>,
}

impl PartitionedJoin {
    /// Joins of every partition of `index` (see [`PitJoin::new`]).
    pub fn new(index: Arc<EntityIndex>, ttl_micros: i64, schema: SchemaRef) -> Self {
        let parts = (0..index.parts())
            .map(|p| PitJoin::for_part(Arc::clone(&index), p, ttl_micros, Arc::clone(&schema)))
            .collect();
        PartitionedJoin {
            index,
            probes: Probes::default(),
            parts,
        }
    }

    /// Probes a chunk of scan partition `part` (see [`PitJoin::push`]).
    pub fn push(&mut self, chunk: &[Candidates<'_>], part: u32) -> Result<()> {
        self.probes.fill(&self.index, chunk);
        for j in &mut self.parts {
            let hi = j.lo + j.best.len();
            j.apply(self.probes.within(j.lo, hi), chunk, part)?;
        }
        Ok(())
    }

    /// Combines the joins of several workers (disjoint scan partitions), partition by
    /// partition (see [`PitJoin::merge`]).
    pub fn merge(mut workers: Vec<PartitionedJoin>) -> PartitionedJoin {
        let mut acc = workers.remove(0);
        let mut by_part: Vec<Vec<PitJoin>> = acc.parts.drain(..).map(|j| vec![j]).collect();
        for w in workers {
            for (p, j) in w.parts.into_iter().enumerate() {
                by_part[p].push(j);
            }
        }
        acc.parts = by_part.into_iter().map(PitJoin::merge).collect();
        acc
    }

    /// The values for every entity row, in entity row order (see [`PitJoin::finish`]).
    pub fn finish(self) -> Result<Vec<ArrayRef>> {
        PitJoin::concat(self.parts).finish()
    }
}

/// The latest row per key by `(ts, created)`, streaming, with the same compaction.
pub struct LatestPerKey {
    slots: FxHashMap<Key, u32>,
    best: Vec<Best>,
    retained: Retained,
    schema: SchemaRef,
}

impl LatestPerKey {
    /// Keeps rows of `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        LatestPerKey {
            slots: FxHashMap::default(),
            best: Vec::new(),
            retained: Retained::default(),
            schema,
        }
    }

    /// Considers a chunk of consecutive batches (as [`PitJoin::push`]).
    pub fn push(&mut self, chunk: &[Candidates<'_>]) -> Result<()> {
        let b = self.retained.batches.len() as u32;
        let mut touched = Vec::new();
        let mut offset = 0u32;
        for c in chunk {
            self.consider(b, c, offset, &mut touched);
            offset += c.values.num_rows() as u32;
        }
        self.retained.compact(b, 0, chunk, &mut self.best, &touched)
    }

    fn consider(&mut self, b: u32, c: &Candidates<'_>, offset: u32, touched: &mut Vec<u32>) {
        for row in 0..c.values.num_rows() {
            if c.ts.is_null(row) {
                continue;
            }
            let Some(key) = c.keys.key(row) else { continue };
            let ts = c.ts.value(row);
            let created = created_at(c.created, row);
            let slot = match self.slots.get(&key) {
                Some(s) => *s as usize,
                None => {
                    self.slots.insert(key, self.best.len() as u32);
                    self.best.push(Best::EMPTY);
                    self.best.len() - 1
                }
            };
            let cur = self.best[slot];
            if cur.loses_to(ts, created) {
                if cur.batch != b {
                    self.retained.release(&cur);
                    touched.push(slot as u32);
                }
                self.best[slot] = Best {
                    ts,
                    created,
                    batch: b,
                    row: offset + row as u32,
                };
            }
        }
    }

    /// Number of keys seen.
    pub fn keys(&self) -> usize {
        self.best.len()
    }

    /// One row per key (in first-seen order), with the event timestamp of the chosen row.
    pub fn finish(self) -> Result<(Vec<ArrayRef>, Vec<i64>)> {
        let ts = self.best.iter().map(|b| b.ts).collect();
        let n = self.best.len();
        Ok((self.retained.gather(&self.schema, &self.best, None, n)?, ts))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        AsArray, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};

    use super::*;
    use crate::key::{BatchKeys, Key};

    /// Deterministic pseudo-random numbers for the property below.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    /// Feature batches: (keys, ts, created, value).
    fn batches(seed: u64, n_batches: usize, rows: usize) -> Vec<Batch> {
        let mut s = seed;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, true)]));
        (0..n_batches)
            .map(|_| {
                let keys: Vec<i64> = (0..rows).map(|_| (lcg(&mut s) % 20) as i64).collect();
                // Few distinct times, so that exact (ts, created) ties are common.
                let ts: Vec<i64> = (0..rows).map(|_| (lcg(&mut s) % 50) as i64).collect();
                let created: Vec<i64> = (0..rows).map(|_| (lcg(&mut s) % 3) as i64).collect();
                let v: Vec<f64> = (0..rows).map(|_| lcg(&mut s) as f64).collect();
                let values =
                    RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(v))])
                        .unwrap();
                (
                    Int64Array::from(keys),
                    TimestampMicrosecondArray::from(ts),
                    TimestampMicrosecondArray::from(created),
                    values,
                )
            })
            .collect()
    }

    type Batch = (
        Int64Array,
        TimestampMicrosecondArray,
        TimestampMicrosecondArray,
        RecordBatch,
    );

    /// One join that pushed `parts` in order, each `(batches, partition)`, `chunk` batches at a
    /// time.
    fn join_of(
        index: &Arc<EntityIndex>,
        ttl: i64,
        parts: &[(&[Batch], u32)],
        chunk: usize,
    ) -> PitJoin {
        let schema = parts[0].0[0].3.schema();
        let mut j = PitJoin::new(Arc::clone(index), ttl, schema);
        for (part, p) in parts {
            let keys: Vec<BatchKeys> = part.iter().map(|(k, ..)| BatchKeys::Int(k)).collect();
            let cands: Vec<Candidates> = part
                .iter()
                .zip(&keys)
                .map(|((_, ts, cr, v), keys)| Candidates {
                    keys,
                    ts,
                    created: Some(cr),
                    values: v,
                })
                .collect();
            for c in cands.chunks(chunk) {
                j.push(c, *p).unwrap();
            }
        }
        j
    }

    /// The first value column of a finished join.
    fn values(j: PitJoin) -> Vec<Option<f64>> {
        let out = j.finish().unwrap();
        let a = out[0].as_primitive::<Float64Type>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect()
    }

    /// A join per part (partition i for part i), merged.
    fn run(
        index: &Arc<EntityIndex>,
        ttl: i64,
        parts: &[&[Batch]],
        chunk: usize,
    ) -> Vec<Option<f64>> {
        let joins = parts
            .iter()
            .enumerate()
            .map(|(i, part)| join_of(index, ttl, &[(part, i as u32)], chunk))
            .collect();
        values(PitJoin::merge(joins))
    }

    /// An index of `n` entity rows over 25 keys and 60 distinct times.
    fn random_index(seed: u64, n: usize) -> Arc<EntityIndex> {
        let mut s = seed;
        let keys: Vec<Option<Key>> = (0..n)
            .map(|_| Some(Key::Int((lcg(&mut s) % 25) as i64)))
            .collect();
        let ts: Vec<Option<i64>> = (0..n).map(|_| Some((lcg(&mut s) % 60) as i64)).collect();
        Arc::new(EntityIndex::new(keys, &ts))
    }

    /// Past 65,536 entity rows the final gather and its append run on several threads: the
    /// result still equals a brute-force scan of every feature row, in entity row order.
    #[test]
    fn a_large_join_gathered_on_threads_equals_a_brute_force_scan() {
        let mut s = 7u64;
        let n = 70_000;
        let keys: Vec<i64> = (0..n).map(|_| (lcg(&mut s) % 25) as i64).collect();
        let ts: Vec<i64> = (0..n).map(|_| (lcg(&mut s) % 60) as i64).collect();
        let index = Arc::new(EntityIndex::new(
            keys.iter().map(|k| Some(Key::Int(*k))).collect(),
            &ts.iter().copied().map(Some).collect::<Vec<_>>(),
        ));
        let data = batches(3, 6, 100);
        let ttl = 10;
        let got = run(&index, ttl, &[&data[..3], &data[3..]], 2);
        let rows: Vec<(i64, i64, i64, f64)> = data
            .iter()
            .flat_map(|(k, t, c, v)| {
                let v = v.column(0).as_primitive::<Float64Type>().clone();
                (0..k.len()).map(move |i| (k.value(i), t.value(i), c.value(i), v.value(i)))
            })
            .collect();
        let want: Vec<Option<f64>> = (0..n)
            .map(|e| {
                let mut best: Option<(i64, i64, f64)> = None;
                for &(k, t, c, v) in &rows {
                    let inside = k == keys[e] && t <= ts[e] && t >= ts[e] - ttl;
                    if inside && best.is_none_or(|(bt, bc, _)| (t, c) >= (bt, bc)) {
                        best = Some((t, c, v));
                    }
                }
                best.map(|(_, _, v)| v)
            })
            .collect();
        assert_eq!(got, want);
        assert!(got.iter().any(Option::is_some) && got.iter().any(Option::is_none));
    }

    /// The final gather writes fixed-width columns in place on several threads and gathers the
    /// others with `interleave`: both equal one `interleave` over every row, nulls included,
    /// through the entity-row permutation, with unmatched rows and a dropped batch.
    #[test]
    fn the_threaded_gather_equals_one_interleave() {
        use datafusion::arrow::array::{BooleanArray, Int32Array, StringArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("i", DataType::Int32, true),
            Field::new(
                "t",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]));
        let mut s = 11u64;
        let batch = |rows: usize, s: &mut u64| {
            let r: Vec<u64> = (0..rows).map(|_| lcg(s)).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Float64Array::from_iter(
                        r.iter().map(|x| (x % 7 != 0).then_some(*x as f64)),
                    )),
                    Arc::new(Int32Array::from_iter(
                        r.iter().map(|x| (x % 5 != 0).then_some(*x as i32)),
                    )),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter(
                            r.iter().map(|x| (x % 3 != 0).then_some(*x as i64)),
                        )
                        .with_timezone("UTC"),
                    ),
                    Arc::new(StringArray::from_iter(
                        r.iter().map(|x| (x % 4 != 0).then(|| format!("v{x}"))),
                    )),
                    Arc::new(BooleanArray::from_iter(
                        r.iter().map(|x| (x % 6 != 0).then_some(x % 2 == 0)),
                    )),
                ],
            )
            .unwrap()
            // A slice, so that the sources have offsets.
            .slice(3, rows - 3)
        };
        let retained = Retained {
            batches: vec![Some(batch(900, &mut s)), None, Some(batch(500, &mut s))],
            live: vec![1, 0, 1],
            part: vec![0, 0, 0],
            remap: Vec::new(),
        };
        let n = 70_000;
        let best: Vec<Best> = (0..n)
            .map(|_| match lcg(&mut s) % 3 {
                0 => Best::EMPTY,
                1 => Best {
                    batch: 0,
                    row: (lcg(&mut s) % 897) as u32,
                    ..Best::EMPTY
                },
                _ => Best {
                    batch: 2,
                    row: (lcg(&mut s) % 497) as u32,
                    ..Best::EMPTY
                },
            })
            .collect();
        // Entity row of slot j: a permutation (reversed), with two more rows than slots.
        let to_row: Vec<u32> = (0..n as u32).rev().collect();
        let got = retained
            .gather(&schema, &best, Some(&to_row), n + 2)
            .unwrap();
        let sources: Vec<&RecordBatch> = retained.batches.iter().flatten().collect();
        let mut rows = vec![(0usize, 0usize); n + 2];
        for (j, b) in best.iter().enumerate() {
            if b.batch != NONE {
                let source = if b.batch == 0 { 1 } else { 2 };
                rows[to_row[j] as usize] = (source, b.row as usize);
            }
        }
        for (c, field) in schema.fields().iter().enumerate() {
            let null = new_null_array(field.data_type(), 1);
            let mut arrays: Vec<&dyn Array> = vec![null.as_ref()];
            arrays.extend(sources.iter().map(|b| b.column(c).as_ref()));
            let want = interleave(&arrays, &rows).unwrap();
            assert_eq!(got[c].as_ref(), want.as_ref(), "column {}", field.name());
            assert!(want.null_count() > 0 && want.null_count() < n);
        }
    }

    /// Joins that took their partitions interleaved (one join 0 and 2, the other 1), merged,
    /// equal one sequential join: exact `(ts, created)` ties, common in this data, go to the
    /// later partition whichever join holds it.
    #[test]
    fn joins_of_interleaved_partitions_merge_as_one_sequential_join() {
        for seed in 0..10u64 {
            let index = random_index(seed + 300, 300);
            let data = batches(seed, 6, 100);
            let (p0, p1, p2) = (&data[..2], &data[2..4], &data[4..]);
            let sequential = values(join_of(&index, 10, &[(p0, 0), (p1, 1), (p2, 2)], 1));
            for swap in [false, true] {
                let a = join_of(&index, 10, &[(p0, 0), (p2, 2)], 1);
                let b = join_of(&index, 10, &[(p1, 1)], 1);
                let joins = if swap { vec![b, a] } else { vec![a, b] };
                assert_eq!(sequential, values(PitJoin::merge(joins)), "seed {seed}");
            }
        }
    }

    #[test]
    fn merged_partitions_equal_one_sequential_join() {
        for seed in 0..20u64 {
            let index = random_index(seed + 100, 300);
            let data = batches(seed, 6, 100);
            for ttl in [0, 10] {
                let sequential = run(&index, ttl, &[&data], 1);
                let split = run(&index, ttl, &[&data[..2], &data[2..5], &data[5..]], 1);
                assert_eq!(sequential, split, "seed {seed}, ttl {ttl}");
                // Batches probed in place as chunks of several give the same answer.
                for chunk in [2, 4, 6] {
                    let chunked = run(&index, ttl, &[&data[..1], &data[1..]], chunk);
                    assert_eq!(sequential, chunked, "seed {seed}, ttl {ttl}, chunk {chunk}");
                }
                assert!(
                    sequential.iter().any(Option::is_some)
                        && sequential.iter().any(Option::is_none)
                );
            }
        }
    }
}
