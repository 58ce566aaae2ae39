//! When the signal stream goes back. NATS 2.9 syncs its files on an
//! interval: servers that all lost their unsynced tail give the lost
//! sequences again, and while restarted servers re-form, a stream can go
//! back under running partitions (a new leader holding less). Two things
//! are lost then unless something follows:
//!
//! - what a partition had read past where the stream now ends: the
//!   sequences are given again, to new signals, which a cursor past them
//!   skips. Each batch a partition reads checks that the last message it
//!   read before is still the one at its place (`Checkpoints`); if not,
//!   the partition restarts from the last one that is (`Tail::rewind_to`).
//! - what nodes acknowledged in the lost tail. When the stream's leader
//!   changes, or a partition sees its stream go back (announced on
//!   `WENT_BACK` to every node), each node publishes again what it keeps
//!   (`retain`), once per burst of asks: a repeat the stream holds is
//!   dropped by its message id, or by the partition's engine, which knows
//!   every identity it decided.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream;
use futures_util::StreamExt as _;

use super::Node;
use super::bus::{Bus, BusError};

/// Where a partition that saw its signal stream go back says so, to every
/// node (core NATS, not stored): `<partition> <sequence to read after>`.
pub const WENT_BACK: &str = "sb.ctl.signals_went_back";

/// Checkpoints a partition keeps of what it read, at most: how far back a
/// rewind can find a message still in place.
const CHECKPOINTS: usize = 1024;

/// How often a node asks who leads the signal stream.
const LEADER_EVERY: Duration = Duration::from_secs(1);

/// Asks to publish again come in bursts while servers re-form (every
/// partition that sees the stream go back announces it, and the leader
/// may change twice): they are answered once the asking has been quiet
/// this long, ...
const QUIET: Duration = Duration::from_secs(2);
/// ... or this long after the first ask of the burst, whichever is first.
const AT_MOST: Duration = Duration::from_secs(10);

/// Asks to publish again not yet answered: when the first and the last
/// came. A publish answers every ask made before it started; an ask made
/// after it starts asks for another.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Asked(Option<(Instant, Instant)>);

impl Asked {
    fn ask(&mut self, now: Instant) {
        let first = self.0.map_or(now, |(first, _)| first);
        self.0 = Some((first, now));
    }

    /// Whether to publish now (taking the asks it answers).
    fn take_due(&mut self, now: Instant) -> bool {
        let Some((first, last)) = self.0 else {
            return false;
        };
        let due = now.duration_since(last) >= QUIET || now.duration_since(first) >= AT_MOST;
        if due {
            self.0 = None;
        }
        due
    }
}

/// A node's part: where partitions must read again from when they next
/// start here, and whether what it keeps must be published again.
#[derive(Default)]
pub struct Tail {
    /// By partition: the sequence to read again after, and when it was said.
    rewinds: Mutex<HashMap<u32, (u64, Instant)>>,
    publish_again: Mutex<Asked>,
}

impl Tail {
    /// `partition`'s cursor must not be past `after` when it next starts
    /// (the lowest, if said more than once).
    pub fn rewind_to(&self, partition: u32, after: u64) {
        if let Ok(mut rewinds) = self.rewinds.lock() {
            let at = rewinds.entry(partition).or_insert((after, Instant::now()));
            *at = (at.0.min(after), Instant::now());
        }
    }

    /// Where `partition` must read again from, once. One said longer ago
    /// than a node keeps what it acknowledged is let go: what it was for
    /// has been published again since, past any cursor.
    pub fn take_rewind(&self, partition: u32) -> Option<u64> {
        let (after, said) = self.rewinds.lock().ok()?.remove(&partition)?;
        (said.elapsed() < super::retain::RETAIN).then_some(after)
    }

    /// `partition`'s stream went back (said here or by another node): it
    /// reads again after `after` when it next starts, and what the node
    /// keeps is published again.
    fn went_back(&self, partition: u32, after: u64) {
        self.rewind_to(partition, after);
        self.publish_again();
    }

    /// What the node keeps is to be published again.
    pub fn publish_again(&self) {
        if let Ok(mut asked) = self.publish_again.lock() {
            asked.ask(Instant::now());
        }
    }

    /// Whether to publish again now: asked, and the burst of asks is over
    /// (or has gone on for `AT_MOST`).
    pub fn take_publish_again(&self) -> bool {
        self.publish_again
            .lock()
            .is_ok_and(|mut asked| asked.take_due(Instant::now()))
    }
}

/// The id a message was published under (`Nats-Msg-Id`), if any.
pub fn id_of(message: &StreamMessage) -> Option<String> {
    message
        .headers
        .get(async_nats::header::NATS_MESSAGE_ID)
        .map(|v| v.as_str().to_string())
}

/// The id of the message at `sequence`, asked of the stream's leader.
/// `Ok(None)`: no message there.
async fn id_at(stream: &stream::Stream, sequence: u64) -> Result<Option<String>, BusError> {
    let message = Bus::at_leader(stream, sequence).await?;
    Ok(message.map(|m| id_of(&m).unwrap_or_default()))
}

/// What a partition read, by stream sequence and message id: the newest
/// last, `CHECKPOINTS` at most.
#[derive(Default)]
pub struct Checkpoints {
    read: VecDeque<(u64, String)>,
}

