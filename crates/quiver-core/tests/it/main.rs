//! Integration tests of quiver-core: loading, validation, plan.

mod experiments;
mod jobs;
mod load;
mod plan;
mod quality;
mod recommenders;
mod request_views;

use std::path::PathBuf;

use quiver_core::repo::parse_definitions;
use quiver_core::{Error, Registry, Result};

/// The issue's minimal example, verbatim.
pub const MINIMAL: &str = r#"
project: shop
entities:
  - name: user
    join_keys: [user_id]
    value_type: int64            # int64 | string
sources:
  - name: stats_src
    type: parquet                # parquet | csv | postgres
    path: data/stats.parquet     # file, directory or glob; relative to the repo
    timestamp_field: event_timestamp
    created_timestamp_field: created   # optional; breaks ties between rows with equal timestamps
feature_views:
  - name: stats
    entities: [user]
    source: stats_src
    ttl: 30d                     # s, m, h, d, w; absent or 0 = unbounded lookback
    features:
      - {name: f_float, type: float64}
      - {name: f_int, type: int64}
      - {name: f_str, type: string}
feature_services:
  - name: churn_v1
    features: ["stats:f_float", "stats:*"]
"#;

/// Builds a registry from (file name, text) pairs; the first is quiver.yaml.
pub fn registry(files: &[(&str, &str)]) -> Result<Registry> {
    let mut parsed = Vec::new();
    for (name, text) in files {
        parsed.push((
            PathBuf::from(name),
            parse_definitions(&PathBuf::from(name), text)?,
        ));
    }
    Registry::from_files(parsed)
}

/// The error's message, for asserting on.
pub fn err(files: &[(&str, &str)]) -> String {
    match registry(files) {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            let _: &Error = &e;
            e.to_string()
        }
    }
}
