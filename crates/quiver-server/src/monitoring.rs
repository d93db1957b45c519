//! `GET /monitoring/checks` and `GET /monitoring/drift/{model}`: the latest stored quality and
//! drift results (one implementation, in `quiver_monitor::results`).

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

fn store_error(e: quiver_registry::Error) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: e.to_string(),
    }
}

pub async fn checks(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let body = quiver_monitor::results::latest_checks(&state.meta)
        .await
        .map_err(store_error)?;
    Ok(AxumJson(body).into_response())
}

pub async fn drift(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    match quiver_monitor::results::latest_drift(&state.meta, &model)
        .await
        .map_err(store_error)?
    {
        Some(body) => Ok(AxumJson(body).into_response()),
        None => Err(ApiError::not_found(format!(
            "no drift result stored for model '{model}': run quiver drift with a model: or log:{model}@START..END data set"
        ))),
    }
}
