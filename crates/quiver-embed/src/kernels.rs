//! The element-wise and attention kernels of the BERT forward pass, in safe Rust that LLVM
//! vectorizes: [`crate::bert`] runs them inside `pulp::Arch::dispatch`, which compiles their
//! (always inlined) bodies for AVX-512 or AVX2 + FMA when the CPU has them, chosen at run time.
//!
//! Sums are kept in [`LANES`] partial sums so that they vectorize (float addition is not
//! associative, so LLVM does not reorder a plain running sum); the results differ from a
//! sequential sum by float rounding only.

/// Partial sums kept by the reductions: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// `e^x` for `x <= 88.3`: Cody–Waite reduction to `r` in `[-ln 2 / 2, ln 2 / 2]`, a degree-7
/// Taylor polynomial (truncation error below 6e-9 relative), times `2^n` built from its bits.
/// Relative error ~1 ulp; below -87.3 the result is ~1e-38 instead of a denormal or 0, which
/// the callers only ever add to sums of at least 1. No float-to-int cast (which LLVM leaves
/// scalar): `n` is rounded by adding 1.5 · 2^23 and read back from the float's low bits.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const SHIFT: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x.mul_add(LOG2_E, SHIFT);
    let n = shifted - SHIFT;
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let mut p: f32 = 1.0 / 5040.0;
    p = p.mul_add(r, 1.0 / 720.0);
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let biased = shifted
        .to_bits()
        .wrapping_sub(SHIFT.to_bits())
        .wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): the formula, constants
/// and operation order of PyTorch's vectorized CPU `erf` (`Vectorized<float>::erf`), which
/// sentence-transformers' exact GELU runs on.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const P1: f32 = 0.254_829_6;
    const P2: f32 = -0.284_496_74;
    const P3: f32 = 1.421_413_8;
    const P4: f32 = -1.453_152_1;
    const P5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / P.mul_add(a, 1.0);
    let mut r = P5.mul_add(t, P4);
    r = r.mul_add(t, P3);
    r = r.mul_add(t, P2);
    r = r.mul_add(t, P1);
    let e = -exp(-(a * a));
    (e * t).mul_add(r, 1.0).copysign(x)
}

/// Exact (erf) GELU of `x` plus `bias` (added to each row) into `out`:
/// `y / 2 * (1 + erf(y / sqrt 2))`, as PyTorch computes it.
#[inline(always)]
pub(crate) fn bias_gelu(out: &mut [f32], x: &[f32], bias: &[f32]) {
    let width = bias.len();
    for (o, x) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
        for ((o, x), b) in o.iter_mut().zip(x).zip(bias) {
            let y = x + b;
            *o = y * 0.5 * (1.0 + erf(y * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// The sum of `x` in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest element of `x` (`-inf` when empty).
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// Layer normalization of each row of `out`, which is first set to `x + bias + residual`
/// (the dense output plus its bias plus the block's input, as BERT's `*Output` modules do):
/// `(v - mean) / sqrt(var + eps) * gamma + beta` with the biased variance.
#[inline(always)]
pub(crate) fn bias_residual_layer_norm(
    out: &mut [f32],
    x: &[f32],
    bias: &[f32],
    residual: &[f32],
    (gamma, beta): (&[f32], &[f32]),
    eps: f32,
) {
    let width = bias.len();
    let rows = out
        .chunks_exact_mut(width)
        .zip(x.chunks_exact(width).zip(residual.chunks_exact(width)));
    for (o, (x, res)) in rows {
        for ((o, x), (b, r)) in o.iter_mut().zip(x).zip(bias.iter().zip(res)) {
            *o = (x + b) + r;
        }
        layer_norm_row(o, gamma, beta, eps);
    }
}

/// Layer normalization of one row, in place.
#[inline(always)]
pub(crate) fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut acc = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            let d = v - mean;
            *a = d.mul_add(d, *a);
        }
    }
    let var = (acc.iter().sum::<f32>() + tail) / n;
    let rstd = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = ((*v - mean) * rstd).mul_add(*g, *b);
    }
}

/// The width of one attention head of all-MiniLM-L6-v2 (384 / 12).
pub(crate) const HEAD_DIM: usize = 32;

/// One of `[query | key | value]` (`part` 0, 1, 2) of `len` tokens' rows of `qkv` (each
/// `3 * width` wide, before `bias`), head by head: `out` is `(width / HEAD_DIM, len, HEAD_DIM)`.
#[inline(always)]
pub(crate) fn split_heads(out: &mut [f32], qkv: &[f32], bias: &[f32], part: usize, width: usize) {
    let stride = 3 * width;
    let len = qkv.len() / stride;
    for (h, head) in out.chunks_exact_mut(len * HEAD_DIM).enumerate() {
        let at = part * width + h * HEAD_DIM;
        let bias = &bias[at..at + HEAD_DIM];
        for (o, token) in head
            .chunks_exact_mut(HEAD_DIM)
            .zip(qkv.chunks_exact(stride))
        {
            for ((o, x), b) in o.iter_mut().zip(&token[at..at + HEAD_DIM]).zip(bias) {
                *o = x + b;
            }
        }
    }
}

