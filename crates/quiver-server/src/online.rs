//! `POST /get-online-features`, Feast's feature-server request and response.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use quiver_core::FeatureRef;
use quiver_core::registry::AggFunction;
use quiver_online::{EntityKey, format_time};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::convert::{Rendered, key_value, to_json};
use crate::error::{ApiError, parse_body};
use crate::{AppState, Served};
use quiver_offline::types::arrow_type;

#[derive(Deserialize)]
struct Request {
    /// `view:feature` references.
    #[serde(default)]
    features: Vec<String>,
    /// Or a feature service.
    #[serde(default)]
    feature_service: Option<String>,
    /// Join-key columns: name -> values, one per entity row.
    entities: serde_json::Map<String, Json>,
    /// Fields of request-time views, as in /predict (they may also come as `entities` columns,
    /// as Feast sends them).
    #[serde(default)]
    request_data: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    full_feature_names: bool,
}

#[derive(Serialize)]
struct Metadata<'a> {
    feature_names: Vec<Cow<'a, str>>,
}

/// One value of a response column: a request's join-key value or a stored feature value.
enum Cell<'a> {
    Key(&'a Json),
    Stored(&'a quiver_online::Value),
    Null,
}

impl Serialize for Cell<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Key(v) => v.serialize(s),
            Cell::Stored(v) => Rendered(v).serialize(s),
            Cell::Null => s.serialize_unit(),
        }
    }
}

#[derive(Serialize)]
struct FeatureVector<'a> {
    values: Vec<Cell<'a>>,
    statuses: Vec<&'static str>,
    event_timestamps: Vec<&'a str>,
}

#[derive(Serialize)]
struct Answer<'a> {
    metadata: Metadata<'a>,
    results: Vec<FeatureVector<'a>>,
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

pub async fn get_online_features(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let served = state.served();
    let answer = online_features(&*state.store, &served, state.config.max_entities, &body).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response())
}

/// The answer of `POST /get-online-features` to the JSON request `body`, serialized: the one
/// implementation behind the HTTP handler and the Python package's `get_online_features`.
/// `max_entities` bounds the entity rows of one request.
pub async fn online_features(
    store: &dyn quiver_online::OnlineStore,
    served: &Served,
    max_entities: usize,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let req: Request = parse_body(body)?;
    let registry = &served.registry;
    let refs: Vec<FeatureRef> = match (&req.feature_service, req.features.is_empty()) {
        (Some(s), true) => registry
            .service_features(s)
            .map_err(|e| ApiError::not_found(e.to_string()))?
            .to_vec(),
        (Some(_), false) => {
            return Err(ApiError::bad(
                "give either \"features\" or \"feature_service\", not both",
            ));
        }
        (None, true) => {
            return Err(ApiError::bad(
                "no features requested: give \"features\": [\"view:feature\", ...] or \"feature_service\": \"name\"",
            ));
        }
        (None, false) => registry.resolve_features(&req.features)?,
    };
    let mut columns = entity_columns(&req.entities, max_entities)?;
    let n = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
    let entity_cols = columns.len();
    let request = request_columns(req.request_data.as_ref(), n, &columns)?;
    columns.extend(request.iter().map(|(k, v)| (*k, v)));
    let reads = read_features(store, served, &refs, &columns, n).await?;
    let columns = &columns[..entity_cols];
    let now = chrono::Utc::now().timestamp_micros();
    let mut names: Vec<Cow<str>> = columns.iter().map(|(c, _)| Cow::Borrowed(*c)).collect();
    // Every feature of a view shares its row's event time: format it once per row.
    let times: Vec<Vec<String>> = reads
        .rows
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_ref()
                        .map_or_else(String::new, |s| format_time(s.event_ts))
                })
                .collect()
        })
        .collect();
    let mut vectors: Vec<FeatureVector> = columns
        .iter()
        .map(|(_, values)| FeatureVector {
            values: values.iter().map(Cell::Key).collect(),
            statuses: vec!["PRESENT"; n],
            event_timestamps: vec![EPOCH; n],
        })
        .collect();
    let mut not_found = 0u64;
    for (r, &(vi, fi)) in refs.iter().zip(&reads.slots) {
        let ttl = reads.ttl_us[vi];
        let mut fv = FeatureVector {
            values: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            event_timestamps: Vec::with_capacity(n),
        };
        for (row, time) in reads.rows[vi].iter().zip(&times[vi]) {
            match row {
                None => {
                    fv.values.push(Cell::Null);
                    fv.statuses.push("NOT_FOUND");
                    fv.event_timestamps.push(EPOCH);
                    not_found += 1;
                }
                Some(stored) => {
                    let expired = ttl != 0 && now - stored.event_ts > ttl;
                    fv.values.push(Cell::Stored(&stored.values[fi]));
                    fv.statuses.push(if expired {
                        "OUTSIDE_MAX_AGE"
                    } else {
                        "PRESENT"
                    });
                    fv.event_timestamps.push(time);
                }
            }
        }
        names.push(if req.full_feature_names {
            Cow::Owned(r.full_name())
        } else {
            Cow::Borrowed(r.feature.as_str())
        });
        vectors.push(fv);
    }
    if not_found > 0 {
        metrics::counter!("quiver_entities_not_found_total").increment(not_found);
    }
    serde_json::to_vec(&Answer {
        metadata: Metadata {
            feature_names: names,
        },
        results: vectors,
    })
    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))
}

