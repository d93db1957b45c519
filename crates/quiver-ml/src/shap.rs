//! TreeSHAP (Lundberg, Erion & Lee, "Consistent Individualized Feature Attribution for Tree
//! Ensembles", arXiv:1706.06060, Algorithm 2): exact SHAP values of a tree ensemble's raw score,
//! computed the way LightGBM's `Tree::TreeSHAP` / `PredictContrib` (`predict(pred_contrib=True)`)
//! does, with the training row counts (`internal_count` / `leaf_count`) as the cover. The
//! arithmetic follows LightGBM's operation for operation, so results agree to the last bits.

use crate::model::TreeEnsemble;
use crate::tree::Tree;

/// SHAP values of `row` (in `feature_names` order, NaN = missing) for each output `k`: a vector
/// of `n_features + 1` values, the features' contributions then the expected value (bias) last,
/// the layout of one class's block in LightGBM's `pred_contrib` output. For every output, the sum
/// of the vector is the raw score ([`TreeEnsemble::predict_raw`]).
pub fn tree_shap(ensemble: &TreeEnsemble, row: &[f64]) -> Vec<Vec<f64>> {
    let n = ensemble.feature_names.len();
    assert!(
        row.len() >= n,
        "tree_shap: row has {} values, the model has {n} features",
        row.len()
    );
    let k = ensemble.objective.num_outputs();
    let mut out = vec![vec![0.0; n + 1]; k];
    let mut buf = Vec::new();
    for (i, tree) in ensemble.trees.iter().enumerate() {
        tree_contrib_with(tree, row, &mut out[i % k], &mut buf);
    }
    out
}

/// Adds one tree's SHAP values for `row` to `phi` (`n_features + 1` values: contributions, then
/// the tree's expected value added to the last one), as LightGBM's `Tree::PredictContrib`.
pub fn tree_contrib(tree: &Tree, row: &[f64], phi: &mut [f64]) {
    tree_contrib_with(tree, row, phi, &mut Vec::new());
}

/// The tree's mean output over its training rows (`sum(leaf_count * leaf_value) / root count`).
pub fn expected_value(tree: &Tree) -> f64 {
    if tree.num_leaves() == 1 {
        return tree.leaf_value[0];
    }
    let total = tree.internal_count[0];
    let mut v = 0.0;
    for (count, value) in tree.leaf_count.iter().zip(&tree.leaf_value) {
        v += (count / total) * value;
    }
    v
}

fn tree_contrib_with(tree: &Tree, row: &[f64], phi: &mut [f64], buf: &mut Vec<PathElement>) {
    let n = phi.len() - 1;
    phi[n] += expected_value(tree);
    if tree.num_leaves() > 1 {
        let depth = max_depth(tree);
        let len = (depth + 1) * (depth + 2) / 2;
        buf.clear();
        buf.resize(len, PathElement::default());
        recurse(tree, row, phi, 0, 0, buf, 1.0, 1.0, -1);
    }
}

/// The depth of the deepest leaf (the root is at depth 0).
fn max_depth(tree: &Tree) -> usize {
    let mut max = 0;
    let mut stack = vec![(0i32, 0usize)];
    while let Some((node, d)) = stack.pop() {
        if node < 0 {
            max = max.max(d);
        } else {
            stack.push((tree.left[node as usize], d + 1));
            stack.push((tree.right[node as usize], d + 1));
        }
    }
    max
}

#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature_index: i64,
    zero_fraction: f64,
    one_fraction: f64,
    /// Permutation weight of the paths with `i - 1` ones in them (not tied to the other fields).
    pweight: f64,
}

