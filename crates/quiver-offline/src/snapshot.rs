//! Offline snapshots: each entity's feature values of a view as of a time, written to Parquet
//! under the offline store, versioned by the view's content hash so that a changed definition
//! never mixes with values computed by the old one:
//!
//! ```text
//! .quiver/offline/VIEW/version=HASH16/date=YYYY-MM-DD/part-0.parquet
//!                                                   /_SUCCESS      (JSON: as_of, rows, written_at)
//! ```
//!
//! A snapshot's values are point-in-time values: for an entity with a row at or before the time
//! and within the view's TTL, the latest such row; windowed aggregations over the windows ending
//! at the time (entities whose events all left the windows get count 0 / null, as `historical`
//! gives them). So `historical` with entity rows at that time returns the same values (tested).
//! A partition is finished once its `_SUCCESS` file exists (the data file is renamed in place
//! first), so a backfill that is killed resumes where it stopped.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use quiver_core::registry::ObjectKind;

use crate::engine::OfflineEngine;
use crate::error::{Error, Result};

/// The offline store of a repository.
pub fn offline_root(repo: &Path) -> PathBuf {
    repo.join(".quiver/offline")
}

/// The view named `view`, or an error naming it with a suggestion.
fn find<'e>(engine: &'e OfflineEngine, view: &str) -> Result<&'e quiver_core::FeatureView> {
    engine.registry().views.get(view).ok_or_else(|| {
        quiver_core::Error::UnknownFeature {
            reference: format!("{view}:*"),
            message: format!(
                "no feature view '{view}'{}",
                quiver_core::registry::suggest(view, engine.registry().views.keys())
            ),
        }
        .into()
    })
}

/// The first 16 hex digits of the view's content hash: its version in the offline store.
pub fn view_version(engine: &OfflineEngine, view: &str) -> Result<String> {
    find(engine, view)?;
    let hash = engine
        .registry()
        .object_hash(ObjectKind::FeatureView, view)
        .expect("the view exists");
    Ok(hash[..16].to_string())
}

/// `YYYY-MM-DD` (UTC) of a time in microseconds.
pub fn date_of(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "invalid-date".into())
}

/// The partition folder of `view`'s snapshot for the date of `as_of_us`.
pub fn partition_dir(repo: &Path, view: &str, version: &str, as_of_us: i64) -> PathBuf {
    offline_root(repo)
        .join(view)
        .join(format!("version={version}"))
        .join(format!("date={}", date_of(as_of_us)))
}

/// What [`write_snapshot`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotReport {
    /// The view.
    pub view: String,
    /// The view's version (content hash prefix).
    pub version: String,
    /// The time the values are as of, µs.
    pub as_of_us: i64,
    /// Entities written (0 when skipped).
    pub rows: u64,
    /// The data file.
    pub path: PathBuf,
    /// Whether the partition was already finished and left alone.
    pub skipped: bool,
}

/// The values of `view` as of `as_of_us`: one row per entity (join keys, `event_timestamp`, the
/// view's features).
pub async fn snapshot_values(
    engine: &OfflineEngine,
    view: &str,
    as_of_us: i64,
) -> Result<RecordBatch> {
    let v = find(engine, view)?;
    if v.is_request() {
        return Err(Error::Output(format!(
            "feature view '{view}' is computed from request data at serving time: it has no values to snapshot"
        )));
    }
    // Rows within the TTL: event time in [as_of - ttl, as_of], so after as_of - ttl - 1 µs.
    let since = (!v.is_aggregation() && !v.ttl.is_zero())
        .then(|| as_of_us.saturating_sub(v.ttl.micros()).saturating_sub(1));
    engine.latest(view, as_of_us, since).await
}

