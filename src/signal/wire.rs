//! CloudEvents over HTTP: structured mode (`application/cloudevents+json`),
//! batched mode (`application/cloudevents-batch+json`), binary mode (`ce-*`
//! headers with the data as the body, of any content type) and plain
//! `application/json` in the structured shape (one event or an array).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Signal, SignalError, check_outside_source, is_json_type};

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
        check_outside_source(&signal).map_err(|e| WireError::at(None, e))?;
        return Ok(vec![signal]);
    }
    match parse(body)? {
        Value::Array(items) if allow_array => each(items, received),
        value => Signal::from_value(value, received)
            .and_then(|s| check_outside_source(&s).map(|()| vec![s]))
            .map_err(|e| WireError::at(None, e)),
    }
}

/// A batch: a JSON array of structured events (possibly empty). All or
/// nothing.
pub fn batch(body: &[u8], received: DateTime<Utc>) -> Result<Vec<Signal>, WireError> {
    match parse(body)? {
        Value::Array(items) => each(items, received),
        other => Err(WireError::at(
            None,
            SignalError::wrong_type("batch", "a JSON array of events", &other),
        )),
    }
}

fn each(items: Vec<Value>, received: DateTime<Utc>) -> Result<Vec<Signal>, WireError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            Signal::from_value(v, received)
                .and_then(|s| check_outside_source(&s).map(|()| s))
                .map_err(|e| WireError::at(Some(i), e))
        })
        .collect()
}

/// Binary mode: attributes from `ce-*` headers (names lower-cased, values
/// percent-decoded as the HTTP binding says), the `Content-Type` as
/// `datacontenttype`, the body as the data: parsed as JSON for a JSON
/// content type, kept as text for `text/*` and any type with a charset,
/// and as base64 for anything else (with no type, whichever of the three
/// it is).
// Over 80 lines: the binary mode's attributes in the specification's order, each refusal beside the header it names.
pub fn binary(
    headers: &[(String, String)],
    content_type: Option<&str>,
    body: &[u8],
    received: DateTime<Utc>,
) -> Result<Signal, WireError> {
    let bad = |e: SignalError| WireError::at(None, e);
    let mut object = Map::new();
    for (name, value) in headers {
        let Some(attr) = name.strip_prefix("ce-") else {
            continue;
        };
        let unquoted = unquote(value).ok_or_else(|| {
            bad(SignalError::invalid(
                name.clone(),
                "a double-quoted string in it is not closed",
            ))
        })?;
        let decoded = percent_encoding::percent_decode_str(&unquoted)
            .decode_utf8()
            .map_err(|e| {
                bad(SignalError::invalid(
                    name.clone(),
                    format!("not UTF-8 once percent-decoded: {e}"),
                ))
            })?;
        if object
            .insert(attr.to_string(), Value::String(decoded.into_owned()))
            .is_some()
        {
            return Err(bad(SignalError::invalid(
                name.clone(),
                "the header appears twice",
            )));
        }
    }
    // The data travels as the body, its type as Content-Type: headers of
    // their names are not attributes here.
    for attr in ["data", "data_base64", "datacontenttype"] {
        if object.remove(attr).is_some() {
            return Err(bad(SignalError::invalid(
                format!("ce-{attr}"),
                "in binary mode the data is the body and its type the Content-Type header",
            )));
        }
    }
    let mut signal = Signal::from_value(Value::Object(object), received).map_err(|e| {
        // Attributes arrive as headers: name the header.
        match e.field().map(String::from) {
            Some(field) if !field.contains('.') => {
                bad(SignalError::invalid(format!("ce-{field}"), e.to_string()))
            }
            _ => bad(e),
        }
    })?;
    if let Err(SignalError::Invalid { reason, .. }) = check_outside_source(&signal) {
        return Err(bad(SignalError::invalid("ce-source", reason)));
    }
    signal.datacontenttype = content_type.map(String::from);
    if body.is_empty() {
        return Ok(signal);
    }
    match content_type {
        // No type said: JSON if it is JSON, else text, else bytes (some
        // senders put a JSON-looking text in without a type).
        None => match serde_json::from_slice(body) {
            Ok(value) => signal.data = value,
            Err(_) => match std::str::from_utf8(body) {
                Ok(text) => signal.data = Value::String(text.to_string()),
                Err(_) => {
                    signal.data_base64 =
                        Some(base64::engine::general_purpose::STANDARD.encode(body))
                }
            },
        },
        Some(ct) if is_json_type(ct) => signal.data = parse(body)?,
        Some(ct) if is_text_type(ct) => match std::str::from_utf8(body) {
            Ok(text) => signal.data = Value::String(text.to_string()),
            Err(_) => {
                signal.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(body))
            }
        },
        Some(_) => {
            signal.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(body));
        }
    }
    Ok(signal)
}

