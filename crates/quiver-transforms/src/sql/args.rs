//! Argument checks at planning time and typed column access at run time, shared by every UDF.
//!
//! The UDFs take any argument types (`Signature::variadic_any`) and check them themselves in
//! `return_field_from_args`, so that a wrong call fails while planning with a message that names
//! the function and the argument (`text_length expects a text argument, got Int64`) instead of a
//! generic coercion error. At run time the columns are cast to the few types the loops read.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, LargeStringArray, StringArray,
    StringViewArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::ColumnarValue;

/// Whether `t` is one of Arrow's string types.
pub(crate) fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn value_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, v) => v,
        t => t,
    }
}

/// Fails unless `n` arguments were given.
pub(crate) fn check_arity(name: &str, got: usize, want: usize, syntax: &str) -> Result<()> {
    if got != want {
        let s = if want == 1 { "" } else { "s" };
        return plan_err!("{name} takes {want} argument{s} ({syntax}), got {got}");
    }
    Ok(())
}

/// Text, or a dictionary of text, or NULL.
pub(crate) fn check_text(name: &str, t: &DataType) -> Result<()> {
    let v = value_type(t);
    if is_text(v) || v == &DataType::Null {
        return Ok(());
    }
    plan_err!("{name} expects a text argument, got {t}")
}

/// Any integer, float or decimal, or NULL.
pub(crate) fn check_numeric(name: &str, t: &DataType) -> Result<()> {
    if t.is_numeric() || t == &DataType::Null {
        return Ok(());
    }
    plan_err!("{name} expects a numeric argument, got {t}")
}

/// What can be hashed or one-hot encoded: text, integers, booleans (or a dictionary of them).
pub(crate) fn check_key(name: &str, what: &str, t: &DataType) -> Result<()> {
    let v = value_type(t);
    if is_text(v) || v.is_integer() || matches!(v, DataType::Boolean | DataType::Null) {
        return Ok(());
    }
    plan_err!("{name} expects a text, integer or boolean {what}, got {t}")
}

fn literal_text(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// Argument `pos` (1-based) must be a non-null string literal.
pub(crate) fn literal_str<'a>(
    name: &str,
    pos: usize,
    what: &str,
    v: Option<&'a ScalarValue>,
) -> Result<&'a str> {
    match v {
        Some(v) => match literal_text(v) {
            Some(s) => Ok(s),
            None => plan_err!(
                "{name}: argument {pos} ({what}) must be a string literal, got {} {v}",
                v.data_type()
            ),
        },
        None => plan_err!(
            "{name}: argument {pos} ({what}) must be a string literal, not a column or expression"
        ),
    }
}

/// Argument `pos` (1-based) must be an integer literal of at least 1.
pub(crate) fn literal_buckets(name: &str, pos: usize, v: Option<&ScalarValue>) -> Result<u64> {
    let Some(v) = v else {
        return plan_err!(
            "{name}: argument {pos} (n, the number of buckets) must be an integer literal, \
             not a column or expression"
        );
    };
    let n = match v {
        ScalarValue::Int8(Some(x)) => i128::from(*x),
        ScalarValue::Int16(Some(x)) => i128::from(*x),
        ScalarValue::Int32(Some(x)) => i128::from(*x),
        ScalarValue::Int64(Some(x)) => i128::from(*x),
        ScalarValue::UInt8(Some(x)) => i128::from(*x),
        ScalarValue::UInt16(Some(x)) => i128::from(*x),
        ScalarValue::UInt32(Some(x)) => i128::from(*x),
        ScalarValue::UInt64(Some(x)) => i128::from(*x),
        v => {
            return plan_err!(
                "{name}: argument {pos} (n, the number of buckets) must be an integer literal, \
                 got {} {v}",
                v.data_type()
            );
        }
    };
    if n < 1 || n > i128::from(i64::MAX) {
        return plan_err!(
            "{name}: argument {pos} (n, the number of buckets) must be between 1 and {}, got {n}",
            i64::MAX
        );
    }
    Ok(n as u64)
}

/// The scalar behind a literal argument at run time.
pub(crate) fn scalar_arg<'a>(
    name: &str,
    args: &'a [ColumnarValue],
    i: usize,
) -> Result<&'a ScalarValue> {
    match args.get(i) {
        Some(ColumnarValue::Scalar(v)) => Ok(v),
        _ => exec_err!("{name}: argument {} must be a literal", i + 1),
    }
}

