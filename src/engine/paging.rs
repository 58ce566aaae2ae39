//! Pages wired into the engine: a step whose template names an escalation
//! policy pages it when the step starts; the page ends with the step's
//! flow. The timers escalate; what is due goes out after the turn's commit
//! (`take_sends`, delivered by `intake::pager`, whose answers come back
//! through `page_delivered`); people acknowledge and resolve. Every change
//! of a page is journaled whole at the next flush.

use chrono::{DateTime, Utc};

use super::{Engine, EngineEvent};
use crate::flow::{FlowEvent, FlowEventKind};
use crate::journal::Record;
use crate::paging::pages::{Opening, PageRefused, Send};
use crate::paging::{Delivery, Method, OnCall, Override, Page, PageBook, PageState, Urgency};
use crate::review::Actor;

/// The engine's pages, and the notifications due to go out.
#[derive(Default)]
pub(super) struct Paging {
    pub book: PageBook,
    sends: Vec<Send>,
    next_override: u64,
    /// Paged when an unanswered review item escalates.
    pub review_policy: Option<String>,
    /// Why each flow with a paging step was chosen (the decision's reason
    /// and the rules that fired), from its assembly until its page opens.
    reasons: std::collections::HashMap<String, String>,
}

/// A decision's reason and the rules that fired, as a page says them.
fn reason_of(d: &crate::decide::Decision, option: &str) -> String {
    let mut why = match option == d.proposal {
        true => format!(
            "decision {} chose `{option}` for {} ({}): {}",
            d.id, d.signal_id, d.class, d.why
        ),
        false => format!(
            "decision {} proposed `{}` for {} ({}), a person chose `{option}`: {}",
            d.id, d.proposal, d.signal_id, d.class, d.why
        ),
    };
    for hit in &d.policy_hits {
        why.push_str(&format!("; rule {}: {}", hit.rule, hit.reason));
    }
    why
}

/// Pages by state, each team's mean seconds to acknowledge, and how each
/// channel has been delivering (over the pages in memory).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageFigures {
    pub by_state: Vec<(String, u64)>,
    pub acknowledge_seconds: Vec<(String, f64)>,
    #[serde(default)]
    pub channels: Vec<ChannelRow>,
}

/// A channel's attempts: delivered, failed, in flight, and the last
/// failure (when, and the channel's answer).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelRow {
    pub method: String,
    pub delivered: u64,
    pub failed: u64,
    pub sending: u64,
    /// Whether its last attempt failed: the channel is down, as far as
    /// signalbox can tell.
    pub failing: bool,
    pub last_failure: Option<(DateTime<Utc>, String)>,
}

/// Acknowledge or resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAction {
    Acknowledge,
    Resolve,
}

impl PageAction {
    pub fn parse(text: &str) -> Option<PageAction> {
        match text {
            "ack" | "acknowledge" => Some(PageAction::Acknowledge),
            "resolve" => Some(PageAction::Resolve),
            _ => None,
        }
    }
}

/// Why an override was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideRefused {
    #[error("schedule `{0}` is not in the deployment")]
    NoSchedule(String),
    #[error("`{0}` is not a person of the deployment")]
    NoPerson(String),
    #[error("an override must end after it starts")]
    Empty,
    #[error("{0} may not set overrides: it takes a lead")]
    NotLead(String),
}

impl Engine {
    /// A flow was assembled for `decision`: if one of its steps pages,
    /// the decision's reasons are kept for the page's message.
    pub(super) fn keep_page_reason(
        &mut self,
        flow_id: &str,
        decision: &crate::decide::Decision,
        option: &str,
        steps: &[crate::flow::Step],
    ) {
        let templates = &self.decider.steps;
        let pages = steps
            .iter()
            .any(|s| templates.get(&s.template).is_some_and(|t| t.page.is_some()));
        if pages {
            self.paging
                .reasons
                .insert(flow_id.to_string(), reason_of(decision, option));
        }
    }

