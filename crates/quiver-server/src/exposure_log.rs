//! The A/B exposure log: every answer `/recommend` and `/recommend/batch` give a user of an
//! experiment, written as Parquet by the prediction log's writer ([`ParquetLog`]: buffered,
//! flushed every `flush_rows` rows or `flush_interval_ms` of `server.prediction_log`, and on
//! shutdown; files written under a temporary name and renamed). Files go to
//! `.quiver/exposures/experiment=NAME/date=YYYY-MM-DD/part-<ms>-<seq>.parquet` with the columns
//! of `quiver_recs::ab::exposure_schema`, where `quiver ab report` reads them. Every exposure is
//! logged (no sampling: a report needs them all).

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use quiver_recs::ab::Exposure;

use crate::prediction_log::{LogCounters, ParquetLog, ParquetRows, PredictionLogConfig};

/// The exposure log's counters.
pub const EXPOSURE_COUNTERS: LogCounters = LogCounters {
    written: "quiver_exposure_log_rows_total",
    dropped: "quiver_exposure_log_dropped_total",
    what: "exposure log",
};

impl ParquetRows for Exposure {
    fn folder(&self) -> String {
        format!("experiment={}", self.experiment)
    }

    fn ts_us(&self) -> i64 {
        self.ts_us
    }

    fn to_batch(rows: &[Exposure]) -> Result<RecordBatch, ArrowError> {
        quiver_recs::ab::exposures_batch(rows)
    }
}

/// The handle `/recommend` logs exposures through.
pub type ExposureLog = ParquetLog<Exposure>;

/// Starts the exposure log's writer under `root`'s `.quiver/exposures`, flushing as the
/// prediction log does. Needs a Tokio runtime.
pub fn start(prediction_log: &PredictionLogConfig, root: &Path) -> ExposureLog {
    let config = PredictionLogConfig {
        sample_rate: 1.0,
        dir: root.join(quiver_recs::ab::EXPOSURES_DIR),
        storage: Default::default(),
        flush_rows: prediction_log.flush_rows,
        flush_interval: prediction_log.flush_interval,
    };
    ParquetLog::start_with(config, &EXPOSURE_COUNTERS)
}

/// Registers `ab_exposures_total{experiment, arm}` at 0 for every declared arm (at start and
/// when a new registry version is served).
pub fn register_series(registry: &quiver_core::Registry) {
    for e in registry.experiments.values() {
        for a in &e.arms {
            metrics::counter!("ab_exposures_total", "experiment" => e.name.clone(), "arm" => a.arm.clone())
                .increment(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn exposures_become_parquet_files_per_experiment_and_day() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let log = start(
                &PredictionLogConfig {
                    sample_rate: 0.0,
                    dir: "unused".into(),
                    storage: Default::default(),
                    flush_rows: 1000,
                    flush_interval: std::time::Duration::from_secs(60),
                },
                dir.path(),
            );
            let exp: Arc<str> = Arc::from("cf_vs_pop");
            log.log(
                (0..3)
                    .map(|i| Exposure {
                        ts_us: 1_700_000_000_000_000 + i,
                        experiment: Arc::clone(&exp),
                        arm: Arc::from(if i == 1 { "popularity" } else { "cf" }),
                        recommender: Arc::from("shop_recs"),
                        version: 1,
                        user: format!("u{i}"),
                        items: vec!["p1".into(), "p2".into()],
                        source: "cf",
                    })
                    .collect(),
            );
            log.flush().await;
        });
        let batch = crate::prediction_log::only_file_batch(
            &dir.path()
                .join(".quiver/exposures/experiment=cf_vs_pop/date=2023-11-14"),
        );
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), quiver_recs::ab::exposure_schema());
    }
}
