//! Reading a source into a DataFusion `DataFrame`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{CsvReadOptions, DataFrame, ParquetReadOptions, SessionContext};
use quiver_core::{Source, SourceKind};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Column, Row, TypeInfo};

use crate::error::{Error, Result};
use crate::types::timestamp_type;

/// The error for a source.
pub fn source_error(source: &Source, message: impl Into<String>) -> Error {
    Error::Source {
        source_name: source.name.clone(),
        location: source.kind.location(),
        message: message.into(),
    }
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Resolves a source path against the repository root and checks that it exists.
pub fn resolve_path(root: &Path, path: &str) -> std::result::Result<String, String> {
    let full: PathBuf = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        root.join(path)
    };
    let text = full.to_string_lossy().to_string();
    if has_glob(path) {
        return Ok(text);
    }
    if full.is_dir() {
        return Ok(format!("{}/", text.trim_end_matches('/')));
    }
    if !full.is_file() {
        return Err(format!("no such file or directory: {text}"));
    }
    Ok(text)
}

/// Where `source_frame` reads `path` from: an object-storage URL (its bucket registered in
/// `ctx`, see [`crate::remote`]), or a local path resolved by [`resolve_path`].
pub fn locate(
    ctx: &SessionContext,
    root: &Path,
    path: &str,
) -> std::result::Result<String, String> {
    if crate::remote::is_url(path) {
        crate::remote::register(ctx, path)?;
        return Ok(path.to_string());
    }
    resolve_path(root, path)
}

/// A `DataFrame` over a source's rows, all columns.
pub async fn source_frame(ctx: &SessionContext, root: &Path, source: &Source) -> Result<DataFrame> {
    let err = |m: String| source_error(source, m);
    match &source.kind {
        SourceKind::Parquet { path } => {
            let p = locate(ctx, root, path).map_err(err)?;
            ctx.read_parquet(p, ParquetReadOptions::default())
                .await
                .map_err(|e| err(clean(e)))
        }
        SourceKind::Csv { path, delimiter } => {
            let p = locate(ctx, root, path).map_err(err)?;
            let ext = if p.ends_with('/') || has_glob(path) {
                ".csv".to_string()
            } else {
                Path::new(&p)
                    .extension()
                    .map(|e| format!(".{}", e.to_string_lossy()))
                    .unwrap_or_default()
            };
            let opts = CsvReadOptions::new()
                .has_header(true)
                .delimiter(*delimiter as u8)
                .file_extension(&ext);
            ctx.read_csv(p, opts).await.map_err(|e| err(clean(e)))
        }
        SourceKind::Postgres {
            connection,
            table,
            query,
        } => {
            let url = postgres_url(connection.as_deref()).map_err(err)?;
            let sql = match (table, query) {
                (Some(t), _) => format!("SELECT * FROM {t}"),
                (None, Some(q)) => q.clone(),
                (None, None) => return Err(err("needs a table or a query".into())),
            };
            let batch = read_postgres(&url, &sql).await.map_err(err)?;
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
            Ok(ctx.read_table(Arc::new(table))?)
        }
    }
}

/// DataFusion's messages wrap the useful part in context; keep them short.
pub fn clean(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let s = s.trim_start_matches("Error during planning: ");
    let s = s.trim_start_matches("External error: ");
    s.to_string()
}

/// The connection URL of a PostgreSQL source: the `connection` field (with `$NAME` read from the
/// environment) or `QUIVER_POSTGRES_URL`.
pub fn postgres_url(connection: Option<&str>) -> std::result::Result<String, String> {
    let raw = match connection {
        Some(c) => c.to_string(),
        None => std::env::var("QUIVER_POSTGRES_URL")
            .map_err(|_| "no 'connection' given and QUIVER_POSTGRES_URL is not set".to_string())?,
    };
    match raw.strip_prefix('$') {
        Some(var) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
        }
        None => Ok(raw),
    }
}

/// PostgreSQL types read natively.
const READABLE: &[&str] = &[
    "INT2",
    "INT4",
    "INT8",
    "FLOAT4",
    "FLOAT8",
    "TEXT",
    "VARCHAR",
    "BPCHAR",
    "NAME",
    "BOOL",
    "TIMESTAMPTZ",
    "TIMESTAMP",
    "DATE",
];

async fn describe_columns(
    pool: &sqlx::PgPool,
    sql: &str,
) -> std::result::Result<Vec<(String, String)>, String> {
    Ok(sqlx::Executor::describe(pool, sql)
        .await
        .map_err(|e| format!("query failed: {e}"))?
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
        .collect())
}

