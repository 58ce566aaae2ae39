//! What a restart reads back: entities, flows in flight, open review
//! items, the model and the feedback after its checkpoint, every signal's
//! identity, what was journaled but not decided, quarantine and meta.

use std::collections::HashMap;
use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Views, decode, decode_decision, open_existing, rows, signal_body, sql};
use crate::decide::Decision;
use crate::flow::Flow;
use crate::journal::{Feedback, JournalError, Quarantined};
use crate::review::ReviewItem;
use crate::signal::Signal;

/// What a restart needs to carry on where the last run stopped.
#[derive(Debug, Default)]
pub struct Recovered {
    pub entities: Vec<(String, serde_json::Value)>,
    pub active_flows: Vec<Flow>,
    /// The decisions of the flows in flight: each still waits for the
    /// outcome the model learns from.
    pub awaiting: Vec<Decision>,
    /// Ids of the active flows journaled a row per step (big flows).
    pub flows_by_step: Vec<String>,
    pub open_reviews: Vec<ReviewItem>,
    /// Pages not resolved.
    pub open_pages: Vec<crate::paging::Page>,
    /// The last page id journaled (resolved ones included), so that no id
    /// is given twice.
    pub last_page: Option<String>,
    /// Incidents still open, and the last incident id journaled.
    pub open_incidents: Vec<crate::flow::incident::Incident>,
    pub last_incident: Option<String>,
    /// Silences, the expired ones included (their books forget them).
    pub silences: Vec<crate::noise::Silence>,
    /// Finished flows whose outcome a later signal may change, as
    /// journaled: key and body (`engine::verdicts`).
    pub verdicts: Vec<(String, String)>,
    /// Decisions whose flow ended and whose label is still due, with the
    /// row's body (`engine::learning`).
    pub labels_due: Vec<(Decision, String)>,
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
    /// Records that could not be read back: the start goes on without
    /// them, and the engine sets them aside.
    pub unreadable: Vec<Unreadable>,
}

/// A record a restart could not read, named, with its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub table: &'static str,
    pub key: String,
    pub error: String,
    pub raw: String,
    /// For a signal: its id, source, type and subject (columns of their
    /// own, readable when its body is not), so it can be held in
    /// quarantine.
    pub signal: Option<[String; 4]>,
}

impl Recovered {
    /// `decode`d `body`, or `None` with the record noted as unreadable.
    fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        table: &'static str,
        key: &str,
        body: String,
    ) -> Option<T> {
        match serde_json::from_str(&body) {
            Ok(value) => Some(value),
            Err(e) => {
                self.unreadable(table, key, e.to_string(), body);
                None
            }
        }
    }

    fn unreadable(&mut self, table: &'static str, key: &str, error: String, raw: String) {
        self.unreadable.push(Unreadable {
            table,
            key: key.to_string(),
            error,
            raw,
            signal: None,
        });
    }
}

