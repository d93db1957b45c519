//! `quiver materialize`, `quiver materialize-incremental` and `quiver online clear`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use quiver_core::repo::RepoSettings;
use quiver_offline::OfflineEngine;
use quiver_online::format_time;
use quiver_online::materialize::{MaterializeOptions, MaterializeProgress};
use serde_json::json;

use crate::output::{Output, plural, rate, thousands};
use crate::registry_cmd::{open_store, stored};
use crate::via_server;

#[derive(Args, Debug)]
pub struct MaterializeArgs {
    /// Start of the event-time range (inclusive): 2025-01-01, '2025-01-01 12:00:00' (UTC),
    /// 2025-01-01T12:00:00Z.
    pub start: String,
    /// End of the event-time range (inclusive); aggregations are computed as of it. `now` works.
    pub end: String,
    /// Only these views (comma-separated); default: every view with `online: true`.
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<String>,
    /// Rows per write batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch_rows: usize,
}

#[derive(Args, Debug)]
pub struct IncrementalArgs {
    /// End of the range (inclusive); each view starts from its watermark (the end of its last
    /// successful run), or END minus its TTL the first time. `now` works.
    pub end: String,
    /// Only these views (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<String>,
    /// Rows per write batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch_rows: usize,
}

#[derive(Subcommand, Debug)]
pub enum OnlineCommand {
    /// Delete the stored rows of some views (every view by default) and reset their watermarks.
    ///
    /// The way back from a materialization run by mistake: an END in the future stores rows
    /// that a later, correct run cannot replace (an older row never replaces a newer one).
    /// After `clear`, materialize again. While `quiver serve` holds the embedded store, this
    /// goes through its POST /online/clear (with QUIVER_SERVER_TOKEN). Example: quiver online
    /// clear --views user_stats && quiver materialize 2025-01-01 2025-06-30
    Clear {
        /// Only these views (comma-separated); default: every view.
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
    },
}

struct Bar(ProgressBar);

impl MaterializeProgress for Bar {
    fn view_started(&self, view: &str, rows: u64) {
        self.0.set_message(format!("materializing {view}"));
        self.0.set_length(self.0.length().unwrap_or(0) + rows);
    }
    fn rows_written(&self, _view: &str, rows: u64) {
        self.0.inc(rows);
    }
}

/// Runs `materialize` (incremental when `start` is `None`) and prints its table; returns the
/// JSON report. When a running `quiver serve` holds the embedded store, the job runs in that
/// server (`POST /materialize` or `/materialize-incremental`).
pub async fn run_materialize(
    repo: &Path,
    start: Option<&str>,
    end: &str,
    views: Vec<String>,
    batch_rows: usize,
    out: &Output,
) -> anyhow::Result<serde_json::Value> {
    materialize_into(repo, None, start, end, views, batch_rows, out).await
}

/// [`run_materialize`] into `store` when given (the server's own, for `serve --scheduler`),
/// else into the store quiver.yaml names.
pub async fn materialize_into(
    repo: &Path,
    store: Option<Arc<dyn quiver_online::OnlineStore>>,
    start: Option<&str>,
    end: &str,
    views: Vec<String>,
    batch_rows: usize,
    out: &Output,
) -> anyhow::Result<serde_json::Value> {
    let opts = MaterializeOptions::from_args(
        start,
        end,
        views,
        batch_rows,
        quiver_online::materialize::ArgNames {
            start: "START",
            end: "END",
            batch_rows: "--batch-rows",
        },
    )
    .map_err(anyhow::Error::msg)?;
    let applied = stored(repo).await?;
    let settings = RepoSettings::load(repo)?;
    let project = applied.registry.project.clone();
    let started = Instant::now();
    let opened = match store {
        Some(s) => Ok(s),
        None => quiver_online::open_store(&settings, repo, &project),
    };
    let store = match opened {
        Ok(store) => store,
        Err(e) => {
            let e = anyhow::Error::from(e);
            if !via_server::is_locked(&e) {
                return Err(e);
            }
            let (endpoint, command) = match start {
                Some(s) => ("/materialize", format!("quiver materialize {s} {end}")),
                None => (
                    "/materialize-incremental",
                    format!("quiver materialize-incremental {end}"),
                ),
            };
            let body = json!({
                // START as given (inclusive); the options hold the exclusive bound.
                "start_ts": opts.start_us.map(|s| format_time(s + 1)),
                "end_ts": format_time(opts.end_us),
                "feature_views": opts.views,
                "batch_rows": batch_rows,
            });
            let report = via_server::post(repo, endpoint, body, &command).await?;
            print_materialized(&report, started, Some(endpoint), out);
            return Ok(report);
        }
    };
    let meta = open_store(repo).await?;
    let registry_version = applied.version;
    let engine = OfflineEngine::new(applied.registry, repo);
    let bar = out.progress("materializing", Some(0), "rows");
    // The quality sets on what the run reads go first; a failing one blocks it (see
    // quiver_monitor::quality::gate).
    let checked = quiver_monitor::quality::materialize_checked(
        &engine,
        &*store,
        &meta,
        &opts,
        Arc::new(Bar(bar.clone())),
        registry_version,
        &quiver_jobs::Alerter::from_settings_or_off(&settings.alerts, Some(meta.clone())),
    )
    .await;
    bar.finish_and_clear();
    let (gate, reports) = checked?;
    for w in &gate.warnings {
        eprintln!("warning: {w}");
    }
    let mut report = quiver_server::materialize_report(&reports, &store.describe());
    report["quality_warnings"] = json!(gate.warnings);
    print_materialized(&report, started, None, out);
    Ok(report)
}