/// A run-time string literal argument.
pub(crate) fn scalar_str<'a>(name: &str, args: &'a [ColumnarValue], i: usize) -> Result<&'a str> {
    let v = scalar_arg(name, args, i)?;
    match literal_text(v) {
        Some(s) => Ok(s),
        None => exec_err!(
            "{name}: argument {} must be a string literal, got {v}",
            i + 1
        ),
    }
}

/// A nullable output field named after the function.
pub(crate) fn field(name: &str, t: DataType, nullable: bool) -> FieldRef {
    Arc::new(Field::new(name, t, nullable))
}

/// A column of text in any of Arrow's three string layouts.
pub(crate) enum StrCol<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

/// Casts a NULL or dictionary column to plain text; text columns pass through unchanged.
pub(crate) fn text_array(name: &str, a: ArrayRef) -> Result<ArrayRef> {
    if is_text(a.data_type()) {
        return Ok(a);
    }
    let v = value_type(a.data_type());
    if is_text(v) || v == &DataType::Null {
        return Ok(cast(&a, &DataType::Utf8)?);
    }
    exec_err!("{name} expects a text argument, got {}", a.data_type())
}

impl<'a> StrCol<'a> {
    /// Views an array already passed through [`text_array`].
    pub(crate) fn new(a: &'a ArrayRef) -> Result<StrCol<'a>> {
        Ok(match a.data_type() {
            DataType::Utf8 => StrCol::Utf8(a.as_string::<i32>()),
            DataType::LargeUtf8 => StrCol::Large(a.as_string::<i64>()),
            DataType::Utf8View => StrCol::View(a.as_string_view()),
            t => return exec_err!("expected a text column, got {t}"),
        })
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            StrCol::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Large(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// A column whose values hash through their canonical text (see [`crate::categorical`]).
pub(crate) enum KeyCol<'a> {
    Str(StrCol<'a>),
    I64(&'a Int64Array),
    U64(&'a UInt64Array),
    Bool(&'a BooleanArray),
}

/// Casts a key column to text, Int64, UInt64 or Boolean.
pub(crate) fn key_array(name: &str, a: ArrayRef) -> Result<ArrayRef> {
    let v = value_type(a.data_type()).clone();
    match &v {
        t if is_text(t) => text_array(name, a),
        DataType::Null => Ok(cast(&a, &DataType::Utf8)?),
        DataType::Int64 | DataType::UInt64 | DataType::Boolean if !a.data_type().is_nested() => {
            if a.data_type() == &v {
                Ok(a)
            } else {
                Ok(cast(&a, &v)?)
            }
        }
        t if t.is_integer() && t != &DataType::UInt64 => Ok(cast(&a, &DataType::Int64)?),
        _ => exec_err!(
            "{name} expects a text, integer or boolean argument, got {}",
            a.data_type()
        ),
    }
}

impl<'a> KeyCol<'a> {
    /// Views an array already passed through [`key_array`].
    pub(crate) fn new(a: &'a ArrayRef) -> Result<KeyCol<'a>> {
        Ok(match a.data_type() {
            DataType::Int64 => KeyCol::I64(a.as_primitive()),
            DataType::UInt64 => KeyCol::U64(a.as_primitive()),
            DataType::Boolean => KeyCol::Bool(a.as_boolean()),
            _ => KeyCol::Str(StrCol::new(a)?),
        })
    }

    /// The canonical text of row `i` (None when null); `buf` holds rendered numbers.
    #[inline]
    pub(crate) fn text<'b>(&self, i: usize, buf: &'b mut String) -> Option<&'b str>
    where
        'a: 'b,
    {
        match self {
            KeyCol::Str(s) => s.get(i),
            KeyCol::I64(a) => a.is_valid(i).then(|| render(buf, a.value(i))),
            KeyCol::U64(a) => a.is_valid(i).then(|| render(buf, a.value(i))),
            KeyCol::Bool(a) => a
                .is_valid(i)
                .then(|| if a.value(i) { "true" } else { "false" }),
        }
    }
}

fn render(buf: &mut String, v: impl std::fmt::Display) -> &str {
    buf.clear();
    let _ = write!(buf, "{v}");
    buf.as_str()
}
