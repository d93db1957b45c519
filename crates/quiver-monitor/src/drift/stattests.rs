//! The drift tests, computed as Evidently 0.7 computes them (its `legacy/calculations/stattests`
//! over scipy), on one column's values with nulls and infinities already removed.
//!
//! A numeric column arrives sorted ([`Sample::Numeric`]): the Kolmogorov–Smirnov statistic and
//! the Wasserstein distance walk both sorted samples once, histograms are binary searches of the
//! bin edges. A categorical column arrives as its value counts ([`Sample::Counts`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use super::ks::ks_2samp;
use super::special::{chi2_sf, ndtr};

/// One category: a string, a number (integer columns and numeric columns compared by their
/// values) or a boolean.
#[derive(Debug, Clone)]
pub enum Key {
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Key {
    fn rank(&self) -> u8 {
        match self {
            Key::Bool(_) => 0,
            Key::Num(_) => 1,
            Key::Str(_) => 2,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Bool(a), Key::Bool(b)) => a.cmp(b),
            // -0.0 and 0.0 are one value, as in pandas.
            (Key::Num(a), Key::Num(b)) => (a + 0.0).total_cmp(&(b + 0.0)),
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Key::Bool(b) => b.hash(state),
            Key::Num(x) => (x + 0.0).to_bits().hash(state),
            Key::Str(s) => s.hash(state),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Bool(b) => write!(f, "{b}"),
            Key::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => write!(f, "{}", *x as i64),
            Key::Num(x) => write!(f, "{x}"),
            Key::Str(s) => f.write_str(s),
        }
    }
}

/// One side's values of a column, nulls and infinities removed.
#[derive(Debug, Clone)]
pub enum Sample {
    /// Finite values, sorted ascending. `integer`: the values are of an integer type with no
    /// nulls (what pandas keeps as an integer column), which changes histogram bin widths.
    Numeric { values: Vec<f64>, integer: bool },
    /// Value counts, sorted by value.
    Counts(Vec<(Key, u64)>),
}

impl Sample {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Sample::Numeric { values, .. } => values.len(),
            Sample::Counts(c) => c.iter().map(|(_, n)| *n as usize).sum(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct values.
    pub fn n_unique(&self) -> usize {
        match self {
            Sample::Numeric { values, .. } => count_distinct(values),
            Sample::Counts(c) => c.len(),
        }
    }

    /// Value counts, sorted by value.
    pub fn counts(&self) -> Vec<(Key, u64)> {
        match self {
            Sample::Numeric { values, .. } => {
                let mut out: Vec<(Key, u64)> = Vec::new();
                for &v in values {
                    match out.last_mut() {
                        Some((Key::Num(last), n)) if *last == v => *n += 1,
                        _ => out.push((Key::Num(v), 1)),
                    }
                }
                out
            }
            Sample::Counts(c) => c.clone(),
        }
    }

    fn numeric(&self) -> Option<(&[f64], bool)> {
        match self {
            Sample::Numeric { values, integer } => Some((values, *integer)),
            Sample::Counts(_) => None,
        }
    }
}

fn count_distinct(sorted: &[f64]) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    1 + sorted.windows(2).filter(|w| w[0] != w[1]).count()
}

/// Distinct values of both samples together.
pub fn n_unique_union(a: &Sample, b: &Sample) -> usize {
    match (a.numeric(), b.numeric()) {
        (Some((x, _)), Some((y, _))) => {
            let (mut i, mut j, mut n) = (0, 0, 0);
            while i < x.len() || j < y.len() {
                let v = match (x.get(i), y.get(j)) {
                    (Some(&p), Some(&q)) => p.min(q),
                    (Some(&p), None) => p,
                    (None, Some(&q)) => q,
                    (None, None) => unreachable!(),
                };
                while i < x.len() && x[i] == v {
                    i += 1;
                }
                while j < y.len() && y[j] == v {
                    j += 1;
                }
                n += 1;
            }
            n
        }
        _ => union_counts(a, b).len(),
    }
}

/// The union of both samples' values with each side's count (0 where absent), sorted.
pub fn union_counts(a: &Sample, b: &Sample) -> Vec<(Key, u64, u64)> {
    let mut m: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
    for (k, n) in a.counts() {
        m.entry(k).or_default().0 += n;
    }
    for (k, n) in b.counts() {
        m.entry(k).or_default().1 += n;
    }
    m.into_iter().map(|(k, (x, y))| (k, x, y)).collect()
}

