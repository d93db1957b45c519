//! Initial scores, gradients, hessians and losses of the objectives.

use std::ops::Range;

use super::parallel;
use crate::Objective;

/// Rows per loss partial sum: partial sums are added in row order, so the total does not depend
/// on the thread count.
const BLOCK: usize = 4096;

/// Labels and weights of a training (or validation) set.
pub(crate) struct Targets<'a> {
    pub objective: Objective,
    pub y: &'a [f64],
    /// Scales gradients and hessians (sample weight times class weight).
    pub grad_w: Option<&'a [f64]>,
    /// Weighs each row's loss (sample weight).
    pub loss_w: Option<&'a [f64]>,
}

/// The constant raw scores that minimize the weighted loss (LightGBM's `boost_from_average`).
pub(crate) fn init_scores(objective: Objective, y: &[f64], w: Option<&[f64]>) -> Vec<f64> {
    let wi = |i: usize| w.map_or(1.0, |w| w[i]);
    let total: f64 = (0..y.len()).map(wi).sum();
    match objective {
        Objective::Binary { sigmoid } => {
            let pos: f64 = (0..y.len()).map(|i| wi(i) * y[i]).sum();
            let p = (pos / total).clamp(1e-15, 1.0 - 1e-15);
            vec![(p / (1.0 - p)).ln() / sigmoid]
        }
        Objective::Multiclass { num_class } => {
            let mut per = vec![0.0; num_class];
            for (i, &c) in y.iter().enumerate() {
                per[c as usize] += wi(i);
            }
            per.iter().map(|&s| (s / total).max(1e-15).ln()).collect()
        }
        Objective::Regression => vec![(0..y.len()).map(|i| wi(i) * y[i]).sum::<f64>() / total],
    }
}

/// The weighted mean loss of `scores` (per output, per row); when `gh` is given, also fills it
/// with each output's gradient and hessian per row.
pub(crate) fn evaluate(
    t: &Targets,
    scores: &[Vec<f64>],
    gh: Option<&mut [Vec<[f64; 2]>]>,
    threads: usize,
) -> f64 {
    let n = t.y.len();
    let blocks = parallel::ranges(n.div_ceil(BLOCK), threads);
    let ranges: Vec<Range<usize>> = blocks
        .iter()
        .map(|b| b.start * BLOCK..(b.end * BLOCK).min(n))
        .collect();
    let mut parts: Vec<Vec<&mut [[f64; 2]]>> = ranges.iter().map(|_| Vec::new()).collect();
    if let Some(gh) = gh {
        for out in gh.iter_mut() {
            let mut rest = &mut out[..];
            for (part, r) in parts.iter_mut().zip(&ranges) {
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(r.len());
                part.push(mine);
                rest = tail;
            }
        }
    }
    let work: Vec<_> = ranges.into_iter().zip(parts).collect();
    let sums: Vec<Vec<f64>> =
        parallel::map(threads, work, |(r, mut gh)| rows(t, scores, r, &mut gh));
    let total: f64 = sums.iter().flatten().sum();
    let weight = t.loss_w.map_or(n as f64, |w| w.iter().sum());
    total / weight
}

/// Gradients for rows `range` (into `gh[k][i - range.start]` when `gh` is non-empty); returns the
/// loss sums of each block of `BLOCK` rows.
fn rows(
    t: &Targets,
    scores: &[Vec<f64>],
    range: Range<usize>,
    gh: &mut [&mut [[f64; 2]]],
) -> Vec<f64> {
    let fill = !gh.is_empty();
    let y = t.y;
    let gw = |i: usize| t.grad_w.map_or(1.0, |w| w[i]);
    let lw = |i: usize| t.loss_w.map_or(1.0, |w| w[i]);
    let off = range.start;
    let mut sums = Vec::new();
    let mut start = range.start;
    let mut p = Vec::new();
    while start < range.end {
        let end = (start + BLOCK).min(range.end);
        let mut sum = 0.0;
        match t.objective {
            Objective::Binary { sigmoid } => {
                let s = &scores[0];
                for i in start..end {
                    let z = sigmoid * s[i];
                    let e = (-z.abs()).exp();
                    let prob = if z >= 0.0 {
                        1.0 / (1.0 + e)
                    } else {
                        e / (1.0 + e)
                    };
                    let positive = y[i] > 0.5;
                    sum += lw(i) * (e.ln_1p() + if positive { (-z).max(0.0) } else { z.max(0.0) });
                    if fill {
                        let w = gw(i);
                        gh[0][i - off] = [
                            sigmoid * (prob - y[i]) * w,
                            sigmoid * sigmoid * prob * (1.0 - prob) * w,
                        ];
                    }
                }
            }
            Objective::Multiclass { num_class } => {
                let factor = num_class as f64 / (num_class as f64 - 1.0);
                p.resize(num_class, 0.0);
                for i in start..end {
                    let max = scores
                        .iter()
                        .map(|s| s[i])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let mut total = 0.0;
                    for (pk, s) in p.iter_mut().zip(scores) {
                        *pk = (s[i] - max).exp();
                        total += *pk;
                    }
                    let c = y[i] as usize;
                    sum += lw(i) * (total.ln() + max - scores[c][i]);
                    if fill {
                        let w = gw(i);
                        for (k, pk) in p.iter().enumerate() {
                            let prob = pk / total;
                            let target = if k == c { 1.0 } else { 0.0 };
                            gh[k][i - off] =
                                [(prob - target) * w, factor * prob * (1.0 - prob) * w];
                        }
                    }
                }
            }
            Objective::Regression => {
                let s = &scores[0];
                for i in start..end {
                    let d = s[i] - y[i];
                    sum += lw(i) * d * d;
                    if fill {
                        let w = gw(i);
                        gh[0][i - off] = [d * w, w];
                    }
                }
            }
        }
        sums.push(sum);
        start = end;
    }
    sums
}
