//! # quiver-server
//!
//! The HTTP feature server behind `quiver serve`: Feast's feature-server protocol
//! (`/get-online-features`, `/push`, `/write-to-online-store`, `/materialize`,
//! `/materialize-incremental`) so that Feast clients work unchanged, plus `/health`, `/ready`,
//! `/metrics` (Prometheus), `/openapi.json` with a docs page at `/docs`, and read-only registry
//! endpoints.

mod convert;
mod error;
pub mod exposure_log;
mod info;
mod jobs;
mod metrics_catalog;
mod models_api;
mod monitoring;
pub mod online;
mod predict;
pub mod prediction_log;
mod recommend;
mod ui;
mod write;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use quiver_core::Registry;
use quiver_offline::OfflineEngine;
use quiver_online::OnlineStore;
use quiver_registry::SqlMetadataStore;
use quiver_ui::session::same_secret;

pub use error::ApiError;
pub use write::materialize_report;

/// Server limits and security, from `server:` in quiver.yaml.
#[derive(Clone)]
pub struct ServerConfig {
    /// Largest request body (bytes); larger gets 413.
    pub max_body_bytes: usize,
    /// Most entity rows per request; more gets 400.
    pub max_entities: usize,
    /// The bearer token for write and admin endpoints (and reads with `protect_reads`).
    pub token: Option<String>,
    /// Whether reads need the token too.
    pub protect_reads: bool,
    /// Where the token came from, for messages (never the token itself).
    pub token_source: String,
    /// The /predict log (its folder relative to the repository).
    pub prediction_log: prediction_log::PredictionLogConfig,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_entities", &self.max_entities)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("protect_reads", &self.protect_reads)
            .finish()
    }
}

/// The default token variable.
pub const TOKEN_ENV: &str = "QUIVER_SERVER_TOKEN";

impl ServerConfig {
    /// From `quiver.yaml`'s `server:` (and `storage:`, for a prediction log in object storage)
    /// and the environment.
    pub fn from_settings(settings: &quiver_core::repo::RepoSettings) -> ServerConfig {
        let raw = &settings.server;
        let env_name = raw.token_env.clone().unwrap_or_else(|| TOKEN_ENV.into());
        let from_env = std::env::var(&env_name).ok().filter(|t| !t.is_empty());
        let (token, token_source) = match (from_env, &raw.token) {
            (Some(t), _) => (Some(t), format!("environment variable {env_name}")),
            (None, Some(t)) => (Some(t.clone()), "server.token in quiver.yaml".into()),
            (None, None) => (None, format!("environment variable {env_name} (not set)")),
        };
        ServerConfig {
            max_body_bytes: raw.max_body_bytes.unwrap_or(1 << 20),
            max_entities: raw.max_entities.unwrap_or(10_000),
            token,
            protect_reads: raw.protect_reads.unwrap_or(false),
            token_source,
            prediction_log: prediction_log::PredictionLogConfig {
                storage: settings.storage.clone(),
                ..prediction_log::PredictionLogConfig::from_settings(
                    raw.prediction_log.as_ref(),
                    std::path::Path::new(""),
                )
            },
        }
    }
}

/// What the server serves of one applied registry version: the definitions, the offline engine
/// over them and the compiled request-time views. A request takes one snapshot
/// ([`AppState::served`]) and uses it throughout, so an `apply` that lands meanwhile never mixes
/// two versions in one answer.
pub struct Served {
    /// The applied registry.
    pub registry: Arc<Registry>,
    /// Its version in the metadata store.
    pub version: i64,
    /// The offline engine (materialize, offline push).
    pub engine: Arc<OfflineEngine>,
    /// Request-time views, compiled once (an error is kept and answered with 500 on use).
    pub request_views:
        std::collections::HashMap<String, Result<quiver_offline::CompiledRequestView, String>>,
}

