//! The Prometheus Alertmanager webhook payload (version 4): each alert
//! becomes an `alert.firing` or `alert.resolved` signal. The fingerprint
//! ties a resolution to what the firing alert opened.
//!
//! Every field is kept under the name Alertmanager documents: the alert's
//! own (`status`, `labels`, `annotations`, `startsAt`, `endsAt`,
//! `generatorURL`, `fingerprint`) at the top of `data`, and the group's
//! (`receiver`, `groupKey`, `truncatedAlerts`, `groupLabels`,
//! `commonLabels`, `commonAnnotations`, `externalURL`, and whatever later
//! versions add) under `data.group`. Beside them, `alertname`, `service`
//! and `summary` are read out for policies and the console. A refusal
//! names the field, down to the alert (`alerts[3].startsAt`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Severity, Signal, SignalError, json_kind};

/// The source of every Alertmanager signal: the CloudEvents intake
/// refuses sources of this scheme (`super::RESERVED_SCHEME`). One for all
/// Alertmanagers, so the members of a high-availability pair, which send
/// the same alerts, deduplicate each other.
pub const SOURCE: &str = "signalbox:alertmanager";

fn label<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// An object of strings (labels, annotations), or an error naming `field`.
fn string_map<'a>(
    value: Option<&'a Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, SignalError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            for (key, v) in map {
                if !v.is_string() {
                    return Err(SignalError::wrong_type(
                        format!("{field}.{key}"),
                        "a string",
                        v,
                    ));
                }
            }
            Ok(Some(map))
        }
        Some(other) => Err(SignalError::wrong_type(
            field.to_string(),
            "an object of strings",
            other,
        )),
    }
}

fn optional_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    field: impl Fn() -> String,
) -> Result<Option<&'a str>, SignalError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(SignalError::wrong_type(field(), "a string", other)),
    }
}

/// Alertmanager's own fingerprint of a label set (FNV-1a over the sorted
/// names and values, each followed by 0xff), for an alert sent without one.
fn fingerprint_of(labels: &Map<String, Value>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let mut names: Vec<&String> = labels.keys().collect();
    names.sort();
    for name in names {
        feed(name.as_bytes());
        feed(&[0xff]);
        feed(labels[name].as_str().unwrap_or_default().as_bytes());
        feed(&[0xff]);
    }
    format!("{hash:016x}")
}

/// An RFC 3339 time of an alert, or an error naming it.
fn time(
    alert: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<DateTime<Utc>>, SignalError> {
    let field = || format!("{at}.{key}");
    match optional_str(alert, key, field)? {
        None => Ok(None),
        Some(text) => {
            let t = DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    SignalError::invalid(
                        field(),
                        format!("expected an RFC 3339 time, found {text:?} ({e})"),
                    )
                })?;
            // Times before 1970 (the zero time of a firing alert's
            // `endsAt`) stand for none; later ones must be keepable.
            if t >= super::limits::earliest() {
                super::limits::check_time(field(), t)?;
            }
            Ok(Some(t))
        }
    }
}

/// The signals of one webhook call.
// Over 80 lines: Alertmanager's documented fields in its order, each refusal beside the field it names.
pub fn parse(body: &[u8], received: DateTime<Utc>) -> Result<Vec<Signal>, SignalError> {
    let (group, alerts) = group_of(body)?;
    let mut out = Vec::with_capacity(alerts.len());
    for (i, alert) in alerts.into_iter().enumerate() {
        let at = format!("alerts[{i}]");
        let Value::Object(alert) = alert else {
            return Err(SignalError::wrong_type(at, "an alert object", &alert));
        };
        out.push(alert_signal(alert, &group, &at, received)?);
    }
    Ok(out)
}

/// The webhook's group (version 4, its fields checked) and its alerts.
fn group_of(body: &[u8]) -> Result<(Value, Vec<Value>), SignalError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| SignalError::Malformed {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Value::Object(mut group) = value else {
        return Err(SignalError::NotAnObject {
            found: json_kind(&value),
        });
    };
    match group.get("version") {
        Some(Value::String(v)) if v == "4" => {}
        Some(Value::String(v)) => {
            return Err(SignalError::invalid(
                "version",
                format!("expected \"4\", found {v:?}"),
            ));
        }
        None | Some(Value::Null) => return Err(SignalError::missing("version", "\"4\"")),
        Some(other) => return Err(SignalError::wrong_type("version", "a string", other)),
    }
    let alerts = match group.remove("alerts") {
        Some(Value::Array(alerts)) => alerts,
        None | Some(Value::Null) => {
            return Err(SignalError::missing("alerts", "an array of alerts"));
        }
        Some(other) => return Err(SignalError::wrong_type("alerts", "an array", &other)),
    };
    for key in ["receiver", "status", "groupKey", "externalURL"] {
        optional_str(&group, key, || key.to_string())?;
    }
    for key in ["groupLabels", "commonLabels", "commonAnnotations"] {
        string_map(group.get(key), key)?;
    }
    if let Some(n) = group.get("truncatedAlerts")
        && !(n.is_u64() || n.is_null())
    {
        return Err(SignalError::wrong_type(
            "truncatedAlerts",
            "a whole number",
            n,
        ));
    }
    Ok((Value::Object(group), alerts))
}

