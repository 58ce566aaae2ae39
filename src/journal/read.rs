//! Reading the journal back: recovery at start, explanations, counts.
//! Uses its own connection; never writes.

use std::collections::HashMap;
use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use serde::de::DeserializeOwned;

use super::{Feedback, JournalError, QuarantineState, Quarantined, chain, connect};
use crate::decide::Decision;
use crate::flow::{Flow, FlowEvent};
use crate::review::{ReviewAction, ReviewItem};
use crate::signal::Signal;

/// What a restart needs to carry on where the last run stopped.
#[derive(Debug, Default)]
pub struct Recovered {
    pub entities: Vec<(String, serde_json::Value)>,
    pub active_flows: Vec<Flow>,
    /// Ids of the active flows journaled a row per step (big flows).
    pub flows_by_step: Vec<String>,
    pub open_reviews: Vec<ReviewItem>,
    pub checkpoint: Option<String>,
    pub feedback_after_checkpoint: Vec<Feedback>,
    pub feedback_count: i64,
    /// The identity (`Signal::identity`) of every signal journaled.
    pub seen_signals: Vec<u128>,
    /// The active flows firing alerts opened, by the alert's fingerprint.
    pub alert_flows: Vec<(String, String)>,
    /// Signals held in quarantine.
    pub quarantined: Vec<Quarantined>,
    /// Signals journaled (so acknowledged) that have no decision yet.
    pub undecided: Vec<Signal>,
    pub meta: HashMap<String, String>,
    pub decision_count: i64,
    pub review_count: i64,
    pub flow_count: i64,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
    move |error| JournalError::Sqlite {
        path: path.display().to_string(),
        error,
    }
}

