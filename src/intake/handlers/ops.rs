//! For operations: health, Prometheus metrics, and a decision's
//! explanation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::oneshot;

use super::ok;
use crate::engine::host::{Busy, Command};
use crate::intake::auth::{Allowed, ToRead};
use crate::intake::refusal::{Refusal, busy};
use crate::intake::request::read_journal;
use crate::intake::{AppState, metrics};

/// How long `/healthz` waits for the engine to answer.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the intake takes signals and the engine answers. Unauthenticated
/// (load balancers ask it); an unavailable intake is not a refusal.
pub(in crate::intake) async fn healthz(State(state): State<AppState>) -> Response {
    let problem = match state.log.unavailable() {
        Some(why) => Some(why),
        None => {
            let (tx, rx) = oneshot::channel();
            match state.engine.send(Command::Status { reply: tx }) {
                Err(Busy::Gone) => Some("the engine has stopped".to_string()),
                Err(Busy::Full) => Some("the engine's queue is full".to_string()),
                Ok(()) => match tokio::time::timeout(HEALTH_WAIT, rx).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(_)) => Some("the engine has stopped".to_string()),
                    Err(_) => Some(format!(
                        "the engine did not answer within {} s",
                        HEALTH_WAIT.as_secs()
                    )),
                },
            }
        }
    };
    match problem {
        // The advisor's breaker is said, never a failure: without advice
        // everything goes on.
        None => match &state.words {
            Some(words) => ok(json!({ "status": "ok", "advisor": words.health() })),
            None => ok(json!({ "status": "ok" })),
        },
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            Json(json!({ "status": "unavailable", "error": why })),
        )
            .into_response(),
    }
}

pub(in crate::intake) async fn metrics(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
) -> Result<Response, Refusal> {
    // An engine that stopped after taking the question still leaves the
    // intake's own counters worth showing.
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .send(Command::Status { reply: tx })
        .map_err(busy)?;
    let stats = rx.await.unwrap_or_default();
    let text = metrics::render(
        &state.counters,
        &stats,
        state.log.backlog(),
        &state.log,
        state.events.as_deref(),
        state.words.as_ref().map(|w| w.health()).as_ref(),
    );
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// A decision explained, from the journal.
#[derive(Debug, serde::Deserialize)]
pub(in crate::intake) struct DecisionQuery {
    /// `text`: as `signalbox explain` prints it (what a console shows).
    format: Option<String>,
    /// `1`: in words, by the advisor, each sentence checked against the
    /// journal's facts it cites.
    words: Option<String>,
}

/// A decision in words, by the advisor: 503 without one, 502 when it
/// gave none.
async fn decision_in_words(state: AppState, id: String) -> Result<Response, Refusal> {
    let Some(words) = state.words.clone() else {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no advisor: add [advisor] (url, model) to signalbox.toml".to_string(),
        ));
    };
    let lookup = id.clone();
    let found = read_journal(&state, move |dir| {
        crate::journal::read::explain(dir, &lookup)
    })
    .await?;
    let Some(explanation) = found else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no decision `{id}`"),
        ));
    };
    let answer = tokio::task::spawn_blocking(move || words.words(&explanation))
        .await
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match answer {
        Ok(value) => Ok(ok(value)),
        Err(why) => Err(Refusal::new(StatusCode::BAD_GATEWAY, why)),
    }
}

pub(in crate::intake) async fn decision(
    State(state): State<AppState>,
    _: Allowed<ToRead>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<DecisionQuery>,
) -> Result<Response, Refusal> {
    let text = match q.format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("format {other:?} is not json or text"),
            )
            .field(Some("format".into())));
        }
    };
    let words = match q.words.as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("words {other:?} is not 1 or 0"),
            )
            .field(Some("words".into())));
        }
    };
    if words {
        return decision_in_words(state, id).await;
    }
    let lookup = id.clone();
    let found = read_journal(&state, move |dir| {
        crate::journal::read::explain(dir, &lookup)
    })
    .await?;
    match found {
        Some(e) if text => Ok(crate::journal::explain::render(&e).into_response()),
        Some(e) => Ok(ok(crate::journal::explain::to_json(&e))),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no decision `{id}`"),
        )),
    }
}
