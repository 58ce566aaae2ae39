//! Signals: every input to signalbox, shaped as a CloudEvents 1.0 event.
//!
//! A `Signal` is the unit the journal stores and the engine decides on. Its
//! `id` is the idempotency key: a second signal with the same id is accepted
//! and ignored. Parsing never panics on outside input; every refusal names the
//! field that was wrong and what was expected.

pub mod alertmanager;
pub mod pagerduty;
pub mod wire;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// How loud a signal is. Absent for business events that carry no urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        match text.to_ascii_lowercase().as_str() {
            "info" | "informational" | "none" => Some(Severity::Info),
            "warning" | "warn" | "minor" => Some(Severity::Warning),
            "error" | "major" | "high" => Some(Severity::Error),
            "critical" | "crit" | "page" | "fatal" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// A signal as a structured-mode CloudEvent, borrowed from it. Fields in
/// the order of their names, as a `serde_json::Map` keeps them, so the text
/// is the same as the `to_cloudevent` value prints.
#[derive(Serialize)]
pub struct CloudEvent<'a> {
    data: &'a Map<String, Value>,
    datacontenttype: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'static str>,
    source: &'a str,
    specversion: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    subject: &'a str,
    time: String,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// One event in, as CloudEvents 1.0 names its attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub subject: String,
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub data: Map<String, Value>,
}

