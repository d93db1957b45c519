//! SQL functions Quiver adds to DataFusion for feature expressions.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_float64_array;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// `log1p(x)` = ln(1 + x), accurate for small x; common for skewed amounts and counts.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Log1p {
    signature: Signature,
}

impl ScalarUDFImpl for Log1p {
    fn name(&self) -> &str {
        "log1p"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let x = as_float64_array(&arrays[0])?;
        let out: Float64Array = x.unary(f64::ln_1p);
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

/// The functions to register in every session.
pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(Log1p {
        signature: Signature::new(
            TypeSignature::Uniform(1, vec![DataType::Float64]),
            Volatility::Immutable,
        ),
    })]
}
