//! Feature values into model inputs: Arrow columns (training sets, offline scoring, CSV) and
//! online store values (`/predict`), each read as `quiver_ml::FeatureValue`s and encoded by the
//! one rule, `quiver_ml::Encoding::encode`.
//!
//! Training also learns the encodings here ([`learn`]): a number stays a number, text becomes
//! category codes (or frequencies, when asked or for a linear model), a vector becomes one input
//! per component; vocabularies and frequencies are learned on the training rows only.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use quiver_ml::{Components, Encoding, FeatureValue};
use quiver_offline::types::is_vector;
use quiver_online::Value;

use crate::{Error, Result};

/// Whether a column holds text.
pub fn is_text(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// The value an online store value is to a model.
pub fn online_value(value: &Value) -> FeatureValue<'_> {
    match value {
        Value::Int64(v) => FeatureValue::Integer(*v),
        Value::Int32(v) => FeatureValue::Integer(i64::from(*v)),
        Value::Float64(v) => FeatureValue::Number(*v),
        Value::Float32(v) => FeatureValue::Number(f64::from(*v)),
        Value::Bool(v) => FeatureValue::Number(f64::from(u8::from(*v))),
        Value::String(s) => FeatureValue::Text(s),
        Value::Float32List(v) => FeatureValue::Vector(Components::F32(v)),
        Value::Float64List(v) => FeatureValue::Vector(Components::F64(v)),
        Value::Int64List(v) => FeatureValue::Vector(Components::I64(v)),
        // Training refuses timestamps and lists of text, so no input reads them.
        Value::Null | Value::Timestamp(_) | Value::StringList(_) => FeatureValue::Missing,
    }
}

/// Encodes one online store value (`/predict`).
pub fn encode_online(value: &Value, encoding: &Encoding) -> f64 {
    encoding.encode(online_value(value))
}

/// An Arrow column cast once into the form its values are read in.
enum Column {
    /// Numbers and booleans as float64.
    Numbers(Float64Array),
    /// Integers as int64.
    Integers(Int64Array),
    /// Text as utf8.
    Text(StringArray),
    /// Vectors as list<float64>, with the components' nulls made NaN.
    Vectors(ListArray, Vec<f64>),
}

impl Column {
    fn read(name: &str, col: &dyn Array) -> Result<Column> {
        let dt = col.data_type();
        Ok(if is_vector(dt) {
            let item = Arc::new(Field::new_list_field(DataType::Float64, true));
            let list = cast(col, &DataType::List(item))?.as_list::<i32>().clone();
            let values = list.values().as_primitive::<Float64Type>();
            let components = (0..values.len())
                .map(|j| {
                    if values.is_null(j) {
                        f64::NAN
                    } else {
                        values.value(j)
                    }
                })
                .collect();
            Column::Vectors(list, components)
        } else if dt.is_integer() {
            Column::Integers(
                cast(col, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            )
        } else if dt.is_numeric() || *dt == DataType::Boolean {
            Column::Numbers(
                cast(col, &DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            )
        } else if is_text(dt) {
            Column::Text(cast(col, &DataType::Utf8)?.as_string::<i32>().clone())
        } else {
            return Err(Error::Invalid(format!(
                "feature '{name}' has type {dt}, which the model cannot take yet (numbers, booleans, text and vectors of numbers are supported): remove it from the service or train on another service"
            )));
        })
    }

    fn len(&self) -> usize {
        match self {
            Column::Numbers(a) => a.len(),
            Column::Integers(a) => a.len(),
            Column::Text(a) => a.len(),
            Column::Vectors(a, _) => a.len(),
        }
    }

    /// Row `i`'s value.
    fn value(&self, i: usize) -> FeatureValue<'_> {
        match self {
            Column::Numbers(a) if a.is_valid(i) => FeatureValue::Number(a.value(i)),
            Column::Integers(a) if a.is_valid(i) => FeatureValue::Integer(a.value(i)),
            Column::Text(a) if a.is_valid(i) => FeatureValue::Text(a.value(i)),
            Column::Vectors(a, components) if a.is_valid(i) => {
                let offsets = a.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                FeatureValue::Vector(Components::F64(&components[start..end]))
            }
            _ => FeatureValue::Missing,
        }
    }

    fn encode(&self, encoding: &Encoding) -> Vec<f64> {
        (0..self.len())
            .map(|i| encoding.encode(self.value(i)))
            .collect()
    }

    /// The text of row `i` as text encodings read it (integers by their decimal text).
    fn text(&self, i: usize) -> Option<String> {
        match self.value(i) {
            FeatureValue::Text(s) => Some(s.to_string()),
            FeatureValue::Integer(v) => Some(v.to_string()),
            _ => None,
        }
    }
}

/// Encodes a feature column for scoring with a trained encoding (`models predict`,
/// `models score`): the same rule, value by value, as `/predict` applies to online values.
/// A column of the wrong kind (text where the model takes a number) is an error.
pub fn encode_column(name: &str, col: &dyn Array, encoding: &Encoding) -> Result<Vec<f64>> {
    let dt = col.data_type();
    match encoding {
        Encoding::Number if !(dt.is_numeric() || *dt == DataType::Boolean) => {
            return Err(Error::Invalid(format!(
                "feature '{name}' has type {dt}, but the model takes a number there"
            )));
        }
        Encoding::Element { .. } if !is_vector(dt) => {
            return Err(Error::Invalid(format!(
                "feature '{name}' has type {dt}, but the model takes a vector there"
            )));
        }
        _ => {}
    }
    Ok(Column::read(name, col)?.encode(encoding))
}

/// How training encodes one feature column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// Numbers as numbers, text as category codes, vectors by component.
    Default,
    /// Text or integers by their frequency in the training rows.
    Frequency,
}

