//! The training set of a feature service: the label table joined point in time with the
//! service's features, checked, with each row's label time.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use quiver_core::{FeatureRef, Registry};
use quiver_offline::{HistoricalOptions, OfflineEngine};

use crate::{Error, Progress, Result, RowsRead};

/// A point-in-time training set.
pub struct TrainingSet {
    /// The label rows (every column) followed by one column per feature (`view__feature`).
    pub set: RecordBatch,
    /// Each row's label time, microseconds since the epoch (UTC).
    pub ts: Vec<i64>,
}

/// Builds the training set for `features` from the label table `labels` (read from
/// `labels_file`): one row per label row, each feature as of the row's `timestamp_column`.
/// Every label row must name its entity, and (unless `allow_unknown_entities`) an entity some
/// feature view knows.
pub async fn build(
    engine: &OfflineEngine,
    labels: &RecordBatch,
    labels_file: &Path,
    features: &[FeatureRef],
    timestamp_column: &str,
    allow_unknown_entities: bool,
    progress: &Arc<dyn Progress>,
) -> Result<TrainingSet> {
    let opts = HistoricalOptions {
        timestamp_column: timestamp_column.to_string(),
        full_names: true,
        ..HistoricalOptions::default()
    };
    let rows: Arc<dyn quiver_offline::engine::Progress> = Arc::new(RowsRead(Arc::clone(progress)));
    let set = engine
        .historical(
            labels,
            features,
            &opts,
            &labels_file.display().to_string(),
            &rows,
        )
        .await?;
    check_entities(
        engine.registry(),
        features,
        &set,
        labels_file,
        allow_unknown_entities,
    )?;
    let ts = timestamps(&set, timestamp_column)?;
    Ok(TrainingSet { set, ts })
}

/// A timestamp column in any unit or zone as microseconds since the epoch.
fn timestamps(set: &RecordBatch, column: &str) -> Result<Vec<i64>> {
    let col = set
        .column_by_name(column)
        .ok_or_else(|| Error::Internal(format!("the training set lost column {column}")))?;
    let micros = cast(
        &cast(col, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
        &DataType::Int64,
    )?;
    Ok(micros.as_primitive::<Int64Type>().values().to_vec())
}

/// Label rows must name an entity: a null join key is an error, and so is a row whose entity
/// no view knows (every feature null apart from counts, which are 0 for anyone), unless
/// `allow_unknown_entities`.
fn check_entities(
    registry: &Registry,
    features: &[FeatureRef],
    set: &RecordBatch,
    labels_file: &Path,
    allow_unknown_entities: bool,
) -> Result<()> {
    let mut keys: Vec<String> = Vec::new();
    for f in features {
        for k in registry.view_join_keys(&registry.views[&f.view]) {
            if !keys.contains(&k.name) {
                keys.push(k.name);
            }
        }
    }
    let key_cols: Vec<(&str, &dyn Array)> = keys
        .iter()
        .filter_map(|k| set.column_by_name(k).map(|c| (k.as_str(), c.as_ref())))
        .collect();
    for (k, c) in &key_cols {
        if let Some(i) = (0..c.len()).find(|&i| c.is_null(i)) {
            return Err(Error::Invalid(format!(
                "{}: label row {} has no {k} (null): every label row must name its entity",
                labels_file.display(),
                i + 1
            )));
        }
    }
    let informative: Vec<&dyn Array> = features
        .iter()
        .filter(|f| {
            !registry.views[&f.view].aggregations.iter().any(|a| {
                a.name == f.feature
                    && matches!(
                        a.function,
                        quiver_core::registry::AggFunction::Count
                            | quiver_core::registry::AggFunction::CountDistinct
                    )
            })
        })
        .filter_map(|f| set.column_by_name(&f.full_name()).map(|c| c.as_ref()))
        .collect();
    if informative.is_empty() || allow_unknown_entities {
        return Ok(());
    }
    let unknown: Vec<usize> = (0..set.num_rows())
        .filter(|&i| informative.iter().all(|c| c.is_null(i)))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let show = |i: usize| {
        let key = key_cols
            .iter()
            .map(|(k, c)| {
                let v = datafusion::arrow::util::display::array_value_to_string(*c, i)
                    .unwrap_or_default();
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        format!("{key} at row {}", i + 1)
    };
    Err(Error::Invalid(format!(
        "{}: {} of {} label rows name entities that no feature view knows as of their label time (every feature is missing), e.g. {}: fix the labels, or pass --allow-unknown-entities to train on them anyway",
        labels_file.display(),
        unknown.len(),
        set.num_rows(),
        unknown
            .iter()
            .take(3)
            .map(|&i| show(i))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
