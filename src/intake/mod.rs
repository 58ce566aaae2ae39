//! HTTP intake (axum): CloudEvents, Alertmanager and PagerDuty v2 in;
//! health, Prometheus metrics, explanations and review actions for chat-ops.
//!
//! A request is answered 202 only after its signals are committed to the
//! intake log (`log`), from which the engine decides them in order; what
//! became of a signal is at `GET /v1/signals/{id}`. Every refusal is a JSON
//! error naming the field where there is one, and is counted in `/metrics`.

pub mod auth;
pub mod events;
pub mod file;
mod handlers;
pub use crate::journal::intake_log as log;
pub mod metrics;
pub mod notify;
pub mod pager;
pub mod probe;
mod refusal;
pub mod reload;
mod request;
pub mod server;
pub mod service;
pub mod slots;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::sync::oneshot;

use crate::engine::host::Handle;
use auth::Tokens;
use handlers::{
    incidents, ops, pages, quarantine, ramp, reviews, signals, silences, stream, tasks, webhooks,
};
pub use refusal::Refusal;
use refusal::Refused;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
pub const BODY_LIMIT: usize = 1 << 20;
/// The header a cluster node names a new silence's id with, so that every
/// partition holds it under the same id (`cluster::api`); a UUID.
pub const SILENCE_ID: &str = "sb-silence-id";
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
    /// The deployment directory being served (none for the demo).
    pub reloader: Option<Arc<dyn reload::Served>>,
    /// The advisor, for decisions in words (none without `[advisor]`).
    pub words: Option<Arc<dyn Words>>,
    /// The engine's events, numbered (none in the console's own intake).
    pub events: Option<Arc<events::EventHub>>,
    /// Capacity for event streams, apart from the connection slots.
    pub streams: Arc<slots::StreamSlots>,
    /// On a cluster node: signals are published to the cluster's stream
    /// instead of this process's intake log (none: a single process).
    pub cluster: Option<Arc<dyn Replicate>>,
}

/// A cluster node's intake as the intake needs it (the cluster lives
/// above it): signals published to the replicated signal stream, resolved
/// once every one is acknowledged there.
pub trait Replicate: Send + Sync {
    fn publish(
        &self,
        signals: Vec<crate::signal::Signal>,
    ) -> futures_util::future::BoxFuture<'static, Result<(), String>>;
}

/// The advisor as the intake needs it (it lives above the intake): a
/// decision in words (blocking: call from a blocking context), and its
/// breaker for Health and `/metrics`.
pub trait Words: Send + Sync {
    fn words(&self, e: &crate::journal::read::Explanation) -> Result<serde_json::Value, String>;
    fn health(&self) -> crate::engine::overview::AdvisorRow;
}

/// The endpoints that take signals in, in every wire format.
fn ingest_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/signals", post(signals::ingest_cloudevents))
        .route("/v1/alertmanager", post(webhooks::alertmanager_webhook))
        .route("/v2/enqueue", post(webhooks::enqueue))
        .route("/v2/change/enqueue", post(webhooks::change_enqueue))
}

/// A cluster node's router: the signal endpoints (publishing to the
/// cluster, `AppState::cluster`), the event stream (the cluster's, in
/// `AppState::events`), and the node's own (`routes`, whose fallback asks
/// the partitions), with the same refusals and counting as `router`.
pub fn cluster_router(state: AppState, routes: Router<AppState>) -> Router {
    ingest_routes()
        .route("/v1/events", get(stream::events))
        .route("/v1/me", get(stream::me))
        .merge(routes)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_refusals,
        ))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    std::sync::LazyLock::force(&handlers::silences::STARTED);
    let routes = ingest_routes()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/signals/{id}", get(signals::status))
        .route("/v1/decisions/{id}", get(ops::decision))
        .route("/v1/reviews", get(reviews::list))
        .route("/v1/reviews/{id}", get(reviews::one))
        .route("/v1/reviews/{id}/actions", post(reviews::act))
        .route("/v1/state", get(stream::state))
        .route("/v1/me", get(stream::me))
        .route("/v1/history", get(stream::history))
        .route("/v1/events", get(stream::events))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}/{action}", post(tasks::act))
        .route("/v1/flows", get(tasks::flows))
        .route("/v1/flows/{id}", get(tasks::flow))
        .route("/v1/config", get(tasks::versions))
        .route("/v1/config/reload", post(tasks::reload))
        .route("/v1/quarantine", get(quarantine::list))
        .route("/v1/quarantine/{id}/retry", post(quarantine::retry))
        .route("/v1/quarantine/{id}/drop", post(quarantine::drop))
        .route("/v1/ramp", get(ramp::state))
        .route("/v1/ramp/{call}", post(ramp::call))
        .route("/api/v2/status", get(silences::status))
        .route("/api/v2/silences", get(silences::list).post(silences::post))
        .route("/v1/silences/preview", get(silences::preview))
        .route(
            "/api/v2/silence/{id}",
            get(silences::one).delete(silences::expire),
        )
        .route("/v1/incidents", get(incidents::list))
        .route("/v1/incidents/{id}", get(incidents::one))
        .route("/v1/incidents/{id}/resolve", post(incidents::resolve))
        .route("/v1/pages", get(pages::list))
        .route("/v1/pages/{id}", get(pages::one))
        .route(
            "/v1/pages/{id}/{action}",
            post(pages::act).get(pages::signed),
        )
        .route("/v1/oncall", get(pages::oncall))
        .route("/v1/oncall/overrides", post(pages::add_override));
    finish(routes, state)
}

fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_refusals,
        ))
        .with_state(state)
}

/// The endpoint a path belongs to, as `/metrics` labels refusals.
fn endpoint_of(path: &str) -> &'static str {
    if path.starts_with("/v1/reviews/") && path.ends_with("/actions") {
        return "review_actions";
    }
    const ENDPOINTS: [(&str, &str); 10] = [
        ("/v1/signals", "signals"),
        ("/v1/alertmanager", "alertmanager"),
        ("/v2/enqueue", "enqueue"),
        ("/v2/change/enqueue", "change_enqueue"),
        ("/v1/decisions/", "decisions"),
        ("/v1/reviews", "reviews"),
        ("/v1/quarantine", "quarantine"),
        ("/v1/ramp", "ramp"),
        ("/metrics", "metrics"),
        ("/healthz", "healthz"),
    ];
    ENDPOINTS
        .iter()
        .find(|(prefix, _)| path == *prefix || path.starts_with(prefix))
        .map_or("unmatched", |(_, name)| name)
}

/// The router's 404 (made JSON and counted by `count_refusals`).
async fn not_found(uri: axum::http::Uri) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Most headers, and most bytes of headers, a request may carry. Hyper
/// answers a bare 431 only past `server::MAX_HEADERS` headers or its read
/// buffer (~400 KiB); below those, a request over these limits gets a JSON
/// 431 naming what was too large, like every other refusal.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

fn headers_too_large(headers: &axum::http::HeaderMap) -> Option<Refusal> {
    if headers.len() > MAX_HEADERS {
        return Some(
            Refusal::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "{} headers; at most {MAX_HEADERS} are accepted",
                    headers.len()
                ),
            )
            .field(Some("headers".into())),
        );
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (bytes > MAX_HEADER_BYTES).then(|| {
        Refusal::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("{bytes} bytes of headers; at most {MAX_HEADER_BYTES} are accepted"),
        )
        .field(Some("headers".into()))
    })
}

/// Every refusal is counted, by endpoint and status, and answers JSON: the
/// handlers' and extractors' own `Refusal`s already do; axum's (the
/// router's 404 and 405, a 400 on a malformed path or query) are made one.
async fn count_refusals(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let endpoint = endpoint_of(request.uri().path());
    if let Some(refused) = headers_too_large(request.headers()) {
        state.counters.refused(endpoint, 431);
        return axum::response::IntoResponse::into_response(refused);
    }
    let response = next.run(request).await;
    let status = response.status();
    if response.extensions().get::<Refused>().is_some() {
        state.counters.refused(endpoint, status.as_u16());
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Successes, and answers of our own that are not refusals (an
    // unavailable `/healthz`).
    if json || !(status.is_client_error() || status.is_server_error()) {
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
    state.counters.refused(endpoint, status.as_u16());
    let mut refused = axum::response::IntoResponse::into_response(Refusal::new(status, message));
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        refused.headers_mut().insert(header::ALLOW, allow.clone());
    }
    refused
}

/// Why the intake cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without any token: anyone who can reach it could inject signals \
         and act on reviews. Configure tokens (--token SECRET:ROLE:NAME, SIGNALBOX_TOKENS, or `tokens = [\"SECRET:ROLE:NAME\"]` \
         in signalbox.toml or config.toml), or listen on 127.0.0.1"
    )]
    Exposed(SocketAddr),
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot start the intake's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Refuses a listen address off loopback when no token is configured.
pub fn check_exposure(addr: &SocketAddr, tokens: &Tokens) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && tokens.is_empty() {
        return Err(ServeError::Exposed(*addr));
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
) -> Result<(SocketAddr, Server), ServeError> {
    check_exposure(&listen, &state.tokens)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(ServeError::Thread)?;
    let listen_error = |error| ServeError::Listen {
        addr: listen,
        error,
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("intake".into())
        .spawn(move || {
            runtime.block_on(server::run(listener, router(state), limits, async {
                let _ = stopped.await;
            }));
        })
        .map_err(ServeError::Thread)?;
    Ok((local, Server { stop, thread }))
}
