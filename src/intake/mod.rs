//! HTTP intake (axum): CloudEvents, Alertmanager and PagerDuty v2 in;
//! health, Prometheus metrics, explanations and review actions for chat-ops.
//!
//! A request is answered 202 only after its signals are committed to the
//! intake log (`log`), from which the engine decides them in order; what
//! became of a signal is at `GET /v1/signals/{id}`. Every refusal is a JSON
//! error naming the field where there is one, and is counted in `/metrics`.

pub mod auth;
pub mod file;
pub use crate::journal::intake_log as log;
pub mod metrics;
pub mod probe;
pub mod server;
pub mod service;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::engine::EngineError;
use crate::engine::host::{Busy, Command, Handle};
use crate::engine::quarantine::Release;
use crate::review::{Action, Actor};
use crate::signal::{Signal, alertmanager, pagerduty, wire};
use auth::{Permission, Tokens};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
pub const BODY_LIMIT: usize = 1 << 20;
/// A request's body must arrive within this (unless configured).
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub engine: Handle,
    pub log: log::IntakeLog,
    pub tokens: Arc<Tokens>,
    pub counters: metrics::IntakeCounters,
    pub body_limit: usize,
    pub body_timeout: std::time::Duration,
}

/// A refusal: status, message, and the field at fault if there is one.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after: bool,
    /// Answered in PagerDuty's error shape, with this in `errors`.
    pagerduty: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            field: None,
            retry_after: false,
            pagerduty: None,
        }
    }

    fn field(mut self, field: Option<String>) -> Refusal {
        self.field = field;
        self
    }

    fn pagerduty(mut self, error: String) -> Refusal {
        self.pagerduty = Some(error);
        self
    }

    /// Tells the client when to try again (503s: the engine is behind or away).
    fn retry_later(mut self) -> Refusal {
        self.retry_after = true;
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = match &self.pagerduty {
            Some(error) => json!({
                "status": "invalid event", "message": self.message, "errors": [error],
                "error": error,
            }),
            None => json!({ "error": self.message, "status": self.status.as_u16() }),
        };
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn busy(b: Busy) -> Refusal {
    match b {
        Busy::Full => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine's queue is full; retry shortly",
        )
        .retry_later(),
        Busy::Gone => {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the engine has stopped").retry_later()
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/signals", post(signals))
        .route("/v1/signals/{id}", get(signal_status))
        .route("/v1/alertmanager", post(alertmanager_hook))
        .route("/v2/enqueue", post(enqueue))
        .route("/v2/change/enqueue", post(change_enqueue))
        .route("/v1/decisions/{id}", get(decision))
        .route("/v1/reviews", get(reviews))
        .route("/v1/reviews/{id}/actions", post(review_action))
        .route("/v1/quarantine", get(quarantine_list))
        .route("/v1/quarantine/{id}/retry", post(quarantine_retry))
        .route("/v1/quarantine/{id}/drop", post(quarantine_drop))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            json_refusals,
        ))
        .with_state(state)
}

/// The endpoint a path belongs to, as `/metrics` labels refusals.
fn endpoint_of(path: &str) -> &'static str {
    const ENDPOINTS: [(&str, &str); 9] = [
        ("/v1/signals", "signals"),
        ("/v1/alertmanager", "alertmanager"),
        ("/v2/enqueue", "enqueue"),
        ("/v2/change/enqueue", "change_enqueue"),
        ("/v1/decisions/", "decisions"),
        ("/v1/reviews", "reviews"),
        ("/v1/quarantine", "quarantine"),
        ("/metrics", "metrics"),
        ("/healthz", "healthz"),
    ];
    ENDPOINTS
        .iter()
        .find(|(prefix, _)| path == *prefix || path.starts_with(prefix))
        .map_or("unmatched", |(_, name)| name)
}

/// The router's 404 (made JSON and counted by `json_refusals`).
async fn not_found(uri: axum::http::Uri) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Every refusal answers JSON and is counted: the handlers' own are
/// already; this turns the rest (the router's 405, an extractor's 400 on a
/// malformed path or query) into the same shape.
async fn json_refusals(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let endpoint = endpoint_of(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        text
    };
    let mut refused = refuse(&state, endpoint, Refusal::new(status, message));
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        refused.headers_mut().insert(header::ALLOW, allow.clone());
    }
    refused
}

