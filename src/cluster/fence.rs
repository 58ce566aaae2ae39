//! A partition's journal commits in the decision stream: appended by its
//! owner with `Nats-Expected-Last-Subject-Sequence`, so that a node that
//! lost its lease (paused, cut off) cannot append after its successor
//! took over, and read back, in order, to rebuild the partition's journal
//! on whichever node takes it next.
//!
//! A commit is its changeset compressed (zstd) and cut into parts of at
//! most `PART` bytes (NATS refuses messages past its `max_payload`, 1 MiB
//! by default); each part names its commit and its place (`Sb-Commit`,
//! `Sb-Part: i/n`). A commit whose parts are not all there (its owner
//! stopped half-way, or was refused) is left out when the stream is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage as Publish};

use super::bus::{Bus, BusError};

/// The largest part of a commit in one message.
const PART: usize = 512 * 1024;

/// How long an append waits for the stream's acknowledgement.
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The owner's lease as its fence sees it: appends stop before the lease
/// could have lapsed on the servers' side, whatever the stream would say.
#[derive(Debug)]
pub struct Held {
    /// When the lease was last renewed, in milliseconds since `epoch`.
    renewed: AtomicU64,
    epoch: Instant,
    /// Appends stop this long after the last renewal (the lease's length,
    /// less a margin).
    valid_for: Duration,
    /// The lease was found taken by another node.
    revoked: AtomicBool,
}

impl Held {
    pub fn new(valid_for: Duration) -> Arc<Held> {
        let held = Held {
            renewed: AtomicU64::new(0),
            epoch: Instant::now(),
            valid_for,
            revoked: AtomicBool::new(false),
        };
        held.renew_at(Instant::now());
        Arc::new(held)
    }

    /// The lease was renewed by a request sent at `sent`.
    pub fn renew_at(&self, sent: Instant) {
        let millis = sent.saturating_duration_since(self.epoch).as_millis() as u64;
        self.renewed.fetch_max(millis, Ordering::SeqCst);
    }

    /// Another node holds the lease now: nothing more is appended.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }

    pub fn current(&self) -> bool {
        if self.revoked() {
            return false;
        }
        let renewed = self.epoch + Duration::from_millis(self.renewed.load(Ordering::SeqCst));
        renewed.elapsed() < self.valid_for
    }
}

/// The journal's fence on a cluster node: see the module.
pub struct StreamFence {
    js: jetstream::Context,
    subject: String,
    /// The partition's last sequence in the decision stream, as this owner
    /// knows it: its next append expects it.
    last: AtomicU64,
    /// Set once an append was refused or went unanswered: the partition
    /// must be rebuilt before anything else is appended (by whoever holds
    /// it then).
    lost: AtomicBool,
    held: Arc<Held>,
    runtime: tokio::runtime::Handle,
    /// Commits appended.
    pub appended: AtomicU64,
    start: u64,
    /// This owner's last commits, each with the sequence it ends at (a
    /// snapshot names its position by its last commit).
    recent: std::sync::Mutex<std::collections::VecDeque<(String, u64)>>,
}

/// Commits remembered by `StreamFence::recent`.
const RECENT: usize = 4096;

impl std::fmt::Debug for StreamFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFence")
            .field("subject", &self.subject)
            .field("last", &self.last)
            .field("lost", &self.lost)
            .finish()
    }
}

impl StreamFence {
    pub fn new(
        bus: &Bus,
        subject: String,
        last: u64,
        held: Arc<Held>,
        runtime: tokio::runtime::Handle,
    ) -> StreamFence {
        StreamFence {
            js: bus.js.clone(),
            subject,
            last: AtomicU64::new(last),
            lost: AtomicBool::new(false),
            held,
            runtime,
            appended: AtomicU64::new(0),
            start: last,
            recent: Default::default(),
        }
    }

