//! The event stream: every engine event, numbered, once the journal holds
//! it, for consoles and scripts (`GET /v1/events`, Server-Sent Events).
//!
//! The hub keeps the newest `HELD` events, in the batches they were
//! published in, each batch's text made once for every client. A client
//! reads what follows the last id it was sent, whole batches at a time
//! while it keeps up, and waits for the next publication when it has read
//! everything. One that gives `Last-Event-ID` goes on after it without a
//! gap or a repeat; one whose id is older than what the hub holds (or from
//! before a restart) gets a `reset` event: fetch `GET /v1/state` again and
//! follow on from the id it names. A client that falls more than `HELD`
//! events behind is sent `lagged` and cut off: the engine never waits for
//! anyone.
//!
//! A review item opened goes out as the journal keeps it, its decision and
//! signal named by id (`decision_id`, `signal_id`: both went out just
//! before it, as `decision` and `signal` events); the whole item is at
//! `GET /v1/reviews/{id}`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::engine::EngineEvent;

/// Events held for clients that come back or fall behind, at most.
pub const HELD: usize = 16_384;

/// One event as the stream sends it.
#[derive(Debug)]
struct Numbered {
    id: u64,
    /// The event as the stream's text (`id:`, `event:`, `data:` lines),
    /// made once for every client.
    frame: Bytes,
}

/// Writes the frame of event `id`; JSON text has no raw newline, so one
/// `data:` line carries it.
fn frame(out: &mut impl std::fmt::Write, id: u64, name: &str, data: &str) -> std::fmt::Result {
    write!(out, "id: {id}\nevent: {name}\ndata: {data}\n\n")
}

/// Events published together, as one text a client that keeps up is sent
/// whole.
#[derive(Debug)]
struct Batch {
    /// Its events, in order; each frame is a slice of `text`.
    events: Vec<Numbered>,
    /// A client that has read up to this id (or past it) reads on in this
    /// batch without missing anything: the id before its first, or, where
    /// ids are not dense (a cluster's), the earliest id that precedes it.
    prev: u64,
    text: Bytes,
    /// `text` as one zstd frame, made by the first client that asks.
    packed: OnceLock<Option<Bytes>>,
}

impl Batch {
    /// The events' frames, written into one text (`None` if none could be).
    fn new(events: Vec<(u64, EngineEvent)>) -> Option<Batch> {
        let mut text = BytesMut::new();
        let mut spans = Vec::with_capacity(events.len());
        for (id, event) in events {
            let start = text.len();
            if write_event(&mut text, id, &event).is_none() {
                // Not expected (every event serialises); said, not hidden.
                text.truncate(start);
                tracing::warn!(id, ?event, "an event could not be written for the stream");
                continue;
            }
            spans.push((id, start..text.len()));
        }
        if spans.is_empty() {
            return None;
        }
        let text = text.freeze();
        let events: Vec<Numbered> = spans
            .into_iter()
            .map(|(id, span)| Numbered {
                id,
                frame: text.slice(span),
            })
            .collect();
        let prev = events
            .first()
            .map_or(0, |e: &Numbered| e.id.saturating_sub(1));
        Some(Batch {
            prev,
            events,
            text,
            packed: OnceLock::new(),
        })
    }

    /// The text as the client takes it.
    fn text(&self, zstd: bool) -> Option<Bytes> {
        if zstd {
            self.packed.get_or_init(|| pack(&self.text)).clone()
        } else {
            Some(self.text.clone())
        }
    }

    fn first(&self) -> u64 {
        self.events.first().map_or(0, |e| e.id)
    }

    fn last(&self) -> u64 {
        self.events.last().map_or(0, |e| e.id)
    }
}

