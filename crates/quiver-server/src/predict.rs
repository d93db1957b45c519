//! `POST /predict` and `/predict/batch`: fetch a model's feature service from the online store,
//! encode the values exactly as training did (`quiver_pipeline::encoding`, the code training and
//! `models predict` use), score, and answer per row.
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
use quiver_pipeline::encoding::encode_online;
use quiver_registry::deployments::UNKNOWN_VERSION;
use quiver_registry::{ModelVersion, Rollout, RolloutStats};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::error::{ApiError, parse_body};
use crate::online::{FeatureReads, entity_columns, read_features, request_columns};
use crate::prediction_log::{Cell, Row as LogRow, VersionShape};
use crate::{AppState, Served};

/// How often an alias is re-resolved against the metadata store.
pub(crate) const ALIAS_REFRESH_MS: i64 = 1000;

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
    shape: Arc<VersionShape>,
    checked_ms: AtomicI64,
    /// The registry version it was checked against and resolved in.
    registry_version: i64,
}

/// Loaded versions by request selector (`name@alias` or `name:version`).
#[derive(Default)]
pub struct ModelCache {
    entries: RwLock<HashMap<String, Arc<Loaded>>>,
    rollouts: RwLock<HashMap<String, (Rollout, i64)>>,
    /// Challenger counts since the last flush to the metadata store, by (model, version).
    tally: std::sync::Mutex<HashMap<(String, i64), RolloutStats>>,
}

impl ModelCache {
    fn count(&self, model: &str, version: i64, add: RolloutStats) {
        let mut t = self.tally.lock().expect("lock");
        let e = t.entry((model.to_string(), version)).or_default();
        e.predictions += add.predictions;
        e.disagreements += add.disagreements;
        e.errors += add.errors;
    }

