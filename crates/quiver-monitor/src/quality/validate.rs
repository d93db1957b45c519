//! Checks a registry's quality sets against their data, for `apply`: what the registry alone
//! cannot know because a source declares no columns.

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::ExprSchemable;
use quiver_core::{CheckKind, Error as CoreError, QualitySet};
use quiver_offline::OfflineEngine;
use quiver_offline::source::clean;
use quiver_offline::types::{describe, is_string};

use super::scan::target_frame;
use super::{QualityError, Result};

/// Refuses a declared drift test Quiver does not know (see
/// [`crate::drift::declared::validate`]), and, with the file, line, set and check, a check
/// naming a column its target does not
/// have, a `range` on a column that is not numeric, an `allowed_values` list of text for a
/// numeric column, or a `sql` expression that does not parse against the target or is not a
/// condition. A target that cannot be read is left to the engine's own validation.
pub async fn validate_against_data(engine: &OfflineEngine) -> Result<()> {
    // (Also the features' declared drift tests, which only this crate knows.)
    crate::drift::declared::validate(engine.registry()).map_err(QualityError::Invalid)?;
    let now = super::now_us();
    for set in engine.registry().quality.values() {
        let Ok((df, _)) = target_frame(engine, set, now).await else {
            continue;
        };
        let schema = df.schema().clone();
        for (i, check) in set.checks.iter().enumerate() {
            if let Err(m) = check_one(engine, set, &check.kind, &schema) {
                return Err(QualityError::Invalid(
                    CoreError::invalid(&check.at, "quality", &set.name, &set.check_label(i), m)
                        .to_string(),
                ));
            }
        }
    }
    Ok(())
}

fn check_one(
    engine: &OfflineEngine,
    set: &QualitySet,
    kind: &CheckKind,
    schema: &datafusion::common::DFSchema,
) -> std::result::Result<(), String> {
    let arrow = schema.as_arrow();
    let names: Vec<&String> = arrow.fields().iter().map(|f| f.name()).collect();
    for c in kind.columns() {
        if arrow.field_with_name(c).is_err() {
            return Err(format!(
                "{} has no column '{c}'{}",
                set.target,
                quiver_core::registry::suggest(c, names.iter().map(|s| s.as_str()))
            ));
        }
    }
    let type_of = |c: &str| arrow.field_with_name(c).map(|f| f.data_type().clone()).ok();
    match kind {
        CheckKind::Range { column, .. } => {
            let d = type_of(column).unwrap_or(DataType::Null);
            if !d.is_numeric() {
                return Err(format!(
                    "column '{column}' is {}, not a number: a range check needs numbers",
                    describe(&d)
                ));
            }
        }
        CheckKind::AllowedValues { column, values } => {
            let d = type_of(column).unwrap_or(DataType::Null);
            if !is_string(&d)
                && let Some(v) = values
                    .iter()
                    .find(|v| matches!(v, quiver_core::quality::Scalar::Str(_)))
            {
                return Err(format!(
                    "value '{v}' is text but column '{column}' is {}",
                    describe(&d)
                ));
            }
        }
        CheckKind::Sql { expr, .. } => {
            let e = engine
                .session()
                .parse_sql_expr(expr, schema)
                .map_err(|e| format!("expr: {}", clean(e)))?;
            let t = e
                .get_type(schema)
                .map_err(|e| format!("expr: {}", clean(e)))?;
            if !matches!(t, DataType::Boolean | DataType::Null) {
                return Err(format!(
                    "expr: '{expr}' is {}, not a condition",
                    describe(&t)
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
