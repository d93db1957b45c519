//! The two-sample Kolmogorov–Smirnov test, two-sided, with the p-value scipy's `ks_2samp`
//! (method "auto") gives: the exact distribution of the statistic when both samples have at most
//! 10,000 values (lattice-path counting: Hodges' "inside" method in the 1 - p form of
//! Viehmann, or the closed form for equal sizes), otherwise the distribution of the one-sample
//! statistic D_n with n = round(n1·n2 / (n1 + n2)) (Simard & L'Ecuyer's choice among the
//! Durbin matrix, Pomeranz, Pelz–Good and Smirnov computations).

use super::special::ln_gamma;

/// Largest sample size for which the exact distribution is used.
const MAX_EXACT_N: usize = 10_000;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The statistic and the two-sided p-value of two sorted samples (no NaN).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n1, n2) = (a.len() as u64, b.len() as u64);
    assert!(n1 > 0 && n2 > 0, "ks_2samp needs two non-empty samples");
    let g = gcd(n1, n2);
    let (n1g, n2g) = (n1 / g, n2 / g);
    // D·lcm(n1, n2) as an integer: the largest |c1·n2/g - c2·n1/g| over the distinct values,
    // c1 and c2 the counts at or below the value.
    let (mut i, mut j) = (0usize, 0usize);
    let mut h: u64 = 0;
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        let d = (i as i128 * n2g as i128 - j as i128 * n1g as i128).unsigned_abs() as u64;
        h = h.max(d);
    }
    let lcm = n1g * n2;
    let d = h as f64 / lcm as f64;
    if a.len().max(b.len()) <= MAX_EXACT_N {
        if h == 0 {
            return (d, 1.0);
        }
        let p = if n1 == n2 {
            prob_outside_square(n1, h)
        } else {
            outer_prob_inside(n1, n2, g, h)
        };
        if (0.0..=1.0).contains(&p) {
            return (d, p);
        }
    }
    // Asymptotic: the one-sample distribution at n = round(n1·n2 / (n1 + n2)).
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = round_half_even(m * n / (m + n));
    (d, kstwo_sf(en as u64, d).clamp(0.0, 1.0))
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// Pr(D_{n,n} ≥ h/n), as 2·A0·(1 - A1·(1 - A2·(...))), each Ai a ratio of binomials
/// evaluated term by term.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (nf, hf) = (n as f64, h as f64);
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    while k >= 0 {
        let kh = k as f64 * hf;
        let mut p1 = 1.0;
        for j in 0..h {
            let j = j as f64;
            p1 = (nf - kh - j) * p1 / (nf + kh + j + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The share of lattice paths from (0,0) to (m,n) that leave the band |x/m - y/n| < h/lcm,
/// computed column by column over a sliding window of the band, as the probability of
/// leaving (so that small p-values keep their precision).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (n, h) = (n as i64, h as i64);
    let ceil_div = |a: i64, b: i64| -> i64 { -((-a).div_euclid(b)) };
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len = (2 * maxj + 2).min(n + 1) as usize;
    let mut col = vec![1.0f64; len.max(1)];
    for v in col.iter_mut().take(maxj as usize) {
        *v = 0.0;
    }
    for i in 1..=(m as i64) {
        let (lastminj, lastlen) = (minj, curlen);
        minj = ((ng * i - h).div_euclid(mg) + 1).clamp(0, n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let prev = col
                .get((jj + minj - lastminj) as usize)
                .copied()
                .unwrap_or(1.0);
            val = (prev * fi + val * j as f64) / (fi + j as f64);
            col[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let from = (maxj - minj) as usize;
            let to = (from + (lastlen - curlen) as usize).min(col.len());
            for v in &mut col[from..to] {
                *v = 1.0;
            }
        }
    }
    col[(maxj - minj - 1) as usize]
}

/// Survival function of the two-sided one-sample statistic D_n: Pr(D_n > x).
pub fn kstwo_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    let clip = |p: f64| p.clamp(0.0, 1.0);
    if t <= 1.0 {
        // Ruben–Gambino: 1/2n <= x <= 1/n.
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |p, i| p * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0)))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - cdf);
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov(n, x));
    }
    let nxx = t * x;
    if n <= 140 {
        if nxx <= 0.754_693 {
            return clip(1.0 - durbin_cdf(n, x));
        }
        if nxx <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, x));
        }
        return clip(2.0 * smirnov(n, x));
    }
    if nxx >= 370.0 {
        return 0.0;
    }
    if nxx >= 2.2 {
        return clip(2.0 * smirnov(n, x));
    }
    let cdf = if nxx >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(nf, x)
    };
    clip(1.0 - cdf)
}

