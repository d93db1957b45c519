//! `quiver drift`: parses the two data sets and the overrides, runs `quiver_monitor::drift`,
//! prints the table or the JSON report and writes the HTML report.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::ParquetReadOptions;
use datafusion::scalar::ScalarValue;
use quiver_core::repo::RepoSettings;
use quiver_monitor::drift::{self, Dataset, DriftOptions, FeatureOverride, StatTest};

use crate::output::Output;

#[derive(clap::Args, Debug)]
pub struct DriftArgs {
    /// The reference data: a .parquet or .csv file (or a folder of Parquet files), FILE@START..END
    /// (its rows with event_timestamp in [START, END)), or log:MODEL[:VERSION]@START..END (the
    /// prediction log of a time range).
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
        o.overrides
            .entry(f.to_string())
            .or_insert_with(FeatureOverride::default)
            .stattest = Some(test);
    }
    for s in &args.thresholds {
        let (f, x) = split_pair("--threshold", s)?;
        let x: f64 = x
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .with_context(|| format!("--threshold {s}: '{x}' is not a number"))?;
        o.overrides
            .entry(f.to_string())
            .or_insert_with(FeatureOverride::default)
            .threshold = Some(x);
    }
    Ok(o)
}

/// Columns of the prediction log that describe the request, not the model's inputs.
const LOG_META: &[&str] = &["event_timestamp", "model", "version", "arm", "scores"];

/// Opens REF or CUR.
pub async fn open(
    repo: &Path,
    ctx: &datafusion::prelude::SessionContext,
    spec: &str,
) -> anyhow::Result<Dataset> {
    if let Some(rest) = spec.strip_prefix("log:") {
        return open_log(repo, ctx, spec, rest).await;
    }
    for prefix in ["model:", "service:"] {
        if spec.starts_with(prefix) {
            bail!(
                "{spec}: {prefix} data sets are not supported yet; export the data to a Parquet file (quiver historical, or the training set) and pass its path"
            );
        }
    }
    // FILE@START..END: the rows of FILE with `event_timestamp` in [START, END).
    let (file, range) = match spec.rsplit_once('@') {
        Some((f, r)) if r.contains("..") && !Path::new(spec).exists() => (f, Some(r)),
        _ => (spec, None),
    };
    let path = PathBuf::from(file);
    if !path.exists() && !file.contains(['*', '?']) {
        bail!("{spec}: no such file or folder");
    }
    let set = Dataset::open_file(ctx, &path).await?;
    let Some(range) = range else { return Ok(set) };
    let (start, end) = time_range(spec, range)?;
    if set.schema().field_with_name("event_timestamp").is_err() {
        bail!("{spec}: a time range needs an event_timestamp column in {file}");
    }
    let frame = set.frame().clone().filter(in_range(start, end))?;
    let columns = set.columns();
    let keep: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "event_timestamp")
        .collect();
    Ok(Dataset::from_frame(
        frame.select_columns(&keep)?,
        spec.to_string(),
        set.columnar(),
    ))
}

fn time_range(spec: &str, range: &str) -> anyhow::Result<(i64, i64)> {
    let (start, end) = range
        .split_once("..")
        .with_context(|| format!("{spec}: expected a time range START..END"))?;
    let start = quiver_online::parse_time(start).map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
    let end = quiver_online::parse_time(end).map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
    if end <= start {
        bail!("{spec}: the range ends before it starts");
    }
    Ok((start, end))
}

fn in_range(start: i64, end: i64) -> datafusion::logical_expr::Expr {
    let ts = |micros: i64| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(micros),
            Some("UTC".into()),
        ))
    };
    col("event_timestamp")
        .gt_eq(ts(start))
        .and(col("event_timestamp").lt(ts(end)))
}

async fn open_log(
    repo: &Path,
    ctx: &datafusion::prelude::SessionContext,
    spec: &str,
    rest: &str,
) -> anyhow::Result<Dataset> {
    let (model, range) = rest
        .split_once('@')
        .with_context(|| format!("{spec}: expected log:MODEL[:VERSION]@START..END"))?;
    let (start, end) = time_range(spec, range)?;
    let (name, version) = match model.split_once(':') {
        Some((n, v)) => (
            n,
            Some(
                v.parse::<i64>()
                    .with_context(|| format!("{spec}: version '{v}' is not a number"))?,
            ),
        ),
        None => (model, None),
    };
    let settings = RepoSettings::load(repo)?;
    let log = quiver_server::prediction_log::PredictionLogConfig::from_settings(
        settings.server.prediction_log.as_ref(),
        repo,
    );
    let mut dir = log.dir.join(format!("model={name}"));
    if let Some(v) = version {
        dir = dir.join(format!("version={v}"));
    }
    if !dir.is_dir() {
        bail!(
            "{spec}: no prediction log at {} (does the server log model {name}?)",
            dir.display()
        );
    }
    let mut frame = ctx
        .read_parquet(
            format!("{}/", dir.display()),
            ParquetReadOptions::default().table_partition_cols(Vec::new()),
        )
        .await
        .with_context(|| format!("{spec}: cannot read {}", dir.display()))?
        .filter(in_range(start, end))?;
    let keep: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !LOG_META.contains(&n.as_str()))
        .collect();
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    frame = frame.select_columns(&keep)?;
    Ok(Dataset::from_frame(frame, spec.to_string(), true))
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
    let ctx = drift::read::session();
    let reference = open(repo, &ctx, &args.reference)
        .await
        .context("--reference")?;
    let current = open(repo, &ctx, &args.current).await.context("--current")?;
    let report = drift::drift(&reference, &current, &options).await?;
    if let Some(path) = &args.out {
        let page = drift::html::render(&report, &args.reference, &args.current);
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    out.emit(&report.to_json());
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
    if args.fail_on_drift && report.dataset_drift {
        bail!("the data set drifted");
    }
    Ok(())
}
