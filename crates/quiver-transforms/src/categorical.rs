//! Categorical transforms: `hash_bucket`, `cross_hash` and `one_hot`.
//!
//! # The hash
//! Every hash here is **FNV-1a 64** (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`)
//! over bytes that depend only on the value, never on the process: Rust's `HashMap` hasher is
//! randomized per process and must never decide a bucket.
//!
//! # The text of a value
//! A value is hashed (and compared, in `one_hot`) through its *canonical text*:
//! * text: its UTF-8 bytes, unchanged (no trimming, no case folding);
//! * integers (any width, signed or unsigned): the decimal text, `-` for negatives and no leading
//!   zeros or `+`, so int64 `7`, uint8 `7` and the string `'7'` land in the same bucket;
//! * booleans: `true` / `false`.
//!
//! Floating-point values are refused at planning (their text is ambiguous: `1`, `1.0`, `1e0`);
//! cast them to an integer or bucketize them first.

/// FNV-1a 64 over `bytes`, continuing from `state` (start with [`FNV_OFFSET`]).
#[inline]
pub fn fnv1a64_extend(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// The FNV-1a 64 offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// The FNV-1a 64 prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`. `fnv1a64(b"a") = 0xaf63dc4c8601ec8c`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_extend(FNV_OFFSET, bytes)
}

/// `hash_bucket(x, n)`: `fnv1a64(text(x)) mod n`, a bucket in `[0, n)`; `text` is the canonical
/// text (see the module docs). `n` must be at least 1.
pub fn hash_bucket(text: &str, n: u64) -> i64 {
    (fnv1a64(text.as_bytes()) % n) as i64
}

/// `cross_hash(a, b, ..., n)`: the bucket in `[0, n)` of a feature cross.
///
/// The hashed bytes are, for each value in order, its canonical text's byte length as a
/// little-endian u64 followed by the text: `fnv1a64(len(a) ‖ a ‖ len(b) ‖ b ‖ ...) mod n`.
/// The length prefix makes the encoding injective, so `('ab', 'c')` and `('a', 'bc')` differ.
pub fn cross_hash<'a>(texts: impl IntoIterator<Item = &'a str>, n: u64) -> i64 {
    let mut h = CrossHasher::new();
    for t in texts {
        h.push(t);
    }
    h.bucket(n)
}

/// The streaming form of [`cross_hash`]: push each value's canonical text, then take the bucket.
#[derive(Debug, Clone, Copy)]
pub struct CrossHasher(u64);

impl CrossHasher {
    /// An empty cross.
    pub fn new() -> Self {
        CrossHasher(FNV_OFFSET)
    }

    /// Appends one value: its byte length as a little-endian u64, then its bytes.
    #[inline]
    pub fn push(&mut self, text: &str) {
        self.0 = fnv1a64_extend(self.0, &(text.len() as u64).to_le_bytes());
        self.0 = fnv1a64_extend(self.0, text.as_bytes());
    }

    /// The bucket in `[0, n)`.
    pub fn bucket(self, n: u64) -> i64 {
        (self.0 % n) as i64
    }
}

impl Default for CrossHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// `one_hot(x, 'value')`: 1.0 when the canonical text of `x` equals `value` exactly, else 0.0.
/// A null `x` gives 0.0 (a missing category is not the category), so the result is never null.
pub fn one_hot(text: Option<&str>, value: &str) -> f64 {
    if text == Some(value) { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn buckets() {
        assert_eq!(
            hash_bucket("a", 1000),
            (0xaf63dc4c8601ec8c_u64 % 1000) as i64
        );
        assert_eq!(hash_bucket("x", 1), 0);
        assert_ne!(
            cross_hash(["ab", "c"], 1 << 40),
            cross_hash(["a", "bc"], 1 << 40)
        );
        assert_eq!(one_hot(Some("7"), "7"), 1.0);
        assert_eq!(one_hot(None, "7"), 0.0);
    }
}
