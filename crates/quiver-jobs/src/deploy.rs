//! The deployment pipeline of a `train` job with `deploy:` ([`quiver_core::Deploy`]).
//!
//! 1. [`start`], after the train task succeeded: the task's summary carries the new version's
//!    test metrics and the champion's on the same test rows (`baseline`). The gate compares
//!    `gate.metric` in its good direction; a version that does not gain `min_gain` is
//!    `rejected` (it stays registered, with no alias). One that passes becomes `challenger`,
//!    the rollout (shadow or canary) starts, and the decision is due `promote_after` later.
//!    With no champion yet, the new version is promoted at once.
//! 2. [`advance`], on every scheduler tick: a rollout whose time has come is judged on the
//!    challenger's tally ([`quiver_registry::RolloutStats`], summed from every server): at
//!    least `min_predictions` rows scored, a disagreement share at most `max_disagreement`,
//!    at most `max_errors` errors. Passing, it is promoted to `champion` and the rollout ends
//!    (or, with `approval: manual`, it waits in `awaiting_approval`); failing, the rollout
//!    ends, the champion stays, and an alert says why.
//! 3. [`approve`] (`quiver models approve NAME VERSION`): promotes a version awaiting approval,
//!    or records the approval of one still rolling out.
//!
//! Every step is appended to the deployment's record and counted in
//! `model_deployments_total{model_name,version,status}`. The alias moves and the rollout
//! change are idempotent, so a scheduler that dies between them and the record is safe to
//! repeat. `/predict` never fails while they happen: the server ignores a challenger equal to
//! the champion, and counts (never returns) a challenger that cannot be loaded.

use quiver_core::{Approval, Deploy, DeployRollout, Job, job::metric_higher_is_better};
use quiver_registry::deployments::{Deployment, UNKNOWN_VERSION, deployment_id};
use quiver_registry::{Rollout, SqlMetadataStore};
use serde_json::{Value as Json, json};

use crate::{Alerter, TaskRunner};

/// Where a deployment step reads and writes, and whom it tells.
pub struct Context<'a> {
    /// The metadata store.
    pub meta: &'a SqlMetadataStore,
    /// Where alerts go.
    pub alerter: &'a Alerter,
    /// The project, in alerts.
    pub project: &'a str,
    /// Told of every alias move (MLflow mirroring).
    pub hooks: &'a dyn TaskRunner,
}

/// Tells the runner an alias moved (MLflow mirroring); a failure is reported, not fatal.
async fn alias_moved(hooks: &dyn TaskRunner, name: &str, alias: &str, version: i64) {
    if let Err(e) = hooks.alias_moved(name, alias, version).await {
        eprintln!("quiver scheduler: {alias} of {name} moved to version {version}, but: {e}");
    }
}

fn count(name: &str, version: i64, status: &'static str) {
    metrics::counter!("model_deployments_total", "model_name" => name.to_string(), "version" => version.to_string(), "status" => status)
        .increment(1);
}

fn step(at_us: i64, step: &str, mut fields: Json) -> Json {
    if let Some(o) = fields.as_object_mut() {
        o.insert("at_us".into(), json!(at_us));
        o.insert("step".into(), json!(step));
    }
    fields
}

fn metric_of(metrics: &Json, metric: &str) -> Option<f64> {
    metrics.get(metric).and_then(Json::as_f64)
}

