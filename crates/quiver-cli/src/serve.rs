//! `quiver serve`: the HTTP server over the online store, with the scheduler inside when asked.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use quiver_core::repo::RepoSettings;

use crate::output::Output;
use crate::registry_cmd::{open_store, stored};
use crate::via_server;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (0.0.0.0: every interface, as in the container image).
    #[arg(long, env = "QUIVER_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, env = "QUIVER_PORT", default_value_t = 6566)]
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

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 6566)]
    pub port: u16,
}

/// `quiver ui`: `quiver serve` with its defaults, announcing the web UI's URL first.
pub async fn ui(
    repo: &Path,
    args: UiArgs,
    workers: Option<(usize, &str)>,
    out: &Output,
) -> anyhow::Result<()> {
    let shown = match args.host.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    out.say(format!(
        "Quiver web UI: http://{shown}:{}/ui  (Ctrl-C stops it)",
        args.port
    ));
    let args = ServeArgs {
        host: args.host,
        port: args.port,
        workers: None,
        scheduler: false,
    };
    serve(repo, args, workers, out).await
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
    let config = quiver_server::ServerConfig::from_settings(&settings);
    let log_dir =
        quiver_pipeline::prediction_log::dir(settings.server.prediction_log.as_ref(), repo);
    quiver_offline::remote::store_at(&log_dir.to_string_lossy(), &settings.storage)
        .map_err(|e| anyhow::anyhow!("server.prediction_log.path: {e}"))?;
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
        "serving project '{project}' (registry version {}) on http://{addr}\n  online store: {described}, {ready}\n  worker threads: {}\n  writes need a token: {}\n  try: curl -s -X POST http://{addr}/get-online-features -d '{{\"features\": [\"VIEW:FEATURE\"], \"entities\": {{\"KEY\": [1]}}}}'\n  API docs: http://{addr}/docs\n  web UI: http://{addr}/ui",
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
        Some(tokio::spawn(async move {
            scheduler
                .run_forever(std::time::Duration::from_secs(1), async {
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
    state.exposure_log.flush().await;
    out.say(format!(
        "stopped (in-flight requests drained, prediction log written to {}, A/B exposures to {})",
        state.prediction_log.dir().display(),
        state.exposure_log.dir().display()
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
