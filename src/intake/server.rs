//! Serving the intake's router over HTTP/1.1 with the limits a service
//! facing untrusted clients needs, which `axum::serve` does not set: a
//! deadline for a request's headers (which is also how long an idle
//! keep-alive connection is kept), a cap on connections open at once, and
//! a bounded graceful shutdown that drains what is in flight and then
//! closes whatever is left, a client holding a half-sent request included.
//! (The body's deadline is `read_body`'s, per request.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::slots::ConnectionSlot;

/// Headers hyper parses before it answers a bare 431 itself; the router
/// refuses more than `intake::MAX_HEADERS` with a JSON one.
pub const MAX_HEADERS: usize = 1024;

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's headers must arrive within this; an idle keep-alive
    /// connection is closed after it.
    pub header_timeout: Duration,
    /// Connections open at once; more wait in the listen queue.
    pub max_connections: usize,
    /// How long a stopping server lets requests in flight finish.
    pub drain: Duration,
    /// Event streams open at once, and per token (`slots`).
    pub max_streams: usize,
    pub max_streams_per_token: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain: Duration::from_secs(5),
            max_streams: super::slots::DEFAULT_MAX_STREAMS,
            max_streams_per_token: super::slots::DEFAULT_MAX_STREAMS_PER_TOKEN,
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves, then drains for at
/// most `limits.drain`.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .max_headers(MAX_HEADERS)
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        // A slot first: past the cap, connections wait in the kernel's
        // queue instead of each holding a task and a buffer here.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment, go on.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        // Each request carries its connection's slot: an event stream
        // gives it back (`slots`), so long-lived streams do not hold
        // request capacity.
        let slot = ConnectionSlot::new(slot);
        let held = slot.clone();
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(held.clone());
                request
            },
        ));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended");
            }
            drop(slot);
        });
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!(
                open = connections.len(),
                seconds = limits.drain.as_secs(),
                "closing the connections still open after the drain deadline"
            );
        }
    }
    connections.abort_all();
}
