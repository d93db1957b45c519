//! # quiver-transforms
//!
//! The one transform library Quiver uses offline and online, so that what a model is trained on
//! is computed by the same code as what it is served with (no train/serve skew).
//!
//! * Each transform is **one plain Rust function on a scalar value** — [`text_stats`],
//!   [`categorical`], [`numeric`], [`vader`] — with its exact semantics in its doc comment.
//! * Each is exposed to DataFusion as a `ScalarUDF` ([`functions`], [`register`]) whose columnar
//!   implementation loops over the rows and calls that same scalar function. Feature views declare
//!   features as SQL expressions over source columns (`word_count(review)`); the offline engine
//!   evaluates them over whole tables.
//! * Online, [`RowExpr`] compiles the same SQL once to a DataFusion `PhysicalExpr` and evaluates
//!   it on the 1-row (or n-row) batch built from a request, with no planning per call.
//!
//! Argument checks happen while planning: a wrong call fails before any row is read, with a
//! message naming the function and the argument (`text_length expects a text argument, got
//! Int64`, `hash_bucket: argument 2 (n, the number of buckets) must be between 1 and ...`).
//! Unless a function says otherwise, a null input gives a null output.
//!
//! ## The SQL functions
//! | function | result | meaning |
//! |---|---|---|
//! | `text_length(s)` | Int64 | Unicode scalar values |
//! | `word_count(s)` | Int64 | whitespace-separated words |
//! | `avg_word_length(s)` | Float64 | non-whitespace chars / words; 0.0 with no word |
//! | `digit_count(s)` | Int64 | ASCII digits |
//! | `exclamation_count(s)` | Int64 | `!` characters |
//! | `uppercase_ratio(s)` | Float64 | uppercase letters / letters; 0.0 with no letter |
//! | `normalize_text(s)` | Utf8 | lowercase, punctuation → space, whitespace collapsed, trimmed |
//! | `keyword_count(s, 'a,b')` | Int64 | words of `normalize_text(s)` in the list, with repeats |
//! | `has_keyword(s, 'a,b')` | Boolean | `keyword_count(s, 'a,b') > 0` |
//! | `sentiment_compound(s)` etc. | Float64 | VADER `compound`, `pos`, `neg`, `neu` |
//! | `hash_bucket(x, n)` | Int64 | FNV-1a 64 of the value's text mod n |
//! | `cross_hash(a, b[, ...], n)` | Int64 | FNV-1a 64 of the length-prefixed texts mod n |
//! | `one_hot(x, 'v')` | Float64 | 1.0 if x's text is `v`, else 0.0 (null x → 0.0) |
//! | `bucketize(x, '0,10,100')` | Int64 | number of boundaries <= x (numpy.digitize); NaN → null |
//! | `safe_log(x)` | Float64 | ln(x) for x > 0, else null |
//! | `log1p(x)` | Float64 | ln(1 + x) |
#![deny(missing_docs)]

pub mod categorical;
pub mod error;
pub mod numeric;
mod row_expr;
mod sql;
pub mod text_stats;
pub mod vader;

use datafusion::prelude::SessionContext;

pub use error::{Error, Result};
pub use row_expr::{RowExpr, session};
pub use sql::functions;

/// Registers every function of [`functions`] in `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in functions() {
        ctx.register_udf(f);
    }
}

/// `sentiment_compound(s)`: VADER's compound score in [-1, 1] (4 decimals), see [`vader`].
pub fn sentiment_compound(s: &str) -> f64 {
    vader::polarity_scores(s).compound
}

/// `sentiment_positive(s)`: VADER's `pos` share in [0, 1] (3 decimals).
pub fn sentiment_positive(s: &str) -> f64 {
    vader::polarity_scores(s).pos
}

/// `sentiment_negative(s)`: VADER's `neg` share in [0, 1] (3 decimals).
pub fn sentiment_negative(s: &str) -> f64 {
    vader::polarity_scores(s).neg
}

/// `sentiment_neutral(s)`: VADER's `neu` share in [0, 1] (3 decimals).
pub fn sentiment_neutral(s: &str) -> f64 {
    vader::polarity_scores(s).neu
}
