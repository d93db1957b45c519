//! `quiver consistency --log MODEL[:VERSION]@START..END`: what `/predict` served against what
//! training would have seen.
//!
//! For each model version the log holds (or the one named), the logged predictions whose time
//! falls in `[START, END)` are read (at most `sample` of them, evenly spaced in time order), and
//! the offline engine's `historical` computes the version's features for the same entities at
//! the logged times. Both sides then go through the one rule the log was written by
//! ([`quiver_pipeline::prediction_log::cell`]: a numeric input as the number the model scored,
//! a categorical one as its text), so a cell is equal exactly when the model would have seen the
//! same input offline. A vector feature's components are compared as one cell. Cells are tallied
//! per feature with the service comparison's [`FeatureConsistency`]: `missing_online` counts
//! predictions served without a value the offline engine has (a stale or absent online row),
//! `extra` the opposite.
//!
//! Features of request-time views are not compared: their inputs came from the request, which
//! the log does not keep. A version whose model file or features are gone is reported with a
//! note and skipped.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::ParquetReadOptions;
use datafusion::scalar::ScalarValue;
use quiver_core::FeatureRef;
use quiver_core::registry::JoinKey;
use quiver_ml::Encoding;
use quiver_offline::{HistoricalOptions, OfflineEngine};
use quiver_online::Value;
use quiver_pipeline::prediction_log::{Cell, cell, model_dir};
use quiver_registry::SqlMetadataStore;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::{Error, FeatureConsistency, Report, Result, value_json};
use crate::spec::LogTarget;

/// What was compared for one model version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionSummary {
    /// The model.
    pub model: String,
    /// The version.
    pub version: i64,
    /// Predictions the log holds in the range.
    pub logged: u64,
    /// Predictions compared (at most the sample size).
    pub compared: u64,
    /// Features not compared, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_compared: Vec<String>,
    /// Why the version was not compared at all, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The versions of `target` the log holds, in order.
async fn versions(
    engine: &OfflineEngine,
    model_log: &Path,
    target: &LogTarget,
) -> Result<Vec<i64>> {
    if let Some(v) = target.version {
        return Ok(vec![v]);
    }
    let storage = quiver_offline::remote::storage_of(engine.session());
    let mut out: Vec<i64> = quiver_offline::remote::folders(&model_log.to_string_lossy(), &storage)
        .await
        .map_err(Error::Input)?
        .iter()
        .filter_map(|name| name.strip_prefix("version=")?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn ts_lit(us: i64) -> datafusion::logical_expr::Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(us),
        Some("UTC".into()),
    ))
}

/// The rows of one version's log in `[start, end)`, in time order.
async fn read_log(engine: &OfflineEngine, dir: &Path, start: i64, end: i64) -> Result<RecordBatch> {
    let place = dir.to_string_lossy();
    if quiver_offline::remote::is_url(&place) {
        quiver_offline::remote::register(engine.session(), &place).map_err(Error::Input)?;
    }
    let err = |e: datafusion::error::DataFusionError| {
        Error::Input(format!(
            "cannot read the prediction log {}: {}",
            dir.display(),
            quiver_offline::source::clean(e.to_string())
        ))
    };
    let frame = engine
        .session()
        .read_parquet(
            format!("{}/", dir.display()),
            ParquetReadOptions::default().table_partition_cols(Vec::new()),
        )
        .await
        .map_err(err)?
        .filter(
            col("event_timestamp")
                .gt_eq(ts_lit(start))
                .and(col("event_timestamp").lt(ts_lit(end))),
        )
        .map_err(err)?
        .sort(vec![col("event_timestamp").sort(true, false)])
        .map_err(err)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(err)?;
    concat_batches(&schema, &batches).map_err(|e| Error::Input(e.to_string()))
}

/// At most `n` of `rows` rows, evenly spaced, in order.
fn spaced(rows: usize, n: usize) -> Vec<u32> {
    if rows <= n {
        return (0..rows as u32).collect();
    }
    (0..n).map(|i| (i * rows / n) as u32).collect()
}

