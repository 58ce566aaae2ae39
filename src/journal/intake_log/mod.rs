//! The intake log: signals from outside (the HTTP intake) are made durable
//! here, in a SQLite file of their own (`intake.db`) with a writer of its
//! own, before they are acknowledged. An acknowledgement therefore waits for
//! a commit of signal rows only, never for the engine's decisions, flows and
//! review items, and never for the journal's writer.
//!
//! The engine decides from the log afterwards, in order (`LogReader`), and
//! records how far it has got (`intake_cursor`: the log's id and the last
//! sequence number it took) in the same journal commit as those decisions.
//! After a crash it resumes from the cursor: nothing acknowledged is lost,
//! nothing is decided twice. Rows the journal holds are deleted from the log
//! as the engine goes. When the engine falls `MAX_BACKLOG` signals behind,
//! appends are refused (the HTTP intake answers 503 with Retry-After) until
//! it catches up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::{JournalError, commit_histogram, connect_with, start_checkpointer};
use crate::signal::Signal;

mod reader;
mod writer;

pub use reader::{LogReader, Progress};
use writer::writer_loop;

pub const FILE_NAME: &str = "intake.db";

/// Signals acknowledged and not yet decided, at most, unless configured:
/// past this the log refuses appends (about 300 MB of log at typical
/// signal sizes).
pub const MAX_BACKLOG: u64 = 1_000_000;

/// Appends (requests) queued for the writer before it refuses.
const QUEUE: usize = 4096;

/// Appends folded into one commit, at most.
const GROUP: usize = 1024;

/// Decided rows are deleted from the log once this many have piled up, at
/// most `TRUNCATE_MAX` in one commit (the commit acknowledgements wait for).
const TRUNCATE_EVERY: u64 = 4096;
const TRUNCATE_MAX: u64 = 16_384;

/// Commits are a handful of rows of ~300 bytes: with 4 KiB pages (not the
/// journal's 16 KiB) each writes and syncs a quarter of the WAL bytes. The
/// log holds only what is not decided yet, so its working set is small: 8
/// MiB of page cache (not the journal's 64) per connection.
fn connect(path: &Path) -> Result<Connection, JournalError> {
    let conn = connect_with(path, 4096)?;
    conn.pragma_update(None, "cache_size", -8192)
        .map_err(|error| JournalError::Sqlite {
            path: path.display().to_string(),
            error,
        })?;
    Ok(conn)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- The writer numbers rows itself; numbers are never reused, even once the
-- rows below the engine's cursor are deleted and the table is empty: the
-- commit that deletes rows records the highest number yet in `meta`
-- (`HIGH_WATER`). (Not AUTOINCREMENT, which rewrites `sqlite_sequence`'s
-- page in every commit: a third more WAL frames for a commit of a few rows.
-- Logs made with it keep it, and their `sqlite_sequence` is still read.)
CREATE TABLE IF NOT EXISTS intake (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
";

/// The meta key of the highest sequence number written before the last
/// deletion of rows.
const HIGH_WATER: &str = "high_water";

/// Why an append was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The engine is this many signals behind, or the writer's queue is
    /// full: retry shortly.
    Full { backlog: u64 },
    /// The writer has stopped.
    Gone,
    /// The engine no longer decides from the log (and why).
    Halted(String),
    /// The engine has not come round to the log for this long: it is
    /// stuck, and what is acknowledged now might wait for ever.
    Stuck(std::time::Duration),
    /// A signal could not be written as JSON.
    Unwritable(String),
}

type Reply = oneshot::Sender<Result<(), String>>;

struct Append {
    /// The signals as the log stores them (serialized by the caller, so the
    /// writer, which every acknowledgement waits for, only inserts).
    rows: Vec<String>,
    /// Each row's sequence number, given by the caller (a cluster
    /// partition's log numbers rows by their place in the signal stream);
    /// empty: the writer numbers them.
    at: Vec<u64>,
    reply: Reply,
}

struct Shared {
    /// Highest sequence number committed to the log.
    committed: AtomicU64,
    /// Highest sequence number whose decisions are committed to the journal.
    decided: AtomicU64,
    /// Set when the engine has been woken and has not read since.
    nudged: AtomicBool,
    /// Why the engine stopped deciding from the log (a journal commit
    /// failed, or the engine ended): appends are refused from then on, and
    /// the position it reported is never moved again, so a restart decides
    /// from the last cursor its journal holds.
    halted: Mutex<Option<String>>,
    wake: Mutex<Option<Box<dyn Fn() + Send>>>,
    max_backlog: u64,
    /// When the engine last came round to the log, in milliseconds since
    /// `epoch` (0: no engine reads it yet).
    heartbeat: AtomicU64,
    epoch: std::time::Instant,
    /// Silence past which the engine is taken for stuck (`STUCK_AFTER`
    /// unless set), in milliseconds.
    stuck_after: AtomicU64,
    /// When each commit of the log happened, by its last sequence number,
    /// oldest first: the moment its signals were acknowledged. The reader
    /// drops what it has read past.
    acks: Mutex<std::collections::VecDeque<(u64, std::time::Instant)>>,
    /// From acknowledgement to a durable decision, per signal.
    latency: prometheus_client::metrics::histogram::Histogram,
    /// How long each commit of the log took.
    commits: prometheus_client::metrics::histogram::Histogram,
}

/// Buckets of `Shared::latency`, in seconds: 0.5 ms up to about 70 s,
/// each a quarter wider than the one before (a quantile read from them is
/// within 25 %).
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 1.25, 54)
}

