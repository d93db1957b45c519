//! Data-quality checks on real data: the retentioneering e-commerce clickstream
//! (`tests/data/retentioneering_ecom_synthetic.csv.gz`, a copy of the shared data set, 31,106 events, Jan to June 2024).
//! The clean data passes every check; each injected fault (a spike and a drop in volume, stale
//! data, nulls, out-of-range values, a renamed column, a changed type) is caught by the
//! matching checks and only by them. Then the results' history in the metadata store (SQLite
//! and PostgreSQL) and the materialization gate.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use quiver_core::Registry;
use quiver_core::repo::load_registry;
use quiver_monitor::quality::{
    self, NoScanProgress, QualityError, ScanProgress, SetReport, Status, run_set,
};
use quiver_offline::OfflineEngine;
use quiver_online::OnlineStore;
use quiver_online::embedded::EmbeddedStore;
use quiver_online::materialize::{MaterializeOptions, NoProgress};
use quiver_registry::SqlMetadataStore;

/// The end of the data: 2024-06-30T00:00:00Z.
const AS_OF: i64 = 1_719_705_600_000_000;

const QUIVER_YAML: &str = r#"
project: clicks
entities:
  - {name: user, join_keys: [user_id], value_type: string}
sources:
  - {name: events, type: parquet, path: data/events.parquet, timestamp_field: timestamp}
feature_views:
  - name: sessions
    entities: [user]
    source: events
    ttl: 30d
    features:
      - {name: event, type: string}
      - {name: platform, type: string}
      - {name: session_number, type: int64}
"#;

/// The nine check types on the clickstream. The daily volume of this data is noisy (a robust
/// standard deviation of about a quarter of the median), hence `max_z: 3`.
const QUALITY_YAML: &str = r#"
quality:
  - name: events_checks
    source: events
    checks:
      - {type: schema}
      - {type: not_null, columns: [user_id, event]}
      - {type: null_share, column: platform, max: 0.01}
      - {type: range, column: session_number, min: 1, max: 1000000}
      - type: allowed_values
        column: event
        values: [account_page, add_to_cart, cart, catalog, checkout_bug, compare, error_page,
                 filter_results, home, payment_details, payment_error, product_view, promo_page,
                 purchase, review_page, search, shipping_details, support_chat, wishlist_add]
      - {type: unique, columns: [session_id, timestamp, event]}
      - {type: freshness, max_age: 1d}
      - {type: volume, every: 1d, lookback: 28d, max_z: 3}
      - {type: sql, expr: "starts_with(user_id, 'user_')", max_failing_share: 0}
"#;

fn data_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/retentioneering_ecom_synthetic.csv.gz")
}

/// The clickstream as a table `typed`: the CSV's columns, `timestamp` as a timestamp and
/// `session_number` (the number in `session_id`) as an integer; and as `clean`, the same
/// without the 30 rows that repeat another row exactly (the file's one real defect, which the
/// unique check finds).
async fn clean_context(dir: &Path) -> SessionContext {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data_file()).expect("the shared data set"))
        .read_to_string(&mut text)
        .unwrap();
    let csv = dir.join("events.csv");
    std::fs::write(&csv, text).unwrap();
    let ctx = SessionContext::new();
    ctx.register_csv("raw", csv.to_str().unwrap(), CsvReadOptions::new())
        .await
        .unwrap();
    let typed = ctx
        .sql(
            "SELECT user_id, session_id, event, CAST(timestamp AS TIMESTAMP) AS timestamp, platform,
                    acquisition_channel, user_cohort, user_lifecycle,
                    CAST(substr(session_id, 6) AS BIGINT) AS session_number
             FROM raw",
        )
        .await
        .unwrap();
    ctx.register_table("typed", typed.into_view()).unwrap();
    let clean = ctx.sql("SELECT DISTINCT * FROM typed").await.unwrap();
    ctx.register_table("clean", clean.into_view()).unwrap();
    ctx
}

