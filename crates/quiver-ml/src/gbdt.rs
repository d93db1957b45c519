//! Histogram-based gradient-boosted trees, trained the way LightGBM trains them: quantile bins
//! per feature (NaN in a bin of its own), leaf-wise (best-first) growth up to `num_leaves`,
//! histogram subtraction, native missing-value and categorical splits, `boost_from_average`,
//! shrinkage, L1/L2 regularization, bagging, feature subsampling, class weights and early
//! stopping on a validation set. Trees come out in LightGBM's layout ([`Tree`]) with the initial
//! score folded into the first iteration's leaves.
//!
//! Training is deterministic: the same data, parameters and seed give the same trees whatever
//! the thread count (threads split features, never the rows a sum runs over).

mod binning;
mod histogram;
mod learner;
mod objective;
mod parallel;
mod params;
mod rng;
mod split;

use std::time::Instant;

pub use params::{ClassWeight, GbdtParams};

use crate::{Dataset, Error, Objective, Result, Tree, TreeEnsemble};
use binning::{BinIndex, BinnedData, Mapper};
use learner::Grower;
use objective::Targets;
use rng::Rng;
use split::SplitParams;

/// What happened in training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Iterations in the returned model: the best one on the validation set under early
    /// stopping, else every iteration trained.
    pub best_iteration: usize,
    /// After each iteration: the weighted mean training loss (binary / multiclass log loss, or
    /// mean squared error for regression).
    pub train_loss: Vec<f64>,
    /// After each iteration: the validation set's mean loss (empty without a validation set).
    pub valid_loss: Vec<f64>,
    /// Wall-clock training time, binning included.
    pub seconds: f64,
}

/// Trains a tree ensemble on `train` and labels `y` (binary: 0/1; multiclass: class index as
/// f64; regression: any finite value), with optional per-row `weights` and an optional
/// validation set for the loss report and early stopping.
pub fn train(
    objective: Objective,
    train: &Dataset,
    y: &[f64],
    weights: Option<&[f64]>,
    valid: Option<(&Dataset, &[f64])>,
    params: &GbdtParams,
) -> Result<(TreeEnsemble, TrainReport)> {
    let started = Instant::now();
    params.validate()?;
    check_objective(objective)?;
    check_dataset(train, "training set")?;
    check_labels(objective, y, train.n_rows(), "training", true)?;
    if let Some(w) = weights {
        check_weights(w, train.n_rows())?;
    }
    if let Some((v, vy)) = valid {
        check_dataset(v, "validation set")?;
        check_same_features(train, v)?;
        check_labels(objective, vy, v.n_rows(), "validation", false)?;
        for j in 0..v.n_features() {
            binning::check_value(v, j, "validation set ")?;
        }
    } else if params.early_stopping_rounds.is_some() {
        return Err(Error::Invalid(
            "early_stopping_rounds needs a validation set".into(),
        ));
    }
    let threads = match params.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    };
    let grad_w = gradient_weights(objective, y, weights, &params.class_weight)?;
    let mappers = binning::mappers(train, params.max_bin, threads, params.seed)?;
    let setup = Setup {
        objective,
        train,
        y,
        weights,
        grad_w: grad_w.as_deref(),
        valid,
        params,
        threads,
    };
    let widest = mappers.iter().map(Mapper::num_bins).max().unwrap_or(1);
    let (trees, mut report) = if widest <= u8::MAX_BINS {
        boost(&setup, BinnedData::<u8>::new(train, mappers, threads))
    } else {
        boost(&setup, BinnedData::<u16>::new(train, mappers, threads))
    };
    report.seconds = started.elapsed().as_secs_f64();
    let ensemble = TreeEnsemble {
        objective,
        feature_names: train.names.clone(),
        categorical: train.categorical.clone(),
        trees,
    };
    Ok((ensemble, report))
}

