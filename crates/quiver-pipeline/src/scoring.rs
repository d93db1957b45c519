//! Scoring with a registered version outside the server: entity rows with point-in-time
//! features (`models predict`), and a CSV of feature values with each feature's contribution
//! (`models score`). Both encode through [`crate::encoding`], as training and `/predict` do.
//!
//! `models score` finds columns by name, so a training-set CSV works as it is: each model input
//! reads the column named `view__feature` (`historical --full-names`), `view:feature`, or just
//! `feature` when no other input has that name (a vector's component `i` adds `[i]`); other
//! columns (join keys, timestamps, labels) are ignored. Values are encoded as the model was
//! trained: numbers (`true`/`false` as 1/0), text through the version's stored encoding
//! (category codes or frequencies), an empty cell or `nan` missing.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use quiver_core::registry::ObjectKind;
use quiver_ml::{Encoding, FeatureValue, ModelArtifact};
use quiver_registry::{AppliedRegistry, ModelVersion};
use serde_json::{Map, Value as Json, json};

use crate::encoding::encode_column;
use crate::{Error, Progress, Result, RowsRead};

/// Scores entity rows offline (`models predict`): point-in-time features for each row of the
/// `entities` table (as `historical` builds them), encoded as in training, scored. Returns the
/// entity rows (every non-feature column) followed by `score` (binary, regression) or `class`
/// and `p_<class>` columns (multiclass). With entity timestamps equal to the last
/// materialization's end, the scores equal what `/predict` answers, bit for bit.
pub async fn predict_entities(
    repo: &Path,
    applied: AppliedRegistry,
    v: &ModelVersion,
    entities: &Path,
    timestamp_column: &str,
    progress: &Arc<dyn Progress>,
) -> Result<RecordBatch> {
    let table = quiver_offline::OfflineEngine::new(applied.registry.clone(), repo)
        .read_table(entities)
        .await?;
    predict_table(
        repo,
        applied,
        v,
        &table,
        timestamp_column,
        &entities.display().to_string(),
        progress,
    )
    .await
}

