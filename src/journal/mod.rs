//! The journal: one SQLite file (WAL) that holds everything signalbox must
//! not forget: signals, decisions, review actions, flows, feedback, the
//! entity store and model checkpoints.
//!
//! Guarantees:
//! - one writer thread owns the write connection; records are applied in the
//!   order they were submitted, many per transaction (group commit);
//! - `Commit::wait` returns only once everything submitted before it is
//!   committed, so a caller acknowledges a signal only after that;
//! - decisions and review actions form a hash chain in the `audit` table.

pub mod author;
pub mod chain;
mod checkpoint;
pub mod explain;
pub mod fence;
pub mod intake_log;
pub mod read;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use rusqlite::OptionalExtension;
use thiserror::Error;

pub(crate) use checkpoint::start_checkpointer;
pub use fence::Fence;
pub use schema::{connect, connect_with};
pub use writer::commit_histogram;
use writer::{Batch, Done, QUEUE_DEPTH, Writer};

use crate::decide::Decision;
use crate::flow::{Flow, FlowEvent, Step};
use crate::review::{ReviewAction, ReviewItem};
use crate::signal::Signal;

/// What can go wrong with the journal. Each variant's message carries its
/// cause's (the one `source` returns), so a message read alone is whole.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {path}: {error}")]
    Sqlite {
        path: String,
        #[source]
        error: rusqlite::Error,
    },
    #[error("journal {path}: {error}")]
    Io {
        path: String,
        #[source]
        error: std::io::Error,
    },
    /// A group commit failed: nothing of it is in the journal.
    #[error("journal {path}: commit failed: {error}")]
    CommitFailed {
        path: String,
        #[source]
        error: Arc<rusqlite::Error>,
    },
    /// The journal was closed before the records were submitted.
    #[error("journal {path} is closed")]
    Closed { path: String },
    /// The writer thread is gone (it ended or panicked): what was waiting
    /// for it was not committed.
    #[error("journal {path}: the {thread} thread {how}")]
    ThreadGone {
        path: String,
        thread: &'static str,
        how: &'static str,
    },
    #[error(
        "the journal in {path} is open in another signalbox process (serve, the console or a command); \
         stop it first, or act through its HTTP API"
    )]
    Locked { path: String },
    /// A decision names a shared view (the services' health, the recent
    /// changes) that the journal does not hold, or holds altered.
    #[error("journal {path}: decision {decision} names the {kind} view {version}, which {fault}")]
    View {
        path: String,
        decision: String,
        kind: &'static str,
        version: String,
        fault: String,
    },
    #[error("journal {path}: corrupt record {what}: {error}")]
    Corrupt {
        path: String,
        what: String,
        error: String,
    },
}

/// One thing to write.
#[derive(Debug)]
pub enum Record {
    Signal(Arc<Signal>),
    Decision(Arc<Decision>),
    ReviewAction(ReviewAction),
    Review(Box<ReviewItem>),
    /// A page as it stands, with every attempt.
    Page(Box<crate::paging::Page>),
    /// An incident as it stands, with its alerts.
    Incident(Box<crate::flow::incident::Incident>),
    /// A silence as it stands.
    Silence(Box<crate::noise::Silence>),
    /// A flow's state, with its events since the last flush appended to the
    /// same row (one row write per flow per flush).
    /// A big flow (`flow::BIG_FLOW`) comes without its steps and with
    /// `steps`, those of its steps that changed, each written to its own
    /// row; its events go to rows of their own too, so nothing that grows
    /// with the flow is rewritten at every flush.
    Flow {
        flow: Box<Flow>,
        events: Vec<FlowEvent>,
        steps: Option<Vec<(usize, Step)>>,
    },
    /// Events of a flow whose state did not change, appended to its row.
    FlowEvents(Vec<FlowEvent>),
    /// A finished flow's outcome turned bad after it left memory (its
    /// alert reopened, or what ends it did not come by its deadline):
    /// changed in its row if that still says it was within SLA.
    FlowOutcome {
        id: String,
        outcome: crate::flow::outcome::Outcome,
    },
    /// A finished flow's outcome still waiting on a later signal
    /// (`engine::verdicts`), or `None` once settled (the row goes).
    Verdict {
        key: String,
        body: Option<String>,
    },
    /// A decision whose flow ended and which waits out the outcome horizon
    /// for a stated outcome before learning from the flow's own result
    /// (`engine::learning`), or `None` once learnt or let go (the row goes).
    LabelDue {
        decision_id: String,
        body: Option<String>,
    },
    Feedback(Feedback),
    /// A signal put in quarantine, or taken out of it.
    Quarantine(Quarantined),
    Entity {
        key: String,
        body: crate::context::EntityJson,
    },
    Checkpoint {
        feedback_count: i64,
        body: String,
    },
    Meta {
        key: String,
        value: String,
    },
    /// A record the journal holds but cannot read back (written by an
    /// older version, or damaged), moved aside with its raw text so that a
    /// start can go on without it.
    SetAside(SetAside),
    /// Something a person or the operator's tooling did that is not a
    /// review action (a task completed, a configuration reloaded), in the
    /// audit chain under its own kind.
    Audit(AuditEntry),
}

