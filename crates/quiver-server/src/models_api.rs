//! `POST /models/{name}/promote`, `/rollback` and `/rollout`: moving a model's aliases and
//! setting how `/predict` uses its challenger over HTTP, as `quiver models promote` /
//! `rollback` / `rollout` do (the metadata store's alias history, then the MLflow mirror when
//! tracking is configured). `/predict` and `/recommend` re-read aliases and rollouts at most once
//! a second, so a change applies without a restart.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, parse_body};

fn model_error(e: quiver_registry::Error) -> ApiError {
    match e {
        quiver_registry::Error::Model(m) if m.contains("no model") || m.contains("has no") => {
            ApiError::not_found(m)
        }
        quiver_registry::Error::Model(m) => ApiError::bad(m),
        other => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: other.to_string(),
        },
    }
}

fn default_alias() -> String {
    "champion".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteRequest {
    version: i64,
    #[serde(default = "default_alias")]
    alias: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    #[serde(default = "default_alias")]
    alias: String,
}

/// Points an alias (default `champion`) at a version: `{"version": 3, "alias": "champion"}` →
/// `{"name", "alias", "version", "previous", "changed"}`.
pub async fn promote(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: PromoteRequest = parse_body(&body)?;
    let before = state
        .meta
        .promote_model(&name, req.version, &req.alias)
        .await
        .map_err(model_error)?;
    let changed = before != Some(req.version);
    if changed {
        mirror(&state, &name, &req.alias, req.version).await?;
    }
    Ok(AxumJson(json!({"name": name, "alias": req.alias, "version": req.version, "previous": before, "changed": changed})).into_response())
}

/// Moves an alias back to the version it named before: `{"alias": "champion"}` →
/// `{"name", "alias", "from", "to"}`.
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest {
            alias: default_alias(),
        }
    } else {
        parse_body(&body)?
    };
    let (from, to) = state
        .meta
        .rollback_model(&name, &req.alias)
        .await
        .map_err(model_error)?;
    mirror(&state, &name, &req.alias, to).await?;
    Ok(AxumJson(json!({"name": name, "alias": req.alias, "from": from, "to": to})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutRequest {
    mode: String,
    #[serde(default)]
    share: Option<f64>,
}

/// Sets the rollout: `{"mode": "off" | "shadow" | "canary", "share": 0.1}` (share for a
/// canary, default 0.1) → the rollout as stored.
pub async fn rollout(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RolloutRequest = parse_body(&body)?;
    let rollout = match req.mode.as_str() {
        "off" => quiver_registry::Rollout::Off,
        "shadow" => quiver_registry::Rollout::Shadow,
        "canary" => quiver_registry::Rollout::canary(req.share.unwrap_or(0.1)),
        other => {
            return Err(ApiError::bad(format!(
                "mode '{other}': use off, shadow or canary"
            )));
        }
    };
    let stored = state
        .meta
        .set_rollout(&name, rollout)
        .await
        .map_err(model_error)?;
    Ok(AxumJson(json!({"name": name, "rollout": stored})).into_response())
}

/// Mirrors the move to MLflow when `tracking:` is configured (as the CLI does).
async fn mirror(state: &AppState, name: &str, alias: &str, version: i64) -> Result<(), ApiError> {
    quiver_pipeline::tracking::mirror(&state.root, name, alias, version)
        .await
        .map_err(|e| ApiError {
            status: StatusCode::BAD_GATEWAY,
            message: e.to_string(),
        })
}