pub fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let path = path.as_path();
    let mut out = Recovered::default();
    for (key, body) in rows(&conn, path, "SELECT key, body FROM entities", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })? {
        if let Some(value) = out.read("entities", &key, body) {
            out.entities.push((key, value));
        }
    }
    active_flows(&conn, path, &mut out)?;
    awaiting(&conn, path, &mut out)?;
    labels_due(&conn, path, &mut out)?;
    open_reviews(&conn, path, &mut out)?;
    for (id, body) in rows(
        &conn,
        path,
        "SELECT id, body FROM pages WHERE state != 'resolved'",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )? {
        if let Some(page) = out.read::<crate::paging::Page>("pages", &id, body) {
            out.open_pages.push(page);
        }
    }
    // Ids are zero-padded: the greatest is the last.
    out.last_page = conn
        .query_row("SELECT MAX(id) FROM pages", [], |r| r.get(0))
        .map_err(sql(path))?;
    for (id, body) in rows(
        &conn,
        path,
        "SELECT id, body FROM incidents WHERE state = 'open'",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )? {
        if let Some(i) = out.read::<crate::flow::incident::Incident>("incidents", &id, body) {
            out.open_incidents.push(i);
        }
    }
    for (id, body) in rows(&conn, path, "SELECT id, body FROM silences", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })? {
        if let Some(s) = out.read::<crate::noise::Silence>("silences", &id, body) {
            out.silences.push(s);
        }
    }
    out.verdicts = rows(&conn, path, "SELECT key, body FROM verdicts", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    out.last_incident = conn
        .query_row("SELECT MAX(id) FROM incidents", [], |r| r.get(0))
        .map_err(sql(path))?;
    model(&conn, path, &mut out)?;
    signals(&conn, path, &mut out)?;
    for (signal_id, source, body) in rows(
        &conn,
        path,
        "SELECT signal_id, source, body FROM quarantine WHERE state = 'held' ORDER BY time DESC",
        [],
        three_texts,
    )? {
        let key = format!("{source} {signal_id}");
        if let Some(q) = out.read("quarantine", &key, body) {
            out.quarantined.push(q);
        }
    }
    out.alert_flows = rows(
        &conn,
        path,
        "SELECT fingerprint, id FROM (
           SELECT CASE WHEN json_valid(s.body)
                         AND json_type(s.body, '$.data.fingerprint') = 'text'
                       THEN json_extract(s.body, '$.data.fingerprint') END
                    AS fingerprint, f.id AS id, s.seq AS seq
           FROM flows f JOIN signals s
             ON s.id = CASE WHEN json_valid(f.body) THEN json_extract(f.body, '$.signal_id') END
           WHERE f.state NOT IN ('done', 'failed', 'compensated') AND s.type = 'alert.firing')
         WHERE fingerprint IS NOT NULL
         ORDER BY seq",
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

/// The decisions of the flows in flight. One that does not read is named
/// in the log and not learnt from: its flow goes on.
fn awaiting(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
    let mut views = Views::new(conn, path)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT body FROM audit WHERE decision_id = ?1 AND kind = 'decision' AND ref_id = ?1",
        )
        .map_err(sql(path))?;
    for flow in &out.active_flows {
        let body: Option<String> = stmt
            .query_row([&flow.decision_id], |r| r.get(0))
            .optional()
            .map_err(sql(path))?;
        let Some(body) = body else { continue };
        match decode_decision(path, &mut views, "decision", &body) {
            Ok(decision) => out.awaiting.push(decision),
            Err(e) => tracing::warn!(
                decision = %flow.decision_id, error = %e,
                "a flow's decision does not read: its outcome is not learnt"
            ),
        }
    }
    Ok(())
}

/// A row's first three columns, as text.
fn three_texts(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// The decisions whose flow ended and whose label is still due. A row
/// whose decision is missing or does not read is set aside (its flow's
/// result is not learnt).
fn labels_due(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
    let mut views = Views::new(conn, path)?;
    for (id, due, decision) in rows(
        conn,
        path,
        "SELECT l.decision_id, l.body, COALESCE(a.body, '') FROM labels_due l
         LEFT JOIN audit a ON a.decision_id = l.decision_id AND a.ref_id = l.decision_id
             AND a.kind = 'decision'",
        [],
        three_texts,
    )? {
        if decision.is_empty() {
            let error = "its decision is not in the journal".to_string();
            out.unreadable("labels_due", &id, error, due);
            continue;
        }
        match decode_decision(path, &mut views, "decision", &decision) {
            Ok(decision) => out.labels_due.push((decision, due)),
            Err(e) => out.unreadable("labels_due", &id, e.to_string(), due),
        }
    }
    Ok(())
}

/// The flows still in flight, a big flow's steps joined back from their rows.
fn active_flows(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
    for (id, body) in rows(
        conn,
        path,
        "SELECT id, body FROM flows WHERE state NOT IN ('done', 'failed', 'compensated')",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )? {
        if let Some(flow) = out.read("flows", &id, body) {
            out.active_flows.push(flow);
        }
    }
    // Big flows keep their steps in rows of their own.
    let mut broken = std::collections::HashSet::new();
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
        let Some(&i) = by_id.get(&flow_id) else {
            continue;
        };
        if broken.contains(&flow_id) {
            continue;
        }
        let Some(step) = out.read("flow_steps", &flow_id, body) else {
            broken.insert(flow_id);
            continue;
        };
        let flow = &mut out.active_flows[i];
        if out.flows_by_step.last() != Some(&flow_id) {
            // The row's own steps field is empty for a big flow.
            flow.steps.clear();
            out.flows_by_step.push(flow_id.clone());
        }
        flow.steps.push(step);
    }
    // A flow missing a step cannot go on: it is set aside whole.
    for flow in out
        .active_flows
        .extract_if(.., |f| broken.contains(&f.id))
        .collect::<Vec<_>>()
    {
        let raw = serde_json::to_string(&flow).unwrap_or_default();
        out.unreadable(
            "flows",
            &flow.id,
            "one of its steps cannot be read".into(),
            raw,
        );
    }
    out.flows_by_step.retain(|id| !broken.contains(id));
    Ok(())
}

