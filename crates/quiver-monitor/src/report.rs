//! Self-contained HTML reports (no scripts, no network; they open offline): the page shell and
//! its style, shared by the drift report ([`crate::drift::html`]) and the quality report
//! (`quiver check --out`), and the quality-results section both show.

use quiver_registry::quality::QualityRun;

/// Escapes text for HTML (element content and quoted attribute values).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as reports print it: 4 decimals in a readable range, scientific outside it.
pub fn fmt(x: f64) -> String {
    if x == 0.0 || (1e-3..1e6).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// A whole page: `title` (escaped here) over `body` (HTML, escaped by its builder).
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}
tr.drifted td,tr.fail td{{background:#fde2e1}} tr.warn td{{background:#fff4d6}}
.drift{{color:#c00}} section.feature{{margin:1.5em 0;border-top:1px solid #eee}} small{{color:#666;font-weight:normal}}
code{{font-size:90%}}
</style></head><body>
<h1>{title}</h1>
{body}
</body></html>
"#,
        title = esc(title)
    )
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `<section id="quality">`: each run's checks with status, observed value, threshold and up to
/// five failing rows. Empty runs give a line saying no quality set ran.
pub fn quality_section(runs: &[QualityRun]) -> String {
    let mut s = String::from("<section id=\"quality\"><h2>Data quality</h2>");
    if runs.is_empty() {
        s.push_str("<p>No quality set has run.</p></section>");
        return s;
    }
    let failing = runs.iter().filter(|r| r.status == "fail").count();
    s.push_str(&format!(
        "<p>{} of {} quality sets failing.</p>",
        failing,
        runs.len()
    ));
    for run in runs {
        s.push_str(&format!(
            "<h3>{} <small>{} · {} · checked {} (as of {}) · trigger {}</small></h3>",
            esc(&run.quality),
            esc(&run.target),
            esc(&run.status),
            quiver_online::format_time(run.checked_us),
            quiver_online::format_time(run.as_of_us),
            esc(&run.trigger)
        ));
        s.push_str("<table><tr><th>#</th><th>check</th><th>columns</th><th>severity</th><th>status</th><th>observed</th><th>threshold</th><th>message</th><th>examples</th></tr>");
        for c in &run.results {
            let examples = match &c.examples {
                serde_json::Value::Array(rows) if !rows.is_empty() => rows
                    .iter()
                    .map(|r| format!("<code>{}</code>", esc(&r.to_string())))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "<tr class=\"{status}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{examples}</td></tr>",
                c.index,
                esc(&c.check_type),
                esc(&c.columns.join(", ")),
                esc(&c.severity),
                esc(&json_text(&c.observed)),
                esc(&json_text(&c.threshold)),
                esc(&c.message),
                status = esc(&c.status),
            ));
        }
        s.push_str("</table>");
    }
    s.push_str("</section>");
    s
}

/// The quality report of `quiver check --out`: the runs just made.
pub fn quality_page(runs: &[QualityRun]) -> String {
    page("Data quality report", &quality_section(runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_registry::quality::StoredCheckResult;
    use serde_json::json;

    #[test]
    fn quality_results_are_escaped_and_marked_by_status() {
        let run = QualityRun {
            id: "q@1#0".into(),
            quality: "events<script>".into(),
            target: "source events".into(),
            checked_us: 1_700_000_000_000_000,
            as_of_us: 1_700_000_000_000_000,
            trigger: "check".into(),
            status: "fail".into(),
            registry_version: 3,
            results: vec![StoredCheckResult {
                index: 0,
                check_type: "range".into(),
                columns: vec!["amount".into()],
                severity: "error".into(),
                status: "fail".into(),
                observed: json!(2),
                threshold: json!("[0, 10000]"),
                examples: json!([{"amount": -5, "note": "<b>"}]),
                message: "2 rows out of range".into(),
                violations: 2,
            }],
        };
        let html = quality_page(&[run]);
        assert!(html.contains("events&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("<tr class=\"fail\">"));
        assert!(html.contains("&quot;note&quot;:&quot;&lt;b&gt;&quot;"));
        assert!(html.contains("1 of 1 quality sets failing"));
        assert!(quality_section(&[]).contains("No quality set has run"));
    }
}
