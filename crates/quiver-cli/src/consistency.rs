//! `quiver consistency`: online/offline skew, measured by `quiver_monitor::consistency`, printed
//! as a table per feature or as JSON.

use std::path::Path;

use anyhow::{Context, bail};
use quiver_core::repo::RepoSettings;
use quiver_monitor::consistency::{self, Report};
use quiver_offline::OfflineEngine;

use crate::output::{Output, thousands};
use crate::registry_cmd::{open_store, stored};

#[derive(clap::Args, Debug)]
pub struct ConsistencyArgs {
    /// Compare the online store with the offline engine for this feature service, as of each
    /// view's last materialization (its watermark).
    #[arg(long, value_name = "S")]
    pub service: String,
    /// Entities compared per view (the same ones every run: the first N by a hash of the key).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub sample: usize,
    /// Exit with status 1 when any cell differs.
    #[arg(long)]
    pub fail_on_mismatch: bool,
}

pub async fn run(repo: &Path, args: ConsistencyArgs, out: &Output) -> anyhow::Result<()> {
    let applied = stored(repo).await?;
    let meta = open_store(repo).await?;
    let settings = RepoSettings::load(repo)?;
    let project = applied.registry.project.clone();
    let engine = OfflineEngine::new(applied.registry, repo);
    let store =
        quiver_online::open_store(&settings, repo, &project).context("opening the online store")?;
    let report = consistency::service(&engine, &*store, &meta, &args.service, args.sample).await?;
    print(&report, out);
    if args.fail_on_mismatch && report.unequal() > 0 {
        bail!("{} cells differ", thousands(report.unequal()));
    }
    Ok(())
}

fn fmt_diff(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x == 0.0 || (1e-3..1e6).contains(&x.abs()) => format!("{x:.6}"),
        Some(x) => format!("{x:.3e}"),
    }
}

fn print(report: &Report, out: &Output) {
    out.emit(&report.to_json());
    for v in &report.views {
        match (&v.as_of, &v.note) {
            (_, Some(note)) => out.say(format!("{}: not compared ({note})", v.view)),
            (Some(at), None) => out.say(format!(
                "{}: as of {at}, {} of {} entities sampled, {} without an online row{}",
                v.view,
                thousands(v.sampled),
                thousands(v.offline_entities),
                thousands(v.missing_rows),
                if v.newer_online > 0 {
                    format!(", {} with a newer online row", thousands(v.newer_online))
                } else {
                    String::new()
                }
            )),
            (None, None) => {}
        }
    }
    let rows = report
        .features
        .iter()
        .map(|f| {
            vec![
                f.feature.clone(),
                thousands(f.compared),
                thousands(f.equal),
                thousands(f.mismatched),
                thousands(f.missing_online),
                thousands(f.extra),
                fmt_diff(f.max_abs_diff),
            ]
        })
        .collect();
    out.table(
        &[
            "feature",
            "compared",
            "equal",
            "mismatched",
            "missing online",
            "extra",
            "max |diff|",
        ],
        rows,
    );
    for d in &report.diffs {
        out.say(format!(
            "  {} {} {}: offline {} online {}",
            d.class, d.feature, d.entity, d.offline, d.online
        ));
    }
    let unequal = report.unequal();
    out.say(if unequal == 0 {
        format!("{}: every compared cell is equal", report.target)
    } else {
        format!("{}: {} cells differ", report.target, thousands(unequal))
    });
}
