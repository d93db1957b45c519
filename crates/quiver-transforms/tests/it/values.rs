//! Hand-worked values for every function, through SQL (offline) and RowExpr (online).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use quiver_transforms::categorical::fnv1a64;

use crate::support::{offline, online, same};

/// A table `t(s, i, x)` with one row per test value.
fn table(s: &[Option<&str>], i: &[Option<i64>], x: &[Option<f64>]) -> RecordBatch {
    let n = s.len().max(i.len()).max(x.len());
    let pad = |k: usize| n - k;
    let s: ArrayRef = Arc::new(StringArray::from_iter(
        s.iter()
            .copied()
            .chain(std::iter::repeat_n(None, pad(s.len()))),
    ));
    let i: ArrayRef = Arc::new(Int64Array::from_iter(
        i.iter()
            .copied()
            .chain(std::iter::repeat_n(None, pad(i.len()))),
    ));
    let x: ArrayRef = Arc::new(Float64Array::from_iter(
        x.iter()
            .copied()
            .chain(std::iter::repeat_n(None, pad(x.len()))),
    ));
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("i", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
    ]));
    RecordBatch::try_new(schema, vec![s, i, x]).unwrap()
}

/// Evaluates both ways, checks they agree, returns the result.
fn eval(expr: &str, t: &RecordBatch) -> ArrayRef {
    let off = offline(expr, t).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let on = online(expr, t).unwrap_or_else(|e| panic!("{expr}: {e}"));
    same(&off, &on).unwrap_or_else(|e| panic!("{expr}: {e}"));
    off
}

fn ints(expr: &str, t: &RecordBatch) -> Vec<Option<i64>> {
    eval(expr, t).as_primitive::<Int64Type>().iter().collect()
}

fn floats(expr: &str, t: &RecordBatch) -> Vec<Option<f64>> {
    eval(expr, t).as_primitive::<Float64Type>().iter().collect()
}

fn texts(s: &[Option<&str>]) -> RecordBatch {
    table(s, &[], &[])
}

#[test]
fn text_statistics() {
    let t = texts(&[
        Some("Hi  there!"),
        Some(""),
        Some(" \t "),
        Some("héllo 👋 2024!!"),
        None,
    ]);
    assert_eq!(
        ints("text_length(s)", &t),
        [Some(10), Some(0), Some(3), Some(14), None]
    );
    assert_eq!(
        ints("word_count(s)", &t),
        [Some(2), Some(0), Some(0), Some(3), None]
    );
    assert_eq!(
        floats("avg_word_length(s)", &t),
        [Some(4.0), Some(0.0), Some(0.0), Some(12.0 / 3.0), None]
    );
    assert_eq!(
        ints("digit_count(s)", &t),
        [Some(0), Some(0), Some(0), Some(4), None]
    );
    assert_eq!(
        ints("exclamation_count(s)", &t),
        [Some(1), Some(0), Some(0), Some(2), None]
    );
    let t = texts(&[Some("FREE prize"), Some("123 !!"), Some("ÉTÉ été"), None]);
    assert_eq!(
        floats("uppercase_ratio(s)", &t),
        [Some(4.0 / 9.0), Some(0.0), Some(0.5), None]
    );
}

#[test]
fn normalize_and_keywords() {
    let t = texts(&[
        Some("  WIN a FREE prize,win!! "),
        Some("don't—stop… “now”"),
        Some("!!!"),
        None,
    ]);
    let out = eval("normalize_text(s)", &t);
    let out: Vec<Option<&str>> = out.as_string::<i32>().iter().collect();
    assert_eq!(
        out,
        [
            Some("win a free prize win"),
            Some("don t stop now"),
            Some(""),
            None
        ]
    );
    assert_eq!(
        ints("keyword_count(s, 'free, Win,prize')", &t),
        [Some(4), Some(0), Some(0), None]
    );
    let has = eval("has_keyword(s, 'stop')", &t);
    let has: Vec<Option<bool>> = has.as_boolean().iter().collect();
    assert_eq!(has, [Some(false), Some(true), Some(false), None]);
}