/// Why a piece of JSON is not a signal.
#[derive(Debug, Error, PartialEq, Clone)]
pub enum SignalError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("a signal must be a JSON object, found {found}")]
    NotAnObject { found: &'static str },
    #[error("missing field `{field}` (expected {expected})")]
    Missing {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}` has the wrong type: expected {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, SignalError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(SignalError::Missing {
            field,
            expected: "a non-empty string",
        }),
        Some(Value::String(s)) if s.trim().is_empty() => Err(SignalError::Invalid {
            field,
            reason: "must not be empty".into(),
        }),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(SignalError::WrongType {
            field,
            expected: "a string",
            found: json_kind(other),
        }),
    }
}

fn optional_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, SignalError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(SignalError::WrongType {
            field,
            expected: "a string",
            found: json_kind(other),
        }),
    }
}

impl SignalError {
    /// A serde_json error decoding a payload: bad JSON is `Malformed` (with
    /// its position); JSON of the wrong shape is `Invalid` at `field`.
    pub fn from_decode(e: &serde_json::Error, field: &'static str) -> SignalError {
        if e.is_data() {
            SignalError::Invalid {
                field,
                reason: e.to_string(),
            }
        } else {
            SignalError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
        }
    }

    /// The field at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            SignalError::Missing { field, .. }
            | SignalError::WrongType { field, .. }
            | SignalError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl Signal {
    /// Parses one signal from CloudEvents structured-mode JSON text.
    ///
    /// `received` stands in for `time` when the producer left it out, as
    /// CloudEvents allows.
    pub fn from_json(text: &str, received: DateTime<Utc>) -> Result<Signal, SignalError> {
        Signal::from_slice(text.as_bytes(), received)
    }

    /// `from_json` on bytes (which it checks are UTF-8 as it parses).
    pub fn from_slice(bytes: &[u8], received: DateTime<Utc>) -> Result<Signal, SignalError> {
        if let Some(signal) = Signal::well_formed(bytes, received) {
            return Ok(signal);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| SignalError::Malformed {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Signal::from_value(value, received)
    }

    /// The signal, when `bytes` are a well-formed one: decoded straight into
    /// its fields instead of through a JSON tree (which costs twice as
    /// much). Anything else (bad JSON, a field of the wrong type, a
    /// duplicate field, a value `from_value` refuses) gives `None`, and the
    /// caller takes the tree's way, which says what is wrong.
    pub(crate) fn well_formed(bytes: &[u8], received: DateTime<Utc>) -> Option<Signal> {
        use std::borrow::Cow;
        #[derive(Deserialize)]
        struct Fields<'a> {
            #[serde(borrow)]
            specversion: Cow<'a, str>,
            id: String,
            source: String,
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            subject: Option<String>,
            #[serde(borrow, default)]
            time: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            severity: Option<Cow<'a, str>>,
            #[serde(default)]
            data: Option<Map<String, Value>>,
        }
        // Serde would also take a struct from an array of its fields.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let f: Fields = serde_json::from_slice(bytes).ok()?;
        let filled = |s: &str| !s.trim().is_empty();
        if f.specversion != "1.0" || !filled(&f.id) || !filled(&f.source) || !filled(&f.kind) {
            return None;
        }
        let time = match f.time {
            None => received,
            Some(text) => DateTime::parse_from_rfc3339(&text)
                .ok()?
                .with_timezone(&Utc),
        };
        let severity = match f.severity {
            None => None,
            Some(text) => Some(Severity::parse(&text)?),
        };
        Some(Signal {
            id: f.id,
            source: f.source,
            kind: f.kind,
            subject: f.subject.unwrap_or_default(),
            time,
            severity,
            data: f.data.unwrap_or_default(),
        })
    }

    /// Parses one signal from an already-decoded JSON value.
    pub fn from_value(value: Value, received: DateTime<Utc>) -> Result<Signal, SignalError> {
        let Value::Object(mut object) = value else {
            return Err(SignalError::NotAnObject {
                found: json_kind(&value),
            });
        };
        let spec = required_str(&object, "specversion")?;
        if spec != "1.0" {
            return Err(SignalError::Invalid {
                field: "specversion",
                reason: format!("expected \"1.0\", found {spec:?}"),
            });
        }
        let id = required_str(&object, "id")?.to_string();
        let source = required_str(&object, "source")?.to_string();
        let kind = required_str(&object, "type")?.to_string();
        let subject = optional_str(&object, "subject")?.unwrap_or("").to_string();
        let time = match optional_str(&object, "time")? {
            None => received,
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map_err(|e| SignalError::Invalid {
                    field: "time",
                    reason: format!("expected an RFC 3339 timestamp, found {text:?} ({e})"),
                })?
                .with_timezone(&Utc),
        };
        let severity = match optional_str(&object, "severity")? {
            None => None,
            Some(text) => Some(Severity::parse(text).ok_or_else(|| SignalError::Invalid {
                field: "severity",
                reason: format!("expected info, warning, error or critical, found {text:?}"),
            })?),
        };
        let data = match object.remove("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(SignalError::WrongType {
                    field: "data",
                    expected: "an object",
                    found: json_kind(&other),
                });
            }
        };
        Ok(Signal {
            id,
            source,
            kind,
            subject,
            time,
            severity,
            data,
        })
    }

    /// The structured-mode CloudEvents JSON for this signal.
    pub fn to_cloudevent(&self) -> Value {
        serde_json::to_value(self.as_cloudevent()).unwrap_or(Value::Null)
    }

    /// The CloudEvent as JSON text, written straight from the signal
    /// (`to_cloudevent` copies its whole `data` into a tree first).
    pub fn to_cloudevent_json(&self) -> String {
        // Plain strings, a time and a map with string keys: nothing here
        // can fail to serialise.
        serde_json::to_string(&self.as_cloudevent()).unwrap_or_default()
    }

    /// The CloudEvent, borrowed from the signal, to serialise: the journal
    /// writes every signal so.
    pub fn as_cloudevent(&self) -> CloudEvent<'_> {
        CloudEvent {
            data: &self.data,
            datacontenttype: "application/json",
            id: &self.id,
            severity: self.severity.map(Severity::as_str),
            source: &self.source,
            specversion: "1.0",
            subject: &self.subject,
            time: self.time.to_rfc3339(),
            kind: &self.kind,
        }
    }

    /// A string field of `data`, if present.
    pub fn data_str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// A numeric field of `data`, if present.
    pub fn data_f64(&self, key: &str) -> Option<f64> {
        self.data.get(key).and_then(Value::as_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn parses_a_full_event() {
        let text = r#"{"specversion":"1.0","id":"s1","source":"erp","type":"order.placed",
            "subject":"order/1","time":"2026-11-23T09:00:00Z","severity":"warning","data":{"value":10}}"#;
        let signal = Signal::from_json(text, now()).unwrap();
        assert_eq!(signal.kind, "order.placed");
        assert_eq!(signal.severity, Some(Severity::Warning));
        assert_eq!(signal.data_f64("value"), Some(10.0));
        let back = Signal::from_value(signal.to_cloudevent(), now()).unwrap();
        assert_eq!(back, signal);
        // The journal's text is the value's text, key order included, and
        // reads back as the same signal; without subject or severity too.
        assert_eq!(
            signal.to_cloudevent_json(),
            signal.to_cloudevent().to_string()
        );
        assert_eq!(
            Signal::from_json(&signal.to_cloudevent_json(), now()).unwrap(),
            signal
        );
        let bare = Signal {
            subject: String::new(),
            severity: None,
            ..signal
        };
        let text = bare.to_cloudevent_json();
        assert!(!text.contains("subject") && !text.contains("severity"));
        assert_eq!(Signal::from_json(&text, now()).unwrap(), bare);
    }

    /// The tree's way, which `from_slice` takes only for what its direct
    /// decoding does not accept.
    fn through_a_tree(text: &str) -> Result<Signal, SignalError> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => Signal::from_value(value, now()),
            Err(e) => Err(SignalError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }),
        }
    }

    #[test]
    fn direct_decoding_agrees_with_the_tree() {
        let base = r#""specversion":"1.0","id":"a","source":"x","type":"t""#;
        let cases = [
            format!("{{{base}}}"),
            format!(
                r#" {{{base},"subject":"order/1","time":"2026-11-23T09:00:00+01:00","severity":"CRIT","data":{{"v":[1,2.5,null],"s":"\u00e9"}},"ext":{{"x":1}}}}"#
            ),
            // Escapes where the direct way borrows.
            format!(r#"{{{base},"time":"2026-11-23T09:00:00Z","severity":"warn"}}"#),
            format!(r#"{{{base},"subject":null,"time":null,"severity":null,"data":null}}"#),
            // A repeated field: the last one counts.
            format!(r#"{{{base},"id":"b"}}"#),
            // Refused, each for its own reason.
            r#"{"specversion":"1.1","id":"a","source":"x","type":"t"}"#.to_string(),
            r#"{"specversion":"1.0","id":"  ","source":"x","type":"t"}"#.to_string(),
            r#"{"specversion":"1.0","id":"a","source":"x"}"#.to_string(),
            format!(r#"{{{base},"subject":3}}"#),
            format!(r#"{{{base},"data":[1]}}"#),
            format!(r#"{{{base},"time":"soon"}}"#),
            format!(r#"{{{base},"severity":"loud"}}"#),
            format!(r#"{{{base}}} trailing"#),
            r#"["1.0","a","x","t"]"#.to_string(),
            "[]".to_string(),
            "\"text\"".to_string(),
        ];
        for text in &cases {
            assert_eq!(
                Signal::from_json(text, now()),
                through_a_tree(text),
                "{text}"
            );
        }
        // The first five are signals; the rest are refused.
        let parsed = cases.iter().map(|t| Signal::from_json(t, now()).is_ok());
        assert!(parsed.eq((0..cases.len()).map(|i| i < 5)));
    }

    #[test]
    fn names_the_missing_field() {
        let err = Signal::from_json(r#"{"specversion":"1.0","source":"x","type":"t"}"#, now())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing field `id` (expected a non-empty string)"
        );
    }

    #[test]
    fn names_the_wrong_type() {
        let err = Signal::from_json(
            r#"{"specversion":"1.0","id":7,"source":"x","type":"t"}"#,
            now(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`id`"), "{err}");
        assert!(err.to_string().contains("found a number"), "{err}");
    }

    #[test]
    fn reports_where_json_breaks() {
        let err = Signal::from_json("{\n \"id\": ", now()).unwrap_err();
        assert!(
            matches!(err, SignalError::Malformed { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn refuses_bad_time_and_severity() {
        let base = r#"{"specversion":"1.0","id":"a","source":"x","type":"t","#;
        let err = Signal::from_json(&format!("{base}\"time\":\"yesterday\"}}"), now()).unwrap_err();
        assert!(matches!(err, SignalError::Invalid { field: "time", .. }));
        let err = Signal::from_json(&format!("{base}\"severity\":\"loud\"}}"), now()).unwrap_err();
        assert!(matches!(
            err,
            SignalError::Invalid {
                field: "severity",
                ..
            }
        ));
    }
}
