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
//! Exclusions (the items the user interacted with, when `exclude_seen`) and filters on item
//! attributes ([`crate::attributes`]) are applied before the cut, so the answer always has `k`
//! items when the catalogue has that many matching ones.
//!
//! An A/B experiment's arm chooses the [`Policy`]: `blend` serves the above, `cf` serves CF to
//! every user with at least one interaction (no popularity blended in; popularity only for a
//! user with none, whom CF cannot score), `popularity` serves popularity to everyone.

use std::borrow::Cow;

use serde::Serialize;

use crate::als::Factors;
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

/// What a request is served: the recommender's policy, or an experiment arm's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// CF, the cold-start blend below `min_interactions`, popularity with no interactions (the
    /// `blend` arm, and every request outside an experiment).
    #[default]
    Served,
    /// CF for every user with interactions (the `cf` arm).
    Cf,
    /// Popularity for everyone (the `popularity` arm).
    Popularity,
}

impl Policy {
    /// The policy of an experiment arm (`cf`, `popularity`, `blend`; see
    /// `quiver_core::experiment::ARM_NAMES`).
    pub fn for_arm(arm: &str) -> Option<Policy> {
        match arm {
            "cf" => Some(Policy::Cf),
            "popularity" => Some(Policy::Popularity),
            "blend" => Some(Policy::Served),
            _ => None,
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
    /// The items a filter keeps, by index ([`Serving::filter_mask`]); `None`: every item.
    pub allowed: Option<&'a [bool]>,
    /// Which answer to give.
    pub policy: Policy,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `(item index, score)`, best first. An index past the model's items is a new item placed
    /// by content ([`Serving::item_id`], [`Serving::is_new_item`]); its score is a cosine.
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

/// A user's state, borrowed: their factors and the items of their training row (sorted
/// indices) with the weights.
#[derive(Debug, Clone, Copy)]
pub struct UserRef<'a> {
    /// The user's factors.
    pub factors: &'a [f32],
    /// Sorted item indices.
    pub items: &'a [u32],
    /// Each item's weight.
    pub weights: &'a [f32],
}

/// A version ready to serve: the model and what serving precomputes from it.
#[derive(Debug)]
pub struct Serving {
    /// The model.
    pub model: RecModel,
    /// The content vectors' index, when the version has them (`cold_start.content`).
    pub content: Option<crate::content::ContentIndex>,
    /// Content rows of the items the factors do not know (new items) that could be given
    /// factors, and those factors ([`Serving::new`]).
    new_items: Vec<u32>,
    new_factors: Factors,
    /// 1 / the largest popularity (0 when every item's popularity is 0).
    pop_scale: f32,
}

impl Serving {
    /// Prepares `model` for serving (building its content index: call it off the async
    /// threads).
    pub fn new(mut model: RecModel) -> Serving {
        let max = model.popularity.iter().copied().fold(0f32, f32::max);
        let content = model
            .content
            .take()
            .map(crate::content::ContentIndex::build);
        let (new_items, new_factors) = content
            .as_ref()
            .map(|c| impute_factors(c, &model))
            .unwrap_or_else(|| {
                (
                    Vec::new(),
                    Factors {
                        rows: 0,
                        dim: model.item_factors.dim,
                        data: Vec::new(),
                    },
                )
            });
        Serving {
            pop_scale: if max > 0.0 { 1.0 / max } else { 0.0 },
            content,
            new_items,
            new_factors,
            model,
        }
    }

    /// The id of an answer's item index (a trained item, or a new item placed by content).
    pub fn item_id(&self, i: u32) -> &str {
        let n = self.model.items.len();
        match (i as usize).checked_sub(n) {
            None => self.model.items.id(i),
            Some(j) => {
                let c = self.content.as_ref().expect("new items come with content");
                c.id(self.new_items[j])
            }
        }
    }

    /// Whether an answer's item index is a new item placed by content.
    pub fn is_new_item(&self, i: u32) -> bool {
        i as usize >= self.model.items.len()
    }

    /// Places new items (known by content only) into a CF or blended list: each new item's
    /// factors are the similarity-weighted mean of its nearest trained items' by content
    /// ([`impute_factors`]), so its score (`score(factors)`) is on the list's own scale; the
    /// two lists are merged by score and cut at `k`.
    fn place_new_items(
        &self,
        list: Vec<(u32, f32)>,
        k: usize,
        score: impl Fn(&[f32]) -> f32,
    ) -> Vec<(u32, f32)> {
        if self.new_items.is_empty() {
            return list;
        }
        let f = &self.new_factors;
        let best = top_k_scored(f.rows, k, |_| false, |j| score(f.row(j)));
        let n = self.model.items.len() as u32;
        let mut out: Vec<(u32, f32)> = list
            .into_iter()
            .chain(best.into_iter().map(|(j, s)| (n + j, s)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    /// The items `filter` keeps (`None` for no filter), from the version's item attributes;
    /// an error names the field at fault (`filter.colour: ...`), including every field of a
    /// version trained without `item_attributes:`.
    pub fn filter_mask(
        &self,
        filter: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<Vec<bool>>> {
        match (&self.model.attributes, filter.keys().next()) {
            (_, None) => Ok(None),
            (Some(a), Some(_)) => a.mask(filter),
            (None, Some(f)) => Err(Error::Invalid(format!(
                "filter.{f}: recommender '{}' version has no item attributes to filter on: declare `item_attributes: VIEW` (a view keyed by the item id) and train a new version",
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

    /// The user's state as the loaded version holds it (`None`: not trained on, or forgotten
    /// by [`Serving::forget_users`]).
    pub fn user_in_memory(&self, user: &str) -> Option<UserRef<'_>> {
        let m = &self.model;
        let u = m.users.get(user)? as usize;
        let (items, weights) = m.seen.row(u);
        Some(UserRef {
            factors: m.user_factors.row(u),
            items,
            weights,
        })
    }

    /// Drops the per-user state (factors, training rows, ids) once it is in the online store
    /// ([`crate::users::publish`]): the version then serves users only through
    /// [`Serving::recommend_for`] with rows read from there.
    pub fn forget_users(&mut self) {
        let m = &mut self.model;
        m.users = crate::interactions::IdMap::default();
        m.user_factors = Factors {
            rows: 0,
            dim: m.user_factors.dim,
            data: Vec::new(),
        };
        m.seen = crate::csr::Csr::from_triplets(0, m.items.len(), &[]);
    }

    /// What the user gets from the state the loaded version holds (see the module's
    /// documentation).
    pub fn recommend(&self, q: &Query<'_>) -> Result<Answer> {
        self.recommend_for(q, self.user_in_memory(q.user))
    }

    /// What the user gets, given their state (`None`: a user the model does not know): from
    /// the loaded version ([`Serving::user_in_memory`]) or from the online store
    /// ([`crate::users::read`]).
    pub fn recommend_for(&self, q: &Query<'_>, user: Option<UserRef<'_>>) -> Result<Answer> {
        let m = &self.model;
        let (row_items, row_weights): (&[u32], &[f32]) = match user {
            Some(u) => (u.items, u.weights),
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
        let allowed = q.allowed;
        let skip =
            |i: u32| exclude.binary_search(&i).is_ok() || allowed.is_some_and(|a| !a[i as usize]);
        let answer = |items, source| Answer {
            items,
            source,
            known_user: user.is_some(),
            folded_in,
            interactions: n,
        };
        if n == 0 || q.policy == Policy::Popularity {
            return Ok(answer(m.popular_where(q.k, skip), Source::Popularity));
        }
        let x: Cow<[f32]> = match user {
            Some(u) if !folded_in => Cow::Borrowed(u.factors),
            _ => {
                let pairs: Vec<(u32, f32)> =
                    items.iter().copied().zip(weights.iter().copied()).collect();
                Cow::Owned(m.fold_in(&pairs)?)
            }
        };
        let min = m.info.min_interactions as usize;
        // New items have no attributes to filter on: a filtered list holds none.
        let filtered = allowed.is_some();
        if n >= min || q.policy == Policy::Cf {
            let mut list = m.recommend_factors_where(&x, q.k, skip);
            if !filtered {
                list = self.place_new_items(list, q.k, |y| dot(y, &x));
            }
            return Ok(answer(list, Source::Cf));
        }
        let w = n as f32 / min as f32;
        let mut list = self.blend(&x, w, q.k, skip);
        if !filtered {
            // A new item's popularity is 0.
            list = self.place_new_items(list, q.k, |y| w * dot(y, &x));
        }
        Ok(answer(list, Source::Blend))
    }

    /// The best `k` by `w · (x · item) + (1 − w) · popularity / max popularity`.
    fn blend(&self, x: &[f32], w: f32, k: usize, skip: impl FnMut(u32) -> bool) -> Vec<(u32, f32)> {
        let p = (1.0 - w) * self.pop_scale;
        self.model.blend_where(x, w, p, k, skip)
    }

    /// The `k` items most similar to the item `id` by the cosine of their factors.
    pub fn similar_items(&self, id: &str, k: usize) -> Result<Vec<(u32, f32)>> {
        let i = self.model.item(id)?;
        Ok(self.model.similar_items(i, k))
    }

    /// The `k` items most similar to item `id` by content (the cosine of their content
    /// vectors, from the HNSW index), best first: `(id, cosine)`. Every item of the content
    /// view counts, including items the factors do not know yet. `None` when the version has
    /// no content vectors.
    pub fn similar_by_content(&self, id: &str, k: usize) -> Option<Result<Vec<(String, f32)>>> {
        let c = self.content.as_ref()?;
        Some(c.similar(id, k).map(|found| {
            found
                .into_iter()
                .map(|(i, s)| (c.id(i).to_string(), s))
                .collect()
        }))
    }
}

/// Neighbours a new item's factors are imputed from.
const NEIGHBOURS: usize = 10;

/// Factors for the items the content vectors know and the model does not: the mean of the
/// factors of each one's nearest trained items by content (at most [`NEIGHBOURS`], weighted by
/// their cosine, positive ones only), the usual item-based imputation for cold items, scaled to
/// the neighbours' mean length. Items with no such neighbour stay out. Returns their content
/// rows and factors.
fn impute_factors(c: &crate::content::ContentIndex, model: &RecModel) -> (Vec<u32>, Factors) {
    let dim = model.item_factors.dim;
    let mut rows = Vec::new();
    let mut data = Vec::new();
    for (row, id) in c.vectors.ids.ids().iter().enumerate() {
        if model.items.get(id).is_some() {
            continue;
        }
        let mut y = vec![0f32; dim];
        let (mut total, mut norms) = (0f32, 0f32);
        let mut used = 0;
        for (near, cos) in c.similar_rows(row as u32, 4 * NEIGHBOURS) {
            let Some(i) = model.items.get(c.id(near)) else {
                continue;
            };
            if cos <= 0.0 {
                break;
            }
            let yi = model.item_factors.row(i as usize);
            crate::kernels::axpy(cos, yi, &mut y);
            total += cos;
            norms += cos * dot(yi, yi).sqrt();
            used += 1;
            if used == NEIGHBOURS {
                break;
            }
        }
        let norm = dot(&y, &y).sqrt();
        if used > 0 && norm > 0.0 {
            // The mean's direction at the neighbours' mean length: a plain mean is shorter than
            // any of them, and would never reach a list.
            let scale = norms / total / norm;
            y.iter_mut().for_each(|v| *v *= scale);
            rows.push(row as u32);
            data.extend(y);
        }
    }
    let n = rows.len();
    (rows, Factors { rows: n, dim, data })
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
            allowed: None,
            policy: Policy::Served,
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
        let filter = |v: serde_json::Value| v.as_object().unwrap().clone();
        let e = s
            .filter_mask(&filter(serde_json::json!({"category": "shoes"})))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("filter.category: recommender 'r' version has no item attributes"),
            "{e}"
        );
        assert_eq!(s.filter_mask(&filter(serde_json::json!({}))).unwrap(), None);
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

    #[test]
    fn arms_choose_the_answer_and_filters_cut_before_k() {
        let mut s = serving();
        // u2 has 1 interaction (< min 2): the served policy blends; the cf arm serves CF.
        let base = q("u2", &[]);
        assert_eq!(s.recommend(&base).unwrap().source, Source::Blend);
        let cf = s
            .recommend(&Query {
                policy: Policy::Cf,
                ..base
            })
            .unwrap();
        assert_eq!(
            (cf.source, cf.items.clone()),
            (Source::Cf, vec![(3, 0.5), (1, 0.1)])
        );
        // The popularity arm: popularity without the user's items, even for a CF user.
        let pop = s
            .recommend(&Query {
                policy: Policy::Popularity,
                ..q("u1", &[])
            })
            .unwrap();
        assert_eq!(
            (pop.source, pop.items),
            (Source::Popularity, vec![(3, 8.0), (2, 2.0)])
        );
        // The cf arm cannot score a user with no interactions: popularity, said so.
        let new = s
            .recommend(&Query {
                policy: Policy::Cf,
                ..q("new", &[])
            })
            .unwrap();
        assert_eq!(new.source, Source::Popularity);
        assert_eq!(Policy::for_arm("blend"), Some(Policy::Served));
        assert_eq!(Policy::for_arm("content"), None);

        // A filter applies before the cut: u1's unseen items are c and d; without d only c is
        // left, for every policy.
        s.model.attributes = Some(crate::attributes::ItemAttributes {
            view: "products".into(),
            items: 4,
            items_with_values: 4,
            columns: vec![crate::attributes::Column {
                name: "category".into(),
                values: crate::attributes::Values::Text(
                    ["shoes", "shoes", "shoes", "books"]
                        .map(|c| Some(c.to_string()))
                        .to_vec(),
                ),
            }],
            skipped: vec![],
        });
        let mask = s
            .filter_mask(
                serde_json::json!({"category": "shoes"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap()
            .unwrap();
        for policy in [Policy::Served, Policy::Cf, Policy::Popularity] {
            let a = s
                .recommend(&Query {
                    allowed: Some(&mask),
                    policy,
                    ..q("u1", &[])
                })
                .unwrap();
            assert_eq!(a.items.len(), 1, "{policy:?}");
            assert_eq!(a.items[0].0, 2, "{policy:?}");
        }
        let e = s
            .filter_mask(serde_json::json!({"colour": "red"}).as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("filter.colour: view 'products' has no attribute"),
            "{e}"
        );
    }

    /// Users' rows through the online store answer as the loaded version does; a stale or
    /// missing row is a user the model does not know; a row that does not fit is an error.
    #[tokio::test]
    async fn rows_in_the_online_store_answer_as_memory_does() {
        use crate::users::{publish, read};
        use quiver_online::{EntityKey, KeyValue, OnlineRow, OnlineStore, Value, ViewWrite};
        let d = tempfile::tempdir().unwrap();
        let store = quiver_online::embedded::EmbeddedStore::open(&d.path().join("online")).unwrap();
        let mut s = serving();
        let (ttl, t0) = (3_600_000_000i64, 1_700_000_000_000_000i64);
        let mut calls = Vec::new();
        let n = publish(&store, &s.model, 7, ttl, t0, |done, total| {
            calls.push((done, total))
        })
        .await
        .unwrap();
        assert_eq!((n, calls), (2, vec![(2, 2)]));
        let memory: Vec<Answer> = ["u1", "u2", "new"]
            .iter()
            .map(|u| s.recommend(&q(u, &[])).unwrap())
            .collect();
        let folded = s.recommend(&q("u2", &["d".to_string()])).unwrap();
        s.forget_users();
        assert!(s.user_in_memory("u1").is_none());
        let users = ["u1", "u2", "new"];
        let rows = read(&store, &s.model, 7, &users, ttl, t0 + 10)
            .await
            .unwrap();
        assert!(rows[2].is_none());
        assert_eq!(rows[0].as_ref().unwrap().items, vec![0, 1]);
        for (i, u) in users.iter().enumerate() {
            let a = s
                .recommend_for(&q(u, &[]), rows[i].as_ref().map(|r| r.as_user()))
                .unwrap();
            assert_eq!(a, memory[i], "{u}");
        }
        let a = s
            .recommend_for(
                &q("u2", &["d".to_string()]),
                rows[1].as_ref().map(|r| r.as_user()),
            )
            .unwrap();
        assert_eq!(a, folded);
        // Another version's view holds nothing; a row older than the TTL counts as none.
        assert!(read(&store, &s.model, 8, &["u1"], ttl, t0).await.unwrap()[0].is_none());
        let late = read(&store, &s.model, 7, &["u1"], ttl, t0 + ttl + 1)
            .await
            .unwrap();
        assert!(late[0].is_none());
        assert_eq!(
            s.recommend_for(&q("u1", &[]), None).unwrap().source,
            Source::Popularity
        );
        // A row of the wrong size names the view and the user.
        let features = crate::users::FEATURES.map(String::from).to_vec();
        let view = crate::users::view_name("r", 7);
        store
            .write_batch(
                &ViewWrite {
                    view: &view,
                    features: &features,
                    ttl_us: Some(ttl),
                },
                &[OnlineRow {
                    key: EntityKey::new(&[KeyValue::Str("u1".into())]),
                    event_ts: t0 + 5,
                    values: vec![
                        Value::Float32List(vec![1.0, 2.0, 3.0]),
                        Value::Int64List(vec![0]),
                        Value::Float32List(vec![1.0]),
                    ],
                }],
            )
            .await
            .unwrap();
        let e = read(&store, &s.model, 7, &["u1"], ttl, t0 + 10)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("view 'recs.r.v7'")
                && e.contains("user 'u1': 3 factors where the version has 2"),
            "{e}"
        );
    }
}
