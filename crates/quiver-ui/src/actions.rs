//! The UI's writes: promote, rollback, rollout, run now. Each needs the token (the session cookie or a
//! bearer header) and a same-origin form, then calls the API's own handler in-process, so the
//! UI changes nothing the API would refuse. Success redirects back to the page with a message.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::render::{self, Ctx, seg};
use crate::{Backend, Call, Shared, UiError, session};

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Refuses a write without the token or from another site; `None` lets it through.
fn guard(b: &dyn Backend, headers: &HeaderMap, back: &str) -> Option<Response> {
    let ctx = Ctx {
        token_configured: b.token().is_some(),
        path: back.to_string(),
        ..Default::default()
    };
    let e = if !session::same_origin(headers) {
        UiError {
            status: StatusCode::FORBIDDEN,
            message: "refused: the form was sent from another site".into(),
        }
    } else if b.token().is_none() {
        UiError {
            status: StatusCode::FORBIDDEN,
            message: "refused: this server has no token configured, so it takes no writes (set QUIVER_SERVER_TOKEN and restart it)".into(),
        }
    } else if !session::authorized(b, headers) {
        UiError {
            status: StatusCode::UNAUTHORIZED,
            message:
                "refused: this needs the server's token. Sign in with it, then send the form again."
                    .into(),
        }
    } else {
        return None;
    };
    Some(html(e.status, render::error_page(&e, &ctx).into_string()))
}

/// Runs `call`; redirects to `back` with a message when the API accepted it.
async fn perform(
    b: &dyn Backend,
    call: Call,
    back: &str,
    done: impl FnOnce(&serde_json::Value) -> String,
) -> Response {
    let (status, answer) = b.call(call).await;
    if status < 400 {
        let to = format!("{back}?done={}", seg(&done(&answer)));
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    }
    let e = UiError {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        message: answer["error"]
            .as_str()
            .unwrap_or("the server refused")
            .to_string(),
    };
    let ctx = Ctx {
        signed_in: true,
        token_configured: true,
        path: back.to_string(),
        ..Default::default()
    };
    html(e.status, render::error_page(&e, &ctx).into_string())
}

#[derive(Deserialize)]
pub struct PromoteForm {
    version: i64,
    alias: String,
}

/// `POST /ui/models/{name}/promote` (form: version, alias).
pub async fn promote(
    State(b): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PromoteForm>,
) -> Response {
    let back = format!("/ui/models/{}", seg(&name));
    if let Some(r) = guard(b.as_ref(), &headers, &back) {
        return r;
    }
    let body = json!({"version": form.version, "alias": form.alias.trim()});
    perform(b.as_ref(), Call::Promote { name, body }, &back, |a| {
        format!(
            "{} of {} -> version {}{}",
            a["alias"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or(""),
            a["version"],
            match a["previous"].as_i64() {
                Some(p) if a["changed"] == true => format!(" (was {p})"),
                _ if a["changed"] == false => " (already)".to_string(),
                _ => String::new(),
            }
        )
    })
    .await
}

#[derive(Deserialize)]
pub struct RollbackForm {
    alias: String,
}

/// `POST /ui/models/{name}/rollback` (form: alias).
pub async fn rollback(
    State(b): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RollbackForm>,
) -> Response {
    let back = format!("/ui/models/{}", seg(&name));
    if let Some(r) = guard(b.as_ref(), &headers, &back) {
        return r;
    }
    let body = json!({"alias": form.alias.trim()});
    perform(b.as_ref(), Call::Rollback { name, body }, &back, |a| {
        format!(
            "{} of {}: version {} -> {}",
            a["alias"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or(""),
            a["from"],
            a["to"]
        )
    })
    .await
}

#[derive(Deserialize)]
pub struct RolloutForm {
    mode: String,
    #[serde(default)]
    share: Option<String>,
}

/// `POST /ui/models/{name}/rollout` (form: mode, share in percent).
pub async fn rollout(
    State(b): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RolloutForm>,
) -> Response {
    let back = format!("/ui/models/{}", seg(&name));
    if let Some(r) = guard(b.as_ref(), &headers, &back) {
        return r;
    }
    let share = form
        .share
        .as_deref()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map(|p| p / 100.0);
    let body = json!({"mode": form.mode, "share": share});
    perform(b.as_ref(), Call::Rollout { name, body }, &back, |a| {
        format!(
            "rollout of {}: {}",
            a["name"].as_str().unwrap_or(""),
            a["rollout"]
        )
    })
    .await
}

/// `POST /ui/jobs/{name}/run`.
pub async fn run_job(
    State(b): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let back = format!("/ui/jobs/{}", seg(&name));
    if let Some(r) = guard(b.as_ref(), &headers, &back) {
        return r;
    }
    perform(b.as_ref(), Call::RunJob(name), &back, |a| {
        format!(
            "run {} queued: a running scheduler starts it within a second",
            a["run"].as_str().unwrap_or("")
        )
    })
    .await
}

/// `GET /ui/models/{name}/{version}/report`: the version's self-contained HTML report (ROC,
/// precision-recall and calibration plots, importance, SHAP), as `quiver models report` writes
/// it.
pub async fn report(b: &dyn Backend, name: &str, version: &str) -> Response {
    let ctx = Ctx {
        path: format!("/ui/models/{}", seg(name)),
        token_configured: b.token().is_some(),
        ..Default::default()
    };
    let fail = |e: UiError| html(e.status, render::error_page(&e, &ctx).into_string());
    let Ok(version) = version.parse::<i64>() else {
        return fail(UiError::bad(format!("'{version}' is not a version number")));
    };
    let v = match b.meta().model_version(name, version).await {
        Ok(v) => v,
        Err(e) => return fail(e.into()),
    };
    match quiver_pipeline::report::report_html(b.root(), &v) {
        Ok(page) => html(StatusCode::OK, page),
        Err(e) => fail(UiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        }),
    }
}
