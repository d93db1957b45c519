//! Training parameters, with LightGBM's names and common aliases for `--params k=v`.

use crate::{Error, Result};

/// Per-class weights that scale the gradients and hessians of each class's rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ClassWeight {
    /// Every class weighs 1.
    #[default]
    None,
    /// `n_rows / (n_classes * n_rows_of_class)`, as scikit-learn's `class_weight="balanced"`.
    Balanced,
    /// One weight per class (binary: `[w0, w1]`).
    Given(Vec<f64>),
}

/// Gradient-boosting parameters; defaults are LightGBM's.
#[derive(Debug, Clone, PartialEq)]
pub struct GbdtParams {
    /// Boosting iterations (one tree per output per iteration).
    pub num_trees: usize,
    /// Leaves per tree (leaf-wise growth stops there).
    pub num_leaves: usize,
    pub learning_rate: f64,
    /// Bins per numerical feature (plus one for missing values when the feature has any).
    pub max_bin: usize,
    pub min_data_in_leaf: usize,
    pub min_sum_hessian_in_leaf: f64,
    pub lambda_l1: f64,
    pub lambda_l2: f64,
    /// Depth limit (`None`: leaf count only).
    pub max_depth: Option<usize>,
    /// Fraction of the features each tree may split on.
    pub feature_fraction: f64,
    /// Fraction of the rows each tree is grown on, redrawn every `bagging_freq` iterations (0: no bagging).
    pub bagging_fraction: f64,
    pub bagging_freq: usize,
    /// Stop after this many iterations without a better validation loss (needs a validation set).
    pub early_stopping_rounds: Option<usize>,
    pub class_weight: ClassWeight,
    pub seed: u64,
    /// Worker threads (0: all available). Results do not depend on it.
    pub threads: usize,
    /// Categorical features with at most this many categories get one-vs-rest splits.
    pub max_cat_to_onehot: usize,
    /// Smoothing of the gradient/hessian ratio categories are sorted by (and the minimum rows of a
    /// category to be sorted at all).
    pub cat_smooth: f64,
    /// Extra L2 regularization of many-vs-many categorical splits.
    pub cat_l2: f64,
    /// Most categories on the left side of a categorical split.
    pub max_cat_threshold: usize,
    /// Least gain for a split to be made.
    pub min_gain_to_split: f64,
    /// Least rows per group of categories in a many-vs-many categorical split.
    pub min_data_per_group: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            num_trees: 100,
            num_leaves: 31,
            learning_rate: 0.1,
            max_bin: 255,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            max_depth: None,
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            early_stopping_rounds: None,
            class_weight: ClassWeight::None,
            seed: 0,
            threads: 0,
            max_cat_to_onehot: 4,
            cat_smooth: 10.0,
            cat_l2: 10.0,
            max_cat_threshold: 32,
            min_gain_to_split: 0.0,
            min_data_per_group: 100,
        }
    }
}

/// Canonical key and its aliases.
const KEYS: &[(&str, &[&str])] = &[
    (
        "num_trees",
        &[
            "num_iterations",
            "num_iteration",
            "n_iter",
            "num_tree",
            "num_round",
            "num_rounds",
            "num_boost_round",
            "n_estimators",
            "max_iter",
        ],
    ),
    (
        "num_leaves",
        &["num_leaf", "max_leaves", "max_leaf", "max_leaf_nodes"],
    ),
    ("learning_rate", &["shrinkage_rate", "eta"]),
    ("max_bin", &["max_bins"]),
    (
        "min_data_in_leaf",
        &[
            "min_data_per_leaf",
            "min_data",
            "min_child_samples",
            "min_samples_leaf",
        ],
    ),
    (
        "min_sum_hessian_in_leaf",
        &[
            "min_sum_hessian_per_leaf",
            "min_sum_hessian",
            "min_hessian",
            "min_child_weight",
        ],
    ),
    ("lambda_l1", &["reg_alpha", "l1_regularization"]),
    ("lambda_l2", &["reg_lambda", "lambda", "l2_regularization"]),
    ("max_depth", &[]),
    ("feature_fraction", &["sub_feature", "colsample_bytree"]),
    ("bagging_fraction", &["sub_row", "subsample", "bagging"]),
    ("bagging_freq", &["subsample_freq"]),
    (
        "early_stopping_rounds",
        &["early_stopping_round", "early_stopping", "n_iter_no_change"],
    ),
    (
        "class_weight",
        &[
            "is_unbalance",
            "unbalance",
            "unbalanced_sets",
            "scale_pos_weight",
        ],
    ),
    ("seed", &["random_seed", "random_state"]),
    (
        "threads",
        &["num_threads", "num_thread", "nthread", "nthreads", "n_jobs"],
    ),
    ("max_cat_to_onehot", &[]),
    ("cat_smooth", &[]),
    ("cat_l2", &[]),
    ("max_cat_threshold", &[]),
    ("min_gain_to_split", &["min_split_gain"]),
    ("min_data_per_group", &[]),
];