/// A drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatTest {
    /// Two-sample Kolmogorov–Smirnov p-value (numeric).
    Ks,
    /// Chi-square goodness-of-fit p-value of current counts against reference shares.
    ChiSquare,
    /// Two-proportion Z-test p-value (first category against the rest).
    Z,
    /// Wasserstein-1 distance divided by the reference's standard deviation (numeric).
    Wasserstein,
    /// Jensen–Shannon distance of the binned distributions.
    JensenShannon,
    /// Population stability index of the binned distributions.
    Psi,
    /// Kullback–Leibler divergence of the binned distributions.
    KlDiv,
    /// Hellinger distance.
    Hellinger,
}

impl StatTest {
    /// Every test, in the order of the docs.
    pub const ALL: [StatTest; 8] = [
        StatTest::Ks,
        StatTest::ChiSquare,
        StatTest::Z,
        StatTest::Wasserstein,
        StatTest::JensenShannon,
        StatTest::Psi,
        StatTest::KlDiv,
        StatTest::Hellinger,
    ];

    /// Evidently's name of the test.
    pub fn name(self) -> &'static str {
        match self {
            StatTest::Ks => "ks",
            StatTest::ChiSquare => "chisquare",
            StatTest::Z => "z",
            StatTest::Wasserstein => "wasserstein",
            StatTest::JensenShannon => "jensenshannon",
            StatTest::Psi => "psi",
            StatTest::KlDiv => "kl_div",
            StatTest::Hellinger => "hellinger",
        }
    }

    /// The test named `name` (Evidently's names).
    pub fn parse(name: &str) -> Option<StatTest> {
        StatTest::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The threshold when none is given: 0.05 for p-values, 0.1 for distances.
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() { 0.05 } else { 0.1 }
    }

    /// Whether the score is a p-value (drift when small) rather than a distance (drift when
    /// large).
    pub fn is_p_value(self) -> bool {
        matches!(self, StatTest::Ks | StatTest::ChiSquare | StatTest::Z)
    }

    /// Whether the test applies to numeric columns / to categorical columns (Evidently's
    /// allowed feature types).
    pub fn allows(self, numeric: bool) -> bool {
        match self {
            StatTest::Ks | StatTest::Wasserstein => numeric,
            StatTest::ChiSquare | StatTest::Z => !numeric,
            _ => true,
        }
    }

    /// Whether `score` means drift at `threshold`, with Evidently's comparison for the test
    /// (`p <= t` for ks, `p < t` for chisquare and z, `d >= t` for distances).
    pub fn drifted(self, score: f64, threshold: f64) -> bool {
        match self {
            StatTest::Ks => score <= threshold,
            StatTest::ChiSquare | StatTest::Z => score < threshold,
            _ => score >= threshold,
        }
    }

    /// The score of the test on two samples (both non-empty). `numeric`: the column is
    /// numeric (binning and Hellinger differ by type).
    pub fn score(self, reference: &Sample, current: &Sample, numeric: bool) -> f64 {
        match self {
            StatTest::Ks => {
                let (r, _) = reference.numeric().expect("ks needs numeric values");
                let (c, _) = current.numeric().expect("ks needs numeric values");
                ks_2samp(r, c).1
            }
            StatTest::ChiSquare => chisquare(reference, current),
            StatTest::Z => z_test(reference, current),
            StatTest::Wasserstein => {
                let (r, _) = reference
                    .numeric()
                    .expect("wasserstein needs numeric values");
                let (c, _) = current.numeric().expect("wasserstein needs numeric values");
                wasserstein(r, c) / std_dev(r).max(0.001)
            }
            StatTest::JensenShannon => {
                let (p, q) = binned(reference, current, numeric, false);
                jensenshannon(&p, &q)
            }
            StatTest::Psi => {
                let (p, q) = binned(reference, current, numeric, true);
                p.iter().zip(&q).map(|(r, c)| (r - c) * (r / c).ln()).sum()
            }
            StatTest::KlDiv => {
                let (p, q) = binned(reference, current, numeric, true);
                entropy(&p, &q)
            }
            StatTest::Hellinger => hellinger(reference, current, numeric),
        }
    }
}

