//! A decision and everything that happened to it, read from the journal:
//! its signal, the review actions, feedback, its flow and events, its
//! fan-out branches, and its place in the audit chain checked around it.

use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    ChainCheck, Views, corrupt, decode, decode_decision, has_table, open_existing, rows,
    signal_body, sql, verify_around,
};
use crate::decide::Decision;
use crate::flow::{Flow, FlowEvent};
use crate::journal::{Feedback, JournalError};
use crate::review::ReviewAction;
use crate::signal::Signal;

/// One decision and everything that happened to it.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    pub hash: String,
    pub signal: Option<Signal>,
    pub actions: Vec<ReviewAction>,
    /// What the advisor proposed for its review item, if it did.
    pub advice: Vec<crate::review::Advice>,
    pub feedback: Vec<Feedback>,
    pub flow: Option<Flow>,
    pub flow_events: Vec<FlowEvent>,
    /// What its finished flow's outcome still waits for, if anything.
    pub pending: Option<Pending>,
    pub children: Vec<Decision>,
    /// The pages it started, with every attempt.
    pub pages: Vec<crate::paging::Page>,
    /// The incident it opened (its first alert's decision), with its alerts.
    pub incident: Option<crate::flow::incident::Incident>,
    /// The record's place in the chain, checked around it.
    pub chain: ChainCheck,
}

/// A finished flow's outcome that a later signal may still change
/// (`engine::verdicts`): `reopen` (its alert firing again before `until`
/// makes it reopened) or `end` (what ends it must come by `until`, or it
/// is late).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub awaits: String,
    pub until: chrono::DateTime<Utc>,
}

/// The watch on decision `id`'s outcome, if one is journaled (a journal
/// older than the watches has no table for them).
fn pending_of(conn: &Connection, path: &Path, id: &str) -> Result<Option<Pending>, JournalError> {
    if !has_table(conn, path, "verdicts")? {
        return Ok(None);
    }
    // Only the flows whose outcome is not final: a handful, scanned.
    let body = rows(
        conn,
        path,
        "SELECT body FROM verdicts WHERE json_extract(body, '$.decision') = ?1 LIMIT 1",
        params![id],
        |r| r.get::<_, String>(0),
    )?;
    body.first().map(|b| decode(path, "verdict", b)).transpose()
}

/// The decision behind a page, incident or review item id (none: `id`
/// is not one of them, or names nothing).
fn decision_behind(
    conn: &rusqlite::Connection,
    path: &Path,
    id: &str,
) -> Result<Option<String>, JournalError> {
    let query = match id.chars().next() {
        Some('P') => "SELECT json_extract(body, '$.decision_id') FROM pages WHERE id = ?1",
        Some('I') => "SELECT decision_id FROM incidents WHERE id = ?1",
        Some('R') => "SELECT json_extract(body, '$.decision_id') FROM reviews WHERE id = ?1",
        _ => return Ok(None),
    };
    let found = rows(conn, path, query, params![id], |r| {
        r.get::<_, Option<String>>(0)
    })?;
    Ok(found.into_iter().flatten().next())
}

/// Everything the journal holds of decision `id`, each part read in the
/// order it is shown, with its place in the hash chain verified. A page,
/// incident or review item explains as the decision behind it (whose
/// explanation holds the page or incident).
pub fn explain(dir: &Path, id: &str) -> Result<Option<Explanation>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let id = &decision_behind(&conn, path, id)?.unwrap_or_else(|| id.to_string());
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
    let mut views = Views::new(&conn, path)?;
    let decision = decode_decision(path, &mut views, id, &body)?;
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
    let advice = rows(
        &conn,
        path,
        "SELECT body FROM audit WHERE kind = 'advice' AND decision_id = ?1 ORDER BY seq",
        params![id],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|b| {
        // An audit entry whose body holds the advice.
        let entry: crate::journal::AuditEntry = decode(path, "advice", b)?;
        serde_json::from_value(entry.body["advice"].clone())
            .map_err(|e| corrupt(path, "advice", &e))
    })
    .collect::<Result<Vec<crate::review::Advice>, _>>()?;
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
    let (flow, flow_events) = flow_of(&conn, path, id)?;
    let children = rows(
        &conn,
        path,
        "SELECT body FROM audit WHERE parent = ?1 AND kind = 'decision' ORDER BY seq",
        params![id],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|b| decode_decision(path, &mut views, "decision", b))
    .collect::<Result<Vec<Decision>, _>>()?;
    // Pages are few (a step that pages, per decision): a scan of their
    // bodies is cheaper than an index every page write would keep.
    let pages = rows(
        &conn,
        path,
        "SELECT body FROM pages WHERE json_extract(body, '$.decision_id') = ?1 ORDER BY id",
        params![id],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|b| decode(path, "page", b))
    .collect::<Result<Vec<crate::paging::Page>, _>>()?;
    let incident = rows(
        &conn,
        path,
        "SELECT body FROM incidents WHERE decision_id = ?1 ORDER BY id LIMIT 1",
        params![id],
        |r| r.get::<_, String>(0),
    )?
    .first()
    .map(|b| decode(path, "incident", b))
    .transpose()?;
    let pending = pending_of(&conn, path, id)?;
    let chain = verify_around(&conn, path, seq)?;
    Ok(Some(Explanation {
        pending,
        incident,
        decision,
        hash,
        signal,
        actions,
        advice,
        feedback,
        flow,
        flow_events,
        children,
        pages,
        chain,
    }))
}

/// The flow of decision `id` with its steps, and its events in order.
fn flow_of(
    conn: &Connection,
    path: &Path,
    id: &str,
) -> Result<(Option<Flow>, Vec<FlowEvent>), JournalError> {
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
            conn,
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
            conn,
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
            conn,
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
    Ok((flow, flow_events))
}