impl Shared {
    fn halted(&self) -> Option<String> {
        self.halted.lock().ok().and_then(|h| h.clone())
    }

    fn halt(&self, why: &str) {
        if let Ok(mut halted) = self.halted.lock()
            && halted.is_none()
        {
            tracing::error!(
                reason = why,
                "the engine stopped deciding from the intake log"
            );
            *halted = Some(why.to_string());
        }
    }

    fn backlog(&self) -> u64 {
        self.committed
            .load(Ordering::SeqCst)
            .saturating_sub(self.decided.load(Ordering::SeqCst))
    }

    fn beat(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.heartbeat.store(now.max(1), Ordering::SeqCst);
    }

    /// How long since the engine last came round, past `STUCK_AFTER`.
    fn stuck(&self) -> Option<std::time::Duration> {
        let beat = self.heartbeat.load(Ordering::SeqCst);
        if beat == 0 {
            return None;
        }
        let silent = (self.epoch.elapsed().as_millis() as u64).saturating_sub(beat);
        let limit = self.stuck_after.load(Ordering::SeqCst);
        (silent >= limit).then_some(std::time::Duration::from_millis(silent))
    }
}

/// An engine that has not come round to the log for this long is taken
/// for stuck: appends are refused (503) until it does. It comes round
/// every 200 ms when idle, and after each batch of decisions when busy.
pub const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The appending side, cloned into every request handler.
#[derive(Clone)]
pub struct IntakeLog {
    tx: SyncSender<Append>,
    shared: Arc<Shared>,
    id: Arc<str>,
    path: Arc<PathBuf>,
    /// A secret of the data directory, made with the log: the key of the
    /// PagerDuty integrations' fingerprints (`hash::keyed_fingerprint`).
    integration_key: Arc<[u8]>,
}

impl IntakeLog {
    /// Opens (creating if needed) the log in `dir` and starts its writer,
    /// which ends when the last `IntakeLog` clone is dropped.
    pub fn open(dir: &Path) -> Result<(IntakeLog, JoinHandle<()>), JournalError> {
        IntakeLog::open_with(dir, MAX_BACKLOG)
    }

    /// The data directory's secret for fingerprints of routing keys.
    pub fn integration_key(&self) -> &[u8] {
        &self.integration_key
    }

    /// The same log with `key` as its secret (a cluster node's: the
    /// cluster's, so that every node fingerprints and signs alike).
    pub fn with_integration_key(mut self, key: &[u8]) -> IntakeLog {
        self.integration_key = key.into();
        self
    }

    /// `open`, refusing appends once `max_backlog` signals wait.
    pub fn open_with(
        dir: &Path,
        max_backlog: u64,
    ) -> Result<(IntakeLog, JoinHandle<()>), JournalError> {
        IntakeLog::open_named(dir, None, max_backlog)
    }

