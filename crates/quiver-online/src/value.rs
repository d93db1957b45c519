//! Feature values as the online store keeps them, and their compact binary encoding.
//!
//! One encoding serves both backends: a tag byte, then the payload (little-endian numbers,
//! length-prefixed strings and lists). Reading Arrow columns into [`Value`]s is here too, so the
//! materializer and the push path convert rows the same way.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use quiver_core::ValueType;

/// One feature value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// int64.
    Int64(i64),
    /// int32.
    Int32(i32),
    /// float64.
    Float64(f64),
    /// float32.
    Float32(f32),
    /// string.
    String(String),
    /// bool.
    Bool(bool),
    /// timestamp, microseconds since the epoch (UTC).
    Timestamp(i64),
    /// list<float32> (embeddings).
    Float32List(Vec<f32>),
    /// list<float64>.
    Float64List(Vec<f64>),
    /// list<int64>.
    Int64List(Vec<i64>),
    /// list<string>.
    StringList(Vec<String>),
}

const NULL: u8 = 0;
const INT64: u8 = 1;
const INT32: u8 = 2;
const FLOAT64: u8 = 3;
const FLOAT32: u8 = 4;
const STRING: u8 = 5;
const BOOL: u8 = 6;
const TIMESTAMP: u8 = 7;
const F32_LIST: u8 = 8;
const F64_LIST: u8 = 9;
const I64_LIST: u8 = 10;
const STR_LIST: u8 = 11;

/// A stored value could not be decoded (a corrupt store or a foreign writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "undecodable online value: {}", self.0)
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

