//! Where the model's three files are: a configured directory or the Hugging Face cache.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One of the files [`crate::Embedder`] reads from the model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFile {
    /// `model.safetensors`: the BERT weights (float32).
    Weights,
    /// `tokenizer.json`: the WordPiece vocabulary and the normalizer / pre-tokenizer settings.
    Tokenizer,
    /// `config.json`: the BERT shape (layers, width, heads, vocabulary size).
    Config,
}

impl ModelFile {
    /// Every file the model needs, in the order they are checked.
    pub const ALL: [ModelFile; 3] = [ModelFile::Weights, ModelFile::Tokenizer, ModelFile::Config];

    /// The file's name in the model directory.
    pub fn name(self) -> &'static str {
        match self {
            ModelFile::Weights => "model.safetensors",
            ModelFile::Tokenizer => "tokenizer.json",
            ModelFile::Config => "config.json",
        }
    }
}

impl fmt::Display for ModelFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The paths of the model's files in one directory, each checked to exist.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    dir: PathBuf,
}

impl ModelFiles {
    /// Checks that `dir` holds `model.safetensors`, `tokenizer.json` and `config.json`; the error
    /// names the first file that is missing and the command that fetches it.
    pub fn in_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        for file in ModelFile::ALL {
            // `is_file` follows symbolic links, as in the Hugging Face cache's snapshots.
            if !dir.join(file.name()).is_file() {
                return Err(Error::MissingFile { dir, file });
            }
        }
        Ok(Self { dir })
    }

    /// The model in `configured` when given, else the newest snapshot in the Hugging Face cache
    /// (see [`hf_cache_snapshot`]).
    pub fn locate(configured: Option<&Path>) -> Result<Self> {
        match configured {
            Some(dir) => Self::in_dir(dir),
            None => {
                let hub = hf_hub_cache();
                match hf_cache_snapshot() {
                    Some(dir) => Self::in_dir(dir),
                    None => Err(Error::NotFound { searched: hub }),
                }
            }
        }
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of the model's files.
    pub fn path(&self, file: ModelFile) -> PathBuf {
        self.dir.join(file.name())
    }
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (as `huggingface_hub` resolves it).
fn hf_hub_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join("hub");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface").join("hub")
}

/// The snapshot directory of `sentence-transformers/all-MiniLM-L6-v2` in the local Hugging Face
/// cache (`<hub>/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/*/`) that holds
/// `model.safetensors`: the one `refs/main` points at if any, else the most recently modified.
pub fn hf_cache_snapshot() -> Option<PathBuf> {
    let repo = hf_hub_cache().join("models--sentence-transformers--all-MiniLM-L6-v2");
    let snapshots = repo.join("snapshots");
    let usable = |dir: &Path| dir.join(ModelFile::Weights.name()).is_file();
    if let Ok(main) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(main.trim());
        if usable(&dir) {
            return Some(dir);
        }
    }
    std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|dir| usable(dir))
        .max_by_key(|dir| dir.metadata().and_then(|m| m.modified()).ok())
}
