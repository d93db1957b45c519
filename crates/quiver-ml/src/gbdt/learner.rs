//! Growing one tree leaf-wise (best-first) on binned rows: the histogram of the smaller child is
//! built from its rows and the larger child's comes from subtracting it from the parent's.
//! Big leaves are built by several threads, each over its share of the rows into its own
//! histogram; the exact (integer) sums make the result independent of the thread count.

use std::sync::{Barrier, PoisonError, RwLock};
use std::thread;

use super::binning::{BinIndex, BinnedData, Mapper};
use super::histogram::{self, FeatureSlots, GradSum, Rows, Scale};
use super::parallel;
use super::split::{self, SplitInfo, SplitParams};
use crate::tree::Tree;

/// Rows below which one thread builds a leaf's histogram alone (spawning costs more).
const PARALLEL_MIN_ROWS: usize = 2048;

/// Features and where their bins are in a histogram slice starting at bin `base`.
struct Chunk {
    dense: bool,
    features: Vec<usize>,
    starts: Vec<usize>,
    lens: Vec<usize>,
    base: usize,
    end: usize,
}

impl Chunk {
    fn new<B: BinIndex>(data: &BinnedData<B>, features: &[usize], lo: usize, hi: usize) -> Self {
        let base = data.offsets[lo];
        Chunk {
            dense: data.dense() && lo == 0 && features.len() == data.n_features,
            features: features.to_vec(),
            starts: features.iter().map(|&f| data.offsets[f] - base).collect(),
            lens: features
                .iter()
                .map(|&f| data.mappers[f].num_bins())
                .collect(),
            base,
            end: data.offsets[hi],
        }
    }
    fn slots(&self) -> FeatureSlots<'_> {
        FeatureSlots {
            features: &self.features,
            starts: &self.starts,
            lens: &self.lens,
            dense: self.dense,
        }
    }
}

/// The used features of one tree: all of them over the whole histogram, and cut into contiguous
/// chunks (one per thread) for merging and split finding.
struct Plan {
    all: Chunk,
    chunks: Vec<Chunk>,
}

struct Leaf {
    /// The leaf's rows are `idx[start..start + len]`.
    start: usize,
    len: usize,
    sums: GradSum,
    depth: usize,
    output: f64,
    hist: Option<Vec<GradSum>>,
    best: Option<SplitInfo>,
}

pub(crate) struct Grower<'a, B> {
    data: &'a BinnedData<B>,
    sp: SplitParams,
    num_leaves: usize,
    max_depth: usize,
    threads: usize,
    idx: Vec<u32>,
    tmp: Vec<u32>,
    pool: Vec<Vec<GradSum>>,
    /// One histogram per thread for parallel builds.
    scratch: Vec<RwLock<Vec<GradSum>>>,
    leaves: Vec<Leaf>,
}

/// What a histogram build and split search works on.
struct Ctx<'a, B> {
    data: &'a BinnedData<B>,
    sp: &'a SplitParams,
    scale: Scale,
    plan: &'a Plan,
    gh: &'a [[i64; 2]],
}

impl<'a, B: BinIndex> Grower<'a, B> {
    pub(crate) fn new(
        data: &'a BinnedData<B>,
        sp: SplitParams,
        num_leaves: usize,
        max_depth: Option<usize>,
        threads: usize,
    ) -> Self {
        let threads = threads.max(1);
        Grower {
            data,
            sp,
            num_leaves,
            max_depth: max_depth.unwrap_or(usize::MAX),
            threads,
            idx: Vec::new(),
            tmp: Vec::new(),
            pool: Vec::new(),
            scratch: (0..threads)
                .map(|_| RwLock::new(vec![GradSum::default(); data.total_bins()]))
                .collect(),
            leaves: Vec::new(),
        }
    }

    /// The rows of leaf `leaf` of the last grown tree.
    pub(crate) fn leaf_rows(&self, leaf: usize) -> &[u32] {
        let l = &self.leaves[leaf];
        &self.idx[l.start..l.start + l.len]
    }

