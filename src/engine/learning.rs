//! Learning: what each decision chose is remembered until its outcome
//! arrives; answers from people, explicit outcomes and, failing those, a
//! flow's own result become labelled examples the model learns at once;
//! the model is checkpointed every so many.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use super::apprentice::Seen;
use super::{Engine, EngineEvent, FlowFinished};
use crate::decide::Decision;
use crate::flow::FlowState;
use crate::journal::{Feedback, Record, read};
use crate::review::Action;
use crate::signal::Signal;

/// Importance of a person's answer as a label, against 1.0 for an explicit
/// outcome: people are right most of the time, outcomes are what happened.
/// An answer teaches at once; the outcome that follows corrects a wrong one.
const PERSON_WEIGHT: f64 = 0.6;

/// Importance of a rejection: it says the proposal was wrong, not what
/// would have been right.
const REJECT_WEIGHT: f64 = 0.5;

/// One labelled example: the option, whether it was right (1) or not (0),
/// how much it counts, and who said so.
struct Label<'a> {
    option: &'a str,
    value: f64,
    weight: f64,
    source: &'static str,
}

impl<'a> Label<'a> {
    pub(super) fn new(option: &'a str, value: f64, weight: f64, source: &'static str) -> Label<'a> {
        Label {
            option,
            value,
            weight,
            source,
        }
    }
}

/// Importance of a flow's own failure as a label, against 1.0 for an
/// explicit outcome: it says the work went wrong, not what would have worked.
pub(super) const FLOW_COMPLETION_WEIGHT: f64 = 0.2;

/// How long after its flow ends an explicit outcome may still arrive. An
/// explicit outcome always wins over the flow's own result; only decisions
/// that never get one learn from their flow (otherwise a quick flow that
/// "succeeds" at the wrong thing would teach the model it was right).
pub(super) const OUTCOME_HORIZON: Duration = Duration::hours(1);

/// A decision's label as it waits out the horizon, journaled
/// (`labels_due`): when its flow ended, what it ran, and the flow's own
/// label if it is evidence (a failure, a late or reopened flow).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Due {
    ended: DateTime<Utc>,
    option: String,
    label: Option<f64>,
}

impl Due {
    fn of(a: &Awaiting) -> Option<Due> {
        Some(Due {
            ended: a.ended?,
            option: a.option.to_string(),
            label: a.flow_label.map(|(label, _)| label),
        })
    }
}

/// A decision still waiting for its outcome: what it chose and from what.
#[derive(Debug, Clone)]
pub(super) struct Awaiting {
    // Held for every settled decision until its outcome: kept compact
    // (the features in one allocation, the ramp mark boxed) since there
    // are as many as decisions in an hour.
    option: Box<str>,
    features: Packed,
    /// When the option was settled and its flow could start: the decision
    /// time, or later when a person (or the safe default) released it.
    since: DateTime<Utc>,
    /// The flow's own result (label, when), used if no explicit outcome
    /// arrives within `OUTCOME_HORIZON` of it.
    flow_label: Option<(f64, DateTime<Utc>)>,
    /// When its flow ended: from then its label is due (journaled, so a
    /// restart within the horizon still learns it).
    ended: Option<DateTime<Utc>>,
    /// Taken during a guarded ramp: its outcome is a reading of the ramp.
    ramp: Option<Box<crate::decide::ramp::RampMark>>,
    /// In an apprentice class: its outcome is a reading of who should decide.
    apprentice: Option<Box<Seen>>,
}

/// Strings in two allocations (their text, and where each ends) instead
/// of one each.
#[derive(Debug, Clone)]
struct Packed {
    text: Box<str>,
    ends: Box<[u32]>,
}