fn decode<T: DeserializeOwned>(path: &Path, what: &str, body: &str) -> Result<T, JournalError> {
    serde_json::from_str(body).map_err(|e| corrupt(path, what, &e))
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

pub fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let mut out = Recovered::default();
    for (key, body) in rows(&conn, path, "SELECT key, body FROM entities", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })? {
        out.entities.push((key.clone(), decode(path, &key, &body)?));
    }
    for body in rows(
        &conn,
        path,
        "SELECT body FROM flows WHERE state NOT IN ('done', 'failed', 'compensated')",
        [],
        |r| r.get::<_, String>(0),
    )? {
        out.active_flows.push(decode(path, "flow", &body)?);
    }
    // Big flows keep their steps in rows of their own.
    let by_id: HashMap<String, usize> = out
        .active_flows
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.clone(), i))
        .collect();
    for (flow_id, body) in rows(
        &conn,
        path,
        "SELECT s.flow_id, s.body FROM flow_steps s JOIN flows f ON f.id = s.flow_id
         WHERE f.state NOT IN ('done', 'failed', 'compensated') ORDER BY s.flow_id, s.idx",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )? {
        let step = decode(path, &format!("step of flow {flow_id}"), &body)?;
        if let Some(&i) = by_id.get(&flow_id) {
            let flow = &mut out.active_flows[i];
            if out.flows_by_step.last() != Some(&flow_id) {
                // The row's own steps field is empty for a big flow.
                flow.steps.clear();
                out.flows_by_step.push(flow_id.clone());
            }
            flow.steps.push(step);
        }
    }
    // A review row names its decision and signal; both are joined back
    // from where they were journaled. (Journals written before rows were
    // slimmed hold the whole item.)
    for (body, decision) in rows(
        &conn,
        path,
        "SELECT r.body,
                (SELECT a.body FROM audit a WHERE a.kind = 'decision'
                   AND a.decision_id = json_extract(r.body, '$.decision_id'))
         FROM reviews r WHERE r.state != 'decided'",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
    )? {
        let value: serde_json::Value = decode(path, "review", &body)?;
        if value.get("decision").is_some() {
            // From the text, not the tree: a decision's snapshot keeps its
            // entities as raw JSON, which only a text parser can give.
            out.open_reviews.push(decode(path, "review", &body)?);
            continue;
        }
        let row: crate::review::ReviewRow = decode_value(path, "review", value)?;
        let broken = |error: String| JournalError::Corrupt {
            path: path.display().to_string(),
            what: format!("review {}", row.id),
            error,
        };
        let decision: crate::decide::Decision = match decision {
            Some(d) => decode(path, "decision", &d)?,
            None => {
                return Err(broken(format!(
                    "decision {} is not in the journal",
                    row.decision_id
                )));
            }
        };
        let signal = match signal_body(&conn, path, &row.signal_id, &decision.signal_source)? {
            Some(text) => crate::signal::Signal::from_json(&text, decision.time)
                .map_err(|e| broken(format!("signal {}: {e}", row.signal_id)))?,
            None => {
                return Err(broken(format!(
                    "signal {} is not in the journal",
                    row.signal_id
                )));
            }
        };
        out.open_reviews
            .push(row.into_item(std::sync::Arc::new(decision), std::sync::Arc::new(signal)));
    }
    let checkpoint: Option<(i64, String)> = conn
        .query_row(
            "SELECT feedback_count, body FROM checkpoints ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql(path))?;
    let after = checkpoint.as_ref().map_or(0, |c| c.0);
    out.checkpoint = checkpoint.map(|c| c.1);
    for body in rows(
        &conn,
        path,
        "SELECT body FROM feedback ORDER BY seq LIMIT -1 OFFSET ?1",
        params![after],
        |r| r.get::<_, String>(0),
    )? {
        out.feedback_after_checkpoint
            .push(decode(path, "feedback", &body)?);
    }
    out.feedback_count = after + out.feedback_after_checkpoint.len() as i64;
    let mut seen = conn
        .prepare("SELECT source, id FROM signals")
        .map_err(sql(path))?;
    let mut found = seen.query([]).map_err(sql(path))?;
    while let Some(row) = found.next().map_err(sql(path))? {
        let source: String = row.get(0).map_err(sql(path))?;
        let id: String = row.get(1).map_err(sql(path))?;
        out.seen_signals.push(crate::signal::identity(&source, &id));
    }
    drop(found);
    drop(seen);
    for body in rows(
        &conn,
        path,
        &format!("SELECT body FROM signals s WHERE {UNDECIDED} ORDER BY seq"),
        [],
        |r| r.get::<_, String>(0),
    )? {
        let value: serde_json::Value = decode(path, "signal", &body)?;
        let signal = Signal::from_value(value, Utc::now()).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            what: "signal".into(),
            error: e.to_string(),
        })?;
        out.undecided.push(signal);
    }
    out.quarantined = quarantine_rows(&conn, path, Some(QuarantineState::Held), i64::MAX)?;
    out.alert_flows = rows(
        &conn,
        path,
        "SELECT json_extract(s.body, '$.data.fingerprint'), f.id
         FROM flows f JOIN signals s ON s.id = json_extract(f.body, '$.signal_id')
         WHERE f.state NOT IN ('done', 'failed', 'compensated') AND s.type = 'alert.firing'
           AND json_extract(s.body, '$.data.fingerprint') IS NOT NULL
         ORDER BY s.seq",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )?;
    out.meta = rows(&conn, path, "SELECT key, value FROM meta", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?
    .into_iter()
    .collect();
    let count = |q: &str| {
        conn.query_row(q, [], |r| r.get::<_, i64>(0))
            .map_err(sql(path))
    };
    out.decision_count = count("SELECT COUNT(*) FROM audit WHERE kind = 'decision'")?;
    out.review_count = count("SELECT COUNT(*) FROM reviews")?;
    out.flow_count = count("SELECT COUNT(*) FROM flows")?;
    Ok(out)
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
    pub chain_ok: bool,
}

pub fn counts(dir: &Path) -> Result<Counts, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let count = |q: &str| {
        conn.query_row(q, [], |r| r.get::<_, i64>(0))
            .map_err(sql(path))
    };
    Ok(Counts {
        signals: count("SELECT COUNT(*) FROM signals")?,
        decided_signals: count(
            "SELECT COUNT(DISTINCT signal_id) FROM audit WHERE kind = 'decision'",
        )?,
        undecided_signals: count(&format!("SELECT COUNT(*) FROM signals s WHERE {UNDECIDED}"))?,
        quarantined: count("SELECT COUNT(*) FROM quarantine WHERE state = 'held'")?,
        decisions: count("SELECT COUNT(*) FROM audit WHERE kind = 'decision'")?,
        review_actions: count("SELECT COUNT(*) FROM audit WHERE kind = 'review'")?,
        open_reviews: count("SELECT COUNT(*) FROM reviews WHERE state != 'decided'")?,
        flows: count("SELECT COUNT(*) FROM flows")?,
        active_flows: count(
            "SELECT COUNT(*) FROM flows WHERE state NOT IN ('done', 'failed', 'compensated')",
        )?,
        feedback: count("SELECT COUNT(*) FROM feedback")?,
        chain_ok: verify_chain_conn(&conn, path)?.is_ok(),
    })
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

/// One decision and everything that happened to it.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    pub hash: String,
    pub signal: Option<Signal>,
    pub actions: Vec<ReviewAction>,
    pub feedback: Vec<Feedback>,
    pub flow: Option<Flow>,
    pub flow_events: Vec<FlowEvent>,
    pub children: Vec<Decision>,
    /// The record's place in the chain, checked around it.
    pub chain: ChainCheck,
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

/// Signals neither decided nor held in quarantine (`s` is `signals`).
const UNDECIDED: &str =
    "NOT EXISTS (SELECT 1 FROM audit a WHERE a.signal_id = s.id AND a.kind = 'decision'
       AND (a.signal_source = s.source OR a.signal_source IS NULL))
   AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.signal_id = s.id AND q.source = s.source
       AND q.state != 'retried')";

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

