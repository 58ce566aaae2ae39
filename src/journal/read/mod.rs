//! Reading the journal back: recovery at start, explanations, counts.
//! Uses its own connection; never writes.

use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use serde::de::DeserializeOwned;

use super::{JournalError, QuarantineState, Quarantined, chain, connect};
use crate::decide::Decision;
use crate::review::ReviewAction;
use crate::signal::Signal;

mod explain;
mod logged;
mod recover;
pub mod report;
pub mod seen;
mod views;

pub use logged::{
    ChosenBy, Logged, Replayable, ShadowAgreement, chosen, each_replayable, logged, shadow,
};

pub use explain::{Explanation, Pending, explain};
pub use recover::{Recovered, Unreadable, model_at, recover};
use views::Views;
pub use views::{ViewFault, ViewProblem};

pub(in crate::journal) fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
    move |error| JournalError::Sqlite {
        path: path.display().to_string(),
        error,
    }
}

fn decode<T: DeserializeOwned>(path: &Path, what: &str, body: &str) -> Result<T, JournalError> {
    serde_json::from_str(body).map_err(|e| corrupt(path, what, &e))
}

/// A decision record's body, with the shared views it names resolved.
fn decode_decision(
    path: &Path,
    views: &mut Views<'_>,
    what: &str,
    body: &str,
) -> Result<Decision, JournalError> {
    let mut decision: Decision = decode(path, what, body)?;
    views.resolve(&mut decision)?;
    Ok(decision)
}

/// As `decode`, for a body already parsed.
fn decode_value<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    value: serde_json::Value,
) -> Result<T, JournalError> {
    serde_json::from_value(value).map_err(|e| corrupt(path, what, &e))
}

fn corrupt(path: &Path, what: &str, error: &serde_json::Error) -> JournalError {
    JournalError::Corrupt {
        path: path.display().to_string(),
        what: what.to_string(),
        error: error.to_string(),
    }
}

/// Opens the journal file read-only-in-practice; refuses a missing file.
pub fn open_existing(dir: &Path) -> Result<(Connection, std::path::PathBuf), JournalError> {
    let path = dir.join(super::FILE_NAME);
    if !path.exists() {
        return Err(JournalError::Io {
            path: path.display().to_string(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no journal here"),
        });
    }
    let conn = connect(&path)?;
    Ok((conn, path))
}

fn rows<T, F>(
    conn: &Connection,
    path: &Path,
    query: &str,
    args: impl rusqlite::Params,
    f: F,
) -> Result<Vec<T>, JournalError>
where
    F: FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
{
    let mut stmt = conn.prepare(query).map_err(sql(path))?;
    let out = stmt
        .query_map(args, f)
        .map_err(sql(path))?
        .collect::<Result<Vec<T>, _>>()
        .map_err(sql(path))?;
    Ok(out)
}

/// Calls `each` with the one text column of every row `query` gives, as
/// the rows come (none is held).
fn each_body(
    conn: &Connection,
    path: &Path,
    query: &str,
    mut each: impl FnMut(&str) -> Result<(), JournalError>,
) -> Result<(), JournalError> {
    let mut stmt = conn.prepare(query).map_err(sql(path))?;
    let mut rows = stmt.query([]).map_err(sql(path))?;
    while let Some(row) = rows.next().map_err(sql(path))? {
        let body = row
            .get_ref(0)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(sql(path))?;
        each(body)?;
    }
    Ok(())
}

/// The audit chain's entries of one kind (`AuditEntry::kind`: `task`,
/// `config`, `model`, `model_breaker`), oldest first.
pub fn audit_entries(dir: &Path, kind: &str) -> Result<Vec<super::AuditEntry>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let bodies = rows(
        &conn,
        &path,
        "SELECT body FROM audit WHERE kind = ?1 ORDER BY seq",
        [kind],
        |r| r.get::<_, String>(0),
    )?;
    bodies
        .iter()
        .map(|b| {
            serde_json::from_str(b).map_err(|e| JournalError::Corrupt {
                path: path.display().to_string(),
                what: format!("{kind} entry"),
                error: e.to_string(),
            })
        })
        .collect()
}

