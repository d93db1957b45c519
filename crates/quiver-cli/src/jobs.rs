//! `quiver jobs ...` and `quiver scheduler`: wiring of `quiver-jobs` to what runs each task
//! (materialization, training through `quiver-pipeline`, a program).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use futures::future::BoxFuture;
use quiver_core::repo::RepoSettings;
use quiver_core::{Job, JobTask, Registry};
use quiver_jobs::{Alerter, Scheduler, SchedulerOptions, SystemClock, TaskRunner, status};
use serde_json::{Value as Json, json};

use crate::output::{Output, plural};
use crate::registry_cmd::{open_store, stored};

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Every job: schedule, task, next run, last run and its status, paused or not.
    List,
    /// Past runs (every attempt), newest first; `--json` gives a list of runs with job,
    /// scheduled_at, started_at, ended_at, status (succeeded, failed, abandoned, running,
    /// pending, skipped), attempt and error.
    History {
        /// Only this job.
        name: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Run a job now, in the foreground, with its retries; exits non-zero when it fails.
    ///
    /// Takes the job's lease like a scheduled run, so it never runs beside another run of the
    /// same job. Example: quiver jobs run sync_online
    Run {
        /// The job.
        name: String,
        /// Retries instead of the job's own (the Airflow export passes 0: Airflow retries).
        #[arg(long)]
        retries: Option<u32>,
    },
    /// Stop scheduling a job (a run in progress finishes).
    Pause {
        /// The job.
        name: String,
    },
    /// Schedule a paused job again (its missed slots follow its `catchup`).
    Resume {
        /// The job.
        name: String,
    },
    /// Write the jobs as an Airflow DAG file whose tasks call `quiver jobs run`.
    ///
    /// One DAG per schedule and time zone, with the same retries, retry delay, timeouts and
    /// dependencies. Example: quiver jobs export --airflow dags/quiver_shop.py
    Export {
        /// The DAG file to write.
        #[arg(long, value_name = "OUT.py")]
        airflow: PathBuf,
        /// How Airflow workers call Quiver.
        #[arg(long, default_value = "quiver")]
        quiver: String,
        /// The repository on the Airflow workers (default: this one's absolute path).
        #[arg(long)]
        remote_repo: Option<String>,
    },
}

/// Runs a job's task in this process.
pub struct CliRunner {
    repo: PathBuf,
    /// The online store to write (a server's own); else the one quiver.yaml names, opened per
    /// run.
    store: Option<Arc<dyn quiver_online::OnlineStore>>,
}

impl CliRunner {
    /// A runner for the repository at `repo`.
    pub fn new(repo: &Path, store: Option<Arc<dyn quiver_online::OnlineStore>>) -> Arc<CliRunner> {
        Arc::new(CliRunner {
            repo: repo.to_path_buf(),
            store,
        })
    }
}

