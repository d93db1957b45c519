//! The dense vector kernels of ALS, scoring and similarity, in safe Rust that LLVM vectorizes.
//!
//! Callers run them inside [`vectorized`], which compiles their (always inlined) bodies for
//! AVX-512 or AVX2 + FMA when the CPU has them, chosen at run time (`pulp::Arch::dispatch`).
//! Sums are kept in [`LANES`] partial sums so that they vectorize (float addition is not
//! associative, so LLVM does not reorder a plain running sum); results differ from a
//! sequential sum by float rounding only.

use std::sync::OnceLock;

/// Partial sums kept by the reductions: one AVX-512 register of `f32`.
const LANES: usize = 16;

fn arch() -> pulp::Arch {
    static ARCH: OnceLock<pulp::Arch> = OnceLock::new();
    *ARCH.get_or_init(pulp::Arch::new)
}

/// Runs `f` compiled for the best vector instructions of this CPU. `f` must mutate what it
/// captures (so it is called through `FnMut` and its body inlines into pulp's
/// `#[target_feature]` function) and the kernels it calls are `#[inline(always)]`.
#[inline(always)]
pub fn vectorized<R>(f: impl FnMut() -> R) -> R {
    arch().dispatch(Vectorized(f))
}

struct Vectorized<F>(F);

impl<R, F: FnMut() -> R> pulp::WithSimd for Vectorized<F> {
    type Output = R;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, _simd: S) -> R {
        (self.0)()
    }
}

/// `a · b`.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail = x.mul_add(*y, tail);
    }
    // Pairwise reduction of the lanes.
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0] + tail
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = alpha.mul_add(*xi, *yi);
    }
}

/// `out = scale * A x` for a symmetric `n × n` row-major `A` (`n = x.len()`), as a sum of
/// columns (each row of a symmetric matrix is its column).
#[inline(always)]
pub fn symv(a: &[f32], x: &[f32], scale: f32, out: &mut [f32]) {
    let n = x.len();
    out.fill(0.0);
    for (j, &xj) in x.iter().enumerate() {
        axpy(scale * xj, &a[j * n..(j + 1) * n], out);
    }
}

/// `A += alpha * v vᵀ` (the full `n × n` matrix, row-major).
#[inline(always)]
pub fn syr(alpha: f32, v: &[f32], a: &mut [f32]) {
    let n = v.len();
    for (j, &vj) in v.iter().enumerate() {
        axpy(alpha * vj, v, &mut a[j * n..(j + 1) * n]);
    }
}

/// Solves `A x = b` for a symmetric positive definite `n × n` `A` by Cholesky factorization
/// in `f64` (in place in `work`, `n * n` long); `x` overwrites `b`. Returns false when `A` is
/// not positive definite.
pub fn cholesky_solve(a: &[f32], b: &mut [f32], work: &mut [f64]) -> bool {
    let n = b.len();
    let l = &mut work[..n * n];
    for (li, ai) in l.iter_mut().zip(a) {
        *li = f64::from(*ai);
    }
    for j in 0..n {
        let mut d = l[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let mut s = l[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    let mut y: Vec<f64> = b.iter().map(|v| f64::from(*v)).collect();
    for i in 0..n {
        let mut s = y[i];
        for k in 0..i {
            s -= l[i * n + k] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[k * n + i] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    for (bi, yi) in b.iter_mut().zip(&y) {
        *bi = *yi as f32;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_plain_loops() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
        assert!((f64::from(vectorized(|| dot(&a, &b))) - plain).abs() < 1e-5);
        // A = M Mᵀ + I is symmetric positive definite; solve and check A x = b.
        let n = 5;
        let m: Vec<f32> = (0..n * n).map(|i| ((i * 7 % 11) as f32) / 11.0).collect();
        let mut aa = vec![0f32; n * n];
        for i in 0..n {
            syr(1.0, &m[i * n..(i + 1) * n], &mut aa);
            aa[i * n + i] += 1.0;
        }
        let rhs: Vec<f32> = (0..n).map(|i| i as f32 - 2.0).collect();
        let mut x = rhs.clone();
        assert!(cholesky_solve(&aa, &mut x, &mut vec![0.0; n * n]));
        let mut back = vec![0f32; n];
        symv(&aa, &x, 1.0, &mut back);
        for (u, v) in back.iter().zip(&rhs) {
            assert!((u - v).abs() < 1e-4, "{back:?} vs {rhs:?}");
        }
        assert!(!cholesky_solve(
            &vec![0.0; n * n],
            &mut x,
            &mut vec![0.0; n * n]
        ));
    }
}