/// An entry of the audit chain other than a decision, review action or
/// quarantine.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// `task` or `config`.
    pub kind: String,
    /// What it is about: a task id, a configuration's versions.
    pub ref_id: String,
    /// The decision it concerns, if any.
    #[serde(default)]
    pub decision_id: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub body: serde_json::Value,
}

/// A record that could not be read back, as set aside: which table and
/// row, why, and its text as it was.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetAside {
    /// The table it was in (`reviews`, `flows`, `entities`, `feedback`,
    /// `checkpoints`, `signals`).
    pub table: String,
    /// Its key there.
    pub key: String,
    pub error: String,
    pub raw: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: chrono::DateTime<chrono::Utc>,
}

/// A labelled example as journaled, enough to replay it into the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Feedback {
    pub decision_id: String,
    pub option: String,
    pub label: f64,
    pub importance: f64,
    pub source: String,
    pub features: Vec<String>,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// Where a quarantined signal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineState {
    /// Held: never decided, never retried unless someone asks.
    Held,
    /// Handed back to the engine to decide again.
    Retried,
    /// Set aside for good by someone; it stays journaled.
    Dropped,
}

impl QuarantineState {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineState::Held => "held",
            QuarantineState::Retried => "retried",
            QuarantineState::Dropped => "dropped",
        }
    }
}

/// A signal the engine could not decide, with why, and what became of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    pub signal_id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: String,
    /// What went wrong deciding it.
    pub error: String,
    pub state: QuarantineState,
    /// When this state began.
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: chrono::DateTime<chrono::Utc>,
    /// Who retried or dropped it (the engine itself for `held`).
    pub actor: String,
    #[serde(default)]
    pub note: String,
}

/// A handle on a submitted batch; `wait` blocks until it is durable.
pub struct Commit {
    path: PathBuf,
    done: Option<Receiver<Done>>,
}

impl Commit {
    pub fn wait(self) -> Result<(), JournalError> {
        let path = self.path.display().to_string();
        match self.done {
            None => Ok(()),
            Some(rx) => rx
                .recv()
                .map_err(|_| JournalError::ThreadGone {
                    path: path.clone(),
                    thread: "writer",
                    how: "ended before committing",
                })?
                .map_err(|error| JournalError::CommitFailed { path, error }),
        }
    }
}

/// Statistics the writer keeps, read by metrics and the bench.
#[derive(Debug, Default, Clone)]
pub struct WriterStats {
    pub commits: u64,
    pub records: u64,
    pub last_commit_micros: u64,
    /// Time spent writing and committing, in all.
    pub busy_micros: u64,
}

pub struct Journal {
    path: PathBuf,
    /// Held for as long as the journal is open: one writer per journal, so
    /// two processes never interleave commits or fork the audit chain.
    _lock: std::fs::File,
    tx: Option<SyncSender<Batch>>,
    writer: Option<JoinHandle<()>>,
    /// Ends when the writer's connection (which holds its wake-up) closes.
    checkpointer: Option<JoinHandle<()>>,
    pub stats: Arc<std::sync::Mutex<WriterStats>>,
    /// How long each commit took (writing and syncing), in seconds.
    pub commit_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Records the writer has committed, handed back to be freed here: they
    /// were allocated on this side, and freeing memory on the thread that
    /// allocated it is the allocator's fast path (freed on the writer, every
    /// block went through the allocator's cross-thread queue, which both
    /// threads paid for).
    spent: Receiver<Vec<Record>>,
}