    /// `open_with`, the log named `name` instead of a random id: a cluster
    /// partition's log, fed from the signal stream and numbered by it, so
    /// that the journal's cursor means the same on whichever node rebuilds
    /// the partition.
    pub fn open_named(
        dir: &Path,
        name: Option<&str>,
        max_backlog: u64,
    ) -> Result<(IntakeLog, JoinHandle<()>), JournalError> {
        std::fs::create_dir_all(dir).map_err(|error| JournalError::Io {
            path: dir.display().to_string(),
            error,
        })?;
        let path = dir.join(FILE_NAME);
        let sql = |error| JournalError::Sqlite {
            path: path.display().to_string(),
            error,
        };
        let mut conn = connect(&path)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        let id = log_id(&conn, name).map_err(sql)?;
        let integration_key = integration_key(&conn).map_err(sql)?;
        let last = last_number(&conn).map_err(sql)?;
        let first: Option<i64> = conn
            .query_row("SELECT MIN(seq) FROM intake", [], |r| r.get(0))
            .map_err(sql)?;
        // Until the engine says where it is, everything still in the log
        // counts as undecided.
        let decided = first.map_or(last, |f| (f.max(1) - 1) as u64);
        let shared = Arc::new(Shared {
            committed: AtomicU64::new(last),
            decided: AtomicU64::new(decided),
            nudged: AtomicBool::new(false),
            halted: Mutex::new(None),
            wake: Mutex::new(None),
            max_backlog: max_backlog.max(1),
            heartbeat: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            stuck_after: AtomicU64::new(STUCK_AFTER.as_millis() as u64),
            acks: Mutex::new(std::collections::VecDeque::new()),
            latency: prometheus_client::metrics::histogram::Histogram::new(latency_buckets()),
            commits: commit_histogram(),
        });
        // Checkpoints run beside the writer, as the journal's do; the thread
        // ends with the writer's connection, and the writer waits for it.
        if name.is_some() {
            // A cluster partition's log is a copy of the signal stream,
            // which is what acknowledged them; it is read again from there
            // after a crash.
            conn.pragma_update(None, "synchronous", "OFF")
                .map_err(sql)?;
        }
        let checkpointer = start_checkpointer(&mut conn, &path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let writer_shared = Arc::clone(&shared);
        let writer_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("intake-log".into())
            .spawn(move || {
                writer_loop(conn, rx, writer_shared, &writer_path);
                if checkpointer.join().is_err() {
                    tracing::error!(log = %writer_path.display(), "intake log checkpoint thread panicked");
                }
            })
            .map_err(|error| JournalError::Io {
                path: path.display().to_string(),
                error,
            })?;
        Ok((
            IntakeLog {
                tx,
                shared,
                id: id.into(),
                path: Arc::new(path),
                integration_key,
            },
            writer,
        ))
    }

    /// Queues signals for the next commit; the receiver resolves once they
    /// are durable (or the commit failed). Refused while the engine is
    /// the log's maximum backlog behind.
    pub fn append(
        &self,
        signals: &[Signal],
    ) -> Result<oneshot::Receiver<Result<(), String>>, Refused> {
        self.append_at(signals, Vec::new())
    }

    /// `append`, each signal at the sequence number `at` gives it (rising;
    /// a number the log has passed already is left out as a repeat).
    pub fn append_at(
        &self,
        signals: &[Signal],
        at: Vec<u64>,
    ) -> Result<oneshot::Receiver<Result<(), String>>, Refused> {
        if !at.is_empty() && at.len() != signals.len() {
            return Err(Refused::Unwritable(format!(
                "{} signals with {} sequence numbers",
                signals.len(),
                at.len()
            )));
        }
        if let Some(why) = self.shared.halted() {
            return Err(Refused::Halted(why));
        }
        if let Some(silent) = self.shared.stuck() {
            return Err(Refused::Stuck(silent));
        }
        let backlog = self.backlog();
        if backlog >= self.shared.max_backlog {
            return Err(Refused::Full { backlog });
        }
        // The signal as serde writes it: the log is read back only by this
        // program (`LogReader::read`).
        let rows = signals
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Refused::Unwritable(e.to_string()))?;
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Append { rows, at, reply }) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(Refused::Full { backlog }),
            Err(TrySendError::Disconnected(_)) => Err(Refused::Gone),
        }
    }

    /// Signals acknowledged and not yet decided.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog()
    }

    /// From acknowledgement to a durable decision, per signal, in seconds.
    pub fn decision_latency(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.shared.latency.clone()
    }

    /// How long each commit of the log took, in seconds.
    pub fn commit_latency(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.shared.commits.clone()
    }

    /// Takes the engine for stuck after `silence` without it coming round
    /// (instead of `STUCK_AFTER`).
    pub fn set_stuck_after(&self, silence: std::time::Duration) {
        let millis = u64::try_from(silence.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .stuck_after
            .store(millis.max(1), Ordering::SeqCst);
    }

    /// Why the log takes no appends now, if it does not: the engine
    /// stopped deciding from it, or seems stuck.
    pub fn unavailable(&self) -> Option<String> {
        if let Some(why) = self.shared.halted() {
            return Some(format!("the engine stopped deciding: {why}"));
        }
        self.shared.stuck().map(|silent| {
            format!(
                "the engine has not come round to the intake log for {} s",
                silent.as_secs()
            )
        })
    }

    /// Refuses appends from now on: nothing will decide them (the
    /// console's engine thread ended).
    pub fn halt(&self, why: &str) {
        self.shared.halt(why);
    }

    /// Called (on the writer's thread) after a commit when the engine has
    /// read everything before it: it wakes the engine.
    pub fn on_append(&self, wake: impl Fn() + Send + 'static) {
        if let Ok(mut w) = self.shared.wake.lock() {
            *w = Some(Box::new(wake));
        }
    }

    /// The engine's side, positioned after `cursor` (the journal's
    /// `intake_cursor`; a cursor of another log, or none, means everything
    /// in this one is still to be decided).
    pub fn reader(&self, cursor: Option<&str>) -> Result<LogReader, JournalError> {
        let conn = connect(&self.path)?;
        let after = position_in(cursor, &self.id).unwrap_or(0);
        self.shared.decided.store(after, Ordering::SeqCst);
        self.shared.beat();
        Ok(LogReader {
            conn,
            shared: Arc::clone(&self.shared),
            id: Arc::clone(&self.id),
            path: Arc::clone(&self.path),
            next: after + 1,
            last: None,
        })
    }
}

