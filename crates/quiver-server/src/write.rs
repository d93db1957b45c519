//! Write and admin endpoints: `/push`, `/write-to-online-store`, `/materialize`,
//! `/materialize-incremental` (Feast's paths and bodies).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json as AxumJson;
use axum::body::Bytes;
use axum::extract::State;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use quiver_core::{FeatureView, Registry, Source, SourceKind, ValueType};
use quiver_online::materialize::{MaterializeOptions, MaterializeProgress, ViewReport};
use quiver_online::{EntityKey, OnlineRow, Value, ViewWrite};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::AppState;
use crate::convert::{from_json, key_value, short, timestamp};
use crate::error::{ApiError, parse_body};

#[derive(Deserialize)]
pub struct PushRequest {
    push_source_name: String,
    df: Map<String, Json>,
    #[serde(default = "online")]
    to: String,
}

fn online() -> String {
    "online".into()
}

#[derive(Deserialize)]
pub struct WriteRequest {
    feature_view_name: String,
    df: Map<String, Json>,
}

#[derive(Deserialize)]
pub struct MaterializeRequest {
    #[serde(default)]
    start_ts: Option<String>,
    #[serde(default)]
    end_ts: Option<String>,
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    /// Rows per write batch (default 10,000).
    #[serde(default)]
    batch_rows: Option<usize>,
}

/// The body of `POST /online/clear`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// The views to empty; every view when absent.
    #[serde(default)]
    feature_views: Option<Vec<String>>,
}

/// A request's `df`: columns of equal length.
struct Frame<'a> {
    columns: Vec<(&'a str, &'a Vec<Json>)>,
    rows: usize,
}