/// A repository whose `data/events.parquet` is the result of `sql` over `clean`.
async fn repo_with(ctx: &SessionContext, sql: &str, quality: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("quiver.yaml"), QUIVER_YAML).unwrap();
    std::fs::create_dir_all(dir.path().join("features")).unwrap();
    std::fs::write(dir.path().join("features/quality.yaml"), quality).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let out = dir.path().join("data/events.parquet");
    ctx.sql(sql)
        .await
        .unwrap()
        .write_parquet(
            out.to_str().unwrap(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .unwrap();
    // Sanity: the file reads back.
    ctx.read_parquet(out.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    dir
}

fn engine(dir: &Path) -> OfflineEngine {
    let reg: Registry = load_registry(dir).unwrap();
    OfflineEngine::new(reg, dir)
}

async fn run(dir: &Path) -> SetReport {
    let e = engine(dir);
    let set = e.registry().quality["events_checks"].clone();
    let p: Arc<dyn ScanProgress> = Arc::new(NoScanProgress);
    run_set(&e, &set, AS_OF, &p).await.unwrap()
}

fn failing(r: &SetReport) -> Vec<&'static str> {
    r.results
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| c.check_type)
        .collect()
}

fn result<'a>(r: &'a SetReport, t: &str) -> &'a quality::CheckResult {
    r.results.iter().find(|c| c.check_type == t).unwrap()
}

const LAST_DAY: &str = "timestamp > TIMESTAMP '2024-06-29 00:00:00'";

