//! The journal's tables, the pragmas every connection uses, and the
//! migrations that bring a journal written by an earlier version up to
//! date.

use std::path::Path;

use rusqlite::Connection;

use super::{JournalError, chain};

pub(super) const SCHEMA: &str = "
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
-- The views many decisions share (the services' health, the changes
-- recorded lately), each once, by version (the hash of its text), with the
-- time of the first decision that named it. A decision's policy input
-- names them (`services_view`, `changes_view`): the audit chain covers the
-- version, and the version the text. (Journals older than the table hold
-- the views inside each decision, and read as they are.)
CREATE TABLE IF NOT EXISTS views (
    version TEXT PRIMARY KEY, kind TEXT NOT NULL, time TEXT NOT NULL, body TEXT NOT NULL)
    WITHOUT ROWID;
-- Records that could not be read back at a start, moved out of the way
-- with their text as it was (rows of state tables are deleted from them;
-- history stays where it is and is skipped).
CREATE TABLE IF NOT EXISTS set_aside (
    tbl TEXT NOT NULL, key TEXT NOT NULL, time TEXT NOT NULL, error TEXT NOT NULL,
    raw TEXT NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID;
-- Pages, the latest state of each with every attempt (`paging::pages`).
CREATE TABLE IF NOT EXISTS pages (id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL)
    WITHOUT ROWID;
-- Incidents, the latest state of each with its alerts (`flow::incident`);
-- `decision_id` is its first alert's decision.
CREATE TABLE IF NOT EXISTS incidents (id TEXT PRIMARY KEY, state TEXT NOT NULL,
    decision_id TEXT NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;
-- Silences as they stand (`noise::silence`), each with when it ends.
-- Finished flows whose outcome a later signal may still change, by key
-- (`engine::verdicts`); a row is deleted once its outcome is settled.
CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
-- Decisions whose flow ended, waiting out the hour for a stated outcome
-- before the flow's own result teaches (`engine::learning`); a row is
-- deleted once learnt.
CREATE TABLE IF NOT EXISTS labels_due (decision_id TEXT PRIMARY KEY, body TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, ends_at TEXT NOT NULL,
    body TEXT NOT NULL) WITHOUT ROWID;
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
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
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

/// WAL size (in bytes) at which the checkpoint thread is woken.
const CHECKPOINT_BYTES: i64 = 32 * 1024 * 1024;

/// `CHECKPOINT_BYTES` in pages, whose size depends on when the journal was
/// created.
pub(super) fn checkpoint_pages(conn: &Connection) -> rusqlite::Result<i64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok((CHECKPOINT_BYTES / page_size.max(512)).max(1000))
}