/// The test Evidently picks when none is given: with at most 1,000 reference values, ks for
/// numeric columns with more than 5 distinct values (both sides together), otherwise chisquare,
/// or z with at most 2 distinct values; above 1,000, wasserstein for numeric columns with more
/// than 5 distinct values, otherwise jensenshannon.
pub fn default_test(numeric: bool, reference_len: usize, n_unique: usize) -> StatTest {
    if reference_len <= 1000 {
        if numeric && n_unique > 5 {
            StatTest::Ks
        } else if n_unique > 2 {
            StatTest::ChiSquare
        } else {
            StatTest::Z
        }
    } else if numeric && n_unique > 5 {
        StatTest::Wasserstein
    } else {
        StatTest::JensenShannon
    }
}

fn chisquare(reference: &Sample, current: &Sample) -> f64 {
    let keys = union_counts(reference, current);
    let k_norm = current.len() as f64 / reference.len() as f64;
    let mut stat = 0.0;
    for (_, r, c) in &keys {
        let expected = *r as f64 * k_norm;
        let d = *c as f64 - expected;
        stat += d * d / expected;
    }
    if stat.is_nan() {
        return f64::NAN;
    }
    chi2_sf(stat, keys.len() as f64 - 1.0)
}

fn z_test(reference: &Sample, current: &Sample) -> f64 {
    let keys = union_counts(reference, current);
    let ref_unique: Vec<_> = keys.iter().filter(|k| k.1 > 0).collect();
    let cur_unique: Vec<_> = keys.iter().filter(|k| k.2 > 0).collect();
    if ref_unique.len() == 1 && cur_unique.len() == 1 && ref_unique[0].0 == cur_unique[0].0 {
        return 1.0;
    }
    // Shares of values other than the smallest.
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    let p1 = (n1 - keys[0].1 as f64) / n1;
    let p2 = (n2 - keys[0].2 as f64) / n2;
    let p = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    2.0 * (1.0 - ndtr(z.abs()))
}

/// Population standard deviation (numpy's `std`, ddof 0).
pub fn std_dev(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = pairwise_sum(values) / n;
    let sq: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
    (pairwise_sum(&sq) / n).sqrt()
}

/// Sum in blocks, as numpy sums (pairwise), so that long columns keep their precision.
fn pairwise_sum(v: &[f64]) -> f64 {
    if v.len() <= 128 {
        v.iter().sum()
    } else {
        let mid = v.len() / 2;
        pairwise_sum(&v[..mid]) + pairwise_sum(&v[mid..])
    }
}

/// Wasserstein-1 distance of two sorted samples: the area between their empirical CDFs.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut sum = 0.0;
    let next = |i: usize, j: usize| -> Option<f64> {
        match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => Some(x.min(y)),
            (Some(&x), None) => Some(x),
            (None, Some(&y)) => Some(y),
            (None, None) => None,
        }
    };
    let mut v = match next(0, 0) {
        Some(v) => v,
        None => return 0.0,
    };
    loop {
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        let Some(w) = next(i, j) else { break };
        sum += (i as f64 / na - j as f64 / nb).abs() * (w - v);
        v = w;
    }
    sum
}

/// numpy's `histogram_bin_edges(values, bins="sturges")` of sorted values.
fn sturges_edges(sorted: &[f64], integer: bool) -> Vec<f64> {
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    let (first, last) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let mut width = (hi - lo) / ((sorted.len() as f64).log2() + 1.0);
    let bins = if width != 0.0 {
        if integer && width < 1.0 {
            width = 1.0;
        }
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// numpy's `linspace(start, stop, num)` with the end point.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut out: Vec<f64> = (0..num)
        .map(|i| {
            if step == 0.0 {
                i as f64 / div * delta + start
            } else {
                i as f64 * step + start
            }
        })
        .collect();
    out[num - 1] = stop;
    out
}

/// numpy's `histogram(values, bins=edges)` of sorted values: bins closed on the left, the last
/// one on both sides.
fn histogram(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let cum: Vec<usize> = edges
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            if i + 1 == edges.len() {
                sorted.partition_point(|&v| v <= e)
            } else {
                sorted.partition_point(|&v| v < e)
            }
        })
        .collect();
    cum.windows(2).map(|w| (w[1] - w[0]) as f64).collect()
}

