//! The k best of many scores by partial sort: a bounded min-heap of the best so far, so that
//! most candidates cost one comparison with the current k-th score and nothing is allocated
//! per candidate. Ties go to the lower index, so the order is deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate in the heap; "greater" means worse, so the heap's top is the worst kept.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Worst(f32, u32);

impl Eq for Worst {}

impl Ord for Worst {
    fn cmp(&self, o: &Self) -> Ordering {
        // Lower score is worse; at equal scores the higher index is worse.
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

impl PartialOrd for Worst {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The `k` best `(index, score)` of `scores` (best first), skipping indices `skip` says yes
/// to and NaN scores.
pub fn top_k(scores: &[f32], k: usize, mut skip: impl FnMut(u32) -> bool) -> Vec<(u32, f32)> {
    top_k_iter(
        scores
            .iter()
            .copied()
            .enumerate()
            .map(|(i, s)| (i as u32, s)),
        k,
        &mut skip,
    )
}

/// [`top_k`] over `(index, score)` pairs.
#[inline(always)]
pub fn top_k_iter(
    scores: impl Iterator<Item = (u32, f32)>,
    k: usize,
    skip: &mut impl FnMut(u32) -> bool,
) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
    for (i, s) in scores {
        if s.is_nan() {
            continue;
        }
        if heap.len() == k {
            let worst = heap.peek().expect("k > 0");
            // Not better than the worst kept: skip (the common case, one comparison).
            if s < worst.0 || (s == worst.0 && i > worst.1) {
                continue;
            }
        }
        if skip(i) {
            continue;
        }
        heap.push(Worst(s, i));
        if heap.len() > k {
            heap.pop();
        }
    }
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|w| (w.1, w.0)).collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn the_k_best_in_order_with_exclusions_and_ties() {
        let s = [0.5, 2.0, -1.0, 2.0, f32::NAN, 3.0, 0.1];
        assert_eq!(top_k(&s, 3, |_| false), vec![(5, 3.0), (1, 2.0), (3, 2.0)]);
        assert_eq!(top_k(&s, 2, |i| i == 5), vec![(1, 2.0), (3, 2.0)]);
        assert_eq!(top_k(&s, 100, |_| false).len(), 6);
        assert!(top_k(&s, 0, |_| false).is_empty());
        // Against a full sort on pseudo-random scores.
        let v: Vec<f32> = (0..1000u32).map(|i| ((i * 7919) % 1009) as f32).collect();
        let mut all: Vec<(u32, f32)> = v
            .iter()
            .copied()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.retain(|(i, _)| i % 3 != 0);
        assert_eq!(top_k(&v, 25, |i| i % 3 == 0), all[..25].to_vec());
    }
}
