//! A self-contained HTML report of a model version: headline metrics, ROC and precision-recall
//! curves, calibration, feature importance (gain and splits) and a SHAP summary (mean |SHAP|
//! per feature over test rows). Plots are inline SVG: the file opens without a network.

use std::fmt::Write as _;

use crate::metrics::Evaluation;

/// One feature's importance.
#[derive(Debug, Clone)]
pub struct FeatureBar {
    pub feature: String,
    pub value: f64,
}

/// What the report shows.
pub struct ReportInput<'a> {
    pub title: String,
    /// (label, value) lines shown in the header table (lineage, params, ...).
    pub facts: Vec<(String, String)>,
    pub evaluation: Option<&'a Evaluation>,
    pub gain: Vec<FeatureBar>,
    pub splits: Vec<FeatureBar>,
    pub shap: Vec<FeatureBar>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 360.0;
const H: f64 = 300.0;
const PAD: f64 = 40.0;

/// A line plot on [0,1]x[0,1] with axes, a title and an optional diagonal.
fn curve(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
    diagonal: bool,
) -> String {
    let sx = |x: f64| PAD + x * (W - PAD - 10.0);
    let sy = |y: f64| H - PAD - y * (H - PAD - 25.0);
    let mut s = format!(
        r#"<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img"><title>{}</title>"#,
        esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="16" text-anchor="middle" class="t">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = write!(
        s,
        r#"<rect x="{}" y="{}" width="{}" height="{}" class="frame"/>"#,
        sx(0.0),
        sy(1.0),
        sx(1.0) - sx(0.0),
        sy(0.0) - sy(1.0)
    );
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="a" text-anchor="middle">{t}</text>"#,
            sx(t),
            H - PAD + 14.0
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="a" text-anchor="end">{t}</text>"#,
            PAD - 4.0,
            sy(t) + 4.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" class="a" text-anchor="middle">{}</text>"#,
        W / 2.0,
        H - 6.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text x="12" y="{}" class="a" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(y_label)
    );
    if diagonal {
        let _ = write!(
            s,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="diag"/>"#,
            sx(0.0),
            sy(0.0),
            sx(1.0),
            sy(1.0)
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.2},{:.2}", sx(x.clamp(0.0, 1.0)), sy(y.clamp(0.0, 1.0))))
        .collect();
    let _ = write!(s, r#"<polyline points="{}" class="line"/>"#, path.join(" "));
    s.push_str("</svg>");
    s
}

/// Horizontal bars, largest first.
fn bars(title: &str, items: &[FeatureBar], limit: usize) -> String {
    let items: Vec<&FeatureBar> = items.iter().take(limit).collect();
    let row = 18.0;
    let h = 30.0 + row * items.len() as f64;
    let w = 520.0;
    let label_w = 220.0;
    let max = items
        .iter()
        .map(|b| b.value)
        .fold(0.0, f64::max)
        .max(1e-300);
    let mut s = format!(
        r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{}</title>"#,
        esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="16" text-anchor="middle" class="t">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    for (i, b) in items.iter().enumerate() {
        let y = 26.0 + row * i as f64;
        let len = (w - label_w - 70.0) * b.value / max;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="a" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + 12.0,
            esc(&b.feature)
        );
        let _ = write!(
            s,
            r#"<rect x="{label_w}" y="{}" width="{len:.2}" height="{}" class="bar"/>"#,
            y + 2.0,
            row - 5.0
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="a">{}</text>"#,
            label_w + len + 4.0,
            y + 12.0,
            fmt_num(b.value)
        );
    }
    s.push_str("</svg>");
    s
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 1e6) {
        format!("{v:.3}")
    } else {
        format!("{v:.3e}")
    }
}

/// A two-column table of (label, value), escaped.
fn facts_table(body: &mut String, rows: &[(String, String)]) {
    body.push_str("<table class=facts>");
    for (k, v) in rows {
        let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    body.push_str("</table>");
}

/// The report as one HTML document.
pub fn html(input: &ReportInput) -> String {
    let mut body = String::new();
    let _ = write!(body, "<h1>{}</h1>", esc(&input.title));
    facts_table(&mut body, &input.facts);
    if let Some(e) = input.evaluation {
        body.push_str("<h2>Test metrics</h2>");
        let v = serde_json::to_value(e).expect("serializes");
        let metrics: Vec<(String, String)> = v
            .as_object()
            .expect("object")
            .iter()
            .filter_map(|(k, x)| {
                x.as_f64()
                    .map(fmt_num)
                    .or_else(|| x.as_str().map(str::to_string))
                    .map(|x| (k.clone(), x))
            })
            .collect();
        facts_table(&mut body, &metrics);
        if let Some(cm) = &e.confusion_matrix {
            body.push_str(
                "<h2>Confusion matrix (rows: true class, columns: predicted)</h2><table class=cm>",
            );
            for (i, row) in cm.iter().enumerate() {
                let _ = write!(body, "<tr><th>{i}</th>");
                for c in row {
                    let _ = write!(body, "<td>{c}</td>");
                }
                body.push_str("</tr>");
            }
            body.push_str("</table>");
        }
        if let Some(pc) = &e.per_class {
            body.push_str("<h2>Per class</h2><table class=cm><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>");
            for c in pc {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
                    c.class, c.precision, c.recall, c.f1, c.support
                );
            }
            body.push_str("</table>");
        }
        body.push_str("<div class=plots>");
        if let Some(roc) = &e.roc_curve {
            let pts: Vec<(f64, f64)> = roc
                .iter()
                .map(|p| (p.false_positive_rate, p.true_positive_rate))
                .collect();
            body.push_str(&curve(
                &format!("ROC (AUC {:.3})", e.roc_auc.unwrap_or(f64::NAN)),
                "false positive rate",
                "true positive rate",
                &pts,
                true,
            ));
        }
        if let Some(pr) = &e.pr_curve {
            let pts: Vec<(f64, f64)> = pr.iter().map(|p| (p.recall, p.precision)).collect();
            body.push_str(&curve(
                &format!("Precision-recall (AP {:.3})", e.pr_auc.unwrap_or(f64::NAN)),
                "recall",
                "precision",
                &pts,
                false,
            ));
        }
        if let Some(cal) = &e.calibration {
            let pts: Vec<(f64, f64)> = cal
                .iter()
                .map(|b| (b.mean_predicted, b.observed_rate))
                .collect();
            body.push_str(&curve(
                "Calibration (10 bins)",
                "mean predicted probability",
                "observed rate",
                &pts,
                true,
            ));
        }
        body.push_str("</div>");
    }
    body.push_str("<div class=plots>");
    if !input.gain.is_empty() {
        body.push_str(&bars("Feature importance: total gain", &input.gain, 25));
        body.push_str(&bars("Feature importance: splits", &input.splits, 25));
    }
    if !input.shap.is_empty() {
        body.push_str(&bars(
            "SHAP summary: mean |SHAP value| over test rows",
            &input.shap,
            25,
        ));
    }
    body.push_str("</div>");
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{}</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} h1{{font-size:1.4em}} h2{{font-size:1.1em;margin-top:1.5em}}
table.facts th{{text-align:left;padding-right:1em;font-weight:600}} table.cm td,table.cm th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
table{{border-collapse:collapse}} .plots{{display:flex;flex-wrap:wrap;gap:1.5em;margin-top:1em}}
svg .t{{font-size:13px;font-weight:600}} svg .a{{font-size:10px;fill:#444}} svg .frame{{fill:none;stroke:#999}}
svg .line{{fill:none;stroke:#1f6feb;stroke-width:2}} svg .diag{{stroke:#bbb;stroke-dasharray:4 3}} svg .bar{{fill:#1f6feb}}
</style></head><body>{body}</body></html>
"#,
        esc(&input.title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Objective;
    use crate::metrics::evaluate;

    #[test]
    fn report_has_every_plot_and_no_external_reference() {
        let y = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0];
        let p: Vec<Vec<f64>> = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2]
            .iter()
            .map(|v| vec![*v])
            .collect();
        let e = evaluate(Objective::Binary { sigmoid: 1.0 }, &y, &p).unwrap();
        let bar = |f: &str, v| FeatureBar {
            feature: f.into(),
            value: v,
        };
        let h = html(&ReportInput {
            title: "model <churn> version 1".into(),
            facts: vec![("service".into(), "churn_v1".into())],
            evaluation: Some(&e),
            gain: vec![bar("a", 10.0), bar("b", 2.0)],
            splits: vec![bar("a", 3.0)],
            shap: vec![bar("a", 0.5)],
        });
        for needle in [
            "ROC (AUC 0.889)",
            "Precision-recall",
            "Calibration",
            "total gain",
            "SHAP summary",
            "&lt;churn&gt;",
            "<polyline",
        ] {
            assert!(h.contains(needle), "missing {needle}");
        }
        assert!(
            !h.contains("http://") && !h.contains("https://"),
            "the report must open offline"
        );
    }
}