/// One alert of the group (at `at`, for refusals) as a signal.
fn alert_signal(
    alert: Map<String, Value>,
    group: &Value,
    at: &str,
    received: DateTime<Utc>,
) -> Result<Signal, SignalError> {
    let firing = match optional_str(&alert, "status", || format!("{at}.status"))? {
        Some("firing") => true,
        Some("resolved") => false,
        Some(other) => {
            return Err(SignalError::invalid(
                format!("{at}.status"),
                format!("expected firing or resolved, found {other:?}"),
            ));
        }
        None => {
            return Err(SignalError::missing(
                format!("{at}.status"),
                "firing or resolved",
            ));
        }
    };
    let empty = Map::new();
    let labels = string_map(alert.get("labels"), &format!("{at}.labels"))?.unwrap_or(&empty);
    let annotations =
        string_map(alert.get("annotations"), &format!("{at}.annotations"))?.unwrap_or(&empty);
    let starts = time(&alert, "startsAt", at)?;
    let ends = time(&alert, "endsAt", at)?;
    optional_str(&alert, "generatorURL", || format!("{at}.generatorURL"))?;
    let fingerprint = match optional_str(&alert, "fingerprint", || format!("{at}.fingerprint"))? {
        Some(f) if !f.is_empty() => f.to_string(),
        // Alertmanager always sends one; the same, made from the labels.
        _ => fingerprint_of(labels),
    };
    let alertname = label(labels, "alertname").unwrap_or("unnamed").to_string();
    let service = label(labels, "service")
        .or_else(|| label(labels, "job"))
        .or_else(|| label(labels, "instance"))
        .map(String::from);
    let subject = match &service {
        Some(s) => format!("service/{s}"),
        None => format!("alert/{alertname}"),
    };
    // A firing alert starts at `startsAt`; a resolved one ends at
    // `endsAt` (a firing alert's is the zero time, year 1).
    let time = if firing { starts } else { ends }
        .filter(|t| t.timestamp() > 0)
        .unwrap_or(received);
    let severity = label(labels, "severity").and_then(Severity::parse);
    let summary = label(annotations, "summary")
        .or_else(|| label(annotations, "description"))
        .map(String::from);
    let starts_text = alert
        .get("startsAt")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut data = alert;
    data.insert("fingerprint".into(), json!(fingerprint));
    data.insert("alertname".into(), json!(alertname));
    if let Some(s) = &service {
        data.insert("service".into(), json!(s));
    }
    if let Some(s) = summary {
        data.insert("summary".into(), json!(s));
    }
    data.insert("group".into(), group.clone());
    let status = if firing { "firing" } else { "resolved" };
    let signal = Signal {
        // One firing episode (fingerprint + start) fires once and
        // resolves once; Alertmanager's repeats are duplicates.
        id: format!("am:{fingerprint}:{starts_text}:{status}"),
        source: SOURCE.into(),
        kind: if firing {
            "alert.firing"
        } else {
            "alert.resolved"
        }
        .into(),
        subject,
        time,
        severity,
        data: Value::Object(data),
        ..Signal::default()
    };
    // The limits every signal keeps, named by the alert's fields they
    // come from.
    signal.check().map_err(|e| match e.field() {
        Some("id") => SignalError::invalid(format!("{at}.fingerprint"), e.to_string()),
        Some("subject") => SignalError::invalid(format!("{at}.labels"), e.to_string()),
        _ => e,
    })?;
    Ok(signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::received as now;

    /// The payload as Alertmanager v0.34 writes it, fields it added since
    /// the documentation's example included.
    fn payload() -> Value {
        json!({
            "receiver": "team\\.a",
            "status": "firing",
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "service": "payments", "severity": "critical"},
                "annotations": {"summary": "5xx above 5%"},
                "startsAt": "2026-11-23T07:59:01.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
                "fingerprint": "7d535aa93f0b9f74"
            }, {
                "status": "resolved",
                "labels": {"alertname": "DiskFull", "instance": "db-1"},
                "annotations": {},
                "startsAt": "2026-11-23T07:00:00Z",
                "endsAt": "2026-11-23T07:30:00+02:00",
                "generatorURL": "",
                "fingerprint": "0123456789abcdef"
            }],
            "notification_reason": "new alerts added",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {},
            "commonAnnotations": {},
            "routeLabels": {"team": "a"},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": "{}:{alertname=\"HighErrorRate\"}",
            "truncatedAlerts": 2
        })
    }

    #[test]
    fn every_documented_field_is_kept_under_its_name() {
        let signals = parse(payload().to_string().as_bytes(), now()).unwrap();
        assert_eq!(signals.len(), 2);
        let s = &signals[0];
        assert_eq!(
            (s.kind.as_str(), s.source.as_str()),
            ("alert.firing", SOURCE)
        );
        assert_eq!(s.subject, "service/payments");
        assert_eq!(s.severity, Some(Severity::Critical));
        assert_eq!(
            s.data["generatorURL"],
            "http://prometheus:9090/graph?g0.expr=up"
        );
        assert_eq!(s.data["startsAt"], "2026-11-23T07:59:01.123456789Z");
        assert_eq!(s.data["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(s.data["labels"]["alertname"], "HighErrorRate");
        assert_eq!(s.data["annotations"]["summary"], "5xx above 5%");
        assert_eq!(s.data["summary"], "5xx above 5%");
        let g = &s.data["group"];
        assert_eq!(g["groupKey"], "{}:{alertname=\"HighErrorRate\"}");
        assert_eq!(g["truncatedAlerts"], 2);
        assert_eq!(g["externalURL"], "http://alertmanager:9093");
        assert_eq!(g["receiver"], "team\\.a");
        assert_eq!(g["routeLabels"]["team"], "a");
        assert_eq!(g["notification_reason"], "new alerts added");
        assert!(g.get("alerts").is_none());
        let r = &signals[1];
        assert_eq!(r.kind, "alert.resolved");
        assert_eq!(r.subject, "service/db-1");
        assert_eq!(r.time.to_rfc3339(), "2026-11-23T05:30:00+00:00");
    }

    #[test]
    fn refusals_name_the_field_down_to_the_alert() {
        let with = |path: &[&str], value: Value| {
            let mut p = payload();
            let mut at = &mut p;
            for key in &path[..path.len() - 1] {
                at = match key.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*key],
                };
            }
            at[path[path.len() - 1]] = value;
            p
        };
        let cases = [
            (with(&["version"], json!("3")), "version"),
            (with(&["alerts"], json!({})), "alerts"),
            (
                with(&["alerts", "1", "startsAt"], json!("yesterday")),
                "alerts[1].startsAt",
            ),
            (
                with(&["alerts", "0", "endsAt"], json!(17)),
                "alerts[0].endsAt",
            ),
            (
                with(&["alerts", "0", "status"], json!("pending")),
                "alerts[0].status",
            ),
            (
                with(&["alerts", "1", "labels"], json!(["a"])),
                "alerts[1].labels",
            ),
            (
                with(&["alerts", "0", "labels", "severity"], json!(3)),
                "alerts[0].labels.severity",
            ),
            (
                with(&["alerts", "0", "fingerprint"], json!(true)),
                "alerts[0].fingerprint",
            ),
            (with(&["truncatedAlerts"], json!(-1)), "truncatedAlerts"),
            (with(&["commonLabels"], json!("x")), "commonLabels"),
            (with(&["receiver"], json!(1)), "receiver"),
        ];
        for (body, field) in cases {
            let e = parse(body.to_string().as_bytes(), now()).unwrap_err();
            assert_eq!(e.field(), Some(field), "{e}");
        }
    }

    #[test]
    fn a_missing_fingerprint_is_alertmanagers_own() {
        // prometheus/common's own case for labelSetToFingerprint.
        let labels = json!({"name": "garland, briggs", "fear": "love is not enough"});
        let Value::Object(labels) = labels else {
            unreachable!("an object literal")
        };
        assert_eq!(
            fingerprint_of(&labels),
            format!("{:016x}", 5799056148416392346u64)
        );
        assert_eq!(fingerprint_of(&Map::new()), "cbf29ce484222325");
    }
}