/// The request's entity columns (join key -> one value per row), checked for equal lengths and
/// the entity limit.
pub(crate) fn entity_columns(
    entities: &serde_json::Map<String, Json>,
    max_entities: usize,
) -> Result<Vec<(&str, &Vec<Json>)>, ApiError> {
    let mut columns: Vec<(&str, &Vec<Json>)> = Vec::with_capacity(entities.len());
    for (name, v) in entities {
        let Json::Array(values) = v else {
            return Err(ApiError::bad(format!(
                "entities.{name} must be a list of values, one per entity row"
            )));
        };
        columns.push((name.as_str(), values));
    }
    let n = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
    if let Some((name, v)) = columns.iter().find(|(_, v)| v.len() != n) {
        return Err(ApiError::bad(format!(
            "entities.{name} has {} values but entities.{} has {n}: every join key needs one value per row",
            v.len(),
            columns[0].0
        )));
    }
    if n > max_entities {
        return Err(ApiError::bad(format!(
            "{n} entity rows in one request; the limit is {max_entities} (server.max_entities): split the request"
        )));
    }
    Ok(columns)
}

/// The request's `request_data` as columns of `n` values: a list per field (one value per
/// entity row), or one value for every row. A field that is also an `entities` column is
/// refused (it would be ambiguous).
pub(crate) fn request_columns<'a>(
    request_data: Option<&'a serde_json::Map<String, Json>>,
    n: usize,
    entities: &[(&str, &Vec<Json>)],
) -> Result<Vec<(&'a str, Vec<Json>)>, ApiError> {
    let columns: Vec<(&str, Vec<Json>)> = request_data
        .into_iter()
        .flatten()
        .map(|(k, v)| match v {
            Json::Array(a) if a.len() == n => Ok((k.as_str(), a.clone())),
            Json::Array(a) => Err(ApiError::bad(format!(
                "request_data.{k}: {} values for {n} entity rows",
                a.len()
            ))),
            scalar => Ok((k.as_str(), vec![scalar.clone(); n])),
        })
        .collect::<Result<_, _>>()?;
    if let Some((k, _)) = columns
        .iter()
        .find(|(k, _)| entities.iter().any(|(c, _)| c == k))
    {
        return Err(ApiError::bad(format!(
            "request_data.{k} is also an entities column: send it once"
        )));
    }
    Ok(columns)
}

