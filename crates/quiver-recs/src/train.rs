//! One training run: a recommender's declaration (with `--params` overrides) and its
//! interaction rows in, a [`RecModel`] out. Registering it is [`crate::registry`]'s.

use std::time::Instant;

use quiver_core::recommender::{AlgorithmSpec, AlsSolver, Recommender};

use crate::als::{AlsParams, Solver, fit};
use crate::interactions::{InteractionLog, Interactions, WeightRule, aggregate};
use crate::model::{ModelInfo, RecModel};
use crate::popularity::popularity;
use crate::{Error, Result};

/// The algorithm of a declaration with `key=value` overrides (`factors`, `regularization`,
/// `alpha`, `iterations`, `seed`, `solver`, `cg_steps`), checked.
pub fn with_params(spec: &AlgorithmSpec, params: &[(String, String)]) -> Result<AlgorithmSpec> {
    let mut a = spec.clone();
    for (k, v) in params {
        let num = |what: &str| -> Result<f64> {
            v.parse::<f64>()
                .map_err(|_| Error::Invalid(format!("--params {k}={v}: {what} must be a number")))
        };
        let int = |what: &str| -> Result<u64> {
            v.parse::<u64>().map_err(|_| {
                Error::Invalid(format!(
                    "--params {k}={v}: {what} must be a whole number >= 0"
                ))
            })
        };
        match k.as_str() {
            "factors" => a.factors = int("factors")?.min(u64::from(u32::MAX)) as u32,
            "regularization" => a.regularization = num("regularization")?,
            "alpha" => a.alpha = num("alpha")?,
            "iterations" => a.iterations = int("iterations")?.min(u64::from(u32::MAX)) as u32,
            "seed" => a.seed = int("seed")?,
            "cg_steps" => a.cg_steps = int("cg_steps")?.min(u64::from(u32::MAX)) as u32,
            "solver" => {
                a.solver = match v.as_str() {
                    "cg" => AlsSolver::Cg,
                    "cholesky" => AlsSolver::Cholesky,
                    _ => {
                        return Err(Error::Invalid(format!(
                            "--params solver={v}: use cg or cholesky"
                        )));
                    }
                }
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "--params {k}: unknown parameter; use factors, regularization, alpha, iterations, seed, solver, cg_steps"
                )));
            }
        }
    }
    a.check()
        .map_err(|(f, m)| Error::Invalid(format!("--params {f}: {m}")))?;
    Ok(a)
}

/// ALS parameters of an algorithm spec.
pub fn als_params(a: &AlgorithmSpec, threads: usize) -> AlsParams {
    AlsParams {
        factors: a.factors as usize,
        regularization: a.regularization as f32,
        alpha: a.alpha as f32,
        iterations: a.iterations,
        seed: a.seed,
        solver: match a.solver {
            AlsSolver::Cg => Solver::Cg(a.cg_steps),
            AlsSolver::Cholesky => Solver::Cholesky,
        },
        threads,
        calculate_training_loss: false,
    }
}

/// The time rules of the interactions as of `as_of_us`.
pub fn interaction_rule(rec: &Recommender, as_of_us: Option<i64>) -> WeightRule {
    let i = &rec.interactions;
    WeightRule {
        as_of_us,
        half_life_us: i.half_life.map(|d| d.micros()),
        window_us: i.window.map(|d| d.micros()),
        min_user_interactions: i.min_user_interactions,
    }
}

/// The time rules of popularity: `cold_start.popularity`'s, else the interactions'.
pub fn popularity_rule(rec: &Recommender, as_of_us: Option<i64>) -> WeightRule {
    let base = interaction_rule(rec, as_of_us);
    let p = rec.cold_start.as_ref().map(|c| &c.popularity);
    WeightRule {
        half_life_us: p
            .and_then(|p| p.half_life)
            .map(|d| d.micros())
            .or(base.half_life_us),
        window_us: p
            .and_then(|p| p.window)
            .map(|d| d.micros())
            .or(base.window_us),
        ..base
    }
}

/// Trains on aggregated interactions; `on_iteration(i)` after each ALS iteration.
pub fn train(
    rec: &Recommender,
    algorithm: &AlgorithmSpec,
    log: &InteractionLog,
    data: Interactions,
    threads: usize,
    on_iteration: &mut (dyn FnMut(u32) + Send),
) -> Result<RecModel> {
    let params = als_params(algorithm, threads);
    let start = Instant::now();
    let f = fit(&data.matrix, &params, &mut |i, _| on_iteration(i))?;
    let train_seconds = start.elapsed().as_secs_f64();
    let pop = popularity(log, &data.items, &popularity_rule(rec, data.as_of_us));
    let info = ModelInfo {
        format: 1,
        recommender: rec.name.clone(),
        algorithm: "als".into(),
        factors: params.factors,
        regularization: params.regularization,
        alpha: params.alpha,
        iterations: params.iterations,
        seed: params.seed,
        solver: match algorithm.solver {
            AlsSolver::Cg => "cg".into(),
            AlsSolver::Cholesky => "cholesky".into(),
        },
        users: data.users.len(),
        items: data.items.len(),
        interactions: data.matrix.nnz(),
        as_of_us: data.as_of_us,
        min_interactions: rec.cold_start.as_ref().map_or(5, |c| c.min_interactions),
        train_seconds,
    };
    RecModel::new(
        info,
        data.users,
        data.items,
        f.users,
        f.items,
        data.matrix,
        pop,
    )
}

/// [`aggregate`] with the declaration's rules, then [`train`].
pub fn train_on_log(
    rec: &Recommender,
    algorithm: &AlgorithmSpec,
    log: &InteractionLog,
    as_of_us: Option<i64>,
    threads: usize,
    on_iteration: &mut (dyn FnMut(u32) + Send),
) -> Result<RecModel> {
    let data = aggregate(log, &interaction_rule(rec, as_of_us))?;
    train(rec, algorithm, log, data, threads, on_iteration)
}
