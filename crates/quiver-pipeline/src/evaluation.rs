//! What a trained model is judged by beyond its test metrics: gain and split importance, the
//! mean |SHAP| per feature, and the headline (scalar) metrics.

use quiver_ml::metrics::Evaluation;
use quiver_ml::{Dataset, Model};

/// Gain and split-count importance per feature of a tree model.
pub fn importance(model: &Model) -> Vec<(String, f64, u64)> {
    let names = model.feature_names();
    let mut gain = vec![0.0; names.len()];
    let mut splits = vec![0u64; names.len()];
    if let Model::Trees(t) = model {
        for tree in &t.trees {
            for (node, f) in tree.split_feature.iter().enumerate() {
                gain[*f as usize] += tree.split_gain[node];
                splits[*f as usize] += 1;
            }
        }
    }
    let mut out: Vec<_> = names
        .iter()
        .cloned()
        .zip(gain)
        .zip(splits)
        .map(|((n, g), s)| (n, g, s))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)));
    out
}

/// Mean |SHAP value| per feature over up to 1,000 test rows (all outputs summed), largest
/// first; empty for linear models.
pub fn shap_summary(model: &Model, test: &Dataset) -> Vec<(String, f64)> {
    let Model::Trees(t) = model else {
        return vec![];
    };
    let n = test.n_rows().min(1000);
    let mut sums = vec![0.0; t.feature_names.len()];
    let mut row = Vec::new();
    for i in 0..n {
        test.row(i, &mut row);
        for per_output in quiver_ml::shap::tree_shap(t, &row) {
            for (j, v) in per_output.iter().take(sums.len()).enumerate() {
                sums[j] += v.abs();
            }
        }
    }
    let mut out: Vec<(String, f64)> = t
        .feature_names
        .iter()
        .cloned()
        .zip(sums.into_iter().map(|s| s / n.max(1) as f64))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The scalar metrics of an evaluation (no curves or tables).
pub fn headline(e: &Evaluation) -> serde_json::Value {
    let mut v = serde_json::to_value(e).expect("serializes");
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| x.is_number());
    }
    v
}