/// Counts that let an operator (or a test) check nothing was lost.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Counts {
    pub signals: i64,
    pub decided_signals: i64,
    pub undecided_signals: i64,
    /// Held in quarantine: neither decided nor waiting to be.
    pub quarantined: i64,
    pub decisions: i64,
    pub review_actions: i64,
    pub open_reviews: i64,
    pub flows: i64,
    pub active_flows: i64,
    pub feedback: i64,
    /// Records set aside at a start because they could not be read back.
    pub set_aside: i64,
    /// Shared views held (each named by the decisions taken under it).
    pub views: i64,
    /// Views decisions name that the journal does not hold, or holds
    /// altered: those decisions cannot be replayed or explained.
    pub view_problems: Vec<ViewProblem>,
    pub chain_ok: bool,
}

/// Where a journal stopped: the time of its last audit record (the
/// engine's clock when it last wrote), if it holds any, and how many
/// signals it holds.
pub fn stopped_at(
    dir: &Path,
) -> Result<(Option<chrono::DateTime<chrono::Utc>>, u64), JournalError> {
    let (conn, path) = open_existing(dir)?;
    let text: Option<String> = conn
        .query_row(
            "SELECT time FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(&path))?;
    let signals: i64 = conn
        .query_row("SELECT COUNT(*) FROM signals", [], |r| r.get(0))
        .map_err(sql(&path))?;
    let last = text
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.to_utc());
    Ok((last, u64::try_from(signals).unwrap_or(0)))
}

pub fn counts(dir: &Path) -> Result<Counts, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let count = |q: &str| {
        conn.query_row(q, [], |r| r.get::<_, i64>(0))
            .map_err(sql(path))
    };
    let scan = undecided(&conn, path)?;
    let (views, problems) = views::problems(&conn, path)?;
    Ok(Counts {
        signals: scan.seen.len() as i64,
        decided_signals: scan.decided,
        undecided_signals: scan.undecided.len() as i64,
        quarantined: count("SELECT COUNT(*) FROM quarantine WHERE state = 'held'")?,
        decisions: count("SELECT COUNT(*) FROM audit WHERE kind = 'decision'")?,
        review_actions: count("SELECT COUNT(*) FROM audit WHERE kind = 'review'")?,
        open_reviews: count("SELECT COUNT(*) FROM reviews WHERE state != 'decided'")?,
        flows: count("SELECT COUNT(*) FROM flows")?,
        active_flows: count(
            "SELECT COUNT(*) FROM flows WHERE state NOT IN ('done', 'failed', 'compensated')",
        )?,
        feedback: count("SELECT COUNT(*) FROM feedback")?,
        set_aside: match has_table(&conn, path, "set_aside")? {
            true => count("SELECT COUNT(*) FROM set_aside")?,
            false => 0,
        },
        views,
        view_problems: problems,
        chain_ok: verify_chain_conn(&conn, path)?.is_ok(),
    })
}

/// Whether the journal has table `name` (one written by an older version
/// may lack the newer ones).
pub(in crate::journal) fn has_table(
    conn: &Connection,
    path: &Path,
    name: &str,
) -> Result<bool, JournalError> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(sql(path))
}

/// The records set aside at starts because they could not be read back,
/// oldest first.
pub fn set_aside(dir: &Path) -> Result<Vec<super::SetAside>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    if !has_table(&conn, &path, "set_aside")? {
        return Ok(Vec::new());
    }
    let found = rows(
        &conn,
        &path,
        "SELECT tbl, key, time, error, raw FROM set_aside ORDER BY time, tbl, key",
        [],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        },
    )?;
    Ok(found
        .into_iter()
        .map(|(table, key, time, error, raw)| super::SetAside {
            table,
            key,
            time: chrono::DateTime::parse_from_rfc3339(&time)
                .map(|t| t.to_utc())
                .unwrap_or(chrono::DateTime::UNIX_EPOCH),
            error,
            raw,
        })
        .collect())
}

