//! The UI's pages over a real registry and metadata store (SQLite in a temporary folder), with
//! a stand-in for the server's API handlers: escaping of everything user-defined, the token
//! for writes, protected reads, the JSON twins, and a registry of 1,000 views.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::future::BoxFuture;
use quiver_offline::OfflineEngine;
use quiver_registry::SqlMetadataStore;
use quiver_ui::{Backend, Call, Served};
use serde_json::{Value as Json, json};
use tower::ServiceExt;

const TOKEN: &str = "ui-test-token";

struct Fake {
    served: Served,
    meta: SqlMetadataStore,
    root: PathBuf,
    protect_reads: bool,
    calls: Mutex<Vec<Call>>,
}

impl Backend for Fake {
    fn served(&self) -> Served {
        self.served.clone()
    }
    fn meta(&self) -> &SqlMetadataStore {
        &self.meta
    }
    fn root(&self) -> &Path {
        &self.root
    }
    fn token(&self) -> Option<&str> {
        Some(TOKEN)
    }
    fn protect_reads(&self) -> bool {
        self.protect_reads
    }
    fn online_health(&self) -> BoxFuture<'_, (String, Result<(), String>)> {
        Box::pin(async { ("embedded (test)".to_string(), Ok(())) })
    }
    fn call(&self, call: Call) -> BoxFuture<'_, (u16, Json)> {
        self.calls.lock().unwrap().push(call.clone());
        Box::pin(async move {
            match call {
                Call::Promote { name, body } => (
                    200,
                    json!({"name": name, "alias": body["alias"], "version": body["version"], "previous": 1, "changed": true}),
                ),
                Call::OnlineFeatures(_) => (
                    200,
                    json!({"metadata": {"feature_names": ["user_id", "f"]}, "results": [
                        {"values": [7], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
                        {"values": ["<script>alert('value')</script>"], "statuses": ["PRESENT"], "event_timestamps": ["2025-01-01T00:00:00Z"]}
                    ]}),
                ),
                _ => (404, json!({"error": "not in this test"})),
            }
        })
    }
}

const EVIL: &str = "<script>alert(1)</script>";

fn yaml(views: usize) -> String {
    let mut y = format!(
        r#"project: shop
description: "the <b>shop</b>"
entities:
  - {{name: user, join_keys: [user_id], description: "{EVIL}"}}
sources:
  - {{name: src, type: parquet, path: data/x.parquet, timestamp_field: ts, owner: "<i>owner</i>"}}
feature_views:
  - name: evil
    entities: [user]
    source: src
    ttl: 1d
    description: "{EVIL}"
    owner: "\"><img src=x onerror=alert(2)>"
    tags: {{team: "<u>growth</u>"}}
    features:
      - {{name: f, type: string, description: "</pre><script>alert(3)</script>"}}
"#
    );
    for i in 0..views {
        y.push_str(&format!(
            "  - {{name: view_{i:04}, entities: [user], source: src, description: \"generated view {i}\", features: [{{name: x{i}, type: float64, column: f}}]}}\n"
        ));
    }
    y.push_str("feature_services:\n  - {name: svc, features: [\"evil:f\"], description: \"");
    y.push_str(EVIL);
    y.push_str("\"}\n");
    y
}

async fn backend(views: usize, protect_reads: bool) -> (tempfile::TempDir, Arc<Fake>) {
    use quiver_registry::MetadataStore as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("quiver.yaml"), yaml(views)).unwrap();
    let registry = quiver_core::repo::load_registry(dir.path()).unwrap();
    let meta = SqlMetadataStore::open("registry.db", dir.path())
        .await
        .unwrap();
    let planned = meta.plan(&registry).await.unwrap();
    let version = meta
        .apply_planned(&registry, &planned, false)
        .await
        .unwrap();
    assert!(meta.current().await.unwrap().is_some());
    let fake = Fake {
        served: Served {
            engine: Arc::new(OfflineEngine::new(registry.clone(), dir.path())),
            registry: Arc::new(registry),
            version,
        },
        meta,
        root: dir.path().to_path_buf(),
        protect_reads,
        calls: Mutex::new(Vec::new()),
    };
    (dir, Arc::new(fake))
}

async fn send(b: &Arc<Fake>, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let app: axum::Router = quiver_ui::pages(b.clone() as quiver_ui::Shared);
    let r = app.oneshot(req).await.unwrap();
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

async fn get(b: &Arc<Fake>, uri: &str) -> (StatusCode, String) {
    let (s, _, body) = send(b, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, body)
}

/// No markup from a definition survives: every `<` of it arrives as `&lt;`.
fn assert_escaped(page: &str, html: &str) {
    for raw in [
        "<script>alert",
        "<img src=x",
        "<b>shop",
        "<u>growth",
        "<i>owner",
        "</pre><script>",
    ] {
        assert!(!html.contains(raw), "{page}: '{raw}' is not escaped");
    }
}

#[tokio::test]
async fn user_defined_text_renders_as_text_everywhere() {
    let (_dir, b) = backend(2, false).await;
    for page in [
        "/ui",
        "/ui/views",
        "/ui/views/evil",
        "/ui/features/evil/f",
        "/ui/services/svc",
        "/ui/services",
        "/ui/entities/user",
        "/ui/sources/src",
        "/ui/search?q=script",
        "/ui/search?q=growth",
        "/ui/views/evil/lookup?user_id=7",
        "/ui/diff/views/evil",
        "/ui/nope/%3Cscript%3E",
    ] {
        let (s, html) = get(&b, page).await;
        assert!(
            s == StatusCode::OK || page.starts_with("/ui/nope"),
            "{page}: {s}\n{html}"
        );
        assert_escaped(page, &html);
    }
    let (_, html) = get(&b, "/ui/views/evil").await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the description is shown, as text"
    );
    assert!(html.contains("id=\"definition\""), "the YAML as applied");
    assert!(
        html.contains("description: &lt;script&gt;alert(1)&lt;/script&gt;\n"),
        "in the YAML"
    );
    assert!(html.contains("<svg class=\"lineage\""), "a lineage graph");
    let (_, html) = get(&b, "/ui/search?q=script").await;
    for found in [
        "/ui/views/evil",
        "/ui/features/evil/f",
        "/ui/services/svc",
        "/ui/entities/user",
    ] {
        assert!(
            html.contains(found),
            "search by description finds {found}:\n{html}"
        );
    }
    let (_, html) = get(&b, "/ui/search?q=team%3D%3Cu%3Egrowth").await;
    assert!(html.contains("/ui/views/evil"), "search by tag");
    let (_, html) = get(&b, "/ui/views/evil/lookup?user_id=7").await;
    assert!(
        html.contains("&lt;script&gt;alert('value')"),
        "an online value is text too"
    );
}

