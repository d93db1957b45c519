//! Mapping Quiver value types to Arrow, and the rules for which stored columns may feed a
//! declared type.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use quiver_core::ValueType;

/// The timestamp type of Quiver's internal columns.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type of a value type.
pub fn arrow_type(t: ValueType) -> DataType {
    match t {
        ValueType::Int64 => DataType::Int64,
        ValueType::Int32 => DataType::Int32,
        ValueType::Float64 => DataType::Float64,
        ValueType::Float32 => DataType::Float32,
        ValueType::String => DataType::Utf8,
        ValueType::Bool => DataType::Boolean,
        ValueType::Timestamp => timestamp_type(),
        ValueType::Float32List
        | ValueType::Float64List
        | ValueType::Int64List
        | ValueType::StringList => {
            let inner = t.element().map(arrow_type).unwrap_or(DataType::Null);
            DataType::List(std::sync::Arc::new(
                datafusion::arrow::datatypes::Field::new_list_field(inner, true),
            ))
        }
    }
}

/// Whether `d` holds strings (any representation, dictionaries of strings included).
pub fn is_string(d: &DataType) -> bool {
    match d {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

fn is_int(d: &DataType) -> bool {
    matches!(
        d,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

/// Whether a stored column of type `d` may be read as `t` without losing meaning.
pub fn compatible(d: &DataType, t: ValueType) -> bool {
    match t {
        ValueType::Int64 => is_int(d) || matches!(d, DataType::UInt64 | DataType::Null),
        ValueType::Int32 => matches!(
            d,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::UInt8
                | DataType::UInt16
                | DataType::Null
        ),
        ValueType::Float64 | ValueType::Float32 => {
            matches!(
                d,
                DataType::Float16
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Decimal128(..)
                    | DataType::Null
            ) || is_int(d)
                || d == &DataType::UInt64
        }
        ValueType::String => is_string(d) || d == &DataType::Null,
        ValueType::Bool => matches!(d, DataType::Boolean | DataType::Null),
        ValueType::Timestamp => matches!(
            d,
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null
        ),
        ValueType::Float32List
        | ValueType::Float64List
        | ValueType::Int64List
        | ValueType::StringList => match d {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                t.element().is_some_and(|e| compatible(f.data_type(), e))
            }
            DataType::Null => true,
            _ => false,
        },
    }
}

/// Whether `d` can serve as an event timestamp column.
pub fn is_timestamp_like(d: &DataType) -> bool {
    matches!(
        d,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    ) || is_string(d)
}

/// Human name of an Arrow type for error messages.
pub fn describe(d: &DataType) -> String {
    match d {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Dictionary(_, v) => describe(v),
        DataType::Boolean => "bool".into(),
        DataType::Timestamp(_, tz) => match tz {
            Some(tz) => format!("timestamp ({tz})"),
            None => "timestamp".into(),
        },
        other => other.to_string().to_lowercase(),
    }
}

/// Whether a column holds vectors of numbers (list, large list or fixed-size list): embeddings.
pub fn is_vector(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().is_numeric()
        }
        _ => false,
    }
}
