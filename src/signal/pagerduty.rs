//! The PagerDuty Events API v2, as PagerDuty documents it: alert events at
//! `/v2/enqueue` (trigger, acknowledge and resolve, tied together by
//! `dedup_key`) and change events at `/v2/change/enqueue`, so any tool
//! that can page PagerDuty can page signalbox.
//!
//! The `routing_key` authenticates the sender; it may be an ingest token,
//! so it is never kept: a signal carries only `integration`, a short
//! fingerprint of it keyed by a secret of the data directory (HMAC, so
//! that a viewer who sees it cannot test guesses of the key offline),
//! which also scopes `dedup_key` as PagerDuty scopes it per integration
//! (the signal's source is `signalbox:pagerduty/<integration>`).
//! Refusals name the field, in PagerDuty's words (`'payload.summary' is
//! missing or blank`).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Severity, Signal, SignalError, json_kind};
use crate::hash;

/// Where the source of every PagerDuty signal begins; the CloudEvents
/// intake refuses sources of this scheme (`super::RESERVED_SCHEME`).
pub const SOURCE: &str = "signalbox:pagerduty/";

/// Longest `dedup_key`, and `payload.summary`, PagerDuty accepts.
pub const MAX_DEDUP_KEY: usize = 255;
pub const MAX_SUMMARY: usize = 1024;

/// A parsed alert event and the dedup key to answer with.
#[derive(Debug)]
pub struct Enqueued {
    pub signal: Signal,
    pub dedup_key: String,
}

/// The refusal as PagerDuty words it in `errors`.
pub fn error_text(e: &SignalError) -> String {
    match e {
        SignalError::Missing { field, .. } => format!("'{field}' is missing or blank"),
        SignalError::WrongType {
            field, expected, ..
        } => format!("'{field}' must be {expected}"),
        SignalError::Invalid { field, reason } => format!("'{field}' is invalid: {reason}"),
        SignalError::NotAnObject { .. } | SignalError::Malformed { .. } => e.to_string(),
    }
}

fn object(body: &[u8]) -> Result<Map<String, Value>, SignalError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| SignalError::Malformed {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(SignalError::NotAnObject {
            found: json_kind(&other),
        }),
    }
}

/// A string field under `prefix` (for the error's name): `Ok(None)` when
/// absent, null or blank.
fn text<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    field: &'static str,
    max: Option<usize>,
) -> Result<Option<&'a str>, SignalError> {
    let name = || -> super::Field {
        if prefix.is_empty() {
            field.into()
        } else {
            format!("{prefix}.{field}").into()
        }
    };
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match max {
            Some(max) if s.chars().count() > max => Err(SignalError::invalid(
                name(),
                format!("longer than {max} characters"),
            )),
            _ => Ok(Some(s)),
        },
        Some(other) => Err(SignalError::wrong_type(name(), "a string", other)),
    }
}

fn required<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    field: &'static str,
    max: Option<usize>,
) -> Result<&'a str, SignalError> {
    text(map, prefix, field, max)?.ok_or_else(|| {
        let name: super::Field = if prefix.is_empty() {
            field.into()
        } else {
            format!("{prefix}.{field}").into()
        };
        SignalError::missing(name, "a non-blank string")
    })
}

