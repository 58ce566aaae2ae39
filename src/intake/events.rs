//! The event stream: every engine event, numbered, once the journal holds
//! it, for consoles and scripts (`GET /v1/events`, Server-Sent Events).
//!
//! The hub keeps the newest `HELD` events and a broadcast channel. A client
//! that gives `Last-Event-ID` gets what followed it, then the live stream,
//! without a gap or a repeat; one whose id is older than what the hub holds
//! (or from before a restart) gets a `reset` event: fetch `GET /v1/state`
//! again and follow on from the id it names. A client that falls more than
//! `HELD` events behind is sent `lagged` and cut off: the engine never
//! waits for anyone.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast;

use crate::engine::EngineEvent;

/// Events held for clients that come back, at most.
pub const HELD: usize = 16_384;

/// One event as the stream sends it.
#[derive(Debug)]
pub struct Numbered {
    pub id: u64,
    /// The event's type: `decision`, `review_opened`, `flow`, ...
    pub name: String,
    /// The event as the stream's text (`id:`, `event:`, `data:` lines),
    /// made once for every client.
    pub frame: Bytes,
}

impl Numbered {
    fn new(id: u64, name: String, data: &str) -> Numbered {
        // JSON text has no raw newline, so one `data:` line carries it.
        let frame = Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"));
        Numbered { id, name, frame }
    }
}

/// Events written to a client in one chunk, at most.
const CHUNK: usize = 512;
/// A comment line goes out after this long without events, so proxies and
/// clients see the connection alive.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// Where published events wait for their clients.
pub struct EventHub {
    held: Mutex<Held>,
    live: broadcast::Sender<Arc<Numbered>>,
}

struct Held {
    events: VecDeque<Arc<Numbered>>,
    /// The last id published (or journaled before this process started).
    last: u64,
}

/// An event's JSON (`{"type":"NAME","data":DATA}`, as serde writes an
/// adjacently tagged enum, fields in that order) as its name and data.
fn split(json: &str) -> Option<(&str, &str)> {
    let rest = json.strip_prefix("{\"type\":\"")?;
    let (name, rest) = rest.split_once("\",\"data\":")?;
    Some((name, rest.strip_suffix('}')?))
}

/// Where a client starts.
pub enum Start {
    /// From these held events, then live.
    From(Vec<Arc<Numbered>>),
    /// Its id is not held: it must reload the state, then follow from `last`.
    Reset { last: u64 },
}

impl EventHub {
    /// A hub whose ids go on from `last` (the journal's last event id).
    pub fn new(last: u64) -> Arc<EventHub> {
        let (live, _) = broadcast::channel(HELD);
        Arc::new(EventHub {
            held: Mutex::new(Held {
                events: VecDeque::new(),
                last,
            }),
            live,
        })
    }

    /// Publishes numbered events: serialised here, on the caller's thread
    /// (the answerer's, not the engine's).
    pub fn publish(&self, events: Vec<(u64, EngineEvent)>) {
        let numbered: Vec<Arc<Numbered>> = events
            .into_iter()
            .filter_map(|(id, event)| {
                let json = serde_json::to_string(&event).ok()?;
                let (name, data) = split(&json)?;
                Some(Arc::new(Numbered::new(id, name.to_string(), data)))
            })
            .collect();
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        for event in numbered {
            held.last = held.last.max(event.id);
            if held.events.len() >= HELD {
                held.events.pop_front();
            }
            held.events.push_back(Arc::clone(&event));
            // Nobody listening is no error.
            let _ = self.live.send(event);
        }
    }

    /// Clients following the stream now.
    pub fn clients(&self) -> usize {
        self.live.receiver_count()
    }

    /// The id of the last event published.
    pub fn last_id(&self) -> u64 {
        self.held.lock().map_or(0, |h| h.last)
    }

    /// Where a client that last saw `after` starts, and its live feed;
    /// taken together under the lock, so nothing falls between them.
    pub fn subscribe(&self, after: Option<u64>) -> (Start, broadcast::Receiver<Arc<Numbered>>) {
        let Ok(held) = self.held.lock() else {
            return (Start::Reset { last: 0 }, self.live.subscribe());
        };
        let live = self.live.subscribe();
        let start = match after {
            None => Start::From(Vec::new()),
            Some(id) if id >= held.last => Start::From(Vec::new()),
            Some(id) => {
                let oldest = held.events.front().map_or(held.last + 1, |e| e.id);
                if id + 1 < oldest {
                    Start::Reset { last: held.last }
                } else {
                    Start::From(held.events.iter().filter(|e| e.id > id).cloned().collect())
                }
            }
        };
        (start, live)
    }
}

