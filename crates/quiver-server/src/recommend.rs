//! `POST /recommend`, `/recommend/batch` and `/similar-items`: wiring only. What a user gets
//! (CF, popularity, the cold-start blend, fold-in, exclusions) is decided by
//! `quiver_recs::serve`.
//!
//! A recommender is served by the version its `champion` alias names in the model registry,
//! loaded once (off the async threads) and kept in memory: item factors and popularity. Its
//! users' factors and training rows (to exclude what a user has seen) are written to the online
//! store at load and read per request (`quiver_recs::users`; again when half the TTL has
//! passed), or kept in memory with `serving: {user_factors: memory}`. The alias is re-read at most
//! once a second, as `/predict` does, so `quiver models promote` / `rollback` apply without a
//! restart; requests keep the old version until the new one is loaded.
//!
//! A user of a recommender that an experiment splits (`experiments:`) is served their arm's
//! policy (`quiver_recs::ab::assign`, `Policy::for_arm`); the answer names the experiment and
//! the arm, and is logged as an exposure ([`crate::exposure_log`], `ab_exposures_total`).
//! Filters on item attributes are `Serving::filter_mask`'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_core::experiment::Experiment;
use quiver_core::recommender::UserFactors;
use quiver_recs::ab::{Exposure, assign};
use quiver_recs::serve::{Answer, Policy, Query, Serving, Source, UserRef, check_serve_k};
use quiver_recs::users::UserRow;
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
    /// `Some(ttl in µs)` when users' rows are read from the online store
    /// (`serving.user_factors: online`), `None` when the version keeps them in memory.
    online_ttl_us: Option<i64>,
    /// When the users' rows were last written to the online store (µs).
    published_us: AtomicI64,
    /// `quiver_recommendations_total{recommender, source}`, in [`Source::ALL`]'s order.
    served: [metrics::Counter; 3],
    seconds: metrics::Histogram,
}

