use quiver_core::{Catchup, Duration, JobTask};

use super::{MINIMAL, err, registry};

const JOBS: &str = r#"
jobs:
  - name: sync_online
    schedule: "*/15 * * * *"
    task: {materialize_incremental: {views: [stats]}}
  - name: retrain_weekly
    schedule: "0 3 * * 1"
    timezone: Europe/Paris
    task: {train: {model: churn, service: churn_v1, labels: data/labels.parquet, label: churned}}
    depends_on: [sync_online]
  - name: export
    schedule: "30 2 * * *"
    task: {command: ["python3", "scripts/export.py"]}
    depends_on: [retrain_weekly]
    retries: 5
    retry_delay: 1m
    timeout: 1h
    catchup: all
"#;

#[test]
fn jobs_load_with_their_defaults() {
    let r = registry(&[("quiver.yaml", MINIMAL), ("features/jobs.yaml", JOBS)]).unwrap();
    let sync = &r.jobs["sync_online"];
    assert_eq!(
        sync.task,
        JobTask::MaterializeIncremental {
            views: vec!["stats".into()]
        }
    );
    assert_eq!((sync.retries, sync.catchup), (3, Catchup::Latest));
    assert_eq!(sync.retry_delay, Duration::from_seconds(30));
    assert_eq!(sync.timeout, None);
    let export = &r.jobs["export"];
    assert_eq!(
        export.task,
        JobTask::Command(vec!["python3".into(), "scripts/export.py".into()])
    );
    assert_eq!((export.retries, export.catchup), (5, Catchup::All));
    assert_eq!(export.timeout, Some(Duration::from_seconds(3600)));
    assert_eq!(
        r.jobs["retrain_weekly"].timezone.as_deref(),
        Some("Europe/Paris")
    );
    // Jobs round-trip through the stored JSON and have content hashes.
    let back = quiver_core::Registry::from_json(&r.to_json()).unwrap();
    assert_eq!(back.jobs["export"].task, export.task);
    assert!(
        r.object_hash(quiver_core::registry::ObjectKind::Job, "export")
            .is_some()
    );
}

#[test]
fn bad_jobs_are_refused_with_file_line_and_job() {
    let cases: Vec<(String, &str)> = vec![
        (
            JOBS.replace("\"*/15 * * * *\"", "\"every 15 minutes\""),
            "features/jobs.yaml:4:15: job 'sync_online', field 'schedule': 'every 15 minutes' is not a cron expression",
        ),
        (
            JOBS.replace("views: [stats]", "views: [stat]"),
            "job 'sync_online', field 'task': no feature view 'stat'; did you mean 'stats'?",
        ),
        (
            JOBS.replace("materialize_incremental:", "materialise:"),
            "features/jobs.yaml:5",
        ),
        (
            JOBS.replace("service: churn_v1", "service: churn"),
            "job 'retrain_weekly', field 'task': no feature service 'churn'",
        ),
        (
            JOBS.replace("Europe/Paris", "Paris"),
            "job 'retrain_weekly', field 'timezone': 'Paris' is not a time zone",
        ),
        (
            JOBS.replace("depends_on: [sync_online]", "depends_on: [export]"),
            "dependency cycle: export -> retrain_weekly -> export",
        ),
        (
            JOBS.replace("depends_on: [retrain_weekly]", "depends_on: [retrain]"),
            "job 'export', field 'depends_on': no job 'retrain'",
        ),
        (
            JOBS.replace("catchup: all", "catchup: some"),
            "job 'export', field 'catchup': 'some': use latest, all or none",
        ),
        (
            JOBS.replace("retry_delay: 1m", "retry_delay: soon"),
            "job 'export', field 'retry_delay': 'soon' is not a duration",
        ),
        (
            JOBS.replace("\"python3\", \"scripts/export.py\"", ""),
            "job 'export', field 'task': command needs a program",
        ),
        (
            JOBS.replace(
                "task: {command: [\"python3\", \"scripts/export.py\"]}",
                "task: {check: {names: [events_checks]}}",
            ),
            "job 'export', field 'task': no quality set 'events_checks'",
        ),
        (
            JOBS.replace(
                "task: {command: [\"python3\", \"scripts/export.py\"]}",
                "task: {check: {}}",
            ),
            "check names no quality sets and the registry declares none",
        ),
    ];
    for (text, needle) in cases {
        let e = err(&[("quiver.yaml", MINIMAL), ("features/jobs.yaml", &text)]);
        assert!(e.contains(needle), "'{e}' lacks '{needle}'");
    }
}
