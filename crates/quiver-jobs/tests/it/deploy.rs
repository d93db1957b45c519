//! The gated retrain-and-deploy pipeline with a manual clock: a first version promoted at once,
//! a better one shadowed and promoted after `promote_after`, a worse one rejected by the gate,
//! one that disagrees too often rolled back, one without traffic rolled back, and manual
//! approval. On SQLite and the local PostgreSQL.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use quiver_core::repo::parse_definitions;
use quiver_core::{Job, Registry};
use quiver_jobs::{Alerter, ManualClock, Scheduler, SchedulerOptions, TaskRunner, deploy};
use quiver_registry::{NewModelVersion, Rollout, RolloutStats, SqlMetadataStore};
use serde_json::{Value as Json, json};

use super::{T0, postgres, sqlite};

const HOUR: i64 = 3_600_000_000;

fn registry(model: &str, approval: &str) -> Registry {
    let text = format!(
        r#"
project: deploy_test
entities: [{{name: user, join_keys: [user_id]}}]
sources: [{{name: s, type: parquet, path: s.parquet, timestamp_field: ts}}]
feature_views:
  - {{name: stats, entities: [user], source: s, features: [{{name: a, type: float64}}]}}
feature_services:
  - {{name: svc, features: ["stats:*"]}}
jobs:
  - name: retrain_{model}
    schedule: "0 3 1 1 *"   # 1 January: never due while the test's clock runs
    task: {{train: {{model: {model}, service: svc, labels: labels.parquet, label: churned}}}}
    retries: 0
    deploy:
      gate: {{metric: roc_auc, min_gain: 0.01}}
      rollout: shadow
      promote_after: 24h
      max_disagreement: 0.05
      min_predictions: 100
      approval: {approval}
"#
    );
    let defs = parse_definitions(std::path::Path::new("quiver.yaml"), &text).unwrap();
    Registry::from_files(vec![("quiver.yaml".into(), defs)]).unwrap()
}

/// A train task that registers a version whose test ROC-AUC is the next number in its queue,
/// with the current champion's figure as the baseline (as the real task measures both on the
/// same test rows).
struct Train {
    meta: SqlMetadataStore,
    /// (new version's roc_auc, champion's roc_auc on the new rows).
    queue: Mutex<VecDeque<f64>>,
    champion_auc: Arc<Mutex<std::collections::BTreeMap<i64, f64>>>,
    /// The alias moves the scheduler reported (what the CLI's runner mirrors to MLflow).
    moves: Mutex<Vec<(String, i64)>>,
}

impl TaskRunner for Train {
    fn alias_moved(
        &self,
        _name: &str,
        alias: &str,
        version: i64,
    ) -> BoxFuture<'static, Result<(), String>> {
        self.moves
            .lock()
            .unwrap()
            .push((alias.to_string(), version));
        Box::pin(async { Ok(()) })
    }

    fn run(&self, job: &Job) -> BoxFuture<'static, Result<Json, String>> {
        let meta = self.meta.clone();
        let auc = self
            .queue
            .lock()
            .unwrap()
            .pop_front()
            .expect("a queued run");
        let aucs = Arc::clone(&self.champion_auc);
        let quiver_core::JobTask::Train { model, service, .. } = job.task.clone() else {
            panic!("a train job")
        };
        Box::pin(async move {
            let baseline = match meta.model_by_alias(&model, "champion").await {
                Ok(v) => {
                    json!({"version": v.version, "metrics": {"roc_auc": aucs.lock().unwrap()[&v.version]}})
                }
                Err(_) => Json::Null,
            };
            let version = meta
                .register_model(&NewModelVersion {
                    name: model.clone(),
                    task: "binary".into(),
                    algorithm: "gbdt".into(),
                    feature_service: service,
                    service_hash: "h".into(),
                    artifact: format!("{model}/x"),
                    details: json!({}),
                })
                .await
                .map_err(|e| e.to_string())?;
            aucs.lock().unwrap().insert(version, auc);
            Ok(
                json!({"model": model, "version": version, "metrics": {"roc_auc": auc, "log_loss": 0.4}, "baseline": baseline}),
            )
        })
    }
}