/// The bytes after which a client's chunk takes no more batches: chunks
/// stay small enough to come from memory already in use.
const CHUNK_BYTES: usize = 64 * 1024;
/// A comment line goes out after this long without events, so proxies and
/// clients see the connection alive.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// Where published events wait for their clients.
pub struct EventHub {
    held: Mutex<Held>,
    /// The last id published; clients wait on its changes.
    published: watch::Sender<u64>,
    sent: Sent,
    /// Where a cluster node's partition sends its events on, to the
    /// cluster's event stream (`tap`; none outside a cluster).
    tap: OnceLock<tokio::sync::mpsc::UnboundedSender<Vec<(u64, EngineEvent)>>>,
}

/// What the stream has sent, over all clients (for `/metrics`).
#[derive(Debug, Default)]
pub struct Sent {
    pub events: AtomicU64,
    /// As written, compressed or not.
    pub bytes: AtomicU64,
    /// Clients cut off for falling behind.
    pub cut_off: AtomicU64,
}

struct Held {
    batches: VecDeque<Arc<Batch>>,
    /// Events in `batches`.
    events: usize,
    /// The last id published (or journaled before this process started).
    last: u64,
}

/// A batch whole, or the frames of one after where a client was left.
enum Piece {
    Whole(Arc<Batch>),
    /// Frames, and how many.
    Rest(Bytes, usize),
}

impl Piece {
    fn events(&self) -> usize {
        match self {
            Piece::Whole(b) => b.events.len(),
            Piece::Rest(_, n) => *n,
        }
    }

    fn len(&self) -> usize {
        match self {
            Piece::Whole(b) => b.text.len(),
            Piece::Rest(text, _) => text.len(),
        }
    }

    /// The text as the client takes it: a whole batch's is made once for
    /// all clients.
    fn text(&self, zstd: bool) -> Option<Bytes> {
        match self {
            Piece::Whole(batch) => batch.text(zstd),
            Piece::Rest(text, _) if zstd => pack(text),
            Piece::Rest(text, _) => Some(text.clone()),
        }
    }
}

/// Text as one zstd frame. Frames sent one after another decode as the
/// texts one after another (RFC 8878, section 3.1), so a batch is packed
/// once and sent as it is to every client that takes zstd.
fn pack(text: &[u8]) -> Option<Bytes> {
    match zstd::bulk::compress(text, 1) {
        Ok(packed) => Some(Bytes::from(packed)),
        Err(e) => {
            tracing::warn!(error = %e, "could not compress events for a client; it will resume");
            None
        }
    }
}

/// What a client reads next.
enum Read {
    /// These, in order, the last of them ending with event `sent` (none
    /// when it has read everything).
    Events { texts: Vec<Piece>, sent: u64 },
    /// What follows its id is no longer held; the newest id is `last`.
    Behind { last: u64 },
}

impl Held {
    /// What follows `after`, up to about `CHUNK_BYTES`.
    fn after(&self, after: u64) -> Read {
        if after == self.last {
            return Read::Events {
                texts: Vec::new(),
                sent: after,
            };
        }
        let oldest = self.batches.front().map_or(self.last, |b| b.prev);
        // An id never published here (a journal put back from a copy?) is
        // as unknown as one long gone.
        if after < oldest || after > self.last {
            return Read::Behind { last: self.last };
        }
        let from = self.batches.partition_point(|b| b.last() <= after);
        let (mut texts, mut bytes, mut sent) = (Vec::new(), 0, after);
        for batch in self.batches.iter().skip(from) {
            let piece = if batch.first() > sent {
                Piece::Whole(Arc::clone(batch))
            } else {
                // It was left inside this batch: the frames after it.
                let (mut rest, mut n) = (BytesMut::new(), 0);
                for e in batch.events.iter().filter(|e| e.id > sent) {
                    rest.extend_from_slice(&e.frame);
                    n += 1;
                }
                Piece::Rest(rest.freeze(), n)
            };
            bytes += piece.len();
            texts.push(piece);
            sent = batch.last();
            if bytes >= CHUNK_BYTES {
                break;
            }
        }
        Read::Events { texts, sent }
    }
}