/// The open review items, their decisions and signals joined back.
fn open_reviews(conn: &Connection, path: &Path, out: &mut Recovered) -> Result<(), JournalError> {
    // A review row names its decision and signal; both are joined back
    // from where they were journaled. (Journals written before rows were
    // slimmed hold the whole item.)
    for (id, body, decision) in rows(
        conn,
        path,
        "SELECT r.id, r.body,
                (SELECT a.body FROM audit a WHERE a.kind = 'decision'
                   AND a.decision_id = CASE WHEN json_valid(r.body)
                                        THEN json_extract(r.body, '$.decision_id') END)
         FROM reviews r WHERE r.state != 'decided'",
        [],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        },
    )? {
        match open_review(conn, path, &body, decision) {
            Ok(item) => out.open_reviews.push(item),
            Err(error) => out.unreadable("reviews", &id, error, body),
        }
    }
    Ok(())
}

/// One open review item from its row, its decision's text and its signal.
fn open_review(
    conn: &Connection,
    path: &Path,
    body: &str,
    decision: Option<String>,
) -> Result<ReviewItem, String> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if value.get("decision").is_some() {
        // From the text, not the tree: a decision's snapshot keeps its
        // entities as raw JSON, which only a text parser can give.
        return serde_json::from_str(body).map_err(|e| e.to_string());
    }
    let row: crate::review::ReviewRow = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let mut decision: crate::decide::Decision = match decision {
        Some(d) => serde_json::from_str(&d).map_err(|e| format!("its decision: {e}"))?,
        None => {
            return Err(format!(
                "decision {} is not in the journal",
                row.decision_id
            ));
        }
    };
    // What policies read stays in the journal: an open item holds its
    // decision without it (`review::queue`), so its shared views are not
    // read back here, and an item stays open even where one is missing
    // (`check` names it).
    decision.policy_input = None;
    let text = signal_body(conn, path, &row.signal_id, &decision.signal_source)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("signal {} is not in the journal", row.signal_id))?;
    let signal = crate::signal::Signal::from_json(&text, decision.time)
        .map_err(|e| format!("signal {}: {e}", row.signal_id))?;
    Ok(row.into_item(std::sync::Arc::new(decision), std::sync::Arc::new(signal)))
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
    let mut read = 0;
    for (seq, body) in rows(
        conn,
        path,
        "SELECT seq, body FROM feedback ORDER BY seq LIMIT -1 OFFSET ?1",
        params![after],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    )? {
        // Counted read or not: checkpoints count rows.
        read += 1;
        if let Some(feedback) = out.read("feedback", &seq.to_string(), body) {
            out.feedback_after_checkpoint.push(feedback);
        }
    }
    out.feedback_count = after + read;
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
    let found = super::undecided(conn, path)?;
    out.seen_signals = found.seen;
    let mut body = conn
        .prepare("SELECT body, id, source, type, subject FROM signals WHERE seq = ?1")
        .map_err(sql(path))?;
    for seq in found.undecided {
        let (text, key): (String, [String; 4]) = body
            .query_row([seq], |r| {
                Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))
            })
            .map_err(sql(path))?;
        match Signal::from_json(&text, Utc::now()) {
            Ok(signal) => out.undecided.push(signal),
            // Held in quarantine by its columns, which still read.
            Err(e) => out.unreadable.push(Unreadable {
                table: "signals",
                key: seq.to_string(),
                error: e.to_string(),
                raw: text,
                signal: Some(key),
            }),
        }
    }
    Ok(())
}
