//! The Prometheus Alertmanager webhook payload (version 4): each alert
//! becomes an `alert.firing` or `alert.resolved` signal. The fingerprint
//! ties a resolution to what the firing alert opened.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Severity, Signal, SignalError};

#[derive(Debug, Deserialize)]
struct Payload {
    version: String,
    #[serde(default)]
    receiver: String,
    alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: String,
    #[serde(default)]
    labels: Map<String, Value>,
    #[serde(default)]
    annotations: Map<String, Value>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    generator_url: Option<String>,
}

fn label<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The signals of one webhook call.
pub fn parse(body: &[u8], received: DateTime<Utc>) -> Result<Vec<Signal>, SignalError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| SignalError::from_decode(&e, "alerts"))?;
    if payload.version != "4" {
        return Err(SignalError::Invalid {
            field: "version",
            reason: format!("expected \"4\", found {:?}", payload.version),
        });
    }
    let mut out = Vec::with_capacity(payload.alerts.len());
    for alert in payload.alerts {
        let firing = match alert.status.as_str() {
            "firing" => true,
            "resolved" => false,
            other => {
                return Err(SignalError::Invalid {
                    field: "status",
                    reason: format!("expected firing or resolved, found {other:?}"),
                });
            }
        };
        let alertname = label(&alert.labels, "alertname")
            .unwrap_or("unnamed")
            .to_string();
        let fingerprint = alert.fingerprint.clone().unwrap_or_else(|| {
            // Alertmanager always sends one; derive a stable one if not.
            let mut labels: Vec<String> = alert
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            format!("{:016x}", crate::decide::model::fnv_hash(&labels.join(",")))
        });
        let service = label(&alert.labels, "service")
            .or_else(|| label(&alert.labels, "job"))
            .or_else(|| label(&alert.labels, "instance"))
            .map(String::from);
        let subject = match &service {
            Some(s) => format!("service/{s}"),
            None => format!("alert/{alertname}"),
        };
        let starts = alert.starts_at.clone().unwrap_or_default();
        let time = if firing {
            alert.starts_at.as_deref()
        } else {
            alert.ends_at.as_deref()
        }
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0)
        .unwrap_or(received);
        let severity = label(&alert.labels, "severity").and_then(Severity::parse);
        let mut data = json!({
            "alertname": alertname,
            "fingerprint": fingerprint,
            "labels": alert.labels,
            "receiver": payload.receiver,
        });
        if let Some(s) = &service {
            data["service"] = json!(s);
        }
        if let Some(summary) = label(&alert.annotations, "summary")
            .or_else(|| label(&alert.annotations, "description"))
        {
            data["summary"] = json!(summary);
        }
        if let Some(url) = &alert.generator_url {
            data["generator_url"] = json!(url);
        }
        let Value::Object(data) = data else { continue };
        out.push(Signal {
            // One firing episode (fingerprint + start) fires once and
            // resolves once; Alertmanager's repeats are duplicates.
            id: format!("am:{fingerprint}:{starts}:{}", alert.status),
            source: "alertmanager".into(),
            kind: if firing {
                "alert.firing"
            } else {
                "alert.resolved"
            }
            .into(),
            subject,
            time,
            severity,
            data,
        });
    }
    Ok(out)
}