/// Learns the encoding(s) of a feature column on the training rows and encodes every row:
/// one `(encoding, values)` per model input (a vector gives one per component).
pub fn learn(
    name: &str,
    col: &ArrayRef,
    train_rows: &[usize],
    how: Learn,
) -> Result<Vec<(Encoding, Vec<f64>)>> {
    let dt = col.data_type();
    if how == Learn::Frequency && !(is_text(dt) || dt.is_integer()) {
        return Err(Error::Invalid(format!(
            "--frequency-encode {name}: the feature is {dt}; frequency encoding takes text or integers"
        )));
    }
    let column = Column::read(name, col.as_ref())?;
    let encodings = match (&column, how) {
        (_, Learn::Frequency) => {
            let texts: Vec<String> = train_rows.iter().filter_map(|&i| column.text(i)).collect();
            vec![Encoding::Frequency {
                frequencies: Encoding::learn_frequencies(texts.iter().map(String::as_str)),
            }]
        }
        (Column::Text(s), Learn::Default) => {
            let mut vocabulary: BTreeMap<&str, ()> = BTreeMap::new();
            for &i in train_rows {
                if s.is_valid(i) {
                    vocabulary.insert(s.value(i), ());
                }
            }
            vec![Encoding::Category {
                vocabulary: vocabulary.into_keys().map(str::to_string).collect(),
            }]
        }
        (Column::Vectors(list, _), Learn::Default) => {
            let mut dim = None;
            for i in 0..list.len() {
                if list.is_null(i) {
                    continue;
                }
                let n = list.value_length(i) as usize;
                match dim {
                    None => dim = Some(n),
                    Some(d) if d != n => {
                        return Err(Error::Invalid(format!(
                            "feature '{name}' holds vectors of different lengths ({d} and {n}, training-set row {}): a model takes fixed-length vectors",
                            i + 1
                        )));
                    }
                    _ => {}
                }
            }
            let dim = dim.unwrap_or(0);
            if dim == 0 {
                return Err(Error::Invalid(format!(
                    "feature '{name}' is a vector column with no non-empty vector in the training set"
                )));
            }
            (0..dim).map(|index| Encoding::Element { index }).collect()
        }
        (Column::Numbers(_) | Column::Integers(_), Learn::Default) => vec![Encoding::Number],
    };
    let mut out = Vec::with_capacity(encodings.len());
    for encoding in encodings {
        let values = column.encode(&encoding);
        if encoding == Encoding::Number
            && let Some(i) = values.iter().position(|x| x.is_infinite())
        {
            return Err(Error::Invalid(format!(
                "feature '{name}' is {} at training-set row {}: features must be finite (null is fine: it is treated as missing)",
                values[i],
                i + 1
            )));
        }
        out.push((encoding, values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{BooleanArray, Float32Builder, Int32Array, ListBuilder};

    use super::*;

    /// Offline columns and online values encode alike, value by value.
    #[test]
    fn arrow_columns_and_online_values_encode_alike() {
        let ids: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None, Some(12)]));
        let freq = learn("v:id", &ids, &[0, 2], Learn::Frequency).unwrap();
        let (encoding, values) = &freq[0];
        assert_eq!(values[0], encode_online(&Value::Int32(7), encoding));
        assert_eq!(values[2], encode_online(&Value::Int64(12), encoding));
        assert!(values[1].is_nan() && encode_online(&Value::Null, encoding).is_nan());

        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("a"), None]));
        let cat = learn("v:s", &text, &[0, 1], Learn::Default).unwrap();
        let (encoding, values) = &cat[0];
        assert_eq!(values[..2], [1.0, 0.0]);
        assert_eq!(encode_online(&Value::String("b".into()), encoding), 1.0);
        assert_eq!(
            encode_column("v:s", text.as_ref(), encoding).unwrap()[..2],
            [1.0, 0.0]
        );

        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![true, false]));
        let (encoding, values) = &learn("v:b", &flags, &[0, 1], Learn::Default).unwrap()[0];
        assert_eq!(values, &[1.0, 0.0]);
        assert_eq!(encode_online(&Value::Bool(true), encoding), 1.0);

        let mut b = ListBuilder::new(Float32Builder::new());
        b.values().append_value(0.25);
        b.values().append_null();
        b.append(true);
        b.append(false);
        let vectors: ArrayRef = Arc::new(b.finish());
        let parts = learn("v:e", &vectors, &[0, 1], Learn::Default).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1[0], 0.25);
        assert!(parts[1].1[0].is_nan() && parts[0].1[1].is_nan());
        let online = Value::Float32List(vec![0.25, f32::NAN]);
        assert_eq!(encode_online(&online, &parts[0].0), 0.25);
        assert!(encode_column("v:e", text.as_ref(), &parts[0].0).is_err());
    }
}