/// A timestamp in any ISO 8601 form PagerDuty's documentation shows:
/// RFC 3339 (`2015-07-17T08:42:58.315Z`, `…+00:00`), an offset without a
/// colon (`2015-07-17T08:42:58.315+0000`), or no offset at all (UTC).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// The payload's optional timestamp.
fn timestamp(payload: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, SignalError> {
    match text(payload, "payload", "timestamp", None)? {
        None => Ok(None),
        Some(t) => {
            let time = parse_timestamp(t).ok_or_else(|| {
                SignalError::invalid(
                    "payload.timestamp",
                    format!("{t:?} is not an ISO 8601 timestamp like 2015-07-17T08:42:58.315+0000"),
                )
            })?;
            super::limits::check_time("payload.timestamp", time)?;
            Ok(Some(time))
        }
    }
}

/// The integration a routing key stands for, and the source it gives.
fn integration(map: &Map<String, Value>, key: &[u8]) -> Result<(String, String), SignalError> {
    let routing_key = required(map, "", "routing_key", None)?;
    let integration = hash::keyed_fingerprint(key, routing_key);
    let source = format!("{SOURCE}{integration}");
    Ok((integration, source))
}

/// Copies the optional fields PagerDuty documents beside the payload.
fn extras(map: &Map<String, Value>, data: &mut Map<String, Value>) -> Result<(), SignalError> {
    for field in ["images", "links"] {
        match map.get(field) {
            None | Some(Value::Null) => {}
            Some(list @ Value::Array(_)) => {
                data.insert(field.into(), list.clone());
            }
            Some(other) => return Err(SignalError::wrong_type(field, "an array", other)),
        }
    }
    for field in ["client", "client_url"] {
        if let Some(v) = text(map, "", field, None)? {
            data.insert(field.into(), json!(v));
        }
    }
    Ok(())
}

/// An alert event (`/v2/enqueue`).
// Over 80 lines: PagerDuty's documented fields in its order, each refusal beside the field it names.
pub fn parse(body: &[u8], received: DateTime<Utc>, key: &[u8]) -> Result<Enqueued, SignalError> {
    let map = object(body)?;
    let (integration, source) = integration(&map, key)?;
    let action = required(&map, "", "event_action", None)?;
    let kind = match action {
        "trigger" => "alert.firing",
        "acknowledge" => "alert.acknowledged",
        "resolve" => "alert.resolved",
        other => {
            return Err(SignalError::invalid(
                "event_action",
                format!("expected trigger, acknowledge or resolve, found {other:?}"),
            ));
        }
    };
    let given_key = text(&map, "", "dedup_key", Some(MAX_DEDUP_KEY))?;
    let payload = match map.get("payload") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(other) => return Err(SignalError::wrong_type("payload", "an object", other)),
    };
    if action == "trigger" && payload.is_none() {
        return Err(SignalError::missing(
            "payload",
            "summary, source and severity",
        ));
    }
    let mut data = Map::new();
    let Read {
        severity,
        time,
        subject,
    } = match payload {
        Some(p) => read_payload(p, action == "trigger", &mut data)?,
        None => Read::default(),
    };
    let time = time.unwrap_or(received);
    let dedup_key = match (given_key, action) {
        (Some(key), _) => key.to_string(),
        // PagerDuty makes one up for a trigger without a key: this trigger
        // opens an alert of its own.
        (None, "trigger") => hash::hex_digest(
            &[
                integration.as_bytes(),
                body,
                &received
                    .timestamp_nanos_opt()
                    .unwrap_or_default()
                    .to_be_bytes(),
            ],
            16,
        ),
        (None, _) => {
            return Err(SignalError::missing(
                "dedup_key",
                "the key of the alert to acknowledge or resolve",
            ));
        }
    };
    extras(&map, &mut data)?;
    data.insert("event_action".into(), json!(action));
    data.insert("dedup_key".into(), json!(dedup_key));
    data.insert("fingerprint".into(), json!(dedup_key));
    data.insert("integration".into(), json!(integration));
    let signal = Signal {
        // Each event is its own signal, as it is in PagerDuty's log (a
        // trigger repeated while its alert is open is recorded as a
        // repeat by the engine; one after a resolve opens it again).
        id: format!(
            "pd:{dedup_key}:{action}:{}",
            hash::hex_digest(
                &[
                    body,
                    &received
                        .timestamp_nanos_opt()
                        .unwrap_or_default()
                        .to_be_bytes()
                ],
                8
            )
        ),
        source,
        kind: kind.into(),
        subject: subject.unwrap_or_else(|| format!("alert/{dedup_key}")),
        time,
        severity,
        data: Value::Object(data),
        ..Signal::default()
    };
    signal.check().map_err(subject_error)?;
    Ok(Enqueued { signal, dedup_key })
}

/// What a payload says of its event.
#[derive(Default)]
struct Read {
    severity: Option<Severity>,
    time: Option<DateTime<Utc>>,
    /// `service/…`, from `custom_details.service`, the component or the
    /// source.
    subject: Option<String>,
}

