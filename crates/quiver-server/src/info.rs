//! Liveness, readiness, metrics, API description and read-only registry endpoints.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use quiver_core::registry::ObjectKind;
use serde_json::{Value as Json, json};

use crate::AppState;
use crate::error::ApiError;

pub async fn health() -> AxumJson<Json> {
    AxumJson(json!({"status": "ok"}))
}

/// 200 when the online and metadata stores answer, else 503 naming what is down.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let online = state.check_store().await;
    let ok = online.is_ok();
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "online_store": {"store": state.store.describe(), "ok": ok, "error": online.err()},
        "registry_version": state.served().version,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, AxumJson(body)).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The OpenAPI 3.1 description of every endpoint.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The OpenAPI document, parsed once.
fn openapi_doc() -> &'static Json {
    static DOC: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(OPENAPI).expect("openapi.json parses"))
}

/// The documented paths without parameters (`/predict`, not `/registry/views/{name}`).
pub fn documented_fixed_paths() -> impl Iterator<Item = &'static str> {
    openapi_doc()["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(p, _)| p.as_str())
        .filter(|p| !p.contains('{'))
}

/// The methods the OpenAPI document gives `path` (templates like `/registry/views/{name}`
/// match any segment), upper case; empty for an undocumented path.
pub fn documented_methods(path: &str) -> Vec<String> {
    let matches = |template: &str| {
        let (t, p): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}')))
    };
    openapi_doc()["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(template, _)| matches(template))
        .flat_map(|(_, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .map(|(m, _)| m.to_uppercase())
        })
        .collect()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see GET /openapi.json or /docs for the API")
}

fn list(state: &AppState, kind: ObjectKind) -> AxumJson<Json> {
    let served = state.served();
    let items: Vec<Json> = served
        .registry
        .names(kind)
        .iter()
        .filter_map(|n| {
            let mut v = served.registry.object_json(kind, n)?;
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "hash".into(),
                    Json::from(served.registry.object_hash(kind, n).unwrap_or_default()),
                );
            }
            Some(v)
        })
        .collect();
    AxumJson(json!({"registry_version": served.version, "items": items}))
}

fn one(state: &AppState, kind: ObjectKind, name: &str) -> Result<AxumJson<Json>, ApiError> {
    let served = state.served();
    let registry = &served.registry;
    let mut v = registry.object_json(kind, name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no {} '{name}'{}",
            kind.as_str(),
            quiver_core::registry::suggest(name, registry.names(kind).iter())
        ))
    })?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "hash".into(),
            Json::from(registry.object_hash(kind, name).unwrap_or_default()),
        );
        if kind == ObjectKind::FeatureView {
            o.insert(
                "used_by_services".into(),
                json!(registry.services_using_view(name)),
            );
        }
    }
    Ok(AxumJson(v))
}

pub async fn list_entities(State(s): State<Arc<AppState>>) -> AxumJson<Json> {
    list(&s, ObjectKind::Entity)
}
pub async fn list_sources(State(s): State<Arc<AppState>>) -> AxumJson<Json> {
    list(&s, ObjectKind::Source)
}
pub async fn list_views(State(s): State<Arc<AppState>>) -> AxumJson<Json> {
    list(&s, ObjectKind::FeatureView)
}
pub async fn list_services(State(s): State<Arc<AppState>>) -> AxumJson<Json> {
    list(&s, ObjectKind::FeatureService)
}
pub async fn get_view(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<AxumJson<Json>, ApiError> {
    one(&s, ObjectKind::FeatureView, &name)
}
pub async fn get_service(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<AxumJson<Json>, ApiError> {
    one(&s, ObjectKind::FeatureService, &name)
}