/// Committed batches of records waiting to be freed by the submitting side,
/// at most; past this the writer frees them itself.
const SPENT_DEPTH: usize = 8;

pub const FILE_NAME: &str = "signalbox.db";

/// The lock file beside the journal (see `Journal::_lock`).
pub const LOCK_NAME: &str = "signalbox.lock";

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and starts its writer.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        Journal::open_fenced(dir, None)
    }

    /// `open`, each commit appended to `fence` before it is made (a
    /// cluster node's partition: see `fence`).
    pub fn open_fenced(dir: &Path, fence: Option<Arc<dyn Fence>>) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|error| JournalError::Io {
            path: dir.display().to_string(),
            error,
        })?;
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let mut conn = connect(&path)?;
        conn.execute_batch(schema::SCHEMA)
            .and_then(|()| schema::migrate(&mut conn))
            .map_err(|error| JournalError::Sqlite {
                path: path.display().to_string(),
                error,
            })?;
        let last_hash: String = conn
            .query_row(
                "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|error| JournalError::Sqlite {
                path: path.display().to_string(),
                error,
            })?
            .unwrap_or_else(|| chain::GENESIS.to_string());
        if fence.is_some() {
            // A fenced journal is a view: every commit is in the stream
            // before it is made here, and a node that takes the partition
            // rebuilds it from there. Its syncs would buy nothing.
            conn.pragma_update(None, "synchronous", "OFF")
                .map_err(|error| JournalError::Sqlite {
                    path: path.display().to_string(),
                    error,
                })?;
        }
        let checkpointer = start_checkpointer(&mut conn, &path)?;
        let (tx, batches) = mpsc::sync_channel::<Batch>(QUEUE_DEPTH);
        let (spent_tx, spent) = mpsc::sync_channel(SPENT_DEPTH);
        let stats = Arc::new(std::sync::Mutex::new(WriterStats::default()));
        let commit_seconds = commit_histogram();
        let writer = Writer {
            conn,
            batches,
            spent: spent_tx,
            last_hash,
            stats: Arc::clone(&stats),
            commits: commit_seconds.clone(),
            path: path.clone(),
            views: Default::default(),
            fence,
        };
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run())
            .map_err(|error| JournalError::Io {
                path: path.display().to_string(),
                error,
            })?;
        Ok(Journal {
            path,
            _lock: lock,
            tx: Some(tx),
            writer: Some(writer),
            checkpointer: Some(checkpointer),
            stats,
            commit_seconds,
            spent,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues records for the next group commit. The returned `Commit`
    /// resolves when they are durable.
    pub fn submit(&self, records: Vec<Record>) -> Result<Commit, JournalError> {
        while let Ok(spent) = self.spent.try_recv() {
            drop(spent);
        }
        let (done_tx, done_rx) = mpsc::channel();
        let path = || self.path.display().to_string();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| JournalError::Closed { path: path() })?;
        tx.send(Batch {
            records,
            done: Some(done_tx),
        })
        .map_err(|_| JournalError::ThreadGone {
            path: path(),
            thread: "writer",
            how: "has ended",
        })?;
        Ok(Commit {
            path: self.path.clone(),
            done: Some(done_rx),
        })
    }

    /// Waits for everything submitted so far, then stops the writer.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), JournalError> {
        if let Some(tx) = self.tx.take() {
            drop(tx);
        }
        let gone = |thread| JournalError::ThreadGone {
            path: self.path.display().to_string(),
            thread,
            how: "panicked",
        };
        if let Some(handle) = self.writer.take() {
            handle.join().map_err(|_| gone("writer"))?;
        }
        if let Some(handle) = self.checkpointer.take() {
            handle.join().map_err(|_| gone("checkpoint"))?;
        }
        Ok(())
    }
}

/// Takes the journal's lock, or says who holds it.
fn lock(dir: &Path) -> Result<std::fs::File, JournalError> {
    let path = dir.join(LOCK_NAME);
    let io = |error| JournalError::Io {
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked {
            path: dir.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