struct Setup<'a> {
    objective: Objective,
    train: &'a Dataset,
    y: &'a [f64],
    weights: Option<&'a [f64]>,
    grad_w: Option<&'a [f64]>,
    valid: Option<(&'a Dataset, &'a [f64])>,
    params: &'a GbdtParams,
    threads: usize,
}

fn boost<B: BinIndex>(s: &Setup, data: BinnedData<B>) -> (Vec<Tree>, TrainReport) {
    let p = s.params;
    let (n, nf) = (data.n_rows, data.n_features);
    let k = s.objective.num_outputs();
    let init = objective::init_scores(s.objective, s.y, s.grad_w);
    let targets = Targets {
        objective: s.objective,
        y: s.y,
        grad_w: s.grad_w,
        loss_w: s.weights,
    };
    let mut scores: Vec<Vec<f64>> = init.iter().map(|&v| vec![v; n]).collect();
    let mut gh = vec![vec![[0.0; 2]; n]; k];
    let mut quantized: Vec<[i64; 2]> = Vec::with_capacity(n);

    // Validation rows, row-major, scored tree by tree.
    let (vrows, vy) = match s.valid {
        Some((v, vy)) => {
            let mut rows = Vec::with_capacity(v.n_rows() * nf);
            let mut row = Vec::new();
            for i in 0..v.n_rows() {
                v.row(i, &mut row);
                rows.extend_from_slice(&row);
            }
            (rows, vy)
        }
        None => (Vec::new(), &[][..]),
    };
    let mut vscores = vec![vec![0.0; vy.len()]; k];
    let vtargets = Targets {
        objective: s.objective,
        y: vy,
        grad_w: None,
        loss_w: None,
    };

    let sp = SplitParams {
        l1: p.lambda_l1,
        l2: p.lambda_l2,
        min_data: p.min_data_in_leaf.max(1) as i64,
        min_hess: p.min_sum_hessian_in_leaf,
        min_gain: p.min_gain_to_split,
        max_cat_to_onehot: p.max_cat_to_onehot,
        cat_smooth: p.cat_smooth,
        cat_l2: p.cat_l2,
        max_cat_threshold: p.max_cat_threshold,
        min_data_per_group: p.min_data_per_group as i64,
    };
    let mut grower = Grower::new(&data, sp, p.num_leaves, p.max_depth, s.threads);
    let mut feature_rng = Rng::new(p.seed, 2);
    let mut bag_rng = Rng::new(p.seed, 3);
    let n_used = ((nf as f64 * p.feature_fraction).round() as usize).clamp(1, nf);
    let bagging = p.bagging_fraction < 1.0 && p.bagging_freq > 0;
    let (mut bag, mut oob): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());

    let mut trees: Vec<Tree> = Vec::new();
    let (mut train_loss, mut valid_loss) = (Vec::new(), Vec::new());
    let (mut best_iter, mut best_loss) = (0usize, f64::INFINITY);
    let mut iterations = 0;
    let mut row = Vec::new();
    for it in 0..p.num_trees {
        let loss = objective::evaluate(&targets, &scores, Some(&mut gh), s.threads);
        if it > 0 {
            train_loss.push(loss);
        }
        if bagging && it % p.bagging_freq == 0 {
            bag.clear();
            oob.clear();
            for r in 0..n as u32 {
                if bag_rng.next_f64() < p.bagging_fraction {
                    bag.push(r)
                } else {
                    oob.push(r)
                }
            }
            if bag.is_empty() {
                std::mem::swap(&mut bag, &mut oob);
            }
        }
        let features: Vec<usize> = if n_used < nf {
            feature_rng.sample_sorted(nf, n_used)
        } else {
            (0..nf).collect()
        };
        let mut new_trees = Vec::with_capacity(k);
        let mut any_split = false;
        for (j, score) in scores.iter_mut().enumerate() {
            let scale = histogram::quantize(&gh[j], n, &mut quantized);
            let mut tree = grower.grow(&quantized, scale, bagging.then_some(&bag[..]), &features);
            if tree.split_feature.is_empty() {
                // Nothing to learn for this output: a constant tree (as LightGBM does).
                tree.leaf_value = vec![0.0];
            } else {
                any_split = true;
                for (leaf, v) in tree.leaf_value.iter_mut().enumerate() {
                    *v *= p.learning_rate;
                    for &r in grower.leaf_rows(leaf) {
                        score[r as usize] += *v;
                    }
                }
                for &r in &oob {
                    s.train.row(r as usize, &mut row);
                    score[r as usize] += tree.predict(&row);
                }
            }
            if it == 0 {
                tree.leaf_value.iter_mut().for_each(|v| *v += init[j]);
            }
            new_trees.push(tree);
        }
        if !any_split && it > 0 {
            break;
        }
        iterations = it + 1;
        if !vy.is_empty() {
            for (tree, vs) in new_trees.iter().zip(vscores.iter_mut()) {
                for (r, v) in vs.iter_mut().enumerate() {
                    *v += tree.predict(&vrows[r * nf..(r + 1) * nf]);
                }
            }
            let vloss = objective::evaluate(&vtargets, &vscores, None, s.threads);
            valid_loss.push(vloss);
            if vloss < best_loss {
                best_loss = vloss;
                best_iter = it;
            }
        }
        trees.extend(new_trees);
        if !any_split {
            break;
        }
        if let Some(rounds) = p.early_stopping_rounds
            && it - best_iter >= rounds
        {
            break;
        }
    }
    if train_loss.len() < iterations {
        train_loss.push(objective::evaluate(&targets, &scores, None, s.threads));
    }
    let best_iteration = if p.early_stopping_rounds.is_some() {
        best_iter + 1
    } else {
        iterations
    };
    trees.truncate(best_iteration * k);
    (
        trees,
        TrainReport {
            best_iteration,
            train_loss,
            valid_loss,
            seconds: 0.0,
        },
    )
}

