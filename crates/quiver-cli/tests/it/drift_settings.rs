//! `drift: {stattest, threshold}` declared on a feature: stored by `apply` (a settings-only
//! change that versions no value), used by `quiver drift` unless a flag says otherwise, and an
//! unknown test refused by `apply` with the file.

use super::{fails, ok, quiver};

const YAML: &str = r#"
project: shop
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: events, type: csv, path: data/events.csv, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [user]
    source: events
    features:
      - {name: amount, type: float64DRIFT}
"#;

fn json(o: &str) -> serde_json::Value {
    serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"))
}

#[test]
fn declared_drift_tests_are_stored_used_and_checked() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    std::fs::create_dir_all(repo.join("data")).unwrap();
    let mut events = String::from("user_id,amount,ts\n");
    let (mut a, mut b) = (String::from("amount\n"), String::from("amount\n"));
    for i in 0..300 {
        events.push_str(&format!("{},{},2025-03-01T00:00:00\n", i % 7, i % 13));
        a.push_str(&format!("{}\n", (i % 50) as f64));
        b.push_str(&format!("{}\n", (i % 50) as f64 + 3.0));
    }
    std::fs::write(repo.join("data/events.csv"), events).unwrap();
    std::fs::write(repo.join("data/ref.csv"), a).unwrap();
    std::fs::write(repo.join("data/cur.csv"), b).unwrap();
    let write = |drift: &str| {
        std::fs::write(repo.join("quiver.yaml"), YAML.replace("DRIFT", drift)).unwrap()
    };
    write("");
    ok(quiver(repo, &["apply"]));
    let (r, c) = (
        repo.join("data/ref.csv").display().to_string(),
        repo.join("data/cur.csv").display().to_string(),
    );
    let drift = |extra: &[&str]| {
        let mut args = vec!["--json", "drift", "--reference", &r, "--current", &c];
        args.extend_from_slice(extra);
        json(&ok(quiver(repo, &args)))["features"][0].clone()
    };
    // Over 1,000 rows? No: 300, so Evidently's default for a number is ks.
    assert_eq!(drift(&[])["stattest"], "ks");

    // A settings-only change is a change to store, and keeps the view's content hash.
    write(", drift: {stattest: psi, threshold: 0.3}");
    let plan = ok(quiver(repo, &["plan"]));
    assert!(plan.contains("stats"), "{plan}");
    let o = ok(quiver(repo, &["apply"]));
    assert!(o.contains("Applied registry version 2"), "{o}");
    let f = drift(&[]);
    assert_eq!(
        (f["stattest"].as_str(), f["threshold"].as_f64()),
        (Some("psi"), Some(0.3)),
        "{f}"
    );
    // Not selected by --features: the declared test is not applied (nor an error).
    let o = json(&ok(quiver(
        repo,
        &[
            "--json",
            "drift",
            "--reference",
            &r,
            "--current",
            &c,
            "--features",
            "amount",
        ],
    )));
    assert_eq!(o["features"][0]["stattest"], "psi", "{o}");
    // A flag still wins.
    let f = drift(&["--stattest", "amount=wasserstein"]);
    assert_eq!(f["stattest"], "wasserstein", "{f}");
    assert_eq!(f["threshold"], 0.3, "{f}");

    // An unknown test is refused at apply, naming the file and the feature.
    write(", drift: {stattest: psy}");
    let e = fails(quiver(repo, &["apply"]));
    assert!(
        e.contains("quiver.yaml")
            && e.contains("amount.drift.stattest")
            && e.contains("unknown test 'psy'"),
        "{e}"
    );
    write(", drift: {threshold: -1}");
    let e = fails(quiver(repo, &["apply"]));
    assert!(e.contains("amount.drift.threshold"), "{e}");
}

/// The distinct (user, time) pairs of a demo source's rows with their time in `[start, end)`.
fn source_rows(
    path: &std::path::Path,
    ts_column: &str,
    start: i64,
    end: i64,
    into: &mut std::collections::BTreeSet<(i64, i64)>,
) {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
    for batch in reader {
        let batch = batch.unwrap();
        let user = batch.column_by_name("user_id").unwrap();
        let user = user.as_primitive::<Int64Type>();
        let ts = datafusion::arrow::compute::cast(
            batch.column_by_name(ts_column).unwrap(),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )
        .unwrap();
        let ts = datafusion::arrow::compute::cast(&ts, &DataType::Int64).unwrap();
        let ts = ts.as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            if (start..end).contains(&ts.value(i)) {
                into.insert((user.value(i), ts.value(i)));
            }
        }
    }
}

