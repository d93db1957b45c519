//! `quiver recs ...`: the arguments of recommender training, evaluation and tuning, and what
//! they print. The work itself is `quiver_recs`'.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use quiver_core::Registry;
use quiver_core::recommender::Recommender;
use quiver_core::registry::{ObjectKind, suggest};
use quiver_recs::evaluate::{Evaluation, evaluate};
use quiver_recs::split::{SplitBy, split};
use quiver_recs::tune::{Grid, tune};
use quiver_recs::{InteractionLog, RecModel};
use serde_json::json;

use crate::output::{Output, thousands};
use crate::registry_cmd::{open_store, stored};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitKind {
    /// The latest rows by time are held out.
    Time,
    /// (user, item) pairs at random (seeded).
    Random,
}

#[derive(Subcommand, Debug)]
pub enum RecsCommand {
    /// Train a declared recommender (implicit-feedback ALS) and register a new version.
    ///
    /// Reads the recommender's interactions (its declared source, or --interactions FILE),
    /// weights them by event type, decays them by age (half_life) as of --as-of (default: the
    /// latest interaction), sums them per (user, item), fits user and item factors and registers
    /// the version in the model registry (quiver models list / promote / rollback work on it).
    ///
    /// Example: quiver recs train shop_recs --params factors=128,alpha=20 --promote champion
    Train {
        /// The recommender (declared under `recommenders:` and applied).
        name: String,
        /// A Parquet or CSV file of interactions instead of the declared source: the
        /// declaration's user and item columns, and optionally its event type column, a
        /// `weight` column and the source's timestamp column.
        #[arg(long, value_name = "FILE")]
        interactions: Option<PathBuf>,
        /// Override algorithm parameters: factors, regularization, alpha, iterations, seed,
        /// solver (cg | cholesky), cg_steps. Example: --params factors=32,alpha=5
        #[arg(long, value_name = "K=V,...")]
        params: Option<String>,
        /// Train as of this time: later interactions are left out and ages count from it
        /// (RFC 3339, `2025-01-31`, or `now`).
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// Give the new version this alias (e.g. champion).
        #[arg(long, value_name = "ALIAS")]
        promote: Option<String>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Evaluate a recommender version on held-out interactions, against popularity.
    ///
    /// precision@k, MAP@k, NDCG@k and AUC@k as implicit.evaluation.ranking_metrics_at_k
    /// defines them (items seen in training excluded; precision = hits / Σ min(k, test items)),
    /// catalog coverage, diversity and novelty, for the model and for the most popular unseen
    /// items (`baseline`). Test rows naming users or items the model does not know are counted
    /// and left out.
    ///
    /// Example: quiver recs evaluate shop_recs@champion --test data/test.parquet --k 10
    Evaluate {
        /// NAME (its champion, else latest), NAME:VERSION or NAME@ALIAS.
        #[arg(required_unless_present = "model_dir", value_name = "NAME[:VERSION]")]
        spec: Option<String>,
        /// The test interactions: Parquet or CSV with the recommender's user and item columns,
        /// or FILE@START..END, its rows with the source's timestamp in [START, END) (e.g. the
        /// month after the model's --as-of; then pairs the user already had in training are
        /// left out, repeats being no discovery).
        #[arg(long, value_name = "FILE[@START..END]")]
        test: String,
        /// List length.
        #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
        k: i64,
        /// Evaluate the files in this directory (Quiver's recommender layout, e.g. factors
        /// exported from another library) instead of a registered version.
        #[arg(long, value_name = "DIR")]
        model_dir: Option<PathBuf>,
    },
    /// Search factors, regularization and alpha on a validation split; print the grid.
    ///
    /// Each combination is trained on the training rows and scored on the validation rows
    /// (precision, MAP, NDCG and AUC at k), best first. Nothing is registered.
    ///
    /// Example: quiver recs tune shop_recs --factors 32,64 --regularization 0.01,0.1 --alpha 1,10
    Tune {
        /// The recommender.
        name: String,
        /// A Parquet or CSV file of interactions instead of the declared source.
        #[arg(long, value_name = "FILE")]
        interactions: Option<PathBuf>,
        /// How validation rows are chosen.
        #[arg(long, value_enum, default_value = "time")]
        split: SplitKind,
        /// Share of rows held out for validation.
        #[arg(long, default_value_t = 0.2)]
        validation: f64,
        /// Factors to try (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "32,64,128")]
        factors: Vec<u32>,
        /// Regularization values to try.
        #[arg(long, value_delimiter = ',', default_value = "0.01,0.1")]
        regularization: Vec<f64>,
        /// Alpha values to try.
        #[arg(long, value_delimiter = ',', default_value = "1,10,40")]
        alpha: Vec<f64>,
        /// List length of the metrics.
        #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
        k: i64,
        /// Seed of the random split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Interactions as of this time.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
}

pub async fn run(repo: &Path, cmd: RecsCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        RecsCommand::Train {
            name,
            interactions,
            params,
            as_of,
            promote,
            threads,
        } => train(
            repo,
            &name,
            interactions.as_deref(),
            params.as_deref(),
            as_of.as_deref(),
            promote.as_deref(),
            threads.unwrap_or(0),
            out,
        )
        .await
        .map(drop),
        RecsCommand::Evaluate {
            spec,
            test,
            k,
            model_dir,
        } => run_evaluate(repo, spec.as_deref(), &test, k, model_dir.as_deref(), out).await,
        RecsCommand::Tune {
            name,
            interactions,
            split,
            validation,
            factors,
            regularization,
            alpha,
            k,
            seed,
            as_of,
            threads,
        } => {
            let grid = Grid {
                factors,
                regularization,
                alpha,
            };
            let by = match split {
                SplitKind::Time => SplitBy::Time,
                SplitKind::Random => SplitBy::Random(seed),
            };
            let args = TuneArgs {
                interactions,
                by,
                validation,
                grid,
                k,
                as_of,
                threads: threads.unwrap_or(0),
            };
            run_tune(repo, &name, args, out).await
        }
    }
}

fn recommender<'a>(registry: &'a Registry, name: &str) -> anyhow::Result<&'a Recommender> {
    registry.recommenders.get(name).with_context(|| {
        format!(
            "no recommender '{name}' in the applied registry{}; declare it under `recommenders:` and run `quiver apply`",
            suggest(name, registry.recommenders.keys())
        )
    })
}

