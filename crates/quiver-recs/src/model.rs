//! A trained recommender: id maps, user and item factors, the training interactions (to
//! exclude what a user has seen), popularity; its files; and the questions it answers.
//!
//! A version's directory holds `recommender.json` ([`ModelInfo`]), `user_factors.qvf`,
//! `item_factors.qvf`, `popularity.qvf` (one column), `seen.qvc` (users × items weights)
//! and `users.json` / `items.json` (index → id); see [`crate::artifact`] for the layouts. A
//! recommender with `item_attributes:` adds `item_attributes.json` ([`crate::attributes`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::als::{Factors, fold_in};
use crate::artifact::{read_csr, read_factors, read_ids, write_csr, write_factors, write_ids};
use crate::attributes::ItemAttributes;
use crate::csr::Csr;
use crate::interactions::IdMap;
use crate::kernels::{dot, vectorized};
use crate::quant::QuantizedItems;
use crate::topk::top_k;
use crate::{Error, Result};

/// The most items one request may ask for.
pub const MAX_K: usize = 10_000;

/// What `recommender.json` records about a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// File layout version (1).
    pub format: u32,
    /// The recommender's name.
    pub recommender: String,
    /// `als`.
    pub algorithm: String,
    /// Latent factors.
    pub factors: usize,
    /// L2 regularization.
    pub regularization: f32,
    /// Confidence scale.
    pub alpha: f32,
    /// Iterations.
    pub iterations: u32,
    /// Seed.
    pub seed: u64,
    /// `cg` or `cholesky`.
    pub solver: String,
    /// Users, items and interactions trained on.
    pub users: usize,
    /// Items.
    pub items: usize,
    /// Non-zero (user, item) pairs.
    pub interactions: usize,
    /// The time the interactions were weighted as of (microseconds, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of_us: Option<i64>,
    /// Fewer interactions than this and a user gets popularity blended in (cold start).
    pub min_interactions: u32,
    /// Seconds the factorization took.
    pub train_seconds: f64,
}

/// A loaded or freshly trained recommender.
#[derive(Debug, Clone)]
pub struct RecModel {
    /// What it is.
    pub info: ModelInfo,
    /// User ids (rows of `user_factors` and `seen`).
    pub users: IdMap,
    /// Item ids (rows of `item_factors`, columns of `seen`).
    pub items: IdMap,
    /// One row per user.
    pub user_factors: Factors,
    /// One row per item.
    pub item_factors: Factors,
    /// Training weights, users × items (what each user has seen).
    pub seen: Csr,
    /// Each item's time-decayed popularity.
    pub popularity: Vec<f32>,
    /// The items' attributes that requests filter on (`item_attributes:`), if declared.
    pub attributes: Option<ItemAttributes>,
    /// Every item's content vector (`cold_start.content`), if declared ([`crate::content`]).
    pub content: Option<crate::content::ContentVectors>,
    yty: Vec<f32>,
    item_norms: Vec<f32>,
    /// The item factors in 8 bits, which screen the items of a top-k ([`QuantizedItems`]),
    /// built at first use.
    quantized: std::sync::OnceLock<QuantizedItems>,
}

/// Checks a requested list length: 1 to [`MAX_K`].
pub fn check_k(k: i64) -> Result<usize> {
    if k <= 0 || k as usize > MAX_K {
        return Err(Error::Invalid(format!(
            "k = {k}: ask for 1 to {MAX_K} items"
        )));
    }
    Ok(k as usize)
}

impl RecModel {
    /// Assembles a model and checks that its parts agree.
    pub fn new(
        info: ModelInfo,
        users: IdMap,
        items: IdMap,
        user_factors: Factors,
        item_factors: Factors,
        seen: Csr,
        popularity: Vec<f32>,
    ) -> Result<RecModel> {
        let ok = user_factors.rows == users.len()
            && item_factors.rows == items.len()
            && user_factors.dim == item_factors.dim
            && seen.rows == users.len()
            && seen.cols == items.len()
            && popularity.len() == items.len();
        if !ok {
            return Err(Error::Invalid(format!(
                "the model's parts disagree: {} users, {} items, user factors {}×{}, item factors {}×{}, seen {}×{}, popularity {}",
                users.len(),
                items.len(),
                user_factors.rows,
                user_factors.dim,
                item_factors.rows,
                item_factors.dim,
                seen.rows,
                seen.cols,
                popularity.len()
            )));
        }
        let yty = item_factors.gram();
        let item_norms = (0..item_factors.rows)
            .map(|i| dot(item_factors.row(i), item_factors.row(i)).sqrt())
            .collect();
        Ok(RecModel {
            info,
            users,
            items,
            user_factors,
            item_factors,
            seen,
            popularity,
            attributes: None,
            content: None,
            quantized: std::sync::OnceLock::new(),
            yty,
            item_norms,
        })
    }

