//! # quiver-ui
//!
//! The web UI that `quiver serve` serves at `/ui`: server-rendered HTML pages over the same
//! registry, metadata store, online store, model registry, job history and monitoring results
//! as the JSON API, with every asset (one stylesheet and htmx, vendored) compiled into the
//! binary. Nothing is fetched from the network.
//!
//! * [`Backend`] is what the UI needs from the server: the registry version served, the stores,
//!   the token settings, and [`Call`]s into the API's own handlers (online lookups,
//!   recommendations, promote / rollback, run now), so that the UI's reads and writes are the
//!   API's, not a second implementation.
//! * Every page is a stable URL under `/ui` whose data is loaded once ([`pages::load`]) and then
//!   rendered as HTML ([`render`]) or served as JSON: the page's twin in the API is the same
//!   path under `/api/ui` ([`api_page`]), so the two can never disagree.
//! * Templates are [`maud`] macros: every value is HTML-escaped unless wrapped in `PreEscaped`,
//!   which this crate never does with anything user-defined. Plots ([`svg`]) and the lineage
//!   graph ([`lineage`]) are drawn as inline SVG by the same templates.
//! * Reads follow `server.protect_reads`; writes always need the token. A browser enters the
//!   token once on `/ui/login` and gets a session cookie ([`session`]).

pub mod lineage;
pub mod pages;
pub mod render;
pub mod session;
pub mod stats;
pub mod svg;
pub mod yaml;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use quiver_core::Registry;
use quiver_offline::OfflineEngine;
use quiver_registry::SqlMetadataStore;
use serde_json::{Value as Json, json};

/// The registry version a request is answered with.
#[derive(Clone)]
pub struct Served {
    /// The applied registry.
    pub registry: Arc<Registry>,
    /// Its version in the metadata store.
    pub version: i64,
    /// The offline engine over it (statistics panels).
    pub engine: Arc<OfflineEngine>,
}

/// A call into the JSON API's own handlers, made in-process by the UI.
#[derive(Debug, Clone)]
pub enum Call {
    /// `POST /get-online-features` with this body.
    OnlineFeatures(Json),
    /// `POST /recommend` with this body.
    Recommend(Json),
    /// `POST /models/{name}/promote` with `{"version", "alias"}`.
    Promote {
        /// Model name.
        name: String,
        /// The body.
        body: Json,
    },
    /// `POST /models/{name}/rollback` with `{"alias"}`.
    Rollback {
        /// Model name.
        name: String,
        /// The body.
        body: Json,
    },
    /// `POST /models/{name}/rollout` with `{"mode", "share"}`.
    Rollout {
        /// Model name.
        name: String,
        /// The body.
        body: Json,
    },
    /// `POST /jobs/{name}/run`.
    RunJob(String),
    /// `GET /experiments/{name}/report` (as of now).
    AbReport(String),
}

/// What the UI reads and calls; implemented by the server over its shared state.
pub trait Backend: Send + Sync + 'static {
    /// The registry version served now (take it once per request).
    fn served(&self) -> Served;
    /// The metadata store: object versions, watermarks, models, jobs, monitoring results.
    fn meta(&self) -> &SqlMetadataStore;
    /// The repository root (model artifacts).
    fn root(&self) -> &Path;
    /// The bearer token writes need (and reads with `protect_reads`); `None`: not configured.
    fn token(&self) -> Option<&str>;
    /// Whether reads need the token too (`server.protect_reads`).
    fn protect_reads(&self) -> bool;
    /// The online store's description and whether it answers.
    fn online_health(&self) -> BoxFuture<'_, (String, Result<(), String>)>;
    /// Calls the API's handler for `call`: its HTTP status and JSON answer.
    fn call(&self, call: Call) -> BoxFuture<'_, (u16, Json)>;
}

/// The shared backend of every UI handler.
pub type Shared = Arc<dyn Backend>;

/// An error of a page: a status and a message for the reader.
#[derive(Debug, Clone)]
pub struct UiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl UiError {
    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        UiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    /// 400 with a message.
    pub fn bad(message: impl Into<String>) -> Self {
        UiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    /// 503: a store did not answer.
    pub fn store(e: impl std::fmt::Display) -> Self {
        UiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: e.to_string(),
        }
    }
}