impl Checkpoints {
    /// Starting after `after`: the message there now is taken as read (its
    /// journal holds no id to compare; a stream that went back before the
    /// partition started is `rewind_cursor`'s).
    pub async fn starting_after(stream: &stream::Stream, after: u64) -> Checkpoints {
        let mut checkpoints = Checkpoints::default();
        if after > 0
            && let Ok(Some(id)) = id_at(stream, after).await
        {
            checkpoints.push(after, id);
        }
        checkpoints
    }

    pub fn push(&mut self, sequence: u64, id: String) {
        if self.read.len() == CHECKPOINTS {
            self.read.pop_front();
        }
        self.read.push_back((sequence, id));
    }

    /// `None` while the last message read is still in place (or the
    /// leader cannot say now: asked again with the next batch); otherwise
    /// the sequence to read again after: the newest checkpoint still in
    /// place, or, if none is, from the start of what the stream holds (a
    /// repeat costs a lookup; a skipped signal is lost).
    pub async fn went_back(&self, stream: &stream::Stream) -> Option<u64> {
        let (last, id) = self.read.back()?;
        match id_at(stream, *last).await {
            Ok(Some(now)) if now == *id => return None,
            Ok(Some(_)) => {}
            // Gone, and the stream has not gone back under it: it aged
            // out (the stream keeps signals for a set time).
            Ok(None) => {
                let info = stream.get_info().await.ok()?;
                if info.state.last_sequence >= *last {
                    return None;
                }
            }
            Err(_) => return None,
        }
        for (sequence, id) in self.read.iter().rev().skip(1) {
            // One the leader cannot answer for is passed over: reading
            // again from further back only repeats.
            if let Ok(Some(now)) = id_at(stream, *sequence).await
                && now == *id
            {
                return Some(*sequence);
            }
        }
        let first = match stream.get_info().await {
            Ok(info) => info.state.first_sequence,
            Err(_) => 0,
        };
        tracing::warn!(
            first,
            "no message a partition read is still in place; reading again all the stream holds"
        );
        Some(first.saturating_sub(1))
    }
}

/// Announces that `partition`'s stream went back: it reads again after
/// `after` wherever it next starts, and every node publishes again what it
/// keeps.
pub async fn announce(node: &Node, partition: u32, after: u64) {
    node.tail.went_back(partition, after);
    let said = format!("{partition} {after}");
    if let Err(e) = node.bus.client.publish(WENT_BACK, said.into()).await {
        tracing::warn!(partition, error = %e, "telling the other nodes the signal stream went back");
    }
}

/// Follows what tells this node the stream went back: other nodes'
/// announcements, and a change of the signal stream's leader (a leader
/// elected anew, by name or by when it was elected).
pub async fn watch(node: Arc<Node>) {
    let mut said = match node.bus.client.subscribe(WENT_BACK).await {
        Ok(subscription) => Some(subscription),
        Err(e) => {
            tracing::warn!(error = %e, "cannot hear other nodes say the signal stream went back");
            None
        }
    };
    let mut leader = None;
    let mut every = tokio::time::interval(LEADER_EVERY);
    loop {
        tokio::select! {
            message = async {
                match said.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => match message {
                Some(message) => heard(&node, &message.payload),
                None => said = None,
            },
            _ = every.tick() => {
                let Ok(info) = node.bus.signals.get_info().await else { continue };
                let Some(cluster) = info.cluster else { continue };
                let Some(name) = cluster.leader else { continue };
                let now = (name, cluster.leader_since);
                if leader.as_ref().is_some_and(|was| *was != now) {
                    tracing::warn!(
                        leader = %now.0,
                        "the signal stream has a new leader; publishing again what this node keeps"
                    );
                    node.tail.publish_again();
                }
                leader = Some(now);
            }
        }
    }
}

/// Another node's announcement (one that does not read is logged and
/// passed over: it was sent by this program, so only a damaged message
/// does that).
fn heard(node: &Node, payload: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let mut words = text.split_whitespace();
    let parsed = (|| Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?)))();
    match parsed {
        Some((partition, after)) => node.tail.went_back(partition, after),
        None => tracing::warn!(said = %text, "an announcement on {WENT_BACK} does not read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_asks_is_answered_once_after_it_is_over() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut asked = Asked::default();
        assert!(!asked.take_due(at(0)), "nothing asked");
        // Announcements every half second for a second and a half.
        for ms in [0, 500, 1_000, 1_500] {
            asked.ask(at(ms));
            assert!(!asked.take_due(at(ms + 400)));
        }
        assert!(!asked.take_due(at(3_000)));
        assert!(asked.take_due(at(3_500)), "quiet for two seconds");
        assert!(!asked.take_due(at(9_000)), "answered once");
        // Asked again after that publish: published again.
        asked.ask(at(9_500));
        assert!(asked.take_due(at(11_500)));
    }

    #[test]
    fn asks_that_never_stop_are_answered_at_least_every_ten_seconds() {
        let t0 = Instant::now();
        let mut asked = Asked::default();
        let mut answered = vec![];
        for s in 0..25u64 {
            let now = t0 + Duration::from_secs(s);
            asked.ask(now);
            if asked.take_due(now) {
                answered.push(s);
            }
        }
        assert_eq!(answered, vec![10, 21]);
    }
}
