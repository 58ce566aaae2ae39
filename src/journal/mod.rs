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

pub mod chain;
pub mod explain;
pub mod intake_log;
pub mod read;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use crate::decide::Decision;
use crate::flow::{Flow, FlowEvent, Step};
use crate::review::{ReviewAction, ReviewItem};
use crate::signal::Signal;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {path}: {error}")]
    Sqlite {
        path: String,
        error: rusqlite::Error,
    },
    #[error("journal {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("journal writer stopped: {0}")]
    WriterGone(String),
    #[error(
        "the journal in {path} is open in another signalbox process (serve, the console or a command); \
         stop it first, or act through its HTTP API"
    )]
    Locked { path: String },
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

struct Batch {
    records: Vec<Record>,
    done: Option<mpsc::Sender<Result<(), String>>>,
}

/// A handle on a submitted batch; `wait` blocks until it is durable.
pub struct Commit {
    done: Option<Receiver<Result<(), String>>>,
}

impl Commit {
    pub fn wait(self) -> Result<(), JournalError> {
        match self.done {
            None => Ok(()),
            Some(rx) => rx
                .recv()
                .map_err(|_| JournalError::WriterGone("writer thread ended".into()))?
                .map_err(JournalError::WriterGone),
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- A signal is identified by its source and id together (CloudEvents):
-- `signals_key` (made once `migrate` has given older journals the column).
CREATE TABLE IF NOT EXISTS signals (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, type TEXT NOT NULL,
    subject TEXT NOT NULL, time TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref_id TEXT NOT NULL,
    decision_id TEXT NOT NULL, signal_id TEXT, time TEXT NOT NULL,
    body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    signal_source TEXT);
CREATE INDEX IF NOT EXISTS audit_decision ON audit(decision_id);
CREATE INDEX IF NOT EXISTS audit_signal ON audit(signal_id);
-- Tables of rows replaced in place are WITHOUT ROWID: one b-tree keyed by
-- id, so a replace is one write instead of a delete and an insert in both
-- a table and its key index.
CREATE TABLE IF NOT EXISTS reviews (id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flows (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, decision_id TEXT NOT NULL, body TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
-- Flow events of journals written before they moved into `flows.events`
-- (JSON lines); read, no longer written except as a fallback.
CREATE TABLE IF NOT EXISTS flow_events (
    seq INTEGER PRIMARY KEY, flow_id TEXT NOT NULL, time TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS flow_events_flow ON flow_events(flow_id);
-- A big flow's steps, a row each, and its events, a row of JSON lines per
-- flush (a small flow keeps both in its `flows` row).
CREATE TABLE IF NOT EXISTS flow_steps (
    flow_id TEXT NOT NULL, idx INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (flow_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flow_log (
    seq INTEGER PRIMARY KEY, flow_id TEXT NOT NULL, events TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS flow_log_flow ON flow_log(flow_id);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS feedback_decision ON feedback(decision_id);
CREATE TABLE IF NOT EXISTS entities (key TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, feedback_count INTEGER NOT NULL, body TEXT NOT NULL);
-- The audit chain's hash every `chain::MARK_EVERY` records, by seq.
CREATE TABLE IF NOT EXISTS chain_marks (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL);
-- Signals the engine could not decide, by identity; the latest state of
-- each (held, retried, dropped). Every change is in the audit chain too.
CREATE TABLE IF NOT EXISTS quarantine (
    signal_id TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, time TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (signal_id, source)) WITHOUT ROWID;
";

/// Opens a connection with the pragmas every connection uses.
pub fn connect(path: &Path) -> Result<Connection, JournalError> {
    connect_with(path, 16_384)
}

/// `connect`, with the page size a new database file gets.
pub fn connect_with(path: &Path, page_size: u32) -> Result<Connection, JournalError> {
    let err = |error| JournalError::Sqlite {
        path: path.display().to_string(),
        error,
    };
    let conn = Connection::open(path).map_err(err)?;
    // 16 KiB pages for a new journal (an existing one keeps its own): the
    // journal appends rows of 0.3-2 KB, and bigger pages mean fewer pages,
    // fewer WAL frames and fewer b-tree splits per commit. (The intake log,
    // whose commits are a few rows each, takes smaller ones.)
    conn.pragma_update(None, "page_size", page_size)
        .map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    // FULL: a committed transaction survives power loss, not only a crash.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.pragma_update(None, "busy_timeout", 5000)
        .map_err(err)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(err)?;
    // 64 MiB of page cache (the default is 2 MiB): the journal's tables and
    // indexes stay in memory instead of being read back for every insert.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(err)?;
    // Checkpoint every ~32 MiB of WAL instead of every 4 MiB: a page written
    // by many commits in between is copied to the database once. (Counted
    // in pages, whose size depends on when the journal was created.) The
    // journal's writer replaces this with a checkpoint thread of its own
    // (`start_checkpointer`, same threshold).
    let pages = checkpoint_pages(&conn).map_err(err)?;
    conn.pragma_update(None, "wal_autocheckpoint", pages)
        .map_err(err)?;
    Ok(conn)
}

/// Tables rebuilt WITHOUT ROWID when an older journal has them with one,
/// with their columns.
const KEYED: [(&str, &str); 4] = [
    ("meta", "key, value"),
    ("reviews", "id, state, body"),
    ("flows", "id, state, decision_id, body, events"),
    ("entities", "key, body"),
];

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )
}

/// Brings a journal written by an earlier version up to the schema.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    if !has_column(conn, "flows", "events")? {
        conn.execute_batch("ALTER TABLE flows ADD COLUMN events TEXT NOT NULL DEFAULT ''")?;
    }
    if !has_column(conn, "audit", "signal_source")? {
        conn.execute_batch("ALTER TABLE audit ADD COLUMN signal_source TEXT")?;
    }
    // A fan-out's branches name their parent decision: indexed, so an
    // explanation finds them without reading every decision.
    if !has_column(conn, "audit", "parent")? {
        conn.execute_batch(
            "ALTER TABLE audit ADD COLUMN parent TEXT;
             UPDATE audit SET parent = json_extract(body, '$.parent')
                 WHERE kind = 'decision' AND body LIKE '%\"parent\":%';",
        )?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS audit_parent ON audit(parent) WHERE parent IS NOT NULL",
    )?;
    // Checkpoints for records written before there were any.
    conn.execute(
        "INSERT OR IGNORE INTO chain_marks (seq, hash)
         SELECT seq, hash FROM audit
         WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM chain_marks) AND seq % ?1 = 0",
        [chain::MARK_EVERY],
    )?;
    // Signals were once unique by id alone: the table is rebuilt with
    // their source beside it (taken from the body each row holds).
    if !has_column(conn, "signals", "source")? {
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE signals_keyed (
                 seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL,
                 type TEXT NOT NULL, subject TEXT NOT NULL, time TEXT NOT NULL, body TEXT NOT NULL);
             INSERT INTO signals_keyed (seq, id, source, type, subject, time, body)
                 SELECT seq, id, COALESCE(json_extract(body, '$.source'), ''), type, subject, time, body
                 FROM signals;
             DROP TABLE signals;
             ALTER TABLE signals_keyed RENAME TO signals;",
        )?;
        tx.commit()?;
    }
    conn.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS signals_key ON signals(id, source)")?;
    for (table, columns) in KEYED {
        let sql: String = conn.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if sql.to_uppercase().contains("WITHOUT ROWID") {
            continue;
        }
        // The new table's definition is the one SCHEMA gives, under a
        // temporary name; rows are copied in one transaction.
        let create = SCHEMA
            .split(';')
            .find(|stmt| stmt.contains(&format!("EXISTS {table} (")))
            .map(|stmt| {
                stmt.replace(
                    &format!("EXISTS {table} ("),
                    &format!("EXISTS {table}_keyed ("),
                )
            })
            .unwrap_or_default();
        let tx = conn.transaction()?;
        tx.execute_batch(&format!(
            "{create};
             INSERT INTO {table}_keyed ({columns}) SELECT {columns} FROM {table};
             DROP TABLE {table};
             ALTER TABLE {table}_keyed RENAME TO {table};"
        ))?;
        tx.commit()?;
    }
    Ok(())
}

/// Flow events as JSON lines, the form `flows.events` appends, in `buf`.
fn event_lines<'a>(buf: &'a mut Vec<u8>, events: &[FlowEvent]) -> rusqlite::Result<&'a str> {
    buf.clear();
    for e in events {
        append_json(buf, e);
        buf.push(b'\n');
    }
    text(buf)
}

/// `value`'s JSON text in `buf`, which is reused from row to row: a body
/// serialised into a fresh `String` grew it by doubling and was freed at
/// once, for each of the three or four rows a signal writes.
fn json<'a, T: serde::Serialize + ?Sized>(
    buf: &'a mut Vec<u8>,
    value: &T,
) -> rusqlite::Result<&'a str> {
    buf.clear();
    append_json(buf, value);
    text(buf)
}

