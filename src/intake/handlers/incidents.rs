//! Incidents: `GET /v1/incidents[?state=all]`, `GET /v1/incidents/{id}`
//! (with its alerts), and `POST /v1/incidents/{id}/resolve` by a person
//! (identity from the token): its flow closes as when its last alert
//! resolves.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::pages::{PagesQuery, open_only};
use super::{ask, ok};
use crate::engine::host::Command;
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToAct, ToRead};
use crate::intake::refusal::{Refusal, busy, engine_answer};
use crate::intake::request::{json_body, read_body, refuse_identity};
use crate::review::Actor;

/// `GET /v1/incidents?state=open|all`: incidents in memory, newest first.
pub(in crate::intake) async fn list(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Query(q): Query<PagesQuery>,
) -> Result<Response, Refusal> {
    let open_only = open_only(q.state.as_deref())?;
    let incidents = ask(&state, |reply| Command::Incidents { open_only, reply }).await?;
    Ok(ok(json!(incidents)))
}

/// `GET /v1/incidents/{id}`: one incident with its alerts.
pub(in crate::intake) async fn one(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let incident = ask(&state, |reply| Command::Incident {
        id: id.clone(),
        reply,
    })
    .await?;
    match incident {
        Some(i) => Ok(ok(json!(i))),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no incident {id}"),
        )),
    }
}

/// `POST /v1/incidents/{id}/resolve`: the token's holder resolves it.
pub(in crate::intake) async fn resolve(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(&state, body).await?;
    if !bytes.is_empty() {
        refuse_identity(&json_body(&headers, &bytes)?)?;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .engine
        .send(Command::ResolveIncident {
            id,
            actor: Actor::new(&who.name, who.role),
            reply: tx,
        })
        .map_err(busy)?;
    let incident = engine_answer(rx).await?;
    Ok(ok(json!(incident)))
}
