//! `quiver models score`: a CSV of feature values (what `quiver historical --out FILE.csv`
//! writes, or a hand-made table) scored with a registered version, one JSON line per row with
//! the prediction and each feature's contribution.
//!
//! Columns are found by name, so a training-set CSV works as it is: each model input reads the
//! column named `view__feature` (`historical --full-names`), `view:feature`, or just `feature`
//! when no other input has that name (a vector's component `i` adds `[i]`); other columns (join
//! keys, timestamps, labels) are ignored. Values are encoded as the model was trained: numbers
//! (`true`/`false` as 1/0), text through the version's stored encoding (category codes or
//! frequencies), an empty cell or `nan` missing.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use quiver_ml::{Encoding, ModelArtifact};
use serde_json::{Map, Value as Json, json};

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
) -> anyhow::Result<()> {
    let open =
        || std::fs::File::open(csv).with_context(|| format!("cannot read {}", csv.display()));
    // Every column as text: each cell is then read the way its input was trained.
    let (inferred, _) = Format::default()
        .with_header(true)
        .infer_schema(open()?, Some(0))
        .with_context(|| format!("{}: no CSV header", csv.display()))?;
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
        bail!(
            "{}: no column for {} of model {model_name}'s features: {} (columns are matched by name: view__feature, view:feature or feature; the CSV has: {})",
            csv.display(),
            absent.len(),
            absent.join(", "),
            header.join(", ")
        );
    }
    let names: Vec<&String> = artifact.model.feature_names().iter().collect();
    let reader = ReaderBuilder::new(schema)
        .with_format(Format::default().with_header(true))
        .build(open()?)?;
    let mut line = 1;
    let mut row = vec![f64::NAN; artifact.inputs.len()];
    for batch in reader {
        let batch = batch.with_context(|| format!("{}", csv.display()))?;
        let mut columns = Vec::with_capacity(artifact.inputs.len());
        for (input, &p) in artifact.inputs.iter().zip(&positions) {
            let col: &StringArray = batch.column(p).as_string::<i32>();
            columns.push(if input.encoding.is_text() {
                crate::train::apply_encoding(&input.feature, col, &input.encoding)?
            } else {
                let mut out = Vec::with_capacity(col.len());
                for i in 0..col.len() {
                    let cell = (!col.is_null(i)).then(|| col.value(i));
                    out.push(number(cell).map_err(|()| {
                        anyhow::anyhow!(
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
                        )
                    })?);
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
