//! `quiver models`: the model registry (list, show, promote, rollback, delete, import) and
//! batch scoring of a table with a registered version — the arguments and what is printed; the
//! work is `quiver-pipeline`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use quiver_core::registry::ObjectKind;
use quiver_pipeline::artifacts::{artifact_root, load_artifact};
use quiver_pipeline::tracking::{mirror, off_thread, tracking};
use quiver_pipeline::versions::resolve;
use quiver_registry::ModelVersion;
use serde_json::json;

use crate::output::Output;
use crate::registry_cmd::{open_store, stored};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// A LightGBM text model (`Booster.save_model`).
    Lightgbm,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RolloutMode {
    Off,
    Shadow,
    Canary,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Every model and version, with aliases and headline test metrics.
    List {
        /// Only this model.
        name: Option<String>,
    },
    /// One version in full: lineage (feature service and hash, label, time range, registry
    /// version, git commit), params, metrics, feature importance. NAME or NAME:VERSION or
    /// NAME@ALIAS (default: the champion, else the latest).
    Show { model: String },
    /// Point an alias (champion, challenger, ...) at a version, atomically. Each promotion that
    /// moves the alias is kept in its history, which `rollback` walks back; promoting the
    /// version it names already changes nothing.
    Promote {
        name: String,
        #[arg(value_name = "VERSION")]
        number: i64,
        #[arg(long, default_value = "champion")]
        alias: String,
    },
    /// Move an alias back to the version it named before its last promotion. Promotions stack
    /// and rollbacks pop: after promoting 1, 2, 3, two rollbacks go 3 -> 2 -> 1 (a third is
    /// refused); versions deleted since are skipped.
    Rollback {
        name: String,
        #[arg(long, default_value = "champion")]
        alias: String,
    },
    /// How /predict uses the challenger: off, shadow (scored and compared, not returned) or
    /// canary (a stable share of entities, by a hash of the entity key, get its score).
    Rollout {
        name: String,
        #[arg(long, value_enum)]
        mode: RolloutMode,
        /// Canary share of entities, 0 to 1.
        #[arg(long, default_value_t = 0.1)]
        share: f64,
    },
    /// Approve a deployment that waits for a person (a job's `deploy: {approval: manual}`):
    /// a version awaiting approval is promoted to champion now; one still rolling out is
    /// promoted when its rollout passes. Example: quiver models approve churn 7
    Approve {
        name: String,
        #[arg(value_name = "VERSION")]
        number: i64,
        /// Who approves, in the deployment's record (default: $USER).
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// The deployments of train jobs with `deploy:`, newest first: version, champion then,
    /// status (rejected, rolling_out, awaiting_approval, promoted, rolled_back, superseded)
    /// and the last step; `--json` gives every step.
    Deployments {
        /// Only this model.
        name: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Delete a version (refused while an alias names it).
    Delete {
        name: String,
        #[arg(value_name = "VERSION")]
        number: i64,
    },
    /// Register a model trained elsewhere. Its feature names must be the service's features
    /// (view__feature or feature), in the service's order or any order.
    Import {
        /// The model file.
        file: PathBuf,
        #[arg(long, value_enum, default_value = "lightgbm")]
        format: ImportFormat,
        /// The feature service the model reads.
        #[arg(long)]
        service: String,
        /// Registry name (default: the service's name).
        #[arg(long)]
        name: Option<String>,
        /// Point this alias at the new version.
        #[arg(long)]
        promote: Option<String>,
    },
    /// Write a self-contained HTML report of a version (metrics, ROC / PR / calibration plots,
    /// feature importance, SHAP summary); opens without a network.
    Report {
        /// NAME, NAME:VERSION or NAME@ALIAS.
        model: String,
        /// Output file (default: NAME-vVERSION.html in the current folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Batch scoring offline: point-in-time features for each entity row (as `historical`
    /// builds them), encoded as in training, scored. Writes the entity rows with `score`
    /// (binary, regression) or `class` and `p_<class>` columns (multiclass). With entity
    /// timestamps equal to the last materialization's END, the scores equal what /predict
    /// answers from the online store, bit for bit.
    Predict {
        /// NAME, NAME:VERSION or NAME@ALIAS.
        model: String,
        /// Entity rows: join keys and a timestamp column (CSV or Parquet).
        #[arg(long)]
        entities: PathBuf,
        /// Output file (.parquet or .csv).
        #[arg(long)]
        out: PathBuf,
        /// The entity timestamp column.
        #[arg(long, default_value = "event_timestamp")]
        timestamp_column: String,
    },
    /// Log a version to the MLflow tracking server of `tracking: {mlflow: URL}` (a run with its
    /// params, metrics, model file and report; a registered model version with the same
    /// aliases). `quiver train` does this itself; use it to re-send after MLflow was down.
    Track {
        /// NAME, NAME:VERSION or NAME@ALIAS.
        model: String,
    },
    /// Score a CSV of feature values with a version; prints one JSON line per row,
    /// `{"pred": [...], "contrib": {"view__feature": x, ..., "bias": b}}` (multiclass: a list of
    /// such objects, one per class): TreeSHAP contributions for trees, weight x standardized
    /// value for linear models; they sum to the raw score. Columns are found by name
    /// (view__feature, view:feature or feature; others are ignored), so the CSV that
    /// `historical --out FILE.csv` writes is scored as it is: text is encoded as in training,
    /// true/false are 1/0.
    Score {
        /// NAME, NAME:VERSION or NAME@ALIAS.
        model: String,
        /// CSV file (empty field or nan = missing).
        csv: PathBuf,
    },
}

/// A rollout in a table cell: `off`, `shadow`, `canary 10%`.
fn rollout_label(r: &quiver_registry::Rollout) -> String {
    match r {
        quiver_registry::Rollout::Off => "off".to_string(),
        quiver_registry::Rollout::Shadow => "shadow".to_string(),
        quiver_registry::Rollout::Canary { share, .. } => {
            format!("canary {}%", (share * 1000.0).round() / 10.0)
        }
    }
}

fn metric(v: &ModelVersion, k: &str) -> String {
    v.details["metrics"][k]
        .as_f64()
        .map(|x| format!("{x:.4}"))
        .unwrap_or_default()
}

pub async fn run(repo: &Path, cmd: ModelsCommand, out: &Output) -> anyhow::Result<()> {
    let store = open_store(repo).await?;
    match cmd {
        ModelsCommand::List { name } => {
            let all = store.model_versions(name.as_deref()).await?;
            if all.is_empty() {
                const TRAIN: &str =
                    "train one with `quiver train --service S --labels L --label COL`";
                let Some(name) = name else {
                    out.say(format!("no models registered: {TRAIN}"));
                    out.emit(&json!([]));
                    return Ok(());
                };
                let mut known: Vec<String> = store
                    .model_versions(None)
                    .await?
                    .into_iter()
                    .map(|v| v.name)
                    .collect();
                known.dedup();
                if known.is_empty() {
                    bail!("no model named '{name}': no models are registered ({TRAIN})");
                }
                bail!(
                    "no model named '{name}' (models: {}); `quiver models list` lists every version",
                    known.join(", ")
                );
            }
            let mut rollouts = std::collections::BTreeMap::new();
            for v in &all {
                if !rollouts.contains_key(&v.name) {
                    rollouts.insert(v.name.clone(), store.rollout(&v.name).await?);
                }
            }
            out.table(
                &[
                    "model",
                    "version",
                    "aliases",
                    "rollout",
                    "task",
                    "algorithm",
                    "service",
                    "roc_auc / rmse",
                    "created",
                ],
                all.iter()
                    .map(|v| {
                        vec![
                            v.name.clone(),
                            v.version.to_string(),
                            v.aliases.join(","),
                            // The rollout splits traffic between champion and challenger.
                            if v.aliases
                                .iter()
                                .any(|a| a == "champion" || a == "challenger")
                            {
                                rollout_label(&rollouts[&v.name])
                            } else {
                                String::new()
                            },
                            v.task.clone(),
                            v.algorithm.clone(),
                            v.feature_service.clone(),
                            if v.task == "regression" {
                                metric(v, "rmse")
                            } else if v.task == "binary" {
                                metric(v, "roc_auc")
                            } else {
                                metric(v, "accuracy")
                            },
                            v.created_at.chars().take(19).collect(),
                        ]
                    })
                    .collect(),
            );
            let mut docs = Vec::with_capacity(all.len());
            for v in &all {
                let mut doc = serde_json::to_value(v)?;
                doc["rollout"] = serde_json::to_value(rollouts[&v.name])?;
                docs.push(doc);
            }
            out.emit(&json!(docs));
        }
        ModelsCommand::Show { model } => {
            let v = resolve(&store, &model).await?;
            let applied = stored(repo).await?;
            let now_hash = applied
                .registry
                .object_hash(ObjectKind::FeatureService, &v.feature_service);
            let state = match &now_hash {
                Some(h) if *h == v.service_hash => "matches the registry".to_string(),
                Some(_) => "CHANGED since training: /predict refuses this version".to_string(),
                None => "the service no longer exists: /predict refuses this version".to_string(),
            };
            out.say(format!(
                "model {} version {}{}: {} {} on service {} ({})\nartifact: {}\n",
                v.name,
                v.version,
                if v.aliases.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", v.aliases.join(", "))
                },
                v.task,
                v.algorithm,
                v.feature_service,
                state,
                artifact_root(repo).join(&v.artifact).display()
            ));
            // How /predict splits the model's traffic between champion and challenger.
            let rollout = store.rollout(&v.name).await?;
            let mut rows = vec![vec!["rollout".to_string(), rollout_label(&rollout)]];
            if let Some(m) = v.details["metrics"].as_object() {
                for (k, x) in m {
                    rows.push(vec![
                        format!("test {k}"),
                        x.as_f64()
                            .map(|x| format!("{x:.4}"))
                            .unwrap_or_else(|| x.to_string()),
                    ]);
                }
            }
            if let Some(p) = v.details["params"].as_object() {
                for (k, x) in p {
                    let x = x.as_str().map_or_else(|| x.to_string(), str::to_string);
                    rows.push(vec![format!("param {k}"), x]);
                }
            }
            for k in [
                "best_iteration",
                "train_seconds",
                "registry_version",
                "git_commit",
            ] {
                if !v.details[k].is_null() {
                    rows.push(vec![k.to_string(), v.details[k].to_string()]);
                }
            }
            for (k, x) in [
                ("label", &v.details["label"]),
                ("split", &v.details["split"]),
                ("time_range", &v.details["time_range"]),
            ] {
                if !x.is_null() {
                    rows.push(vec![k.to_string(), x.to_string()]);
                }
            }
            out.table(&["field", "value"], rows);
            if let Some(imp) = v.details["importance"].as_array() {
                out.table(
                    &["feature", "gain", "splits"],
                    imp.iter()
                        .take(15)
                        .map(|i| {
                            vec![
                                i["feature"].as_str().unwrap_or("").to_string(),
                                format!("{:.1}", i["gain"].as_f64().unwrap_or(0.0)),
                                i["splits"].to_string(),
                            ]
                        })
                        .collect(),
                );
            }
            let mut doc = serde_json::to_value(&v)?;
            doc["rollout"] = serde_json::to_value(rollout)?;
            out.emit(&doc);
        }
        ModelsCommand::Promote {
            name,
            number: version,
            alias,
        } => {
            let before = store.promote_model(&name, version, &alias).await?;
            if before == Some(version) {
                out.say(format!(
                    "{alias} of {name} names version {version} already: nothing changed"
                ));
                out.emit(&json!({"name": name, "alias": alias, "version": version, "previous": before, "changed": false}));
                return Ok(());
            }
            mirror(repo, &name, &alias, version).await?;
            out.say(format!(
                "{alias} of {name} -> version {version}{}",
                before
                    .map(|b| format!(
                        " (was {b}; `quiver models rollback {name} --alias {alias}` restores it)"
                    ))
                    .unwrap_or_default()
            ));
            out.emit(&json!({"name": name, "alias": alias, "version": version, "previous": before, "changed": true}));
        }
        ModelsCommand::Rollout { name, mode, share } => {
            let r = match mode {
                RolloutMode::Off => quiver_registry::Rollout::Off,
                RolloutMode::Shadow => quiver_registry::Rollout::Shadow,
                RolloutMode::Canary => quiver_registry::Rollout::canary(share),
            };
            let r = store.set_rollout(&name, r).await?;
            out.say(format!(
                "rollout of {name}: {}",
                match r {
                    quiver_registry::Rollout::Off => "off (champion only)".to_string(),
                    quiver_registry::Rollout::Shadow =>
                        "shadow (challenger scored and compared, champion returned)".to_string(),
                    quiver_registry::Rollout::Canary { share, .. } => format!(
                        "canary ({:.1}% of entities get the challenger)",
                        share * 100.0
                    ),
                }
            ));
            out.emit(&serde_json::to_value(r)?);
        }
        ModelsCommand::Approve {
            name,
            number: version,
            by,
        } => {
            let now = chrono::Utc::now().timestamp_micros();
            let moved = quiver_jobs::deploy::approve(&store, &name, version, &by, now).await?;
            if moved.status == "promoted" {
                mirror(repo, &name, "champion", version).await?;
            }
            out.say(format!("{}: {}", moved.id, moved.reason));
            out.emit(
                &json!({"deployment": moved.id, "status": moved.status, "reason": moved.reason}),
            );
        }
        ModelsCommand::Deployments { name, limit } => {
            let all = store.deployments(name.as_deref(), limit).await?;
            out.emit(&serde_json::to_value(&all)?);
            if all.is_empty() {
                out.say("no deployments yet: a train job with deploy: makes one per new version");
            } else {
                let rows = all
                    .iter()
                    .map(|d| {
                        let last = d.steps.last();
                        vec![
                            d.name.clone(),
                            d.version.to_string(),
                            d.champion_version.map_or("-".into(), |v| v.to_string()),
                            d.status.clone(),
                            quiver_online::format_time(d.started_us),
                            last.and_then(|s| s["reason"].as_str().or(s["step"].as_str()))
                                .unwrap_or("")
                                .to_string(),
                        ]
                    })
                    .collect();
                out.table(
                    &[
                        "model",
                        "version",
                        "champion then",
                        "status",
                        "started",
                        "last step",
                    ],
                    rows,
                );
            }
        }
        ModelsCommand::Rollback { name, alias } => {
            let (from, to) = store.rollback_model(&name, &alias).await?;
            mirror(repo, &name, &alias, to).await?;
            out.say(format!("{alias} of {name}: version {from} -> {to}"));
            out.emit(&json!({"name": name, "alias": alias, "from": from, "to": to}));
        }
        ModelsCommand::Delete {
            name,
            number: version,
        } => {
            let artifact = store.delete_model_version(&name, version).await?;
            // Another version with identical content may share the directory.
            let shared = store
                .model_versions(Some(&name))
                .await?
                .iter()
                .any(|v| v.artifact == artifact);
            quiver_pipeline::artifacts::remove_version_dir(repo, &artifact, shared)?;
            if let Some(t) = tracking(repo)? {
                let n = name.clone();
                off_thread(
                    format!("deleted {name} version {version} in Quiver, but not in MLflow"),
                    move || quiver_pipeline::tracking::delete_version(&t, &n, version),
                )
                .await?;
            }
            out.say(format!("deleted {name} version {version}"));
        }
        ModelsCommand::Import {
            file,
            format: ImportFormat::Lightgbm,
            service,
            name,
            promote,
        } => {
            let applied = stored(repo).await?;
            let imported = quiver_pipeline::import::import_lightgbm(
                repo,
                &store,
                &applied,
                &file,
                &service,
                name,
                promote.as_deref(),
            )
            .await?;
            let (name, version, task) = (imported.name, imported.version, imported.task);
            out.say(format!(
                "imported {} as model {name} version {version} ({task})",
                file.display()
            ));
            out.emit(&json!({"name": name, "version": version}));
        }
        ModelsCommand::Report { model, out: file } => {
            let v = resolve(&store, &model).await?;
            let html = quiver_pipeline::report::report_html(repo, &v)?;
            let file =
                file.unwrap_or_else(|| PathBuf::from(format!("{}-v{}.html", v.name, v.version)));
            std::fs::write(&file, html)
                .with_context(|| format!("cannot write {}", file.display()))?;
            out.say(format!("wrote {}", file.display()));
            out.emit(&json!({"report": file}));
        }
        ModelsCommand::Predict {
            model,
            entities,
            out: file,
            timestamp_column,
        } => {
            let v = resolve(&store, &model).await?;
            let started = std::time::Instant::now();
            let applied = stored(repo).await?;
            let progress = out.pipeline_progress();
            let shown: std::sync::Arc<dyn quiver_pipeline::Progress> = progress.clone();
            let batch = quiver_pipeline::scoring::predict_entities(
                repo,
                applied,
                &v,
                &entities,
                &timestamp_column,
                &shown,
            )
            .await;
            progress.finish();
            let batch = batch?;
            crate::historical::write(&file, &batch)?;
            out.say(format!(
                "scored {} rows with {} version {} -> {} ({:.1} s)",
                crate::output::thousands(batch.num_rows() as u64),
                v.name,
                v.version,
                file.display(),
                started.elapsed().as_secs_f64()
            ));
            out.emit(&json!({"name": v.name, "version": v.version, "rows": batch.num_rows(), "out": file}));
        }
        ModelsCommand::Track { model } => {
            let v = resolve(&store, &model).await?;
            let Some(t) = tracking(repo)? else {
                bail!(
                    "no MLflow server configured: add `tracking: {{mlflow: http://127.0.0.1:5000}}` to quiver.yaml (or set QUIVER__TRACKING__MLFLOW)"
                );
            };
            let url = t.client.url().to_string();
            let (name, version) = (v.name.clone(), v.version);
            let repo = repo.to_path_buf();
            let l = off_thread(
                format!("logging model {name} version {version} to MLflow"),
                move || quiver_pipeline::tracking::log_version(&repo, &t, &v),
            )
            .await?;
            out.say(format!(
                "logged {name} version {version} to MLflow {url}: run {} in experiment {}, model version {}",
                l.run_id, l.experiment_id, l.mlflow_version
            ));
            out.emit(&json!({"name": name, "version": version, "run_id": l.run_id, "experiment_id": l.experiment_id, "mlflow_version": l.mlflow_version}));
        }
        ModelsCommand::Score { model, csv } => {
            let v = resolve(&store, &model).await?;
            let artifact = load_artifact(repo, &v).await?;
            quiver_pipeline::scoring::score_csv(&csv, &v.name, &artifact, |line| {
                crate::output::stdout_line(&line.to_string())
            })?;
        }
    }
    Ok(())
}
