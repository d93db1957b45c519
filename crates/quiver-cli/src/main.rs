//! The `quiver` command: argument parsing and printing that wire the library crates together
//! (the registry, the metadata store, the offline engine, the training pipeline, the server).

mod ab;
mod alerts;
mod check;
mod cluster;
mod consistency;
mod demo;
mod drift;
mod historical;
mod init;
mod jobs;
mod mmap_store;
mod models;
mod online;
mod output;
mod recs;
mod registry_cmd;
mod serve;
mod snapshot;
mod train;
mod via_server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serve::ServeArgs;

#[global_allocator]
static ALLOCATOR: quiver_alloc::SplitAlloc = quiver_alloc::SplitAlloc;

/// Quiver: a feature store and ML serving platform.
///
/// Entities, sources, feature views and feature services are declared in YAML (quiver.yaml and
/// features/*.yaml). The commands, by group:
///   definitions  init, plan, apply, registry (list, describe, history)
///   offline      historical (point-in-time training sets), snapshot, backfill,
///                cluster (scheduler, executor: historical on a Ballista cluster)
///   models       train, models (list, show, promote, rollback, rollout, report, predict,
///                score, import, delete, track)
///   recommenders recs (train, evaluate, tune), ab (report: A/B experiments)
///   online       materialize, materialize-incremental, online (clear), serve (HTTP API),
///                ui (the web UI)
///   operations   scheduler (runs the jobs), jobs (list, history, run, pause, resume, export),
///                check (data-quality checks, check history)
///   monitoring   drift (reference vs current data), consistency (online vs offline values)
///   try it       demo (run, data)
///
/// The typical flow:
///   quiver init my_repo                  a repository with commented examples
///   quiver plan, then quiver apply       check the definitions, store them as a registry version
///   quiver historical --entities labels.parquet --service S --out train.parquet
///   quiver train --service S --labels labels.parquet --label COL --name M --promote champion
///   quiver materialize 2025-01-01 now    latest values into the online store
///   quiver serve                         /get-online-features, /predict, ... on port 6566
///
/// Start with `quiver demo run`: it does all of the above on synthetic data. Every command has
/// --help; the README documents each one and the HTTP API.
#[derive(Parser, Debug)]
#[command(
    name = "quiver",
    version,
    propagate_version = true,
    max_term_width = 100,
    verbatim_doc_comment
)]
struct Cli {
    /// The Quiver repository (the folder with quiver.yaml).
    #[arg(long, global = true, env = "QUIVER_REPO", default_value = ".")]
    repo: PathBuf,
    /// Print only errors (no progress bars, no tables).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new repository: quiver.yaml, features/ with commented examples, .gitignore.
    Init {
        /// Folder to create (may exist, but must not hold a quiver.yaml).
        dir: PathBuf,
        /// Project name (default: the folder's name).
        #[arg(long)]
        project: Option<String>,
    },
    /// Show what `apply` would change in the stored registry, field by field.
    ///
    /// Breaking changes (a feature a service reads is removed or changes type, a service is
    /// removed, ...) are marked; `apply` refuses them without --allow-breaking. Exit code 0.
    Plan,
    /// Validate the definitions against their data and store them as a new registry version.
    ///
    /// Everything is checked first (YAML, references, source files, columns and types, SQL
    /// expressions); then the registry is written in one transaction. A failed apply changes
    /// nothing.
    Apply {
        /// Apply even if the plan has breaking changes.
        #[arg(long)]
        allow_breaking: bool,
        /// Skip reading source schemas (for sources that are not reachable from here).
        #[arg(long)]
        skip_source_check: bool,
    },
    /// Browse the stored registry: list definitions, describe one (lineage, versions), history.
    #[command(subcommand)]
    Registry(registry_cmd::RegistryCommand),
    /// Build a point-in-time correct training set.
    ///
    /// For each entity row and feature, the latest feature value at or before the row's
    /// timestamp and within the view's TTL (windowed aggregations: over the window ending at the
    /// timestamp). Every entity row is returned, in order, with all its columns.
    ///
    /// Example: quiver historical --entities labels.parquet --service churn_v1 --out train.parquet
    Historical(historical::HistoricalArgs),
    /// Write views' values as of a time to the offline store, versioned by each view's hash.
    ///
    /// .quiver/offline/VIEW/version=HASH/date=YYYY-MM-DD/part-0.parquet: each entity's
    /// point-in-time values (the same `historical` gives for that time). Example: quiver
    /// snapshot user_reviews --as-of 2025-06-30
    Snapshot(snapshot::SnapshotArgs),
    /// Write snapshots for every time in a range (resumable: finished partitions are skipped).
    ///
    /// Example: quiver backfill user_reviews --from 2025-01-01 --to 2025-06-30 --every 1d
    Backfill(snapshot::BackfillArgs),
    /// Load the latest feature values with event time in [START, END] into the online store.
    ///
    /// Every view with `online: true` (or --views); windowed aggregations are computed as of
    /// END. Safe to interrupt and re-run: each entity keeps either its old or its new row, and
    /// an older row never replaces a newer one. Example: quiver materialize 2025-01-01 now
    Materialize(online::MaterializeArgs),
    /// Load everything since each view's last materialization (its watermark) up to END.
    ///
    /// The watermark advances only after the view's rows are written. Example: quiver
    /// materialize-incremental now
    MaterializeIncremental(online::IncrementalArgs),
    /// Run the registry's data-quality checks (`quality:` sets) and store the results.
    ///
    /// Each set's checks (schema, not_null, null_share, range, allowed_values, unique,
    /// freshness, volume, sql) run in one scan of its source or view; the table shows each
    /// check's status (pass / warn / fail), what was observed against the threshold, and up to 5
    /// failing rows. Results are kept with history in the metadata store (`quiver check
    /// history`). Exit status 1 when a check of error severity fails. Materialization runs the
    /// checks of the sources it reads first (and stops on a failure unless the set says
    /// `on_failure: warn`).
    ///
    /// Example: quiver check events_checks --as-of 2025-06-30
    Check(check::CheckArgs),
    /// Scheduled jobs: list, history, run now, pause, resume, export to Airflow.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Run the registry's jobs on their schedules, in the foreground, until SIGTERM or Ctrl-C.
    ///
    /// Every run is recorded (quiver jobs history); at most one run of a job at a time, even
    /// with several schedulers on one PostgreSQL registry. `quiver serve --scheduler` does the
    /// same inside the server.
    Scheduler {
        /// Also serve the job metrics (Prometheus GET /metrics, and GET /health) on this port of
        /// 127.0.0.1; `quiver serve --scheduler` exports them on its own /metrics.
        #[arg(long, value_name = "PORT")]
        metrics_port: Option<u16>,
    },
    /// The online store itself: `online clear` empties it for some views.
    #[command(subcommand)]
    Online(online::OnlineCommand),
    /// Serve features and models over HTTP from the online store (Feast's feature-server protocol).
    ///
    /// Reads: POST /get-online-features, /predict, /predict/batch, /recommend,
    /// /recommend/batch, /similar-items; GET /registry/entities,
    /// /registry/sources, /registry/views[/NAME], /registry/services[/NAME], /jobs,
    /// /jobs/{name}/runs, /monitoring/checks, /monitoring/drift/{model},
    /// /experiments/{name}/report (an A/B experiment's report), /api/ui and /api/ui/{*page}
    /// (each web UI page's data as JSON).
    ///
    /// Writes (they need `Authorization: Bearer $QUIVER_SERVER_TOKEN`): POST /push,
    /// /write-to-online-store, /materialize, /materialize-incremental, /online/clear,
    /// /jobs/{name}/run, /models/{name}/promote, /models/{name}/rollback,
    /// /models/{name}/rollout. With --scheduler the server also runs the registry's jobs.
    ///
    /// The web UI is at /ui (registry, lineage, features, models, jobs, monitoring,
    /// recommendations and their experiments).
    ///
    /// Operations: GET /health, /ready, /metrics (Prometheus), /openapi.json, /docs (an
    /// interactive page). Stops on SIGTERM or Ctrl-C after finishing in-flight requests.
    Serve(serve::ServeArgs),
    /// Open the web UI: `quiver serve` on this repository with its defaults (the embedded
    /// online store and the SQLite registry unless quiver.yaml names others), printing the
    /// URL of its pages at /ui.
    Ui(serve::UiArgs),
    /// Train a model on a feature service and register it as a new version.
    ///
    /// Builds a point-in-time training set from the label table (join keys, timestamp, label),
    /// splits it by time (oldest 70% train, 15% validation for early stopping, newest 15% test),
    /// trains, evaluates on the test split and registers the version with its lineage.
    ///
    /// Example: quiver train --service churn_v1 --labels data/labels.parquet --label churned
    /// --name churn --promote champion
    Train(train::TrainArgs),
    /// The model registry: list, show, promote, rollback, rollout, approve, deployments, report,
    /// predict, score, import, delete, track.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Compare a current data set with a reference: per-feature drift, as Evidently's
    /// DataDriftPreset computes it.
    ///
    /// With at most 1,000 reference rows numeric columns get the Kolmogorov-Smirnov test and
    /// categorical ones chi-square (a Z-test for two categories), drift when p < 0.05; above,
    /// the Wasserstein distance (normed by the reference's deviation) and the Jensen-Shannon
    /// distance, drift when >= 0.1. The data set drifts when at least half its columns do.
    ///
    /// Example: quiver drift --reference train.parquet --current last_week.parquet --out r.html
    Drift(drift::DriftArgs),
    /// Measure train/serve skew: the online store against the offline engine.
    ///
    /// For a sample of entities of each view of the service (--sample N, the same entities every
    /// run), the value the online store serves against the value the offline engine computes
    /// as of the view's last materialization (its watermark), compared exactly as the store
    /// encodes them. Per feature: cells compared, equal, mismatched, missing online (offline
    /// has a value, the store none), extra (the store has a value, offline none) and the largest
    /// absolute difference; the first 20 differing cells are listed with their entity.
    ///
    /// With --log MODEL[:VERSION]@START..END, what /predict served instead: each logged
    /// prediction's inputs (the prediction log, --sample N of them per version, evenly spaced
    /// in time) against the offline engine's historical values for the same entity at the
    /// logged time, each recorded as the model saw it (numbers encoded, categories as text);
    /// "missing served" counts predictions made without a value offline has.
    ///
    /// Example: quiver consistency --service churn_v1 --sample 500 --json
    ///
    /// Example: quiver consistency --log churn@2025-06-01..2025-07-01
    Consistency(consistency::ConsistencyArgs),
    /// Recommenders (declared under `recommenders:`): train, evaluate, tune.
    #[command(subcommand)]
    Recs(recs::RecsCommand),
    /// A/B experiments over recommenders (declared under `experiments:`): report.
    #[command(subcommand)]
    Ab(ab::AbCommand),
    /// The end-to-end demo (`demo run`) and its synthetic data set (`demo data`).
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// Run the offline engine on a Ballista cluster: `cluster scheduler`, `cluster executor`.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let out = output::Output::new(cli.quiet, cli.json);
    quiver_offline::set_local_file_store(std::sync::Arc::new(mmap_store::MmapFileStore::default()));
    quiver_offline::engine::set_cluster_connector(quiver_cluster::connect);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let mut serve_workers = None;
    if !matches!(cli.command, Command::Serve(_) | Command::Ui(_)) {
        quiver_alloc::keep_freed_memory();
    }
    if let Command::Serve(_) | Command::Ui(_) = &cli.command {
        serve_workers = match &cli.command {
            Command::Serve(ServeArgs {
                workers: Some(n), ..
            }) => Some((usize::from(*n), "--workers")),
            _ => serve::default_workers(&cli.repo),
        };
        if let Some((n, _)) = serve_workers {
            builder.worker_threads(n);
        }
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(run(cli, serve_workers, &out));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(
    cli: Cli,
    serve_workers: Option<(usize, &str)>,
    out: &output::Output,
) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { dir, project } => init::init(&dir, project.as_deref(), out),
        Command::Plan => registry_cmd::plan(&cli.repo, out).await,
        Command::Apply {
            allow_breaking,
            skip_source_check,
        } => registry_cmd::apply(&cli.repo, allow_breaking, !skip_source_check, out)
            .await
            .map(|_| ()),
        Command::Registry(cmd) => registry_cmd::run(&cli.repo, cmd, out).await,
        Command::Historical(args) => historical::run(&cli.repo, args, out).await.map(|_| ()),
        Command::Materialize(a) => online::run_materialize(
            &cli.repo,
            Some(&a.start),
            &a.end,
            a.views,
            a.batch_rows,
            out,
        )
        .await
        .map(|_| ()),
        Command::MaterializeIncremental(a) => {
            online::run_materialize(&cli.repo, None, &a.end, a.views, a.batch_rows, out)
                .await
                .map(|_| ())
        }
        Command::Online(online::OnlineCommand::Clear { views }) => {
            online::run_clear(&cli.repo, views, out).await
        }
        Command::Check(a) => {
            if !check::run(&cli.repo, a, out).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Jobs(cmd) => jobs::run(&cli.repo, cmd, out).await,
        Command::Snapshot(a) => snapshot::run_snapshot(&cli.repo, a, out).await,
        Command::Backfill(a) => snapshot::run_backfill(&cli.repo, a, out).await,
        Command::Scheduler { metrics_port } => {
            jobs::run_scheduler(&cli.repo, metrics_port, out).await
        }
        Command::Serve(a) => serve::serve(&cli.repo, a, serve_workers, out).await,
        Command::Ui(a) => serve::ui(&cli.repo, a, serve_workers, out).await,
        Command::Train(a) => train::run(&cli.repo, a, out).await.map(|_| ()),
        Command::Models(cmd) => models::run(&cli.repo, cmd, out).await,
        Command::Drift(a) => drift::run(&cli.repo, a, out).await,
        Command::Consistency(a) => consistency::run(&cli.repo, a, out).await,
        Command::Recs(cmd) => recs::run(&cli.repo, cmd, out).await,
        Command::Ab(cmd) => ab::run(&cli.repo, cmd, out).await,
        Command::Demo(cmd) => demo::run(cmd, out).await,
        Command::Cluster(cmd) => cluster::run(cmd, out).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
