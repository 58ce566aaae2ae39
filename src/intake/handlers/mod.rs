//! The endpoints. Each handler takes its caller from the `Allowed`
//! extractor (the bearer token, checked against what the endpoint needs)
//! and answers `Result<Response, Refusal>`; the router's middleware counts
//! every refusal by endpoint.

pub(super) mod incidents;
pub(super) mod ops;
pub(super) mod pages;
pub(super) mod quarantine;
pub(super) mod ramp;
pub(super) mod reviews;
pub(super) mod signals;
pub(super) mod silences;
pub(super) mod stream;
pub(super) mod tasks;
pub(super) mod webhooks;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::AppState;
use super::refusal::{Refusal, busy};
use crate::engine::host::Command;

/// A 200 with a JSON body.
fn ok(body: serde_json::Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

/// Asks the engine something that needs no commit (its status, the open
/// items) and waits for the answer.
async fn ask<T>(
    state: &AppState,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, Refusal> {
    let (tx, rx) = oneshot::channel();
    state.engine.send(command(tx)).map_err(busy)?;
    rx.await.map_err(|_| {
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped").retry_later()
    })
}
