//! What an attached console reads: the state to start from (`GET
//! /v1/state`) and the event stream after it (`GET /v1/events`).

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ask, ok};
use crate::engine::host::Command;
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToRead};
use crate::intake::refusal::Refusal;
use crate::intake::slots::ConnectionSlot;

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct StateQuery {
    /// `overview`: the figures only (what a console polls).
    part: Option<String>,
    #[serde(flatten)]
    page: crate::intake::request::PageQuery,
}

/// `GET /v1/state[?part=overview][&after=R…&limit=N]`: the overview, a
/// page of the open review items (`next` names the following one) and, on
/// the first page, the flows in flight, with the id of the last event
/// they include.
pub(in crate::intake) async fn state(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Query(q): Query<StateQuery>,
) -> Result<Response, Refusal> {
    let overview_only = match q.part.as_deref() {
        None => false,
        Some("overview") => true,
        Some(other) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("part {other:?} is not `overview`"),
            )
            .field(Some("part".into())));
        }
    };
    let page = q.page.page()?;
    let mut snapshot = ask(&state, |reply| Command::State {
        overview_only,
        page,
        reply,
    })
    .await?;
    snapshot.overview.attached = state.events.as_ref().map(|hub| hub.clients());
    let body = serde_json::to_value(&*snapshot)
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(ok(body))
}

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct EventsQuery {
    /// The same as a `Last-Event-ID` header, for clients that cannot set one.
    after: Option<u64>,
}

/// `GET /v1/events`: Server-Sent Events, each with its id, type and JSON
/// data; `Last-Event-ID` (or `?after=`) resumes after that event. A stream
/// holds a stream slot (`slots`), not one of the server's request slots.
pub(in crate::intake) async fn events(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToRead>,
    connection: Option<Extension<ConnectionSlot>>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(q) = query.map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "after must be an event id (a whole number): {}",
                e.body_text()
            ),
        )
        .field(Some("after".into()))
    })?;
    let Some(hub) = state.events.as_ref() else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "this server has no event stream (the console's own intake); attach to `signalbox serve`",
        ));
    };
    let header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "Last-Event-ID must be an event id (a whole number)",
                    )
                    .field(Some("Last-Event-ID".into()))
                })?,
        ),
    };
    let hold = state
        .streams
        .take(&who.name)
        .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_later())?;
    if let Some(Extension(slot)) = connection {
        slot.release();
    }
    let after = header.or(q.after);
    Ok(crate::intake::events::stream(hub, after, &headers, hold).into_response())
}

/// At most this many decisions of history in one answer.
const HISTORY_MAX: usize = 1_000;

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct HistoryQuery {
    limit: Option<usize>,
    before: Option<String>,
}

/// `GET /v1/history?limit=N[&before=ID]`: the last N decisions (200 by
/// default, at most 1,000), or the N journaled before decision ID, oldest
/// first, each with its signal: what an attached console shows of the past
/// before the event stream goes on from now, and further back as its
/// operator scrolls. `next` is the cursor for the page before this one
/// (none once the journal's beginning is reached).
pub(in crate::intake) async fn history(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(q) = q.map_err(|e| {
        Refusal::new(StatusCode::BAD_REQUEST, e.body_text()).field(Some("limit".into()))
    })?;
    let limit = q.limit.unwrap_or(200).clamp(1, HISTORY_MAX) as i64;
    let before = q.before;
    let past = crate::intake::request::read_journal(&state, move |dir| {
        crate::journal::read::history(dir, limit, before.as_deref())
    })
    .await?;
    let next = (past.len() as i64 == limit)
        .then(|| past.first().map(|(_, d)| d.id.clone()))
        .flatten();
    let items: Vec<serde_json::Value> = past
        .into_iter()
        .map(|(signal, decision)| serde_json::json!({ "signal": signal, "decision": decision }))
        .collect();
    Ok(ok(serde_json::json!({ "history": items, "next": next })))
}

/// `GET /v1/me`: who the token is, as the server records its actions.
pub(in crate::intake) async fn me(Allowed(who, _): Allowed<ToRead>) -> Response {
    ok(serde_json::json!({ "name": who.name, "role": who.role.as_str() }))
}