pub fn explain(dir: &Path, id: &str) -> Result<Option<Explanation>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let found: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT seq, body, hash FROM audit WHERE kind = 'decision' AND ref_id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(sql(path))?;
    let Some((seq, body, hash)) = found else {
        return Ok(None);
    };
    let decision: Decision = decode(path, id, &body)?;
    let signal = signal_body(&conn, path, &decision.signal_id, &decision.signal_source)?
        .map(|body| -> Result<Signal, JournalError> {
            let value: serde_json::Value = decode(path, "signal", &body)?;
            Signal::from_value(value, Utc::now()).map_err(|e| JournalError::Corrupt {
                path: path.display().to_string(),
                what: "signal".into(),
                error: e.to_string(),
            })
        })
        .transpose()?;
    let actions = rows(
        &conn,
        path,
        "SELECT body FROM audit WHERE kind = 'review' AND decision_id = ?1 ORDER BY seq",
        params![id],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|b| decode(path, "review action", b))
    .collect::<Result<Vec<ReviewAction>, _>>()?;
    let feedback = rows(
        &conn,
        path,
        "SELECT body FROM feedback WHERE decision_id = ?1 ORDER BY seq",
        params![id],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|b| decode(path, "feedback", b))
    .collect::<Result<Vec<Feedback>, _>>()?;
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT body, events FROM flows WHERE decision_id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql(path))?;
    let (mut flow, lines): (Option<Flow>, String) = match row {
        Some((body, lines)) => (Some(decode(path, "flow", &body)?), lines),
        None => (None, String::new()),
    };
    if let Some(flow) = &mut flow {
        let steps = rows(
            &conn,
            path,
            "SELECT body FROM flow_steps WHERE flow_id = ?1 ORDER BY idx",
            params![flow.id],
            |r| r.get::<_, String>(0),
        )?;
        if !steps.is_empty() {
            flow.steps = steps
                .iter()
                .map(|b| decode(path, "flow step", b))
                .collect::<Result<_, _>>()?;
        }
    }
    let mut flow_events = Vec::new();
    if let Some(flow) = &flow {
        // Older journals kept events in their own table; they come first.
        for body in rows(
            &conn,
            path,
            "SELECT body FROM flow_events WHERE flow_id = ?1 ORDER BY seq",
            params![flow.id],
            |r| r.get::<_, String>(0),
        )? {
            let events: Vec<FlowEvent> = decode(path, "flow events", &body)?;
            flow_events.extend(events);
        }
        // Then the JSON lines of its own row and, for a big flow, those of
        // its later flushes, a row each.
        let mut texts = vec![lines];
        texts.extend(rows(
            &conn,
            path,
            "SELECT events FROM flow_log WHERE flow_id = ?1 ORDER BY seq",
            params![flow.id],
            |r| r.get::<_, String>(0),
        )?);
        for line in texts
            .iter()
            .flat_map(|t| t.lines())
            .filter(|l| !l.trim().is_empty())
        {
            flow_events.push(decode(path, "flow event", line)?);
        }
    }
    let children = rows(
        &conn,
        path,
        "SELECT body FROM audit WHERE parent = ?1 AND kind = 'decision' ORDER BY seq",
        params![id],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|b| decode(path, "decision", b))
    .collect::<Result<Vec<Decision>, _>>()?;
    let chain = verify_around(&conn, path, seq)?;
    Ok(Some(Explanation {
        decision,
        hash,
        signal,
        actions,
        feedback,
        flow,
        flow_events,
        children,
        chain,
    }))
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

/// One decision record by id.
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
    body.map(|b| decode(&path, id, &b)).transpose()
}
