//! Ranking metrics at k, with `implicit.evaluation.ranking_metrics_at_k`'s definitions and
//! its order of floating-point operations (so that the same recommendations give the same
//! numbers to the last bit), and beyond-accuracy measures.
//!
//! Evaluated users are those with at least one test item. For each, the top-k list excludes
//! the items they interacted with in training (the caller's `recommend` does that), and with
//! `T` their test items and `n = |T|`:
//!
//! * **precision@k** = hits summed over users / Σ min(k, n) (not a mean of per-user ratios);
//! * **MAP@k** = mean over users of Σ_{hits at rank i} (hits so far / i) / min(k, n);
//! * **NDCG@k** = mean over users of Σ_{hits at rank i} (1 / log2(i + 1)) / IDCG, IDCG the sum
//!   of the first min(k, n) gains;
//! * **AUC@k** = mean over users of the share of (test item, other item) pairs ranked right,
//!   items beyond the list counted as tied (half right), as `implicit` computes it.
//!
//! Beyond accuracy ([`beyond_accuracy`]): **coverage** = distinct recommended items / catalog;
//! **diversity** = mean over lists of 1 − the mean pairwise cosine similarity of the items'
//! factors; **novelty** = mean over recommended items of −log2(share of training users who
//! interacted with the item).

use rayon::prelude::*;
use serde::Serialize;

use crate::als::Factors;
use crate::csr::Csr;
use crate::kernels::{dot, vectorized};

/// precision, MAP, NDCG and AUC at k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankingMetrics {
    /// Hits / Σ min(k, test items).
    pub precision: f64,
    /// Mean average precision.
    pub map: f64,
    /// Mean NDCG.
    pub ndcg: f64,
    /// Mean AUC.
    pub auc: f64,
    /// Users evaluated (with at least one test item).
    pub users: usize,
}

/// The recommendation lists of the evaluated users: `(user, items best first)`.
pub type Lists = Vec<(u32, Vec<u32>)>;

/// The top-k lists of every user with a test item (`recommend(user, k)`, in parallel).
pub fn lists_for_test_users(
    test: &Csr,
    k: usize,
    recommend: impl Fn(u32, usize) -> Vec<u32> + Sync,
) -> Lists {
    let users: Vec<u32> = (0..test.rows)
        .filter(|u| test.row_len(*u) > 0)
        .map(|u| u as u32)
        .collect();
    users
        .into_par_iter()
        .map(|u| (u, recommend(u, k)))
        .collect()
}

/// precision, MAP, NDCG and AUC at `k` of `lists` against the `test` users × items matrix
/// (`test.cols` is the catalog size). `lists` in increasing user order, as
/// [`lists_for_test_users`] returns them.
pub fn ranking_metrics_at_k(lists: &Lists, test: &Csr, k: usize) -> RankingMetrics {
    let items = test.cols as f64;
    let cg: Vec<f64> = (0..k).map(|i| 1.0 / ((i + 2) as f64).log2()).collect();
    let mut cg_sum = Vec::with_capacity(k);
    let mut acc = 0.0;
    for g in &cg {
        acc += g;
        cg_sum.push(acc);
    }
    let (mut relevant, mut pr_div, mut total) = (0.0f64, 0.0f64, 0.0f64);
    let (mut mean_ap, mut ndcg, mut mean_auc) = (0.0f64, 0.0f64, 0.0f64);
    let kf = k as f64;
    for (u, ids) in lists {
        let (likes, _) = test.row(*u as usize);
        if likes.is_empty() {
            continue;
        }
        let n = likes.len();
        pr_div += kf.min(n as f64);
        let (mut ap, mut hit, mut miss, mut auc) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let idcg = cg_sum[k.min(n) - 1];
        let num_pos = n as f64;
        let num_neg = items - num_pos;
        #[allow(clippy::needless_range_loop)] // i is the rank, as in implicit's loop
        for i in 0..k {
            let liked = ids.get(i).is_some_and(|id| likes.binary_search(id).is_ok());
            if liked {
                relevant += 1.0;
                hit += 1.0;
                ap += hit / (i + 1) as f64;
                ndcg += cg[i] / idcg;
            } else {
                miss += 1.0;
                auc += hit;
            }
        }
        auc += ((hit + num_pos) / 2.0) * (num_neg - miss);
        mean_ap += ap / kf.min(n as f64);
        mean_auc += auc / (num_pos * num_neg);
        total += 1.0;
    }
    RankingMetrics {
        precision: relevant / pr_div,
        map: mean_ap / total,
        ndcg: ndcg / total,
        auc: mean_auc / total,
        users: total as usize,
    }
}