    /// Adds the challenger counts gathered since the last call to the metadata store's tallies
    /// (which the deployment pipeline judges rollouts on). Counts that cannot be written are
    /// kept for the next call.
    pub async fn flush_tally(&self, meta: &quiver_registry::SqlMetadataStore) {
        let taken = std::mem::take(&mut *self.tally.lock().expect("lock"));
        for ((model, version), add) in taken {
            if let Err(e) = meta.add_rollout_stats(&model, version, add).await {
                eprintln!("quiver serve: cannot record the rollout tally of {model}: {e}");
                self.count(&model, version, add);
            }
        }
    }
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

async fn load(state: &AppState, served: &Served, v: ModelVersion) -> Result<Loaded, ApiError> {
    let current = served
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
    quiver_pipeline::artifacts::pull(&state.root, &v.artifact)
        .await
        .map_err(|e| ApiError::internal(format!("model {} version {}: {e}", v.name, v.version)))?;
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
    let distinct = served
        .registry
        .resolve_features(&names)
        .map_err(|e| ApiError {
            status: StatusCode::CONFLICT,
            message: format!("model {} version {}: {e}", v.name, v.version),
        })?;
    // One ref per input: a vector's components are several inputs of one feature, which
    // resolve_features lists once.
    let refs: Vec<FeatureRef> = artifact
        .inputs
        .iter()
        .map(|i| {
            distinct
                .iter()
                .find(|r| r.to_string() == i.feature)
                .cloned()
                .ok_or_else(|| {
                    ApiError::internal(format!(
                        "model {} version {}: input {} was not resolved",
                        v.name, v.version, i.feature
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let shape = Arc::new(VersionShape {
        model: v.name.clone(),
        version: v.version,
        inputs: refs
            .iter()
            .zip(&artifact.inputs)
            .map(|(r, i)| i.encoding.column_name(&r.full_name()))
            .collect(),
        text: artifact
            .inputs
            .iter()
            .map(|i| i.encoding.is_text())
            .collect(),
        classes: match artifact.model.objective() {
            Objective::Multiclass { num_class } => (0..num_class)
                .map(|k| {
                    artifact
                        .classes
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| k.to_string())
                })
                .collect(),
            _ => vec![],
        },
    });
    Ok(Loaded {
        version: v,
        artifact,
        refs,
        shape,
        checked_ms: AtomicI64::new(now_ms()),
        registry_version: served.version,
    })
}

/// The version a request selects, loaded.
/// A version loaded under another registry version is checked again (its service may have
/// changed or gone).
async fn resolve(
    state: &AppState,
    served: &Served,
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
    let cached = cached.filter(|l| l.registry_version == served.version);
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
    let loaded = Arc::new(load(state, served, v).await?);
    state
        .models
        .entries
        .write()
        .expect("lock")
        .insert(key, Arc::clone(&loaded));
    Ok(loaded)
}

/// The features a model reads, in input order, each once (a vector's components share one).
fn distinct_features(artifact: &ModelArtifact) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(artifact.inputs.len());
    for i in &artifact.inputs {
        if out.last() != Some(&i.feature.as_str()) {
            out.push(&i.feature);
        }
    }
    out
}

/// One scored entity row.
struct Scored<'a> {
    /// The model's outputs.
    p: Vec<f64>,
    /// Inputs that had no fresh online value.
    missing: Vec<&'a str>,
    /// The inputs as the model saw them (only when the request is logged).
    cells: Vec<Cell>,
}

/// Scores one loaded version on the request's entity rows from their online values.
fn run_model<'a>(loaded: &'a Loaded, reads: &FeatureReads, n: usize, log: bool) -> Vec<Scored<'a>> {
    let now = chrono::Utc::now().timestamp_micros();
    let mut row = vec![f64::NAN; reads.slots.len()];
    let mut out = Vec::with_capacity(n);
    for e in 0..n {
        let mut missing = Vec::new();
        let mut cells = Vec::with_capacity(if log { row.len() } else { 0 });
        for (j, &(vi, fi)) in reads.slots.iter().enumerate() {
            let ttl = reads.ttl_us[vi];
            let encoding = &loaded.artifact.inputs[j].encoding;
            let fresh = match &reads.rows[vi][e] {
                Some(stored) if ttl == 0 || now - stored.event_ts <= ttl => {
                    Some(&stored.values[fi])
                }
                _ => None,
            };
            row[j] = fresh.map_or(f64::NAN, |v| encode_online(v, encoding));
            let feature = loaded.artifact.inputs[j].feature.as_str();
            // The components of a vector share their feature: name it once.
            if row[j].is_nan() && missing.last() != Some(&feature) {
                missing.push(feature);
            }
            if log {
                cells.push(match encoding {
                    // The number just computed (the rule's own result, not computed twice).
                    Encoding::Number | Encoding::Element { .. } => Cell::Number(row[j]),
                    _ => quiver_pipeline::prediction_log::cell(fresh, encoding),
                });
            }
        }
        out.push(Scored {
            p: loaded.artifact.model.predict(&row),
            missing,
            cells,
        });
    }
    out
}

/// One row's answer.
fn render(loaded: &Loaded, p: &[f64], missing: &[&str]) -> serde_json::Map<String, Json> {
    let mut out = serde_json::Map::new();
    match loaded.artifact.model.objective() {
        Objective::Multiclass { .. } => {
            let classes = &loaded.artifact.classes;
            let name = |k: usize| classes.get(k).cloned().unwrap_or_else(|| k.to_string());
            out.insert("class".into(), json!(name(decision(loaded, p) as usize)));
            out.insert(
                "probabilities".into(),
                Json::Object((0..p.len()).map(|k| (name(k), json!(p[k]))).collect()),
            );
        }
        _ => {
            out.insert("score".into(), json!(p[0]));
        }
    }
    out.insert("missing".into(), json!(missing));
    out
}

/// The decision a prediction implies: the class (binary at 0.5, multiclass arg-max), or the
/// value for regression.
fn decision(loaded: &Loaded, p: &[f64]) -> f64 {
    match loaded.artifact.model.objective() {
        Objective::Binary { .. } => f64::from(u8::from(p[0] >= 0.5)),
        Objective::Multiclass { .. } => quiver_ml::top_class(p) as f64,
        Objective::Regression => p[0],
    }
}

/// Whether entity row `row` goes to the challenger under `rollout`: the rollout's rule
/// ([`Rollout::to_challenger`]) over the canonical text of each join-key value, in the request's
/// key order (an integer in decimal, a string as itself), so an entity stays in its arm across
/// requests and servers.
fn to_challenger(rollout: &Rollout, columns: &[(&str, &Vec<Json>)], row: usize) -> bool {
    if !matches!(rollout, Rollout::Canary { .. }) {
        return false;
    }
    let parts: Vec<std::borrow::Cow<'_, str>> = columns
        .iter()
        .map(|(_, values)| match &values[row] {
            Json::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
            other => std::borrow::Cow::Owned(other.to_string()),
        })
        .collect();
    rollout.to_challenger(parts.iter().map(|p| p.as_bytes()))
}

/// The model's rollout, re-read at most once a second.
async fn rollout_of(state: &AppState, model: &str) -> Result<Rollout, ApiError> {
    if let Some((r, at)) = state.models.rollouts.read().expect("lock").get(model)
        && now_ms() - at < ALIAS_REFRESH_MS
    {
        return Ok(*r);
    }
    let r = state.meta.rollout(model).await.map_err(registry_error)?;
    state
        .models
        .rollouts
        .write()
        .expect("lock")
        .insert(model.to_string(), (r, now_ms()));
    Ok(r)
}

async fn score(state: &AppState, body: &[u8], max_rows: usize) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: Request = parse_body(body)?;
    let served = state.served();
    let loaded = resolve(
        state,
        &served,
        &req.model,
        req.version,
        req.alias.as_deref(),
    )
    .await?;
    let mut columns = entity_columns(&req.entities, max_rows)?;
    let entity_cols = columns.len();
    let n = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
    if n == 0 {
        return Err(ApiError::bad(
            "entities: give at least one entity row, e.g. {\"user_id\": [1, 2]}",
        ));
    }
    // Request data for request-time features.
    let request_data = request_columns(req.request_data.as_ref(), n, &columns)?;
    columns.extend(request_data.iter().map(|(k, v)| (*k, v)));
    // The rollout applies to requests that let the server choose (no version or alias).
    let rollout = if req.version.is_none() && req.alias.is_none() {
        rollout_of(state, &req.model).await?
    } else {
        Rollout::Off
    };
    let label = loaded.version.name.clone();
    let challenger = match rollout {
        Rollout::Off => None,
        _ => match resolve(state, &served, &req.model, None, Some("challenger")).await {
            Ok(c) if c.version.version != loaded.version.version => Some(c),
            Ok(_) => None,
            Err(e) => {
                // A broken challenger never breaks the champion's answers.
                metrics::counter!("quiver_challenger_errors_total", "model" => label.clone())
                    .increment(1);
                state.models.count(
                    &req.model,
                    UNKNOWN_VERSION,
                    RolloutStats {
                        errors: 1,
                        ..RolloutStats::default()
                    },
                );
                log_note(&format!("challenger of {}: {}", req.model, e.message));
                None
            }
        },
    };
    let log = state.prediction_log.sample();
    let reads = read_features(&*state.store, &served, &loaded.refs, &columns, n).await?;
    let champion_rows = run_model(&loaded, &reads, n, log);
    let challenger_rows = match &challenger {
        // The same features (the usual case: one service) are read once.
        Some(c) if c.refs == loaded.refs => Some(run_model(c, &reads, n, log)),
        Some(c) => {
            let creads = read_features(&*state.store, &served, &c.refs, &columns, n).await?;
            Some(run_model(c, &creads, n, log))
        }
        None => None,
    };
    let now_us = chrono::Utc::now().timestamp_micros();
    let mut logged = Vec::with_capacity(if log { n } else { 0 });
    let mut predictions = Vec::with_capacity(n);
    let (mut served_challenger, mut disagreements) = (0u64, 0u64);
    for (e, champ) in champion_rows.into_iter().enumerate() {
        let canary = to_challenger(&rollout, &columns[..entity_cols], e);
        let (arm, from, served) = match (&challenger, &challenger_rows) {
            (Some(c), Some(rows)) if canary => {
                served_challenger += 1;
                ("challenger", c.as_ref(), &rows[e])
            }
            _ => ("champion", loaded.as_ref(), &champ),
        };
        let p = &served.p;
        if let (Some(c), Some(rows)) = (&challenger, &challenger_rows)
            && decision(&loaded, &champ.p) != decision(c, &rows[e].p)
        {
            disagreements += 1;
        }
        let shadow = match (&rollout, &challenger, &challenger_rows) {
            (Rollout::Shadow, Some(c), Some(rows)) => Some((c.as_ref(), &rows[e])),
            _ => None,
        };
        if let Some((_, q)) = shadow {
            metrics::histogram!("quiver_shadow_score_diff", "model" => label.clone())
                .record((q.p[0] - p[0]).abs());
        }
        if from.artifact.model.objective().num_outputs() == 1 {
            metrics::histogram!("quiver_prediction_score", "model" => label.clone(), "version" => from.version.version.to_string())
                .record(p[0]);
        }
        let mut out = render(from, p, &served.missing);
        if challenger.is_some() {
            out.insert("version".into(), json!(from.version.version));
            out.insert("arm".into(), json!(arm));
        }
        predictions.push(Json::Object(out));
        if log {
            let entity: Vec<(String, Json)> = columns[..entity_cols]
                .iter()
                .map(|(k, v)| (k.to_string(), v[e].clone()))
                .collect();
            let mut push = |arm: &'static str, model: &Loaded, s: &Scored| {
                logged.push(LogRow {
                    shape: Arc::clone(&model.shape),
                    ts_us: now_us,
                    arm,
                    entity: entity.clone(),
                    cells: s.cells.clone(),
                    scores: s.p.clone(),
                })
            };
            push(arm, from, served);
            if let Some((c, q)) = shadow {
                push("shadow", c, q);
            }
        }
    }
    if log {
        state.prediction_log.log(logged);
    }
    let version = loaded.version.version.to_string();
    metrics::counter!("quiver_predictions_total", "model" => label.clone(), "version" => version.clone())
        .increment(n as u64 - served_challenger);
    if let Some(c) = &challenger {
        state.models.count(
            &req.model,
            c.version.version,
            RolloutStats {
                predictions: n as i64,
                disagreements: disagreements as i64,
                errors: 0,
            },
        );
        let cv = c.version.version.to_string();
        metrics::counter!("quiver_predictions_total", "model" => label.clone(), "version" => cv.clone())
            .increment(served_challenger);
        if rollout == Rollout::Shadow {
            metrics::counter!("quiver_shadow_predictions_total", "model" => label.clone(), "version" => cv)
                .increment(n as u64);
            metrics::counter!("quiver_shadow_disagreements_total", "model" => label.clone())
                .increment(disagreements);
        }
    }
    metrics::histogram!("quiver_predict_seconds", "model" => label, "version" => version)
        .record(started.elapsed().as_secs_f64());
    let mut answer = json!({
        "model": loaded.version.name,
        "version": loaded.version.version,
        "aliases": loaded.version.aliases,
        "task": loaded.version.task,
        "features": distinct_features(&loaded.artifact),
        "predictions": predictions,
    });
    if let Some(c) = &challenger {
        answer["rollout"] = json!(match rollout {
            Rollout::Shadow =>
                json!({"mode": "shadow", "challenger_version": c.version.version, "disagreements": disagreements}),
            Rollout::Canary { share, .. } =>
                json!({"mode": "canary", "share": share, "challenger_version": c.version.version, "served_by_challenger": served_challenger}),
            Rollout::Off => Json::Null,
        });
    }
    Ok(axum::Json(answer).into_response())
}

/// Server-side notes go to stderr (the server has no log framework yet); never secrets.
fn log_note(message: &str) {
    eprintln!("quiver serve: {message}");
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