/// The request's body, within the size limit and the deadline.
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Refusal> {
    match tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, state.body_limit),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            // Over the limit, or the client broke off mid-body.
            let e = e.into_inner();
            let over = e.is::<http_body_util::LengthLimitError>();
            Err(if over {
                Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body over the limit of {} bytes", state.body_limit),
                )
            } else {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("the body could not be read: {e}"),
                )
            })
        }
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                state.body_timeout.as_secs()
            ),
        )),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_lowercase())
        .unwrap_or_default()
}

/// A header's value as text. The HTTP binding asks senders to
/// percent-encode anything outside printable ASCII, but some SDKs send raw
/// bytes: UTF-8 is read as such, anything else as ISO-8859-1 (HTTP's old
/// default), so no value is refused for its bytes alone.
fn header_text(value: &HeaderValue) -> String {
    let bytes = value.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// What an accepted request answers: the ids of its signals, now durable in
/// the intake log, and how many signals wait to be decided before them.
struct Accepted {
    ids: Vec<String>,
    backlog: u64,
}

/// Appends signals to the intake log and waits until they are durable.
async fn ingest(
    state: &AppState,
    endpoint: &'static str,
    signals: Vec<Signal>,
) -> Result<Accepted, Refusal> {
    let ids: Vec<String> = signals.iter().map(|s| s.id.clone()).collect();
    if signals.is_empty() {
        // An empty batch is valid, and there is nothing to make durable.
        return Ok(Accepted {
            ids,
            backlog: state.log.backlog(),
        });
    }
    let durable = state.log.append(&signals).map_err(|r| match r {
        log::Refused::Full { backlog } => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{backlog} signals wait to be decided; retry shortly"),
        )
        .retry_later(),
        log::Refused::Gone => {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the intake log has stopped")
                .retry_later()
        }
        log::Refused::Halted(why) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the engine stopped deciding ({why}); signals are not taken until it restarts"),
        )
        .retry_later(),
        log::Refused::Stuck(silent) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the engine has not come round to decide for {} s; signals are not taken until it does",
                silent.as_secs()
            ),
        )
        .retry_later(),
        log::Refused::Unwritable(e) => Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("a signal could not be written: {e}"),
        ),
    })?;
    durable
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the intake log stopped before committing",
            )
        })?
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    state.counters.accepted(endpoint, ids.len() as u64);
    Ok(Accepted {
        ids,
        backlog: state.log.backlog(),
    })
}

fn accepted(a: &Accepted) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "accepted": a.ids.len(),
            "ids": a.ids,
            "backlog": a.backlog,
        })),
    )
        .into_response()
}

fn refuse(state: &AppState, endpoint: &'static str, r: Refusal) -> Response {
    state.counters.refused(endpoint, r.status.as_u16());
    r.into_response()
}

async fn signals(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match signals_inner(&state, &headers, body).await {
        Ok(r) => r,
        Err(r) => refuse(&state, "signals", r),
    }
}

async fn signals_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    state.tokens.check(headers, None, Permission::Ingest)?;
    let bytes = read_body(state, body).await?;
    let now = Utc::now();
    let ct = content_type(headers);
    let bad =
        |e: wire::WireError| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()).field(e.field());
    // Binary mode: the attributes are headers, whatever the body's type.
    let binary =
        headers.contains_key("ce-specversion") && !ct.starts_with("application/cloudevents");
    let parsed = if binary {
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.as_str().to_lowercase(), value))
            .filter(|(name, _)| name.starts_with("ce-"))
            .map(|(name, value)| (name, header_text(value)))
            .collect();
        let content_type = headers.get(header::CONTENT_TYPE).map(header_text);
        wire::binary(&pairs, content_type.as_deref(), &bytes, now)
            .map(|s| vec![s])
            .map_err(bad)?
    } else {
        match ct.as_str() {
            "application/cloudevents+json" => wire::structured(&bytes, now, false).map_err(bad)?,
            "application/cloudevents-batch+json" => wire::batch(&bytes, now).map_err(bad)?,
            "application/json" => wire::structured(&bytes, now, true).map_err(bad)?,
            other => {
                return Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "content type {:?} is not accepted: use application/cloudevents+json, \
                         application/cloudevents-batch+json, application/json or binary mode \
                         (ce-specversion and the other attributes as ce-* headers)",
                        other
                    ),
                ));
            }
        }
    };
    let report = ingest(state, "signals", parsed).await?;
    Ok(accepted(&report))
}

