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

use axum::response::sse::{Event, KeepAlive, Sse};
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
    /// Its `data` as JSON text.
    pub data: String,
}

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
                let value = serde_json::to_value(&event).ok()?;
                let name = value.get("type")?.as_str()?.to_string();
                let data = value
                    .get("data")
                    .map_or_else(String::new, ToString::to_string);
                Some(Arc::new(Numbered { id, name, data }))
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

/// The stream for one client that last saw `after`.
pub fn stream(
    hub: &EventHub,
    after: Option<u64>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>> + use<>> {
    let (start, live) = hub.subscribe(after);
    let (backlog, sent) = match start {
        Start::From(events) => (events, after.unwrap_or(0)),
        Start::Reset { last } => {
            let reset = Arc::new(Numbered {
                id: last,
                name: "reset".into(),
                data: serde_json::json!({
                    "reason": "the events after your Last-Event-ID are no longer held: fetch GET /v1/state and follow on",
                    "last": last,
                })
                .to_string(),
            });
            (vec![reset], last)
        }
    };
    let state = Follow {
        backlog: backlog.into_iter(),
        live,
        sent,
        done: false,
    };
    let events = futures_util::stream::unfold(state, |mut f| async move {
        if f.done {
            return None;
        }
        if let Some(e) = f.backlog.next() {
            f.sent = f.sent.max(e.id);
            return Some((Ok(sse(&e)), f));
        }
        loop {
            match f.live.recv().await {
                // Already sent from the backlog.
                Ok(e) if e.id <= f.sent => continue,
                Ok(e) => {
                    f.sent = e.id;
                    return Some((Ok(sse(&e)), f));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let data = serde_json::json!({
                        "reason": "this client fell behind the engine; reconnect with Last-Event-ID",
                        "missed": missed, "last_sent": f.sent,
                    });
                    let event = Event::default().event("lagged").data(data.to_string());
                    f.done = true;
                    return Some((Ok(event), f));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One client's place: what is left of its backlog, its live feed, the
/// last id it was sent.
struct Follow {
    backlog: std::vec::IntoIter<Arc<Numbered>>,
    live: broadcast::Receiver<Arc<Numbered>>,
    sent: u64,
    done: bool,
}

fn sse(e: &Numbered) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event(&e.name)
        .data(&e.data)
}
