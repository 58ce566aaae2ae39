//! What a restart reads back: entities, flows in flight, open review
//! items, the model and the feedback after its checkpoint, every signal's
//! identity, what was journaled but not decided, quarantine and meta.

use std::collections::HashMap;
use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    UNDECIDED, decode, decode_value, open_existing, quarantine_rows, rows, signal_body, sql,
};
use crate::flow::Flow;
use crate::journal::{Feedback, JournalError, QuarantineState, Quarantined};
use crate::review::ReviewItem;
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

pub fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let mut out = Recovered::default();
    for (key, body) in rows(&conn, path, "SELECT key, body FROM entities", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })? {
        out.entities.push((key.clone(), decode(path, &key, &body)?));
    }
    active_flows(&conn, path, &mut out)?;
    open_reviews(&conn, path, &mut out)?;
    model(&conn, path, &mut out)?;
    signals(&conn, path, &mut out)?;
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

/// The flows still in flight, a big flow's steps joined back from their rows.
fn active_flows(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
    for body in rows(
        conn,
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
        conn,
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
    Ok(())
}

/// The open review items, their decisions and signals joined back.
fn open_reviews(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
    // A review row names its decision and signal; both are joined back
    // from where they were journaled. (Journals written before rows were
    // slimmed hold the whole item.)
    for (body, decision) in rows(
        conn,
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
        let signal = match signal_body(conn, path, &row.signal_id, &decision.signal_source)? {
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
    Ok(())
}

/// The last model checkpoint and the feedback journaled after it.
fn model(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
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
        conn,
        path,
        "SELECT body FROM feedback ORDER BY seq LIMIT -1 OFFSET ?1",
        params![after],
        |r| r.get::<_, String>(0),
    )? {
        out.feedback_after_checkpoint
            .push(decode(path, "feedback", &body)?);
    }
    out.feedback_count = after + out.feedback_after_checkpoint.len() as i64;
    Ok(())
}

/// The model as the journal had it at `before` (now, if none): the last
/// checkpoint journaled by then and the feedback journaled after it up to
/// then, as a restart would rebuild it.
pub fn model_at(
    dir: &Path,
    before: Option<chrono::DateTime<Utc>>,
) -> Result<(Option<String>, Vec<Feedback>), JournalError> {
    let (conn, path) = super::open_existing(dir)?;
    let path = path.as_path();
    // Feedback is journaled in time order: how much of it came before.
    let until: i64 = match before {
        None => conn.query_row("SELECT count(*) FROM feedback", [], |r| r.get(0)),
        Some(t) => conn.query_row(
            "SELECT count(*) FROM feedback
             WHERE julianday(json_extract(body, '$.time')) < julianday(?1)",
            [t.to_rfc3339()],
            |r| r.get(0),
        ),
    }
    .map_err(sql(path))?;
    let checkpoint: Option<(i64, String)> = conn
        .query_row(
            "SELECT feedback_count, body FROM checkpoints WHERE feedback_count <= ?1
             ORDER BY seq DESC LIMIT 1",
            [until],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql(path))?;
    let after = checkpoint.as_ref().map_or(0, |c| c.0);
    let feedback = rows(
        &conn,
        path,
        "SELECT body FROM feedback ORDER BY seq LIMIT ?1 OFFSET ?2",
        params![until - after, after],
        |r| r.get::<_, String>(0),
    )?
    .iter()
    .map(|body| decode(path, "feedback", body))
    .collect::<Result<_, _>>()?;
    Ok((checkpoint.map(|c| c.1), feedback))
}

/// Every signal's identity, and the signals journaled without a decision.
fn signals(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
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
        conn,
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
    Ok(())
}