fn parse_as_of(as_of: Option<&str>) -> anyhow::Result<Option<i64>> {
    as_of
        .map(|t| quiver_online::parse_time(t).map_err(|m| anyhow::anyhow!("--as-of: {m}")))
        .transpose()
}

async fn read_log(
    repo: &Path,
    registry: &Registry,
    rec: &Recommender,
    file: Option<&Path>,
    out: &Output,
) -> anyhow::Result<InteractionLog> {
    let pb = out.progress("reading interactions", None, "rows");
    let r = match file {
        Some(f) => quiver_recs::source::read_file(registry, repo, rec, f).await,
        None => quiver_recs::source::read_source(registry, repo, rec).await,
    };
    pb.finish_and_clear();
    let (log, stats) = r?;
    let skipped = stats.null_ids + stats.unweighted_types;
    out.say(format!(
        "Read {} interaction rows ({} users, {} items){}.",
        thousands(stats.rows as u64),
        thousands(log.users.len() as u64),
        thousands(log.items.len() as u64),
        if skipped > 0 {
            format!(
                "; skipped {} with a null id and {} with an event type not in `weights`",
                thousands(stats.null_ids as u64),
                thousands(stats.unweighted_types as u64)
            )
        } else {
            String::new()
        }
    ));
    Ok(log)
}

