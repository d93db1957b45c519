//! The HTML reports (`quiver drift --out`, `quiver check --out`) opened in headless Chromium
//! (Debian's `chromium` package): the rendered page has the expected sections, the data-quality
//! results beside the drift, escaped names, and the histograms draw visible bars.
//!
//! Without Chromium the test says so and passes, except under `CI=true` (`.ci/run` installs it),
//! where a missing browser is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{fails, ok, quiver};

const QUIVER_YAML: &str = r#"
project: shop
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: events, type: csv, path: data/events.csv, timestamp_field: ts}
feature_views:
  - name: spend
    entities: [user]
    source: events
    features:
      - {name: amount, type: float64}
"#;

const QUALITY_YAML: &str = r#"
quality:
  - name: events_checks
    source: events
    checks:
      - {type: not_null, columns: [user_id]}
      - {type: range, column: amount, min: 0, max: 10000}
"#;

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but Chromium is missing: apt-get install chromium (.ci/run does)"
        );
        eprintln!("skipped: no Chromium (apt-get install chromium)");
    }
    found
}

fn headless(browser: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("runs chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Pixels of the two histogram colours (blue reference, orange current, drawn at 55% opacity).
fn coloured_pixels(png_file: &Path) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_file).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "unexpected PNG colour type {:?}",
        info.color_type
    );
    let (mut blue, mut orange) = (0, 0);
    for px in buf[..info.buffer_size()].chunks(channels) {
        let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
        if b > r + 30 && b > g {
            blue += 1;
        }
        if r > b + 60 && r > g {
            orange += 1;
        }
    }
    (blue, orange)
}

#[test]
fn reports_render_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("quiver.yaml"), QUIVER_YAML).unwrap();
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::write(dir.join("features/quality.yaml"), QUALITY_YAML).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut events = String::from("user_id,amount,ts\n");
    for i in 0..30 {
        events.push_str(&format!(
            "{},{}.5,2025-03-{:02}T10:00:00\n",
            i % 4,
            i,
            i % 28 + 1
        ));
    }
    events.push_str("2,-7.0,2025-03-29T10:00:00\n");
    std::fs::write(dir.join("data/events.csv"), events).unwrap();
    ok(quiver(dir, &["apply"]));

    // The quality report of a failing run.
    let quality_html = dir.join("quality.html");
    fails(quiver(
        dir,
        &[
            "check",
            "--as-of",
            "2025-03-30",
            "--out",
            quality_html.to_str().unwrap(),
        ],
    ));
    let dom = String::from_utf8(headless(&browser, &["--dump-dom"], &quality_html).stdout).unwrap();
    assert!(dom.contains("<h1>Data quality report</h1>"), "{dom}");
    assert!(dom.contains("1 of 1 quality sets failing"), "{dom}");
    assert!(dom.contains("<tr class=\"fail\">"), "{dom}");
    assert!(dom.contains("-7"), "the failing row is shown: {dom}");

    // Two data sets: x shifts, the category <b>tag</b> appears only in the current one.
    let (mut reference, mut current) = (String::from("x,kind\n"), String::from("x,kind\n"));
    for i in 0..400 {
        reference.push_str(&format!("{},{}\n", i % 50, ["a", "b"][i % 2]));
        current.push_str(&format!("{},{}\n", i % 50 + 30, ["a", "<b>tag</b>"][i % 2]));
    }
    std::fs::write(dir.join("ref.csv"), reference).unwrap();
    std::fs::write(dir.join("cur.csv"), current).unwrap();
    let drift_html = dir.join("drift.html");
    let r = dir.join("ref.csv");
    let c = dir.join("cur.csv");
    ok(quiver(
        dir,
        &[
            "drift",
            "--reference",
            r.to_str().unwrap(),
            "--current",
            c.to_str().unwrap(),
            "--out",
            drift_html.to_str().unwrap(),
        ],
    ));
    let dom = String::from_utf8(headless(&browser, &["--dump-dom"], &drift_html).stdout).unwrap();
    for section in [
        "id=\"summary\"",
        "id=\"features\"",
        "id=\"distributions\"",
        "id=\"quality\"",
    ] {
        assert!(dom.contains(section), "the report lacks {section}: {dom}");
    }
    assert!(dom.contains("Dataset drift detected"), "{dom}");
    assert!(
        dom.contains("events_checks"),
        "quality results beside the drift"
    );
    assert!(
        dom.contains("&lt;b&gt;tag&lt;/b&gt;") && !dom.contains("<b>tag</b>"),
        "a category is text, not markup"
    );
    let bars = dom.matches("<rect ").count();
    assert!(bars >= 4, "histogram bars in the DOM: {bars}");

    // The plots draw: both histogram colours cover a visible area of the rendered page.
    let shot = dir.join("drift.png");
    headless(
        &browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
        ],
        &drift_html,
    );
    let (blue, orange) = coloured_pixels(&shot);
    assert!(
        blue > 500 && orange > 500,
        "the histograms look blank: {blue} blue and {orange} orange pixels"
    );
    if let Ok(target) = std::env::var("CARGO_TARGET_DIR") {
        let _ = std::fs::copy(&shot, Path::new(&target).join("drift-report.png"));
    }
}