impl Served {
    /// What to serve of `registry` (applied as `version`) in the repository `root`.
    pub fn new(registry: Registry, version: i64, root: &std::path::Path) -> Served {
        let request_views = registry
            .views
            .values()
            .filter(|v| v.is_request())
            .map(|v| {
                (
                    v.name.clone(),
                    quiver_offline::CompiledRequestView::compile(&registry, v)
                        .map_err(|e| e.to_string()),
                )
            })
            .collect();
        Served {
            request_views,
            engine: Arc::new(OfflineEngine::new(registry.clone(), root.to_path_buf())),
            registry: Arc::new(registry),
            version,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    /// The registry version served now; replaced when `apply` stores a newer one.
    served: std::sync::RwLock<Arc<Served>>,
    /// The online store.
    pub store: Arc<dyn OnlineStore>,
    /// The metadata store (watermarks).
    pub meta: SqlMetadataStore,
    /// Limits and security.
    pub config: ServerConfig,
    /// The repository root.
    pub root: PathBuf,
    /// Loaded model versions for /predict.
    pub models: predict::ModelCache,
    /// The /predict log.
    pub prediction_log: prediction_log::PredictionLog,
    /// Loaded recommender versions for /recommend.
    pub recs: recommend::RecCache,
    /// The A/B exposures of /recommend.
    pub exposure_log: exposure_log::ExposureLog,
    metrics: PrometheusHandle,
}

impl AppState {
    /// Builds the state.
    pub fn new(
        registry: Registry,
        registry_version: i64,
        root: PathBuf,
        store: Arc<dyn OnlineStore>,
        meta: SqlMetadataStore,
        config: ServerConfig,
    ) -> Arc<AppState> {
        let mut log_config = config.prediction_log.clone();
        if !quiver_offline::remote::is_url(&log_config.dir.to_string_lossy()) {
            log_config.dir = root.join(&log_config.dir);
        }
        let prediction_log = prediction_log::PredictionLog::start(log_config);
        let exposure_log = exposure_log::start(&config.prediction_log, &root);
        let metrics = metrics_handle();
        metrics_catalog::register_all();
        exposure_log::register_series(&registry);
        metrics::gauge!("quiver_registry_version").set(registry_version as f64);
        Arc::new(AppState {
            served: std::sync::RwLock::new(Arc::new(Served::new(
                registry,
                registry_version,
                &root,
            ))),
            store,
            meta,
            config,
            models: predict::ModelCache::default(),
            prediction_log,
            recs: recommend::RecCache::default(),
            exposure_log,
            root,
            metrics,
        })
    }

    /// The alerts of the repository's `quiver.yaml` as they read now (dedup in the metadata
    /// store); off when they do not read (said on stderr).
    pub fn alerter(&self) -> quiver_jobs::Alerter {
        match quiver_core::repo::RepoSettings::load(&self.root) {
            Ok(settings) => quiver_jobs::Alerter::from_settings_or_off(
                &settings.alerts,
                Some(self.meta.clone()),
            ),
            Err(e) => {
                eprintln!("warning: alerts are off: {e}");
                quiver_jobs::Alerter::default()
            }
        }
    }

    /// The registry version to answer a request with (take it once per request).
    pub fn served(&self) -> Arc<Served> {
        Arc::clone(&self.served.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Picks up a registry version newer than the one served (after `quiver apply`): returns
    /// the new version, or `None` when the served one is the newest. Requests already running
    /// finish on the version they started with.
    pub async fn refresh_registry(&self) -> Result<Option<i64>, quiver_registry::Error> {
        use quiver_registry::MetadataStore;
        let current = self.served().version;
        if self.meta.latest_version().await? <= current {
            return Ok(None);
        }
        let Some(applied) = self.meta.current().await? else {
            return Ok(None);
        };
        if applied.version <= current {
            return Ok(None);
        }
        let version = applied.version;
        exposure_log::register_series(&applied.registry);
        let next = Arc::new(Served::new(applied.registry, version, &self.root));
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = next;
        metrics::gauge!("quiver_registry_version").set(version as f64);
        Ok(Some(version))
    }

    /// Registers the per-model series of every model that has a champion (at start).
    async fn register_model_series(&self) {
        if let Ok(versions) = self.meta.model_versions(None).await {
            for v in versions
                .iter()
                .filter(|v| v.aliases.iter().any(|a| a == "champion"))
            {
                if v.task == quiver_recs::registry::TASK {
                    recommend::register_series(&v.name);
                } else {
                    metrics_catalog::register_model(&v.name, v.version);
                }
            }
        }
    }

    /// Checks the online store's health and sets `quiver_online_store_up`; returns the error.
    pub async fn check_store(&self) -> Result<(), String> {
        let online = match tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.store.health(),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 2 s".to_string()),
        };
        metrics::gauge!("quiver_online_store_up").set(if online.is_ok() { 1.0 } else { 0.0 });
        online
    }

    /// Starts the server's housekeeping on the current runtime, every `every`: picks up a newer
    /// registry version, drains histogram samples into their buckets (the Prometheus recorder
    /// otherwise keeps every sample until `/metrics` is scraped, so a server nobody scrapes
    /// grows without bound), and refreshes `quiver_online_store_up` (every fifth round). Stops
    /// when the state is dropped.
    pub fn spawn_upkeep(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut round = 0u64;
            loop {
                tick.tick().await;
                let Some(state) = weak.upgrade() else { return };
                match state.refresh_registry().await {
                    Ok(Some(v)) => eprintln!("quiver serve: now serving registry version {v}"),
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("quiver serve: cannot check the registry for a new version: {e}")
                    }
                }
                state.metrics.run_upkeep();
                state.models.flush_tally(&state.meta).await;
                if round == 0 {
                    state.register_model_series().await;
                    let reg = state.served().registry.clone();
                    if let Err(e) =
                        quiver_monitor::quality::record::restore_metrics(&state.meta, &reg).await
                    {
                        eprintln!("quiver serve: cannot read the stored quality results: {e}");
                    }
                }
                if round.is_multiple_of(5) {
                    let _ = state.check_store().await;
                    if let Err(e) = quiver_monitor::results::set_drift_gauges(&state.meta).await {
                        eprintln!("quiver serve: cannot read the stored drift results: {e}");
                    }
                }
                round += 1;
            }
        })
    }
}

