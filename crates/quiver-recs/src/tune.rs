//! A grid search over factors, regularization and alpha: each combination trained on the
//! training rows and scored on the validation rows (see [`crate::split`]), best first by
//! precision@k (then MAP@k).

use std::time::Instant;

use quiver_core::recommender::{AlgorithmSpec, Recommender};
use serde::Serialize;

use crate::evaluate::{Scores, evaluate};
use crate::interactions::{InteractionLog, aggregate};
use crate::train::{interaction_rule, train};
use crate::{Error, Result};

/// The values tried of each parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Factors.
    pub factors: Vec<u32>,
    /// Regularization.
    pub regularization: Vec<f64>,
    /// Alpha.
    pub alpha: Vec<f64>,
}

/// One combination's result.
#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    /// Factors.
    pub factors: u32,
    /// Regularization.
    pub regularization: f64,
    /// Alpha.
    pub alpha: f64,
    /// precision@k on validation.
    pub precision: f64,
    /// MAP@k.
    pub map: f64,
    /// NDCG@k.
    pub ndcg: f64,
    /// AUC@k.
    pub auc: f64,
    /// Seconds to train.
    pub seconds: f64,
}

impl Grid {
    /// Every combination, in order.
    pub fn combinations(&self) -> Vec<(u32, f64, f64)> {
        let mut out = Vec::new();
        for &f in &self.factors {
            for &r in &self.regularization {
                for &a in &self.alpha {
                    out.push((f, r, a));
                }
            }
        }
        out
    }
}

/// Trains every combination of `grid` on `train_log` and scores it at `k` on `valid_log`;
/// `on_done(i, n)` after each. Rows sorted best first.
#[allow(clippy::too_many_arguments)]
pub fn tune(
    rec: &Recommender,
    base: &AlgorithmSpec,
    train_log: &InteractionLog,
    valid_log: &InteractionLog,
    grid: &Grid,
    k: usize,
    as_of_us: Option<i64>,
    threads: usize,
    on_done: &mut dyn FnMut(usize, usize),
) -> Result<Vec<GridRow>> {
    let combos = grid.combinations();
    if combos.is_empty() || combos.len() > 1000 {
        return Err(Error::Invalid(format!(
            "the grid has {} combinations: give 1 to 1000",
            combos.len()
        )));
    }
    let data = aggregate(train_log, &interaction_rule(rec, as_of_us))?;
    let mut rows = Vec::new();
    for (n, &(factors, regularization, alpha)) in combos.iter().enumerate() {
        let spec = AlgorithmSpec {
            factors,
            regularization,
            alpha,
            ..base.clone()
        };
        spec.check()
            .map_err(|(f, m)| Error::Invalid(format!("grid {f}: {m}")))?;
        let start = Instant::now();
        let model = train(rec, &spec, train_log, data.clone(), threads, &mut |_| {})?;
        let seconds = start.elapsed().as_secs_f64();
        let e = evaluate(&model, valid_log, k, true);
        let Scores { ranking: r, .. } = e.model;
        rows.push(GridRow {
            factors,
            regularization,
            alpha,
            precision: r.precision,
            map: r.map,
            ndcg: r.ndcg,
            auc: r.auc,
            seconds,
        });
        on_done(n + 1, combos.len());
    }
    rows.sort_by(|a, b| {
        b.precision
            .total_cmp(&a.precision)
            .then(b.map.total_cmp(&a.map))
    });
    Ok(rows)
}
