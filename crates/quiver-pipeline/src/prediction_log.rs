//! The prediction log's layout and its one rule for recording a model input, shared by the
//! server that writes the log (`quiver-server`'s writer task) and the monitors that read it
//! back (`quiver-monitor`: `log:` drift sets, `quiver consistency --log`).
//!
//! The log lives in [`dir`] (`server: {prediction_log: {path}}` in `quiver.yaml`, default
//! `.quiver/prediction_log`), hive-partitioned as `model=NAME/version=N/date=YYYY-MM-DD/`, one
//! schema per version: the [`META_COLUMNS`] and the request's entity key columns, then one
//! column per model input (named by [`quiver_ml::Encoding::column_name`]: `view__feature`, or
//! `view__feature[i]` for a vector's component), then [`SCORE_COLUMNS`]. An input is recorded
//! by [`cell`]: a number as the model saw it (float64, null for missing), a categorical value as
//! its text.

use std::path::{Path, PathBuf};

use quiver_core::yaml::RawPredictionLog;
use quiver_ml::Encoding;
use quiver_online::Value;

use crate::encoding::encode_online;

/// The log's folder: `raw.path` (an `s3://` URL as it is, a relative folder against `root`,
/// the repository) or `.quiver/prediction_log`.
pub fn dir(raw: Option<&RawPredictionLog>, root: &Path) -> PathBuf {
    let path = raw
        .and_then(|r| r.path.as_deref())
        .unwrap_or(".quiver/prediction_log");
    if quiver_offline::remote::is_url(path) {
        return PathBuf::from(path.trim_end_matches('/'));
    }
    root.join(path)
}

/// The folder of a model's log (`version`: one version's).
pub fn model_dir(log_dir: &Path, model: &str, version: Option<i64>) -> PathBuf {
    let d = log_dir.join(format!("model={model}"));
    match version {
        Some(v) => d.join(format!("version={v}")),
        None => d,
    }
}

/// Columns that describe the request: the time of the prediction, the model, version and arm.
pub const META_COLUMNS: &[&str] = &["event_timestamp", "model", "version", "arm"];

/// Columns of the model's outputs: the score (the top class's probability for a multiclass
/// model), the class (multiclass only, else null) and every output.
pub const SCORE_COLUMNS: &[&str] = &["score", "class", "scores"];

/// One input as the model saw it, as the log records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A number (NaN: missing).
    Number(f64),
    /// A categorical value's text (None: missing).
    Text(Option<String>),
}

impl Cell {
    /// As an online value: a number as float64 (NaN as null), text as a string.
    pub fn to_value(&self) -> Value {
        match self {
            Cell::Number(x) if x.is_nan() => Value::Null,
            Cell::Number(x) => Value::Float64(*x),
            Cell::Text(Some(s)) => Value::String(s.clone()),
            Cell::Text(None) => Value::Null,
        }
    }
}

/// The cell the log records for an input with `encoding` whose (fresh) value is `value`
/// (`None`: no value, or a stale one). Numeric inputs are the encoded number the model scored
/// on; text inputs keep the text (an integer by its decimal text), not its code.
pub fn cell(value: Option<&Value>, encoding: &Encoding) -> Cell {
    match encoding {
        Encoding::Number | Encoding::Element { .. } => {
            Cell::Number(value.map_or(f64::NAN, |v| encode_online(v, encoding)))
        }
        Encoding::Category { .. } | Encoding::Frequency { .. } => Cell::Text(match value {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Int64(v)) => Some(v.to_string()),
            Some(Value::Int32(v)) => Some(v.to_string()),
            Some(Value::Null) | None => None,
            Some(other) => Some(format!("{other:?}")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_what_the_model_saw() {
        assert_eq!(
            cell(Some(&Value::Int64(3)), &Encoding::Number),
            Cell::Number(3.0)
        );
        assert!(matches!(cell(None, &Encoding::Number), Cell::Number(x) if x.is_nan()));
        let vocab = Encoding::Category {
            vocabulary: vec!["a".into()],
        };
        assert_eq!(
            cell(Some(&Value::String("zz".into())), &vocab),
            Cell::Text(Some("zz".into()))
        );
        assert_eq!(
            cell(Some(&Value::Int64(7)), &vocab),
            Cell::Text(Some("7".into()))
        );
        assert_eq!(cell(Some(&Value::Null), &vocab), Cell::Text(None));
        assert_eq!(
            cell(
                Some(&Value::Float32List(vec![1.0, 2.5])),
                &Encoding::Element { index: 1 }
            ),
            Cell::Number(2.5)
        );
        assert_eq!(Cell::Number(f64::NAN).to_value(), Value::Null);
        assert_eq!(
            Cell::Text(Some("x".into())).to_value(),
            Value::String("x".into())
        );
        assert_eq!(
            dir(None, Path::new("/r")),
            PathBuf::from("/r/.quiver/prediction_log")
        );
    }
}
