//! Data sets for drift: a DataFusion frame (Parquet or CSV files through `quiver-offline`'s
//! source reader, or any frame a caller builds: a model's reference sample, a time range of the
//! prediction log), read a group of columns at a time as a stream of Arrow batches.

use std::path::Path;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::StreamExt;
use quiver_core::{Source, SourceKind};

use super::column::ColumnValues;
use super::{Error, Result};

/// One side of a comparison.
pub struct Dataset {
    frame: DataFrame,
    label: String,
    columnar: bool,
    /// The column of each row's time, kept in the frame but not compared (`--by week`).
    time: Option<String>,
    /// Columns the set leaves out, and why (reported with the skipped columns).
    left_out: Vec<(String, String)>,
}

/// A session for reading drift inputs (large batches, names as written).
pub fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_batch_size(65_536)
        .with_information_schema(false);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    SessionContext::new_with_config(config)
}

fn read_err(label: &str, e: impl std::fmt::Display) -> Error {
    Error::Read(format!(
        "{label}: {}",
        quiver_offline::source::clean(e.to_string())
    ))
}

impl Dataset {
    /// A Parquet or CSV file (or a folder of them, or a glob), by its extension.
    pub async fn open_file(ctx: &SessionContext, path: &Path) -> Result<Dataset> {
        let text = path.to_string_lossy().to_string();
        let lower = text.to_lowercase();
        let is_csv = lower.ends_with(".csv") || lower.ends_with(".tsv");
        let is_parquet = lower.ends_with(".parquet") || lower.ends_with(".pq");
        if !is_csv && !is_parquet && !path.is_dir() {
            return Err(Error::Input(format!(
                "{text}: not a .parquet or .csv file (or a folder of Parquet files)"
            )));
        }
        let kind = if is_csv {
            SourceKind::Csv {
                path: text.clone(),
                delimiter: if lower.ends_with(".tsv") { '\t' } else { ',' },
            }
        } else {
            SourceKind::Parquet { path: text.clone() }
        };
        let source = Source {
            name: text.clone(),
            kind,
            timestamp_field: String::new(),
            created_timestamp_field: None,
            description: None,
            owner: None,
            tags: Default::default(),
            at: Default::default(),
        };
        let frame = quiver_offline::source::source_frame(ctx, Path::new("."), &source)
            .await
            .map_err(|e| Error::Read(e.to_string()))?;
        Ok(Dataset {
            frame,
            label: text,
            columnar: !is_csv,
            time: None,
            left_out: Vec::new(),
        })
    }

    /// Any frame; `columnar`: reading a few columns is cheaper than reading all (Parquet).
    pub fn from_frame(frame: DataFrame, label: impl Into<String>, columnar: bool) -> Dataset {
        Dataset {
            frame,
            label: label.into(),
            columnar,
            time: None,
            left_out: Vec::new(),
        }
    }

    /// The same set, with `column` (a timestamp column of the frame) as each row's time: it is
    /// not compared, but groups rows by period (`--by week`).
    pub fn with_time(mut self, column: impl Into<String>) -> Dataset {
        self.time = Some(column.into());
        self
    }

    /// The same set, noting a column it leaves out and why (the report lists it as skipped).
    pub fn leaving_out(mut self, column: impl Into<String>, reason: impl Into<String>) -> Dataset {
        self.left_out.push((column.into(), reason.into()));
        self
    }

    /// Columns the set leaves out, and why.
    pub fn left_out(&self) -> &[(String, String)] {
        &self.left_out
    }

    /// The column of each row's time: the one [`Dataset::with_time`] set, else an
    /// `event_timestamp` column of a timestamp type, if the set has one.
    pub fn time_column(&self) -> Option<String> {
        if let Some(t) = &self.time {
            return Some(t.clone());
        }
        self.schema()
            .field_with_name("event_timestamp")
            .ok()
            .filter(|f| {
                matches!(
                    f.data_type(),
                    datafusion::arrow::datatypes::DataType::Timestamp(..)
                )
            })
            .map(|f| f.name().clone())
    }

    /// What the set is, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether reading some columns costs less than reading all.
    pub fn columnar(&self) -> bool {
        self.columnar
    }

    /// The frame.
    pub fn frame(&self) -> &DataFrame {
        &self.frame
    }

    /// Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.frame.schema().inner().clone()
    }

    /// Column names (the time column of [`Dataset::with_time`] left out: it is not compared).
    pub fn columns(&self) -> Vec<String> {
        self.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| self.time.as_ref() != Some(n))
            .collect()
    }

    /// Number of rows.
    pub async fn rows(&self) -> Result<usize> {
        self.frame
            .clone()
            .count()
            .await
            .map_err(|e| read_err(&self.label, e))
    }

    /// The vector column `column`'s mean per ISO week of `time`, each against `reference_mean`
    /// (cosine similarity), in time order.
    pub async fn weekly(
        &self,
        column: &str,
        time: &str,
        reference_mean: &[f64],
    ) -> Result<Vec<super::embedding::WeekSimilarity>> {
        let mut stream = self
            .frame
            .clone()
            .select_columns(&[column, time])
            .map_err(|e| read_err(&self.label, e))?
            .execute_stream()
            .await
            .map_err(|e| read_err(&self.label, e))?;
        let mut weeks = super::embedding::WeeklyMeans::default();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| read_err(&self.label, e))?;
            weeks
                .push(batch.column(0), batch.column(1))
                .map_err(|message| Error::Column {
                    column: column.to_string(),
                    message: format!("{message} in {}", self.label),
                })?;
        }
        Ok(weeks.finish(reference_mean))
    }

    /// The values of `columns`, in one pass over the set.
    pub async fn read(&self, columns: &[String]) -> Result<Vec<ColumnValues>> {
        let schema = self.schema();
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            let f = schema
                .field_with_name(c)
                .map_err(|_| Error::Input(format!("no column '{c}' in {}", self.label)))?;
            out.push(ColumnValues::new(f.data_type()));
        }
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let mut stream = self
            .frame
            .clone()
            .select_columns(&names)
            .map_err(|e| read_err(&self.label, e))?
            .execute_stream()
            .await
            .map_err(|e| read_err(&self.label, e))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| read_err(&self.label, e))?;
            for (i, acc) in out.iter_mut().enumerate() {
                acc.push(batch.column(i)).map_err(|message| Error::Column {
                    column: columns[i].clone(),
                    message: format!("{message} in {}", self.label),
                })?;
            }
        }
        Ok(out)
    }
}
