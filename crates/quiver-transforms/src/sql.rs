//! The transforms as DataFusion scalar UDFs: each columnar implementation loops over the rows and
//! calls the scalar function of [`crate::text_stats`], [`crate::categorical`],
//! [`crate::numeric`] or [`crate::vader`], so that offline and online share one code path.

mod args;
mod categorical;
mod numeric;
mod text;

use datafusion::logical_expr::ScalarUDF;

/// Every Quiver SQL function, ready to register in a DataFusion session.
pub fn functions() -> Vec<ScalarUDF> {
    let mut out: Vec<ScalarUDF> = text::TextKind::ALL
        .into_iter()
        .map(|k| ScalarUDF::from(text::TextFunction::new(k)))
        .collect();
    out.push(ScalarUDF::from(text::KeywordFunction::new(false)));
    out.push(ScalarUDF::from(text::KeywordFunction::new(true)));
    out.push(ScalarUDF::from(categorical::HashBucket::new()));
    out.push(ScalarUDF::from(categorical::CrossHash::new()));
    out.push(ScalarUDF::from(categorical::OneHot::new()));
    out.push(ScalarUDF::from(numeric::Bucketize::new()));
    out.push(ScalarUDF::from(numeric::LogFunction::new(true)));
    out.push(ScalarUDF::from(numeric::LogFunction::new(false)));
    out
}