/// Recomputes the chain over the audit records with seq in `(after, upto]`,
/// starting from `start` (the hash of record `after`), one record at a
/// time: the count checked and the last hash.
fn verify_range(
    conn: &Connection,
    path: &Path,
    start: &str,
    after: i64,
    upto: i64,
) -> Result<Result<(u64, String), chain::Break>, JournalError> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, kind, body, prev_hash, hash FROM audit
             WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
        )
        .map_err(sql(path))?;
    let mut rows = stmt.query(params![after, upto]).map_err(sql(path))?;
    let mut failed = None;
    let entries = std::iter::from_fn(|| match rows.next() {
        Ok(Some(r)) => {
            let entry = (|| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))();
            match entry {
                Ok(entry) => Some(entry),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        }
        Ok(None) => None,
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let result = chain::verify_from(start, entries);
    if let Some(e) = failed {
        return Err(sql(path)(e));
    }
    Ok(result)
}

/// The whole chain, one record at a time (memory does not grow with it).
fn verify_chain_conn(
    conn: &Connection,
    path: &Path,
) -> Result<Result<u64, chain::Break>, JournalError> {
    Ok(verify_range(conn, path, chain::GENESIS, 0, i64::MAX)?.map(|(n, _)| n))
}

/// What vouches for one record's place in the chain: the records from the
/// checkpoint before it to the checkpoint after it (or the end), checked
/// to link from the first and to arrive at the second. Its cost does not
/// grow with the journal: at most `chain::MARK_EVERY` records are read.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainCheck {
    /// The first and last record checked.
    pub from: i64,
    pub to: i64,
    pub result: Result<u64, chain::Break>,
}

fn verify_around(conn: &Connection, path: &Path, seq: i64) -> Result<ChainCheck, JournalError> {
    let mark = |q: &str| -> Result<Option<(i64, String)>, JournalError> {
        conn.query_row(q, [seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sql(path))
    };
    let (after, start) =
        mark("SELECT seq, hash FROM chain_marks WHERE seq < ?1 ORDER BY seq DESC LIMIT 1")?
            .unwrap_or((0, chain::GENESIS.to_string()));
    let next = mark("SELECT seq, hash FROM chain_marks WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
    let upto = next.as_ref().map_or(i64::MAX, |(s, _)| *s);
    let broken = |at: i64, reason: &str| chain::Break {
        seq: at,
        reason: reason.to_string(),
    };
    // The checkpoint it starts from is the record's own hash.
    if after > 0 {
        let stored: Option<String> = conn
            .query_row("SELECT hash FROM audit WHERE seq = ?1", [after], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql(path))?;
        if stored.as_deref() != Some(start.as_str()) {
            return Ok(ChainCheck {
                from: after,
                to: after,
                result: Err(broken(after, "the record does not match its checkpoint")),
            });
        }
    }
    let result = verify_range(conn, path, &start, after, upto)?.and_then(|(n, last)| match &next {
        Some((at, hash)) if *hash != last => {
            Err(broken(*at, "the chain does not arrive at its checkpoint"))
        }
        _ => Ok(n),
    });
    let to = match &next {
        Some((at, _)) => *at,
        None => conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0))
            .map_err(sql(path))?,
    };
    Ok(ChainCheck {
        from: after + 1,
        to,
        result,
    })
}

/// What became of a signal, as the journal knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalState {
    /// Its decision (the first, where a signal fanned out into several).
    Decided {
        source: String,
        decision: String,
    },
    Quarantined(Box<Quarantined>),
    /// Journaled, not decided yet.
    Pending {
        source: String,
    },
    /// Several sources sent a signal with this id: name one.
    Ambiguous(Vec<String>),
    /// Not in the journal.
    Unknown,
}

/// What became of the signal `id` (from `source`, if given).
pub fn signal_state(
    dir: &Path,
    id: &str,
    source: Option<&str>,
) -> Result<SignalState, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let sources = rows(
        &conn,
        path,
        "SELECT source FROM signals WHERE id = ?1 AND (?2 IS NULL OR source = ?2) ORDER BY seq",
        params![id, source],
        |r| r.get::<_, String>(0),
    )?;
    let source = match sources.as_slice() {
        [] => return Ok(SignalState::Unknown),
        [one] => one.clone(),
        _ => return Ok(SignalState::Ambiguous(sources)),
    };
    let decision: Option<String> = conn
        .query_row(
            "SELECT ref_id FROM audit WHERE kind = 'decision' AND signal_id = ?1
               AND (signal_source = ?2 OR signal_source IS NULL) ORDER BY seq LIMIT 1",
            params![id, source],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path))?;
    if let Some(decision) = decision {
        return Ok(SignalState::Decided { source, decision });
    }
    let held: Option<String> = conn
        .query_row(
            "SELECT body FROM quarantine WHERE signal_id = ?1 AND source = ?2 AND state != 'retried'",
            params![id, source],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path))?;
    Ok(match held {
        Some(body) => SignalState::Quarantined(Box::new(decode(path, "quarantine", &body)?)),
        None => SignalState::Pending { source },
    })
}