    /// A step started: if its template pages a policy, the page opens.
    pub(super) fn page_for_step(&mut self, event: &FlowEvent) {
        if event.kind != FlowEventKind::StepStarted {
            return;
        }
        let Some(flow) = self.flows.get(&event.flow_id) else {
            return;
        };
        let Some(step) = event.step.and_then(|i| flow.steps.get(i)) else {
            return;
        };
        let Some(policy) = self
            .decider
            .steps
            .get(&step.template)
            .and_then(|t| t.page.clone())
        else {
            return;
        };
        let urgency = match flow.priority {
            crate::decide::policy::Priority::Low => Urgency::Low,
            _ => Urgency::High,
        };
        // An incident's page waits its group's wait for more alerts.
        let incident = self.alerts.incidents.of_flow(&flow.id);
        let hold = incident
            .and_then(|i| self.decider.playbook.play(&i.kind))
            .and_then(|p| p.group.as_ref())
            .map_or_else(chrono::Duration::zero, |g| g.wait());
        let incident = incident.map(|i| (i.id.clone(), i.alerts));
        let opening = Opening {
            policy,
            urgency,
            title: format!(
                "{} on {}: {}",
                flow.signal_type, flow.subject, step.template
            ),
            why: self.paging.reasons.remove(&flow.id).unwrap_or_else(|| {
                format!(
                    "decision {} chose `{}` for {} ({})",
                    flow.decision_id, flow.option, flow.signal_id, flow.class
                )
            }),
            subject: flow.subject.clone(),
            decision_id: Some(flow.decision_id.clone()),
            flow_id: Some(flow.id.clone()),
            review_id: None,
            signal_id: Some(flow.signal_id.clone()),
            incident,
            hold,
        };
        match self
            .paging
            .book
            .open(opening, &self.context.roster, event.time)
        {
            Ok(id) => tracing::info!(page = %id, flow = %event.flow_id, "paged"),
            Err(e) => tracing::warn!(flow = %event.flow_id, error = %e, "cannot page"),
        }
        self.tick_pages(event.time);
    }

    /// A review item settled: an unanswered one escalating (its window
    /// running out) pages `[review] page`; an answered one resolves the
    /// pages it started.
    pub(super) fn page_for_review(
        &mut self,
        item: &crate::review::ReviewItem,
        record: &crate::review::ReviewAction,
        now: DateTime<Utc>,
    ) {
        use crate::review::Action;
        if record.action.is_final() {
            let open: Vec<String> = self
                .paging
                .book
                .pages
                .values()
                .filter(|p| p.state != PageState::Resolved)
                .filter(|p| p.review_id.as_deref() == Some(item.id.as_str()))
                .map(|p| p.id.clone())
                .collect();
            for id in open {
                let _ = self.paging.book.resolve(&id, &record.actor.name, now);
            }
            self.tick_pages(now);
            return;
        }
        let unanswered = record.action == Action::Escalate
            && record.actor.role == crate::decide::policy::Role::System;
        let Some(policy) = self.paging.review_policy.clone().filter(|_| unanswered) else {
            return;
        };
        let d = &item.decision;
        let opening = Opening {
            policy,
            urgency: Urgency::High,
            title: format!(
                "review {} unanswered: {} on {} ({}m left)",
                item.id,
                d.signal_type,
                d.subject,
                (item.deadline - now).num_minutes().max(0)
            ),
            why: format!(
                "decision {} proposes `{}` at confidence {:.2}, below its threshold {:.2}, and nobody has answered; at the deadline the safe default `{}` is taken",
                d.id, d.proposal, d.confidence, d.threshold, d.safe_default
            ),
            subject: d.subject.clone(),
            decision_id: Some(d.id.clone()),
            flow_id: None,
            review_id: Some(item.id.clone()),
            signal_id: Some(d.signal_id.clone()),
            incident: None,
            hold: chrono::Duration::zero(),
        };
        match self.paging.book.open(opening, &self.context.roster, now) {
            Ok(id) => {
                tracing::info!(page = %id, review = %item.id, "paged for an unanswered review")
            }
            Err(e) => tracing::warn!(review = %item.id, error = %e, "cannot page"),
        }
        self.tick_pages(now);
    }

