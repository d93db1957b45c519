//! [`Embedder`]: tokenize, batch, BERT forward, mean pooling, L2 normalization.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::bert::Bert;
use crate::model_files::{ModelFile, ModelFiles};
use crate::{Error, Result};

/// The embedding width of all-MiniLM-L6-v2.
pub const DIM: usize = 384;

/// The most word pieces one text is cut to, `[CLS]` and `[SEP]` included: `max_seq_length` in
/// all-MiniLM-L6-v2's `sentence_bert_config.json`. Longer texts are truncated, never refused.
pub const MAX_SEQ_LEN: usize = 256;

/// The most texts one forward pass takes (sentence-transformers' default `batch_size`).
pub const BATCH_SIZE: usize = 64;

/// The most word pieces one forward pass takes. Texts are not padded (see [`crate::bert`]), so
/// this only sizes the matrix products: big enough for gemm to run at full speed, small enough
/// for the intermediates (`tokens × 1536` floats) to stay in cache and for the passes of a call
/// to spread over the threads.
const MAX_FORWARD_TOKENS: usize = 512;

/// The all-MiniLM-L6-v2 sentence embedder, on the CPU.
///
/// Cheap to share across threads by reference (`embed` takes `&self`). The forward passes of one
/// call run in parallel on rayon's global pool, and a matrix product is split further when a
/// thread is idle (set `RAYON_NUM_THREADS` to change how many threads).
pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dim", &DIM)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model from `dir`, which must hold `model.safetensors`, `tokenizer.json` and
    /// `config.json` (see [`crate::fetch_model`]). The error names the missing or invalid file and
    /// the command that fetches it.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_files(&ModelFiles::in_dir(dir)?)
    }

    /// Loads the model from the local Hugging Face cache (see [`crate::hf_cache_snapshot`]).
    pub fn load_from_hf_cache() -> Result<Self> {
        Self::from_files(&ModelFiles::locate(None)?)
    }

    /// Loads the model from files already located.
    pub fn from_files(files: &ModelFiles) -> Result<Self> {
        let config = read_config(files)?;
        let tokenizer = read_tokenizer(files, config.vocab_size)?;
        let device = Device::Cpu;
        let path = files.path(ModelFile::Weights);
        let invalid = |reason: String| Error::InvalidFile {
            path: path.clone(),
            file: ModelFile::Weights,
            reason,
        };
        // Read into memory rather than mmap: mapping a file is `unsafe`, which this workspace forbids.
        let bytes = std::fs::read(&path).map_err(|e| invalid(e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
        let model = Bert::load(vb, &config)
            .map_err(|e| invalid(format!("not the BERT weights config.json describes: {e}")))?;
        Ok(Self { model, tokenizer })
    }

    /// The embedding width, 384.
    pub fn dim(&self) -> usize {
        DIM
    }

    /// The word-piece ids of `text` as the model sees it: `[CLS]`, at most
    /// `MAX_SEQ_LEN - 2` pieces, `[SEP]`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode_fast(text, true)
            .map_err(|e| Error::Tokenize(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The unit-norm embedding of each text, in input order. Consecutive texts are packed into
    /// forward passes of at most [`BATCH_SIZE`] texts and `MAX_FORWARD_TOKENS` word pieces,
    /// without padding; the passes run in parallel. The result of a text does not depend on the
    /// texts it shares a pass with (up to float rounding, ~1e-7).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| Error::Tokenize(e.to_string()))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut passes: Vec<&[&[u32]]> = Vec::new();
        let (mut start, mut tokens) = (0, 0);
        for (i, seq) in ids.iter().enumerate() {
            if i > start && (i - start == BATCH_SIZE || tokens + seq.len() > MAX_FORWARD_TOKENS) {
                passes.push(&ids[start..i]);
                (start, tokens) = (i, 0);
            }
            tokens += seq.len();
        }
        passes.push(&ids[start..]);
        let vectors = passes
            .par_iter()
            .map(|pass| self.model.embed(pass))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(vectors.into_iter().flatten().collect())
    }

    /// The embedding of one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&[text])?.remove(0))
    }
}

fn read_config(files: &ModelFiles) -> Result<Config> {
    let path = files.path(ModelFile::Config);
    let invalid = |reason: String| Error::InvalidFile {
        path: path.clone(),
        file: ModelFile::Config,
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(e.to_string()))?;
    let config: Config =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not a BERT config.json: {e}")))?;
    if config.hidden_size != DIM {
        return Err(invalid(format!(
            "hidden_size is {}, all-MiniLM-L6-v2 has {DIM}",
            config.hidden_size
        )));
    }
    if config.max_position_embeddings < MAX_SEQ_LEN {
        return Err(invalid(format!(
            "max_position_embeddings is {}, below the {MAX_SEQ_LEN} word pieces texts are cut to",
            config.max_position_embeddings
        )));
    }
    Ok(config)
}

fn read_tokenizer(files: &ModelFiles, vocab_size: usize) -> Result<Tokenizer> {
    let path = files.path(ModelFile::Tokenizer);
    let invalid = |reason: String| Error::InvalidFile {
        path: path.clone(),
        file: ModelFile::Tokenizer,
        reason,
    };
    let mut tokenizer = Tokenizer::from_file(&path)
        .map_err(|e| invalid(format!("not a Hugging Face tokenizer.json: {e}")))?;
    if tokenizer.get_vocab_size(true) > vocab_size {
        return Err(invalid(format!(
            "its vocabulary has {} entries, more than the {vocab_size} of config.json",
            tokenizer.get_vocab_size(true)
        )));
    }
    // The file says: truncate at 128 and pad every text to 128. sentence-transformers overrides
    // both when it calls the tokenizer (truncation at max_seq_length, padding to the batch's
    // longest); padding is done per batch in `embed_batch`.
    tokenizer
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: MAX_SEQ_LEN,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| invalid(format!("cannot truncate at {MAX_SEQ_LEN}: {e}")))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}
