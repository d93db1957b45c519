//! `GET /jobs`, `GET /jobs/{name}/runs` and `POST /jobs/{name}/run`: the scheduler's jobs and
//! their history, as `quiver jobs list` and `history` show them (one implementation, in
//! `quiver_jobs::status`).

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn store_error(e: quiver_registry::Error) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: e.to_string(),
    }
}

fn known(state: &AppState, name: &str) -> Result<(), ApiError> {
    let served = state.served();
    if served.registry.jobs.contains_key(name) {
        return Ok(());
    }
    Err(ApiError::not_found(format!(
        "no job '{name}'{}",
        quiver_core::registry::suggest(name, served.registry.jobs.keys())
    )))
}

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let served = state.served();
    let jobs = quiver_jobs::status::jobs_json(&state.meta, &served.registry, now_us())
        .await
        .map_err(store_error)?;
    Ok(AxumJson(json!({"registry_version": served.version, "jobs": jobs})).into_response())
}

#[derive(Deserialize)]
pub struct RunsQuery {
    limit: Option<i64>,
}

pub async fn runs(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Response, ApiError> {
    known(&state, &name)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 10_000);
    let runs: Vec<_> = state
        .meta
        .job_runs(Some(&name), limit)
        .await
        .map_err(store_error)?
        .iter()
        .map(quiver_jobs::status::run_json)
        .collect();
    Ok(AxumJson(json!({"job": name, "runs": runs})).into_response())
}

/// Enqueues a manual run now; a scheduler (`quiver scheduler`, `quiver serve --scheduler`)
/// starts it on its next tick, under the job's lease and with its retries.
pub async fn run(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    known(&state, &name)?;
    let now = now_us();
    state
        .meta
        .enqueue_run(&name, now, 1, "manual", now)
        .await
        .map_err(store_error)?;
    let id = quiver_registry::jobs::run_id(&name, now, 1);
    Ok((
        StatusCode::ACCEPTED,
        AxumJson(json!({
            "job": name,
            "run": id,
            "status": "pending",
            "message": "queued: a running scheduler (quiver scheduler, or quiver serve --scheduler) starts it within a second; follow it with GET /jobs/NAME/runs",
        })),
    )
        .into_response())
}
