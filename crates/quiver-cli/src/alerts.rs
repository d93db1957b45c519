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