struct Cycle {
    meta: SqlMetadataStore,
    clock: Arc<ManualClock>,
    s: Arc<Scheduler>,
    runner: Arc<Train>,
    reg: Registry,
    model: String,
}

impl Cycle {
    fn new(meta: SqlMetadataStore, model: &str, approval: &str) -> Cycle {
        let clock = ManualClock::at(T0);
        let runner = Arc::new(Train {
            meta: meta.clone(),
            queue: Mutex::new(VecDeque::new()),
            champion_auc: Arc::default(),
            moves: Mutex::default(),
        });
        let s = Scheduler::new(
            meta.clone(),
            runner.clone(),
            clock.clone(),
            Alerter::default(),
            SchedulerOptions::new("deploy_test"),
        );
        Cycle {
            meta,
            clock,
            s,
            runner,
            reg: registry(model, approval),
            model: model.into(),
        }
    }

    /// Runs the train job once with a new version of test ROC-AUC `auc`; returns the
    /// deployment record the run's summary carries.
    async fn retrain(&self, auc: f64) -> Json {
        self.runner.queue.lock().unwrap().push_back(auc);
        let job = &self.reg.jobs[&format!("retrain_{}", self.model)];
        let outcomes = self.s.run_now(job).await.unwrap().unwrap();
        let last = outcomes.last().unwrap();
        assert_eq!(last.run.status, "succeeded", "{:?}", last.run);
        last.run.summary.as_ref().unwrap()["deployment"].clone()
    }

    async fn alias(&self, alias: &str) -> Option<i64> {
        self.meta
            .model_by_alias(&self.model, alias)
            .await
            .ok()
            .map(|v| v.version)
    }

    async fn serve(&self, version: i64, predictions: i64, disagreements: i64) {
        self.meta
            .add_rollout_stats(
                &self.model,
                version,
                RolloutStats {
                    predictions,
                    disagreements,
                    errors: 0,
                },
            )
            .await
            .unwrap();
    }

    /// Moves the clock to `at` and ticks; returns the (id, status) of what moved.
    async fn tick_at(&self, at: i64) -> Vec<(String, String)> {
        self.clock.set(at);
        let r = self.s.tick(&self.reg).await.unwrap();
        r.deployments
            .into_iter()
            .map(|m| (m.id, m.status))
            .collect()
    }

