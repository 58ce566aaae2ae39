//! Signals the engine could not decide: the list, and a lead's retry or
//! drop.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use tokio::sync::oneshot;

use super::ok;
use crate::engine::host::Command;
use crate::engine::quarantine::{Release, Released};
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToAct, ToRead};
use crate::intake::refusal::{Refusal, busy, engine_answer};
use crate::intake::request::{SourceQuery, note_body, read_journal};
use crate::journal::QuarantineState;
use crate::review::Actor;

/// Most quarantined signals one `GET /v1/quarantine` lists.
const QUARANTINE_LIST: i64 = 1000;

/// The signals held in quarantine, newest first.
pub(in crate::intake) async fn list(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
) -> Result<Response, Refusal> {
    let items = read_journal(&state, |dir| {
        crate::journal::read::quarantine(dir, Some(QuarantineState::Held), QUARANTINE_LIST)
    })
    .await?;
    Ok(ok(json!({ "items": items })))
}

pub(in crate::intake) async fn retry(
    state: State<AppState>,
    who: Allowed<ToAct>,
    headers: HeaderMap,
    id: Path<String>,
    query: Query<SourceQuery>,
    body: Body,
) -> Result<Response, Refusal> {
    release(state, who, headers, id, query, body, Release::Retry).await
}

pub(in crate::intake) async fn drop(
    state: State<AppState>,
    who: Allowed<ToAct>,
    headers: HeaderMap,
    id: Path<String>,
    query: Query<SourceQuery>,
    body: Body,
) -> Result<Response, Refusal> {
    release(state, who, headers, id, query, body, Release::Drop).await
}

/// A lead's retry or drop of a quarantined signal; the body may carry a
/// `note`, the identity is the token's (the engine refuses anyone below a
/// lead).
async fn release(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<SourceQuery>,
    body: Body,
    how: Release,
) -> Result<Response, Refusal> {
    let note = note_body(&state, &headers, body).await?;
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .send(Command::Quarantine {
            how,
            signal_id: id.clone(),
            source: query.source,
            actor: Actor::new(&who.name, who.role),
            note,
            reply: tx,
        })
        .map_err(busy)?;
    let body = match engine_answer(rx).await? {
        Released::Decided(decision) => {
            json!({"id": id, "state": "decided", "decision": decision})
        }
        Released::HeldAgain(error) => json!({"id": id, "state": "quarantined", "error": error}),
        Released::Paused => json!({"id": id, "state": "paused"}),
        Released::Dropped(q) => {
            json!({"id": q.signal_id, "source": q.source, "state": "dropped"})
        }
    };
    Ok(ok(body))
}
