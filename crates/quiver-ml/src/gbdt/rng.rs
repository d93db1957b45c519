//! A small seeded random number generator (SplitMix64): the same seed gives the same stream on
//! every platform, which keeps sampling, bagging and feature subsampling reproducible.

pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for one purpose (`stream`) of one training run (`seed`).
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// `k` distinct indices of `0..n`, ascending (selection sampling, Knuth's algorithm S).
    pub(crate) fn sample_sorted(&mut self, n: usize, k: usize) -> Vec<usize> {
        let k = k.min(n);
        let mut out = Vec::with_capacity(k);
        for i in 0..n {
            let needed = k - out.len();
            if needed == 0 {
                break;
            }
            if self.below(n - i) < needed {
                out.push(i);
            }
        }
        out
    }
}
