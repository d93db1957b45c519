//! Mirroring model versions to MLflow (`tracking: {mlflow: URL}` in `quiver.yaml`, or the
//! `QUIVER__TRACKING__MLFLOW` environment variable).
//!
//! A version is logged as one MLflow run: tags for lineage (`quiver.model`, `quiver.version`,
//! feature service and hash, git commit), the training params, the test metrics, and as
//! artifacts the model file, the evaluation and the HTML report. Then it is registered as a
//! model version of the same name tagged `quiver.version`, and given the same aliases.
//! Quiver's metadata store stays the source of truth; MLflow failures are reported with the
//! command that re-sends (`quiver models track`).

use std::path::Path;

use quiver_core::repo::RepoSettings;
use quiver_registry::ModelVersion;
use quiver_registry::mlflow::MlflowClient;
use serde_json::Value as Json;

use crate::{Error, Result};

/// Where runs go.
pub struct Tracking {
    /// The tracking server.
    pub client: MlflowClient,
    /// The experiment runs are logged in.
    pub experiment: String,
    /// How a run's `s3://` artifact location is reached (`storage:` in `quiver.yaml`).
    pub storage: quiver_core::yaml::RawStorage,
}

/// The repository's MLflow tracking settings, if any.
pub fn tracking(repo: &Path) -> Result<Option<Tracking>> {
    let settings = RepoSettings::load(repo)?;
    let url = std::env::var("QUIVER__TRACKING__MLFLOW")
        .ok()
        .filter(|u| !u.is_empty())
        .or(settings.tracking.mlflow);
    let Some(url) = url else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::Invalid(format!(
            "quiver.yaml: tracking.mlflow = {url:?}: give the tracking server's URL, e.g. http://127.0.0.1:5000"
        )));
    }
    let experiment = settings
        .tracking
        .experiment
        .or(settings.project)
        .unwrap_or_else(|| "quiver".into());
    Ok(Some(Tracking {
        client: MlflowClient::new(&url),
        experiment,
        storage: settings.storage,
    }))
}

/// Uploads one artifact of `run` (`path` relative to its artifact root). A run whose artifact
/// location is in object storage (`s3://`: an MLflow server started with
/// `--default-artifact-root s3://...` and no artifact proxy) gets it written to the bucket
/// directly, as MLflow's own clients do; otherwise the MLflow client uploads it (the server's
/// proxy, or a local folder). Runs off the async threads ([`off_thread`]).
fn log_artifact(
    t: &Tracking,
    run: &quiver_registry::mlflow::Run,
    path: &str,
    bytes: Vec<u8>,
) -> Result<()> {
    if !run.artifact_uri.starts_with("s3://") {
        return Ok(t.client.log_artifact(run, path, &bytes)?);
    }
    let url = format!("{}/{path}", run.artifact_uri.trim_end_matches('/'));
    tokio::runtime::Handle::current()
        .block_on(quiver_offline::remote::put(&url, bytes, &t.storage))
        .map_err(|e| Error::Invalid(format!("MLflow artifact {path}: {e}")))
}

/// What one logged version became in MLflow.
#[derive(Debug)]
pub struct Logged {
    /// The experiment id.
    pub experiment_id: String,
    /// The run id.
    pub run_id: String,
    /// MLflow's model version.
    pub mlflow_version: String,
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Logs a version as a run and registers it (blocking; call off the async threads).
pub fn log_version(repo: &Path, t: &Tracking, v: &ModelVersion) -> Result<Logged> {
    let c = &t.client;
    let experiment_id = c.experiment(&t.experiment)?;
    let created_ms = chrono::DateTime::parse_from_rfc3339(&v.created_at)
        .map(|d| d.timestamp_millis())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp_millis());
    let d = &v.details;
    let mut tags: Vec<(String, String)> = vec![
        ("quiver.model".into(), v.name.clone()),
        ("quiver.version".into(), v.version.to_string()),
        ("quiver.task".into(), v.task.clone()),
        ("quiver.algorithm".into(), v.algorithm.clone()),
        ("quiver.feature_service".into(), v.feature_service.clone()),
        ("quiver.service_hash".into(), v.service_hash.clone()),
        ("mlflow.source.name".into(), "quiver train".into()),
        ("mlflow.source.type".into(), "JOB".into()),
    ];
    if let Some(g) = d["git_commit"].as_str() {
        tags.push(("mlflow.source.git.commit".into(), g.to_string()));
    }
    if !d["registry_version"].is_null() {
        tags.push((
            "quiver.registry_version".into(),
            text(&d["registry_version"]),
        ));
    }
    if !d["label"].is_null() {
        tags.push(("quiver.label".into(), d["label"].to_string()));
    }
    if let Some(f) = d["imported_from"].as_str() {
        tags.push(("quiver.imported_from".into(), f.to_string()));
    }
    let run = c.create_run(
        &experiment_id,
        &format!("{}-v{}", v.name, v.version),
        created_ms,
        &tags,
    )?;