/// One model feature and the log columns (inputs) that read it.
struct Feature {
    feature: FeatureRef,
    value_type: quiver_core::ValueType,
    /// (log column, encoding) per input, in input order.
    inputs: Vec<(String, Encoding)>,
}

/// The value a feature's cells make: one input's cell as a value; a vector's components as
/// one list (null when every component is missing).
fn combine(cells: &[Cell]) -> Value {
    match cells {
        [one] => one.to_value(),
        many => {
            let xs: Vec<f64> = many
                .iter()
                .map(|c| match c {
                    Cell::Number(x) => *x,
                    Cell::Text(_) => f64::NAN,
                })
                .collect();
            if xs.iter().all(|x| x.is_nan()) {
                Value::Null
            } else {
                Value::Float64List(xs)
            }
        }
    }
}

/// A logged input column's row `i` as the cell it was written from.
fn logged_cell(column: &ArrayRef, i: usize, text: bool) -> Cell {
    if text {
        let s = column.as_string::<i32>();
        Cell::Text(s.is_valid(i).then(|| s.value(i).to_string()))
    } else {
        let x = column.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        Cell::Number(if x.is_valid(i) { x.value(i) } else { f64::NAN })
    }
}

/// The entity rows of `log` for `historical`: each join key (cast to its declared type) and
/// the prediction time.
fn entity_rows(log: &RecordBatch, keys: &[JoinKey], label: &str) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for k in keys {
        let c = log.column_by_name(&k.name).ok_or_else(|| {
            Error::Input(format!(
                "{label}: the log has no column for join key '{}' (the requests did not name it)",
                k.name
            ))
        })?;
        let want = quiver_offline::types::arrow_type(k.value_type);
        let c = if c.data_type() == &want {
            c.clone()
        } else {
            cast(c, &want).map_err(|e| {
                Error::Input(format!(
                    "{label}: join key '{}' logged as {} cannot be read as {}: {e}",
                    k.name,
                    c.data_type(),
                    k.value_type
                ))
            })?
        };
        fields.push(Field::new(&k.name, want, true));
        columns.push(c);
    }
    let ts = log
        .column_by_name("event_timestamp")
        .ok_or_else(|| Error::Input(format!("{label}: no event_timestamp column")))?;
    fields.push(Field::new("event_timestamp", ts.data_type().clone(), false));
    columns.push(ts.clone());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Input(format!("{label}: {e}")))
}

fn int_slice(a: &ArrayRef) -> Option<&[i64]> {
    (a.data_type() == &DataType::Int64).then(|| {
        a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .as_ref()
    })
}

