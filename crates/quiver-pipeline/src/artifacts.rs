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

/// The object-storage URL versions' files are kept at (`artifacts:` in `quiver.yaml`, or
/// `QUIVER__ARTIFACTS`), if any, with the `storage:` settings that reach it.
pub fn remote_root(repo: &Path) -> Option<(String, quiver_core::yaml::RawStorage)> {
    let settings = quiver_core::repo::RepoSettings::load(repo).ok()?;
    let url = settings
        .artifacts
        .filter(|u| quiver_offline::remote::is_url(u))?;
    Some((url, settings.storage))
}

/// Copies the files of a version just written (`rel`, relative to the artifact root) to the
/// repository's object storage, when it has one (`artifacts: s3://...`): a version is
/// registered only once its files are there, so any machine sharing the registry can load it.
pub async fn push(repo: &Path, rel: &str) -> Result<()> {
    let Some((url, storage)) = remote_root(repo) else {
        return Ok(());
    };
    let dir = artifact_root(repo).join(rel);
    quiver_offline::remote::upload_dir(
        &dir,
        &format!("{}/{rel}", url.trim_end_matches('/')),
        &storage,
    )
    .await
    .map_err(|e| Error::Invalid(format!("artifacts: {e}")))?;
    Ok(())
}

/// Makes a version's files (`rel`, relative to the artifact root) present locally: when they
/// are missing and the repository keeps artifacts in object storage, downloads them into
/// `.quiver/artifacts` (whole or not at all). A no-op when they are there.
pub async fn pull(repo: &Path, rel: &str) -> Result<()> {
    let dir = artifact_root(repo).join(rel);
    if dir.is_dir() {
        return Ok(());
    }
    let Some((url, storage)) = remote_root(repo) else {
        return Ok(());
    };
    quiver_offline::remote::download_dir(
        &format!("{}/{rel}", url.trim_end_matches('/')),
        &dir,
        &storage,
    )
    .await
    .map_err(|e| Error::Invalid(format!("artifacts: {e}")))?;
    Ok(())
}

/// Loads a version's model file (fetched from object storage first when it is kept there and
/// missing here).
pub async fn load_artifact(repo: &Path, v: &ModelVersion) -> Result<ModelArtifact> {
    pull(repo, &v.artifact).await?;
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