/// `?source=`: which producer's signal, where several used one id.
#[derive(serde::Deserialize)]
struct SourceQuery {
    source: Option<String>,
}

/// What became of a signal: the decision taken on it, its quarantine, or
/// that it is not decided yet (still queued in the intake log, or never
/// received).
async fn signal_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<SourceQuery>,
) -> Response {
    if let Err(r) = state.tokens.check(&headers, None, Permission::Read) {
        return refuse(&state, "signals", r);
    }
    let lookup = id.clone();
    let found = read_journal(&state, move |dir| {
        crate::journal::read::signal_state(dir, &lookup, query.source.as_deref())
    })
    .await;
    use crate::journal::read::SignalState;
    let ok = |body: Value| (StatusCode::OK, axum::Json(body)).into_response();
    match found {
        Ok(SignalState::Decided { source, decision }) => ok(json!({
            "id": id, "source": source, "state": "decided", "decision": decision
        })),
        Ok(SignalState::Quarantined(q)) => ok(json!({
            "id": id, "source": q.source,
            "state": match q.state {
                crate::journal::QuarantineState::Dropped => "dropped",
                _ => "quarantined",
            },
            "error": q.error, "since": q.time,
        })),
        Ok(SignalState::Ambiguous(sources)) => refuse(
            &state,
            "signals",
            Refusal::new(
                StatusCode::CONFLICT,
                format!(
                    "several sources sent a signal `{id}` ({}): ask with ?source=",
                    sources.join(", ")
                ),
            )
            .field(Some("source".into())),
        ),
        Ok(SignalState::Pending { .. } | SignalState::Unknown) => refuse(
            &state,
            "signals",
            Refusal::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no decision on signal `{id}`: not received, or among the {} still queued",
                    state.log.backlog()
                ),
            ),
        ),
        Err(r) => refuse(&state, "signals", r),
    }
}

/// The signals held in quarantine, newest first.
async fn quarantine_list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = state.tokens.check(&headers, None, Permission::Read) {
        return refuse(&state, "quarantine", r);
    }
    let found = read_journal(&state, |dir| {
        crate::journal::read::quarantine(
            dir,
            Some(crate::journal::QuarantineState::Held),
            QUARANTINE_LIST,
        )
    })
    .await;
    match found {
        Ok(items) => (StatusCode::OK, axum::Json(json!({ "items": items }))).into_response(),
        Err(r) => refuse(&state, "quarantine", r),
    }
}

/// Most quarantined signals one `GET /v1/quarantine` lists.
const QUARANTINE_LIST: i64 = 1000;

async fn quarantine_retry(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    query: Query<SourceQuery>,
    body: Body,
) -> Response {
    quarantine_action(state, headers, id, query, body, Release::Retry).await
}

async fn quarantine_drop(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    query: Query<SourceQuery>,
    body: Body,
) -> Response {
    quarantine_action(state, headers, id, query, body, Release::Drop).await
}

/// A lead's retry or drop of a quarantined signal; the body may carry a
/// `note`, the identity is the token's.
async fn quarantine_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<SourceQuery>,
    body: Body,
    how: Release,
) -> Response {
    let result = async {
        let who = state.tokens.check(&headers, None, Permission::Act)?;
        let bytes = read_body(&state, body).await?;
        let note = if bytes.iter().all(u8::is_ascii_whitespace) {
            String::new()
        } else {
            let v = json_body(&headers, &bytes)?;
            refuse_identity(&v)?;
            optional_string(&v, "note")?.unwrap_or_default()
        };
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
        use crate::engine::quarantine::Released;
        let body = match engine_answer(rx).await? {
            Released::Decided(decision) => {
                json!({"id": id, "state": "decided", "decision": decision})
            }
            Released::HeldAgain(error) => json!({"id": id, "state": "quarantined", "error": error}),
            Released::Dropped(q) => {
                json!({"id": q.signal_id, "source": q.source, "state": "dropped"})
            }
        };
        Ok((StatusCode::OK, axum::Json(body)).into_response())
    }
    .await;
    result.unwrap_or_else(|r| refuse(&state, "quarantine", r))
}