/// [`predict_entities`] on entity rows already in memory (the Python package's `predict`);
/// `label` names them in messages.
pub async fn predict_table(
    repo: &Path,
    applied: AppliedRegistry,
    v: &ModelVersion,
    table: &RecordBatch,
    timestamp_column: &str,
    label: &str,
    progress: &Arc<dyn Progress>,
) -> Result<RecordBatch> {
    let artifact = crate::artifacts::load_artifact(repo, v).await?;
    let current = applied
        .registry
        .object_hash(ObjectKind::FeatureService, &v.feature_service);
    if current.as_deref() != Some(v.service_hash.as_str()) {
        return Err(Error::Invalid(format!(
            "model {} version {} was trained on feature service '{}' as it was then, but the service has changed or is gone since: retrain it (quiver train) or roll back the definitions",
            v.name, v.version, v.feature_service
        )));
    }
    let (set, distinct, preds) = score_rows(
        repo,
        applied.registry,
        &artifact,
        table,
        timestamp_column,
        label,
        progress,
    )
    .await?;
    let feature_names: Vec<String> = distinct.iter().map(|r| r.full_name()).collect();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (f, a) in set.schema().fields().iter().zip(set.columns()) {
        if !feature_names.contains(f.name()) {
            fields.push(f.as_ref().clone());
            arrays.push(Arc::clone(a));
        }
    }
    match artifact.model.objective() {
        quiver_ml::Objective::Multiclass { num_class } => {
            let name = |k: usize| {
                artifact
                    .classes
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| k.to_string())
            };
            let class: StringArray = preds
                .iter()
                .map(|p| (!p.is_empty()).then(|| name(quiver_ml::top_class(p))))
                .collect();
            fields.push(Field::new("class", DataType::Utf8, true));
            arrays.push(Arc::new(class));
            for k in 0..num_class {
                fields.push(Field::new(
                    format!("p_{}", name(k)),
                    DataType::Float64,
                    false,
                ));
                arrays.push(Arc::new(Float64Array::from_iter_values(
                    preds.iter().map(|p| p[k]),
                )));
            }
        }
        _ => {
            fields.push(Field::new("score", DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from_iter_values(
                preds.iter().map(|p| p[0]),
            )));
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// The names a column of `input` may have in the CSV, most specific first; the short name only
/// when no other input reads a feature of that name.
fn column_names(input: &quiver_ml::Input, artifact: &ModelArtifact) -> Vec<String> {
    let (view, short) = input
        .feature
        .split_once(':')
        .unwrap_or(("", input.feature.as_str()));
    let mut names = vec![
        input.encoding.column_name(&format!("{view}__{short}")),
        input.encoding.column_name(&input.feature),
    ];
    let short_is_unique = artifact
        .inputs
        .iter()
        .filter(|i| i.feature != input.feature)
        .all(|i| i.feature.rsplit(':').next() != Some(short));
    if short_is_unique {
        names.push(input.encoding.column_name(short));
    }
    names
}

/// One numeric cell: empty or `nan` is missing, `true`/`false` are 1/0.
fn number(cell: Option<&str>) -> Result<f64, ()> {
    let Some(cell) = cell.map(str::trim) else {
        return Ok(f64::NAN);
    };
    if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
        return Ok(f64::NAN);
    }
    if cell.eq_ignore_ascii_case("true") {
        return Ok(1.0);
    }
    if cell.eq_ignore_ascii_case("false") {
        return Ok(0.0);
    }
    cell.parse().map_err(|_| ())
}

/// Scores every row of `csv`; calls `emit` with one JSON object per row:
/// `{"pred": [...], "contrib": {feature: value, ..., "bias": value}}` (for a multiclass model,
/// `contrib` is a list of such objects, one per class in `pred`'s order).
pub fn score_csv(
    csv: &Path,
    model_name: &str,
    artifact: &ModelArtifact,
    mut emit: impl FnMut(Json),
) -> Result<()> {
    let open = || std::fs::File::open(csv).map_err(|e| Error::io("cannot read", csv, e));
    let in_csv =
        |e: datafusion::arrow::error::ArrowError| Error::Invalid(format!("{}: {e}", csv.display()));
    // Every column as text: each cell is then read the way its input was trained.
    let (inferred, _) = Format::default()
        .with_header(true)
        .infer_schema(open()?, Some(0))
        .map_err(|e| Error::Invalid(format!("{}: no CSV header: {e}", csv.display())))?;
    let header: Vec<String> = inferred.fields().iter().map(|f| f.name().clone()).collect();
    let schema = Arc::new(Schema::new(
        header
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let mut positions = Vec::with_capacity(artifact.inputs.len());
    let mut absent = Vec::new();
    for input in &artifact.inputs {
        let names = column_names(input, artifact);
        match names
            .iter()
            .find_map(|n| header.iter().position(|h| h == n))
        {
            Some(p) => positions.push(p),
            None => absent.push(names[0].clone()),
        }
    }
    if !absent.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no column for {} of model {model_name}'s features: {} (columns are matched by name: view__feature, view:feature or feature; the CSV has: {})",
            csv.display(),
            absent.len(),
            absent.join(", "),
            header.join(", ")
        )));
    }
    let names: Vec<&String> = artifact.model.feature_names().iter().collect();
    let reader = ReaderBuilder::new(schema)
        .with_format(Format::default().with_header(true))
        .build(open()?)
        .map_err(in_csv)?;
    let mut line = 1;
    let mut row = vec![f64::NAN; artifact.inputs.len()];
    for batch in reader {
        let batch = batch.map_err(in_csv)?;
        let mut columns = Vec::with_capacity(artifact.inputs.len());
        for (input, &p) in artifact.inputs.iter().zip(&positions) {
            let col: &StringArray = batch.column(p).as_string::<i32>();
            columns.push(if input.encoding.is_text() {
                encode_column(&input.feature, col, &input.encoding)?
            } else {
                let mut out = Vec::with_capacity(col.len());
                for i in 0..col.len() {
                    let cell = (!col.is_null(i)).then(|| col.value(i));
                    let x = number(cell).map_err(|()| {
                        Error::Invalid(format!(
                            "{} line {}: column {}: '{}' is not a number{}",
                            csv.display(),
                            line + 1 + i,
                            header[p],
                            cell.unwrap_or(""),
                            if matches!(input.encoding, Encoding::Number) {
                                " (nor true/false)"
                            } else {
                                ""
                            }
                        ))
                    })?;
                    out.push(input.encoding.encode(FeatureValue::Number(x)));
                }
                out
            });
        }
        for i in 0..batch.num_rows() {
            for (j, c) in columns.iter().enumerate() {
                row[j] = c[i];
            }
            let pred = artifact.model.predict(&row);
            let mut contrib: Vec<Json> = artifact
                .model
                .contributions(&row)
                .into_iter()
                .map(|per_output| {
                    let mut m = Map::with_capacity(per_output.len());
                    for (k, v) in per_output.iter().enumerate() {
                        let key = names.get(k).map_or("bias", |n| n.as_str());
                        m.insert(key.to_string(), json!(v));
                    }
                    Json::Object(m)
                })
                .collect();
            let contrib = if contrib.len() == 1 {
                contrib.remove(0)
            } else {
                Json::Array(contrib)
            };
            emit(json!({"pred": pred, "contrib": contrib}));
        }
        line += batch.num_rows();
    }
    Ok(())
}