impl Packed {
    fn of(strings: &[String]) -> Packed {
        let mut text = String::with_capacity(strings.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(strings.len());
        for s in strings {
            text.push_str(s);
            // A feature is a short name and value; the text of one
            // decision's features is far below 4 GiB.
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        Packed {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    fn unpack(&self) -> Vec<String> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let end = (end as usize).min(self.text.len());
                let s = self.text.get(start..end).unwrap_or_default().to_string();
                start = end;
                s
            })
            .collect()
    }
}

impl Awaiting {
    fn features(&self) -> Vec<String> {
        self.features.unpack()
    }
}

/// What learning keeps between signals: the decisions awaiting their
/// outcome, flow results waiting out the horizon, and when the model was
/// last checkpointed.
pub(super) struct Learning {
    /// Boxed: a table sized for a burst's peak stays that size until it is
    /// shrunk (`shrink`), and buckets of pointers make that 4x smaller than
    /// buckets of entries.
    pub awaiting: crate::FastMap<String, Box<Awaiting>>,
    /// Flow results waiting out the horizon, oldest first.
    pub labels: VecDeque<(DateTime<Utc>, String)>,
    /// Labelled examples learnt, as journaled.
    pub feedback: i64,
    /// The example count at the last checkpoint, and how many between two.
    pub checkpoint_at: i64,
    pub checkpoint_every: i64,
    /// When flow labels were last gathered (once a simulated minute).
    pub last_sample: Option<DateTime<Utc>>,
    /// A cluster's one model: learnt from its stream (`shared_model`).
    pub shared: Option<super::shared_model::Shared>,
}

impl Learning {
    /// Nothing learnt yet; a checkpoint every `checkpoint_every` examples.
    pub fn new(checkpoint_every: i64) -> Learning {
        Learning {
            awaiting: Default::default(),
            labels: VecDeque::new(),
            feedback: 0,
            checkpoint_at: 0,
            checkpoint_every: checkpoint_every.max(1),
            last_sample: None,
            shared: None,
        }
    }
}

/// Decisions whose flow ended, kept for an explicit outcome, at most: past
/// it the oldest are let go (an outcome that still comes finds its decision
/// in the journal, as after a restart; a failed flow's weak label is not
/// learnt). Memory follows open work, not a burst's history.
pub(super) const MAX_ENDED: usize = 100_000;

impl Engine {
    /// The option is final: remember it for the outcome, tell subscribers.
    pub(super) fn settled(&mut self, decision: &Decision, option: &str, now: DateTime<Utc>) {
        self.awaits(decision, option, now);
        self.emit(EngineEvent::Settled {
            decision_id: decision.id.clone(),
            option: option.to_string(),
            at: now,
        });
    }

    /// `decision`, settled on `option` at `since`, waits for its outcome:
    /// when it settles, and again after a restart while its flow runs.
    pub(super) fn awaits(&mut self, decision: &Decision, option: &str, since: DateTime<Utc>) {
        self.learning.awaiting.insert(
            decision.id.clone(),
            Box::new(Awaiting {
                option: option.into(),
                features: Packed::of(&decision.features),
                since,
                flow_label: None,
                ended: None,
                ramp: decision.ramp.clone().map(Box::new),
                apprentice: Seen::of(decision, option).map(Box::new),
            }),
        );
    }

    pub(super) fn learn_from_outcome(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let Some(decision_id) = signal.data_str("decision").map(String::from) else {
            tracing::warn!(signal = %signal.id, "outcome without a decision id: recorded, not learned");
            return;
        };
        let Some(within) = signal
            .data
            .get("within_sla")
            .and_then(serde_json::Value::as_bool)
        else {
            tracing::warn!(signal = %signal.id, "outcome without within_sla: recorded, not learned");
            return;
        };
        let awaiting = match self.learning.awaiting.remove(&decision_id) {
            Some(a) => {
                crate::shrink(&mut self.learning.awaiting);
                if a.ended.is_some() {
                    self.journal_due(&decision_id, None);
                }
                Some(a)
            }
            None => self
                .awaiting_from_journal(&decision_id, signal)
                .map(Box::new),
        };
        let Some(awaiting) = awaiting else {
            tracing::warn!(decision = %decision_id, "outcome for an unknown decision: recorded, not learned");
            return;
        };
        let is_child = signal
            .data
            .get("branch")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if !is_child {
            self.metrics.at(now, |t| {
                t.outcomes += 1;
                t.within_sla += u64::from(within);
            });
        }
        if let Some(mark) = &awaiting.ramp {
            self.ramp_outcome(mark, within, now);
        }
        let label = if within { 1.0 } else { 0.0 };
        if let Some(seen) = &awaiting.apprentice {
            self.apprentice_outcome(seen, label, now);
        }
        let label = Label::new(&awaiting.option, label, 1.0, "outcome");
        self.feedback(&decision_id, awaiting.features(), label, now);
    }

