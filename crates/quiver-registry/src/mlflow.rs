//! Mirroring model versions to an MLflow tracking server through its REST API.
//!
//! With `tracking: {mlflow: http://host:5000}` in `quiver.yaml`, each training run is logged to
//! MLflow as a run (params, metrics, tags, artifacts) in an experiment, and the version is
//! registered there as a model version of the same name, tagged `quiver.version`, with the same
//! aliases as in Quiver. Quiver's metadata store stays the source of truth: MLflow is a mirror,
//! so a failed MLflow call never changes what Quiver has registered, and `quiver models track`
//! re-sends a version.
//!
//! Only the documented REST endpoints are used (`/api/2.0/mlflow/...` and, for artifacts, the
//! tracking server's artifact proxy `/api/2.0/mlflow-artifacts/...`, available when the server
//! runs with `--serve-artifacts`, its default). The client is blocking (ureq): callers on an
//! async runtime wrap it in `spawn_blocking` or `block_in_place`.

use std::time::Duration;

use serde_json::{Value as Json, json};

/// An error talking to MLflow: what was being done and what the server (or the network) said.
#[derive(Debug, thiserror::Error)]
#[error("MLflow at {url}: {action}: {message}")]
pub struct MlflowError {
    /// The tracking server.
    pub url: String,
    /// The call, e.g. `create run`.
    pub action: String,
    /// The server's `error_code: message`, or the transport error.
    pub message: String,
    /// The server's `error_code` when it answered with one.
    pub code: Option<String>,
}

/// Result alias of this module.
pub type Result<T, E = MlflowError> = std::result::Result<T, E>;

/// A run being logged.
#[derive(Debug, Clone)]
pub struct Run {
    /// MLflow's run id.
    pub run_id: String,
    /// The experiment it belongs to.
    pub experiment_id: String,
    /// Where its artifacts go, e.g. `mlflow-artifacts:/1/<run>/artifacts`.
    pub artifact_uri: String,
}

/// A blocking client of one MLflow tracking server.
#[derive(Clone)]
pub struct MlflowClient {
    base: String,
    agent: ureq::Agent,
}

/// MLflow's limits per `log-batch` request.
const MAX_PARAMS_PER_BATCH: usize = 100;
const MAX_METRICS_PER_BATCH: usize = 1000;
/// MLflow's limit on a param value's length.
const MAX_PARAM_VALUE: usize = 6000;

