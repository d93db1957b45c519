//! One decision tree, in the layout LightGBM uses, so that trees Quiver trains and trees imported
//! from a LightGBM text model share one predictor and one TreeSHAP.
//!
//! Internal node `i` splits on `split_feature[i]`. Children are node indices when `>= 0` and
//! leaves when negative (`!child` is the leaf index). `decision[i]` packs LightGBM's decision
//! type: bit 0 categorical, bit 1 default-left, bits 2-3 the missing type (0 none, 1 zero, 2 NaN).

use serde::{Deserialize, Serialize};

/// Values whose magnitude is at most this count as zero: LightGBM's `kZeroThreshold`, which is
/// declared `const double kZeroThreshold = 1e-35f;`, i.e. the f32 nearest 1e-35 widened to f64.
pub const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

/// Missing-value handling of a split, as LightGBM encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingType {
    /// NaN is treated as 0.0.
    None,
    /// Zero (and NaN) go the default way.
    Zero,
    /// NaN goes the default way.
    NaN,
}

/// A decision tree. A tree with one leaf has no internal nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub split_feature: Vec<u32>,
    /// Numerical split: go left when `x <= threshold`. Categorical split: index into `cat_boundaries`.
    /// LightGBM writes `inf` for a split every value passes; JSON has no infinity, so
    /// non-finite values are stored as the strings `"inf"`, `"-inf"`, `"nan"` ([`floats`]).
    #[serde(with = "floats")]
    pub threshold: Vec<f64>,
    pub decision: Vec<u8>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    pub split_gain: Vec<f64>,
    /// Training rows that reached each internal node (TreeSHAP's cover).
    pub internal_count: Vec<f64>,
    /// For categorical split `k`, its bitset words are `cat_bitset[cat_boundaries[k]..cat_boundaries[k+1]]`;
    /// a category `c` goes left when bit `c` is set.
    pub cat_boundaries: Vec<u32>,
    pub cat_bitset: Vec<u32>,
    pub leaf_value: Vec<f64>,
    pub leaf_count: Vec<f64>,
}

impl Tree {
    /// Decision-type helpers.
    pub fn is_categorical(&self, node: usize) -> bool {
        self.decision[node] & 1 != 0
    }
    pub fn default_left(&self, node: usize) -> bool {
        self.decision[node] & 2 != 0
    }
    pub fn missing_type(&self, node: usize) -> MissingType {
        match (self.decision[node] >> 2) & 3 {
            1 => MissingType::Zero,
            2 => MissingType::NaN,
            _ => MissingType::None,
        }
    }
    pub fn num_leaves(&self) -> usize {
        self.leaf_value.len()
    }

    /// The child (node `>= 0` or `!leaf`) that `row` goes to from internal node `node`, with
    /// exactly LightGBM's rules (`Tree::NumericalDecision` / `CategoricalDecision`).
    #[inline]
    pub fn next(&self, node: usize, row: &[f64]) -> i32 {
        let mut x = row[self.split_feature[node] as usize];
        if self.is_categorical(node) {
            if x.is_nan() {
                return self.right[node];
            }
            let c = x as i64;
            if c < 0 {
                return self.right[node];
            }
            let k = self.threshold[node] as usize;
            let (lo, hi) = (
                self.cat_boundaries[k] as usize,
                self.cat_boundaries[k + 1] as usize,
            );
            let word = (c / 32) as usize;
            if word < hi - lo && (self.cat_bitset[lo + word] >> (c % 32)) & 1 != 0 {
                return self.left[node];
            }
            return self.right[node];
        }
        let missing = self.missing_type(node);
        // LightGBM's prediction APIs drop the values it counts as zero (|x| <= kZeroThreshold)
        // from every input row, so they reach the tree as 0.0.
        if (x.is_nan() && missing != MissingType::NaN) || x.abs() <= ZERO_THRESHOLD {
            x = 0.0;
        }
        if (missing == MissingType::Zero && x.abs() <= ZERO_THRESHOLD)
            || (missing == MissingType::NaN && x.is_nan())
        {
            return if self.default_left(node) {
                self.left[node]
            } else {
                self.right[node]
            };
        }
        if x <= self.threshold[node] {
            self.left[node]
        } else {
            self.right[node]
        }
    }

    /// The leaf `row` falls into.
    #[inline]
    pub fn leaf(&self, row: &[f64]) -> usize {
        if self.split_feature.is_empty() {
            return 0;
        }
        let mut node = 0i32;
        while node >= 0 {
            node = self.next(node as usize, row);
        }
        (!node) as usize
    }

    /// The tree's output for `row`.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.leaf_value[self.leaf(row)]
    }
}

/// Serde for `f64` lists that may hold infinities or NaN: finite values as JSON numbers, the
/// others as `"inf"`, `"-inf"`, `"nan"` (serde_json would write `null` and not read it back).
mod floats {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Float {
        Number(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(|&v| {
            if v.is_finite() {
                Float::Number(v)
            } else if v.is_nan() {
                Float::Text("nan".into())
            } else if v > 0.0 {
                Float::Text("inf".into())
            } else {
                Float::Text("-inf".into())
            }
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Float>::deserialize(d)?
            .into_iter()
            .map(|f| match f {
                Float::Number(v) => Ok(v),
                Float::Text(t) => match t.as_str() {
                    "inf" => Ok(f64::INFINITY),
                    "-inf" => Ok(f64::NEG_INFINITY),
                    "nan" => Ok(f64::NAN),
                    other => Err(D::Error::custom(format!(
                        "threshold: '{other}' is not a number, \"inf\", \"-inf\" or \"nan\""
                    ))),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod float_tests {
    use super::Tree;

    #[test]
    fn infinite_thresholds_survive_json() {
        let t = Tree {
            threshold: vec![1.5, f64::INFINITY, f64::NEG_INFINITY],
            ..Tree::default()
        };
        let text = serde_json::to_string(&t).unwrap();
        assert!(text.contains(r#""threshold":[1.5,"inf","-inf"]"#), "{text}");
        let back: Tree = serde_json::from_str(&text).unwrap();
        assert_eq!(back.threshold, t.threshold);
        let nan: Tree = serde_json::from_str(&text.replace("1.5", "\"nan\"")).unwrap();
        assert!(nan.threshold[0].is_nan());
    }
}
