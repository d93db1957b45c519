//! Every page's data: one function per page that reads the registry and the stores (through
//! the same library calls and API handlers as the JSON API) and returns JSON. The HTML page
//! renders that JSON ([`crate::render`]); `/api/ui/...` serves it as is.

use std::collections::{BTreeMap, BTreeSet};

use quiver_core::registry::ObjectKind;
use quiver_core::{FeatureView, Registry};
use quiver_registry::{MetadataStore, ModelVersion};
use serde_json::{Value as Json, json};

use crate::lineage::{self, Focus};
use crate::render::seg;
use crate::{Backend, Call, UiError, now_us, time_text, yaml};

/// A page's query string, decoded.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Decodes a raw query string (`a=1&b=x%20y`).
    pub fn parse(raw: Option<&str>) -> Query {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Query::default();
        };
        let uri: axum::http::Uri = match format!("/?{raw}").parse() {
            Ok(u) => u,
            Err(_) => return Query::default(),
        };
        Query(
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
                .map(|q| q.0)
                .unwrap_or_default(),
        )
    }

    /// The first value of `key` (empty values count as absent).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// A loaded page: which template renders it, its title and its data.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The template (`overview`, `view`, ...; also `data["page"]`).
    pub page: &'static str,
    /// The window title.
    pub title: String,
    /// What the page shows, as its JSON twin serves it.
    pub data: Json,
}

fn loaded(page: &'static str, title: impl Into<String>, mut data: Json) -> Loaded {
    data["page"] = json!(page);
    Loaded {
        page,
        title: title.into(),
        data,
    }
}

/// Loads the page at `path` (below `/ui`, no leading slash).
pub async fn load(b: &dyn Backend, path: &str, q: &Query) -> Result<Loaded, UiError> {
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(decode)
        .collect();
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    match p.as_slice() {
        [] => overview(b).await,
        ["search"] => Ok(search(b, q).await),
        ["views"] => Ok(list(b, ObjectKind::FeatureView, q)),
        ["services"] => Ok(list(b, ObjectKind::FeatureService, q)),
        ["entities"] => Ok(list(b, ObjectKind::Entity, q)),
        ["sources"] => Ok(list(b, ObjectKind::Source, q)),
        ["views", name] => view(b, name).await,
        ["views", name, "stats"] => view_stats(b, name, q).await,
        ["views", name, "lookup"] => lookup(b, name, q).await,
        ["features", view, feat] => feature(b, view, feat).await,
        ["services", name] => service(b, name).await,
        ["entities", name] => object(b, ObjectKind::Entity, name).await,
        ["sources", name] => object(b, ObjectKind::Source, name).await,
        ["diff", kind, name] => diff(b, kind, name, q).await,
        ["models"] => models(b).await,
        ["models", name] => model(b, name).await,
        ["jobs"] => jobs(b).await,
        ["jobs", name] => job(b, name).await,
        ["monitoring"] => monitoring(b).await,
        ["monitoring", "drift", model] => drift(b, model).await,
        ["recommend"] => recommend(b, q).await,
        _ => Err(UiError::not_found(format!(
            "no page /ui/{path}: start at /ui (the overview) or search at /ui/search"
        ))),
    }
}

/// Percent-decodes a path segment.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn missing(kind: &str, name: &str, known: Vec<String>) -> UiError {
    UiError::not_found(format!(
        "no {kind} '{name}'{}",
        quiver_core::registry::suggest(name, known.iter())
    ))
}

fn ttl_text(v: &FeatureView) -> String {
    if v.ttl.is_zero() {
        "unbounded".into()
    } else {
        v.ttl.to_string()
    }
}

/// A view's freshness: its watermark against its TTL.
fn freshness(v: &FeatureView, watermark: Option<i64>, now: i64) -> Json {
    let status = if !v.online || v.is_request() {
        "offline"
    } else {
        match watermark {
            None => "never",
            Some(w) if !v.ttl.is_zero() && now - w > v.ttl.micros() => "stale",
            Some(_) => "fresh",
        }
    };
    json!({
        "name": v.name,
        "online": v.online && !v.is_request(),
        "ttl": ttl_text(v),
        "last_materialized": watermark.map(time_text),
        "age_seconds": watermark.map(|w| (now - w) / 1_000_000),
        "status": status,
    })
}