/// `buf` starts with the parent's path (`unique_depth` elements); this node's path is written
/// right after it, and its children's paths after that.
#[allow(clippy::too_many_arguments)]
fn recurse(
    tree: &Tree,
    row: &[f64],
    phi: &mut [f64],
    node: i32,
    mut unique_depth: usize,
    buf: &mut [PathElement],
    parent_zero_fraction: f64,
    parent_one_fraction: f64,
    parent_feature_index: i64,
) {
    let (parent, path) = buf.split_at_mut(unique_depth);
    path[..unique_depth].copy_from_slice(parent);
    extend_path(
        path,
        unique_depth,
        parent_zero_fraction,
        parent_one_fraction,
        parent_feature_index,
    );

    if node < 0 {
        let leaf_value = tree.leaf_value[!node as usize];
        for i in 1..=unique_depth {
            let w = unwound_path_sum(path, unique_depth, i);
            let el = path[i];
            phi[el.feature_index as usize] += w * (el.one_fraction - el.zero_fraction) * leaf_value;
        }
        return;
    }

    let n = node as usize;
    let hot = tree.next(n, row);
    let cold = if hot == tree.left[n] {
        tree.right[n]
    } else {
        tree.left[n]
    };
    let w = data_count(tree, node);
    let hot_zero_fraction = data_count(tree, hot) / w;
    let cold_zero_fraction = data_count(tree, cold) / w;
    let mut incoming_zero_fraction = 1.0;
    let mut incoming_one_fraction = 1.0;

    // If this feature was split on before, undo that split so it can be redone here.
    let feature = i64::from(tree.split_feature[n]);
    if let Some(path_index) = path[..=unique_depth]
        .iter()
        .position(|e| e.feature_index == feature)
    {
        incoming_zero_fraction = path[path_index].zero_fraction;
        incoming_one_fraction = path[path_index].one_fraction;
        unwind_path(path, unique_depth, path_index);
        unique_depth -= 1;
    }

    recurse(
        tree,
        row,
        phi,
        hot,
        unique_depth + 1,
        path,
        hot_zero_fraction * incoming_zero_fraction,
        incoming_one_fraction,
        feature,
    );
    recurse(
        tree,
        row,
        phi,
        cold,
        unique_depth + 1,
        path,
        cold_zero_fraction * incoming_zero_fraction,
        0.0,
        feature,
    );
}

fn data_count(tree: &Tree, node: i32) -> f64 {
    if node >= 0 {
        tree.internal_count[node as usize]
    } else {
        tree.leaf_count[!node as usize]
    }
}

fn extend_path(
    path: &mut [PathElement],
    unique_depth: usize,
    zero_fraction: f64,
    one_fraction: f64,
    feature_index: i64,
) {
    path[unique_depth] = PathElement {
        feature_index,
        zero_fraction,
        one_fraction,
        pweight: if unique_depth == 0 { 1.0 } else { 0.0 },
    };
    let d1 = (unique_depth + 1) as f64;
    for i in (0..unique_depth).rev() {
        path[i + 1].pweight += one_fraction * path[i].pweight * (i + 1) as f64 / d1;
        path[i].pweight = zero_fraction * path[i].pweight * (unique_depth - i) as f64 / d1;
    }
}