#[tokio::test]
async fn clean_data_passes_and_each_injected_fault_is_caught_by_its_check() {
    let work = tempfile::tempdir().unwrap();
    let ctx = clean_context(work.path()).await;

    // The file as published repeats 30 events exactly: the unique check finds them.
    let raw = repo_with(&ctx, "SELECT * FROM typed", QUALITY_YAML).await;
    let r = run(raw.path()).await;
    assert_eq!(r.rows, 31_106);
    assert_eq!(failing(&r), ["unique"]);
    assert_eq!(result(&r, "unique").observed["duplicate_rows"], 30);
    assert_eq!(result(&r, "unique").examples.len(), 5);

    let clean = repo_with(&ctx, "SELECT * FROM clean", QUALITY_YAML).await;
    let r = run(clean.path()).await;
    assert_eq!(r.rows, 31_076);
    assert_eq!(failing(&r), Vec::<&str>::new(), "{:#?}", r.results);
    assert_eq!(r.results.len(), 9);
    let vol = result(&r, "volume");
    assert_eq!(vol.observed["rows"], 257, "{}", vol.message);
    assert!(vol.examples.is_empty());

    // (fault, SQL over the clean data, the checks that must fail, and only them)
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "volume spike",
            // The last day's events five times, each copy a few milliseconds later (so not
            // duplicates).
            format!(
                "SELECT * FROM clean UNION ALL
                 SELECT user_id, session_id, event, to_timestamp_nanos(CAST(timestamp AS BIGINT) + k * 1000000) AS timestamp,
                        platform, acquisition_channel, user_cohort, user_lifecycle, session_number
                 FROM clean CROSS JOIN (VALUES (1), (2), (3), (4)) AS copies(k) WHERE {LAST_DAY}"
            ),
            vec!["volume"],
        ),
        (
            "volume drop",
            format!(
                "SELECT * FROM clean WHERE NOT ({LAST_DAY}) OR (session_number % 10 = 0 AND timestamp > TIMESTAMP '2024-06-29 20:00:00')"
            ),
            vec!["volume"],
        ),
        (
            "stale data",
            "SELECT * FROM clean WHERE timestamp <= TIMESTAMP '2024-06-27 00:00:00'".into(),
            vec!["freshness", "volume"],
        ),
        (
            "nulls",
            "SELECT user_id, session_id,
                    CASE WHEN session_number % 500 = 7 THEN NULL ELSE event END AS event, timestamp,
                    CASE WHEN session_number % 20 = 3 THEN NULL ELSE platform END AS platform,
                    acquisition_channel, user_cohort, user_lifecycle, session_number
             FROM clean"
                .into(),
            vec!["not_null", "null_share"],
        ),
        (
            "out-of-range values",
            "SELECT user_id, session_id, event, timestamp, platform, acquisition_channel, user_cohort,
                    user_lifecycle,
                    CASE WHEN session_number % 97 = 0 THEN -session_number ELSE session_number END AS session_number
             FROM clean"
                .into(),
            vec!["range"],
        ),
        (
            "renamed column",
            "SELECT user_id, session_id, event AS event_name, timestamp, platform, acquisition_channel,
                    user_cohort, user_lifecycle, session_number
             FROM clean"
                .into(),
            vec!["schema", "not_null", "allowed_values", "unique"],
        ),
        (
            "changed type",
            "SELECT user_id, session_id, event, timestamp, platform, acquisition_channel, user_cohort,
                    user_lifecycle, CAST(session_number AS VARCHAR) AS session_number
             FROM clean"
                .into(),
            vec!["schema", "range"],
        ),
    ];
    for (fault, sql, expected) in cases {
        let repo = repo_with(&ctx, &sql, QUALITY_YAML).await;
        let r = run(repo.path()).await;
        assert_eq!(
            failing(&r),
            expected,
            "{fault}: {:#?}",
            r.results
                .iter()
                .map(|c| (c.check_type, c.status, &c.message))
                .collect::<Vec<_>>()
        );
        for c in r.results.iter().filter(|c| c.status == Status::Fail) {
            assert!(
                c.violations > 0,
                "{fault}: {} counts no violation",
                c.check_type
            );
            assert!(!c.message.is_empty());
        }
        match fault {
            "volume spike" => {
                let v = result(&r, "volume");
                assert_eq!(v.observed["rows"], 257 * 5);
                assert!(v.observed["z"].as_f64().unwrap() > 3.0, "{}", v.message);
            }
            "volume drop" => {
                assert!(result(&r, "volume").observed["z"].as_f64().unwrap() < -3.0);
            }
            "stale data" => {
                let f = result(&r, "freshness");
                assert!(f.observed["age_seconds"].as_f64().unwrap() > 2.0 * 86_400.0);
            }
            "nulls" => {
                let n = result(&r, "null_share");
                let share = n.observed["null_share"].as_f64().unwrap();
                assert!((0.04..0.06).contains(&share), "{share}");
                // Up to 5 failing rows, each with the null.
                let ex = &result(&r, "not_null").examples;
                assert_eq!(ex.len(), 5);
                assert!(ex.iter().all(|e| e["event"].is_null()), "{ex:?}");
            }
            "out-of-range values" => {
                let c = result(&r, "range");
                assert!(c.observed["min"].as_f64().unwrap() < 0.0);
                assert!(
                    c.examples
                        .iter()
                        .all(|e| e["session_number"].as_i64().unwrap() < 0)
                );
                assert_eq!(c.examples.len(), 5);
            }
            "renamed column" => {
                let s = result(&r, "schema");
                assert_eq!(s.observed["missing"], serde_json::json!(["event"]));
                assert_eq!(
                    s.observed["extra"].as_array().unwrap().len(),
                    5,
                    "{}",
                    s.message
                );
                assert!(
                    result(&r, "allowed_values")
                        .message
                        .contains("column 'event' not found"),
                    "{}",
                    result(&r, "allowed_values").message
                );
            }
            "changed type" => {
                let s = result(&r, "schema");
                assert_eq!(s.observed["wrong_type"][0]["column"], "session_number");
                assert!(result(&r, "range").message.contains("not a number"));
            }
            _ => {}
        }
    }

    // A unique key that repeats is found across the whole scan, with examples.
    let dup_yaml = QUALITY_YAML.replace(
        "columns: [session_id, timestamp, event]",
        "columns: [user_id]",
    );
    let dups = repo_with(&ctx, "SELECT * FROM clean", &dup_yaml).await;
    let r = run(dups.path()).await;
    let u = result(&r, "unique");
    assert_eq!(u.observed["distinct"], 600);
    assert_eq!(u.observed["duplicate_rows"], 31_076 - 600);
    assert_eq!(u.examples.len(), 5);
}