async fn overview(b: &dyn Backend) -> Result<Loaded, UiError> {
    let served = b.served();
    let r = &served.registry;
    let meta = b.meta();
    let now = now_us();
    let (store, health) = b.online_health().await;
    let watermarks = meta.watermarks().await?;
    let models = meta.model_versions(None).await?;
    let model_names: BTreeSet<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let mut views: Vec<Json> = r
        .views
        .values()
        .map(|v| freshness(v, watermarks.get(&v.name).copied(), now))
        .collect();
    // What needs attention first.
    let rank = |s: &str| match s {
        "stale" => 0,
        "never" => 1,
        "fresh" => 2,
        _ => 3,
    };
    views.sort_by_key(|v| rank(v["status"].as_str().unwrap_or("")));
    let stale = views.iter().filter(|v| v["status"] == "stale").count();
    let failing_checks: Vec<Json> = meta
        .latest_quality_runs()
        .await?
        .iter()
        .flat_map(|run| {
            run.results
                .iter()
                .filter(|c| c.status == "fail" || c.status == "warn")
                .map(move |c| {
                    json!({
                        "quality": run.quality,
                        "target": run.target,
                        "checked_at": time_text(run.checked_us),
                        "check_type": c.check_type,
                        "columns": c.columns,
                        "status": c.status,
                        "message": c.message,
                    })
                })
        })
        .collect();
    let drifting: Vec<Json> = meta
        .latest_drift_runs()
        .await?
        .iter()
        .filter(|d| d.dataset_drift)
        .map(|d| {
            json!({"model": d.model, "checked_at": time_text(d.checked_us), "share_drifted": d.share_drifted})
        })
        .collect();
    let mut failed_jobs = Vec::new();
    for job in r.jobs.keys() {
        if let Some(last) = meta.job_runs(Some(job), 1).await?.first()
            && last.status == "failed"
        {
            failed_jobs.push(quiver_jobs::status::run_json(last));
        }
    }
    let features: usize = r.views.values().map(|v| v.outputs().len()).sum();
    Ok(loaded(
        "overview",
        format!("{} · Quiver", r.project),
        json!({
            "project": r.project,
            "description": r.description,
            "registry_version": served.version,
            "counts": {
                "entities": r.entities.len(),
                "sources": r.sources.len(),
                "views": r.views.len(),
                "features": features,
                "services": r.services.len(),
                "models": model_names.len(),
                "model_versions": models.len(),
                "jobs": r.jobs.len(),
                "recommenders": r.recommenders.len(),
                "quality_sets": r.quality.len(),
            },
            "online_store": {"store": store, "ok": health.is_ok(), "error": health.err()},
            "stale_views": stale,
            "views": views,
            "failing_checks": failing_checks,
            "drifting_models": drifting,
            "failed_jobs": failed_jobs,
        }),
    ))
}

/// What one searchable object says about itself.
struct Entry<'a> {
    kind: &'static str,
    name: String,
    href: String,
    description: Option<&'a str>,
    owner: Option<&'a str>,
    tags: Option<&'a BTreeMap<String, String>>,
}

fn entries<'a>(r: &'a Registry, models: &'a [ModelVersion]) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    for e in r.entities.values() {
        out.push(Entry {
            kind: "entity",
            name: e.name.clone(),
            href: format!("/ui/entities/{}", seg(&e.name)),
            description: e.description.as_deref(),
            owner: e.owner.as_deref(),
            tags: Some(&e.tags),
        });
    }
    for s in r.sources.values() {
        out.push(Entry {
            kind: "source",
            name: s.name.clone(),
            href: format!("/ui/sources/{}", seg(&s.name)),
            description: s.description.as_deref(),
            owner: s.owner.as_deref(),
            tags: Some(&s.tags),
        });
    }
    for v in r.views.values() {
        out.push(Entry {
            kind: "view",
            name: v.name.clone(),
            href: format!("/ui/views/{}", seg(&v.name)),
            description: v.description.as_deref(),
            owner: v.owner.as_deref(),
            tags: Some(&v.tags),
        });
        let features = v
            .features
            .iter()
            .map(|f| (&f.name, f.description.as_deref()))
            .chain(
                v.aggregations
                    .iter()
                    .map(|a| (&a.name, a.description.as_deref())),
            );
        for (f, description) in features {
            out.push(Entry {
                kind: "feature",
                name: format!("{}:{f}", v.name),
                href: format!("/ui/features/{}/{}", seg(&v.name), seg(f)),
                description,
                owner: v.owner.as_deref(),
                tags: Some(&v.tags),
            });
        }
    }
    for s in r.services.values() {
        out.push(Entry {
            kind: "service",
            name: s.name.clone(),
            href: format!("/ui/services/{}", seg(&s.name)),
            description: s.description.as_deref(),
            owner: s.owner.as_deref(),
            tags: Some(&s.tags),
        });
    }
    let mut seen = BTreeSet::new();
    for m in models {
        if seen.insert(m.name.as_str()) {
            out.push(Entry {
                kind: "model",
                name: m.name.clone(),
                href: format!("/ui/models/{}", seg(&m.name)),
                description: None,
                owner: None,
                tags: None,
            });
        }
    }
    for j in r.jobs.values() {
        out.push(Entry {
            kind: "job",
            name: j.name.clone(),
            href: format!("/ui/jobs/{}", seg(&j.name)),
            description: j.description.as_deref(),
            owner: j.owner.as_deref(),
            tags: Some(&j.tags),
        });
    }
    for rec in r.recommenders.values() {
        out.push(Entry {
            kind: "recommender",
            name: rec.name.clone(),
            href: format!("/ui/recommend?recommender={}", seg(&rec.name)),
            description: rec.description.as_deref(),
            owner: rec.owner.as_deref(),
            tags: Some(&rec.tags),
        });
    }
    out
}

