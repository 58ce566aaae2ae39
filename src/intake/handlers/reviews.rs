//! Review items: the open ones, and the actions people take on them from
//! chat-ops or scripts (who acts is the token's identity).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::{ask, ok};
use crate::engine::host::Command;
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToAct, ToRead};
use crate::intake::refusal::{Refusal, busy, engine_answer};
use crate::intake::request::{json_body, optional_string, read_body, refuse_identity};
use crate::review::{Action, Actor, ReviewItem};

/// The open review items, most urgent first.
pub(in crate::intake) async fn list(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    uri: axum::http::Uri,
    Query(q): Query<crate::intake::request::PageQuery>,
) -> Result<Response, Refusal> {
    let page = q.page()?;
    let found = ask(&state, |reply| Command::Reviews { page, reply }).await?;
    let items: Vec<Value> = found.items.iter().map(review_json).collect();
    Ok(crate::intake::request::paged(
        &uri,
        json!({ "items": items, "next": found.next }),
        found.next.as_deref(),
    ))
}

/// One review item whole, with its decision and signal (`GET
/// /v1/reviews/{id}`; the event stream names them by id).
pub(in crate::intake) async fn one(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let item = ask(&state, |reply| Command::Review {
        id: id.clone(),
        reply,
    })
    .await?;
    let item =
        item.ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, format!("no review item {id:?}")))?;
    // As text: a decision's snapshot is raw JSON, kept as it came.
    let text = serde_json::to_string(&item).map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("review item {id:?}: {e}"),
        )
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}

/// One open review item as `GET /v1/reviews` lists it.
fn review_json(i: &ReviewItem) -> Value {
    json!({
        "id": i.id, "decision": i.decision.id, "signal_type": i.decision.signal_type,
        "subject": i.decision.subject, "proposal": i.decision.proposal,
        "confidence": i.decision.confidence, "priority": i.priority.as_str(),
        "required_role": i.required_role.as_str(), "deadline": i.deadline,
        "alternatives": i.decision.allowed_options().collect::<Vec<_>>(),
        "why": i.decision.why,
    })
}

/// One action on a review item.
pub(in crate::intake) async fn act(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, body).await?;
    let v = json_body(&headers, &bytes)?;
    refuse_identity(&v)?;
    let action_name = optional_string(&v, "action")?.ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing `action` (approve, override, reject, escalate, snooze, claim)",
        )
        .field(Some("action".into()))
    })?;
    let action = match action_name.as_str() {
        "approve" => Action::Approve,
        "override" => Action::Override {
            option: optional_string(&v, "option")?.ok_or_else(|| {
                Refusal::new(StatusCode::BAD_REQUEST, "override needs `option`")
                    .field(Some("option".into()))
            })?,
        },
        "reject" => Action::Reject,
        "escalate" => Action::Escalate,
        "snooze" => Action::Snooze {
            minutes: snooze_minutes(&v)?,
        },
        "claim" => Action::Claim,
        other => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown action {other:?}: expected approve, override, reject, escalate, snooze or claim"
                ),
            )
            .field(Some("action".into())));
        }
    };
    let note = optional_string(&v, "note")?.unwrap_or_default();
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .send(Command::Act {
            review_id: id,
            actor: Actor::new(&who.name, who.role),
            action,
            note,
            reply: tx,
        })
        .map_err(busy)?;
    let record = engine_answer(rx).await?;
    let mut body = json!({
        "review": record.review_id, "decision": record.decision_id,
        "action": record.action.name(), "actor": record.actor.name, "note": record.note,
    });
    if let Some(advised) = &record.advised {
        body["advised"] = json!(advised);
    }
    Ok(ok(body))
}

/// Longest snooze, in minutes.
const MAX_SNOOZE: u64 = 240;

/// `minutes` of a snooze: a whole number from 1 to `MAX_SNOOZE`, 15 if absent.
fn snooze_minutes(v: &Map<String, Value>) -> Result<u32, Refusal> {
    let bad = |found: String| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("`minutes` must be a whole number from 1 to {MAX_SNOOZE}, found {found}"),
        )
        .field(Some("minutes".into()))
    };
    match v.get("minutes") {
        None | Some(Value::Null) => Ok(15),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(m @ 1..=MAX_SNOOZE) => Ok(m as u32),
            _ => Err(bad(n.to_string())),
        },
        Some(other) => Err(bad(crate::signal::json_kind(other).to_string())),
    }
}
