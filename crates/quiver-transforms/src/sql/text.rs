//! The text UDFs: statistics, normalization, keywords and VADER sentiment.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{exec_datafusion_err, plan_datafusion_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{StrCol, check_arity, check_text, field, literal_str, scalar_str, text_array};
use crate::text_stats::{self, Keywords};

/// Which one-argument text function a [`TextFunction`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TextKind {
    TextLength,
    WordCount,
    AvgWordLength,
    DigitCount,
    ExclamationCount,
    UppercaseRatio,
    NormalizeText,
    SentimentCompound,
    SentimentPositive,
    SentimentNegative,
    SentimentNeutral,
}

enum TextOp {
    Int(fn(&str) -> i64),
    Float(fn(&str) -> f64),
    Text,
}

impl TextKind {
    pub(crate) const ALL: [TextKind; 11] = [
        TextKind::TextLength,
        TextKind::WordCount,
        TextKind::AvgWordLength,
        TextKind::DigitCount,
        TextKind::ExclamationCount,
        TextKind::UppercaseRatio,
        TextKind::NormalizeText,
        TextKind::SentimentCompound,
        TextKind::SentimentPositive,
        TextKind::SentimentNegative,
        TextKind::SentimentNeutral,
    ];

    fn name(self) -> &'static str {
        match self {
            TextKind::TextLength => "text_length",
            TextKind::WordCount => "word_count",
            TextKind::AvgWordLength => "avg_word_length",
            TextKind::DigitCount => "digit_count",
            TextKind::ExclamationCount => "exclamation_count",
            TextKind::UppercaseRatio => "uppercase_ratio",
            TextKind::NormalizeText => "normalize_text",
            TextKind::SentimentCompound => "sentiment_compound",
            TextKind::SentimentPositive => "sentiment_positive",
            TextKind::SentimentNegative => "sentiment_negative",
            TextKind::SentimentNeutral => "sentiment_neutral",
        }
    }

    fn op(self) -> TextOp {
        match self {
            TextKind::TextLength => TextOp::Int(text_stats::text_length),
            TextKind::WordCount => TextOp::Int(text_stats::word_count),
            TextKind::AvgWordLength => TextOp::Float(text_stats::avg_word_length),
            TextKind::DigitCount => TextOp::Int(text_stats::digit_count),
            TextKind::ExclamationCount => TextOp::Int(text_stats::exclamation_count),
            TextKind::UppercaseRatio => TextOp::Float(text_stats::uppercase_ratio),
            TextKind::NormalizeText => TextOp::Text,
            TextKind::SentimentCompound => TextOp::Float(crate::sentiment_compound),
            TextKind::SentimentPositive => TextOp::Float(crate::sentiment_positive),
            TextKind::SentimentNegative => TextOp::Float(crate::sentiment_negative),
            TextKind::SentimentNeutral => TextOp::Float(crate::sentiment_neutral),
        }
    }

    fn return_type(self) -> DataType {
        match self.op() {
            TextOp::Int(_) => DataType::Int64,
            TextOp::Float(_) => DataType::Float64,
            TextOp::Text => DataType::Utf8,
        }
    }
}

/// A one-argument text function: null in, null out; otherwise the scalar function of
/// [`crate::text_stats`] or [`crate::vader`] applied to each row.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TextFunction {
    kind: TextKind,
    signature: Signature,
}

impl TextFunction {
    pub(crate) fn new(kind: TextKind) -> Self {
        TextFunction {
            kind,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.kind.return_type())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        check_arity(name, args.arg_fields.len(), 1, &format!("{name}(text)"))?;
        check_text(name, args.arg_fields[0].data_type())?;
        Ok(field(name, self.kind.return_type(), true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let input = text_array(name, args.args[0].to_array(args.number_rows)?)?;
        let col = StrCol::new(&input)?;
        let n = input.len();
        let out: ArrayRef = match self.kind.op() {
            TextOp::Int(f) => Arc::new((0..n).map(|i| col.get(i).map(f)).collect::<Int64Array>()),
            TextOp::Float(f) => {
                Arc::new((0..n).map(|i| col.get(i).map(f)).collect::<Float64Array>())
            }
            TextOp::Text => {
                let mut b = StringBuilder::with_capacity(n, n * 16);
                let mut buf = String::new();
                for i in 0..n {
                    match col.get(i) {
                        Some(s) => {
                            text_stats::normalize_text_into(s, &mut buf);
                            b.append_value(&buf);
                        }
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `keyword_count(s, 'a,b')` (Int64) and `has_keyword(s, 'a,b')` (Boolean); see
/// [`Keywords`]. Null text gives null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct KeywordFunction {
    has: bool,
    signature: Signature,
}

impl KeywordFunction {
    pub(crate) fn new(has: bool) -> Self {
        KeywordFunction {
            has,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
    fn out_type(&self) -> DataType {
        if self.has {
            DataType::Boolean
        } else {
            DataType::Int64
        }
    }
}

impl ScalarUDFImpl for KeywordFunction {
    fn name(&self) -> &str {
        if self.has {
            "has_keyword"
        } else {
            "keyword_count"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.out_type())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        let syntax = format!("{name}(text, 'word1,word2,...')");
        check_arity(name, args.arg_fields.len(), 2, &syntax)?;
        check_text(name, args.arg_fields[0].data_type())?;
        let list = literal_str(name, 2, "the keyword list", args.scalar_arguments[1])?;
        Keywords::parse(list).map_err(|e| plan_datafusion_err!("{name}: {e}"))?;
        Ok(field(name, self.out_type(), true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let keywords = Keywords::parse(scalar_str(name, &args.args, 1)?)
            .map_err(|e| exec_datafusion_err!("{name}: {e}"))?;
        let input = text_array(name, args.args[0].to_array(args.number_rows)?)?;
        let col = StrCol::new(&input)?;
        let mut buf = String::new();
        let rows = 0..input.len();
        let out: ArrayRef = if self.has {
            Arc::new(
                rows.map(|i| col.get(i).map(|s| keywords.any(s, &mut buf)))
                    .collect::<BooleanArray>(),
            )
        } else {
            Arc::new(
                rows.map(|i| col.get(i).map(|s| keywords.count(s, &mut buf)))
                    .collect::<Int64Array>(),
            )
        };
        Ok(ColumnarValue::Array(out))
    }
}
