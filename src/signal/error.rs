//! Why a piece of input is not a signal, naming the field.

use std::borrow::Cow;

use serde_json::Value;
use thiserror::Error;

/// The name of an attribute or field in an error: a fixed name, or one
/// made for the input (`alerts[3].startsAt`, `ce-traceparent`).
pub type Field = Cow<'static, str>;

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
        field: Field,
        expected: &'static str,
    },
    #[error("field `{field}` has the wrong type: expected {expected}, found {found}")]
    WrongType {
        field: Field,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: Field, reason: String },
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

impl SignalError {
    pub fn missing(field: impl Into<Field>, expected: &'static str) -> SignalError {
        SignalError::Missing {
            field: field.into(),
            expected,
        }
    }

    pub fn wrong_type(
        field: impl Into<Field>,
        expected: &'static str,
        found: &Value,
    ) -> SignalError {
        SignalError::WrongType {
            field: field.into(),
            expected,
            found: json_kind(found),
        }
    }

    pub fn invalid(field: impl Into<Field>, reason: impl Into<String>) -> SignalError {
        SignalError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A serde_json error decoding a payload: bad JSON is `Malformed` (with
    /// its position); JSON of the wrong shape is `Invalid` at `field`.
    pub fn from_decode(e: &serde_json::Error, field: impl Into<Field>) -> SignalError {
        if e.is_data() {
            SignalError::invalid(field, e.to_string())
        } else {
            SignalError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
        }
    }

    /// The field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            SignalError::Missing { field, .. }
            | SignalError::WrongType { field, .. }
            | SignalError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The same error with its field under `prefix` (`payload` + `summary`
    /// → `payload.summary`).
    pub fn within(self, prefix: &str) -> SignalError {
        let nest = |field: Field| -> Field {
            if prefix.is_empty() {
                field
            } else if field.starts_with('[') {
                format!("{prefix}{field}").into()
            } else {
                format!("{prefix}.{field}").into()
            }
        };
        match self {
            SignalError::Missing { field, expected } => SignalError::Missing {
                field: nest(field),
                expected,
            },
            SignalError::WrongType {
                field,
                expected,
                found,
            } => SignalError::WrongType {
                field: nest(field),
                expected,
                found,
            },
            SignalError::Invalid { field, reason } => SignalError::Invalid {
                field: nest(field),
                reason,
            },
            other => other,
        }
    }
}
