//! Integration tests of the offline engine: golden point-in-time cases, aggregations, errors.

mod aggregations;
mod decayed;
mod errors;
mod pit;
mod pit_keys;
mod postgres;
mod snapshots;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use quiver_core::repo::load_registry;
use quiver_offline::{HistoricalOptions, OfflineEngine};

/// Base time: 2025-01-01T00:00:00Z in seconds.
pub const T0: i64 = 1_735_689_600;
pub const DAY: i64 = 86_400;

/// Microseconds of T0 + `s` seconds.
pub fn us(s: i64) -> i64 {
    (T0 + s) * 1_000_000
}

pub fn ts_col(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(values.iter().map(|v| v.map(us)).collect::<Vec<_>>())
            .with_timezone("UTC"),
    )
}
pub fn i64_col(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}
pub fn f64_col(values: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}
pub fn str_col(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

pub fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

pub fn write_parquet(path: &Path, b: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), b.schema(), None).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
}

/// A repository in a temp dir with `quiver.yaml` = `yaml`.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new(yaml: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("quiver.yaml"), yaml).unwrap();
        Repo { dir }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn engine(&self) -> OfflineEngine {
        OfflineEngine::new(load_registry(self.dir.path()).unwrap(), self.dir.path())
    }
    pub async fn historical(
        &self,
        entities: &RecordBatch,
        features: &[&str],
    ) -> quiver_offline::Result<RecordBatch> {
        self.historical_with(entities, features, &HistoricalOptions::default())
            .await
    }
    pub async fn historical_with(
        &self,
        entities: &RecordBatch,
        features: &[&str],
        opts: &HistoricalOptions,
    ) -> quiver_offline::Result<RecordBatch> {
        let e = self.engine();
        let refs = e.registry().resolve_features(features)?;
        e.historical(
            entities,
            &refs,
            opts,
            "",
            &quiver_offline::engine::no_progress(),
        )
        .await
    }
}

pub fn f64s(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let a = a.as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}
pub fn i64s(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let a = a.as_primitive::<Int64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}
pub fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let a = a.as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}
