//! People's tasks (`flow::task`) through the engine: listed, and acted on
//! with the actor's identity, each action in the audit chain.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Engine, EngineError};
use crate::flow::{Flow, Task, TaskAction, TaskFilter};
use crate::journal::{AuditEntry, Record};
use crate::review::Actor;

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
