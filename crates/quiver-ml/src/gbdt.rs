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
    train_with_scores(objective, train, y, weights, valid, params).map(|(m, r, _)| (m, r))
}

/// [`train`], also returning the raw training scores it tracked (per output, per row).
fn train_with_scores(
    objective: Objective,
    train: &Dataset,
    y: &[f64],
    weights: Option<&[f64]>,
    valid: Option<(&Dataset, &[f64])>,
    params: &GbdtParams,
) -> Result<(TreeEnsemble, TrainReport, Vec<Vec<f64>>)> {
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
    let (trees, mut report, scores) = if widest <= u8::MAX_BINS {
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
    Ok((ensemble, report, scores))
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

fn boost<B: BinIndex>(s: &Setup, data: BinnedData<B>) -> (Vec<Tree>, TrainReport, Vec<Vec<f64>>) {
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
            let scale = histogram::quantize(&gh[j], n, &mut quantized, s.threads);
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
        scores,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded standard normal sample (Box-Muller).
    fn normal(rng: &mut Rng) -> f64 {
        let u = rng.next_f64().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.next_f64()).cos()
    }

    fn numeric(cols: Vec<Vec<f64>>) -> Dataset {
        let f = cols.len();
        Dataset::new(
            (0..f).map(|j| format!("x{j}")).collect(),
            vec![false; f],
            cols,
        )
    }

    /// `n` rows of `f` standard normal features.
    fn features(rng: &mut Rng, n: usize, f: usize) -> Vec<Vec<f64>> {
        (0..f)
            .map(|_| (0..n).map(|_| normal(rng)).collect())
            .collect()
    }

    fn sigmoid(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    fn predictions(model: &TreeEnsemble, ds: &Dataset) -> Vec<Vec<f64>> {
        let mut row = Vec::new();
        (0..ds.n_rows())
            .map(|i| {
                ds.row(i, &mut row);
                model.predict(&row)
            })
            .collect()
    }

    /// ROC-AUC, ties sharing their average rank.
    fn auc(scores: &[f64], y: &[f64]) -> f64 {
        crate::metrics::roc_auc(y, scores, None).expect("two classes")
    }

    fn small_params() -> GbdtParams {
        GbdtParams {
            num_trees: 40,
            num_leaves: 15,
            threads: 2,
            seed: 7,
            ..GbdtParams::default()
        }
    }

    const BINARY: Objective = Objective::Binary { sigmoid: 1.0 };

    /// A learnable binary problem: labels drawn from a known logit of 6 features.
    fn binary_problem(seed: u64, n: usize) -> (Dataset, Vec<f64>) {
        let mut rng = Rng::new(seed, 0);
        let cols = features(&mut rng, n, 6);
        let y = (0..n)
            .map(|i| {
                let z = 2.0 * cols[0][i] - 1.5 * cols[1][i]
                    + 1.5 * cols[2][i] * cols[3][i]
                    + (2.0 * cols[4][i]).sin();
                f64::from(rng.next_f64() < sigmoid(z))
            })
            .collect();
        (numeric(cols), y)
    }

    #[test]
    fn binary_reaches_test_auc() {
        let (train_x, train_y) = binary_problem(1, 4000);
        let (test_x, test_y) = binary_problem(2, 2000);
        let (model, report) =
            train(BINARY, &train_x, &train_y, None, None, &small_params()).unwrap();
        assert_eq!(model.trees.len(), 40);
        assert_eq!(report.best_iteration, 40);
        assert_eq!(report.train_loss.len(), 40);
        assert!(report.train_loss[39] < report.train_loss[0]);
        let p: Vec<f64> = predictions(&model, &test_x).iter().map(|p| p[0]).collect();
        let a = auc(&p, &test_y);
        assert!(a > 0.86, "test AUC {a}");
    }

    #[test]
    fn multiclass_reaches_accuracy() {
        let make = |seed, n| {
            let mut rng = Rng::new(seed, 0);
            let cols = features(&mut rng, n, 4);
            let y: Vec<f64> = (0..n)
                .map(|i| {
                    let s = [
                        cols[0][i],
                        cols[1][i] * cols[1][i] - 1.0,
                        -cols[0][i] - cols[2][i],
                    ];
                    let noisy: Vec<f64> = s.iter().map(|v| v + 0.3 * normal(&mut rng)).collect();
                    (0..3)
                        .max_by(|&a, &b| noisy[a].total_cmp(&noisy[b]))
                        .unwrap() as f64
                })
                .collect();
            (numeric(cols), y)
        };
        let (train_x, train_y) = make(3, 3000);
        let (test_x, test_y) = make(4, 1500);
        let objective = Objective::Multiclass { num_class: 3 };
        let (model, _) = train(objective, &train_x, &train_y, None, None, &small_params()).unwrap();
        assert_eq!(model.trees.len(), 40 * 3);
        let correct = predictions(&model, &test_x)
            .iter()
            .zip(&test_y)
            .filter(|(p, y)| (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap() as f64 == **y)
            .count();
        let accuracy = correct as f64 / test_y.len() as f64;
        assert!(accuracy > 0.87, "test accuracy {accuracy}");
    }

    #[test]
    fn regression_beats_rmse() {
        let make = |seed, n| {
            let mut rng = Rng::new(seed, 0);
            let cols = features(&mut rng, n, 4);
            let y: Vec<f64> = (0..n)
                .map(|i| {
                    3.0 * (cols[0][i]).sin() + cols[1][i] * cols[1][i] + 0.2 * normal(&mut rng)
                })
                .collect();
            (numeric(cols), y)
        };
        let (train_x, train_y) = make(5, 3000);
        let (test_x, test_y) = make(6, 1500);
        let params = GbdtParams {
            num_trees: 60,
            ..small_params()
        };
        let (model, _) = train(
            Objective::Regression,
            &train_x,
            &train_y,
            None,
            None,
            &params,
        )
        .unwrap();
        let p = predictions(&model, &test_x);
        let mse = p
            .iter()
            .zip(&test_y)
            .map(|(p, y)| (p[0] - y).powi(2))
            .sum::<f64>()
            / test_y.len() as f64;
        let var = {
            let m = test_y.iter().sum::<f64>() / test_y.len() as f64;
            test_y.iter().map(|y| (y - m).powi(2)).sum::<f64>() / test_y.len() as f64
        };
        assert!(
            mse.sqrt() < 0.40,
            "test RMSE {} (label sd {})",
            mse.sqrt(),
            var.sqrt()
        );
    }

    #[test]
    fn nan_carrying_the_label_is_learned() {
        let make = |seed, n| {
            let mut rng = Rng::new(seed, 0);
            let mut cols = features(&mut rng, n, 3);
            let y: Vec<f64> = (0..n).map(|_| f64::from(rng.next_f64() < 0.5)).collect();
            for i in 0..n {
                if y[i] == 1.0 {
                    cols[1][i] = f64::NAN;
                }
            }
            (numeric(cols), y)
        };
        let (train_x, train_y) = make(7, 2000);
        let (test_x, test_y) = make(8, 1000);
        let params = GbdtParams {
            num_trees: 10,
            ..small_params()
        };
        let (model, _) = train(BINARY, &train_x, &train_y, None, None, &params).unwrap();
        let p: Vec<f64> = predictions(&model, &test_x).iter().map(|p| p[0]).collect();
        let a = auc(&p, &test_y);
        assert!(a > 0.999, "test AUC {a}");
        let first = &model.trees[0];
        assert_eq!(first.split_feature[0], 1);
        assert_eq!(first.missing_type(0), crate::tree::MissingType::NaN);
        // Features without NaN in training get missing type None.
        for t in &model.trees {
            for node in 0..t.split_feature.len() {
                if t.split_feature[node] != 1 {
                    assert_eq!(t.missing_type(node), crate::tree::MissingType::None);
                }
            }
        }
    }

    #[test]
    fn categorical_subset_is_learned_with_categorical_splits() {
        let left = [1u32, 4, 7, 9, 12, 15, 18];
        let make = |seed, n| {
            let mut rng = Rng::new(seed, 0);
            let mut cols = features(&mut rng, n, 3);
            let cat: Vec<f64> = (0..n).map(|_| rng.below(20) as f64).collect();
            let y: Vec<f64> = cat
                .iter()
                .map(|&c| {
                    let p = if left.contains(&(c as u32)) {
                        0.95
                    } else {
                        0.05
                    };
                    f64::from(rng.next_f64() < p)
                })
                .collect();
            cols.insert(1, cat);
            let names = vec!["a".into(), "cat".into(), "b".into(), "c".into()];
            (
                Dataset::new(names, vec![false, true, false, false], cols),
                y,
            )
        };
        let (train_x, train_y) = make(9, 4000);
        let (test_x, test_y) = make(10, 2000);
        let params = GbdtParams {
            num_trees: 20,
            ..small_params()
        };
        let (model, _) = train(BINARY, &train_x, &train_y, None, None, &params).unwrap();
        let p: Vec<f64> = predictions(&model, &test_x).iter().map(|p| p[0]).collect();
        let a = auc(&p, &test_y);
        assert!(a > 0.94, "test AUC {a}");
        let root = &model.trees[0];
        assert_eq!(root.split_feature[0], 1);
        assert!(root.is_categorical(0), "root split is categorical");
        // The root's left set is exactly the label-carrying categories (or their complement).
        let words =
            &root.cat_bitset[root.cat_boundaries[0] as usize..root.cat_boundaries[1] as usize];
        let set: Vec<u32> = (0..20u32)
            .filter(|&c| (words.get(c as usize / 32).copied().unwrap_or(0) >> (c % 32)) & 1 == 1)
            .collect();
        let complement: Vec<u32> = (0..20).filter(|c| !left.contains(c)).collect();
        assert!(set == left || set == complement, "left categories {set:?}");
        // Unseen categories and NaN go right.
        let mut row = vec![0.0, 99.0, 0.0, 0.0];
        assert_eq!(root.next(0, &row), root.right[0]);
        row[1] = f64::NAN;
        assert_eq!(root.next(0, &row), root.right[0]);
    }

    #[test]
    fn few_categories_get_one_vs_rest_splits() {
        let mut rng = Rng::new(11, 0);
        let n = 2000;
        let cat: Vec<f64> = (0..n).map(|_| rng.below(3) as f64).collect();
        let y: Vec<f64> = cat
            .iter()
            .map(|&c| f64::from(rng.next_f64() < if c == 2.0 { 0.9 } else { 0.1 }))
            .collect();
        let ds = Dataset::new(vec!["cat".into()], vec![true], vec![cat]);
        let params = GbdtParams {
            num_trees: 3,
            ..small_params()
        };
        let (model, _) = train(BINARY, &ds, &y, None, None, &params).unwrap();
        let root = &model.trees[0];
        assert!(root.is_categorical(0));
        assert_eq!(
            &root.cat_bitset[..root.cat_boundaries[1] as usize],
            &[1 << 2]
        );
    }

    #[test]
    fn early_stopping_stops_on_noise() {
        let mut rng = Rng::new(12, 0);
        let (n, nv) = (2000, 1000);
        let x = numeric(features(&mut rng, n, 5));
        let y: Vec<f64> = (0..n).map(|_| f64::from(rng.next_f64() < 0.5)).collect();
        let vx = numeric(features(&mut rng, nv, 5));
        let vy: Vec<f64> = (0..nv).map(|_| f64::from(rng.next_f64() < 0.5)).collect();
        let params = GbdtParams {
            num_trees: 200,
            early_stopping_rounds: Some(5),
            ..small_params()
        };
        let (model, report) = train(BINARY, &x, &y, None, Some((&vx, &vy)), &params).unwrap();
        assert!(
            report.best_iteration < 200,
            "best iteration {}",
            report.best_iteration
        );
        assert!(report.valid_loss.len() < 200);
        assert_eq!(report.valid_loss.len(), report.best_iteration + 5);
        assert_eq!(model.trees.len(), report.best_iteration);
        let best = report
            .valid_loss
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        assert_eq!(report.valid_loss[report.best_iteration - 1], best);
        // Without a validation set, early stopping is refused.
        let err = train(BINARY, &x, &y, None, None, &params)
            .unwrap_err()
            .to_string();
        assert!(err.contains("early_stopping_rounds"), "{err}");
    }

    #[test]
    fn class_weights_shift_mean_probability() {
        let (x, y) = binary_problem(13, 2000);
        let mean_p = |y: &[f64], cw: ClassWeight| {
            let params = GbdtParams {
                num_trees: 20,
                class_weight: cw,
                ..small_params()
            };
            let (model, _) = train(BINARY, &x, y, None, None, &params).unwrap();
            predictions(&model, &x).iter().map(|p| p[0]).sum::<f64>() / x.n_rows() as f64
        };
        let plain = mean_p(&y, ClassWeight::None);
        let up = mean_p(&y, ClassWeight::Given(vec![1.0, 4.0]));
        let down = mean_p(&y, ClassWeight::Given(vec![4.0, 1.0]));
        assert!(
            up > plain + 0.1 && down < plain - 0.1,
            "mean p: none {plain}, 1:4 {up}, 4:1 {down}"
        );
        // Balanced on an imbalanced set raises the minority class's probability.
        let rare: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 4 == 0 { v } else { 0.0 })
            .collect();
        let (plain, balanced) = (
            mean_p(&rare, ClassWeight::None),
            mean_p(&rare, ClassWeight::Balanced),
        );
        assert!(
            balanced > plain + 0.1,
            "mean p: none {plain}, balanced {balanced}"
        );
    }

    #[test]
    fn same_seed_same_trees_whatever_the_threads() {
        let (mut x, y) = binary_problem(14, 6000);
        // NaN and a categorical feature exercise every split kind.
        for i in (0..6000).step_by(7) {
            x.columns[2][i] = f64::NAN;
        }
        x.columns[5] = (0..6000).map(|i| ((i * 7919) % 13) as f64).collect();
        x.categorical[5] = true;
        let params = GbdtParams {
            num_trees: 15,
            num_leaves: 31,
            min_data_in_leaf: 5,
            bagging_fraction: 0.7,
            bagging_freq: 2,
            feature_fraction: 0.8,
            ..small_params()
        };
        let run = |threads| {
            let p = GbdtParams {
                threads,
                ..params.clone()
            };
            train(BINARY, &x, &y, None, None, &p).unwrap()
        };
        let (a, ra) = run(2);
        let (b, rb) = run(2);
        let (c, rc) = run(1);
        let (d, _) = run(3);
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(ra.train_loss, rb.train_loss);
        assert_eq!(ra.train_loss, rc.train_loss);
        let other = train(
            BINARY,
            &x,
            &y,
            None,
            None,
            &GbdtParams {
                seed: 8,
                ..params.clone()
            },
        )
        .unwrap()
        .0;
        assert_ne!(a, other, "another seed draws other bags");
    }

    #[test]
    fn predictor_reproduces_training_scores() {
        let (mut x, y) = binary_problem(15, 3000);
        for i in (0..3000).step_by(5) {
            x.columns[0][i] = f64::NAN;
        }
        x.columns[5] = (0..3000).map(|i| ((i * 31) % 17) as f64).collect();
        x.categorical[5] = true;
        let multi: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 3 == 0 { 2.0 } else { *v })
            .collect();
        let real: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v * 3.0 + (i % 10) as f64)
            .collect();
        // The last case has more than 256 bins per feature (u16 bin indices).
        for (objective, y, max_bin) in [
            (BINARY, &y, 255),
            (Objective::Multiclass { num_class: 3 }, &multi, 255),
            (Objective::Regression, &real, 255),
            (Objective::Regression, &real, 1000),
        ] {
            let params = GbdtParams {
                num_trees: 12,
                bagging_fraction: 0.8,
                bagging_freq: 1,
                max_bin,
                ..small_params()
            };
            let (model, report, scores) =
                train_with_scores(objective, &x, y, None, None, &params).unwrap();
            let k = objective.num_outputs();
            assert_eq!(model.trees.len(), 12 * k);
            let mut row = Vec::new();
            let mut raw = vec![0.0; k];
            for i in 0..x.n_rows() {
                x.row(i, &mut row);
                model.predict_raw(&row, &mut raw);
                for (r, s) in raw.iter().zip(&scores) {
                    assert!(
                        (r - s[i]).abs() < 1e-9,
                        "{objective:?} row {i}: {r} vs {}",
                        s[i]
                    );
                }
            }
            // Trees carry training counts and gains for TreeSHAP.
            let t = &model.trees[k];
            assert_eq!(t.internal_count[0], t.leaf_count.iter().sum::<f64>());
            assert!(t.split_gain.iter().all(|&g| g > 0.0));
            assert!(report.train_loss.iter().all(|l| l.is_finite()));
        }
    }

    fn invalid(r: Result<(TreeEnsemble, TrainReport)>) -> String {
        match r {
            Err(Error::Invalid(m)) => m,
            Err(e) => panic!("expected Error::Invalid, got {e}"),
            Ok(_) => panic!("expected Error::Invalid, got a model"),
        }
    }

    #[test]
    fn input_errors_name_the_culprit() {
        let (x, y) = binary_problem(16, 200);
        let p = GbdtParams {
            num_trees: 2,
            ..small_params()
        };
        let fit = |x: &Dataset, y: &[f64]| train(BINARY, x, y, None, None, &p);

        let empty = Dataset::new(vec!["a".into()], vec![false], vec![vec![]]);
        assert!(invalid(fit(&empty, &[])).contains("empty dataset"));
        assert!(invalid(fit(&Dataset::default(), &[])).contains("empty dataset"));
        assert!(invalid(fit(&x, &y[..199])).contains("expected 200 (one per row), got 199"));
        let mut bad = y.clone();
        bad[3] = f64::NAN;
        assert!(invalid(fit(&x, &bad)).contains("label at row 3 is NaN"));
        bad[3] = f64::INFINITY;
        assert!(invalid(fit(&x, &bad)).contains("label at row 3 is inf"));
        bad[3] = 2.0;
        assert!(
            invalid(fit(&x, &bad)).contains("label at row 3 is 2; binary labels must be 0 or 1")
        );
        assert!(invalid(fit(&x, &[1.0; 200])).contains("single class"));
        let mc = |y: &[f64]| {
            train(
                Objective::Multiclass { num_class: 3 },
                &x,
                y,
                None,
                None,
                &p,
            )
        };
        assert!(invalid(mc(&[2.0; 200])).contains("single class"));
        let mut out = vec![0.0; 200];
        out[1] = 1.0;
        out[9] = 3.0;
        assert!(
            invalid(mc(&out))
                .contains("label at row 9 is 3; multiclass labels must be integers in 0..3")
        );
        out[9] = 1.5;
        assert!(invalid(mc(&out)).contains("label at row 9 is 1.5"));

        let mut inf = x.clone();
        inf.names[2] = "x".into();
        inf.columns[2][17] = f64::NEG_INFINITY;
        assert_eq!(
            invalid(fit(&inf, &y)),
            "feature 'x' has an infinite value at row 17"
        );
        let mut cat = x.clone();
        cat.categorical[4] = true;
        cat.columns[4] = (0..200).map(|i| (i % 5) as f64).collect();
        cat.columns[4][11] = -1.0;
        assert_eq!(
            invalid(fit(&cat, &y)),
            "categorical feature 'x4' has a negative code -1 at row 11"
        );
        cat.columns[4][11] = 2.5;
        assert_eq!(
            invalid(fit(&cat, &y)),
            "categorical feature 'x4' has a non-integer code 2.5 at row 11"
        );
        let mut short = x.clone();
        short.columns[1].pop();
        assert!(invalid(fit(&short, &y)).contains("feature 'x1' has 199 values"));

        let w = vec![1.0; 199];
        assert!(
            invalid(train(BINARY, &x, &y, Some(&w), None, &p)).contains("weights: expected 200")
        );
        let mut w = vec![1.0; 200];
        w[5] = -1.0;
        assert!(
            invalid(train(BINARY, &x, &y, Some(&w), None, &p)).contains("weight at row 5 is -1")
        );

        let mut vx = x.clone();
        vx.columns[3][4] = f64::INFINITY;
        assert_eq!(
            invalid(train(BINARY, &x, &y, None, Some((&vx, &y)), &p)),
            "validation set feature 'x3' has an infinite value at row 4"
        );
        let (vx, _) = binary_problem(17, 50);
        assert!(
            invalid(train(BINARY, &x, &y, None, Some((&vx, &y)), &p))
                .contains("validation labels: expected 50")
        );

        let cw = GbdtParams {
            class_weight: ClassWeight::Given(vec![1.0, 2.0, 3.0]),
            ..p.clone()
        };
        assert!(invalid(train(BINARY, &x, &y, None, None, &cw)).contains("class_weight"));
        let lr = GbdtParams {
            learning_rate: 0.0,
            ..p.clone()
        };
        assert!(invalid(train(BINARY, &x, &y, None, None, &lr)).contains("learning_rate"));
    }

    #[test]
    fn params_accept_lightgbm_names_and_aliases() {
        let mut p = GbdtParams::default();
        for (k, v) in [
            ("n_estimators", "250"),
            ("num_leaves", "63"),
            ("eta", "0.05"),
            ("min_child_samples", "5"),
            ("reg_lambda", "1.5"),
            ("reg_alpha", "0.5"),
            ("subsample", "0.8"),
            ("subsample_freq", "1"),
            ("colsample_bytree", "0.7"),
            ("class_weight", "1,3.5"),
            ("early_stopping_round", "10"),
            ("max_depth", "-1"),
            ("num_threads", "4"),
            ("random_state", "42"),
            ("min_split_gain", "0.1"),
        ] {
            p.set(k, v).unwrap();
        }
        assert_eq!(p.num_trees, 250);
        assert_eq!(p.num_leaves, 63);
        assert_eq!(p.learning_rate, 0.05);
        assert_eq!(p.min_data_in_leaf, 5);
        assert_eq!((p.lambda_l2, p.lambda_l1), (1.5, 0.5));
        assert_eq!(
            (p.bagging_fraction, p.bagging_freq, p.feature_fraction),
            (0.8, 1, 0.7)
        );
        assert_eq!(p.class_weight, ClassWeight::Given(vec![1.0, 3.5]));
        assert_eq!(p.early_stopping_rounds, Some(10));
        assert_eq!(p.max_depth, None);
        assert_eq!((p.threads, p.seed, p.min_gain_to_split), (4, 42, 0.1));
        p.set("class_weight", "balanced").unwrap();
        assert_eq!(p.class_weight, ClassWeight::Balanced);
        p.set("num_iterations", "7").unwrap();
        assert_eq!(p.num_trees, 7);

        let before = p.clone();
        let Err(Error::Invalid(m)) = p.set("num_leafs", "3") else {
            panic!("unknown key accepted")
        };
        assert!(
            m.contains("unknown parameter 'num_leafs'")
                && m.contains("num_leaves")
                && m.contains("n_estimators"),
            "{m}"
        );
        let Err(Error::Invalid(m)) = p.set("num_leaves", "many") else {
            panic!("bad value accepted")
        };
        assert!(m.contains("'num_leaves'") && m.contains("many"), "{m}");
        let Err(Error::Invalid(m)) = p.set("subsample", "1.5") else {
            panic!("out of range accepted")
        };
        assert!(
            m.contains("bagging_fraction") && m.contains("subsample=1.5"),
            "{m}"
        );
        assert_eq!(p, before, "failed sets change nothing");
    }
}