impl MlflowClient {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:5000`).
    pub fn new(url: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        MlflowClient {
            base: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn fail(&self, action: &str, message: String, code: Option<String>) -> MlflowError {
        MlflowError {
            url: self.base.clone(),
            action: action.to_string(),
            message,
            code,
        }
    }

    /// Reads a JSON answer; a non-2xx status becomes an error with MLflow's `error_code` and
    /// message.
    fn answer(
        &self,
        action: &str,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Json> {
        let mut response = response.map_err(|e| {
            self.fail(
                action,
                format!("{e} (is the tracking server running? start one with `mlflow server`)"),
                None,
            )
        })?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.fail(action, format!("reading the answer: {e}"), None))?;
        let body: Json = if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| json!({ "message": text }))
        };
        if status.is_success() {
            return Ok(body);
        }
        let code = body
            .get("error_code")
            .and_then(Json::as_str)
            .map(str::to_string);
        let message = body
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("")
            .chars()
            .take(500)
            .collect::<String>();
        Err(self.fail(
            action,
            format!(
                "HTTP {}{}{}",
                status.as_u16(),
                code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
            code,
        ))
    }

    fn post(&self, action: &str, endpoint: &str, body: &Json) -> Result<Json> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        self.answer(action, self.agent.post(&url).send_json(body))
    }

    fn get(&self, action: &str, endpoint: &str, query: &[(&str, &str)]) -> Result<Json> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let mut request = self.agent.get(&url);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        self.answer(action, request.call())
    }

    /// The id of the experiment named `name`, created when it does not exist.
    pub fn experiment(&self, name: &str) -> Result<String> {
        match self.get(
            "get experiment",
            "experiments/get-by-name",
            &[("experiment_name", name)],
        ) {
            Ok(v) => return id_of(&v["experiment"]["experiment_id"], "experiment_id"),
            Err(e) if e.code.as_deref() == Some("RESOURCE_DOES_NOT_EXIST") => {}
            Err(e) => return Err(e),
        }
        let v = self.post(
            "create experiment",
            "experiments/create",
            &json!({ "name": name }),
        )?;
        id_of(&v["experiment_id"], "experiment_id")
    }

    /// Starts a run in an experiment.
    pub fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> Result<Run> {
        let v = self.post(
            "create run",
            "runs/create",
            &json!({
                "experiment_id": experiment_id,
                "run_name": run_name,
                "start_time": start_ms,
                "tags": key_values(tags),
            }),
        )?;
        let info = &v["run"]["info"];
        Ok(Run {
            run_id: id_of(&info["run_id"], "run_id")?,
            experiment_id: experiment_id.to_string(),
            artifact_uri: info["artifact_uri"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Logs params, metrics (step 0, at `timestamp_ms`) and tags, in as many `log-batch` calls
    /// as MLflow's per-request limits need. Non-finite metrics are skipped (MLflow rejects
    /// them); param values longer than MLflow's limit are cut.
    pub fn log_batch(
        &self,
        run: &Run,
        params: &[(String, String)],
        metrics: &[(String, f64)],
        tags: &[(String, String)],
        timestamp_ms: i64,
    ) -> Result<()> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.clone(), v.chars().take(MAX_PARAM_VALUE).collect()))
            .collect();
        let metrics: Vec<Json> = metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| json!({"key": k, "value": v, "timestamp": timestamp_ms, "step": 0}))
            .collect();
        let mut first = true;
        let mut p = params.chunks(MAX_PARAMS_PER_BATCH);
        let mut m = metrics.chunks(MAX_METRICS_PER_BATCH);
        loop {
            let (ps, ms) = (p.next(), m.next());
            if ps.is_none() && ms.is_none() && !first {
                return Ok(());
            }
            self.post(
                "log params and metrics",
                "runs/log-batch",
                &json!({
                    "run_id": run.run_id,
                    "params": key_values(ps.unwrap_or(&[])),
                    "metrics": ms.unwrap_or(&[]),
                    "tags": if first { key_values(tags) } else { json!([]) },
                }),
            )?;
            first = false;
        }
    }

    /// Uploads one artifact (`path` relative to the run's artifact root, `/`-separated).
    /// Needs the server's artifact proxy (`mlflow-artifacts:` artifact URIs); a run whose
    /// artifacts live in a local directory gets the file copied there.
    pub fn log_artifact(&self, run: &Run, path: &str, bytes: &[u8]) -> Result<()> {
        let action = format!("upload artifact {path}");
        if let Some(rest) = run.artifact_uri.strip_prefix("mlflow-artifacts:") {
            // `mlflow-artifacts:/1/abc/artifacts` or `mlflow-artifacts://host:port/1/abc/artifacts`.
            let rest = match rest.strip_prefix("//") {
                Some(with_host) => with_host.split_once('/').map(|x| x.1).unwrap_or(""),
                None => rest.trim_start_matches('/'),
            };
            let url = format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{}/{}",
                self.base,
                rest.trim_end_matches('/'),
                path
            );
            self.answer(
                &action,
                self.agent
                    .put(&url)
                    .header("Content-Type", "application/octet-stream")
                    .send(bytes),
            )?;
            return Ok(());
        }
        let local = run.artifact_uri.strip_prefix("file://").or_else(|| {
            run.artifact_uri
                .starts_with('/')
                .then_some(&run.artifact_uri[..])
        });
        match local {
            Some(dir) => {
                let target = std::path::Path::new(dir).join(path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| self.fail(&action, format!("{}: {e}", parent.display()), None))?;
                }
                std::fs::write(&target, bytes)
                    .map_err(|e| self.fail(&action, format!("{}: {e}", target.display()), None))
            }
            None => Err(self.fail(
                &action,
                format!(
                    "the run's artifact location {} is neither proxied by the server (start it with --serve-artifacts) nor a local directory",
                    run.artifact_uri
                ),
                None,
            )),
        }
    }

    /// Marks a run finished.
    pub fn finish_run(&self, run: &Run, end_ms: i64) -> Result<()> {
        self.post(
            "finish run",
            "runs/update",
            &json!({"run_id": run.run_id, "status": "FINISHED", "end_time": end_ms}),
        )
        .map(|_| ())
    }

    /// Creates the registered model unless it exists.
    pub fn ensure_registered_model(&self, name: &str, description: &str) -> Result<()> {
        match self.post(
            "create registered model",
            "registered-models/create",
            &json!({"name": name, "description": description}),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code.as_deref() == Some("RESOURCE_ALREADY_EXISTS") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Registers a model version from a run's artifacts; returns MLflow's version number.
    pub fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[(String, String)],
    ) -> Result<String> {
        let v = self.post(
            "create model version",
            "model-versions/create",
            &json!({"name": name, "source": source, "run_id": run_id, "tags": key_values(tags)}),
        )?;
        id_of(&v["model_version"]["version"], "version")
    }

    /// MLflow's version of `name` tagged `quiver.version = version`, if any.
    pub fn find_version(&self, name: &str, quiver_version: i64) -> Result<Option<String>> {
        let filter = format!("name='{}'", name.replace('\'', "''"));
        let wanted = quiver_version.to_string();
        let mut token = String::new();
        loop {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "200")];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let v = match self.get("search model versions", "model-versions/search", &query) {
                Ok(v) => v,
                Err(e) if e.code.as_deref() == Some("RESOURCE_DOES_NOT_EXIST") => return Ok(None),
                Err(e) => return Err(e),
            };
            for mv in v["model_versions"].as_array().into_iter().flatten() {
                let tagged = mv["tags"].as_array().into_iter().flatten().any(|t| {
                    t["key"] == "quiver.version" && t["value"].as_str() == Some(wanted.as_str())
                });
                if tagged {
                    return id_of(&mv["version"], "version").map(Some);
                }
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => return Ok(None),
            }
        }
    }

    /// Points `alias` at MLflow's `version` of `name`.
    pub fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        self.post(
            "set alias",
            "registered-models/alias",
            &json!({"name": name, "alias": alias, "version": version}),
        )
        .map(|_| ())
    }

    /// Deletes MLflow's `version` of `name`.
    pub fn delete_version(&self, name: &str, version: &str) -> Result<()> {
        let url = format!("{}/api/2.0/mlflow/model-versions/delete", self.base);
        self.answer(
            "delete model version",
            self.agent
                .delete(&url)
                .force_send_body()
                .send_json(json!({"name": name, "version": version})),
        )
        .map(|_| ())
    }
}

/// `[{key, value}, ...]` as MLflow wants params and tags.
fn key_values(pairs: &[(String, String)]) -> Json {
    Json::Array(
        pairs
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// An id MLflow returns as a string (older servers: sometimes a number).
fn id_of(v: &Json, field: &str) -> Result<String> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        _ => Err(MlflowError {
            url: String::new(),
            action: "read answer".into(),
            message: format!("no {field} in MLflow's answer"),
            code: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_server_names_the_url_and_the_call() {
        let c = MlflowClient::new("http://127.0.0.1:9/");
        let e = c.experiment("x").expect_err("nothing listens on port 9");
        let text = e.to_string();
        assert!(
            text.starts_with("MLflow at http://127.0.0.1:9: get experiment:"),
            "{text}"
        );
        assert!(text.contains("mlflow server"), "{text}");
    }

    #[test]
    fn key_values_render_as_mlflow_expects() {
        let v = key_values(&[("a".into(), "1".into())]);
        assert_eq!(v, json!([{"key": "a", "value": "1"}]));
        assert!(id_of(&json!(3), "version").is_ok_and(|s| s == "3"));
        assert!(id_of(&Json::Null, "version").is_err());
    }
}
