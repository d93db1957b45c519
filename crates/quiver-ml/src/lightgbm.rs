//! Reading LightGBM text models (`Booster.save_model`, `model.txt`) into a [`TreeEnsemble`].
//!
//! The file is a header of `key=value` lines, then `Tree=N` blocks separated by blank lines,
//! then `end of trees` (feature importances and parameters after it are ignored). Every tree is
//! checked (value counts, feature and child indices, categorical bitsets, that the nodes form
//! one tree) so that a corrupt or truncated file is an [`Error::ModelFile`] naming the line and
//! field, never a panic while scoring.
//!
//! Supported objectives: `binary` (sigmoid), `multiclass` (softmax), and the regression family
//! whose prediction is the raw score (`regression`, `regression_l1`, `huber`, `fair`,
//! `quantile`, `mape`). A model without an `objective` line (custom objective) with one output
//! is read as raw-score regression, which is what LightGBM predicts for it. Refused, with an
//! error saying why: objectives whose output transform Quiver has no [`Objective`] for
//! (`poisson`, `gamma`, `tweedie`: exp; `cross_entropy`, `cross_entropy_lambda`,
//! `multiclassova`; `regression ... sqrt`), ranking objectives, linear trees (`is_linear=1`) and
//! random-forest mode (`average_output`).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::{Objective, TreeEnsemble};
use crate::tree::Tree;
use crate::{Error, Result};

fn err(line: usize, msg: impl std::fmt::Display) -> Error {
    Error::ModelFile(format!("line {line}: {msg}"))
}

/// A `key=value` line.
#[derive(Clone, Copy)]
struct Field<'a> {
    value: &'a str,
    line: usize,
}

/// The `key=value` lines of the header or of one `Tree=N` block.
struct Block<'a> {
    /// `"Tree=3: "` for a tree, empty for the header: prefixed to messages.
    label: String,
    line: usize,
    fields: HashMap<&'a str, Field<'a>>,
}

impl<'a> Block<'a> {
    fn new(label: String, line: usize) -> Self {
        Block {
            label,
            line,
            fields: HashMap::new(),
        }
    }

    fn insert(&mut self, key: &'a str, value: &'a str, line: usize) -> Result<()> {
        if let Some(prev) = self.fields.insert(key, Field { value, line }) {
            return Err(err(
                line,
                format_args!(
                    "{}{key} appears twice (first on line {})",
                    self.label, prev.line
                ),
            ));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<Field<'a>> {
        self.fields.get(key).copied()
    }

    fn missing(&self, key: &str) -> Error {
        err(self.line, format_args!("{}missing field {key}", self.label))
    }

    fn required(&self, key: &str) -> Result<Field<'a>> {
        self.get(key).ok_or_else(|| self.missing(key))
    }

    /// A single integer field.
    fn int(&self, f: Field<'_>, key: &str, min: i64, max: i64) -> Result<i64> {
        let v: i64 = f.value.trim().parse().map_err(|_| {
            err(
                f.line,
                format_args!("{}{key}: {:?} is not an integer", self.label, f.value),
            )
        })?;
        if v < min || v > max {
            return Err(err(
                f.line,
                format_args!("{}{key}={v} is out of range [{min}, {max}]", self.label),
            ));
        }
        Ok(v)
    }