fn check_objective(objective: Objective) -> Result<()> {
    match objective {
        Objective::Binary { sigmoid } if !(sigmoid > 0.0 && sigmoid.is_finite()) => {
            Err(Error::Invalid(format!(
                "binary objective: sigmoid must be positive, got {sigmoid}"
            )))
        }
        Objective::Multiclass { num_class } if num_class < 2 => Err(Error::Invalid(format!(
            "multiclass objective: num_class must be at least 2, got {num_class}"
        ))),
        _ => Ok(()),
    }
}

fn check_dataset(ds: &Dataset, what: &str) -> Result<()> {
    if ds.n_features() == 0 {
        return Err(Error::Invalid(format!(
            "empty dataset: the {what} has no features"
        )));
    }
    let n = ds.n_rows();
    if n == 0 {
        return Err(Error::Invalid(format!(
            "empty dataset: the {what} has no rows"
        )));
    }
    if n > u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "the {what} has {n} rows, more than {}",
            u32::MAX
        )));
    }
    if ds.names.len() != ds.n_features() || ds.categorical.len() != ds.n_features() {
        return Err(Error::Invalid(format!(
            "the {what} has {} columns but {} names",
            ds.n_features(),
            ds.names.len()
        )));
    }
    for (name, col) in ds.names.iter().zip(&ds.columns) {
        if col.len() != n {
            return Err(Error::Invalid(format!(
                "{what}: feature '{name}' has {} values, expected {n} (one per row)",
                col.len()
            )));
        }
    }
    Ok(())
}

