//! Outcomes a later signal may still change.
//!
//! - A flow done in time whose alert type has a `reopen` span is watched
//!   until the span ends: its alert firing again makes it `reopened`.
//! - A flow whose type another type `ends` (an order that a delivery
//!   ends) finishes its steps with its outcome provisional: the ending
//!   signal by the deadline keeps it within SLA, none by then makes it
//!   `late`. An ending signal that comes while the flow still runs closes
//!   it, judged by its deadline.
//!
//! Every watch is journaled (the `verdicts` table), so a restart resumes
//! them, and a flow no longer in memory has its outcome changed in the
//! journal (`Record::FlowOutcome`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::flow::outcome::Outcome;
use crate::journal::Record;
use crate::signal::Signal;

/// What a finished flow's outcome waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Awaits {
    /// Its alert not firing again before `until`.
    Reopen,
    /// A signal of a type that ends it, by `until` (its deadline).
    End,
}

/// A finished flow whose outcome is not final yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Watched {
    pub flow: String,
    pub decision: String,
    pub until: DateTime<Utc>,
    pub awaits: Awaits,
}

/// The flows watched, by key (`reopen <fingerprint>`, `end <subject>
/// <flow>`), with what changed since the last flush.
#[derive(Default)]
pub(super) struct Verdicts {
    watched: BTreeMap<String, Watched>,
    by_time: BTreeSet<(DateTime<Utc>, String)>,
    /// Key → its watch as JSON, or `None` once it is settled.
    changed: BTreeMap<String, Option<String>>,
}

fn reopen_key(fingerprint: &str) -> String {
    format!("reopen {fingerprint}")
}

fn end_prefix(subject: &str) -> String {
    format!("end {subject} ")
}

impl Verdicts {
    fn watch(&mut self, key: String, watched: Watched) {
        if let Some(old) = self.watched.get(&key) {
            self.by_time.remove(&(old.until, key.clone()));
        }
        let body = serde_json::to_string(&watched).ok();
        self.by_time.insert((watched.until, key.clone()));
        self.watched.insert(key.clone(), watched);
        self.changed.insert(key, body);
    }

    fn take(&mut self, key: &str) -> Option<Watched> {
        let watched = self.watched.remove(key)?;
        self.by_time.remove(&(watched.until, key.to_string()));
        self.changed.insert(key.to_string(), None);
        Some(watched)
    }

    /// The keys of flows of `subject` waiting for a signal that ends them.
    fn ending(&self, subject: &str) -> Vec<String> {
        let prefix = end_prefix(subject);
        let after = self.watched.range(prefix.clone()..);
        after
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The watches whose time is over at `now`, taken out.
    fn due(&mut self, now: DateTime<Utc>) -> Vec<Watched> {
        let mut out = Vec::new();
        while let Some((until, key)) = self.by_time.first().cloned() {
            if until >= now {
                break;
            }
            out.extend(self.take(&key));
        }
        out
    }

    /// A watch as journaled; a body that does not read is refused.
    pub(super) fn restore(&mut self, key: String, body: &str) -> Result<(), String> {
        let watched: Watched = serde_json::from_str(body).map_err(|e| e.to_string())?;
        self.by_time.insert((watched.until, key.clone()));
        self.watched.insert(key, watched);
        Ok(())
    }

    /// What changed since the last flush, as records.
    pub(super) fn take_changed(&mut self) -> impl Iterator<Item = Record> + use<> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|(key, body)| Record::Verdict { key, body })
    }
}

impl Engine {
    /// A flow done in time whose type asks that its alert not fire again
    /// within a span: watched until then (`reopened`).
    pub(super) fn watch_for_reopening(
        &mut self,
        fingerprint: &str,
        flow_id: &str,
        now: DateTime<Utc>,
    ) {
        let Some(flow) = self.flows.get(flow_id) else {
            return;
        };
        let span = (self.decider.playbook.play(&flow.signal_type)).and_then(|play| play.reopen);
        let (Some(span), Some(Outcome::WithinSla)) = (span, flow.outcome) else {
            return;
        };
        let watched = Watched {
            flow: flow_id.to_string(),
            decision: flow.decision_id.clone(),
            until: now + span,
            awaits: Awaits::Reopen,
        };
        self.verdicts.watch(reopen_key(fingerprint), watched);
    }

