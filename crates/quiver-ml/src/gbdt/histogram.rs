//! Gradient histograms: per feature and bin, the sums of gradients, hessians and rows.
//!
//! Gradients and hessians are quantized to 64-bit fixed point (a power-of-two scale chosen so
//! that no sum over the training rows can overflow), which makes every sum exact: histograms can
//! be built by any number of threads over any split of the rows, merged and subtracted, and still
//! come out bit-identical.

use super::binning::{BinIndex, DENSE_SLOTS};
use super::parallel;

/// Exact sums of quantized gradients `g`, hessians `h` and the row count `c`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GradSum {
    pub g: i64,
    pub h: i64,
    pub c: i64,
}

impl GradSum {
    #[inline]
    pub(crate) fn add(&mut self, o: GradSum) {
        self.g += o.g;
        self.h += o.h;
        self.c += o.c;
    }
    #[inline]
    pub(crate) fn minus(self, o: GradSum) -> GradSum {
        GradSum {
            g: self.g - o.g,
            h: self.h - o.h,
            c: self.c - o.c,
        }
    }
}

/// What one quantized unit of gradient and of hessian is worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    pub g: f64,
    pub h: f64,
}

/// Quantizes `gh` (per row) into `out`; `n` bounds the rows any sum runs over.
pub(crate) fn quantize(
    gh: &[[f64; 2]],
    n: usize,
    out: &mut Vec<[i64; 2]>,
    threads: usize,
) -> Scale {
    let parts = parallel::ranges(gh.len(), threads);
    let maxima = parallel::map(threads, parts.clone(), |r| {
        gh[r].iter().fold((0.0f64, 0.0f64), |(mg, mh), &[g, h]| {
            (mg.max(g.abs()), mh.max(h.abs()))
        })
    });
    let (mg, mh) = maxima
        .into_iter()
        .fold((0.0f64, 0.0f64), |(a, b), (g, h)| (a.max(g), b.max(h)));
    // Largest power of two `s` with `n * max * s <= 2^62`.
    let exponent = |m: f64| {
        ((2f64.powi(62) / (n.max(1) as f64 * m.max(1e-300)))
            .log2()
            .floor())
        .clamp(-1000.0, 1000.0) as i32
    };
    let (eg, eh) = (exponent(mg), exponent(mh));
    let (sg, sh) = (2f64.powi(eg), 2f64.powi(eh));
    // Round half away from zero (`f64::round` is a library call on baseline x86-64).
    let q = |x: f64| (x + 0.5f64.copysign(x)) as i64;
    out.resize(gh.len(), [0, 0]);
    let mut work = Vec::with_capacity(parts.len());
    let mut rest = &mut out[..];
    for r in parts {
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(r.len());
        work.push((&gh[r], mine));
        rest = tail;
    }
    parallel::map(threads, work, |(src, dst)| {
        for (d, &[g, h]) in dst.iter_mut().zip(src) {
            *d = [q(g * sg), q(h * sh)];
        }
    });
    Scale {
        g: 2f64.powi(-eg),
        h: 2f64.powi(-eh),
    }
}

/// The features a histogram is built for, with each one's first bin in the histogram slice.
pub(crate) struct FeatureSlots<'a> {
    /// Feature indices (positions in a row of bins).
    pub features: &'a [usize],
    pub starts: &'a [usize],
    pub lens: &'a [usize],
    /// All features of the row, in order, each with [`DENSE_SLOTS`] slots from 0 on.
    pub dense: bool,
}

/// Which rows to add.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    Range(usize, usize),
    Index(&'a [u32]),
}

/// Zeroes the slots' bins.
pub(crate) fn clear(hist: &mut [GradSum], slots: &FeatureSlots) {
    for (&s, &l) in slots.starts.iter().zip(slots.lens) {
        hist[s..s + l].fill(GradSum::default());
    }
}

/// `hist += other` over the slots' bins.
pub(crate) fn merge(hist: &mut [GradSum], other: &[GradSum], slots: &FeatureSlots) {
    for (&s, &l) in slots.starts.iter().zip(slots.lens) {
        for (a, b) in hist[s..s + l].iter_mut().zip(&other[s..s + l]) {
            a.add(*b);
        }
    }
}