impl Value {
    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(NULL),
            Value::Int64(v) => {
                out.push(INT64);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Int32(v) => {
                out.push(INT32);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Float64(v) => {
                out.push(FLOAT64);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Float32(v) => {
                out.push(FLOAT32);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::String(s) => {
                out.push(STRING);
                put_len(out, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bool(b) => {
                out.push(BOOL);
                out.push(u8::from(*b));
            }
            Value::Timestamp(v) => {
                out.push(TIMESTAMP);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Float32List(v) => {
                out.push(F32_LIST);
                put_len(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            Value::Float64List(v) => {
                out.push(F64_LIST);
                put_len(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            Value::Int64List(v) => {
                out.push(I64_LIST);
                put_len(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            Value::StringList(v) => {
                out.push(STR_LIST);
                put_len(out, v.len());
                for s in v {
                    put_len(out, s.len());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }

    /// The encoding of `self` as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        self.encode(&mut out);
        out
    }

    /// Decodes one value from the front of `input`, advancing it.
    pub fn decode(input: &mut &[u8]) -> Result<Value, DecodeError> {
        let tag = take::<1>(input)?[0];
        Ok(match tag {
            NULL => Value::Null,
            INT64 => Value::Int64(i64::from_le_bytes(take(input)?)),
            INT32 => Value::Int32(i32::from_le_bytes(take(input)?)),
            FLOAT64 => Value::Float64(f64::from_le_bytes(take(input)?)),
            FLOAT32 => Value::Float32(f32::from_le_bytes(take(input)?)),
            STRING => Value::String(take_str(input)?),
            BOOL => Value::Bool(take::<1>(input)?[0] != 0),
            TIMESTAMP => Value::Timestamp(i64::from_le_bytes(take(input)?)),
            F32_LIST => {
                let n = take_len(input)?;
                let mut v = Vec::with_capacity(n.min(input.len() / 4));
                for _ in 0..n {
                    v.push(f32::from_le_bytes(take(input)?));
                }
                Value::Float32List(v)
            }
            F64_LIST => {
                let n = take_len(input)?;
                let mut v = Vec::with_capacity(n.min(input.len() / 8));
                for _ in 0..n {
                    v.push(f64::from_le_bytes(take(input)?));
                }
                Value::Float64List(v)
            }
            I64_LIST => {
                let n = take_len(input)?;
                let mut v = Vec::with_capacity(n.min(input.len() / 8));
                for _ in 0..n {
                    v.push(i64::from_le_bytes(take(input)?));
                }
                Value::Int64List(v)
            }
            STR_LIST => {
                let n = take_len(input)?;
                let mut v = Vec::with_capacity(n.min(input.len() / 4));
                for _ in 0..n {
                    v.push(take_str(input)?);
                }
                Value::StringList(v)
            }
            other => return Err(DecodeError(format!("unknown tag {other}"))),
        })
    }

    /// Decodes a buffer holding exactly one value.
    pub fn from_bytes(mut input: &[u8]) -> Result<Value, DecodeError> {
        let v = Value::decode(&mut input)?;
        if !input.is_empty() {
            return Err(DecodeError(format!("{} trailing bytes", input.len())));
        }
        Ok(v)
    }

    /// Reads row `i` of an Arrow column declared as `t`. Numbers are converted to the declared
    /// type (the offline engine already casts source columns, so this is the identity there).
    pub fn from_array(array: &ArrayRef, i: usize, t: ValueType) -> Result<Value, String> {
        if array.is_null(i) {
            return Ok(Value::Null);
        }
        let bad = || {
            format!(
                "a {} column cannot hold {t} values",
                array.data_type().to_string().to_lowercase()
            )
        };
        let cast = |target: &DataType| -> Result<ArrayRef, String> {
            datafusion::arrow::compute::cast(&array.slice(i, 1), target).map_err(|_| bad())
        };
        Ok(match t {
            ValueType::Int64 => Value::Int64(match array.data_type() {
                DataType::Int64 => array.as_primitive::<Int64Type>().value(i),
                _ => cast(&DataType::Int64)?.as_primitive::<Int64Type>().value(0),
            }),
            ValueType::Int32 => Value::Int32(match array.data_type() {
                DataType::Int32 => array.as_primitive::<Int32Type>().value(i),
                _ => cast(&DataType::Int32)?.as_primitive::<Int32Type>().value(0),
            }),
            ValueType::Float64 => Value::Float64(match array.data_type() {
                DataType::Float64 => array.as_primitive::<Float64Type>().value(i),
                _ => cast(&DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .value(0),
            }),
            ValueType::Float32 => Value::Float32(match array.data_type() {
                DataType::Float32 => array.as_primitive::<Float32Type>().value(i),
                _ => cast(&DataType::Float32)?
                    .as_primitive::<Float32Type>()
                    .value(0),
            }),
            ValueType::String => match array.data_type() {
                DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
                DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
                DataType::Utf8View => Value::String(array.as_string_view().value(i).to_string()),
                _ => Value::String(
                    cast(&DataType::Utf8)?
                        .as_string::<i32>()
                        .value(0)
                        .to_string(),
                ),
            },
            ValueType::Bool => match array.data_type() {
                DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
                _ => return Err(bad()),
            },
            ValueType::Timestamp => Value::Timestamp(match array.data_type() {
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    array.as_primitive::<TimestampMicrosecondType>().value(i)
                }
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    array.as_primitive::<TimestampMillisecondType>().value(i) * 1_000
                }
                DataType::Timestamp(TimeUnit::Second, _) => {
                    array.as_primitive::<TimestampSecondType>().value(i) * 1_000_000
                }
                DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                    array.as_primitive::<TimestampNanosecondType>().value(i) / 1_000
                }
                _ => cast(&DataType::Timestamp(TimeUnit::Microsecond, None))?
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(0),
            }),
            ValueType::Float32List
            | ValueType::Float64List
            | ValueType::Int64List
            | ValueType::StringList => {
                let inner: ArrayRef = match array.data_type() {
                    DataType::List(_) => array.as_list::<i32>().value(i),
                    DataType::LargeList(_) => array.as_list::<i64>().value(i),
                    DataType::FixedSizeList(..) => array.as_fixed_size_list().value(i),
                    _ => return Err(bad()),
                };
                let elem = t.element().expect("list type");
                let mut items = Vec::with_capacity(inner.len());
                for j in 0..inner.len() {
                    items.push(Value::from_array(&inner, j, elem)?);
                }
                Value::list(t, items)?
            }
        })
    }

    /// Builds a list value of type `t` from its elements (nulls inside lists are refused).
    pub fn list(t: ValueType, items: Vec<Value>) -> Result<Value, String> {
        let null = || format!("a {t} cannot hold null elements");
        Ok(match t {
            ValueType::Float32List => Value::Float32List(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::Float32(x) => Ok(x),
                        _ => Err(null()),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            ValueType::Float64List => Value::Float64List(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::Float64(x) => Ok(x),
                        _ => Err(null()),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            ValueType::Int64List => Value::Int64List(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::Int64(x) => Ok(x),
                        _ => Err(null()),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            ValueType::StringList => Value::StringList(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(x) => Ok(x),
                        _ => Err(null()),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("{other} is not a list type")),
        })
    }
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    if input.len() < N {
        return Err(DecodeError("truncated".into()));
    }
    let (head, rest) = input.split_at(N);
    *input = rest;
    Ok(head.try_into().expect("length checked"))
}

fn take_len(input: &mut &[u8]) -> Result<usize, DecodeError> {
    Ok(u32::from_le_bytes(take(input)?) as usize)
}

fn take_str(input: &mut &[u8]) -> Result<String, DecodeError> {
    let n = take_len(input)?;
    if input.len() < n {
        return Err(DecodeError("truncated string".into()));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    String::from_utf8(head.to_vec()).map_err(|_| DecodeError("invalid UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        let values = [
            Value::Null,
            Value::Int64(-7),
            Value::Int32(i32::MAX),
            Value::Float64(f64::NAN),
            Value::Float64(-0.5),
            Value::Float32(1.25),
            Value::String("héllo".into()),
            Value::Bool(true),
            Value::Timestamp(1_700_000_000_000_000),
            Value::Float32List(vec![0.1, -2.0, 3.5]),
            Value::Float64List(vec![]),
            Value::Int64List(vec![1, 2, 3]),
            Value::StringList(vec!["a".into(), "".into()]),
        ];
        let mut buf = Vec::new();
        for v in &values {
            v.encode(&mut buf);
        }
        let mut input = buf.as_slice();
        for v in &values {
            let got = Value::decode(&mut input).unwrap();
            match (v, &got) {
                (Value::Float64(a), Value::Float64(b)) if a.is_nan() => assert!(b.is_nan()),
                _ => assert_eq!(v, &got),
            }
        }
        assert!(input.is_empty());
        assert!(Value::from_bytes(&[STRING, 10, 0, 0, 0, b'a']).is_err());
        assert!(Value::from_bytes(&[99]).is_err());
    }
}