/// What a payload says (its severity, time and service, as subject), kept
/// in `data` with the payload itself. A trigger (`need`) must say what,
/// where and how bad.
fn read_payload(
    p: &Map<String, Value>,
    need: bool,
    data: &mut Map<String, Value>,
) -> Result<Read, SignalError> {
    // A trigger must say what, where and how bad; acknowledge and
    // resolve may carry a payload too (Alertmanager's sender does), and
    // what it holds is checked, not required.
    let summary = text(p, "payload", "summary", Some(MAX_SUMMARY))?;
    let origin = text(p, "payload", "source", None)?;
    let level = text(p, "payload", "severity", None)?;
    if need {
        required(p, "payload", "summary", Some(MAX_SUMMARY))?;
        required(p, "payload", "source", None)?;
        required(p, "payload", "severity", None)?;
    }
    let severity = match level {
        None => None,
        Some(level) => Some(match level {
            "critical" => Severity::Critical,
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            other => {
                return Err(SignalError::invalid(
                    "payload.severity",
                    format!("expected critical, error, warning or info, found {other:?}"),
                ));
            }
        }),
    };
    let time = timestamp(p)?;
    let mut subject = None;
    let component = text(p, "payload", "component", None)?;
    let class = text(p, "payload", "class", None)?;
    // Kept with the payload; checked for its type like the rest.
    text(p, "payload", "group", None)?;
    // A service named in the details is the service (PagerDuty's own
    // integrations put it there), before the component and the source.
    let named = p
        .get("custom_details")
        .and_then(|d| d.get("service"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(service) = named.or(component).or(origin) {
        subject = Some(format!("service/{service}"));
        data.insert("service".into(), json!(service));
    }
    if let Some(summary) = summary {
        data.insert("summary".into(), json!(summary));
        data.insert("alertname".into(), json!(class.unwrap_or(summary)));
    }
    data.insert("payload".into(), Value::Object(p.clone()));
    Ok(Read {
        severity,
        time,
        subject,
    })
}

/// A signal's limit broken by what the payload names it after.
fn subject_error(e: SignalError) -> SignalError {
    match e.field() {
        Some("subject") => SignalError::invalid("payload.source", e.to_string()),
        _ => e,
    }
}

/// A change event (`/v2/change/enqueue`): something changed (a deploy, a
/// configuration push) that may explain the alerts around it. It becomes a
/// `change.recorded` signal.
pub fn parse_change(
    body: &[u8],
    received: DateTime<Utc>,
    key: &[u8],
) -> Result<Signal, SignalError> {
    let map = object(body)?;
    let (integration, source) = integration(&map, key)?;
    let payload = match map.get("payload") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => {
            return Err(SignalError::missing(
                "payload",
                "summary (and source, timestamp)",
            ));
        }
        Some(other) => return Err(SignalError::wrong_type("payload", "an object", other)),
    };
    let summary = required(payload, "payload", "summary", Some(MAX_SUMMARY))?;
    let origin = text(payload, "payload", "source", None)?;
    let time = timestamp(payload)?.unwrap_or(received);
    if let Some(details) = payload.get("custom_details")
        && !(details.is_object() || details.is_null())
    {
        return Err(SignalError::wrong_type(
            "payload.custom_details",
            "an object",
            details,
        ));
    }
    let mut data = Map::new();
    data.insert("summary".into(), json!(summary));
    if let Some(origin) = origin {
        data.insert("service".into(), json!(origin));
    }
    data.insert("payload".into(), Value::Object(payload.clone()));
    extras(&map, &mut data)?;
    data.insert("integration".into(), json!(integration));
    let stamp = received
        .timestamp_nanos_opt()
        .unwrap_or_default()
        .to_be_bytes();
    let signal = Signal {
        // Change events carry no key: each is its own.
        id: format!("pdchange:{}", hash::hex_digest(&[body, &stamp], 12)),
        source,
        kind: "change.recorded".into(),
        subject: match origin {
            Some(s) => format!("service/{s}"),
            None => format!("change/{integration}"),
        },
        time,
        data: Value::Object(data),
        ..Signal::default()
    };
    signal.check().map_err(subject_error)?;
    Ok(signal)
}

#[cfg(test)]
mod tests {
    /// The data directory's secret, as the tests have it.
    const KEY_OF_TESTS: &[u8] = b"a secret of the tests";
    use super::*;

    use crate::testkit::received as now;

    const KEY: &str = "R0UT1NGK3Y0000000000000000000000";

    #[test]
    fn every_documented_timestamp_form_parses() {
        let want = DateTime::parse_from_rfc3339("2015-07-17T08:42:58.315Z")
            .unwrap()
            .with_timezone(&Utc);
        for form in [
            "2015-07-17T08:42:58.315+0000",
            "2015-07-17T08:42:58.315+00:00",
            "2015-07-17T08:42:58.315Z",
            "2015-07-17T10:42:58.315+0200",
            "2015-07-17T08:42:58.315",
            "2015-07-17 08:42:58.315+00:00",
        ] {
            assert_eq!(parse_timestamp(form), Some(want), "{form}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn the_documented_trigger_keeps_everything_but_the_key() {
        let body = json!({
            "payload": {
                "summary": "Example alert on host1.example.com",
                "timestamp": "2015-07-17T08:42:58.315+0000",
                "source": "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003",
                "severity": "info",
                "component": "postgres",
                "group": "prod-datapipe",
                "class": "deploy",
                "custom_details": {"ping time": "1500ms", "load avg": 0.75}
            },
            "routing_key": KEY,
            "dedup_key": "samplekeyhere",
            "images": [{"src": "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png", "href": "https://example.com/", "alt": "Example text"}],
            "links": [{"href": "https://example.com/", "text": "Link text"}],
            "event_action": "trigger",
            "client": "Sample Monitoring Service",
            "client_url": "https://monitoring.example.com"
        });
        let e = parse(body.to_string().as_bytes(), now(), KEY_OF_TESTS).unwrap();
        assert_eq!(e.dedup_key, "samplekeyhere");
        let s = e.signal;
        assert_eq!(s.kind, "alert.firing");
        assert_eq!(s.subject, "service/postgres");
        assert_eq!(s.severity, Some(Severity::Info));
        assert_eq!(s.time.to_rfc3339(), "2015-07-17T08:42:58.315+00:00");
        assert_eq!(
            s.source,
            format!("{SOURCE}{}", hash::keyed_fingerprint(KEY_OF_TESTS, KEY))
        );
        assert_eq!(s.data["payload"]["custom_details"]["load avg"], 0.75);
        assert_eq!(s.data["links"][0]["text"], "Link text");
        assert_eq!(s.data["client"], "Sample Monitoring Service");
        let text = s.to_cloudevent_json();
        assert!(!text.contains(KEY), "the routing key is kept: {text}");
        assert!(!serde_json::to_string(&s).unwrap().contains(KEY));
    }

    #[test]
    fn refusals_name_the_field_in_pagerdutys_words() {
        let cases = [
            (
                json!({"event_action": "trigger"}),
                "routing_key",
                "'routing_key' is missing or blank",
            ),
            (
                json!({"routing_key": KEY}),
                "event_action",
                "'event_action' is missing or blank",
            ),
            (
                json!({"routing_key": KEY, "event_action": "poke"}),
                "event_action",
                "'event_action' is invalid",
            ),
            (
                json!({"routing_key": KEY, "event_action": "trigger"}),
                "payload",
                "'payload' is missing",
            ),
            (
                json!({"routing_key": KEY, "event_action": "trigger", "payload": {"source": "a", "severity": "info"}}),
                "payload.summary",
                "'payload.summary' is missing or blank",
            ),
            (
                json!({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "s", "severity": "info"}}),
                "payload.source",
                "'payload.source' is missing or blank",
            ),
            (
                json!({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "a"}}),
                "payload.severity",
                "'payload.severity' is missing or blank",
            ),
            (
                json!({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "a", "severity": "loud"}}),
                "payload.severity",
                "'payload.severity' is invalid",
            ),
            (
                json!({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "a", "severity": "info", "timestamp": "soon"}}),
                "payload.timestamp",
                "'payload.timestamp' is invalid",
            ),
            (
                json!({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "x".repeat(1025), "source": "a", "severity": "info"}}),
                "payload.summary",
                "'payload.summary' is invalid",
            ),
            (
                json!({"routing_key": KEY, "event_action": "resolve"}),
                "dedup_key",
                "'dedup_key' is missing or blank",
            ),
            (
                json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "k".repeat(256)}),
                "dedup_key",
                "'dedup_key' is invalid",
            ),
            (
                json!({"routing_key": 7, "event_action": "resolve"}),
                "routing_key",
                "'routing_key' must be a string",
            ),
        ];
        for (body, field, text) in cases {
            let e = parse(body.to_string().as_bytes(), now(), KEY_OF_TESTS).unwrap_err();
            assert_eq!(e.field(), Some(field), "{body}");
            assert!(
                error_text(&e).starts_with(text),
                "{body}: {}",
                error_text(&e)
            );
        }
    }

    #[test]
    fn a_change_event_is_a_signal_of_its_own() {
        let body = json!({
            "routing_key": KEY,
            "payload": {
                "summary": "Build Success: Increase snapshot create timeout to 30 seconds",
                "timestamp": "2020-07-17T08:42:58.315+0000",
                "source": "acme-build-pipeline-tool-default-i-9999",
                "custom_details": {"build_state": "passed", "build_number": "2"}
            },
            "links": [{"href": "https://acme.pagerduty.dev/build/2", "text": "View more details in Acme!"}]
        });
        let a = parse_change(body.to_string().as_bytes(), now(), KEY_OF_TESTS).unwrap();
        assert_eq!(a.kind, "change.recorded");
        assert_eq!(a.subject, "service/acme-build-pipeline-tool-default-i-9999");
        assert_eq!(a.data["payload"]["custom_details"]["build_state"], "passed");
        let later = now() + chrono::Duration::seconds(1);
        let b = parse_change(body.to_string().as_bytes(), later, KEY_OF_TESTS).unwrap();
        assert_ne!(a.id, b.id, "two change events are two signals");
        let e = parse_change(
            json!({"routing_key": KEY, "payload": {}})
                .to_string()
                .as_bytes(),
            now(),
            KEY_OF_TESTS,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("payload.summary"));
    }
}