#[test]
fn sentiment() {
    let t = texts(&[
        Some("VADER is smart, handsome, and funny."),
        Some("The book was good."),
        Some("Today SUX!"),
        Some(""),
        None,
    ]);
    assert_eq!(
        floats("sentiment_compound(s)", &t),
        [Some(0.8316), Some(0.4404), Some(-0.5461), Some(0.0), None]
    );
    // vaderSentiment 3.3.2: {'neg': 0.0, 'neu': 0.254, 'pos': 0.746} for the first sentence.
    assert_eq!(floats("sentiment_positive(s)", &t)[0], Some(0.746));
    assert_eq!(floats("sentiment_neutral(s)", &t)[0], Some(0.254));
    assert_eq!(floats("sentiment_negative(s)", &t)[0], Some(0.0));
    assert_eq!(floats("sentiment_negative(s)", &t)[2], Some(0.779));
}

#[test]
fn hashing() {
    let t = table(
        &[Some("7"), Some("a"), None],
        &[Some(7), Some(-7), None],
        &[],
    );
    let b7 = (fnv1a64(b"7") % 1000) as i64;
    let bneg = (fnv1a64(b"-7") % 1000) as i64;
    let ba = (fnv1a64(b"a") % 1000) as i64;
    assert_eq!(ints("hash_bucket(s, 1000)", &t), [Some(b7), Some(ba), None]);
    // Integers hash through their decimal text: int64 7 and '7' agree.
    assert_eq!(
        ints("hash_bucket(i, 1000)", &t),
        [Some(b7), Some(bneg), None]
    );
    assert_eq!(
        ints("hash_bucket(CAST(i AS TINYINT), 1000)", &t)[0],
        Some(b7)
    );
    assert_eq!(
        ints("hash_bucket(true, 1000)", &t)[0],
        Some((fnv1a64(b"true") % 1000) as i64)
    );
    assert_eq!(ints("hash_bucket(s, 1)", &t), [Some(0), Some(0), None]);

    // cross_hash: length-prefixed texts, so ('ab','c') != ('a','bc').
    let mut bytes = Vec::new();
    for part in ["7", "7"] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part.as_bytes());
    }
    let want = (fnv1a64(&bytes) % 1_000_003) as i64;
    let crossed = ints("cross_hash(s, i, 1000003)", &t);
    assert_eq!((crossed[0], crossed[2]), (Some(want), None));
    let n = 1u64 << 40;
    let ab_c = ints(&format!("cross_hash('ab', 'c', {n})"), &t)[0];
    let a_bc = ints(&format!("cross_hash('a', 'bc', {n})"), &t)[0];
    assert_ne!(ab_c, a_bc);
}

#[test]
fn one_hot() {
    let t = table(
        &[Some("7"), Some("a"), None],
        &[Some(7), Some(70), None],
        &[],
    );
    assert_eq!(
        floats("one_hot(s, '7')", &t),
        [Some(1.0), Some(0.0), Some(0.0)]
    );
    assert_eq!(
        floats("one_hot(i, '7')", &t),
        [Some(1.0), Some(0.0), Some(0.0)]
    );
}

#[test]
fn numeric() {
    let xs = [
        Some(-5.0),
        Some(0.0),
        Some(9.99),
        Some(10.0),
        Some(100.0),
        Some(f64::NAN),
        Some(f64::INFINITY),
        None,
    ];
    let t = table(&[], &[], &xs);
    assert_eq!(
        ints("bucketize(x, '0,10,100')", &t),
        [
            Some(0),
            Some(1),
            Some(1),
            Some(2),
            Some(3),
            None,
            Some(3),
            None
        ]
    );
    let logs = floats("safe_log(x)", &t);
    assert_eq!(logs[..3], [None, None, Some(9.99f64.ln())]);
    assert_eq!(logs[5..], [None, Some(f64::INFINITY), None]);
    let t = table(
        &[],
        &[Some(1), Some(0)],
        &[Some(0.0), Some(-1.0), Some(1e-10)],
    );
    let l = floats("log1p(x)", &t);
    assert_eq!(
        l,
        [Some(0.0), Some(f64::NEG_INFINITY), Some(1e-10f64.ln_1p())]
    );
    assert_eq!(floats("safe_log(i)", &t), [Some(0.0), None, None]);
    assert_eq!(floats("log1p(i)", &t)[0], Some(2f64.ln()));
}

#[test]
fn online_batches_of_several_rows() {
    let t = texts(&[Some("a b"), Some("c"), None]);
    let expr = quiver_transforms::RowExpr::compile("word_count(s)", t.schema()).unwrap();
    let out = expr.evaluate(&t).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(expr.output_field().data_type(), &DataType::Int64);
}
