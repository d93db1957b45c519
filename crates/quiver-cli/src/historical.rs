//! `quiver historical`: point-in-time correct training sets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::util::pretty::pretty_format_batches;
use indicatif::ProgressBar;
use quiver_offline::engine::Progress;
use quiver_offline::{HistoricalOptions, OfflineEngine};
use serde_json::json;

use crate::output::{Output, plural, rate};
use crate::registry_cmd::stored;

#[derive(Args, Debug)]
pub struct HistoricalArgs {
    /// Entity rows: a Parquet or CSV file with the join keys and a timestamp column.
    #[arg(long)]
    pub entities: PathBuf,
    /// Features as view:feature or view:*, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "service",
        required_unless_present = "service"
    )]
    pub features: Vec<String>,
    /// A feature service instead of --features.
    #[arg(long)]
    pub service: Option<String>,
    /// Output file: .parquet or .csv; a local path or an s3:// URL (uploaded once complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Name output columns view__feature.
    #[arg(long)]
    pub full_names: bool,
    /// Recompute every view, even one with `offline: {snapshots: daily}` whose snapshot holds
    /// the entity rows' times (by default those rows are read from the snapshot: the same
    /// values, unless source rows arrived late, after the snapshot was written).
    #[arg(long)]
    pub no_snapshots: bool,
    /// The entity rows' timestamp column.
    #[arg(long, default_value = "event_timestamp")]
    pub timestamp_column: String,
    /// Rows of the result to print (0: none).
    #[arg(long, default_value_t = 5)]
    pub sample: usize,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn rows_read(&self, view: &str, rows: usize) {
        self.0.set_message(format!("reading {view}"));
        self.0.inc(rows as u64);
    }
}

/// Runs a retrieval and returns the result.
pub async fn run(repo: &Path, args: HistoricalArgs, out: &Output) -> anyhow::Result<RecordBatch> {
    let ext = args
        .out
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !matches!(ext.as_str(), "parquet" | "csv") {
        bail!(
            "--out {}: use a .parquet or .csv file name",
            args.out.display()
        );
    }
    let applied = stored(repo).await?;
    let engine = OfflineEngine::new(applied.registry, repo);
    let features = match &args.service {
        Some(s) => engine.registry().service_features(s)?.to_vec(),
        None => engine.registry().resolve_features(&args.features)?,
    };
    let started = Instant::now();
    let entities = engine.read_table(&args.entities).await?;
    let opts = HistoricalOptions {
        timestamp_column: args.timestamp_column.clone(),
        full_names: args.full_names,
        snapshots: !args.no_snapshots,
    };
    let pb = out.progress("reading features", None, "rows");
    let bar: Arc<dyn Progress> = Arc::new(Bar(pb.clone()));
    let result = engine
        .historical(
            &entities,
            &features,
            &opts,
            &args.entities.display().to_string(),
            &bar,
        )
        .await;
    pb.finish_and_clear();
    let result = result?;
    write_to(
        &args.out,
        &result,
        &quiver_offline::remote::storage_of(engine.session()),
    )
    .await?;
    let summary = format!(
        "historical: {} x {} (registry version {}) -> {}; {}",
        plural(result.num_rows() as u64, "entity row"),
        plural(features.len() as u64, "feature"),
        applied.version,
        args.out.display(),
        rate(result.num_rows() as u64, started)
    );
    if args.sample > 0 && result.num_rows() > 0 {
        out.say(
            pretty_format_batches(&[result.slice(0, args.sample.min(result.num_rows()))])?
                .to_string(),
        );
    }
    out.say(summary);
    out.emit(&json!({
        "rows": result.num_rows(),
        "features": features.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        "out": args.out,
        "registry_version": applied.version,
        "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(result)
}

/// [`write`], or for an `s3://` URL, the same file written locally first and then uploaded (the
/// object appears only once complete).
pub async fn write_to(
    path: &Path,
    batch: &RecordBatch,
    storage: &quiver_core::yaml::RawStorage,
) -> anyhow::Result<()> {
    let url = path.to_string_lossy();
    if !quiver_offline::remote::is_url(&url) {
        return write(path, batch);
    }
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_owned());
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let local = dir.path().join(name);
    write(&local, batch)?;
    quiver_offline::remote::upload(&local, &url, storage)
        .await
        .map_err(|m| anyhow::anyhow!(m))
}

/// Writes a batch as Parquet (zstd) or CSV, by extension, through a temporary file so that a
/// failure never leaves a half-written output.
pub fn write(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext != "csv" {
        return quiver_offline::parquet_out::write_parquet_file(path, batch)
            .with_context(|| format!("cannot write {}", path.display()));
    }
    let tmp = path.with_extension("tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut w = WriterBuilder::new().with_header(true).build(file);
    w.write(batch)?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