impl TaskRunner for CliRunner {
    fn alias_moved(
        &self,
        name: &str,
        alias: &str,
        version: i64,
    ) -> BoxFuture<'static, Result<(), String>> {
        let (repo, name, alias) = (self.repo.clone(), name.to_string(), alias.to_string());
        Box::pin(async move {
            quiver_pipeline::tracking::mirror(&repo, &name, &alias, version)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn run(&self, job: &Job) -> BoxFuture<'static, Result<Json, String>> {
        let (repo, task, store) = (self.repo.clone(), job.task.clone(), self.store.clone());
        let deploy = job.deploy.is_some();
        Box::pin(async move {
            let quiet = Output::new(true, false);
            let failed = |e: anyhow::Error| format!("{e:#}");
            match task {
                JobTask::MaterializeIncremental { views } => crate::online::materialize_into(
                    &repo, store, None, "now", views, 10_000, &quiet,
                )
                .await
                .map_err(failed),
                JobTask::Train {
                    model,
                    service,
                    labels,
                    label,
                    algorithm,
                    params,
                    promote,
                } => {
                    let mut request =
                        quiver_pipeline::TrainRequest::new(&service, repo.join(labels), &label);
                    request.algorithm = match algorithm.as_deref() {
                        Some("logistic") => quiver_pipeline::Algorithm::Logistic,
                        _ => quiver_pipeline::Algorithm::Gbdt,
                    };
                    request.params = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    request.name = Some(model);
                    request.promote = promote;
                    // A deployment's gate compares with the champion on the same test rows.
                    if deploy {
                        request.compare_with = Some("champion".into());
                    }
                    let store = open_store(&repo).await.map_err(failed)?;
                    let applied = stored(&repo).await.map_err(failed)?;
                    let silent: Arc<dyn quiver_pipeline::Progress> = Arc::new(());
                    let trained =
                        quiver_pipeline::train(&repo, &store, &applied, &request, &silent)
                            .await
                            .map_err(|e| failed(e.into()))?;
                    Ok(json!({
                        "model": trained.name,
                        "version": trained.version,
                        "metrics": quiver_pipeline::evaluation::headline(&trained.evaluation),
                        "baseline": trained.baseline.as_ref().map(|b| json!({
                            "version": b.version,
                            "metrics": quiver_pipeline::evaluation::headline(&b.evaluation),
                        })),
                    }))
                }
                JobTask::Snapshot { views } => crate::snapshot::run_job(&repo, &views)
                    .await
                    .map_err(failed),
                JobTask::Check { names } => run_checks(&repo, &names).await,
                JobTask::RecsTrain {
                    recommender,
                    promote,
                } => crate::recs::train(
                    &repo,
                    &recommender,
                    None,
                    None,
                    // As of its latest interaction, as `quiver recs train` does.
                    None,
                    promote.as_deref(),
                    0,
                    &quiet,
                )
                .await
                .map_err(failed),
                JobTask::Command(argv) => run_command(&repo, &argv).await,
            }
        })
    }
}

/// Runs quality sets as `quiver check` does (results stored with trigger `job`); fails when an
/// error-severity check fails, naming each failing check.
async fn run_checks(repo: &Path, names: &[String]) -> Result<Json, String> {
    use quiver_monitor::quality::{self, NoScanProgress, ScanProgress, Status};
    let failed = |e: anyhow::Error| format!("{e:#}");
    let applied = stored(repo).await.map_err(failed)?;
    let meta = open_store(repo).await.map_err(failed)?;
    let engine = quiver_offline::OfflineEngine::new(applied.registry, repo);
    let silent: Arc<dyn ScanProgress> = Arc::new(NoScanProgress);
    let now = chrono::Utc::now().timestamp_micros();
    let reports = quality::check(&engine, &meta, names, now, "job", applied.version, &silent)
        .await
        .map_err(|e| e.to_string())?;
    // A failed error-severity check alerts as check_failed (the run's failure adds job_failed).
    let alerts = quiver_monitor::alerts::check_failed(&engine.registry().project, "job", &reports);
    if !alerts.is_empty() {
        let alerter = crate::alerts::alerter(repo, &meta).map_err(failed)?;
        crate::alerts::deliver(&alerter, alerts, &Output::new(true, false)).await;
    }
    let failing: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.results
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(move |c| format!("{} #{} {}: {}", r.quality, c.index, c.check_type, c.message))
        })
        .collect();
    if !failing.is_empty() {
        return Err(format!(
            "{} failed: {}",
            plural(failing.len() as u64, "check"),
            failing.join("; ")
        ));
    }
    Ok(json!({
        "quality": reports.iter().map(|r| json!({
            "quality": r.quality,
            "status": r.status().as_str(),
            "checks": r.results.len(),
            "warnings": r.results.iter().filter(|c| c.status == Status::Warn).count(),
        })).collect::<Vec<_>>(),
    }))
}

