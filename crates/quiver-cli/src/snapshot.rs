//! `quiver snapshot` and `quiver backfill`: views' values as of a time, written to the offline
//! store by `quiver_offline::snapshot`.

use std::path::Path;

use clap::Args;
use quiver_offline::OfflineEngine;
use quiver_offline::snapshot::{
    SnapshotReport, backfill_times, snapshot_and_prune, snapshot_views, write_snapshot,
};
use quiver_online::{format_time, parse_time};
use serde_json::{Value as Json, json};

use crate::output::{Output, plural, thousands};
use crate::registry_cmd::stored;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Views to snapshot (default: every view declaring `offline: {snapshots: daily}`).
    pub views: Vec<String>,
    /// Or every view a feature service reads.
    #[arg(long, conflicts_with = "views")]
    pub service: Option<String>,
    /// The time the values are as of: 2025-06-30, 2025-06-30T12:00:00Z, `now`.
    #[arg(long, default_value = "now")]
    pub as_of: String,
}

#[derive(Args, Debug)]
pub struct BackfillArgs {
    /// Views to backfill (default: every view declaring `offline: {snapshots: daily}`).
    pub views: Vec<String>,
    /// Or every view a feature service reads.
    #[arg(long, conflicts_with = "views")]
    pub service: Option<String>,
    /// The first snapshot time, e.g. 2025-01-01 (values as of 00:00 UTC that day).
    #[arg(long)]
    pub from: String,
    /// The last snapshot time (inclusive).
    #[arg(long)]
    pub to: String,
    /// Time between snapshots: 1d, 12h, 1w.
    #[arg(long, default_value = "1d")]
    pub every: String,
}

/// The views of `service` that hold stored values (request-time views are computed).
fn views_of(engine: &OfflineEngine, service: &str) -> anyhow::Result<Vec<String>> {
    let mut views: Vec<String> = Vec::new();
    for f in engine.registry().service_features(service)? {
        let v = &engine.registry().views[&f.view];
        if !v.is_request() && !views.contains(&f.view) {
            views.push(f.view.clone());
        }
    }
    Ok(views)
}

fn resolve(
    engine: &OfflineEngine,
    views: &[String],
    service: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    Ok(match service {
        Some(s) => views_of(engine, s)?,
        None => snapshot_views(engine, views)?,
    })
}

fn report_json(r: &SnapshotReport, repo: &Path) -> Json {
    json!({
        "view": r.view,
        "version": r.version,
        "as_of": format_time(r.as_of_us),
        "rows": r.rows,
        "skipped": r.skipped,
        "path": r
            .path
            .strip_prefix(&format!("{}/", repo.display()))
            .unwrap_or(&r.path),
    })
}

fn table(reports: &[Json], out: &Output) {
    out.table(
        &["view", "version", "as of", "entities", "file"],
        reports
            .iter()
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
                vec![
                    text("view"),
                    text("version"),
                    text("as_of"),
                    if r["skipped"] == true {
                        "(done before)".into()
                    } else {
                        thousands(r["rows"].as_u64().unwrap_or(0))
                    },
                    text("path"),
                ]
            })
            .collect(),
    );
}

/// `quiver snapshot`.
pub async fn run_snapshot(repo: &Path, args: SnapshotArgs, out: &Output) -> anyhow::Result<()> {
    let as_of = parse_time(&args.as_of).map_err(|m| anyhow::anyhow!("--as-of: {m}"))?;
    let engine = OfflineEngine::new(stored(repo).await?.registry, repo);
    let views = resolve(&engine, &args.views, args.service.as_deref())?;
    let bar = out.progress("snapshot", Some(views.len() as u64), "views");
    let mut reports = Vec::new();
    for v in &views {
        bar.set_message(format!("snapshot of {v}"));
        reports.push(report_json(
            &write_snapshot(&engine, v, as_of, false).await?,
            repo,
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    table(&reports, out);
    out.say(format!(
        "wrote {} as of {} under {}",
        plural(reports.len() as u64, "snapshot"),
        format_time(as_of),
        engine.offline_store()
    ));
    out.emit(&json!({"snapshots": reports}));
    Ok(())
}

/// `quiver backfill`: every snapshot time in the range; finished partitions are skipped, so an
/// interrupted backfill resumes where it stopped.
pub async fn run_backfill(repo: &Path, args: BackfillArgs, out: &Output) -> anyhow::Result<()> {
    let from = parse_time(&args.from).map_err(|m| anyhow::anyhow!("--from: {m}"))?;
    let to = parse_time(&args.to).map_err(|m| anyhow::anyhow!("--to: {m}"))?;
    anyhow::ensure!(
        from <= to,
        "--from ({}) is after --to ({})",
        format_time(from),
        format_time(to)
    );
    let every =
        quiver_core::Duration::parse(&args.every).map_err(|m| anyhow::anyhow!("--every: {m}"))?;
    anyhow::ensure!(!every.is_zero(), "--every: give a positive step, e.g. 1d");
    let engine = OfflineEngine::new(stored(repo).await?.registry, repo);
    let views = resolve(&engine, &args.views, args.service.as_deref())?;
    let times = backfill_times(from, to, every.micros());
    let total = (times.len() * views.len()) as u64;
    let bar = out.progress("backfill", Some(total), "snapshots");
    let mut reports = Vec::new();
    for t in &times {
        for v in &views {
            bar.set_message(format!("{v} as of {}", format_time(*t)));
            reports.push(report_json(
                &write_snapshot(&engine, v, *t, true).await?,
                repo,
            ));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    table(&reports, out);
    let skipped = reports.iter().filter(|r| r["skipped"] == true).count() as u64;
    out.say(format!(
        "backfilled {} ({} for {}), {} finished before and skipped",
        plural(total - skipped, "snapshot"),
        plural(times.len() as u64, "time"),
        plural(views.len() as u64, "view"),
        skipped
    ));
    out.emit(&json!({"snapshots": reports}));
    Ok(())
}

/// A `snapshot` job: today's snapshot (as of now) of `views`, then pruning by `retain`.
pub async fn run_job(repo: &Path, views: &[String]) -> anyhow::Result<Json> {
    let engine = OfflineEngine::new(stored(repo).await?.registry, repo);
    let views = snapshot_views(&engine, views)?;
    let now = chrono::Utc::now().timestamp_micros();
    let (reports, pruned) = snapshot_and_prune(&engine, &views, now).await?;
    Ok(json!({
        "snapshots": reports.iter().map(|r| report_json(r, repo)).collect::<Vec<_>>(),
        "pruned": pruned.len(),
    }))
}