/// ln(n! / n^n) by Stirling's series.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const COEFFS: [f64; 8] = [
        -2.955_065_359_477_124e-2,
        6.410_256_410_256_41e-3,
        -1.917_526_917_526_917_6e-3,
        8.417_508_417_508_418e-4,
        -5.952_380_952_380_952e-4,
        7.936_507_936_507_937e-4,
        -2.777_777_777_777_778e-3,
        8.333_333_333_333_333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = COEFFS.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

const E128: i32 = 128;

fn ldexp(x: f64, e: i32) -> f64 {
    // Scale in steps that stay representable.
    let mut x = x;
    let mut e = e;
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// Pr(D_n <= d) by the Durbin matrix (Marsaglia, Tsang and Wang's formulation): a power of a
/// (2k-1)² matrix, rescaled as it grows.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    // w[j] = 1/j!, v[j] = (1 - h^(j+1)) / (j+1)!
    let mut w = vec![0.0; m];
    let mut v = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for c in 1..m {
        for r in (c - 1)..m {
            hm[r * m + c] = w[r + 1 - c];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let matmul = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; m * m];
        for i in 0..m {
            for l in 0..m {
                let x = a[i * m + l];
                if x == 0.0 {
                    continue;
                }
                for j in 0..m {
                    out[i * m + j] += x * b[l * m + j];
                }
            }
        }
        out
    };
    let mut pw = vec![0.0; m * m];
    for i in 0..m {
        pw[i * m + i] = 1.0;
    }
    let ep128 = 2f64.powi(E128);
    let em128 = 2f64.powi(-E128);
    let (mut expnt, mut hexpnt) = (0i32, 0i32);
    let mut nn = n;
    let mut hh = hm;
    while nn > 0 {
        if nn % 2 == 1 {
            pw = matmul(&pw, &hh);
            expnt += hexpnt;
        }
        hh = matmul(&hh, &hh);
        hexpnt *= 2;
        if hh[(k - 1) * m + (k - 1)].abs() > ep128 {
            for x in hh.iter_mut() {
                *x /= ep128;
            }
            hexpnt += E128;
        }
        nn /= 2;
    }
    let mut p = pw[(k - 1) * m + (k - 1)];
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < em128 {
            p *= ep128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    p.clamp(0.0, 1.0)
}

/// The interval of columns of row i in Pomeranz's recursion.
fn pomeranz_j1j2(i: usize, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (half, odd) = (i.div_ceil(2) as i64, (i + 1) % 2);
        if odd == 0 {
            if half == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1)
            }
        } else {
            (half - 1 - ll - 1, half + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// Pr(D_n <= x) by Pomeranz's recursion (convolutions of truncated exponential series).
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![1.0; npwrs];
    let mut twogpower = vec![1.0; npwrs];
    let mut onem2gpower = vec![1.0; npwrs];
    let (g_n, g2_n, g12_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        gpower[m] = gpower[m - 1] * g_n / m as f64;
        twogpower[m] = twogpower[m - 1] * g2_n / m as f64;
        onem2gpower[m] = onem2gpower[m - 1] * g12_n / m as f64;
    }
    let em128 = 2f64.powi(-E128);
    let ep128 = 2f64.powi(E128);
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt = 0i32;
    let mut j1 = pomeranz_j1j2(0, n, ll, ceilf, roundf).0;
    for i in 1..(2 * n as usize + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|v| *v = 0.0);
        let (next_j1, j2) = pomeranz_j1j2(i, n, ll, ceilf, roundf);
        j1 = next_j1;
        let pwrs = if i == 1 || i == 2 * n as usize + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            let start = (k1 - v0s) as usize;
            // Full convolution of v0[start..start+ln2] with pwrs[..ln2]; entries
            // conv_start..conv_start+conv_len are kept.
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1).max(0) as usize;
            for (out, slot) in v1.iter_mut().enumerate().take(conv_len) {
                let idx = conv_start + out;
                let mut s = 0.0;
                let lo = idx.saturating_sub(ln2 - 1);
                for a in lo..=idx.min(ln2 - 1) {
                    let va = v0.get(start + a).copied().unwrap_or(0.0);
                    s += va * pwrs[idx - a];
                }
                *slot = s;
            }
            let maxv = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if maxv > 0.0 && maxv < em128 {
                v1.iter_mut().for_each(|v| *v *= ep128);
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(n - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > ep128 {
            ans *= em128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    ans.clamp(0.0, 1.0)
}

/// Pr(D_n <= x) by the Pelz–Good asymptotic series (for large n).
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qp = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (acc, c) in k.iter_mut().zip(coeffs) {
            *acc = *acc * qp + c;
        }
    }
    let denoms = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (acc, d) in k.iter_mut().zip(denoms) {
        *acc = *acc * q * sqrt2pi / d;
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let kf = kk as f64;
        let ks2 = kf * kf;
        let qp = q2.powf(ks2);
        k2extra += ks2 * qp;
        let kspi = PI * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    let mut sum = 0.0;
    for (i, acc) in k.iter().enumerate() {
        sum += acc / n.powf(i as f64 / 2.0);
    }
    sum
}

/// The one-sided statistic's survival function Pr(D+_n >= x), by the Birnbaum–Tingey sum (all
/// terms positive, each computed in logarithms).
pub fn smirnov(n: u64, x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let vmax = (nf * (1.0 - x)).floor() as u64;
    let ln_x = x.ln();
    let lg_n1 = ln_gamma(nf + 1.0);
    let mut logs = Vec::with_capacity(vmax as usize + 1);
    for v in 0..=vmax {
        let vf = v as f64;
        let rest = 1.0 - x - vf / nf;
        if rest <= 0.0 {
            // (1 - x - v/n)^(n-v) with n - v = 0 is 1; otherwise the term is 0.
            if v != n {
                continue;
            }
        }
        let ln_c = lg_n1 - ln_gamma(vf + 1.0) - ln_gamma(nf - vf + 1.0);
        let ln_term = ln_c
            + ln_x
            + (vf - 1.0) * (x + vf / nf).ln()
            + if v == n { 0.0 } else { (nf - vf) * rest.ln() };
        logs.push(ln_term);
    }
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return 0.0;
    }
    let s: f64 = logs.iter().map(|l| (l - max).exp()).sum();
    (max + s.ln()).exp().clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    #[test]
    fn exact_p_values_match_scipy() {
        // scipy.stats.ks_2samp([0..9], [0.5, 2.5, ..., 14.5]) and friends, method="auto".
        let a: Vec<f64> = (0..10).map(f64::from).collect();
        let b: Vec<f64> = (0..8).map(|i| f64::from(i) * 2.0 + 0.5).collect();
        let (d, p) = ks_2samp(&a, &b);
        assert!(close(d, 0.4, 1e-12), "{d}");
        assert!(close(p, 0.391_745_509_392_568_25, 1e-9), "{p}");
        let c: Vec<f64> = (0..10).map(|i| f64::from(i) + 3.0).collect();
        let (d, p) = ks_2samp(&a, &c);
        assert!(close(d, 0.3, 1e-12));
        assert!(close(p, 0.786_929_788_477_776_1, 1e-9), "{p}");
    }

    #[test]
    fn one_sample_distribution_matches_scipy() {
        // scipy.stats.kstwo.sf(x, n) and scipy.special.smirnov(n, x).
        let cases = [
            (50, 0.1, 0.662_311_270_465_818_6, 0.344_907_019_968_88),
            (50, 0.2, 0.031_438_777_769_532_41, 0.015_719_427_449_405_61),
            (
                50,
                0.3,
                0.000_173_532_602_027_187_38,
                8.676_630_101_359_369e-5,
            ),
            (500, 0.03, 0.747_316_670_045_702_1, 0.398_606_516_920_473_55),
            (
                500,
                0.06,
                0.052_434_634_890_262_23,
                0.026_217_755_208_726_833,
            ),
            (500, 0.12, 9.883_943_505_885_72e-7, 4.941_971_752_942_86e-7),
            (
                500,
                0.6,
                1.193_476_399_343_372_1e-172,
                5.967_381_996_716_861e-173,
            ),
            (
                200_000,
                0.002,
                0.399_950_853_690_380_97,
                0.201_627_573_539_747_22,
            ),
            (
                200_000,
                0.004,
                0.003_314_212_822_560_255,
                0.001_657_106_411_280_127_6,
            ),
            (1000, 0.0008, 1.0, 0.998_221_559_353_471_3),
            (100, 0.009, 1.0, 0.978_149_168_557_369_3),
        ];
        for (n, x, sf, sm) in cases {
            let got = kstwo_sf(n, x);
            assert!(
                close(got, sf, 1e-9),
                "kstwo.sf({x}, {n}) = {got}, scipy {sf}"
            );
            let got = smirnov(n, x);
            assert!(
                close(got, sm, 1e-9),
                "smirnov({n}, {x}) = {got}, scipy {sm}"
            );
        }
    }
}
