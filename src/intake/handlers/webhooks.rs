//! Alertmanager's webhook and PagerDuty's Events API v2 (alert and change
//! events), each answered in its sender's terms.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::signals::{accepted, ingest};
use crate::intake::AppState;
use crate::intake::auth::{Allowed, Permission, ToIngest};
use crate::intake::refusal::Refusal;
use crate::intake::request::{content_type, read_body};
use crate::signal::{alertmanager, pagerduty};

pub(in crate::intake) async fn alertmanager_webhook(
    State(state): State<AppState>,
    _: Allowed<ToIngest>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let ct = content_type(&headers);
    if !(ct.is_empty() || ct == "application/json") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/json, not {ct}"),
        ));
    }
    let bytes = read_body(&state, body).await?;
    let parsed = alertmanager::parse(&bytes, Utc::now()).map_err(|e| {
        Refusal::new(StatusCode::BAD_REQUEST, e.to_string()).field(e.field().map(String::from))
    })?;
    let report = ingest(&state, "alertmanager", parsed).await?;
    Ok(accepted(&report))
}

/// A PagerDuty refusal, in PagerDuty's shape (`status`, `message`,
/// `errors`) with the field at fault beside it.
fn pagerduty_refusal(e: &crate::signal::SignalError) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "Event object is invalid")
        .field(e.field().map(String::from))
        .pagerduty(pagerduty::error_text(e))
}

/// Authenticates a PagerDuty sender: by bearer token if it sends one, else
/// by the routing key in the body (which is read, within the body limit,
/// before it can be checked: that is how PagerDuty's API authenticates).
/// The one check not made by the `Allowed` extractor, since it needs the
/// body.
fn pagerduty_caller(state: &AppState, headers: &HeaderMap, bytes: &[u8]) -> Result<(), Refusal> {
    let routing_key = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| {
        v.get("routing_key")
            .and_then(Value::as_str)
            .map(String::from)
    });
    state
        .tokens
        .check(headers, routing_key.as_deref(), Permission::Ingest)
        .map(|_| ())
}

fn pagerduty_body(headers: &HeaderMap) -> Result<(), Refusal> {
    let ct = content_type(headers);
    if ct.is_empty() || ct == "application/json" {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/json, not {ct}"),
        ))
    }
}

/// A PagerDuty request's body, its content type checked and its sender
/// authenticated.
async fn pagerduty_request(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Refusal> {
    pagerduty_body(headers)?;
    let bytes = read_body(state, body).await?;
    pagerduty_caller(state, headers, &bytes)?;
    Ok(bytes)
}

/// PagerDuty's 202, with its answer.
fn pagerduty_accepted(answer: Value) -> Response {
    (StatusCode::ACCEPTED, axum::Json(answer)).into_response()
}

/// PagerDuty's alert events: trigger, acknowledge, resolve.
pub(in crate::intake) async fn enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = pagerduty_request(&state, &headers, body).await?;
    let parsed = pagerduty::parse(&bytes, Utc::now(), state.log.integration_key())
        .map_err(|e| pagerduty_refusal(&e))?;
    let dedup_key = parsed.dedup_key.clone();
    ingest(&state, "enqueue", vec![parsed.signal]).await?;
    Ok(pagerduty_accepted(
        json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key }),
    ))
}

/// PagerDuty's change events: a deploy, a config change.
pub(in crate::intake) async fn change_enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = pagerduty_request(&state, &headers, body).await?;
    let signal = pagerduty::parse_change(&bytes, Utc::now(), state.log.integration_key())
        .map_err(|e| pagerduty_refusal(&e))?;
    ingest(&state, "change_enqueue", vec![signal]).await?;
    Ok(pagerduty_accepted(
        json!({ "status": "success", "message": "Change event processed" }),
    ))
}
