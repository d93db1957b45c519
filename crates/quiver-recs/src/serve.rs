//! Answering a recommendation request from a loaded version: the one place that decides what a
//! user gets, so that `POST /recommend` (and anything else serving recommendations) only wires
//! it.
//!
//! - A user the model knows, with at least `min_interactions` distinct interacted items, gets
//!   collaborative filtering: their factors against every item's, the best `k` by partial sort
//!   (source `cf`).
//! - A user with no interactions at all (unknown to the model and none in the request) gets
//!   time-decayed popularity (source `popularity`).
//! - A user with fewer than `min_interactions` gets a linear blend (source `blend`): with `n`
//!   interactions and `w = n / min_interactions`, each item scores
//!   `w · cf + (1 − w) · popularity / max popularity`. ALS for implicit feedback predicts
//!   preferences on a 0–1 scale, and popularity is scaled to 0–1 here, so the two add up; at
//!   `n = 0` this is popularity, at `n = min_interactions` it is CF.
//! - A user unknown to the model but with interactions in the request (`interactions`: item
//!   ids, weight 1 each) is folded in (`implicit`'s `recalculate_user`, [`RecModel::fold_in`]);
//!   so is a known user whose request names items beyond their training row (their training
//!   weights plus 1 for each new item).
//!
//! Exclusions (the items the user interacted with, when `exclude_seen`) are applied before the
//! cut, so the answer always has `k` items when the catalogue has them.

use std::borrow::Cow;

use serde::Serialize;

use crate::kernels::dot;
use crate::model::{RecModel, top_k_scored};
use crate::{Error, Result};

/// The most items one served request may ask for.
pub const MAX_SERVE_K: usize = 1000;

/// Checks a served list length: 1 to [`MAX_SERVE_K`].
pub fn check_serve_k(k: i64) -> Result<usize> {
    if k <= 0 || k as usize > MAX_SERVE_K {
        return Err(Error::Invalid(format!(
            "k = {k}: ask for 1 to {MAX_SERVE_K} items"
        )));
    }
    Ok(k as usize)
}

/// Where an answer's scores come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The user's factors against the items' (collaborative filtering).
    Cf,
    /// Time-decayed popularity (no interactions known).
    Popularity,
    /// CF and popularity blended (fewer interactions than `min_interactions`).
    Blend,
}

impl Source {
    /// Every source, for metric labels.
    pub const ALL: [Source; 3] = [Source::Cf, Source::Popularity, Source::Blend];

    /// The label: `cf`, `popularity`, `blend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cf => "cf",
            Source::Popularity => "popularity",
            Source::Blend => "blend",
        }
    }
}

/// One recommendation request.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The user id.
    pub user: &'a str,
    /// Item ids the user interacted with beyond what the model was trained on.
    pub interactions: &'a [String],
    /// How many items (checked with [`check_serve_k`]).
    pub k: usize,
    /// Leave out the items the user interacted with.
    pub exclude_seen: bool,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `(item index, score)`, best first.
    pub items: Vec<(u32, f32)>,
    /// Where the scores come from.
    pub source: Source,
    /// Whether the model was trained on this user.
    pub known_user: bool,
    /// Whether the user's factors were solved for this request (fold-in).
    pub folded_in: bool,
    /// Distinct items the user interacted with (training row and request).
    pub interactions: usize,
}

/// A version ready to serve: the model and what serving precomputes from it.
#[derive(Debug)]
pub struct Serving {
    /// The model.
    pub model: RecModel,
    /// 1 / the largest popularity (0 when every item's popularity is 0).
    pop_scale: f32,
}

impl Serving {
    /// Prepares `model` for serving.
    pub fn new(model: RecModel) -> Serving {
        let max = model.popularity.iter().copied().fold(0f32, f32::max);
        Serving {
            pop_scale: if max > 0.0 { 1.0 / max } else { 0.0 },
            model,
        }
    }

