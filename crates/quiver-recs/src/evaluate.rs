//! Evaluating a model on held-out interactions, against the popularity baseline on the same
//! users: [`crate::metrics`]' ranking metrics at k and beyond-accuracy measures for both.

use serde_json::{Value, json};

use crate::csr::Csr;
use crate::interactions::InteractionLog;
use crate::metrics::{
    BeyondAccuracy, RankingMetrics, beyond_accuracy, lists_for_test_users, ranking_metrics_at_k,
};
use crate::model::RecModel;

/// One recommender's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// precision, MAP, NDCG, AUC at k.
    pub ranking: RankingMetrics,
    /// Coverage, diversity, novelty.
    pub beyond: BeyondAccuracy,
}

/// A model's and the popularity baseline's scores on one test set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// List length.
    pub k: usize,
    /// The model's.
    pub model: Scores,
    /// Popularity's (the most popular items each user has not seen).
    pub baseline: Scores,
    /// Test rows whose user or item the model does not know (left out).
    pub unknown_rows: usize,
    /// Test rows kept.
    pub test_rows: usize,
}

/// The test interactions as a matrix over the model's users and items (value 1 per pair);
/// rows naming a user or item the model does not know are counted, not kept. With
/// `drop_seen`, pairs the user interacted with in training are left out too (they can never be
/// recommended) and counted as unknown.
pub fn test_matrix(
    model: &RecModel,
    test: &InteractionLog,
    drop_seen: bool,
) -> (Csr, usize, usize) {
    let users: Vec<Option<u32>> = test
        .users
        .ids()
        .iter()
        .map(|u| model.users.get(u))
        .collect();
    let items: Vec<Option<u32>> = test
        .items
        .ids()
        .iter()
        .map(|i| model.items.get(i))
        .collect();
    let mut triplets = Vec::with_capacity(test.rows.len());
    let mut unknown = 0;
    for r in &test.rows {
        match (users[r.user as usize], items[r.item as usize]) {
            (Some(u), Some(i)) if !(drop_seen && model.seen.contains(u as usize, i)) => {
                triplets.push((u, i, 1.0))
            }
            _ => unknown += 1,
        }
    }
    let kept = triplets.len();
    let mut m = Csr::from_triplets(model.users.len(), model.items.len(), &triplets);
    m.data.fill(1.0);
    (m, unknown, kept)
}

/// Scores `model` and the popularity baseline at `k` on the test rows (see [`test_matrix`]).
pub fn evaluate(model: &RecModel, test: &InteractionLog, k: usize, drop_seen: bool) -> Evaluation {
    let (m, unknown_rows, test_rows) = test_matrix(model, test, drop_seen);
    let (model_scores, baseline) = score_matrix(model, &m, k);
    Evaluation {
        k,
        model: model_scores,
        baseline,
        unknown_rows,
        test_rows,
    }
}

/// Scores `model` and the popularity baseline at `k` on a users × items `test` matrix.
pub fn score_matrix(model: &RecModel, test: &Csr, k: usize) -> (Scores, Scores) {
    let cf = lists_for_test_users(test, k, |u, k| {
        model
            .recommend(u, k, true)
            .into_iter()
            .map(|p| p.0)
            .collect()
    });
    let pop = lists_for_test_users(test, k, |u, k| {
        model
            .popular(k, model.seen.row(u as usize).0)
            .into_iter()
            .map(|p| p.0)
            .collect()
    });
    let score = |lists| Scores {
        ranking: ranking_metrics_at_k(lists, test, k),
        beyond: beyond_accuracy(lists, &model.seen, &model.item_factors),
    };
    (score(&cf), score(&pop))
}

fn scores_json(s: &Scores, k: usize) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(format!("precision@{k}"), json!(s.ranking.precision));
    m.insert(format!("map@{k}"), json!(s.ranking.map));
    m.insert(format!("ndcg@{k}"), json!(s.ranking.ndcg));
    m.insert(format!("auc@{k}"), json!(s.ranking.auc));
    m.insert("coverage".into(), json!(s.beyond.coverage));
    m.insert("diversity".into(), json!(s.beyond.diversity));
    m.insert("novelty".into(), json!(s.beyond.novelty));
    m.insert("users".into(), json!(s.ranking.users));
    m
}

impl Evaluation {
    /// `{"precision@10", "map@10", "ndcg@10", "auc@10", "coverage", "diversity", "novelty",
    /// "users", "k", "test_rows", "unknown_rows", "baseline": {...}}`.
    pub fn to_json(&self) -> Value {
        let mut m = scores_json(&self.model, self.k);
        m.insert("k".into(), json!(self.k));
        m.insert("test_rows".into(), json!(self.test_rows));
        m.insert("unknown_rows".into(), json!(self.unknown_rows));
        m.insert(
            "baseline".into(),
            Value::Object(scores_json(&self.baseline, self.k)),
        );
        Value::Object(m)
    }
}
