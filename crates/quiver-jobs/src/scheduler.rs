//! The scheduler loop: slots, leases, attempts, retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use quiver_core::{Catchup, Job, Registry};
use quiver_registry::{JobRun, SqlMetadataStore};
use serde_json::{Value as Json, json};

use crate::alerts::Alerter;

/// Runs what a job's task says. The `quiver` binary implements it (materialization, training,
/// commands); tests use fakes.
pub trait TaskRunner: Send + Sync {
    /// Runs `job`'s task once: `Ok` with a summary of what it did (rows written, metrics), or
    /// `Err` with why it failed. The future owns what it needs (it runs on a task of its own).
    fn run(&self, job: &Job) -> BoxFuture<'static, Result<Json, String>>;

    /// Called after a deployment moved `alias` of model `name` to `version` (to mirror it to
    /// MLflow, say). An error is reported, not fatal: the move is already recorded.
    fn alias_moved(
        &self,
        _name: &str,
        _alias: &str,
        _version: i64,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// Where the scheduler reads the time (microseconds since the epoch, UTC).
pub trait Clock: Send + Sync {
    /// Now.
    fn now_us(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `us`.
    pub fn at(us: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(us)))
    }
    /// Moves it to `us`.
    pub fn set(&self, us: i64) {
        self.0.store(us, Ordering::SeqCst);
    }
    /// Moves it forward by `us`.
    pub fn advance(&self, us: i64) {
        self.0.fetch_add(us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Settings of a scheduler.
#[derive(Clone)]
pub struct SchedulerOptions {
    /// Who this scheduler is, in leases and run records (default `HOST:PID`).
    pub owner: String,
    /// How long a lease lives without a heartbeat; a scheduler that dies is noticed after it.
    pub lease_ttl: Duration,
    /// A slot older than this when first seen counts as missed (for `catchup: none` and the
    /// missed-schedule alert).
    pub grace: Duration,
    /// The project, in alerts.
    pub project: String,
}

impl SchedulerOptions {
    /// Defaults for `project`: 30 s leases, 60 s grace.
    pub fn new(project: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        SchedulerOptions {
            owner: format!("{host}:{}", std::process::id()),
            lease_ttl: Duration::from_secs(30),
            grace: Duration::from_secs(60),
            project: project.to_string(),
        }
    }
}

/// What one [`Scheduler::tick`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    /// Attempts enqueued for schedule slots.
    pub enqueued: Vec<String>,
    /// Attempts started.
    pub started: Vec<String>,
    /// Running attempts whose scheduler died.
    pub abandoned: Vec<String>,
    /// Attempts skipped (a dependency failed).
    pub skipped: Vec<String>,
    /// Deployments whose rollout was decided.
    pub deployments: Vec<crate::deploy::Moved>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The attempt as recorded.
    pub run: JobRun,
    /// Whether a retry was enqueued.
    pub retry_enqueued: bool,
}

/// The backoff before attempt `attempt + 1` of a run: `delay * 2^(attempt - 1)`, times a
/// jitter in [0.8, 1.2) drawn from the run's id (so that schedulers agree and tests repeat).
pub fn backoff_us(delay_us: i64, attempt: i64, run_id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(run_id.as_bytes());
    let u = u16::from_le_bytes([d[0], d[1]]) as f64 / 65_536.0;
    let base = delay_us.saturating_mul(1i64 << (attempt - 1).clamp(0, 20));
    (base as f64 * (0.8 + 0.4 * u)) as i64
}

/// The scheduler. Cheap to share (`Arc`); several may run against one metadata store.
pub struct Scheduler {
    meta: SqlMetadataStore,
    runner: Arc<dyn TaskRunner>,
    clock: Arc<dyn Clock>,
    alerter: Alerter,
    options: SchedulerOptions,
    running: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Scheduler {
    /// A scheduler over `meta` that runs tasks with `runner`.
    pub fn new(
        meta: SqlMetadataStore,
        runner: Arc<dyn TaskRunner>,
        clock: Arc<dyn Clock>,
        alerter: Alerter,
        options: SchedulerOptions,
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            meta,
            runner,
            clock,
            alerter,
            options,
            running: tokio::sync::Mutex::new(tokio::task::JoinSet::new()),
        })
    }

    /// This scheduler's name in leases and runs.
    pub fn owner(&self) -> &str {
        &self.options.owner
    }

    fn deploy_context(&self) -> crate::deploy::Context<'_> {
        crate::deploy::Context {
            meta: &self.meta,
            alerter: &self.alerter,
            project: &self.options.project,
            hooks: self.runner.as_ref(),
        }
    }

    fn ttl_us(&self) -> i64 {
        self.options.lease_ttl.as_micros() as i64
    }

    /// Registers the job metrics of `registry` at zero, so dashboards see every job from start.
    pub fn register_metrics(registry: &Registry) {
        for name in registry.jobs.keys() {
            let job = name.clone();
            for status in ["succeeded", "failed", "abandoned", "skipped"] {
                metrics::counter!("batch_job_executions_total", "job_name" => job.clone(), "status" => status)
                    .increment(0);
            }
            drop(metrics::histogram!("batch_job_duration_seconds", "job_name" => job.clone()));
        }
    }

    /// One pass: recover abandoned runs, enqueue due slots, start due attempts.
    pub async fn tick(
        self: &Arc<Self>,
        registry: &Registry,
    ) -> quiver_registry::Result<TickReport> {
        let mut report = TickReport::default();
        let now = self.clock.now_us();
        match crate::deploy::advance(&self.deploy_context(), now).await {
            Ok(moved) => report.deployments = moved,
            Err(e) => eprintln!("quiver scheduler: judging rollouts: {e}"),
        }
        for run in self.meta.abandon_expired(now).await? {
            metrics::counter!("batch_job_executions_total", "job_name" => run.job.clone(), "status" => "abandoned").increment(1);
            metrics::counter!("batch_job_failures_total", "job_name" => run.job.clone(), "reason" => "abandoned").increment(1);
            report.abandoned.push(run.id.clone());
            if let Some(job) = registry.jobs.get(&run.job) {
                self.after_failure(job, &run, run.error.as_deref().unwrap_or("abandoned"))
                    .await?;
            }
        }
        let mut paused_jobs = std::collections::HashSet::new();
        for job in registry.jobs.values() {
            let (paused, last) = self.meta.job_state(&job.name).await?;
            if paused {
                paused_jobs.insert(job.name.as_str());
                continue;
            }
            let schedule = job.schedule();
            let Some(last) = last else {
                // First sight of this job: start from now, run nothing from the past.
                let anchor = schedule.latest_at_or_before(now).unwrap_or(now);
                self.meta.set_last_slot(&job.name, anchor).await?;
                continue;
            };
            let mut slots = Vec::new();
            let mut t = last;
            while let Some(next) = schedule.next_after(t) {
                if next > now || slots.len() >= 10_000 {
                    break;
                }
                slots.push(next);
                t = next;
            }
            let Some(&newest) = slots.last() else {
                continue;
            };
            let grace = self.options.grace.as_micros() as i64;
            let missed = slots.iter().filter(|s| now - **s > grace).count();
            let chosen: Vec<i64> = match job.catchup {
                Catchup::All => slots.clone(),
                Catchup::Latest => vec![newest],
                Catchup::None => slots
                    .iter()
                    .copied()
                    .filter(|s| now - *s <= grace)
                    .collect(),
            };
            if missed > 0 {
                self.alerter.notify(json!({
                    "alert": "job_missed_schedule",
                    "project": self.options.project,
                    "job": job.name,
                    "missed_slots": missed,
                    "catchup": format!("{:?}", job.catchup).to_lowercase(),
                    "text": format!(
                        "Quiver job {} missed {missed} scheduled run(s) while no scheduler was running; catchup: {:?}",
                        job.name, job.catchup
                    ),
                }))
            .await;
            }
            for slot in chosen {
                if self
                    .meta
                    .enqueue_run(&job.name, slot, 1, "schedule", slot)
                    .await?
                {
                    report
                        .enqueued
                        .push(quiver_registry::jobs::run_id(&job.name, slot, 1));
                }
            }
            self.meta.set_last_slot(&job.name, newest).await?;
        }
        for run in self.meta.due_runs(now).await? {
            let Some(job) = registry.jobs.get(&run.job) else {
                if self
                    .meta
                    .skip_run(&run.id, "the job is no longer in the registry", now)
                    .await?
                {
                    report.skipped.push(run.id.clone());
                }
                continue;
            };
            if paused_jobs.contains(job.name.as_str()) && run.trigger != "manual" {
                continue;
            }
            match self.dependencies(job).await? {
                Deps::Wait => continue,
                Deps::Failed(reason) => {
                    if self.meta.skip_run(&run.id, &reason, now).await? {
                        metrics::counter!("batch_job_executions_total", "job_name" => job.name.clone(), "status" => "skipped").increment(1);
                        report.skipped.push(run.id.clone());
                    }
                    continue;
                }
                Deps::Ready => {}
            }
            if !self
                .meta
                .claim_run(&job.name, &run.id, self.owner(), now, self.ttl_us())
                .await?
            {
                continue;
            }
            report.started.push(run.id.clone());
            let (this, job, run) = (Arc::clone(self), job.clone(), run.clone());
            self.running.lock().await.spawn(async move {
                if let Err(e) = this.execute(&job, run).await {
                    eprintln!("quiver scheduler: recording a run of {}: {e}", job.name);
                }
            });
        }
        Ok(report)
    }

    async fn dependencies(&self, job: &Job) -> quiver_registry::Result<Deps> {
        for dep in &job.depends_on {
            let latest = self.meta.job_runs(Some(dep), 1).await?;
            match latest.first() {
                None => {
                    return Ok(Deps::Failed(format!("dependency '{dep}' has never run")));
                }
                Some(r) if r.status == "pending" || r.status == "running" => return Ok(Deps::Wait),
                Some(r) if r.status == "succeeded" => {}
                Some(r) => {
                    return Ok(Deps::Failed(format!(
                        "dependency '{dep}': its latest run ({}) {}{}",
                        r.id,
                        r.status,
                        r.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )));
                }
            }
        }
        Ok(Deps::Ready)
    }

    /// Runs a claimed attempt to its end: the task under the timeout, a heartbeat meanwhile,
    /// the record, the metrics, and a retry or an alert when it failed.
    async fn execute(
        self: &Arc<Self>,
        job: &Job,
        run: JobRun,
    ) -> quiver_registry::Result<RunOutcome> {
        let started = std::time::Instant::now();
        let heartbeat = {
            let (meta, clock, owner, name) = (
                self.meta.clone(),
                Arc::clone(&self.clock),
                self.owner().to_string(),
                job.name.clone(),
            );
            let (ttl, every) = (self.ttl_us(), self.options.lease_ttl / 3);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if !matches!(
                        meta.heartbeat(&name, &owner, clock.now_us(), ttl).await,
                        Ok(true)
                    ) {
                        eprintln!("quiver scheduler: lost the lease of job {name}");
                    }
                }
            })
        };
        // Both stop when this attempt stops, whether it ends or is aborted (`kill`).
        let _heartbeat = AbortOnDrop(heartbeat.abort_handle());
        let task = tokio::spawn(self.runner.run(job));
        let abort = task.abort_handle();
        let _task = AbortOnDrop(abort.clone());
        let result = match job.timeout {
            Some(t) => match tokio::time::timeout(
                std::time::Duration::from_micros(t.micros().max(0) as u64),
                task,
            )
            .await
            {
                Ok(joined) => joined,
                Err(_) => {
                    abort.abort();
                    Ok(Err(format!("timed out after {t}")))
                }
            },
            None => task.await,
        };
        drop(_heartbeat);
        let result = match result {
            Ok(r) => r,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(no message)".into());
                Err(format!("the task panicked: {message}"))
            }
            Err(e) => Err(format!("the task was cancelled: {e}")),
        };
        let now = self.clock.now_us();
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("batch_job_duration_seconds", "job_name" => job.name.clone())
            .record(seconds);
        // A train job with deploy: gates and rolls out the version it registered.
        let result = match (result, &job.deploy) {
            (Ok(mut summary), Some(deploy)) => {
                match crate::deploy::start(&self.deploy_context(), job, deploy, &summary, now).await
                {
                    Ok(d) => {
                        summary["deployment"] = d;
                        Ok(summary)
                    }
                    Err(e) => Err(format!("deploying the new version: {e}")),
                }
            }
            (r, _) => r,
        };
        let (status, error, summary) = match &result {
            Ok(summary) => ("succeeded", None, Some(summary.clone())),
            Err(e) => ("failed", Some(e.as_str()), None),
        };
        self.meta
            .finish_run(&run, self.owner(), status, error, summary.as_ref(), now)
            .await?;
        metrics::counter!("batch_job_executions_total", "job_name" => job.name.clone(), "status" => status).increment(1);
        let mut retry_enqueued = false;
        match &result {
            Ok(_) => {
                metrics::gauge!("quiver_job_last_success_timestamp_seconds", "job_name" => job.name.clone())
                    .set(now as f64 / 1e6);
            }
            Err(e) => {
                let reason = if e.starts_with("timed out") {
                    "timeout"
                } else if e.starts_with("the task panicked") {
                    "panic"
                } else {
                    "error"
                };
                metrics::counter!("batch_job_failures_total", "job_name" => job.name.clone(), "reason" => reason).increment(1);
                retry_enqueued = self.after_failure(job, &run, e).await?;
            }
        }
        let mut recorded = run;
        recorded.status = status.into();
        recorded.ended_us = Some(now);
        recorded.error = error.map(str::to_string);
        recorded.summary = summary;
        Ok(RunOutcome {
            run: recorded,
            retry_enqueued,
        })
    }

    /// After a failed or abandoned attempt: enqueue the next attempt after its backoff, or
    /// alert when the retries are spent. Returns whether a retry was enqueued.
    async fn after_failure(
        &self,
        job: &Job,
        run: &JobRun,
        error: &str,
    ) -> quiver_registry::Result<bool> {
        if run.attempt <= i64::from(job.retries) {
            let wait = backoff_us(job.retry_delay.micros(), run.attempt, &run.id);
            let not_before = self.clock.now_us() + wait;
            self.meta
                .enqueue_run(
                    &job.name,
                    run.scheduled_us,
                    run.attempt + 1,
                    "retry",
                    not_before,
                )
                .await?;
            return Ok(true);
        }
        let _ = self
            .alerter
            .deliver(json!({
                "alert": "job_failed",
                "project": self.options.project,
                "job": job.name,
                "run": run.id,
                "attempts": run.attempt,
                "error": error,
                "text": format!(
                    "Quiver job {} failed after {} attempt(s): {error}",
                    job.name, run.attempt
                ),
            }))
            .await;
        Ok(false)
    }

    /// Stops every attempt this scheduler runs at once, recording nothing and keeping the
    /// leases until they expire, as a killed process would (another scheduler then marks the
    /// runs abandoned and retries them).
    pub async fn kill(&self) {
        self.running.lock().await.abort_all();
    }

    /// Waits for every attempt this scheduler started to end.
    pub async fn wait_idle(&self) {
        let mut set = std::mem::take(&mut *self.running.lock().await);
        while set.join_next().await.is_some() {}
    }

    /// Runs `job` now, in the foreground, with its retries (waiting out each backoff), under
    /// the same lease as scheduled runs. Returns every attempt (the last one decides), or why
    /// it could not start (another run of the job holds the lease).
    pub async fn run_now(
        self: &Arc<Self>,
        job: &Job,
    ) -> quiver_registry::Result<Result<Vec<RunOutcome>, String>> {
        // A manual run's slot is the time it was asked for (a microsecond later when another
        // manual run took that one).
        let mut slot = self.clock.now_us();
        while !self
            .meta
            .enqueue_run(&job.name, slot, 1, "manual", slot)
            .await?
        {
            slot += 1;
        }
        let mut id = quiver_registry::jobs::run_id(&job.name, slot, 1);
        let mut outcomes: Vec<RunOutcome> = Vec::new();
        loop {
            let now = self.clock.now_us();
            if !self
                .meta
                .claim_run(&job.name, &id, self.owner(), now, self.ttl_us())
                .await?
            {
                if !outcomes.is_empty() {
                    // A scheduler took the retry over; it is recorded there.
                    return Ok(Ok(outcomes));
                }
                self.meta
                    .skip_run(&id, "another run of the job held its lease", now)
                    .await?;
                let runs = self.meta.job_runs(Some(&job.name), 20).await?;
                let running = runs.iter().find(|r| r.status == "running");
                return Ok(Err(format!(
                    "job {} is already running ({}): at most one run at a time",
                    job.name,
                    running.map_or("on another scheduler".to_string(), |r| format!(
                        "{} on {}",
                        r.id,
                        r.owner.as_deref().unwrap_or("?")
                    ))
                )));
            }
            let run = self
                .meta
                .job_run(&id)
                .await?
                .expect("the claimed run exists");
            let outcome = self.execute(job, run).await?;
            let (retry, attempt) = (outcome.retry_enqueued, outcome.run.attempt);
            let wait = backoff_us(job.retry_delay.micros(), attempt, &outcome.run.id);
            outcomes.push(outcome);
            if !retry {
                return Ok(Ok(outcomes));
            }
            tokio::time::sleep(std::time::Duration::from_micros(wait.max(0) as u64)).await;
            id = quiver_registry::jobs::run_id(&job.name, slot, attempt + 1);
        }
    }

    /// Ticks every `every` until `stop` resolves, then waits for running attempts. The applied
    /// registry is read again only when its version changes (one `MAX(version)` query a tick),
    /// so an `apply` is picked up within a tick.
    pub async fn run_forever(
        self: &Arc<Self>,
        every: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        use quiver_registry::MetadataStore;
        tokio::pin!(stop);
        let mut current: Option<(i64, Registry)> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
            }
            match self.meta.latest_version().await {
                Ok(v) if current.as_ref().map(|(c, _)| *c) != Some(v) => {
                    match self.meta.current().await {
                        Ok(Some(applied)) => {
                            Self::register_metrics(&applied.registry);
                            current = Some((applied.version, applied.registry));
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("quiver scheduler: cannot read the registry: {e}"),
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("quiver scheduler: cannot read the registry: {e}"),
            }
            let Some((_, registry)) = &current else {
                continue;
            };
            if let Err(e) = self.tick(registry).await {
                eprintln!("quiver scheduler: {e}");
            }
            // Reap finished attempts so the set does not grow.
            let mut set = self.running.lock().await;
            while let Some(Some(_)) = futures::FutureExt::now_or_never(set.join_next()) {}
        }
        self.wait_idle().await;
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Deps {
    Ready,
    Wait,
    Failed(String),
}
