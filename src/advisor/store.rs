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

/// Answers kept for reuse (explanations, proposals) are a cache: asked
/// again past this age.
const ANSWERS_KEPT_DAYS: i64 = 30;

/// Calls recorded between two prunings of the record.
const PRUNE_EVERY: i64 = 1_000;

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// How long calls are kept.
    keep: chrono::Duration,
}

impl Store {
    /// Opens (or makes) the record in `dir`, keeping calls for `keep`:
    /// older ones go now and as calls are recorded.
    pub fn open(dir: &Path, keep: chrono::Duration) -> Result<Store, StoreError> {
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
        let store = Store {
            conn: Mutex::new(conn),
            path,
            keep,
        };
        store.prune(Utc::now())?;
        Ok(store)
    }

    /// Deletes calls older than the record keeps and answers older than
    /// the cache keeps, as of `now`; how many of each went.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<(usize, usize), StoreError> {
        let calls_before = stamp(now - self.keep);
        let answers_before = stamp(now - chrono::Duration::days(ANSWERS_KEPT_DAYS));
        self.with(|c| {
            let calls = c.execute("DELETE FROM calls WHERE time < ?1", [calls_before])?;
            let answers = c.execute("DELETE FROM answers WHERE time < ?1", [answers_before])?;
            Ok((calls, answers))
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
        let seq = self.with(|c| {
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
            .map(|_| c.last_insert_rowid())
        })?;
        if seq % PRUNE_EVERY == 0 {
            self.prune(call.time)?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call(time: DateTime<Utc>) -> Call {
        Call {
            time,
            purpose: "propose".into(),
            ref_id: "R0000001".into(),
            model: "m".into(),
            prompt_digest: "p".into(),
            latency_ms: 1,
            prompt_tokens: 10,
            completion_tokens: 5,
            answer_digest: "a".into(),
            valid: true,
            error: String::new(),
        }
    }

    /// Calls older than the record keeps and answers older than the cache
    /// keeps go, at open and when pruned; newer ones stay.
    #[test]
    fn the_record_keeps_calls_for_its_span_and_answers_for_a_month() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let store = Store::open(dir.path(), chrono::Duration::days(90)).unwrap();
        for age in [200, 100, 60, 1] {
            store
                .record(&call(now - chrono::Duration::days(age)))
                .unwrap();
        }
        let body = serde_json::json!({"option": "x"});
        for (id, age) in [("old", 40), ("new", 2)] {
            let at = now - chrono::Duration::days(age);
            store.keep("propose", id, "m", at, &body).unwrap();
        }
        assert_eq!(store.prune(now).unwrap(), (2, 1));
        assert_eq!(
            store
                .spent_since(now - chrono::Duration::days(365))
                .unwrap(),
            30
        );
        assert!(store.answer("propose", "old", "m").unwrap().is_none());
        assert!(store.answer("propose", "new", "m").unwrap().is_some());
        drop(store);
        // A shorter span at the next open prunes at once.
        let store = Store::open(dir.path(), chrono::Duration::days(30)).unwrap();
        assert_eq!(
            store
                .spent_since(now - chrono::Duration::days(365))
                .unwrap(),
            15
        );
    }
}