    /// After a restart the in-memory map is gone: read the decision back
    /// and take the option from its flow (or its proposal).
    pub(super) fn awaiting_from_journal(
        &self,
        decision_id: &str,
        signal: &Signal,
    ) -> Option<Awaiting> {
        let decision = match read::decision(&self.dir, decision_id) {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(decision = decision_id, error = %e, "reading a decision back for its outcome");
                return None;
            }
        };
        let option = signal
            .data_str("option")
            .map(String::from)
            .unwrap_or_else(|| decision.proposal.clone());
        Some(Awaiting {
            apprentice: Seen::of(&decision, &option).map(Box::new),
            option: option.into(),
            features: Packed::of(&decision.features),
            since: decision.time,
            flow_label: None,
            ended: None,
            ramp: decision.ramp.map(Box::new),
        })
    }

    /// What a person's answer teaches: approve confirms the proposal,
    /// override refutes it and confirms the alternative, reject refutes it.
    pub(super) fn learn_from_answer(
        &mut self,
        decision: &Decision,
        action: &Action,
        now: DateTime<Utc>,
    ) {
        let proposal = decision.proposal.as_str();
        match action {
            Action::Approve => self.apprentice_answer(decision, proposal),
            Action::Override { option } => self.apprentice_answer(decision, option),
            _ => {}
        }
        let labels: Vec<Label<'_>> = match action {
            Action::Approve => vec![Label::new(proposal, 1.0, PERSON_WEIGHT, "approve")],
            Action::Override { option } => vec![
                Label::new(proposal, 0.0, PERSON_WEIGHT, "override"),
                Label::new(option, 1.0, PERSON_WEIGHT, "override"),
            ],
            Action::Reject => vec![Label::new(proposal, 0.0, REJECT_WEIGHT, "reject")],
            _ => Vec::new(),
        };
        for label in labels {
            self.feedback(&decision.id, decision.features.clone(), label, now);
        }
    }

    /// Learns one labelled example and journals it.
    fn feedback(
        &mut self,
        decision_id: &str,
        features: Vec<String>,
        label: Label<'_>,
        now: DateTime<Utc>,
    ) {
        // A cluster's model learns this once it comes back from the
        // model stream, in the stream's order (`shared_model`).
        if self.decider.learning && !self.learns_shared() {
            self.watch_label(label.option, &features, label.value, label.weight, now);
            self.decider
                .learn(label.option, &features, label.value, label.weight);
        }
        let fb = Feedback {
            decision_id: decision_id.to_string(),
            option: label.option.to_string(),
            label: label.value,
            importance: label.weight,
            source: label.source.to_string(),
            features,
            time: now,
        };
        self.learning.feedback += 1;
        self.emit(EngineEvent::Learned(fb.clone()));
        self.outbox.records.push(Record::Feedback(fb));
        let due =
            self.learning.feedback - self.learning.checkpoint_at >= self.learning.checkpoint_every;
        if due && !self.learns_shared() {
            self.checkpoint();
        }
    }

    /// Journals the model and the metrics, so that a restart replays only
    /// the feedback after this. One that cannot be written is not written
    /// (an empty checkpoint would lose the model at the restart); the next
    /// is tried at the next example.
    pub(super) fn checkpoint(&mut self) {
        let model = serde_json::to_string(&self.decider.model.checkpoint());
        let metrics = serde_json::to_string(&self.metrics);
        let (model, metrics) = match (model, metrics) {
            (Ok(model), Ok(metrics)) => (model, metrics),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "the model checkpoint could not be written; the next example tries again");
                return;
            }
        };
        self.outbox.records.push(Record::Checkpoint {
            feedback_count: self.learning.feedback,
            body: model,
        });
        self.outbox.records.push(Record::Meta {
            key: "metrics".into(),
            value: metrics,
        });
        if let Some(position) = self.shared_checkpoint() {
            self.outbox.records.push(position);
        }
        self.learning.checkpoint_at = self.learning.feedback;
    }

    /// A flow's result, as weak evidence about what it ran. A flow that
    /// failed, was compensated or took longer than its decision allowed is
    /// evidence against it, kept until an explicit outcome arrives or the
    /// horizon passes. A flow that simply got done is no evidence either
    /// way: every option usually gets its work done, and labelling that 1
    /// would push every option's score to 1 and erase the margins the model
    /// decides on. Time spent waiting for a person before the flow could
    /// start is not the option's doing: a flow released late from review
    /// that then ran within the time it was given is no evidence either
    /// (labelling it 0 taught the model that every safe default fails
    /// whenever nobody answers, which sent ever more decisions to review).
    pub(super) fn note_flow_result(
        &mut self,
        done: &FlowFinished,
        allowed: Duration,
        now: DateTime<Utc>,
    ) {
        if let Some(awaiting) = self.learning.awaiting.get_mut(&done.decision_id) {
            let failed = done.state != FlowState::Done || now - awaiting.since > allowed;
            if failed {
                awaiting.flow_label = Some((0.0, now));
            }
            awaiting.ended = Some(now);
            let due = Due::of(awaiting);
            self.journal_due(&done.decision_id, due);
            // Either way the entry is dropped after the horizon.
            self.learning
                .labels
                .push_back((now, done.decision_id.clone()));
            while self.learning.labels.len() > MAX_ENDED {
                if let Some((_, id)) = self.learning.labels.pop_front()
                    && self.learning.awaiting.remove(&id).is_some()
                {
                    self.journal_due(&id, None);
                }
            }
            crate::shrink(&mut self.learning.awaiting);
        }
    }

    /// A decision whose flow turned out badly after it ended (its alert
    /// fired again soon after it resolved, or what ends it did not come by
    /// its deadline): if its label is still to come, it is that the option
    /// did not hold.
    pub(super) fn learning_turned_bad(&mut self, decision_id: &str, now: DateTime<Utc>) {
        if let Some(awaiting) = self.learning.awaiting.get_mut(decision_id) {
            awaiting.flow_label = Some((0.0, now));
            // Its flow ended: the journaled label turns too.
            if let Some(due) = Due::of(awaiting) {
                self.journal_due(decision_id, Some(due));
            }
        }
    }

    /// Journals that `decision_id`'s label is due (`Some`), or no longer.
    fn journal_due(&mut self, decision_id: &str, due: Option<Due>) {
        let body = due.and_then(|d| serde_json::to_string(&d).ok());
        self.outbox.records.push(Record::LabelDue {
            decision_id: decision_id.to_string(),
            body,
        });
    }

    /// After a restart: the decisions whose flow ended within the horizon
    /// before it wait out the rest of it, as they would have, and learn
    /// from their flow's result unless an outcome is stated. A row that
    /// does not read is set aside.
    pub(super) fn await_due_again(
        &mut self,
        rows: Vec<(Decision, String)>,
        unreadable: &mut Vec<read::Unreadable>,
    ) {
        let mut queued = Vec::with_capacity(rows.len());
        for (decision, body) in rows {
            let due: Due = match serde_json::from_str(&body) {
                Ok(due) => due,
                Err(e) => {
                    unreadable.push(read::Unreadable {
                        table: "labels_due",
                        key: decision.id.clone(),
                        error: e.to_string(),
                        raw: body,
                        signal: None,
                    });
                    continue;
                }
            };
            self.awaits(&decision, &due.option, due.ended);
            if let Some(a) = self.learning.awaiting.get_mut(&decision.id) {
                a.ended = Some(due.ended);
                a.flow_label = due.label.map(|label| (label, due.ended));
            }
            queued.push((due.ended, decision.id));
        }
        queued.sort();
        self.learning.labels.extend(queued);
    }

    /// Decisions whose flow ended more than the horizon ago without an
    /// explicit outcome learn from the flow's own result.
    pub(super) fn learn_from_flows(&mut self, now: DateTime<Utc>) {
        let mut due = Vec::new();
        while let Some((at, _)) = self.learning.labels.front() {
            if now - *at < OUTCOME_HORIZON {
                break;
            }
            if let Some((_, id)) = self.learning.labels.pop_front() {
                due.push(id);
            }
        }
        for id in due {
            let Some(a) = self.learning.awaiting.remove(&id) else {
                continue;
            };
            self.journal_due(&id, None);
            // No outcome stated: the flow's own result is the apprentice's
            // reading (done in its time is within SLA).
            if let Some(seen) = &a.apprentice {
                let reward = a.flow_label.map_or(1.0, |(label, _)| label);
                self.apprentice_outcome(seen, reward, now);
            }
            let Some((label, _)) = a.flow_label else {
                continue;
            };
            let label = Label::new(&a.option, label, FLOW_COMPLETION_WEIGHT, "flow");
            self.feedback(&id, a.features(), label, now);
        }
        crate::shrink(&mut self.learning.awaiting);
        // The labels leave here, past the horizon: their queue gives its
        // room back here too.
        if let Some(room) =
            crate::room_to_keep(self.learning.labels.len(), self.learning.labels.capacity())
        {
            self.learning.labels.shrink_to(room);
        }
    }
}

