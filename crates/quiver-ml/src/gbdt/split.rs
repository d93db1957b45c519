//! Finding a leaf's best split on one feature from its histogram, with LightGBM's gain, leaf
//! output, constraints, missing-value directions and categorical split search.

use super::binning::Mapper;
use super::histogram::{GradSum, Scale};

/// The split-finding parameters.
#[derive(Debug, Clone)]
pub(crate) struct SplitParams {
    pub l1: f64,
    pub l2: f64,
    pub min_data: i64,
    pub min_hess: f64,
    pub min_gain: f64,
    pub max_cat_to_onehot: usize,
    pub cat_smooth: f64,
    pub cat_l2: f64,
    pub max_cat_threshold: usize,
    pub min_data_per_group: i64,
}

/// A candidate split of a leaf.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SplitInfo {
    /// Gain over not splitting (minus `min_gain_to_split`).
    pub gain: f64,
    pub feature: usize,
    /// Numerical: the last bin going left.
    pub threshold_bin: usize,
    /// Numerical: NaN goes left.
    pub default_left: bool,
    /// Categorical: the bins going left (ascending), empty for numerical splits.
    pub cat_left: Vec<u32>,
    pub left: GradSum,
    pub right: GradSum,
    pub left_output: f64,
    pub right_output: f64,
}

impl SplitInfo {
    /// True when `self` beats `other`: higher gain, or equal gain on a lower feature.
    pub(crate) fn better_than(&self, other: &Option<SplitInfo>) -> bool {
        match other {
            None => true,
            Some(o) => self.gain > o.gain || (self.gain == o.gain && self.feature < o.feature),
        }
    }
}

#[inline]
fn threshold_l1(s: f64, l1: f64) -> f64 {
    if l1 > 0.0 {
        s.signum() * (s.abs() - l1).max(0.0)
    } else {
        s
    }
}

/// The optimal leaf value `-T(G) / (H + l2)` with L1 soft-thresholding `T`.
#[inline]
pub(crate) fn leaf_output(g: f64, h: f64, l1: f64, l2: f64) -> f64 {
    let d = h + l2;
    if d <= 0.0 {
        0.0
    } else {
        -threshold_l1(g, l1) / d
    }
}

/// The loss reduction of a leaf at its optimal value: `T(G)^2 / (H + l2)`.
#[inline]
pub(crate) fn leaf_gain(g: f64, h: f64, l1: f64, l2: f64) -> f64 {
    let d = h + l2;
    if d <= 0.0 {
        0.0
    } else {
        let t = threshold_l1(g, l1);
        t * t / d
    }
}

/// Gradient and hessian of `s` as f64.
#[inline]
pub(crate) fn real(s: GradSum, scale: Scale) -> (f64, f64) {
    (s.g as f64 * scale.g, s.h as f64 * scale.h)
}

/// The output of a leaf with sums `s`.
pub(crate) fn output(s: GradSum, scale: Scale, l1: f64, l2: f64) -> f64 {
    let (g, h) = real(s, scale);
    leaf_output(g, h, l1, l2)
}

/// The best split of a leaf (`total`) on `feature`, whose histogram is `hist`, if any beats not
/// splitting by more than `min_gain_to_split`.
pub(crate) fn best_split(
    feature: usize,
    mapper: &Mapper,
    hist: &[GradSum],
    total: GradSum,
    scale: Scale,
    p: &SplitParams,
) -> Option<SplitInfo> {
    let (tg, th) = real(total, scale);
    let search = Search {
        total,
        tg,
        th,
        scale,
        shift: leaf_gain(tg, th, p.l1, p.l2) + p.min_gain,
        p,
    };
    match mapper {
        Mapper::Numerical { has_nan, .. } => search.numerical(feature, *has_nan, hist),
        Mapper::Categorical { codes, .. } => search.categorical(feature, codes.len(), hist),
    }
}

struct Search<'a> {
    total: GradSum,
    tg: f64,
    th: f64,
    scale: Scale,
    shift: f64,
    p: &'a SplitParams,
}