/// Loaded recommenders by name, and the names whose new version is loading.
#[derive(Default)]
pub struct RecCache {
    entries: RwLock<HashMap<String, Arc<LoadedRec>>>,
    loading: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn recs_error(e: quiver_recs::Error) -> ApiError {
    match e {
        quiver_recs::Error::Invalid(m) => ApiError::bad(m),
        quiver_recs::Error::NotFound(m) => ApiError::not_found(m),
        quiver_recs::Error::Online(e @ quiver_online::OnlineError::Unavailable { .. }) => {
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
            }
        }
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

/// The served version of `name`, loaded. When the alias has moved to a version not loaded yet,
/// one background task loads it (files, content index) while requests go on with the version
/// loaded, which is replaced only when the new one is ready: a swap fails no request and
/// makes none wait. Only the first request of a recommender waits for its load.
async fn resolve(state: &Arc<AppState>, name: &str) -> Result<Arc<LoadedRec>, ApiError> {
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
    if let Some(l) = cached {
        l.checked_ms.store(now_ms(), Ordering::Relaxed);
        refresh_rows(state, name, &l);
        if l.version.version != v.version
            && state
                .recs
                .loading
                .lock()
                .expect("lock")
                .insert(name.to_string())
        {
            let (state, name) = (Arc::clone(state), name.to_string());
            tokio::spawn(async move {
                if let Err(e) = load(&state, &name, v).await {
                    eprintln!("quiver serve: recommender {name}: {}", e.message);
                }
                state.recs.loading.lock().expect("lock").remove(&name);
            });
        }
        return Ok(l);
    }
    load(state, name, v).await
}

/// Loads version `v` of recommender `name` and serves it from now on.
async fn load(state: &AppState, name: &str, v: ModelVersion) -> Result<Arc<LoadedRec>, ApiError> {
    if v.task != quiver_recs::registry::TASK {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "model {name} version {} is a {} model, not a recommender",
                v.version, v.task
            ),
        });
    }
    let spec = state
        .served()
        .registry
        .recommenders
        .get(name)
        .map(|r| r.serving)
        .unwrap_or_default();
    quiver_recs::registry::fetch(&state.root, &v)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let root = state.root.clone();
    let v2 = v.clone();
    // Loading and preparing (the content index) happen off the request threads; requests keep
    // the version they have until this one is ready.
    let mut serving = tokio::task::spawn_blocking(move || {
        quiver_recs::registry::load(&root, &v2).map(Serving::new)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("recommender {name} version {}: {e}", v.version)))?;
    let online_ttl_us = (spec.user_factors == UserFactors::Online).then(|| spec.ttl.micros());
    let mut published_us = 0;
    if let Some(ttl) = online_ttl_us {
        // The users' rows go to the online store before the version is served; then the
        // server keeps only the item side.
        published_us = publish_rows(state, name, &v, &serving.model, ttl).await?;
        serving.forget_users();
    }
    register_series(name);
    let loaded = Arc::new(LoadedRec {
        served: Source::ALL.map(|s| {
            metrics::counter!("quiver_recommendations_total", "recommender" => name.to_string(), "source" => s.as_str())
        }),
        seconds: metrics::histogram!("quiver_recommend_seconds"),
        serving,
        checked_ms: AtomicI64::new(now_ms()),
        online_ttl_us,
        published_us: AtomicI64::new(published_us),
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

/// Writes version `v`'s users' rows to the online store (`quiver_recs::users::publish`);
/// returns their event time.
async fn publish_rows(
    state: &AppState,
    name: &str,
    v: &ModelVersion,
    model: &quiver_recs::RecModel,
    ttl_us: i64,
) -> Result<i64, ApiError> {
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_micros();
    let n = quiver_recs::users::publish(&*state.store, model, v.version, ttl_us, now, |_, _| {})
        .await
        .map_err(|e| {
            let mut e = recs_error(e);
            e.message = format!(
                "recommender {name} version {}: writing its users' rows to the online store: {}",
                v.version, e.message
            );
            e
        })?;
    eprintln!(
        "quiver serve: recommender {name} version {}: {n} users' rows written to the online store ({}) in {:.1} s",
        v.version,
        state.store.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(now)
}

/// Writes the served version's users' rows again once half their TTL has passed (one
/// background task, from the version's files: the server no longer holds the users).
fn refresh_rows(state: &Arc<AppState>, name: &str, l: &Arc<LoadedRec>) {
    let Some(ttl) = l.online_ttl_us else {
        return;
    };
    let now = chrono::Utc::now().timestamp_micros();
    if now - l.published_us.load(Ordering::Relaxed) < ttl / 2 {
        return;
    }
    let task = format!("{name} (rows)");
    if !state
        .recs
        .loading
        .lock()
        .expect("lock")
        .insert(task.clone())
    {
        return;
    }
    let (state, name, l) = (Arc::clone(state), name.to_string(), Arc::clone(l));
    tokio::spawn(async move {
        let (root, v) = (state.root.clone(), l.version.clone());
        let model = tokio::task::spawn_blocking(move || quiver_recs::registry::load(&root, &v))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match model {
            Ok(m) => match publish_rows(&state, &name, &l.version, &m, ttl).await {
                Ok(t) => l.published_us.store(t, Ordering::Relaxed),
                Err(e) => eprintln!("quiver serve: {}", e.message),
            },
            Err(e) => eprintln!("quiver serve: recommender {name}: {e}"),
        }
        state.recs.loading.lock().expect("lock").remove(&task);
    });
}

/// The users' rows of `users` from the online store, in order, when `l` reads them from there
/// (`None`: the loaded version holds them).
async fn rows_of(
    state: &AppState,
    l: &LoadedRec,
    users: &[&str],
) -> Result<Option<Vec<Option<UserRow>>>, ApiError> {
    let Some(ttl) = l.online_ttl_us else {
        return Ok(None);
    };
    let now = chrono::Utc::now().timestamp_micros();
    quiver_recs::users::read(
        &*state.store,
        &l.serving.model,
        l.version.version,
        users,
        ttl,
        now,
    )
    .await
    .map(Some)
    .map_err(recs_error)
}

/// User `i` of a [`rows_of`] answer for `users[i]`.
fn user_at<'a>(
    l: &'a LoadedRec,
    rows: &'a Option<Vec<Option<UserRow>>>,
    users: &[&str],
    i: usize,
) -> Option<UserRef<'a>> {
    match rows {
        None => l.serving.user_in_memory(users[i]),
        Some(r) => r[i].as_ref().map(UserRow::as_user),
    }
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
    #[serde(default)]
    experiment: Option<String>,
    /// False for a preview (the web UI's): the answer names the arm but is not an exposure.
    #[serde(default = "yes")]
    log_exposure: bool,
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
    #[serde(default)]
    experiment: Option<String>,
}

/// The experiment a request is in: the one it names (which must split its recommender), else
/// the one splitting its recommender, if any.
fn experiment_for<'a>(
    registry: &'a quiver_core::Registry,
    recommender: &str,
    named: Option<&str>,
) -> Result<Option<&'a Experiment>, ApiError> {
    let Some(name) = named else {
        return Ok(quiver_recs::ab::experiment_of(registry, recommender));
    };
    let e = registry.experiments.get(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "experiment: no experiment '{name}' in the applied registry{}",
            quiver_core::registry::suggest(name, registry.experiments.keys())
        ))
    })?;
    if e.recommender != recommender {
        return Err(ApiError::bad(format!(
            "experiment: '{name}' splits the users of recommender '{}', not '{recommender}'",
            e.recommender
        )));
    }
    Ok(Some(e))
}