fn parse_params(text: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in text
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("--params {part}: write key=value, e.g. factors=64"))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// `quiver recs train` (and the `recs_train` job task): trains, registers and returns the
/// version's summary (what `--json` prints).
#[allow(clippy::too_many_arguments)]
pub async fn train(
    repo: &Path,
    name: &str,
    file: Option<&Path>,
    params: Option<&str>,
    as_of: Option<&str>,
    promote: Option<&str>,
    threads: usize,
    out: &Output,
) -> anyhow::Result<serde_json::Value> {
    let applied = stored(repo).await?;
    let registry = &applied.registry;
    let rec = recommender(registry, name)?;
    let algorithm = quiver_recs::train::with_params(&rec.algorithm, &parse_params(params)?)?;
    let as_of_us = parse_as_of(as_of)?;
    let log = read_log(repo, registry, rec, file, out).await?;
    let data = quiver_recs::interactions::aggregate(
        &log,
        &quiver_recs::train::interaction_rule(rec, as_of_us),
    )?;
    out.say(format!(
        "Training ALS on {} users × {} items ({} interactions, {} rows used): {} factors, regularization {}, alpha {}, {} iterations.",
        thousands(data.users.len() as u64),
        thousands(data.items.len() as u64),
        thousands(data.matrix.nnz() as u64),
        thousands(data.rows_used as u64),
        algorithm.factors,
        algorithm.regularization,
        algorithm.alpha,
        algorithm.iterations
    ));
    let pb = out.progress("ALS", Some(u64::from(algorithm.iterations)), "iterations");
    let bar = pb.clone();
    let model = tokio::task::block_in_place(|| {
        quiver_recs::train::train(rec, &algorithm, &log, data, threads, &mut |i| {
            bar.set_position(u64::from(i))
        })
    });
    pb.finish_and_clear();
    let mut model = model?;
    model.attributes =
        quiver_recs::attributes::read(registry, repo, rec, &model.items, as_of_us).await?;
    if let Some(a) = &model.attributes {
        let names: Vec<&str> = a.columns.iter().map(|c| c.name.as_str()).collect();
        out.say(format!(
            "Item attributes from view '{}': {} of {} items have a row; filterable: {}.",
            a.view,
            thousands(a.items_with_values as u64),
            thousands(a.items as u64),
            names.join(", ")
        ));
    }
    model.content = quiver_recs::content::read(registry, repo, rec, as_of_us).await?;
    if let Some(c) = &model.content {
        let new = c
            .ids
            .ids()
            .iter()
            .filter(|id| model.items.get(id).is_none())
            .count();
        // The HNSW index serving builds, checked against an exact scan on this data.
        let recall = tokio::task::block_in_place(|| {
            quiver_recs::content::ContentIndex::build(c.clone()).recall_at(10, 200)
        });
        out.say(format!(
            "Content vectors from view '{}' (feature '{}', {} numbers): {} items, {} of them new to the factors{}; /similar-items by content answers for each (HNSW recall@10 against an exact scan: {recall:.3}).",
            c.info.view,
            c.info.feature,
            c.vectors.dim,
            thousands(c.ids.len() as u64),
            thousands(new as u64),
            if c.info.skipped > 0 {
                format!(", {} without a vector left out", thousands(c.info.skipped as u64))
            } else {
                String::new()
            }
        ));
    }
    let store = open_store(repo).await?;
    let hash = registry
        .object_hash(ObjectKind::Recommender, name)
        .unwrap_or_default();
    let details = json!({
        "source": if file.is_some() { json!(null) } else { json!(rec.interactions.source) },
        "interactions_file": file.map(|f| f.display().to_string()),
        "registry_version": applied.version,
        "git_commit": quiver_pipeline::artifacts::git_commit(repo),
        "rows_read": log.rows.len(),
    });
    let v = quiver_recs::registry::register(&store, repo, &model, &hash, details).await?;
    if let Some(alias) = promote {
        store.promote_model(&v.name, v.version, alias).await?;
    }
    out.say(format!(
        "Registered recommender {} version {} ({:.2} s of ALS){}.",
        v.name,
        v.version,
        model.info.train_seconds,
        promote.map(|a| format!(", alias {a}")).unwrap_or_default()
    ));
    let summary = json!({
        "name": v.name,
        "version": v.version,
        "artifact": v.artifact,
        "users": model.info.users,
        "items": model.info.items,
        "interactions": model.info.interactions,
        "train_seconds": model.info.train_seconds,
        "params": {
            "factors": model.info.factors,
            "regularization": model.info.regularization,
            "alpha": model.info.alpha,
            "iterations": model.info.iterations,
            "seed": model.info.seed,
            "solver": model.info.solver,
        },
        "alias": promote,
    });
    out.emit(&summary);
    Ok(summary)
}

