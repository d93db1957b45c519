//! Model files under the artifact root (`.quiver/artifacts`): each version's `model.json` and
//! `evaluation.json` in a directory named by the model's content.

use std::path::{Path, PathBuf};

use quiver_ml::ModelArtifact;
use quiver_registry::ModelVersion;

use crate::{Error, Result};

/// The artifact root of a repository.
pub fn artifact_root(repo: &Path) -> PathBuf {
    quiver_registry::models::artifact_root(repo)
}

/// The directory of a version's files.
pub fn version_dir(repo: &Path, v: &ModelVersion) -> PathBuf {
    artifact_root(repo).join(&v.artifact)
}

/// Writes a model version's files into a fresh directory named by their content and returns
/// the directory relative to the artifact root.
pub fn write_artifact(
    repo: &Path,
    name: &str,
    artifact: &ModelArtifact,
    evaluation: Option<&serde_json::Value>,
) -> Result<String> {
    let text = artifact.to_json();
    let hash = quiver_core::registry::content_hash(&text);
    let rel = format!("models/{name}/{}", &hash[..16]);
    let dir = artifact_root(repo).join(&rel);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let tmp = dir.join("model.json.tmp");
    std::fs::write(&tmp, &text).map_err(|e| Error::io("cannot write", &tmp, e))?;
    let file = dir.join("model.json");
    std::fs::rename(&tmp, &file).map_err(|e| Error::io("cannot write", &file, e))?;
    if let Some(e) = evaluation {
        let file = dir.join("evaluation.json");
        let text = serde_json::to_string_pretty(e).expect("JSON values serialize");
        std::fs::write(&file, text).map_err(|e| Error::io("cannot write", &file, e))?;
    }
    Ok(rel)
}

/// Loads a version's model file.
pub fn load_artifact(repo: &Path, v: &ModelVersion) -> Result<ModelArtifact> {
    let path = version_dir(repo, v).join("model.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Invalid(format!(
            "model {} version {}: cannot read {}: {e}",
            v.name,
            v.version,
            path.display()
        ))
    })?;
    ModelArtifact::from_json(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// Deletes a deleted version's directory, unless another version (same content) still uses it.
pub fn remove_version_dir(repo: &Path, artifact: &str, still_used: bool) -> Result<()> {
    let dir = artifact_root(repo).join(artifact);
    if !still_used && dir.is_dir() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("cannot remove", &dir, e))?;
    }
    Ok(())
}

/// The repository's git commit, if it is a git work tree.
pub fn git_commit(repo: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
