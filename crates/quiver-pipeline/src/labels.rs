//! The label column of a label table as numbers, and the task it implies.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use quiver_ml::Objective;

use crate::encoding::is_text;
use crate::{Error, Result};

/// What to predict.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Two classes (a boolean, 0/1 or two-valued text label).
    Binary,
    /// Several classes (text, or integer codes 0..k-1).
    Multiclass,
    /// A number.
    Regression,
}

/// The task's name in the registry (`binary`, `multiclass`, `regression`).
pub fn task_name(o: Objective) -> &'static str {
    match o {
        Objective::Binary { .. } => "binary",
        Objective::Multiclass { .. } => "multiclass",
        Objective::Regression => "regression",
    }
}

/// A label column turned into numbers, with the task it implies.
pub struct Labels {
    /// One number per row: the value (regression), 0/1 (binary) or the class code.
    pub y: Vec<f64>,
    /// The task the label implies (or the one asked for).
    pub objective: Objective,
    /// Class names in code order, for a text label; empty otherwise.
    pub classes: Vec<String>,
}

/// Reads the label column `column` of the label table (`file` names it in errors) as numbers,
/// with the task it implies (`task`, when given, is checked against the values).
pub fn labels(batch: &RecordBatch, column: &str, task: Option<Task>, file: &str) -> Result<Labels> {
    let bail = |message: String| Err(Error::Invalid(format!("{file}: {message}")));
    let Some(col) = batch.column_by_name(column) else {
        return bail(format!(
            "--label {column}: the label table has no column '{column}' (it has: {})",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if let Some(row) = (0..col.len()).find(|&i| col.is_null(i)) {
        return bail(format!(
            "label column '{column}' is null at row {}: drop or fill such rows",
            row + 1
        ));
    }
    let dt = col.data_type().clone();
    let text = is_text(&dt);
    let numeric = dt.is_numeric() || dt == DataType::Boolean;
    if !text && !numeric {
        return bail(format!(
            "label column '{column}' has type {dt}: use a boolean, number or text label"
        ));
    }
    if text {
        let s = cast(col, &DataType::Utf8)?;
        let s = s.as_string::<i32>();
        let mut classes: Vec<String> = s.iter().map(|v| v.unwrap_or("").to_string()).collect();
        classes.sort();
        classes.dedup();
        let task = task.unwrap_or(if classes.len() == 2 {
            Task::Binary
        } else {
            Task::Multiclass
        });
        if task == Task::Regression {
            return bail(format!(
                "label column '{column}' is text: --task regression needs a numeric label"
            ));
        }
        let y = s
            .iter()
            .map(|v| {
                classes
                    .binary_search(&v.unwrap_or("").to_string())
                    .expect("known") as f64
            })
            .collect();
        let objective = match task {
            Task::Binary if classes.len() == 2 => Objective::Binary { sigmoid: 1.0 },
            Task::Binary => {
                return bail(format!(
                    "label column '{column}' has {} classes ({}): --task binary needs exactly 2",
                    classes.len(),
                    classes
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            _ => Objective::Multiclass {
                num_class: classes.len(),
            },
        };
        return Ok(Labels {
            y,
            objective,
            classes,
        });
    }
    let f = cast(col, &DataType::Float64)?;
    let y: Vec<f64> = f.as_primitive::<Float64Type>().values().to_vec();
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return bail(format!(
            "label column '{column}' is {} at row {}: labels must be finite",
            y[i],
            i + 1
        ));
    }
    let integral = y.iter().all(|v| v.fract() == 0.0 && *v >= 0.0);
    let binary01 = y.iter().all(|v| *v == 0.0 || *v == 1.0);
    let task = task.unwrap_or(if dt == DataType::Boolean || binary01 {
        Task::Binary
    } else if dt.is_integer() && integral && y.iter().cloned().fold(0.0, f64::max) < 100.0 {
        Task::Multiclass
    } else {
        Task::Regression
    });
    let objective = match task {
        Task::Binary => {
            if !binary01 {
                let bad = y
                    .iter()
                    .position(|v| *v != 0.0 && *v != 1.0)
                    .expect("exists");
                return bail(format!(
                    "label column '{column}' has {} at row {}: --task binary needs 0/1 or true/false",
                    y[bad],
                    bad + 1
                ));
            }
            Objective::Binary { sigmoid: 1.0 }
        }
        Task::Multiclass => {
            if !integral {
                return bail(format!(
                    "label column '{column}' is not a non-negative integer: --task multiclass needs class codes 0..k-1 or text classes"
                ));
            }
            Objective::Multiclass {
                num_class: y.iter().cloned().fold(0.0, f64::max) as usize + 1,
            }
        }
        Task::Regression => Objective::Regression,
    };
    Ok(Labels {
        y,
        objective,
        classes: vec![],
    })
}