/// Compares the logged inputs of `target`'s predictions with `historical` at the logged times
/// (see the module documentation). `repo` holds the model files, `log_dir` the log.
pub async fn log(
    engine: &OfflineEngine,
    meta: &SqlMetadataStore,
    repo: &Path,
    log_dir: &Path,
    target: &LogTarget,
    sample_size: usize,
) -> Result<Report> {
    if sample_size == 0 {
        return Err(Error::Input("--sample: give at least 1 prediction".into()));
    }
    let model_log = model_dir(log_dir, &target.model, None);
    let range = format!(
        "{}..{}",
        quiver_online::format_time(target.start),
        quiver_online::format_time(target.end)
    );
    let mut report = Report {
        target: format!(
            "log:{}{}@{range}",
            target.model,
            target.version.map(|v| format!(":{v}")).unwrap_or_default()
        ),
        views: Vec::new(),
        versions: Vec::new(),
        features: Vec::new(),
        diffs: Vec::new(),
    };
    let list = versions(engine, &model_log, target).await?;
    let logged = quiver_offline::remote::has_files(
        &model_dir(log_dir, &target.model, target.version).to_string_lossy(),
        &quiver_offline::remote::storage_of(engine.session()),
    )
    .await
    .map_err(Error::Input)?;
    if list.is_empty() || !logged {
        return Err(Error::Input(format!(
            "no prediction log at {} (does the server log model {}? `server: {{prediction_log: ...}}` in quiver.yaml)",
            model_dir(log_dir, &target.model, target.version).display(),
            target.model
        )));
    }
    let registry = engine.registry();
    let mut summaries: Vec<VersionSummary> = Vec::new();
    for version in list {
        let label = format!("model {} version {version}", target.model);
        let mut summary = VersionSummary {
            model: target.model.clone(),
            version,
            logged: 0,
            compared: 0,
            not_compared: Vec::new(),
            note: None,
        };
        let logged = read_log(
            engine,
            &model_dir(log_dir, &target.model, Some(version)),
            target.start,
            target.end,
        )
        .await?;
        summary.logged = logged.num_rows() as u64;
        if logged.num_rows() == 0 {
            summary.note = Some(format!("no predictions logged in {range}"));
            summaries.push(summary);
            continue;
        }
        let artifact = match meta.model_version(&target.model, version).await {
            Ok(mv) => quiver_pipeline::artifacts::load_artifact(repo, &mv).await,
            Err(e) => Err(quiver_pipeline::Error::Registry(e)),
        };
        let artifact = match artifact {
            Ok(a) => a,
            Err(e) => {
                summary.note = Some(format!("its model file cannot be read: {e}"));
                summaries.push(summary);
                continue;
            }
        };
        // The version's features, in input order, each with the log columns of its inputs.
        let mut features: Vec<Feature> = Vec::new();
        for input in &artifact.inputs {
            let reference = match registry.resolve_features(std::slice::from_ref(&input.feature)) {
                Ok(mut r) if r.len() == 1 => r.remove(0),
                _ => {
                    if !summary
                        .not_compared
                        .iter()
                        .any(|n| n.starts_with(&input.feature))
                    {
                        summary
                            .not_compared
                            .push(format!("{}: not in the registry any more", input.feature));
                    }
                    continue;
                }
            };
            let view = &registry.views[&reference.view];
            if view.is_request() {
                if !summary
                    .not_compared
                    .iter()
                    .any(|n| n.starts_with(&input.feature))
                {
                    summary.not_compared.push(format!(
                        "{}: a request-time feature (the log does not keep the request's data)",
                        input.feature
                    ));
                }
                continue;
            }
            let column = input.encoding.column_name(&reference.full_name());
            if logged.column_by_name(&column).is_none() {
                return Err(Error::Input(format!(
                    "{label}: the log has no column '{column}' for input {}",
                    input.feature
                )));
            }
            match features.iter_mut().find(|f| f.feature == reference) {
                Some(f) => f.inputs.push((column, input.encoding.clone())),
                None => {
                    let value_type = view
                        .outputs()
                        .into_iter()
                        .find(|(n, _)| *n == reference.feature)
                        .map(|(_, t)| t)
                        .expect("a resolved feature");
                    features.push(Feature {
                        feature: reference,
                        value_type,
                        inputs: vec![(column, input.encoding.clone())],
                    })
                }
            }
        }
        if features.is_empty() {
            summary.note = Some("none of its features can be computed offline".into());
            summaries.push(summary);
            continue;
        }
        let picked = take_record_batch(
            &logged,
            &UInt32Array::from(spaced(logged.num_rows(), sample_size)),
        )
        .map_err(|e| Error::Input(e.to_string()))?;
        summary.compared = picked.num_rows() as u64;
        // Entity rows: every join key of the features' views, at the logged times.
        let mut keys: Vec<JoinKey> = Vec::new();
        for f in &features {
            for k in registry.view_join_keys(&registry.views[&f.feature.view]) {
                if !keys.iter().any(|x| x.name == k.name) {
                    keys.push(k);
                }
            }
        }
        let entities = entity_rows(&picked, &keys, &label)?;
        let refs: Vec<FeatureRef> = features.iter().map(|f| f.feature.clone()).collect();
        let opts = HistoricalOptions {
            full_names: true,
            ..HistoricalOptions::default()
        };
        let progress: Arc<dyn quiver_offline::engine::Progress> = Arc::new(());
        let offline = engine
            .historical(&entities, &refs, &opts, &label, &progress)
            .await?;
        let times = entities
            .column_by_name("event_timestamp")
            .and_then(|c| cast(c, &DataType::Int64).ok());
        let times = times.as_ref().and_then(int_slice);
        for f in &features {
            let slot = match report
                .features
                .iter()
                .position(|c| c.feature == f.feature.to_string())
            {
                Some(s) => s,
                None => {
                    report
                        .features
                        .push(FeatureConsistency::new(f.feature.to_string()));
                    report.features.len() - 1
                }
            };
            let off_col = offline
                .column_by_name(&f.feature.full_name())
                .ok_or_else(|| {
                    Error::Input(format!("{label}: historical gave no {}", f.feature))
                })?;
            // The log's columns as written (text may read back as another string type).
            let served_cols: Vec<(ArrayRef, bool)> = f
                .inputs
                .iter()
                .map(|(c, e)| {
                    let text = e.is_text();
                    let want = if text {
                        DataType::Utf8
                    } else {
                        DataType::Float64
                    };
                    cast(picked.column_by_name(c).expect("checked above"), &want)
                        .map(|a| (a, text))
                        .map_err(|e| Error::Input(format!("{label}: log column '{c}': {e}")))
                })
                .collect::<Result<_>>()?;
            for i in 0..picked.num_rows() {
                let value = Value::from_array(off_col, i, f.value_type)
                    .map_err(|e| Error::Input(format!("{label}: {}: {e}", f.feature)))?;
                let offline_cells: Vec<Cell> = f
                    .inputs
                    .iter()
                    .map(|(_, e)| cell(Some(&value), e))
                    .collect();
                let served_cells: Vec<Cell> = served_cols
                    .iter()
                    .map(|(c, text)| logged_cell(c, i, *text))
                    .collect();
                let (off, on) = (combine(&offline_cells), combine(&served_cells));
                if let Some(class) = report.features[slot].count(&off, Some(&on)) {
                    let entity = || {
                        let mut m = serde_json::Map::new();
                        for (c, k) in keys.iter().enumerate() {
                            let v = Value::from_array(entities.column(c), i, k.value_type)
                                .map(|v| value_json(&v))
                                .unwrap_or(Json::Null);
                            m.insert(k.name.clone(), v);
                        }
                        if let Some(t) = times {
                            m.insert("at".into(), json!(quiver_online::format_time(t[i])));
                        }
                        m.insert("version".into(), json!(version));
                        Json::Object(m)
                    };
                    report.record(slot, class, &entity, value_json(&off), value_json(&on));
                }
            }
        }
        summaries.push(summary);
    }
    if summaries.iter().all(|s| s.compared == 0) {
        let notes: Vec<String> = summaries
            .iter()
            .map(|s| {
                format!(
                    "version {}: {}",
                    s.version,
                    s.note.as_deref().unwrap_or("nothing compared")
                )
            })
            .collect();
        return Err(Error::Input(format!(
            "{}: no logged prediction to compare ({})",
            report.target,
            notes.join("; ")
        )));
    }
    report.versions = summaries;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_is_one_cell_and_the_sample_is_spread() {
        assert_eq!(combine(&[Cell::Number(f64::NAN)]), Value::Null);
        assert!(matches!(
            combine(&[Cell::Number(1.0), Cell::Number(f64::NAN)]),
            Value::Float64List(v) if v[0] == 1.0 && v[1].is_nan()
        ));
        assert_eq!(
            combine(&[Cell::Number(f64::NAN), Cell::Number(f64::NAN)]),
            Value::Null
        );
        assert_eq!(spaced(3, 10), vec![0, 1, 2]);
        assert_eq!(spaced(10, 5), vec![0, 2, 4, 6, 8]);
    }
}
