//! The advisor's own record, `advice.sqlite` beside the journal: every call
//! (what for, the model, a digest of the prompt and of the raw answer,
//! latency, tokens, whether the answer was valid, and why not), and the
//! answers kept per subject and model. It is apart from the journal so that
//! a command (`explain --words`, `advise policies`) can write it while a
//! server holds the journal; the hour's token budget is read from it, so
//! every process on one data directory shares the budget.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

pub const FILE_NAME: &str = "advice.sqlite";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    purpose TEXT NOT NULL,
    ref_id TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_digest TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    answer_digest TEXT NOT NULL,
    valid INTEGER NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_time ON calls(time);
CREATE TABLE IF NOT EXISTS answers (
    purpose TEXT NOT NULL,
    ref_id TEXT NOT NULL,
    model TEXT NOT NULL,
    time TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (purpose, ref_id, model)
) WITHOUT ROWID;
";

/// One call, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    pub purpose: String,
    pub ref_id: String,
    pub model: String,
    pub prompt_digest: String,
    pub latency_ms: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Empty when there was no answer.
    pub answer_digest: String,
    pub valid: bool,
    /// Why there was no valid answer; empty when there was.
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
#[error("advice record {path}: {error}")]
pub struct StoreError {
    path: String,
    #[source]
    error: rusqlite::Error,
}

/// A time as the record holds it: fixed width, so that text order is time
/// order.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens (or makes) the record in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let fail = |error| StoreError {
            path: path.display().to_string(),
            error,
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Err(fail(rusqlite::Error::ToSqlConversionFailure(Box::new(e))));
        }
        let conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn err(&self, error: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            error,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|e| self.err(e))
    }

    pub fn record(&self, call: &Call) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO calls (time, purpose, ref_id, model, prompt_digest, latency_ms,
                 prompt_tokens, completion_tokens, answer_digest, valid, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    stamp(call.time),
                    call.purpose,
                    call.ref_id,
                    call.model,
                    call.prompt_digest,
                    call.latency_ms as i64,
                    call.prompt_tokens as i64,
                    call.completion_tokens as i64,
                    call.answer_digest,
                    call.valid,
                    call.error,
                ],
            )
            .map(|_| ())
        })
    }

    /// Tokens spent by calls since `since`.
    pub fn spent_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM calls WHERE time >= ?1",
                params![stamp(since)],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n.max(0) as u64)
    }

    /// The answer kept for a subject and model, if any (one that no
    /// longer reads as JSON is not kept).
    pub fn answer(
        &self,
        purpose: &str,
        ref_id: &str,
        model: &str,
    ) -> Result<Option<Value>, StoreError> {
        let body: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT body FROM answers WHERE purpose = ?1 AND ref_id = ?2 AND model = ?3",
                params![purpose, ref_id, model],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }

    pub fn keep(
        &self,
        purpose: &str,
        ref_id: &str,
        model: &str,
        time: DateTime<Utc>,
        body: &Value,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO answers (purpose, ref_id, model, time, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![purpose, ref_id, model, stamp(time), body.to_string()],
            )
            .map(|_| ())
        })
    }
}