/// Runs `sql` on PostgreSQL and returns the rows as one Arrow batch. Integers become int64,
/// floats and numerics float64, text string, timestamps UTC microseconds, dates date32; other
/// types are read as their text.
pub async fn read_postgres(url: &str, sql: &str) -> std::result::Result<RecordBatch, String> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    // Column types from the statement, so that an empty result still has a schema.
    let mut described = describe_columns(&pool, sql).await?;
    // NUMERIC becomes float8 and types without an Arrow mapping (uuid, json, interval, ...)
    // become text, in a wrapping query, so that any table can be read.
    let mut sql = sql.to_string();
    if described
        .iter()
        .any(|(_, t)| !READABLE.contains(&t.as_str()))
    {
        let cols: Vec<String> = described
            .iter()
            .map(|(n, t)| {
                let q = format!("\"{}\"", n.replace('"', "\"\""));
                match t.as_str() {
                    t if READABLE.contains(&t) => q,
                    "NUMERIC" => format!("{q}::float8 AS {q}"),
                    _ => format!("{q}::text AS {q}"),
                }
            })
            .collect();
        sql = format!("SELECT {} FROM ({sql}) AS quiver_source", cols.join(", "));
        described = describe_columns(&pool, &sql).await?;
    }
    let rows = sqlx::query(&sql)
        .fetch_all(&pool)
        .await
        .map_err(|e| format!("query failed: {e}"))?;
    pool.close().await;
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, (name, ty)) in described.iter().enumerate() {
        let get_err = |e: sqlx::Error| format!("column '{name}': {e}");
        let (dt, array): (DataType, ArrayRef) = match ty.as_str() {
            "INT2" | "INT4" | "INT8" => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for r in &rows {
                    let v: Option<i64> = match ty.as_str() {
                        "INT2" => r
                            .try_get::<Option<i16>, _>(i)
                            .map_err(get_err)?
                            .map(i64::from),
                        "INT4" => r
                            .try_get::<Option<i32>, _>(i)
                            .map_err(get_err)?
                            .map(i64::from),
                        _ => r.try_get::<Option<i64>, _>(i).map_err(get_err)?,
                    };
                    b.append_option(v);
                }
                (DataType::Int64, Arc::new(b.finish()))
            }
            "FLOAT4" | "FLOAT8" => {
                let mut b = Float64Builder::with_capacity(rows.len());
                for r in &rows {
                    let v: Option<f64> = if ty == "FLOAT4" {
                        r.try_get::<Option<f32>, _>(i)
                            .map_err(get_err)?
                            .map(f64::from)
                    } else {
                        r.try_get::<Option<f64>, _>(i).map_err(get_err)?
                    };
                    b.append_option(v);
                }
                (DataType::Float64, Arc::new(b.finish()))
            }
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
                let mut b = StringBuilder::new();
                for r in &rows {
                    b.append_option(r.try_get::<Option<String>, _>(i).map_err(get_err)?);
                }
                (DataType::Utf8, Arc::new(b.finish()))
            }
            "BOOL" => {
                let mut b = BooleanBuilder::new();
                for r in &rows {
                    b.append_option(r.try_get::<Option<bool>, _>(i).map_err(get_err)?);
                }
                (DataType::Boolean, Arc::new(b.finish()))
            }
            "TIMESTAMPTZ" | "TIMESTAMP" => {
                let mut b = TimestampMicrosecondBuilder::new();
                for r in &rows {
                    let v = if ty == "TIMESTAMPTZ" {
                        r.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)
                            .map_err(get_err)?
                    } else {
                        r.try_get::<Option<chrono::NaiveDateTime>, _>(i)
                            .map_err(get_err)?
                            .map(|n| n.and_utc())
                    };
                    b.append_option(v.map(|t| t.timestamp_micros()));
                }
                (timestamp_type(), Arc::new(b.finish().with_timezone("UTC")))
            }
            "DATE" => {
                let mut b = Date32Builder::new();
                let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                for r in &rows {
                    let v = r
                        .try_get::<Option<chrono::NaiveDate>, _>(i)
                        .map_err(get_err)?;
                    b.append_option(v.map(|d| (d - epoch).num_days() as i32));
                }
                (DataType::Date32, Arc::new(b.finish()))
            }
            other => {
                return Err(format!(
                    "column '{name}' has PostgreSQL type {other}, which Quiver does not read: cast it in a query (e.g. {name}::float8)"
                ));
            }
        };
        fields.push(Field::new(name, dt, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())
}