/// Most search results returned.
const MAX_RESULTS: usize = 200;

async fn search(b: &dyn Backend, q: &Query) -> Loaded {
    let served = b.served();
    let models = b.meta().model_versions(None).await.unwrap_or_default();
    let text = q.get("q").unwrap_or("").trim().to_lowercase();
    let kind = q.get("kind");
    let mut results = Vec::new();
    let mut total = 0usize;
    for e in entries(&served.registry, &models) {
        if kind.is_some_and(|k| k != e.kind) {
            continue;
        }
        let tags: Vec<String> = e
            .tags
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // Every word must match somewhere; the first field it matches in is reported.
        let mut matched = BTreeSet::new();
        let all = text.split_whitespace().all(|w| {
            let hit = if e.name.to_lowercase().contains(w) {
                Some("name")
            } else if e.description.is_some_and(|d| d.to_lowercase().contains(w)) {
                Some("description")
            } else if tags.iter().any(|t| t.to_lowercase().contains(w)) {
                Some("tag")
            } else if e.owner.is_some_and(|o| o.to_lowercase().contains(w)) {
                Some("owner")
            } else {
                None
            };
            hit.map(|h| matched.insert(h)).is_some()
        });
        if !all {
            continue;
        }
        total += 1;
        if results.len() < MAX_RESULTS {
            results.push(json!({
                "kind": e.kind,
                "name": e.name,
                "href": e.href,
                "description": e.description,
                "owner": e.owner,
                "tags": tags,
                "matched": matched,
            }));
        }
    }
    loaded(
        "search",
        "Search · Quiver",
        json!({"q": q.get("q").unwrap_or(""), "kind": kind, "total": total, "results": results}),
    )
}

fn list(b: &dyn Backend, kind: ObjectKind, q: &Query) -> Loaded {
    let served = b.served();
    let r = &served.registry;
    let filter = q.get("q").unwrap_or("").to_lowercase();
    let items: Vec<Json> = r
        .names(kind)
        .iter()
        .filter(|n| n.to_lowercase().contains(&filter))
        .filter_map(|n| {
            let def = r.object_json(kind, n)?;
            let mut item = json!({
                "name": n,
                "description": def["description"],
                "owner": def["owner"],
            });
            match kind {
                ObjectKind::FeatureView => {
                    let v = &r.views[n];
                    item["entities"] = json!(v.entities);
                    item["source"] = json!(v.source);
                    item["ttl"] = json!(ttl_text(v));
                    item["features"] = json!(v.outputs().len());
                    item["online"] = json!(v.online);
                    item["services"] = json!(r.services_using_view(n));
                }
                ObjectKind::FeatureService => {
                    let s = &r.services[n];
                    let views: BTreeSet<&str> =
                        s.features.iter().map(|f| f.view.as_str()).collect();
                    item["features"] = json!(s.features.len());
                    item["views"] = json!(views);
                }
                ObjectKind::Source => {
                    let s = &r.sources[n];
                    item["type"] = json!(s.kind.type_name());
                    item["location"] = json!(s.kind.location());
                }
                ObjectKind::Entity => {
                    let e = &r.entities[n];
                    item["join_keys"] =
                        json!(e.join_keys.iter().map(|k| &k.name).collect::<Vec<_>>());
                }
                _ => {}
            }
            Some(item)
        })
        .collect();
    let (page, title) = match kind {
        ObjectKind::FeatureView => ("views", "Feature views"),
        ObjectKind::FeatureService => ("services", "Feature services"),
        ObjectKind::Source => ("sources", "Sources"),
        _ => ("entities", "Entities"),
    };
    loaded(
        page,
        format!("{title} · Quiver"),
        json!({"kind": kind, "items": items}),
    )
}