/// The inverse of [`split_heads`] for one sequence's attention output: `heads` is
/// `(width / HEAD_DIM, len, HEAD_DIM)`, `out` gets `len` rows of `width`.
#[inline(always)]
pub(crate) fn merge_heads(out: &mut [f32], heads: &[f32], width: usize) {
    let len = out.len() / width;
    for (h, head) in heads.chunks_exact(len * HEAD_DIM).enumerate() {
        for (o, x) in out.chunks_exact_mut(width).zip(head.chunks_exact(HEAD_DIM)) {
            o[h * HEAD_DIM..(h + 1) * HEAD_DIM].copy_from_slice(x);
        }
    }
}

/// `softmax(scores / sqrt(HEAD_DIM))` of each row of `len` scores into `out`, as BERT's
/// attention does (`q k^T / sqrt(d)`, then softmax over the keys). No mask: the rows span one
/// sequence's tokens only, which is what the mask does to a padded batch (masked scores weigh
/// exactly 0 after the softmax).
#[inline(always)]
pub(crate) fn attention_softmax(out: &mut [f32], scores: &[f32], len: usize) {
    let sqrt_d = (HEAD_DIM as f32).sqrt();
    for (o, s) in out.chunks_exact_mut(len).zip(scores.chunks_exact(len)) {
        for (o, s) in o.iter_mut().zip(s) {
            *o = s / sqrt_d;
        }
        let m = max(o);
        for o in o.iter_mut() {
            *o = exp(*o - m);
        }
        let total = sum(o);
        for o in o.iter_mut() {
            *o /= total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf to 1e-300: the series for |x| < 3 and the continued fraction of erfc beyond.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let y = if a < 3.0 {
            let (mut term, mut total, mut n) = (a, a, 0.0);
            while term.abs() > 1e-18 * total.abs() {
                n += 1.0;
                term *= -a * a / n;
                total += term / (2.0 * n + 1.0);
            }
            total * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for k in (1..200).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * (a + f))
        };
        y.copysign(x)
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        for i in -870_000..=883_000 {
            let x = i as f32 * 1e-4;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    fn erf_is_within_abramowitz_stegun_bound_plus_rounding() {
        let mut worst = 0f64;
        for i in -80_000..=80_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((erf(x) as f64 - erf_f64(x as f64)).abs());
        }
        // 1.5e-7 for the formula, plus float rounding (PyTorch's float version does the same).
        assert!(worst < 6e-7, "max absolute error {worst}");
        assert!(erf(0.0).abs() < 1e-7);
        assert_eq!(erf(20.0), 1.0);
        assert_eq!(erf(-20.0), -1.0);
    }

    #[test]
    fn heads_split_and_merge_back() {
        let width = 64;
        let qkv: Vec<f32> = (0..3 * 3 * width).map(|i| i as f32).collect();
        let bias = vec![0.0; 3 * width];
        let mut heads = vec![0.0; 3 * width];
        let mut merged = vec![0.0; 3 * width];
        for part in 0..3 {
            split_heads(&mut heads, &qkv, &bias, part, width);
            merge_heads(&mut merged, &heads, width);
            let want: Vec<f32> = qkv
                .chunks_exact(3 * width)
                .flat_map(|t| t[part * width..(part + 1) * width].to_vec())
                .collect();
            assert_eq!(merged, want);
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let scores = [1.0, 2.0, 3.0, -1e30, 0.0, 0.0];
        let mut out = [0.0; 6];
        attention_softmax(&mut out, &scores, 3);
        assert!((out[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(out[0] < out[1] && out[1] < out[2]);
        assert!(out[3] < 1e-37);
        assert_eq!(out[4], 0.5);
    }

    #[test]
    fn layer_norm_matches_the_definition() {
        let row: Vec<f32> = (0..384)
            .map(|i| ((i * 37) % 101) as f32 * 0.1 - 3.0)
            .collect();
        let gamma: Vec<f32> = (0..384).map(|i| 1.0 + i as f32 * 1e-3).collect();
        let beta: Vec<f32> = (0..384).map(|i| i as f32 * -1e-3).collect();
        let mut got = row.clone();
        layer_norm_row(&mut got, &gamma, &beta, 1e-12);
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / 384.0;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 384.0;
        for (i, &v) in got.iter().enumerate() {
            let want =
                (row[i] as f64 - mean) / (var + 1e-12).sqrt() * gamma[i] as f64 + beta[i] as f64;
            assert!((v as f64 - want).abs() < 1e-5, "{i}: {v} vs {want}");
        }
    }
}
