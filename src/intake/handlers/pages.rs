//! Pages and who is on call: `GET /v1/pages`, `GET /v1/pages/{id}`,
//! `POST /v1/pages/{id}/ack|resolve` (identity from the token, or from a
//! signed link a notification carried: `GET /v1/pages/{id}/ack?person=&
//! expires=&sig=`), `GET /v1/oncall?team=&at=`, `POST /v1/oncall/overrides`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::{ask, ok};
use crate::engine::PageAction;
use crate::engine::host::Command;
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToAct, ToRead};
use crate::intake::refusal::{Refusal, busy, engine_answer};
use crate::intake::request::{json_body, read_body, refuse_identity};
use crate::review::Actor;

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct PagesQuery {
    pub(super) state: Option<String>,
}

/// `GET /v1/pages?state=open|all`: pages in memory, newest first.
pub(in crate::intake) async fn list(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Query(q): Query<PagesQuery>,
) -> Result<Response, Refusal> {
    let open_only = open_only(q.state.as_deref())?;
    let pages = ask(&state, |reply| Command::Pages { open_only, reply }).await?;
    Ok(ok(json!(pages)))
}

/// `?state=open` (the default) or `?state=all`: whether only open ones.
pub(super) fn open_only(state: Option<&str>) -> Result<bool, Refusal> {
    match state {
        None | Some("open") => Ok(true),
        Some("all") => Ok(false),
        Some(other) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("state {other:?} is not open or all"),
        )
        .field(Some("state".into()))),
    }
}

/// `GET /v1/pages/{id}`: one page, with every attempt.
pub(in crate::intake) async fn one(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let page = ask(&state, |reply| Command::Page {
        id: id.clone(),
        reply,
    })
    .await?;
    match page {
        Some(page) => Ok(ok(json!(page))),
        None => Err(Refusal::new(StatusCode::NOT_FOUND, format!("no page {id}"))),
    }
}

/// `POST /v1/pages/{id}/ack|resolve`: the token's holder acknowledges or
/// resolves.
pub(in crate::intake) async fn act(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    Path((id, how)): Path<(String, String)>,
    body: Body,
) -> Result<Response, Refusal> {
    let action = page_action(&how)?;
    let bytes = read_body(&state, body).await?;
    if !bytes.is_empty() {
        refuse_identity(&json_body(&headers, &bytes)?)?;
    }
    act_as(&state, id, action, Actor::new(&who.name, who.role)).await
}

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct Signed {
    person: Option<String>,
    expires: Option<i64>,
    sig: Option<String>,
}

/// `GET /v1/pages/{id}/ack?person=&expires=&sig=`: the link a notification
/// carried, signed for the person it was sent to; refused once expired or
/// when the signature does not match. (Once the page is acknowledged, the
/// link is spent: a second use is a 409.)
pub(in crate::intake) async fn signed(
    State(state): State<AppState>,
    Path((id, how)): Path<(String, String)>,
    Query(q): Query<Signed>,
) -> Result<Response, Refusal> {
    let action = page_action(&how)?;
    let (Some(person), Some(expires), Some(sig)) = (q.person, q.expires, q.sig) else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "a page link needs person, expires and sig (or use POST with a token)",
        ));
    };
    let key = state.log.integration_key();
    if !crate::intake::pager::link_is_valid(key, &id, &how, &person, expires, &sig, Utc::now()) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "this link is not valid: expired, or not signed by this server",
        ));
    }
    let actor = Actor::new(&person, crate::decide::policy::Role::Operator);
    act_as(&state, id, action, actor).await
}

fn page_action(how: &str) -> Result<PageAction, Refusal> {
    PageAction::parse(how).ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no page action {how:?}: ack or resolve"),
        )
    })
}

async fn act_as(
    state: &AppState,
    id: String,
    action: PageAction,
    actor: Actor,
) -> Result<Response, Refusal> {
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .send(Command::PageAct {
            id,
            action,
            actor,
            reply: tx,
        })
        .map_err(busy)?;
    let page = engine_answer(rx).await?;
    Ok(ok(json!(page)))
}

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct OnCallQuery {
    team: Option<String>,
    at: Option<String>,
}

/// `GET /v1/oncall?team=&at=`: who is on call on each schedule, by which
/// layer or override, until when.
pub(in crate::intake) async fn oncall(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Query(q): Query<OnCallQuery>,
) -> Result<Response, Refusal> {
    let at = match q.at.as_deref() {
        None => Utc::now(),
        Some(text) => time(text, "at")?,
    };
    let on_call = ask(&state, |reply| Command::OnCall {
        team: q.team,
        at,
        reply,
    })
    .await?;
    Ok(ok(json!({ "at": at, "on_call": on_call })))
}

/// `POST /v1/oncall/overrides` `{"schedule", "person", "from", "to"}`: a
/// lead puts someone on call for a while.
pub(in crate::intake) async fn add_override(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, body).await?;
    let v = json_body(&headers, &bytes)?;
    refuse_identity(&v)?;
    let text = |field: &str| -> Result<String, Refusal> {
        v.get(field)
            .and_then(|x| x.as_str())
            .map(String::from)
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("`{field}` is required (a string)"),
                )
                .field(Some(field.into()))
            })
    };
    let (schedule, person) = (text("schedule")?, text("person")?);
    let from = time(&text("from")?, "from")?;
    let to = time(&text("to")?, "to")?;
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .send(Command::Override {
            schedule,
            person,
            from,
            to,
            actor: Actor::new(&who.name, who.role),
            reply: tx,
        })
        .map_err(busy)?;
    let o = engine_answer(rx).await?;
    Ok(ok(json!(o)))
}

/// An RFC 3339 time from a field, or a refusal naming it.
fn time(text: &str, field: &str) -> Result<DateTime<Utc>, Refusal> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("`{field}` {text:?} is not an RFC 3339 time: {e}"),
            )
            .field(Some(field.into()))
        })
}
