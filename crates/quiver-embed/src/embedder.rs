//! [`Embedder`]: tokenize, batch, BERT forward, mean pooling, L2 normalization.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::model_files::{ModelFile, ModelFiles};
use crate::{Error, Result};

/// The embedding width of all-MiniLM-L6-v2.
pub const DIM: usize = 384;

/// The most word pieces one text is cut to, `[CLS]` and `[SEP]` included: `max_seq_length` in
/// all-MiniLM-L6-v2's `sentence_bert_config.json`. Longer texts are truncated, never refused.
pub const MAX_SEQ_LEN: usize = 256;

/// How many texts go through the model at once (sentence-transformers' default `batch_size`).
pub const BATCH_SIZE: usize = 64;

/// The most padded word pieces one forward pass takes: a batch of [`BATCH_SIZE`] long texts is
/// run in slices (e.g. 2 texts of 256 pieces, 64 of 8) so that the attention scores
/// (`rows × 12 × width²` floats) and the other intermediates stay small enough to be reused by the
/// allocator and to sit in cache. Rows are independent, so slicing does not change any result.
/// Measured on 200 reviews (1 thread, CPU seconds): 4096 → 17.0, 2048 → 13.9, 1024 → 13.3,
/// 512 → 12.4, no slicing → 28.9 (a third of it in the kernel, faulting in fresh pages).
const MAX_FORWARD_TOKENS: usize = 512;

/// The `[PAD]` token id of the BERT uncased vocabulary.
const PAD_ID: u32 = 0;

/// The all-MiniLM-L6-v2 sentence embedder, on the CPU.
///
/// Cheap to share across threads by reference (`embed` takes `&self`); candle spreads each
/// matrix product over the machine's cores (set `RAYON_NUM_THREADS` to change how many).
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
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
        let model = BertModel::load(vb, &config)
            .map_err(|e| invalid(format!("not the BERT weights config.json describes: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
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

    /// The unit-norm embedding of each text, in input order. Texts are processed in batches of
    /// [`BATCH_SIZE`], longest first, so that little padding is computed; the result of a text
    /// does not depend on the batch it shares (up to float rounding, ~1e-7).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| Error::Tokenize(e.to_string()))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        // Longest first, like sentence-transformers (which sorts by character length; the token
        // count is what the padding is made of). The sort is stable: ties keep input order.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH_SIZE) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i]).collect();
            let width = batch[0].len(); // the longest: `order` is longest first
            let rows = (MAX_FORWARD_TOKENS / width.max(1)).max(1);
            for (slice, indices) in batch.chunks(rows).zip(chunk.chunks(rows)) {
                for (&i, vector) in indices.iter().zip(self.embed_batch(slice)?) {
                    out[i] = vector;
                }
            }
        }
        Ok(out)
    }

    /// The embedding of one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&[text])?.remove(0))
    }

    /// Forward pass, mean pooling and normalization of one batch of token-id sequences.
    fn embed_batch(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let rows = batch.len();
        let width = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut input_ids = vec![PAD_ID; rows * width];
        let mut mask = vec![0u32; rows * width];
        for (r, ids) in batch.iter().enumerate() {
            input_ids[r * width..r * width + ids.len()].copy_from_slice(ids);
            mask[r * width..r * width + ids.len()].fill(1);
        }
        let input_ids = Tensor::from_vec(input_ids, (rows, width), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device)?;
        let token_type_ids = input_ids.zeros_like()?;
        let hidden = self
            .model
            .forward(&input_ids, &token_type_ids, Some(&mask))?; // (rows, width, DIM)
        // sentence_transformers.models.Pooling, mean mode: sum of the unmasked token vectors over
        // max(token count, 1e-9).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, width, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, DIM)
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (rows, 1)
        let mean = summed.broadcast_div(&counts)?;
        // sentence_transformers.models.Normalize = torch.nn.functional.normalize(p=2, dim=1):
        // x / max(||x||, 1e-12).
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
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