async fn run_evaluate(
    repo: &Path,
    version: Option<&str>,
    test: &str,
    k: i64,
    model_dir: Option<&Path>,
    out: &Output,
) -> anyhow::Result<()> {
    let k = quiver_recs::model::check_k(k).context("--k")?;
    let applied = stored(repo).await?;
    let (model, label): (RecModel, String) = match (model_dir, version) {
        (Some(dir), _) => (RecModel::load(dir)?, dir.display().to_string()),
        (None, Some(spec)) => {
            let store = open_store(repo).await?;
            let v = quiver_recs::registry::resolve(&store, spec).await?;
            quiver_recs::registry::fetch(repo, &v).await?;
            (
                quiver_recs::registry::load(repo, &v)?,
                format!("{} version {}", v.name, v.version),
            )
        }
        (None, None) => bail!("name a version (NAME, NAME:VERSION, NAME@ALIAS) or --model-dir"),
    };
    let rec = recommender(&applied.registry, &model.info.recommender)?;
    let (log, ranged) = quiver_recs::source::read_test(&applied.registry, repo, rec, test).await?;
    let pb = out.progress("evaluating", None, "users");
    let e: Evaluation = tokio::task::block_in_place(|| evaluate(&model, &log, k, ranged));
    pb.finish_and_clear();
    if e.model.ranking.users == 0 {
        bail!(
            "{test}: none of the {} test rows names a user and an item the model knows{}",
            log.rows.len(),
            if ranged {
                " in a pair it was not trained on"
            } else {
                ""
            }
        );
    }
    out.say(format!(
        "{label} on {test} ({} test rows, {} with an unknown user or item{} left out; {} users):",
        thousands(e.test_rows as u64),
        thousands(e.unknown_rows as u64),
        if ranged { " or seen in training" } else { "" },
        thousands(e.model.ranking.users as u64)
    ));
    let row = |what: &str, s: &quiver_recs::evaluate::Scores| {
        vec![
            what.to_string(),
            format!("{:.4}", s.ranking.precision),
            format!("{:.4}", s.ranking.map),
            format!("{:.4}", s.ranking.ndcg),
            format!("{:.4}", s.ranking.auc),
            format!("{:.4}", s.beyond.coverage),
            format!("{:.4}", s.beyond.diversity),
            format!("{:.2}", s.beyond.novelty),
        ]
    };
    let (p, m, n, a) = (
        format!("precision@{k}"),
        format!("map@{k}"),
        format!("ndcg@{k}"),
        format!("auc@{k}"),
    );
    out.table(
        &["", &p, &m, &n, &a, "coverage", "diversity", "novelty"],
        vec![row("model", &e.model), row("popularity", &e.baseline)],
    );
    out.emit(&e.to_json());
    Ok(())
}

struct TuneArgs {
    interactions: Option<PathBuf>,
    by: SplitBy,
    validation: f64,
    grid: Grid,
    k: i64,
    as_of: Option<String>,
    threads: usize,
}

async fn run_tune(repo: &Path, name: &str, a: TuneArgs, out: &Output) -> anyhow::Result<()> {
    let k = quiver_recs::model::check_k(a.k).context("--k")?;
    let applied = stored(repo).await?;
    let registry = &applied.registry;
    let rec = recommender(registry, name)?;
    let as_of_us = parse_as_of(a.as_of.as_deref())?;
    let log = read_log(repo, registry, rec, a.interactions.as_deref(), out).await?;
    let (train_log, valid_log) = split(&log, a.by, a.validation)?;
    let n = a.grid.combinations().len() as u64;
    let pb = out.progress("tuning", Some(n), "combinations");
    let bar = pb.clone();
    let started = Instant::now();
    let rows = tokio::task::block_in_place(|| {
        tune(
            rec,
            &rec.algorithm,
            &train_log,
            &valid_log,
            &a.grid,
            k,
            as_of_us,
            a.threads,
            &mut |i, _| bar.set_position(i as u64),
        )
    });
    pb.finish_and_clear();
    let rows = rows?;
    out.say(format!(
        "{} combinations on {} training and {} validation rows ({:?} split) in {:.1} s, best first:",
        rows.len(),
        thousands(train_log.rows.len() as u64),
        thousands(valid_log.rows.len() as u64),
        a.by,
        started.elapsed().as_secs_f64()
    ));
    let (p, m, nd, au) = (
        format!("precision@{k}"),
        format!("map@{k}"),
        format!("ndcg@{k}"),
        format!("auc@{k}"),
    );
    out.table(
        &[
            "factors",
            "regularization",
            "alpha",
            &p,
            &m,
            &nd,
            &au,
            "seconds",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.factors.to_string(),
                    r.regularization.to_string(),
                    r.alpha.to_string(),
                    format!("{:.4}", r.precision),
                    format!("{:.4}", r.map),
                    format!("{:.4}", r.ndcg),
                    format!("{:.4}", r.auc),
                    format!("{:.2}", r.seconds),
                ]
            })
            .collect(),
    );
    if let Some(best) = rows.first() {
        out.say(format!(
            "Best: --params factors={},regularization={},alpha={}",
            best.factors, best.regularization, best.alpha
        ));
    }
    out.emit(&json!({"k": k, "grid": rows}));
    Ok(())
}