/// A header value with its double-quoted strings unescaped (RFC 7230,
/// 3.2.6), as the HTTP binding asks of receivers before percent-decoding
/// (older senders quoted instead of encoding); `None` for a quote or an
/// escape left open.
fn unquote(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !value.contains('"') {
        return Some(std::borrow::Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len());
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (_, '"') => quoted = !quoted,
            (true, '\\') => out.push(chars.next()?),
            (_, c) => out.push(c),
        }
    }
    (!quoted).then_some(std::borrow::Cow::Owned(out))
}

/// Whether a content type is text: `text/*`, or any with a charset.
fn is_text_type(content_type: &str) -> bool {
    let lower = content_type.to_ascii_lowercase();
    lower.trim_start().starts_with("text/") || lower.contains("charset=")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::received as now;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: [(&str, &str); 4] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "b1"),
        ("ce-source", "/mycontext"),
        ("ce-type", "com.example.someevent"),
    ];

    #[test]
    fn binary_headers_are_percent_decoded_and_extensions_kept() {
        let mut h = headers(&BASE);
        h.extend(headers(&[
            ("ce-subject", "Hello%20World%20%E2%82%AC"),
            ("ce-traceparent", "00-4bf92f"),
            ("content-type", "application/json"),
        ]));
        let s = binary(&h, Some("application/json"), br#"{"a":1}"#, now()).unwrap();
        assert_eq!(s.subject, "Hello World €");
        assert_eq!(s.extensions["traceparent"], "00-4bf92f");
        assert_eq!(s.data["a"], 1);
        assert_eq!(s.datacontenttype.as_deref(), Some("application/json"));
    }

    /// The HTTP binding's decoding, on the cases sdk-csharp tests.
    #[test]
    fn header_values_are_unquoted_then_percent_decoded() {
        let subject = |value: &str| {
            let mut h = headers(&BASE);
            h.push(("ce-subject".into(), value.into()));
            binary(&h, None, b"", now()).map(|s| s.subject)
        };
        for (value, want) in [
            ("simple", "simple"),
            ("Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro € 😀"),
            ("Euro%20%e2%82%ac%20%f0%9F%98%80", "Euro € 😀"),
            ("percent%25encoded", "percent%encoded"),
            ("caf%C3%A9", "café"),
            ("line1%0D%0Aline2", "line1\r\nline2"),
            ("lenient decoding %30%31", "lenient decoding 01"),
            ("\"  quoted  text  \"unquoted", "  quoted  text  unquoted"),
            ("\"escaped quote\\\"\"end", "escaped quote\"end"),
            ("\"escaped backslash\\\\end\"", "escaped backslash\\end"),
            ("non-escaping backslash\\end", "non-escaping backslash\\end"),
        ] {
            assert_eq!(subject(value).as_deref(), Ok(want), "{value}");
        }
        for value in [
            "%ED%B0%80",
            "%ED%A0%80%ED%B0%80",
            "%C0%A0",
            "%E2%82",
            "\"unterminated quote",
        ] {
            assert!(subject(value).is_err(), "{value} is refused");
        }
    }

    #[test]
    fn binary_bodies_of_any_type_are_kept() {
        let h = headers(&BASE);
        let text = binary(&h, Some("text/plain; charset=utf-8"), b"hello", now()).unwrap();
        assert_eq!(text.data, Value::String("hello".into()));
        assert_eq!(
            text.datacontenttype.as_deref(),
            Some("text/plain; charset=utf-8")
        );
        let bytes = binary(&h, Some("application/octet-stream"), &[0, 1, 2, 255], now()).unwrap();
        assert_eq!(bytes.data_base64.as_deref(), Some("AAEC/w=="));
        assert!(bytes.data.is_null());
        let vendor = binary(&h, Some("application/vnd.x+json"), b"[1,2]", now()).unwrap();
        assert_eq!(vendor.data, serde_json::json!([1, 2]));
        let empty = binary(&h, None, b"", now()).unwrap();
        assert!(empty.data.is_null() && empty.data_base64.is_none());
    }

    #[test]
    fn binary_refusals_name_the_header() {
        let mut h = headers(&BASE);
        h.push(("ce-subject".into(), "%FF%FE".into()));
        let e = binary(&h, None, b"", now()).unwrap_err();
        assert_eq!(e.field().as_deref(), Some("ce-subject"));
        let h = headers(&BASE[..3]);
        let e = binary(&h, None, b"", now()).unwrap_err();
        assert_eq!(e.field().as_deref(), Some("ce-type"));
        let mut h = headers(&BASE);
        h.push(("ce-time".into(), "yesterday".into()));
        let e = binary(&h, None, b"", now()).unwrap_err();
        assert_eq!(e.field().as_deref(), Some("ce-time"));
    }
}
