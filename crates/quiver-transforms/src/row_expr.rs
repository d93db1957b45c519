//! The online path: a feature expression compiled once, evaluated on the few rows of a request.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

/// A session with Quiver's functions and the offline engine's SQL dialect settings
/// (identifiers are case-sensitive: no normalization). Built once per process.
pub fn session() -> &'static SessionContext {
    static CTX: OnceLock<SessionContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let ctx = SessionContext::new_with_config(config);
        crate::register(&ctx);
        ctx
    })
}

/// A SQL feature expression (e.g. `word_count(review)`) compiled once to a DataFusion
/// `PhysicalExpr` for a given input schema, then evaluated per request with no parsing or planning.
///
/// Compiling simplifies the expression the way DataFusion's optimizer does offline, which folds
/// constant sub-expressions once — including stable functions such as `now()`, which therefore
/// read the compile time, not the request time: keep them out of online features.
///
/// ```
/// use std::sync::Arc;
/// use datafusion::arrow::array::{Array, AsArray, StringArray};
/// use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
/// use datafusion::arrow::record_batch::RecordBatch;
/// use quiver_transforms::RowExpr;
///
/// let schema = Arc::new(Schema::new(vec![Field::new("review", DataType::Utf8, true)]));
/// let expr = RowExpr::compile("word_count(review) + 1", schema.clone()).unwrap();
/// let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["Hi  there!"]))]).unwrap();
/// let out = expr.evaluate(&batch).unwrap();
/// assert_eq!(out.as_primitive::<Int64Type>().value(0), 3);
/// ```
#[derive(Debug, Clone)]
pub struct RowExpr {
    sql: String,
    input: SchemaRef,
    expr: Arc<dyn PhysicalExpr>,
    output: FieldRef,
}

impl RowExpr {
    /// Parses and plans `sql` against `input`. Errors name the expression and the culprit
    /// (unknown function, unknown column, wrong argument type, bad literal argument).
    pub fn compile(sql: &str, input: SchemaRef) -> Result<RowExpr> {
        let err = |source| Error::Compile {
            expr: sql.to_string(),
            source,
        };
        let ctx = session();
        let df_schema = DFSchema::try_from(Arc::clone(&input)).map_err(err)?;
        let logical = ctx.parse_sql_expr(sql, &df_schema).map_err(err)?;
        // Simplify as DataFusion's optimizer does offline: some functions (coalesce, nvl, ...)
        // only run after being rewritten, and constant sub-expressions are folded once here.
        let state = ctx.state();
        let simplify = SimplifyContext::builder()
            .with_schema(Arc::new(df_schema.clone()))
            .with_config_options(Arc::clone(state.config_options()))
            .with_query_execution_start_time(state.execution_props().query_execution_start_time)
            .build();
        let simplifier = ExprSimplifier::new(simplify);
        let logical = simplifier.coerce(logical, &df_schema).map_err(err)?;
        let logical = simplifier.simplify(logical).map_err(err)?;
        let expr = ctx.create_physical_expr(logical, &df_schema).map_err(err)?;
        let output = expr.return_field(&input).map_err(err)?;
        Ok(RowExpr {
            sql: sql.to_string(),
            input,
            expr,
            output,
        })
    }

    /// Evaluates on `batch` (which must have the compiled-for schema): one value per row.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let schema = batch.schema_ref();
        if !Arc::ptr_eq(schema, &self.input) && schema.fields() != self.input.fields() {
            return Err(Error::SchemaMismatch {
                expr: self.sql.clone(),
                want: field_list(&self.input),
                got: field_list(schema),
            });
        }
        self.expr
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|source| Error::Evaluate {
                expr: self.sql.clone(),
                source,
            })
    }

    /// The expression's SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The input schema it was compiled for.
    pub fn input_schema(&self) -> &SchemaRef {
        &self.input
    }

    /// The output field (name, type, nullability).
    pub fn output_field(&self) -> &FieldRef {
        &self.output
    }
}

fn field_list(s: &SchemaRef) -> String {
    s.fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}
