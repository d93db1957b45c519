//! `quiver models`: the model registry (list, show, promote, rollback, delete, import) and
//! batch scoring of a table with a registered version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use quiver_core::registry::ObjectKind;
use quiver_ml::lightgbm::parse_lightgbm_text;
use quiver_ml::{Encoding, Input, Model, ModelArtifact};
use quiver_registry::{ModelVersion, NewModelVersion};
use serde_json::json;

use crate::output::Output;
use crate::registry_cmd::{open_store, stored};
use crate::train::{importance, write_artifact};

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

/// Parses NAME, NAME:VERSION, NAME@ALIAS.
pub async fn resolve(
    store: &quiver_registry::SqlMetadataStore,
    spec: &str,
) -> anyhow::Result<ModelVersion> {
    if let Some((n, v)) = spec.split_once(':') {
        let v: i64 = v
            .parse()
            .with_context(|| format!("{spec}: the version after ':' must be a number"))?;
        return Ok(store.model_version(n, v).await?);
    }
    if let Some((n, a)) = spec.split_once('@') {
        return Ok(store.model_by_alias(n, a).await?);
    }
    match store.model_by_alias(spec, "champion").await {
        Ok(v) => Ok(v),
        Err(_) => {
            let all = store.model_versions(Some(spec)).await?;
            all.into_iter()
                .last()
                .with_context(|| format!("no model named '{spec}'"))
        }
    }
}

/// Loads a version's model file.
pub fn load_artifact(repo: &Path, v: &ModelVersion) -> anyhow::Result<ModelArtifact> {
    let path = crate::train::artifact_root(repo)
        .join(&v.artifact)
        .join("model.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "model {} version {}: cannot read {}",
            v.name,
            v.version,
            path.display()
        )
    })?;
    ModelArtifact::from_json(&text).with_context(|| format!("{}", path.display()))
}