impl Search<'_> {
    fn make(&self, feature: usize, gain: f64, left: GradSum, l2: f64) -> SplitInfo {
        let right = self.total.minus(left);
        let p = self.p;
        SplitInfo {
            gain: gain - self.shift,
            feature,
            threshold_bin: 0,
            default_left: false,
            cat_left: Vec::new(),
            left,
            right,
            left_output: output(left, self.scale, p.l1, l2),
            right_output: output(right, self.scale, p.l1, l2),
        }
    }

    /// Gain of splitting off `left`, or `None` when either side breaks a constraint (`Err(true)`
    /// when the right side does, so that growing `left` further cannot help).
    #[inline]
    fn gain(&self, left: GradSum, l2: f64) -> Result<f64, bool> {
        let p = self.p;
        let (lg, lh) = real(left, self.scale);
        if left.c < p.min_data || lh < p.min_hess {
            return Err(false);
        }
        let rh = self.th - lh;
        if self.total.c - left.c < p.min_data || rh < p.min_hess {
            return Err(true);
        }
        Ok(leaf_gain(lg, lh, p.l1, l2) + leaf_gain(self.tg - lg, rh, p.l1, l2))
    }

    fn numerical(&self, feature: usize, has_nan: bool, hist: &[GradSum]) -> Option<SplitInfo> {
        let value_bins = hist.len() - usize::from(has_nan);
        if value_bins < 2 {
            return None;
        }
        let nan = if has_nan {
            hist[value_bins]
        } else {
            GradSum::default()
        };
        // NaN left first (LightGBM's reverse scan), then NaN right when it changes anything.
        let directions: &[bool] = if nan.c > 0 { &[true, false] } else { &[true] };
        let mut best_gain = self.shift;
        let mut best: Option<(usize, bool, GradSum)> = None;
        for &nan_left in directions {
            let mut left = if nan_left { nan } else { GradSum::default() };
            for (t, b) in hist[..value_bins - 1].iter().enumerate() {
                left.add(*b);
                match self.gain(left, self.p.l2) {
                    Ok(gain) if gain > best_gain => {
                        best_gain = gain;
                        best = Some((t, nan_left, left));
                    }
                    Err(true) => break,
                    _ => {}
                }
            }
        }
        let (t, nan_left, left) = best?;
        let mut s = self.make(feature, best_gain, left, self.p.l2);
        s.threshold_bin = t;
        s.default_left = nan_left;
        Some(s)
    }

    fn categorical(&self, feature: usize, n_cats: usize, hist: &[GradSum]) -> Option<SplitInfo> {
        let p = self.p;
        let cats = &hist[..n_cats];
        if n_cats <= p.max_cat_to_onehot {
            // One category against the rest.
            let mut best_gain = self.shift;
            let mut best: Option<(usize, GradSum)> = None;
            for (t, &left) in cats.iter().enumerate() {
                if let Ok(gain) = self.gain(left, p.l2)
                    && gain > best_gain
                {
                    best_gain = gain;
                    best = Some((t, left));
                }
            }
            let (t, left) = best?;
            let mut s = self.make(feature, best_gain, left, p.l2);
            s.cat_left = vec![t as u32];
            return Some(s);
        }
        // Many categories: sort those with enough rows by smoothed gradient/hessian ratio and
        // try every prefix (from either end) of up to `max_cat_threshold` categories as the left
        // side, with extra L2 regularization.
        let mut sorted: Vec<usize> = (0..n_cats)
            .filter(|&t| cats[t].c > 0 && cats[t].c as f64 >= p.cat_smooth)
            .collect();
        let ratio = |t: usize| {
            let (g, h) = real(cats[t], self.scale);
            g / (h + p.cat_smooth)
        };
        sorted.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)));
        let used = sorted.len();
        let max_num_cat = p.max_cat_threshold.min(used.div_ceil(2));
        let l2 = p.l2 + p.cat_l2;
        let mut best_gain = self.shift;
        let mut best: Option<(bool, usize, GradSum)> = None;
        for reverse in [false, true] {
            let mut left = GradSum::default();
            let mut group = 0;
            for i in 0..used.min(max_num_cat) {
                let t = if reverse {
                    sorted[used - 1 - i]
                } else {
                    sorted[i]
                };
                left.add(cats[t]);
                group += cats[t].c;
                let gain = match self.gain(left, l2) {
                    Err(false) => continue,
                    Err(true) => break,
                    Ok(g) => g,
                };
                if self.total.c - left.c < p.min_data_per_group {
                    break;
                }
                if group < p.min_data_per_group {
                    continue;
                }
                group = 0;
                if gain > best_gain {
                    best_gain = gain;
                    best = Some((reverse, i, left));
                }
            }
        }
        let (reverse, i, left) = best?;
        let mut s = self.make(feature, best_gain, left, l2);
        let mut chosen: Vec<u32> = (0..=i).map(|k| if reverse { sorted[used - 1 - k] } else { sorted[k] } as u32).collect();
        chosen.sort_unstable();
        s.cat_left = chosen;
        Some(s)
    }
}