async fn history_and_gate(meta: SqlMetadataStore) {
    let work = tempfile::tempdir().unwrap();
    let ctx = clean_context(work.path()).await;
    let p: Arc<dyn ScanProgress> = Arc::new(NoScanProgress);

    // History: a passing run, then a failing one, stored with their results.
    let clean = repo_with(&ctx, "SELECT * FROM clean", QUALITY_YAML).await;
    let e = engine(clean.path());
    let reports = quality::check(&e, &meta, &[], AS_OF, "check", 1, &p)
        .await
        .unwrap();
    assert_eq!(reports[0].status(), Status::Pass);
    let bad_sql = "SELECT user_id, session_id, event, timestamp, platform, acquisition_channel, user_cohort,
                    user_lifecycle,
                    CASE WHEN session_number % 97 = 0 THEN -session_number ELSE session_number END AS session_number
             FROM clean";
    let bad = repo_with(&ctx, bad_sql, QUALITY_YAML).await;
    let e_bad = engine(bad.path());
    let reports = quality::check(
        &e_bad,
        &meta,
        &["events_checks".to_string()],
        AS_OF,
        "check",
        1,
        &p,
    )
    .await
    .unwrap();
    assert_eq!(reports[0].status(), Status::Fail);
    let err = quality::check(
        &e_bad,
        &meta,
        &["event_checks".into()],
        AS_OF,
        "check",
        1,
        &p,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("no quality set 'event_checks'; did you mean 'events_checks'?"),
        "{err}"
    );
    let history = meta.quality_runs(Some("events_checks"), 10).await.unwrap();
    assert_eq!(history.len(), 2, "an unknown name stores nothing");
    assert_eq!(
        (history[0].status.as_str(), history[1].status.as_str()),
        ("fail", "pass")
    );
    let range = &history[0].results[3];
    assert_eq!(
        (range.check_type.as_str(), range.status.as_str()),
        ("range", "fail")
    );
    assert_eq!(range.examples.as_array().unwrap().len(), 5);
    assert_eq!(history[0].results.len(), 9);

    // The gate: a clean source is materialized; a failing error check blocks the run and
    // nothing is written; `on_failure: warn` writes and reports.
    let opts = MaterializeOptions {
        start_us: None,
        end_us: AS_OF,
        views: vec![],
        incremental: false,
        batch_rows: 1000,
    };
    let store = EmbeddedStore::open(&work.path().join("online")).unwrap();
    let (outcome, written) = quality::materialize_checked(
        &e,
        &store,
        &meta,
        &opts,
        Arc::new(NoProgress),
        1,
        &quiver_jobs::Alerter::default(),
    )
    .await
    .unwrap();
    assert!(outcome.warnings.is_empty());
    assert_eq!(written[0].entities, 600);
    assert_eq!(store.delete_view("sessions").await.unwrap(), 600);
    meta.clear_watermarks(&[]).await.unwrap();

    // A blocked run alerts each failed error check as check_failed (trigger materialize),
    // before it returns, and says so.
    let (url, bodies) = webhook_receiver();
    let alerter = quiver_jobs::Alerter::new(Some(url.clone()));
    let blocked = quality::materialize_checked(
        &e_bad,
        &store,
        &meta,
        &opts,
        Arc::new(NoProgress),
        1,
        &alerter,
    )
    .await
    .unwrap_err();
    let body = bodies
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the blocked run posted an alert");
    assert_eq!(body["alert"], "check_failed", "{body}");
    assert_eq!(body["key"], "check_failed:events_checks#3", "{body}");
    assert_eq!(body["trigger"], "materialize", "{body}");
    match &blocked {
        QualityError::Blocked { message, .. } => {
            assert!(
                message.contains(&format!(
                    "alert \"check_failed:events_checks#3\" sent to {url}"
                )),
                "{message}"
            );
            assert!(
                message.contains(
                    "quality 'events_checks' checks[3] (range session_number) on source events"
                ),
                "{message}"
            );
            assert!(message.contains("nothing was written"), "{message}");
        }
        other => panic!("expected Blocked, got {other}"),
    }
    assert_eq!(
        store.delete_view("sessions").await.unwrap(),
        0,
        "nothing written"
    );
    assert!(
        meta.watermarks().await.unwrap().is_empty(),
        "no watermark moved"
    );
    let last = &meta.quality_runs(Some("events_checks"), 1).await.unwrap()[0];
    assert_eq!(
        (last.trigger.as_str(), last.status.as_str()),
        ("materialize", "fail")
    );

    let warn_yaml = QUALITY_YAML.replace(
        "    source: events\n",
        "    source: events\n    on_failure: warn\n",
    );
    let warned = repo_with(&ctx, bad_sql, &warn_yaml).await;
    let e_warn = engine(warned.path());
    let (outcome, written) = quality::materialize_checked(
        &e_warn,
        &store,
        &meta,
        &opts,
        Arc::new(NoProgress),
        1,
        &quiver_jobs::Alerter::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert!(outcome.warnings[0].contains("(range session_number)"));
    assert_eq!(written[0].entities, 600);
}

#[tokio::test]
async fn results_history_and_the_materialization_gate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqlMetadataStore::open("registry.db", dir.path())
        .await
        .unwrap();
    history_and_gate(meta).await;
}