    /// Escalations and notifications due by `now`.
    pub(super) fn tick_pages(&mut self, now: DateTime<Utc>) {
        // Pages about incidents say how many alerts they have gathered.
        for page in self.paging.book.pages.values_mut() {
            if page.state == PageState::Resolved {
                continue;
            }
            if let Some((id, alerts)) = &mut page.incident
                && let Some(i) = self.alerts.incidents.incidents.get(id.as_str())
            {
                *alerts = i.alerts;
            }
        }
        let sends = self.paging.book.tick(&self.context.roster, now);
        self.paging.sends.extend(sends);
    }

    /// A flow ended (or its alert was resolved at the source): its pages
    /// are resolved, by `who`.
    pub(super) fn resolve_flow_pages(&mut self, flow_id: &str, who: &str, now: DateTime<Utc>) {
        self.paging.reasons.remove(flow_id);
        for id in self.paging.book.open_for_flow(flow_id) {
            let _ = self.paging.book.resolve(&id, who, now);
        }
        // PagerDuty is told.
        self.tick_pages(now);
    }

    /// A person acknowledges or resolves a page (identity from their
    /// credential).
    pub fn page_act(
        &mut self,
        id: &str,
        action: PageAction,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Page, PageRefused> {
        let page = match action {
            PageAction::Acknowledge => self.paging.book.acknowledge(id, &actor.name, now)?,
            PageAction::Resolve => self.paging.book.resolve(id, &actor.name, now)?,
        }
        .clone();
        self.emit(EngineEvent::Page(Box::new(page.clone())));
        // PagerDuty is told.
        self.tick_pages(now);
        Ok(page)
    }

    /// What became of a notification.
    pub fn page_delivered(
        &mut self,
        id: &str,
        attempt: u32,
        result: Result<String, String>,
        now: DateTime<Utc>,
    ) {
        self.paging.book.delivered(id, attempt, result, now);
        // A failure may bring a person's next method forward at once.
        self.tick_pages(now);
    }

    /// Notifications due to go out once this turn is durable.
    pub fn take_sends(&mut self) -> Vec<Send> {
        std::mem::take(&mut self.paging.sends)
    }

    /// Pages, newest first: the open ones, and those that ended while in
    /// memory.
    pub fn pages(&self, open_only: bool) -> Vec<Page> {
        self.paging
            .book
            .pages
            .values()
            .rev()
            .filter(|p| !open_only || p.state != PageState::Resolved)
            .cloned()
            .collect()
    }

    /// At most `n` pages: the open ones, newest first, then those that
    /// ended, newest first.
    pub fn pages_shown(&self, n: usize) -> Vec<Page> {
        let mut pages: Vec<&Page> = self.paging.book.pages.values().rev().collect();
        pages.sort_by_key(|p| p.state == PageState::Resolved);
        pages.into_iter().take(n).cloned().collect()
    }

    /// Pages in memory by state, and each team's mean time from a page's
    /// opening to its acknowledgement (over those acknowledged), for
    /// `/metrics`. A page's team is the one whose policy it pages (else
    /// the policy's id).
    pub fn page_figures(&self) -> PageFigures {
        let roster = &self.context.roster;
        let team_of = |policy: &str| {
            roster
                .team_policies
                .iter()
                .find(|(_, p)| p.as_str() == policy)
                .map_or(policy.to_string(), |(t, _)| t.clone())
        };
        let mut by_state: std::collections::BTreeMap<String, u64> = Default::default();
        let mut acked: std::collections::BTreeMap<String, (f64, u32)> = Default::default();
        let mut channels: std::collections::BTreeMap<Method, (ChannelRow, DateTime<Utc>)> =
            Default::default();
        for page in self.paging.book.pages.values() {
            for a in &page.attempts {
                let (row, last) = channels.entry(a.method).or_insert_with(|| {
                    let row = ChannelRow {
                        method: a.method.as_str().to_string(),
                        ..ChannelRow::default()
                    };
                    (row, a.at)
                });
                match &a.delivery {
                    Delivery::Delivered(_) => row.delivered += 1,
                    Delivery::Sending => row.sending += 1,
                    Delivery::Failed(why) => {
                        row.failed += 1;
                        if row.last_failure.as_ref().is_none_or(|(t, _)| *t <= a.at) {
                            row.last_failure = Some((a.at, why.clone()));
                        }
                    }
                }
                if a.at >= *last && !matches!(a.delivery, Delivery::Sending) {
                    *last = a.at;
                    row.failing = matches!(a.delivery, Delivery::Failed(_));
                }
            }
            *by_state.entry(page.state.as_str().to_string()).or_default() += 1;
            if let Some((_, at)) = &page.acknowledged {
                let took = (*at - page.opened).num_milliseconds() as f64 / 1000.0;
                let entry = acked.entry(team_of(&page.policy)).or_default();
                entry.0 += took;
                entry.1 += 1;
            }
        }
        PageFigures {
            by_state: by_state.into_iter().collect(),
            acknowledge_seconds: acked
                .into_iter()
                .map(|(team, (sum, n))| (team, sum / f64::from(n.max(1))))
                .collect(),
            channels: channels.into_values().map(|(row, _)| row).collect(),
        }
    }

    /// One page in memory.
    pub fn page(&self, id: &str) -> Option<Page> {
        self.paging.book.pages.get(id).cloned()
    }

    /// Each schedule now and next, for the On-call view.
    pub fn rota(&self, at: DateTime<Utc>) -> Vec<crate::paging::Rota> {
        self.context.roster.rota(at, None)
    }

    /// Who is on call at `at` (of `team`).
    pub fn on_call(&self, at: DateTime<Utc>, team: Option<&str>) -> Vec<OnCall> {
        self.context.roster.on_call(at, team)
    }

    /// A lead puts `person` on call on `schedule` from `from` to `to`; the
    /// override is journaled with the roster and outlives reloads.
    pub fn set_override(
        &mut self,
        schedule: &str,
        person: &str,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Override, OverrideRefused> {
        if actor.role < crate::decide::policy::Role::Lead {
            return Err(OverrideRefused::NotLead(actor.name.clone()));
        }
        let roster = &self.context.roster;
        if !roster.schedules.contains_key(schedule) {
            return Err(OverrideRefused::NoSchedule(schedule.to_string()));
        }
        if !roster.people.contains_key(person) {
            return Err(OverrideRefused::NoPerson(person.to_string()));
        }
        if to <= from {
            return Err(OverrideRefused::Empty);
        }
        self.paging.next_override =
            self.paging.next_override.max(roster.overrides.len() as u64) + 1;
        let o = Override {
            id: format!("O{:05}", self.paging.next_override),
            schedule: schedule.to_string(),
            person: person.to_string(),
            from,
            to,
            by: actor.name.clone(),
            at: now,
        };
        self.context.roster.overrides.push(o.clone());
        self.context
            .mark_dirty(crate::context::ROSTER_KEY.to_string());
        Ok(o)
    }

    /// Pages changed since the last flush, for the journal.
    pub(super) fn page_records(&mut self) -> Vec<Record> {
        self.paging
            .book
            .take_changed()
            .into_iter()
            .map(|p| Record::Page(Box::new(p)))
            .collect()
    }

    /// Open pages as journaled, after a restart: each resumes at its level
    /// and time.
    pub(super) fn restore_pages(&mut self, pages: Vec<Page>) {
        for page in pages {
            self.paging.book.restore(page);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::Action;
    use crate::testkit::{starter, warning};
    use chrono::Duration;
    use serde_json::json;

    /// A warning alert waiting in review resolves at the source: the item
    /// is closed, and the model learns nothing from it (an alert that went
    /// away says nothing of whether its proposal was right).
    #[test]
    fn an_alert_that_resolves_by_itself_teaches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut engine = starter(dir.path(), start);
        let signal = |kind: &str, id: &str| {
            let alert = json!({
                "specversion": "1.0", "id": id, "source": "test", "type": kind,
                "subject": "service/api", "severity": "warning",
                "data": {"service": "api", "fingerprint": "f-1"},
            });
            crate::signal::Signal::from_value(alert, start).unwrap()
        };
        engine.ingest(signal("alert.firing", "w1"), start);
        assert_eq!(engine.reviews.open_count(), 1);
        engine.ingest(signal("alert.resolved", "r1"), start + Duration::minutes(1));
        assert_eq!(engine.reviews.open_count(), 0, "closed by its resolution");
        engine.flush().unwrap().wait().unwrap();
        engine.close().unwrap();
        let counts = crate::journal::read::counts(&dir.path().join("data")).unwrap();
        assert_eq!(counts.review_actions, 1);
        assert_eq!(counts.feedback, 0, "no label from a resolution");
    }

    /// The new user's scenario: one warning rejected by a person and three
    /// that resolved at the source before anyone answered. Only the
    /// person's answer is a label, and a critical alert that follows is
    /// still proposed for paging.
    #[test]
    fn three_auto_resolved_warnings_do_not_move_a_critical_alert_off_paging() {
        use crate::testkit::alert;
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut engine = starter(dir.path(), start);
        let at = |m: i64| start + Duration::minutes(m);
        engine.ingest(alert("w0", "alert.firing", "f0", "a", at(0)), at(0));
        let item = engine.reviews.open_items().pop().expect("a review item");
        let ann = crate::review::Actor::new("ann", crate::decide::policy::Role::Operator);
        engine
            .act(&item.id, &ann, Action::Reject, "not worth it", at(1))
            .unwrap();
        for (n, service) in ["b", "c", "d"].iter().enumerate() {
            let fp = format!("f{}", n + 1);
            let fired = alert(&format!("w{}", n + 1), "alert.firing", &fp, service, at(2));
            engine.ingest(fired, at(2));
            let resolved = alert(
                &format!("r{}", n + 1),
                "alert.resolved",
                &fp,
                service,
                at(3),
            );
            engine.ingest(resolved, at(3));
        }
        assert_eq!(engine.reviews.open_count(), 0, "all closed");
        assert_eq!(
            engine.learning.feedback, 1,
            "only the person's reject taught"
        );
        let critical = crate::testkit::critical("c1", "f9", "e", at(4));
        let crate::engine::Ingested::Decided { decision_id, .. } = engine.ingest(critical, at(4))
        else {
            panic!("decided");
        };
        engine.flush().unwrap().wait().unwrap();
        let decision = crate::journal::read::decision(&dir.path().join("data"), &decision_id)
            .unwrap()
            .expect("journaled");
        assert_eq!(decision.proposal, "page_oncall", "{}", decision.why);
    }

    /// A warning alert goes to review; unanswered, its escalation (60 % of
    /// the window) pages `[review] page` about the item; approving the
    /// item resolves that page.
    #[test]
    fn an_unanswered_review_pages_and_its_answer_resolves_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut engine = starter(dir.path(), start);
        engine.ingest(warning("w1", "api", start), start);
        let item = engine.reviews.open_items().pop().expect("a review item");
        assert!(engine.pages(true).is_empty(), "nobody paged yet");

        let escalates = item.escalate_at + Duration::seconds(1);
        engine.tick(escalates);
        let pages = engine.pages(true);
        assert_eq!(pages.len(), 1, "{pages:?}");
        let page = &pages[0];
        assert_eq!(page.review_id.as_deref(), Some(item.id.as_str()));
        assert_eq!(page.policy, "sre");
        assert!(page.title.contains("unanswered"), "{}", page.title);
        assert!(
            engine.take_sends().iter().any(|s| s.page_id == page.id),
            "its first level is notified"
        );

        let lead = crate::review::Actor::new("lena", crate::decide::policy::Role::Lead);
        engine
            .act(&item.id, &lead, Action::Approve, "fine", escalates)
            .unwrap();
        let after = engine.page(&page.id).unwrap();
        assert_eq!(after.state, PageState::Resolved);
        assert_eq!(after.resolved.map(|(who, _)| who).as_deref(), Some("lena"));
    }
}