    fn steps(d: &Json) -> Vec<String> {
        d["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn whole_cycle(meta: SqlMetadataStore, model: &str) {
    let c = Cycle::new(meta, model, "auto");
    // 1. The first version has nothing to beat: champion at once.
    let d = c.retrain(0.70).await;
    assert_eq!(d["status"], "promoted", "{d}");
    assert_eq!(c.alias("champion").await, Some(1));
    // 2. A better one (+0.05 >= 0.01) becomes challenger in shadow; decided 24h later.
    let d = c.retrain(0.75).await;
    assert_eq!(d["status"], "rolling_out", "{d}");
    assert_eq!(
        Cycle::steps(&d),
        ["evaluated", "gate_passed", "rollout_started"]
    );
    assert_eq!(d["steps"][0]["champion"], 0.70);
    assert_eq!(c.alias("challenger").await, Some(2));
    assert_eq!(c.meta.rollout(model).await.unwrap(), Rollout::Shadow);
    c.serve(2, 1000, 20).await; // 2% disagreement, under 5%
    assert!(c.tick_at(T0 + HOUR).await.is_empty(), "not due yet");
    assert_eq!(c.alias("champion").await, Some(1));
    let moved = c.tick_at(T0 + 24 * HOUR).await;
    assert_eq!(moved, [(format!("{model}@2"), "promoted".to_string())]);
    assert_eq!(c.alias("champion").await, Some(2));
    assert_eq!(c.meta.rollout(model).await.unwrap(), Rollout::Off);
    // Decided once: a later tick moves nothing.
    assert!(c.tick_at(T0 + 25 * HOUR).await.is_empty());
    // 3. A worse one (0.755 - 0.75 < 0.01) is rejected: registered, no alias moves.
    let d = c.retrain(0.755).await;
    assert_eq!(d["status"], "rejected", "{d}");
    assert_eq!(Cycle::steps(&d), ["evaluated", "gate_failed"]);
    assert_eq!(c.alias("champion").await, Some(2));
    assert_eq!(c.alias("challenger").await, Some(2));
    assert_eq!(c.meta.rollout(model).await.unwrap(), Rollout::Off);
    // 4. A better one that disagrees with the champion on 10% of rows is rolled back.
    let t4 = T0 + 30 * HOUR;
    c.clock.set(t4);
    let d = c.retrain(0.80).await;
    assert_eq!(d["status"], "rolling_out", "{d}");
    c.serve(4, 1000, 100).await;
    let moved = c.tick_at(t4 + 24 * HOUR).await;
    assert_eq!(moved, [(format!("{model}@4"), "rolled_back".to_string())]);
    assert_eq!(c.alias("champion").await, Some(2));
    assert_eq!(c.meta.rollout(model).await.unwrap(), Rollout::Off);
    let rec = c.meta.deployment(model, 4).await.unwrap().unwrap();
    let last = rec.steps.last().unwrap();
    assert!(
        last["reason"].as_str().unwrap().contains("10.00% of 1000"),
        "{last}"
    );
    assert_eq!(last["observed"]["disagreements"], 100);
    // 5. One that no request reached (fewer than min_predictions) is rolled back too.
    let t5 = t4 + 48 * HOUR;
    c.clock.set(t5);
    let d = c.retrain(0.81).await;
    assert_eq!(d["status"], "rolling_out");
    c.serve(5, 10, 0).await;
    let moved = c.tick_at(t5 + 24 * HOUR).await;
    assert_eq!(moved, [(format!("{model}@5"), "rolled_back".to_string())]);
    let rec = c.meta.deployment(model, 5).await.unwrap().unwrap();
    assert!(
        rec.steps.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("fewer than min_predictions 100"),
        "{:?}",
        rec.steps
    );
    assert_eq!(c.alias("champion").await, Some(2));
    // The history, newest first.
    let all = c.meta.deployments(Some(model), 10).await.unwrap();
    let statuses: Vec<&str> = all.iter().map(|d| d.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "rolled_back",
            "rolled_back",
            "rejected",
            "promoted",
            "promoted"
        ]
    );
    // Every alias move was reported to the runner (which mirrors it to MLflow).
    let moves = c.runner.moves.lock().unwrap().clone();
    let expected: Vec<(String, i64)> = [
        ("champion", 1),
        ("challenger", 2),
        ("champion", 2),
        ("challenger", 4),
        ("challenger", 5),
    ]
    .iter()
    .map(|(a, v)| (a.to_string(), *v))
    .collect();
    assert_eq!(moves, expected);
}

#[tokio::test]
async fn the_deploy_cycle_on_sqlite() {
    let (_d, meta) = sqlite().await;
    whole_cycle(meta, "churn").await;
}

#[tokio::test]
async fn the_deploy_cycle_on_postgres() {
    let Some(meta) = postgres().await else { return };
    whole_cycle(meta, "churn").await;
}

#[tokio::test]
async fn manual_approval_waits_for_a_person() {
    let (_d, meta) = sqlite().await;
    let c = Cycle::new(meta, "churn", "manual");
    c.retrain(0.70).await;
    let d = c.retrain(0.80).await;
    assert_eq!(d["status"], "rolling_out");
    c.serve(2, 500, 0).await;
    let moved = c.tick_at(T0 + 24 * HOUR).await;
    assert_eq!(
        moved,
        [("churn@2".to_string(), "awaiting_approval".to_string())]
    );
    // Still the old champion, and the shadow keeps running until someone decides.
    assert_eq!(c.alias("champion").await, Some(1));
    assert_eq!(c.meta.rollout("churn").await.unwrap(), Rollout::Shadow);
    assert!(c.tick_at(T0 + 48 * HOUR).await.is_empty());
    // Approving a version with no deployment, or one already decided, is refused.
    let e = deploy::approve(&c.meta, "churn", 1, "ana", T0 + 49 * HOUR)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("is promoted: nothing to approve"),
        "{e}"
    );
    let e = deploy::approve(&c.meta, "churn", 9, "ana", T0 + 49 * HOUR)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has no deployment"), "{e}");
    let m = deploy::approve(&c.meta, "churn", 2, "ana", T0 + 49 * HOUR)
        .await
        .unwrap();
    assert_eq!(m.status, "promoted");
    assert_eq!(c.alias("champion").await, Some(2));
    assert_eq!(c.meta.rollout("churn").await.unwrap(), Rollout::Off);
    let rec = c.meta.deployment("churn", 2).await.unwrap().unwrap();
    assert_eq!(rec.approved_by.as_deref(), Some("ana"));
    // Approved before its rollout ended: promoted as soon as the rollout passes.
    let d = c.retrain(0.90).await;
    assert_eq!(d["status"], "rolling_out");
    deploy::approve(&c.meta, "churn", 3, "ana", T0 + 50 * HOUR)
        .await
        .unwrap();
    c.serve(3, 500, 1).await;
    let t = d["decide_us"].as_i64().unwrap();
    let moved = c.tick_at(t).await;
    assert_eq!(moved, [("churn@3".to_string(), "promoted".to_string())]);
}