impl From<quiver_registry::Error> for UiError {
    fn from(e: quiver_registry::Error) -> Self {
        match e {
            quiver_registry::Error::Model(m) => UiError::not_found(m),
            other => UiError::store(other),
        }
    }
}

/// The UI's routes: `GET /ui` and every page under it, the assets, login / logout and the
/// POST actions. Merge it into the server's router (it carries its own state).
pub fn pages<S: Clone + Send + Sync + 'static>(backend: Shared) -> Router<S> {
    Router::new()
        .route("/ui", get(html_page))
        .route("/ui/", get(html_page))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/login", get(login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/models/{name}/promote", post(actions::promote))
        .route("/ui/models/{name}/rollback", post(actions::rollback))
        .route("/ui/models/{name}/rollout", post(actions::rollout))
        .route("/ui/jobs/{name}/run", post(actions::run_job))
        .route("/ui/{*page}", get(html_page))
        .with_state(backend)
}

mod actions;

/// The path of a page below `/ui`, without slashes at its ends.
fn page_path(path: &str) -> &str {
    path.strip_prefix("/ui").unwrap_or(path).trim_matches('/')
}

async fn html_page(
    State(b): State<Shared>,
    uri: axum::http::Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let page = page_path(uri.path()).to_string();
    let query = pages::Query::parse(query.as_deref());
    let signed_in = session::authorized(b.as_ref(), &headers);
    if b.protect_reads() && !signed_in {
        let next = match uri.query() {
            Some(q) => format!("{}?{q}", uri.path()),
            None => uri.path().to_string(),
        };
        return Redirect::to(&format!("/ui/login?next={}", session::encode(&next))).into_response();
    }
    if let Some(rest) = page.strip_prefix("models/")
        && let Some((name, version)) = rest.strip_suffix("/report").and_then(|r| r.split_once('/'))
    {
        return actions::report(b.as_ref(), name, version).await;
    }
    let ctx = render::Ctx {
        signed_in,
        token_configured: b.token().is_some(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        flash: query.get("done").map(str::to_string),
        fragment: headers.contains_key("hx-request") && !headers.contains_key("hx-boosted"),
    };
    match pages::load(b.as_ref(), &page, &query).await {
        Ok(loaded) => {
            let body = render::page(&loaded, &ctx).into_string();
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
        }
        Err(e) => {
            let body = render::error_page(&e, &ctx).into_string();
            (
                e.status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response()
        }
    }
}

/// `GET /api/ui/{*page}`: the JSON twin of the page `/ui/{page}` (the data it renders). Reads
/// follow `protect_reads`, with the bearer token or the UI's session cookie.
pub async fn api_page(
    b: &dyn Backend,
    page: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    if b.protect_reads() && !session::authorized(b, headers) {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "this server protects reads: send `Authorization: Bearer <token>`", "status": 401})),
        )
            .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("header"));
        return r;
    }
    let query = pages::Query::parse(query);
    match pages::load(b, page.trim_matches('/'), &query).await {
        Ok(loaded) => axum::Json(loaded.data).into_response(),
        Err(e) => (
            e.status,
            axum::Json(json!({"error": e.message, "status": e.status.as_u16()})),
        )
            .into_response(),
    }
}

async fn login_form(
    State(b): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = pages::Query::parse(query.as_deref());
    let next = session::safe_next(query.get("next"));
    let ctx = render::Ctx {
        signed_in: session::authorized(b.as_ref(), &headers),
        token_configured: b.token().is_some(),
        path: "/ui/login".into(),
        ..Default::default()
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        render::login_page(&ctx, &next, None).into_string(),
    )
        .into_response()
}

/// The embedded assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/htmx.min.js"),
    ),
    (
        "quiver.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/quiver.css"),
    ),
];

async fn asset(UrlPath(file): UrlPath<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == file) {
        Some((_, ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Microseconds since the epoch, now.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `2025-06-30T00:00:00Z` of microseconds since the epoch.
pub(crate) fn time_text(us: i64) -> String {
    quiver_jobs::status::time_text(us)
}

/// A duration in microseconds as `3d 4h`, `12m`, `40s`.
pub(crate) fn age_text(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}
