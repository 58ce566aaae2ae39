//! The guarded ramp: where it stands, and a lead's call on it.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use tokio::sync::oneshot;

use super::{ask, ok};
use crate::decide::ramp::LeadCall;
use crate::engine::host::Command;
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToAct, ToRead};
use crate::intake::refusal::{Refusal, busy, engine_answer};
use crate::intake::request::note_body;
use crate::review::Actor;

/// `GET /v1/ramp`: the ramp in progress (or the last one) with each step's
/// gate readings, and what its current step has read so far.
pub(in crate::intake) async fn state(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
) -> Result<Response, Refusal> {
    let snapshot = ask(&state, |reply| Command::State {
        overview_only: true,
        page: Default::default(),
        reply,
    })
    .await?;
    match &snapshot.overview.ramp {
        Some(ramp) => Ok(ok(
            json!({ "ramp": ramp, "step": snapshot.overview.ramp_step }),
        )),
        None => Err(Refusal::new(StatusCode::NOT_FOUND, "no ramp has run")),
    }
}

/// `POST /v1/ramp/{advance|extend|rollback}`: a lead's call; the body may
/// carry a `note`, the identity is the token's (the engine refuses anyone
/// below a lead).
pub(in crate::intake) async fn call(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    Path(call): Path<String>,
    body: Body,
) -> Result<Response, Refusal> {
    let Some(call) = LeadCall::parse(&call) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no ramp call `{call}` (advance, extend, rollback)"),
        ));
    };
    let note = note_body(&state, &headers, body).await?;
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .send(Command::Ramp {
            call,
            actor: Actor::new(&who.name, who.role),
            note,
            reply: tx,
        })
        .map_err(busy)?;
    let ramp = engine_answer(rx).await?;
    Ok(ok(json!({ "ramp": ramp })))
}
