//! Materialization: the latest row per entity from the offline engine into the online store.
//!
//! Each view is read as one stream of batches (latest value per entity in the time range,
//! aggregations computed as of the end) and written batch by batch, several batches in flight.
//! The view's watermark in the metadata store moves to the end of the range only after every
//! batch is written, so an interrupted run is simply run again: rows already written are
//! rewritten with the same values, and the store never lets an older row replace a newer one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type, TimestampMicrosecondType};
use futures::{StreamExt, TryStreamExt};
use quiver_core::{FeatureView, Registry, ValueType};
use quiver_offline::OfflineEngine;
use quiver_registry::SqlMetadataStore;

use crate::store::{
    EntityKey, KeyValue, OnlineError, OnlineRow, OnlineStore, ViewWrite, WriteStats,
};
use crate::value::Value;

/// Errors of a materialization run.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// Reading the offline data failed.
    #[error(transparent)]
    Offline(#[from] quiver_offline::Error),
    /// Writing the online store failed.
    #[error(transparent)]
    Online(#[from] OnlineError),
    /// Reading or advancing a watermark failed.
    #[error(transparent)]
    Metadata(#[from] quiver_registry::Error),
    /// Bad arguments (unknown view, an empty range...).
    #[error("{0}")]
    Invalid(String),
}

/// What to materialize.
#[derive(Debug, Clone)]
pub struct MaterializeOptions {
    /// Rows with event time after this (microseconds, exclusive); `None` for incremental runs
    /// means "from the view's watermark" (or `end - ttl` if it has none).
    pub start_us: Option<i64>,
    /// Rows with event time up to this (inclusive); aggregations are computed as of it.
    pub end_us: i64,
    /// Views to load; empty means every view with `online: true`.
    pub views: Vec<String>,
    /// Continue from each view's watermark.
    pub incremental: bool,
    /// Rows per write batch.
    pub batch_rows: usize,
}

/// How a caller names the arguments of a materialization in its messages: `START`, `END`,
/// `--batch-rows` on the command line; `start_ts`, `end_ts`, `batch_rows` over HTTP.
#[derive(Debug, Clone, Copy)]
pub struct ArgNames {
    /// The start (inclusive).
    pub start: &'static str,
    /// The end.
    pub end: &'static str,
    /// Rows per write batch.
    pub batch_rows: &'static str,
}

impl MaterializeOptions {
    /// The options of a run from its arguments as given (the one reading of them, shared by
    /// the CLI, the server and the Python package): `start` is inclusive, as in Feast (`None`:
    /// incremental, from each view's watermark); times as [`crate::parse_time`] reads them.
    /// Errors name the argument at fault.
    pub fn from_args(
        start: Option<&str>,
        end: &str,
        views: Vec<String>,
        batch_rows: usize,
        names: ArgNames,
    ) -> Result<Self, String> {
        if batch_rows == 0 {
            return Err(format!("{}: give at least 1", names.batch_rows));
        }
        let time = |name: &str, v: &str| crate::parse_time(v).map_err(|m| format!("{name}: {m}"));
        let end_us = time(names.end, end)?;
        let start_us = start.map(|s| time(names.start, s)).transpose()?;
        if let Some(s) = start_us.filter(|s| *s > end_us) {
            return Err(format!(
                "{} ({}) is after {} ({})",
                names.start,
                crate::format_time(s),
                names.end,
                crate::format_time(end_us)
            ));
        }
        Ok(MaterializeOptions {
            start_us: start_us.map(|s| s - 1),
            end_us,
            views,
            incremental: start_us.is_none(),
            batch_rows,
        })
    }
}

/// What happened to one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewReport {
    /// The view.
    pub view: String,
    /// Start of the range actually used (exclusive), if bounded.
    pub start_us: Option<i64>,
    /// End of the range.
    pub end_us: i64,
    /// Entities read from the offline store (one row each).
    pub entities: u64,
    /// Write counts.
    pub stats: WriteStats,
    /// Rows skipped because a join key was null.
    pub null_keys: u64,
    /// Wall time.
    pub seconds: f64,
    /// Of which reading the offline store (the latest row per entity) before the first write.
    pub read_seconds: f64,
    /// Whether the range started at the view's watermark (`materialize-incremental`).
    pub incremental: bool,
}

impl ViewReport {
    /// The start of the range as the user gave it: START (inclusive) for a `materialize` run,
    /// the watermark the run continued after for an incremental one; `None` when unbounded.
    pub fn shown_start_us(&self) -> Option<i64> {
        if self.incremental {
            self.start_us
        } else {
            self.start_us.map(|s| s.saturating_add(1))
        }
    }
}

/// Progress callbacks (the CLI draws a bar; the server counts rows for `/metrics`).
pub trait MaterializeProgress: Send + Sync {
    /// A view starts; `rows` is how many entity rows it will write.
    fn view_started(&self, _view: &str, _rows: u64) {}
    /// A batch of `rows` was written.
    fn rows_written(&self, _view: &str, _rows: u64) {}
}

/// Progress that reports nothing.
pub struct NoProgress;
impl MaterializeProgress for NoProgress {}

/// The views a run covers, checked against the registry.
pub fn select_views<'r>(
    registry: &'r Registry,
    names: &[String],
) -> Result<Vec<&'r FeatureView>, MaterializeError> {
    if names.is_empty() {
        return Ok(registry.views.values().filter(|v| v.online).collect());
    }
    names
        .iter()
        .map(|n| {
            let v = registry.views.get(n).ok_or_else(|| {
                MaterializeError::Invalid(format!(
                    "no feature view '{n}'{}",
                    quiver_core::registry::suggest(n, registry.views.keys())
                ))
            })?;
            if !v.online {
                return Err(MaterializeError::Invalid(format!(
                    "feature view '{n}' has `online: false`; set it to true to serve it online"
                )));
            }
            Ok(v)
        })
        .collect()
}