/// Starts the deployment of the version a train task registered. `summary` is the task's
/// summary: `{"model", "version", "metrics": {...}, "baseline": {"version", "metrics"} | null}`.
/// Returns the deployment's record as JSON (for the run's summary).
pub async fn start(
    ctx: &Context<'_>,
    job: &Job,
    deploy: &Deploy,
    summary: &Json,
    now_us: i64,
) -> Result<Json, String> {
    let (meta, alerter, project, hooks) = (ctx.meta, ctx.alerter, ctx.project, ctx.hooks);
    let name = summary["model"]
        .as_str()
        .ok_or("the train task's summary names no model")?
        .to_string();
    let version = summary["version"]
        .as_i64()
        .ok_or("the train task's summary names no version")?;
    let metric = deploy.gate.metric.as_str();
    let higher = metric_higher_is_better(metric).ok_or_else(|| format!("gate metric {metric}"))?;
    let new = metric_of(&summary["metrics"], metric).ok_or_else(|| {
        format!(
            "the gate's metric {metric} was not computed for model {name} version {version} (it has {}): choose a metric of its task",
            summary["metrics"]
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        )
    })?;
    let baseline = summary.get("baseline").filter(|b| !b.is_null());
    let champion_version = baseline.and_then(|b| b["version"].as_i64());
    let mut steps = vec![step(
        now_us,
        "evaluated",
        json!({"metric": metric, "challenger": new, "champion": baseline.and_then(|b| metric_of(&b["metrics"], metric)), "champion_version": champion_version}),
    )];
    let policy = serde_json::to_value(deploy).map_err(|e| e.to_string())?;
    let mut record = Deployment {
        id: deployment_id(&name, version),
        name: name.clone(),
        version,
        champion_version,
        job: job.name.clone(),
        status: String::new(),
        policy,
        started_us: now_us,
        decide_us: now_us,
        errors_at_start: 0,
        approved_by: None,
        steps: vec![],
        updated_us: now_us,
    };
    let fail = |e: quiver_registry::Error| e.to_string();
    let Some(b) = baseline else {
        // The first version of a model: nothing to compare with or against.
        meta.promote_model(&name, version, "champion")
            .await
            .map_err(fail)?;
        alias_moved(hooks, &name, "champion", version).await;
        steps.push(step(
            now_us,
            "promoted",
            json!({"reason": "no champion yet: the first version is promoted"}),
        ));
        record.status = "promoted".into();
        record.steps = steps;
        meta.create_deployment(&record).await.map_err(fail)?;
        count(&name, version, "promoted");
        return Ok(serde_json::to_value(&record).expect("serializes"));
    };
    let old = metric_of(&b["metrics"], metric).ok_or_else(|| {
        format!("the champion's {metric} on the new test rows is missing from the summary")
    })?;
    let gain = if higher { new - old } else { old - new };
    let passed = gain >= deploy.gate.min_gain;
    steps.push(step(
        now_us,
        if passed { "gate_passed" } else { "gate_failed" },
        json!({"metric": metric, "gain": gain, "min_gain": deploy.gate.min_gain}),
    ));
    if !passed {
        record.status = "rejected".into();
        record.steps = steps;
        meta.create_deployment(&record).await.map_err(fail)?;
        count(&name, version, "rejected");
        alerter.notify(json!({
            "alert": "deployment_rejected",
            "project": project,
            "job": job.name,
            "model": name,
            "version": version,
            "text": format!(
                "Quiver job {}: model {name} version {version} was not deployed: {metric} {new:.4} against the champion's (version {}) {old:.4}, a gain of {gain:.4} below the gate's {}",
                job.name,
                champion_version.unwrap_or_default(),
                deploy.gate.min_gain
            ),
        }))
            .await;
        return Ok(serde_json::to_value(&record).expect("serializes"));
    }
    meta.promote_model(&name, version, "challenger")
        .await
        .map_err(fail)?;
    alias_moved(hooks, &name, "challenger", version).await;
    let rollout = match deploy.rollout {
        DeployRollout::Shadow => Rollout::Shadow,
        DeployRollout::Canary(share) => Rollout::canary(share),
    };
    let stored = meta.set_rollout(&name, rollout).await.map_err(fail)?;
    record.errors_at_start = meta
        .rollout_stats(&name, UNKNOWN_VERSION)
        .await
        .map_err(fail)?
        .errors;
    record.decide_us = now_us + deploy.promote_after.micros();
    steps.push(step(
        now_us,
        "rollout_started",
        json!({"rollout": stored, "decide_at_us": record.decide_us}),
    ));
    record.status = "rolling_out".into();
    record.steps = steps;
    meta.create_deployment(&record).await.map_err(fail)?;
    count(&name, version, "rolling_out");
    Ok(serde_json::to_value(&record).expect("serializes"))
}