/// Runs a read of the journal off the async workers; a failed read (or a
/// panicked one) is a 500 naming why.
async fn read_journal<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&std::path::Path) -> Result<T, crate::journal::JournalError> + Send + 'static,
) -> Result<T, Refusal> {
    let dir = state.engine.data_dir.clone();
    let internal = |e: String| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e);
    tokio::task::spawn_blocking(move || read(&dir))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))
}

async fn alertmanager_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        state.tokens.check(&headers, None, Permission::Ingest)?;
        let ct = content_type(&headers);
        if !(ct.is_empty() || ct == "application/json") {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("expected application/json, not {ct}"),
            ));
        }
        let bytes = read_body(&state, body).await?;
        let parsed = alertmanager::parse(&bytes, Utc::now()).map_err(|e| {
            Refusal::new(StatusCode::BAD_REQUEST, e.to_string()).field(e.field().map(String::from))
        })?;
        let report = ingest(&state, "alertmanager", parsed).await?;
        Ok(accepted(&report))
    }
    .await;
    result.unwrap_or_else(|r| refuse(&state, "alertmanager", r))
}

/// A PagerDuty refusal, in PagerDuty's shape (`status`, `message`,
/// `errors`) with the field at fault beside it.
fn pagerduty_refusal(e: &crate::signal::SignalError) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "Event object is invalid")
        .field(e.field().map(String::from))
        .pagerduty(pagerduty::error_text(e))
}

/// Authenticates a PagerDuty sender: by bearer token if it sends one, else
/// by the routing key in the body (which is read, within the body limit,
/// before it can be checked: that is how PagerDuty's API authenticates).
fn pagerduty_caller(state: &AppState, headers: &HeaderMap, bytes: &[u8]) -> Result<(), Refusal> {
    let routing_key = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| {
        v.get("routing_key")
            .and_then(Value::as_str)
            .map(String::from)
    });
    state
        .tokens
        .check(headers, routing_key.as_deref(), Permission::Ingest)
        .map(|_| ())
}

fn pagerduty_body(headers: &HeaderMap) -> Result<(), Refusal> {
    let ct = content_type(headers);
    if ct.is_empty() || ct == "application/json" {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/json, not {ct}"),
        ))
    }
}

async fn enqueue(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        pagerduty_body(&headers)?;
        let bytes = read_body(&state, body).await?;
        pagerduty_caller(&state, &headers, &bytes)?;
        let parsed =
            pagerduty::parse(&bytes, Utc::now()).map_err(|e| pagerduty_refusal(&e))?;
        let dedup_key = parsed.dedup_key.clone();
        ingest(&state, "enqueue", vec![parsed.signal]).await?;
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key })),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(|r| refuse(&state, "enqueue", r))
}

async fn change_enqueue(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        pagerduty_body(&headers)?;
        let bytes = read_body(&state, body).await?;
        pagerduty_caller(&state, &headers, &bytes)?;
        let signal =
            pagerduty::parse_change(&bytes, Utc::now()).map_err(|e| pagerduty_refusal(&e))?;
        ingest(&state, "change_enqueue", vec![signal]).await?;
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "success", "message": "Change event processed" })),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(|r| refuse(&state, "change_enqueue", r))
}