    fn plan(&self, features: &[usize]) -> Plan {
        let d = self.data;
        let parts = parallel::ranges(features.len(), self.threads);
        let n_parts = parts.len();
        let chunks = parts
            .into_iter()
            .enumerate()
            .map(|(p, r)| {
                let lo = if p == 0 { 0 } else { features[r.start] };
                let hi = if p + 1 == n_parts {
                    d.n_features
                } else {
                    features[r.end]
                };
                Chunk::new(d, &features[r], lo, hi)
            })
            .collect();
        Plan {
            all: Chunk::new(d, features, 0, d.n_features),
            chunks,
        }
    }

    fn take_hist(&mut self) -> Vec<GradSum> {
        self.pool
            .pop()
            .unwrap_or_else(|| vec![GradSum::default(); self.data.total_bins()])
    }

    fn can_split(&self, len: usize, sums: GradSum, scale: Scale, depth: usize) -> bool {
        depth < self.max_depth
            && len as i64 >= 2 * self.sp.min_data
            && sums.h as f64 * scale.h >= 2.0 * self.sp.min_hess
    }

    /// Grows a tree on quantized gradients `gh` (indexed by row, worth `scale`) of the rows `bag`
    /// (all rows when `None`, else ascending), splitting on `features` (ascending). Leaf values
    /// are the unshrunk outputs.
    pub(crate) fn grow(
        &mut self,
        gh: &[[i64; 2]],
        scale: Scale,
        bag: Option<&[u32]>,
        features: &[usize],
    ) -> Tree {
        let n = bag.map_or(self.data.n_rows, <[u32]>::len);
        self.idx.clear();
        match bag {
            Some(b) => self.idx.extend_from_slice(b),
            None => self.idx.extend(0..n as u32),
        }
        self.tmp.resize(n, 0);
        for leaf in std::mem::take(&mut self.leaves) {
            self.pool.extend(leaf.hist);
        }
        let mut sums = GradSum {
            c: n as i64,
            ..GradSum::default()
        };
        for &r in &self.idx {
            let [g, h] = gh[r as usize];
            sums.g += g;
            sums.h += h;
        }
        let plan = self.plan(features);
        let (l1, l2) = (self.sp.l1, self.sp.l2);
        let mut root = Leaf {
            start: 0,
            len: n,
            sums,
            depth: 0,
            output: split::output(sums, scale, l1, l2),
            hist: None,
            best: None,
        };
        if self.num_leaves > 1 && self.can_split(n, sums, scale, 0) && !features.is_empty() {
            let mut hist = self.take_hist();
            let ctx = Ctx {
                data: self.data,
                sp: &self.sp,
                scale,
                plan: &plan,
                gh,
            };
            let rows = match bag {
                None => Rows::Range(0, n),
                Some(b) => Rows::Index(b),
            };
            let par = self.par(n);
            let (best, _) = ctx.run(&self.scratch, &mut hist, None, rows, Some(sums), None, par);
            root.best = best;
            root.hist = Some(hist);
        }
        self.leaves.push(root);
        let mut tree = Tree::default();
        let mut leaf_parent: Vec<i32> = vec![-1];
        while self.leaves.len() < self.num_leaves {
            let mut pick: Option<(usize, f64)> = None;
            for (i, l) in self.leaves.iter().enumerate() {
                if let Some(b) = &l.best
                    && pick.is_none_or(|(_, g)| b.gain > g)
                {
                    pick = Some((i, b.gain));
                }
            }
            let Some((li, _)) = pick else { break };
            let leaf = &mut self.leaves[li];
            let split = leaf.best.take().expect("picked leaf has a split");
            let parent_hist = leaf.hist.take().expect("splittable leaf has a histogram");
            let (start, len, depth) = (leaf.start, leaf.len, leaf.depth);
            let nl = self.partition(start, len, &split);
            debug_assert_eq!(nl as i64, split.left.c);

            let node = tree.split_feature.len() as i32;
            let new_leaf = self.leaves.len();
            self.push_node(&mut tree, &split, li, new_leaf, len);
            let p = leaf_parent[li];
            if p >= 0 {
                let p = p as usize;
                if tree.left[p] == !(li as i32) {
                    tree.left[p] = node;
                } else {
                    tree.right[p] = node;
                }
            }
            leaf_parent[li] = node;
            leaf_parent.push(node);

            let nr = len - nl;
            let child = |start, len, sums, output| Leaf {
                start,
                len,
                sums,
                depth: depth + 1,
                output,
                hist: None,
                best: None,
            };
            self.leaves[li] = child(start, nl, split.left, split.left_output);
            self.leaves
                .push(child(start + nl, nr, split.right, split.right_output));
            let more = self.leaves.len() < self.num_leaves;
            let split_left = more && self.can_split(nl, split.left, scale, depth + 1);
            let split_right = more && self.can_split(nr, split.right, scale, depth + 1);
            if !split_left && !split_right {
                self.pool.push(parent_hist);
                continue;
            }
            let (small, large, small_ok, large_ok) = if nl <= nr {
                (li, new_leaf, split_left, split_right)
            } else {
                (new_leaf, li, split_right, split_left)
            };
            let mut small_hist = self.take_hist();
            let mut large_hist = parent_hist;
            let (s_start, s_len) = (self.leaves[small].start, self.leaves[small].len);
            let ctx = Ctx {
                data: self.data,
                sp: &self.sp,
                scale,
                plan: &plan,
                gh,
            };
            let (bs, bl) = ctx.run(
                &self.scratch,
                &mut small_hist,
                Some(&mut large_hist),
                Rows::Index(&self.idx[s_start..s_start + s_len]),
                small_ok.then_some(self.leaves[small].sums),
                large_ok.then_some(self.leaves[large].sums),
                self.par(s_len),
            );
            for (leaf, best, hist) in [(small, bs, small_hist), (large, bl, large_hist)] {
                if best.is_some() {
                    self.leaves[leaf].best = best;
                    self.leaves[leaf].hist = Some(hist);
                } else {
                    self.pool.push(hist);
                }
            }
        }
        tree.leaf_value = self.leaves.iter().map(|l| l.output).collect();
        tree.leaf_count = self.leaves.iter().map(|l| l.len as f64).collect();
        tree
    }