    /// An alert fires again: the flow its last firing ran, done in time
    /// and resolved within its type's `reopen` span, is `reopened`.
    pub(super) fn note_reopening(&mut self, fingerprint: &str, now: DateTime<Utc>) {
        let Some(was) = self.verdicts.take(&reopen_key(fingerprint)) else {
            return;
        };
        if now <= was.until {
            self.turn_bad(&was, Outcome::Reopened, now);
        }
    }

    /// A flow just finished in time whose type another type ends: its
    /// outcome waits for that signal until its deadline.
    pub(super) fn await_end(&mut self, flow_id: &str) {
        let Some(flow) = self.flows.get(flow_id) else {
            return;
        };
        if flow.outcome != Some(Outcome::WithinSla)
            || !self.decider.playbook.is_ended(&flow.signal_type)
        {
            return;
        }
        let key = format!("{}{}", end_prefix(&flow.subject), flow.id);
        let watched = Watched {
            flow: flow.id.clone(),
            decision: flow.decision_id.clone(),
            until: flow.deadline,
            awaits: Awaits::End,
        };
        self.verdicts.watch(key, watched);
    }

    /// A signal whose type `ends` others: the flows of its subject it
    /// ends are done (those still running closed, judged by their
    /// deadline; those done in time keep their outcome).
    pub(super) fn end_by(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let playbook = std::sync::Arc::clone(&self.decider.playbook);
        let Some(ends) = playbook.play(&signal.kind).map(|p| &p.ends) else {
            return;
        };
        if ends.is_empty() {
            return;
        }
        for key in self.verdicts.ending(&signal.subject) {
            self.verdicts.take(&key);
        }
        let running: Vec<String> = (self.flows.active())
            .filter(|f| f.subject == signal.subject && ends.contains(&f.signal_type))
            .map(|f| f.id.clone())
            .collect();
        let who = format!("{} ({})", signal.kind, signal.source);
        for flow in running {
            self.close_flow(&flow, &who, &format!("ended by {who}"), now);
        }
    }

    /// Watches past their time: a reopen span over leaves the outcome as
    /// it was; a deadline passed without the signal that ends the flow
    /// makes it `late`.
    pub(super) fn tick_verdicts(&mut self, now: DateTime<Utc>) {
        for was in self.verdicts.due(now) {
            if was.awaits == Awaits::End {
                self.turn_bad(&was, Outcome::Late, now);
            }
        }
    }

    /// A flow judged within SLA turns out not to be: its outcome changed
    /// (in memory, or in the journal if it has left), counted, and a
    /// decision still awaiting its label learns it.
    fn turn_bad(&mut self, was: &Watched, outcome: Outcome, now: DateTime<Utc>) {
        match self.flows.outcome(&was.flow) {
            Some(Outcome::WithinSla) => self.flows.set_outcome(&was.flow, outcome),
            Some(_) => return,
            None => self.outbox.records.push(Record::FlowOutcome {
                id: was.flow.clone(),
                outcome,
            }),
        }
        self.metrics.at(now, |t| {
            t.work_within_sla = t.work_within_sla.saturating_sub(1);
            t.reopened += u64::from(outcome == Outcome::Reopened);
        });
        self.learning_turned_bad(&was.decision, now);
        self.drain_flow_changes();
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use crate::flow::{TaskAction, TaskFilter};
    use crate::journal::read::report::{Report, report};
    use crate::testkit::{alert, critical};

    fn count(r: &Report, class: &str, outcome: &str) -> u64 {
        (r.outcomes.iter())
            .filter(|o| o.class == class)
            .filter_map(|o| o.by.get(outcome))
            .sum()
    }

    /// The reopen watch outlives a restart: an alert resolved before it,
    /// firing again after it within the span, makes its flow (no longer
    /// in memory) `reopened` in the journal.
    #[test]
    fn a_restart_keeps_watching_for_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let at = |m: i64| start + Duration::minutes(m);
        let mut engine = crate::testkit::starter(dir.path(), start);
        engine.ingest(critical("c1", "f1", "api", at(0)), at(0));
        engine.tick(at(0));
        engine.ingest(alert("r1", "alert.resolved", "f1", "api", at(10)), at(10));
        engine.flush().unwrap().wait().unwrap();
        drop(engine);
        // Explained meanwhile, the flow's outcome says what it waits for.
        let data = dir.path().join("data");
        let explained = crate::journal::read::explain(&data, "D0000001")
            .unwrap()
            .unwrap();
        let text = crate::journal::explain::render(&explained);
        assert!(
            text.contains("outcome waits: within SLA unless its alert fires again before"),
            "{text}"
        );
        let mut engine = crate::testkit::open_starter(dir.path(), at(20), |_| {});
        assert!(
            engine.flows.flows.is_empty(),
            "done flows stay in the journal"
        );
        engine.ingest(critical("c2", "f1", "api", at(40)), at(40));
        engine.flush().unwrap().wait().unwrap();
        let r = report(&dir.path().join("data"), None).unwrap();
        assert_eq!(count(&r, "incident", "reopened"), 1, "{:?}", r.outcomes);
        assert_eq!(engine.metrics.total.reopened, 1);
    }

