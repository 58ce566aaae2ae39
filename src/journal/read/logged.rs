//! What the logging policy did, decision by decision: the option that was
//! executed, the probability with which it was taken, and what chose it.
//! Off-policy estimates weigh outcomes by these probabilities; a
//! deterministic choice (a policy forcing an option, a person's answer,
//! the safe default, rules alone, or the model where it could not explore)
//! supports only the option it took.
//!
//! Everything here is read from records the journal already keeps: the
//! decision (mode, proposal, propensity, whether it explored) and, for an
//! item that went to a person, the review action that settled it.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;

use super::{JournalError, Views, decode, each_body, open_existing, rows};
use crate::review::{Action, ReviewAction};

/// What chose the executed option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenBy {
    /// The model, acting on its own (exploring or not).
    Model,
    /// A policy forced the option.
    Policy,
    /// Rules alone (the model off): the playbook's default.
    Rules,
    /// A person approved the proposal or overrode it.
    Person,
    /// Nobody answered in time: the safe default.
    SafeDefault,
}

/// One decision as the logging policy carried it out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Logged {
    pub decision_id: String,
    pub class: String,
    pub time: DateTime<Utc>,
    /// The option executed.
    pub option: String,
    /// The probability the logging policy gave it.
    pub propensity: f64,
    pub by: ChosenBy,
    /// Taken with probability one: no support for any other option.
    pub deterministic: bool,
    /// The model explored (took other than its best).
    pub explored: bool,
}

/// The option a decision executed, with the probability the logging
/// policy gave it and what chose it: from the decision's mode, proposal and
/// propensity and, for one sent to a person, the action that settled it
/// (`None` while it waits, or if it was rejected or only recorded).
pub fn chosen(
    mode: &str,
    proposal: &str,
    propensity: f64,
    answer: Option<&Action>,
) -> Option<(String, f64, ChosenBy)> {
    match (mode, answer) {
        ("auto", _) => Some((proposal.to_string(), propensity, ChosenBy::Model)),
        ("forced", _) => Some((proposal.to_string(), 1.0, ChosenBy::Policy)),
        ("rules", _) => Some((proposal.to_string(), 1.0, ChosenBy::Rules)),
        ("review", Some(Action::Approve)) => Some((proposal.to_string(), 1.0, ChosenBy::Person)),
        ("review", Some(Action::Override { option })) => {
            Some((option.clone(), 1.0, ChosenBy::Person))
        }
        ("review", Some(Action::SafeDefault { option })) => {
            Some((option.clone(), 1.0, ChosenBy::SafeDefault))
        }
        _ => None,
    }
}

/// The logged choices of every settled decision at or after `since`, in
/// journal order. Decisions still waiting for a person, rejected ones
/// (nothing executed) and record-only ones are not in it.
pub fn logged(dir: &Path, since: Option<DateTime<Utc>>) -> Result<Vec<Logged>, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let settled = settled(&conn, &path)?;
    type Row = (String, String, String, String, String, f64, bool);
    let decisions: Vec<Row> = rows(
        &conn,
        &path,
        "SELECT ref_id, time, json_extract(body, '$.class'), json_extract(body, '$.mode'),
                json_extract(body, '$.proposal'), json_extract(body, '$.propensity'),
                json_extract(body, '$.explored')
         FROM audit WHERE kind = 'decision' ORDER BY seq",
        params![],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                r.get::<_, Option<f64>>(5)?.unwrap_or(1.0),
                r.get::<_, Option<bool>>(6)?.unwrap_or(false),
            ))
        },
    )?;
    let mut out = Vec::with_capacity(decisions.len());
    for (id, time, class, mode, proposal, propensity, explored) in decisions {
        let time = DateTime::parse_from_rfc3339(&time)
            .map(|t| t.to_utc())
            .map_err(|e| JournalError::Corrupt {
                path: path.display().to_string(),
                what: format!("{id}'s time"),
                error: e.to_string(),
            })?;
        if since.is_some_and(|s| time < s) {
            continue;
        }
        let carried = Carried {
            mode: &mode,
            proposal: &proposal,
            propensity,
            explored,
        };
        if let Some(l) = carried.logged(id, class, time, &settled) {
            out.push(l);
        }
    }
    Ok(out)
}

/// The action that settled each item sent to a person, by decision id.
fn settled(conn: &Connection, path: &Path) -> Result<HashMap<String, ReviewAction>, JournalError> {
    let mut settled = HashMap::new();
    let query = "SELECT body FROM audit WHERE kind = 'review' ORDER BY seq";
    each_body(conn, path, query, |body| {
        let action: ReviewAction = decode(path, "review action", body)?;
        if action.action.is_final() {
            settled.insert(action.decision_id.clone(), action);
        }
        Ok(())
    })?;
    Ok(settled)
}

/// What a decision's record says of how it was taken.
struct Carried<'a> {
    mode: &'a str,
    proposal: &'a str,
    propensity: f64,
    explored: bool,
}

impl Carried<'_> {
    /// The decision as the logging policy carried it out, given the actions
    /// that settled items (`None` while it waits, or if nothing ran).
    fn logged(
        &self,
        decision_id: String,
        class: String,
        time: DateTime<Utc>,
        settled: &HashMap<String, ReviewAction>,
    ) -> Option<Logged> {
        let answer = settled.get(&decision_id).map(|a| &a.action);
        let (option, propensity, by) = chosen(self.mode, self.proposal, self.propensity, answer)?;
        Some(Logged {
            decision_id,
            class,
            time,
            option,
            propensity,
            by,
            deterministic: propensity >= 1.0,
            explored: self.explored && by == ChosenBy::Model,
        })
    }
}

