//! Tree ensembles and linear models behind one `Model` type, with their objective's link function.

use serde::{Deserialize, Serialize};

use crate::tree::Tree;

/// What a model predicts, and how raw scores become predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Objective {
    /// Probability of the positive class: `1 / (1 + exp(-sigmoid * raw))`.
    Binary { sigmoid: f64 },
    /// Class probabilities: softmax over `num_class` raw scores.
    Multiclass { num_class: usize },
    /// The raw score itself.
    Regression,
}

impl Objective {
    /// Raw scores per row (one per class for multiclass).
    pub fn num_outputs(&self) -> usize {
        match self {
            Objective::Multiclass { num_class } => *num_class,
            _ => 1,
        }
    }

    /// Turns raw scores into predictions in place.
    pub fn transform(&self, raw: &mut [f64]) {
        match self {
            Objective::Binary { sigmoid } => raw[0] = 1.0 / (1.0 + (-sigmoid * raw[0]).exp()),
            Objective::Multiclass { .. } => {
                let max = raw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for v in raw.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                for v in raw.iter_mut() {
                    *v /= sum;
                }
            }
            Objective::Regression => {}
        }
    }
}

/// An ensemble of trees: `trees[i * num_outputs + k]` is iteration `i`'s tree for output `k`.
/// The raw score of output `k` is the sum of its trees' leaf values (any initial score is folded
/// into the first iteration's leaves, as LightGBM does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    pub objective: Objective,
    pub feature_names: Vec<String>,
    /// Per feature: true when the feature is categorical (values are non-negative integer codes).
    pub categorical: Vec<bool>,
    pub trees: Vec<Tree>,
}

impl TreeEnsemble {
    /// Raw scores for one row (`row.len() == feature_names.len()`, NaN = missing).
    pub fn predict_raw(&self, row: &[f64], out: &mut [f64]) {
        let k = self.objective.num_outputs();
        out[..k].iter_mut().for_each(|v| *v = 0.0);
        for (i, tree) in self.trees.iter().enumerate() {
            out[i % k] += tree.predict(row);
        }
    }

    /// Predictions for one row: a probability (binary), class probabilities (multiclass) or a value.
    pub fn predict(&self, row: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.objective.num_outputs()];
        self.predict_raw(row, &mut out);
        self.objective.transform(&mut out);
        out
    }
}

/// A logistic (binary or multinomial) or linear regression model over standardized inputs.
/// Missing inputs (NaN) are replaced by the training mean, i.e. contribute 0 after standardization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    pub objective: Objective,
    pub feature_names: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    /// `weights[k]` are output `k`'s coefficients on the standardized inputs.
    pub weights: Vec<Vec<f64>>,
    pub intercept: Vec<f64>,
}

impl LinearModel {
    pub fn predict(&self, row: &[f64]) -> Vec<f64> {
        let mut out: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.intercept)
            .map(|(w, b)| {
                let mut s = *b;
                for j in 0..w.len() {
                    let x = row[j];
                    if !x.is_nan() {
                        s += w[j] * (x - self.mean[j]) / self.scale[j];
                    }
                }
                s
            })
            .collect();
        self.objective.transform(&mut out);
        out
    }

    /// Each input's contribution to the raw score of each output, with the same layout as
    /// [`crate::shap::tree_shap`]: per output, `w_j * (x_j - mean_j) / scale_j` for every input
    /// (0 when missing, which is scored as the training mean), then the intercept (the raw score
    /// at the training means) last. The vector sums to the raw score. These are the exact SHAP
    /// values of a linear model with independent inputs, relative to the training means.
    pub fn contributions(&self, row: &[f64]) -> Vec<Vec<f64>> {
        self.weights
            .iter()
            .zip(&self.intercept)
            .map(|(w, b)| {
                let mut c: Vec<f64> = (0..w.len())
                    .map(|j| {
                        let x = row[j];
                        if x.is_nan() {
                            0.0
                        } else {
                            w[j] * (x - self.mean[j]) / self.scale[j]
                        }
                    })
                    .collect();
                c.push(*b);
                c
            })
            .collect()
    }
}

/// Any model Quiver can serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    Trees(TreeEnsemble),
    Linear(LinearModel),
}

impl Model {
    pub fn objective(&self) -> Objective {
        match self {
            Model::Trees(m) => m.objective,
            Model::Linear(m) => m.objective,
        }
    }
    pub fn feature_names(&self) -> &[String] {
        match self {
            Model::Trees(m) => &m.feature_names,
            Model::Linear(m) => &m.feature_names,
        }
    }
    /// Predictions for one row of features in `feature_names` order (NaN = missing).
    pub fn predict(&self, row: &[f64]) -> Vec<f64> {
        match self {
            Model::Trees(m) => m.predict(row),
            Model::Linear(m) => m.predict(row),
        }
    }

    /// Per output, each feature's contribution to the raw score of `row`, then the bias last
    /// (the vector sums to the raw score): TreeSHAP for trees ([`crate::shap::tree_shap`]),
    /// [`LinearModel::contributions`] for linear models.
    pub fn contributions(&self, row: &[f64]) -> Vec<Vec<f64>> {
        match self {
            Model::Trees(m) => crate::shap::tree_shap(m, row),
            Model::Linear(m) => m.contributions(row),
        }
    }
}

/// The index of the largest of a multiclass prediction's class probabilities (the last of
/// equal ones; 0 for an empty one): the predicted class, wherever one is reported
/// (`/predict`'s decision, the prediction log, `models predict`, a version's test predictions).
pub fn top_class(p: &[f64]) -> usize {
    (0..p.len())
        .max_by(|a, b| p[*a].total_cmp(&p[*b]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_contributions_sum_to_the_raw_score() {
        let m = LinearModel {
            objective: Objective::Regression,
            feature_names: vec!["a".into(), "b".into()],
            mean: vec![1.0, 10.0],
            scale: vec![2.0, 5.0],
            weights: vec![vec![3.0, -1.0]],
            intercept: vec![0.5],
        };
        let c = Model::Linear(m.clone()).contributions(&[5.0, f64::NAN]);
        assert_eq!(c, vec![vec![6.0, 0.0, 0.5]]);
        let row = [-1.0, 20.0];
        let c = m.contributions(&row);
        assert_eq!(c[0].iter().sum::<f64>(), m.predict(&row)[0]);
    }
}