/// `service:S@START..END` data sets: the service's features, point in time, for the entity rows
/// of its sources' rows in the range (deduplicated), compared month against month on the demo.
#[test]
fn drift_of_a_service_over_two_time_ranges() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    super::demo(repo);
    let april = "service:churn_v1@2025-04-01..2025-05-01";
    let may = "service:churn_v1@2025-05-01..2025-06-01";
    let v = json(&ok(quiver(
        repo,
        &["--json", "drift", "--reference", april, "--current", may],
    )));
    // Every feature of the service, by its full name, compared or listed as not compared.
    let mut names: Vec<String> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["skipped"].as_array().unwrap())
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut expected: Vec<String> = [
        "user_profile__age",
        "user_profile__country",
        "user_profile__plan",
        "user_profile__is_premium",
        "user_purchases__purchase_count_7d",
        "user_purchases__purchase_count_30d",
        "user_purchases__purchase_count_90d",
        "user_purchases__purchase_sum_30d",
        "user_purchases__avg_purchase_amount_30d",
        "user_purchases__max_purchase_amount_90d",
        "user_purchases__days_since_last_purchase",
        "user_engagement__events_7d",
        "user_engagement__events_30d",
        "user_engagement__sessions_30d",
        "user_engagement__days_since_last_event",
        "user_cart__add_to_cart_30d",
        "user_reviews__review_count_90d",
        "user_reviews__avg_rating_90d",
        "user_reviews__helpful_ratio_90d",
        "user_reviews__avg_review_length_90d",
        "user_reviews__avg_sentiment_90d",
        "user_reviews__min_sentiment_90d",
    ]
    .map(String::from)
    .to_vec();
    expected.sort();
    assert_eq!(names, expected, "{v}");
    assert!(v["features"].as_array().unwrap().len() >= 20, "{v}");
    // The entity rows: each distinct (user, time) of the users, events and reviews rows in the
    // range.
    let t = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    };
    for (side, (start, end)) in [
        (
            "reference_rows",
            ("2025-04-01T00:00:00Z", "2025-05-01T00:00:00Z"),
        ),
        (
            "current_rows",
            ("2025-05-01T00:00:00Z", "2025-06-01T00:00:00Z"),
        ),
    ] {
        let mut rows = std::collections::BTreeSet::new();
        for (file, ts) in [
            ("users", "signup_date"),
            ("events", "event_timestamp"),
            ("reviews", "event_timestamp"),
        ] {
            let path = repo.join(format!("data/{file}.parquet"));
            source_rows(&path, ts, t(start), t(end), &mut rows);
        }
        assert!(rows.len() > 1000, "{side}: {}", rows.len());
        assert_eq!(v[side], rows.len(), "{side}: {v}");
    }
    // The same set on both sides drifts nowhere.
    let same = json(&ok(quiver(
        repo,
        &["--json", "drift", "--reference", may, "--current", may],
    )));
    assert_eq!(same["share_drifted"], 0.0, "{same}");
    // Bad specs are clear errors.
    for (spec, message) in [
        (
            "service:nope@2025-04-01..2025-05-01",
            "unknown feature service 'nope'",
        ),
        (
            "service:churn_v1@2025-05-01..2025-04-01",
            "ends before it starts",
        ),
        ("service:churn_v1", "expected service:NAME@START..END"),
        (
            "service:churn_v1@2030-01-01..2030-02-01",
            "no rows of the sources",
        ),
    ] {
        let e = fails(quiver(
            repo,
            &["drift", "--reference", april, "--current", spec],
        ));
        assert!(e.contains(message) && e.contains(spec), "{spec}: {e}");
    }
}

