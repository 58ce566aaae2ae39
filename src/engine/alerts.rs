//! Alerts: a firing alert's fingerprint names the flow it opened, so that
//! a repeat while it is open is recorded and no more, and its resolution
//! closes what it opened.

use chrono::{DateTime, Utc};

use super::Engine;
use crate::flow::route;
use crate::review::{Action, Actor};
use crate::signal::Signal;

impl Engine {
    /// The flow a firing alert of this fingerprint opened, if it is still
    /// running (or waiting for a person).
    pub(super) fn open_flow_of(&self, signal: &Signal) -> Option<String> {
        if signal.kind != "alert.firing" {
            return None;
        }
        let flow_id = self.alerts.opened_by.get(signal.data_str("fingerprint")?)?;
        let flow = self.flows.get(flow_id)?;
        (!flow.state.is_terminal()).then(|| flow_id.clone())
    }

    /// A resolved alert closes what its firing opened: the review item still
    /// waiting on it, or the flow still running for it.
    pub(super) fn close_resolved(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let Some(fingerprint) = signal.data_str("fingerprint") else {
            return;
        };
        self.alerts.inhibit.resolved(fingerprint);
        // Recovery puts back the alerts still open; one whose flow ended
        // has nothing left to close.
        let Some(flow_id) = self.alerts.opened_by.remove(fingerprint) else {
            return;
        };
        // An incident's flow goes on while any of its alerts fires.
        if !self.alert_resolved_in(&flow_id, fingerprint, now) {
            return;
        }
        // Its service is up again (with alerts grouped by subject, once the
        // last of them has resolved): the service its firing was about (a
        // resolution may not say, as PagerDuty's do not).
        let fired_on = self.flows.get(&flow_id).map(|f| f.subject.clone());
        let service = fired_on
            .as_deref()
            .and_then(|s| s.strip_prefix("service/"))
            .or_else(|| signal.data_str("service"))
            .map(String::from);
        if let Some(service) = service {
            self.context.alerts_cleared(&service);
        }
        let note = format!("alert resolved at the source ({})", signal.source);
        let who = format!("the source ({})", signal.source);
        self.close_flow(&flow_id, &who, &note, now);
        self.watch_for_reopening(fingerprint, &flow_id, now);
    }

    /// Closes what an alert (or an incident) opened, as `who` says it is
    /// over: its pages, the review item still waiting on it, or the flow
    /// still running for it.
    pub(super) fn close_flow(&mut self, flow_id: &str, who: &str, note: &str, now: DateTime<Utc>) {
        let flow_id = flow_id.to_string();
        self.resolve_flow_pages(&flow_id, who, now);
        let review = self.reviews.open_for_flow(&flow_id).map(|i| i.id.clone());
        if let Some(review_id) = review {
            if let Ok(settled) =
                self.reviews
                    .act(&review_id, &Actor::system(), Action::Reject, note, now)
            {
                self.apply_settled(settled, now);
            }
            return;
        }
        for assignee in self.flows.close(&flow_id, note, now) {
            route::release(&assignee, &mut self.context);
        }
        if let Some(outcome) = self.flows.outcome(&flow_id) {
            self.metrics.at(now, |t| t.flows_done += 1);
            self.count_outcome(outcome, now);
        }
        self.drain_flow_changes();
    }

    /// An alert acknowledged where it came from (a PagerDuty `acknowledge`):
    /// the pages its firing opened stop escalating.
    pub(super) fn acknowledged_at_source(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let Some(flow_id) = signal
            .data_str("fingerprint")
            .and_then(|f| self.alerts.opened_by.get(f))
            .cloned()
        else {
            return;
        };
        let who = format!("the source ({})", signal.source);
        for id in self.paging.book.open_for_flow(&flow_id) {
            if let Ok(page) = self.paging.book.acknowledge(&id, &who, now) {
                let page = Box::new(page.clone());
                self.emit(super::EngineEvent::Page(page));
            }
        }
        self.tick_pages(now);
    }

