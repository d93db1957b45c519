//! Monitoring alerts from commands: `quiver check` (failed error-severity checks) and
//! `quiver drift` (a drifted data set of a model, or any with --fail-on-drift), posted through
//! `quiver_jobs::Alerter` with the repeat interval kept in the metadata store. Bodies come
//! from `quiver_monitor::alerts`.

use std::path::Path;

use quiver_core::repo::RepoSettings;
use quiver_jobs::Alerter;
use quiver_jobs::alerts::Delivery;
use quiver_registry::SqlMetadataStore;
use serde_json::Value;

use crate::output::Output;

/// The repository's alerter (rules of `alerts:`, dedup in `meta`).
pub fn alerter(repo: &Path, meta: &SqlMetadataStore) -> anyhow::Result<Alerter> {
    let settings = RepoSettings::load(repo)?;
    Alerter::from_settings(&settings.alerts, Some(meta.clone())).map_err(anyhow::Error::msg)
}

/// Posts `bodies` and waits for the posts; says what was sent or held back.
pub async fn deliver(alerter: &Alerter, bodies: Vec<Value>, out: &Output) {
    if !alerter.enabled() {
        return;
    }
    for body in bodies {
        for d in alerter.deliver(body.clone()).await {
            match d {
                Delivery::Sent(url) => out.say(format!("alert {} sent to {url}", body["key"])),
                Delivery::Suppressed(url) => out.say(format!(
                    "alert {} not sent to {url}: sent within its repeat_interval",
                    body["key"]
                )),
                Delivery::Failed(..) => {}
            }
        }
    }
}

/// The model a drift data set belongs to: `model:NAME[:VERSION]` or `log:NAME[:VERSION]@...`.
pub fn model_of(spec: &str) -> Option<String> {
    let rest = spec
        .strip_prefix("model:")
        .or_else(|| spec.strip_prefix("log:"))?;
    let name = rest.split(['@', ':']).next()?;
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_model_of_a_data_set() {
        use super::model_of;
        assert_eq!(
            model_of("log:churn@2025-01-01..2025-02-01").as_deref(),
            Some("churn")
        );
        assert_eq!(
            model_of("log:churn:3@2025-01-01..2025-02-01").as_deref(),
            Some("churn")
        );
        assert_eq!(model_of("model:churn:2").as_deref(), Some("churn"));
        assert_eq!(model_of("model:churn").as_deref(), Some("churn"));
        assert_eq!(model_of("data/x.parquet"), None);
    }
}
