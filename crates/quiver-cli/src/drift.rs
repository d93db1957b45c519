//! `quiver drift`: parses the two data sets and the overrides, runs `quiver_monitor::drift`,
//! prints the table or the JSON report and writes the HTML report.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::ParquetReadOptions;
use datafusion::scalar::ScalarValue;
use quiver_core::repo::RepoSettings;
use quiver_monitor::drift::{self, Dataset, DriftOptions, StatTest};

use crate::output::Output;

#[derive(clap::Args, Debug)]
pub struct DriftArgs {
    /// The reference data: a .parquet or .csv file (or a folder of Parquet files), FILE@START..END
    /// (its rows with event_timestamp in [START, END)), log:MODEL[:VERSION]@START..END (the
    /// prediction log of a time range), or model:NAME[:VERSION|@ALIAS] (a sample of the training
    /// split the version was trained on; against a log, its test-split predictions are the
    /// reference of prediction drift too).
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
    if let Some(model) = spec.strip_prefix("model:") {
        let path = model_file(
            repo,
            spec,
            model,
            quiver_pipeline::reference::reference_file,
        )
        .await?;
        return Ok(Dataset::from_frame(
            Dataset::open_file(ctx, &path).await?.frame().clone(),
            spec.to_string(),
            true,
        ));
    }
    if spec.starts_with("service:") {
        bail!(
            "{spec}: service: data sets are not supported yet; export the data to a Parquet file (quiver historical --service S) and pass its path"
        );
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

/// A file of the artifact directory of the version `model` (NAME, NAME:VERSION or NAME@ALIAS)
/// names, written at training ([`quiver_pipeline::reference`]).
async fn model_file(
    repo: &Path,
    spec: &str,
    model: &str,
    file: fn(&Path) -> PathBuf,
) -> anyhow::Result<PathBuf> {
    let store = crate::registry_cmd::open_store(repo).await?;
    let v = quiver_pipeline::versions::resolve(&store, model)
        .await
        .with_context(|| spec.to_string())?;
    let path = file(&quiver_pipeline::artifacts::version_dir(repo, &v));
    if !path.is_file() {
        bail!(
            "{spec}: model {} version {} has no drift reference ({} is missing): it was trained or imported before Quiver stored one; retrain it",
            v.name,
            v.version,
            path.display()
        );
    }
    Ok(path)
}

/// Prediction drift: the `score` (and `class`) of `current` (a prediction log) against the
/// test-split predictions of the version `reference` (`model:...`) names.
async fn prediction_drift(
    repo: &Path,
    ctx: &datafusion::prelude::SessionContext,
    reference: &str,
    current: &Dataset,
    options: &DriftOptions,
) -> anyhow::Result<Option<drift::DriftReport>> {
    let Some(model) = reference.strip_prefix("model:") else {
        return Ok(None);
    };
    let columns = current.columns();
    if !columns.iter().any(|c| c == "score") {
        return Ok(None);
    }
    let path = model_file(
        repo,
        reference,
        model,
        quiver_pipeline::reference::predictions_file,
    )
    .await?;
    let reference = Dataset::open_file(ctx, &path).await?;
    // A binary or regression model logs no class: compare the score alone.
    let class_logged =
        reference.columns().iter().any(|c| c == "class") && columns.iter().any(|c| c == "class");
    let keep: Vec<&str> = if class_logged {
        vec!["score", "class"]
    } else {
        vec!["score"]
    };
    let pick = |d: &Dataset, label: String| -> anyhow::Result<Dataset> {
        Ok(Dataset::from_frame(
            d.frame().clone().select_columns(&keep)?,
            label,
            true,
        ))
    };
    let r = pick(&reference, format!("{model} test predictions"))?;
    let c = pick(current, "current predictions".into())?;
    // --features names inputs; the predictions are compared whole (overrides of score or
    // class still apply).
    let options = DriftOptions {
        features: None,
        overrides: options.overrides.clone(),
        ..DriftOptions::default()
    };
    Ok(Some(drift::drift(&r, &c, &options).await?))
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
    let mut options = options(&args)?;
    let ctx = drift::read::session();
    let reference = open(repo, &ctx, &args.reference)
        .await
        .context("--reference")?;
    let current = open(repo, &ctx, &args.current).await.context("--current")?;
    let predictions = prediction_drift(repo, &ctx, &args.reference, &current, &options).await?;
    // Against a model's reference, the scores are compared as prediction drift, not as inputs.
    let current = if predictions.is_some() {
        let inputs: Vec<String> = current
            .columns()
            .into_iter()
            .filter(|c| c != "score" && c != "class")
            .collect();
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Dataset::from_frame(
            current.frame().clone().select_columns(&inputs)?,
            args.current.clone(),
            current.columnar(),
        )
    } else {
        current
    };
    // Tests declared on features (`drift:` in the registry) for the columns compared, where
    // no flag names them.
    if let Ok(applied) = crate::registry_cmd::stored(repo).await {
        let (rc, cc) = (reference.columns(), current.columns());
        for (column, declared) in drift::declared::overrides(&applied.registry) {
            let selected = options
                .features
                .as_ref()
                .is_none_or(|f| f.contains(&column));
            if !(selected && rc.contains(&column) && cc.contains(&column)) {
                continue;
            }
            let o = options.overrides.entry(column).or_default();
            o.stattest = o.stattest.or(declared.stattest);
            o.threshold = o.threshold.or(declared.threshold);
        }
    }
    let report = drift::drift(&reference, &current, &options).await?;
    if let Some(path) = &args.out {
        let page = drift::html::render(&report, &args.reference, &args.current);
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut json = report.to_json();
    if let Some(p) = &predictions {
        json["prediction_drift"] = p.to_json();
    }
    out.emit(&json);
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
    if let Some(p) = &predictions {
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
    let model =
        crate::alerts::model_of(&args.current).or_else(|| crate::alerts::model_of(&args.reference));
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
