//! Notifications out: each notice the engine made durable (an escalation,
//! an SLA breach, a quarantined signal, a breaker that tripped) goes to the
//! receivers configured for its event, as a Slack-compatible incoming-
//! webhook body (`{"text": ...}`) or as the notice in JSON. Each send is
//! retried with backoff; a receiver that keeps failing is skipped for a
//! while by its own breaker, and what it missed is counted and logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::notices::Notice;

/// One notification receiver.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub name: String,
    pub url: String,
    /// `slack` (an incoming-webhook body) or `json`.
    #[serde(default = "json_format")]
    pub format: String,
    /// Which events: escalation, sla_breach, quarantine, breaker, ramp,
    /// silence, budget (all if empty).
    #[serde(default)]
    pub events: Vec<String>,
}

fn json_format() -> String {
    "json".into()
}

/// Why a receiver cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    #[error("notify `{name}`: url {url:?} is not http(s)://")]
    Url { name: String, url: String },
    #[error("notify `{name}`: format {format:?} is not \"slack\" or \"json\"")]
    Format { name: String, format: String },
    #[error("notify `{name}`: event {event:?} is not one of {}", NOTIFY_EVENTS.join(", "))]
    Event { name: String, event: String },
}

/// The events a receiver may ask for.
pub const NOTIFY_EVENTS: [&str; 10] = [
    "escalation",
    "model",
    "sla_breach",
    "quarantine",
    "breaker",
    "ramp",
    "silence",
    "budget",
    "flapping",
    "incident",
];

impl NotifyConfig {
    /// Whether it can be used; why not.
    pub fn check(&self) -> Result<(), NotifyError> {
        let name = || self.name.clone();
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(NotifyError::Url {
                name: name(),
                url: self.url.clone(),
            });
        }
        if !matches!(self.format.as_str(), "slack" | "json") {
            return Err(NotifyError::Format {
                name: name(),
                format: self.format.clone(),
            });
        }
        if let Some(e) = self
            .events
            .iter()
            .find(|e| !NOTIFY_EVENTS.contains(&e.as_str()))
        {
            return Err(NotifyError::Event {
                name: name(),
                event: e.clone(),
            });
        }
        Ok(())
    }

    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

/// Tries per send, and the first backoff between them.
const TRIES: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);
/// Failed sends in a row that open a receiver's breaker, and how long it
/// stays open.
const TRIP_AFTER: u32 = 5;
const COOLDOWN: Duration = Duration::from_secs(60);

/// One receiver's breaker.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    skipped: u64,
}

/// The body a receiver gets for a notice.
pub fn body(receiver: &NotifyConfig, notice: &Notice) -> serde_json::Value {
    match receiver.format.as_str() {
        "slack" => json!({ "text": format!("[signalbox] {}", notice.text) }),
        _ => json!({
            "source": "signalbox", "event": notice.event, "text": notice.text,
            "reference": notice.reference, "subject": notice.subject, "time": notice.time,
        }),
    }
}

/// Sends notices until the engine's side of the channel closes.
pub async fn run(
    mut notices: UnboundedReceiver<Notice>,
    receivers: Vec<NotifyConfig>,
    ca_file: Option<std::path::PathBuf>,
) {
    let client = match crate::outbound::client(ca_file.as_deref(), Duration::from_secs(5)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "notifications cannot start");
            return;
        }
    };
    let mut breakers: HashMap<String, Breaker> = HashMap::new();
    while let Some(notice) = notices.recv().await {
        for receiver in receivers.iter().filter(|r| r.wants(notice.event)) {
            let breaker = breakers.entry(receiver.name.clone()).or_default();
            if breaker.open_until.is_some_and(|t| Instant::now() < t) {
                breaker.skipped += 1;
                tracing::warn!(receiver = %receiver.name, skipped = breaker.skipped,
                    event = notice.event, "notification skipped: the receiver's breaker is open");
                continue;
            }
            match send(&client, receiver, &notice).await {
                Ok(()) => {
                    breaker.failures = 0;
                    breaker.open_until = None;
                }
                Err(why) => {
                    breaker.failures += 1;
                    tracing::warn!(receiver = %receiver.name, error = %why, event = notice.event,
                        "notification not delivered");
                    if breaker.failures >= TRIP_AFTER {
                        breaker.open_until = Some(Instant::now() + COOLDOWN);
                        breaker.failures = 0;
                    }
                }
            }
        }
    }
}

async fn send(
    client: &reqwest::Client,
    receiver: &NotifyConfig,
    notice: &Notice,
) -> Result<(), String> {
    use crate::outbound::{Failed, Retries, post_json};
    let payload = body(receiver, notice).to_string().into_bytes();
    let retries = Retries {
        tries: TRIES,
        backoff: BACKOFF,
        jitter: false,
    };
    match post_json(client, &receiver.url, payload, &[], retries).await {
        Ok(_) => Ok(()),
        Err(Failed::Answered(a)) => Err(format!("answered {}", a.status)),
        Err(Failed::Unreachable(e, _)) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_gets_text_and_json_gets_the_notice() {
        let notice = Notice {
            event: "quarantine",
            text: "signal x quarantined".into(),
            reference: "x".into(),
            subject: "service/api".into(),
            time: chrono::DateTime::UNIX_EPOCH,
        };
        let receiver = |format: &str| NotifyConfig {
            name: "r".into(),
            url: "http://127.0.0.1:1/".into(),
            format: format.into(),
            events: vec![],
        };
        assert_eq!(
            body(&receiver("slack"), &notice)["text"],
            "[signalbox] signal x quarantined"
        );
        let j = body(&receiver("json"), &notice);
        assert_eq!(j["event"], "quarantine");
        assert_eq!(j["reference"], "x");
    }
}
