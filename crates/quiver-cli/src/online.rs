//! `quiver materialize`, `quiver materialize-incremental` and `quiver serve`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use quiver_core::repo::RepoSettings;
use quiver_offline::OfflineEngine;
use quiver_online::materialize::{MaterializeOptions, MaterializeProgress, materialize};
use quiver_online::{format_time, parse_time};
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

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 6566)]
    pub port: u16,
    /// Worker threads that answer requests. Default: one per core, minus one when the online
    /// store is a Redis on this machine (127.0.0.1, localhost, ::1 or a Unix socket), which
    /// needs a core of its own: on 2 cores shared with Redis and the load generator, 2 workers
    /// gave p99 3.6 ms and 1 worker 0.95 ms, at a higher rate. TOKIO_WORKER_THREADS, when set,
    /// replaces the default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Also run the registry's jobs on their schedules (as `quiver scheduler` does), in this
    /// process: on the embedded store, the only way a job can write to it while serving.
    #[arg(long)]
    pub scheduler: bool,
}

/// `quiver serve`'s worker threads when `--workers` is not given, with the reason; `None` leaves
/// the choice to the runtime (TOKIO_WORKER_THREADS is set).
pub fn default_workers(repo: &Path) -> Option<(usize, &'static str)> {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A repository that does not load is reported by `serve` itself, with its error.
    let local_redis = RepoSettings::load(repo).ok().is_some_and(|s| {
        s.online_store.as_ref().is_some_and(|(_, raw)| {
            raw.kind.as_deref() == Some("redis")
                && raw
                    .url
                    .as_deref()
                    .and_then(|u| quiver_online::config::expand_env(u).ok())
                    .is_some_and(|u| is_local_redis(&u))
        })
    });
    Some(if local_redis && cores > 1 {
        (
            cores - 1,
            "one per core, less one for the Redis on this machine",
        )
    } else {
        (cores, "one per core")
    })
}

/// Whether a Redis URL points at this machine: a Unix socket or a loopback host.
fn is_local_redis(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if scheme.contains("unix") {
        return true;
    }
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

fn time_arg(name: &str, v: &str) -> anyhow::Result<i64> {
    parse_time(v).map_err(|m| anyhow::anyhow!("{name}: {m}"))
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
    anyhow::ensure!(batch_rows > 0, "--batch-rows: give at least 1");
    let end_us = time_arg("END", end)?;
    let start_us = start.map(|s| time_arg("START", s)).transpose()?;
    if let Some(s) = start_us {
        anyhow::ensure!(
            s <= end_us,
            "START ({}) is after END ({})",
            format_time(s),
            format_time(end_us)
        );
    }
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
                "start_ts": start_us.map(format_time),
                "end_ts": format_time(end_us),
                "feature_views": views,
                "batch_rows": batch_rows,
            });
            let report = via_server::post(repo, endpoint, body, &command).await?;
            print_materialized(&report, started, Some(endpoint), out);
            return Ok(report);
        }
    };
    let meta = open_store(repo).await?;
    let engine = OfflineEngine::new(applied.registry, repo);
    let opts = MaterializeOptions {
        start_us: start_us.map(|s| s - 1),
        end_us,
        views,
        incremental: start.is_none(),
        batch_rows,
    };
    let bar = out.progress("materializing", Some(0), "rows");
    let reports = materialize(&engine, &*store, &meta, &opts, Arc::new(Bar(bar.clone()))).await?;
    bar.finish_and_clear();
    let report = quiver_server::materialize_report(&reports, &store.describe());
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

/// `quiver serve`.
pub async fn serve(
    repo: &Path,
    args: ServeArgs,
    workers: Option<(usize, &str)>,
    out: &Output,
) -> anyhow::Result<()> {
    let applied = stored(repo).await?;
    let settings = RepoSettings::load(repo)?;
    let project = applied.registry.project.clone();
    let store = quiver_online::open_store(&settings, repo, &project)?;
    let meta = open_store(repo).await?;
    let config = quiver_server::ServerConfig::from_settings(&settings.server);
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let described = store.describe();
    let ready = match store.health().await {
        Ok(()) => "reachable".to_string(),
        Err(e) => format!("NOT reachable yet ({e}); requests get 503 until it is"),
    };
    let state = quiver_server::AppState::new(
        applied.registry,
        applied.version,
        repo.to_path_buf(),
        store,
        meta,
        config.clone(),
    );
    out.say(format!(
        "serving project '{project}' (registry version {}) on http://{addr}\n  online store: {described}, {ready}\n  worker threads: {}\n  writes need a token: {}\n  try: curl -s -X POST http://{addr}/get-online-features -d '{{\"features\": [\"VIEW:FEATURE\"], \"entities\": {{\"KEY\": [1]}}}}'\n  API docs: http://{addr}/docs",
        applied.version,
        match workers {
            Some((n, "--workers")) => format!("{n} (set by --workers)"),
            Some((n, why)) => format!("{n} ({why}; --workers to change)"),
            None => "from TOKIO_WORKER_THREADS".to_string(),
        },
        if config.token.is_some() { format!("yes ({})", config.token_source) } else { format!("none configured, write endpoints answer 403 (set {})", quiver_server::TOKEN_ENV) },
    ));
    // Commands that find the embedded store locked go through this server (see via_server).
    let _announced = via_server::announce(repo, listener.local_addr()?, &described)
        .with_context(|| format!("cannot write {}/.quiver/server.json", repo.display()))?;
    let (stop_jobs, jobs_stopped) = tokio::sync::oneshot::channel::<()>();
    let jobs = if args.scheduler {
        let scheduler =
            crate::jobs::scheduler_for(repo, &project, Some(Arc::clone(&state.store))).await?;
        out.say(format!(
            "  scheduler: on, as {} (quiver jobs list)",
            scheduler.owner()
        ));
        let repo = repo.to_path_buf();
        Some(tokio::spawn(async move {
            crate::jobs::spawn_loop(&repo, scheduler, async {
                let _ = jobs_stopped.await;
            })
            .await;
        }))
    } else {
        None
    };
    quiver_server::serve(
        listener,
        Arc::clone(&state),
        quiver_server::shutdown_signal(),
    )
    .await?;
    let _ = stop_jobs.send(());
    if let Some(j) = jobs {
        let _ = j.await;
    }
    state.prediction_log.flush().await;
    out.say(format!(
        "stopped (in-flight requests drained, prediction log written to {})",
        state.prediction_log.dir().display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_local_redis;

    #[test]
    fn a_redis_on_this_machine_is_recognized() {
        for local in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://:secret@127.0.0.2:6380/1",
            "redis://user:p%40ss@[::1]:6379",
            "rediss://LOCALHOST:6380",
            "redis+unix:///run/redis.sock",
            "unix:///tmp/redis.sock",
        ] {
            assert!(is_local_redis(local), "{local}");
        }
        for remote in [
            "redis://10.0.0.5:6379",
            "redis://cache.internal:6379",
            "redis://127.0.0.1.example.com",
            "redis://user:127.0.0.1@db:6379",
            "not a url",
        ] {
            assert!(!is_local_redis(remote), "{remote}");
        }
    }
}
