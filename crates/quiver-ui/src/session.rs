//! The token, entered once: `/ui/login` checks it and sets a session cookie.
//!
//! The cookie holds a digest of the token (SHA-256 of a fixed label and the token), never the
//! token itself; it is `HttpOnly` (no script reads it) and `SameSite=Strict` (no other site's
//! page can make the browser send it, so a cross-site form cannot promote a model). Changing
//! the server's token ends every session. A request is signed in when it carries that cookie or
//! the API's `Authorization: Bearer <token>` header; both are compared in constant time.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Backend, Shared, render};

/// The session cookie's name.
pub const COOKIE: &str = "quiver_ui_session";

/// The cookie value for `token`.
pub fn session_value(token: &str) -> String {
    let d = Sha256::new()
        .chain_update(b"quiver-ui-session\0")
        .chain_update(token.as_bytes())
        .finalize();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison of two secrets (their digests, so lengths leak nothing).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries the token: the session cookie or a bearer header. Always false
/// when no token is configured.
pub fn authorized(b: &dyn Backend, headers: &HeaderMap) -> bool {
    let Some(token) = b.token() else {
        return false;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
    if let Some(given) = bearer {
        return same_secret(given.trim(), token);
    }
    cookie(headers, COOKIE).is_some_and(|v| same_secret(v, &session_value(token)))
}

/// Whether a POST comes from a page of this server: its `Origin` (when the browser sends one)
/// names the host the request was sent to. With the `SameSite=Strict` cookie, a second guard
/// against cross-site forms.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, h)| h.trim_end_matches('/') == host)
}

/// Percent-encodes a value for a query string.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where to go after signing in: a page of the UI, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui".to_string(),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /ui/login`: checks the token and sets the session cookie.
pub async fn login(
    State(b): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let ctx = render::Ctx {
        token_configured: b.token().is_some(),
        path: "/ui/login".into(),
        ..Default::default()
    };
    let refuse = |status: StatusCode, why: &str| {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            render::login_page(&ctx, &next, Some(why)).into_string(),
        )
            .into_response()
    };
    if !same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, "the form was sent from another site");
    }
    let Some(token) = b.token() else {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server has no token configured: set QUIVER_SERVER_TOKEN (or server.token_env / server.token in quiver.yaml) and restart it",
        );
    };
    if !same_secret(form.token.trim(), token) {
        return refuse(StatusCode::UNAUTHORIZED, "that token is not valid");
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!(
                    "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                    session_value(token)
                ),
            ),
            (header::LOCATION, next),
        ],
    )
        .into_response()
}

/// `POST /ui/logout`: forgets the session.
pub async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
            (header::LOCATION, "/ui".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_ui() {
        assert_eq!(safe_next(Some("/ui/models/churn")), "/ui/models/churn");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui");
        assert_eq!(safe_next(Some("//evil.example/ui")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn the_cookie_is_not_the_token() {
        let v = session_value("s3cret");
        assert_eq!(v.len(), 64);
        assert!(!v.contains("s3cret"));
        assert_ne!(v, session_value("s3cret2"));
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:6566".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:6566".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
