//! A node's HTTP side: the intake publishes to the signal stream
//! (`Publisher`, the intake's `Replicate`), and the node answers for
//! itself (`/healthz`, `/v1/cluster`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage as Publish};
use axum::Router;
use axum::routing::get;
use futures_util::future::BoxFuture;

use super::{Node, bus, partition_of};
use crate::intake::AppState;
use crate::intake::auth::{Allowed, ToRead};
use crate::signal::Signal;

/// How long a publish waits for the stream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes signals to the signal stream, each under its partition's
/// subject with `Nats-Msg-Id` the hash of its (source, id).
pub struct Publisher {
    js: jetstream::Context,
    partitions: u32,
}

impl Publisher {
    pub fn new(node: &Node) -> Publisher {
        Publisher {
            js: node.bus.js.clone(),
            partitions: node.settings.partitions,
        }
    }
}

impl crate::intake::Replicate for Publisher {
    fn publish(&self, signals: Vec<Signal>) -> BoxFuture<'static, Result<(), String>> {
        self.publish_round(signals, None)
    }
}

impl Publisher {
    /// Publishes `signals`; in a round of publishing again (`again`), each
    /// under a message id of that round: a stream that went back may still
    /// count the lost message's id as seen, and would drop the copy as a
    /// repeat. (The partition's engine knows a repeat by identity.)
    pub fn publish_round(
        &self,
        signals: Vec<Signal>,
        again: Option<u64>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let js = self.js.clone();
        let partitions = self.partitions;
        Box::pin(async move {
            let mut acks = Vec::with_capacity(signals.len());
            for signal in &signals {
                let body = serde_json::to_vec(signal).map_err(|e| e.to_string())?;
                let subject = bus::signal_subject(partition_of(signal, partitions));
                let id = match again {
                    None => format!("{:032x}", signal.identity()),
                    Some(round) => format!("{:032x}-{round}", signal.identity()),
                };
                let publish = Publish::build().payload(body.into()).message_id(id);
                let ack = js
                    .send_publish(subject, publish)
                    .await
                    .map_err(|e| format!("the cluster's signal stream: {e}"))?;
                acks.push(ack);
            }
            for ack in acks {
                tokio::time::timeout(PUBLISH_TIMEOUT, ack)
                    .await
                    .map_err(|_| {
                        "the cluster's signal stream did not acknowledge within 5 s".to_string()
                    })?
                    .map_err(|e| format!("the cluster's signal stream: {e}"))?;
            }
            Ok(())
        })
    }
}

/// The node's own endpoints: `/healthz` (ok once it reaches NATS; open,
/// as a single node's is) and `/v1/cluster` (members, the partitions it
/// runs, its takeovers; for a token that may read).
pub fn routes(node: Arc<Node>) -> Router<AppState> {
    let health = Arc::clone(&node);
    let front = Arc::clone(&node);
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let node = Arc::clone(&health);
                async move { axum::Json(health_of(&node)) }
            }),
        )
        .route(
            "/v1/cluster",
            // Read with a token that may read, as the other state is.
            get(move |_: Allowed<ToRead>| {
                let node = Arc::clone(&node);
                async move { axum::Json(cluster_of(&node)) }
            }),
        )
        // Everything else: asked of the partitions (`api`).
        .fallback(move |state, request| super::api::forward(Arc::clone(&front), state, request))
}

fn health_of(node: &Node) -> serde_json::Value {
    let view = node.view();
    let connected = node.bus.client.connection_state() == async_nats::connection::State::Connected;
    serde_json::json!({
        "status": if connected { "ok" } else { "degraded" },
        "node": node.settings.node,
        "nats": if connected { "connected" } else { "disconnected" },
        "partitions": view.owned.len(),
    })
}

fn cluster_of(node: &Node) -> serde_json::Value {
    let view = node.view();
    serde_json::json!({
        "node": node.settings.node,
        "partitions": node.settings.partitions,
        "lease_seconds": node.settings.lease.as_secs_f64(),
        "members": view.members,
        "owned": view.owned,
        "takeovers": view.takeovers,
    })
}
