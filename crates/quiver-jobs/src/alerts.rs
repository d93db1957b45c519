//! Alerts: a JSON `POST` per event to each webhook of `alerts:` whose rule takes the event.
//!
//! The body carries `alert` (the event: `check_failed`, `drift`, `job_failed`, ...), the
//! project and object, structured fields, and a `text` line that Slack-style incoming webhooks
//! display as is. `alerts: {webhook: URL}` posts every event every time; a rule list
//! (`alerts: [{webhook: URL, on: [check_failed, drift, job_failed], repeat_interval: 1h}]`)
//! picks events per webhook and keeps the same alert (its `key`: the event and its subject, per
//! webhook) from being posted again within the interval. The last send of each key is kept in
//! the metadata store ([`SqlMetadataStore::claim_alert`]), so a scheduler and a `quiver check`
//! run from cron agree. A webhook that fails is reported on stderr and never fails the caller.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use quiver_core::yaml::RawAlerts;
use quiver_registry::SqlMetadataStore;
use serde_json::Value as Json;

/// The events a rule's `on:` may name.
pub const EVENTS: &[&str] = &[
    "check_failed",
    "drift",
    "job_failed",
    "job_missed_schedule",
    "deployment_rejected",
    "deployment_rolled_back",
    "deployment_awaiting_approval",
];

/// One rule of `alerts:`.
#[derive(Debug, Clone)]
struct Route {
    webhook: Arc<str>,
    /// `None`: every event.
    on: Option<BTreeSet<String>>,
    repeat_us: i64,
}

/// Where alerts go.
#[derive(Clone, Default)]
pub struct Alerter {
    routes: Arc<Vec<Route>>,
    dedup: Option<SqlMetadataStore>,
}

/// What happened to an alert at one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Posted (the webhook answered 2xx).
    Sent(String),
    /// Within its repeat interval: not posted.
    Suppressed(String),
    /// The post or the dedup claim failed (also written to stderr).
    Failed(String, String),
}

impl Alerter {
    /// Alerts to `webhook` (none when `None`): every event, every time.
    pub fn new(webhook: Option<String>) -> Self {
        Alerter {
            routes: Arc::new(
                webhook
                    .map(|w| Route {
                        webhook: Arc::from(w),
                        on: None,
                        repeat_us: 0,
                    })
                    .into_iter()
                    .collect(),
            ),
            dedup: None,
        }
    }

    /// The rules of `alerts:` (`${VAR}` in a webhook read from the environment), checked:
    /// every rule needs a webhook, known events and a duration. `meta` keeps the last send of
    /// each alert for `repeat_interval`.
    pub fn from_settings(raw: &RawAlerts, meta: Option<SqlMetadataStore>) -> Result<Self, String> {
        let mut routes = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.iter().enumerate() {
            let at = if raw.rules.len() == 1 {
                "alerts".to_string()
            } else {
                format!("alerts[{i}]")
            };
            let webhook = r
                .webhook
                .as_deref()
                .ok_or_else(|| format!("quiver.yaml: {at}.webhook: a rule needs a webhook URL"))?;
            let webhook = quiver_online::config::expand_env(webhook)
                .map_err(|m| format!("quiver.yaml: {at}.webhook: {m}"))?;
            let on = match &r.on {
                None => None,
                Some(events) => {
                    for e in events {
                        if !EVENTS.contains(&e.as_str()) {
                            return Err(format!(
                                "quiver.yaml: {at}.on: unknown event '{e}' (one of {})",
                                EVENTS.join(", ")
                            ));
                        }
                    }
                    Some(events.iter().cloned().collect())
                }
            };
            let repeat_us = match &r.repeat_interval {
                None => 0,
                Some(t) => quiver_core::Duration::parse(t)
                    .map_err(|m| format!("quiver.yaml: {at}.repeat_interval: {m}"))?
                    .micros(),
            };
            routes.push(Route {
                webhook: Arc::from(webhook),
                on,
                repeat_us,
            });
        }
        Ok(Alerter {
            routes: Arc::new(routes),
            dedup: meta,
        })
    }

    /// [`from_settings`](Self::from_settings) for work that alerts only on the side (a
    /// materialization): a broken `alerts:` (an unset `${VAR}` in a webhook, say) does not stop
    /// the work; it is said on stderr and no alert is sent.
    pub fn from_settings_or_off(raw: &RawAlerts, meta: Option<SqlMetadataStore>) -> Self {
        Self::from_settings(raw, meta).unwrap_or_else(|m| {
            eprintln!("warning: alerts are off: {m}");
            Alerter::default()
        })
    }

    /// Whether a webhook is configured.
    pub fn enabled(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Sends `body` in the background (on tokio's runtime when one runs, else on a thread).
    /// Without a webhook, the alert is written to stderr.
    pub fn send(&self, body: Json) {
        if !self.enabled() {
            eprintln!(
                "quiver alert: {}",
                body["text"].as_str().unwrap_or(&body.to_string())
            );
            return;
        }
        let me = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    me.deliver(body).await;
                });
            }
            Err(_) => {
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for an alert");
                    rt.block_on(me.deliver(body));
                });
            }
        }
    }

    /// Posts `body` as [`deliver`](Self::deliver) does and waits for it (so a command that
    /// exits next, like `quiver jobs run`, loses nothing); without a webhook, writes it to
    /// stderr as [`send`](Self::send) does.
    pub async fn notify(&self, body: Json) {
        if !self.enabled() {
            eprintln!(
                "quiver alert: {}",
                body["text"].as_str().unwrap_or(&body.to_string())
            );
            return;
        }
        self.deliver(body).await;
    }

    /// Posts `body` to every webhook whose rule takes its event (`body.alert`), unless the same
    /// alert (`body.key`, else the event and its text) was posted there within the rule's
    /// repeat interval; waits for the posts. What a short-lived command (`quiver check`,
    /// `quiver drift`) calls before it exits.
    pub async fn deliver(&self, body: Json) -> Vec<Delivery> {
        let event = body["alert"].as_str().unwrap_or("alert").to_string();
        let subject = match body.get("key").and_then(Json::as_str) {
            Some(k) => k.to_string(),
            None => format!("{event}:{}", body["text"].as_str().unwrap_or_default()),
        };
        let mut out = Vec::new();
        for route in self.routes.iter() {
            if route.on.as_ref().is_some_and(|on| !on.contains(&event)) {
                continue;
            }
            let url = route.webhook.to_string();
            if route.repeat_us > 0
                && let Some(meta) = &self.dedup
            {
                let now = chrono::Utc::now().timestamp_micros();
                match meta
                    .claim_alert(&format!("{url} {subject}"), now, route.repeat_us)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        out.push(Delivery::Suppressed(url));
                        continue;
                    }
                    Err(e) => {
                        eprintln!("quiver alert: cannot record the alert ({e}); sending it");
                    }
                }
            }
            let b = body.clone();
            let u = url.clone();
            let posted = tokio::task::spawn_blocking(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                agent.post(&u).send_json(&b).map(|_| ())
            })
            .await;
            match posted {
                Ok(Ok(())) => out.push(Delivery::Sent(url)),
                Ok(Err(e)) => {
                    eprintln!(
                        "quiver alert: the webhook {url} failed ({e}): {}",
                        body["text"]
                    );
                    out.push(Delivery::Failed(url, e.to_string()));
                }
                Err(e) => out.push(Delivery::Failed(url, e.to_string())),
            }
        }
        out
    }
}
