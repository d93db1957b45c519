//! `POST /predict` and `/predict/batch`: fetch a model's feature service from the online store,
//! encode the values exactly as training did, score, and answer per row.
//!
//! Model versions are loaded once and cached. An alias (`champion` unless the request names a
//! version or alias) is re-resolved at most once a second; when it has moved, the new version is
//! loaded while requests keep using the old one, then swapped in. A version whose feature
//! service changed since training (content hash) is refused, never scored on other features.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_core::FeatureRef;
use quiver_core::registry::ObjectKind;
use quiver_ml::{Encoding, ModelArtifact, Objective};
use quiver_online::Value;
use quiver_registry::ModelVersion;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::AppState;
use crate::error::{ApiError, parse_body};
use crate::online::{entity_columns, read_features};

/// How often an alias is re-resolved against the metadata store.
const ALIAS_REFRESH_MS: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    model: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    alias: Option<String>,
    entities: serde_json::Map<String, Json>,
    #[serde(default)]
    request_data: Option<serde_json::Map<String, Json>>,
}

/// A loaded model version.
pub struct Loaded {
    version: ModelVersion,
    artifact: ModelArtifact,
    refs: Vec<FeatureRef>,
    checked_ms: AtomicI64,
}

/// Loaded versions by request selector (`name@alias` or `name:version`).
#[derive(Default)]
pub struct ModelCache {
    entries: RwLock<HashMap<String, Arc<Loaded>>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn registry_error(e: quiver_registry::Error) -> ApiError {
    match e {
        quiver_registry::Error::Model(m) => ApiError::not_found(m),
        other => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: other.to_string(),
        },
    }
}

async fn load(state: &AppState, v: ModelVersion) -> Result<Loaded, ApiError> {
    let current = state
        .registry
        .object_hash(ObjectKind::FeatureService, &v.feature_service);
    match current {
        None => {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                message: format!(
                    "model {} version {} reads feature service '{}', which the registry no longer has: retrain it on a current service",
                    v.name, v.version, v.feature_service
                ),
            });
        }
        Some(h) if h != v.service_hash => {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                message: format!(
                    "model {} version {} was trained on feature service '{}' as it was then (hash {}), but the service has changed since (hash {}): it would be scored on different features, so it is refused; retrain it (quiver train) or roll back the definitions",
                    v.name,
                    v.version,
                    v.feature_service,
                    &v.service_hash[..12.min(v.service_hash.len())],
                    &h[..12]
                ),
            });
        }
        Some(_) => {}
    }
    let path = quiver_registry::models::artifact_root(&state.root)
        .join(&v.artifact)
        .join("model.json");
    let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
        ApiError::internal(format!(
            "model {} version {}: cannot read {}: {e}",
            v.name,
            v.version,
            path.display()
        ))
    })?;
    let artifact = ModelArtifact::from_json(&text)
        .map_err(|e| ApiError::internal(format!("model {} version {}: {e}", v.name, v.version)))?;
    let names: Vec<String> = artifact.inputs.iter().map(|i| i.feature.clone()).collect();
    let refs = state
        .registry
        .resolve_features(&names)
        .map_err(|e| ApiError {
            status: StatusCode::CONFLICT,
            message: format!("model {} version {}: {e}", v.name, v.version),
        })?;
    Ok(Loaded {
        version: v,
        artifact,
        refs,
        checked_ms: AtomicI64::new(now_ms()),
    })
}

/// The version a request selects, loaded.
async fn resolve(
    state: &AppState,
    model: &str,
    version: Option<i64>,
    alias: Option<&str>,
) -> Result<Arc<Loaded>, ApiError> {
    let key = match (version, alias) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "give either \"version\" or \"alias\", not both",
            ));
        }
        (Some(v), None) => format!("{model}:{v}"),
        (None, a) => format!("{model}@{}", a.unwrap_or("champion")),
    };
    let cached = state
        .models
        .entries
        .read()
        .expect("lock")
        .get(&key)
        .cloned();
    if let Some(l) = &cached {
        let age = now_ms() - l.checked_ms.load(Ordering::Relaxed);
        if version.is_some() || age < ALIAS_REFRESH_MS {
            return Ok(Arc::clone(l));
        }
    }
    let v = match version {
        Some(n) => state.meta.model_version(model, n).await,
        None => {
            state
                .meta
                .model_by_alias(model, alias.unwrap_or("champion"))
                .await
        }
    }
    .map_err(registry_error)?;
    if let Some(l) = cached
        && l.version.version == v.version
    {
        l.checked_ms.store(now_ms(), Ordering::Relaxed);
        return Ok(l);
    }
    let loaded = Arc::new(load(state, v).await?);
    state
        .models
        .entries
        .write()
        .expect("lock")
        .insert(key, Arc::clone(&loaded));
    Ok(loaded)
}

