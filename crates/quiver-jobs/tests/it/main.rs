//! The scheduler against SQLite and the PostgreSQL on this machine, with a manual clock:
//! slots, catch-up, retries with backoff, timeouts, panics, dependencies, and two schedulers
//! sharing one registry (no double runs; a dead one's run recovered by the other). Under
//! `CI=true` an unreachable PostgreSQL fails the tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use quiver_core::repo::parse_definitions;
use quiver_core::{Job, Registry};
use quiver_jobs::{Alerter, ManualClock, Scheduler, SchedulerOptions, TaskRunner};
use quiver_registry::SqlMetadataStore;
use serde_json::{Value as Json, json};

mod deploy;

/// 2026-03-02T00:00:00Z (a Monday), µs.
pub(crate) const T0: i64 = 1_772_409_600_000_000;
const MIN: i64 = 60_000_000;

/// Jobs named with `prefix` (so tests sharing a PostgreSQL database never see each other's).
fn registry(prefix: &str, jobs: &str) -> Registry {
    let base = r#"
project: jobs_test
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: s, type: parquet, path: s.parquet, timestamp_field: ts}]
feature_views:
  - {name: stats, entities: [user], source: s, features: [{name: a, type: float64}]}
"#;
    let jobs = jobs.replace("JOB_", prefix);
    let defs = parse_definitions(
        std::path::Path::new("quiver.yaml"),
        &format!("{base}{jobs}"),
    )
    .unwrap();
    Registry::from_files(vec![("quiver.yaml".into(), defs)]).unwrap()
}

/// What a fake task does when run.
#[derive(Clone)]
enum Behaviour {
    Succeed,
    Fail,
    /// Fails this many times, then succeeds.
    FailTimes(usize),
    Panic,
    Sleep(Duration),
}

/// A runner whose tasks do what their job's behaviour says, and count their runs.
#[derive(Default)]
struct Fake {
    behaviours: Mutex<BTreeMap<String, Behaviour>>,
    runs: Mutex<BTreeMap<String, usize>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl Fake {
    fn with(behaviours: &[(&str, Behaviour)]) -> Arc<Fake> {
        let f = Fake::default();
        for (job, b) in behaviours {
            f.behaviours
                .lock()
                .unwrap()
                .insert(job.to_string(), b.clone());
        }
        Arc::new(f)
    }
    fn runs(&self, job: &str) -> usize {
        self.runs.lock().unwrap().get(job).copied().unwrap_or(0)
    }
}

struct Runner(Arc<Fake>);

impl TaskRunner for Runner {
    fn run(&self, job: &Job) -> BoxFuture<'static, Result<Json, String>> {
        let fake = Arc::clone(&self.0);
        let name = job.name.clone();
        Box::pin(async move {
            let n = {
                let mut runs = fake.runs.lock().unwrap();
                let n = runs.entry(name.clone()).or_default();
                *n += 1;
                *n
            };
            let now = fake.running.fetch_add(1, Ordering::SeqCst) + 1;
            fake.most_at_once.fetch_max(now, Ordering::SeqCst);
            let behaviour = fake
                .behaviours
                .lock()
                .unwrap()
                .iter()
                .find(|(k, _)| name.ends_with(k.as_str()))
                .map(|(_, b)| b.clone())
                .unwrap_or(Behaviour::Succeed);
            let result = match behaviour {
                Behaviour::Succeed => Ok(json!({"rows": 42})),
                Behaviour::Fail => Err("the source is unreachable".to_string()),
                Behaviour::FailTimes(k) if n <= k => Err(format!("attempt {n} failed")),
                Behaviour::FailTimes(_) => Ok(json!({"rows": n})),
                Behaviour::Panic => {
                    fake.running.fetch_sub(1, Ordering::SeqCst);
                    panic!("index out of bounds in the task")
                }
                Behaviour::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(json!({"slept": true}))
                }
            };
            fake.running.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }
}

fn scheduler(
    meta: &SqlMetadataStore,
    fake: &Arc<Fake>,
    clock: &Arc<ManualClock>,
    owner: &str,
) -> Arc<Scheduler> {
    let mut options = SchedulerOptions::new("jobs_test");
    options.owner = owner.into();
    options.lease_ttl = Duration::from_millis(900);
    Scheduler::new(
        meta.clone(),
        Arc::new(Runner(Arc::clone(fake))),
        clock.clone(),
        Alerter::default(),
        options,
    )
}

async fn sqlite() -> (tempfile::TempDir, SqlMetadataStore) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqlMetadataStore::open("registry.db", dir.path())
        .await
        .unwrap();
    (dir, meta)
}