    /// A space-separated list of exactly `expected` values, parsed by `parse`
    /// (`None` when the field is absent).
    fn list<T>(
        &self,
        key: &str,
        expected: usize,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<Vec<T>>> {
        let Some(f) = self.get(key) else {
            return Ok(None);
        };
        let tokens: Vec<&str> = f.value.split_ascii_whitespace().collect();
        if tokens.len() != expected {
            return Err(err(
                f.line,
                format_args!(
                    "{}{key} has {} values, expected {expected}",
                    self.label,
                    tokens.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            match parse(t) {
                Some(v) => out.push(v),
                None => {
                    return Err(err(
                        f.line,
                        format_args!("{}{key}: value {i} ({t:?}) is not {what}", self.label),
                    ));
                }
            }
        }
        Ok(Some(out))
    }

    fn floats(&self, key: &str, expected: usize) -> Result<Option<Vec<f64>>> {
        self.list(key, expected, "a number", |t| t.parse::<f64>().ok())
    }

    fn ints(&self, key: &str, expected: usize, min: i64, max: i64) -> Result<Option<Vec<i64>>> {
        let what = format!("an integer in [{min}, {max}]");
        self.list(key, expected, &what, |t| {
            t.parse::<i64>().ok().filter(|v| (min..=max).contains(v))
        })
    }

    fn required_floats(&self, key: &str, expected: usize) -> Result<Vec<f64>> {
        match self.floats(key, expected)? {
            Some(v) => Ok(v),
            None if expected == 0 => Ok(Vec::new()),
            None => Err(self.missing(key)),
        }
    }

    fn required_ints(&self, key: &str, expected: usize, min: i64, max: i64) -> Result<Vec<i64>> {
        match self.ints(key, expected, min, max)? {
            Some(v) => Ok(v),
            None if expected == 0 => Ok(Vec::new()),
            None => Err(self.missing(key)),
        }
    }
}

/// Lines of the file, numbered from 1, without line terminators.
struct Lines<'a> {
    lines: Vec<&'a str>,
    pos: usize,
}

impl<'a> Lines<'a> {
    fn peek(&self) -> Option<(usize, &'a str)> {
        self.lines.get(self.pos).map(|l| (self.pos + 1, *l))
    }
    fn skip_blank(&mut self) {
        while self.peek().is_some_and(|(_, l)| l.trim().is_empty()) {
            self.pos += 1;
        }
    }
    /// The number of the file's last line.
    fn last_line(&self) -> usize {
        let n = self.lines.len();
        if n > 1 && self.lines[n - 1].is_empty() {
            n - 1
        } else {
            n.max(1)
        }
    }
}

const INT32: i64 = i32::MAX as i64;

/// Parses a LightGBM text model (`Booster.save_model` / `model.txt`, versions v2-v4).
pub fn parse_lightgbm_text(text: &str) -> Result<TreeEnsemble> {
    let mut lines = Lines {
        lines: text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect(),
        pos: 0,
    };

    // The model type line.
    lines.skip_blank();
    match lines.peek() {
        None => return Err(err(1, "empty file, expected a LightGBM text model")),
        Some((_, "tree")) => lines.pos += 1,
        Some((n, l)) => {
            return Err(err(
                n,
                format_args!(
                    "expected \"tree\" (a LightGBM text model), found {:?}",
                    truncate(l)
                ),
            ));
        }
    }

    // The header, up to the first tree.
    let mut header = Block::new(String::new(), 1);
    loop {
        let Some((n, l)) = lines.peek() else {
            return Err(err(
                lines.last_line(),
                "file ends in the header, before any Tree= block or \"end of trees\" (truncated?)",
            ));
        };
        if l.starts_with("Tree=") || l.trim() == "end of trees" {
            break;
        }
        lines.pos += 1;
        if l.trim().is_empty() {
            continue;
        }
        match l.split_once('=') {
            Some((k, v)) => header.insert(k.trim(), v, n)?,
            None => header.insert(l.trim(), "", n)?,
        }
    }

    if let Some(f) = header.get("version")
        && !matches!(f.value.trim(), "v2" | "v3" | "v4")
    {
        return Err(err(
            f.line,
            format_args!(
                "unsupported model version {:?} (v2, v3 and v4 are read)",
                f.value
            ),
        ));
    }
    if let Some(f) = header.get("average_output") {
        return Err(err(
            f.line,
            "average_output: random-forest models (boosting=rf) average their trees; not supported",
        ));
    }
    let num_class = header.int(header.required("num_class")?, "num_class", 1, INT32)? as usize;
    let num_tree_per_iteration = match header.get("num_tree_per_iteration") {
        Some(f) => header.int(f, "num_tree_per_iteration", 1, INT32)? as usize,
        None => num_class,
    };
    let max_feature_idx = header.int(
        header.required("max_feature_idx")?,
        "max_feature_idx",
        0,
        INT32 - 1,
    )?;
    let names_field = header.required("feature_names")?;
    let feature_names: Vec<String> = names_field
        .value
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    let n_features = feature_names.len();
    if n_features as i64 != max_feature_idx + 1 {
        return Err(err(
            names_field.line,
            format_args!(
                "feature_names has {n_features} names, expected max_feature_idx+1 = {}",
                max_feature_idx + 1
            ),
        ));
    }
    let infos_field = header.required("feature_infos")?;
    let infos: Vec<&str> = infos_field.value.split_ascii_whitespace().collect();
    if infos.len() != n_features {
        return Err(err(
            infos_field.line,
            format_args!(
                "feature_infos has {} values, expected {n_features}",
                infos.len()
            ),
        ));
    }
    let mut categorical = Vec::with_capacity(n_features);
    for (j, info) in infos.iter().enumerate() {
        categorical.push(if *info == "none" || info.starts_with('[') {
            false
        } else if info.split(':').all(|c| c.parse::<i64>().is_ok()) {
            true
        } else {
            return Err(err(
                infos_field.line,
                format_args!("feature_infos: value {j} ({info:?}) is neither [min:max], a category list nor none"),
            ));
        });
    }
    let objective = parse_objective(
        header.get("objective"),
        num_class,
        num_tree_per_iteration,
        header.line,
    )?;
    let expected_trees = header
        .get("tree_sizes")
        .map(|f| (f.value.split_ascii_whitespace().count(), f.line));

    // The trees.
    let mut trees = Vec::new();
    loop {
        lines.skip_blank();
        let Some((n, l)) = lines.peek() else {
            return Err(err(
                lines.last_line(),
                format_args!(
                    "file ends after {} trees without \"end of trees\" (truncated?)",
                    trees.len()
                ),
            ));
        };
        if l.trim() == "end of trees" {
            break;
        }
        let Some(index) = l.strip_prefix("Tree=") else {
            return Err(err(
                n,
                format_args!(
                    "expected Tree={} or \"end of trees\", found {:?}",
                    trees.len(),
                    truncate(l)
                ),
            ));
        };
        if index.trim().parse::<usize>().ok() != Some(trees.len()) {
            return Err(err(
                n,
                format_args!("expected Tree={}, found {:?}", trees.len(), truncate(l)),
            ));
        }
        lines.pos += 1;
        let mut block = Block::new(format!("Tree={}: ", trees.len()), n);
        while let Some((n, l)) = lines.peek() {
            if l.trim().is_empty() || l.starts_with("Tree=") || l.trim() == "end of trees" {
                break;
            }
            lines.pos += 1;
            let Some((k, v)) = l.split_once('=') else {
                return Err(err(
                    n,
                    format_args!("{}expected key=value, found {:?}", block.label, truncate(l)),
                ));
            };
            block.insert(k.trim(), v, n)?;
        }
        trees.push(parse_tree(&block, n_features, &mut categorical)?);
    }
    let end_line = lines.peek().map_or(1, |(n, _)| n);
    if let Some((count, line)) = expected_trees
        && count != trees.len()
    {
        return Err(err(
            line,
            format_args!(
                "tree_sizes lists {count} trees, the file has {}",
                trees.len()
            ),
        ));
    }
    if trees.len() % num_tree_per_iteration != 0 {
        return Err(err(
            end_line,
            format_args!(
                "{} trees is not a multiple of num_tree_per_iteration={num_tree_per_iteration}",
                trees.len()
            ),
        ));
    }
    Ok(TreeEnsemble {
        objective,
        feature_names,
        categorical,
        trees,
    })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_objective(
    field: Option<Field<'_>>,
    num_class: usize,
    per_iter: usize,
    header_line: usize,
) -> Result<Objective> {
    let Some(f) = field else {
        // A custom objective: LightGBM predicts raw scores.
        if num_class != 1 || per_iter != 1 {
            return Err(err(
                header_line,
                format_args!(
                    "no objective and {per_iter} trees per iteration: raw multi-output models are not supported"
                ),
            ));
        }
        return Ok(Objective::Regression);
    };
    let line = f.line;
    let mut tokens = f.value.split_ascii_whitespace();
    let name = tokens.next().unwrap_or("");
    let params: Vec<&str> = tokens.collect();
    let param = |key: &str| {
        params
            .iter()
            .find_map(|p| p.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
    };
    let single_output = || {
        if num_class != 1 || per_iter != 1 {
            return Err(err(
                line,
                format_args!(
                    "objective {name} with num_class={num_class}, num_tree_per_iteration={per_iter}, expected 1"
                ),
            ));
        }
        Ok(())
    };
    match name {
        "binary" => {
            single_output()?;
            let s =
                param("sigmoid").ok_or_else(|| err(line, "objective binary without sigmoid:X"))?;
            let sigmoid: f64 = s.parse().map_err(|_| {
                err(
                    line,
                    format_args!("objective binary: sigmoid {s:?} is not a number"),
                )
            })?;
            if !(sigmoid.is_finite() && sigmoid > 0.0) {
                return Err(err(
                    line,
                    format_args!("objective binary: sigmoid {sigmoid} must be positive"),
                ));
            }
            Ok(Objective::Binary { sigmoid })
        }
        "multiclass" | "softmax" => {
            if let Some(k) = param("num_class")
                && k.parse::<usize>().ok() != Some(num_class)
            {
                return Err(err(
                    line,
                    format_args!(
                        "objective multiclass num_class:{k} but the header has num_class={num_class}"
                    ),
                ));
            }
            if num_class < 2 || per_iter != num_class {
                return Err(err(
                    line,
                    format_args!(
                        "objective multiclass with num_class={num_class}, num_tree_per_iteration={per_iter}"
                    ),
                ));
            }
            Ok(Objective::Multiclass { num_class })
        }
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error" => {
            single_output()?;
            if params.contains(&"sqrt") {
                return Err(err(
                    line,
                    format_args!(
                        "objective {name} sqrt (reg_sqrt=true) predicts sign(raw)*raw^2; not supported"
                    ),
                ));
            }
            Ok(Objective::Regression)
        }
        "poisson" | "gamma" | "tweedie" => Err(err(
            line,
            format_args!(
                "objective {name} predicts exp(raw score); not supported (Quiver has no log-link objective)"
            ),
        )),
        "cross_entropy" | "xentropy" | "cross_entropy_lambda" | "xentlambda" => Err(err(
            line,
            format_args!(
                "objective {name} (cross-entropy on probability labels) is not supported; use binary"
            ),
        )),
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => Err(err(
            line,
            format_args!(
                "objective {name} (one-vs-all sigmoids) is not supported; use multiclass (softmax)"
            ),
        )),
        "lambdarank" | "rank_xendcg" | "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart" => {
            Err(err(
                line,
                format_args!("ranking objective {name} is not supported"),
            ))
        }
        _ => Err(err(
            line,
            format_args!("unknown objective {:?}", f.value.trim()),
        )),
    }
}

fn parse_tree(b: &Block<'_>, n_features: usize, categorical: &mut [bool]) -> Result<Tree> {
    let num_leaves = b.int(b.required("num_leaves")?, "num_leaves", 1, INT32)? as usize;
    let num_cat = b.int(b.required("num_cat")?, "num_cat", 0, INT32)? as usize;
    if let Some(f) = b.get("is_linear")
        && b.int(f, "is_linear", 0, 1)? != 0
    {
        return Err(err(
            f.line,
            format_args!(
                "{}linear trees (linear_tree=true) are not supported",
                b.label
            ),
        ));
    }
    if let Some(f) = b.get("shrinkage") {
        f.value.trim().parse::<f64>().map_err(|_| {
            err(
                f.line,
                format_args!("{}shrinkage: {:?} is not a number", b.label, f.value),
            )
        })?;
    }
    let n_internal = num_leaves - 1;
    if num_leaves == 1 && num_cat > 0 {
        let f = b.required("num_cat")?;
        return Err(err(
            f.line,
            format_args!("{}num_cat={num_cat} in a tree with one leaf", b.label),
        ));
    }
    let leaf_value = b.required_floats("leaf_value", num_leaves)?;
    let leaf_count = b.ints("leaf_count", num_leaves, 0, INT32)?;
    // Read for validation only.
    b.floats("leaf_weight", num_leaves)?;
    b.floats("internal_value", n_internal)?;
    b.floats("internal_weight", n_internal)?;

    let split_feature = b.required_ints("split_feature", n_internal, 0, n_features as i64 - 1)?;
    let threshold = b.required_floats("threshold", n_internal)?;
    let left = b.required_ints(
        "left_child",
        n_internal,
        -(num_leaves as i64),
        n_internal as i64 - 1,
    )?;
    let right = b.required_ints(
        "right_child",
        n_internal,
        -(num_leaves as i64),
        n_internal as i64 - 1,
    )?;
    let decision = b
        .ints("decision_type", n_internal, 0, 15)?
        .unwrap_or_else(|| vec![0; n_internal]);
    let split_gain = b
        .floats("split_gain", n_internal)?
        .unwrap_or_else(|| vec![0.0; n_internal]);
    let internal_count = b
        .ints("internal_count", n_internal, 0, INT32)?
        .unwrap_or_else(|| vec![0; n_internal]);

    let (cat_boundaries, cat_bitset) = if num_cat > 0 {
        let bounds = b.required_ints("cat_boundaries", num_cat + 1, 0, INT32)?;
        let f = b.required("cat_boundaries")?;
        if bounds[0] != 0 || bounds.windows(2).any(|w| w[0] > w[1]) {
            return Err(err(
                f.line,
                format_args!("{}cat_boundaries must start at 0 and not decrease", b.label),
            ));
        }
        let words = *bounds.last().expect("num_cat + 1 values") as usize;
        let bitset = b.required_ints("cat_threshold", words, 0, u32::MAX as i64)?;
        (
            bounds.into_iter().map(|v| v as u32).collect(),
            bitset.into_iter().map(|v| v as u32).collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };

    let tree = Tree {
        split_feature: split_feature.iter().map(|&v| v as u32).collect(),
        threshold,
        decision: decision.iter().map(|&v| v as u8).collect(),
        left: left.iter().map(|&v| v as i32).collect(),
        right: right.iter().map(|&v| v as i32).collect(),
        split_gain,
        internal_count: internal_count.iter().map(|&v| v as f64).collect(),
        cat_boundaries,
        cat_bitset,
        leaf_value,
        leaf_count: leaf_count
            .unwrap_or_else(|| vec![0; num_leaves])
            .iter()
            .map(|&v| v as f64)
            .collect(),
    };

    // Categorical splits: the threshold is the index of the split's bitset.
    for node in 0..n_internal {
        if tree.is_categorical(node) {
            let t = tree.threshold[node];
            if !(t >= 0.0 && t.fract() == 0.0 && (t as usize) < num_cat) {
                let f = b.required("threshold")?;
                return Err(err(
                    f.line,
                    format_args!(
                        "{}threshold: value {node} ({t}) of a categorical split is not a category set index < num_cat={num_cat}",
                        b.label
                    ),
                ));
            }
            categorical[tree.split_feature[node] as usize] = true;
        }
    }
    check_structure(&tree, b)?;
    Ok(tree)
}

/// Checks that the nodes form one binary tree rooted at node 0 in which every internal node and
/// every leaf is reached exactly once.
fn check_structure(tree: &Tree, b: &Block<'_>) -> Result<()> {
    let n_internal = tree.split_feature.len();
    if n_internal == 0 {
        return Ok(());
    }
    let line = b.get("left_child").map_or(b.line, |f| f.line);
    let mut seen_node = vec![false; n_internal];
    let mut seen_leaf = vec![false; tree.leaf_value.len()];
    let mut stack = vec![0i32];
    seen_node[0] = true;
    while let Some(node) = stack.pop() {
        let node = node as usize;
        for child in [tree.left[node], tree.right[node]] {
            if child >= 0 {
                if std::mem::replace(&mut seen_node[child as usize], true) {
                    return Err(err(
                        line,
                        format_args!(
                            "{}node {child} has two parents (child of node {node} again)",
                            b.label
                        ),
                    ));
                }
                stack.push(child);
            } else if std::mem::replace(&mut seen_leaf[!child as usize], true) {
                return Err(err(
                    line,
                    format_args!(
                        "{}leaf {} is the child of two nodes (again of node {node})",
                        b.label, !child
                    ),
                ));
            }
        }
    }
    if let Some(i) = seen_node.iter().position(|s| !s) {
        return Err(err(
            line,
            format_args!("{}node {i} is not reachable from the root", b.label),
        ));
    }
    if let Some(i) = seen_leaf.iter().position(|s| !s) {
        return Err(err(
            line,
            format_args!("{}leaf {i} is not reachable from the root", b.label),
        ));
    }
    Ok(())
}

/// Writes `ensemble` as a LightGBM v4 text model that [`parse_lightgbm_text`] and LightGBM read
/// back to the same predictions (numbers are written in shortest round-trip form).
pub fn write_lightgbm_text(ensemble: &TreeEnsemble) -> String {
    fn join<T: std::fmt::Display>(v: impl IntoIterator<Item = T>) -> String {
        let mut s = String::new();
        for (i, x) in v.into_iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{x}");
        }
        s
    }
    fn float(v: f64) -> String {
        // LightGBM reads inf/nan; Rust's Display of f64 is exact (shortest round-trip) otherwise.
        if v.is_nan() {
            "nan".into()
        } else if v.is_infinite() {
            if v > 0.0 { "inf".into() } else { "-inf".into() }
        } else {
            format!("{v:?}")
        }
    }
    let k = ensemble.objective.num_outputs();
    let objective = match ensemble.objective {
        Objective::Binary { sigmoid } => format!("binary sigmoid:{}", float(sigmoid)),
        Objective::Multiclass { num_class } => format!("multiclass num_class:{num_class}"),
        Objective::Regression => "regression".to_string(),
    };
    let infos = ensemble
        .categorical
        .iter()
        .enumerate()
        .map(|(j, &cat)| {
            if !cat {
                return "[-inf:inf]".to_string();
            }
            // The categories any split of the model sends left (LightGBM lists the training categories).
            let mut cats = std::collections::BTreeSet::new();
            for t in &ensemble.trees {
                for node in 0..t.split_feature.len() {
                    if t.is_categorical(node) && t.split_feature[node] as usize == j {
                        let c = t.threshold[node] as usize;
                        let (lo, hi) = (
                            t.cat_boundaries[c] as usize,
                            t.cat_boundaries[c + 1] as usize,
                        );
                        for (w, word) in t.cat_bitset[lo..hi].iter().enumerate() {
                            for bit in 0..32 {
                                if word >> bit & 1 != 0 {
                                    cats.insert(w * 32 + bit);
                                }
                            }
                        }
                    }
                }
            }
            if cats.is_empty() {
                "0".to_string()
            } else {
                cats.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            }
        })
        .collect::<Vec<_>>();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tree\nversion=v4\nnum_class={k}\nnum_tree_per_iteration={k}\nlabel_index=0"
    );
    let _ = writeln!(
        out,
        "max_feature_idx={}",
        ensemble.feature_names.len() as i64 - 1
    );
    let _ = writeln!(out, "objective={objective}");
    let _ = writeln!(out, "feature_names={}", join(&ensemble.feature_names));
    let _ = writeln!(out, "feature_infos={}\n", join(&infos));
    for (i, t) in ensemble.trees.iter().enumerate() {
        let num_cat = t.cat_boundaries.len().saturating_sub(1);
        let _ = writeln!(
            out,
            "Tree={i}\nnum_leaves={}\nnum_cat={num_cat}",
            t.num_leaves()
        );
        let _ = writeln!(out, "split_feature={}", join(&t.split_feature));
        let _ = writeln!(
            out,
            "split_gain={}",
            join(t.split_gain.iter().map(|&v| float(v)))
        );
        let _ = writeln!(
            out,
            "threshold={}",
            join(t.threshold.iter().map(|&v| float(v)))
        );
        let _ = writeln!(out, "decision_type={}", join(&t.decision));
        let _ = writeln!(out, "left_child={}", join(&t.left));
        let _ = writeln!(out, "right_child={}", join(&t.right));
        let _ = writeln!(
            out,
            "leaf_value={}",
            join(t.leaf_value.iter().map(|&v| float(v)))
        );
        let _ = writeln!(
            out,
            "leaf_count={}",
            join(t.leaf_count.iter().map(|&v| v.round() as i64))
        );
        let _ = writeln!(
            out,
            "internal_count={}",
            join(t.internal_count.iter().map(|&v| v.round() as i64))
        );
        if num_cat > 0 {
            let _ = writeln!(out, "cat_boundaries={}", join(&t.cat_boundaries));
            let _ = writeln!(out, "cat_threshold={}", join(&t.cat_bitset));
        }
        let _ = writeln!(out, "is_linear=0\nshrinkage=1\n");
    }
    out.push_str("end of trees\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shap::tree_shap;

    /// A real LightGBM 4 binary model: 3 trees of 4 leaves, a NaN-aware split and categorical
    /// bitset splits, and LightGBM's own outputs on a few rows (see `generated_by` in the JSON).
    const FIXTURE: &str = include_str!("../tests/fixtures/lgbm_tiny_binary.txt");
    const FIXTURE_EXPECTED: &str = include_str!("../tests/fixtures/lgbm_tiny_binary_expected.json");

    /// Hand-written: tree 0 splits `f0 <= 1.5` (NaN goes left), tree 1 sends categories
    /// {1, 3, 33} of `f1` left, tree 2 is a single leaf.
    const HAND: &str = "tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=regression
feature_names=f0 f1
feature_infos=[0:10] 0:1:2:3:33
tree_sizes=1 1 1

Tree=0
num_leaves=2
num_cat=0
split_feature=0
split_gain=1
threshold=1.5
decision_type=10
left_child=-1
right_child=-2
leaf_value=1 2
leaf_weight=3 1
leaf_count=30 10
internal_value=0
internal_weight=0
internal_count=40
is_linear=0
shrinkage=1


Tree=1
num_leaves=2
num_cat=1
split_feature=1
split_gain=1
threshold=0
decision_type=1
left_child=-1
right_child=-2
leaf_value=0.25 -0.5
leaf_count=20 20
internal_count=40
cat_boundaries=0 2
cat_threshold=10 2
is_linear=0
shrinkage=0.1


Tree=2
num_leaves=1
num_cat=0
split_feature=
split_gain=
threshold=
decision_type=
left_child=
right_child=
leaf_value=0.125
leaf_weight=0
leaf_count=0
internal_value=
internal_weight=
internal_count=
is_linear=0
shrinkage=1


end of trees

feature_importances:
f0=1

parameters:
[boosting: gbdt]
end of parameters
";

    fn err_of(text: &str) -> String {
        match parse_lightgbm_text(text) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    /// The 1-based number of the first line of `text` starting with `prefix` after line `after`.
    fn line_of(text: &str, after: usize, prefix: &str) -> usize {
        text.lines()
            .enumerate()
            .skip(after)
            .find(|(_, l)| l.starts_with(prefix))
            .unwrap()
            .0
            + 1
    }

    #[test]
    fn hand_written_model_predicts_known_values() {
        let m = parse_lightgbm_text(HAND).unwrap();
        assert_eq!(m.objective, Objective::Regression);
        assert_eq!(m.feature_names, ["f0", "f1"]);
        assert_eq!(m.categorical, [false, true]);
        assert_eq!(m.trees.len(), 3);
        let nan = f64::NAN;
        for (row, want) in [
            ([1.0, 1.0], 1.0 + 0.25 + 0.125),
            ([2.0, 33.0], 2.0 + 0.25 + 0.125),
            ([nan, 2.0], 1.0 - 0.5 + 0.125), // NaN goes left (default_left, missing NaN)
            ([1.5, nan], 1.0 - 0.5 + 0.125), // threshold is inclusive; NaN category goes right
            ([3.0, -1.0], 2.0 - 0.5 + 0.125), // negative category goes right
            ([3.0, 64.0], 2.0 - 0.5 + 0.125), // category beyond the bitset goes right
            ([0.0, 3.7], 1.0 + 0.25 + 0.125), // category 3.7 is 3
            ([1e300, 32.0], 2.0 - 0.5 + 0.125), // bit 0 of word 1 is not set
        ] {
            assert_eq!(m.predict(&row), vec![want], "row {row:?}");
        }
    }

    #[test]
    fn real_model_matches_lightgbm() {
        let m = parse_lightgbm_text(FIXTURE).unwrap();
        assert_eq!(m.objective, Objective::Binary { sigmoid: 1.0 });
        assert_eq!(m.feature_names, ["a", "b", "c"]);
        assert_eq!(m.categorical, [false, false, true]);
        let expected: serde_json::Value = serde_json::from_str(FIXTURE_EXPECTED).unwrap();
        let rows = expected["rows"].as_array().unwrap();
        for (i, r) in rows.iter().enumerate() {
            let row: Vec<f64> = r
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
                .collect();
            let mut raw = [0.0];
            m.predict_raw(&row, &mut raw);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
            assert!(
                close(raw[0], expected["raw"][i].as_f64().unwrap()),
                "raw, row {i}"
            );
            assert!(
                close(m.predict(&row)[0], expected["pred"][i].as_f64().unwrap()),
                "pred, row {i}"
            );
            let contrib = tree_shap(&m, &row);
            let want = expected["contrib"][i].as_array().unwrap();
            assert_eq!(contrib[0].len(), want.len());
            for (j, w) in want.iter().enumerate() {
                assert!(
                    close(contrib[0][j], w.as_f64().unwrap()),
                    "contrib {j}, row {i}: {contrib:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn write_then_parse_round_trips() {
        for text in [HAND, FIXTURE] {
            let m = parse_lightgbm_text(text).unwrap();
            let back = parse_lightgbm_text(&write_lightgbm_text(&m)).unwrap();
            assert_eq!(back.trees, m.trees);
            assert_eq!(back.objective, m.objective);
            assert_eq!(back.feature_names, m.feature_names);
            assert_eq!(back.categorical, m.categorical);
        }
    }

    #[test]
    fn objectives() {
        let with = |obj: &str, num_class: usize| {
            let per = if obj.starts_with("multiclass") {
                num_class
            } else {
                1
            };
            let trees: String = (0..per)
                .map(|i| format!("Tree={i}\nnum_leaves=1\nnum_cat=0\nleaf_value=0.5\n\n"))
                .collect();
            format!(
                "tree\nversion=v4\nnum_class={num_class}\nnum_tree_per_iteration={per}\nmax_feature_idx=0\n\
                 objective={obj}\nfeature_names=x\nfeature_infos=none\n\n{trees}end of trees\n"
            )
        };
        let obj = |o: &str, k: usize| parse_lightgbm_text(&with(o, k)).map(|m| m.objective);
        assert_eq!(
            obj("binary sigmoid:2.5", 1).unwrap(),
            Objective::Binary { sigmoid: 2.5 }
        );
        assert_eq!(
            obj("multiclass num_class:3", 3).unwrap(),
            Objective::Multiclass { num_class: 3 }
        );
        for r in [
            "regression",
            "regression_l1",
            "huber",
            "fair",
            "quantile",
            "mape",
        ] {
            assert_eq!(obj(r, 1).unwrap(), Objective::Regression, "{r}");
        }
        let no_objective = with("x", 1).replace("objective=x\n", "");
        assert_eq!(
            parse_lightgbm_text(&no_objective).unwrap().objective,
            Objective::Regression
        );
        for (o, k, msg) in [
            (
                "poisson",
                1,
                "line 6: objective poisson predicts exp(raw score); not supported",
            ),
            ("gamma", 1, "exp(raw score)"),
            ("tweedie", 1, "exp(raw score)"),
            ("cross_entropy", 1, "not supported"),
            (
                "lambdarank",
                1,
                "ranking objective lambdarank is not supported",
            ),
            ("multiclassova num_class:3 sigmoid:1", 3, "one-vs-all"),
            ("regression sqrt", 1, "sqrt"),
            ("binary", 1, "without sigmoid"),
            ("binary sigmoid:1", 2, "expected 1"),
            ("frobnicate", 1, "line 6: unknown objective \"frobnicate\""),
        ] {
            let e = obj(o, k).unwrap_err().to_string();
            assert!(e.contains(msg), "{o}: {e}");
        }
    }

    #[test]
    fn refuses_linear_trees_and_random_forests() {
        let e = err_of(&FIXTURE.replacen("is_linear=0", "is_linear=1", 2));
        assert!(e.contains("Tree=0: linear trees"), "{e}");
        let e = err_of(&FIXTURE.replace("tree_sizes=", "average_output\ntree_sizes="));
        assert!(e.contains("line 10: average_output: random-forest"), "{e}");
    }

    #[test]
    fn corrupt_files_name_the_line() {
        let tree1 = line_of(FIXTURE, 0, "Tree=1");

        // Truncated in the middle of a line.
        let lv = line_of(FIXTURE, tree1, "leaf_value=");
        let cut = FIXTURE.lines().take(lv - 1).collect::<Vec<_>>().join("\n")
            + "\nleaf_value=0.1099233109219189 -0.1441";
        assert_eq!(
            err_of(&cut),
            format!("model file: line {lv}: Tree=1: leaf_value has 2 values, expected 4")
        );

        // Truncated after a whole tree.
        let cut = FIXTURE.split("Tree=2").next().unwrap();
        let e = err_of(cut);
        assert!(
            e.contains("file ends after 2 trees without \"end of trees\" (truncated?)"),
            "{e}"
        );
        // ... and after a whole tree with its "end of trees" line, caught by tree_sizes.
        let e = err_of(&(cut.to_string() + "end of trees\n"));
        assert_eq!(
            e,
            "model file: line 10: tree_sizes lists 3 trees, the file has 2"
        );

        // Not a number.
        let th = line_of(FIXTURE, tree1, "threshold=");
        let e =
            err_of(&FIXTURE.replace("threshold=0 0.53328944782002508 1", "threshold=0 0.53x 1"));
        assert_eq!(
            e,
            format!(
                "model file: line {th}: Tree=1: threshold: value 1 (\"0.53x\") is not a number"
            )
        );

        // Wrong count.
        let dt = line_of(FIXTURE, 0, "decision_type=");
        let e = err_of(&FIXTURE.replacen("decision_type=1 8 1", "decision_type=1 8", 1));
        assert_eq!(
            e,
            format!("model file: line {dt}: Tree=0: decision_type has 2 values, expected 3")
        );

        // Child index out of range, and children that do not form a tree.
        let lc = line_of(FIXTURE, 0, "left_child=");
        let e = err_of(&FIXTURE.replacen("left_child=-1 2 -2", "left_child=-1 7 -2", 1));
        assert_eq!(
            e,
            format!(
                "model file: line {lc}: Tree=0: left_child: value 1 (\"7\") is not an integer in [-4, 2]"
            )
        );
        let e = err_of(&FIXTURE.replacen("left_child=-1 2 -2", "left_child=-1 0 -2", 1));
        assert!(
            e.starts_with(&format!(
                "model file: line {lc}: Tree=0: node 0 has two parents"
            )),
            "{e}"
        );
        let e = err_of(&FIXTURE.replacen("left_child=-1 2 -2", "left_child=-1 -1 -2", 1));
        assert!(
            e.contains("Tree=0: leaf 0 is the child of two nodes"),
            "{e}"
        );

        // Feature index out of range; categorical split without a bitset.
        let e = err_of(&FIXTURE.replacen("split_feature=2 0 2", "split_feature=2 3 2", 1));
        assert!(
            e.contains("Tree=0: split_feature: value 1 (\"3\") is not an integer in [0, 2]"),
            "{e}"
        );
        let e = err_of(&FIXTURE.replacen(
            "threshold=0 0.030904301301913625 1",
            "threshold=5 0.030904301301913625 1",
            1,
        ));
        assert!(
            e.contains(
                "Tree=0: threshold: value 0 (5) of a categorical split is not a category set index"
            ),
            "{e}"
        );
        let e = err_of(&FIXTURE.replacen("cat_boundaries=0 1 2", "cat_boundaries=0 1 3", 1));
        assert!(
            e.contains("Tree=0: cat_threshold has 2 values, expected 3"),
            "{e}"
        );

        // Missing fields, trees out of order, header problems, garbage.
        let e = err_of(&FIXTURE.replacen("num_leaves=4\n", "", 1));
        assert_eq!(
            e,
            format!(
                "model file: line {}: Tree=0: missing field num_leaves",
                line_of(FIXTURE, 0, "Tree=0")
            )
        );
        let e = err_of(&FIXTURE.replace("Tree=1", "Tree=5"));
        assert_eq!(
            e,
            format!("model file: line {tree1}: expected Tree=1, found \"Tree=5\"")
        );
        assert_eq!(
            err_of(&FIXTURE.replace("max_feature_idx=2", "max_feature_idx=x")),
            "model file: line 6: max_feature_idx: \"x\" is not an integer"
        );
        let e = err_of(&FIXTURE.replace("feature_names=a b c", "feature_names=a b"));
        assert_eq!(
            e,
            "model file: line 8: feature_names has 2 names, expected max_feature_idx+1 = 3"
        );
        assert_eq!(
            err_of(""),
            "model file: line 1: empty file, expected a LightGBM text model"
        );
        assert_eq!(
            err_of("\u{0}\u{1}garbage\nmore"),
            "model file: line 1: expected \"tree\" (a LightGBM text model), found \"\\0\\u{1}garbage\""
        );
        let e = err_of("tree\nversion=v4\nnum_class=1\n");
        assert_eq!(
            e,
            "model file: line 3: file ends in the header, before any Tree= block or \"end of trees\" (truncated?)"
        );
    }

    /// Every truncation, every dropped line and many byte flips of a real model give an error or
    /// a model that scores without panicking.
    #[test]
    fn corrupt_files_never_panic() {
        let rows = [
            [0.5, 0.2, 0.0],
            [f64::NAN, -0.7, 3.0],
            [-1.2, 0.9, 7.0],
            [2.0, -0.1, 1e9],
        ];
        let try_text = |text: &str| {
            if let Ok(m) = parse_lightgbm_text(text) {
                for row in &rows {
                    let n = m.feature_names.len();
                    let row = &row[..n.min(3)];
                    if row.len() == n {
                        m.predict(row);
                        tree_shap(&m, row);
                    }
                }
            }
        };
        let end = FIXTURE.find("end of trees").unwrap() + 13;
        for cut in (0..end).filter(|&i| FIXTURE.is_char_boundary(i)) {
            try_text(&FIXTURE[..cut]);
        }
        let lines: Vec<&str> = FIXTURE.lines().collect();
        for skip in 0..lines.len() {
            let text: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| *l)
                .collect();
            try_text(&text.join("\n"));
        }
        let mut bytes = FIXTURE.as_bytes().to_vec();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet = b"0123456789-.=e \nTabcnx";
        for _ in 0..3000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pos = (state >> 33) as usize % end;
            let old = bytes[pos];
            bytes[pos] = alphabet[(state >> 20) as usize % alphabet.len()];
            try_text(&String::from_utf8_lossy(&bytes));
            bytes[pos] = old;
        }
    }
}