/// Our types serialise without error (plain structs, string keys); were
/// one not to, its row says so rather than going missing.
fn append_json<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    let start = buf.len();
    if let Err(e) = serde_json::to_writer(&mut *buf, value) {
        buf.truncate(start);
        let note = serde_json::json!({ "unserialisable": e.to_string() });
        buf.extend_from_slice(note.to_string().as_bytes());
    }
}

/// serde_json writes UTF-8; checked all the same, and a failure fails the
/// commit instead of writing something else.
fn text(buf: &[u8]) -> rusqlite::Result<&str> {
    Ok(std::str::from_utf8(buf)?)
}

/// The writer's reusable buffers for JSON text (see `json`): a row's body
/// and a flow's event lines, which one statement can bind together.
#[derive(Default)]
struct Buffers {
    body: Vec<u8>,
    events: Vec<u8>,
}

const MAX_BATCHES_PER_COMMIT: usize = 256;
const QUEUE_DEPTH: usize = 1024;

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and starts its writer.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|error| JournalError::Io {
            path: dir.display().to_string(),
            error,
        })?;
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let mut conn = connect(&path)?;
        conn.execute_batch(SCHEMA)
            .and_then(|()| migrate(&mut conn))
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
        let checkpointer = start_checkpointer(&mut conn, &path)?;
        let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE_DEPTH);
        let (spent_tx, spent) = mpsc::sync_channel(SPENT_DEPTH);
        let stats = Arc::new(std::sync::Mutex::new(WriterStats::default()));
        let writer_stats = Arc::clone(&stats);
        let commit_seconds = commit_histogram();
        let writer_commits = commit_seconds.clone();
        let writer_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                writer_loop(
                    conn,
                    rx,
                    spent_tx,
                    last_hash,
                    (writer_stats, writer_commits),
                    writer_path,
                )
            })
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
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| JournalError::WriterGone("journal closed".into()))?;
        tx.send(Batch {
            records,
            done: Some(done_tx),
        })
        .map_err(|_| JournalError::WriterGone("writer thread ended".into()))?;
        Ok(Commit {
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
        if let Some(handle) = self.writer.take() {
            handle
                .join()
                .map_err(|_| JournalError::WriterGone("writer thread panicked".into()))?;
        }
        if let Some(handle) = self.checkpointer.take() {
            handle
                .join()
                .map_err(|_| JournalError::WriterGone("checkpoint thread panicked".into()))?;
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

/// WAL size (in bytes) at which the checkpoint thread is woken, and the
/// multiple of it at which the writer checkpoints itself.
const CHECKPOINT_BYTES: i64 = 32 * 1024 * 1024;
const CHECKPOINT_IN_WRITER: i64 = 4;

/// `CHECKPOINT_BYTES` in pages, whose size depends on when the journal was
/// created.
fn checkpoint_pages(conn: &Connection) -> rusqlite::Result<i64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok((CHECKPOINT_BYTES / page_size.max(512)).max(1000))
}

/// Moves WAL checkpoints off the writer. SQLite's automatic checkpoint runs
/// inside the commit that crosses the threshold, so the writer (and every
/// answer waiting for its commit) stalls while pages are copied into the
/// database and it is synced; the bench measured it at ~8% of the writer's
/// time. Instead the writer's WAL hook wakes a thread of its own that runs a
/// PASSIVE checkpoint on its own connection while the writer goes on. A
/// passive checkpoint never blocks the writer but can be outrun by it (the
/// WAL restarts only once every frame was copied back), so past
/// `CHECKPOINT_IN_WRITER` times the threshold the writer checkpoints itself
/// as SQLite would have, which bounds the WAL.
pub(crate) fn start_checkpointer(
    conn: &mut Connection,
    path: &Path,
) -> Result<JoinHandle<()>, JournalError> {
    let err = |error| JournalError::Sqlite {
        path: path.display().to_string(),
        error,
    };
    let threshold = checkpoint_pages(conn).map_err(err)?;
    let checkpoints = connect(path)?;
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    // Replaces the automatic checkpoint (`wal_autocheckpoint` is a WAL
    // hook too).
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        let pages = i64::from(pages);
        if pages >= threshold * CHECKPOINT_IN_WRITER {
            // An error here would fail a commit that has happened; a busy
            // checkpoint (the thread is mid-way through one) is tried again
            // at the next commit.
            if let Err(e) = wal.checkpoint() {
                tracing::debug!(error = %e, "journal checkpoint in the writer deferred");
            }
        } else if pages >= threshold {
            // Full: a wake-up is already pending.
            let _ = wake.try_send(());
        }
        Ok(())
    }))
    .map_err(err)?;
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("journal-checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                let done = checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    r.get::<_, i64>(0)
                });
                if let Err(e) = done {
                    tracing::warn!(path = %shown, error = %e, "journal checkpoint failed; the writer will checkpoint itself");
                }
            }
        })
        .map_err(|error| JournalError::Io {
            path: path.display().to_string(),
            error,
        })
}

