//! A version's drift references, written with its artifacts at training:
//!
//! * `reference.parquet`: a sample (at most [`REFERENCE_ROWS`], evenly spaced) of the training
//!   split's model inputs as the prediction log records them (one column per input, named as
//!   the log names it: `view__feature`, `view__feature[i]` for a vector's component; numbers as
//!   numbers, text as text), so `quiver drift --reference model:NAME --current log:NAME@...`
//!   compares like with like;
//! * `predictions.parquet`: the test split's predictions, `score` (and `class` for a multiclass
//!   model) as the log records them ([`quiver_ml::top_class`]), the reference of prediction
//!   drift.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use quiver_ml::{Input, Objective};

use crate::{Error, Result};

/// The most training rows a reference keeps.
pub const REFERENCE_ROWS: usize = 10_000;

/// The reference file of a version's artifact directory.
pub fn reference_file(dir: &Path) -> PathBuf {
    dir.join("reference.parquet")
}

/// The test-split predictions file of a version's artifact directory.
pub fn predictions_file(dir: &Path) -> PathBuf {
    dir.join("predictions.parquet")
}

/// At most `max` of `rows`, evenly spaced, in order.
fn sample(rows: &[usize], max: usize) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    (0..max).map(|i| rows[i * rows.len() / max]).collect()
}

/// Writes both files into `dir`. `set` is the training set (raw feature columns by full name),
/// `inputs` and `columns` the model's inputs and their encoded values (all rows), `train_rows`
/// the training split, `test_preds` the test split's predictions.
#[allow(clippy::too_many_arguments)]
pub fn write(
    dir: &Path,
    set: &RecordBatch,
    inputs: &[Input],
    full_names: &[String],
    columns: &[Vec<f64>],
    train_rows: &[usize],
    objective: Objective,
    classes: &[String],
    test_preds: &[Vec<f64>],
) -> Result<()> {
    let rows = sample(train_rows, REFERENCE_ROWS);
    let mut fields = Vec::with_capacity(inputs.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(inputs.len());
    for ((input, full), values) in inputs.iter().zip(full_names).zip(columns) {
        let name = input.encoding.column_name(full);
        if input.encoding.is_text() {
            let raw = set
                .column_by_name(full)
                .ok_or_else(|| Error::Internal(format!("training set has no column {full}")))?;
            let text = cast(raw, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let a: StringArray = rows
                .iter()
                .map(|&r| text.is_valid(r).then(|| text.value(r)))
                .collect();
            fields.push(Field::new(name, DataType::Utf8, true));
            arrays.push(Arc::new(a));
        } else {
            let a: Float64Array = rows
                .iter()
                .map(|&r| Some(values[r]).filter(|x| !x.is_nan()))
                .collect();
            fields.push(Field::new(name, DataType::Float64, true));
            arrays.push(Arc::new(a));
        }
    }
    let io = |path: &Path, e: std::io::Error| Error::io("cannot write", path, e);
    let reference = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let path = reference_file(dir);
    quiver_offline::parquet_out::write_parquet_file(&path, &reference).map_err(|e| io(&path, e))?;

    let multiclass = matches!(objective, Objective::Multiclass { .. });
    let score: Float64Array = test_preds
        .iter()
        .map(|p| {
            let k = if multiclass {
                quiver_ml::top_class(p)
            } else {
                0
            };
            p.get(k).copied()
        })
        .collect();
    let class: StringArray = test_preds
        .iter()
        .map(|p| {
            multiclass.then(|| {
                let k = quiver_ml::top_class(p);
                classes.get(k).cloned().unwrap_or_else(|| k.to_string())
            })
        })
        .collect();
    // A class only where there is one to predict (the log's is null otherwise).
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = if multiclass {
        (
            vec![
                Field::new("score", DataType::Float64, true),
                Field::new("class", DataType::Utf8, true),
            ],
            vec![Arc::new(score), Arc::new(class)],
        )
    } else {
        (
            vec![Field::new("score", DataType::Float64, true)],
            vec![Arc::new(score)],
        )
    };
    let predictions = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let path = predictions_file(dir);
    quiver_offline::parquet_out::write_parquet_file(&path, &predictions)
        .map_err(|e| io(&path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_are_evenly_spaced_and_bounded() {
        let rows: Vec<usize> = (0..100).collect();
        assert_eq!(super::sample(&rows, 200), rows);
        let s = super::sample(&rows, 4);
        assert_eq!(s, vec![0, 25, 50, 75]);
    }
}
