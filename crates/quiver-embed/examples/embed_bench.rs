//! Sentences per second of [`quiver_embed::Embedder::embed`] (batches of 64) over the first 200
//! reviews of the fine-foods sample, repeated to 2,000 texts.
//!
//! ```text
//! cargo run --release -p quiver-embed --example embed_bench -- [MODEL_DIR] [CSV] [N_TEXTS]
//! ```
//!
//! MODEL_DIR defaults to `QUIVER_MINILM_DIR`, else the Hugging Face cache; CSV to
//! `../shared/data/modeldata_small_fine_foods_reviews.csv` beside the repository (the `review`
//! column is read); N_TEXTS to 2,000. `bench/embed_bench.sh` runs this beside sentence-transformers.
//! Prints one line: `quiver-embed: N texts in S s = R sentences/s (threads T)`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use quiver_embed::{Embedder, ModelFiles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_dir = args
        .first()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("QUIVER_MINILM_DIR").map(PathBuf::from));
    let csv = args.get(1).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/modeldata_small_fine_foods_reviews.csv")
    });
    let n_texts: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2000);

    let files = ModelFiles::locate(model_dir.as_deref())?;
    let reviews = read_reviews(&csv, 200)?;
    let texts: Vec<&str> = reviews
        .iter()
        .cycle()
        .take(n_texts)
        .map(String::as_str)
        .collect();

    let start = Instant::now();
    let embedder = Embedder::from_files(&files)?;
    let load = start.elapsed().as_secs_f64();
    embedder.embed(&texts[..64.min(texts.len())])?; // warm-up
    let start = Instant::now();
    let vectors = embedder.embed(&texts)?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(vectors.len(), texts.len());
    let threads = candle_core::utils::get_num_threads();
    eprintln!("model loaded in {load:.2} s");
    println!(
        "quiver-embed: {} texts in {secs:.2} s = {:.1} sentences/s (threads {threads})",
        texts.len(),
        texts.len() as f64 / secs
    );
    Ok(())
}

/// The `review` column of the first `n` rows: a small CSV reader (quoted fields with `""`
/// escapes and line breaks inside quotes), enough for this file.
fn read_reviews(path: &Path, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                if rows.len() > n {
                    break;
                }
            }
            (false, c) => field.push(c),
        }
    }
    let header = rows.first().ok_or("empty CSV")?;
    let col = header
        .iter()
        .position(|h| h == "review")
        .ok_or("no `review` column")?;
    Ok(rows[1..].iter().map(|r| r[col].clone()).collect())
}
