//! The cluster's event stream: each partition's owner publishes its
//! engine's events to `SB_EVENTS` (`publish`), a batch as a few messages,
//! and every node follows that stream into its own hub (`follow`), each
//! event numbered by its message's stream sequence and its place in it
//! (`event_id`), so `GET /v1/events` on any node carries the whole
//! cluster's events and an id from one node resumes on another.
//!
//! Events go out once their commit is in the decision stream (the engine
//! numbers them in its journal, so a successor goes on with the next
//! number), under the message id `<partition>.<first event id>`: an owner
//! publishing again what it is not sure went out repeats nothing. The
//! record is the decision stream; an owner that dies between its commit
//! and its events' publication leaves them out of this stream (a console
//! refetches `GET /v1/state` after a `reset`, and the state is whole).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage as Publish;
use tokio::sync::mpsc::UnboundedReceiver;

use super::bus::{self, Bus};
use crate::engine::EngineEvent;
use crate::intake::events::EventHub;

/// Events in one message of the event stream, at most, and the bytes
/// past which a message takes no more: an engine's batch goes out as a
/// few messages, not one per event.
const PER_MESSAGE: usize = 4_096;
const MESSAGE_BYTES: usize = 256 * 1024;

/// An event's id in a node's hub: its message's stream sequence and its
/// place in the message (from 1), so that a `Last-Event-ID` from any node
/// names the same event.
fn event_id(sequence: u64, place: usize) -> u64 {
    (sequence << 16) | (place as u64 & 0xffff)
}

/// The id that stands for every event of the message at `sequence`.
fn whole(sequence: u64) -> u64 {
    event_id(sequence, 0xffff)
}

/// Publishes a partition's events, batch by batch as its engine commits
/// them, until the partition stops (its hub's tap is dropped). A batch
/// goes out as messages of up to `PER_MESSAGE` events (a JSON array), each
/// under the message id `<partition>.<first event id>`.
pub async fn publish(
    bus: Bus,
    partition: u32,
    mut batches: UnboundedReceiver<Vec<(u64, EngineEvent)>>,
) {
    let subject = bus::event_subject(partition);
    let examples = bus::model_subject(partition);
    while let Some(batch) = batches.recv().await {
        let mut acks = Vec::new();
        let mut chunk: Vec<u8> = Vec::with_capacity(MESSAGE_BYTES);
        let (mut first, mut count) = (0, 0);
        for (id, event) in batch {
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
            let mark = chunk.len();
            chunk.push(if count == 0 { b'[' } else { b',' });
            if let Err(e) = serde_json::to_writer(&mut chunk, &event) {
                chunk.truncate(mark);
                tracing::warn!(partition, id, error = %e, "an event could not be written");
                continue;
            }
            if count == 0 {
                first = id;
            }
            count += 1;
            if count >= PER_MESSAGE || chunk.len() >= MESSAGE_BYTES {
                acks.extend(send(&bus, &subject, partition, first, &mut chunk).await);
                count = 0;
            }
        }
        if count > 0 {
            acks.extend(send(&bus, &subject, partition, first, &mut chunk).await);
        }
        for (id, ack) in acks {
            match tokio::time::timeout(Duration::from_secs(5), ack).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(partition, id, error = %e, "publishing events"),
                Err(_) => tracing::warn!(partition, id, "events were not acknowledged in 5 s"),
            }
        }
    }
}

/// Sends one message of events (the array in `chunk`, closed here and
/// emptied); its acknowledgement to wait for.
async fn send(
    bus: &Bus,
    subject: &str,
    partition: u32,
    first: u64,
    chunk: &mut Vec<u8>,
) -> Option<(u64, async_nats::jetstream::context::PublishAckFuture)> {
    chunk.push(b']');
    let body = bytes::Bytes::copy_from_slice(chunk);
    chunk.clear();
    let message = Publish::build()
        .payload(body)
        .message_id(format!("{partition}.{first}"));
    match bus.js.send_publish(subject.to_string(), message).await {
        Ok(ack) => Some((first, ack)),
        Err(e) => {
            tracing::warn!(partition, first, error = %e, "publishing events");
            None
        }
    }
}