#[tokio::test]
async fn results_history_and_the_materialization_gate_on_postgres() {
    if let Some(url) = quiver_test_utils::postgres_schema_url("quiver_quality_gate").await {
        let meta = SqlMetadataStore::open(&url, Path::new(".")).await.unwrap();
        history_and_gate(meta).await;
    }
}

/// A view target: a plain view's rows (keys, event_timestamp, features as declared) and an
/// aggregation view's values per entity as of the check time.
#[tokio::test]
async fn checks_on_views_read_the_views_values() {
    let work = tempfile::tempdir().unwrap();
    let ctx = clean_context(work.path()).await;
    let yaml = r#"
feature_views:
  - name: session_counts
    entities: [user]
    source: events
    aggregations:
      - {name: events_30d, function: count, window: 30d}
      - {name: purchases_30d, function: count, window: 30d, filter: "event = 'purchase'"}
quality:
  - name: view_checks
    view: sessions
    checks:
      - {type: schema}
      - {type: range, column: session_number, min: 1, max: 2000}
      - {type: not_null, columns: [user_id, event_timestamp, platform]}
      - {type: freshness, max_age: 1d}
  - name: agg_checks
    view: session_counts
    severity: warn
    checks:
      - {type: range, column: purchases_30d, max: 2}
      - {type: sql, expr: "purchases_30d <= events_30d"}
      - {type: unique, columns: [user_id]}
"#;
    let repo = repo_with(&ctx, "SELECT * FROM clean", yaml).await;
    let e = engine(repo.path());
    let p: Arc<dyn ScanProgress> = Arc::new(NoScanProgress);
    let set = e.registry().quality["view_checks"].clone();
    let r = run_set(&e, &set, AS_OF, &p).await.unwrap();
    assert_eq!(r.rows, 31_076);
    assert_eq!(r.source, "events");
    assert_eq!(failing(&r), ["range"], "{:#?}", r.results);
    let range = result(&r, "range");
    assert_eq!(range.status, Status::Fail);
    assert!(
        range
            .examples
            .iter()
            .all(|x| x["session_number"].as_i64().unwrap() > 2000)
    );
    assert!(range.examples[0]["event_timestamp"].is_string());

    let set = e.registry().quality["agg_checks"].clone();
    let r = run_set(&e, &set, AS_OF, &p).await.unwrap();
    // One row per user with an event, as of the check time.
    assert_eq!(r.rows, 600);
    let range = result(&r, "range");
    // Warn severity: reported as warn, never fail.
    assert_eq!(range.status, Status::Warn, "{}", range.message);
    assert!(range.violations > 0);
    assert_eq!(
        result(&r, "sql").status,
        Status::Pass,
        "{}",
        result(&r, "sql").message
    );
    assert_eq!(result(&r, "unique").status, Status::Pass);
}

/// A webhook on a loopback port: answers 200 to each POST and hands over its JSON body.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}
