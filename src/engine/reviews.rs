//! People's answers to review items, and the queue a page at a time.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError, EngineEvent};
use crate::decide::choice_for;
use crate::flow::outcome::Outcome;
use crate::journal::{Record, read};
use crate::review::{Action, Actor, ReviewAction, ReviewError, ReviewItem, Settled};

impl Engine {
    /// A person (or the engine, for timers) acts on a review item. A refused
    /// action changes nothing and says why.
    pub fn act(
        &mut self,
        review_id: &str,
        actor: &Actor,
        action: Action,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<ReviewAction, EngineError> {
        let settled = match self.reviews.act(review_id, actor, action, note, now) {
            // Decided long enough ago to have left memory: the journal says
            // by whom.
            Err(ReviewError::NotFound(id)) => {
                return Err(match read::review_outcome(&self.dir, &id)? {
                    Some(done) => ReviewError::AlreadyDecided {
                        id,
                        action: done.action.name().to_string(),
                        by: done.actor.name,
                        at: done.time,
                    },
                    None => ReviewError::NotFound(id),
                }
                .into());
            }
            other => other?,
        };
        let record = settled.record.clone();
        self.apply_settled(settled, now);
        Ok(record)
    }

    /// An item past its class's review budget takes its safe default at
    /// once, saying so; the first such item since the class was last under
    /// budget tells the receivers, once.
    pub(super) fn over_review_budget(
        &mut self,
        review_id: &str,
        decision: &crate::decide::Decision,
        (open, budget, first): (usize, usize, bool),
        now: DateTime<Utc>,
    ) {
        let class = &decision.class;
        let note = format!(
            "over review budget: {open} items of class {class} open, budget {budget}; takes its safe default"
        );
        let option = decision.safe_default.clone();
        let action = Action::SafeDefault { option };
        match self
            .reviews
            .act(review_id, &Actor::system(), action, &note, now)
        {
            Ok(settled) => self.apply_settled(settled, now),
            Err(e) => tracing::warn!(review = review_id, error = %e, "over budget, not settled"),
        }
        if first {
            let text = format!(
                "review budget of class {class} reached ({budget} open): new items take their safe default until people answer some"
            );
            self.notice(super::notices::Notice {
                event: "budget",
                text,
                reference: class.clone(),
                subject: class.clone(),
                time: now,
            });
        }
    }

    /// The advisor's proposal for an open item: one of the options its
    /// decision allows (the queue refuses any other), journaled in the
    /// audit chain with the item, and shown beside the model's proposal
    /// unless it is a shadow's. It never acts.
    pub fn advise(
        &mut self,
        review_id: &str,
        advice: crate::review::Advice,
    ) -> Result<ReviewItem, EngineError> {
        let item = self.reviews.advise(review_id, advice)?;
        let Some(advice) = &item.advice else {
            return Ok(item);
        };
        self.metrics.at(advice.time, |t| t.advised += 1);
        self.outbox
            .records
            .push(Record::Audit(crate::journal::AuditEntry {
                kind: "advice".into(),
                ref_id: item.id.clone(),
                decision_id: item.decision.id.clone(),
                time: advice.time,
                body: serde_json::json!({
                    "advice": advice,
                    "model_proposal": item.decision.proposal,
                }),
            }));
        self.outbox.reviews.insert(item.id.clone(), item.clone());
        self.emit(EngineEvent::ReviewAdvised(Box::new(item.clone())));
        Ok(item)
    }

    pub(super) fn apply_settled(&mut self, settled: Settled, now: DateTime<Utc>) {
        let Settled { item, record } = settled;
        self.notice_review(&item, &record);
        self.page_for_review(&item, &record, now);
        let decision = Arc::clone(&item.decision);
        let at = record.time;
        match &record.action {
            Action::Approve => self.metrics.at(at, |t| t.approvals += 1),
            Action::Override { .. } => self.metrics.at(at, |t| t.overrides += 1),
            Action::Reject => self.metrics.at(at, |t| t.rejections += 1),
            Action::SafeDefault { .. } => self.metrics.at(at, |t| t.safe_defaults += 1),
            Action::Escalate => self.metrics.at(at, |t| t.escalations += 1),
            Action::Snooze { .. } | Action::Claim => {}
        }
        let person_chose = match &record.action {
            Action::Approve => Some(decision.proposal.as_str()),
            Action::Override { option } => Some(option.as_str()),
            _ => None,
        };
        if let (Some(shadow), Some(option)) = (&decision.shadow, person_chose) {
            let agreed = u64::from(shadow.proposal == option);
            self.metrics.at(at, |t| {
                t.shadow_answered += 1;
                t.shadow_people_agreed += agreed;
            });
        }
        if let (Some(advised), Some(option)) = (&record.advised, person_chose) {
            let agreed = u64::from(advised == option);
            self.metrics.at(at, |t| {
                t.advised_answered += 1;
                t.advised_agreed += agreed;
            });
        }
        if let Some(option) = person_chose {
            self.ramp_answered(&decision, option != decision.proposal);
        }
        if let Some(option) = person_chose
            && self.decider.learning
        {
            let option = option.to_string();
            self.watch_answer(&decision, &option, now);
        }
        // An item its alert's resolution closed teaches only where the
        // playbook says a resolution is an answer.
        let resolved_at_source = record.actor.role == crate::decide::policy::Role::System
            && record.action == Action::Reject;
        let teaches = !resolved_at_source
            || self
                .decider
                .playbook
                .play(&decision.signal_type)
                .is_some_and(|p| p.resolution_teaches);
        if teaches {
            self.learn_from_answer(&decision, &record.action, now);
        }
        if let Some(option) = item.chosen().map(String::from) {
            let signal = Arc::clone(&item.signal);
            let playbook = Arc::clone(&self.decider.playbook);
            let choice = choice_for(&playbook, &signal.kind);
            let steps = self.assemble(&decision, &option, &signal, &choice, now);
            self.keep_page_reason(&item.flow_id, &decision, &option, &steps);
            self.flows.release(&item.flow_id, &option, steps, now);
            self.settled(&decision, &option, now);
        } else if record.action == Action::Reject {
            let reason = format!("rejected by {}: {}", record.actor.name, record.note);
            let outcome = match resolved_at_source {
                true => Outcome::ResolvedAtSource,
                false => Outcome::Withdrawn,
            };
            self.flows.cancel(&item.flow_id, &reason, outcome, now);
            self.count_outcome(outcome, now);
        }
        self.outbox
            .records
            .push(Record::ReviewAction(record.clone()));
        self.outbox.reviews.insert(item.id.clone(), item.clone());
        self.emit(EngineEvent::ReviewAction {
            item: Box::new(item),
            action: record,
        });
        self.drain_flow_changes();
    }

    pub fn open_reviews(&self) -> Vec<ReviewItem> {
        self.reviews.open_items()
    }

    /// One page of the open review items, in id order.
    pub fn reviews_page(&self, page: &crate::page::Page) -> crate::page::Paged<ReviewItem> {
        let paged = page.of(
            self.reviews.open_ids().map(|id| (id.as_str(), id.as_str())),
            |id| self.reviews.get(id),
        );
        crate::page::Paged {
            items: paged.items.into_iter().flatten().collect(),
            next: paged.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::{starter_with, warning};
    use chrono::Utc;

    /// Past its class's budget, a new item takes its safe default at once,
    /// saying so, and the receivers are told once, not per item.
    #[test]
    fn the_review_queue_stays_within_its_budget_with_one_notice() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut engine = starter_with(dir.path(), start, |r| {
            r.budget = [(
                "incident".to_string(),
                crate::review::budget::Budget::Fixed(2),
            )]
            .into();
        });
        for n in 0..5 {
            engine.ingest(warning(&format!("w{n}"), &format!("s{n}"), start), start);
        }
        assert_eq!(engine.reviews.open_count(), 2, "the budget holds");
        assert_eq!(
            engine.reviews.budgets(start),
            [("incident".to_string(), 2, 2)]
        );
        let notices = engine.take_notices();
        let budget: Vec<_> = notices.iter().filter(|n| n.event == "budget").collect();
        assert_eq!(
            budget.len(),
            1,
            "one notice for three items over: {notices:?}"
        );
        let settled = engine
            .flows
            .flows
            .values()
            .filter(|f| f.state != crate::flow::FlowState::WaitingHuman);
        assert_eq!(settled.count(), 3, "the others took their safe default");
    }

    /// An auto budget, before anyone has answered: one reviewer at two
    /// minutes an item within the incident class's 15-minute window.
    #[test]
    fn an_auto_budget_holds_what_one_reviewer_can_answer_in_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut engine = starter_with(dir.path(), start, |r| {
            r.budget = [("incident".to_string(), crate::review::budget::Budget::Auto)].into();
        });
        for n in 0..10 {
            engine.ingest(warning(&format!("w{n}"), &format!("s{n}"), start), start);
        }
        assert_eq!(engine.reviews.open_count(), 7, "15 min × 1 person ÷ 2 min");
        assert_eq!(
            engine.reviews.budgets(start),
            [("incident".to_string(), 7, 7)]
        );
    }
}