    fn par(&self, rows: usize) -> bool {
        self.threads > 1 && rows >= PARALLEL_MIN_ROWS
    }

    fn push_node(
        &self,
        tree: &mut Tree,
        split: &SplitInfo,
        left_leaf: usize,
        right_leaf: usize,
        count: usize,
    ) {
        let f = split.feature;
        tree.split_feature.push(f as u32);
        match &self.data.mappers[f] {
            Mapper::Numerical { upper, has_nan } => {
                tree.threshold.push(upper[split.threshold_bin]);
                let missing = if *has_nan { 2u8 } else { 0 };
                tree.decision
                    .push((missing << 2) | (u8::from(split.default_left) << 1));
            }
            Mapper::Categorical { codes, .. } => {
                if tree.cat_boundaries.is_empty() {
                    tree.cat_boundaries.push(0);
                }
                tree.threshold.push((tree.cat_boundaries.len() - 1) as f64);
                let left: Vec<u32> = split.cat_left.iter().map(|&b| codes[b as usize]).collect();
                let words = left.iter().max().map_or(0, |&m| m as usize / 32 + 1);
                let mut bits = vec![0u32; words];
                for c in left {
                    bits[c as usize / 32] |= 1 << (c % 32);
                }
                tree.cat_bitset.extend(bits);
                tree.cat_boundaries.push(tree.cat_bitset.len() as u32);
                tree.decision.push(1);
            }
        }
        tree.left.push(!(left_leaf as i32));
        tree.right.push(!(right_leaf as i32));
        tree.split_gain.push(split.gain);
        tree.internal_count.push(count as f64);
    }

