//! What the engine (or a server's event stream) publishes, coalesced for
//! the UI.
//!
//! A producer folds each update into one pending state the moment it
//! publishes it: the newest signals and decisions (as many as the tables
//! keep), the latest state of each review item and flow, the last figures
//! and link state. The UI takes the whole of it once per pass, so what it
//! folds per frame is bounded by what the tables hold, never by how many
//! events the engine produced, and nothing queues one UI update per engine
//! event. The lock is held only to fold one update or to swap the pending
//! state out: the engine never waits for the UI.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::link::{Link, MAX_DECISIONS, MAX_SIGNALS, Status, Update};
use crate::decide::Decision;
use crate::engine::EngineEvent;
use crate::engine::overview::State;
use crate::flow::Flow;
use crate::review::{ReviewAction, ReviewItem};
use crate::signal::Signal;

/// Notices (quarantines, reloads) kept between two takes; older ones are
/// dropped, the newest say what the status line shows.
const NOTICES: usize = 16;

/// The producers' end; cloned for each thread that publishes.
#[derive(Clone)]
pub struct Feed {
    shared: Arc<Shared>,
}

/// The UI's end. Dropping it tells the producers the UI is gone.
pub struct Tap {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    closed: AtomicBool,
}

/// The UI is gone: nobody will read what is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// A review item's latest state since the last take.
#[derive(Debug, Clone)]
pub struct ReviewChange {
    pub item: Box<ReviewItem>,
    /// The latest action on it, if one was taken.
    pub action: Option<ReviewAction>,
    /// Whether it was opened since the last take.
    pub opened: bool,
}

/// Everything published since the UI last took it.
#[derive(Debug, Default)]
pub struct Pending {
    /// A server's whole state: applied before everything below.
    pub snapshot: Option<Box<State>>,
    /// The newest signals, oldest first, with whether each was a duplicate.
    pub signals: VecDeque<(Arc<Signal>, bool)>,
    /// Signals per minute of signal time (the minute's first signal time,
    /// the count), counting those dropped from `signals` too.
    pub signal_minutes: Vec<(DateTime<Utc>, u64)>,
    /// The newest decisions, oldest first.
    pub decisions: VecDeque<Arc<Decision>>,
    /// Review items, the latest state of each, in the order first seen.
    pub reviews: VecDeque<ReviewChange>,
    review_index: HashMap<String, usize>,
    /// Flows, the latest state of each, in the order first seen.
    pub flows: VecDeque<Box<Flow>>,
    flow_index: HashMap<String, usize>,
    /// Quarantines and reloads, oldest first.
    pub notices: VecDeque<EngineEvent>,
    pub status: Option<Box<Status>>,
    pub failed: Option<String>,
    pub link: Option<Link>,
    pub rtt: Option<Duration>,
    /// Engine events folded in (dropped or superseded ones included).
    pub events: u64,
}

impl Feed {
    pub fn channel() -> (Feed, Tap) {
        let shared = Arc::new(Shared::default());
        (
            Feed {
                shared: Arc::clone(&shared),
            },
            Tap { shared },
        )
    }

    /// Folds one update into what the UI will take next. The update is
    /// folded on its own first, outside the lock; under it, it is swapped
    /// in (nothing was waiting) or added to what waits.
    pub fn publish(&self, update: Update) -> Result<(), Gone> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(Gone);
        }
        let update = Pending::of(update);
        self.shared.lock().absorb(update);
        Ok(())
    }

    /// Folds engine events (publishing nothing when there are none).
    pub fn events(&self, events: Vec<EngineEvent>) -> Result<(), Gone> {
        if events.is_empty() {
            return match self.shared.closed.load(Ordering::Relaxed) {
                true => Err(Gone),
                false => Ok(()),
            };
        }
        self.publish(Update::Events(events))
    }

    pub fn is_gone(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }
}

impl Tap {
    /// Everything published since the last take, if anything was. Never
    /// waits: while a producer is adding to it, it is taken next time.
    pub fn take(&self) -> Option<Pending> {
        let mut pending = match self.shared.pending.try_lock() {
            Ok(p) => p,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if pending.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut *pending))
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }
}

