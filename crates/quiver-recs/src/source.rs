//! Reading interaction rows: from a recommender's declared source (through
//! `quiver-offline`'s source readers) or from a Parquet / CSV file with the declaration's user
//! and item columns (and, when present, its event type column, a `weight` column and the
//! source's timestamp column).
//!
//! Rows with a null user or item are skipped, and so are rows whose event type has no weight
//! in `weights:` (a declaration with `weights:` lists the types that count). Integer ids are
//! read as their decimal text, so `42` in a file and `"42"` in a request name the same user.

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use quiver_core::Registry;
use quiver_core::recommender::Recommender;

use crate::interactions::InteractionLog;
use crate::{Error, Result};

/// What a read found besides the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Rows in the table.
    pub rows: usize,
    /// Rows skipped: null user or item.
    pub null_ids: usize,
    /// Rows skipped: an event type without a weight.
    pub unweighted_types: usize,
}

pub(crate) fn offline(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// The columns a recommender reads, checked against a schema: an error names the recommender's
/// file and line (when known), the field and the columns there are. A source must have every
/// declared column (`all`); a file only the user and item columns.
pub fn check_columns(
    rec: &Recommender,
    columns: &[String],
    timestamp: Option<&str>,
    what: &str,
    all: bool,
) -> Result<()> {
    let i = &rec.interactions;
    let mut wanted: Vec<(&str, &str)> = vec![
        ("interactions.user", &i.user),
        ("interactions.item", &i.item),
    ];
    if all {
        if let Some(e) = &i.event_type {
            wanted.push(("interactions.event_type", e));
        }
        if let Some(w) = &i.weight {
            wanted.push(("interactions.weight", w));
        }
        if let Some(t) = timestamp {
            wanted.push(("timestamp_field", t));
        }
    }
    for (field, col) in wanted {
        if !columns.iter().any(|c| c == col) {
            let at = if rec.at.file.as_os_str().is_empty() {
                String::new()
            } else {
                format!("{}: ", rec.at)
            };
            return Err(Error::Invalid(format!(
                "{at}recommender '{}', field '{field}': {what} has no column '{col}'{}",
                rec.name,
                quiver_core::registry::suggest(col, columns.iter())
            )));
        }
    }
    Ok(())
}

/// A source's rows (through `quiver-offline`'s reader) and its column names.
pub(crate) async fn frame_and_columns(
    ctx: &SessionContext,
    root: &Path,
    source: &quiver_core::Source,
) -> Result<(datafusion::prelude::DataFrame, Vec<String>)> {
    let df = quiver_offline::source::source_frame(ctx, root, source)
        .await
        .map_err(offline)?;
    let columns = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok((df, columns))
}

/// Checks every recommender's columns against its source's schema (reads schemas only), and
/// every experiment's outcome source ([`crate::ab::validate`]).
pub async fn validate(registry: &Registry, root: &Path) -> Result<()> {
    for rec in registry.recommenders.values() {
        let source = &registry.sources[&rec.interactions.source];
        let (_, columns) = frame_and_columns(&SessionContext::new(), root, source).await?;
        check_columns(
            rec,
            &columns,
            Some(&source.timestamp_field),
            &format!("source '{}'", source.name),
            true,
        )?;
    }
    crate::ab::validate(registry, root).await?;
    Ok(())
}

/// Reads the interactions of `rec` from its declared source.
pub async fn read_source(
    registry: &Registry,
    root: &Path,
    rec: &Recommender,
) -> Result<(InteractionLog, ReadStats)> {
    let source = &registry.sources[&rec.interactions.source];
    let (df, columns) = frame_and_columns(&SessionContext::new(), root, source).await?;
    let what = format!("source '{}'", source.name);
    check_columns(rec, &columns, Some(&source.timestamp_field), &what, true)?;
    let batches = df.collect().await.map_err(offline)?;
    let mut log = InteractionLog::default();
    let mut stats = ReadStats::default();
    for b in &batches {
        add_batch(
            rec,
            b,
            Some(&source.timestamp_field),
            &what,
            &mut log,
            &mut stats,
        )?;
    }
    Ok((log, stats))
}

/// Reads interactions from a Parquet or CSV file with `rec`'s user and item columns; its
/// event type column, its weight column (or one named `weight`) and `timestamp` (the source's
/// timestamp field name) are used when present.
pub async fn read_file(
    registry: &Registry,
    root: &Path,
    rec: &Recommender,
    path: &Path,
) -> Result<(InteractionLog, ReadStats)> {
    let batch = read_table(registry, root, path).await?;
    let columns: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let what = format!("{}", path.display());
    check_columns(rec, &columns, None, &what, false)?;
    let ts = registry
        .sources
        .get(&rec.interactions.source)
        .map(|s| s.timestamp_field.clone())
        .filter(|t| columns.contains(t));
    let mut log = InteractionLog::default();
    let mut stats = ReadStats::default();
    add_batch(rec, &batch, ts.as_deref(), &what, &mut log, &mut stats)?;
    Ok((log, stats))
}

/// Held-out interactions: `FILE` (as [`read_file`] reads it) or `FILE@START..END`, the rows
/// of FILE whose timestamp (the interactions source's timestamp field) falls in
/// `[START, END)`, as `quiver drift` reads a time range. The flag is true for a time range.
pub async fn read_test(
    registry: &Registry,
    root: &Path,
    rec: &Recommender,
    spec: &str,
) -> Result<(InteractionLog, bool)> {
    let (file, range) = match spec.rsplit_once('@') {
        Some((f, r)) if r.contains("..") && !Path::new(spec).exists() => (f, Some(r)),
        _ => (spec, None),
    };
    let (mut log, _) = read_file(registry, root, rec, Path::new(file)).await?;
    let Some(range) = range else {
        return Ok((log, false));
    };
    let (start, end) = quiver_monitor::spec::time_range(spec, range).map_err(Error::Invalid)?;
    if log.rows.iter().any(|r| r.time_us.is_none()) {
        let source = &rec.interactions.source;
        let ts = registry
            .sources
            .get(source)
            .map(|s| s.timestamp_field.as_str())
            .unwrap_or("event_timestamp");
        return Err(Error::Invalid(format!(
            "{spec}: a time range needs the column '{ts}' (the timestamp field of source '{source}') in {file}"
        )));
    }
    log.rows
        .retain(|r| r.time_us.is_some_and(|t| t >= start && t < end));
    Ok((log, true))
}

/// A Parquet or CSV file as one batch.
pub async fn read_table(registry: &Registry, root: &Path, path: &Path) -> Result<RecordBatch> {
    if !path.is_file() {
        return Err(Error::Invalid(format!("{}: no such file", path.display())));
    }
    quiver_offline::OfflineEngine::new(registry.clone(), root)
        .read_table(path)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// Ids of a column as text, with an interning cache for integer columns.
pub(crate) fn id_strings(col: &ArrayRef, name: &str, what: &str) -> Result<Vec<Option<String>>> {
    match col.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let c = cast(col, &DataType::Int64).map_err(offline)?;
            let a = c.as_primitive::<Int64Type>();
            let mut cache: HashMap<i64, String> = HashMap::new();
            Ok((0..a.len())
                .map(|i| {
                    a.is_valid(i).then(|| {
                        cache
                            .entry(a.value(i))
                            .or_insert_with(|| a.value(i).to_string())
                            .clone()
                    })
                })
                .collect())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let c = cast(col, &DataType::Utf8).map_err(offline)?;
            let a = c.as_string::<i32>();
            Ok((0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect())
        }
        // An empty CSV column has no type.
        DataType::Null => Ok(vec![None; col.len()]),
        other => Err(Error::Invalid(format!(
            "{what}: column '{name}' is {other}: ids must be integers or strings"
        ))),
    }
}

fn add_batch(
    rec: &Recommender,
    b: &RecordBatch,
    timestamp: Option<&str>,
    what: &str,
    log: &mut InteractionLog,
    stats: &mut ReadStats,
) -> Result<()> {
    let spec = &rec.interactions;
    let col = |name: &str| b.column_by_name(name).cloned();
    let users = id_strings(&col(&spec.user).expect("checked"), &spec.user, what)?;
    let items = id_strings(&col(&spec.item).expect("checked"), &spec.item, what)?;
    let types: Option<Vec<Option<String>>> = match &spec.event_type {
        Some(t) if !spec.weights.is_empty() => match col(t) {
            Some(c) => Some(id_strings(&c, t, what)?),
            None => None,
        },
        _ => None,
    };
    let weight_col = spec.weight.clone().unwrap_or_else(|| "weight".into());
    let weights: Option<Vec<Option<f64>>> = match col(&weight_col).or_else(|| col("weight")) {
        Some(c) => {
            let c = cast(&c, &DataType::Float64).map_err(|e| {
                Error::Invalid(format!("{what}: column '{weight_col}' is not numeric: {e}"))
            })?;
            let a = c.as_primitive::<Float64Type>();
            Some(
                (0..a.len())
                    .map(|i| a.is_valid(i).then(|| a.value(i)))
                    .collect(),
            )
        }
        None => None,
    };
    let times = match timestamp.and_then(col) {
        Some(c) => Some(quiver_offline::engine::micros(&c).map_err(|e| {
            Error::Invalid(format!(
                "{what}: column '{}' is not a timestamp: {e}",
                timestamp.unwrap_or_default()
            ))
        })?),
        None => None,
    };
    // Event type text -> weight, looked up once per distinct type.
    for r in 0..b.num_rows() {
        stats.rows += 1;
        let (Some(u), Some(i)) = (&users[r], &items[r]) else {
            stats.null_ids += 1;
            continue;
        };
        let mut w = 1.0;
        if let Some(types) = &types {
            match types[r].as_ref().and_then(|t| spec.weights.get(t)) {
                Some(tw) => w = *tw,
                None => {
                    stats.unweighted_types += 1;
                    continue;
                }
            }
        }
        if let Some(ws) = &weights {
            match ws[r] {
                Some(x) if x.is_finite() => w *= x,
                _ => continue,
            }
        }
        let t = times.as_ref().and_then(|t| t[r]);
        log.push(u, i, w as f32, t);
    }
    Ok(())
}
