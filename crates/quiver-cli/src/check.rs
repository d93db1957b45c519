//! `quiver check` and `quiver check history`: the registry's data-quality sets, run by
//! `quiver_monitor::quality` and printed.

use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use quiver_monitor::quality::{self, ScanProgress, SetReport, Status};
use quiver_offline::OfflineEngine;
use quiver_online::{format_time, parse_time};
use serde_json::{Value, json};

use crate::output::{Output, plural, thousands};
use crate::registry_cmd::{open_store, stored};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub command: Option<CheckCommand>,
    /// Quality sets to run (default: every set of the registry).
    pub names: Vec<String>,
    /// The time freshness and volume are measured against, e.g. 2025-01-31,
    /// 2025-01-31T12:00:00Z or now (default: now). Rows after it still count for the other
    /// checks.
    #[arg(long, value_name = "T")]
    pub as_of: Option<String>,
    /// Also write the results as a self-contained HTML report (opens offline).
    #[arg(long, value_name = "FILE.html")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Past runs of the quality sets (of NAME only when given), newest first, with each check's
    /// status; `--json` gives every run with its results.
    History {
        /// A quality set.
        name: Option<String>,
        /// Most runs shown.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

struct Bar(ProgressBar);

impl ScanProgress for Bar {
    fn rows_scanned(&self, quality: &str, rows: u64) {
        self.0.set_message(format!("checking {quality}"));
        self.0.set_position(rows.max(self.0.position()));
    }
}

/// Runs `quiver check`; returns whether every error-severity check passed (the binary exits 1
/// otherwise).
pub async fn run(repo: &Path, args: CheckArgs, out: &Output) -> anyhow::Result<bool> {
    if let Some(CheckCommand::History { name, limit }) = args.command {
        history(repo, name.as_deref(), limit, out).await?;
        return Ok(true);
    }
    let as_of_us = match &args.as_of {
        Some(t) => parse_time(t).map_err(|m| anyhow::anyhow!("--as-of: {m}"))?,
        None => parse_time("now").map_err(|m| anyhow::anyhow!("{m}"))?,
    };
    let applied = stored(repo).await?;
    let meta = open_store(repo).await?;
    let engine = OfflineEngine::new(applied.registry, repo);
    let bar = out.progress("checking", None, "rows");
    let progress: Arc<dyn ScanProgress> = Arc::new(Bar(bar.clone()));
    let reports = quality::check(
        &engine,
        &meta,
        &args.names,
        as_of_us,
        "check",
        applied.version,
        &progress,
    )
    .await;
    bar.finish_and_clear();
    let reports = reports?;
    print_reports(&reports, out);
    if let Some(path) = &args.out {
        let runs: Vec<_> = reports
            .iter()
            .map(|r| quality::stored_run(r, "check", applied.version))
            .collect();
        std::fs::write(path, quiver_monitor::report::quality_page(&runs))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let alerts =
        quiver_monitor::alerts::check_failed(&engine.registry().project, "check", &reports);
    if !alerts.is_empty() {
        crate::alerts::deliver(&crate::alerts::alerter(repo, &meta)?, alerts, out).await;
    }
    Ok(reports
        .iter()
        .all(|r| r.results.iter().all(|c| c.status != Status::Fail)))
}

fn cols(c: &[String]) -> String {
    if c.is_empty() {
        String::new()
    } else {
        c.join(", ")
    }
}

/// A threshold as one short line: `max_z 4, every 1h, lookback 14d`.
fn short(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k} {s}"),
                Value::Object(o) => format!("{k}: {} declared", o.len()),
                Value::Array(a) => format!("{k}: {} values", a.len()),
                other => format!("{k} {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The table of a `quiver check` run, the failing checks' examples, and the JSON document.
pub fn print_reports(reports: &[SetReport], out: &Output) {
    let mut rows = Vec::new();
    for r in reports {
        for c in &r.results {
            rows.push(vec![
                r.quality.clone(),
                format!("{}", c.index),
                c.check_type.to_string(),
                cols(&c.columns),
                c.status.as_str().to_uppercase(),
                c.message.clone(),
                short(&c.threshold),
                if c.examples.is_empty() {
                    String::new()
                } else {
                    format!("{} below", c.examples.len())
                },
            ]);
        }
    }
    out.table(
        &[
            "quality",
            "#",
            "check",
            "columns",
            "status",
            "observed",
            "threshold",
            "examples",
        ],
        rows,
    );
    for r in reports {
        for c in r.results.iter().filter(|c| !c.examples.is_empty()) {
            out.say(format!(
                "{} #{} {} ({}): failing rows",
                r.quality,
                c.index,
                c.check_type,
                c.status.as_str()
            ));
            for e in &c.examples {
                out.say(format!("  {e}"));
            }
        }
    }
    for r in reports {
        let failed = r
            .results
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let warned = r
            .results
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        out.say(format!(
            "{} on {}: {} rows in {:.2}s, {} passed, {} warned, {} failed (as of {})",
            r.quality,
            r.target,
            thousands(r.rows),
            r.seconds,
            r.results.len() - failed - warned,
            warned,
            failed,
            format_time(r.as_of_us)
        ));
    }
    let failing: usize = reports
        .iter()
        .map(|r| {
            r.results
                .iter()
                .filter(|c| c.status == Status::Fail)
                .count()
        })
        .sum();
    if failing > 0 {
        out.say(format!(
            "{} failed: exit status 1",
            plural(failing as u64, "error-severity check")
        ));
    }
    out.emit(&json!({
        "results": reports.iter().flat_map(|r| r.results.iter().map(move |c| json!({
            "quality": c.quality,
            "target": r.target,
            "index": c.index,
            "type": c.check_type,
            "columns": c.columns,
            "severity": c.severity.as_str(),
            "status": c.status.as_str(),
            "observed": c.observed,
            "threshold": c.threshold,
            "examples": c.examples,
            "message": c.message,
            "violations": c.violations,
        }))).collect::<Vec<_>>(),
        "sets": reports.iter().map(|r| json!({
            "quality": r.quality,
            "target": r.target,
            "status": r.status().as_str(),
            "rows": r.rows,
            "as_of": format_time(r.as_of_us),
            "seconds": r.seconds,
        })).collect::<Vec<_>>(),
    }));
}

async fn history(repo: &Path, name: Option<&str>, limit: i64, out: &Output) -> anyhow::Result<()> {
    anyhow::ensure!(limit > 0, "--limit: give at least 1");
    let meta = open_store(repo).await?;
    if let Some(n) = name
        && let Ok(applied) = stored(repo).await
        && !applied.registry.quality.contains_key(n)
        && meta.quality_runs(Some(n), 1).await?.is_empty()
    {
        anyhow::bail!(
            "no quality set '{n}'{}",
            quiver_core::registry::suggest(n, applied.registry.quality.keys())
        );
    }
    let runs = meta.quality_runs(name, limit).await?;
    let mut rows = Vec::new();
    for run in &runs {
        let failing: Vec<String> = run
            .results
            .iter()
            .filter(|c| c.status != "pass")
            .map(|c| {
                format!(
                    "#{} {}{} {}: {}",
                    c.index,
                    c.check_type,
                    if c.columns.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.columns.join(", "))
                    },
                    c.status,
                    c.message
                )
            })
            .collect();
        rows.push(vec![
            format_time(run.checked_us),
            run.quality.clone(),
            run.target.clone(),
            run.status.to_uppercase(),
            format!(
                "{}/{}",
                run.results.iter().filter(|c| c.status == "pass").count(),
                run.results.len()
            ),
            run.trigger.clone(),
            format_time(run.as_of_us),
            failing.join("\n"),
        ]);
    }
    out.table(
        &[
            "checked at",
            "quality",
            "target",
            "status",
            "passed",
            "trigger",
            "as of",
            "not passed",
        ],
        rows,
    );
    if runs.is_empty() {
        out.say("no quality runs recorded yet: run `quiver check`");
    }
    out.emit(&json!({"runs": runs.iter().map(|r| json!({
        "id": r.id,
        "quality": r.quality,
        "target": r.target,
        "checked_at": format_time(r.checked_us),
        "as_of": format_time(r.as_of_us),
        "trigger": r.trigger,
        "status": r.status,
        "registry_version": r.registry_version,
        "results": r.results,
    })).collect::<Vec<_>>()}));
    Ok(())
}
