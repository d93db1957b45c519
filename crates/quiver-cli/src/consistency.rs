//! `quiver consistency`: online/offline skew, measured by `quiver_monitor::consistency` (a
//! service's online store against the offline engine, or the prediction log against
//! `historical`), printed as a table per feature or as JSON.

use std::path::Path;

use anyhow::{Context, bail};
use quiver_core::repo::RepoSettings;
use quiver_monitor::consistency::{self, Report};
use quiver_monitor::spec::LogTarget;
use quiver_offline::OfflineEngine;

use crate::output::{Output, thousands};
use crate::registry_cmd::{open_store, stored};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["service", "log"])))]
pub struct ConsistencyArgs {
    /// Compare the online store with the offline engine for this feature service, as of each
    /// view's last materialization (its watermark).
    #[arg(long, value_name = "S")]
    pub service: Option<String>,
    /// Compare what /predict served (the prediction log of MODEL, or of one VERSION, for
    /// predictions logged in [START, END)) with the offline engine's historical values for the
    /// same entities at the logged times, input by input as the model saw them. Features of
    /// request-time views are not compared (the log does not keep the request's data).
    #[arg(long, value_name = "MODEL[:VERSION]@START..END")]
    pub log: Option<String>,
    /// Entities compared per view (--service: the same ones every run, the first N by a hash of
    /// the key), or predictions compared per model version (--log: N evenly spaced in time).
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
    let report = match (&args.service, &args.log) {
        (Some(service), _) => {
            let store = quiver_online::open_store(&settings, repo, &project)
                .context("opening the online store")?;
            consistency::service(&engine, &*store, &meta, service, args.sample).await?
        }
        (None, Some(log)) => {
            let target =
                LogTarget::parse(&format!("--log {log}"), log).map_err(anyhow::Error::msg)?;
            let dir =
                quiver_pipeline::prediction_log::dir(settings.server.prediction_log.as_ref(), repo);
            consistency::log(&engine, &meta, repo, &dir, &target, args.sample).await?
        }
        (None, None) => bail!("give --service S or --log MODEL@START..END"),
    };
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
    for v in &report.versions {
        match &v.note {
            Some(note) => out.say(format!(
                "{} version {}: not compared ({note})",
                v.model, v.version
            )),
            None => out.say(format!(
                "{} version {}: {} of {} logged predictions compared",
                v.model,
                v.version,
                thousands(v.compared),
                thousands(v.logged)
            )),
        }
        for n in &v.not_compared {
            out.say(format!("  not compared: {n}"));
        }
    }
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
            if report.versions.is_empty() {
                "missing online"
            } else {
                "missing served"
            },
            "extra",
            "max |diff|",
        ],
        rows,
    );
    let served = if report.versions.is_empty() {
        "online"
    } else {
        "served"
    };
    for d in &report.diffs {
        out.say(format!(
            "  {} {} {}: offline {} {served} {}",
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