/// Signals neither decided nor held in quarantine: each signal's identity
/// in journal order, and the seqs of those undecided. Linear in the
/// journal whatever the ids: the decided and the held are gathered into
/// sets first (a query joining signals to decisions by id is quadratic
/// when many sources share one id).
struct Undecided {
    seen: Vec<u128>,
    undecided: Vec<i64>,
    /// Signals with a decision (the others are held, dropped or undecided).
    decided: i64,
}

fn undecided(conn: &Connection, path: &Path) -> Result<Undecided, JournalError> {
    // By identity: decided, and held or dropped in quarantine. Decisions of
    // journals older than sources in the key name the id alone.
    let mut decided = crate::FastSet::default();
    let mut decided_ids = std::collections::HashSet::new();
    let mut held = crate::FastSet::default();
    let mut stmt = conn
        .prepare(
            "SELECT 1, signal_source, signal_id FROM audit
               WHERE kind = 'decision' AND signal_id IS NOT NULL
             UNION ALL SELECT 0, source, signal_id FROM quarantine WHERE state != 'retried'",
        )
        .map_err(sql(path))?;
    let mut found = stmt.query([]).map_err(sql(path))?;
    while let Some(row) = found.next().map_err(sql(path))? {
        let decision: i64 = row.get(0).map_err(sql(path))?;
        let source: Option<String> = row.get(1).map_err(sql(path))?;
        let id: String = row.get(2).map_err(sql(path))?;
        match (decision, source) {
            (1, Some(source)) => {
                decided.insert(crate::signal::identity(&source, &id));
            }
            (_, Some(source)) => {
                held.insert(crate::signal::identity(&source, &id));
            }
            (_, None) => {
                decided_ids.insert(id);
            }
        }
    }
    drop(found);
    drop(stmt);
    let mut out = Undecided {
        seen: Vec::new(),
        undecided: Vec::new(),
        decided: 0,
    };
    let mut stmt = conn
        .prepare("SELECT seq, source, id FROM signals ORDER BY seq")
        .map_err(sql(path))?;
    let mut found = stmt.query([]).map_err(sql(path))?;
    while let Some(row) = found.next().map_err(sql(path))? {
        let seq: i64 = row.get(0).map_err(sql(path))?;
        let source: String = row.get(1).map_err(sql(path))?;
        let id: String = row.get(2).map_err(sql(path))?;
        let identity = crate::signal::identity(&source, &id);
        out.seen.push(identity);
        if decided.contains(&identity) || decided_ids.contains(&id) {
            out.decided += 1;
        } else if !held.contains(&identity) {
            out.undecided.push(seq);
        }
    }
    Ok(out)
}

/// A signal's journaled body by id and source (by id alone for a decision
/// of a journal older than sources in the key).
fn signal_body(
    conn: &Connection,
    path: &Path,
    id: &str,
    source: &str,
) -> Result<Option<String>, JournalError> {
    conn.query_row(
        "SELECT body FROM signals WHERE id = ?1 AND (?2 = '' OR source = ?2) ORDER BY seq LIMIT 1",
        params![id, source],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql(path))
}

/// The journaled signal `id` from `source`.
pub fn signal(dir: &Path, id: &str, source: &str) -> Result<Option<Signal>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    signal_body(&conn, &path, id, source)?
        .map(|body| {
            Signal::from_json(&body, Utc::now()).map_err(|e| JournalError::Corrupt {
                path: path.display().to_string(),
                what: format!("signal {id}"),
                error: e.to_string(),
            })
        })
        .transpose()
}