/// A store in a fresh schema of the local PostgreSQL, or `None` outside CI when it is down.
async fn postgres() -> Option<SqlMetadataStore> {
    let url = quiver_test_utils::postgres_schema_url("quiver_jobs").await?;
    Some(
        SqlMetadataStore::open(&url, std::path::Path::new("."))
            .await
            .unwrap(),
    )
}

const EVERY_15: &str = r#"
jobs:
  - name: JOB_sync
    schedule: "*/15 * * * *"
    task: {materialize_incremental: {views: [stats]}}
    retries: 2
    retry_delay: 1m
"#;

#[tokio::test]
async fn slots_run_once_each_and_every_attempt_is_recorded() {
    let (_d, meta) = sqlite().await;
    let reg = registry("a_", EVERY_15);
    let fake = Fake::with(&[]);
    let clock = ManualClock::at(T0 + 7 * MIN);
    let s = scheduler(&meta, &fake, &clock, "one");
    // First sight: nothing from the past runs.
    let r = s.tick(&reg).await.unwrap();
    assert!(r.enqueued.is_empty() && r.started.is_empty(), "{r:?}");
    clock.set(T0 + 15 * MIN);
    let r = s.tick(&reg).await.unwrap();
    assert_eq!(r.started, vec![format!("a_sync@{}#1", T0 + 15 * MIN)]);
    s.wait_idle().await;
    // The same slot is not run again.
    let r = s.tick(&reg).await.unwrap();
    assert!(r.started.is_empty(), "{r:?}");
    assert_eq!(fake.runs("a_sync"), 1);
    let runs = meta.job_runs(Some("a_sync"), 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (run.status.as_str(), run.attempt, run.trigger.as_str()),
        ("succeeded", 1, "schedule")
    );
    assert_eq!(run.summary, Some(json!({"rows": 42})));
    assert_eq!(run.started_us, Some(T0 + 15 * MIN));
    assert_eq!(run.owner.as_deref(), Some("one"));
    // Paused: slots pass without runs; resumed: the latest missed slot runs (catchup: latest).
    meta.set_job_paused("a_sync", true).await.unwrap();
    clock.set(T0 + 31 * MIN);
    assert!(s.tick(&reg).await.unwrap().started.is_empty());
    meta.set_job_paused("a_sync", false).await.unwrap();
    let r = s.tick(&reg).await.unwrap();
    assert_eq!(r.started, vec![format!("a_sync@{}#1", T0 + 30 * MIN)]);
    s.wait_idle().await;
}