/// Runs a program in the repository folder; its output's tail goes to the summary or the error.
/// The child is killed when the run is dropped (a timeout, a scheduler stopping).
async fn run_command(repo: &Path, argv: &[String]) -> Result<Json, String> {
    let tail = |path: &Path| {
        let b = std::fs::read(path).unwrap_or_default();
        let s = String::from_utf8_lossy(&b);
        let s = s.trim_end();
        let start = s.char_indices().rev().nth(2000).map_or(0, |(i, _)| i);
        s[start..].to_string()
    };
    let io = |e: std::io::Error| format!("cannot start {}: {e}", argv[0]);
    let logs = tempfile::tempdir().map_err(io)?;
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(repo)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).map_err(io)?)
        .stderr(std::fs::File::create(&err_path).map_err(io)?)
        .spawn()
        .map_err(io)?;
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if matches!(self.0.try_wait(), Ok(None)) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let mut child = KillOnDrop(child);
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Err(e) => return Err(format!("waiting for {}: {e}", argv[0])),
        }
    };
    if status.success() {
        Ok(json!({"exit_code": 0, "stdout": tail(&out_path)}))
    } else {
        let stderr = tail(&err_path);
        Err(format!(
            "{} exited with {status}: {}",
            argv.join(" "),
            if stderr.is_empty() {
                tail(&out_path)
            } else {
                stderr
            }
        ))
    }
}

/// A scheduler for `repo` with the system clock, its alerts and project.
pub async fn scheduler_for(
    repo: &Path,
    project: &str,
    store: Option<Arc<dyn quiver_online::OnlineStore>>,
) -> anyhow::Result<Arc<Scheduler>> {
    let settings = RepoSettings::load(repo)?;
    let meta = open_store(repo).await?;
    let alerter =
        Alerter::from_settings(&settings.alerts, Some(meta.clone())).map_err(anyhow::Error::msg)?;
    Ok(Scheduler::new(
        meta,
        CliRunner::new(repo, store),
        Arc::new(SystemClock),
        alerter,
        SchedulerOptions::new(project),
    ))
}

