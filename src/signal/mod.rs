//! Signals: every input to signalbox, shaped as a CloudEvents 1.0 event.
//!
//! A `Signal` is the unit the journal stores and the engine decides on. Its
//! `source` and `id` together identify it, as CloudEvents says: a second
//! signal with the same pair is accepted and ignored, while two producers
//! that happen to use the same id are two signals. Parsing never panics on
//! outside input; every refusal names the attribute that was wrong and what
//! was expected.
//!
//! Everything an event carries is kept as sent: `data` of any JSON type (or
//! text, for a non-JSON `datacontenttype`), `data_base64`, the content type
//! and schema, and every extension attribute (`extensions`), which policies
//! read as `signal.extensions`.

pub mod alertmanager;
mod error;
pub mod fields;
pub mod labels;
pub mod limits;
pub mod pagerduty;
pub mod wire;

pub(crate) use error::json_kind;
pub use error::{Field, SignalError};
pub use limits::{MAX_EXTENSIONS, MAX_ID, MAX_SOURCE, MAX_SUBJECT, MAX_TYPE};

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// The attributes CloudEvents 1.0 defines (and `severity`, an extension
/// signalbox reads for itself); every other attribute is an extension.
const CORE: [&str; 10] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "severity",
    "data",
];

/// One event in, as CloudEvents 1.0 names its attributes. Serialised this
/// way (derive) it is the intake log's row; `as_cloudevent` is the
/// structured-mode event the journal keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The data, any JSON value: an object for most producers, a string for
    /// text content, `null` for none.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// Data that is neither JSON nor text, base64 as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// The content type as sent (none when the producer gave none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// Extension attributes: names of lower-case letters and digits, values
    /// strings, numbers or booleans.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Value>,
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, SignalError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(SignalError::missing(field, "a non-empty string")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(SignalError::invalid(field, "must not be empty"))
        }
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(SignalError::wrong_type(field, "a string", other)),
    }
}

fn optional_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, SignalError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(SignalError::wrong_type(field, "a string", other)),
    }
}

/// The URI scheme of the sources signalbox gives the signals it derives
/// itself (`signalbox:alertmanager`, `signalbox:pagerduty/…`,
/// `signalbox:probe/…`). Events from outside may not use it: the ids of
/// derived signals must not be claimable by another producer.
pub const RESERVED_SCHEME: &str = "signalbox:";

/// Refuses an event from outside that claims a reserved source.
pub fn check_outside_source(signal: &Signal) -> Result<(), SignalError> {
    // Schemes are case-insensitive (RFC 3986), and a producer's stray
    // spaces must not make `signalbox:` someone else's.
    let start = signal.source.trim_start().get(..RESERVED_SCHEME.len());
    if start.is_some_and(|s| s.eq_ignore_ascii_case(RESERVED_SCHEME)) {
        return Err(SignalError::invalid(
            "source",
            format!(
                "sources beginning {RESERVED_SCHEME:?} are signalbox's own (Alertmanager, PagerDuty, probes); \
                 name your producer otherwise"
            ),
        ));
    }
    Ok(())
}

/// Whether `name` may name a CloudEvents attribute: lower-case ASCII
/// letters and digits only.
pub fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether a content type says its content is JSON: `application/json`,
/// `text/json` or any `+json` type, parameters aside.
pub fn is_json_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// Parses a CloudEvents `time` (RFC 3339).
fn parse_time(text: &str) -> Result<DateTime<Utc>, SignalError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            SignalError::invalid(
                "time",
                format!("expected an RFC 3339 timestamp, found {text:?} ({e})"),
            )
        })
}

fn parse_severity(text: &str) -> Result<Severity, SignalError> {
    Severity::parse(text).ok_or_else(|| {
        SignalError::invalid(
            "severity",
            format!("expected info, warning, error or critical, found {text:?}"),
        )
    })
}

