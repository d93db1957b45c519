//! Every series `GET /metrics` exports, with its help text, registered when the server starts:
//! counters at 0 and histograms empty, so that alerts and dashboards work on a quiet server
//! (a series that first appears with its first event cannot be told from a broken exporter,
//! and `rate()` over it misses the first increment). `quiver_online_store_up` is set by the
//! first health check of the server's upkeep, right after start.
//!
//! Series labelled by model are registered for every model with a `champion` when the server
//! starts ([`register_model`]); series labelled by endpoint for every documented endpoint with
//! status 200.

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// What a series is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set to the current value.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// Every series `/metrics` exports: name, kind, labels, help. README's `/metrics` row lists the
/// same names (tested).
pub const SERIES: &[(&str, Kind, &[&str], &str)] = &[
    (
        "quiver_http_requests_total",
        Kind::Counter,
        &["endpoint", "status"],
        "HTTP requests answered, by routed endpoint and status",
    ),
    (
        "quiver_http_request_duration_seconds",
        Kind::Histogram,
        &["endpoint"],
        "Time to answer an HTTP request, by routed endpoint",
    ),
    (
        "quiver_online_store_read_seconds",
        Kind::Histogram,
        &[],
        "Time of one online-store read (every view of a request)",
    ),
    (
        "quiver_online_store_write_seconds",
        Kind::Histogram,
        &[],
        "Time of one online-store write from /push or /write-to-online-store",
    ),
    (
        "quiver_online_store_errors_total",
        Kind::Counter,
        &["kind"],
        "Online-store calls that failed: unavailable (down or timed out) or other",
    ),
    (
        "quiver_online_store_up",
        Kind::Gauge,
        &[],
        "1 when the online store answered the last health check (every 5 s), else 0",
    ),
    (
        "quiver_registry_version",
        Kind::Gauge,
        &[],
        "The applied registry version the server answers with",
    ),
    (
        "quiver_rows_materialized_total",
        Kind::Counter,
        &[],
        "Rows written to the online store by POST /materialize and /materialize-incremental",
    ),
    (
        "quiver_rows_written_online_total",
        Kind::Counter,
        &["path"],
        "Rows written to the online store by POST /push and /write-to-online-store",
    ),
    (
        "quiver_entities_not_found_total",
        Kind::Counter,
        &[],
        "Entity rows of /get-online-features with no stored row in some view",
    ),
    (
        "quiver_predictions_total",
        Kind::Counter,
        &["model", "version"],
        "Predictions served, by model and the version that served them",
    ),
    (
        "quiver_predict_seconds",
        Kind::Histogram,
        &["model", "version"],
        "Time to answer a /predict request",
    ),
    (
        "quiver_prediction_score",
        Kind::Histogram,
        &["model", "version"],
        "Scores served (single-output models)",
    ),
    (
        "quiver_shadow_predictions_total",
        Kind::Counter,
        &["model", "version"],
        "Challenger scores computed in shadow mode",
    ),
    (
        "quiver_shadow_disagreements_total",
        Kind::Counter,
        &["model"],
        "Shadow scores whose decision differs from the champion's",
    ),
    (
        "quiver_shadow_score_diff",
        Kind::Histogram,
        &["model"],
        "Absolute difference between shadow and champion scores",
    ),
    (
        "quiver_challenger_errors_total",
        Kind::Counter,
        &["model"],
        "Requests whose challenger could not be loaded or scored (the champion answered)",
    ),
    (
        "quiver_prediction_log_rows_total",
        Kind::Counter,
        &[],
        "Prediction-log rows written to Parquet",
    ),
    (
        "quiver_prediction_log_dropped_total",
        Kind::Counter,
        &[],
        "Prediction-log rows dropped (channel full or write failed)",
    ),
    (
        "quiver_recommendations_total",
        Kind::Counter,
        &["recommender", "source"],
        "Users answered by /recommend and /recommend/batch, by recommender and source (cf, popularity, blend)",
    ),
    (
        "quiver_recommend_seconds",
        Kind::Histogram,
        &[],
        "Time to answer a /recommend or /recommend/batch request",
    ),
    (
        "quiver_cold_start_total",
        Kind::Counter,
        &["kind"],
        "Cold-start answers: new_user (popularity), blend (fewer than min_interactions), fold_in (factors solved from the request's interactions)",
    ),
    (
        "quiver_recommender_age_seconds",
        Kind::Gauge,
        &["recommender"],
        "Seconds since the served version of a recommender was registered (staleness)",
    ),
    (
        "ab_exposures_total",
        Kind::Counter,
        &["experiment", "arm"],
        "Answers of /recommend and /recommend/batch shown to users of an A/B experiment, by experiment and arm",
    ),
    (
        "quiver_exposure_log_rows_total",
        Kind::Counter,
        &[],
        "A/B exposure rows written to Parquet (.quiver/exposures)",
    ),
    (
        "quiver_exposure_log_dropped_total",
        Kind::Counter,
        &[],
        "A/B exposure rows dropped (channel full or write failed)",
    ),
    (
        "data_quality_checks_total",
        Kind::Counter,
        &["check_type", "status"],
        "Data-quality checks run (quiver check, the materialization gate, jobs), by type and status (pass, warn, fail)",
    ),
    (
        "data_quality_violations_total",
        Kind::Counter,
        &["check_type"],
        "Failing rows found by data-quality checks (1 for a failed freshness, volume or schema check)",
    ),
    (
        "quiver_data_freshness_seconds",
        Kind::Gauge,
        &["source"],
        "Age of a source's newest event at its last quality check, seconds",
    ),
    (
        "quiver_feature_drift_score",
        Kind::Gauge,
        &["model", "feature"],
        "A feature's score in the model's newest stored drift run (p-value for tests, distance otherwise)",
    ),
    (
        "quiver_dataset_drift",
        Kind::Gauge,
        &["model"],
        "Whether the model's newest stored drift run found data-set drift (1) or not (0)",
    ),
];