#[tokio::test]
async fn catchup_runs_the_latest_every_or_no_missed_slot() {
    for (catchup, expected) in [
        ("latest", vec![60]),
        ("all", vec![15, 30, 45, 60]),
        ("none", vec![]),
    ] {
        let (_d, meta) = sqlite().await;
        let reg = registry(
            "c_",
            &EVERY_15.replace("retries: 2", &format!("retries: 2\n    catchup: {catchup}")),
        );
        let fake = Fake::with(&[]);
        let clock = ManualClock::at(T0);
        let s = scheduler(&meta, &fake, &clock, "one");
        s.tick(&reg).await.unwrap();
        // The scheduler was down for an hour and a bit.
        clock.set(T0 + 62 * MIN);
        let r = s.tick(&reg).await.unwrap();
        let slots: Vec<i64> = r
            .started
            .iter()
            .map(|id| {
                let slot: i64 = id
                    .split('@')
                    .nth(1)
                    .unwrap()
                    .split('#')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                (slot - T0) / MIN
            })
            .collect();
        // Runs of one job start one at a time: the first now, the rest on later ticks.
        assert_eq!(slots.first(), expected.first(), "{catchup}: {r:?}");
        s.wait_idle().await;
        for _ in 0..expected.len() {
            s.tick(&reg).await.unwrap();
            s.wait_idle().await;
        }
        let mut done: Vec<i64> = meta
            .job_runs(Some("c_sync"), 100)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.scheduled_us - T0) / MIN)
            .collect();
        done.sort();
        assert_eq!(done, expected, "{catchup}");
    }
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_given_up() {
    let (_d, meta) = sqlite().await;
    let reg = registry("r_", EVERY_15);
    let fake = Fake::with(&[("sync", Behaviour::Fail)]);
    let clock = ManualClock::at(T0);
    let s = scheduler(&meta, &fake, &clock, "one");
    s.tick(&reg).await.unwrap();
    clock.set(T0 + 15 * MIN);
    s.tick(&reg).await.unwrap();
    s.wait_idle().await;
    let runs = meta.job_runs(Some("r_sync"), 10).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (retry, first) = (&runs[0], &runs[1]);
    assert_eq!((first.status.as_str(), first.attempt), ("failed", 1));
    assert_eq!(first.error.as_deref(), Some("the source is unreachable"));
    assert_eq!((retry.status.as_str(), retry.attempt), ("pending", 2));
    // The first retry waits 1 minute, with up to 20% jitter either way.
    let wait = retry.not_before_us - (T0 + 15 * MIN);
    assert!((48_000_000..72_000_000).contains(&wait), "{wait}");
    clock.set(retry.not_before_us - 1);
    assert!(s.tick(&reg).await.unwrap().started.is_empty());
    clock.set(retry.not_before_us);
    assert_eq!(s.tick(&reg).await.unwrap().started.len(), 1);
    s.wait_idle().await;
    // The second retry waits twice as long; after it, no more (retries: 2).
    let runs = meta.job_runs(Some("r_sync"), 10).await.unwrap();
    let third = &runs[0];
    assert_eq!((third.status.as_str(), third.attempt), ("pending", 3));
    let wait = third.not_before_us - clock.now_us_for_test();
    assert!((96_000_000..144_000_000).contains(&wait), "{wait}");
    clock.set(third.not_before_us);
    s.tick(&reg).await.unwrap();
    s.wait_idle().await;
    clock.advance(60 * MIN);
    s.tick(&reg).await.unwrap();
    s.wait_idle().await;
    let attempts: Vec<(i64, String)> = meta
        .job_runs(Some("r_sync"), 20)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.scheduled_us == T0 + 15 * MIN)
        .map(|r| (r.attempt, r.status.clone()))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (3, "failed".into()),
            (2, "failed".into()),
            (1, "failed".into())
        ]
    );
}

trait NowForTest {
    fn now_us_for_test(&self) -> i64;
}
impl NowForTest for Arc<ManualClock> {
    fn now_us_for_test(&self) -> i64 {
        quiver_jobs::Clock::now_us(&**self)
    }
}

#[tokio::test]
async fn a_panicking_or_slow_task_fails_its_run_not_the_scheduler() {
    let (_d, meta) = sqlite().await;
    let reg = registry(
        "p_",
        r#"
jobs:
  - {name: JOB_boom, schedule: "*/15 * * * *", task: {command: ["x"]}, retries: 0}
  - {name: JOB_slow, schedule: "*/15 * * * *", task: {command: ["x"]}, retries: 0, timeout: 1s}
  - {name: JOB_fine, schedule: "*/15 * * * *", task: {command: ["x"]}, retries: 0}
"#,
    );
    let fake = Fake::with(&[
        ("boom", Behaviour::Panic),
        ("slow", Behaviour::Sleep(Duration::from_secs(30))),
    ]);
    let clock = ManualClock::at(T0);
    let s = scheduler(&meta, &fake, &clock, "one");
    s.tick(&reg).await.unwrap();
    clock.set(T0 + 15 * MIN);
    assert_eq!(s.tick(&reg).await.unwrap().started.len(), 3);
    s.wait_idle().await;
    let status = |runs: Vec<quiver_registry::JobRun>| {
        (
            runs[0].status.clone(),
            runs[0].error.clone().unwrap_or_default(),
        )
    };
    let (st, e) = status(meta.job_runs(Some("p_boom"), 1).await.unwrap());
    assert_eq!(st, "failed");
    assert!(e.contains("panicked: index out of bounds"), "{e}");
    let (st, e) = status(meta.job_runs(Some("p_slow"), 1).await.unwrap());
    assert_eq!(st, "failed");
    assert!(e.contains("timed out after 1s"), "{e}");
    assert_eq!(
        status(meta.job_runs(Some("p_fine"), 1).await.unwrap()).0,
        "succeeded"
    );
    // The scheduler goes on.
    clock.set(T0 + 30 * MIN);
    assert_eq!(s.tick(&reg).await.unwrap().started.len(), 3);
    s.wait_idle().await;
}