fn unwind_path(path: &mut [PathElement], unique_depth: usize, path_index: usize) {
    let one_fraction = path[path_index].one_fraction;
    let zero_fraction = path[path_index].zero_fraction;
    let mut next_one_portion = path[unique_depth].pweight;
    let d1 = (unique_depth + 1) as f64;
    for i in (0..unique_depth).rev() {
        if one_fraction != 0.0 {
            let tmp = path[i].pweight;
            path[i].pweight = next_one_portion * d1 / ((i + 1) as f64 * one_fraction);
            next_one_portion =
                tmp - path[i].pweight * zero_fraction * (unique_depth - i) as f64 / d1;
        } else {
            path[i].pweight = (path[i].pweight * d1) / (zero_fraction * (unique_depth - i) as f64);
        }
    }
    for i in path_index..unique_depth {
        path[i].feature_index = path[i + 1].feature_index;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

fn unwound_path_sum(path: &[PathElement], unique_depth: usize, path_index: usize) -> f64 {
    let one_fraction = path[path_index].one_fraction;
    let zero_fraction = path[path_index].zero_fraction;
    let mut next_one_portion = path[unique_depth].pweight;
    let d1 = (unique_depth + 1) as f64;
    let mut total = 0.0;
    for i in (0..unique_depth).rev() {
        if one_fraction != 0.0 {
            let tmp = next_one_portion * d1 / ((i + 1) as f64 * one_fraction);
            total += tmp;
            next_one_portion =
                path[i].pweight - tmp * zero_fraction * ((unique_depth - i) as f64 / d1);
        } else {
            total += (path[i].pweight / zero_fraction) / ((unique_depth - i) as f64 / d1);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Objective, TreeEnsemble};

    /// `f0 <= 0` splits 40 training rows into a leaf of 30 (value 1) and one of 10 (value 4).
    fn one_split() -> Tree {
        Tree {
            split_feature: vec![0],
            threshold: vec![0.0],
            decision: vec![0],
            left: vec![-1],
            right: vec![-2],
            split_gain: vec![1.0],
            internal_count: vec![40.0],
            leaf_value: vec![1.0, 4.0],
            leaf_count: vec![30.0, 10.0],
            ..Tree::default()
        }
    }

    fn ensemble(trees: Vec<Tree>, n_features: usize, objective: Objective) -> TreeEnsemble {
        TreeEnsemble {
            objective,
            feature_names: (0..n_features).map(|j| format!("f{j}")).collect(),
            categorical: vec![false; n_features],
            trees,
        }
    }

    #[test]
    fn one_split_by_hand() {
        let m = ensemble(vec![one_split()], 2, Objective::Regression);
        // Expected value 30/40 * 1 + 10/40 * 4 = 1.75; the split feature takes the rest.
        assert_eq!(expected_value(&m.trees[0]), 1.75);
        assert_eq!(tree_shap(&m, &[-1.0, 5.0]), vec![vec![-0.75, 0.0, 1.75]]);
        assert_eq!(tree_shap(&m, &[1.0, 5.0]), vec![vec![2.25, 0.0, 1.75]]);
        // NaN with missing type None is 0.0: left.
        assert_eq!(
            tree_shap(&m, &[f64::NAN, 5.0]),
            vec![vec![-0.75, 0.0, 1.75]]
        );
    }

    #[test]
    fn two_features_by_hand() {
        // Root: f0 <= 0 (100 rows): left leaf A (50 rows, 0); right: f1 <= 0 (50 rows):
        // leaf B (25 rows, 10), leaf C (25 rows, 20). For x = (1, -1): f(x) = 10, E = 7.5,
        // v({0}) = 15, v({1}) = 5, so phi0 = (7.5 + 5) / 2 = 6.25, phi1 = (-2.5 - 5) / 2 = -3.75.
        let t = Tree {
            split_feature: vec![0, 1],
            threshold: vec![0.0, 0.0],
            decision: vec![0, 0],
            left: vec![-1, -2],
            right: vec![1, -3],
            split_gain: vec![1.0, 1.0],
            internal_count: vec![100.0, 50.0],
            leaf_value: vec![0.0, 10.0, 20.0],
            leaf_count: vec![50.0, 25.0, 25.0],
            ..Tree::default()
        };
        let m = ensemble(vec![t], 2, Objective::Regression);
        assert_eq!(tree_shap(&m, &[1.0, -1.0]), vec![vec![6.25, -3.75, 7.5]]);
    }

    /// A deterministic pseudo-random generator for the tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() * n as f64) as usize % n
        }
    }

    /// A random tree over `n_features` features (repeated split features included), with NaN
    /// handling and consistent counts.
    fn random_tree(rng: &mut Lcg, n_leaves: usize, n_features: usize) -> Tree {
        let mut t = Tree {
            leaf_value: vec![0.0],
            leaf_count: vec![0.0],
            ..Tree::default()
        };
        let mut parent_of_leaf = vec![None::<(usize, bool)>];
        for _ in 1..n_leaves {
            let leaf = rng.below(t.leaf_value.len());
            let node = t.split_feature.len() as i32;
            let new_leaf = t.leaf_value.len();
            match parent_of_leaf[leaf] {
                Some((p, true)) => t.left[p] = node,
                Some((p, false)) => t.right[p] = node,
                None => {}
            }
            t.split_feature.push(rng.below(n_features) as u32);
            t.threshold.push(rng.next() * 2.0 - 1.0);
            t.decision.push(if rng.next() < 0.5 { 8 | 2 } else { 8 });
            t.left.push(!(leaf as i32));
            t.right.push(!(new_leaf as i32));
            t.split_gain.push(1.0);
            t.internal_count.push(0.0);
            t.leaf_value.push(0.0);
            t.leaf_count.push(0.0);
            parent_of_leaf[leaf] = Some((node as usize, true));
            parent_of_leaf.push(Some((node as usize, false)));
        }
        for i in 0..t.leaf_value.len() {
            t.leaf_value[i] = rng.next() * 4.0 - 2.0;
            t.leaf_count[i] = (1 + rng.below(50)) as f64;
        }
        fn fill(t: &mut Tree, node: i32) -> f64 {
            if node < 0 {
                return t.leaf_count[!node as usize];
            }
            let c = fill(t, t.left[node as usize]) + fill(t, t.right[node as usize]);
            t.internal_count[node as usize] = c;
            c
        }
        if !t.split_feature.is_empty() {
            fill(&mut t, 0);
        }
        t
    }

    fn random_row(rng: &mut Lcg, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                if rng.next() < 0.1 {
                    f64::NAN
                } else {
                    rng.next() * 2.4 - 1.2
                }
            })
            .collect()
    }

    /// The cover-weighted conditional expectation of the tree given the features in `set`.
    fn cond_expectation(t: &Tree, row: &[f64], set: u32, node: i32) -> f64 {
        if node < 0 {
            return t.leaf_value[!node as usize];
        }
        let n = node as usize;
        if set >> t.split_feature[n] & 1 == 1 {
            return cond_expectation(t, row, set, t.next(n, row));
        }
        let count = |c: i32| {
            if c < 0 {
                t.leaf_count[!c as usize]
            } else {
                t.internal_count[c as usize]
            }
        };
        let (l, r) = (t.left[n], t.right[n]);
        (count(l) * cond_expectation(t, row, set, l) + count(r) * cond_expectation(t, row, set, r))
            / t.internal_count[n]
    }

    /// Shapley values by enumerating all feature subsets.
    fn brute_force(t: &Tree, row: &[f64], n: usize) -> Vec<f64> {
        let fact = |k: usize| (1..=k).map(|v| v as f64).product::<f64>();
        let mut phi = vec![0.0; n + 1];
        for (j, phi_j) in phi.iter_mut().enumerate().take(n) {
            for set in 0u32..(1 << n) {
                if set >> j & 1 == 1 {
                    continue;
                }
                let s = set.count_ones() as usize;
                let w = fact(s) * fact(n - s - 1) / fact(n);
                *phi_j += w
                    * (cond_expectation(t, row, set | 1 << j, 0)
                        - cond_expectation(t, row, set, 0));
            }
        }
        phi[n] = cond_expectation(t, row, 0, 0);
        phi
    }

    #[test]
    fn matches_brute_force_shapley_values() {
        let mut rng = Lcg(42);
        for _ in 0..200 {
            let n = 1 + rng.below(4);
            let leaves = 2 + rng.below(12);
            let t = random_tree(&mut rng, leaves, n);
            let row = random_row(&mut rng, n);
            let mut phi = vec![0.0; n + 1];
            tree_contrib(&t, &row, &mut phi);
            let want = brute_force(&t, &row, n);
            for j in 0..=n {
                assert!(
                    (phi[j] - want[j]).abs() < 1e-9,
                    "feature {j}: {phi:?} vs {want:?} for {t:?} {row:?}"
                );
            }
        }
    }

    #[test]
    fn contributions_add_up_to_the_raw_score() {
        let mut rng = Lcg(7);
        for (objective, n_trees) in [
            (Objective::Multiclass { num_class: 3 }, 30),
            (Objective::Regression, 25),
        ] {
            let n = 6;
            let trees = (0..n_trees)
                .map(|_| {
                    let leaves = 1 + rng.below(20);
                    random_tree(&mut rng, leaves, n)
                })
                .collect();
            let m = ensemble(trees, n, objective);
            let k = objective.num_outputs();
            for _ in 0..300 {
                let row = random_row(&mut rng, n);
                let mut raw = vec![0.0; k];
                m.predict_raw(&row, &mut raw);
                let phi = tree_shap(&m, &row);
                assert_eq!(phi.len(), k);
                for c in 0..k {
                    assert_eq!(phi[c].len(), n + 1);
                    let sum: f64 = phi[c].iter().sum();
                    assert!(
                        (sum - raw[c]).abs() < 1e-9 * raw[c].abs().max(1.0),
                        "{sum} vs {}",
                        raw[c]
                    );
                }
            }
        }
    }
}
