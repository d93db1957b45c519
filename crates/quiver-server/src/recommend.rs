//! `POST /recommend`, `/recommend/batch` and `/similar-items`: wiring only. What a user gets
//! (CF, popularity, the cold-start blend, fold-in, exclusions) is decided by
//! `quiver_recs::serve`.
//!
//! A recommender is served by the version its `champion` alias names in the model registry,
//! loaded once (off the async threads) and kept in memory: item factors, user factors, the
//! training rows (to exclude what a user has seen) and popularity. The alias is re-read at most
//! once a second, as `/predict` does, so `quiver models promote` / `rollback` apply without a
//! restart; requests keep the old version until the new one is loaded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_recs::serve::{Answer, Query, Serving, Source, check_serve_k};
use quiver_registry::ModelVersion;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::AppState;
use crate::error::{ApiError, parse_body};
use crate::predict::ALIAS_REFRESH_MS;

/// The alias served.
const ALIAS: &str = "champion";

/// A loaded recommender version and its metric handles.
pub struct LoadedRec {
    version: ModelVersion,
    serving: Serving,
    checked_ms: AtomicI64,
    /// `quiver_recommendations_total{recommender, source}`, in [`Source::ALL`]'s order.
    served: [metrics::Counter; 3],
    seconds: metrics::Histogram,
}

/// Loaded recommenders by name.
#[derive(Default)]
pub struct RecCache {
    entries: RwLock<HashMap<String, Arc<LoadedRec>>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn recs_error(e: quiver_recs::Error) -> ApiError {
    match e {
        quiver_recs::Error::Invalid(m) => ApiError::bad(m),
        other => ApiError::internal(other.to_string()),
    }
}

/// Registers the series of a served recommender (at start, for each with a champion, and when
/// one is first loaded).
pub fn register_series(name: &str) {
    for s in Source::ALL {
        metrics::counter!("quiver_recommendations_total", "recommender" => name.to_string(), "source" => s.as_str())
            .increment(0);
    }
}

/// Sets `quiver_recommender_age_seconds` of the version served: seconds since it was
/// registered.
fn set_age(v: &ModelVersion) {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&v.created_at) {
        let age = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds();
        metrics::gauge!("quiver_recommender_age_seconds", "recommender" => v.name.clone())
            .set(age as f64 / 1000.0);
    }
}

/// The served version of `name`, loaded.
async fn resolve(state: &AppState, name: &str) -> Result<Arc<LoadedRec>, ApiError> {
    let cached = state.recs.entries.read().expect("lock").get(name).cloned();
    if let Some(l) = &cached
        && now_ms() - l.checked_ms.load(Ordering::Relaxed) < ALIAS_REFRESH_MS
    {
        return Ok(Arc::clone(l));
    }
    let served = state.served();
    if !served.registry.recommenders.contains_key(name) {
        return Err(ApiError::not_found(format!(
            "recommender: no recommender '{name}' in the applied registry{}",
            quiver_core::registry::suggest(name, served.registry.recommenders.keys())
        )));
    }
    let v = match state.meta.model_by_alias(name, ALIAS).await {
        Ok(v) => v,
        Err(quiver_registry::Error::Model(m)) => {
            return Err(ApiError::not_found(format!(
                "recommender '{name}' has no version to serve ({m}): train one with `quiver recs train {name} --promote {ALIAS}`"
            )));
        }
        Err(e) => {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
            });
        }
    };
    set_age(&v);
    if let Some(l) = cached
        && l.version.version == v.version
    {
        l.checked_ms.store(now_ms(), Ordering::Relaxed);
        return Ok(l);
    }
    if v.task != quiver_recs::registry::TASK {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "model {name} version {} is a {} model, not a recommender",
                v.version, v.task
            ),
        });
    }
    let root = state.root.clone();
    let v2 = v.clone();
    let model = tokio::task::spawn_blocking(move || quiver_recs::registry::load(&root, &v2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            ApiError::internal(format!("recommender {name} version {}: {e}", v.version))
        })?;
    register_series(name);
    let loaded = Arc::new(LoadedRec {
        served: Source::ALL.map(|s| {
            metrics::counter!("quiver_recommendations_total", "recommender" => name.to_string(), "source" => s.as_str())
        }),
        seconds: metrics::histogram!("quiver_recommend_seconds"),
        serving: Serving::new(model),
        checked_ms: AtomicI64::new(now_ms()),
        version: v,
    });
    state
        .recs
        .entries
        .write()
        .expect("lock")
        .insert(name.to_string(), Arc::clone(&loaded));
    Ok(loaded)
}

/// A user or item id: a string or an integer.
fn id_of(field: &str, v: &Json) -> Result<String, ApiError> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        other => Err(ApiError::bad(format!(
            "{field}: give a string or an integer id, not {other}"
        ))),
    }
}

fn default_k() -> i64 {
    10
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    recommender: String,
    user_id: Json,
    #[serde(default = "default_k")]
    k: i64,
    #[serde(default = "yes")]
    exclude_seen: bool,
    #[serde(default)]
    filter: serde_json::Map<String, Json>,
    #[serde(default)]
    interactions: Vec<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    recommender: String,
    user_ids: Vec<Json>,
    #[serde(default = "default_k")]
    k: i64,
    #[serde(default = "yes")]
    exclude_seen: bool,
    #[serde(default)]
    filter: serde_json::Map<String, Json>,
}