impl Shared {
    /// The pending state; a producer that panicked while holding it left a
    /// state that is still whole (each fold step leaves it consistent).
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Pending {
    pub fn of(update: Update) -> Pending {
        let mut p = Pending::default();
        p.fold(update);
        p
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.signals.is_empty()
            && self.decisions.is_empty()
            && self.reviews.is_empty()
            && self.flows.is_empty()
            && self.notices.is_empty()
            && self.status.is_none()
            && self.failed.is_none()
            && self.link.is_none()
            && self.rtt.is_none()
    }

    pub fn fold(&mut self, update: Update) {
        match update {
            Update::Events(events) => {
                for e in events {
                    self.fold_event(e);
                }
            }
            Update::Status(status) => self.status = Some(status),
            Update::Failed(why) => self.failed = Some(why),
            Update::Snapshot(state) => {
                self.superseded();
                self.snapshot = Some(state);
            }
            Update::Link(link) => self.link = Some(link),
            Update::Rtt(rtt) => self.rtt = Some(rtt),
        }
    }

    /// A snapshot came: the server's queue and flows as of now; what came
    /// before about them is superseded.
    fn superseded(&mut self) {
        self.reviews.clear();
        self.review_index.clear();
        self.flows.clear();
        self.flow_index.clear();
    }

    /// What was published later, added to this.
    fn absorb(&mut self, later: Pending) {
        if self.is_empty() {
            *self = later;
            return;
        }
        if later.snapshot.is_some() {
            self.superseded();
            self.snapshot = later.snapshot;
        }
        for (first, n) in later.signal_minutes {
            self.count_minute(first, n);
        }
        self.signals.extend(later.signals);
        keep_newest(&mut self.signals, MAX_SIGNALS);
        self.decisions.extend(later.decisions);
        keep_newest(&mut self.decisions, MAX_DECISIONS);
        for change in later.reviews {
            self.review(change);
        }
        for flow in later.flows {
            self.flow(flow);
        }
        self.notices.extend(later.notices);
        keep_newest(&mut self.notices, NOTICES);
        self.status = later.status.or(self.status.take());
        self.failed = later.failed.or(self.failed.take());
        self.link = later.link.or(self.link.take());
        self.rtt = later.rtt.or(self.rtt.take());
        self.events += later.events;
    }

    fn fold_event(&mut self, event: EngineEvent) {
        self.events += 1;
        match event {
            EngineEvent::Signal { signal, duplicate } => {
                self.count_minute(signal.time, 1);
                self.signals.push_back((signal, duplicate));
                keep_newest(&mut self.signals, MAX_SIGNALS);
            }
            EngineEvent::Decision(d) => {
                self.decisions.push_back(d);
                keep_newest(&mut self.decisions, MAX_DECISIONS);
            }
            EngineEvent::ReviewOpened(item) => self.review(ReviewChange {
                item,
                action: None,
                opened: true,
            }),
            EngineEvent::ReviewAction { item, action } => self.review(ReviewChange {
                item,
                action: Some(action),
                opened: false,
            }),
            EngineEvent::ReviewAdvised(item) => self.review(ReviewChange {
                item,
                action: None,
                opened: false,
            }),
            EngineEvent::FlowChanged(flow) => self.flow(flow),
            notice @ (EngineEvent::Quarantined(_) | EngineEvent::Reloaded(_)) => {
                self.notices.push_back(notice);
                keep_newest(&mut self.notices, NOTICES);
            }
            EngineEvent::Flow(_)
            | EngineEvent::Settled { .. }
            | EngineEvent::FlowFinished(_)
            | EngineEvent::Learned(_)
            | EngineEvent::Page(_) => {}
        }
    }
}

/// Drops the oldest beyond `cap`.
fn keep_newest<T>(queue: &mut VecDeque<T>, cap: usize) {
    let over = queue.len().saturating_sub(cap);
    queue.drain(..over);
}

impl Pending {
    /// `n` signals in the minute of `first` (the minutes kept in order of
    /// arrival, one entry per run of the same minute).
    fn count_minute(&mut self, first: DateTime<Utc>, n: u64) {
        match self.signal_minutes.last_mut() {
            Some((f, m)) if f.timestamp() / 60 == first.timestamp() / 60 => *m += n,
            _ => self.signal_minutes.push((first, n)),
        }
    }