/// Evidently's `get_binned_data`: shares per bin. Numeric columns whose reference has more than
/// 20 distinct values are cut into Sturges bins over both samples; otherwise each distinct value
/// is a bin. With `fill_zeros`, empty bins get a small share (the smallest non-zero share / 10⁶
/// if it is at most 0.0001, else 0.0001).
pub fn binned(
    reference: &Sample,
    current: &Sample,
    numeric: bool,
    fill_zeros: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (mut p, mut q): (Vec<f64>, Vec<f64>) =
        match (numeric, reference.numeric(), current.numeric()) {
            (true, Some((r, ri)), Some((c, ci))) if count_distinct(r) > 20 => {
                let mut all = Vec::with_capacity(r.len() + c.len());
                all.extend_from_slice(r);
                all.extend_from_slice(c);
                all.sort_unstable_by(f64::total_cmp);
                let edges = sturges_edges(&all, ri && ci);
                let (nr, nc) = (r.len() as f64, c.len() as f64);
                (
                    histogram(r, &edges).into_iter().map(|x| x / nr).collect(),
                    histogram(c, &edges).into_iter().map(|x| x / nc).collect(),
                )
            }
            _ => {
                let (nr, nc) = (reference.len() as f64, current.len() as f64);
                union_counts(reference, current)
                    .into_iter()
                    .map(|(_, a, b)| (a as f64 / nr, b as f64 / nc))
                    .unzip()
            }
        };
    if fill_zeros {
        fill(&mut p);
        fill(&mut q);
    }
    (p, q)
}

fn fill(shares: &mut [f64]) {
    let min = shares
        .iter()
        .copied()
        .filter(|&x| x != 0.0)
        .fold(f64::INFINITY, f64::min);
    let small = if min <= 0.0001 { min / 1e6 } else { 0.0001 };
    for x in shares.iter_mut().filter(|x| **x == 0.0) {
        *x = small;
    }
}

fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// scipy's `jensenshannon(p, q)` (natural logarithm).
pub fn jensenshannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let (mut left, mut right) = (0.0, 0.0);
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    ((left + right) / 2.0).sqrt()
}

/// scipy's `entropy(p, q)`: the Kullback–Leibler divergence of the normalized distributions.
pub fn entropy(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    p.iter().zip(q).map(|(a, b)| rel_entr(a / sp, b / sq)).sum()
}

