//! The UI's plots, drawn on the server as inline SVG by the page templates (so labels are
//! escaped like any other text and nothing runs in the browser): a histogram, horizontal bars
//! (top values, importance, drift scores) and a strip of results over time.

use maud::{Markup, html};

/// A number in few characters: `0.123`, `12.3`, `1.2e6`.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e15 {
        format!("{v:.0}")
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A histogram of `(lo, hi, count)` bins.
pub fn histogram(title: &str, bins: &[(f64, f64, u64)]) -> Markup {
    const W: f64 = 320.0;
    const H: f64 = 120.0;
    const PAD: f64 = 18.0;
    let max = bins.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64;
    let bw = (W - 2.0 * PAD) / bins.len().max(1) as f64;
    let (lo, hi) = (
        bins.first().map_or(0.0, |b| b.0),
        bins.last().map_or(0.0, |b| b.1),
    );
    html! {
        svg.plot width=(W) height=(H) viewBox={"0 0 " (W) " " (H)} role="img" {
            title { (title) }
            @for (i, (a, b, c)) in bins.iter().enumerate() {
                @let h = (H - 2.0 * PAD) * (*c as f64) / max;
                rect.bar x=(PAD + bw * i as f64 + 0.5) y=(H - PAD - h) width=((bw - 1.0).max(1.0)) height=(h) {
                    title { (num(*a)) " – " (num(*b)) ": " (c) }
                }
            }
            line.axis x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) {}
            text.tick x=(PAD) y=(H - 4.0) { (num(lo)) }
            text.tick x=(W - PAD) y=(H - 4.0) text-anchor="end" { (num(hi)) }
            text.tick x=(PAD) y=(PAD - 6.0) { "max " (max as u64) }
        }
    }
}

/// Horizontal bars of `(label, value)`, largest first as given, with the value printed.
pub fn bars(title: &str, items: &[(String, f64)]) -> Markup {
    const W: f64 = 460.0;
    const ROW: f64 = 18.0;
    const LABEL: f64 = 190.0;
    let h = ROW * items.len() as f64 + 8.0;
    let max = items
        .iter()
        .map(|(_, v)| v.abs())
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    html! {
        svg.plot width=(W) height=(h) viewBox={"0 0 " (W) " " (h)} role="img" {
            title { (title) }
            @for (i, (label, v)) in items.iter().enumerate() {
                @let y = 4.0 + ROW * i as f64;
                text.label x=(LABEL - 6.0) y=(y + 12.0) text-anchor="end" { (short(label, 30)) title { (label) } }
                rect.bar x=(LABEL) y=(y + 2.0) width=(((W - LABEL - 60.0) * v.abs() / max).max(1.0)) height=(ROW - 5.0) {}
                text.tick x=(LABEL + (W - LABEL - 60.0) * v.abs() / max + 4.0) y=(y + 12.0) { (num(*v)) }
            }
        }
    }
}

/// One dot per result, oldest left: green pass, amber warn, red fail; hover shows when.
pub fn strip(title: &str, results: &[(String, String)]) -> Markup {
    const STEP: f64 = 14.0;
    let w = STEP * results.len().max(1) as f64 + 8.0;
    html! {
        svg.plot width=(w) height="20" viewBox={"0 0 " (w) " 20"} role="img" {
            title { (title) }
            @for (i, (when, status)) in results.iter().enumerate() {
                circle class={"dot " (status_class(status))} cx=(10.0 + STEP * i as f64) cy="10" r="5" {
                    title { (when) ": " (status) }
                }
            }
        }
    }
}

/// The CSS class of a status word.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "pass" | "ok" | "succeeded" | "success" | "fresh" | "matches" | "promoted" => "ok",
        "warn" | "warning" | "running" | "pending" | "rolling_out" | "awaiting_approval"
        | "skipped" | "unknown" | "never" => "warn",
        _ => "bad",
    }
}

/// `s` cut to `n` characters with an ellipsis.
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