    /// Stable in-place partition of `idx[start..start + len]` by the split; returns the left count.
    fn partition(&mut self, start: usize, len: usize, split: &SplitInfo) -> usize {
        let col = &self.data.cols[split.feature];
        let seg = &mut self.idx[start..start + len];
        let tmp = &mut self.tmp[..len];
        let threads = if len >= PARALLEL_PARTITION_ROWS {
            self.threads
        } else {
            1
        };
        match &self.data.mappers[split.feature] {
            m @ Mapper::Numerical { .. } => {
                let nan_bin = m.nan_bin().unwrap_or(usize::MAX);
                let (thr, dl) = (split.threshold_bin, split.default_left);
                partition_rows(seg, tmp, threads, |r| {
                    let b = col[r as usize].idx();
                    if b == nan_bin { dl } else { b <= thr }
                })
            }
            m @ Mapper::Categorical { .. } => {
                let mut mask = vec![false; m.num_bins()];
                for &b in &split.cat_left {
                    mask[b as usize] = true;
                }
                partition_rows(seg, tmp, threads, |r| mask[col[r as usize].idx()])
            }
        }
    }
}

/// Rows below which one thread partitions a leaf alone.
const PARALLEL_PARTITION_ROWS: usize = 65_536;

/// Stable partition of `seg` (left rows first); with several threads, each partitions its
/// share, and the shares' left and right runs are then laid out in order.
fn partition_rows(
    seg: &mut [u32],
    tmp: &mut [u32],
    threads: usize,
    left: impl Fn(u32) -> bool + Sync,
) -> usize {
    if threads <= 1 {
        return stable_partition(seg, tmp, &left);
    }
    let parts = parallel::ranges(seg.len(), threads);
    let mut work = Vec::with_capacity(parts.len());
    let (mut s_rest, mut t_rest) = (&mut seg[..], &mut tmp[..]);
    for r in &parts {
        let (s, s_tail) = std::mem::take(&mut s_rest).split_at_mut(r.len());
        let (t, t_tail) = std::mem::take(&mut t_rest).split_at_mut(r.len());
        work.push((s, t));
        s_rest = s_tail;
        t_rest = t_tail;
    }
    let lefts = parallel::map(threads, work, |(s, t)| stable_partition(s, t, &left));
    let total_left: usize = lefts.iter().sum();
    let (mut l, mut r) = (0, total_left);
    for (p, nl) in parts.iter().zip(&lefts) {
        let part = &seg[p.clone()];
        tmp[l..l + nl].copy_from_slice(&part[..*nl]);
        tmp[r..r + part.len() - nl].copy_from_slice(&part[*nl..]);
        l += nl;
        r += part.len() - nl;
    }
    seg.copy_from_slice(tmp);
    total_left
}

fn stable_partition(seg: &mut [u32], tmp: &mut [u32], left: &impl Fn(u32) -> bool) -> usize {
    let (mut nl, mut nr) = (0, 0);
    for i in 0..seg.len() {
        let r = seg[i];
        let go = left(r);
        seg[nl] = r;
        tmp[nr] = r;
        nl += usize::from(go);
        nr += usize::from(!go);
    }
    seg[nl..].copy_from_slice(&tmp[..nr]);
    nl
}

fn split_chunks<'s>(hist: &'s mut [GradSum], chunks: &[Chunk]) -> Vec<&'s mut [GradSum]> {
    let mut out = Vec::with_capacity(chunks.len());
    let mut rest = hist;
    for c in chunks {
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(c.end - c.base);
        out.push(mine);
        rest = tail;
    }
    out
}