/// How long `/healthz` waits for the engine to answer.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn healthz(State(state): State<AppState>) -> Response {
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
        None => (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            axum::Json(json!({ "status": "unavailable", "error": why })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = state.tokens.check(&headers, None, Permission::Read) {
        return refuse(&state, "metrics", r);
    }
    let (tx, rx) = oneshot::channel();
    let stats = match state.engine.send(Command::Status { reply: tx }) {
        Ok(()) => rx.await.unwrap_or_default(),
        Err(b) => return refuse(&state, "metrics", busy(b)),
    };
    let text = metrics::render(&state.counters, &stats, state.log.backlog(), &state.log);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = state.tokens.check(&headers, None, Permission::Read) {
        return refuse(&state, "decisions", r);
    }
    let lookup = id.clone();
    let found = read_journal(&state, move |dir| {
        crate::journal::read::explain(dir, &lookup)
    })
    .await;
    match found {
        Ok(Some(e)) => (
            StatusCode::OK,
            axum::Json(crate::journal::explain::to_json(&e)),
        )
            .into_response(),
        Ok(None) => refuse(
            &state,
            "decisions",
            Refusal::new(StatusCode::NOT_FOUND, format!("no decision `{id}`")),
        ),
        Err(r) => refuse(&state, "decisions", r),
    }
}

async fn reviews(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = state.tokens.check(&headers, None, Permission::Read) {
        return refuse(&state, "reviews", r);
    }
    let (tx, rx) = oneshot::channel();
    if let Err(b) = state.engine.send(Command::Reviews { reply: tx }) {
        return refuse(&state, "reviews", busy(b));
    }
    match rx.await {
        Ok(items) => {
            let items: Vec<Value> = items.iter().map(review_json).collect();
            (StatusCode::OK, axum::Json(json!({ "items": items }))).into_response()
        }
        Err(_) => refuse(
            &state,
            "reviews",
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped").retry_later(),
        ),
    }
}

/// One open review item as `GET /v1/reviews` lists it.
fn review_json(i: &crate::review::ReviewItem) -> Value {
    json!({
        "id": i.id, "decision": i.decision.id, "signal_type": i.decision.signal_type,
        "subject": i.decision.subject, "proposal": i.decision.proposal,
        "confidence": i.decision.confidence, "priority": i.priority.as_str(),
        "required_role": i.required_role.as_str(), "deadline": i.deadline,
        "alternatives": i.decision.options.iter().filter(|o| o.allowed).map(|o| &o.option).collect::<Vec<_>>(),
        "why": i.decision.why,
    })
}

async fn review_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let result = async {
        let who = state.tokens.check(&headers, None, Permission::Act)?;
        let bytes = read_body(&state, body).await?;
        let v = json_body(&headers, &bytes)?;
        refuse_identity(&v)?;
        let action_name = optional_string(&v, "action")?.ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "missing `action` (approve, override, reject, escalate, snooze, claim)",
            )
            .field(Some("action".into()))
        })?;
        let action = match action_name.as_str() {
            "approve" => Action::Approve,
            "override" => Action::Override {
                option: optional_string(&v, "option")?.ok_or_else(|| {
                    Refusal::new(StatusCode::BAD_REQUEST, "override needs `option`")
                        .field(Some("option".into()))
                })?,
            },
            "reject" => Action::Reject,
            "escalate" => Action::Escalate,
            "snooze" => Action::Snooze {
                minutes: snooze_minutes(&v)?,
            },
            "claim" => Action::Claim,
            other => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown action {other:?}: expected approve, override, reject, escalate, snooze or claim"
                    ),
                )
                .field(Some("action".into())));
            }
        };
        let note = optional_string(&v, "note")?.unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        state
            .engine
            .send(Command::Act {
                review_id: id,
                actor: Actor::new(&who.name, who.role),
                action,
                note,
                reply: tx,
            })
            .map_err(busy)?;
        let record = engine_answer(rx).await?;
        let body = json!({
            "review": record.review_id, "decision": record.decision_id,
            "action": record.action.name(), "actor": record.actor.name, "note": record.note,
        });
        Ok((StatusCode::OK, axum::Json(body)).into_response())
    }
    .await;
    result.unwrap_or_else(|r| refuse(&state, "review_actions", r))
}

/// Longest snooze, in minutes.
const MAX_SNOOZE: u64 = 240;

