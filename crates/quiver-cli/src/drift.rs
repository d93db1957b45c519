//! `quiver drift`: parses the flags, runs `quiver_monitor::drift::sets::compare` (which opens
//! the two data sets by spec and compares them), prints the table or the JSON report, writes
//! the HTML report and records a model's run.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use quiver_core::repo::RepoSettings;
use quiver_monitor::drift::sets::{self, Opener, Side};
use quiver_monitor::drift::{self, DriftOptions, StatTest};

use crate::output::Output;

#[derive(clap::Args, Debug)]
pub struct DriftArgs {
    /// The reference data: a .parquet or .csv file (or a folder of Parquet files), FILE@START..END
    /// (its rows with event_timestamp in [START, END)), log:MODEL[:VERSION]@START..END (the
    /// prediction log of a time range), model:NAME[:VERSION|@ALIAS] (a sample of the training
    /// split the version was trained on; against a log, its test-split predictions are the
    /// reference of prediction drift too), or service:S@START..END (the point-in-time features
    /// of feature service S, columns view__feature, for entity rows taken from its views'
    /// sources: the join keys and event time of each source row in [START, END), duplicates
    /// removed; features of request-time views are not compared).
    #[arg(long, value_name = "REF")]
    pub reference: String,
    /// The current data, in the same forms as --reference.
    #[arg(long, value_name = "CUR")]
    pub current: String,
    /// Compare only these columns (comma-separated; default: every column of both sets).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub features: Vec<String>,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A feature's test instead of the default: FEATURE=TEST, TEST one of ks, chisquare, z,
    /// wasserstein, jensenshannon, psi, kl_div, hellinger (repeatable).
    #[arg(long = "stattest", value_name = "FEATURE=TEST")]
    pub stattests: Vec<String>,
    /// A feature's drift threshold instead of the test's default: FEATURE=X (repeatable).
    #[arg(long = "threshold", value_name = "FEATURE=X")]
    pub thresholds: Vec<String>,
    /// The data set drifts when at least this share of its columns drift.
    #[arg(long, default_value_t = 0.5, value_name = "SHARE")]
    pub drift_share: f64,
    /// Exit with status 1 when the data set drifts.
    #[arg(long)]
    pub fail_on_drift: bool,
    /// Embedding drift over time: with `week`, each vector (embedding) feature also reports,
    /// for each ISO week of the current set, the cosine similarity of that week's mean
    /// embedding to the reference's mean embedding (JSON: "by_week" on the feature; a section
    /// of the HTML report). Needs the current set's row times: FILE@START..END, log:...,
    /// service:... or a file with an event_timestamp column.
    #[arg(long, value_name = "PERIOD", value_parser = ["week"])]
    pub by: Option<String>,
}

fn split_pair<'a>(flag: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .with_context(|| format!("{flag} {text}: expected FEATURE=VALUE"))
}

/// The options from the flags.
pub fn options(args: &DriftArgs) -> anyhow::Result<DriftOptions> {
    let mut o = DriftOptions {
        drift_share: args.drift_share,
        features: (!args.features.is_empty()).then(|| args.features.clone()),
        by_week: args.by.as_deref() == Some("week"),
        ..DriftOptions::default()
    };
    if !(0.0..=1.0).contains(&args.drift_share) {
        bail!(
            "--drift-share {}: expected a share from 0 to 1",
            args.drift_share
        );
    }
    for s in &args.stattests {
        let (f, t) = split_pair("--stattest", s)?;
        let test = StatTest::parse(t).with_context(|| {
            format!(
                "--stattest {s}: unknown test '{t}' (one of {})",
                StatTest::ALL.map(StatTest::name).join(", ")
            )
        })?;
        o.overrides.entry(f.to_string()).or_default().stattest = Some(test);
    }
    for s in &args.thresholds {
        let (f, x) = split_pair("--threshold", s)?;
        let x: f64 = x
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .with_context(|| format!("--threshold {s}: '{x}' is not a number"))?;
        o.overrides.entry(f.to_string()).or_default().threshold = Some(x);
    }
    Ok(o)
}