/// Scores the rows of `table` (entity keys and `timestamp_column`, read from `file`) with
/// `artifact`: each row's features as of its time (`historical`), encoded as in training.
/// Returns the point-in-time set (the table's columns, then each feature by full name), the
/// distinct features read, and one prediction per row.
pub async fn score_rows(
    repo: &Path,
    registry: quiver_core::Registry,
    artifact: &ModelArtifact,
    table: &RecordBatch,
    timestamp_column: &str,
    file: &str,
    progress: &Arc<dyn Progress>,
) -> Result<(RecordBatch, Vec<quiver_core::FeatureRef>, Vec<Vec<f64>>)> {
    let names: Vec<String> = artifact.inputs.iter().map(|i| i.feature.clone()).collect();
    // A vector's components are several inputs of one feature: each feature is retrieved once
    // (resolve_features drops repeats), then every input finds its feature's column.
    let distinct = registry.resolve_features(&names)?;
    let engine = quiver_offline::OfflineEngine::new(registry.clone(), repo);
    let rows: Arc<dyn quiver_offline::engine::Progress> = Arc::new(RowsRead(Arc::clone(progress)));
    let set = engine
        .historical(
            table,
            &distinct,
            &quiver_offline::HistoricalOptions {
                timestamp_column: timestamp_column.to_string(),
                full_names: true,
                ..Default::default()
            },
            file,
            &rows,
        )
        .await?;
    let mut columns = Vec::with_capacity(artifact.inputs.len());
    for input in &artifact.inputs {
        let r = distinct
            .iter()
            .find(|r| r.to_string() == input.feature)
            .ok_or_else(|| Error::Internal(format!("input {} was not resolved", input.feature)))?;
        let col = set
            .column_by_name(&r.full_name())
            .ok_or_else(|| Error::Internal(format!("no column {}", r.full_name())))?;
        columns.push(encode_column(
            &input.feature,
            col.as_ref(),
            &input.encoding,
        )?);
    }
    let n = set.num_rows();
    let mut row = vec![f64::NAN; columns.len()];
    let preds: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            for (j, c) in columns.iter().enumerate() {
                row[j] = c[i];
            }
            artifact.model.predict(&row)
        })
        .collect();
    Ok((set, distinct, preds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_historical_writes_them() {
        assert_eq!(number(Some("1.5")), Ok(1.5));
        assert_eq!(number(Some("true")), Ok(1.0));
        assert_eq!(number(Some("false")), Ok(0.0));
        assert!(number(Some("")).unwrap().is_nan());
        assert!(number(Some("NaN")).unwrap().is_nan());
        assert!(number(None).unwrap().is_nan());
        assert_eq!(number(Some("-inf")), Ok(f64::NEG_INFINITY));
        assert_eq!(number(Some("web")), Err(()));
    }
}