/// The sequence number a journal's cursor (`LOG_ID:SEQ`) names in the
/// log `log_id`; none for a cursor of another log, or none at all.
pub fn position_in(cursor: Option<&str>, log_id: &str) -> Option<u64> {
    cursor
        .and_then(|c| c.rsplit_once(':'))
        .filter(|(id, _)| *id == log_id)
        .and_then(|(_, seq)| seq.parse::<u64>().ok())
}

/// The data directory's secret for fingerprints (32 random bytes, hex in
/// the log's meta), made the first time it is asked for.
fn integration_key(conn: &Connection) -> rusqlite::Result<Arc<[u8]>> {
    let key: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'integration_key'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let key = match key.and_then(|k| hex::decode(k).ok()) {
        Some(key) if !key.is_empty() => key,
        _ => {
            let key: [u8; 32] = rand::random();
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('integration_key', ?1)",
                [hex::encode(key)],
            )?;
            key.to_vec()
        }
    };
    Ok(key.into())
}

/// The log's identity, made when the file is: a journal cursor names it, so
/// a log file replaced by a fresh one is read from its start.
fn log_id(conn: &Connection, name: Option<&str>) -> rusqlite::Result<String> {
    if let Some(name) = name {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('log_id', ?1)",
            [name],
        )?;
        return Ok(name.to_string());
    }
    let id: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'log_id'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match id {
        Some(id) => Ok(id),
        None => {
            let id = format!("{:016x}", rand::random::<u64>());
            conn.execute("INSERT INTO meta (key, value) VALUES ('log_id', ?1)", [&id])?;
            Ok(id)
        }
    }
}

/// The highest sequence number the log has ever given: in its rows, in the
/// high-water mark its last deletion left, or (a log made with
/// AUTOINCREMENT) in `sqlite_sequence`.
fn last_number(conn: &Connection) -> rusqlite::Result<u64> {
    let in_rows: Option<i64> = conn.query_row("SELECT MAX(seq) FROM intake", [], |r| r.get(0))?;
    let mark: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [HIGH_WATER], |r| {
            r.get(0)
        })
        .optional()?;
    let mark = match mark {
        Some(text) => text.parse::<i64>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("meta {HIGH_WATER} {text:?}: {e}").into(),
            )
        })?,
        None => 0,
    };
    let has_sequence: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence')",
        [],
        |r| r.get(0),
    )?;
    let sequence: Option<i64> = if has_sequence {
        conn.query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'intake'",
            [],
            |r| r.get(0),
        )
        .optional()?
    } else {
        None
    };
    Ok([in_rows, Some(mark), sequence]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
        .max(0) as u64)
}