#[test]
fn deploy_declarations_are_checked() {
    let bad = |deploy: &str, task: &str| {
        let text = format!(
            r#"
project: p
entities: [{{name: user, join_keys: [user_id]}}]
sources: [{{name: s, type: parquet, path: s.parquet, timestamp_field: ts}}]
feature_views:
  - {{name: stats, entities: [user], source: s, features: [{{name: a, type: float64}}]}}
feature_services:
  - {{name: svc, features: ["stats:*"]}}
jobs:
  - name: j
    schedule: "@daily"
    task: {task}
    deploy: {deploy}
"#
        );
        let defs = parse_definitions(std::path::Path::new("jobs.yaml"), &text).unwrap();
        Registry::from_files(vec![("jobs.yaml".into(), defs)])
            .unwrap_err()
            .to_string()
    };
    let train = "{train: {model: m, service: svc, labels: l.parquet, label: y}}";
    let e = bad("{gate: {metric: auc}}", train);
    assert!(
        e.contains("jobs.yaml") && e.contains("deploy.gate") && e.contains("roc_auc"),
        "{e}"
    );
    let e = bad("{gate: {metric: roc_auc}, rollout: {canary: 1.5}}", train);
    assert!(e.contains("canary share 1.5"), "{e}");
    let e = bad("{gate: {metric: roc_auc}, rollout: blue_green}", train);
    assert!(e.contains("'blue_green': use shadow"), "{e}");
    let e = bad("{gate: {metric: roc_auc}, max_disagreement: 2}", train);
    assert!(e.contains("max_disagreement"), "{e}");
    let e = bad("{gate: {metric: roc_auc}, approval: maybe}", train);
    assert!(e.contains("use auto or manual"), "{e}");
    let e = bad("{gate: {metric: roc_auc}}", "{snapshot: {views: [stats]}}");
    assert!(e.contains("applies to a train task"), "{e}");
    let e = bad(
        "{gate: {metric: roc_auc}}",
        "{train: {model: m, service: svc, labels: l.parquet, label: y, promote: champion}}",
    );
    assert!(e.contains("cannot also promote"), "{e}");
}
