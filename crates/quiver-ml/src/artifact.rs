//! What a registered model version stores: the model, plus how each input is encoded from the
//! feature values a feature service yields. The same encoding runs when a training set is built
//! and when `/predict` scores online values, so training and serving see identical numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Model, Result};

/// How one model input is made from a feature value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Encoding {
    /// Numbers as f64 (booleans as 0/1); null is missing (NaN).
    Number,
    /// Strings (or integers) as category codes: the position in `vocabulary`. A value not in
    /// the vocabulary, and null, are missing (trees send them right, like unseen categories).
    Category {
        /// Categories seen in training, in code order.
        vocabulary: Vec<String>,
    },
    /// Strings (or integers) as their share of the training rows (frequency encoding, learned on
    /// the training split only, so no validation or test row leaks into it). A value not seen in
    /// training is 0; null is missing. Suits high-cardinality columns (sellers, merchants) whose
    /// codes would mean nothing to a tree.
    Frequency {
        /// Share of the training rows (non-null values) holding each value.
        frequencies: BTreeMap<String, f64>,
    },
    /// One component of a fixed-length vector feature (an embedding): a vector of n numbers is
    /// n inputs reading the same feature, component 0 to n - 1. A null vector, or one too short,
    /// is missing.
    Element {
        /// The component.
        index: usize,
    },
}

/// One model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The feature reference it reads, `view:feature` (or `request:name` for request data).
    pub feature: String,
    /// How values become numbers.
    pub encoding: Encoding,
}

/// The file stored for a model version (`model.json` in its artifact directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// Format version of this file.
    pub format: u32,
    /// The inputs, in the model's feature order.
    pub inputs: Vec<Input>,
    /// The model.
    pub model: Model,
    /// Class labels for multiclass models (code order), if the label was not already 0..k-1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

impl ModelArtifact {
    /// Current format version.
    pub const FORMAT: u32 = 1;

    /// Reads `model.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let a: ModelArtifact =
            serde_json::from_str(text).map_err(|e| Error::ModelFile(format!("model.json: {e}")))?;
        if a.format > Self::FORMAT {
            return Err(Error::ModelFile(format!(
                "model.json has format {} but this Quiver reads up to {}: upgrade Quiver",
                a.format,
                Self::FORMAT
            )));
        }
        if a.inputs.len() != a.model.feature_names().len() {
            return Err(Error::ModelFile(format!(
                "model.json: {} inputs but the model has {} features",
                a.inputs.len(),
                a.model.feature_names().len()
            )));
        }
        Ok(a)
    }

    /// Writes `model.json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("artifacts serialize")
    }
}

impl Encoding {
    /// Encodes a category value (as text).
    pub fn category_code(vocabulary: &[String], value: &str) -> f64 {
        vocabulary
            .iter()
            .position(|v| v == value)
            .map_or(f64::NAN, |i| i as f64)
    }

    /// Encodes a value (as text) by its training frequency: 0 when unseen.
    pub fn frequency(frequencies: &BTreeMap<String, f64>, value: &str) -> f64 {
        frequencies.get(value).copied().unwrap_or(0.0)
    }

    /// Learns frequencies from the training values (nulls skipped).
    pub fn learn_frequencies<'a>(values: impl Iterator<Item = &'a str>) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0u64;
        for v in values {
            *counts.entry(v.to_string()).or_default() += 1;
            total += 1;
        }
        counts
            .into_iter()
            .map(|(k, c)| (k, c as f64 / total as f64))
            .collect()
    }

    /// Whether the input is read as text (category codes or frequencies).
    pub fn is_text(&self) -> bool {
        matches!(self, Encoding::Category { .. } | Encoding::Frequency { .. })
    }

    /// The model column of an input reading `feature`: the feature itself, or `feature[i]` for
    /// component `i` of a vector.
    pub fn column_name(&self, feature: &str) -> String {
        match self {
            Encoding::Element { index } => format!("{feature}[{index}]"),
            _ => feature.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LinearModel, Objective};

    #[test]
    fn round_trip_and_format_checks() {
        let a = ModelArtifact {
            format: 1,
            inputs: vec![Input {
                feature: "v:f".into(),
                encoding: Encoding::Category {
                    vocabulary: vec!["a".into(), "b".into()],
                },
            }],
            model: Model::Linear(LinearModel {
                objective: Objective::Regression,
                feature_names: vec!["f".into()],
                mean: vec![0.0],
                scale: vec![1.0],
                weights: vec![vec![2.0]],
                intercept: vec![1.0],
            }),
            classes: vec![],
        };
        let back = ModelArtifact::from_json(&a.to_json()).unwrap();
        assert_eq!(back, a);
        assert_eq!(Encoding::category_code(&["a".into(), "b".into()], "b"), 1.0);
        assert!(Encoding::category_code(&["a".into()], "zz").is_nan());
        let f = Encoding::learn_frequencies(["x", "y", "x", "x"].into_iter());
        assert_eq!(Encoding::frequency(&f, "x"), 0.75);
        assert_eq!(Encoding::frequency(&f, "y"), 0.25);
        assert_eq!(Encoding::frequency(&f, "unseen"), 0.0);
        let freq = Encoding::Frequency { frequencies: f };
        let text = serde_json::to_string(&freq).unwrap();
        assert_eq!(
            text,
            r#"{"type":"frequency","frequencies":{"x":0.75,"y":0.25}}"#
        );
        assert_eq!(serde_json::from_str::<Encoding>(&text).unwrap(), freq);
        let newer = a.to_json().replace("\"format\":1", "\"format\":9");
        let e = ModelArtifact::from_json(&newer).unwrap_err().to_string();
        assert!(e.contains("format 9"), "{e}");
        let e = ModelArtifact::from_json("{").unwrap_err().to_string();
        assert!(e.starts_with("model file: model.json"), "{e}");
    }
}
