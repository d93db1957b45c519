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
//! A partition is finished once its `_SUCCESS` file exists (the data file is complete before:
//! a local file is renamed in place, an object appears only when its upload completes), so a
//! backfill that is killed resumes where it stopped.
//!
//! The store is a local folder or an `s3://` URL (`offline_store:` in `quiver.yaml`); both go
//! through one `object_store` code path ([`crate::remote::store_at`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use quiver_core::registry::ObjectKind;

use crate::engine::OfflineEngine;
use crate::error::{Error, Result};

/// The default offline store of a repository.
pub fn offline_root(repo: &Path) -> PathBuf {
    repo.join(".quiver/offline")
}

/// Where a repository's offline store is: `configured` (`offline_store:`: an `s3://` URL, or
/// a folder relative to the repository), else [`offline_root`].
pub fn offline_place(repo: &Path, configured: Option<&str>) -> String {
    match configured.map(str::trim).filter(|c| !c.is_empty()) {
        Some(url) if crate::remote::is_url(url) => url.trim_end_matches('/').to_string(),
        Some(folder) => repo.join(folder).display().to_string(),
        None => offline_root(repo).display().to_string(),
    }
}

/// The engine's offline store, opened.
fn store(engine: &OfflineEngine) -> Result<Arc<dyn ObjectStore>> {
    crate::remote::store_at(
        engine.offline_store(),
        &crate::remote::storage_of(engine.session()),
    )
    .map_err(|e| Error::Output(format!("offline_store: {e}")))
}

/// An error about `rel` in the engine's offline store, naming where it is.
fn failed(engine: &OfflineEngine, rel: &str, e: impl std::fmt::Display) -> Error {
    Error::Output(format!("{}/{rel}: {e}", engine.offline_store()))
}

