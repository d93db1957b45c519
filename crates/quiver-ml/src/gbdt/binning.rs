//! Feature binning: each feature's values map to a small bin index (quantile bins for numerical
//! features with one extra bin for NaN, one bin per category for categorical ones), and the
//! training rows are stored as bin indices, both row-major (for histograms) and column-major (for
//! partitioning rows at a split).

use super::parallel;
use super::rng::Rng;
use crate::{Dataset, Error, Result};

/// Rows sampled to find numerical bin boundaries (LightGBM's `bin_construct_sample_cnt`).
pub(crate) const SAMPLE_ROWS: usize = 200_000;

/// Histogram slots per feature with `u8` bins.
pub(crate) const DENSE_SLOTS: usize = 256;

/// A bin index type: `u8` when every feature has at most 256 bins, else `u16`.
pub(crate) trait BinIndex: Copy + Send + Sync + Default + 'static {
    const MAX_BINS: usize;
    fn from_usize(v: usize) -> Self;
    fn idx(self) -> usize;
}

impl BinIndex for u8 {
    const MAX_BINS: usize = 256;
    #[inline]
    fn from_usize(v: usize) -> Self {
        v as u8
    }
    #[inline]
    fn idx(self) -> usize {
        self as usize
    }
}

impl BinIndex for u16 {
    const MAX_BINS: usize = 65_536;
    #[inline]
    fn from_usize(v: usize) -> Self {
        v as u16
    }
    #[inline]
    fn idx(self) -> usize {
        self as usize
    }
}

/// How one feature's values map to bins.
#[derive(Debug, Clone)]
pub(crate) enum Mapper {
    /// Bin `b` holds the values `upper[b-1] < x <= upper[b]` (the last upper bound is +inf);
    /// when the feature has NaN in training, NaN gets bin `upper.len()`.
    Numerical { upper: Vec<f64>, has_nan: bool },
    /// Bin `b < codes.len()` is category `codes[b]` (most frequent first); when `other`, bin
    /// `codes.len()` holds NaN and categories beyond the bin budget; it always goes right.
    Categorical {
        codes: Vec<u32>,
        by_code: Vec<(u32, u32)>,
        other: bool,
    },
}

impl Mapper {
    pub(crate) fn num_bins(&self) -> usize {
        match self {
            Mapper::Numerical { upper, has_nan } => upper.len() + usize::from(*has_nan),
            Mapper::Categorical { codes, other, .. } => codes.len() + usize::from(*other),
        }
    }

    /// The NaN bin of a numerical feature that had NaN in training.
    pub(crate) fn nan_bin(&self) -> Option<usize> {
        match self {
            Mapper::Numerical {
                upper,
                has_nan: true,
            } => Some(upper.len()),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn bin(&self, x: f64) -> usize {
        match self {
            Mapper::Numerical { upper, .. } => {
                if x.is_nan() {
                    upper.len()
                } else {
                    upper.partition_point(|&u| u < x)
                }
            }
            Mapper::Categorical { codes, by_code, .. } => {
                if x.is_nan() {
                    return codes.len();
                }
                let code = x as u32;
                match by_code.binary_search_by_key(&code, |&(c, _)| c) {
                    Ok(i) => by_code[i].1 as usize,
                    Err(_) => codes.len(),
                }
            }
        }
    }
}

/// The first problem with a feature value at training time, naming the feature and row.
pub(crate) fn check_value(ds: &Dataset, j: usize, what: &str) -> Result<()> {
    let name = &ds.names[j];
    let col = &ds.columns[j];
    if ds.categorical[j] {
        if let Some(i) = col
            .iter()
            .position(|&x| !x.is_nan() && (x < 0.0 || x.fract() != 0.0 || x > i32::MAX as f64))
        {
            let x = col[i];
            let why = if x < 0.0 {
                "a negative code"
            } else if x.is_infinite() || x > i32::MAX as f64 {
                "a code too large"
            } else {
                "a non-integer code"
            };
            return Err(Error::Invalid(format!(
                "{what}categorical feature '{name}' has {why} {x} at row {i}"
            )));
        }
    } else if let Some(i) = col.iter().position(|x| x.is_infinite()) {
        return Err(Error::Invalid(format!(
            "{what}feature '{name}' has an infinite value at row {i}"
        )));
    }
    Ok(())
}

fn numerical_mapper(col: &[f64], sample: &[usize], max_bin: usize) -> Mapper {
    let has_nan = col.iter().any(|x| x.is_nan());
    // `+ 0.0` turns -0.0 into 0.0 so that both land in one bin.
    let values: Vec<f64> = sample
        .iter()
        .map(|&i| col[i] + 0.0)
        .filter(|x| !x.is_nan())
        .collect();
    // Sorting order-preserving integer keys is much faster than comparing floats.
    let mut keys: Vec<u64> = values.iter().map(|&x| order_key(x)).collect();
    keys.sort_unstable();
    let values = keys.into_iter().map(from_order_key);
    let mut distinct: Vec<f64> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for v in values {
        if distinct.last() == Some(&v) {
            *counts.last_mut().unwrap_or(&mut 0) += 1;
        } else {
            distinct.push(v);
            counts.push(1);
        }
    }
    let max_bins = (max_bin - usize::from(has_nan)).max(1);
    let between = |a: f64, b: f64| {
        let m = a + (b - a) / 2.0;
        if m > a && m < b { m } else { a }
    };
    let mut upper = Vec::new();
    if distinct.len() <= max_bins {
        for w in distinct.windows(2) {
            upper.push(between(w[0], w[1]));
        }
    } else {
        // Greedy quantile bins: close a bin once it holds its share of the remaining rows, or
        // when the next value alone would.
        let mut rest: usize = counts.iter().sum();
        let mut rest_bins = max_bins;
        let mut acc = 0usize;
        for i in 0..distinct.len() - 1 {
            acc += counts[i];
            let share = rest as f64 / rest_bins as f64;
            if rest_bins > 1 && (acc as f64 >= share || counts[i + 1] as f64 >= share) {
                upper.push(between(distinct[i], distinct[i + 1]));
                rest -= acc;
                rest_bins -= 1;
                acc = 0;
            }
        }
    }
    upper.push(f64::INFINITY);
    Mapper::Numerical { upper, has_nan }
}

/// A key whose unsigned order is the order of the (non-NaN) floats.
fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | 1 << 63 }
}

fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Fast numerical binning: buckets of equal width over the finite bin bounds narrow each
/// value's bin down to a few candidates before the binary search.
struct Lookup<'a> {
    upper: &'a [f64],
    lo: f64,
    inv_width: f64,
    /// `starts[k]`: the bin of bucket `k`'s lower edge.
    starts: Vec<u32>,
}

impl<'a> Lookup<'a> {
    fn new(upper: &'a [f64]) -> Option<Self> {
        let finite = upper.len().checked_sub(1)?;
        if finite < 2 {
            return None;
        }
        let (lo, hi) = (upper[0], upper[finite - 1]);
        let buckets = 4 * upper.len();
        let inv_width = buckets as f64 / (hi - lo);
        if !(inv_width.is_finite() && inv_width > 0.0) {
            return None;
        }
        let starts = (0..buckets)
            .map(|k| upper.partition_point(|&u| u < lo + k as f64 / inv_width) as u32)
            .collect();
        Some(Lookup {
            upper,
            lo,
            inv_width,
            starts,
        })
    }

    #[inline]
    fn bin(&self, x: f64) -> usize {
        let last = self.upper.len() - 1;
        let k = (x - self.lo) * self.inv_width;
        // `k` is NaN or negative below the first bound.
        let (a, b) = if k.is_nan() || k < 0.0 {
            (0, self.starts[0] as usize + 1)
        } else {
            let k = k as usize;
            if k >= self.starts.len() - 1 {
                (self.starts[self.starts.len() - 1] as usize, last)
            } else {
                // One bin of slack on each side absorbs rounding at bucket edges.
                (self.starts[k] as usize, self.starts[k + 1] as usize + 1)
            }
        };
        let (a, b) = (a.saturating_sub(1), b.min(last));
        a + self.upper[a..=b].partition_point(|&u| u < x)
    }
}

fn categorical_mapper(col: &[f64], max_bin: usize) -> Mapper {
    let mut counts: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut has_nan = false;
    for &x in col {
        if x.is_nan() {
            has_nan = true;
        } else {
            *counts.entry(x as u32).or_insert(0) += 1;
        }
    }
    let mut cats: Vec<(u32, usize)> = counts.into_iter().collect();
    cats.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let fits = cats.len() <= max_bin && !has_nan;
    let keep = if fits {
        cats.len()
    } else {
        cats.len().min(max_bin - 1)
    };
    let codes: Vec<u32> = cats[..keep].iter().map(|c| c.0).collect();
    let mut by_code: Vec<(u32, u32)> = codes
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u32))
        .collect();
    by_code.sort_unstable();
    Mapper::Categorical {
        codes,
        by_code,
        other: !fits,
    }
}

/// Checks every feature value and finds each feature's bins (numerical bounds from a sample of
/// up to [`SAMPLE_ROWS`] rows drawn with `seed`).
pub(crate) fn mappers(
    ds: &Dataset,
    max_bin: usize,
    threads: usize,
    seed: u64,
) -> Result<Vec<Mapper>> {
    let n = ds.n_rows();
    let sample: Vec<usize> = if n <= SAMPLE_ROWS {
        (0..n).collect()
    } else {
        Rng::new(seed, 1).sample_sorted(n, SAMPLE_ROWS)
    };
    let features: Vec<usize> = (0..ds.n_features()).collect();
    parallel::map(threads, features, |j| {
        check_value(ds, j, "")?;
        Ok(if ds.categorical[j] {
            categorical_mapper(&ds.columns[j], max_bin)
        } else {
            numerical_mapper(&ds.columns[j], &sample, max_bin)
        })
    })
    .into_iter()
    .collect()
}

