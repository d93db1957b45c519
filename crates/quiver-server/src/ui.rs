//! The web UI's wiring: [`Bridge`] gives `quiver_ui` the server's state and calls this
//! server's own handlers for what the UI shows or changes (online lookups, recommendations,
//! promote / rollback, run now), and `GET /api/ui/{*page}` serves each page's data as JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::Value as Json;

use crate::AppState;

/// The server's state as the UI's backend.
pub struct Bridge(pub Arc<AppState>);

/// A handler's answer as (status, JSON).
async fn json_of(r: Response) -> (u16, Json) {
    let status = r.status().as_u16();
    let body = axum::body::to_bytes(r.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Json::Null))
}

impl quiver_ui::Backend for Bridge {
    fn served(&self) -> quiver_ui::Served {
        let s = self.0.served();
        quiver_ui::Served {
            registry: Arc::clone(&s.registry),
            version: s.version,
            engine: Arc::clone(&s.engine),
        }
    }
    fn meta(&self) -> &quiver_registry::SqlMetadataStore {
        &self.0.meta
    }
    fn root(&self) -> &std::path::Path {
        &self.0.root
    }
    fn token(&self) -> Option<&str> {
        self.0.config.token.as_deref()
    }
    fn protect_reads(&self) -> bool {
        self.0.config.protect_reads
    }
    fn online_health(&self) -> BoxFuture<'_, (String, Result<(), String>)> {
        Box::pin(async move { (self.0.store.describe(), self.0.check_store().await) })
    }
    fn call(&self, call: quiver_ui::Call) -> BoxFuture<'_, (u16, Json)> {
        use quiver_ui::Call;
        let state = State(Arc::clone(&self.0));
        let bytes = |j: &Json| Bytes::from(j.to_string());
        Box::pin(async move {
            let r = match call {
                Call::OnlineFeatures(b) => crate::online::get_online_features(state, bytes(&b))
                    .await
                    .into_response(),
                Call::Recommend(b) => crate::recommend::recommend(state, bytes(&b)).await,
                Call::Promote { name, body } => {
                    crate::models_api::promote(state, Path(name), bytes(&body))
                        .await
                        .into_response()
                }
                Call::Rollback { name, body } => {
                    crate::models_api::rollback(state, Path(name), bytes(&body))
                        .await
                        .into_response()
                }
                Call::Rollout { name, body } => {
                    crate::models_api::rollout(state, Path(name), bytes(&body))
                        .await
                        .into_response()
                }
                Call::RunJob(name) => crate::jobs::run(state, Path(name)).await.into_response(),
                Call::AbReport(name) => {
                    crate::recommend::experiment_report(
                        state,
                        Path(name),
                        axum::extract::Query(crate::recommend::ReportQuery::default()),
                    )
                    .await
                }
            };
            json_of(r).await
        })
    }
}

/// The UI's pages, to merge into the router.
pub fn pages(state: Arc<AppState>) -> axum::Router {
    quiver_ui::pages(Arc::new(Bridge(state)))
}

/// `GET /api/ui` and `GET /api/ui/{*page}`: the JSON twin of `/ui/{page}`.
pub async fn api_page(
    State(state): State<Arc<AppState>>,
    page: Option<Path<String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let page = page.map(|p| p.0).unwrap_or_default();
    quiver_ui::api_page(&Bridge(state), &page, query.as_deref(), &headers).await
}
