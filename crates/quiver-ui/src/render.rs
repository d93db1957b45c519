//! The HTML of every page, from its data (see [`crate::pages`]). maud escapes every value
//! interpolated with `(...)`; nothing user-defined is ever written unescaped.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value as Json;

use crate::UiError;
use crate::pages::Loaded;
use crate::svg::{self, num, status_class};

/// What the templates know about the request.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The request carries the token (session cookie or bearer).
    pub signed_in: bool,
    /// The server has a token at all.
    pub token_configured: bool,
    /// The page's path (`/ui/views/x`).
    pub path: String,
    /// Its query string.
    pub query: String,
    /// A message after an action (`?done=...`).
    pub flash: Option<String>,
    /// An htmx request: only the page's content, no shell.
    pub fragment: bool,
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A JSON string field, or "".
fn s<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A JSON value as short text: strings bare, null as "–", the rest as JSON.
fn text(v: &Json) -> String {
    match v {
        Json::Null => "–".into(),
        Json::String(s) => s.clone(),
        Json::Number(n) if n.is_f64() => n.as_f64().map(num).unwrap_or_else(|| n.to_string()),
        Json::Number(n) => n.to_string(),
        other => {
            let t = other.to_string();
            if t.len() > 120 {
                format!(
                    "{}… ({} chars)",
                    &t[..t.char_indices().nth(117).map_or(t.len(), |c| c.0)],
                    t.len()
                )
            } else {
                t
            }
        }
    }
}

/// A JSON list of strings as `a, b`.
fn list_text(v: &Json) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| text(v))
}

fn badge(status: &str) -> Markup {
    html! { span class={"badge " (status_class(status))} { (status) } }
}

fn seconds_text(v: &Json) -> String {
    v.as_i64()
        .map_or("–".into(), |s| crate::age_text(s * 1_000_000))
}

const NAV: &[(&str, &str)] = &[
    ("/ui", "Overview"),
    ("/ui/search", "Search"),
    ("/ui/views", "Views"),
    ("/ui/services", "Services"),
    ("/ui/models", "Models"),
    ("/ui/jobs", "Jobs"),
    ("/ui/monitoring", "Monitoring"),
    ("/ui/recommend", "Recommendations"),
];

fn shell(title: &str, ctx: &Ctx, content: Markup) -> Markup {
    if ctx.fragment {
        return content;
    }
    let json = if ctx.path.starts_with("/ui/login") {
        None
    } else {
        let rest = ctx.path.strip_prefix("/ui").unwrap_or("");
        Some(if ctx.query.is_empty() {
            format!("/api/ui{rest}")
        } else {
            format!("/api/ui{rest}?{}", ctx.query)
        })
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/ui/assets/quiver.css";
                script src="/ui/assets/htmx.min.js" defer {}
            }
            body {
                header {
                    a.brand href="/ui" { "Quiver" }
                    nav {
                        @for (href, label) in NAV {
                            @let here = ctx.path == *href || (href.len() > 3 && ctx.path.starts_with(&format!("{href}/")));
                            a href=(href) class=[here.then_some("here")] { (label) }
                        }
                    }
                    form.search action="/ui/search" method="get" {
                        input type="search" name="q" placeholder="Search features, views, models…" aria-label="search";
                    }
                    span.session {
                        @if ctx.signed_in {
                            form method="post" action="/ui/logout" { button.link type="submit" id="sign-out" { "Sign out" } }
                        } @else if ctx.token_configured {
                            a href={"/ui/login?next=" (seg(&ctx.path))} id="sign-in" { "Sign in" }
                        }
                    }
                }
                main {
                    @if let Some(f) = &ctx.flash { p.flash id="flash" { (f) } }
                    (content)
                }
                footer {
                    @if let Some(j) = json { "This page as JSON: " a href=(j) id="json-twin" { (j) } }
                }
            }
        }
    }
}

/// The full page (or its content, for htmx).
pub fn page(l: &Loaded, ctx: &Ctx) -> Markup {
    let d = &l.data;
    let content = match l.page {
        "overview" => overview(d),
        "search" => search(d),
        "views" | "services" | "entities" | "sources" => list(l.page, d),
        "view" => view(d, ctx),
        "stats" => stats(d, ctx),
        "lookup" => lookup(d, ctx),
        "feature" => feature(d),
        "service" => service(d),
        "object" => object(d),
        "diff" => diff(d),
        "models" => models(d),
        "model" => model(d, ctx),
        "jobs" => jobs(d, ctx),
        "job" => job(d, ctx),
        "monitoring" => monitoring(d),
        "drift" => drift(d),
        "recommend" => recommend(d),
        _ => html! { pre { (d.to_string()) } },
    };
    shell(&l.title, ctx, content)
}

/// An error page.
pub fn error_page(e: &UiError, ctx: &Ctx) -> Markup {
    shell(
        "Error · Quiver",
        ctx,
        html! {
            h1 { (e.status.as_u16()) " " (e.status.canonical_reason().unwrap_or("")) }
            p.error id="error" { (e.message) }
            @if e.status.as_u16() == 401 {
                (login_form(&ctx.path, None))
            }
            p { a href="/ui" { "Back to the overview" } }
        },
    )
}

fn login_form(next: &str, why: Option<&str>) -> Markup {
    html! {
        form.login method="post" action="/ui/login" {
            @if let Some(w) = why { p.error id="error" { (w) } }
            label { "Token " input type="password" name="token" id="token" autocomplete="current-password" required; }
            input type="hidden" name="next" value=(next);
            button type="submit" id="sign-in-submit" { "Sign in" }
        }
    }
}