/// `view`'s partition for the date of `as_of_us`, relative to the offline store.
pub fn partition_rel(view: &str, version: &str, as_of_us: i64) -> String {
    format!("{view}/version={version}/date={}", date_of(as_of_us))
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

/// The partition folder of `view`'s snapshot for the date of `as_of_us` in the repository's
/// default offline store.
pub fn partition_dir(repo: &Path, view: &str, version: &str, as_of_us: i64) -> PathBuf {
    offline_root(repo).join(partition_rel(view, version, as_of_us))
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
    /// The data file: a local path or an `s3://` URL.
    pub path: String,
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
    view: &str,
    as_of_us: i64,
    skip_finished: bool,
) -> Result<SnapshotReport> {
    let version = view_version(engine, view)?;
    let rel = partition_rel(view, &version, as_of_us);
    let data = ObjectPath::from(format!("{rel}/part-0.parquet"));
    let marker = ObjectPath::from(format!("{rel}/_SUCCESS"));
    let path = format!("{}/{data}", engine.offline_store());
    let store = store(engine)?;
    let report = |rows: u64, skipped: bool| SnapshotReport {
        view: view.to_string(),
        version: version.clone(),
        as_of_us,
        rows,
        path: path.clone(),
        skipped,
    };
    if skip_finished {
        match store.head(&marker).await {
            Ok(_) => return Ok(report(0, true)),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(failed(engine, marker.as_ref(), e)),
        }
    }
    let batch = snapshot_values(engine, view, as_of_us).await?;
    // A partition rewritten (another time on the same date) loses its marker first.
    match store.delete(&marker).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(failed(engine, marker.as_ref(), e)),
    }
    let bytes =
        crate::parquet_out::parquet_bytes(&batch).map_err(|e| failed(engine, data.as_ref(), e))?;
    store
        .put(&data, PutPayload::from(bytes))
        .await
        .map_err(|e| failed(engine, data.as_ref(), e))?;
    let info = serde_json::json!({
        "view": view,
        "version": version,
        "as_of": chrono::DateTime::from_timestamp_micros(as_of_us).map(|t| t.to_rfc3339()),
        "as_of_us": as_of_us,
        "rows": batch.num_rows(),
        "written_at": chrono::Utc::now().to_rfc3339(),
    });
    store
        .put(&marker, PutPayload::from(info.to_string()))
        .await
        .map_err(|e| failed(engine, marker.as_ref(), e))?;
    Ok(report(batch.num_rows() as u64, false))
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
/// partitions pruned.
pub async fn snapshot_and_prune(
    engine: &OfflineEngine,
    views: &[String],
    as_of_us: i64,
) -> Result<(Vec<SnapshotReport>, Vec<String>)> {
    let mut reports = Vec::with_capacity(views.len());
    let mut pruned = Vec::new();
    for view in views {
        reports.push(write_snapshot(engine, view, as_of_us, false).await?);
        let retain = engine
            .registry()
            .views
            .get(view)
            .and_then(|v| v.offline.as_ref())
            .and_then(|o| o.retain);
        if let Some(r) = retain {
            pruned.extend(prune(engine, view, as_of_us.saturating_sub(r.micros())).await?);
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

/// The sub-folders of `dir` (relative to the store) whose names start with `prefix`: their
/// relative paths.
async fn folders(
    engine: &OfflineEngine,
    store: &dyn ObjectStore,
    dir: &str,
    prefix: &str,
) -> Result<Vec<String>> {
    let listed = store
        .list_with_delimiter(Some(&ObjectPath::from(dir)))
        .await;
    let listed = match listed {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(failed(engine, dir, e)),
    };
    let mut out: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter(|p| p.filename().is_some_and(|n| n.starts_with(prefix)))
        .map(|p| p.to_string())
        .collect();
    out.sort();
    Ok(out)
}

/// Deletes `view`'s date partitions (of every version) older than `keep_after_us`; returns
/// the partitions removed (their locations).
pub async fn prune(engine: &OfflineEngine, view: &str, keep_after_us: i64) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let keep_from = date_of(keep_after_us);
    let store = store(engine)?;
    let mut removed = Vec::new();
    for version in folders(engine, store.as_ref(), view, "version=").await? {
        for date in folders(engine, store.as_ref(), &version, "date=").await? {
            let name = date.rsplit('/').next().unwrap_or("");
            // Dates in ISO form order as text.
            let Some(d) = name.strip_prefix("date=") else {
                continue;
            };
            if d >= keep_from.as_str() {
                continue;
            }
            let dir = ObjectPath::from(date.as_str());
            // The marker first: a partition half deleted is unfinished, never half read.
            match store
                .delete(&ObjectPath::from(format!("{date}/_SUCCESS")))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(failed(engine, &date, e)),
            }
            let objects: Vec<_> = store
                .list(Some(&dir))
                .try_collect()
                .await
                .map_err(|e| failed(engine, &date, e))?;
            for o in objects {
                match store.delete(&o.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(failed(engine, o.location.as_ref(), e)),
                }
            }
            if !crate::remote::is_url(engine.offline_store()) {
                // Local folders outlive their files; the partition goes with them.
                let local = Path::new(engine.offline_store()).join(&date);
                std::fs::remove_dir_all(&local).ok();
            }
            removed.push(format!("{}/{date}", engine.offline_store()));
        }
    }
    Ok(removed)
}

/// The finished partitions of `view` at version `version`: (as-of time in µs, data file
/// relative to the store), by as-of time. A partition without its `_SUCCESS` marker (a
/// snapshot being written, or killed mid-write) is not listed.
pub async fn finished_partitions(
    engine: &OfflineEngine,
    view: &str,
    version: &str,
) -> Result<Vec<(i64, String)>> {
    let store = store(engine)?;
    let mut out = Vec::new();
    for date in folders(
        engine,
        store.as_ref(),
        &format!("{view}/version={version}"),
        "date=",
    )
    .await?
    {
        let marker = ObjectPath::from(format!("{date}/_SUCCESS"));
        let text = match store.get(&marker).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| failed(engine, marker.as_ref(), e))?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(failed(engine, marker.as_ref(), e)),
        };
        let as_of = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["as_of_us"].as_i64())
            .ok_or_else(|| {
                failed(
                    engine,
                    marker.as_ref(),
                    "not a snapshot marker (no as_of_us): remove the partition and write it again with quiver snapshot",
                )
            })?;
        out.push((as_of, format!("{date}/part-0.parquet")));
    }
    out.sort();
    Ok(out)
}

/// Reads a snapshot's data file (relative to the store) with the Arrow types it was written
/// with.
pub async fn read_partition(engine: &OfflineEngine, rel: &str) -> Result<RecordBatch> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |e: String| Error::Output(format!("snapshot {}/{rel}: {e}", engine.offline_store()));
    let bytes = store(engine)?
        .get(&ObjectPath::from(rel))
        .await
        .map_err(|e| bad(e.to_string()))?
        .bytes()
        .await
        .map_err(|e| bad(e.to_string()))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| bad(e.to_string()))?;
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
