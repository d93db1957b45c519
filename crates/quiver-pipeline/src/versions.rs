//! Naming a model version: `NAME`, `NAME:VERSION` or `NAME@ALIAS`.

use quiver_registry::{ModelVersion, SqlMetadataStore};

use crate::{Error, Result};

/// The version `spec` names: `NAME:VERSION`, `NAME@ALIAS`, or `NAME` alone for its champion
/// (else its latest version).
pub async fn resolve(store: &SqlMetadataStore, spec: &str) -> Result<ModelVersion> {
    if let Some((n, v)) = spec.split_once(':') {
        let v: i64 = v.parse().map_err(|_| {
            Error::Invalid(format!("{spec}: the version after ':' must be a number"))
        })?;
        return Ok(store.model_version(n, v).await?);
    }
    if let Some((n, a)) = spec.split_once('@') {
        return Ok(store.model_by_alias(n, a).await?);
    }
    match store.model_by_alias(spec, "champion").await {
        Ok(v) => Ok(v),
        Err(_) => store
            .model_versions(Some(spec))
            .await?
            .into_iter()
            .last()
            .ok_or_else(|| Error::Invalid(format!("no model named '{spec}'"))),
    }
}
