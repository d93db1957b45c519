//! Alerts: a JSON `POST` to `alerts.webhook` per event, sent off the caller's thread. The body
//! carries `alert` (what happened), the project and object, and a `text` line that Slack-style
//! incoming webhooks display as is. A webhook that fails is reported on stderr and never fails
//! the job or the scheduler.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

/// Where alerts go.
#[derive(Clone, Default)]
pub struct Alerter {
    webhook: Option<Arc<str>>,
}

impl Alerter {
    /// Alerts to `webhook` (none when `None`).
    pub fn new(webhook: Option<String>) -> Self {
        Alerter {
            webhook: webhook.map(Arc::from),
        }
    }

    /// Whether a webhook is configured.
    pub fn enabled(&self) -> bool {
        self.webhook.is_some()
    }

    /// Sends `body` in the background (on tokio's blocking pool when a runtime runs, else on a
    /// thread). Without a webhook, the alert is written to stderr.
    pub fn send(&self, body: Json) {
        let Some(url) = self.webhook.clone() else {
            eprintln!(
                "quiver alert: {}",
                body["text"].as_str().unwrap_or(&body.to_string())
            );
            return;
        };
        let post = move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            if let Err(e) = agent.post(&*url).send_json(&body) {
                eprintln!(
                    "quiver alert: the webhook {url} failed ({e}): {}",
                    body["text"]
                );
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(post);
            }
            Err(_) => {
                std::thread::spawn(post);
            }
        }
    }
}