/// The process-wide Prometheus recorder (installed once; every server in the process shares
/// it). Metrics recorded before the first call are lost, so a process that registers series
/// (at zero) before serving calls this first.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .expect("buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding application's): then
            // our metrics go there and /metrics renders an empty registry.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    let reads = Router::new()
        .route("/get-online-features", post(online::get_online_features))
        .route("/predict", post(predict::predict))
        .route("/predict/batch", post(predict::predict_batch))
        .route("/recommend", post(recommend::recommend))
        .route("/recommend/batch", post(recommend::recommend_batch))
        .route("/similar-items", post(recommend::similar_items))
        .route(
            "/experiments/{name}/report",
            get(recommend::experiment_report),
        )
        .route("/registry/entities", get(info::list_entities))
        .route("/registry/sources", get(info::list_sources))
        .route("/registry/views", get(info::list_views))
        .route("/registry/views/{name}", get(info::get_view))
        .route("/registry/services", get(info::list_services))
        .route("/registry/services/{name}", get(info::get_service))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{name}/runs", get(jobs::runs))
        .route("/monitoring/checks", get(monitoring::checks))
        .route("/monitoring/drift/{model}", get(monitoring::drift))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth_reads));
    let writes = Router::new()
        .route("/push", post(write::push))
        .route("/write-to-online-store", post(write::write_to_online_store))
        .route("/materialize", post(write::materialize))
        .route(
            "/materialize-incremental",
            post(write::materialize_incremental),
        )
        .route("/online/clear", post(write::clear_online))
        .route("/jobs/{name}/run", post(jobs::run))
        .route("/models/{name}/promote", post(models_api::promote))
        .route("/models/{name}/rollback", post(models_api::rollback))
        .route("/models/{name}/rollout", post(models_api::rollout))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth_writes));
    Router::new()
        .route("/health", get(info::health))
        .route("/ready", get(info::ready))
        .route("/metrics", get(info::metrics))
        .route("/openapi.json", get(info::openapi))
        .route("/docs", get(info::docs))
        // The web UI's pages as JSON; reads follow protect_reads (bearer or the UI's cookie).
        .route("/api/ui", get(ui::api_page))
        .route("/api/ui/{*page}", get(ui::api_page))
        .merge(reads)
        .merge(writes)
        .fallback(info::not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), json_errors))
        .layer(middleware::from_fn(track))
        .with_state(state.clone())
        // The web UI at /ui: HTML pages, outside the JSON error rewriting.
        .merge(ui::pages(state))
}