/// A user's arm in an experiment.
struct Arm<'a> {
    experiment: &'a Experiment,
    name: &'a str,
    policy: Policy,
}

fn arm_of<'a>(e: Option<&'a Experiment>, user: &str) -> Option<Arm<'a>> {
    let e = e?;
    let name = e.arms[assign(e, user)].arm.as_str();
    Some(Arm {
        experiment: e,
        name,
        // Arms are checked at apply; an unknown one would be served the recommender's policy.
        policy: Policy::for_arm(name).unwrap_or_default(),
    })
}

/// Marks an answer with its experiment and arm and returns its exposure row (for
/// [`log_exposures`]).
fn expose(l: &LoadedRec, arm: &Arm<'_>, user: &str, a: &Answer, out: &mut Json) -> Exposure {
    let e = arm.experiment;
    out["experiment"] = json!(e.name);
    out["arm"] = json!(arm.name);
    Exposure {
        ts_us: chrono::Utc::now().timestamp_micros(),
        experiment: Arc::from(e.name.as_str()),
        arm: Arc::from(arm.name),
        recommender: Arc::from(l.version.name.as_str()),
        version: l.version.version,
        user: user.to_string(),
        items: a
            .items
            .iter()
            .map(|&(i, _)| l.serving.item_id(i).to_string())
            .collect(),
        source: a.source.as_str(),
    }
}

