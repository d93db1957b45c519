//! Bad input gets one clear error naming the source, view, column or file.

use super::*;

const YAML: &str = r#"
project: t
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: src, type: parquet, path: data/s.parquet, timestamp_field: ts}]
feature_views:
  - {name: v, entities: [user], source: src, features: [{name: f, type: float64}]}
"#;

fn good() -> RecordBatch {
    batch(vec![
        ("user_id", i64_col(&[Some(1)])),
        ("ts", ts_col(&[Some(0)])),
        ("f", f64_col(&[Some(1.0)])),
    ])
}

fn entities() -> RecordBatch {
    batch(vec![
        ("user_id", i64_col(&[Some(1)])),
        ("event_timestamp", ts_col(&[Some(0)])),
    ])
}

async fn validate_err(yaml: &str, data: Option<RecordBatch>) -> String {
    let repo = Repo::new(yaml);
    if let Some(d) = data {
        write_parquet(&repo.path("data/s.parquet"), &d);
    }
    repo.engine().validate().await.unwrap_err().to_string()
}

#[tokio::test]
async fn feature_type_not_matching_the_column() {
    let e = validate_err(&YAML.replace("type: float64", "type: string"), Some(good())).await;
    assert!(
        e.contains("source 'src'")
            && e.contains("feature 'f': declared string but column 'f' is float64"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_columns() {
    let e = validate_err(
        &YAML.replace("timestamp_field: ts", "timestamp_field: when"),
        Some(good()),
    )
    .await;
    assert!(e.contains("timestamp column 'when' not found"), "{e}");
    let e = validate_err(
        &YAML.replace("{name: f, type", "{name: g, type"),
        Some(good()),
    )
    .await;
    assert!(
        e.contains("feature 'g': column 'g' not found; columns: user_id, ts, f"),
        "{e}"
    );
    let e = validate_err(
        YAML,
        Some(batch(vec![
            ("uid", i64_col(&[Some(1)])),
            ("ts", ts_col(&[Some(0)])),
            ("f", f64_col(&[Some(1.0)])),
        ])),
    )
    .await;
    assert!(e.contains("join key column 'user_id' not found"), "{e}");
}

#[tokio::test]
async fn missing_and_corrupt_files() {
    let e = validate_err(YAML, None).await;
    assert!(
        e.contains("source 'src' (data/s.parquet): no such file or directory"),
        "{e}"
    );
    let repo = Repo::new(YAML);
    std::fs::create_dir_all(repo.path("data")).unwrap();
    std::fs::write(repo.path("data/s.parquet"), b"PAR1 this is not parquet").unwrap();
    let e = repo.engine().validate().await.unwrap_err().to_string();
    assert!(e.starts_with("source 'src' (data/s.parquet):"), "{e}");
}

#[tokio::test]
async fn bad_expressions_name_view_and_field() {
    let yaml = YAML.replace(
        "{name: f, type: float64}",
        "{name: f, type: float64, expr: \"nosuch(f)\"}",
    );
    let e = validate_err(&yaml, Some(good())).await;
    assert!(
        e.contains("feature view 'v', features.f.expr:") && e.contains("nosuch"),
        "{e}"
    );
    let yaml = YAML.replace(
        "{name: f, type: float64}",
        "{name: f, type: float64, expr: \"missing_col * 2\"}",
    );
    let e = validate_err(&yaml, Some(good())).await;
    assert!(e.contains("missing_col"), "{e}");
}

#[tokio::test]
async fn entity_rows_with_wrong_key_type_or_missing_columns() {
    let repo = Repo::new(YAML);
    write_parquet(&repo.path("data/s.parquet"), &good());
    let bad = batch(vec![
        ("user_id", str_col(&[Some("1")])),
        ("event_timestamp", ts_col(&[Some(0)])),
    ]);
    let e = repo
        .historical(&bad, &["v:f"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("join key 'user_id' is string but entity declares int64"),
        "{e}"
    );
    let bad = batch(vec![
        ("user_id", i64_col(&[Some(1)])),
        ("ts", ts_col(&[Some(0)])),
    ]);
    let e = repo
        .historical(&bad, &["v:f"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("timestamp column 'event_timestamp' is missing"),
        "{e}"
    );
    let bad = batch(vec![
        ("uid", i64_col(&[Some(1)])),
        ("event_timestamp", ts_col(&[Some(0)])),
    ]);
    let e = repo
        .historical(&bad, &["v:f"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("join key column 'user_id' (feature view 'v') is missing"),
        "{e}"
    );
    let e = repo
        .historical(&entities(), &["v:nope"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("view 'v' has no feature 'nope'"), "{e}");
}

#[tokio::test]
async fn colliding_output_names_ask_for_full_names() {
    let yaml = YAML.replace(
        "  - {name: v,",
        "  - {name: w, entities: [user], source: src, features: [{name: f, type: float64}]}\n  - {name: v,",
    );
    let repo = Repo::new(&yaml);
    write_parquet(&repo.path("data/s.parquet"), &good());
    let e = repo
        .historical(&entities(), &["v:f", "w:f"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--full-names"), "{e}");
}