/// Writes `view`'s snapshot as of `as_of_us` into its partition; with `skip_finished`, a
/// partition that is already finished is left alone.
pub async fn write_snapshot(
    engine: &OfflineEngine,
    repo: &Path,
    view: &str,
    as_of_us: i64,
    skip_finished: bool,
) -> Result<SnapshotReport> {
    let version = view_version(engine, view)?;
    let dir = partition_dir(repo, view, &version, as_of_us);
    let path = dir.join("part-0.parquet");
    let marker = dir.join("_SUCCESS");
    if skip_finished && marker.is_file() {
        return Ok(SnapshotReport {
            view: view.to_string(),
            version,
            as_of_us,
            rows: 0,
            path,
            skipped: true,
        });
    }
    let batch = snapshot_values(engine, view, as_of_us).await?;
    let io = |e: std::io::Error| Error::Output(format!("{}: {e}", dir.display()));
    // A partition rewritten (another time on the same date) loses its marker first.
    match std::fs::remove_file(&marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    crate::parquet_out::write_parquet_file(&path, &batch).map_err(io)?;
    let info = serde_json::json!({
        "view": view,
        "version": version,
        "as_of": chrono::DateTime::from_timestamp_micros(as_of_us).map(|t| t.to_rfc3339()),
        "as_of_us": as_of_us,
        "rows": batch.num_rows(),
        "written_at": chrono::Utc::now().to_rfc3339(),
    });
    std::fs::write(&marker, info.to_string()).map_err(io)?;
    Ok(SnapshotReport {
        view: view.to_string(),
        version,
        as_of_us,
        rows: batch.num_rows() as u64,
        path,
        skipped: false,
    })
}

/// The views a snapshot covers: `names` (checked), or every view declaring `offline:` when
/// empty.
pub fn snapshot_views(engine: &OfflineEngine, names: &[String]) -> Result<Vec<String>> {
    let registry = engine.registry();
    if names.is_empty() {
        let declared: Vec<String> = registry
            .views
            .values()
            .filter(|v| v.offline.is_some())
            .map(|v| v.name.clone())
            .collect();
        if declared.is_empty() {
            return Err(Error::Output(
                "no view declares `offline: {snapshots: daily}`: name the views to snapshot".into(),
            ));
        }
        return Ok(declared);
    }
    for n in names {
        view_version(engine, n)?;
    }
    Ok(names.to_vec())
}

/// Snapshots `views` as of `as_of_us` and prunes, for each view with `offline.retain`, the
/// partitions older than the retention: what a `snapshot` job does. Returns the reports and the
/// folders pruned.
pub async fn snapshot_and_prune(
    engine: &OfflineEngine,
    repo: &Path,
    views: &[String],
    as_of_us: i64,
) -> Result<(Vec<SnapshotReport>, Vec<PathBuf>)> {
    let mut reports = Vec::with_capacity(views.len());
    let mut pruned = Vec::new();
    for view in views {
        reports.push(write_snapshot(engine, repo, view, as_of_us, false).await?);
        let retain = engine
            .registry()
            .views
            .get(view)
            .and_then(|v| v.offline.as_ref())
            .and_then(|o| o.retain);
        if let Some(r) = retain {
            pruned.extend(prune(repo, view, as_of_us.saturating_sub(r.micros()))?);
        }
    }
    Ok((reports, pruned))
}

/// The snapshot times of a backfill: `from_us`, `from_us + every_us`, ... up to `to_us`.
pub fn backfill_times(from_us: i64, to_us: i64, every_us: i64) -> Vec<i64> {
    if every_us <= 0 || from_us > to_us {
        return Vec::new();
    }
    (0..)
        .map(|i| from_us.saturating_add(i * every_us))
        .take_while(|t| *t <= to_us)
        .collect()
}

/// Deletes `view`'s finished date partitions (of every version) older than `keep_after_us`;
/// returns the folders removed.
pub fn prune(repo: &Path, view: &str, keep_after_us: i64) -> Result<Vec<PathBuf>> {
    let keep_from = date_of(keep_after_us);
    let io = |p: &Path, e: std::io::Error| Error::Output(format!("{}: {e}", p.display()));
    let view_dir = offline_root(repo).join(view);
    let mut removed = Vec::new();
    let versions = match std::fs::read_dir(&view_dir) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(io(&view_dir, e)),
    };
    for version in versions {
        let version = version.map_err(|e| io(&view_dir, e))?.path();
        let Ok(dates) = std::fs::read_dir(&version) else {
            continue;
        };
        for date in dates {
            let date = date.map_err(|e| io(&version, e))?.path();
            let name = date.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Dates in ISO form order as text.
            if let Some(d) = name.strip_prefix("date=")
                && d < keep_from.as_str()
            {
                std::fs::remove_dir_all(&date).map_err(|e| io(&date, e))?;
                removed.push(date);
            }
        }
    }
    Ok(removed)
}

/// The finished partitions of `view` at version `version`: (as-of time in µs, data file), by
/// as-of time. A partition without its `_SUCCESS` marker (a snapshot being written, or killed
/// mid-write) is not listed.
pub fn finished_partitions(repo: &Path, view: &str, version: &str) -> Result<Vec<(i64, PathBuf)>> {
    let dir = offline_root(repo)
        .join(view)
        .join(format!("version={version}"));
    let dates = match std::fs::read_dir(&dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Output(format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for date in dates.flatten() {
        let marker = date.path().join("_SUCCESS");
        let Ok(text) = std::fs::read_to_string(&marker) else {
            continue;
        };
        let as_of = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["as_of_us"].as_i64())
            .ok_or_else(|| {
                Error::Output(format!(
                    "{}: not a snapshot marker (no as_of_us): remove the partition and write it again with quiver snapshot",
                    marker.display()
                ))
            })?;
        out.push((as_of, date.path().join("part-0.parquet")));
    }
    out.sort();
    Ok(out)
}

/// Reads a snapshot's data file with the Arrow types it was written with.
pub fn read_partition(path: &Path) -> Result<RecordBatch> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |e: String| Error::Output(format!("snapshot {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(e.to_string()))?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .map_err(|e| bad(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema, &batches,
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backfill_times_step_through_the_range() {
        let day = 86_400_000_000;
        assert_eq!(
            super::backfill_times(0, 2 * day, day),
            vec![0, day, 2 * day]
        );
        assert_eq!(super::backfill_times(0, 2 * day - 1, day), vec![0, day]);
        assert!(super::backfill_times(day, 0, day).is_empty());
        assert_eq!(super::date_of(day), "1970-01-02");
    }
}