    /// The decision stream's position the partition was rebuilt to.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Why appends stopped, if they did.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// No append from now on (the partition is being given up).
    pub fn close(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// The decision stream's sequence at which `commit` ends, if it is
    /// one of this owner's recent ones.
    pub fn sequence_of(&self, commit: &str) -> Option<u64> {
        let recent = self.recent.lock().ok()?;
        recent
            .iter()
            .rev()
            .find(|(c, _)| c == commit)
            .map(|(_, s)| *s)
    }

    async fn append_parts(&self, commit: &str, changeset: &[u8]) -> Result<(), String> {
        let packed = zstd::bulk::compress(changeset, 3).map_err(|e| e.to_string())?;
        let parts: Vec<&[u8]> = packed.chunks(PART).collect();
        for (i, part) in parts.iter().enumerate() {
            if !self.held.current() {
                return Err("the lease lapsed before the commit was appended".into());
            }
            let expected = self.last.load(Ordering::SeqCst);
            let publish = Publish::build()
                .payload(bytes::Bytes::copy_from_slice(part))
                .header("Sb-Commit", commit)
                .header("Sb-Part", format!("{}/{}", i + 1, parts.len()).as_str())
                .expected_last_subject_sequence(expected);
            let ack = self
                .js
                .send_publish(self.subject.clone(), publish)
                .await
                .map_err(|e| e.to_string())?;
            let ack = tokio::time::timeout(APPEND_TIMEOUT, ack)
                .await
                .map_err(|_| "no acknowledgement within 5 s".to_string())?
                .map_err(|e| e.to_string())?;
            self.last.store(ack.sequence, Ordering::SeqCst);
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= RECENT {
                recent.pop_front();
            }
            recent.push_back((commit.to_string(), self.last.load(Ordering::SeqCst)));
        }
        Ok(())
    }
}

impl crate::journal::Fence for StreamFence {
    fn append(&self, commit: &str, changeset: &[u8]) -> Result<(), String> {
        if self.lost() {
            return Err("this node no longer holds the partition".into());
        }
        let appended = self.runtime.block_on(self.append_parts(commit, changeset));
        match appended {
            Ok(()) => {
                self.appended.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(why) => {
                // Refused (another owner appended) or unanswered (it may
                // have been stored): either way this node's view is no
                // longer the stream's.
                self.lost.store(true, Ordering::SeqCst);
                tracing::warn!(subject = %self.subject, reason = %why, "append refused; giving the partition up");
                Err(why)
            }
        }
    }
}

/// Reads a partition's commits from the decision stream, in order, up to
/// the last sequence there when it started, applying each whole one to
/// the journal in `dir`. Returns that last sequence.
pub async fn rebuild(bus: &Bus, partition: u32, dir: &std::path::Path) -> Result<u64, String> {
    let subject = super::bus::decision_subject(partition);
    let last = Bus::last_sequence(&bus.decisions, &subject)
        .await
        .map_err(|e: BusError| e.to_string())?;
    // The latest snapshot, if there is one, and the commits after it.
    let from = super::snapshot::fetch(bus, partition, dir).await;
    crate::journal::fence::prepare(dir).map_err(|e| e.to_string())?;
    if last == from {
        return Ok(last);
    }
    let mut applier = crate::journal::fence::Applier::open(dir).map_err(|e| e.to_string())?;
    // Direct gets, message by message, from any replica: a consumer, on a
    // 2.9 server, may be placed on a peer that is down and never answer.
    // A replica behind the leader may not hold the last commits yet: it is
    // asked again until it does (the view must be the whole record).
    let mut pending = Pending::default();
    let mut next = from + 1;
    let mut behind = 0;
    while next <= last {
        let Some(message) = Bus::next_of(&bus.decisions, &subject, next)
            .await
            .map_err(|e| e.to_string())?
        else {
            behind += 1;
            if behind > 100 {
                return Err(format!(
                    "{subject}: no replica holds sequence {next} of {last} after 5 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        next = message.sequence + 1;
        if let Some(changeset) = pending.take(&message)? {
            applier.apply(&changeset).map_err(|e| e.to_string())?;
        }
    }
    applier.finish().map_err(|e| e.to_string())?;
    Ok(last)
}

/// The parts of the commit being read.
#[derive(Default)]
struct Pending {
    commit: String,
    parts: Vec<u8>,
    next: usize,
}

impl Pending {
    /// Takes one message; returns a whole commit's changeset once its last
    /// part is read. A part out of place drops what was gathered.
    fn take(
        &mut self,
        message: &async_nats::jetstream::message::StreamMessage,
    ) -> Result<Option<Vec<u8>>, String> {
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
        let (Some(commit), Some(part)) = (header("Sb-Commit"), header("Sb-Part")) else {
            tracing::warn!(subject = %message.subject, "a message without Sb-Commit/Sb-Part in the decision stream; skipped");
            return Ok(None);
        };
        let Some((i, n)) = part
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        else {
            return Ok(None);
        };
        if i == 1 {
            self.commit = commit.clone();
            self.parts.clear();
            self.next = 1;
        }
        if commit != self.commit || i != self.next {
            self.commit.clear();
            self.parts.clear();
            self.next = 0;
            return Ok(None);
        }
        self.parts.extend_from_slice(&message.payload);
        self.next += 1;
        if i < n {
            return Ok(None);
        }
        self.commit.clear();
        self.next = 0;
        let packed = std::mem::take(&mut self.parts);
        zstd::stream::decode_all(packed.as_slice())
            .map(Some)
            .map_err(|e| format!("a commit in {}: {e}", message.subject))
    }
}
