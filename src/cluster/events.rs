//! The cluster's event stream: each partition's owner publishes its
//! engine's events to `SB_EVENTS` (`publish`), and every node follows that
//! stream into its own hub (`follow`), numbered by stream sequence, so
//! `GET /v1/events` on any node carries the whole cluster's events and an
//! id from one node resumes on another.
//!
//! An event goes out once its commit is in the decision stream (the
//! engine numbers them in its journal, so a successor goes on with the
//! next number), under the message id `<partition>.<event id>`: an owner
//! publishing again what it is not sure went out repeats nothing. The
//! record is the decision stream; an owner that dies between its commit
//! and its events' publication leaves them out of this stream (a console
//! refetches `GET /v1/state` after a `reset`, and the state is whole).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage as Publish;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::mpsc::UnboundedReceiver;

use super::bus::{self, Bus};
use crate::engine::EngineEvent;
use crate::intake::events::EventHub;

/// Events taken into the node's hub at once, at most.
const FOLLOW_BATCH: usize = 512;

/// Publishes a partition's events, batch by batch as its engine commits
/// them, until the partition stops (its hub's tap is dropped).
pub async fn publish(
    bus: Bus,
    partition: u32,
    mut batches: UnboundedReceiver<Vec<(u64, EngineEvent)>>,
) {
    let subject = bus::event_subject(partition);
    let examples = bus::model_subject(partition);
    while let Some(batch) = batches.recv().await {
        let mut acks = Vec::with_capacity(batch.len());
        for (id, event) in batch {
            let body = match serde_json::to_vec(&event) {
                Ok(body) => body,
                Err(e) => {
                    tracing::warn!(partition, id, error = %e, "an event could not be written");
                    continue;
                }
            };
            // A labelled example also goes to the model stream, which
            // every partition's model learns from (`super::model`).
            if let EngineEvent::Learned(example) = &event
                && let Ok(body) = serde_json::to_vec(example)
            {
                let message = Publish::build()
                    .payload(body.into())
                    .message_id(format!("{partition}.{id}"));
                match bus.js.send_publish(examples.clone(), message).await {
                    Ok(ack) => acks.push((id, ack)),
                    Err(e) => tracing::warn!(partition, id, error = %e, "publishing an example"),
                }
            }
            let message = Publish::build()
                .payload(body.into())
                .message_id(format!("{partition}.{id}"));
            match bus.js.send_publish(subject.clone(), message).await {
                Ok(ack) => acks.push((id, ack)),
                Err(e) => tracing::warn!(partition, id, error = %e, "publishing an event"),
            }
        }
        for (id, ack) in acks {
            match tokio::time::timeout(Duration::from_secs(5), ack).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(partition, id, error = %e, "publishing an event"),
                Err(_) => tracing::warn!(partition, id, "an event was not acknowledged in 5 s"),
            }
        }
    }
}

/// The node's hub for the whole cluster: its ids are the event stream's
/// sequences, going on from the stream's end now. `follow` fills it.
pub async fn hub(bus: &Bus) -> Result<Arc<EventHub>, String> {
    let info = bus
        .events
        .get_info()
        .await
        .map_err(|e| format!("stream {}: {e}", bus::EVENTS))?;
    Ok(EventHub::new(info.state.last_sequence))
}

/// Reads the event stream into `hub` as it grows: direct gets from any
/// replica, woken by the stream's own publications (and every second, in
/// case a wake-up was missed), for as long as the node runs.
pub async fn follow(bus: Bus, hub: Arc<EventHub>) {
    let mut after = hub.last_id();
    let mut wake = match bus.client.subscribe(bus::ALL_EVENTS).await {
        Ok(wake) => Some(wake),
        Err(e) => {
            tracing::warn!(error = %e, "the event stream is read every second, unwoken");
            None
        }
    };
    loop {
        after = read_after(&bus, &hub, after).await;
        let woken = async {
            match wake.as_mut() {
                Some(wake) => {
                    wake.next().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // One read takes every publication waiting; their wake-ups are
        // spent with it.
        if let Some(wake) = wake.as_mut() {
            while let Some(Some(_)) = wake.next().now_or_never() {}
        }
    }
}

/// Publishes into `hub` what the stream holds after `after`; the last
/// sequence read.
async fn read_after(bus: &Bus, hub: &EventHub, mut after: u64) -> u64 {
    let mut batch = Vec::new();
    loop {
        match Bus::next_of(&bus.events, bus::ALL_EVENTS, after + 1).await {
            Ok(Some(message)) => {
                after = message.sequence;
                match serde_json::from_slice::<EngineEvent>(&message.payload) {
                    Ok(event) => batch.push((message.sequence, event)),
                    Err(e) => tracing::warn!(
                        sequence = message.sequence,
                        error = %e,
                        "an event in the stream could not be read; skipped"
                    ),
                }
                if batch.len() >= FOLLOW_BATCH {
                    hub.publish(std::mem::take(&mut batch));
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reading the event stream");
                break;
            }
        }
    }
    if !batch.is_empty() {
        hub.publish(batch);
    }
    after
}