/// The training rows as bins.
pub(crate) struct BinnedData<B> {
    pub n_rows: usize,
    pub n_features: usize,
    /// `rows[i * stride + j]`: bin of feature `j` in row `i` (rows padded so that a row does
    /// not straddle cache lines needlessly).
    pub rows: Vec<B>,
    pub stride: usize,
    /// `cols[j][i]`: the same, per feature.
    pub cols: Vec<Vec<B>>,
    pub mappers: Vec<Mapper>,
    /// Feature `j`'s bins are `offsets[j]..offsets[j + 1]` in a histogram.
    pub offsets: Vec<usize>,
}

impl<B: BinIndex> BinnedData<B> {
    pub(crate) fn new(ds: &Dataset, mappers: Vec<Mapper>, threads: usize) -> Self {
        let (n, f) = (ds.n_rows(), ds.n_features());
        let features: Vec<usize> = (0..f).collect();
        let cols: Vec<Vec<B>> = parallel::map(threads, features, |j| {
            let m = &mappers[j];
            let col = &ds.columns[j];
            match m {
                Mapper::Numerical { upper, .. } => match Lookup::new(upper) {
                    Some(l) => col
                        .iter()
                        .map(|&x| B::from_usize(if x.is_nan() { upper.len() } else { l.bin(x) }))
                        .collect(),
                    None => col.iter().map(|&x| B::from_usize(m.bin(x))).collect(),
                },
                Mapper::Categorical { .. } => {
                    col.iter().map(|&x| B::from_usize(m.bin(x))).collect()
                }
            }
        });
        let stride = if f <= 64 {
            f.next_power_of_two()
        } else {
            f.next_multiple_of(64)
        };
        let mut rows = vec![B::default(); n * stride];
        let parts = parallel::ranges(n, threads);
        std::thread::scope(|s| {
            let mut rest = &mut rows[..];
            for r in parts {
                let (mine, tail) = rest.split_at_mut(r.len() * stride);
                rest = tail;
                let cols = &cols;
                s.spawn(move || {
                    for (k, row) in mine.chunks_exact_mut(stride).enumerate() {
                        for (j, b) in row[..f].iter_mut().enumerate() {
                            *b = cols[j][r.start + k];
                        }
                    }
                });
            }
        });
        // With u8 bins every feature gets 256 histogram slots, so that a bin index can never
        // leave its feature's slots (no bounds checks in the histogram loop).
        let mut offsets = vec![0];
        for m in &mappers {
            let slots = if B::MAX_BINS == DENSE_SLOTS {
                DENSE_SLOTS
            } else {
                m.num_bins()
            };
            offsets.push(offsets.last().copied().unwrap_or(0) + slots);
        }
        BinnedData {
            n_rows: n,
            n_features: f,
            rows,
            stride,
            cols,
            mappers,
            offsets,
        }
    }

    pub(crate) fn total_bins(&self) -> usize {
        self.offsets[self.n_features]
    }

    /// True when every feature has [`DENSE_SLOTS`] histogram slots.
    pub(crate) fn dense(&self) -> bool {
        B::MAX_BINS == DENSE_SLOTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::rng::Rng;

    #[test]
    fn lookup_bins_like_the_binary_search() {
        let mut rng = Rng::new(3, 0);
        // Skewed values with ties, so that bins are uneven.
        let col: Vec<f64> = (0..20_000)
            .map(|i| {
                if i % 7 == 0 {
                    1.0
                } else {
                    (rng.next_f64() * 8.0).exp() - 100.0
                }
            })
            .collect();
        let sample: Vec<usize> = (0..col.len()).collect();
        let m = numerical_mapper(&col, &sample, 255);
        let Mapper::Numerical { upper, .. } = &m else {
            unreachable!()
        };
        let l = Lookup::new(upper).unwrap();
        let mut probes = col.clone();
        probes.extend(
            upper
                .iter()
                .filter(|u| u.is_finite())
                .flat_map(|&u| [u, u.next_down(), u.next_up()]),
        );
        probes.extend([-1e300, 1e300, -0.0, 0.0]);
        for x in probes {
            assert_eq!(l.bin(x), m.bin(x), "value {x}");
        }
        for x in [-3.5, 0.0, 7.25, 1e6] {
            assert_eq!(order_key(x).cmp(&order_key(1.0)), x.total_cmp(&1.0));
            assert_eq!(from_order_key(order_key(x)), x);
        }
    }
}
