//! What the handlers read of a request: its body (within the limit and the
//! deadline), its content type, header text, a JSON object body and its
//! fields, and reads of the journal off the async workers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value};

use super::AppState;
use super::refusal::Refusal;

/// The request's body, within the size limit and the deadline.
pub(super) async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Refusal> {
    match tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, state.body_limit),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            // Over the limit, or the client broke off mid-body.
            let e = e.into_inner();
            let over = e.is::<http_body_util::LengthLimitError>();
            Err(if over {
                Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body over the limit of {} bytes", state.body_limit),
                )
            } else {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("the body could not be read: {e}"),
                )
            })
        }
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                state.body_timeout.as_secs()
            ),
        )),
    }
}

pub(super) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_lowercase())
        .unwrap_or_default()
}

/// A header's value as text. The HTTP binding asks senders to
/// percent-encode anything outside printable ASCII, but some SDKs send raw
/// bytes: UTF-8 is read as such, anything else as ISO-8859-1 (HTTP's old
/// default), so no value is refused for its bytes alone.
pub(super) fn header_text(value: &HeaderValue) -> String {
    let bytes = value.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// `?source=`: which producer's signal, where several used one id.
#[derive(serde::Deserialize)]
pub(super) struct SourceQuery {
    pub(super) source: Option<String>,
}

/// `?after=ID&limit=N` of a paged list (`engine::page`).
#[derive(Debug, serde::Deserialize, Default)]
pub(super) struct PageQuery {
    pub(super) after: Option<String>,
    pub(super) limit: Option<String>,
}

impl PageQuery {
    /// The page asked for; a limit that is not 1 to `MAX_LIMIT` is refused
    /// by name.
    pub(super) fn page(&self) -> Result<crate::page::Page, Refusal> {
        use crate::page::{DEFAULT_LIMIT, MAX_LIMIT, Page};
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Refusal::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        format!("limit {text:?} is not a whole number from 1 to {MAX_LIMIT}"),
                    )
                    .field(Some("limit".into()))
                })?,
        };
        Ok(Page {
            after: self.after.clone().filter(|a| !a.is_empty()),
            limit,
        })
    }
}

/// A paged list's answer: its items, `next` in the body where the body is
/// an object, and a `Link: <…>; rel="next"` header (RFC 8288) either way:
/// the request's own URI (its filters and limit kept) with `after` moved on.
pub(super) fn paged(
    uri: &axum::http::Uri,
    body: serde_json::Value,
    next: Option<&str>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (axum::http::StatusCode::OK, axum::Json(body)).into_response();
    if let Some(next) = next {
        let cursor =
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
        let mut query: Vec<&str> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.starts_with("after="))
            .collect();
        let after = format!("after={cursor}");
        query.push(&after);
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"));
        if let Ok(value) = axum::http::HeaderValue::from_str(&link) {
            response
                .headers_mut()
                .insert(axum::http::header::LINK, value);
        }
    }
    response
}

/// Runs a read of the journal off the async workers; a failed read (or a
/// panicked one) is a 500 naming why.
pub(super) async fn read_journal<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&std::path::Path) -> Result<T, crate::journal::JournalError> + Send + 'static,
) -> Result<T, Refusal> {
    let dir = state.engine.data_dir.clone();
    let internal = |e: String| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e);
    tokio::task::spawn_blocking(move || read(&dir))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))
}

/// A JSON object body: 415 for another content type, 400 for bad JSON or
/// JSON that is not an object.
pub(super) fn json_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let ct = content_type(headers);
    if !(ct.is_empty() || ct == "application/json") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/json, not {ct}"),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be a JSON object, found {}",
                crate::signal::json_kind(&other)
            ),
        )),
        Err(e) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
        )),
    }
}

/// Who acts is the token's identity: a body that names one is refused
/// rather than ignored, so nobody believes they acted as someone else.
pub(super) fn refuse_identity(v: &Map<String, Value>) -> Result<(), Refusal> {
    for field in ["actor", "role"] {
        if v.contains_key(field) {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "`{field}` is not accepted: who acts, and with which role, comes from the bearer token; \
                     the body may carry a note"
                ),
            )
            .field(Some(field.into())));
        }
    }
    Ok(())
}

/// An optional string field of a JSON body; any other type is refused.
pub(super) fn optional_string(
    v: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, Refusal> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "`{field}` must be a string, found {}",
                crate::signal::json_kind(other)
            ),
        )
        .field(Some(field.into()))),
    }
}

/// A lead's optional note: an empty body, or a JSON object whose `note`
/// is taken (and which must not name who acts: that is the token's).
pub(super) async fn note_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<String, Refusal> {
    let bytes = read_body(state, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let v = json_body(headers, &bytes)?;
    refuse_identity(&v)?;
    Ok(optional_string(&v, "note")?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_keeps_the_filters_and_moves_the_cursor() {
        let uri: axum::http::Uri = "/v1/tasks?team=sre&after=F1.0&limit=2".parse().unwrap();
        let response = paged(&uri, serde_json::json!([]), Some("F9.0"));
        let link = response.headers()[axum::http::header::LINK]
            .to_str()
            .unwrap();
        assert_eq!(
            link,
            "</v1/tasks?team=sre&limit=2&after=F9%2E0>; rel=\"next\""
        );
        let last = paged(&uri, serde_json::json!([]), None);
        assert!(last.headers().get(axum::http::header::LINK).is_none());
    }
}