/// Describes every series and registers those without per-model labels.
pub fn register_all() {
    for (name, kind, labels, help) in SERIES {
        let name = *name;
        match kind {
            Kind::Counter => describe_counter!(name, *help),
            Kind::Gauge => describe_gauge!(name, *help),
            Kind::Histogram => describe_histogram!(name, *help),
        }
        match (*kind, *labels) {
            (Kind::Counter, []) => metrics::counter!(name).increment(0),
            (Kind::Histogram, []) => drop(metrics::histogram!(name)),
            _ => {}
        }
    }
    // Every documented endpoint (the OpenAPI document, which a test checks against the
    // router), with status 200.
    for endpoint in crate::info::documented_fixed_paths() {
        metrics::counter!("quiver_http_requests_total", "endpoint" => endpoint, "status" => "200")
            .increment(0);
        drop(metrics::histogram!("quiver_http_request_duration_seconds", "endpoint" => endpoint));
    }
    for kind in ["unavailable", "other"] {
        metrics::counter!("quiver_online_store_errors_total", "kind" => kind).increment(0);
    }
    metrics::counter!("quiver_rows_written_online_total", "path" => "push").increment(0);
    for kind in ["new_user", "blend", "fold_in", "new_item"] {
        metrics::counter!("quiver_cold_start_total", "kind" => kind).increment(0);
    }
    for t in quiver_core::quality::CHECK_TYPES {
        for s in ["pass", "warn", "fail"] {
            metrics::counter!("data_quality_checks_total", "check_type" => t, "status" => s)
                .increment(0);
        }
        metrics::counter!("data_quality_violations_total", "check_type" => t).increment(0);
    }
}

/// Registers the series of a model whose champion is `version`.
pub fn register_model(model: &str, version: i64) {
    let (m, v) = (model.to_string(), version.to_string());
    metrics::counter!("quiver_predictions_total", "model" => m.clone(), "version" => v.clone())
        .increment(0);
    drop(metrics::histogram!("quiver_predict_seconds", "model" => m.clone(), "version" => v));
    for name in [
        "quiver_shadow_disagreements_total",
        "quiver_challenger_errors_total",
    ] {
        metrics::counter!(name, "model" => m.clone()).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, SERIES, register_all, register_model};

    #[test]
    fn every_series_is_exported_before_its_first_event() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            register_all();
            register_model("churn", 3);
            metrics::gauge!("quiver_online_store_up").set(1.0);
            metrics::gauge!("quiver_registry_version").set(2.0);
        });
        let text = handle.render();
        for (name, kind, labels, _) in SERIES {
            // Per-model series with a version label other than the champion's appear with
            // their first event (shadow scores and score histograms of a challenger).
            if matches!(
                *name,
                "quiver_shadow_predictions_total"
                    | "quiver_prediction_score"
                    | "quiver_shadow_score_diff"
                    // Set from the stored results at start, or by the first check of a source.
                    | "quiver_data_freshness_seconds"
                    // Per recommender: registered when one with a champion is served or loaded.
                    | "quiver_recommendations_total"
                    | "quiver_recommender_age_seconds"
                    // Per declared experiment and arm: registered with the registry served.
                    | "ab_exposures_total"
                    // Set from the stored drift runs, per model.
                    | "quiver_feature_drift_score"
                    | "quiver_dataset_drift"
            ) {
                continue;
            }
            let sample = match kind {
                Kind::Histogram => format!("{name}_count"),
                _ => name.to_string(),
            };
            assert!(
                text.lines().any(|l| l.starts_with(&sample)),
                "{name} ({labels:?}) is missing:\n{text}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
        }
        assert!(text.contains(r#"quiver_predictions_total{model="churn",version="3"} 0"#));
        assert!(text.contains(r#"quiver_online_store_errors_total{kind="unavailable"} 0"#));
    }

    #[test]
    fn the_readme_documents_every_series() {
        let readme = include_str!("../../../README.md");
        for (name, ..) in SERIES {
            assert!(readme.contains(name), "README.md does not document {name}");
        }
    }
}