/// An event's JSON (`{"type":"NAME","data":DATA}`, as serde writes an
/// adjacently tagged enum, fields in that order) as its name and data.
fn split(json: &str) -> Option<(&str, &str)> {
    let rest = json.strip_prefix("{\"type\":\"")?;
    let (name, rest) = rest.split_once("\",\"data\":")?;
    Some((name, rest.strip_suffix('}')?))
}

/// Writes an event's frame: its name and data as the engine serialises
/// it, except that an opened review item names its decision and signal.
fn write_event(text: &mut BytesMut, id: u64, event: &EngineEvent) -> Option<()> {
    if let EngineEvent::ReviewOpened(item) = event {
        let data = serde_json::to_string(&item.stored()).ok()?;
        return frame(text, id, "review_opened", &data).ok();
    }
    let json = serde_json::to_string(event).ok()?;
    let (name, data) = split(&json)?;
    frame(text, id, name, data).ok()
}

impl EventHub {
    /// A hub whose ids go on from `last` (the journal's last event id).
    pub fn new(last: u64) -> Arc<EventHub> {
        let (published, _) = watch::channel(last);
        Arc::new(EventHub {
            held: Mutex::new(Held {
                batches: VecDeque::new(),
                events: 0,
                last,
            }),
            published,
            sent: Sent::default(),
            tap: OnceLock::new(),
        })
    }

    /// Every batch published from now on, also sent to the receiver (once
    /// per hub: a second tap gets nothing).
    pub fn tap(&self) -> tokio::sync::mpsc::UnboundedReceiver<Vec<(u64, EngineEvent)>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = self.tap.set(tx);
        rx
    }

    /// What the stream has sent so far.
    pub fn sent(&self) -> &Sent {
        &self.sent
    }

    /// Publishes numbered events: serialised here, on the caller's thread
    /// (the answerer's, not the engine's), once for every client.
    pub fn publish(&self, events: Vec<(u64, EngineEvent)>) {
        self.publish_after(None, events);
    }

    /// The same, for ids that are not dense: a client that has read up to
    /// `prev` (or past it) reads on in this batch without missing anything
    /// (none: the id before the batch's first).
    pub fn publish_after(&self, prev: Option<u64>, events: Vec<(u64, EngineEvent)>) {
        if let Some(tap) = self.tap.get() {
            // A receiver gone is a partition stopping: nothing to tell.
            let _ = tap.send(events.clone());
        }
        let Some(mut batch) = Batch::new(events) else {
            return;
        };
        if let Some(prev) = prev {
            batch.prev = prev;
        }
        let batch = Arc::new(batch);
        let last = {
            let Ok(mut held) = self.held.lock() else {
                return;
            };
            held.last = held.last.max(batch.last());
            held.events += batch.events.len();
            held.batches.push_back(batch);
            while held.events > HELD && held.batches.len() > 1 {
                if let Some(gone) = held.batches.pop_front() {
                    held.events -= gone.events.len();
                }
            }
            held.last
        };
        // Nobody listening is no error.
        self.published.send_replace(last);
    }

    /// Clients following the stream now.
    pub fn clients(&self) -> usize {
        self.published.receiver_count()
    }

    /// The id of the last event published.
    pub fn last_id(&self) -> u64 {
        self.held.lock().map_or(0, |h| h.last)
    }

    fn read(&self, after: u64) -> Read {
        match self.held.lock() {
            Ok(held) => held.after(after),
            Err(_) => Read::Behind { last: after },
        }
    }
}