fn job<'r>(registry: &'r Registry, name: &str) -> anyhow::Result<&'r Job> {
    registry.jobs.get(name).with_context(|| {
        format!(
            "no job '{name}'{}",
            if registry.jobs.is_empty() {
                " (the registry declares no jobs: add `jobs:` to a definition file and apply)"
                    .to_string()
            } else {
                quiver_core::registry::suggest(name, registry.jobs.keys())
            }
        )
    })
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `quiver jobs ...`.
pub async fn run(repo: &Path, cmd: JobsCommand, out: &Output) -> anyhow::Result<()> {
    let applied = stored(repo).await?;
    let registry = applied.registry;
    let meta = open_store(repo).await?;
    match cmd {
        JobsCommand::List => {
            let jobs = status::jobs_json(&meta, &registry, now_us()).await?;
            out.table(
                &[
                    "job",
                    "schedule",
                    "task",
                    "next run",
                    "last run",
                    "last status",
                ],
                jobs.iter()
                    .map(|j| {
                        let text = |v: &Json| v.as_str().unwrap_or("").to_string();
                        vec![
                            text(&j["job"]),
                            format!("{} ({})", text(&j["schedule"]), text(&j["timezone"])),
                            text(&j["task"]),
                            if j["paused"] == true {
                                "paused".into()
                            } else {
                                text(&j["next_run"])
                            },
                            text(&j["last_run"]["scheduled_at"]),
                            match &j["last_run"] {
                                Json::Null => "never ran".into(),
                                r => format!("{} (attempt {})", text(&r["status"]), r["attempt"]),
                            },
                        ]
                    })
                    .collect(),
            );
            out.say(format!(
                "{}; run them with `quiver scheduler` or `quiver serve --scheduler`",
                plural(jobs.len() as u64, "job")
            ));
            out.emit(&json!({"jobs": jobs}));
        }
        JobsCommand::History { name, limit } => {
            if let Some(n) = &name {
                job(&registry, n)?;
            }
            let runs: Vec<Json> = meta
                .job_runs(name.as_deref(), limit)
                .await?
                .iter()
                .map(status::run_json)
                .collect();
            out.table(
                &[
                    "job",
                    "scheduled",
                    "attempt",
                    "status",
                    "started",
                    "ended",
                    "error",
                ],
                runs.iter()
                    .map(|r| {
                        let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
                        vec![
                            text("job"),
                            text("scheduled_at"),
                            r["attempt"].to_string(),
                            text("status"),
                            text("started_at"),
                            text("ended_at"),
                            text("error").chars().take(80).collect(),
                        ]
                    })
                    .collect(),
            );
            out.emit(&Json::Array(runs));
        }
        JobsCommand::Run { name, retries } => {
            let mut job = job(&registry, &name)?.clone();
            if let Some(r) = retries {
                job.retries = r;
            }
            let scheduler = scheduler_for(repo, &registry.project, None).await?;
            out.say(format!(
                "running job {name} ({}) with up to {} …",
                status::describe_task(&job),
                plural(u64::from(job.retries), "retry")
            ));
            let outcomes = match scheduler.run_now(&job).await? {
                Ok(o) => o,
                Err(busy) => anyhow::bail!(busy),
            };
            let runs: Vec<Json> = outcomes.iter().map(|o| status::run_json(&o.run)).collect();
            for r in &runs {
                out.say(format!(
                    "  attempt {}: {}{}",
                    r["attempt"],
                    r["status"].as_str().unwrap_or(""),
                    r["error"]
                        .as_str()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
            out.emit(&json!({"job": name, "runs": runs}));
            let last = outcomes.last().map(|o| o.run.status.as_str());
            if last != Some("succeeded") {
                anyhow::bail!(
                    "job {name} failed after {}",
                    plural(outcomes.len() as u64, "attempt")
                );
            }
            out.say(format!("job {name} succeeded"));
        }
        JobsCommand::Pause { name } => {
            job(&registry, &name)?;
            meta.set_job_paused(&name, true).await?;
            out.say(format!(
                "job {name} paused (`quiver jobs resume {name}` to schedule it again)"
            ));
            out.emit(&json!({"job": name, "paused": true}));
        }
        JobsCommand::Resume { name } => {
            job(&registry, &name)?;
            meta.set_job_paused(&name, false).await?;
            out.say(format!("job {name} resumed"));
            out.emit(&json!({"job": name, "paused": false}));
        }
        JobsCommand::Export {
            airflow,
            quiver,
            remote_repo,
        } => {
            anyhow::ensure!(
                !registry.jobs.is_empty(),
                "the registry declares no jobs: nothing to export"
            );
            let repo_path = match remote_repo {
                Some(r) => r,
                None => std::fs::canonicalize(repo)?.display().to_string(),
            };
            let text = quiver_jobs::airflow::dag(&registry, &quiver, &repo_path);
            std::fs::write(&airflow, text)
                .with_context(|| format!("cannot write {}", airflow.display()))?;
            out.say(format!(
                "wrote {} ({} as Airflow tasks calling `{quiver} jobs run`)",
                airflow.display(),
                plural(registry.jobs.len() as u64, "job")
            ));
            out.emit(&json!({"file": airflow.display().to_string(), "jobs": registry.jobs.len()}));
        }
    }
    Ok(())
}

/// `quiver scheduler`: runs the jobs until SIGTERM or Ctrl-C, picking up `apply`; with
/// `metrics_port`, serves their metrics meanwhile.
pub async fn run_scheduler(
    repo: &Path,
    metrics_port: Option<u16>,
    out: &Output,
) -> anyhow::Result<()> {
    let applied = stored(repo).await?;
    let scheduler = scheduler_for(repo, &applied.registry.project, None).await?;
    // The recorder first: series registered before it is installed are dropped, and the
    // metrics port must list every job (at zero) from its first answer.
    quiver_server::metrics_handle();
    Scheduler::register_metrics(&applied.registry);
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = match metrics_port {
        Some(port) => {
            let addr = format!("127.0.0.1:{port}");
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("--metrics-port: cannot listen on {addr}"))?;
            out.say(format!("job metrics on http://{addr}/metrics"));
            Some(tokio::spawn(quiver_server::serve_metrics(
                listener,
                async {
                    let _ = metrics_stopped.await;
                },
            )))
        }
        None => None,
    };
    out.say(format!(
        "scheduling {} of project '{}' as {} (Ctrl-C to stop; runs in progress finish first)",
        plural(applied.registry.jobs.len() as u64, "job"),
        applied.registry.project,
        scheduler.owner()
    ));
    scheduler
        .run_forever(
            std::time::Duration::from_secs(1),
            quiver_server::shutdown_signal(),
        )
        .await;
    let _ = stop_metrics.send(());
    if let Some(m) = metrics {
        let _ = m.await;
    }
    out.say("scheduler stopped");
    Ok(())
}
