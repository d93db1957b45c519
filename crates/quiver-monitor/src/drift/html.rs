//! The drift report as one self-contained HTML page (no scripts, no network): a summary, the
//! per-feature table, and for each feature the reference and current distributions overlaid as
//! an inline SVG histogram (for an embedding, its details and, with `--by week`, the
//! similarity of each week's mean embedding to the reference's as bars and a table).

use quiver_registry::quality::QualityRun;

use super::embedding::WeekSimilarity;
use super::{DriftReport, FeatureDrift, Histogram};
use crate::report::{esc, fmt, page, quality_section};

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

/// Embedding drift per week: a bar per ISO week of the current set (height: the cosine
/// similarity of the week's mean embedding to the reference's, 0 to 1), then the table.
pub fn weeks_section(weeks: &[WeekSimilarity]) -> String {
    let (w, ht, pad) = (480.0, 120.0, 20.0);
    let bw = (w - 2.0 * pad) / weeks.len().max(1) as f64;
    let mut svg = format!(
        "<svg class=\"weeks\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\">",
        ht + 20.0,
        ht + 20.0
    );
    for (i, wk) in weeks.iter().enumerate() {
        let sim = if wk.cosine_similarity.is_finite() {
            wk.cosine_similarity.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let bh = sim * (ht - pad);
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#54a24b\"><title>{}: {} ({} rows)</title></rect>",
            pad + bw * i as f64,
            ht - bh,
            (bw - 2.0).max(1.0),
            esc(&wk.week),
            fmt(wk.cosine_similarity),
            wk.rows
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{ht}\" x2=\"{}\" y2=\"{ht}\" stroke=\"#333\"/></svg>",
        w - pad
    ));
    let rows: String = weeks
        .iter()
        .map(|wk| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&wk.week),
                wk.rows,
                fmt(wk.cosine_similarity)
            )
        })
        .collect();
    format!(
        "<div class=\"by-week\"><h4>Embedding drift per week</h4><p>Cosine similarity of each week's mean embedding to the reference's mean embedding.</p>{svg}<table><tr><th>week</th><th>rows</th><th>cosine similarity</th></tr>{rows}</table></div>"
    )
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
        if !e.by_week.is_empty() {
            s.push_str(&weeks_section(&e.by_week));
        }
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

/// The whole page; `quality` (the newest run of each quality set, when the repository has any)
/// adds a data-quality section.
pub fn render(
    report: &DriftReport,
    reference: &str,
    current: &str,
    quality: Option<&[QualityRun]>,
) -> String {
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
    let body = format!(
        r#"<section id="summary"><h2>Summary</h2>
<p>Reference: {reference} ({ref_rows} rows) · Current: {current} ({cur_rows} rows)</p>
<p><b>{verdict}</b>: {drifted} of {total} columns drifted (share {share}; the data set drifts at {drift_share}).</p></section>
<section id="features"><h2>Features</h2>
<table><tr><th>feature</th><th>kind</th><th>test</th><th>score</th><th>threshold</th><th>drift</th><th>null share (ref)</th><th>null share (cur)</th><th>new categories</th></tr>
{rows}</table>{skipped_block}</section>
<section id="distributions"><h2>Distributions</h2>{sections}</section>
{quality_block}"#,
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
        quality_block = quality.map(quality_section).unwrap_or_default(),
    );
    page("Drift report", &body)
}