/// Counts exposures in `ab_exposures_total` and hands them to the exposure log.
fn log_exposures(state: &AppState, exposures: Vec<Exposure>) {
    if exposures.is_empty() {
        return;
    }
    for x in &exposures {
        metrics::counter!("ab_exposures_total", "experiment" => x.experiment.to_string(), "arm" => x.arm.to_string())
            .increment(1);
    }
    state.exposure_log.log(exposures);
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
    let sv = &l.serving;
    if a.items.iter().any(|&(i, _)| sv.is_new_item(i)) {
        metrics::counter!("quiver_cold_start_total", "kind" => "new_item").increment(1);
    }
    json!({
        "user_id": user,
        "source": a.source,
        "interactions": a.interactions,
        "items": a.items.iter().map(|&(i, s)| json!({
            "item_id": sv.item_id(i),
            "score": s,
            "source": if sv.is_new_item(i) { "content" } else { a.source.as_str() },
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
        let allowed = l.serving.filter_mask(&req.filter).map_err(recs_error)?;
        let served = state.served();
        let experiment = experiment_for(
            &served.registry,
            &req.recommender,
            req.experiment.as_deref(),
        )?;
        let arm = arm_of(experiment, &user);
        let users = [user.as_str()];
        let rows = rows_of(&state, &l, &users).await?;
        let a = l
            .serving
            .recommend_for(
                &Query {
                    user: &user,
                    interactions: &interactions,
                    k,
                    exclude_seen: req.exclude_seen,
                    allowed: allowed.as_deref(),
                    policy: arm.as_ref().map_or(Policy::Served, |a| a.policy),
                },
                user_at(&l, &rows, &users, 0),
            )
            .map_err(recs_error)?;
        let mut out = render_counted(&l, &user, &a);
        out["recommender"] = json!(req.recommender);
        out["version"] = json!(l.version.version);
        if let Some(arm) = &arm {
            let exposure = expose(&l, arm, &user, &a, &mut out);
            if req.log_exposure {
                log_exposures(&state, vec![exposure]);
            }
        }
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
        let allowed = l.serving.filter_mask(&req.filter).map_err(recs_error)?;
        let served = state.served();
        let experiment = experiment_for(
            &served.registry,
            &req.recommender,
            req.experiment.as_deref(),
        )?;
        let mut results = Vec::with_capacity(users.len());
        let mut exposures = Vec::new();
        let names: Vec<&str> = users.iter().map(String::as_str).collect();
        let rows = rows_of(&state, &l, &names).await?;
        for (i, user) in users.iter().enumerate() {
            let arm = arm_of(experiment, user);
            let a = l
                .serving
                .recommend_for(
                    &Query {
                        user,
                        interactions: &[],
                        k,
                        exclude_seen: req.exclude_seen,
                        allowed: allowed.as_deref(),
                        policy: arm.as_ref().map_or(Policy::Served, |a| a.policy),
                    },
                    user_at(&l, &rows, &names, i),
                )
                .map_err(recs_error)?;
            let mut out = render_counted(&l, user, &a);
            if let Some(arm) = &arm {
                exposures.push(expose(&l, arm, user, &a, &mut out));
            }
            results.push(out);
        }
        log_exposures(&state, exposures);
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
        let by_content = match req.by.as_deref() {
            None | Some("cf") => false,
            Some("content") => true,
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "by: \"{other}\" is not a similarity; use \"cf\" or \"content\""
                )));
            }
        };
        let item = id_of("item_id", &req.item_id)?;
        let l = resolve(&state, &req.recommender).await?;
        if by_content {
            let found = l
                .serving
                .similar_by_content(&item, k)
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "by: \"content\": recommender '{}' version {} has no content vectors (declare cold_start: {{content: VIEW}}, a view of item embeddings, and train again)",
                        req.recommender, l.version.version
                    ))
                })?
                .map_err(|e| ApiError::not_found(format!("item_id: {e}")))?;
            return Ok(axum::Json(json!({
                "recommender": req.recommender,
                "version": l.version.version,
                "item_id": item,
                "by": "content",
                "items": found.iter().map(|(i, s)| json!({"item_id": i, "score": s})).collect::<Vec<_>>(),
            })));
        }
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Exposures and outcomes up to this time (default: now).
    as_of: Option<String>,
}

/// `GET /experiments/{name}/report[?as_of=T]`: `quiver ab report`'s numbers
/// (`quiver_recs::ab::report`) as JSON.
pub async fn experiment_report(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<ReportQuery>,
) -> Response {
    let answer = async {
        let served = state.served();
        quiver_recs::ab::experiment(&served.registry, &name)
            .map_err(|e| ApiError::not_found(e.to_string()))?;
        let as_of = match q.as_of.as_deref() {
            Some(t) => Some(
                quiver_online::parse_time(t).map_err(|e| ApiError::bad(format!("as_of: {e}")))?,
            ),
            None => None,
        };
        // No exposures yet is a 404 (`Error::NotFound`), a bad experiment a 400.
        let report = quiver_recs::ab::report(&served.registry, &state.root, &name, as_of)
            .await
            .map_err(recs_error)?;
        Ok::<_, ApiError>(axum::Json(report))
    };
    answer.await.into_response()
}