/// The stream for one client that last saw `after` (or, without it, from
/// now on): what the hub holds after it, then each publication as it
/// comes, a chunk at a time; zstd-compressed when the client accepts it.
pub fn stream(
    hub: &Arc<EventHub>,
    after: Option<u64>,
    headers: &HeaderMap,
    hold: super::slots::StreamSlot,
) -> Response {
    let last = hub.last_id();
    let zstd = accepts_zstd(headers);
    let follow = Follow {
        _hold: hold,
        hub: Arc::clone(hub),
        published: hub.published.subscribe(),
        sent: after.unwrap_or(last),
        zstd,
        started: false,
        done: false,
    };
    let chunks = futures_util::stream::unfold(follow, |mut f| async move {
        let chunk = f.next().await?;
        Some((Ok::<_, Infallible>(chunk), f))
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::VARY, "accept-encoding"),
        ],
        Body::from_stream(chunks),
    )
        .into_response();
    if zstd {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    }
    response
}

/// Whether `Accept-Encoding` lists zstd with a weight above zero (RFC 9110,
/// section 12.5.3; `*` counts only when zstd is not named).
fn accepts_zstd(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for coding in value.split(',') {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match name.as_str() {
                "zstd" => named = Some(weight > 0.0),
                "*" => any = weight > 0.0,
                _ => {}
            }
        }
    }
    named.unwrap_or(any)
}

/// One client's place: the last id it was sent.
struct Follow {
    /// The stream's slot, held until the stream ends.
    _hold: super::slots::StreamSlot,
    hub: Arc<EventHub>,
    published: watch::Receiver<u64>,
    sent: u64,
    /// It takes the stream compressed.
    zstd: bool,
    /// Whether it has been sent anything yet (an id it gave that is not
    /// held is a `reset`; later, the client fell behind: `lagged`).
    started: bool,
    done: bool,
}

impl Follow {
    /// The next chunk to write, waiting for one; `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            // Seen before reading, so a publication after the read wakes us.
            self.published.borrow_and_update();
            match self.hub.read(self.sent) {
                Read::Behind { last } => {
                    self.done = true;
                    let said = self.behind(last);
                    return self.encode(said);
                }
                Read::Events { texts, sent } if !texts.is_empty() => {
                    self.sent = sent;
                    self.started = true;
                    let events: usize = texts.iter().map(Piece::events).sum();
                    let texts: Option<Vec<Bytes>> =
                        texts.iter().map(|t| t.text(self.zstd)).collect();
                    let chunk = texts.map(join)?;
                    let counts = &self.hub.sent;
                    counts.events.fetch_add(events as u64, Ordering::Relaxed);
                    counts
                        .bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    return Some(chunk);
                }
                Read::Events { .. } => {}
            }
            match tokio::time::timeout(KEEP_ALIVE, self.published.changed()).await {
                Err(_) => return self.encode(Bytes::from_static(b":\n\n")),
                Ok(Ok(())) => {}
                // The hub is gone: the server is stopping.
                Ok(Err(_)) => self.done = true,
            }
        }
    }

    /// Text of its own (not a batch's) as this client takes it.
    fn encode(&self, text: Bytes) -> Option<Bytes> {
        if self.zstd { pack(&text) } else { Some(text) }
    }

    /// Says what follows its id is no longer held: `reset` at the start,
    /// `lagged` once it was following.
    fn behind(&self, last: u64) -> Bytes {
        let text = if self.started {
            self.hub.sent.cut_off.fetch_add(1, Ordering::Relaxed);
            let data = serde_json::json!({
                "reason": "this client fell behind the engine; reconnect with Last-Event-ID",
                "missed": last.saturating_sub(self.sent), "last_sent": self.sent,
            });
            format!("event: lagged\ndata: {data}\n\n")
        } else {
            let data = serde_json::json!({
                "reason": "the events after your Last-Event-ID are no longer held: fetch GET /v1/state and follow on",
                "last": last,
            });
            let mut text = String::new();
            let _ = frame(&mut text, last, "reset", &data.to_string());
            text
        };
        Bytes::from(text)
    }
}