#[tokio::test]
async fn a_job_runs_after_its_dependencies_succeed_and_is_skipped_when_they_fail() {
    let (_d, meta) = sqlite().await;
    let jobs = r#"
jobs:
  - {name: JOB_snapshot, schedule: "0 2 * * *", task: {command: ["x"]}, retries: 0}
  - {name: JOB_export, schedule: "30 2 * * *", task: {command: ["y"]}, retries: 0, depends_on: [JOB_snapshot]}
"#;
    let reg = registry("d_", jobs);
    let fake = Fake::with(&[("snapshot", Behaviour::FailTimes(1))]);
    let clock = ManualClock::at(T0);
    let s = scheduler(&meta, &fake, &clock, "one");
    s.tick(&reg).await.unwrap();
    // Day 1: the snapshot fails, so the export is skipped and says why.
    for t in [2 * 60, 2 * 60 + 30] {
        clock.set(T0 + t * MIN);
        s.tick(&reg).await.unwrap();
        s.wait_idle().await;
    }
    let export = &meta.job_runs(Some("d_export"), 1).await.unwrap()[0];
    assert_eq!(export.status, "skipped");
    assert!(
        export
            .error
            .as_deref()
            .unwrap()
            .contains("dependency 'd_snapshot'"),
        "{export:?}"
    );
    assert_eq!(fake.runs("d_export"), 0);
    // Day 2: it succeeds, and the export runs.
    for t in [26 * 60, 26 * 60 + 30] {
        clock.set(T0 + t * MIN);
        s.tick(&reg).await.unwrap();
        s.wait_idle().await;
    }
    assert_eq!(
        meta.job_runs(Some("d_export"), 1).await.unwrap()[0].status,
        "succeeded"
    );
    assert_eq!(fake.runs("d_export"), 1);
}

