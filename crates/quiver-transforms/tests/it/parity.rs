//! Property tests: for every function, the offline path (DataFusion SQL over a whole table) and
//! the online path (RowExpr on 1-row batches) give identical results.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;

use crate::support::assert_parity;

/// Words VADER reacts to, so sentiment sees boosters, negations, "but", caps and emoticons.
const WORDS: &[&str] = &[
    "good", "GOOD", "bad", "not", "never", "so", "very", "VERY", "kind", "of", "but", "BUT",
    "least", "at", "no", "without", "doubt", "love", "hate", "the", "bomb", "great!", "terrible",
    "isn't", "free", "win", "prize", ":)", ":(", "😀", "💔", "!!", "??", "lol", "sux", "the shit",
    "7", "42", "Free", "WIN!", "—", "…", "", " ",
];

fn text() -> impl Strategy<Value = Option<String>> {
    let s = prop_oneof![
        Just(String::new()),
        "[ \t\n\u{a0}\u{3000}]{0,6}",
        "[a-zA-Z0-9 !?.,'’\"()-]{0,40}",
        "[a-zé ÉßİΣς😀👍🎉\u{1F600}-\u{1F64F}0-9٣!]{0,30}",
        any::<String>(),
        prop::collection::vec(prop::sample::select(WORDS), 0..14).prop_map(|w| w.join(" ")),
    ];
    prop::option::weighted(0.9, s)
}

fn number() -> impl Strategy<Value = Option<f64>> {
    let x = prop_oneof![
        any::<f64>(),
        -1e6..1e6f64,
        (-200i64..200).prop_map(|i| i as f64),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(0.0),
        Just(-0.0),
    ];
    prop::option::weighted(0.9, x)
}

fn integer() -> impl Strategy<Value = Option<i64>> {
    prop::option::weighted(0.9, prop_oneof![any::<i64>(), -20i64..20])
}

fn string_type() -> impl Strategy<Value = DataType> {
    prop::sample::select(vec![
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
    ])
}

/// A table `t(s, s2, i, x)` of 0..24 random rows; the text columns in a random string layout.
fn table() -> impl Strategy<Value = RecordBatch> {
    (
        prop::collection::vec((text(), text(), integer(), number()), 0..24),
        string_type(),
    )
        .prop_map(|(rows, st)| {
            let s: ArrayRef = Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0.clone())));
            let s2: ArrayRef = Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.clone())));
            let i: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2)));
            let x: ArrayRef = Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.3)));
            let schema = Arc::new(Schema::new(vec![
                Field::new("s", st.clone(), true),
                Field::new("s2", st.clone(), true),
                Field::new("i", DataType::Int64, true),
                Field::new("x", DataType::Float64, true),
            ]));
            RecordBatch::try_new(
                schema,
                vec![cast(&s, &st).unwrap(), cast(&s2, &st).unwrap(), i, x],
            )
            .unwrap()
        })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

macro_rules! parity {
    ($($test:ident: $expr:expr,)*) => {
        $(
            proptest! {
                #![proptest_config(config())]
                #[test]
                fn $test(t in table()) {
                    assert_parity($expr, &t).map_err(TestCaseError::fail)?;
                }
            }
        )*
    };
}

parity! {
    text_length: "text_length(s)",
    word_count: "word_count(s)",
    avg_word_length: "avg_word_length(s)",
    digit_count: "digit_count(s)",
    exclamation_count: "exclamation_count(s)",
    uppercase_ratio: "uppercase_ratio(s)",
    normalize_text: "normalize_text(s)",
    keyword_count: "keyword_count(s, 'free,win,prize,good')",
    has_keyword: "has_keyword(s, 'Free, WIN')",
    sentiment_compound: "sentiment_compound(s)",
    sentiment_positive: "sentiment_positive(s)",
    sentiment_negative: "sentiment_negative(s)",
    sentiment_neutral: "sentiment_neutral(s)",
    hash_bucket_text: "hash_bucket(s, 1000)",
    hash_bucket_int: "hash_bucket(i, 7)",
    cross_hash_text: "cross_hash(s, s2, 1000003)",
    cross_hash_mixed: "cross_hash(s, i, s2, 10)",
    one_hot_text: "one_hot(s, 'free')",
    one_hot_int: "one_hot(i, '7')",
    bucketize: "bucketize(x, '-10, 0, 0.5, 10, 1e6')",
    bucketize_int: "bucketize(i, '0,10,100')",
    safe_log: "safe_log(x)",
    safe_log_int: "safe_log(i)",
    log1p: "log1p(x)",
    composed: "word_count(normalize_text(s)) * 2 + hash_bucket(s2, 5) + coalesce(bucketize(x, '0,1'), -1)",
}