/// The stream for one client that last saw `after`: what the hub holds
/// after it, then the live events, written a chunk at a time (all that is
/// waiting, up to `CHUNK` events).
pub fn stream(hub: &EventHub, after: Option<u64>) -> Response {
    let (start, live) = hub.subscribe(after);
    let (backlog, sent) = match start {
        Start::From(events) => (events, after.unwrap_or(0)),
        Start::Reset { last } => {
            let data = serde_json::json!({
                "reason": "the events after your Last-Event-ID are no longer held: fetch GET /v1/state and follow on",
                "last": last,
            });
            (
                vec![Arc::new(Numbered::new(
                    last,
                    "reset".into(),
                    &data.to_string(),
                ))],
                last,
            )
        }
    };
    let state = Follow {
        backlog: backlog.into_iter(),
        live,
        sent,
        done: false,
    };
    let chunks = futures_util::stream::unfold(state, |mut f| async move {
        if f.done {
            return None;
        }
        let mut chunk = BytesMut::new();
        let mut n = 0;
        for e in f.backlog.by_ref().take(CHUNK) {
            f.sent = f.sent.max(e.id);
            chunk.extend_from_slice(&e.frame);
            n += 1;
        }
        if n == 0 {
            // Wait for the next event (or say the line is alive).
            match tokio::time::timeout(KEEP_ALIVE, f.live.recv()).await {
                Err(_) => return Some((Ok::<_, Infallible>(Bytes::from_static(b":\n\n")), f)),
                Ok(next) => match f.take(next, &mut chunk) {
                    Some(()) => n += 1,
                    None => return f.ended(chunk),
                },
            }
            // And whatever else is already waiting.
            while n < CHUNK {
                use broadcast::error::{RecvError, TryRecvError};
                let next = match f.live.try_recv() {
                    Ok(e) => Ok(e),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                };
                if f.take(next, &mut chunk).is_none() {
                    return f.ended(chunk);
                }
                n += 1;
            }
        }
        Some((Ok(chunk.freeze()), f))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// One client's place: what is left of its backlog, its live feed, the
/// last id it was sent.
struct Follow {
    backlog: std::vec::IntoIter<Arc<Numbered>>,
    live: broadcast::Receiver<Arc<Numbered>>,
    sent: u64,
    done: bool,
}

impl Follow {
    /// Adds a received event to the chunk (skipping one the backlog sent);
    /// `None` when the feed has ended or lagged (said in the chunk).
    fn take(
        &mut self,
        next: Result<Arc<Numbered>, broadcast::error::RecvError>,
        chunk: &mut BytesMut,
    ) -> Option<()> {
        match next {
            Ok(e) if e.id <= self.sent => Some(()),
            Ok(e) => {
                self.sent = e.id;
                chunk.extend_from_slice(&e.frame);
                Some(())
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                self.lagged(missed, chunk);
                None
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.done = true;
                None
            }
        }
    }

    /// Says the client fell behind, and ends its stream.
    fn lagged(&mut self, missed: u64, chunk: &mut BytesMut) {
        let data = serde_json::json!({
            "reason": "this client fell behind the engine; reconnect with Last-Event-ID",
            "missed": missed, "last_sent": self.sent,
        });
        chunk.extend_from_slice(format!("event: lagged\ndata: {data}\n\n").as_bytes());
        self.done = true;
    }

    /// The stream's last chunk, if it has anything.
    fn ended(mut self, chunk: BytesMut) -> Option<(Result<Bytes, Infallible>, Follow)> {
        self.done = true;
        (!chunk.is_empty()).then(|| (Ok(chunk.freeze()), self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_splits_into_its_name_and_data() {
        let event = EngineEvent::Reloaded(crate::engine::reload::Versions {
            policy: "1".into(),
            model: "m".into(),
            rules: "r".into(),
        });
        let json = serde_json::to_string(&event).unwrap();
        let (name, data) = split(&json).unwrap();
        assert_eq!(name, "reloaded");
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["policy"], "1");
        assert!(split("{}").is_none());
    }
}