    /// Alerts whose flows have ended are no longer open.
    pub(super) fn forget_closed_alerts(&mut self) {
        let flows = &self.flows;
        self.alerts
            .opened_by
            .retain(|_, flow| flows.get(flow).is_some_and(|f| !f.state.is_terminal()));
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use crate::flow::outcome::Outcome;
    use crate::review::{Action, Actor};
    use crate::testkit::{alert, critical, starter};

    /// How the flow a signal started ended, if it has.
    fn outcome_of(engine: &crate::engine::Engine, signal: &str) -> Option<Outcome> {
        let flow = engine.flows.flows.values().find(|f| f.signal_id == signal);
        flow.and_then(|f| f.outcome)
    }

    /// Every flow ends with an outcome from what happened, with no
    /// `outcome.recorded` signal: an incident resolved in time and one
    /// resolved late are judged; a warning that resolved while it waited
    /// for a person, and one a person rejected, did no work to judge. The
    /// overview reads them.
    #[test]
    fn flows_end_with_outcomes_from_the_work_itself() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut engine = starter(dir.path(), start);
        let at = |m: i64| start + Duration::minutes(m);
        let critical = |id: &str, fp: &str, service: &str, m: i64| critical(id, fp, service, at(m));
        engine.ingest(critical("c1", "f1", "api", 0), at(0));
        engine.ingest(critical("c2", "f2", "db", 0), at(0));
        engine.ingest(alert("w1", "alert.firing", "f3", "web", at(0)), at(0));
        engine.ingest(alert("w2", "alert.firing", "f4", "mail", at(0)), at(0));
        // The critical alerts' paging steps start: their pages go out.
        engine.tick(at(0));
        engine.ingest(alert("r1", "alert.resolved", "f1", "api", at(10)), at(10));
        engine.ingest(alert("r3", "alert.resolved", "f3", "web", at(11)), at(11));
        let w2 = engine
            .reviews
            .open_items()
            .into_iter()
            .find(|i| i.signal.id == "w2")
            .expect("w2 waits for a person");
        let ann = Actor::new("ann", crate::decide::policy::Role::Operator);
        engine
            .act(&w2.id, &ann, Action::Reject, "noise", at(12))
            .unwrap();
        // The starter gives an incident an hour.
        engine.ingest(alert("r2", "alert.resolved", "f2", "db", at(70)), at(70));
        assert_eq!(outcome_of(&engine, "c1"), Some(Outcome::WithinSla));
        assert_eq!(outcome_of(&engine, "c2"), Some(Outcome::Late));
        assert_eq!(outcome_of(&engine, "w1"), Some(Outcome::ResolvedAtSource));
        assert_eq!(outcome_of(&engine, "w2"), Some(Outcome::Withdrawn));
        let summary = engine.metrics.total.summary();
        assert_eq!(summary.outcomes, 2, "two with a verdict");
        assert_eq!(summary.within_sla, Some(0.5));
        assert_eq!(summary.flows_done, 2);
        // The figures come back after a restart without a clean close.
        engine.flush().unwrap().wait().unwrap();
        // And `signalbox report` reads the same from the journal.
        let report = crate::journal::read::report::report(&dir.path().join("data"), None).unwrap();
        let incident: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| o.class == "incident")
            .collect();
        let by = |outcome: &str| -> u64 {
            incident
                .iter()
                .map(|o| o.by.get(outcome).copied().unwrap_or(0))
                .sum()
        };
        assert_eq!(
            (
                by("within_sla"),
                by("late"),
                by("resolved_at_source"),
                by("withdrawn")
            ),
            (1, 1, 1, 1),
            "{report:?}"
        );
        assert_eq!(
            report.answers.get("reject"),
            Some(&1),
            "ann's, not the system's"
        );
        let services: Vec<(&str, Option<f64>)> = report
            .paging_by_service
            .iter()
            .map(|p| (p.policy.as_str(), p.mttr_seconds))
            .collect();
        assert_eq!(
            services,
            [("api", Some(600.0)), ("db", Some(4200.0))],
            "each critical alert paged, resolved at the source"
        );
        assert_eq!(
            report.paging_by_team.first().map(|p| p.policy.as_str()),
            Some("sre")
        );
        let text = crate::journal::read::report::render(&report);
        assert!(text.contains("override rate 0.0 %"), "{text}");
        drop(engine);
        let engine = crate::testkit::open_starter(dir.path(), at(71), |_| {});
        let again = engine.metrics.total.summary();
        assert_eq!((again.signals, again.outcomes), (7, 2), "{again:?}");
    }

    /// With `reopen = "24h"` (the starter's), an alert that fires again 30 minutes after
    /// it resolved makes its flow's outcome `reopened` (no longer within
    /// SLA); one that fires again after a day leaves it good.
    #[test]
    fn an_alert_firing_again_soon_after_it_resolved_reopens_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut engine = crate::testkit::starter(dir.path(), start);
        let at = |m: i64| start + Duration::minutes(m);
        let critical = |id: &str, fp: &str, service: &str, m: i64| critical(id, fp, service, at(m));
        for (id, fp, service) in [("c1", "f1", "api"), ("c3", "f3", "db")] {
            engine.ingest(critical(id, fp, service, 0), at(0));
        }
        engine.tick(at(0));
        engine.ingest(alert("r1", "alert.resolved", "f1", "api", at(10)), at(10));
        engine.ingest(alert("r3", "alert.resolved", "f3", "db", at(10)), at(10));
        assert_eq!(outcome_of(&engine, "c1"), Some(Outcome::WithinSla));
        let before = engine.metrics.total.summary().within_sla;
        engine.ingest(critical("c2", "f1", "api", 40), at(40));
        assert_eq!(outcome_of(&engine, "c1"), Some(Outcome::Reopened));
        engine.ingest(critical("c4", "f3", "db", 25 * 60), at(25 * 60));
        assert_eq!(outcome_of(&engine, "c3"), Some(Outcome::WithinSla));
        let summary = engine.metrics.total.summary();
        assert!(summary.within_sla < before, "{before:?} then {summary:?}");
        assert_eq!(engine.metrics.total.reopened, 1);
        engine.flush().unwrap().wait().unwrap();
        let report = crate::journal::read::report::report(&dir.path().join("data"), None).unwrap();
        let reopened: u64 = report
            .outcomes
            .iter()
            .filter_map(|o| o.by.get("reopened"))
            .sum();
        assert_eq!(reopened, 1, "{:?}", report.outcomes);
    }
}
