//! People's tasks, flows, and the deployment's reload: what an on-call team
//! works through (`GET /v1/tasks`, `POST /v1/tasks/{id}/complete|fail|reassign`,
//! `GET /v1/flows`, `GET /v1/flows/{id}`, `POST /v1/config/reload`,
//! `GET /v1/config`).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::{ask, ok};
use crate::decide::policy::Role;
use crate::engine::host::Command;
use crate::flow::{FlowFilter, TaskAction, TaskFilter};
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToAct, ToRead};
use crate::intake::refusal::{Refusal, busy, engine_answer};
use crate::intake::reload::ReloadError;
use crate::intake::request::{json_body, optional_string, read_body, refuse_identity};
use crate::review::Actor;

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct TaskQuery {
    team: Option<String>,
    state: Option<String>,
    #[serde(flatten)]
    page: crate::intake::request::PageQuery,
}

/// `GET /v1/tasks?team=&state=`: a JSON array, most urgent first.
pub(in crate::intake) async fn list(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    uri: axum::http::Uri,
    Query(q): Query<TaskQuery>,
) -> Result<Response, Refusal> {
    if let Some(s) = &q.state
        && !matches!(s.as_str(), "open" | "done" | "failed" | "all")
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("state {s:?} is not open, done, failed or all"),
        )
        .field(Some("state".into())));
    }
    let page = q.page.page()?;
    let filter = TaskFilter {
        team: q.team,
        state: q.state,
    };
    let found = ask(&state, |reply| Command::Tasks {
        filter,
        page,
        reply,
    })
    .await?;
    Ok(crate::intake::request::paged(
        &uri,
        json!(found.items),
        found.next.as_deref(),
    ))
}

#[derive(Debug, Deserialize)]
pub(in crate::intake) struct FlowQuery {
    state: Option<String>,
    #[serde(flatten)]
    page: crate::intake::request::PageQuery,
}

/// `GET /v1/flows?state=active|done|failed|all`: a JSON array of the flows
/// in memory, in id order, a page at a time (active by default; the latest
/// finished for the others).
pub(in crate::intake) async fn flows(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    uri: axum::http::Uri,
    Query(q): Query<FlowQuery>,
) -> Result<Response, Refusal> {
    let filter = match q.state.as_deref() {
        None => FlowFilter::Active,
        Some(name) => FlowFilter::parse(name).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("state {name:?} is not active, done, failed or all"),
            )
            .field(Some("state".into()))
        })?,
    };
    let page = q.page.page()?;
    let found = ask(&state, |reply| Command::Flows {
        filter,
        page,
        reply,
    })
    .await?;
    Ok(crate::intake::request::paged(
        &uri,
        json!(found.items),
        found.next.as_deref(),
    ))
}

/// One action on a task; the body (optional) carries `note`, and for a
/// reassignment `team` or `agent`. Who acts is the token's identity.
/// `POST /v1/tasks/{id}/complete|fail|reassign`.
pub(in crate::intake) async fn act(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    Path((id, how)): Path<(String, String)>,
    body: Body,
) -> Result<Response, Refusal> {
    if !matches!(how.as_str(), "complete" | "fail" | "reassign") {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no task action {how:?}: complete, fail or reassign"),
        ));
    }
    let bytes = read_body(&state, body).await?;
    let v = if bytes.is_empty() {
        serde_json::Map::new()
    } else {
        json_body(&headers, &bytes)?
    };
    refuse_identity(&v)?;
    let note = optional_string(&v, "note")?.unwrap_or_default();
    let action = match how.as_str() {
        "complete" => TaskAction::Complete,
        "fail" => TaskAction::Fail,
        _ => {
            let team = optional_string(&v, "team")?;
            let agent = optional_string(&v, "agent")?;
            if team.is_none() && agent.is_none() {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "reassign needs `team` or `agent`",
                )
                .field(Some("team".into())));
            }
            TaskAction::Reassign { team, agent }
        }
    };
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .send(Command::TaskAct {
            task_id: id,
            action,
            actor: Actor::new(&who.name, who.role),
            note,
            reply: tx,
        })
        .map_err(busy)?;
    let task = engine_answer(rx).await?;
    Ok(ok(json!(task)))
}

/// `GET /v1/flows/{id}`: the flow's state and its steps (flows in memory:
/// every active one and the latest finished).
pub(in crate::intake) async fn flow(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let flow = ask(&state, |reply| Command::Flow {
        id: id.clone(),
        reply,
    })
    .await?;
    match flow {
        Some(flow) => Ok(ok(json!(flow))),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!(
                "no flow {id} in memory (finished flows are in the journal: signalbox explain)"
            ),
        )),
    }
}

/// `GET /v1/config`: the versions decisions are made under.
pub(in crate::intake) async fn versions(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
) -> Result<Response, Refusal> {
    let versions = ask(&state, |reply| Command::Versions { reply }).await?;
    Ok(ok(
        json!({ "versions": versions, "reloadable": state.reloader.is_some() }),
    ))
}

/// `POST /v1/config/reload` (lead role): reads the deployment directory
/// again and applies it whole, or refuses with every problem found.
pub(in crate::intake) async fn reload(
    State(state): State<AppState>,
    Allowed(who, _): Allowed<ToAct>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    if who.role < Role::Lead {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is {}; reloading the deployment needs lead",
                who.name,
                who.role.as_str()
            ),
        ));
    }
    // Who reloads is the token's; a body may carry a note (logged), never
    // an identity.
    let note = crate::intake::request::note_body(&state, &headers, body).await?;
    if !note.is_empty() {
        tracing::info!(by = %who.name, note = %note, "reload requested");
    }
    let Some(reloader) = state.reloader.clone() else {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "this server runs the demo, not a deployment directory: nothing to reload",
        ));
    };
    match crate::intake::reload::reload(&*reloader, &state.engine, Actor::new(&who.name, who.role))
        .await
    {
        Ok(versions) => Ok(ok(json!({ "reloaded": true, "versions": versions }))),
        Err(ReloadError::Invalid(problems)) => {
            let list = problems;
            Err(Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the deployment has {} problem(s); the running one stays",
                    list.len()
                ),
            )
            .problems(list))
        }
        Err(ReloadError::Busy(b)) => Err(busy(b)),
        Err(ReloadError::Engine(e)) => Err(e.into()),
        Err(ReloadError::Gone) => {
            Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped").retry_later())
        }
    }
}
