//! Error messages: planning rejects wrong calls, naming the function, argument and expression.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quiver_transforms::RowExpr;

use crate::support::offline;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("review", DataType::Utf8, true),
        Field::new("i", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
    ]))
}

fn batch() -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![Some("a")])),
        Arc::new(Int64Array::from(vec![Some(1)])),
        Arc::new(Float64Array::from(vec![Some(1.0)])),
    ];
    RecordBatch::try_new(schema(), cols).unwrap()
}

/// The online compile error and the offline SQL error for `expr` both contain every `needle`.
fn rejects(expr: &str, needles: &[&str]) {
    let online = RowExpr::compile(expr, schema())
        .expect_err(expr)
        .to_string();
    assert!(
        online.contains(&format!("`{expr}`")),
        "online error does not quote the expression: {online}"
    );
    let offline = offline(expr, &batch()).expect_err(expr).to_string();
    for n in needles {
        assert!(
            online.contains(n),
            "online error for {expr} lacks {n:?}: {online}"
        );
        assert!(
            offline.contains(n),
            "offline error for {expr} lacks {n:?}: {offline}"
        );
    }
}

#[test]
fn wrong_argument_types() {
    rejects(
        "text_length(i)",
        &["text_length expects a text argument, got Int64"],
    );
    rejects(
        "sentiment_compound(x)",
        &["sentiment_compound expects a text argument, got Float64"],
    );
    rejects(
        "keyword_count(i, 'a')",
        &["keyword_count expects a text argument, got Int64"],
    );
    rejects(
        "safe_log(review)",
        &["safe_log expects a numeric argument, got Utf8"],
    );
    rejects(
        "bucketize(review, '1,2')",
        &["bucketize expects a numeric argument, got Utf8"],
    );
    rejects(
        "hash_bucket(x, 10)",
        &["hash_bucket expects a text, integer or boolean argument, got Float64"],
    );
    rejects(
        "cross_hash(review, x, 10)",
        &["cross_hash expects a text, integer or boolean argument 2, got Float64"],
    );
}

#[test]
fn wrong_literal_arguments() {
    rejects(
        "hash_bucket(review, 0)",
        &["hash_bucket: argument 2 (n, the number of buckets) must be between 1 and"],
    );
    rejects(
        "hash_bucket(review, -3)",
        &["hash_bucket: argument 2 (n, the number of buckets) must be between 1 and"],
    );
    rejects(
        "hash_bucket(review, i)",
        &[
            "hash_bucket: argument 2 (n, the number of buckets) must be an integer literal, not a column",
        ],
    );
    rejects(
        "hash_bucket(review, 2.5)",
        &["must be an integer literal, got Float64"],
    );
    rejects(
        "cross_hash(review, 10)",
        &["cross_hash takes at least 3 arguments"],
    );
    rejects(
        "cross_hash(review, i, 0)",
        &["cross_hash: argument 3 (n, the number of buckets)"],
    );
    rejects(
        "bucketize(x, '10,0')",
        &["bucketize: boundaries '10,0' are not strictly increasing"],
    );
    rejects(
        "bucketize(x, '1,abc')",
        &["bucketize: boundary 'abc' in '1,abc' is not a number"],
    );
    rejects(
        "bucketize(x, review)",
        &["bucketize: argument 2 (the boundaries) must be a string literal"],
    );
    rejects(
        "keyword_count(review, ' , ')",
        &["keyword_count: the keyword list ' , ' holds no keyword"],
    );
    rejects(
        "has_keyword(review, 'free prize')",
        &["keywords are single words"],
    );
    rejects(
        "one_hot(review, 7)",
        &["one_hot: argument 2 (the category) must be a string literal"],
    );
    rejects(
        "word_count(review, 'x')",
        &["word_count takes 1 argument (word_count(text)), got 2"],
    );
}

#[test]
fn unknown_names() {
    let e = RowExpr::compile("wrd_count(review)", schema())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`wrd_count(review)`") && e.contains("wrd_count"),
        "{e}"
    );
    let e = RowExpr::compile("word_count(reviw)", schema())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`word_count(reviw)`") && e.contains("reviw"),
        "{e}"
    );
    let e = RowExpr::compile("word_count(", schema())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot compile feature expression `word_count(`"),
        "{e}"
    );
}

#[test]
fn batch_with_another_schema() {
    let expr = RowExpr::compile("word_count(review)", schema()).unwrap();
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "review",
            DataType::Int64,
            true,
        )])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let e = expr.evaluate(&other).unwrap_err().to_string();
    assert!(
        e.contains("`word_count(review)`") && e.contains("review: Int64"),
        "{e}"
    );
}