/// Buckets for commit durations, in seconds: 50 µs up to about 3 s, each
/// half again as wide as the one before.
pub fn commit_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(0.00005, 1.5, 28),
    )
}

fn writer_loop(
    mut conn: Connection,
    rx: Receiver<Batch>,
    spent: SyncSender<Vec<Record>>,
    mut last_hash: String,
    (stats, commits): (
        Arc<std::sync::Mutex<WriterStats>>,
        prometheus_client::metrics::histogram::Histogram,
    ),
    path: PathBuf,
) {
    let mut buffers = Buffers::default();
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        while batches.len() < MAX_BATCHES_PER_COMMIT {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let count: usize = batches.iter().map(|b| b.records.len()).sum();
        let hash_before = last_hash.clone();
        let result =
            write_batches(&mut conn, &batches, &mut last_hash, &mut buffers).map_err(|e| {
                tracing::error!(path = %path.display(), error = %e, "journal commit failed");
                last_hash = hash_before;
                format!("{}: {e}", path.display())
            });
        commits.observe(started.elapsed().as_secs_f64());
        if let Ok(mut s) = stats.lock() {
            s.commits += 1;
            s.records += count as u64;
            s.last_commit_micros = started.elapsed().as_micros() as u64;
            s.busy_micros += s.last_commit_micros;
        }
        let mut records = Vec::with_capacity(batches.len());
        for batch in batches {
            if let Some(done) = batch.done {
                let _ = done.send(result.clone());
            }
            records.push(batch.records);
        }
        // After the answers, which the submitting side may be waiting for.
        // (A full queue or a closed journal: freed here.)
        for batch in records {
            let _ = spent.try_send(batch);
        }
    }
}

