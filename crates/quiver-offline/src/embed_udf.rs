//! `embed_text(s)`: the all-MiniLM-L6-v2 sentence embedding of a text (384 float32 values,
//! L2-normalized, equal to sentence-transformers'), as a SQL function of the offline engine, so
//! a view can declare `{name: review_embedding, type: "list<float32>", expr: "embed_text(text)"}`
//! and materialize it like any feature.
//!
//! The model loads once per process, on first use, from `QUIVER_MINILM_DIR` or else the
//! Hugging Face cache; when neither holds it, the query fails with the file that is missing and
//! the command that fetches it (`scripts/fetch-minilm.sh DIR`). A column is embedded in batches
//! of 64 (texts sorted by length, as sentence-transformers does). Null in gives null out.
//!
//! Embeddings are cached by text for the life of the process (a text repeated in a column, or
//! embedded again by the next materialization or retrieval, runs the model once). The cache holds
//! up to `QUIVER_EMBED_CACHE` texts per generation (default 20,000, about 30 MiB); when one
//! generation fills, it becomes the old one and the one before is dropped, so recently used
//! texts stay.
//!
//! Only the offline engine has it: an embedding costs tens of milliseconds of CPU per text on
//! this kind of machine, so embeddings are materialized, not computed per request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Builder, ListBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use quiver_embed::{Embedder, ModelFiles};

/// The embedder of this process, loaded on first use.
fn embedder() -> std::result::Result<&'static Embedder, String> {
    static EMBEDDER: OnceLock<std::result::Result<Embedder, String>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let configured = std::env::var_os("QUIVER_MINILM_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from);
            ModelFiles::locate(configured.as_deref())
                .and_then(|files| Embedder::from_files(&files))
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Embeddings by text, in two generations (see the module docs).
#[derive(Default)]
struct Cache {
    young: HashMap<String, Arc<[f32]>>,
    old: HashMap<String, Arc<[f32]>>,
    capacity: usize,
}

impl Cache {
    fn get(&mut self, text: &str) -> Option<Arc<[f32]>> {
        if let Some(v) = self.young.get(text) {
            return Some(v.clone());
        }
        let v = self.old.remove(text)?;
        self.insert(text.to_string(), v.clone());
        Some(v)
    }
    fn insert(&mut self, text: String, v: Arc<[f32]>) {
        if self.capacity == 0 {
            return;
        }
        if self.young.len() >= self.capacity {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(text, v);
    }
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let capacity = std::env::var("QUIVER_EMBED_CACHE")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(20_000);
        Mutex::new(Cache {
            capacity,
            ..Cache::default()
        })
    })
}

/// The embeddings of `texts`, from the cache or the model (each distinct missing text once).
fn embed_cached(texts: &[&str]) -> std::result::Result<Vec<Arc<[f32]>>, String> {
    let mut found: Vec<Option<Arc<[f32]>>> = {
        let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
        texts.iter().map(|t| c.get(t)).collect()
    };
    let mut missing: Vec<&str> = texts
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(t, _)| *t)
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        missing.dedup();
        let vectors = embedder()?.embed(&missing).map_err(|e| e.to_string())?;
        let fresh: HashMap<&str, Arc<[f32]>> = missing
            .iter()
            .zip(vectors)
            .map(|(t, v)| (*t, Arc::from(v)))
            .collect();
        let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
        for (t, v) in &fresh {
            c.insert(t.to_string(), v.clone());
        }
        drop(c);
        for (t, f) in texts.iter().zip(found.iter_mut()) {
            if f.is_none() {
                *f = fresh.get(t).cloned();
            }
        }
    }
    Ok(found.into_iter().map(|f| f.expect("embedded")).collect())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct EmbedText {
    signature: Signature,
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

impl ScalarUDFImpl for EmbedText {
    fn name(&self) -> &str {
        "embed_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View] => Ok(list_type()),
            [other] => exec_err!("embed_text expects a text argument, got {other}"),
            _ => exec_err!("embed_text takes one argument, got {}", args.len()),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = cast(&arrays[0], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let present: Vec<&str> = text.iter().flatten().collect();
        let vectors = if present.is_empty() {
            Vec::new()
        } else {
            match embed_cached(&present) {
                Ok(v) => v,
                Err(message) => return exec_err!("embed_text: {message}"),
            }
        };
        let mut out = ListBuilder::new(Float32Builder::new());
        let mut next = vectors.iter();
        for i in 0..text.len() {
            if text.is_null(i) {
                out.append(false);
            } else {
                out.values()
                    .append_slice(next.next().map(|v| &v[..]).unwrap_or(&[]));
                out.append(true);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

/// The `embed_text` function.
pub fn embed_text() -> ScalarUDF {
    ScalarUDF::from(EmbedText {
        signature: Signature::any(1, Volatility::Immutable),
    })
}