/// Catalog coverage, intra-list diversity and novelty of lists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BeyondAccuracy {
    /// Distinct recommended items / catalog size.
    pub coverage: f64,
    /// Mean over lists of 1 − mean pairwise cosine of item factors.
    pub diversity: f64,
    /// Mean −log2(share of training users with the item) over recommended items.
    pub novelty: f64,
}

/// [`BeyondAccuracy`] of `lists` over a catalog of `train.cols` items; `train` (users × items)
/// gives each item's share of users, `item_factors` the similarities.
pub fn beyond_accuracy(lists: &Lists, train: &Csr, item_factors: &Factors) -> BeyondAccuracy {
    let n_items = train.cols;
    let mut users_of = vec![0u32; n_items];
    for &i in &train.indices {
        users_of[i as usize] += 1;
    }
    let n_users = train.rows.max(1) as f64;
    let mut seen = vec![false; n_items];
    let (mut novelty, mut recommended) = (0.0f64, 0usize);
    for (_, ids) in lists {
        for &i in ids {
            seen[i as usize] = true;
            novelty += -(f64::from(users_of[i as usize].max(1)) / n_users).log2();
            recommended += 1;
        }
    }
    let norms: Vec<f32> = (0..item_factors.rows)
        .map(|i| dot(item_factors.row(i), item_factors.row(i)).sqrt())
        .collect();
    let (div_sum, div_lists) = lists
        .par_iter()
        .filter(|(_, ids)| ids.len() >= 2)
        .map(|(_, ids)| {
            let mut sim = 0.0f64;
            let mut pairs = 0usize;
            vectorized(
                #[inline(always)]
                || {
                    for (a, &i) in ids.iter().enumerate() {
                        for &j in &ids[a + 1..] {
                            let d = norms[i as usize] * norms[j as usize];
                            let c = if d > 0.0 {
                                dot(item_factors.row(i as usize), item_factors.row(j as usize)) / d
                            } else {
                                0.0
                            };
                            sim += f64::from(c);
                            pairs += 1;
                        }
                    }
                },
            );
            (1.0 - sim / pairs as f64, 1usize)
        })
        .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    BeyondAccuracy {
        coverage: seen.iter().filter(|s| **s).count() as f64 / n_items.max(1) as f64,
        diversity: if div_lists > 0 {
            div_sum / div_lists as f64
        } else {
            0.0
        },
        novelty: if recommended > 0 {
            novelty / recommended as f64
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_implicits_definitions() {
        // 2 users, 10 items. User 0 likes {1, 3}; user 1 likes {2}.
        let test = Csr::from_triplets(3, 10, &[(0, 1, 1.0), (0, 3, 1.0), (1, 2, 1.0)]);
        let lists: Lists = vec![(0, vec![1, 5, 3]), (1, vec![4, 6, 7])];
        let m = ranking_metrics_at_k(&lists, &test, 3);
        assert_eq!(m.users, 2);
        // hits 2 / (min(3,2) + min(3,1)) = 2/3
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-15);
        // user 0: ap = (1/1 + 2/3) / 2; user 1: 0
        assert!((m.map - ((1.0 + 2.0 / 3.0) / 2.0) / 2.0).abs() < 1e-15);
        let idcg = 1.0 + 1.0 / 3f64.log2();
        let want = ((1.0 + 1.0 / 4f64.log2()) / idcg) / 2.0;
        assert!((m.ndcg - want).abs() < 1e-12, "{} {want}", m.ndcg);
        // user 0: misses at rank 2 (1 hit above) -> auc 1, then + (2 + 2)/2 * (8 - 1) = 15 of
        // 2 * 8 = 16 pairs; user 1: 0 + (0 + 1)/2 * (9 - 3) = 3 of 9.
        assert!((m.auc - (15.0 / 16.0 + 3.0 / 9.0) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn coverage_diversity_novelty() {
        let train = Csr::from_triplets(
            4,
            4,
            &[
                (0, 0, 1.0),
                (1, 0, 1.0),
                (2, 0, 1.0),
                (3, 0, 1.0),
                (0, 1, 1.0),
            ],
        );
        let f = Factors {
            rows: 4,
            dim: 2,
            data: vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, -1.0, 0.0],
        };
        let lists: Lists = vec![(0, vec![0, 1]), (1, vec![0, 2])];
        let b = beyond_accuracy(&lists, &train, &f);
        assert_eq!(b.coverage, 0.75);
        // list 1: cos(0,1) = 1 -> 0; list 2: cos(0,2) = 0 -> 1.
        assert!((b.diversity - 0.5).abs() < 1e-9);
        // item 0: -log2(4/4) = 0; item 1: -log2(1/4) = 2; item 2 (no users, counted as 1): 2.
        assert!((b.novelty - 1.0).abs() < 1e-12);
    }
}