/// One record of the audit chain, beside its body.
struct AuditRow<'a> {
    kind: &'static str,
    ref_id: &'a str,
    decision_id: &'a str,
    signal_id: Option<&'a str>,
    signal_source: Option<&'a str>,
    time: chrono::DateTime<chrono::Utc>,
    parent: Option<&'a str>,
}

/// Appends to the audit chain within one transaction: each record's hash
/// covers the one before, and every `chain::MARK_EVERY`th is kept as a
/// checkpoint.
struct Audit<'t> {
    insert: rusqlite::CachedStatement<'t>,
    mark: rusqlite::CachedStatement<'t>,
    tx: &'t rusqlite::Transaction<'t>,
    last_hash: &'t mut String,
}

impl Audit<'_> {
    fn append(&mut self, row: AuditRow<'_>, body: &str) -> rusqlite::Result<()> {
        let hash = chain::link(self.last_hash, row.kind, body);
        self.insert.execute(params![
            row.kind,
            row.ref_id,
            row.decision_id,
            row.signal_id,
            row.signal_source,
            row.time.to_rfc3339(),
            body,
            &*self.last_hash,
            hash,
            row.parent
        ])?;
        let seq = self.tx.last_insert_rowid();
        if seq % chain::MARK_EVERY == 0 {
            self.mark.execute(params![seq, hash])?;
        }
        *self.last_hash = hash;
        Ok(())
    }
}

