//! What a registered model version stores: the model, plus how each input is encoded from the
//! feature values a feature service yields ([`crate::encoding`]).

use serde::{Deserialize, Serialize};

use crate::{Encoding, Error, Model, Result};

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
