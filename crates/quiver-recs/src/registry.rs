//! Recommender versions in the model registry: a version's files written under the artifact
//! root (`.quiver/artifacts/recommenders/NAME/ID/`, written in a temporary directory and
//! renamed, so a failed run leaves nothing half-written), registered as a version of the model
//! `NAME` (task `recommendation`, algorithm `als`) with its lineage, so that `quiver models`
//! lists, promotes and rolls it back like any model; and loading a version back.

use std::path::{Path, PathBuf};

use quiver_registry::{ModelVersion, NewModelVersion, SqlMetadataStore};
use serde_json::{Value, json};

use crate::model::RecModel;
use crate::{Error, Result};

/// The task recorded for recommender versions.
pub const TASK: &str = "recommendation";

fn registry_err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// Writes `model`'s files and registers them as the next version of the model named like the
/// recommender; `details` (lineage, counts, evaluation) is stored with it. Returns the version.
pub async fn register(
    store: &SqlMetadataStore,
    root: &Path,
    model: &RecModel,
    recommender_hash: &str,
    details: Value,
) -> Result<ModelVersion> {
    let name = &model.info.recommender;
    let artifact_root = quiver_registry::models::artifact_root(root);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let rel = format!("recommenders/{name}/{stamp}");
    let dir: PathBuf = artifact_root.join(&rel);
    let tmp = artifact_root.join(format!("recommenders/{name}/.tmp-{stamp}"));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    let written = model
        .save(&tmp)
        .and_then(|_| std::fs::rename(&tmp, &dir).map_err(|e| Error::io("cannot write", &dir, e)));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // With `artifacts: s3://...` the files go to object storage before the version exists.
    if let Err(e) = quiver_pipeline::artifacts::push(root, &rel).await {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(Error::Invalid(e.to_string()));
    }
    let mut details = details;
    if let Value::Object(m) = &mut details {
        m.insert("recommender".into(), json!(model.info));
    }
    let new = NewModelVersion {
        name: name.clone(),
        task: TASK.into(),
        algorithm: model.info.algorithm.clone(),
        feature_service: String::new(),
        service_hash: recommender_hash.to_string(),
        artifact: rel,
        details,
    };
    let version = match store.register_model(&new).await {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(registry_err(e));
        }
    };
    store
        .model_version(name, version)
        .await
        .map_err(registry_err)
}

/// The version `spec` names (`NAME`, `NAME:VERSION`, `NAME@ALIAS`), which must be a
/// recommender's.
pub async fn resolve(store: &SqlMetadataStore, spec: &str) -> Result<ModelVersion> {
    let v = quiver_pipeline::versions::resolve(store, spec)
        .await
        .map_err(registry_err)?;
    if v.task != TASK {
        return Err(Error::Invalid(format!(
            "{spec}: model {} version {} is a {} model, not a recommender",
            v.name, v.version, v.task
        )));
    }
    Ok(v)
}

/// Fetches a registered version's files from object storage when the repository keeps them
/// there and they are missing here (`quiver_pipeline::artifacts::pull`); call before [`load`].
pub async fn fetch(root: &Path, v: &ModelVersion) -> Result<()> {
    quiver_pipeline::artifacts::pull(root, &v.artifact)
        .await
        .map_err(|e| Error::Invalid(format!("recommender {} version {}: {e}", v.name, v.version)))
}

/// Loads a registered version's files (local; see [`fetch`]).
pub fn load(root: &Path, v: &ModelVersion) -> Result<RecModel> {
    RecModel::load(&quiver_registry::models::artifact_root(root).join(&v.artifact))
}