/// The table and summary of a materialization report (see [`quiver_server::materialize_report`]).
fn print_materialized(
    report: &serde_json::Value,
    started: Instant,
    via: Option<&str>,
    out: &Output,
) {
    let views = report["views"].as_array().cloned().unwrap_or_default();
    let num = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let secs = |v: &serde_json::Value, k: &str| format!("{:.2}", v[k].as_f64().unwrap_or(0.0));
    out.table(
        &[
            "view",
            "from",
            "to",
            "entities",
            "written",
            "older, kept",
            "seconds",
            "of which reading",
        ],
        views
            .iter()
            .map(|v| {
                let start = v["start"].as_str();
                vec![
                    v["view"].as_str().unwrap_or("").to_string(),
                    match (start, v["incremental"].as_bool() == Some(true)) {
                        (None, _) => "(all)".to_string(),
                        (Some(s), true) => format!("after {s}"),
                        (Some(s), false) => s.to_string(),
                    },
                    v["end"].as_str().unwrap_or("").to_string(),
                    thousands(num(v, "entities")),
                    thousands(num(v, "written")),
                    thousands(num(v, "skipped_older")),
                    secs(v, "seconds"),
                    secs(v, "read_seconds"),
                ]
            })
            .collect(),
    );
    let total: u64 = views.iter().map(|v| num(v, "written")).sum();
    let entities: u64 = views.iter().map(|v| num(v, "entities")).sum();
    out.say(format!(
        "materialized {} into {}{}: {}, {}",
        plural(views.len() as u64, "view"),
        report["store"].as_str().unwrap_or("the online store"),
        via.map(|e| format!(" (through the running server's POST {e})"))
            .unwrap_or_default(),
        plural(entities, "entity"),
        rate(total, started)
    ));
    out.emit(report);
}

/// `quiver online clear`.
pub async fn run_clear(repo: &Path, views: Vec<String>, out: &Output) -> anyhow::Result<()> {
    let applied = stored(repo).await?;
    let settings = RepoSettings::load(repo)?;
    let report = match quiver_online::open_store(&settings, repo, &applied.registry.project) {
        Ok(store) => {
            let meta = open_store(repo).await?;
            let cleared =
                quiver_online::materialize::clear(&applied.registry, &*store, &meta, &views)
                    .await?;
            json!({
                "store": store.describe(),
                "views": cleared.iter().map(|c| json!({
                    "view": c.view, "rows": c.rows, "watermark_reset": c.watermark_reset,
                })).collect::<Vec<_>>(),
            })
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            if !via_server::is_locked(&e) {
                return Err(e);
            }
            let command = if views.is_empty() {
                "quiver online clear".to_string()
            } else {
                format!("quiver online clear --views {}", views.join(","))
            };
            via_server::post(
                repo,
                "/online/clear",
                json!({"feature_views": (!views.is_empty()).then_some(&views)}),
                &command,
            )
            .await?
        }
    };
    let rows = report["views"].as_array().cloned().unwrap_or_default();
    out.table(
        &["view", "rows deleted", "watermark"],
        rows.iter()
            .map(|v| {
                vec![
                    v["view"].as_str().unwrap_or("").to_string(),
                    thousands(v["rows"].as_u64().unwrap_or(0)),
                    if v["watermark_reset"].as_bool() == Some(true) {
                        "reset".to_string()
                    } else {
                        "none".to_string()
                    },
                ]
            })
            .collect(),
    );
    let total: u64 = rows.iter().map(|v| v["rows"].as_u64().unwrap_or(0)).sum();
    out.say(format!(
        "cleared {} of {}: {} deleted; the next materialize-incremental starts from END minus each view's TTL",
        plural(rows.len() as u64, "view"),
        report["store"].as_str().unwrap_or("the online store"),
        plural(total, "row"),
    ));
    out.emit(&report);
    Ok(())
}
