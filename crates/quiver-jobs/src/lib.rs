//! # quiver-jobs
//!
//! Runs the `jobs:` of the registry on their cron schedules, on one machine, with nothing else
//! to install, and hands off to Airflow where a team already has one.
//!
//! * [`Scheduler::tick`] is one pass of the loop: it marks runs whose scheduler died as
//!   abandoned (their lease expired) and retries them, enqueues the schedule slots that came
//!   due (per the job's `catchup`), and starts the due attempts whose dependencies succeeded,
//!   each under a lease (`quiver_job_leases`) so two schedulers on one registry never run a
//!   job twice at once. [`Scheduler::run_forever`] ticks every second.
//! * A run calls a [`TaskRunner`] (the `quiver` binary wires materialization, training and
//!   commands into it), under the job's timeout, with a heartbeat that keeps the lease; a
//!   panic or an error fails the attempt, never the scheduler. A failed attempt is retried
//!   after `retry_delay`, doubled each time, with jitter; when the retries are spent an alert
//!   goes to `alerts.webhook`.
//! * Every attempt is a row in the metadata store ([`quiver_registry::JobRun`]); metrics are
//!   `batch_job_executions_total{job_name,status}`, `batch_job_duration_seconds{job_name}`,
//!   `batch_job_failures_total{job_name,reason}` and
//!   `quiver_job_last_success_timestamp_seconds{job_name}`.
//! * [`airflow::dag`] writes the same jobs as an Airflow DAG whose tasks call `quiver jobs run`.
//!
//! Time comes from a [`Clock`], so tests drive schedules, backoffs and lease expiry with a
//! manual one.

pub mod airflow;
pub mod alerts;
pub mod deploy;
mod scheduler;
pub mod status;

pub use alerts::Alerter;
pub use scheduler::{
    Clock, ManualClock, RunOutcome, Scheduler, SchedulerOptions, SystemClock, TaskRunner,
    TickReport, backoff_us,
};