fn quarantine_rows(
    conn: &Connection,
    path: &Path,
    state: Option<QuarantineState>,
    limit: i64,
) -> Result<Vec<Quarantined>, JournalError> {
    rows(
        conn,
        path,
        "SELECT body FROM quarantine WHERE (?1 IS NULL OR state = ?1) ORDER BY time DESC LIMIT ?2",
        params![state.map(QuarantineState::as_str), limit],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|body| decode(path, "quarantine", body))
    .collect()
}

/// Quarantined signals, newest first (those in `state`, or all), at most
/// `limit`.
pub fn quarantine(
    dir: &Path,
    state: Option<QuarantineState>,
    limit: i64,
) -> Result<Vec<Quarantined>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    quarantine_rows(&conn, &path, state, limit)
}

/// The newest decision ids, newest first (for tests and the audit view).
pub fn recent_decisions(
    dir: &Path,
    limit: i64,
) -> Result<Vec<(String, String, String)>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    rows(
        &conn,
        &path,
        "SELECT ref_id, json_extract(body, '$.signal_type'), json_extract(body, '$.mode')
         FROM audit WHERE kind = 'decision' ORDER BY seq DESC LIMIT ?1",
        params![limit],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// How a review item was settled, if the journal has it settled.
pub fn review_outcome(dir: &Path, id: &str) -> Result<Option<ReviewAction>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM reviews WHERE id = ?1 AND state = 'decided'",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(&path))?;
    let Some(body) = body else {
        return Ok(None);
    };
    let row: serde_json::Value = decode(&path, "review", &body)?;
    match row.get("outcome") {
        Some(outcome) if !outcome.is_null() => Ok(Some(decode_value(
            &path,
            "review outcome",
            outcome.clone(),
        )?)),
        _ => Ok(None),
    }
}

/// The last `limit` decisions (journaled before decision `before`, when
/// given), oldest first, each with its signal (when the journal has it):
/// what a console shows of the past, a page at a time.
pub fn history(
    dir: &Path,
    limit: i64,
    before: Option<&str>,
) -> Result<Vec<(Option<Signal>, Decision)>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    // Before a decision: those journaled ahead of it, its place found
    // through the decision index first (a plain range on `seq` then reads
    // from there back; an unknown id has nothing before it).
    let until = match before {
        None => i64::MAX,
        Some(id) => {
            let seq: Option<i64> = conn
                .query_row(
                    "SELECT min(seq) FROM audit WHERE decision_id = ?1 AND kind = 'decision'",
                    params![id],
                    |r| r.get(0),
                )
                .map_err(sql(&path))?;
            match seq {
                Some(seq) => seq,
                None => return Ok(Vec::new()),
            }
        }
    };
    let mut rows = rows(
        &conn,
        &path,
        "SELECT ref_id, body, signal_id, COALESCE(signal_source, '') FROM audit
         WHERE kind = 'decision' AND seq < ?2
         ORDER BY seq DESC LIMIT ?1",
        params![limit, until],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        },
    )?;
    rows.reverse();
    let mut views = Views::new(&conn, &path)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, body, signal_id, source) in rows {
        let decision = decode_decision(&path, &mut views, &id, &body)?;
        let signal = match signal_id {
            Some(s) => signal_body(&conn, &path, &s, &source)?
                .and_then(|b| Signal::from_json(&b, Utc::now()).ok()),
            None => None,
        };
        out.push((signal, decision));
    }
    Ok(out)
}

/// One decision record by id, whole (its shared views resolved).
pub fn decision(dir: &Path, id: &str) -> Result<Option<Decision>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM audit WHERE kind = 'decision' AND ref_id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(&path))?;
    let mut views = Views::new(&conn, &path)?;
    body.map(|b| decode_decision(&path, &mut views, id, &b))
        .transpose()
}

/// The roster as last journaled (its overrides with it); none when the
/// journal has never held one.
pub fn roster(dir: &Path) -> Result<Option<crate::paging::Roster>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM entities WHERE key = ?1",
            params![crate::context::ROSTER_KEY],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(&path))?;
    body.map(|b| decode(&path, crate::context::ROSTER_KEY, &b))
        .transpose()
}