    /// The index of a user id, or an error naming it.
    pub fn user(&self, id: &str) -> Result<u32> {
        self.users.get(id).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown user '{id}': recommender '{}' was trained on {} users",
                self.info.recommender,
                self.users.len()
            ))
        })
    }

    /// The index of an item id, or an error naming it.
    pub fn item(&self, id: &str) -> Result<u32> {
        self.items.get(id).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown item '{id}': recommender '{}' was trained on {} items",
                self.info.recommender,
                self.items.len()
            ))
        })
    }

    /// The best `k` items for a known user (by factors), best first, without the items they
    /// interacted with in training when `exclude_seen`.
    pub fn recommend(&self, user: u32, k: usize, exclude_seen: bool) -> Vec<(u32, f32)> {
        let seen: &[u32] = if exclude_seen {
            self.seen.row(user as usize).0
        } else {
            &[]
        };
        self.recommend_factors(self.user_factors.row(user as usize), k, seen)
    }

    /// The best `k` items for user factors `x`, without the sorted `exclude`.
    pub fn recommend_factors(&self, x: &[f32], k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
        self.recommend_factors_where(x, k, |i| exclude.binary_search(&i).is_ok())
    }

    /// The best `k` items for user factors `x` among those `skip` says no to: every item
    /// scored by `x · item`, screened in 8 bits and cut exactly ([`QuantizedItems::top_k`]).
    pub fn recommend_factors_where(
        &self,
        x: &[f32],
        k: usize,
        skip: impl FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let f = &self.item_factors;
        self.quantized().top_k(
            x,
            1.0,
            |_| 0.0,
            k,
            skip,
            #[inline(always)]
            |i| dot(f.row(i), x),
        )
    }

    /// The best `k` items by `w · (x · item) + p · popularity` (the cold-start blend) among
    /// those `skip` says no to, as [`RecModel::recommend_factors_where`] finds them.
    pub fn blend_where(
        &self,
        x: &[f32],
        w: f32,
        p: f32,
        k: usize,
        skip: impl FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let f = &self.item_factors;
        let pop = &self.popularity;
        self.quantized().top_k(
            x,
            w,
            #[inline(always)]
            |i| p * pop[i],
            k,
            skip,
            #[inline(always)]
            |i| w * dot(f.row(i), x) + p * pop[i],
        )
    }

    fn quantized(&self) -> &QuantizedItems {
        self.quantized
            .get_or_init(|| QuantizedItems::new(&self.item_factors))
    }

    /// Factors for a user the model has not seen, from `(item, weight)` interactions (weights
    /// before `alpha`): `implicit`'s `recalculate_user`.
    pub fn fold_in(&self, interactions: &[(u32, f32)]) -> Result<Vec<f32>> {
        let items: Vec<u32> = interactions.iter().map(|p| p.0).collect();
        let weights: Vec<f32> = interactions.iter().map(|p| p.1).collect();
        fold_in(
            &items,
            &weights,
            &self.item_factors,
            &self.yty,
            self.info.regularization,
            self.info.alpha,
        )
    }

    /// The `k` most popular items without the sorted `exclude`.
    pub fn popular(&self, k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
        top_k(&self.popularity, k, |i| exclude.binary_search(&i).is_ok())
    }

    /// The `k` most popular items among those `skip` says no to.
    pub fn popular_where(&self, k: usize, skip: impl FnMut(u32) -> bool) -> Vec<(u32, f32)> {
        top_k(&self.popularity, k, skip)
    }

    /// The `k` items whose factors are most similar to `item`'s (cosine), itself excluded.
    pub fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        let f = &self.item_factors;
        let q = f.row(item as usize);
        let qn = self.item_norms[item as usize];
        let norms = &self.item_norms;
        top_k_scored(
            f.rows,
            k,
            |i| i == item,
            #[inline(always)]
            |i| {
                let d = qn * norms[i];
                if d > 0.0 { dot(f.row(i), q) / d } else { 0.0 }
            },
        )
    }

    /// Writes the version's files into `dir` (which must exist).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_factors(&dir.join("user_factors.qvf"), &self.user_factors)?;
        write_factors(&dir.join("item_factors.qvf"), &self.item_factors)?;
        write_factors(
            &dir.join("popularity.qvf"),
            &Factors {
                rows: self.popularity.len(),
                dim: 1,
                data: self.popularity.clone(),
            },
        )?;
        write_csr(&dir.join("seen.qvc"), &self.seen)?;
        write_ids(&dir.join("users.json"), self.users.ids())?;
        write_ids(&dir.join("items.json"), self.items.ids())?;
        if let Some(a) = &self.attributes {
            a.save(dir)?;
        }
        if let Some(c) = &self.content {
            c.save(dir)?;
        }
        let info = dir.join("recommender.json");
        std::fs::write(
            &info,
            serde_json::to_string_pretty(&self.info).expect("info serializes"),
        )
        .map_err(|e| Error::io("cannot write", &info, e))
    }

    /// Reads a version's files.
    pub fn load(dir: &Path) -> Result<RecModel> {
        let info_path = dir.join("recommender.json");
        let text = std::fs::read_to_string(&info_path)
            .map_err(|e| Error::io("cannot read", &info_path, e))?;
        let info: ModelInfo = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            path: info_path.clone(),
            message: e.to_string(),
        })?;
        let pop = read_factors(&dir.join("popularity.qvf"))?;
        let attributes = ItemAttributes::load(dir)?;
        let mut model = RecModel::new(
            info,
            IdMap::from_ids(read_ids(&dir.join("users.json"))?)?,
            IdMap::from_ids(read_ids(&dir.join("items.json"))?)?,
            read_factors(&dir.join("user_factors.qvf"))?,
            read_factors(&dir.join("item_factors.qvf"))?,
            read_csr(&dir.join("seen.qvc"))?,
            pop.data,
        )?;
        if let Some(a) = &attributes
            && a.items != model.items.len()
        {
            return Err(Error::Corrupt {
                path: dir.join(crate::attributes::FILE),
                message: format!(
                    "attributes of {} items for a model of {}",
                    a.items,
                    model.items.len()
                ),
            });
        }
        model.attributes = attributes;
        model.content = crate::content::ContentVectors::load(dir)?;
        Ok(model)
    }
}