    /// A flow's latest state, over an earlier one of the same flow.
    fn flow(&mut self, flow: Box<Flow>) {
        match self.flow_index.get(&flow.id) {
            Some(&i) => self.flows[i] = flow,
            None => {
                self.flow_index.insert(flow.id.clone(), self.flows.len());
                self.flows.push_back(flow);
            }
        }
    }

    /// A review item's change, over an earlier one of the same item.
    fn review(&mut self, change: ReviewChange) {
        match self.review_index.get(&change.item.id) {
            Some(&i) => {
                let earlier = &mut self.reviews[i];
                earlier.item = change.item;
                earlier.opened |= change.opened;
                if change.action.is_some() {
                    earlier.action = change.action;
                }
            }
            None => {
                self.review_index
                    .insert(change.item.id.clone(), self.reviews.len());
                self.reviews.push_back(change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Signal;

    fn signal(i: usize) -> EngineEvent {
        let signal = Signal {
            id: format!("s{i}"),
            time: chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(i as i64),
            ..Signal::default()
        };
        EngineEvent::Signal {
            signal: Arc::new(signal),
            duplicate: false,
        }
    }

    /// However many events arrive between two takes, what waits is bounded
    /// by what the tables keep, and the counts still cover every signal.
    #[test]
    fn a_storm_between_two_takes_stays_bounded() {
        let (feed, tap) = Feed::channel();
        for chunk in (0..MAX_SIGNALS * 3).collect::<Vec<_>>().chunks(1000) {
            feed.events(chunk.iter().map(|&i| signal(i)).collect())
                .unwrap();
        }
        let p = tap.take().unwrap();
        assert_eq!(p.signals.len(), MAX_SIGNALS);
        assert_eq!(
            p.signals.back().unwrap().0.id,
            format!("s{}", MAX_SIGNALS * 3 - 1)
        );
        let counted: u64 = p.signal_minutes.iter().map(|(_, n)| n).sum();
        assert_eq!(counted, (MAX_SIGNALS * 3) as u64);
        assert_eq!(p.events, (MAX_SIGNALS * 3) as u64);
        assert!(tap.take().is_none(), "taken once");
    }

    /// A snapshot supersedes the queue and flows published before it; what
    /// comes after it is kept.
    #[test]
    fn a_snapshot_supersedes_what_came_before_it() {
        let (feed, tap) = Feed::channel();
        let app = crate::console::fixture::app();
        let mut item = app.reviews.values().next().unwrap().clone();
        item.id = "R1".into();
        feed.events(vec![EngineEvent::ReviewOpened(item.clone())])
            .unwrap();
        let state = State {
            last_event_id: 7,
            overview: app.status.clone().unwrap(),
            reviews: Vec::new(),
            flows: Vec::new(),
            next: None,
        };
        feed.publish(Update::Snapshot(Box::new(state))).unwrap();
        let mut later = item;
        later.id = "R2".into();
        feed.events(vec![EngineEvent::ReviewOpened(later)]).unwrap();
        let p = tap.take().unwrap();
        assert!(p.snapshot.is_some());
        let ids: Vec<_> = p.reviews.iter().map(|c| c.item.id.as_str()).collect();
        assert_eq!(ids, vec!["R2"]);
    }

    /// Once the UI is gone, producers are told so.
    #[test]
    fn producers_learn_the_ui_is_gone() {
        let (feed, tap) = Feed::channel();
        assert_eq!(feed.events(Vec::new()), Ok(()));
        drop(tap);
        assert_eq!(feed.events(vec![signal(1)]), Err(Gone));
        assert!(feed.is_gone());
    }
}