impl<'a> Frame<'a> {
    fn new(df: &'a Map<String, Json>, max_rows: usize) -> Result<Frame<'a>, ApiError> {
        let mut columns = Vec::new();
        for (name, v) in df {
            let Json::Array(values) = v else {
                return Err(ApiError::bad(format!(
                    "df.{name} must be a list of values, one per row"
                )));
            };
            columns.push((name.as_str(), values));
        }
        let rows = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
        if let Some((name, v)) = columns.iter().find(|(_, v)| v.len() != rows) {
            return Err(ApiError::bad(format!(
                "df.{name} has {} values but df.{} has {rows}",
                v.len(),
                columns[0].0
            )));
        }
        if rows == 0 {
            return Err(ApiError::bad("df has no rows"));
        }
        if rows > max_rows {
            return Err(ApiError::bad(format!(
                "{rows} rows in one request; the limit is {max_rows} (server.max_entities)"
            )));
        }
        Ok(Frame { columns, rows })
    }

    fn column(&self, name: &str, what: &str) -> Result<&'a Vec<Json>, ApiError> {
        self.columns
            .iter()
            .find(|(c, _)| *c == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "df has no column '{name}' ({what}); it has: {}",
                    self.columns
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// The values of `view`'s SQL-expression features for the pushed rows, computed by the same
/// compiled expressions as the offline engine's (quiver-transforms), over the pushed columns
/// typed as the source's files are (or as declared, for a source without files). `None` for a
/// plain feature.
fn derived_columns(
    state: &AppState,
    registry: &Registry,
    view: &FeatureView,
    source: &Source,
    frame: &Frame<'_>,
) -> Result<Vec<Option<ArrayRef>>, ApiError> {
    if view.features.iter().all(|f| f.expr.is_none()) {
        return Ok(vec![None; view.features.len()]);
    }
    let existing = match &source.kind {
        SourceKind::Parquet { path } if state.root.join(path).is_dir() => {
            existing_schema(&state.root.join(path))?
        }
        _ => None,
    };
    let schema = existing.unwrap_or_else(|| declared_schema(registry, source, frame));
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for field in schema.fields() {
        if let Some((_, col)) = frame.columns.iter().find(|(c, _)| c == field.name()) {
            arrays.push(
                column_array(col, field.data_type())
                    .map_err(|m| ApiError::bad(format!("df.{}: {m}", field.name())))?,
            );
            fields.push(field.as_ref().clone());
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    view.features
        .iter()
        .map(|f| {
            let Some(expr) = &f.expr else { return Ok(None) };
            let bad = |m: String| {
                ApiError::bad(format!(
                    "feature '{}:{}' = {expr}: {m} (pushed columns: {})",
                    view.name,
                    f.name,
                    frame
                        .columns
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            let compiled = quiver_transforms::RowExpr::compile(expr, Arc::clone(&schema))
                .map_err(|e| bad(e.to_string()))?;
            let out = compiled.evaluate(&batch).map_err(|e| bad(e.to_string()))?;
            let want = quiver_offline::types::arrow_type(f.value_type);
            let out = if out.data_type() == &want {
                out
            } else {
                datafusion::arrow::compute::cast(&out, &want).map_err(|e| bad(e.to_string()))?
            };
            Ok(Some(out))
        })
        .collect()
}

/// The online rows of `view` in `df`, all checked before anything is written.
fn view_rows(
    state: &AppState,
    registry: &Registry,
    view: &FeatureView,
    source: &Source,
    frame: &Frame<'_>,
) -> Result<(Vec<String>, Vec<OnlineRow>), ApiError> {
    if view.is_aggregation() {
        // Offline push needs a directory source: advise it only where it works.
        let advice = match &source.kind {
            SourceKind::Parquet { path } if state.root.join(path).is_dir() => {
                "push the events with \"to\": \"offline\", then materialize".to_string()
            }
            _ => format!(
                "add the events to source '{}' and run `quiver materialize` (to push them over HTTP with \"to\": \"offline\", the source must be parquet with a directory as its path)",
                source.name
            ),
        };
        return Err(ApiError::bad(format!(
            "feature view '{}' computes windowed aggregations from its source's events, so rows cannot be written to it online; {advice}",
            view.name
        )));
    }
    let derived = derived_columns(state, registry, view, source, frame)?;
    let join_keys = registry.view_join_keys(view);
    let key_cols = join_keys
        .iter()
        .map(|k| Ok((k, frame.column(&k.name, "a join key")?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let ts_col = frame.column(&source.timestamp_field, "the event timestamp")?;
    // Plain features are read from the JSON; derived ones were computed above.
    let feat_cols = view
        .features
        .iter()
        .zip(&derived)
        .map(|(f, d)| match d {
            Some(_) => Ok((f, None)),
            None => Ok((
                f,
                Some(frame.column(f.source_column(), &format!("feature '{}'", f.name))?),
            )),
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let mut rows = Vec::with_capacity(frame.rows);
    for i in 0..frame.rows {
        let parts = key_cols
            .iter()
            .map(|(k, col)| key_value(&k.name, i, &col[i], k.value_type))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ApiError::bad(m.replace("entities.", "df.")))?;
        let event_ts = timestamp(&ts_col[i])
            .map_err(|m| ApiError::bad(format!("df.{}[{i}]: {m}", source.timestamp_field)))?;
        let values = feat_cols
            .iter()
            .zip(&derived)
            .map(|((f, col), d)| {
                let Some(col) = col else {
                    let array = d.as_ref().expect("derived");
                    return Value::from_array(array, i, f.value_type).map_err(|m| {
                        ApiError::bad(format!(
                            "df row {i} (feature '{}:{}'): {m}",
                            view.name, f.name
                        ))
                    });
                };
                from_json(&col[i], f.value_type).map_err(|m| {
                    ApiError::bad(format!(
                        "df.{}[{i}] (feature '{}:{}'): {m}",
                        f.source_column(),
                        view.name,
                        f.name
                    ))
                })
            })
            .collect::<Result<Vec<Value>, _>>()?;
        rows.push(OnlineRow {
            key: EntityKey::new(&parts),
            event_ts,
            values,
        });
    }
    let names = view.features.iter().map(|f| f.name.clone()).collect();
    Ok((names, rows))
}

async fn write_rows(
    state: &AppState,
    view: &FeatureView,
    names: &[String],
    rows: &[OnlineRow],
) -> Result<Json, ApiError> {
    let write = ViewWrite {
        view: &view.name,
        features: names,
        ttl_us: (!view.ttl.is_zero()).then(|| view.ttl.micros()),
    };
    let started = std::time::Instant::now();
    let stats = state.store.write_batch(&write, rows).await;
    metrics::histogram!("quiver_online_store_write_seconds")
        .record(started.elapsed().as_secs_f64());
    let stats = stats?;
    metrics::counter!("quiver_rows_written_online_total", "path" => "push")
        .increment(stats.written);
    Ok(json!({"view": view.name, "written": stats.written, "skipped_older": stats.skipped_older}))
}

pub async fn push(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<AxumJson<Json>, ApiError> {
    let req: PushRequest = parse_body(&body)?;
    let (to_online, to_offline) = match req.to.as_str() {
        "online" => (true, false),
        "offline" => (false, true),
        "online_and_offline" => (true, true),
        other => {
            return Err(ApiError::bad(format!(
                "\"to\": \"{other}\" is not one of online, offline, online_and_offline"
            )));
        }
    };
    let served = state.served();
    let registry = &*served.registry;
    let source = registry.sources.get(&req.push_source_name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no source '{}'{}",
            req.push_source_name,
            quiver_core::registry::suggest(&req.push_source_name, registry.sources.keys())
        ))
    })?;
    let frame = Frame::new(&req.df, state.config.max_entities)?;
    // Check everything first: a bad request writes nothing.
    let mut online_writes = Vec::new();
    if to_online {
        let views: Vec<&FeatureView> = registry
            .views
            .values()
            .filter(|v| v.source == source.name && v.online)
            .collect();
        if views.is_empty() {
            return Err(ApiError::bad(format!(
                "no online feature view reads source '{}'",
                source.name
            )));
        }
        for v in views {
            let (names, rows) = view_rows(&state, registry, v, source, &frame)?;
            online_writes.push((v, names, rows));
        }
    }
    let offline = if to_offline {
        Some(offline_batch(&state, registry, source, &frame)?)
    } else {
        None
    };
    let mut written = Vec::new();
    for (v, names, rows) in &online_writes {
        written.push(write_rows(&state, v, names, rows).await?);
    }
    let offline_file = match offline {
        Some((dir, batch)) => Some(append_parquet(&dir, &batch)?),
        None => None,
    };
    Ok(AxumJson(json!({
        "push_source_name": source.name,
        "rows": frame.rows,
        "online": written,
        "offline_file": offline_file.map(|p| p.strip_prefix(&state.root).map(Path::to_path_buf).unwrap_or(p).display().to_string()),
    })))
}

pub async fn write_to_online_store(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<AxumJson<Json>, ApiError> {
    let req: WriteRequest = parse_body(&body)?;
    let served = state.served();
    let registry = &*served.registry;
    let view = registry.views.get(&req.feature_view_name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no feature view '{}'{}",
            req.feature_view_name,
            quiver_core::registry::suggest(&req.feature_view_name, registry.views.keys())
        ))
    })?;
    let source = &registry.sources[&view.source];
    let frame = Frame::new(&req.df, state.config.max_entities)?;
    let (names, rows) = view_rows(&state, registry, view, source, &frame)?;
    Ok(AxumJson(write_rows(&state, view, &names, &rows).await?))
}

/// The directory a push appends Parquet files to, and the batch to write, checked against the
/// files already there.
fn offline_batch(
    state: &AppState,
    registry: &Registry,
    source: &Source,
    frame: &Frame<'_>,
) -> Result<(PathBuf, RecordBatch), ApiError> {
    let SourceKind::Parquet { path } = &source.kind else {
        return Err(ApiError::bad(format!(
            "source '{}' is {}; offline push appends Parquet files, so it needs a parquet source whose path is a directory",
            source.name,
            source.kind.type_name()
        )));
    };
    let dir = state.root.join(path);
    if !dir.is_dir() {
        let p = Path::new(path);
        let folder = if path.contains(['*', '?']) {
            p.parent().unwrap_or(p).to_path_buf()
        } else {
            p.with_extension("")
        };
        return Err(ApiError::bad(format!(
            "source '{}' reads {path}, which is not a directory; offline push appends a new Parquet file to the source's directory: move its files into a folder, set `path: {}/` and run `quiver apply`, or add the rows to its files yourself and run `quiver materialize`",
            source.name,
            folder.display()
        )));
    }
    let schema = match existing_schema(&dir)? {
        Some(s) => s,
        None => declared_schema(registry, source, frame),
    };
    if let Some((extra, _)) = frame
        .columns
        .iter()
        .find(|(c, _)| schema.field_with_name(c).is_err())
    {
        return Err(ApiError::bad(format!(
            "df column '{extra}' is not in the files of source '{}' (columns: {})",
            source.name,
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for field in schema.fields() {
        let col = frame.column(field.name(), "a column of the source's files")?;
        arrays.push(
            column_array(col, field.data_type())
                .map_err(|m| ApiError::bad(format!("df.{}: {m}", field.name())))?,
        );
    }
    let batch =
        RecordBatch::try_new(Arc::new(schema), arrays).map_err(|e| ApiError::bad(e.to_string()))?;
    Ok((dir, batch))
}

fn existing_schema(dir: &Path) -> Result<Option<Schema>, ApiError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let Some(first) = files.first() else {
        return Ok(None);
    };
    let file = std::fs::File::open(first)
        .map_err(|e| ApiError::internal(format!("{}: {e}", first.display())))?;
    let builder =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| ApiError::internal(format!("{}: {e}", first.display())))?;
    Ok(Some(Schema::new(builder.schema().fields().clone())))
}

/// The schema of a push into an empty directory: declared types where the registry knows the
/// column, inferred from the JSON otherwise.
fn declared_schema(registry: &Registry, source: &Source, frame: &Frame<'_>) -> Schema {
    let mut known: Vec<(String, ValueType)> = Vec::new();
    for v in registry.views.values().filter(|v| v.source == source.name) {
        for k in registry.view_join_keys(v) {
            known.push((k.name.clone(), k.value_type));
        }
        for f in &v.features {
            known.push((f.source_column().to_string(), f.value_type));
        }
    }
    let fields: Vec<Field> = frame
        .columns
        .iter()
        .map(|(name, values)| {
            let t = if *name == source.timestamp_field
                || Some(*name) == source.created_timestamp_field.as_deref()
            {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            } else if let Some((_, t)) = known.iter().find(|(c, _)| c == name) {
                quiver_offline::types::arrow_type(*t)
            } else {
                infer(values)
            };
            Field::new(*name, t, true)
        })
        .collect();
    Schema::new(fields)
}

fn infer(values: &[Json]) -> DataType {
    let mut t = DataType::Null;
    for v in values {
        let this = match v {
            Json::Bool(_) => DataType::Boolean,
            Json::Number(n) if n.is_i64() => DataType::Int64,
            Json::Number(_) => DataType::Float64,
            Json::String(_) => DataType::Utf8,
            _ => continue,
        };
        t = match (&t, &this) {
            (DataType::Null, _) => this,
            (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
                DataType::Float64
            }
            (a, b) if a == b => t,
            _ => DataType::Utf8,
        };
    }
    if t == DataType::Null {
        DataType::Utf8
    } else {
        t
    }
}

pub(crate) fn column_array(values: &[Json], t: &DataType) -> Result<ArrayRef, String> {
    let vt = |t: ValueType| -> Result<Vec<Value>, String> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| from_json(v, t).map_err(|m| format!("row {i}: {m}")))
            .collect()
    };
    let ts = || -> Result<Vec<Option<i64>>, String> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if v.is_null() {
                    Ok(None)
                } else {
                    timestamp(v).map(Some).map_err(|m| format!("row {i}: {m}"))
                }
            })
            .collect()
    };
    Ok(match t {
        DataType::Int64 => Arc::new(Int64Array::from_iter(
            vt(ValueType::Int64)?.into_iter().map(|v| match v {
                Value::Int64(x) => Some(x),
                _ => None,
            }),
        )),
        DataType::Int32 => Arc::new(Int32Array::from_iter(
            vt(ValueType::Int32)?.into_iter().map(|v| match v {
                Value::Int32(x) => Some(x),
                _ => None,
            }),
        )),
        DataType::Float64 => Arc::new(Float64Array::from_iter(
            vt(ValueType::Float64)?.into_iter().map(|v| match v {
                Value::Float64(x) => Some(x),
                _ => None,
            }),
        )),
        DataType::Float32 => Arc::new(Float32Array::from_iter(
            vt(ValueType::Float32)?.into_iter().map(|v| match v {
                Value::Float32(x) => Some(x),
                _ => None,
            }),
        )),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings: Vec<Option<String>> = values
                .iter()
                .map(|v| match v {
                    Json::Null => None,
                    Json::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect();
            let a: ArrayRef = Arc::new(StringArray::from(strings));
            datafusion::arrow::compute::cast(&a, t).map_err(|e| e.to_string())?
        }
        DataType::Boolean => Arc::new(BooleanArray::from_iter(
            vt(ValueType::Bool)?.into_iter().map(|v| match v {
                Value::Bool(x) => Some(x),
                _ => None,
            }),
        )),
        DataType::Timestamp(unit, tz) => {
            let us = ts()?;
            let a: ArrayRef = match unit {
                TimeUnit::Second => Arc::new(TimestampSecondArray::from(
                    us.iter()
                        .map(|v| v.map(|x| x.div_euclid(1_000_000)))
                        .collect::<Vec<_>>(),
                )),
                TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(
                    us.iter()
                        .map(|v| v.map(|x| x.div_euclid(1_000)))
                        .collect::<Vec<_>>(),
                )),
                TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(us)),
                TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(
                    us.iter().map(|v| v.map(|x| x * 1_000)).collect::<Vec<_>>(),
                )),
            };
            datafusion::arrow::compute::cast(&a, &DataType::Timestamp(*unit, tz.clone()))
                .map_err(|e| e.to_string())?
        }
        other => {
            return Err(format!(
                "the source's files hold {other}, which offline push cannot write yet (first value: {})",
                values.first().map(short).unwrap_or_default()
            ));
        }
    })
}

/// Writes `batch` as a new file in `dir` (via a temporary name and a rename, so readers never
/// see a partial file).
fn append_parquet(dir: &Path, batch: &RecordBatch) -> Result<PathBuf, ApiError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("push-{nanos}-{}.parquet", std::process::id());
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(&name);
    let io = |e: &dyn std::fmt::Display| ApiError::internal(format!("{}: {e}", path.display()));
    let file = std::fs::File::create(&tmp).map_err(|e| io(&e))?;
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
        .map_err(|e| io(&e))?;
    w.write(batch).map_err(|e| io(&e))?;
    w.close().map_err(|e| io(&e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&e))?;
    Ok(path)
}

struct Counter;
impl MaterializeProgress for Counter {
    fn rows_written(&self, _view: &str, rows: u64) {
        metrics::counter!("quiver_rows_materialized_total").increment(rows);
    }
}

async fn run_materialize(
    state: &AppState,
    req: MaterializeRequest,
    incremental: bool,
) -> Result<AxumJson<Json>, ApiError> {
    let now = quiver_online::format_time(chrono::Utc::now().timestamp_micros());
    let mut opts = MaterializeOptions::from_args(
        // An incremental run continues from each view's watermark.
        if incremental {
            None
        } else {
            req.start_ts.as_deref()
        },
        req.end_ts.as_deref().unwrap_or(&now),
        req.feature_views.unwrap_or_default(),
        req.batch_rows.unwrap_or(10_000),
        quiver_online::materialize::ArgNames {
            start: "start_ts",
            end: "end_ts",
            batch_rows: "batch_rows",
        },
    )
    .map_err(ApiError::bad)?;
    // POST /materialize without start_ts reads from the start of the data, not the watermark.
    opts.incremental = incremental;
    // The quality sets on what the run reads go first (quiver_monitor::quality::gate).
    let served = state.served();
    let (gate, reports) = quiver_monitor::quality::materialize_checked(
        &served.engine,
        &*state.store,
        &state.meta,
        &opts,
        Arc::new(Counter),
        served.version,
        &state.alerter(),
    )
    .await
    .map_err(quality_error)?;
    let mut report = materialize_report(&reports, &state.store.describe());
    report["quality_warnings"] = json!(gate.warnings);
    Ok(AxumJson(report))
}

/// A blocked materialization is 409 (the data, not the request, is at fault: nothing was
/// written); the rest as [`materialize_error`].
fn quality_error(e: quiver_monitor::quality::QualityError) -> ApiError {
    use quiver_monitor::quality::QualityError;
    match e {
        QualityError::Blocked { message, .. } => ApiError {
            status: axum::http::StatusCode::CONFLICT,
            message,
        },
        QualityError::Materialize(m) => materialize_error(m),
        QualityError::Invalid(m) => ApiError::bad(m),
        other => ApiError::internal(other.to_string()),
    }
}

/// A materialization's reports as JSON: the answer of `POST /materialize` and the output of
/// `quiver materialize --json` (which renders its table from it, whether it ran the job itself
/// or through a server). `start` is START as given (inclusive), or for an incremental run the
/// watermark it continued after.
pub fn materialize_report(reports: &[ViewReport], store: &str) -> Json {
    let views: Vec<Json> = reports
        .iter()
        .map(|r| {
            json!({
                "view": r.view,
                "incremental": r.incremental,
                "start": r.shown_start_us().map(quiver_online::format_time),
                "end": quiver_online::format_time(r.end_us),
                "entities": r.entities,
                "written": r.stats.written,
                "skipped_older": r.stats.skipped_older,
                "seconds": r.seconds,
                "read_seconds": r.read_seconds,
            })
        })
        .collect();
    json!({"store": store, "views": views})
}

fn materialize_error(e: quiver_online::materialize::MaterializeError) -> ApiError {
    match e {
        quiver_online::materialize::MaterializeError::Invalid(m) => ApiError::bad(m),
        quiver_online::materialize::MaterializeError::Online(o) => ApiError::from(o),
        other => ApiError::internal(other.to_string()),
    }
}

/// `POST /online/clear`: empties the online store for some views (every view by default) and
/// forgets their watermarks.
pub async fn clear_online(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<AxumJson<Json>, ApiError> {
    let req: ClearRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ClearRequest::default()
    } else {
        parse_body(&body)?
    };
    let served = state.served();
    let cleared = quiver_online::materialize::clear(
        &served.registry,
        &*state.store,
        &state.meta,
        &req.feature_views.unwrap_or_default(),
    )
    .await
    .map_err(materialize_error)?;
    Ok(AxumJson(json!({
        "store": state.store.describe(),
        "views": cleared.iter().map(|c| json!({
            "view": c.view, "rows": c.rows, "watermark_reset": c.watermark_reset,
        })).collect::<Vec<_>>(),
    })))
}

pub async fn materialize(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<AxumJson<Json>, ApiError> {
    let req: MaterializeRequest = parse_body(&body)?;
    run_materialize(&state, req, false).await
}

pub async fn materialize_incremental(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<AxumJson<Json>, ApiError> {
    let req: MaterializeRequest = parse_body(&body)?;
    if req.end_ts.is_none() {
        return Err(ApiError::bad("end_ts is required"));
    }
    run_materialize(&state, req, true).await
}