/// `minutes` of a snooze: a whole number from 1 to `MAX_SNOOZE`, 15 if absent.
fn snooze_minutes(v: &Map<String, Value>) -> Result<u32, Refusal> {
    let bad = |found: String| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("`minutes` must be a whole number from 1 to {MAX_SNOOZE}, found {found}"),
        )
        .field(Some("minutes".into()))
    };
    match v.get("minutes") {
        None | Some(Value::Null) => Ok(15),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(m @ 1..=MAX_SNOOZE) => Ok(m as u32),
            _ => Err(bad(n.to_string())),
        },
        Some(other) => Err(bad(crate::signal::json_kind(other).to_string())),
    }
}

/// A JSON object body: 415 for another content type, 400 for bad JSON or
/// JSON that is not an object.
fn json_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let ct = content_type(headers);
    if !(ct.is_empty() || ct == "application/json") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/json, not {ct}"),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be a JSON object, found {}",
                crate::signal::json_kind(&other)
            ),
        )),
        Err(e) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
        )),
    }
}

/// Who acts is the token's identity: a body that names one is refused
/// rather than ignored, so nobody believes they acted as someone else.
fn refuse_identity(v: &Map<String, Value>) -> Result<(), Refusal> {
    for field in ["actor", "role"] {
        if v.contains_key(field) {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "`{field}` is not accepted: who acts, and with which role, comes from the bearer token; \
                     the body may carry a note"
                ),
            )
            .field(Some(field.into())));
        }
    }
    Ok(())
}

/// An optional string field of a JSON body; any other type is refused.
fn optional_string(v: &Map<String, Value>, field: &str) -> Result<Option<String>, Refusal> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "`{field}` must be a string, found {}",
                crate::signal::json_kind(other)
            ),
        )
        .field(Some(field.into()))),
    }
}

/// The engine's answer to a command; its refusal as a `Refusal`.
async fn engine_answer<T>(rx: oneshot::Receiver<Result<T, EngineError>>) -> Result<T, Refusal> {
    match rx.await {
        Ok(answer) => answer.map_err(Refusal::from),
        Err(_) => {
            Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped").retry_later())
        }
    }
}

/// What the engine refuses, as HTTP says it: the one place where its errors
/// become status codes.
impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Refusal {
        use crate::engine::quarantine::QuarantineError;
        use crate::review::ReviewError;
        let status = match &e {
            EngineError::Review(ReviewError::NotFound(_))
            | EngineError::Quarantine(QuarantineError::NotHeld(_)) => StatusCode::NOT_FOUND,
            EngineError::Review(ReviewError::Viewer { .. } | ReviewError::RoleTooLow { .. })
            | EngineError::Quarantine(QuarantineError::NotALead(_)) => StatusCode::FORBIDDEN,
            EngineError::Review(ReviewError::AlreadyDecided { .. })
            | EngineError::Quarantine(QuarantineError::Ambiguous { .. }) => StatusCode::CONFLICT,
            EngineError::Review(_) => StatusCode::BAD_REQUEST,
            EngineError::NotDurable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let refusal = Refusal::new(status, e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refusal.retry_later()
        } else {
            refusal
        }
    }
}

/// Refuses a listen address off loopback when no token is configured.
pub fn check_exposure(addr: &SocketAddr, tokens: &Tokens) -> Result<(), String> {
    if !addr.ip().is_loopback() && tokens.is_empty() {
        return Err(format!(
            "refusing to listen on {addr} without any token: anyone who can reach it could inject signals \
             and act on reviews. Configure tokens (--token TOKEN:ROLE or [[token]] in config.toml), or listen on 127.0.0.1"
        ));
    }
    Ok(())
}

/// The intake running on a thread of its own (the console's).
pub struct Server {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    /// Stops taking connections, lets requests in progress finish, and
    /// waits for the thread (which drops its state, intake log included).
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the http intake thread panicked");
        }
    }
}

/// Runs the intake on its own thread (for the console): binds `listen` and
/// serves until stopped. Returns the bound address.
pub fn spawn_server(
    listen: SocketAddr,
    state: AppState,
    limits: server::Limits,
) -> Result<(SocketAddr, Server), String> {
    check_exposure(&listen, &state.tokens)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("intake".into())
        .spawn(move || {
            runtime.block_on(server::run(listener, router(state), limits, async {
                let _ = stopped.await;
            }));
        })
        .map_err(|e| e.to_string())?;
    Ok((local, Server { stop, thread }))
}