#[cfg(test)]
mod packed_tests {
    use super::Packed;

    #[test]
    fn strings_read_back_as_packed() {
        let strings: Vec<String> = ["type=a", "", "w=\u{1f}x", "é=ü"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(Packed::of(&strings).unpack(), strings);
        assert!(Packed::of(&[]).unpack().is_empty());
    }
}

#[cfg(test)]
mod restart_tests {
    use chrono::{Duration, Utc};

    use crate::flow::{TaskAction, TaskFilter};
    use crate::review::Actor;
    use crate::signal::Signal;

    fn ticket(engine: &mut crate::engine::Engine, at: chrono::DateTime<Utc>) {
        let event = serde_json::json!({
            "specversion": "1.0", "id": "t1", "source": "desk", "type": "ticket.opened",
            "subject": "ticket/t1", "data": {"ticket": "t1"},
        });
        engine.ingest(Signal::from_value(event, at).unwrap(), at);
        engine.tick(at);
        engine.flush().unwrap().wait().unwrap();
        assert_eq!(engine.flows.active_count(), 1, "the ticket's flow runs");
    }

    fn fail_its_tasks(engine: &mut crate::engine::Engine, at: chrono::DateTime<Utc>) {
        let ann = Actor::new("ann", crate::decide::policy::Role::Operator);
        let tasks = engine.tasks(&TaskFilter::default());
        assert!(!tasks.is_empty());
        for task in tasks {
            engine
                .act_on_task(&task.id, &TaskAction::Fail, &ann, "no stock", at)
                .unwrap();
        }
    }