fn encode(value: &Value, encoding: &Encoding) -> f64 {
    match (encoding, value) {
        (Encoding::Number, Value::Int64(v)) => *v as f64,
        (Encoding::Number, Value::Int32(v)) => *v as f64,
        (Encoding::Number, Value::Float64(v)) => *v,
        (Encoding::Number, Value::Float32(v)) => *v as f64,
        (Encoding::Number, Value::Bool(v)) => f64::from(u8::from(*v)),
        (Encoding::Category { vocabulary }, Value::String(s)) => {
            Encoding::category_code(vocabulary, s)
        }
        (Encoding::Category { vocabulary }, Value::Int64(v)) => {
            Encoding::category_code(vocabulary, &v.to_string())
        }
        _ => f64::NAN,
    }
}

async fn score(state: &AppState, body: &[u8], max_rows: usize) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: Request = parse_body(body)?;
    if req.request_data.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::bad(
            "request_data: this server has no request-time feature views yet; send only entities",
        ));
    }
    let loaded = resolve(state, &req.model, req.version, req.alias.as_deref()).await?;
    let columns = entity_columns(&req.entities, max_rows)?;
    let n = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
    if n == 0 {
        return Err(ApiError::bad(
            "entities: give at least one entity row, e.g. {\"user_id\": [1, 2]}",
        ));
    }
    let (views, results) = read_features(state, &loaded.refs, &columns, n).await?;
    // Where each model input's value sits: (view index, feature index).
    let slots: Vec<(usize, usize)> = loaded
        .refs
        .iter()
        .map(|r| {
            let vi = views.iter().position(|(v, _)| *v == r.view).expect("read");
            let fi = views[vi]
                .1
                .iter()
                .position(|f| *f == r.feature)
                .expect("read");
            (vi, fi)
        })
        .collect();
    let ttls: Vec<i64> = views
        .iter()
        .map(|(v, _)| state.registry.views[*v].ttl.micros())
        .collect();
    let now = chrono::Utc::now().timestamp_micros();
    let objective = loaded.artifact.model.objective();
    let mut row = vec![f64::NAN; slots.len()];
    let mut predictions = Vec::with_capacity(n);
    let label = loaded.version.name.clone();
    #[allow(clippy::needless_range_loop)]
    for e in 0..n {
        let mut missing = Vec::new();
        for (j, (vi, fi)) in slots.iter().enumerate() {
            row[j] = match &results[*vi][e] {
                Some(stored) if ttls[*vi] == 0 || now - stored.event_ts <= ttls[*vi] => {
                    encode(&stored.values[*fi], &loaded.artifact.inputs[j].encoding)
                }
                _ => f64::NAN,
            };
            if row[j].is_nan() {
                missing.push(loaded.artifact.inputs[j].feature.as_str());
            }
        }
        let p = loaded.artifact.model.predict(&row);
        let mut out = serde_json::Map::new();
        match objective {
            Objective::Multiclass { .. } => {
                let classes = &loaded.artifact.classes;
                let name = |k: usize| classes.get(k).cloned().unwrap_or_else(|| k.to_string());
                let best = (0..p.len())
                    .max_by(|a, b| p[*a].total_cmp(&p[*b]))
                    .unwrap_or(0);
                out.insert("class".into(), json!(name(best)));
                out.insert(
                    "probabilities".into(),
                    Json::Object((0..p.len()).map(|k| (name(k), json!(p[k]))).collect()),
                );
            }
            _ => {
                metrics::histogram!("quiver_prediction_score", "model" => label.clone())
                    .record(p[0]);
                out.insert("score".into(), json!(p[0]));
            }
        }
        out.insert("missing".into(), json!(missing));
        predictions.push(Json::Object(out));
    }
    let version = loaded.version.version.to_string();
    metrics::counter!("quiver_predictions_total", "model" => label.clone(), "version" => version.clone())
        .increment(n as u64);
    metrics::histogram!("quiver_predict_seconds", "model" => label, "version" => version)
        .record(started.elapsed().as_secs_f64());
    Ok(axum::Json(json!({
        "model": loaded.version.name,
        "version": loaded.version.version,
        "aliases": loaded.version.aliases,
        "task": loaded.version.task,
        "features": loaded.artifact.inputs.iter().map(|i| i.feature.as_str()).collect::<Vec<_>>(),
        "predictions": predictions,
    }))
    .into_response())
}

pub async fn predict(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    score(&state, &body, state.config.max_entities).await
}

/// Like /predict, with up to 10x the entity limit.
pub async fn predict_batch(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    score(&state, &body, state.config.max_entities.saturating_mul(10)).await
}