/// What [`read_features`] read: per view (in first-seen order of the refs) the stored row of
/// each entity and the view's TTL (µs, 0 = none); per requested ref, where its value sits.
pub(crate) struct FeatureReads {
    /// `rows[view][entity]`.
    pub rows: Vec<Vec<Option<quiver_online::StoredRow>>>,
    /// `ttl_us[view]`.
    pub ttl_us: Vec<i64>,
    /// `slots[i]` = (view index, index of the feature among the view's values) of `refs[i]`.
    pub slots: Vec<(usize, usize)>,
}

/// Reads `refs` for `n` entity rows from the online store, one read per view.
pub(crate) async fn read_features(
    store: &dyn quiver_online::OnlineStore,
    served: &Served,
    refs: &[FeatureRef],
    columns: &[(&str, &Vec<Json>)],
    n: usize,
) -> Result<FeatureReads, ApiError> {
    let registry = &served.registry;
    // Group the requested features by view, remembering where each ref's value lands. A
    // request-time view's features are computed after the read, from request fields and its
    // input views' values, which are read with the rest.
    let mut views: Vec<(&str, Vec<String>)> = Vec::new();
    fn slot<'v>(
        views: &mut Vec<(&'v str, Vec<String>)>,
        view: &'v str,
        feature: &str,
    ) -> (usize, usize) {
        let vi = match views.iter().position(|(v, _)| *v == view) {
            Some(vi) => vi,
            None => {
                views.push((view, Vec::new()));
                views.len() - 1
            }
        };
        let fs = &mut views[vi].1;
        let fi = fs.iter().position(|f| *f == feature).unwrap_or_else(|| {
            fs.push(feature.to_string());
            fs.len() - 1
        });
        (vi, fi)
    }
    let mut slots = vec![(usize::MAX, 0); refs.len()];
    let mut computed: Vec<&quiver_offline::CompiledRequestView> = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        if !registry.views[&r.view].is_request() {
            slots[i] = slot(&mut views, &r.view, &r.feature);
            continue;
        }
        if computed.iter().any(|c| c.view == r.view) {
            continue;
        }
        let cv = match served.request_views.get(&r.view) {
            Some(Ok(cv)) => cv,
            Some(Err(e)) => {
                return Err(ApiError::internal(format!(
                    "request-time view '{}' cannot be computed: {e}",
                    r.view
                )));
            }
            None => {
                return Err(ApiError::internal(format!(
                    "request-time view '{}' was not compiled",
                    r.view
                )));
            }
        };
        for (input, _) in &cv.inputs {
            slot(&mut views, &input.view, &input.feature);
        }
        computed.push(cv);
    }
    let mut ttl_us: Vec<i64> = views
        .iter()
        .map(|(v, _)| registry.views[*v].ttl.micros())
        .collect();
    let mut reads = Vec::with_capacity(views.len());
    for (view_name, features) in &views {
        let view = &registry.views[*view_name];
        let join_keys = registry.view_join_keys(view);
        let mut key_cols = Vec::with_capacity(join_keys.len());
        for k in &join_keys {
            let col = columns
                .iter()
                .find(|(c, _)| *c == k.name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "feature view '{view_name}' is keyed by {}, but entities has no '{}' (it has: {})",
                        join_keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", "),
                        k.name,
                        columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            key_cols.push((k, col));
        }
        let mut keys = Vec::with_capacity(n);
        for row in 0..n {
            let parts = key_cols
                .iter()
                .map(|(k, col)| key_value(&k.name, row, &col[row], k.value_type))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ApiError::bad)?;
            keys.push(EntityKey::new(&parts));
        }
        reads.push((view_name, features, keys));
    }
    let started = Instant::now();
    let parts: Vec<quiver_online::ViewRead> = reads
        .iter()
        .map(|(view, features, keys)| quiver_online::ViewRead {
            view,
            keys,
            features,
        })
        .collect();
    let results = store.read_views(&parts).await;
    // The handle is looked up once, not per request (the recorder is installed before any).
    static READ_SECONDS: OnceLock<metrics::Histogram> = OnceLock::new();
    READ_SECONDS
        .get_or_init(|| metrics::histogram!("quiver_online_store_read_seconds"))
        .record(started.elapsed().as_secs_f64());
    let mut rows = results?;
    // An aggregation view has no row for an entity without events in its windows; offline, such
    // an entity gets 0 for `count` and `count_distinct` (and null for the rest). Serve the same.
    for ((view_name, features), view_rows) in views.iter().zip(rows.iter_mut()) {
        let view = &registry.views[*view_name];
        if !view.is_aggregation() || view_rows.iter().all(Option::is_some) {
            continue;
        }
        let defaults: Vec<quiver_online::Value> = features
            .iter()
            .map(|f| match view.aggregations.iter().find(|a| a.name == *f) {
                Some(a)
                    if matches!(a.function, AggFunction::Count | AggFunction::CountDistinct) =>
                {
                    quiver_online::Value::Int64(0)
                }
                _ => quiver_online::Value::Null,
            })
            .collect();
        if defaults
            .iter()
            .all(|v| matches!(v, quiver_online::Value::Null))
        {
            continue;
        }
        let now = chrono::Utc::now().timestamp_micros();
        for r in view_rows.iter_mut().filter(|r| r.is_none()) {
            *r = Some(quiver_online::StoredRow {
                event_ts: now,
                values: defaults.clone(),
            });
        }
    }
    let now = chrono::Utc::now().timestamp_micros();
    for cv in computed {
        let mut request = Vec::with_capacity(cv.fields.len());
        for f in &cv.fields {
            let Some((_, values)) = columns.iter().find(|(c, _)| *c == f.name) else {
                return Err(ApiError::bad(format!(
                    "request-time view '{}' needs the request field '{}' ({}): send it in \"request_data\" (or as a column of \"entities\")",
                    cv.view, f.name, f.value_type
                )));
            };
            let array = crate::write::column_array(values, &arrow_type(f.value_type))
                .map_err(|m| ApiError::bad(format!("request field '{}': {m}", f.name)))?;
            request.push(Some(array));
        }
        let mut inputs = Vec::with_capacity(cv.inputs.len());
        for (input, t) in &cv.inputs {
            let vi = views
                .iter()
                .position(|(v, _)| *v == input.view)
                .expect("inputs were read");
            let fi = views[vi]
                .1
                .iter()
                .position(|f| *f == input.feature)
                .expect("inputs were read");
            let ttl = ttl_us[vi];
            let values: Vec<Json> = rows[vi]
                .iter()
                .map(|row| match row {
                    Some(s) if ttl == 0 || now - s.event_ts <= ttl => to_json(&s.values[fi]),
                    _ => Json::Null,
                })
                .collect();
            inputs.push(
                crate::write::column_array(&values, &arrow_type(*t))
                    .map_err(|m| ApiError::internal(format!("input {input}: {m}")))?,
            );
        }
        let out = cv
            .evaluate(request, inputs, n)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let types: Vec<_> = cv.features().map(|(_, t)| t).collect();
        let vi = views.len();
        views.push((
            cv.view.as_str(),
            cv.features().map(|(f, _)| f.to_string()).collect(),
        ));
        ttl_us.push(0);
        rows.push(
            (0..n)
                .map(|e| {
                    Some(quiver_online::StoredRow {
                        event_ts: now,
                        values: out
                            .iter()
                            .zip(&types)
                            .map(|(a, t)| {
                                quiver_online::Value::from_array(a, e, *t)
                                    .unwrap_or(quiver_online::Value::Null)
                            })
                            .collect(),
                    })
                })
                .collect(),
        );
        for (i, r) in refs.iter().enumerate() {
            if r.view == cv.view {
                let fi = views[vi]
                    .1
                    .iter()
                    .position(|f| *f == r.feature)
                    .unwrap_or(0);
                slots[i] = (vi, fi);
            }
        }
    }
    Ok(FeatureReads {
        rows,
        ttl_us,
        slots,
    })
}
