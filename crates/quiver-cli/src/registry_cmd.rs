//! `plan`, `apply` and `registry ...`.

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use quiver_core::Registry;
use quiver_core::registry::{ObjectKind, suggest};
use quiver_core::repo::{RepoSettings, load_registry};
use quiver_registry::{AppliedRegistry, MetadataStore, SqlMetadataStore};
use serde_json::json;

use crate::output::{Output, plural};

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// List stored objects: entities, sources, views, services or features (default: views).
    List {
        #[arg(default_value = "views", value_parser = ["entities", "sources", "views", "services", "features"])]
        kind: String,
    },
    /// Show one object's definition, lineage (source -> view -> services) and versions.
    Describe {
        /// An entity, source, feature view, feature service, recommender, experiment, quality
        /// set or job name.
        name: String,
    },
    /// List every apply: version, time, objects added / changed / removed.
    History,
}

/// Opens the repository's metadata store (`registry:` in quiver.yaml, `QUIVER__REGISTRY`, or
/// `.quiver/registry.db`).
pub async fn open_store(repo: &Path) -> anyhow::Result<SqlMetadataStore> {
    let settings = RepoSettings::load(repo)?;
    Ok(SqlMetadataStore::open_repo(repo, settings.registry.as_deref()).await?)
}

/// The stored registry, or an error telling to apply first.
pub async fn stored(repo: &Path) -> anyhow::Result<AppliedRegistry> {
    let store = open_store(repo).await?;
    store.current().await?.with_context(|| {
        format!(
            "nothing applied yet in {}: run `quiver --repo {} apply`",
            store.url(),
            repo.display()
        )
    })
}

pub async fn plan(repo: &Path, out: &Output) -> anyhow::Result<()> {
    let defs = load_registry(repo)?;
    let store = open_store(repo).await?;
    let planned = store.plan(&defs).await?;
    out.say(format!(
        "Registry: {} (stored version {})",
        store.url(),
        match planned.base_version {
            0 => "none".to_string(),
            v => v.to_string(),
        }
    ));
    out.say(planned.plan.to_string().trim_end());
    out.emit(&json!({"base_version": planned.base_version, "plan": planned.plan}));
    Ok(())
}

/// Validates and applies; returns the stored version.
pub async fn apply(
    repo: &Path,
    allow_breaking: bool,
    check_sources: bool,
    out: &Output,
) -> anyhow::Result<i64> {
    let defs = load_registry(repo)?;
    if check_sources {
        let pb = out.progress("checking sources", None, "views");
        let checked = quiver_recs::check_against_data(&defs, repo).await;
        pb.finish_and_clear();
        checked.context(
            "apply refused: the definitions do not match their data (nothing was stored)",
        )?;
    }
    let store = open_store(repo).await?;
    let planned = store.plan(&defs).await?;
    let p = &planned.plan;
    out.say(p.to_string().trim_end());
    let version = store.apply_planned(&defs, &planned, allow_breaking).await?;
    if p.is_empty() {
        out.say(format!(
            "Nothing to apply: registry version {version} is current."
        ));
    } else {
        let (a, c, r) = p.counts();
        out.say(format!(
            "Applied registry version {version} to {} ({a} added, {c} changed, {r} removed).",
            store.url()
        ));
    }
    out.emit(&json!({"version": version, "plan": p}));
    Ok(version)
}