impl<B: BinIndex> Ctx<'_, B> {
    /// The best split of a leaf with sums `sums` over the chunk's features (`hist` is the chunk's slice).
    fn find(&self, c: &Chunk, hist: &[GradSum], sums: GradSum) -> Option<SplitInfo> {
        let mut best: Option<SplitInfo> = None;
        for (k, &f) in c.features.iter().enumerate() {
            let s = c.starts[k];
            if let Some(cand) = split::best_split(
                f,
                &self.data.mappers[f],
                &hist[s..s + c.lens[k]],
                sums,
                self.scale,
                self.sp,
            ) && cand.better_than(&best)
            {
                best = Some(cand);
            }
        }
        best
    }

    fn accumulate(&self, hist: &mut [GradSum], rows: Rows) {
        let slots = self.plan.all.slots();
        histogram::clear(hist, &slots);
        histogram::accumulate(
            hist,
            &slots,
            &self.data.rows,
            self.data.stride,
            rows,
            self.gh,
        );
    }

    /// Builds `small` from `rows`, turns `large` (the parent's histogram) into the other child's
    /// by subtraction, and finds the best split of each leaf whose sums are given.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        scratch: &[RwLock<Vec<GradSum>>],
        small: &mut [GradSum],
        large: Option<&mut [GradSum]>,
        rows: Rows,
        small_sums: Option<GradSum>,
        large_sums: Option<GradSum>,
        parallel: bool,
    ) -> (Option<SplitInfo>, Option<SplitInfo>) {
        let chunks = &self.plan.chunks;
        if !parallel || chunks.len() < 2 {
            self.accumulate(small, rows);
            let all = &self.plan.all;
            let bs = small_sums.and_then(|s| self.find(all, small, s));
            let bl = large.and_then(|l| {
                histogram::subtract(l, small, &all.slots());
                large_sums.and_then(|s| self.find(all, l, s))
            });
            return (bs, bl);
        }
        let t = chunks.len();
        let row_parts: Vec<Rows> = match rows {
            Rows::Range(a, _) => parallel::ranges(rows_len(rows), t)
                .into_iter()
                .map(|r| Rows::Range(a + r.start, a + r.end))
                .collect(),
            Rows::Index(idx) => parallel::ranges(idx.len(), t)
                .into_iter()
                .map(|r| Rows::Index(&idx[r]))
                .collect(),
        };
        let smalls = split_chunks(small, chunks);
        let larges: Vec<Option<&mut [GradSum]>> = match large {
            Some(l) => split_chunks(l, chunks).into_iter().map(Some).collect(),
            None => chunks.iter().map(|_| None).collect(),
        };
        let barrier = Barrier::new(t);
        let worker =
            |i: usize, rows: Rows, small: &mut [GradSum], large: Option<&mut [GradSum]>| {
                {
                    let mut mine = scratch[i].write().unwrap_or_else(PoisonError::into_inner);
                    self.accumulate(&mut mine, rows);
                }
                barrier.wait();
                let c = &chunks[i];
                let slots = c.slots();
                histogram::clear(small, &slots);
                for s in &scratch[..t] {
                    let s = s.read().unwrap_or_else(PoisonError::into_inner);
                    histogram::merge(small, &s[c.base..c.end], &slots);
                }
                let bs = small_sums.and_then(|s| self.find(c, small, s));
                let bl = large.and_then(|l| {
                    histogram::subtract(l, small, &slots);
                    large_sums.and_then(|s| self.find(c, l, s))
                });
                (bs, bl)
            };
        let results: Vec<(Option<SplitInfo>, Option<SplitInfo>)> = thread::scope(|s| {
            let mut work = row_parts.into_iter().zip(smalls).zip(larges).enumerate();
            let first = work.next();
            let worker = &worker;
            let handles: Vec<_> = work
                .map(|(i, ((r, sm), lg))| s.spawn(move || worker(i, r, sm, lg)))
                .collect();
            let mut out = Vec::with_capacity(t);
            if let Some((i, ((r, sm), lg))) = first {
                out.push(worker(i, r, sm, lg));
            }
            for h in handles {
                out.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            out
        });
        let (mut bs, mut bl): (Option<SplitInfo>, Option<SplitInfo>) = (None, None);
        for (s, l) in results {
            if let Some(s) = s
                && s.better_than(&bs)
            {
                bs = Some(s);
            }
            if let Some(l) = l
                && l.better_than(&bl)
            {
                bl = Some(l);
            }
        }
        (bs, bl)
    }
}

fn rows_len(rows: Rows) -> usize {
    match rows {
        Rows::Range(a, b) => b - a,
        Rows::Index(idx) => idx.len(),
    }
}
