//! The endpoints. Each handler takes its caller from the `Allowed`
//! extractor (the bearer token, checked against what the endpoint needs)
//! and answers `Result<Response, Refusal>`; the router's middleware counts
//! every refusal by endpoint.

pub(super) mod ops;
pub(super) mod quarantine;
pub(super) mod reviews;
pub(super) mod signals;
pub(super) mod webhooks;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A 200 with a JSON body.
fn ok(body: serde_json::Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}