#[tokio::test]
async fn writes_need_the_token_and_reads_follow_protect_reads() {
    let (_dir, b) = backend(0, false).await;
    let form = |cookie: Option<&str>| {
        let mut r = Request::post("/ui/models/churn/promote")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "127.0.0.1:6566");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        r.body(Body::from("version=2&alias=champion")).unwrap()
    };
    let (s, _, html) = send(&b, form(None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{html}");
    assert!(html.contains("needs the server's token"));
    assert!(
        b.calls.lock().unwrap().is_empty(),
        "nothing reached the API"
    );
    let (s, _, _) = send(&b, form(Some("quiver_ui_session=wrong"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Sign in: the cookie is a digest, not the token.
    let login = Request::post("/ui/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "token={TOKEN}&next=%2Fui%2Fmodels%2Fchurn"
        )))
        .unwrap();
    let (s, headers, _) = send(&b, login).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/models/churn");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains(TOKEN));
    let pair = cookie.split(';').next().unwrap().to_string();
    let (s, headers, _) = send(&b, form(Some(&pair))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/ui/models/churn?done=")
    );
    assert_eq!(
        b.calls.lock().unwrap().len(),
        1,
        "the API's promote was called once"
    );
    // A form from another site is refused even with the cookie.
    let mut cross = form(Some(&pair));
    cross
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    let (s, _, _) = send(&b, cross).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A wrong token does not sign in.
    let bad = Request::post("/ui/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=nope"))
        .unwrap();
    let (s, headers, _) = send(&b, bad).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(!headers.contains_key(header::SET_COOKIE));

    let (_dir2, locked) = backend(0, true).await;
    let (s, headers, _) = send(
        &locked,
        Request::get("/ui/views").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::SEE_OTHER,
        "protect_reads sends a browser to sign in"
    );
    assert_eq!(headers[header::LOCATION], "/ui/login?next=/ui/views");
    let signed = Request::get("/ui/views")
        .header(
            header::COOKIE,
            format!(
                "quiver_ui_session={}",
                quiver_ui::session::session_value(TOKEN)
            ),
        )
        .body(Body::empty())
        .unwrap();
    let (s, _, _) = send(&locked, signed).await;
    assert_eq!(s, StatusCode::OK);
    let twin = quiver_ui::api_page(locked.as_ref(), "views", None, &Default::default()).await;
    assert_eq!(twin.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_page_has_a_json_twin_with_the_same_data() {
    let (_dir, b) = backend(3, false).await;
    let mut bearer = axum::http::HeaderMap::new();
    bearer.insert(
        header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    for (page, query, kind) in [
        ("", None, "overview"),
        ("views/evil", None, "view"),
        ("features/evil/f", None, "feature"),
        ("search", Some("q=generated"), "search"),
        ("diff/views/evil", None, "diff"),
        ("models", None, "models"),
    ] {
        let r = quiver_ui::api_page(b.as_ref(), page, query, &bearer).await;
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        let body = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
        let v: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["page"], kind, "{page}");
        if kind == "search" {
            assert_eq!(v["total"], 3);
        }
        if kind == "overview" {
            assert_eq!(v["counts"]["views"], 4);
            assert_eq!(v["views"][0]["status"], "never", "never materialized");
        }
        if kind == "feature" {
            let ids: Vec<&str> = v["lineage"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap())
                .collect();
            assert!(
                ids.contains(&"source:src")
                    && ids.contains(&"feature:evil:f")
                    && ids.contains(&"service:svc"),
                "{ids:?}"
            );
        }
    }
    let r = quiver_ui::api_page(b.as_ref(), "views/nope", None, &bearer).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_registry_of_1000_views_stays_responsive() {
    let (_dir, b) = backend(1000, false).await;
    for page in [
        "/ui",
        "/ui/views",
        "/ui/search?q=generated",
        "/ui/views/view_0500",
        "/ui/entities/user",
        "/ui/sources/src",
    ] {
        let started = Instant::now();
        let (s, html) = get(&b, page).await;
        let took = started.elapsed();
        assert_eq!(s, StatusCode::OK, "{page}");
        eprintln!("{page}: {} bytes in {took:?}", html.len());
        // Debug build, a busy 2-core machine: loose.
        assert!(took.as_millis() < 2000, "{page} took {took:?}");
    }
    let (_, html) = get(&b, "/ui/entities/user").await;
    assert!(
        html.contains("more"),
        "a column of 1,000 views is cut, with a count"
    );
}
