//! The PagerDuty Events API v2 (`/v2/enqueue`): trigger, acknowledge and
//! resolve, tied together by `dedup_key`, so any tool that can page
//! PagerDuty can page signalbox.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Severity, Signal, SignalError};

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    routing_key: Option<String>,
    event_action: String,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    summary: String,
    source: String,
    severity: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    custom_details: Option<Value>,
}

/// A parsed event and the dedup key to answer with.
pub struct Enqueued {
    pub signal: Signal,
    pub dedup_key: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SignalError {
    SignalError::Invalid {
        field,
        reason: reason.into(),
    }
}

pub fn parse(body: &[u8], received: DateTime<Utc>) -> Result<Enqueued, SignalError> {
    let event: Event =
        serde_json::from_slice(body).map_err(|e| SignalError::from_decode(&e, "payload"))?;
    let (kind, action) = match event.event_action.as_str() {
        "trigger" => ("alert.firing", "trigger"),
        "acknowledge" => ("alert.acknowledged", "acknowledge"),
        "resolve" => ("alert.resolved", "resolve"),
        other => {
            return Err(invalid(
                "event_action",
                format!("expected trigger, acknowledge or resolve, found {other:?}"),
            ));
        }
    };
    let dedup_key = match (&event.dedup_key, action) {
        (Some(k), _) if !k.is_empty() => k.clone(),
        (_, "trigger") => {
            // PagerDuty makes one up for a trigger without a key.
            let p = event.payload.as_ref();
            let seed = format!(
                "{}|{}|{}",
                p.map(|p| p.summary.as_str()).unwrap_or_default(),
                p.map(|p| p.source.as_str()).unwrap_or_default(),
                received.timestamp_nanos_opt().unwrap_or_default()
            );
            format!("{:016x}", crate::decide::model::fnv_hash(&seed))
        }
        _ => {
            return Err(SignalError::Missing {
                field: "dedup_key",
                expected: "the key of the alert to acknowledge or resolve",
            });
        }
    };
    let mut data = Map::new();
    data.insert("fingerprint".into(), json!(dedup_key));
    data.insert("dedup_key".into(), json!(dedup_key));
    if let Some(r) = &event.routing_key {
        data.insert("routing_key".into(), json!(r));
    }
    let mut severity = None;
    let mut subject = format!("alert/{dedup_key}");
    let mut time = received;
    match (&event.payload, action) {
        (Some(p), _) => {
            if p.summary.trim().is_empty() {
                return Err(invalid("payload.summary", "must not be empty"));
            }
            severity = Some(Severity::parse(&p.severity).ok_or_else(|| {
                invalid(
                    "payload.severity",
                    format!(
                        "expected critical, error, warning or info, found {:?}",
                        p.severity
                    ),
                )
            })?);
            if let Some(ts) = &p.timestamp {
                time = DateTime::parse_from_rfc3339(ts)
                    .map_err(|e| invalid("payload.timestamp", format!("expected RFC 3339: {e}")))?
                    .with_timezone(&Utc);
            }
            let service = p.component.clone().unwrap_or_else(|| p.source.clone());
            subject = format!("service/{service}");
            data.insert("summary".into(), json!(p.summary));
            data.insert(
                "alertname".into(),
                json!(p.class.clone().unwrap_or_else(|| p.summary.clone())),
            );
            data.insert("service".into(), json!(service));
            data.insert("pd_source".into(), json!(p.source));
            if let Some(g) = &p.group {
                data.insert("group".into(), json!(g));
            }
            if let Some(d) = &p.custom_details {
                data.insert("custom_details".into(), d.clone());
            }
        }
        (None, "trigger") => {
            return Err(SignalError::Missing {
                field: "payload",
                expected: "summary, source and severity",
            });
        }
        (None, _) => {}
    }
    Ok(Enqueued {
        signal: Signal {
            // Repeated triggers of one key are one alert, as in PagerDuty.
            id: format!("pd:{dedup_key}:{action}"),
            source: "pagerduty".into(),
            kind: kind.into(),
            subject,
            time,
            severity,
            data,
        },
        dedup_key,
    })
}
