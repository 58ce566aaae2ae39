//! People's tasks (`flow::task`) through the engine: listed, and acted on
//! with the actor's identity, each action in the audit chain.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Engine, EngineError};
use crate::flow::FlowEventKind;
use crate::flow::{Flow, Task, TaskAction, TaskFilter};
use crate::journal::{AuditEntry, Record};
use crate::review::Actor;
use crate::review::budget::Budget;

impl Engine {
    /// Tasks of the flows in memory, most urgent first.
    pub fn tasks(&self, filter: &TaskFilter) -> Vec<Task> {
        self.flows.tasks(filter)
    }

    /// One page of them, in id order.
    pub fn tasks_page(
        &self,
        filter: &TaskFilter,
        page: &crate::page::Page,
    ) -> crate::page::Paged<Task> {
        self.flows.tasks_page(filter, page)
    }

    /// One page of the flows in memory, in id order.
    pub fn flows_page(
        &self,
        filter: crate::flow::FlowFilter,
        page: &crate::page::Page,
    ) -> crate::page::Paged<Flow> {
        self.flows.flows_page(filter, page)
    }

    /// A flow in memory (active, or among the latest finished).
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id)
    }

    /// A person completes, fails or hands on an open task; journaled with
    /// who and the note. Completing or failing moves the flow at once
    /// (the next step starts, or compensation).
    pub fn act_on_task(
        &mut self,
        id: &str,
        action: &TaskAction,
        actor: &Actor,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Task, EngineError> {
        let task = self
            .flows
            .act_on_task(id, action, &actor.name, note, &mut self.context, now)?;
        let to = match action {
            TaskAction::Reassign { team, agent } => json!({"team": team, "agent": agent}),
            _ => serde_json::Value::Null,
        };
        self.outbox.records.push(Record::Audit(AuditEntry {
            kind: "task".into(),
            ref_id: task.id.clone(),
            decision_id: task.decision.clone(),
            time: now,
            body: json!({
                "task": task.id, "flow": task.flow, "step": task.step, "template": task.template,
                "action": action.as_str(), "actor": actor.name, "role": actor.role.as_str(),
                "note": note, "to": to,
            }),
        }));
        self.tick(now);
        Ok(self.flows.task(id).unwrap_or(task))
    }
}

/// Each team's bound of open tasks (`[tasks] bound`), and the teams over
/// it since they were last under (told once).
#[derive(Debug, Default)]
pub(super) struct TaskBounds {
    bound: std::collections::BTreeMap<String, Budget>,
    over: std::collections::BTreeSet<String>,
}

impl TaskBounds {
    pub fn new(bound: std::collections::BTreeMap<String, Budget>) -> TaskBounds {
        TaskBounds {
            bound,
            over: Default::default(),
        }
    }

    /// The bound of `team` whose capacity is `capacity` (none: unbounded).
    fn of(&self, team: &str, capacity: u32) -> Option<usize> {
        match self.bound.get(team).or_else(|| self.bound.get("default"))? {
            Budget::Fixed(n) => Some(*n),
            Budget::Auto => Some(capacity as usize),
        }
    }
}

impl Engine {
    /// Steps started for people: where a team now holds more open tasks
    /// than its bound, the flows of the tasks it took on past the bound
    /// (the last ones started) are escalated (priority raised, saying
    /// why), and the `budget` receivers are told once until the team is
    /// back under.
    pub(super) fn bound_tasks(&mut self, events: &[crate::flow::FlowEvent]) {
        if self.task_bounds.bound.is_empty() {
            return;
        }
        let mut started: std::collections::BTreeMap<String, Vec<&crate::flow::FlowEvent>> =
            Default::default();
        for event in events
            .iter()
            .filter(|e| e.kind == FlowEventKind::StepStarted)
        {
            let team = self
                .flows
                .get(&event.flow_id)
                .and_then(|f| f.steps.get(event.step?))
                .and_then(|s| s.assignee.as_ref()?.team().map(String::from));
            if let Some(team) = team {
                started.entry(team).or_default().push(event);
            }
        }
        let teams: Vec<String> = self.task_bounds.over.iter().cloned().collect();
        for team in teams.iter().filter(|t| !started.contains_key(*t)) {
            // Back under since: told again next time.
            if self
                .team_open(team)
                .is_some_and(|(open, bound)| open <= bound)
            {
                self.task_bounds.over.remove(team);
            }
        }
        for (team, events) in started {
            let Some((open, bound)) = self.team_open(&team) else {
                continue;
            };
            if open <= bound {
                self.task_bounds.over.remove(&team);
                continue;
            }
            let detail = format!(
                "team {team} holds {open} open tasks, over its bound of {bound}: escalated"
            );
            let past = (open - bound).min(events.len());
            for event in &events[events.len() - past..] {
                let at = event.time;
                self.flows
                    .escalate(&event.flow_id, event.step, detail.clone(), at);
            }
            if self.task_bounds.over.insert(team.clone()) {
                let time = events.last().map_or_else(Utc::now, |e| e.time);
                self.notice(super::notices::Notice {
                    event: "budget",
                    text: format!(
                        "{detail}; new tasks of {team} are escalated until it is back under"
                    ),
                    reference: team.clone(),
                    subject: format!("team/{team}"),
                    time,
                });
            }
        }
    }

