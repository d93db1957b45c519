//! The drift report as one self-contained HTML page (no scripts, no network): a summary, the
//! per-feature table, and for each feature the reference and current distributions overlaid as
//! an inline SVG histogram.

use super::{DriftReport, FeatureDrift, Histogram};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt(x: f64) -> String {
    if x == 0.0 || (1e-3..1e6).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// An SVG of two overlaid histograms (shares per bin).
pub fn histogram_svg(h: &Histogram) -> String {
    let (w, ht, pad) = (480.0, 160.0, 20.0);
    let n = h.labels.len().max(1) as f64;
    let max = h
        .reference
        .iter()
        .chain(&h.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let bw = (w - 2.0 * pad) / n;
    let mut s = format!(
        "<svg class=\"hist\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\">",
        ht + 30.0,
        ht + 30.0
    );
    for (i, label) in h.labels.iter().enumerate() {
        let x = pad + bw * i as f64;
        for (v, color) in [(h.reference[i], "#4c78a8"), (h.current[i], "#f58518")] {
            let bh = v / max * (ht - pad);
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\" fill-opacity=\"0.55\"><title>{}: {}</title></rect>",
                ht - bh,
                (bw - 1.0).max(1.0),
                esc(label),
                fmt(v)
            ));
        }
    }
    s.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{ht}\" x2=\"{}\" y2=\"{ht}\" stroke=\"#333\"/>",
        w - pad
    ));
    if let (Some(first), Some(last)) = (h.labels.first(), h.labels.last()) {
        s.push_str(&format!(
            "<text x=\"{pad}\" y=\"{}\" font-size=\"10\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            ht + 14.0,
            esc(first),
            w - pad,
            ht + 14.0,
            esc(last)
        ));
    }
    s.push_str("</svg>");
    s
}

fn feature_section(f: &FeatureDrift) -> String {
    let mut s = format!(
        "<section class=\"feature\" id=\"f-{}\"><h3>{} <small>{} · {} = {} (threshold {}) · {}</small></h3>",
        esc(&f.name),
        esc(&f.name),
        f.kind.name(),
        esc(&f.stattest),
        fmt(f.score),
        fmt(f.threshold),
        if f.drifted {
            "<b class=\"drift\">drift</b>"
        } else {
            "no drift"
        }
    );
    if let Some(e) = &f.embedding {
        s.push_str(&format!(
            "<p>dimension {}, domain classifier ROC AUC {}, cosine distance of means {}, MMD² {}</p>",
            e.dim,
            fmt(e.roc_auc),
            fmt(e.cosine_distance),
            fmt(e.mmd2)
        ));
    } else {
        s.push_str(&histogram_svg(&f.histogram));
        s.push_str("<p class=\"legend\"><span style=\"color:#4c78a8\">■ reference</span> <span style=\"color:#f58518\">■ current</span></p>");
    }
    if !f.new_categories.is_empty() || !f.missing_categories.is_empty() {
        s.push_str(&format!(
            "<p>new categories: {} · missing categories: {}</p>",
            esc(&f.new_categories.join(", ")),
            esc(&f.missing_categories.join(", "))
        ));
    }
    s.push_str("</section>");
    s
}

/// The whole page.
pub fn render(report: &DriftReport, reference: &str, current: &str) -> String {
    let mut rows = String::new();
    for f in &report.features {
        rows.push_str(&format!(
            "<tr class=\"{}\"><td><a href=\"#f-{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if f.drifted { "drifted" } else { "" },
            esc(&f.name),
            esc(&f.name),
            f.kind.name(),
            esc(&f.stattest),
            fmt(f.score),
            fmt(f.threshold),
            if f.drifted { "yes" } else { "no" },
            fmt(f.reference_null_share),
            fmt(f.current_null_share),
            f.new_categories.len()
        ));
    }
    let skipped: String = report
        .skipped
        .iter()
        .map(|s| format!("<li>{}: {}</li>", esc(&s.name), esc(&s.reason)))
        .collect();
    let sections: String = report.features.iter().map(feature_section).collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Quiver drift report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} tr.drifted td{{background:#fde2e1}}
.drift{{color:#c00}} section.feature{{margin:1.5em 0;border-top:1px solid #eee}} small{{color:#666;font-weight:normal}}
</style></head><body>
<h1>Drift report</h1>
<section id="summary"><h2>Summary</h2>
<p>Reference: {reference} ({ref_rows} rows) · Current: {current} ({cur_rows} rows)</p>
<p><b>{verdict}</b>: {drifted} of {total} columns drifted (share {share}; the data set drifts at {drift_share}).</p></section>
<section id="features"><h2>Features</h2>
<table><tr><th>feature</th><th>kind</th><th>test</th><th>score</th><th>threshold</th><th>drift</th><th>null share (ref)</th><th>null share (cur)</th><th>new categories</th></tr>
{rows}</table>{skipped_block}</section>
<section id="distributions"><h2>Distributions</h2>{sections}</section>
</body></html>
"#,
        reference = esc(reference),
        current = esc(current),
        ref_rows = report.reference_rows,
        cur_rows = report.current_rows,
        verdict = if report.dataset_drift {
            "Dataset drift detected"
        } else {
            "No dataset drift"
        },
        drifted = report.features.iter().filter(|f| f.drifted).count(),
        total = report.features.len(),
        share = fmt(report.share_drifted),
        drift_share = fmt(report.drift_share),
        skipped_block = if skipped.is_empty() {
            String::new()
        } else {
            format!("<h3>Not compared</h3><ul>{skipped}</ul>")
        },
    )
}