/// One deployment that [`advance`] or [`approve`] moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// `NAME@VERSION`.
    pub id: String,
    /// Its new status.
    pub status: String,
    /// Why.
    pub reason: String,
}

/// Judges every rollout whose decision is due at `now_us`; returns what moved.
pub async fn advance(ctx: &Context<'_>, now_us: i64) -> quiver_registry::Result<Vec<Moved>> {
    let (meta, alerter, project, hooks) = (ctx.meta, ctx.alerter, ctx.project, ctx.hooks);
    let mut moved = Vec::new();
    for d in meta.open_deployments().await? {
        if d.status != "rolling_out" || now_us < d.decide_us {
            continue;
        }
        let policy: Deploy = match serde_json::from_value(d.policy.clone()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!(
                    "quiver scheduler: deployment {} has an unreadable policy: {e}",
                    d.id
                );
                continue;
            }
        };
        // A person may have moved the aliases since: then this rollout is over.
        let challenger = meta
            .model_by_alias(&d.name, "challenger")
            .await
            .ok()
            .map(|v| v.version);
        if challenger != Some(d.version) {
            let reason = format!(
                "the challenger alias was moved to {} by hand: this rollout is over",
                challenger.map_or("nothing".into(), |v| format!("version {v}"))
            );
            if meta
                .advance_deployment(
                    &d.id,
                    "rolling_out",
                    "superseded",
                    step(now_us, "superseded", json!({"reason": reason})),
                    None,
                    now_us,
                )
                .await?
            {
                count(&d.name, d.version, "superseded");
                moved.push(Moved {
                    id: d.id.clone(),
                    status: "superseded".into(),
                    reason,
                });
            }
            continue;
        }
        let stats = meta.rollout_stats(&d.name, d.version).await?;
        let unknown =
            meta.rollout_stats(&d.name, UNKNOWN_VERSION).await?.errors - d.errors_at_start;
        let errors = stats.errors + unknown.max(0);
        let share = if stats.predictions > 0 {
            stats.disagreements as f64 / stats.predictions as f64
        } else {
            0.0
        };
        let observed = json!({"predictions": stats.predictions, "disagreements": stats.disagreements, "disagreement_share": share, "errors": errors});
        let failure = if stats.predictions < policy.min_predictions as i64 {
            Some(format!(
                "the challenger scored {} row(s), fewer than min_predictions {}: no traffic to judge it on",
                stats.predictions, policy.min_predictions
            ))
        } else if share > policy.max_disagreement {
            Some(format!(
                "it disagreed with the champion on {:.2}% of {} rows, above max_disagreement {:.2}%",
                share * 100.0,
                stats.predictions,
                policy.max_disagreement * 100.0
            ))
        } else if errors > policy.max_errors as i64 {
            Some(format!(
                "it failed {errors} time(s), above max_errors {}",
                policy.max_errors
            ))
        } else {
            None
        };
        let m = match failure {
            Some(reason) => {
                meta.set_rollout(&d.name, Rollout::Off).await?;
                if !meta
                    .advance_deployment(
                        &d.id,
                        "rolling_out",
                        "rolled_back",
                        step(
                            now_us,
                            "rolled_back",
                            json!({"reason": reason, "observed": observed}),
                        ),
                        None,
                        now_us,
                    )
                    .await?
                {
                    continue;
                }
                count(&d.name, d.version, "rolled_back");
                alerter.notify(json!({
                    "alert": "deployment_rolled_back",
                    "project": project,
                    "job": d.job,
                    "model": d.name,
                    "version": d.version,
                    "observed": observed,
                    "text": format!(
                        "Quiver rolled back model {} version {} (job {}): {reason}; the champion{} keeps serving",
                        d.name,
                        d.version,
                        d.job,
                        d.champion_version.map(|v| format!(" (version {v})")).unwrap_or_default()
                    ),
                }))
            .await;
                Moved {
                    id: d.id.clone(),
                    status: "rolled_back".into(),
                    reason,
                }
            }
            None if policy.approval == Approval::Manual && d.approved_by.is_none() => {
                let reason = format!(
                    "the rollout passed: waiting for `quiver models approve {} {}`",
                    d.name, d.version
                );
                if !meta
                    .advance_deployment(
                        &d.id,
                        "rolling_out",
                        "awaiting_approval",
                        step(
                            now_us,
                            "awaiting_approval",
                            json!({"reason": reason, "observed": observed}),
                        ),
                        None,
                        now_us,
                    )
                    .await?
                {
                    continue;
                }
                count(&d.name, d.version, "awaiting_approval");
                alerter.notify(json!({
                    "alert": "deployment_awaiting_approval",
                    "project": project,
                    "model": d.name,
                    "version": d.version,
                    "text": format!("Quiver: model {} version {} passed its rollout; {reason}", d.name, d.version),
                }))
            .await;
                Moved {
                    id: d.id.clone(),
                    status: "awaiting_approval".into(),
                    reason,
                }
            }
            None => {
                let reason = "the rollout passed".to_string();
                if !promote(
                    meta,
                    &d,
                    "rolling_out",
                    json!({"reason": reason, "observed": observed}),
                    None,
                    now_us,
                )
                .await?
                {
                    continue;
                }
                alias_moved(hooks, &d.name, "champion", d.version).await;
                Moved {
                    id: d.id.clone(),
                    status: "promoted".into(),
                    reason,
                }
            }
        };
        moved.push(m);
    }
    Ok(moved)
}