/// `parent -= child` over the slots' bins: the parent's histogram becomes its other child's.
pub(crate) fn subtract(parent: &mut [GradSum], child: &[GradSum], slots: &FeatureSlots) {
    for (&s, &l) in slots.starts.iter().zip(slots.lens) {
        for (p, c) in parent[s..s + l].iter_mut().zip(&child[s..s + l]) {
            *p = p.minus(*c);
        }
    }
}

/// Adds `rows` into `hist` for the slots' features; `bins` is row-major with `stride` bins per
/// row and `gh` holds each row's quantized gradient and hessian.
pub(crate) fn accumulate<B: BinIndex>(
    hist: &mut [GradSum],
    slots: &FeatureSlots,
    bins: &[B],
    stride: usize,
    rows: Rows,
    gh: &[[i64; 2]],
) {
    match stride {
        8 => fixed::<B, 8>(hist, slots, bins, rows, gh),
        16 => fixed::<B, 16>(hist, slots, bins, rows, gh),
        32 => fixed::<B, 32>(hist, slots, bins, rows, gh),
        64 => fixed::<B, 64>(hist, slots, bins, rows, gh),
        _ => dynamic(hist, slots, bins, stride, rows, gh),
    }
}

#[inline(always)]
fn add_row<B: BinIndex>(hist: &mut [GradSum], slots: &FeatureSlots, row: &[B], [g, h]: [i64; 2]) {
    if slots.dense {
        let (per_feature, _) = hist.as_chunks_mut::<DENSE_SLOTS>();
        for (b, slot) in row[..slots.features.len()].iter().zip(per_feature) {
            let e = &mut slot[b.idx() % DENSE_SLOTS];
            e.g += g;
            e.h += h;
            e.c += 1;
        }
        return;
    }
    for (&f, &s) in slots.features.iter().zip(slots.starts) {
        let b = &mut hist[s + row[f].idx()];
        b.g += g;
        b.h += h;
        b.c += 1;
    }
}

/// Rows gathered per block: copying a block's scattered rows first keeps many cache misses in
/// flight at once, then the additions run on cached data.
const GATHER: usize = 32;

fn fixed<B: BinIndex, const W: usize>(
    hist: &mut [GradSum],
    slots: &FeatureSlots,
    bins: &[B],
    rows: Rows,
    gh: &[[i64; 2]],
) {
    let row_at = |r: usize| -> [B; W] { bins[r * W..r * W + W].try_into().expect("row of W bins") };
    match rows {
        Rows::Range(start, end) => {
            for (r, &g) in gh.iter().enumerate().take(end).skip(start) {
                add_row(hist, slots, &row_at(r), g);
            }
        }
        Rows::Index(idx) => {
            let mut buf = [[B::default(); W]; GATHER];
            let mut gbuf = [[0i64; 2]; GATHER];
            for block in idx.chunks(GATHER) {
                for (k, &r) in block.iter().enumerate() {
                    buf[k] = row_at(r as usize);
                    gbuf[k] = gh[r as usize];
                }
                for k in 0..block.len() {
                    add_row(hist, slots, &buf[k], gbuf[k]);
                }
            }
        }
    }
}

fn dynamic<B: BinIndex>(
    hist: &mut [GradSum],
    slots: &FeatureSlots,
    bins: &[B],
    stride: usize,
    rows: Rows,
    gh: &[[i64; 2]],
) {
    match rows {
        Rows::Range(start, end) => {
            for (r, &g) in gh.iter().enumerate().take(end).skip(start) {
                add_row(hist, slots, &bins[r * stride..(r + 1) * stride], g);
            }
        }
        Rows::Index(idx) => {
            let mut buf = vec![B::default(); GATHER * stride];
            let mut gbuf = [[0i64; 2]; GATHER];
            for block in idx.chunks(GATHER) {
                for (k, &r) in block.iter().enumerate() {
                    let r = r as usize;
                    buf[k * stride..(k + 1) * stride]
                        .copy_from_slice(&bins[r * stride..(r + 1) * stride]);
                    gbuf[k] = gh[r];
                }
                for k in 0..block.len() {
                    add_row(hist, slots, &buf[k * stride..(k + 1) * stride], gbuf[k]);
                }
            }
        }
    }
}
