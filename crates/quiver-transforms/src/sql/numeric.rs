//! The numeric UDFs: `safe_log`, `log1p`, `bucketize`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::cast::as_float64_array;
use datafusion::common::{exec_datafusion_err, plan_datafusion_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{check_arity, check_numeric, field, literal_str, scalar_str};
use crate::numeric::{self, Boundaries};

fn float_array(args: &ScalarFunctionArgs) -> Result<ArrayRef> {
    let a = args.args[0].to_array(args.number_rows)?;
    if a.data_type() == &DataType::Float64 {
        Ok(a)
    } else {
        Ok(cast(&a, &DataType::Float64)?)
    }
}

/// `safe_log(x)` (null unless x > 0) and `log1p(x)`; any numeric argument, read as Float64.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LogFunction {
    safe: bool,
    signature: Signature,
}

impl LogFunction {
    pub(crate) fn new(safe: bool) -> Self {
        LogFunction {
            safe,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LogFunction {
    fn name(&self) -> &str {
        if self.safe { "safe_log" } else { "log1p" }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        check_arity(name, args.arg_fields.len(), 1, &format!("{name}(x)"))?;
        check_numeric(name, args.arg_fields[0].data_type())?;
        Ok(field(name, DataType::Float64, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = float_array(&args)?;
        let x = as_float64_array(&input)?;
        let out: Float64Array = if self.safe {
            x.iter().map(|v| v.and_then(numeric::safe_log)).collect()
        } else {
            x.unary(numeric::log1p)
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `bucketize(x, '0,10,100')`: see [`Boundaries::bucket`]; null x or NaN → null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bucketize {
    signature: Signature,
}

impl Bucketize {
    pub(crate) fn new() -> Self {
        Bucketize {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Bucketize {
    fn name(&self) -> &str {
        "bucketize"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        check_arity(name, args.arg_fields.len(), 2, "bucketize(x, 'b1,b2,...')")?;
        check_numeric(name, args.arg_fields[0].data_type())?;
        let list = literal_str(name, 2, "the boundaries", args.scalar_arguments[1])?;
        Boundaries::parse(list).map_err(|e| plan_datafusion_err!("{name}: {e}"))?;
        Ok(field(name, DataType::Int64, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let b = Boundaries::parse(scalar_str(name, &args.args, 1)?)
            .map_err(|e| exec_datafusion_err!("{name}: {e}"))?;
        let input = float_array(&args)?;
        let x = as_float64_array(&input)?;
        let out: Int64Array = (0..x.len())
            .map(|i| x.is_valid(i).then(|| b.bucket(x.value(i))).flatten())
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