    /// A team's open tasks and its bound, if it has one.
    fn team_open(&self, team: &str) -> Option<(usize, usize)> {
        let t = self.context.teams.get(team)?;
        let bound = self.task_bounds.of(team, t.capacity)?;
        Some((t.load as usize, bound))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use crate::review::budget::Budget;
    use crate::signal::Signal;
    use crate::testkit::open_starter_server;

    fn expiring(n: usize, at: chrono::DateTime<Utc>) -> Signal {
        let event = json!({
            "specversion": "1.0", "id": format!("c{n}"), "source": "scanner",
            "type": "certificate.expiring", "subject": format!("host/h{n}"),
            "data": {"host": format!("h{n}.example.com"), "days_left": 3},
        });
        Signal::from_value(event, at).unwrap_or_default()
    }

    /// Past its bound, a team's new tasks escalate their flows, and the
    /// budget receivers hear it once.
    #[test]
    fn tasks_over_a_teams_bound_escalate_with_one_notice() {
        let dir = tempfile::tempdir().unwrap();
        crate::testkit::init_model_on(&dir.path().join("ops"));
        let start = Utc::now();
        let mut engine = open_starter_server(dir.path(), start, |s| {
            s.tasks = Some(crate::config::TasksConfig {
                bound: [("sre".to_string(), Budget::Fixed(2))].into(),
            });
        });
        // A fresh model asks people; an operator approves each.
        let ann = crate::review::Actor::new("ann", crate::decide::policy::Role::Operator);
        for n in 0..5 {
            engine.ingest(expiring(n, start), start);
            let id = format!("R{:07}", n + 1);
            let approve = crate::review::Action::Approve;
            engine.act(&id, &ann, approve, "renew it", start).unwrap();
        }
        engine.tick(start);
        let sre = engine.tasks(&crate::flow::TaskFilter::default());
        let sre: Vec<_> = sre.iter().filter(|t| t.team == "sre").collect();
        assert_eq!(sre.len(), 5, "every certificate is someone's task: {sre:?}");
        let escalated = sre.iter().filter(|t| t.escalated).count();
        assert_eq!(escalated, 3, "the third to the fifth");
        let notices = engine.take_notices();
        let budget: Vec<_> = notices.iter().filter(|n| n.event == "budget").collect();
        assert_eq!(budget.len(), 1, "{notices:?}");
        assert!(
            budget[0]
                .text
                .contains("team sre holds 5 open tasks, over its bound of 2"),
            "{}",
            budget[0].text
        );
    }

    /// A ticket type whose signals carry the time they are promised by
    /// (`due = "promised_by"`): its flow is judged against that time, not
    /// the 4-hour SLA; a promise that does not read as a time is said in
    /// the decision and the SLA stands.
    #[test]
    fn work_promised_by_a_time_the_signal_carries_is_judged_against_it() {
        use crate::flow::outcome::Outcome;
        let dir = tempfile::tempdir().unwrap();
        // A Monday morning in Berlin: support is on shift.
        let start = chrono::DateTime::parse_from_rfc3339("2026-12-07T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut engine = crate::testkit::starter_playbook(dir.path(), start, |text| {
            let fields =
                "fields = { ticket = \"string\", summary = \"string?\", severity = \"string?\" }";
            assert!(text.contains(fields), "the starter's ticket fields");
            text.replace(
                fields,
                "fields = { ticket = \"string\", summary = \"string?\", severity = \"string?\", promised_by = \"string?\" }\ndue = \"promised_by\"",
            )
        });
        let ticket = |id: &str, promised: String| {
            let event = json!({
                "specversion": "1.0", "id": id, "source": "desk", "type": "ticket.opened",
                "subject": format!("ticket/{id}"), "data": {"ticket": id, "promised_by": promised},
            });
            Signal::from_value(event, start).unwrap()
        };
        let at = |m: i64| start + chrono::Duration::minutes(m);
        engine.ingest(ticket("soon", at(20).to_rfc3339()), start);
        engine.ingest(ticket("later", at(120).to_rfc3339()), start);
        engine.ingest(ticket("garbled", "next tuesday".into()), start);
        engine.tick(start);
        let ann = crate::review::Actor::new("ann", crate::decide::policy::Role::Operator);
        // Each ticket acknowledged, then resolved, half an hour in.
        for _ in 0..2 {
            for task in engine.tasks(&crate::flow::TaskFilter::default()) {
                let done = crate::flow::TaskAction::Complete;
                engine
                    .act_on_task(&task.id, &done, &ann, "done", at(30))
                    .unwrap();
            }
        }
        let flow_of = |id: &str| {
            let f = engine.flows.flows.values().find(|f| f.signal_id == id);
            f.map(|f| (f.deadline, f.outcome)).unwrap()
        };
        assert_eq!(flow_of("soon"), (at(20), Some(Outcome::Late)));
        assert_eq!(flow_of("later"), (at(120), Some(Outcome::WithinSla)));
        assert_eq!(flow_of("garbled"), (at(240), Some(Outcome::WithinSla)));
        engine.flush().unwrap().wait().unwrap();
        let data = dir.path().join("data");
        let past = crate::journal::read::history(&data, 3, None).unwrap();
        // A page before a decision, oldest first; before an unknown one, none.
        let before = crate::journal::read::history(&data, 5, Some("D0000003")).unwrap();
        let ids: Vec<&str> = before.iter().map(|(_, d)| d.id.as_str()).collect();
        assert_eq!(ids, ["D0000001", "D0000002"]);
        assert!(
            crate::journal::read::history(&data, 5, Some("D9"))
                .unwrap()
                .is_empty()
        );
        let garbled = past.iter().find(|(_, d)| d.signal_id == "garbled").unwrap();
        assert!(
            garbled
                .1
                .policy_errors
                .iter()
                .any(|e| e.contains("data.promised_by")),
            "{:?}",
            garbled.1.policy_errors
        );
    }
}