fn cold_start_kind(a: &Answer) -> Option<&'static str> {
    match (a.source, a.folded_in) {
        (Source::Popularity, _) => Some("new_user"),
        (_, true) => Some("fold_in"),
        (Source::Blend, false) => Some("blend"),
        (Source::Cf, false) => None,
    }
}

/// One user's answer as JSON; counts it in `quiver_recommendations_total` and
/// `quiver_cold_start_total`.
fn render_counted(l: &LoadedRec, user: &str, a: &Answer) -> Json {
    let i = Source::ALL
        .iter()
        .position(|s| *s == a.source)
        .expect("a source");
    l.served[i].increment(1);
    if let Some(kind) = cold_start_kind(a) {
        metrics::counter!("quiver_cold_start_total", "kind" => kind).increment(1);
    }
    let items = &l.serving.model.items;
    json!({
        "user_id": user,
        "source": a.source,
        "interactions": a.interactions,
        "items": a.items.iter().map(|&(i, s)| json!({
            "item_id": items.id(i),
            "score": s,
            "source": a.source,
        })).collect::<Vec<_>>(),
    })
}

/// `POST /recommend`.
pub async fn recommend(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let answer = async {
        let req: Request = parse_body(&body)?;
        let k = check_serve_k(req.k).map_err(recs_error)?;
        let user = id_of("user_id", &req.user_id)?;
        let interactions = req
            .interactions
            .iter()
            .enumerate()
            .map(|(i, v)| id_of(&format!("interactions[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()?;
        let l = resolve(&state, &req.recommender).await?;
        l.serving
            .check_filter(req.filter.keys().map(String::as_str))
            .map_err(recs_error)?;
        let a = l
            .serving
            .recommend(&Query {
                user: &user,
                interactions: &interactions,
                k,
                exclude_seen: req.exclude_seen,
            })
            .map_err(recs_error)?;
        let mut out = render_counted(&l, &user, &a);
        out["recommender"] = json!(req.recommender);
        out["version"] = json!(l.version.version);
        l.seconds.record(started.elapsed().as_secs_f64());
        Ok::<_, ApiError>(axum::Json(out))
    };
    answer.await.into_response()
}

/// `POST /recommend/batch`: several users, one answer each, in order.
pub async fn recommend_batch(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let answer = async {
        let req: BatchRequest = parse_body(&body)?;
        let k = check_serve_k(req.k).map_err(recs_error)?;
        let max = state.config.max_entities;
        if req.user_ids.is_empty() || req.user_ids.len() > max {
            return Err(ApiError::bad(format!(
                "user_ids: give 1 to {max} users (server.max_entities), not {}",
                req.user_ids.len()
            )));
        }
        let users = req
            .user_ids
            .iter()
            .enumerate()
            .map(|(i, v)| id_of(&format!("user_ids[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()?;
        let l = resolve(&state, &req.recommender).await?;
        l.serving
            .check_filter(req.filter.keys().map(String::as_str))
            .map_err(recs_error)?;
        let mut results = Vec::with_capacity(users.len());
        for user in &users {
            let a = l
                .serving
                .recommend(&Query {
                    user,
                    interactions: &[],
                    k,
                    exclude_seen: req.exclude_seen,
                })
                .map_err(recs_error)?;
            results.push(render_counted(&l, user, &a));
        }
        l.seconds.record(started.elapsed().as_secs_f64());
        Ok::<_, ApiError>(axum::Json(json!({
            "recommender": req.recommender,
            "version": l.version.version,
            "results": results,
        })))
    };
    answer.await.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarRequest {
    recommender: String,
    item_id: Json,
    #[serde(default = "default_k")]
    k: i64,
    #[serde(default)]
    by: Option<String>,
}

/// `POST /similar-items`: the items whose factors are closest (cosine) to an item's.
pub async fn similar_items(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let answer = async {
        let req: SimilarRequest = parse_body(&body)?;
        let k = check_serve_k(req.k).map_err(recs_error)?;
        match req.by.as_deref() {
            None | Some("cf") => {}
            Some("content") => {
                return Err(ApiError::bad(
                    "by: \"content\" (similarity of item embeddings) is not served yet; use \"cf\"",
                ));
            }
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "by: \"{other}\" is not a similarity; use \"cf\""
                )));
            }
        }
        let item = id_of("item_id", &req.item_id)?;
        let l = resolve(&state, &req.recommender).await?;
        let found = l.serving.similar_items(&item, k).map_err(|e| match e {
            quiver_recs::Error::Invalid(m) => ApiError::not_found(format!("item_id: {m}")),
            other => ApiError::internal(other.to_string()),
        })?;
        let items = &l.serving.model.items;
        Ok::<_, ApiError>(axum::Json(json!({
            "recommender": req.recommender,
            "version": l.version.version,
            "item_id": item,
            "by": "cf",
            "items": found.iter().map(|&(i, s)| json!({"item_id": items.id(i), "score": s})).collect::<Vec<_>>(),
        })))
    };
    answer.await.into_response()
}