/// The best `k` of `score(i)` over items `0..n` (best first, ties to the lower index), without
/// the items `skip` says yes to (exclusions and filters, applied before the cut). The scores are computed first into a per-thread buffer, in one loop
/// compiled for the CPU's vector instructions ([`vectorized`]), then cut by partial sort: fusing
/// scoring into the heap's loop keeps LLVM from vectorizing it (measured: 15 ms against 1.5 ms
/// for 100k items × 64 factors). `score` must be an `#[inline(always)]` closure, so that its
/// kernels compile with the vector instructions too (else: 16 ms again).
pub(crate) fn top_k_scored(
    n: usize,
    k: usize,
    skip: impl FnMut(u32) -> bool,
    score: impl Fn(usize) -> f32,
) -> Vec<(u32, f32)> {
    thread_local! {
        static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCORES.with_borrow_mut(|buf| {
        buf.clear();
        buf.resize(n, 0.0);
        vectorized(
            #[inline(always)]
            || {
                for (i, s) in buf.iter_mut().enumerate() {
                    *s = score(i);
                }
            },
        );
        top_k(buf, k, skip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> RecModel {
        let users = IdMap::from_ids(vec!["u1".into(), "u2".into()]).unwrap();
        let items = IdMap::from_ids(vec!["a".into(), "b".into(), "c".into()]).unwrap();
        let info = ModelInfo {
            format: 1,
            recommender: "r".into(),
            algorithm: "als".into(),
            factors: 2,
            regularization: 0.1,
            alpha: 1.0,
            iterations: 1,
            seed: 1,
            solver: "cg".into(),
            users: 2,
            items: 3,
            interactions: 2,
            as_of_us: None,
            min_interactions: 5,
            train_seconds: 0.0,
        };
        RecModel::new(
            info,
            users,
            items,
            Factors {
                rows: 2,
                dim: 2,
                data: vec![1.0, 0.0, 0.0, 1.0],
            },
            Factors {
                rows: 3,
                dim: 2,
                data: vec![3.0, 0.0, 2.0, 2.0, 0.0, 1.0],
            },
            Csr::from_triplets(2, 3, &[(0, 0, 1.0), (1, 2, 1.0)]),
            vec![1.0, 5.0, 3.0],
        )
        .unwrap()
    }

    #[test]
    fn recommend_exclude_popular_similar_and_round_trip() {
        let m = model();
        assert_eq!(m.recommend(0, 2, false), vec![(0, 3.0), (1, 2.0)]);
        assert_eq!(m.recommend(0, 2, true), vec![(1, 2.0), (2, 0.0)]);
        assert_eq!(m.popular(2, &[1]), vec![(2, 3.0), (0, 1.0)]);
        let s = m.similar_items(0, 2);
        assert_eq!(s[0].0, 1);
        assert!((s[0].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(
            m.user("nobody")
                .unwrap_err()
                .to_string()
                .contains("unknown user 'nobody'")
        );
        for bad in [0, -3, 10_001] {
            assert!(
                check_k(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("ask for 1 to 10000")
            );
        }
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = RecModel::load(dir.path()).unwrap();
        assert_eq!(back.info, m.info);
        assert_eq!(back.item_factors, m.item_factors);
        assert_eq!(back.seen, m.seen);
        assert_eq!(back.recommend(1, 3, true), m.recommend(1, 3, true));
    }
}