fn hellinger(reference: &Sample, current: &Sample, numeric: bool) -> f64 {
    let bc = match (numeric, reference.numeric(), current.numeric()) {
        (true, Some((r, ri)), Some((c, ci))) => {
            // Sturges bins over the distinct values of both samples, densities per bin.
            let mut keys: Vec<f64> = r.iter().chain(c).copied().collect();
            keys.sort_unstable_by(f64::total_cmp);
            keys.dedup();
            let edges = sturges_edges(&keys, ri && ci);
            let density = |v: &[f64]| -> Vec<f64> {
                let h = histogram(v, &edges);
                let total: f64 = h.iter().sum();
                h.iter()
                    .zip(edges.windows(2))
                    .map(|(n, w)| n / (w[1] - w[0]) / total)
                    .collect()
            };
            let (h1, h2) = (density(r), density(c));
            let width = (edges[edges.len() - 1] - edges[0]) / (edges.len() - 1) as f64;
            h1.iter()
                .zip(&h2)
                .map(|(a, b)| (a * b).sqrt() * width)
                .sum::<f64>()
        }
        _ => {
            let (nr, nc) = (reference.len() as f64, current.len() as f64);
            union_counts(reference, current)
                .iter()
                .map(|(_, a, b)| ((*a as f64 / nr) * (*b as f64 / nc)).sqrt())
                .sum()
        }
    };
    (1.0 - bc.clamp(0.0, 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: &[f64]) -> Sample {
        let mut values = v.to_vec();
        values.sort_unstable_by(f64::total_cmp);
        Sample::Numeric {
            values,
            integer: false,
        }
    }

    fn cat(v: &[(&str, u64)]) -> Sample {
        let mut c: Vec<(Key, u64)> = v
            .iter()
            .map(|(k, n)| (Key::Str(k.to_string()), *n))
            .collect();
        c.sort();
        Sample::Counts(c)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
    }

    #[test]
    fn known_values_of_each_test() {
        // Expected values from Evidently 0.7's stattest functions on the same inputs.
        let r = num(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let c = num(&[2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]);
        let a = cat(&[("a", 30), ("b", 50), ("c", 20)]);
        let b = cat(&[("a", 20), ("b", 50), ("c", 25), ("d", 5)]);
        let two_a = cat(&[("x", 40), ("y", 60)]);
        let two_b = cat(&[("x", 55), ("y", 45)]);
        for (test, reference, current, numeric, expected) in
            EXPECTED(&r, &c, &a, &b, &two_a, &two_b)
        {
            let got = test.score(reference, current, numeric);
            assert!(close(got, expected), "{}: {got} != {expected}", test.name());
        }
    }

    #[allow(non_snake_case, clippy::type_complexity)]
    fn EXPECTED<'a>(
        r: &'a Sample,
        c: &'a Sample,
        a: &'a Sample,
        b: &'a Sample,
        two_a: &'a Sample,
        two_b: &'a Sample,
    ) -> Vec<(StatTest, &'a Sample, &'a Sample, bool, f64)> {
        vec![
            (StatTest::Ks, r, c, true, KS),
            (StatTest::Wasserstein, r, c, true, WASSERSTEIN),
            (StatTest::JensenShannon, r, c, true, JS_NUM),
            (StatTest::Psi, r, c, true, PSI_NUM),
            (StatTest::KlDiv, r, c, true, KL_NUM),
            (StatTest::Hellinger, r, c, true, HELLINGER_NUM),
            (StatTest::ChiSquare, a, b, false, CHI),
            (StatTest::JensenShannon, a, b, false, JS_CAT),
            (StatTest::Psi, a, b, false, PSI_CAT),
            (StatTest::KlDiv, a, b, false, KL_CAT),
            (StatTest::Hellinger, a, b, false, HELLINGER_CAT),
            (StatTest::Z, two_a, two_b, false, Z),
        ]
    }

    const KS: f64 = 0.576_100_370_218_017_3;
    const WASSERSTEIN: f64 = 0.872_871_560_943_969_6;
    const JS_NUM: f64 = 0.832_554_611_157_697_7;
    const PSI_NUM: f64 = 14.131_998_101_656_897;
    const KL_NUM: f64 = 7.118_080_748_411_764;
    const HELLINGER_NUM: f64 = 0.408_248_290_463_863_13;
    const CHI: f64 = 0.0;
    const JS_CAT: f64 = 0.154_124_361_452_889_02;
    const PSI_CAT: f64 = 0.361_812_632_487_794_2;
    const KL_CAT: f64 = 0.076_281_728_187_113_07;
    const HELLINGER_CAT: f64 = 0.177_325_203_994_534_64;
    const Z: f64 = 0.033_672_068_856_345_88;

    #[test]
    fn default_choice_follows_evidently() {
        assert_eq!(default_test(true, 1000, 6), StatTest::Ks);
        assert_eq!(default_test(true, 1000, 5), StatTest::ChiSquare);
        assert_eq!(default_test(true, 1000, 2), StatTest::Z);
        assert_eq!(default_test(false, 1000, 3), StatTest::ChiSquare);
        assert_eq!(default_test(false, 10, 2), StatTest::Z);
        assert_eq!(default_test(true, 1001, 6), StatTest::Wasserstein);
        assert_eq!(default_test(true, 1001, 5), StatTest::JensenShannon);
        assert_eq!(default_test(false, 5000, 2), StatTest::JensenShannon);
    }

    #[test]
    fn sturges_edges_and_histogram_follow_numpy() {
        // np.histogram_bin_edges([0,1,2,3,10], "sturges") -> 4 bins of 2.5
        let e = sturges_edges(&[0.0, 1.0, 2.0, 3.0, 10.0], false);
        assert_eq!(e, vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(
            histogram(&[0.0, 1.0, 2.0, 3.0, 10.0], &e),
            vec![3.0, 1.0, 0.0, 1.0]
        );
        // a constant sample: one bin [v - 0.5, v + 0.5]
        assert_eq!(sturges_edges(&[2.0, 2.0], false), vec![1.5, 2.5]);
    }
}