/// The parts every registry object's page shows: definition, YAML, versions, lineage.
async fn definition(
    b: &dyn Backend,
    r: &Registry,
    kind: ObjectKind,
    name: &str,
    focus: Focus<'_>,
) -> Result<Json, UiError> {
    let def = r
        .object_json(kind, name)
        .ok_or_else(|| missing(kind.as_str(), name, r.names(kind)))?;
    let versions = b.meta().history(kind, name).await?;
    let models = b.meta().model_versions(None).await?;
    Ok(json!({
        "kind": kind,
        "name": name,
        "hash": r.object_hash(kind, name),
        "definition": def,
        "yaml": yaml::to_yaml(&def),
        "versions": versions,
        "lineage": lineage::around(r, &models, focus).to_json(),
    }))
}

async fn view(b: &dyn Backend, name: &str) -> Result<Loaded, UiError> {
    let served = b.served();
    let r = &served.registry;
    let mut data = definition(b, r, ObjectKind::FeatureView, name, Focus::View(name)).await?;
    let v = &r.views[name];
    let watermark = b.meta().watermarks().await?.get(name).copied();
    data["freshness"] = freshness(v, watermark, now_us());
    data["features"] = v
        .features
        .iter()
        .map(|f| json!({"name": f.name, "type": f.value_type.to_string(), "description": f.description, "computed_as": f.expr.clone().map(|e| format!("expr {e}")).unwrap_or_else(|| format!("column {}", f.source_column()))}))
        .chain(v.aggregations.iter().map(|a| {
            let what = a.column.clone().or_else(|| a.expr.clone()).unwrap_or_else(|| "*".into());
            json!({"name": a.name, "type": a.value_type.to_string(), "description": a.description, "computed_as": format!("{}({what}) over {}{}", a.function.name(), a.window, a.filter.as_ref().map(|f| format!(" where {f}")).unwrap_or_default())})
        }))
        .collect();
    data["services"] = json!(r.services_using_view(name));
    data["join_keys"] = json!(
        r.view_join_keys(v)
            .iter()
            .map(|k| json!({"name": k.name, "type": k.value_type.to_string()}))
            .collect::<Vec<_>>()
    );
    data["request_time"] = json!(v.is_request());
    Ok(loaded("view", format!("{name} · view · Quiver"), data))
}

async fn view_stats(b: &dyn Backend, name: &str, q: &Query) -> Result<Loaded, UiError> {
    let served = b.served();
    let v = served.registry.views.get(name).ok_or_else(|| {
        missing(
            "feature view",
            name,
            served.registry.names(ObjectKind::FeatureView),
        )
    })?;
    let mut data = crate::stats::view_stats(&served.engine, v, now_us())
        .await
        .map_err(UiError::bad)?;
    if let Some(f) = q.get("feature")
        && let Some(cols) = data["columns"].as_array_mut()
    {
        cols.retain(|c| c["name"] == f);
    }
    Ok(loaded("stats", format!("{name} statistics · Quiver"), data))
}

/// A join-key value typed as the key is (`int64` / `int32` keys take numbers).
fn key_value(raw: &str, value_type: &str) -> Result<Json, UiError> {
    match value_type {
        "string" => Ok(json!(raw)),
        _ => raw.trim().parse::<i64>().map(|n| json!(n)).map_err(|_| {
            UiError::bad(format!(
                "'{raw}' is not an integer, and this key is {value_type}"
            ))
        }),
    }
}