/// The sign-in page: the API's bearer token, entered once for this browser session.
pub fn login_page(ctx: &Ctx, next: &str, why: Option<&str>) -> Markup {
    shell(
        "Sign in · Quiver",
        ctx,
        html! {
            h1 { "Sign in" }
            p { "Changing models and running jobs needs the server's bearer token (" code { "QUIVER_SERVER_TOKEN" } "). It is checked once and kept as a session cookie until you sign out or close the browser." }
            @if !ctx.token_configured { p.error { "This server has no token configured: writes are refused." } }
            (login_form(next, why))
        },
    )
}

fn kv_table(rows: &[(&str, Markup)]) -> Markup {
    html! {
        table.kv { @for (k, v) in rows { tr { th { (k) } td { (v) } } } }
    }
}

fn overview(d: &Json) -> Markup {
    let c = &d["counts"];
    let views = d["views"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        h1 { "Project " (s(d, "project")) }
        @if let Some(desc) = d["description"].as_str() { p.desc { (desc) } }
        p.muted { "Registry version " (text(&d["registry_version"])) }
        div.cards {
            @for (key, label, href) in [("entities", "entities", "/ui/entities"), ("sources", "sources", "/ui/sources"), ("views", "feature views", "/ui/views"), ("features", "features", "/ui/search?kind=feature"), ("services", "feature services", "/ui/services"), ("models", "models", "/ui/models"), ("jobs", "jobs", "/ui/jobs"), ("recommenders", "recommenders", "/ui/recommend"), ("quality_sets", "quality sets", "/ui/monitoring")] {
                a.card href=(href) { span.n id={"count-" (key)} { (text(&c[key])) } span { (label) } }
            }
        }
        h2 { "Online store" }
        p id="online-store" {
            @if d["online_store"]["ok"] == true { (badge("ok")) } @else { (badge("down")) }
            " " (s(&d["online_store"], "store"))
            @if let Some(e) = d["online_store"]["error"].as_str() { " — " span.error { (e) } }
        }
        h2 { "Freshness" }
        p.muted { (d["stale_views"]) " of " (views.len()) " views are older than their TTL. Freshness is the age of the last materialization's end." }
        table #freshness {
            thead { tr { th { "view" } th { "status" } th { "last materialized" } th { "age" } th { "TTL" } } }
            tbody {
                @for v in views.iter().take(50) {
                    tr {
                        td { a href={"/ui/views/" (seg(s(v, "name")))} { (s(v, "name")) } }
                        td { (badge(s(v, "status"))) }
                        td { (text(&v["last_materialized"])) }
                        td { (seconds_text(&v["age_seconds"])) }
                        td { (s(v, "ttl")) }
                    }
                }
            }
        }
        @if views.len() > 50 { p { a href="/ui/views" { "All " (views.len()) " views" } } }
        div.cols {
            section {
                h2 { "Failing checks" }
                @let checks = d["failing_checks"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                @if checks.is_empty() { p.muted #no-failing-checks { "None: every stored quality run passed." } }
                ul { @for f in checks { li { (badge(s(f, "status"))) " " a href="/ui/monitoring" { (s(f, "quality")) } " " (s(f, "check_type")) " " (list_text(&f["columns"])) ": " (s(f, "message")) } } }
            }
            section {
                h2 { "Drifting models" }
                @let drifting = d["drifting_models"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                @if drifting.is_empty() { p.muted { "None in the newest drift runs." } }
                ul { @for m in drifting { li { a href={"/ui/monitoring/drift/" (seg(s(m, "model")))} { (s(m, "model")) } " — " (num(m["share_drifted"].as_f64().unwrap_or(0.0) * 100.0)) "% of features drifted (" (s(m, "checked_at")) ")" } } }
            }
            section {
                h2 { "Failed jobs" }
                @let failed = d["failed_jobs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                @if failed.is_empty() { p.muted { "None: no job's last run failed." } }
                ul { @for j in failed { li { a href={"/ui/jobs/" (seg(s(j, "job")))} { (s(j, "job")) } " " (text(&j["ended_at"])) ": " span.error { (text(&j["error"])) } } } }
            }
        }
    }
}

fn search(d: &Json) -> Markup {
    let results = d["results"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        h1 { "Search" }
        form.bigsearch action="/ui/search" method="get" {
            input type="search" name="q" id="q" value=(s(d, "q")) placeholder="name, description, tag (key=value) or owner" autofocus
                hx-get="/ui/search" hx-trigger="input changed delay:250ms, search" hx-target="#results" hx-select="#results" hx-swap="outerHTML" hx-push-url="true" hx-include="[name=kind]";
            select name="kind" {
                option value="" { "everything" }
                @for k in ["entity", "source", "view", "feature", "service", "model", "job", "recommender"] {
                    option value=(k) selected[d["kind"] == k] { (k) }
                }
            }
            button type="submit" { "Search" }
        }
        div #results {
            p.muted { (d["total"]) " results" @if d["total"].as_u64().unwrap_or(0) > results.len() as u64 { " (first " (results.len()) " shown)" } }
            table {
                thead { tr { th { "kind" } th { "name" } th { "description" } th { "owner" } th { "tags" } th { "matched" } } }
                tbody {
                    @for r in results {
                        tr.result {
                            td { span.kind { (s(r, "kind")) } }
                            td { a href=(s(r, "href")) { (s(r, "name")) } }
                            td { (text(&r["description"])) }
                            td { (text(&r["owner"])) }
                            td { @for t in r["tags"].as_array().into_iter().flatten() { span.tag { (text(t)) } " " } }
                            td.muted { (r["matched"].as_array().map(|m| m.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn list(page: &str, d: &Json) -> Markup {
    let items = d["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let (title, base) = match page {
        "views" => ("Feature views", "/ui/views/"),
        "services" => ("Feature services", "/ui/services/"),
        "sources" => ("Sources", "/ui/sources/"),
        _ => ("Entities", "/ui/entities/"),
    };
    html! {
        h1 { (title) }
        p.muted { (items.len()) " " (page) }
        table {
            thead { tr {
                th { "name" }
                @match page {
                    "views" => { th { "entities" } th { "source" } th { "TTL" } th { "features" } th { "online" } th { "services" } }
                    "services" => { th { "features" } th { "views" } }
                    "sources" => { th { "type" } th { "location" } }
                    _ => { th { "join keys" } }
                }
                th { "description" } th { "owner" }
            } }
            tbody {
                @for i in items {
                    tr {
                        td { a href={(base) (seg(s(i, "name")))} { (s(i, "name")) } }
                        @match page {
                            "views" => { td { (list_text(&i["entities"])) } td { (s(i, "source")) } td { (s(i, "ttl")) } td { (text(&i["features"])) } td { (text(&i["online"])) } td { (list_text(&i["services"])) } }
                            "services" => { td { (text(&i["features"])) } td { (list_text(&i["views"])) } }
                            "sources" => { td { (s(i, "type")) } td { (s(i, "location")) } }
                            _ => { td { (list_text(&i["join_keys"])) } }
                        }
                        td { (text(&i["description"])) } td { (text(&i["owner"])) }
                    }
                }
            }
        }
    }
}

/// Definition (YAML as applied), versions with diff links, lineage: what every object page shows.
fn definition_parts(d: &Json, segment: &str) -> Markup {
    let versions = d["versions"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let name = s(d, "name");
    html! {
        h2 { "Lineage" }
        div.lineage-wrap id="lineage" { (crate::lineage::svg(&d["lineage"])) }
        div.cols {
            section {
                h2 { "Definition" }
                p.muted { "As applied (content hash " code { (s(d, "hash").get(..12).unwrap_or("")) } ")" }
                pre.yaml id="definition" { (s(d, "yaml")) }
            }
            section {
                h2 { "Versions" }
                table id="versions" {
                    thead { tr { th { "version" } th { "registry version" } th { "applied at" } th { "hash" } th {} } }
                    tbody {
                        @for v in versions.iter().rev() {
                            tr {
                                td { (text(&v["version"])) @if v["removed"] == true { " (removed)" } }
                                td { (text(&v["registry_version"])) }
                                td { (text(&v["applied_at"])) }
                                td { code { (s(v, "hash").get(..12).unwrap_or("")) } }
                                td { @if v["version"].as_i64().unwrap_or(1) > 1 {
                                    a href={"/ui/diff/" (segment) "/" (seg(name)) "?a=" (v["version"].as_i64().unwrap_or(1) - 1) "&b=" (text(&v["version"]))} { "diff with previous" }
                                } }
                            }
                        }
                    }
                }
                @if versions.len() > 1 {
                    form.inline action={"/ui/diff/" (segment) "/" (seg(name))} method="get" {
                        "Compare "
                        select name="a" { @for v in versions { option selected[v["version"] == 1] { (text(&v["version"])) } } }
                        " with "
                        select name="b" { @for (i, v) in versions.iter().enumerate() { option selected[i + 1 == versions.len()] { (text(&v["version"])) } } }
                        " " button type="submit" { "Diff" }
                    }
                }
            }
        }
    }
}

fn tags_line(def: &Json) -> Markup {
    html! {
        p.meta {
            @if let Some(o) = def["owner"].as_str() { "owner " b { (o) } " " }
            @for (k, v) in def["tags"].as_object().into_iter().flatten() { span.tag { (k) "=" (text(v)) } " " }
        }
    }
}

fn lookup_form(view: &str, keys: &Json) -> Markup {
    html! {
        form.inline id="lookup-form" action={"/ui/views/" (seg(view)) "/lookup"} method="get"
            hx-get={"/ui/views/" (seg(view)) "/lookup"} hx-target="#lookup-result" hx-swap="innerHTML" {
            @for k in keys.as_array().into_iter().flatten() {
                label { (s(k, "name")) " " input type="text" name=(s(k, "name")) placeholder=(s(k, "type")) required; } " "
            }
            button type="submit" id="lookup-submit" { "Look up online" }
        }
        div id="lookup-result" {}
    }
}

fn view(d: &Json, _ctx: &Ctx) -> Markup {
    let name = s(d, "name");
    let def = &d["definition"];
    let f = &d["freshness"];
    html! {
        p.crumbs { a href="/ui/views" { "Feature views" } " / " }
        h1 { (name) " " span.kind { "feature view" } }
        @if let Some(desc) = def["description"].as_str() { p.desc id="description" { (desc) } }
        (tags_line(def))
        (kv_table(&[
            ("entities", html! { @for e in def["entities"].as_array().into_iter().flatten() { a href={"/ui/entities/" (seg(&text(e)))} { (text(e)) } " " } }),
            ("source", html! { a href={"/ui/sources/" (seg(s(def, "source")))} { (s(def, "source")) } }),
            ("TTL", html! { (s(f, "ttl")) }),
            ("online", html! { (badge(s(f, "status"))) " last materialized " (text(&f["last_materialized"])) @if !f["age_seconds"].is_null() { " (" (seconds_text(&f["age_seconds"])) " ago)" } }),
            ("services", html! { @for sv in d["services"].as_array().into_iter().flatten() { a href={"/ui/services/" (seg(&text(sv)))} { (text(sv)) } " " } }),
        ]))
        h2 { "Features" }
        table #features {
            thead { tr { th { "feature" } th { "type" } th { "computed as" } th { "description" } } }
            tbody { @for x in d["features"].as_array().into_iter().flatten() {
                tr { td { a href={"/ui/features/" (seg(name)) "/" (seg(s(x, "name")))} { (s(x, "name")) } } td { (s(x, "type")) } td { code { (s(x, "computed_as")) } } td { (text(&x["description"])) } }
            } }
        }
        @if d["freshness"]["online"] == true {
            h2 { "Online lookup" }
            (lookup_form(name, &d["join_keys"]))
        }
        h2 { "Statistics" }
        @if d["request_time"] == true {
            p.muted { "Computed at request time: no offline data of its own." }
        } @else {
            div id="stats" hx-get={"/ui/views/" (seg(name)) "/stats"} hx-trigger="load" hx-swap="innerHTML" {
                p.muted { "Computing statistics from the offline data… " a href={"/ui/views/" (seg(name)) "/stats"} { "open them" } }
            }
        }
        (definition_parts(d, "views"))
    }
}

/// The heading of a page that htmx also loads into another page (then without it).
fn standalone(ctx: &Ctx, view: &str, what: &str) -> Markup {
    html! {
        @if !ctx.fragment {
            p.crumbs { a href="/ui/views" { "Feature views" } " / " a href={"/ui/views/" (seg(view))} { (view) } " / " }
            h1 { (view) " " span.kind { (what) } }
        }
    }
}

fn stats(d: &Json, ctx: &Ctx) -> Markup {
    let cols = d["columns"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        (standalone(ctx, s(d, "view"), "statistics"))
        div.stats-body id="stats-body" {
            p.muted { "From " (text(&d["rows_read"])) " " (s(d, "read")) " of source " b { (s(d, "source")) } @if d["capped"] == true { " (the first " (crate::stats::MAX_ROWS) ")" } ", computed " (s(d, "computed_at")) "." }
            div.statgrid {
                @for c in cols {
                    div.stat data-feature=(s(c, "name")) {
                        h3 { (s(c, "name")) " " span.kind { (s(c, "data_type")) } }
                        p.muted { "nulls " (num(c["null_share"].as_f64().unwrap_or(0.0) * 100.0)) "% of " (text(&c["rows"])) }
                        @match s(c, "kind") {
                            "numeric" => {
                                p { "min " b { (text(&c["min"])) } " · mean " b { (text(&c["mean"])) } " · max " b { (text(&c["max"])) } }
                                @let bins: Vec<(f64, f64, u64)> = c["histogram"].as_array().into_iter().flatten().map(|b| (b["lo"].as_f64().unwrap_or(0.0), b["hi"].as_f64().unwrap_or(0.0), b["count"].as_u64().unwrap_or(0))).collect();
                                (svg::histogram(&format!("histogram of {}", s(c, "name")), &bins))
                            }
                            "categorical" => {
                                p { (text(&c["distinct"])) " distinct values; most frequent:" }
                                @let top: Vec<(String, f64)> = c["top"].as_array().into_iter().flatten().map(|t| (text(&t["value"]), t["count"].as_f64().unwrap_or(0.0))).collect();
                                (svg::bars(&format!("top values of {}", s(c, "name")), &top))
                            }
                            "vector" => { p { "vectors of " (text(&c["length"])) " numbers" } }
                            _ => { p.muted { "no values" } }
                        }
                    }
                }
            }
        }
    }
}

fn lookup(d: &Json, ctx: &Ctx) -> Markup {
    let values = d["values"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        (standalone(ctx, s(d, "view"), "online lookup"))
        div.lookup id="lookup-values" {
            p { "Online values of " b { (s(d, "view")) } " for "
                @for (k, v) in d["keys"].as_object().into_iter().flatten() { code { (k) "=" (text(v)) } " " }
                @if d["found"] != true { span.error { " — not in the online store" } }
            }
            table {
                thead { tr { th { "feature" } th { "value" } th { "status" } th { "event time" } th { "age" } } }
                tbody { @for v in values {
                    tr.value { td { (text(&v["feature"])) } td.v { (text(&v["value"])) } td { (s(v, "status")) } td { (text(&v["event_timestamp"])) } td.age { (seconds_text(&v["age_seconds"])) } }
                } }
            }
            p.muted { "TTL " (s(d, "ttl")) ". The request sent to POST /get-online-features: " code { (d["request"].to_string()) } }
        }
    }
}

fn feature(d: &Json) -> Markup {
    let view = s(d, "view");
    let f = s(d, "feature");
    html! {
        p.crumbs { a href="/ui/views" { "Feature views" } " / " a href={"/ui/views/" (seg(view))} { (view) } " / " }
        h1 { (view) ":" (f) " " span.kind { "feature" } }
        @if let Some(desc) = d["description"].as_str() { p.desc { (desc) } }
        (tags_line(d))
        (kv_table(&[
            ("type", html! { (s(d, "type")) }),
            ("view", html! { a href={"/ui/views/" (seg(view))} { (view) } }),
            ("services", html! { @for sv in d["services"].as_array().into_iter().flatten() { a href={"/ui/services/" (seg(&text(sv)))} { (text(sv)) } " " } }),
            ("models", html! { @for m in d["models"].as_array().into_iter().flatten() { a.model href={"/ui/models/" (seg(s(m, "name")))} { (s(m, "name")) " v" (text(&m["version"])) @if m["aliases"].as_array().is_some_and(|a| !a.is_empty()) { " (" (list_text(&m["aliases"])) ")" } } " " } }),
        ]))
        h2 { "Lineage" }
        div.lineage-wrap id="lineage" { (crate::lineage::svg(&d["lineage"])) }
        @if d["online"] == true {
            h2 { "Online lookup" }
            (lookup_form(view, &d["join_keys"]))
        }
        h2 { "Statistics" }
        div id="stats" hx-get={"/ui/views/" (seg(view)) "/stats?feature=" (seg(f))} hx-trigger="load" hx-swap="innerHTML" {
            p.muted { "Computing statistics… " a href={"/ui/views/" (seg(view)) "/stats?feature=" (seg(f))} { "open them" } }
        }
    }
}

fn service(d: &Json) -> Markup {
    let def = &d["definition"];
    html! {
        p.crumbs { a href="/ui/services" { "Feature services" } " / " }
        h1 { (s(d, "name")) " " span.kind { "feature service" } }
        @if let Some(desc) = def["description"].as_str() { p.desc id="description" { (desc) } }
        (tags_line(def))
        h2 { "Models trained on it" }
        @let models = d["models"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        @if models.is_empty() { p.muted { "None." } }
        ul { @for m in models { li { a href={"/ui/models/" (seg(s(m, "name")))} { (s(m, "name")) " v" (text(&m["version"])) } " " (list_text(&m["aliases"])) " " @if m["service_matches"] == true { (badge("matches")) } @else { (badge("changed")) " the service changed since training: /predict refuses it" } } } }
        h2 { "Features" }
        table { thead { tr { th { "feature" } th { "type" } } } tbody { @for f in d["features"].as_array().into_iter().flatten() {
            tr { td { a href={"/ui/features/" (seg(s(f, "view"))) "/" (seg(s(f, "feature")))} { (s(f, "view")) ":" (s(f, "feature")) } } td { (text(&f["type"])) } }
        } } }
        (definition_parts(d, "services"))
    }
}

fn object(d: &Json) -> Markup {
    let def = &d["definition"];
    let (label, segment, list) = match s(d, "kind") {
        "source" => ("source", "sources", "/ui/sources"),
        _ => ("entity", "entities", "/ui/entities"),
    };
    html! {
        p.crumbs { a href=(list) { (segment) } " / " }
        h1 { (s(d, "name")) " " span.kind { (label) } }
        @if let Some(desc) = def["description"].as_str() { p.desc id="description" { (desc) } }
        (tags_line(def))
        (definition_parts(d, segment))
    }
}

fn diff(d: &Json) -> Markup {
    let name = s(d, "name");
    let segment = s(d, "segment");
    html! {
        h1 { (name) ": version " (text(&d["a"])) " → " (text(&d["b"])) }
        p { a href={"/ui/" (segment) "/" (seg(name))} { "back to " (name) } " · " (text(&d["changed"])) " changed lines" }
        pre.diff id="diff" {
            @for l in d["lines"].as_array().into_iter().flatten() {
                @let op = s(l, "op");
                span class=(match op { "+" => "add", "-" => "del", _ => "same" }) { (op) " " (s(l, "text")) "\n" }
            }
        }
    }
}

fn models(d: &Json) -> Markup {
    let ms = d["models"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        h1 { "Models" }
        @if ms.is_empty() { p.muted { "No model registered yet: quiver train ... --name NAME" } }
        table #models {
            thead { tr { th { "model" } th { "versions" } th { "champion" } th { "challenger" } th { "task" } th { "feature service" } th { "latest" } } }
            tbody { @for m in ms {
                tr { td { a href={"/ui/models/" (seg(s(m, "name")))} { (s(m, "name")) } } td { (text(&m["versions"])) } td { (text(&m["champion"])) } td { (text(&m["challenger"])) } td { (s(m, "task")) " / " (s(m, "algorithm")) } td { a href={"/ui/services/" (seg(s(m, "feature_service")))} { (s(m, "feature_service")) } } td { (s(m, "created_at")) } }
            } }
        }
    }
}

fn model(d: &Json, ctx: &Ctx) -> Markup {
    let name = s(d, "name");
    let versions = d["versions"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let metrics: Vec<String> = d["metric_names"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let aliases: std::collections::BTreeSet<String> = versions
        .iter()
        .flat_map(|v| v["aliases"].as_array().into_iter().flatten().map(text))
        .collect();
    let shown = versions
        .iter()
        .find(|v| {
            v["aliases"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "champion"))
        })
        .or(versions.first());
    html! {
        p.crumbs { a href="/ui/models" { "Models" } " / " }
        h1 { (name) " " span.kind { "model" } }
        h2 { "Versions" }
        div.scroll { table #versions.side {
            thead { tr { th {} @for v in versions { th { "v" (text(&v["version"])) } } } }
            tbody {
                tr.aliases { th { "aliases" } @for v in versions { td data-version=(text(&v["version"])) { @for a in v["aliases"].as_array().into_iter().flatten() { span.alias { (text(a)) } " " } } } }
                tr { th { "created" } @for v in versions { td { (s(v, "created_at").get(..19).unwrap_or("")) } } }
                tr { th { "task / algorithm" } @for v in versions { td { (s(v, "task")) " / " (s(v, "algorithm")) } } }
                tr { th { "feature service" } @for v in versions { td { a href={"/ui/services/" (seg(s(v, "feature_service")))} { (s(v, "feature_service")) } " " (badge(s(v, "service_status"))) } } }
                @for m in &metrics {
                    @let values: Vec<f64> = versions.iter().filter_map(|v| v["metrics"][m.as_str()].as_f64()).collect();
                    @let best = match d["metric_better"][m.as_str()].as_str() {
                        Some("higher") => values.iter().copied().reduce(f64::max),
                        Some("lower") => values.iter().copied().reduce(f64::min),
                        _ => None,
                    };
                    @let differ = values.iter().any(|x| Some(*x) != values.first().copied());
                    tr.metric { th { (m) @if let Some(dir) = d["metric_better"][m.as_str()].as_str() { " " span.muted { "(" (dir) " is better)" } } } @for v in versions { td { @let x = &v["metrics"][m.as_str()]; (text(x)) @if differ && best.is_some() && x.as_f64() == best { " ★" } } } }
                }
                tr { th { "training" } @for v in versions { td { (text(&v["train_seconds"])) " s" } } }
                tr { th { "report" } @for v in versions { td { a href=(s(v, "report")) { "ROC / PR / calibration" } } } }
            }
        } }
        p.muted { "★ marks the best version on each metric." }
        h2 { "Aliases" }
        @if !ctx.signed_in {
            p.note id="token-note" { "Promote and rollback need the server's token: " a href={"/ui/login?next=" (seg(&ctx.path))} { "sign in" } " (without it the server refuses them)." }
        }
        div.cols {
            form.action method="post" action={"/ui/models/" (seg(name)) "/promote"} id="promote-form" {
                h3 { "Promote" }
                label { "version " select name="version" id="promote-version" { @for v in versions { option value=(text(&v["version"])) { "v" (text(&v["version"])) } } } }
                " "
                label { "to alias " input type="text" name="alias" id="promote-alias" value="champion" required; }
                " " button type="submit" id="promote-submit" { "Promote" }
            }
            form.action method="post" action={"/ui/models/" (seg(name)) "/rollback"} id="rollback-form" {
                h3 { "Roll back" }
                label { "alias " select name="alias" { @for a in &aliases { option selected[a == "champion"] { (a) } } } }
                " " button type="submit" id="rollback-submit" { "Roll back" }
            }
        }
        h2 { "Rollout" }
        p id="rollout" { "How /predict uses the challenger: " b { (match rollout_mode(&d["rollout"]) {
            "shadow" => "shadow (the challenger is scored and compared; the champion's score is returned)".to_string(),
            "canary" => format!("canary ({}% of entities get the challenger)", num(d["rollout"]["share"].as_f64().unwrap_or(0.0) * 100.0)),
            _ => "off (champion only)".to_string(),
        }) } }
        form.inline method="post" action={"/ui/models/" (seg(name)) "/rollout"} id="rollout-form" {
            label { "mode " select name="mode" { @for m in ["off", "shadow", "canary"] { option selected[rollout_mode(&d["rollout"]) == m] { (m) } } } }
            label { "canary share % " input type="number" name="share" min="0" max="100" step="any" value="10"; }
            button type="submit" id="rollout-submit" { "Set rollout" }
        }
        @let stats = d["rollout_stats"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        @if !stats.is_empty() {
            table { thead { tr { th { "version" } th { "predictions" } th { "shadow disagreements" } th { "errors" } } } tbody { @for st in stats {
                tr { td { (text(&st["version"])) } td { (text(&st["predictions"])) } td { (text(&st["disagreements"])) " (" (num(st["disagreement_share"].as_f64().unwrap_or(0.0) * 100.0)) "%)" } td { (text(&st["errors"])) } }
            } } }
        }
        @let deps = d["deployments"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        @if !deps.is_empty() {
            h3 { "Deployments" }
            table { thead { tr { th { "version" } th { "status" } th { "champion then" } th { "job" } } } tbody { @for dep in deps {
                tr { td { (text(&dep["version"])) } td { (badge(s(dep, "status"))) } td { (text(&dep["champion_version"])) } td { (s(dep, "job")) } }
            } } }
        }
        @if let Some(v) = shown {
            h2 { "Importance (v" (text(&v["version"])) ")" }
            @let bars: Vec<(String, f64)> = v["importance"].as_array().into_iter().flatten().map(|i| (text(&i["feature"]), i["gain"].as_f64().unwrap_or(0.0))).collect();
            @if bars.is_empty() { p.muted { "No importance recorded." } } @else { (svg::bars("gain importance", &bars)) }
        }
        h2 { "Lineage" }
        div.lineage-wrap id="lineage" { (crate::lineage::svg(&d["lineage"])) }
    }
}

/// `off`, `shadow` or `canary` of a stored rollout.
fn rollout_mode(r: &Json) -> &str {
    r["mode"].as_str().unwrap_or("off")
}

fn jobs(d: &Json, ctx: &Ctx) -> Markup {
    let js = d["jobs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        h1 { "Jobs" }
        @if js.is_empty() { p.muted { "No jobs in the registry (jobs: in quiver.yaml)." } }
        table #jobs {
            thead { tr { th { "job" } th { "schedule" } th { "task" } th { "next run" } th { "last run" } th {} } }
            tbody { @for j in js {
                @let last = &j["last_run"];
                tr {
                    td { a href={"/ui/jobs/" (seg(s(j, "job")))} { (s(j, "job")) } @if j["paused"] == true { " " (badge("paused")) } }
                    td { code { (s(j, "schedule")) } " " (s(j, "timezone")) }
                    td { (s(j, "task")) }
                    td { (text(&j["next_run"])) }
                    td { @if last.is_null() { span.muted { "never" } } @else { (badge(s(last, "status"))) " " (text(&last["ended_at"])) @if !last["error"].is_null() { " " span.error { (text(&last["error"])) } } } }
                    td { (run_button(s(j, "job"), ctx)) }
                }
            } }
        }
    }
}

fn run_button(job: &str, ctx: &Ctx) -> Markup {
    html! {
        form.inline method="post" action={"/ui/jobs/" (seg(job)) "/run"} {
            button type="submit" title=(if ctx.signed_in { "queue a run now" } else { "needs the token: sign in first" }) { "Run now" }
        }
    }
}

fn job(d: &Json, ctx: &Ctx) -> Markup {
    let j = &d["job"];
    let runs = d["runs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let strip: Vec<(String, String)> = runs
        .iter()
        .rev()
        .map(|r| (text(&r["scheduled_at"]), text(&r["status"])))
        .collect();
    html! {
        p.crumbs { a href="/ui/jobs" { "Jobs" } " / " }
        h1 { (s(d, "name")) " " span.kind { "job" } }
        (kv_table(&[
            ("schedule", html! { code { (s(j, "schedule")) } " " (s(j, "timezone")) }),
            ("task", html! { (s(j, "task")) }),
            ("next run", html! { (text(&j["next_run"])) }),
            ("depends on", html! { (list_text(&j["depends_on"])) }),
            ("retries", html! { (text(&j["retries"])) }),
        ]))
        (run_button(s(d, "name"), ctx))
        p.muted { "A run queued here starts within a second on a running scheduler (quiver scheduler, or quiver serve --scheduler)." }
        h2 { "History" }
        (svg::strip("runs, oldest first", &strip))
        table #runs {
            thead { tr { th { "run" } th { "status" } th { "trigger" } th { "scheduled" } th { "started" } th { "ended" } th { "attempt" } th { "error / summary" } } }
            tbody { @for r in runs {
                tr { td { code { (s(r, "run")) } } td { (badge(s(r, "status"))) } td { (s(r, "trigger")) } td { (text(&r["scheduled_at"])) } td { (text(&r["started_at"])) } td { (text(&r["ended_at"])) } td { (text(&r["attempt"])) } td { @if !r["error"].is_null() { span.error { (text(&r["error"])) } } @else { (text(&r["summary"])) } } }
            } }
        }
    }
}

fn monitoring(d: &Json) -> Markup {
    let sets = d["quality"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let drift = d["drift"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        h1 { "Monitoring" }
        h2 { "Data-quality checks" }
        @if sets.is_empty() { p.muted { "No quality run stored yet: quiver check." } }
        @for set in sets {
            section.qset {
                h3 { (s(set, "quality")) " " span.kind { (s(set, "target")) } " " (badge(s(&set["latest"], "status"))) }
                @let strip: Vec<(String, String)> = set["runs"].as_array().into_iter().flatten().map(|r| (text(&r["checked_at"]), text(&r["status"]))).collect();
                p { "Runs over time (oldest first): " (svg::strip("quality runs", &strip)) }
                table {
                    thead { tr { th { "check" } th { "columns" } th { "status" } th { "observed" } th { "threshold" } th { "message" } } }
                    tbody { @for c in set["latest"]["results"].as_array().into_iter().flatten() {
                        tr { td { (s(c, "check_type")) } td { (list_text(&c["columns"])) } td { (badge(s(c, "status"))) } td { (text(&c["observed"])) } td { (text(&c["threshold"])) } td { (s(c, "message")) } }
                    } }
                }
            }
        }
        h2 { "Drift" }
        @if drift.is_empty() { p.muted { "No drift run stored yet: quiver drift." } }
        table {
            thead { tr { th { "model / data set" } th { "checked" } th { "drift" } th { "share of features drifted" } th { "reference" } th { "current" } } }
            tbody { @for r in drift {
                tr { td { a href={"/ui/monitoring/drift/" (seg(s(r, "model")))} { (s(r, "model")) } } td { (s(r, "checked_at")) } td { @if r["dataset_drift"] == true { (badge("drift")) } @else { (badge("ok")) } } td { (num(r["share_drifted"].as_f64().unwrap_or(0.0) * 100.0)) "%" } td { (s(r, "reference")) } td { (s(r, "current")) } }
            } }
        }
    }
}

fn drift(d: &Json) -> Markup {
    let features = d["report"]["features"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let strip: Vec<(String, String)> = d["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                text(&r["checked_at"]),
                if r["dataset_drift"] == true {
                    "fail".to_string()
                } else {
                    "pass".to_string()
                },
            )
        })
        .collect();
    html! {
        p.crumbs { a href="/ui/monitoring" { "Monitoring" } " / " }
        h1 { "Drift of " (s(d, "model")) }
        p { @if d["dataset_drift"] == true { (badge("drift")) } @else { (badge("ok")) } " " (num(d["share_drifted"].as_f64().unwrap_or(0.0) * 100.0)) "% of features drifted; reference " code { (s(d, "reference")) } ", current " code { (s(d, "current")) } ", checked " (s(d, "checked_at")) }
        p { "Runs over time: " (svg::strip("drift runs", &strip)) }
        table {
            thead { tr { th { "feature" } th { "test" } th { "score" } th { "threshold" } th { "drift" } } }
            tbody { @for f in features {
                tr { td { (s(f, "name")) } td { (text(&f["stattest"])) } td { (text(&f["score"])) } td { (text(&f["threshold"])) } td { @if f["drift"] == true || f["drifted"] == true { (badge("drift")) } @else { (badge("ok")) } } }
            } }
        }
    }
}

fn recommend(d: &Json) -> Markup {
    let recs = d["recommenders"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    html! {
        h1 { "Recommendations" }
        @if recs.is_empty() { p.muted { "No recommender in the registry (recommenders: in quiver.yaml)." } }
        @else {
            form.inline action="/ui/recommend" method="get" id="recommend-form" {
                label { "recommender " select name="recommender" { @for r in recs { option selected[*r == d["recommender"]] { (text(r)) } } } } " "
                label { "user " input type="text" name="user_id" value=(text(&d["user_id"]).replace('–', "")) required; } " "
                label { "k " input type="number" name="k" min="1" max="1000" value=(s(d, "k")); } " "
                button type="submit" { "Recommend" }
            }
        }
        @if let Some(e) = d["error"].as_str() { p.error id="error" { (e) } }
        @let a = &d["answer"];
        @if !a.is_null() {
            p { "Version " (text(&a["version"])) " of " b { (s(a, "recommender")) } " for user " code { (text(&a["user_id"])) } ": source " b { (s(a, "source")) } ", " (text(&a["interactions"])) " known interactions." }
            table #recommendations {
                thead { tr { th { "#" } th { "item" } th { "score" } th { "from" } } }
                tbody { @for (i, it) in a["items"].as_array().into_iter().flatten().enumerate() {
                    tr { td { (i + 1) } td { (text(&it["item_id"])) } td { (text(&it["score"])) } td { (s(it, "source")) } }
                } }
            }
            p.muted { "Sources: cf (collaborative filtering), popularity (time-decayed), blend (both, for users with few interactions). A preview here is not an exposure of an experiment." }
        }
        @for e in d["experiments"].as_array().into_iter().flatten() {
            (experiment(e))
        }
    }
}

/// A rate with its interval: `4.2% [3.1%, 5.6%]`.
fn rate_text(r: &Json) -> String {
    let pct = |v: &Json| {
        v.as_f64()
            .map_or("–".to_string(), |x| format!("{:.1}%", 100.0 * x))
    };
    format!(
        "{} [{}, {}]",
        pct(&r["rate"]),
        pct(&r["ci"][0]),
        pct(&r["ci"][1])
    )
}

/// A lift against the control (the first arm): `+12.0% (p 0.031)`; `–` when undefined (a
/// control rate of 0).
fn lift_text(l: &Json, control: bool) -> String {
    match (l["lift"].as_f64(), l["p_value"].as_f64()) {
        _ if control => "control".into(),
        (Some(x), Some(p)) => format!("{:+.1}% (p {})", 100.0 * x, num(p)),
        _ => "–".into(),
    }
}

/// One experiment over the recommender: its report as of now (`quiver ab report`'s numbers).
fn experiment(e: &Json) -> Markup {
    let r = &e["report"];
    html! {
        section.experiment id={"experiment-" (s(e, "name"))} {
            h2 { "Experiment " (s(e, "name")) }
            @if let Some(err) = e["error"].as_str() { p.muted { (err) } }
            @else {
                p { "Exposures up to " (s(r, "as_of")) "; an exposure is clicked when the user's " code { (s(r, "click")) } " of a shown item follows within " (s(r, "window")) ", converted on " code { (s(r, "conversion")) } " (outcomes from source " (s(r, "outcome_source")) ")." }
                table.experiment-arms {
                    thead { tr { th { "arm" } th { "share" } th { "users" } th { "exposures" } th { "CTR [95% CI]" } th { "CTR lift" } th { "CVR [95% CI]" } th { "CVR lift" } } }
                    tbody { @for (i, a) in r["arms"].as_array().into_iter().flatten().enumerate() {
                        tr { td { (s(a, "arm")) } td { (text(&a["share"])) } td { (text(&a["users"])) } td { (text(&a["exposures"])) }
                             td { (rate_text(&a["ctr"])) } td { (lift_text(&a["ctr_lift"], i == 0)) }
                             td { (rate_text(&a["cvr"])) } td { (lift_text(&a["cvr_lift"], i == 0)) } }
                    } }
                }
                @let srm = &r["srm"];
                @if srm["mismatch"].as_bool() == Some(true) {
                    p.error { "Sample ratio mismatch (p " (text(&srm["p_value"])) "): the split does not match the declared shares; do not trust the lifts." }
                } @else {
                    p.muted { "Users per arm match the declared shares (sample-ratio check p " (text(&srm["p_value"])) "). " (text(&r["open_window_exposures"])) " exposures still inside their outcome window." }
                }
            }
        }
    }
}