fn check_same_features(train: &Dataset, valid: &Dataset) -> Result<()> {
    if train.n_features() != valid.n_features() {
        return Err(Error::Invalid(format!(
            "validation set has {} features, the training set {}",
            valid.n_features(),
            train.n_features()
        )));
    }
    for j in 0..train.n_features() {
        if train.names[j] != valid.names[j] || train.categorical[j] != valid.categorical[j] {
            return Err(Error::Invalid(format!(
                "validation set feature {j} is '{}'{}, the training set's is '{}'{}",
                valid.names[j],
                if valid.categorical[j] {
                    " (categorical)"
                } else {
                    ""
                },
                train.names[j],
                if train.categorical[j] {
                    " (categorical)"
                } else {
                    ""
                },
            )));
        }
    }
    Ok(())
}

fn check_labels(
    objective: Objective,
    y: &[f64],
    n: usize,
    what: &str,
    need_two_classes: bool,
) -> Result<()> {
    if y.len() != n {
        return Err(Error::Invalid(format!(
            "{what} labels: expected {n} (one per row), got {}",
            y.len()
        )));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!(
            "{what} label at row {i} is {}",
            y[i]
        )));
    }
    let classes = match objective {
        Objective::Regression => return Ok(()),
        Objective::Binary { .. } => {
            if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
                return Err(Error::Invalid(format!(
                    "{what} label at row {i} is {}; binary labels must be 0 or 1",
                    y[i]
                )));
            }
            2
        }
        Objective::Multiclass { num_class } => {
            if let Some(i) = y
                .iter()
                .position(|&v| v < 0.0 || v.fract() != 0.0 || v >= num_class as f64)
            {
                return Err(Error::Invalid(format!(
                    "{what} label at row {i} is {}; multiclass labels must be integers in 0..{num_class}",
                    y[i]
                )));
            }
            num_class
        }
    };
    if need_two_classes && y.iter().all(|&v| v == y[0]) {
        return Err(Error::Invalid(format!(
            "{what} set has a single class (every label is {}); {} training needs at least two of its {classes} classes",
            y[0],
            if classes == 2 { "binary" } else { "multiclass" }
        )));
    }
    Ok(())
}

fn check_weights(w: &[f64], n: usize) -> Result<()> {
    if w.len() != n {
        return Err(Error::Invalid(format!(
            "weights: expected {n} (one per row), got {}",
            w.len()
        )));
    }
    if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(Error::Invalid(format!(
            "weight at row {i} is {}; weights must be finite and non-negative",
            w[i]
        )));
    }
    if w.iter().sum::<f64>() <= 0.0 {
        return Err(Error::Invalid("weights sum to zero".into()));
    }
    Ok(())
}

/// Per-row factors on gradients and hessians: sample weight times class weight.
fn gradient_weights(
    objective: Objective,
    y: &[f64],
    weights: Option<&[f64]>,
    class_weight: &ClassWeight,
) -> Result<Option<Vec<f64>>> {
    let classes = match objective {
        Objective::Binary { .. } => 2,
        Objective::Multiclass { num_class } => num_class,
        Objective::Regression => {
            if *class_weight != ClassWeight::None {
                return Err(Error::Invalid(
                    "parameter 'class_weight' applies to binary and multiclass objectives only"
                        .into(),
                ));
            }
            return Ok(weights.map(<[f64]>::to_vec));
        }
    };
    let per_class: Vec<f64> = match class_weight {
        ClassWeight::None => return Ok(weights.map(<[f64]>::to_vec)),
        ClassWeight::Balanced => {
            let mut counts = vec![0usize; classes];
            for &v in y {
                counts[v as usize] += 1;
            }
            counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        1.0
                    } else {
                        y.len() as f64 / (classes as f64 * c as f64)
                    }
                })
                .collect()
        }
        ClassWeight::Given(w) => {
            if w.len() != classes {
                return Err(Error::Invalid(format!(
                    "parameter 'class_weight' has {} weights, expected one per class ({classes})",
                    w.len()
                )));
            }
            w.clone()
        }
    };
    Ok(Some(
        y.iter()
            .enumerate()
            .map(|(i, &v)| per_class[v as usize] * weights.map_or(1.0, |w| w[i]))
            .collect(),
    ))
}