/// A settled decision whole, as the logging policy carried it out, with
/// the signal it decided and its outcome: within SLA or not, from the
/// `outcome.recorded` signal that names it (`None` while none came).
#[derive(Debug, Clone)]
pub struct Replayable {
    pub logged: Logged,
    pub decision: crate::decide::Decision,
    /// `None` where the journal does not hold it (a decision journaled
    /// before the audit kept its signal's source).
    pub signal: Option<crate::signal::Signal>,
    pub within_sla: Option<bool>,
}

/// Calls `each` with every settled decision at or after `since` (as
/// [`logged`] gives them), whole, in journal order, each read once; and
/// `progress`, if given, with how many decisions were read of how many the
/// journal holds, every 4,096. Returns how many decisions were read.
/// Nothing is held but the outcomes and the answers that settled items, so
/// a journal of millions of decisions streams.
pub fn each_replayable(
    dir: &Path,
    since: Option<DateTime<Utc>>,
    mut progress: Option<&mut dyn FnMut(u64, u64)>,
    mut each: impl FnMut(Replayable),
) -> Result<u64, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let settled = settled(&conn, &path)?;
    let within = outcomes(&conn, &path)?;
    // Counted (a pass over the audit) only for someone watching.
    let total = match progress {
        Some(_) => {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM audit WHERE kind = 'decision'",
                    [],
                    |r| r.get(0),
                )
                .map_err(super::sql(&path))?;
            u64::try_from(n).unwrap_or(0)
        }
        None => 0,
    };
    let mut stmt = conn
        .prepare(
            "SELECT a.body, s.body FROM audit a
             LEFT JOIN signals s ON s.id = a.signal_id AND s.source = a.signal_source
             WHERE a.kind = 'decision' ORDER BY a.seq",
        )
        .map_err(super::sql(&path))?;
    let mut rows = stmt.query([]).map_err(super::sql(&path))?;
    let mut views = Views::new(&conn, &path)?;
    let mut read = 0u64;
    while let Some(row) = rows.next().map_err(super::sql(&path))? {
        read += 1;
        if read.is_multiple_of(4096)
            && let Some(progress) = progress.as_mut()
        {
            progress(read, total);
        }
        let body: String = row.get(0).map_err(super::sql(&path))?;
        let mut decision: crate::decide::Decision = decode(&path, "decision", &body)?;
        if since.is_some_and(|s| decision.time < s) {
            continue;
        }
        let carried = Carried {
            mode: decision.mode.as_str(),
            proposal: &decision.proposal,
            propensity: decision.propensity,
            explored: decision.explored,
        };
        let (id, class) = (decision.id.clone(), decision.class.clone());
        let Some(logged) = carried.logged(id, class, decision.time, &settled) else {
            continue;
        };
        views.resolve(&mut decision)?;
        let signal = match row.get::<_, Option<String>>(1).map_err(super::sql(&path))? {
            Some(body) => Some(decode(&path, "signal", &body)?),
            None => None,
        };
        each(Replayable {
            within_sla: within.get(&logged.decision_id).copied(),
            logged,
            decision,
            signal,
        });
    }
    if let Some(progress) = progress.as_mut() {
        progress(read, total);
    }
    Ok(read)
}

/// Each decision's outcome, within SLA or not, by decision id.
fn outcomes(conn: &Connection, path: &Path) -> Result<HashMap<String, bool>, JournalError> {
    let mut within = HashMap::new();
    let query = "SELECT body FROM signals WHERE type = 'outcome.recorded' ORDER BY seq";
    each_body(conn, path, query, |body| {
        let signal: serde_json::Value = decode(path, "outcome signal", body)?;
        let data = &signal["data"];
        // An outcome without these was recorded and not learned from
        // (the engine said so when it came): it measures nothing here.
        if let (Some(id), Some(ok)) = (data["decision"].as_str(), data["within_sla"].as_bool()) {
            within.insert(id.to_string(), ok);
        }
        Ok(())
    })?;
    Ok(within)
}

/// How a shadow candidate's choices compared: with what the live policy
/// proposed, and with what people chose where they settled an item.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShadowAgreement {
    /// Decisions the shadow made (record-only ones are not choices).
    pub decisions: usize,
    /// Share where it proposed the live proposal.
    pub agreement: Option<f64>,
    /// Decisions a person settled (approved or overrode).
    pub with_people: usize,
    /// Share of those where it proposed what the person chose.
    pub people_agreement: Option<f64>,
}

/// The shadow's agreement over the journal's decisions.
pub fn shadow(dir: &Path) -> Result<ShadowAgreement, JournalError> {
    let logged: HashMap<String, Logged> = logged(dir, None)?
        .into_iter()
        .map(|l| (l.decision_id.clone(), l))
        .collect();
    let (conn, path) = open_existing(dir)?;
    let choices: Vec<(String, String, String)> = rows(
        &conn,
        &path,
        "SELECT ref_id, json_extract(body, '$.proposal'), json_extract(body, '$.shadow.proposal')
         FROM audit WHERE kind = 'decision' AND json_extract(body, '$.shadow') IS NOT NULL
         AND json_extract(body, '$.mode') != 'record' ORDER BY seq",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let share = |agree: usize, n: usize| (n > 0).then(|| agree as f64 / n as f64);
    let (mut agree, mut people, mut people_agree) = (0, 0, 0);
    for (id, live, shadow) in &choices {
        agree += usize::from(live == shadow);
        if let Some(l) = logged.get(id).filter(|l| l.by == ChosenBy::Person) {
            people += 1;
            people_agree += usize::from(&l.option == shadow);
        }
    }
    Ok(ShadowAgreement {
        decisions: choices.len(),
        agreement: share(agree, choices.len()),
        with_people: people,
        people_agreement: share(people_agree, people),
    })
}