/// Two schedulers tick the same jobs on one registry at once: each slot runs once, never two
/// runs of a job at a time.
async fn two_schedulers_never_double_run(meta: SqlMetadataStore, prefix: &str) {
    let reg = registry(
        prefix,
        r#"
jobs:
  - {name: JOB_a, schedule: "* * * * *", task: {command: ["x"]}, retries: 0, catchup: all}
  - {name: JOB_b, schedule: "* * * * *", task: {command: ["x"]}, retries: 0, catchup: all}
"#,
    );
    let fake = Fake::with(&[
        ("_a", Behaviour::Sleep(Duration::from_millis(30))),
        ("_b", Behaviour::Sleep(Duration::from_millis(30))),
    ]);
    let clock = ManualClock::at(T0);
    let (s1, s2) = (
        scheduler(&meta, &fake, &clock, "s1"),
        scheduler(&meta, &fake, &clock, "s2"),
    );
    s1.tick(&reg).await.unwrap();
    s2.tick(&reg).await.unwrap();
    for minute in 1..=6 {
        clock.set(T0 + minute * MIN);
        for _ in 0..4 {
            let (a, b) = tokio::join!(s1.tick(&reg), s2.tick(&reg));
            a.unwrap();
            b.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
    s1.wait_idle().await;
    s2.wait_idle().await;
    for job in ["a", "b"] {
        let name = format!("{prefix}{job}");
        let runs = meta.job_runs(Some(&name), 100).await.unwrap();
        let mut slots: Vec<i64> = runs.iter().map(|r| r.scheduled_us).collect();
        slots.sort();
        slots.dedup();
        assert_eq!(runs.len(), 6, "{name}: one run per slot: {runs:?}");
        assert_eq!(slots.len(), 6);
        assert!(runs.iter().all(|r| r.status == "succeeded"), "{runs:?}");
        assert_eq!(fake.runs(&name), 6);
    }
    // Two jobs may run at once; one job never twice.
    assert!(fake.most_at_once.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn two_schedulers_on_sqlite_never_double_run() {
    let (_d, meta) = sqlite().await;
    two_schedulers_never_double_run(meta, "ts_").await;
}

#[tokio::test]
async fn two_schedulers_on_postgres_never_double_run() {
    if let Some(meta) = postgres().await {
        two_schedulers_never_double_run(meta, "tp_").await;
    }
}

/// A scheduler dies mid-run (its tasks and heartbeat stop, its lease is left behind): the other
/// marks the run abandoned once the lease expires, and retries it.
async fn a_dead_schedulers_run_is_recovered(meta: SqlMetadataStore, prefix: &str) {
    let reg = registry(prefix, EVERY_15);
    let fake = Fake::with(&[("sync", Behaviour::Sleep(Duration::from_secs(3600)))]);
    let clock = ManualClock::at(T0);
    let (dying, other) = (
        scheduler(&meta, &fake, &clock, "dying"),
        scheduler(&meta, &fake, &clock, "other"),
    );
    dying.tick(&reg).await.unwrap();
    clock.set(T0 + 15 * MIN);
    assert_eq!(dying.tick(&reg).await.unwrap().started.len(), 1);
    // The other scheduler cannot take it while the lease lives.
    assert!(other.tick(&reg).await.unwrap().started.is_empty());
    dying.kill().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    clock.advance(2_000_000); // past the 0.9 s lease
    fake.behaviours
        .lock()
        .unwrap()
        .insert("sync".into(), Behaviour::Succeed);
    let r = other.tick(&reg).await.unwrap();
    assert_eq!(
        r.abandoned,
        vec![format!("{prefix}sync@{}#1", T0 + 15 * MIN)]
    );
    let runs = meta
        .job_runs(Some(&format!("{prefix}sync")), 10)
        .await
        .unwrap();
    assert_eq!(runs[1].status, "abandoned");
    assert!(
        runs[1].error.as_deref().unwrap().contains("dying"),
        "{runs:?}"
    );
    clock.set(runs[0].not_before_us);
    assert_eq!(other.tick(&reg).await.unwrap().started.len(), 1);
    other.wait_idle().await;
    let runs = meta
        .job_runs(Some(&format!("{prefix}sync")), 10)
        .await
        .unwrap();
    assert_eq!(
        (
            runs[0].attempt,
            runs[0].status.as_str(),
            runs[0].owner.as_deref()
        ),
        (2, "succeeded", Some("other"))
    );
}

#[tokio::test]
async fn a_dead_schedulers_run_is_recovered_on_sqlite() {
    let (_d, meta) = sqlite().await;
    a_dead_schedulers_run_is_recovered(meta, "ks_").await;
}

#[tokio::test]
async fn a_dead_schedulers_run_is_recovered_on_postgres() {
    if let Some(meta) = postgres().await {
        a_dead_schedulers_run_is_recovered(meta, "kp_").await;
    }
}

#[tokio::test]
async fn run_now_retries_in_the_foreground_and_refuses_a_second_run() {
    let (_d, meta) = sqlite().await;
    let reg = registry(
        "n_",
        &EVERY_15.replace("retry_delay: 1m", "retry_delay: 1s"),
    );
    let fake = Fake::with(&[("sync", Behaviour::FailTimes(1))]);
    let clock = ManualClock::at(T0);
    let s = scheduler(&meta, &fake, &clock, "cli");
    let outcomes = s.run_now(&reg.jobs["n_sync"]).await.unwrap().unwrap();
    let attempts: Vec<(i64, &str)> = outcomes
        .iter()
        .map(|o| (o.run.attempt, o.run.status.as_str()))
        .collect();
    assert_eq!(attempts, vec![(1, "failed"), (2, "succeeded")]);
    assert_eq!(outcomes[0].run.trigger, "manual");
    // While another run holds the lease, a manual run is refused.
    let slow = Fake::with(&[("sync", Behaviour::Sleep(Duration::from_millis(500)))]);
    let busy = scheduler(&meta, &slow, &clock, "busy");
    let job = reg.jobs["n_sync"].clone();
    let running = {
        let busy = Arc::clone(&busy);
        tokio::spawn(async move { busy.run_now(&job).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let e = s.run_now(&reg.jobs["n_sync"]).await.unwrap().unwrap_err();
    assert!(e.contains("already running"), "{e}");
    assert!(running.await.unwrap().unwrap().is_ok());
}