/// What [`clear`] removed from one view.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleared {
    /// The view.
    pub view: String,
    /// Rows deleted from the online store.
    pub rows: u64,
    /// Whether its materialization watermark was forgotten.
    pub watermark_reset: bool,
}

/// Empties the online store for `names` (every view of the registry when empty) and forgets
/// their watermarks, so that the next `materialize-incremental` starts afresh: the way back
/// from a materialization run by mistake (an END in the future keeps newer rows that a later,
/// correct run cannot replace, since an older row never replaces a newer one). Unknown names
/// are refused before anything is deleted.
pub async fn clear(
    registry: &Registry,
    store: &dyn OnlineStore,
    meta: &SqlMetadataStore,
    names: &[String],
) -> Result<Vec<Cleared>, MaterializeError> {
    let views: Vec<&str> = if names.is_empty() {
        registry.views.keys().map(String::as_str).collect()
    } else {
        names
            .iter()
            .map(|n| {
                registry
                    .views
                    .get_key_value(n)
                    .map(|(k, _)| k.as_str())
                    .ok_or_else(|| {
                        MaterializeError::Invalid(format!(
                            "no feature view '{n}'{}",
                            quiver_core::registry::suggest(n, registry.views.keys())
                        ))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let watermarks = meta.watermarks().await?;
    let mut cleared = Vec::with_capacity(views.len());
    for view in views {
        // The watermark goes first: should the delete fail half-way, the next incremental run
        // starts from END minus the TTL and rewrites what is left, instead of skipping it.
        let had_watermark = watermarks.contains_key(view);
        if had_watermark {
            meta.clear_watermarks(&[view.to_string()]).await?;
        }
        let rows = store.delete_view(view).await?;
        cleared.push(Cleared {
            view: view.to_string(),
            rows,
            watermark_reset: had_watermark,
        });
    }
    Ok(cleared)
}

/// Batches written in parallel (the Redis backend pipelines them; the embedded store commits
/// them one after another).
const IN_FLIGHT: usize = 4;

/// Runs a materialization.
pub async fn materialize(
    engine: &OfflineEngine,
    store: &dyn OnlineStore,
    meta: &SqlMetadataStore,
    opts: &MaterializeOptions,
    progress: Arc<dyn MaterializeProgress>,
) -> Result<Vec<ViewReport>, MaterializeError> {
    let registry = engine.registry();
    let views = select_views(registry, &opts.views)?;
    let watermarks = if opts.incremental {
        meta.watermarks().await?
    } else {
        Default::default()
    };
    // An incremental run continues from each watermark: an END before one would be a range
    // that runs backwards. Refused before anything is written, as `materialize` refuses a START
    // after its END.
    for view in &views {
        if let Some(&w) = watermarks.get(&view.name)
            && w > opts.end_us
        {
            return Err(MaterializeError::Invalid(format!(
                "END ({}) is before the watermark of feature view '{}' ({}): materialize-incremental continues from there; give an END after it, or load an earlier range with `quiver materialize START END --views {}` (or empty the view first with `quiver online clear --views {}`)",
                crate::format_time(opts.end_us),
                view.name,
                crate::format_time(w),
                view.name,
                view.name,
            )));
        }
    }
    // A test hook: make each batch durable and pause after it, so a test can kill the process
    // mid-run.
    let pause = std::env::var("QUIVER_MATERIALIZE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let mut reports = Vec::new();
    for view in views {
        let started = Instant::now();
        let start_us = if opts.incremental {
            watermarks.get(&view.name).copied().or_else(|| {
                (!view.ttl.is_zero()).then(|| opts.end_us.saturating_sub(view.ttl.micros()))
            })
        } else {
            opts.start_us
        };
        if let Some(s) = start_us
            && s >= opts.end_us
            && !view.is_aggregation()
        {
            reports.push(ViewReport {
                view: view.name.clone(),
                start_us,
                end_us: opts.end_us,
                entities: 0,
                stats: WriteStats::default(),
                null_keys: 0,
                seconds: 0.0,
                read_seconds: 0.0,
                incremental: opts.incremental,
            });
            continue;
        }
        let features: Vec<String> = view.outputs().iter().map(|(n, _)| n.to_string()).collect();
        let types: Vec<ValueType> = view.outputs().iter().map(|(_, t)| *t).collect();
        let key_types: Vec<ValueType> = registry
            .view_join_keys(view)
            .iter()
            .map(|k| k.value_type)
            .collect();
        let write = ViewWrite {
            view: &view.name,
            features: &features,
            ttl_us: (!view.ttl.is_zero()).then(|| view.ttl.micros()),
        };
        let mut all = engine.latest(&view.name, opts.end_us, start_us).await?;
        if store.prefers_key_order() {
            all = sorted_by_key(&all, &key_types)?;
        }
        let read_seconds = started.elapsed().as_secs_f64();
        progress.view_started(&view.name, all.num_rows() as u64);
        let step = opts.batch_rows.max(1);
        let batches: Vec<RecordBatch> = (0..all.num_rows())
            .step_by(step)
            .map(|o| all.slice(o, step.min(all.num_rows() - o)))
            .collect();
        let in_flight = if pause.is_some() { 1 } else { IN_FLIGHT };
        let (write, key_types, types, progress) = (&write, &key_types, &types, &progress);
        let results: Vec<(WriteStats, u64)> =
            futures::stream::iter(batches.into_iter().enumerate())
                .map(|(i, batch)| async move {
                    // Converting Arrow rows is a quarter of the CPU of a run: it goes to the
                    // blocking pool, so that it overlaps the runtime encoding and sending the
                    // batches before it.
                    let n = batch.num_rows() as u64;
                    let (kt, ty) = (key_types.clone(), types.clone());
                    let (rows, null_keys) =
                        tokio::task::spawn_blocking(move || rows_of(&batch, &kt, &ty))
                            .await
                            .map_err(|e| {
                                MaterializeError::Invalid(format!("a conversion task failed: {e}"))
                            })??;
                    let stats = store.write_batch_deferred(write, &rows).await?;
                    progress.rows_written(write.view, n);
                    if let Some(p) = pause {
                        // The hook's batches are durable one by one, so that a kill after
                        // "batch N committed" leaves N batches written.
                        store.sync().await?;
                        eprintln!(
                            "materialize: {} batch {} committed ({} rows)",
                            write.view,
                            i + 1,
                            rows.len()
                        );
                        tokio::time::sleep(p).await;
                    }
                    Ok::<_, MaterializeError>((stats, null_keys))
                })
                .buffered(in_flight)
                .try_collect()
                .await?;
        let mut stats = WriteStats::default();
        let mut null_keys = 0;
        for (s, n) in results {
            stats += s;
            null_keys += n;
        }
        // Every batch durable before the watermark says so.
        store.sync().await?;
        meta.advance_watermark(&view.name, opts.end_us).await?;
        reports.push(ViewReport {
            view: view.name.clone(),
            start_us,
            end_us: opts.end_us,
            entities: all.num_rows() as u64,
            stats,
            null_keys,
            seconds: started.elapsed().as_secs_f64(),
            read_seconds,
            incremental: opts.incremental,
        });
    }
    Ok(reports)
}

/// The rows of `batch` (the engine's `latest` layout) in the order of their encoded entity keys,
/// rows with a null key first.
fn sorted_by_key(
    batch: &RecordBatch,
    key_types: &[ValueType],
) -> Result<RecordBatch, MaterializeError> {
    let mut order = (0..batch.num_rows())
        .map(|i| Ok((key_of(batch, i, key_types)?, i as u32)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(MaterializeError::Invalid)?;
    order.sort_unstable();
    let take = UInt32Array::from_iter_values(order.into_iter().map(|(_, i)| i));
    take_record_batch(batch, &take).map_err(|e| MaterializeError::Invalid(e.to_string()))
}

/// Reads the join keys of row `i` (the first columns of a batch).
pub fn key_of(
    batch: &RecordBatch,
    i: usize,
    key_types: &[ValueType],
) -> Result<Option<EntityKey>, String> {
    let mut parts = Vec::with_capacity(key_types.len());
    for (c, t) in key_types.iter().enumerate() {
        let col = batch.column(c);
        if col.is_null(i) {
            return Ok(None);
        }
        parts.push(match (t, col.data_type()) {
            (_, DataType::Int64) => KeyValue::Int(col.as_primitive::<Int64Type>().value(i)),
            (_, DataType::Int32) => KeyValue::Int(col.as_primitive::<Int32Type>().value(i) as i64),
            (ValueType::String, _) => match Value::from_array(col, i, ValueType::String)? {
                Value::String(s) => KeyValue::Str(s),
                _ => return Ok(None),
            },
            (_, _) => match Value::from_array(col, i, ValueType::Int64)? {
                Value::Int64(v) => KeyValue::Int(v),
                _ => return Ok(None),
            },
        });
    }
    Ok(Some(EntityKey::new(&parts)))
}

/// Converts a batch of the engine's `latest` layout (keys, `event_timestamp`, features) into
/// online rows; returns the rows and how many had a null key.
pub fn rows_of(
    batch: &RecordBatch,
    key_types: &[ValueType],
    types: &[ValueType],
) -> Result<(Vec<OnlineRow>, u64), MaterializeError> {
    let nk = key_types.len();
    let ts = batch.column(nk).as_primitive::<TimestampMicrosecondType>();
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut null_keys = 0;
    for i in 0..batch.num_rows() {
        let Some(key) = key_of(batch, i, key_types).map_err(MaterializeError::Invalid)? else {
            null_keys += 1;
            continue;
        };
        let values = types
            .iter()
            .enumerate()
            .map(|(j, t)| Value::from_array(batch.column(nk + 1 + j), i, *t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MaterializeError::Invalid)?;
        rows.push(OnlineRow {
            key,
            event_ts: ts.value(i),
            values,
        });
    }
    Ok((rows, null_keys))
}

#[cfg(test)]
mod args_tests {
    use super::{ArgNames, MaterializeOptions};

    const CLI: ArgNames = ArgNames {
        start: "START",
        end: "END",
        batch_rows: "--batch-rows",
    };

    #[test]
    fn arguments_are_read_once_with_the_callers_names() {
        let o = MaterializeOptions::from_args(
            Some("2025-01-01"),
            "2025-01-02",
            vec!["v".into()],
            10,
            CLI,
        )
        .unwrap();
        // START is inclusive: the run reads rows after START - 1 µs.
        assert_eq!(
            o.start_us,
            Some(crate::parse_time("2025-01-01").unwrap() - 1)
        );
        assert_eq!(o.end_us, crate::parse_time("2025-01-02").unwrap());
        assert!(!o.incremental);
        let inc = MaterializeOptions::from_args(None, "2025-01-02", vec![], 5, CLI).unwrap();
        assert!(inc.incremental && inc.start_us.is_none());
        let e = MaterializeOptions::from_args(None, "2025-01-02", vec![], 0, CLI).unwrap_err();
        assert_eq!(e, "--batch-rows: give at least 1");
        let e = MaterializeOptions::from_args(Some("2025-02-01"), "2025-01-02", vec![], 1, CLI)
            .unwrap_err();
        assert!(
            e.starts_with("START (2025-02-01T00:00:00") && e.contains("is after END (2025-01-02"),
            "{e}"
        );
        let http = ArgNames {
            start: "start_ts",
            end: "end_ts",
            batch_rows: "batch_rows",
        };
        let e = MaterializeOptions::from_args(Some("yesterday-ish"), "now", vec![], 1, http)
            .unwrap_err();
        assert!(e.starts_with("start_ts: "), "{e}");
    }
}