/// Texts as one chunk: the one itself, or copied once into a buffer of
/// their length.
fn join(mut texts: Vec<Bytes>) -> Bytes {
    if texts.len() == 1 {
        return texts.pop().unwrap_or_default();
    }
    let mut chunk = BytesMut::with_capacity(texts.iter().map(Bytes::len).sum());
    for t in &texts {
        chunk.extend_from_slice(t);
    }
    chunk.freeze()
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

    fn batch(ids: std::ops::RangeInclusive<u64>) -> Vec<(u64, EngineEvent)> {
        ids.map(|id| {
            let versions = crate::engine::reload::Versions {
                policy: format!("p{id}"),
                model: "m".into(),
                rules: "r".into(),
            };
            (id, EngineEvent::Reloaded(versions))
        })
        .collect()
    }

    fn ids(read: Read) -> (Vec<u64>, u64) {
        let Read::Events { texts, sent } = read else {
            panic!("behind");
        };
        let texts = texts.iter().map(|t| t.text(false).unwrap()).collect();
        let text = String::from_utf8(join(texts).to_vec()).unwrap();
        let ids = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|i| i.parse().unwrap())
            .collect();
        (ids, sent)
    }

    #[test]
    fn a_client_reads_whole_batches_or_the_rest_of_the_one_it_is_inside() {
        let hub = EventHub::new(10);
        hub.publish(batch(11..=13));
        hub.publish(batch(14..=15));
        assert_eq!(ids(hub.read(10)), (vec![11, 12, 13, 14, 15], 15));
        assert_eq!(ids(hub.read(12)), (vec![13, 14, 15], 15));
        assert_eq!(ids(hub.read(15)), (vec![], 15));
        // Before what is held, or an id never published: behind.
        assert!(matches!(hub.read(9), Read::Behind { last: 15 }));
        assert!(matches!(hub.read(16), Read::Behind { last: 15 }));
    }

    #[test]
    fn the_hub_holds_a_bounded_number_of_events() {
        let hub = EventHub::new(0);
        let mut next = 1;
        while next < 3 * HELD as u64 {
            hub.publish(batch(next..=next + 999));
            next += 1000;
        }
        let held = hub.held.lock().unwrap();
        assert!(held.events <= HELD, "{}", held.events);
        assert!(held.events > HELD - 1000, "{}", held.events);
        assert!(matches!(held.after(1), Read::Behind { .. }));
        // One read takes about CHUNK_BYTES, whole batches at a time.
        let from = held.batches[0].first() - 1;
        let Read::Events { texts, .. } = held.after(from) else {
            panic!("held")
        };
        let bytes: usize = texts.iter().map(Piece::len).sum();
        assert!(
            bytes >= CHUNK_BYTES && bytes < CHUNK_BYTES + texts[0].len(),
            "{bytes}"
        );
    }

    #[test]
    fn zstd_is_taken_when_accepted_with_a_weight() {
        let accepts = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_zstd(&h)
        };
        assert!(accepts("gzip, zstd"));
        assert!(accepts("br;q=1.0, ZSTD;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip, deflate"));
        assert!(!accepts("zstd;q=0"));
        assert!(!accepts("*, zstd;q=0"));
        assert!(!accepts_zstd(&HeaderMap::new()));
    }

    #[test]
    fn packed_batches_decode_as_their_texts_one_after_another() {
        let hub = EventHub::new(0);
        hub.publish(batch(1..=3));
        hub.publish(batch(4..=9));
        let Read::Events { texts, .. } = hub.read(1) else {
            panic!("held")
        };
        let plain: Vec<u8> = texts.iter().flat_map(|t| t.text(false).unwrap()).collect();
        let packed: Vec<u8> = texts.iter().flat_map(|t| t.text(true).unwrap()).collect();
        assert_eq!(zstd::stream::decode_all(&packed[..]).unwrap(), plain);
        assert!(String::from_utf8(plain).unwrap().starts_with("id: 2\n"));
    }
}