/// A version's self-contained HTML report (metrics, plots, importance, SHAP summary).
pub fn report_html(repo: &Path, v: &ModelVersion) -> anyhow::Result<String> {
    let dir = crate::train::artifact_root(repo).join(&v.artifact);
    let evaluation: Option<quiver_ml::metrics::Evaluation> =
        match std::fs::read_to_string(dir.join("evaluation.json")) {
            Ok(t) => Some(
                serde_json::from_str(&t)
                    .with_context(|| format!("{}", dir.join("evaluation.json").display()))?,
            ),
            Err(_) => None,
        };
    let bars = |key: &str, field: &str| -> Vec<quiver_ml::report::FeatureBar> {
        let mut b: Vec<_> = v.details[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| quiver_ml::report::FeatureBar {
                        feature: i["feature"].as_str().unwrap_or("").to_string(),
                        value: i[field].as_f64().unwrap_or(0.0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        b.sort_by(|x, y| y.value.total_cmp(&x.value));
        b
    };
    let mut facts = vec![
        (
            "model".to_string(),
            format!("{} version {}", v.name, v.version),
        ),
        ("aliases".to_string(), v.aliases.join(", ")),
        (
            "task / algorithm".to_string(),
            format!("{} / {}", v.task, v.algorithm),
        ),
        (
            "feature service".to_string(),
            format!(
                "{} (hash {})",
                v.feature_service,
                &v.service_hash[..12.min(v.service_hash.len())]
            ),
        ),
        ("created".to_string(), v.created_at.clone()),
    ];
    for k in [
        "label",
        "split",
        "time_range",
        "param_overrides",
        "best_iteration",
        "registry_version",
        "git_commit",
        "imported_from",
    ] {
        if !v.details[k].is_null() {
            facts.push((k.replace('_', " "), v.details[k].to_string()));
        }
    }
    Ok(quiver_ml::report::html(&quiver_ml::report::ReportInput {
        title: format!("Quiver model {} version {}", v.name, v.version),
        facts,
        evaluation: evaluation.as_ref(),
        gain: bars("importance", "gain"),
        splits: bars("importance", "splits"),
        shap: bars("shap_summary", "mean_abs_shap"),
    }))
}

/// Scores entity rows offline with point-in-time features; returns the entity rows (every
/// non-feature column) followed by the scores.
async fn predict_offline(
    repo: &Path,
    v: &ModelVersion,
    entities: &Path,
    timestamp_column: &str,
) -> anyhow::Result<RecordBatch> {
    let artifact = load_artifact(repo, v)?;
    let applied = stored(repo).await?;
    let current = applied
        .registry
        .object_hash(ObjectKind::FeatureService, &v.feature_service);
    if current.as_deref() != Some(v.service_hash.as_str()) {
        bail!(
            "model {} version {} was trained on feature service '{}' as it was then, but the service has changed or is gone since: retrain it (quiver train) or roll back the definitions",
            v.name,
            v.version,
            v.feature_service
        );
    }
    let names: Vec<String> = artifact.inputs.iter().map(|i| i.feature.clone()).collect();
    // A vector's components are several inputs of one feature: each feature is retrieved once
    // (resolve_features drops repeats), then every input finds its feature's column.
    let distinct = applied.registry.resolve_features(&names)?;
    let engine = quiver_offline::OfflineEngine::new(applied.registry, repo);
    let table = engine.read_table(entities).await?;
    let progress: Arc<dyn quiver_offline::engine::Progress> = Arc::new(crate::train::Quiet);
    let set = engine
        .historical(
            &table,
            &distinct,
            &quiver_offline::HistoricalOptions {
                timestamp_column: timestamp_column.to_string(),
                full_names: true,
            },
            &entities.display().to_string(),
            &progress,
        )
        .await?;
    let mut columns = Vec::with_capacity(artifact.inputs.len());
    for input in &artifact.inputs {
        let r = distinct
            .iter()
            .find(|r| r.to_string() == input.feature)
            .with_context(|| format!("input {} was not resolved", input.feature))?;
        let col = set
            .column_by_name(&r.full_name())
            .with_context(|| format!("no column {}", r.full_name()))?;
        columns.push(crate::train::apply_encoding(
            &input.feature,
            col.as_ref(),
            &input.encoding,
        )?);
    }
    let n = set.num_rows();
    let mut row = vec![f64::NAN; columns.len()];
    let preds: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            for (j, c) in columns.iter().enumerate() {
                row[j] = c[i];
            }
            artifact.model.predict(&row)
        })
        .collect();
    let feature_names: Vec<String> = distinct.iter().map(|r| r.full_name()).collect();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (f, a) in set.schema().fields().iter().zip(set.columns()) {
        if !feature_names.contains(f.name()) {
            fields.push(f.as_ref().clone());
            arrays.push(Arc::clone(a));
        }
    }
    match artifact.model.objective() {
        quiver_ml::Objective::Multiclass { num_class } => {
            let name = |k: usize| {
                artifact
                    .classes
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| k.to_string())
            };
            let class: StringArray = preds
                .iter()
                .map(|p| {
                    (0..p.len())
                        .max_by(|a, b| p[*a].total_cmp(&p[*b]))
                        .map(name)
                })
                .collect();
            fields.push(Field::new("class", DataType::Utf8, true));
            arrays.push(Arc::new(class));
            for k in 0..num_class {
                fields.push(Field::new(
                    format!("p_{}", name(k)),
                    DataType::Float64,
                    false,
                ));
                arrays.push(Arc::new(Float64Array::from_iter_values(
                    preds.iter().map(|p| p[k]),
                )));
            }
        }
        _ => {
            fields.push(Field::new("score", DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from_iter_values(
                preds.iter().map(|p| p[0]),
            )));
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// With MLflow tracking on, points the same alias there.
async fn mirror(repo: &Path, name: &str, alias: &str, version: i64) -> anyhow::Result<()> {
    let Some(t) = crate::tracking::tracking(repo)? else {
        return Ok(());
    };
    let (n, a) = (name.to_string(), alias.to_string());
    crate::tracking::off_thread(
        format!("{alias} of {name} now names version {version} in Quiver, but MLflow's alias was not moved"),
        move || crate::tracking::mirror_alias(&t, &n, &a, version),
    )
    .await
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
                crate::train::artifact_root(repo)
                    .join(&v.artifact)
                    .display()
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
            let dir = crate::train::artifact_root(repo).join(&artifact);
            // Another version with identical content may share the directory.
            let shared = store
                .model_versions(Some(&name))
                .await?
                .iter()
                .any(|v| v.artifact == artifact);
            if !shared && dir.is_dir() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
            if let Some(t) = crate::tracking::tracking(repo)? {
                let n = name.clone();
                crate::tracking::off_thread(
                    format!("deleted {name} version {version} in Quiver, but not in MLflow"),
                    move || {
                        if let Some(mv) = t.client.find_version(&n, version)? {
                            t.client.delete_version(&n, &mv)?;
                        }
                        Ok(())
                    },
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
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut ensemble =
                parse_lightgbm_text(&text).with_context(|| format!("{}", file.display()))?;
            let applied = stored(repo).await?;
            let features = applied.registry.service_features(&service)?.to_vec();
            let service_hash = applied
                .registry
                .object_hash(ObjectKind::FeatureService, &service)
                .context("service hash")?;
            // Map each model feature to a service feature by full or short name.
            let mut inputs = Vec::with_capacity(ensemble.feature_names.len());
            for fname in &ensemble.feature_names {
                let found = features
                    .iter()
                    .find(|f| f.full_name() == *fname || f.to_string() == *fname)
                    .or_else(|| {
                        let short: Vec<_> =
                            features.iter().filter(|f| f.feature == *fname).collect();
                        (short.len() == 1).then(|| short[0])
                    });
                let Some(f) = found else {
                    bail!(
                        "{}: model feature '{fname}' is not a feature of service {service} (it has: {})",
                        file.display(),
                        features
                            .iter()
                            .map(|f| f.full_name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                };
                // LightGBM categorical features take integer codes: the value itself.
                inputs.push(Input {
                    feature: f.to_string(),
                    encoding: Encoding::Number,
                });
            }
            ensemble.feature_names = inputs
                .iter()
                .map(|i| i.feature.replace(':', "__"))
                .collect();
            let model = Model::Trees(ensemble);
            let task = match model.objective() {
                quiver_ml::Objective::Binary { .. } => "binary",
                quiver_ml::Objective::Multiclass { .. } => "multiclass",
                quiver_ml::Objective::Regression => "regression",
            };
            let imp = importance(&model);
            let name = name.unwrap_or_else(|| service.clone());
            let artifact = ModelArtifact {
                format: ModelArtifact::FORMAT,
                inputs,
                model,
                classes: vec![],
            };
            let rel = write_artifact(repo, &name, &artifact, None)?;
            let version = store
                .register_model(&NewModelVersion {
                    name: name.clone(),
                    task: task.into(),
                    algorithm: "lightgbm".into(),
                    feature_service: service.clone(),
                    service_hash,
                    artifact: rel,
                    details: json!({
                        "imported_from": file,
                        "registry_version": applied.version,
                        "importance": imp.iter().map(|(n, g, s)| json!({"feature": n, "gain": g, "splits": s})).collect::<Vec<_>>(),
                    }),
                })
                .await?;
            if let Some(alias) = &promote {
                store.promote_model(&name, version, alias).await?;
            }
            if let Some(t) = crate::tracking::tracking(repo)? {
                let v = store.model_version(&name, version).await?;
                let repo = repo.to_path_buf();
                crate::tracking::off_thread(
                    format!("model {name} version {version} is registered in Quiver, but logging it to MLflow failed (re-send it with `quiver models track {name}:{version}`)"),
                    move || crate::tracking::log_version(&repo, &t, &v),
                )
                .await?;
            }
            out.say(format!(
                "imported {} as model {name} version {version} ({task})",
                file.display()
            ));
            out.emit(&json!({"name": name, "version": version}));
        }
        ModelsCommand::Report { model, out: file } => {
            let v = resolve(&store, &model).await?;
            let html = report_html(repo, &v)?;
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
            let batch = predict_offline(repo, &v, &entities, &timestamp_column).await?;
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
            let Some(t) = crate::tracking::tracking(repo)? else {
                bail!(
                    "no MLflow server configured: add `tracking: {{mlflow: http://127.0.0.1:5000}}` to quiver.yaml (or set QUIVER__TRACKING__MLFLOW)"
                );
            };
            let url = t.client.url().to_string();
            let (name, version) = (v.name.clone(), v.version);
            let repo = repo.to_path_buf();
            let l = crate::tracking::off_thread(
                format!("logging model {name} version {version} to MLflow"),
                move || crate::tracking::log_version(&repo, &t, &v),
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
            let artifact = load_artifact(repo, &v)?;
            crate::score::score_csv(&csv, &v.name, &artifact, |line| {
                crate::output::stdout_line(&line.to_string())
            })?;
        }
    }
    Ok(())
}