/// Makes the deployed version the champion and ends the rollout, then records it (from status
/// `from`). Returns false when another scheduler recorded it first.
async fn promote(
    meta: &SqlMetadataStore,
    d: &Deployment,
    from: &str,
    fields: Json,
    approved_by: Option<&str>,
    now_us: i64,
) -> quiver_registry::Result<bool> {
    meta.promote_model(&d.name, d.version, "champion").await?;
    meta.set_rollout(&d.name, Rollout::Off).await?;
    let done = meta
        .advance_deployment(
            &d.id,
            from,
            "promoted",
            step(now_us, "promoted", fields),
            approved_by,
            now_us,
        )
        .await?;
    if done {
        count(&d.name, d.version, "promoted");
    }
    Ok(done)
}

/// Approves the deployment of `name` version `version` (`approval: manual`): promotes it when
/// it awaits approval, or records the approval while it still rolls out (it is then promoted
/// when its rollout passes). Fails when there is nothing to approve.
pub async fn approve(
    meta: &SqlMetadataStore,
    name: &str,
    version: i64,
    by: &str,
    now_us: i64,
) -> quiver_registry::Result<Moved> {
    let Some(d) = meta.deployment(name, version).await? else {
        return Err(quiver_registry::Error::Model(format!(
            "model {name} version {version} has no deployment: only versions trained by a job with deploy: are approved"
        )));
    };
    match d.status.as_str() {
        "awaiting_approval" => {
            let reason = format!("approved by {by}");
            if !promote(
                meta,
                &d,
                "awaiting_approval",
                json!({"reason": reason, "approved_by": by}),
                Some(by),
                now_us,
            )
            .await?
            {
                return Err(quiver_registry::Error::Model(format!(
                    "deployment {} changed while it was approved: look again with quiver models deployments {name}",
                    d.id
                )));
            }
            Ok(Moved {
                id: d.id,
                status: "promoted".into(),
                reason,
            })
        }
        "rolling_out" => {
            let reason = format!(
                "approved by {by} before its rollout ended: it is promoted when the rollout passes"
            );
            meta.advance_deployment(
                &d.id,
                "rolling_out",
                "rolling_out",
                step(now_us, "approved", json!({"approved_by": by})),
                Some(by),
                now_us,
            )
            .await?;
            Ok(Moved {
                id: d.id,
                status: "rolling_out".into(),
                reason,
            })
        }
        other => Err(quiver_registry::Error::Model(format!(
            "deployment {} is {other}: nothing to approve",
            d.id
        ))),
    }
}