    /// The feedback journaled, and the labels still due.
    fn journaled(dir: &std::path::Path) -> (Vec<crate::journal::Feedback>, i64) {
        let conn =
            rusqlite::Connection::open(dir.join("data").join(crate::journal::FILE_NAME)).unwrap();
        let bodies: Vec<String> = conn
            .prepare("SELECT body FROM feedback")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let due = conn
            .query_row("SELECT COUNT(*) FROM labels_due", [], |r| r.get(0))
            .unwrap();
        let learnt = bodies
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        (learnt, due)
    }

    /// A ticket whose tasks fail at minute 10 of an engine started now on
    /// `dir`, which is stopped a minute later with the flow's label due;
    /// when it started.
    fn failed_before_a_stop(dir: &std::path::Path) -> chrono::DateTime<Utc> {
        let start = Utc::now();
        let mut engine = crate::testkit::starter(dir, start);
        ticket(&mut engine, start);
        fail_its_tasks(&mut engine, start + Duration::minutes(10));
        engine.tick(start + Duration::minutes(11));
        engine.flush().unwrap().wait().unwrap();
        start
    }

    fn taught_its_failure(learnt: &[crate::journal::Feedback]) -> bool {
        learnt
            .iter()
            .any(|f| f.source == "flow" && f.label == 0.0 && f.decision_id == "D0000001")
    }