    /// Refuses a filter: a recommender declares no item attributes yet, so any field named in
    /// `filter` is one it cannot filter on.
    pub fn check_filter<'a>(&self, mut fields: impl Iterator<Item = &'a str>) -> Result<()> {
        match fields.next() {
            None => Ok(()),
            Some(f) => Err(Error::Invalid(format!(
                "filter.{f}: recommender '{}' declares no item attributes to filter on",
                self.model.info.recommender
            ))),
        }
    }

    /// The items' indices of `ids`, or an error naming the first unknown one (as
    /// `interactions[i]`).
    fn item_indices(&self, ids: &[String]) -> Result<Vec<u32>> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                self.model.items.get(id).ok_or_else(|| {
                    Error::Invalid(format!(
                        "interactions[{i}]: unknown item '{id}': recommender '{}' was trained on {} items",
                        self.model.info.recommender,
                        self.model.items.len()
                    ))
                })
            })
            .collect()
    }

    /// What the user gets (see the module's documentation).
    pub fn recommend(&self, q: &Query<'_>) -> Result<Answer> {
        let m = &self.model;
        let known = m.users.get(q.user);
        let (row_items, row_weights): (&[u32], &[f32]) = match known {
            Some(u) => m.seen.row(u as usize),
            None => (&[], &[]),
        };
        let mut extra = self.item_indices(q.interactions)?;
        extra.sort_unstable();
        extra.dedup();
        extra.retain(|i| row_items.binary_search(i).is_err());
        let folded_in = !extra.is_empty();
        // Every item the user interacted with, sorted, and its weight.
        let (items, weights): (Cow<[u32]>, Cow<[f32]>) = if folded_in {
            let mut pairs: Vec<(u32, f32)> = row_items
                .iter()
                .copied()
                .zip(row_weights.iter().copied())
                .chain(extra.iter().map(|&i| (i, 1.0)))
                .collect();
            pairs.sort_unstable_by_key(|p| p.0);
            let (i, w) = pairs.into_iter().unzip();
            (Cow::Owned(i), Cow::Owned(w))
        } else {
            (Cow::Borrowed(row_items), Cow::Borrowed(row_weights))
        };
        let n = items.len();
        let exclude: &[u32] = if q.exclude_seen { &items } else { &[] };
        let answer = |items, source| Answer {
            items,
            source,
            known_user: known.is_some(),
            folded_in,
            interactions: n,
        };
        if n == 0 {
            return Ok(answer(m.popular(q.k, exclude), Source::Popularity));
        }
        let x: Cow<[f32]> = match known {
            Some(u) if !folded_in => Cow::Borrowed(m.user_factors.row(u as usize)),
            _ => {
                let pairs: Vec<(u32, f32)> =
                    items.iter().copied().zip(weights.iter().copied()).collect();
                Cow::Owned(m.fold_in(&pairs)?)
            }
        };
        let min = m.info.min_interactions as usize;
        if n >= min {
            return Ok(answer(m.recommend_factors(&x, q.k, exclude), Source::Cf));
        }
        let w = n as f32 / min as f32;
        Ok(answer(self.blend(&x, w, q.k, exclude), Source::Blend))
    }

    /// The best `k` by `w · (x · item) + (1 − w) · popularity / max popularity`.
    fn blend(&self, x: &[f32], w: f32, k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
        let f = &self.model.item_factors;
        let pop = &self.model.popularity;
        let p = (1.0 - w) * self.pop_scale;
        top_k_scored(
            f.rows,
            k,
            exclude,
            #[inline(always)]
            |i| w * dot(f.row(i), x) + p * pop[i],
        )
    }

    /// The `k` items most similar to the item `id` by the cosine of their factors.
    pub fn similar_items(&self, id: &str, k: usize) -> Result<Vec<(u32, f32)>> {
        let i = self.model.item(id)?;
        Ok(self.model.similar_items(i, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::als::Factors;
    use crate::csr::Csr;
    use crate::interactions::IdMap;
    use crate::model::ModelInfo;

    /// Two users over four items; u1 has seen items a and b, u2 only c; min_interactions 2.
    fn serving() -> Serving {
        let ids = |v: &[&str]| IdMap::from_ids(v.iter().map(|s| s.to_string()).collect()).unwrap();
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
            items: 4,
            interactions: 3,
            as_of_us: None,
            min_interactions: 2,
            train_seconds: 0.0,
        };
        let model = RecModel::new(
            info,
            ids(&["u1", "u2"]),
            ids(&["a", "b", "c", "d"]),
            Factors {
                rows: 2,
                dim: 2,
                data: vec![1.0, 0.0, 0.0, 1.0],
            },
            Factors {
                rows: 4,
                dim: 2,
                data: vec![1.0, 0.0, 0.8, 0.1, 0.0, 1.0, 0.5, 0.5],
            },
            Csr::from_triplets(2, 4, &[(0, 0, 1.0), (0, 1, 1.0), (1, 2, 1.0)]),
            vec![4.0, 1.0, 2.0, 8.0],
        )
        .unwrap();
        Serving::new(model)
    }

    fn q<'a>(user: &'a str, interactions: &'a [String]) -> Query<'a> {
        Query {
            user,
            interactions,
            k: 2,
            exclude_seen: true,
        }
    }

    #[test]
    fn sources_by_interactions() {
        let s = serving();
        // Known with 2 >= min: CF without seen items.
        let a = s.recommend(&q("u1", &[])).unwrap();
        assert_eq!(
            (a.source, a.known_user, a.folded_in),
            (Source::Cf, true, false)
        );
        assert_eq!(a.items, vec![(3, 0.5), (2, 0.0)]);
        // Unknown, nothing: popularity.
        let a = s.recommend(&q("new", &[])).unwrap();
        assert_eq!(a.source, Source::Popularity);
        assert_eq!(a.items, vec![(3, 8.0), (0, 4.0)]);
        // Known with 1 < min: blend with w = 1/2 of its factors (0, 1) and popularity / 8.
        let a = s.recommend(&q("u2", &[])).unwrap();
        assert_eq!(a.source, Source::Blend);
        assert_eq!(a.items[0].0, 3);
        assert!((a.items[0].1 - (0.5 * 0.5 + 0.5 * 1.0)).abs() < 1e-6);
        assert_eq!(a.items[1], (0, 0.25));
        // Unknown with request interactions: folded in, equal to the model's fold-in.
        let two = ["a".to_string(), "b".to_string()];
        let a = s.recommend(&q("new", &two)).unwrap();
        assert_eq!(
            (a.source, a.folded_in, a.interactions),
            (Source::Cf, true, 2)
        );
        let x = s.model.fold_in(&[(0, 1.0), (1, 1.0)]).unwrap();
        assert_eq!(a.items, s.model.recommend_factors(&x, 2, &[0, 1]));
        // Not excluding seen items.
        let all = s
            .recommend(&Query {
                exclude_seen: false,
                ..q("u1", &[])
            })
            .unwrap();
        assert_eq!(all.items[0], (0, 1.0));
    }

    #[test]
    fn bad_input_names_the_field() {
        let s = serving();
        let bad = ["a".to_string(), "zz".to_string()];
        let e = s.recommend(&q("u1", &bad)).unwrap_err().to_string();
        assert!(e.contains("interactions[1]: unknown item 'zz'"), "{e}");
        let e = s.check_filter(["category"].into_iter()).unwrap_err();
        assert!(e.to_string().starts_with("filter.category: "), "{e}");
        assert!(s.check_filter(std::iter::empty()).is_ok());
        for k in [0, -1, 1001] {
            assert!(
                check_serve_k(k)
                    .unwrap_err()
                    .to_string()
                    .contains("ask for 1 to 1000")
            );
        }
        assert!(s.similar_items("nope", 3).is_err());
        assert_eq!(s.similar_items("a", 1).unwrap()[0].0, 1);
    }
}
