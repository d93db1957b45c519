//! Registering a model trained elsewhere (a LightGBM text model) on a feature service.

use std::path::Path;

use quiver_core::registry::ObjectKind;
use quiver_ml::lightgbm::parse_lightgbm_text;
use quiver_ml::{Encoding, Input, Model, ModelArtifact};
use quiver_registry::{AppliedRegistry, NewModelVersion, SqlMetadataStore};
use serde_json::json;

use crate::evaluation::importance;
use crate::labels::task_name;
use crate::{Error, Result};

/// An imported version.
#[derive(Debug)]
pub struct Imported {
    /// The model's name.
    pub name: String,
    /// The new version.
    pub version: i64,
    /// Its task (`binary`, `multiclass`, `regression`).
    pub task: &'static str,
}

/// Registers the LightGBM text model `file` as a new version of `name` (default: the service's
/// name) reading `service`, promoted to `promote` if given, and logs it to MLflow when tracking
/// is on. Each model feature must be one of the service's features, by full (`view__feature`,
/// `view:feature`) or unambiguous short name.
pub async fn import_lightgbm(
    repo: &Path,
    store: &SqlMetadataStore,
    applied: &AppliedRegistry,
    file: &Path,
    service: &str,
    name: Option<String>,
    promote: Option<&str>,
) -> Result<Imported> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("cannot read", file, e))?;
    let mut ensemble = parse_lightgbm_text(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
    let features = applied.registry.service_features(service)?.to_vec();
    let service_hash = applied
        .registry
        .object_hash(ObjectKind::FeatureService, service)
        .ok_or_else(|| Error::Internal(format!("service {service} has no hash")))?;
    // Map each model feature to a service feature by full or short name.
    let mut inputs = Vec::with_capacity(ensemble.feature_names.len());
    for fname in &ensemble.feature_names {
        let found = features
            .iter()
            .find(|f| f.full_name() == *fname || f.to_string() == *fname)
            .or_else(|| {
                let short: Vec<_> = features.iter().filter(|f| f.feature == *fname).collect();
                (short.len() == 1).then(|| short[0])
            });
        let Some(f) = found else {
            return Err(Error::Invalid(format!(
                "{}: model feature '{fname}' is not a feature of service {service} (it has: {})",
                file.display(),
                features
                    .iter()
                    .map(|f| f.full_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        // LightGBM categorical features take integer codes: the value itself.
        inputs.push(Input {
            feature: f.to_string(),
            encoding: Encoding::Number,
        });
    }
    ensemble.feature_names = inputs
        .iter()
        .map(|i| i.feature.replace(':', "__"))
        .collect();
    let model = Model::Trees(ensemble);
    let task = task_name(model.objective());
    let imp = importance(&model);
    let name = name.unwrap_or_else(|| service.to_string());
    let artifact = ModelArtifact {
        format: ModelArtifact::FORMAT,
        inputs,
        model,
        classes: vec![],
    };
    let rel = crate::artifacts::write_artifact(repo, &name, &artifact, None)?;
    crate::artifacts::push(repo, &rel).await?;
    let version = store
        .register_model(&NewModelVersion {
            name: name.clone(),
            task: task.into(),
            algorithm: "lightgbm".into(),
            feature_service: service.to_string(),
            service_hash,
            artifact: rel,
            details: json!({
                "imported_from": file,
                "registry_version": applied.version,
                "importance": imp.iter().map(|(n, g, s)| json!({"feature": n, "gain": g, "splits": s})).collect::<Vec<_>>(),
            }),
        })
        .await?;
    if let Some(alias) = promote {
        store.promote_model(&name, version, alias).await?;
    }
    if crate::tracking::tracking(repo)?.is_some() {
        let v = store.model_version(&name, version).await?;
        crate::tracking::log_registered(repo, v).await?;
    }
    Ok(Imported {
        name,
        version,
        task,
    })
}