/// A Parquet file of `rows` vectors (`emb`, list<float32> of 4) with their `event_timestamp`:
/// row i at `start + i` hours, near `a` before `switch` and near `b` from it on.
fn embedding_file(
    path: &std::path::Path,
    rows: i64,
    start: i64,
    switch: i64,
    a: [f32; 4],
    b: [f32; 4],
) {
    use datafusion::arrow::array::{
        ArrayRef, Float32Builder, ListBuilder, RecordBatch, TimestampMicrosecondArray,
    };
    use std::sync::Arc;
    let mut state = 7u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % 1000) as f32 / 20_000.0
    };
    let mut emb = ListBuilder::new(Float32Builder::new());
    let mut ts = Vec::new();
    for i in 0..rows {
        let t = start + i * 3_600_000_000;
        let base = if t >= switch { b } else { a };
        for x in base {
            emb.values().append_value(x + noise());
        }
        emb.append(true);
        ts.push(t);
    }
    let emb: ArrayRef = Arc::new(emb.finish());
    let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC"));
    let batch = RecordBatch::try_from_iter([("emb", emb), ("event_timestamp", ts)]).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// `--by week`: an embedding that moves in a known week (2025-W16) shows there, in the JSON and
/// in the HTML report, while the weeks before stay on the reference.
#[test]
fn embedding_drift_by_week_finds_the_week_that_moved() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (reference, current) = (dir.join("ref.parquet"), dir.join("cur.parquet"));
    let w14 = 1_743_379_200_000_000i64; // Monday 2025-03-31, the first day of 2025-W14
    let week = 7 * 86_400_000_000i64;
    let a = [1.0, 0.2, 0.0, 0.1];
    let b = [0.0, 0.2, 1.0, 0.1];
    // The reference: two weeks before, all near `a`.
    embedding_file(&reference, 14 * 24, w14 - 2 * week, i64::MAX, a, a);
    // The current set: W14 and W15 near `a`, W16 near `b`.
    embedding_file(&current, 21 * 24, w14, w14 + 2 * week, a, b);
    let html = dir.join("r.html");
    let args = [
        "--json",
        "drift",
        "--reference",
        reference.to_str().unwrap(),
        "--current",
        current.to_str().unwrap(),
        "--by",
        "week",
        "--out",
        html.to_str().unwrap(),
    ];
    let v = json(&ok(quiver(dir, &args)));
    let emb = &v["features"][0];
    assert_eq!(
        (&emb["name"], &emb["kind"]),
        (&"emb".into(), &"embedding".into()),
        "{v}"
    );
    let weeks = emb["by_week"].as_array().unwrap();
    let names: Vec<&str> = weeks.iter().map(|w| w["week"].as_str().unwrap()).collect();
    assert_eq!(names, ["2025-W14", "2025-W15", "2025-W16"], "{v}");
    for w in weeks {
        assert_eq!(w["rows"], 7 * 24, "{w}");
    }
    let sim = |i: usize| weeks[i]["cosine_similarity"].as_f64().unwrap();
    assert!(sim(0) > 0.999 && sim(1) > 0.999, "{v}");
    // cos(a, b) = (0.04 + 0.01) / (1.05) ≈ 0.05, noise aside.
    assert!(sim(2) < 0.3, "{v}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Embedding drift per week"),
        "no weekly section"
    );
    assert!(page.contains("<td>2025-W16</td><td>168</td>"), "no W16 row");
    // Without --by, no weekly figures; without a time on the current side, a clear error.
    let plain = json(&ok(quiver(dir, &args[..args.len() - 4])));
    assert!(plain["features"][0].get("by_week").is_none(), "{plain}");
    let no_time = dir.join("no_time.parquet");
    {
        let batch =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(&current).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let batch = batch.project(&[0]).unwrap();
        let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&no_time).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let e = fails(quiver(
        dir,
        &[
            "drift",
            "--reference",
            reference.to_str().unwrap(),
            "--current",
            no_time.to_str().unwrap(),
            "--by",
            "week",
        ],
    ));
    assert!(e.contains("--by week needs the time of each row"), "{e}");
    let e = fails(quiver(
        dir,
        &[
            "drift",
            "--reference",
            "x.parquet",
            "--current",
            "y.parquet",
            "--by",
            "month",
        ],
    ));
    assert!(e.contains("month"), "{e}");
}
