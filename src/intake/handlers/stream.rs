//! What an attached console reads: the state to start from (`GET
//! /v1/state`) and the event stream after it (`GET /v1/events`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ask, ok};
use crate::engine::host::Command;
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToRead};
use crate::intake::refusal::Refusal;

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct StateQuery {
    /// `overview`: the figures only (what a console polls).
    part: Option<String>,
}

/// `GET /v1/state[?part=overview]`: the overview, the open review items and
/// the flows in flight, with the id of the last event they include.
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
    let mut snapshot = ask(&state, |reply| Command::State {
        overview_only,
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
/// data; `Last-Event-ID` (or `?after=`) resumes after that event.
pub(in crate::intake) async fn events(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, Refusal> {
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
    let after = header.or(q.after);
    Ok(crate::intake::events::stream(hub, after, &headers).into_response())
}

/// `GET /v1/me`: who the token is, as the server records its actions.
pub(in crate::intake) async fn me(Allowed(who, _): Allowed<ToRead>) -> Response {
    ok(serde_json::json!({ "name": who.name, "role": who.role.as_str() }))
}
