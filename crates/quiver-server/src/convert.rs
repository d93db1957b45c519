//! JSON <-> online values and keys: one place decides how request values are typed.

use quiver_core::ValueType;
use quiver_online::{KeyValue, Value};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

/// A request's join-key value for a key of type `t`; the error names the column and row.
pub fn key_value(column: &str, row: usize, v: &Json, t: ValueType) -> Result<KeyValue, String> {
    let wrong = || {
        format!(
            "entities.{column}[{row}] is {}, but join key '{column}' is {t}",
            short(v)
        )
    };
    match t {
        ValueType::String => match v {
            Json::String(s) => Ok(KeyValue::Str(s.clone())),
            _ => Err(wrong()),
        },
        _ => match v {
            Json::Number(n) => n.as_i64().map(KeyValue::Int).ok_or_else(wrong),
            _ => Err(wrong()),
        },
    }
}

/// A short rendering of a JSON value for messages.
pub fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}...", &s[..s.floor_char_boundary(37)])
    } else {
        s
    }
}

/// A stored value as Feast's feature server renders it (non-finite floats as the strings
/// `NaN`, `Infinity`, `-Infinity`), serialized straight from the value: responses are written
/// without building a JSON tree.
pub struct Rendered<'a>(pub &'a Value);

struct Float(f64);

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        if f.is_finite() {
            s.serialize_f64(f)
        } else if f.is_nan() {
            s.serialize_str("NaN")
        } else if f > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Int64(x) => s.serialize_i64(*x),
            Value::Int32(x) => s.serialize_i32(*x),
            Value::Float64(x) => Float(*x).serialize(s),
            Value::Float32(x) => Float(f64::from(*x)).serialize(s),
            Value::String(x) => s.serialize_str(x),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Timestamp(us) => s.serialize_str(&quiver_online::format_time(*us)),
            Value::Float32List(xs) => s.collect_seq(xs.iter().map(|x| Float(f64::from(*x)))),
            Value::Float64List(xs) => s.collect_seq(xs.iter().map(|x| Float(*x))),
            Value::Int64List(xs) => s.collect_seq(xs),
            Value::StringList(xs) => s.collect_seq(xs),
        }
    }
}

/// A stored value as Feast's feature server renders it, as a JSON tree (see [`Rendered`]).
pub fn to_json(v: &Value) -> Json {
    serde_json::to_value(Rendered(v)).unwrap_or(Json::Null)
}

fn as_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A request value (pushed rows) as a value of type `t`.
pub fn from_json(v: &Json, t: ValueType) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let wrong = || format!("{} is not of type {t}", short(v));
    Ok(match t {
        ValueType::Int64 => Value::Int64(v.as_i64().ok_or_else(wrong)?),
        ValueType::Int32 => Value::Int32(
            v.as_i64()
                .and_then(|x| i32::try_from(x).ok())
                .ok_or_else(wrong)?,
        ),
        ValueType::Float64 => Value::Float64(as_f64(v).ok_or_else(wrong)?),
        ValueType::Float32 => Value::Float32(as_f64(v).ok_or_else(wrong)? as f32),
        ValueType::String => Value::String(v.as_str().ok_or_else(wrong)?.to_string()),
        ValueType::Bool => Value::Bool(v.as_bool().ok_or_else(wrong)?),
        ValueType::Timestamp => Value::Timestamp(timestamp(v)?),
        ValueType::Float32List
        | ValueType::Float64List
        | ValueType::Int64List
        | ValueType::StringList => {
            let items = v.as_array().ok_or_else(wrong)?;
            let elem = t.element().expect("list type");
            let items = items
                .iter()
                .map(|x| from_json(x, elem))
                .collect::<Result<Vec<_>, _>>()?;
            Value::list(t, items)?
        }
    })
}

/// An event time from JSON: a time string (RFC 3339, `YYYY-MM-DD HH:MM:SS`, a date) or epoch
/// seconds (fractions allowed).
pub fn timestamp(v: &Json) -> Result<i64, String> {
    match v {
        Json::String(s) => quiver_online::parse_time(s),
        Json::Number(n) => n
            .as_f64()
            .map(|s| (s * 1e6).round() as i64)
            .ok_or_else(|| format!("{n} is not a time")),
        other => Err(format!("{} is not a time", short(other))),
    }
}