/// The node's hub for the whole cluster: its ids are the event stream's
/// positions (`event_id`), going on from the stream's end now. `follow`
/// fills it.
pub async fn hub(bus: &Bus) -> Result<Arc<EventHub>, String> {
    let info = bus
        .events
        .get_info()
        .await
        .map_err(|e| format!("stream {}: {e}", bus::EVENTS))?;
    Ok(EventHub::new(whole(info.state.last_sequence)))
}

/// Reads the event stream into `hub` as it grows: direct gets from any
/// replica, woken by the stream's own publications (and every second, in
/// case a wake-up was missed), for as long as the node runs.
pub async fn follow(bus: Bus, hub: Arc<EventHub>) {
    let mut after = hub.last_id() >> 16;
    let mut wake = bus.wake_on(bus::ALL_EVENTS, "the event stream").await;
    loop {
        after = read_after(&bus, &hub, after).await;
        wake.wait().await;
    }
}

/// Publishes into `hub` the events of the messages after the one at
/// `after`; the last sequence read.
async fn read_after(bus: &Bus, hub: &EventHub, mut after: u64) -> u64 {
    loop {
        match Bus::next_of(&bus.events, bus::ALL_EVENTS, after + 1).await {
            Ok(Some(message)) => {
                after = message.sequence;
                match serde_json::from_slice::<Vec<EngineEvent>>(&message.payload) {
                    Ok(events) => {
                        let numbered = events
                            .into_iter()
                            .take(0xfffe)
                            .enumerate()
                            .map(|(i, event)| (event_id(message.sequence, i + 1), event))
                            .collect();
                        // A client anywhere in the message before reads
                        // on here without a gap.
                        let prev = event_id(message.sequence.saturating_sub(1), 0);
                        hub.publish_after(Some(prev), numbered);
                    }
                    Err(e) => tracing::warn!(
                        sequence = message.sequence,
                        error = %e,
                        "events in the stream could not be read; skipped"
                    ),
                }
            }
            Ok(None) => return after,
            Err(e) => {
                tracing::warn!(error = %e, "reading the event stream");
                return after;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[tokio::test]
    async fn a_client_between_two_messages_reads_on_without_a_reset() {
        let hub = EventHub::new(whole(6));
        let event = || EngineEvent::Settled {
            decision_id: "D0000101".into(),
            option: "acknowledge".into(),
            at: chrono::Utc::now(),
        };
        let seven = vec![(event_id(7, 1), event()), (event_id(7, 2), event())];
        hub.publish_after(Some(event_id(6, 0)), seven);
        let eight = vec![(event_id(8, 1), event())];
        hub.publish_after(Some(event_id(7, 0)), eight);
        let body = |after: u64| {
            let hub = Arc::clone(&hub);
            async move {
                let slot = crate::intake::slots::StreamSlots::new(4, 4)
                    .take("t")
                    .unwrap();
                let response =
                    crate::intake::events::stream(&hub, Some(after), &Default::default(), slot);
                let mut body = response.into_body().into_data_stream();
                let chunk = tokio::time::timeout(Duration::from_secs(2), body.next()).await;
                String::from_utf8_lossy(&chunk.unwrap().unwrap().unwrap()).to_string()
            }
        };
        // After the last event of message 7: message 8 follows, no reset.
        let text = body(event_id(7, 2)).await;
        assert!(text.contains(&format!("id: {}", event_id(8, 1))), "{text}");
        assert!(!text.contains("reset"), "{text}");
        // From where the hub began: everything.
        let text = body(whole(6)).await;
        assert!(text.contains(&format!("id: {}", event_id(7, 1))), "{text}");
    }

    #[test]
    fn an_events_id_orders_by_message_then_place() {
        assert!(event_id(7, 1) < event_id(7, 2));
        assert!(event_id(7, 4_096) < whole(7));
        assert!(whole(7) < event_id(8, 1));
        assert_eq!(whole(7) >> 16, 7);
    }
}