/// Checks a base64 text (standard alphabet, padded as RFC 4648 says).
fn check_base64(field: &'static str, text: &str) -> Result<(), SignalError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(|_| ())
        .map_err(|e| SignalError::invalid(field, format!("not base64: {e}")))
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

    /// The signal, when `bytes` are a well-formed one without extension
    /// attributes: decoded straight into its fields instead of through a
    /// JSON tree (which costs twice as much). Anything else (bad JSON, a
    /// field of the wrong type, a duplicate field, an extension, a value
    /// `from_value` refuses) gives `None`, and the caller takes the tree's
    /// way, which keeps extensions and says what is wrong.
    pub(crate) fn well_formed(bytes: &[u8], received: DateTime<Utc>) -> Option<Signal> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
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
            data: Option<Value>,
            #[serde(default)]
            datacontenttype: Option<String>,
            #[serde(default)]
            dataschema: Option<String>,
        }
        // Serde would also take a struct from an array of its fields.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let f: Fields = serde_json::from_slice(bytes).ok()?;
        if f.specversion != "1.0" {
            return None;
        }
        let time = match f.time {
            None => received,
            Some(text) => parse_time(&text).ok()?,
        };
        let severity = match f.severity {
            None => None,
            Some(text) => Some(parse_severity(&text).ok()?),
        };
        let signal = Signal {
            id: f.id,
            source: f.source,
            kind: f.kind,
            subject: f.subject.unwrap_or_default(),
            time,
            severity,
            data: f.data.unwrap_or(Value::Null),
            data_base64: None,
            datacontenttype: f.datacontenttype,
            dataschema: f.dataschema,
            extensions: Map::new(),
        };
        signal.check().ok()?;
        Some(signal)
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
            return Err(SignalError::invalid(
                "specversion",
                format!("expected \"1.0\", found {spec:?}"),
            ));
        }
        let id = required_str(&object, "id")?.to_string();
        let source = required_str(&object, "source")?.to_string();
        let kind = required_str(&object, "type")?.to_string();
        let subject = optional_str(&object, "subject")?.unwrap_or("").to_string();
        let time = match optional_str(&object, "time")? {
            None => received,
            Some(text) => parse_time(text)?,
        };
        let severity = optional_str(&object, "severity")?
            .map(parse_severity)
            .transpose()?;
        let datacontenttype = optional_str(&object, "datacontenttype")?.map(String::from);
        let dataschema = optional_str(&object, "dataschema")?.map(String::from);
        let data_base64 = optional_str(&object, "data_base64")?.map(String::from);
        if let Some(text) = &data_base64 {
            check_base64("data_base64", text)?;
        }
        let data = object.remove("data").unwrap_or(Value::Null);
        if data_base64.is_some() && !data.is_null() {
            return Err(SignalError::invalid(
                "data_base64",
                "an event carries `data` or `data_base64`, not both",
            ));
        }
        let mut extensions = Map::new();
        for (name, value) in object {
            if CORE.contains(&name.as_str()) || name == "data_base64" {
                continue;
            }
            let field = || -> Field { name.clone().into() };
            if !is_attribute_name(&name) {
                return Err(SignalError::invalid(
                    field(),
                    "attribute names are lower-case letters and digits",
                ));
            }
            match value {
                // An attribute set to null is an attribute not set.
                Value::Null => {}
                Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                    extensions.insert(name, value);
                }
                other => {
                    return Err(SignalError::wrong_type(
                        field(),
                        "a string, number or boolean (an extension attribute)",
                        &other,
                    ));
                }
            }
        }
        let signal = Signal {
            id,
            source,
            kind,
            subject,
            time,
            severity,
            data,
            data_base64,
            datacontenttype,
            dataschema,
            extensions,
        };
        signal.check()?;
        Ok(signal)
    }

    /// The limits every signal keeps, however it came in.
    pub fn check(&self) -> Result<(), SignalError> {
        for (field, text, max) in [
            ("id", &self.id, MAX_ID),
            ("type", &self.kind, MAX_TYPE),
            ("source", &self.source, MAX_SOURCE),
            ("subject", &self.subject, MAX_SUBJECT),
        ] {
            if text.len() > max {
                return Err(SignalError::invalid(
                    field,
                    format!("{} bytes long; at most {max} are accepted", text.len()),
                ));
            }
            if field != "subject" && text.trim().is_empty() {
                return Err(SignalError::invalid(field, "must not be empty"));
            }
        }
        limits::check_time("time", self.time)?;
        limits::check_data(&self.data)?;
        if self.extensions.len() > MAX_EXTENSIONS {
            return Err(SignalError::invalid(
                "extensions",
                format!(
                    "{} extension attributes; at most {MAX_EXTENSIONS} are accepted",
                    self.extensions.len()
                ),
            ));
        }
        Ok(())
    }

    /// The structured-mode CloudEvents JSON for this signal.
    pub fn to_cloudevent(&self) -> Value {
        serde_json::to_value(self.as_cloudevent()).unwrap_or(Value::Null)
    }

    /// The CloudEvent as JSON text, written straight from the signal
    /// (`to_cloudevent` copies its whole `data` into a tree first).
    pub fn to_cloudevent_json(&self) -> String {
        // Strings, a time, JSON values and maps with string keys: nothing
        // here can fail to serialise.
        serde_json::to_string(&self.as_cloudevent()).unwrap_or_default()
    }

    /// The CloudEvent, borrowed from the signal, to serialise: the journal
    /// writes every signal so.
    pub fn as_cloudevent(&self) -> CloudEvent<'_> {
        CloudEvent(self)
    }

    /// The signal's identity: a hash of its source and id, for the engine's
    /// set of signals seen (128 bits, so a collision never happens in
    /// practice; the journal's unique key is the exact pair).
    pub fn identity(&self) -> u128 {
        identity(&self.source, &self.id)
    }

    /// A string field of `data`, if `data` is an object that has one.
    pub fn data_str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// A numeric field of `data`, if `data` is an object that has one.
    pub fn data_f64(&self, key: &str) -> Option<f64> {
        self.data.get(key).and_then(Value::as_f64)
    }
}