    /// Orders a delivery ends, promised within two hours: one delivered
    /// after its work was done, one never delivered, one delivered while
    /// its work still ran. A restart comes between; the watch resumes.
    #[test]
    fn a_delivery_by_the_promised_time_keeps_an_order_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let at = |m: i64| start + Duration::minutes(m);
        let orders = r#"
[signal."order.placed"]
class = "service_desk"
options = ["ship_order"]
default = "ship_order"
safe_default = "ship_order"
sla_minutes = 2880
review_minutes = 60
due = "promised_by"

[signal."order.delivered"]
class = "context"
options = ["record"]
default = "record"
safe_default = "record"
sla_minutes = 60
review_minutes = 60
ends = ["order.placed"]

[option.ship_order]
label = "Ship it"
steps = ["service_desk.acknowledge"]
"#;
        let mut engine = crate::testkit::starter_playbook(dir.path(), start, |text| text + orders);
        let order = |kind: &str, id: &str, o: &str, when: DateTime<Utc>| {
            let event = serde_json::json!({
                "specversion": "1.0", "id": id, "source": "erp", "type": kind,
                "subject": format!("order/{o}"),
                "data": {"promised_by": at(120).to_rfc3339()},
            });
            crate::signal::Signal::from_value(event, when).unwrap()
        };
        for o in ["o1", "o2", "o3"] {
            engine.ingest(order("order.placed", o, o, at(0)), at(0));
        }
        engine.tick(at(0));
        let ann = crate::review::Actor::new("ann", crate::decide::policy::Role::Operator);
        // A new model asks first: each proposal approved.
        let flows: Vec<String> = engine.flows.flows.keys().cloned().collect();
        for flow in &flows {
            if let Some(item) = engine.reviews.open_for_flow(flow).map(|i| i.id.clone()) {
                let approve = crate::review::Action::Approve;
                engine.act(&item, &ann, approve, "ship", at(1)).unwrap();
            }
        }
        engine.tick(at(1));
        for o in ["o1", "o2"] {
            let flow = (engine.flows.flows.values())
                .find(|f| f.signal_id == o)
                .map(|f| f.id.clone())
                .unwrap();
            let tasks = engine.tasks(&TaskFilter::default());
            let task = (tasks.iter())
                .find(|t| t.flow == flow && t.state == "open")
                .unwrap_or_else(|| panic!("{tasks:?} {:?}", engine.flows.flows));
            let done = TaskAction::Complete;
            engine
                .act_on_task(&task.id, &done, &ann, "shipped", at(30))
                .unwrap();
        }
        engine.flush().unwrap().wait().unwrap();
        drop(engine);
        let mut engine = crate::testkit::open_starter(dir.path(), at(35), |_| {});
        engine.ingest(order("order.delivered", "d1", "o1", at(60)), at(60));
        engine.ingest(order("order.delivered", "d3", "o3", at(70)), at(70));
        engine.tick(at(119));
        engine.flush().unwrap().wait().unwrap();
        let data = dir.path().join("data");
        let r = report(&data, None).unwrap();
        assert_eq!(
            count(&r, "service_desk", "within_sla"),
            3,
            "{:?}",
            r.outcomes
        );
        engine.tick(at(121));
        engine.flush().unwrap().wait().unwrap();
        let r = report(&data, None).unwrap();
        let judged = ["within_sla", "late"].map(|o| count(&r, "service_desk", o));
        assert_eq!(judged, [2, 1], "{:?}", r.outcomes);
        // Settled: nothing is left waiting.
        drop(engine);
        let engine = crate::testkit::open_starter(dir.path(), at(122), |_| {});
        assert_eq!(engine.verdicts.watched.len(), 0);
    }
}
