//! CloudEvents over HTTP: structured mode (`application/cloudevents+json`),
//! batched mode (`application/cloudevents-batch+json`), binary mode (`ce-*`
//! headers with the data as the body) and plain `application/json` in the
//! structured shape (one event or an array).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Signal, SignalError};

/// A refused request body: which event (in a batch) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    pub index: Option<usize>,
    pub error: SignalError,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "event {i}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl WireError {
    fn at(index: Option<usize>, error: SignalError) -> WireError {
        WireError { index, error }
    }

    /// The field at fault, for JSON error bodies.
    pub fn field(&self) -> Option<String> {
        let field = self.error.field()?;
        Some(match self.index {
            Some(i) => format!("[{i}].{field}"),
            None => field.to_string(),
        })
    }
}

fn parse(body: &[u8]) -> Result<Value, WireError> {
    serde_json::from_slice(body).map_err(|e| {
        WireError::at(
            None,
            SignalError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            },
        )
    })
}

/// One structured event, or (for plain JSON) an array of them.
pub fn structured(
    body: &[u8],
    received: DateTime<Utc>,
    allow_array: bool,
) -> Result<Vec<Signal>, WireError> {
    if let Some(signal) = Signal::well_formed(body, received) {
        return Ok(vec![signal]);
    }
    match parse(body)? {
        Value::Array(items) if allow_array => each(items, received),
        value => Signal::from_value(value, received)
            .map(|s| vec![s])
            .map_err(|e| WireError::at(None, e)),
    }
}

/// A batch: a JSON array of structured events. All or nothing.
pub fn batch(body: &[u8], received: DateTime<Utc>) -> Result<Vec<Signal>, WireError> {
    match parse(body)? {
        Value::Array(items) => each(items, received),
        other => Err(WireError::at(
            None,
            SignalError::WrongType {
                field: "batch",
                expected: "a JSON array of events",
                found: super::json_kind(&other),
            },
        )),
    }
}

fn each(items: Vec<Value>, received: DateTime<Utc>) -> Result<Vec<Signal>, WireError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| Signal::from_value(v, received).map_err(|e| WireError::at(Some(i), e)))
        .collect()
}

/// Binary mode: attributes from `ce-*` headers (lower-cased names), the
/// body is the data (a JSON object, or empty).
pub fn binary(
    headers: &[(String, String)],
    body: &[u8],
    received: DateTime<Utc>,
) -> Result<Signal, WireError> {
    let mut object = Map::new();
    for (name, value) in headers {
        if let Some(attr) = name.strip_prefix("ce-") {
            object.insert(attr.to_string(), Value::String(value.clone()));
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        object.insert("data".into(), parse(body)?);
    }
    Signal::from_value(Value::Object(object), received).map_err(|e| WireError::at(None, e))
}