    let mut params: Vec<(String, String)> = d["params"]
        .as_object()
        .map(|o| o.iter().map(|(k, x)| (k.clone(), text(x))).collect())
        .unwrap_or_default();
    params.push(("feature_service".into(), v.feature_service.clone()));
    if let Some(split) = d["split"]["kind"].as_str() {
        params.push(("split".into(), split.to_string()));
    }
    if let Some(col) = d["label"]["column"].as_str() {
        params.push(("label".into(), col.to_string()));
    }
    for k in ["start", "end"] {
        if let Some(s) = d["time_range"][k].as_str() {
            params.push((format!("time_range_{k}"), s.to_string()));
        }
    }
    let mut metrics: Vec<(String, f64)> = d["metrics"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, x)| x.as_f64().map(|f| (format!("test_{k}"), f)))
                .collect()
        })
        .unwrap_or_default();
    for (key, value) in [
        ("train_seconds", &d["train_seconds"]),
        ("best_iteration", &d["best_iteration"]),
        ("train_rows", &d["split"]["train_rows"]),
        ("validation_rows", &d["split"]["validation_rows"]),
        ("test_rows", &d["split"]["test_rows"]),
    ] {
        if let Some(f) = value.as_f64() {
            metrics.push((key.to_string(), f));
        }
    }
    c.log_batch(&run, &params, &metrics, &[], created_ms)?;

    let dir = crate::artifacts::version_dir(repo, v);
    for (file, dest) in [
        ("model.json", "model/model.json"),
        ("evaluation.json", "evaluation.json"),
    ] {
        match std::fs::read(dir.join(file)) {
            Ok(bytes) => log_artifact(t, &run, dest, bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file != "model.json" => {}
            Err(e) => return Err(Error::io("cannot read", &dir.join(file), e)),
        }
    }
    let report = crate::report::report_html(repo, v)?;
    log_artifact(t, &run, "report.html", report.into_bytes())?;
    c.finish_run(&run, chrono::Utc::now().timestamp_millis())?;

    c.ensure_registered_model(
        &v.name,
        &format!(
            "Registered by Quiver; reads feature service {}",
            v.feature_service
        ),
    )?;
    let mlflow_version = match c.find_version(&v.name, v.version)? {
        Some(existing) => existing,
        None => c.create_model_version(
            &v.name,
            &format!("{}/model", run.artifact_uri.trim_end_matches('/')),
            &run.run_id,
            &[
                ("quiver.version".into(), v.version.to_string()),
                ("quiver.feature_service".into(), v.feature_service.clone()),
            ],
        )?,
    };
    for alias in &v.aliases {
        c.set_alias(&v.name, alias, &mlflow_version)?;
    }
    Ok(Logged {
        experiment_id,
        run_id: run.run_id,
        mlflow_version,
    })
}

/// Points `alias` of `name` in MLflow at the MLflow version mirroring Quiver's `version`
/// (blocking).
pub fn mirror_alias(t: &Tracking, name: &str, alias: &str, version: i64) -> Result<()> {
    let Some(mv) = t.client.find_version(name, version)? else {
        return Err(Error::Invalid(format!(
            "MLflow has no version of {name} tagged quiver.version={version}: send it with `quiver models track {name}:{version}`"
        )));
    };
    t.client.set_alias(name, alias, &mv)?;
    Ok(())
}

/// Deletes the MLflow version mirroring Quiver's `version` of `name`, if there is one
/// (blocking).
pub fn delete_version(t: &Tracking, name: &str, version: i64) -> Result<()> {
    if let Some(mv) = t.client.find_version(name, version)? {
        t.client.delete_version(name, &mv)?;
    }
    Ok(())
}

/// Runs a blocking MLflow call from async code; its error becomes [`Error::Tracking`] with
/// `done`, what Quiver has already done, so the user knows nothing was lost.
pub async fn off_thread<T: Send + 'static>(
    done: String,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("MLflow call panicked: {e}")))?
        .map_err(|e| Error::Tracking {
            done,
            source: Box::new(e),
        })
}

/// Logs a newly registered version to MLflow when the repository names a tracking server:
/// the server's URL and what the version became there, or `None` without tracking.
pub async fn log_registered(repo: &Path, v: ModelVersion) -> Result<Option<(String, Logged)>> {
    let Some(t) = tracking(repo)? else {
        return Ok(None);
    };
    let url = t.client.url().to_string();
    let (name, version) = (v.name.clone(), v.version);
    let repo = repo.to_path_buf();
    let logged = off_thread(
        format!(
            "model {name} version {version} is registered in Quiver, but logging it to MLflow failed (re-send it with `quiver models track {name}:{version}`)"
        ),
        move || log_version(&repo, &t, &v),
    )
    .await?;
    Ok(Some((url, logged)))
}

/// With MLflow tracking on, points the same alias there.
pub async fn mirror(repo: &Path, name: &str, alias: &str, version: i64) -> Result<()> {
    let Some(t) = tracking(repo)? else {
        return Ok(());
    };
    let (n, a) = (name.to_string(), alias.to_string());
    off_thread(
        format!("{alias} of {name} now names version {version} in Quiver, but MLflow's alias was not moved"),
        move || mirror_alias(&t, &n, &a, version),
    )
    .await
}