/// `Signal::identity` of a source and id.
pub fn identity(source: &str, id: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update([0u8]);
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

/// A signal as a structured-mode CloudEvent (JSON format), borrowed: its
/// attributes and extensions in the order of their names, as a
/// `serde_json::Map` keeps them, so the text equals `to_cloudevent`'s.
pub struct CloudEvent<'a>(&'a Signal);

/// One attribute's value, borrowed where it can be.
enum Attr<'a> {
    Str(&'a str),
    Json(&'a Value),
    Owned(String),
}

impl Serialize for Attr<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Attr::Str(s) => serializer.serialize_str(s),
            Attr::Json(v) => v.serialize(serializer),
            Attr::Owned(s) => serializer.serialize_str(s),
        }
    }
}

impl Serialize for CloudEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut attrs: Vec<(&str, Attr<'_>)> = Vec::with_capacity(10 + s.extensions.len());
        if !s.data.is_null() {
            attrs.push(("data", Attr::Json(&s.data)));
        }
        if let Some(b) = &s.data_base64 {
            attrs.push(("data_base64", Attr::Str(b)));
        }
        if let Some(ct) = &s.datacontenttype {
            attrs.push(("datacontenttype", Attr::Str(ct)));
        }
        if let Some(schema) = &s.dataschema {
            attrs.push(("dataschema", Attr::Str(schema)));
        }
        attrs.push(("id", Attr::Str(&s.id)));
        if let Some(sev) = s.severity {
            attrs.push(("severity", Attr::Str(sev.as_str())));
        }
        attrs.push(("source", Attr::Str(&s.source)));
        attrs.push(("specversion", Attr::Str("1.0")));
        if !s.subject.is_empty() {
            attrs.push(("subject", Attr::Str(&s.subject)));
        }
        attrs.push(("time", Attr::Owned(s.time.to_rfc3339())));
        attrs.push(("type", Attr::Str(&s.kind)));
        for (name, value) in &s.extensions {
            attrs.push((name, Attr::Json(value)));
        }
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(attrs.len()))?;
        for (name, value) in &attrs {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::received as now;

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

    #[test]
    fn everything_an_event_carries_survives_the_journal_and_the_log() {
        let text = r#"{"specversion":"1.0","id":"s2","source":"ci","type":"build.done",
            "datacontenttype":"application/octet-stream","data_base64":"AAEC/w==",
            "traceparent":"00-4bf9","retries":2,"canary":false,"dataschema":"urn:x"}"#;
        let signal = Signal::from_json(text, now()).unwrap();
        assert_eq!(signal.extensions.len(), 3);
        assert_eq!(signal.extensions["retries"], 2);
        assert_eq!(signal.data_base64.as_deref(), Some("AAEC/w=="));
        assert_eq!(
            signal.datacontenttype.as_deref(),
            Some("application/octet-stream")
        );
        let journal = signal.to_cloudevent_json();
        assert_eq!(journal, signal.to_cloudevent().to_string());
        assert_eq!(Signal::from_json(&journal, now()).unwrap(), signal);
        let row = serde_json::to_string(&signal).unwrap();
        assert_eq!(serde_json::from_str::<Signal>(&row).unwrap(), signal);
        // Data that is not an object: kept as it is, read as nothing by
        // the object accessors.
        for data in [r#""plain""#, "[1,2]", "7", "true"] {
            let text = format!(
                r#"{{"specversion":"1.0","id":"s3","source":"x","type":"t","data":{data}}}"#
            );
            let signal = Signal::from_json(&text, now()).unwrap();
            assert_eq!(signal.data.to_string(), data);
            assert_eq!(signal.data_str("a"), None);
            assert_eq!(
                Signal::from_json(&signal.to_cloudevent_json(), now()).unwrap(),
                signal
            );
        }
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
                r#" {{{base},"subject":"order/1","time":"2026-11-23T09:00:00+01:00","severity":"CRIT","data":{{"v":[1,2.5,null],"s":"\u00e9"}},"ext":1}}"#
            ),
            // Escapes where the direct way borrows.
            format!(r#"{{{base},"time":"2026-11-23T09:00:00Z","severity":"warn"}}"#),
            format!(r#"{{{base},"subject":null,"time":null,"severity":null,"data":null}}"#),
            // A repeated field: the last one counts.
            format!(r#"{{{base},"id":"b"}}"#),
            // Data of any JSON type, base64 data, extensions, content types.
            format!(r#"{{{base},"data":[1]}}"#),
            format!(r#"{{{base},"data":"plain text","datacontenttype":"text/plain"}}"#),
            format!(
                r#"{{{base},"data_base64":"AAEC","datacontenttype":"application/octet-stream"}}"#
            ),
            format!(r#"{{{base},"traceparent":"00-ab","sampled":true,"depth":3,"nothing":null}}"#),
            format!(
                r#"{{{base},"dataschema":"https://example.com/s","datacontenttype":"application/vnd.x+json","data":{{"a":1}}}}"#
            ),
            // Refused, each for its own reason.
            r#"{"specversion":"1.1","id":"a","source":"x","type":"t"}"#.to_string(),
            r#"{"specversion":"1.0","id":"  ","source":"x","type":"t"}"#.to_string(),
            r#"{"specversion":"1.0","id":"a","source":"x"}"#.to_string(),
            format!(r#"{{{base},"subject":3}}"#),
            format!(r#"{{{base},"data":1,"data_base64":"AAEC"}}"#),
            format!(r#"{{{base},"data_base64":"not base64!"}}"#),
            format!(r#"{{{base},"Bad-Name":"x"}}"#),
            format!(r#"{{{base},"nested":{{"a":1}}}}"#),
            format!(
                r#"{{"specversion":"1.0","id":"{}","source":"x","type":"t"}}"#,
                "i".repeat(MAX_ID + 1)
            ),
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
        // The first ten are signals; the rest are refused.
        let parsed = cases.iter().map(|t| Signal::from_json(t, now()).is_ok());
        assert!(parsed.eq((0..cases.len()).map(|i| i < 10)));
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
        assert_eq!(err.field(), Some("time"));
        let err = Signal::from_json(&format!("{base}\"severity\":\"loud\"}}"), now()).unwrap_err();
        assert!(matches!(err, SignalError::Invalid { .. }));
        assert_eq!(err.field(), Some("severity"));
    }
}