fn write_batches(
    conn: &mut Connection,
    batches: &[Batch],
    last_hash: &mut String,
    buffers: &mut Buffers,
) -> rusqlite::Result<()> {
    let Buffers {
        body: buf,
        events: lines,
    } = buffers;
    let tx = conn.transaction()?;
    {
        let mut signal_stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO signals (id, source, type, subject, time, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut audit = Audit {
            insert: tx.prepare_cached(
                "INSERT INTO audit (kind, ref_id, decision_id, signal_id, signal_source, time,
                                    body, prev_hash, hash, parent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            mark: tx
                .prepare_cached("INSERT OR REPLACE INTO chain_marks (seq, hash) VALUES (?1, ?2)")?,
            tx: &tx,
            last_hash,
        };
        let mut quarantine_stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO quarantine (signal_id, source, state, time, body)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut review_stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO reviews (id, state, body) VALUES (?1, ?2, ?3)",
        )?;
        let mut flow_stmt = tx.prepare_cached(
            "INSERT INTO flows (id, state, decision_id, body, events) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state,
                 decision_id = excluded.decision_id, body = excluded.body,
                 events = flows.events || excluded.events",
        )?;
        let mut header_stmt = tx.prepare_cached(
            "INSERT INTO flows (id, state, decision_id, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state,
                 decision_id = excluded.decision_id, body = excluded.body",
        )?;
        let mut step_stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO flow_steps (flow_id, idx, body) VALUES (?1, ?2, ?3)",
        )?;
        let mut log_stmt =
            tx.prepare_cached("INSERT INTO flow_log (flow_id, events) VALUES (?1, ?2)")?;
        let mut append_stmt =
            tx.prepare_cached("UPDATE flows SET events = events || ?2 WHERE id = ?1")?;
        let mut event_stmt =
            tx.prepare_cached("INSERT INTO flow_events (flow_id, time, body) VALUES (?1, ?2, ?3)")?;
        let mut feedback_stmt =
            tx.prepare_cached("INSERT INTO feedback (decision_id, body) VALUES (?1, ?2)")?;
        let mut entity_stmt =
            tx.prepare_cached("INSERT OR REPLACE INTO entities (key, body) VALUES (?1, ?2)")?;
        let mut meta_stmt =
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?;
        for record in batches.iter().flat_map(|b| &b.records) {
            match record {
                Record::Signal(s) => {
                    signal_stmt.execute(params![
                        s.id,
                        s.source,
                        s.kind,
                        s.subject,
                        s.time.to_rfc3339(),
                        json(buf, &s.as_cloudevent())?
                    ])?;
                }
                Record::Decision(d) => {
                    let body = json(buf, d.as_ref())?;
                    audit.append(
                        AuditRow {
                            kind: "decision",
                            ref_id: &d.id,
                            decision_id: &d.id,
                            signal_id: Some(&d.signal_id),
                            signal_source: Some(&d.signal_source),
                            time: d.time,
                            parent: d.parent.as_deref(),
                        },
                        body,
                    )?;
                }
                Record::ReviewAction(a) => {
                    let body = json(buf, a)?;
                    audit.append(
                        AuditRow {
                            kind: "review",
                            ref_id: &a.review_id,
                            decision_id: &a.decision_id,
                            signal_id: None,
                            signal_source: None,
                            time: a.time,
                            parent: None,
                        },
                        body,
                    )?;
                }
                Record::Review(item) => {
                    let state = format!("{:?}", item.state).to_lowercase();
                    review_stmt.execute(params![item.id, state, json(buf, &item.stored())?])?;
                }
                Record::Flow {
                    flow: f,
                    events,
                    steps: None,
                } => {
                    flow_stmt.execute(params![
                        f.id,
                        f.state.as_str(),
                        f.decision_id,
                        json(buf, f)?,
                        event_lines(lines, events)?
                    ])?;
                }
                Record::Flow {
                    flow: f,
                    events,
                    steps: Some(steps),
                } => {
                    header_stmt.execute(params![
                        f.id,
                        f.state.as_str(),
                        f.decision_id,
                        json(buf, f)?
                    ])?;
                    for (i, step) in steps {
                        step_stmt.execute(params![f.id, *i as i64, json(buf, step)?])?;
                    }
                    if !events.is_empty() {
                        log_stmt.execute(params![f.id, event_lines(lines, events)?])?;
                    }
                }
                Record::FlowEvents(events) => {
                    if let Some(first) = events.first() {
                        let appended = append_stmt
                            .execute(params![first.flow_id, event_lines(lines, events)?])?;
                        // A flow without a row (not expected): keep the events anyway.
                        if appended == 0 {
                            event_stmt.execute(params![
                                first.flow_id,
                                first.time.to_rfc3339(),
                                json(buf, events)?
                            ])?;
                        }
                    }
                }
                Record::Quarantine(q) => {
                    let body = json(buf, q)?;
                    audit.append(
                        AuditRow {
                            kind: "quarantine",
                            ref_id: &q.signal_id,
                            decision_id: "",
                            signal_id: Some(&q.signal_id),
                            signal_source: Some(&q.source),
                            time: q.time,
                            parent: None,
                        },
                        body,
                    )?;
                    quarantine_stmt.execute(params![
                        q.signal_id,
                        q.source,
                        q.state.as_str(),
                        q.time.to_rfc3339(),
                        body
                    ])?;
                }
                Record::Feedback(f) => {
                    feedback_stmt.execute(params![f.decision_id, json(buf, f)?])?;
                }
                Record::Entity { key, body } => {
                    entity_stmt.execute(params![key, body.as_str()])?;
                }
                Record::Checkpoint {
                    feedback_count,
                    body,
                } => {
                    tx.execute(
                        "INSERT INTO checkpoints (feedback_count, body) VALUES (?1, ?2)",
                        params![feedback_count, body],
                    )?;
                    tx.execute(
                        "DELETE FROM checkpoints WHERE seq < (SELECT MAX(seq) FROM checkpoints)",
                        [],
                    )?;
                }
                Record::Meta { key, value } => {
                    meta_stmt.execute(params![key, value])?;
                }
            }
        }
    }
    tx.commit()
}