pub async fn run(repo: &Path, cmd: RegistryCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::List { kind } => list(&stored(repo).await?.registry, &kind, out),
        RegistryCommand::Describe { name } => describe(repo, &name, out).await,
        RegistryCommand::History => {
            let store = open_store(repo).await?;
            let applies = store.applies().await?;
            out.emit(&json!(applies));
            out.table(
                &["version", "applied at", "added", "changed", "removed"],
                applies
                    .iter()
                    .map(|a| {
                        vec![
                            a.version.to_string(),
                            a.applied_at.clone(),
                            a.counts.0.to_string(),
                            a.counts.1.to_string(),
                            a.counts.2.to_string(),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
    }
}

fn list(r: &Registry, kind: &str, out: &Output) -> anyhow::Result<()> {
    let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match kind {
        "entities" => (
            vec!["entity", "join keys", "views", "description"],
            r.entities
                .values()
                .map(|e| {
                    let views: Vec<&str> = r
                        .views
                        .values()
                        .filter(|v| v.entities.contains(&e.name))
                        .map(|v| v.name.as_str())
                        .collect();
                    vec![
                        e.name.clone(),
                        e.join_keys
                            .iter()
                            .map(|k| format!("{} ({})", k.name, k.value_type))
                            .collect::<Vec<_>>()
                            .join(", "),
                        views.join(", "),
                        e.description.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        "sources" => (
            vec![
                "source",
                "type",
                "location",
                "timestamp",
                "created",
                "views",
            ],
            r.sources
                .values()
                .map(|s| {
                    let views: Vec<&str> = r
                        .views
                        .values()
                        .filter(|v| v.source == s.name)
                        .map(|v| v.name.as_str())
                        .collect();
                    vec![
                        s.name.clone(),
                        s.kind.type_name().into(),
                        s.kind.location(),
                        s.timestamp_field.clone(),
                        s.created_timestamp_field.clone().unwrap_or_default(),
                        views.join(", "),
                    ]
                })
                .collect(),
        ),
        "views" => (
            vec![
                "feature view",
                "entities",
                "source",
                "ttl",
                "features",
                "services",
            ],
            r.views
                .values()
                .map(|v| {
                    let kind = if v.is_aggregation() {
                        "aggregation"
                    } else {
                        "feature"
                    };
                    vec![
                        v.name.clone(),
                        v.entities.join(", "),
                        v.source.clone(),
                        if v.ttl.is_zero() {
                            "unbounded".into()
                        } else {
                            v.ttl.to_string()
                        },
                        plural(v.outputs().len() as u64, kind),
                        r.services_using_view(&v.name).join(", "),
                    ]
                })
                .collect(),
        ),
        "services" => (
            vec!["feature service", "features", "views", "description"],
            r.services
                .values()
                .map(|s| {
                    let mut views: Vec<&str> = s.features.iter().map(|f| f.view.as_str()).collect();
                    views.dedup();
                    vec![
                        s.name.clone(),
                        s.features.len().to_string(),
                        views.join(", "),
                        s.description.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        _ => (
            vec!["feature", "type", "computed as", "services"],
            r.views
                .values()
                .flat_map(|v| {
                    let plain = v.features.iter().map(move |f| {
                        let how = match &f.expr {
                            Some(e) => format!("expr {e}"),
                            None => format!("column {}", f.source_column()),
                        };
                        (v, f.name.clone(), f.value_type, how)
                    });
                    let aggs = v.aggregations.iter().map(move |a| {
                        let what = a
                            .column
                            .clone()
                            .or_else(|| a.expr.clone())
                            .unwrap_or_else(|| "*".into());
                        // As the YAML spells it: count_distinct, time_since_last.
                        let mut how = format!("{}({what}) over {}", a.function.name(), a.window);
                        if let Some(h) = a.half_life {
                            how.push_str(&format!(", half-life {h}"));
                        }
                        if let Some(f) = &a.filter {
                            how.push_str(&format!(" where {f}"));
                        }
                        (v, a.name.clone(), a.value_type, how)
                    });
                    plain.chain(aggs)
                })
                .map(|(v, name, t, how)| {
                    let services: Vec<&str> = r
                        .services
                        .values()
                        .filter(|s| {
                            s.features
                                .iter()
                                .any(|f| f.view == v.name && f.feature == name)
                        })
                        .map(|s| s.name.as_str())
                        .collect();
                    vec![
                        format!("{}:{name}", v.name),
                        t.to_string(),
                        how,
                        services.join(", "),
                    ]
                })
                .collect(),
        ),
    };
    out.emit(&json!({"header": header, "rows": rows}));
    out.table(&header, rows);
    Ok(())
}

async fn describe(repo: &Path, name: &str, out: &Output) -> anyhow::Result<()> {
    let applied = stored(repo).await?;
    let r = &applied.registry;
    let Some(kind) = [
        ObjectKind::FeatureView,
        ObjectKind::FeatureService,
        ObjectKind::Source,
        ObjectKind::Entity,
        ObjectKind::Recommender,
        ObjectKind::Experiment,
        ObjectKind::Quality,
        ObjectKind::Job,
    ]
    .into_iter()
    .find(|k| r.object_json(*k, name).is_some()) else {
        let all: Vec<String> = ObjectKind::ALL.iter().flat_map(|k| r.names(*k)).collect();
        anyhow::bail!(
            "no entity, source, feature view, feature service, recommender, experiment, quality set or job named '{name}'{}",
            suggest(name, all.iter())
        );
    };
    let def = r.object_json(kind, name).expect("found");
    let hash = r.object_hash(kind, name).expect("found");
    let lineage = lineage(r, kind, name);
    let store = open_store(repo).await?;
    let history = store.history(kind, name).await?;
    out.emit(&json!({"kind": kind, "name": name, "hash": hash, "definition": def, "lineage": lineage, "versions": history}));
    out.say(format!("{kind} {name}  (content hash {})", &hash[..12]));
    out.say(format!("\nLineage: {lineage}\n"));
    out.say(serde_json::to_string_pretty(&def)?);
    out.say("");
    out.table(
        &[
            "version",
            "hash",
            "registry version",
            "applied at",
            "removed",
        ],
        history
            .iter()
            .map(|h| {
                vec![
                    h.version.to_string(),
                    h.hash[..12].to_string(),
                    h.registry_version.to_string(),
                    h.applied_at.clone(),
                    h.removed.to_string(),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// `source -> view -> services` around one object.
fn lineage(r: &Registry, kind: ObjectKind, name: &str) -> String {
    let view_line = |v: &quiver_core::FeatureView| {
        let services = r.services_using_view(&v.name);
        format!(
            "source {} -> view {} [{}] -> services [{}]",
            v.source,
            v.name,
            v.entities.join(", "),
            services.join(", ")
        )
    };
    match kind {
        ObjectKind::Quality => {
            let q = &r.quality[name];
            format!(
                "{} -> quality {name} ({} checks, {}, on failure {:?})",
                q.target,
                q.checks.len(),
                q.severity.as_str(),
                q.on_failure
            )
        }
        ObjectKind::Recommender => {
            let rec = &r.recommenders[name];
            format!(
                "source {} -> recommender {name} ({} x {}, {} factors)",
                rec.interactions.source,
                rec.interactions.user,
                rec.interactions.item,
                rec.algorithm.factors
            )
        }
        ObjectKind::Experiment => {
            let e = &r.experiments[name];
            let arms: Vec<String> = e
                .arms
                .iter()
                .map(|a| format!("{} {}", a.arm, a.share))
                .collect();
            format!(
                "recommender {} -> experiment {name} [{}] <- outcomes from source {} ({} / {} within {})",
                e.recommender,
                arms.join(", "),
                e.outcomes.source,
                e.outcomes.click,
                e.outcomes.conversion,
                e.outcomes.window
            )
        }
        ObjectKind::Job => {
            let job = &r.jobs[name];
            let what = match &job.task {
                quiver_core::JobTask::MaterializeIncremental { views } if views.is_empty() => {
                    "materializes every online view".to_string()
                }
                quiver_core::JobTask::MaterializeIncremental { views } => {
                    format!("materializes views [{}]", views.join(", "))
                }
                quiver_core::JobTask::Train { model, service, .. } => {
                    format!("service {service} -> trains model {model}")
                }
                quiver_core::JobTask::Snapshot { views } => {
                    format!("snapshots views [{}] offline", views.join(", "))
                }
                quiver_core::JobTask::Check { names } if names.is_empty() => {
                    "runs every quality set".to_string()
                }
                quiver_core::JobTask::Check { names } => {
                    format!("runs quality sets [{}]", names.join(", "))
                }
                quiver_core::JobTask::RecsTrain { recommender, .. } => {
                    format!("trains recommender {recommender}")
                }
                quiver_core::JobTask::Command(argv) => format!("runs {}", argv.join(" ")),
            };
            let after = if job.depends_on.is_empty() {
                String::new()
            } else {
                format!(" after [{}]", job.depends_on.join(", "))
            };
            format!("job {name} ({}){after}: {what}", job.schedule)
        }
        ObjectKind::FeatureView => view_line(&r.views[name]),
        ObjectKind::FeatureService => {
            let mut views: Vec<&str> = r.services[name]
                .features
                .iter()
                .map(|f| f.view.as_str())
                .collect();
            views.dedup();
            let sources: Vec<String> = views
                .iter()
                .map(|v| format!("{} -> {v}", r.views[*v].source))
                .collect();
            format!("[{}] -> service {name}", sources.join("; "))
        }
        ObjectKind::Source => {
            let lines: Vec<String> = r
                .views
                .values()
                .filter(|v| v.source == name)
                .map(view_line)
                .collect();
            if lines.is_empty() {
                format!("source {name} (no views read it)")
            } else {
                lines.join("; ")
            }
        }
        ObjectKind::Entity => {
            let lines: Vec<String> = r
                .views
                .values()
                .filter(|v| v.entities.iter().any(|e| e == name))
                .map(view_line)
                .collect();
            if lines.is_empty() {
                format!("entity {name} (no views use it)")
            } else {
                lines.join("; ")
            }
        }
    }
}
