//! The element-wise and attention kernels of the BERT forward pass, in safe Rust that LLVM
//! vectorizes: [`crate::bert`] runs them inside `pulp::Arch::dispatch`, which compiles their
//! (always inlined) bodies for AVX-512 or AVX2 + FMA when the CPU has them, chosen at run time.
//!
//! Sums are kept in [`LANES`] partial sums so that they vectorize (float addition is not
//! associative, so LLVM does not reorder a plain running sum); the results differ from a
//! sequential sum by float rounding only.

/// Partial sums kept by the reductions: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// `e^x` for `x <= 88.7`: Cody–Waite reduction to `r` in `[-ln 2 / 2, ln 2 / 2]`, a degree-7
/// Taylor polynomial (truncation error below 6e-9 relative), times `2^n` built from its bits.
/// Relative error ~1 ulp; below -87.3 the result is ~1e-38 instead of a denormal or 0, which
/// the callers only ever add to sums of at least 1.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.7);
    let n = x.mul_add(LOG2_E, 0.5).floor();
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
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
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

/// Exact (erf) GELU, in place after adding `bias` to each row: `x / 2 * (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub(crate) fn bias_gelu(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            let y = *v + b;
            *v = y * 0.5 * (1.0 + erf(y * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Adds `bias` to each row of `x`, in place.
#[inline(always)]
pub(crate) fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
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

/// Reusable buffers of [`attention`], sized for the longest sequence seen.
#[derive(Default)]
pub(crate) struct AttentionScratch {
    keys_t: Vec<f32>,
    values: Vec<f32>,
    scores: Vec<f32>,
}

/// Multi-head self-attention of sequences laid end to end, without padding: `qkv` holds one row
/// of `[query | key | value]` (each `width` wide, `heads` heads of `width / heads`) per token,
/// `lens` the token count of each sequence in order; `out` gets one row of `width` per token.
/// A token attends to the tokens of its own sequence only, which is what BERT's attention mask
/// does to padded batches (masked scores are `-inf`-like and weigh exactly 0 after the softmax).
/// Per head: `softmax(q k^T / sqrt(head_dim)) v`, one query row at a time, the scores of a row
/// never more than one sequence long (no `heads × len²` tensor).
#[inline(always)]
pub(crate) fn attention(
    qkv: &[f32],
    lens: &[usize],
    width: usize,
    heads: usize,
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    const HEAD_DIM: usize = 32;
    assert_eq!(width, heads * HEAD_DIM, "head width must be {HEAD_DIM}");
    let sqrt_d = (HEAD_DIM as f32).sqrt();
    let stride = 3 * width;
    let mut start = 0;
    for &len in lens {
        let tokens = &qkv[start * stride..(start + len) * stride];
        let out_rows = &mut out[start * width..(start + len) * width];
        scratch.keys_t.resize(HEAD_DIM * len, 0.0);
        scratch.values.resize(len * HEAD_DIM, 0.0);
        scratch.scores.resize(len, 0.0);
        for h in 0..heads {
            let q_at = h * HEAD_DIM;
            let k_at = width + h * HEAD_DIM;
            let v_at = 2 * width + h * HEAD_DIM;
            // Keys transposed (head_dim × len) so that one query's scores are axpys over
            // contiguous rows; values (len × head_dim) contiguous.
            for (j, token) in tokens.chunks_exact(stride).enumerate() {
                for (d, &k) in token[k_at..k_at + HEAD_DIM].iter().enumerate() {
                    scratch.keys_t[d * len + j] = k;
                }
                scratch.values[j * HEAD_DIM..(j + 1) * HEAD_DIM]
                    .copy_from_slice(&token[v_at..v_at + HEAD_DIM]);
            }
            for (token, o) in tokens
                .chunks_exact(stride)
                .zip(out_rows.chunks_exact_mut(width))
            {
                let q = &token[q_at..q_at + HEAD_DIM];
                let scores = &mut scratch.scores[..len];
                scores.fill(0.0);
                for (&qd, kd) in q.iter().zip(scratch.keys_t.chunks_exact(len)) {
                    for (s, &k) in scores.iter_mut().zip(kd) {
                        *s = qd.mul_add(k, *s);
                    }
                }
                for s in scores.iter_mut() {
                    *s /= sqrt_d;
                }
                let m = max(scores);
                for s in scores.iter_mut() {
                    *s = exp(*s - m);
                }
                let total = sum(scores);
                let mut acc = [0f32; HEAD_DIM];
                for (&s, v) in scores.iter().zip(scratch.values.chunks_exact(HEAD_DIM)) {
                    let p = s / total;
                    for (a, &v) in acc.iter_mut().zip(v) {
                        *a = p.mul_add(v, *a);
                    }
                }
                o[q_at..q_at + HEAD_DIM].copy_from_slice(&acc);
            }
        }
        start += len;
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
        for i in -870_000..=880_000 {
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
    fn attention_of_one_token_is_its_value() {
        let width = 384;
        let qkv: Vec<f32> = (0..3 * width).map(|i| i as f32 * 0.01).collect();
        let mut out = vec![0.0; width];
        attention(
            &qkv,
            &[1],
            width,
            12,
            &mut out,
            &mut AttentionScratch::default(),
        );
        assert_eq!(out, qkv[2 * width..]);
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