fn valid_keys() -> String {
    KEYS.iter()
        .map(|(k, aliases)| {
            if aliases.is_empty() {
                (*k).to_string()
            } else {
                format!("{k} ({})", aliases.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn bad(key: &str, value: &str, expected: &str) -> Error {
    Error::Invalid(format!(
        "parameter '{key}': bad value '{value}', expected {expected}"
    ))
}

fn parse_usize(key: &str, value: &str) -> Result<usize> {
    value
        .parse()
        .map_err(|_| bad(key, value, "a non-negative integer"))
}

fn parse_f64(key: &str, value: &str) -> Result<f64> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(bad(key, value, "a finite number")),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad(key, value, "true or false")),
    }
}

/// `usize` where 0 or a negative value means "none" (LightGBM's `max_depth=-1`, `early_stopping_round=0`).
fn parse_optional(key: &str, value: &str) -> Result<Option<usize>> {
    match value.parse::<i64>() {
        Ok(v) if v <= 0 => Ok(None),
        Ok(v) => Ok(Some(v as usize)),
        Err(_) => Err(bad(key, value, "an integer (0 or negative: no limit)")),
    }
}

impl GbdtParams {
    /// Every parameter as (LightGBM name, value text), in declaration order: what a run logs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let p = self;
        let opt = |v: Option<usize>| v.map(|x| x.to_string()).unwrap_or_else(|| "none".into());
        vec![
            ("num_trees", p.num_trees.to_string()),
            ("num_leaves", p.num_leaves.to_string()),
            ("learning_rate", p.learning_rate.to_string()),
            ("max_bin", p.max_bin.to_string()),
            ("min_data_in_leaf", p.min_data_in_leaf.to_string()),
            (
                "min_sum_hessian_in_leaf",
                p.min_sum_hessian_in_leaf.to_string(),
            ),
            ("lambda_l1", p.lambda_l1.to_string()),
            ("lambda_l2", p.lambda_l2.to_string()),
            ("max_depth", opt(p.max_depth)),
            ("feature_fraction", p.feature_fraction.to_string()),
            ("bagging_fraction", p.bagging_fraction.to_string()),
            ("bagging_freq", p.bagging_freq.to_string()),
            ("early_stopping_rounds", opt(p.early_stopping_rounds)),
            (
                "class_weight",
                match &p.class_weight {
                    ClassWeight::None => "none".to_string(),
                    ClassWeight::Balanced => "balanced".to_string(),
                    ClassWeight::Given(w) => {
                        w.iter().map(f64::to_string).collect::<Vec<_>>().join(",")
                    }
                },
            ),
            ("seed", p.seed.to_string()),
            ("threads", p.threads.to_string()),
            ("max_cat_to_onehot", p.max_cat_to_onehot.to_string()),
            ("cat_smooth", p.cat_smooth.to_string()),
            ("cat_l2", p.cat_l2.to_string()),
            ("max_cat_threshold", p.max_cat_threshold.to_string()),
            ("min_gain_to_split", p.min_gain_to_split.to_string()),
            ("min_data_per_group", p.min_data_per_group.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Sets one parameter from its LightGBM name or an alias (`num_iterations`, `n_estimators`,
    /// `eta`, `min_child_samples`, `reg_lambda`, `subsample`, `colsample_bytree`,
    /// `class_weight=balanced` or `class_weight=1,3.5`, ...). Unknown keys and bad values are
    /// rejected, naming the key; the parameters are unchanged then.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let given = key.trim().to_ascii_lowercase().replace('-', "_");
        let value = value.trim();
        let Some(canonical) = KEYS
            .iter()
            .find(|(k, aliases)| *k == given || aliases.contains(&given.as_str()))
            .map(|(k, _)| *k)
        else {
            return Err(Error::Invalid(format!(
                "unknown parameter '{key}'; valid keys: {}",
                valid_keys()
            )));
        };
        let mut p = self.clone();
        let k = key;
        match canonical {
            "num_trees" => p.num_trees = parse_usize(k, value)?,
            "num_leaves" => p.num_leaves = parse_usize(k, value)?,
            "learning_rate" => p.learning_rate = parse_f64(k, value)?,
            "max_bin" => p.max_bin = parse_usize(k, value)?,
            "min_data_in_leaf" => p.min_data_in_leaf = parse_usize(k, value)?,
            "min_sum_hessian_in_leaf" => p.min_sum_hessian_in_leaf = parse_f64(k, value)?,
            "lambda_l1" => p.lambda_l1 = parse_f64(k, value)?,
            "lambda_l2" => p.lambda_l2 = parse_f64(k, value)?,
            "max_depth" => p.max_depth = parse_optional(k, value)?,
            "feature_fraction" => p.feature_fraction = parse_f64(k, value)?,
            "bagging_fraction" => p.bagging_fraction = parse_f64(k, value)?,
            "bagging_freq" => p.bagging_freq = parse_usize(k, value)?,
            "early_stopping_rounds" => p.early_stopping_rounds = parse_optional(k, value)?,
            "class_weight" => {
                p.class_weight = match given.as_str() {
                    "is_unbalance" | "unbalance" | "unbalanced_sets" => {
                        if parse_bool(k, value)? {
                            ClassWeight::Balanced
                        } else {
                            ClassWeight::None
                        }
                    }
                    "scale_pos_weight" => ClassWeight::Given(vec![1.0, parse_f64(k, value)?]),
                    _ => match value.to_ascii_lowercase().as_str() {
                        "balanced" => ClassWeight::Balanced,
                        "none" | "" => ClassWeight::None,
                        _ => ClassWeight::Given(
                            value
                                .split(',')
                                .map(|w| parse_f64(k, w.trim()))
                                .collect::<Result<Vec<_>>>()
                                .map_err(|_| bad(k, value, "'balanced', 'none' or comma-separated weights per class like '1,3.5'"))?,
                        ),
                    },
                }
            }
            "seed" => {
                p.seed = match value.parse::<i64>() {
                    Ok(v) => v as u64,
                    Err(_) => value.parse::<u64>().map_err(|_| bad(k, value, "an integer"))?,
                }
            }
            "threads" => p.threads = value.parse::<i64>().map_err(|_| bad(k, value, "an integer"))?.max(0) as usize,
            "max_cat_to_onehot" => p.max_cat_to_onehot = parse_usize(k, value)?,
            "cat_smooth" => p.cat_smooth = parse_f64(k, value)?,
            "cat_l2" => p.cat_l2 = parse_f64(k, value)?,
            "max_cat_threshold" => p.max_cat_threshold = parse_usize(k, value)?,
            "min_gain_to_split" => p.min_gain_to_split = parse_f64(k, value)?,
            "min_data_per_group" => p.min_data_per_group = parse_usize(k, value)?,
            _ => unreachable!("every key in KEYS is handled"),
        }
        p.validate()
            .map_err(|e| Error::Invalid(format!("{e} (set as '{key}={value}')")))?;
        *self = p;
        Ok(())
    }

    /// Checks every parameter's range; the error names the parameter.
    pub fn validate(&self) -> Result<()> {
        let fail =
            |key: &str, what: String| Err(Error::Invalid(format!("parameter '{key}' {what}")));
        if self.num_trees == 0 {
            return fail("num_trees", "must be at least 1".into());
        }
        if self.num_leaves < 2 || self.num_leaves > 131_072 {
            return fail(
                "num_leaves",
                format!("must be in 2..=131072, got {}", self.num_leaves),
            );
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return fail(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            );
        }
        if self.max_bin < 2 || self.max_bin > 65_535 {
            return fail(
                "max_bin",
                format!("must be in 2..=65535, got {}", self.max_bin),
            );
        }
        for (key, v) in [
            ("min_sum_hessian_in_leaf", self.min_sum_hessian_in_leaf),
            ("lambda_l1", self.lambda_l1),
            ("lambda_l2", self.lambda_l2),
            ("cat_smooth", self.cat_smooth),
            ("cat_l2", self.cat_l2),
            ("min_gain_to_split", self.min_gain_to_split),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return fail(key, format!("must be a non-negative number, got {v}"));
            }
        }
        if self.max_depth == Some(0) {
            return fail(
                "max_depth",
                "must be at least 1 (or unset for no limit)".into(),
            );
        }
        for (key, v) in [
            ("feature_fraction", self.feature_fraction),
            ("bagging_fraction", self.bagging_fraction),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return fail(key, format!("must be in (0, 1], got {v}"));
            }
        }
        if self.early_stopping_rounds == Some(0) {
            return fail(
                "early_stopping_rounds",
                "must be at least 1 (or unset)".into(),
            );
        }
        if self.max_cat_to_onehot == 0 {
            return fail("max_cat_to_onehot", "must be at least 1".into());
        }
        if self.max_cat_threshold == 0 {
            return fail("max_cat_threshold", "must be at least 1".into());
        }
        if let ClassWeight::Given(w) = &self.class_weight
            && (w.is_empty() || w.iter().any(|v| !(*v > 0.0 && v.is_finite())))
        {
            return fail(
                "class_weight",
                format!("must be positive finite weights, one per class, got {w:?}"),
            );
        }
        Ok(())
    }
}
