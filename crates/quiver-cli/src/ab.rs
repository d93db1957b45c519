//! `quiver ab ...`: A/B experiments over recommenders. The work (reading exposures and
//! outcomes, the statistics, the HTML page) is `quiver_recs::ab`'s; this wires and prints.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use quiver_recs::ab::{lift_text, rate_text};

use crate::output::{Output, thousands};
use crate::registry_cmd::stored;

#[derive(Subcommand, Debug)]
pub enum AbCommand {
    /// Report an experiment: per arm users, exposures, CTR and CVR with 95% intervals, lifts
    /// against the first arm (the control) with p-values, and the sample-ratio-mismatch check.
    ///
    /// Exposures are what `quiver serve` logged for /recommend (.quiver/exposures); an exposure
    /// is clicked (converted) when its user has an event of the declared click (conversion)
    /// type on one of the exposed items within the declared window, in the declared outcome
    /// source. Intervals are Wilson score intervals and lifts are tested by the pooled
    /// two-proportion z-test, both on effective exposures (exposures over the design effect of
    /// users exposed several times). Exit status 0 even when the split mismatches (the report
    /// says so).
    ///
    /// Example: quiver ab report cf_vs_pop --out cf_vs_pop.html
    Report {
        /// The experiment (declared under `experiments:` and applied).
        name: String,
        /// Also write the report as one self-contained HTML page here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Count exposures and outcomes up to this time (RFC 3339, `2025-01-31`, or `now`, the
        /// default).
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
    },
}

pub async fn run(repo: &Path, cmd: AbCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        AbCommand::Report {
            name,
            out: html,
            as_of,
        } => report(repo, &name, html.as_deref(), as_of.as_deref(), out).await,
    }
}

async fn report(
    repo: &Path,
    name: &str,
    html: Option<&Path>,
    as_of: Option<&str>,
    out: &Output,
) -> anyhow::Result<()> {
    let as_of_us = as_of
        .map(|t| quiver_online::parse_time(t).map_err(|m| anyhow::anyhow!("--as-of: {m}")))
        .transpose()?;
    let applied = stored(repo).await?;
    let pb = out.progress("reading exposures and outcomes", None, "");
    let r = quiver_recs::ab::report(&applied.registry, repo, name, as_of_us).await;
    pb.finish_and_clear();
    let r = r?;
    out.say(format!(
        "Experiment {} on recommender {} (salt '{}'), as of {}: click = '{}', conversion = '{}' in source '{}' within {} of an exposure.",
        r.experiment,
        r.recommender,
        r.salt,
        r.as_of,
        r.click,
        r.conversion,
        r.outcome_source,
        r.window
    ));
    out.table(
        &[
            "arm",
            "share",
            "users",
            "exposures",
            "CTR [95% CI]",
            "CTR lift vs control",
            "CVR [95% CI]",
            "CVR lift vs control",
        ],
        r.arms
            .iter()
            .map(|a| {
                vec![
                    a.arm.clone(),
                    a.share.to_string(),
                    thousands(a.users),
                    thousands(a.exposures),
                    rate_text(&a.ctr),
                    lift_text(a.ctr_lift.as_ref()),
                    rate_text(&a.cvr),
                    lift_text(a.cvr_lift.as_ref()),
                ]
            })
            .collect(),
    );
    let srm = &r.srm;
    out.say(format!(
        "{}: chi-square {:.3} (df {}), p = {:.4} (users {} against expected {}).",
        if srm.mismatch {
            "SAMPLE RATIO MISMATCH (the split is broken: do not trust the lifts)"
        } else {
            "No sample ratio mismatch"
        },
        srm.chi2,
        srm.df,
        srm.p_value,
        r.arms
            .iter()
            .map(|a| a.users.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
        srm.expected_users
            .iter()
            .map(|e| format!("{e:.0}"))
            .collect::<Vec<_>>()
            .join(" / "),
    ));
    out.say(format!("Intervals: {}. Lifts: {}.", r.interval, r.test));
    if r.open_window_exposures > 0 {
        out.say(format!(
            "{} exposures are younger than the {} window: their outcomes may still come.",
            thousands(r.open_window_exposures),
            r.window
        ));
    }
    if r.users_in_several_arms > 0 {
        out.say(format!(
            "{} users were exposed in more than one arm (the salt or shares changed mid-experiment).",
            thousands(r.users_in_several_arms)
        ));
    }
    if r.undeclared_arm_exposures > 0 {
        out.say(format!(
            "{} exposures under arms no longer declared were left out.",
            thousands(r.undeclared_arm_exposures)
        ));
    }
    if let Some(path) = html {
        std::fs::write(path, quiver_recs::ab::html(&r))
            .with_context(|| format!("--out: cannot write {}", path.display()))?;
        out.say(format!("Wrote {}.", path.display()));
    }
    out.emit(&serde_json::to_value(&r)?);
    Ok(())
}