fn fmt(x: f64) -> String {
    if x == 0.0 || (1e-3..1e6).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

pub async fn run(repo: &Path, args: DriftArgs, out: &Output) -> anyhow::Result<()> {
    let options = options(&args)?;
    // Files are read from the working directory; registry, models and the log from the repo.
    let opener = Opener::new(repo, Path::new(""));
    let comparison = sets::compare(
        &opener,
        Side::Spec(args.reference.clone()),
        Side::Spec(args.current.clone()),
        options,
    )
    .await?;
    let (report, predictions) = (&comparison.report, &comparison.predictions);
    if let Some(path) = &args.out {
        // The newest run of each quality set, beside the drift (when run in a repository
        // whose sets have run; plain files open no metadata store).
        let quality = if repo.join(quiver_core::repo::MAIN_FILE).is_file() {
            let meta = crate::registry_cmd::open_store(repo).await?;
            meta.latest_quality_runs().await?
        } else {
            Vec::new()
        };
        let quality = (!quality.is_empty()).then_some(quality.as_slice());
        let page = drift::html::render(report, &args.reference, &args.current, quality);
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    out.emit(&comparison.to_json());
    let rows = report
        .features
        .iter()
        .map(|f| {
            let mut notes = Vec::new();
            if f.reference_null_share > 0.0 || f.current_null_share > 0.0 {
                notes.push(format!(
                    "nulls {:.1}% → {:.1}%",
                    f.reference_null_share * 100.0,
                    f.current_null_share * 100.0
                ));
            }
            if !f.new_categories.is_empty() {
                notes.push(format!("new: {}", f.new_categories.join(", ")));
            }
            if !f.missing_categories.is_empty() {
                notes.push(format!("missing: {}", f.missing_categories.join(", ")));
            }
            vec![
                f.name.clone(),
                f.kind.name().to_string(),
                f.stattest.clone(),
                fmt(f.score),
                fmt(f.threshold),
                if f.drifted { "DRIFT" } else { "-" }.to_string(),
                notes.join("; "),
            ]
        })
        .collect();
    out.table(
        &[
            "feature",
            "kind",
            "test",
            "score",
            "threshold",
            "drift",
            "notes",
        ],
        rows,
    );
    for f in &report.features {
        for w in f.embedding.iter().flat_map(|e| &e.by_week) {
            out.say(format!(
                "{} {}: cosine similarity to the reference's mean {} ({} rows)",
                f.name,
                w.week,
                fmt(w.cosine_similarity),
                w.rows
            ));
        }
    }
    for s in &report.skipped {
        out.say(format!("not compared: {} ({})", s.name, s.reason));
    }
    out.say(format!(
        "{}: {} of {} columns drifted (share {:.3}, threshold {}); reference {} rows, current {} rows{}",
        if report.dataset_drift {
            "DATASET DRIFT"
        } else {
            "no dataset drift"
        },
        report.features.iter().filter(|f| f.drifted).count(),
        report.features.len(),
        report.share_drifted,
        report.drift_share,
        report.reference_rows,
        report.current_rows,
        args.out
            .as_ref()
            .map(|p| format!("; report {}", p.display()))
            .unwrap_or_default()
    ));
    if let Some(p) = predictions {
        for f in &p.features {
            out.say(format!(
                "prediction drift, {}: {} {} (threshold {}){}",
                f.name,
                f.stattest,
                fmt(f.score),
                fmt(f.threshold),
                if f.drifted { ": DRIFT" } else { "" }
            ));
        }
    }
    record(repo, &args, &report.to_json(), out).await?;
    if args.fail_on_drift && report.dataset_drift {
        bail!("the data set drifted");
    }
    Ok(())
}

/// A run comparing a model's data (`model:` or `log:`) is stored for `GET
/// /monitoring/drift/{model}` and the drift gauges; a drifted data set is alerted when it is a
/// model's or when --fail-on-drift is given.
async fn record(
    repo: &Path,
    args: &DriftArgs,
    json: &serde_json::Value,
    out: &Output,
) -> anyhow::Result<()> {
    let model = sets::model_of(&args.current).or_else(|| sets::model_of(&args.reference));
    if model.is_none() && !args.fail_on_drift {
        return Ok(());
    }
    let meta = crate::registry_cmd::open_store(repo).await?;
    if let Some(m) = &model {
        meta.record_drift_run(&quiver_registry::DriftRun {
            id: String::new(),
            model: m.clone(),
            reference: args.reference.clone(),
            current: args.current.clone(),
            checked_us: chrono::Utc::now().timestamp_micros(),
            dataset_drift: json["dataset_drift"] == true,
            share_drifted: json["share_drifted"].as_f64().unwrap_or(f64::NAN),
            report: json.clone(),
        })
        .await?;
    }
    let project = RepoSettings::load(repo)?.project.unwrap_or_default();
    if let Some(alert) = quiver_monitor::alerts::drift(
        &project,
        model.as_deref(),
        &args.reference,
        &args.current,
        json,
    ) {
        crate::alerts::deliver(&crate::alerts::alerter(repo, &meta)?, vec![alert], out).await;
    }
    Ok(())
}