/// Makes every error answer `{"error", "status"}`: the ones axum gives itself (413 for a body
/// over the limit, 405 for a wrong method, a body that is not UTF-8, ...) arrive as plain text
/// or empty, and are rewritten with a message that says what to do. Headers such as `Allow`
/// and `WWW-Authenticate` are kept.
async fn json_errors(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "{method} {path}: the request body is larger than {} bytes (server.max_body_bytes in quiver.yaml); send fewer rows per request",
            state.config.max_body_bytes
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            // axum adds `Allow` outside this layer: the OpenAPI document names the methods.
            let allowed = info::documented_methods(&path);
            format!(
                "{method} is not allowed on {path}: use {} (see GET /openapi.json)",
                if allowed.is_empty() {
                    "another method".to_string()
                } else {
                    allowed.join(" or ")
                }
            )
        }
        _ if !text.is_empty() => format!("{method} {path}: {text}"),
        _ => format!(
            "{method} {path}: {}",
            status.canonical_reason().unwrap_or("error")
        ),
    };
    let mut r = ApiError { status, message }.into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

/// Counts requests by endpoint and status and records their latency.
async fn track(req: Request, next: Next) -> Response {
    let endpoint = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let endpoint = endpoint.as_ref().map_or("unmatched", |p| p.as_str());
    record_http(endpoint, resp.status(), started.elapsed().as_secs_f64());
    resp
}

/// Counts a request in the counter of its (endpoint, status) and records its latency in the
/// endpoint's histogram. The handles are looked up in the recorder once per thread and kept: a
/// request then pays two metric updates, not a labelled-key build, hash and registry lookup
/// for each.
fn record_http(endpoint: &str, status: StatusCode, seconds: f64) {
    type Handles = Vec<(String, u16, metrics::Counter, metrics::Histogram)>;
    thread_local! {
        static HANDLES: std::cell::RefCell<Handles> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let code = status.as_u16();
    HANDLES.with_borrow_mut(|handles| {
        let i = match handles
            .iter()
            .position(|(e, s, _, _)| *s == code && e == endpoint)
        {
            Some(i) => i,
            None => {
                let c = metrics::counter!("quiver_http_requests_total", "endpoint" => endpoint.to_string(), "status" => code.to_string());
                let h = metrics::histogram!("quiver_http_request_duration_seconds", "endpoint" => endpoint.to_string());
                // Paths come from the router (a fixed set) or are "unmatched": this stays small.
                handles.push((endpoint.to_string(), code, c, h));
                handles.len() - 1
            }
        };
        let (_, _, c, h) = &handles[i];
        c.increment(1);
        h.record(seconds);
    })
}

fn check_token(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(expected) = &state.config.token else {
        return Err(Box::new(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "this endpoint needs a bearer token and none is configured: set {} (or server.token_env / server.token in quiver.yaml) and restart",
                state.config.token_source
            ),
        }
        .into_response()));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
    match given {
        Some(t) if same_secret(t.trim(), expected) => Ok(()),
        Some(_) => Err(Box::new(unauthorized("the bearer token is not valid"))),
        None => Err(Box::new(unauthorized(
            "missing `Authorization: Bearer <token>` header",
        ))),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: message.into(),
    }
    .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("header"));
    r
}

async fn auth_writes(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    match check_token(&state, &headers) {
        Ok(()) => next.run(req).await,
        Err(r) => *r,
    }
}

async fn auth_reads(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if state.config.protect_reads
        && let Err(r) = check_token(&state, &headers)
    {
        return *r;
    }
    next.run(req).await
}

/// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = state.spawn_upkeep(std::time::Duration::from_secs(1));
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

/// Serves only `GET /metrics` (Prometheus) and `GET /health` until `shutdown` resolves, draining
/// histogram samples every second: for a process that is not a feature server, such as a
/// standalone `quiver scheduler`, whose job metrics are recorded in the same process-wide
/// recorder.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = metrics_handle();
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
        .route("/health", get(info::health));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