async fn lookup(b: &dyn Backend, name: &str, q: &Query) -> Result<Loaded, UiError> {
    let served = b.served();
    let r = &served.registry;
    let v = r
        .views
        .get(name)
        .ok_or_else(|| missing("feature view", name, r.names(ObjectKind::FeatureView)))?;
    let keys = r.view_join_keys(v);
    let mut entities = serde_json::Map::new();
    let mut given = serde_json::Map::new();
    for k in &keys {
        let raw = q.get(&k.name).ok_or_else(|| {
            UiError::bad(format!(
                "give a value for each join key of '{name}': {}",
                keys.iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        given.insert(k.name.clone(), json!(raw));
        entities.insert(
            k.name.clone(),
            json!([key_value(raw, &k.value_type.to_string())?]),
        );
    }
    let features: Vec<String> = v
        .outputs()
        .iter()
        .map(|(f, _)| format!("{name}:{f}"))
        .collect();
    let request = json!({"features": features, "entities": entities});
    let (status, answer) = b.call(Call::OnlineFeatures(request.clone())).await;
    if status >= 400 {
        return Err(UiError {
            status: axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
            message: answer["error"]
                .as_str()
                .unwrap_or("the online lookup failed")
                .to_string(),
        });
    }
    let now = now_us();
    let names = answer["metadata"]["feature_names"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let values: Vec<Json> = names
        .iter()
        .zip(&results)
        .skip(keys.len())
        .map(|(n, col)| {
            let ts = col["event_timestamps"][0].as_str().unwrap_or("");
            let at = chrono::DateTime::parse_from_rfc3339(ts)
                .ok()
                .map(|t| t.timestamp_micros());
            let status = col["statuses"][0].as_str().unwrap_or("");
            json!({
                "feature": n,
                "value": col["values"][0],
                "status": status,
                "event_timestamp": if status == "PRESENT" { Some(ts) } else { None },
                "age_seconds": at.filter(|_| status == "PRESENT").map(|t| (now - t) / 1_000_000),
            })
        })
        .collect();
    let found = values.iter().any(|v| v["status"] == "PRESENT");
    Ok(loaded(
        "lookup",
        format!("{name} online lookup · Quiver"),
        json!({"view": name, "keys": given, "found": found, "values": values, "request": request, "ttl": ttl_text(v)}),
    ))
}

async fn feature(b: &dyn Backend, view: &str, feature: &str) -> Result<Loaded, UiError> {
    let served = b.served();
    let r = &served.registry;
    let v = r
        .views
        .get(view)
        .ok_or_else(|| missing("feature view", view, r.names(ObjectKind::FeatureView)))?;
    let Some(ty) = v.output_type(feature) else {
        return Err(missing(
            &format!("feature in view '{view}':"),
            feature,
            v.outputs().iter().map(|(n, _)| n.to_string()).collect(),
        ));
    };
    let description = v
        .features
        .iter()
        .find(|f| f.name == feature)
        .and_then(|f| f.description.clone())
        .or_else(|| {
            v.aggregations
                .iter()
                .find(|a| a.name == feature)
                .and_then(|a| a.description.clone())
        });
    let services: Vec<&str> = r
        .services
        .values()
        .filter(|s| {
            s.features
                .iter()
                .any(|f| f.view == view && f.feature == feature)
        })
        .map(|s| s.name.as_str())
        .collect();
    let models = b.meta().model_versions(None).await?;
    let used_by: Vec<Json> = models
        .iter()
        .filter(|m| services.contains(&m.feature_service.as_str()))
        .map(|m| json!({"name": m.name, "version": m.version, "aliases": m.aliases, "feature_service": m.feature_service}))
        .collect();
    Ok(loaded(
        "feature",
        format!("{view}:{feature} · feature · Quiver"),
        json!({
            "view": view,
            "feature": feature,
            "type": ty.to_string(),
            "description": description,
            "owner": v.owner,
            "tags": v.tags,
            "services": services,
            "models": used_by,
            "online": v.online,
            "lineage": lineage::around(r, &models, Focus::Feature(view, feature)).to_json(),
            "join_keys": r.view_join_keys(v).iter().map(|k| json!({"name": k.name, "type": k.value_type.to_string()})).collect::<Vec<_>>(),
        }),
    ))
}

async fn service(b: &dyn Backend, name: &str) -> Result<Loaded, UiError> {
    let served = b.served();
    let r = &served.registry;
    let mut data = definition(b, r, ObjectKind::FeatureService, name, Focus::Service(name)).await?;
    let s = &r.services[name];
    let hash = r
        .object_hash(ObjectKind::FeatureService, name)
        .unwrap_or_default();
    data["features"] = s
        .features
        .iter()
        .map(|f| json!({"view": f.view, "feature": f.feature, "type": r.views.get(&f.view).and_then(|v| v.output_type(&f.feature)).map(|t| t.to_string())}))
        .collect();
    data["models"] = b
        .meta()
        .model_versions(None)
        .await?
        .iter()
        .filter(|m| m.feature_service == name)
        .map(|m| json!({"name": m.name, "version": m.version, "aliases": m.aliases, "service_matches": m.service_hash == hash}))
        .collect();
    Ok(loaded(
        "service",
        format!("{name} · service · Quiver"),
        data,
    ))
}

async fn object(b: &dyn Backend, kind: ObjectKind, name: &str) -> Result<Loaded, UiError> {
    let served = b.served();
    let focus = match kind {
        ObjectKind::Source => Focus::Source(name),
        _ => Focus::Entity(name),
    };
    let data = definition(b, &served.registry, kind, name, focus).await?;
    Ok(loaded(
        "object",
        format!("{name} · {} · Quiver", kind.as_str()),
        data,
    ))
}

/// The kind a URL segment names (`views`, `services`, ... or the kind's own name).
fn kind_of(segment: &str) -> Option<ObjectKind> {
    Some(match segment {
        "views" | "feature_view" => ObjectKind::FeatureView,
        "services" | "feature_service" => ObjectKind::FeatureService,
        "entities" | "entity" => ObjectKind::Entity,
        "sources" | "source" => ObjectKind::Source,
        "jobs" | "job" => ObjectKind::Job,
        "recommenders" | "recommender" => ObjectKind::Recommender,
        "quality" => ObjectKind::Quality,
        _ => return None,
    })
}

async fn diff(b: &dyn Backend, kind: &str, name: &str, q: &Query) -> Result<Loaded, UiError> {
    let k = kind_of(kind).ok_or_else(|| {
        UiError::not_found(format!(
            "no kind '{kind}': views, services, entities, sources, jobs, recommenders or quality"
        ))
    })?;
    let defs = b.meta().object_definitions(k, name).await?;
    if defs.is_empty() {
        return Err(UiError::not_found(format!(
            "no stored versions of {} '{name}'",
            k.as_str()
        )));
    }
    let newest = defs.last().map_or(1, |d| d.0);
    let pick = |key: &str, default: i64| -> Result<i64, UiError> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| UiError::bad(format!("{key}={v}: give a version number"))),
        }
    };
    let b_v = pick("b", newest)?;
    let a_v = pick("a", (b_v - 1).max(1))?;
    let text = |v: i64| -> Result<String, UiError> {
        defs.iter()
            .find(|d| d.0 == v)
            .map(|d| {
                if d.1.is_null() {
                    "# removed\n".to_string()
                } else {
                    yaml::to_yaml(&d.1)
                }
            })
            .ok_or_else(|| {
                UiError::not_found(format!(
                    "{} '{name}' has no version {v} (versions 1 to {newest})",
                    k.as_str()
                ))
            })
    };
    let (old, new) = (text(a_v)?, text(b_v)?);
    let lines = yaml::diff(&old, &new);
    Ok(loaded(
        "diff",
        format!("{name} v{a_v} → v{b_v} · Quiver"),
        json!({
            "kind": k,
            "segment": kind,
            "name": name,
            "a": a_v,
            "b": b_v,
            "versions": defs.iter().map(|d| d.0).collect::<Vec<_>>(),
            "changed": lines.iter().filter(|l| l.op != " ").count(),
            "lines": lines,
        }),
    ))
}

async fn models(b: &dyn Backend) -> Result<Loaded, UiError> {
    let versions = b.meta().model_versions(None).await?;
    let mut by_name: BTreeMap<&str, Vec<&ModelVersion>> = BTreeMap::new();
    for v in &versions {
        by_name.entry(v.name.as_str()).or_default().push(v);
    }
    let items: Vec<Json> = by_name
        .iter()
        .map(|(name, vs)| {
            let alias = |a: &str| {
                vs.iter()
                    .find(|v| v.aliases.iter().any(|x| x == a))
                    .map(|v| v.version)
            };
            let last = vs.last().expect("a model has versions");
            json!({
                "name": name,
                "versions": vs.len(),
                "latest": last.version,
                "champion": alias("champion"),
                "challenger": alias("challenger"),
                "task": last.task,
                "algorithm": last.algorithm,
                "feature_service": last.feature_service,
                "created_at": last.created_at,
            })
        })
        .collect();
    Ok(loaded(
        "models",
        "Models · Quiver",
        json!({"models": items}),
    ))
}

async fn model(b: &dyn Backend, name: &str) -> Result<Loaded, UiError> {
    let meta = b.meta();
    let served = b.served();
    let r = &served.registry;
    let versions = meta.model_versions(Some(name)).await?;
    if versions.is_empty() {
        let all = meta.model_versions(None).await?;
        let names: BTreeSet<String> = all.iter().map(|m| m.name.clone()).collect();
        return Err(missing("model", name, names.into_iter().collect()));
    }
    let mut metric_names = BTreeSet::new();
    let mut stats = Vec::new();
    for v in &versions {
        if let Some(m) = v.details["metrics"].as_object() {
            metric_names.extend(
                m.iter()
                    .filter(|(_, x)| x.is_number())
                    .map(|(k, _)| k.clone()),
            );
        }
        let s = meta.rollout_stats(name, v.version).await?;
        if s.predictions > 0 {
            stats.push(json!({"version": v.version, "predictions": s.predictions, "disagreements": s.disagreements, "errors": s.errors, "disagreement_share": s.disagreements as f64 / s.predictions as f64}));
        }
    }
    let rows: Vec<Json> = versions
        .iter()
        .rev()
        .map(|v| {
            let current = r.object_hash(ObjectKind::FeatureService, &v.feature_service);
            let mut importance: Vec<Json> = v.details["importance"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            importance.truncate(15);
            json!({
                "version": v.version,
                "created_at": v.created_at,
                "task": v.task,
                "algorithm": v.algorithm,
                "feature_service": v.feature_service,
                "service_hash": v.service_hash,
                "service_status": match &current {
                    None => "removed",
                    Some(h) if *h == v.service_hash => "matches",
                    Some(_) => "changed",
                },
                "aliases": v.aliases,
                "metrics": v.details["metrics"],
                "importance": importance,
                "train_seconds": v.details["train_seconds"],
                "report": format!("/ui/models/{}/{}/report", seg(name), v.version),
            })
        })
        .collect();
    let rollout = meta.rollout(name).await?;
    let deployments = meta.deployments(Some(name), 5).await?;
    Ok(loaded(
        "model",
        format!("{name} · model · Quiver"),
        json!({
            "name": name,
            "metric_better": metric_names.iter().filter_map(|m| {
                quiver_core::job::metric_higher_is_better(m).map(|h| (m.clone(), json!(if h { "higher" } else { "lower" })))
            }).collect::<serde_json::Map<_, _>>(),
            "metric_names": metric_names,
            "versions": rows,
            "rollout": rollout,
            "rollout_stats": stats,
            "deployments": deployments,
            "lineage": lineage::around(r, &versions, Focus::Model(name)).to_json(),
        }),
    ))
}

async fn jobs(b: &dyn Backend) -> Result<Loaded, UiError> {
    let served = b.served();
    let jobs = quiver_jobs::status::jobs_json(b.meta(), &served.registry, now_us()).await?;
    Ok(loaded("jobs", "Jobs · Quiver", json!({"jobs": jobs})))
}

async fn job(b: &dyn Backend, name: &str) -> Result<Loaded, UiError> {
    let served = b.served();
    let r = &served.registry;
    if !r.jobs.contains_key(name) {
        return Err(missing("job", name, r.jobs.keys().cloned().collect()));
    }
    let jobs = quiver_jobs::status::jobs_json(b.meta(), r, now_us()).await?;
    let job = jobs
        .into_iter()
        .find(|j| j["job"] == name)
        .unwrap_or(Json::Null);
    let runs: Vec<Json> = b
        .meta()
        .job_runs(Some(name), 100)
        .await?
        .iter()
        .map(quiver_jobs::status::run_json)
        .collect();
    Ok(loaded(
        "job",
        format!("{name} · job · Quiver"),
        json!({"name": name, "job": job, "runs": runs}),
    ))
}

async fn monitoring(b: &dyn Backend) -> Result<Loaded, UiError> {
    let meta = b.meta();
    let runs = meta.quality_runs(None, 500).await?;
    let mut by_set: BTreeMap<&str, Vec<&quiver_registry::quality::QualityRun>> = BTreeMap::new();
    for run in &runs {
        by_set.entry(run.quality.as_str()).or_default().push(run);
    }
    let quality: Vec<Json> = by_set
        .into_iter()
        .map(|(set, mut runs)| {
            runs.sort_by_key(|r| r.checked_us);
            let latest = runs.last().expect("a set has runs");
            json!({
                "quality": set,
                "target": latest.target,
                "runs": runs.iter().map(|r| json!({
                    "id": r.id,
                    "checked_at": time_text(r.checked_us),
                    "status": r.status,
                    "trigger": r.trigger,
                    "failing": r.results.iter().filter(|c| c.status == "fail").count(),
                })).collect::<Vec<_>>(),
                "latest": {
                    "id": latest.id,
                    "checked_at": time_text(latest.checked_us),
                    "status": latest.status,
                    "results": latest.results,
                },
            })
        })
        .collect();
    let drift: Vec<Json> = meta
        .drift_runs(None, 100)
        .await?
        .iter()
        .map(|d| json!({"model": d.model, "id": d.id, "checked_at": time_text(d.checked_us), "dataset_drift": d.dataset_drift, "share_drifted": d.share_drifted, "reference": d.reference, "current": d.current}))
        .collect();
    Ok(loaded(
        "monitoring",
        "Monitoring · Quiver",
        json!({"quality": quality, "drift": drift}),
    ))
}

async fn drift(b: &dyn Backend, model: &str) -> Result<Loaded, UiError> {
    let runs = b.meta().drift_runs(Some(model), 50).await?;
    let Some(latest) = runs.iter().max_by_key(|r| r.checked_us) else {
        return Err(UiError::not_found(format!(
            "no drift result stored for '{model}': run quiver drift with a model: or log:{model}@START..END data set"
        )));
    };
    let mut history: Vec<Json> = runs
        .iter()
        .map(|d| json!({"id": d.id, "checked_at": time_text(d.checked_us), "dataset_drift": d.dataset_drift, "share_drifted": d.share_drifted}))
        .collect();
    history.sort_by(|a, b| a["checked_at"].as_str().cmp(&b["checked_at"].as_str()));
    Ok(loaded(
        "drift",
        format!("{model} drift · Quiver"),
        json!({
            "model": model,
            "id": latest.id,
            "checked_at": time_text(latest.checked_us),
            "reference": latest.reference,
            "current": latest.current,
            "dataset_drift": latest.dataset_drift,
            "share_drifted": latest.share_drifted,
            "report": latest.report,
            "history": history,
        }),
    ))
}

async fn recommend(b: &dyn Backend, q: &Query) -> Result<Loaded, UiError> {
    let served = b.served();
    let names: Vec<&String> = served.registry.recommenders.keys().collect();
    let chosen = q
        .get("recommender")
        .map(str::to_string)
        .or_else(|| names.first().map(|n| n.to_string()));
    let mut data = json!({"recommenders": names, "recommender": chosen, "user_id": q.get("user_id"), "k": q.get("k").unwrap_or("10")});
    if let (Some(rec), Some(user)) = (&chosen, q.get("user_id")) {
        let user_id = user
            .trim()
            .parse::<i64>()
            .map(|n| json!(n))
            .unwrap_or_else(|_| json!(user.trim()));
        let k: i64 = q.get("k").and_then(|k| k.parse().ok()).unwrap_or(10);
        // A preview: the answer names the user's arm, but is no exposure of the experiment.
        let request =
            json!({"recommender": rec, "user_id": user_id, "k": k, "log_exposure": false});
        let (status, answer) = b.call(Call::Recommend(request.clone())).await;
        data["request"] = request;
        if status >= 400 {
            data["error"] = answer["error"].clone();
        } else {
            data["answer"] = answer;
        }
    }
    // The experiments splitting the chosen recommender, with their reports as of now.
    let mut experiments = Vec::new();
    for e in served
        .registry
        .experiments
        .values()
        .filter(|e| Some(&e.recommender) == chosen.as_ref())
    {
        let (status, answer) = b.call(Call::AbReport(e.name.clone())).await;
        experiments.push(if status >= 400 {
            json!({"name": e.name, "error": answer["error"]})
        } else {
            json!({"name": e.name, "report": answer})
        });
    }
    data["experiments"] = json!(experiments);
    Ok(loaded("recommend", "Recommendations · Quiver", data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_segments_decode() {
        let q = Query::parse(Some("q=churn%20rate&kind=view&empty="));
        assert_eq!(q.get("q"), Some("churn rate"));
        assert_eq!(q.get("kind"), Some("view"));
        assert_eq!(q.get("empty"), None);
        assert_eq!(decode("a%3Cb"), "a<b");
        assert_eq!(decode("bad%zz"), "bad%zz");
    }
}
