//! The categorical UDFs: `hash_bucket`, `cross_hash`, `one_hot`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{
    KeyCol, check_arity, check_key, field, key_array, literal_buckets, literal_str, scalar_arg,
    scalar_str,
};
use crate::categorical;

fn buckets_at_run_time(name: &str, args: &[ColumnarValue], i: usize) -> Result<u64> {
    let v = scalar_arg(name, args, i)?;
    match v.cast_to(&DataType::Int64)? {
        datafusion::common::ScalarValue::Int64(Some(n)) if n >= 1 => Ok(n as u64),
        _ => exec_err!("{name}: the number of buckets must be a positive integer, got {v}"),
    }
}

/// `hash_bucket(x, n)`: see [`categorical::hash_bucket`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct HashBucket {
    signature: Signature,
}

impl HashBucket {
    pub(crate) fn new() -> Self {
        HashBucket {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for HashBucket {
    fn name(&self) -> &str {
        "hash_bucket"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        check_arity(name, args.arg_fields.len(), 2, "hash_bucket(value, n)")?;
        check_key(name, "argument", args.arg_fields[0].data_type())?;
        literal_buckets(name, 2, args.scalar_arguments[1])?;
        Ok(field(name, DataType::Int64, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let n = buckets_at_run_time(name, &args.args, 1)?;
        let input = key_array(name, args.args[0].to_array(args.number_rows)?)?;
        let col = KeyCol::new(&input)?;
        let mut buf = String::new();
        let out: Int64Array = (0..input.len())
            .map(|i| {
                col.text(i, &mut buf)
                    .map(|t| categorical::hash_bucket(t, n))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `cross_hash(a, b[, c ...], n)`: see [`categorical::cross_hash`]. Null in any value → null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CrossHash {
    signature: Signature,
}

impl CrossHash {
    pub(crate) fn new() -> Self {
        CrossHash {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CrossHash {
    fn name(&self) -> &str {
        "cross_hash"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        let k = args.arg_fields.len();
        if k < 3 {
            return plan_err!(
                "cross_hash takes at least 3 arguments (cross_hash(a, b[, c ...], n)), got {k}"
            );
        }
        for (i, f) in args.arg_fields[..k - 1].iter().enumerate() {
            check_key(name, &format!("argument {}", i + 1), f.data_type())?;
        }
        literal_buckets(name, k, args.scalar_arguments[k - 1])?;
        Ok(field(name, DataType::Int64, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let k = args.args.len();
        let n = buckets_at_run_time(name, &args.args, k - 1)?;
        let inputs = args.args[..k - 1]
            .iter()
            .map(|a| key_array(name, a.to_array(args.number_rows)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let cols = inputs.iter().map(KeyCol::new).collect::<Result<Vec<_>>>()?;
        let mut buf = String::new();
        let mut out = Int64Array::builder(args.number_rows);
        'rows: for i in 0..args.number_rows {
            let mut h = categorical::CrossHasher::new();
            for col in &cols {
                match col.text(i, &mut buf) {
                    Some(t) => h.push(t),
                    None => {
                        out.append_null();
                        continue 'rows;
                    }
                }
            }
            out.append_value(h.bucket(n));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `one_hot(x, 'value')`: see [`categorical::one_hot`]; never null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct OneHot {
    signature: Signature,
}

impl OneHot {
    pub(crate) fn new() -> Self {
        OneHot {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for OneHot {
    fn name(&self) -> &str {
        "one_hot"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        check_arity(name, args.arg_fields.len(), 2, "one_hot(value, 'category')")?;
        check_key(name, "argument", args.arg_fields[0].data_type())?;
        literal_str(name, 2, "the category", args.scalar_arguments[1])?;
        Ok(field(name, DataType::Float64, false))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let value = scalar_str(name, &args.args, 1)?;
        let input = key_array(name, args.args[0].to_array(args.number_rows)?)?;
        let col = KeyCol::new(&input)?;
        let mut buf = String::new();
        let out: Float64Array = (0..input.len())
            .map(|i| Some(categorical::one_hot(col.text(i, &mut buf), value)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