    /// A ticket's flow still runs at a restart and fails after it: the
    /// model learns that its option failed, as it would have without the
    /// restart.
    #[test]
    fn a_flow_in_flight_at_a_restart_still_teaches_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let at = |m: i64| start + Duration::minutes(m);
        let mut engine = crate::testkit::starter(dir.path(), start);
        ticket(&mut engine, start);
        drop(engine);
        let mut engine = crate::testkit::open_starter(dir.path(), at(5), |_| {});
        assert_eq!(
            engine.learning.awaiting.len(),
            1,
            "its decision waits again"
        );
        fail_its_tasks(&mut engine, at(10));
        engine.tick(at(80));
        engine.flush().unwrap().wait().unwrap();
        let (learnt, due) = journaled(dir.path());
        assert!(taught_its_failure(&learnt), "{learnt:?}");
        assert_eq!(due, 0, "learnt, its row goes");
    }

    /// A ticket's flow fails, and the engine restarts within the hour a
    /// stated outcome may still come in: the flow's failure still teaches
    /// once the hour is over.
    #[test]
    fn a_flow_that_ended_just_before_a_restart_still_teaches_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let start = failed_before_a_stop(dir.path());
        let at = |m: i64| start + Duration::minutes(m);
        assert_eq!(journaled(dir.path()).1, 1, "its label is due, journaled");
        let mut engine = crate::testkit::open_starter(dir.path(), at(20), |_| {});
        assert_eq!(engine.learning.awaiting.len(), 1, "it waits again");
        engine.tick(at(60));
        engine.flush().unwrap().wait().unwrap();
        assert!(
            !taught_its_failure(&journaled(dir.path()).0),
            "not before the hour"
        );
        engine.tick(at(75));
        engine.flush().unwrap().wait().unwrap();
        let (learnt, due) = journaled(dir.path());
        assert!(taught_its_failure(&learnt), "{learnt:?}");
        assert_eq!(due, 0, "learnt, its row goes");
    }

    /// A due label whose row does not read, or whose decision is gone, is
    /// set aside at the restart rather than kept and named at every start.
    #[test]
    fn a_due_label_that_does_not_read_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let start = failed_before_a_stop(dir.path());
        let path = dir.path().join("data").join(crate::journal::FILE_NAME);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "UPDATE labels_due SET body = '{\"ended\": 7}';
             INSERT INTO labels_due (decision_id, body) VALUES ('D9999999', '{}');",
        )
        .unwrap();
        drop(conn);
        let at = start + Duration::minutes(20);
        let mut engine = crate::testkit::open_starter(dir.path(), at, |_| {});
        engine.flush().unwrap().wait().unwrap();
        assert_eq!(journaled(dir.path()).1, 0, "both rows set aside");
        let conn = rusqlite::Connection::open(&path).unwrap();
        let aside: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM set_aside WHERE tbl = 'labels_due'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(aside, 2);
    }
}
