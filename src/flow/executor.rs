//! The seam between a flow and whoever carries out its steps. A step is
//! routed first (`route`): to a team, a person or an automation. Then an
//! `Executor` says what becomes of it, or a webhook executor is sent the
//! step and its answer comes back through `FlowBook::complete_step`.
//!
//! Nothing here draws a random outcome: the simulator's executor lives in
//! `sim::executor`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::route::Assignee;
use super::types::Flow;
use crate::context::Context;
use crate::playbook::steps::StepTemplate;

/// A step about to start, routed.
pub struct StepStart<'a> {
    pub flow: &'a Flow,
    /// Its index in `flow.steps` (whose `attempts` already counts this one).
    pub step: usize,
    pub template: &'a StepTemplate,
    pub assignee: &'a Assignee,
    pub now: DateTime<Utc>,
}

/// What an executor says of a step it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    /// It ends at `due`, having worked or not: known when it starts, so a
    /// restart replays the same result.
    Ends { due: DateTime<Utc>, success: bool },
    /// Nothing is known until the executor answers (`complete_step`).
    Awaits,
}

/// Who carries out steps that are not sent to a webhook.
pub trait Executor: Send {
    /// Its name, for logs and `Debug`.
    fn name(&self) -> &str;

    /// A routed step starts now. `context` is as it was routed (the
    /// assignee's load not yet taken).
    fn start(&mut self, step: &StepStart<'_>, context: &Context) -> Plan;
}

impl std::fmt::Debug for dyn Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Executor({})", self.name())
    }
}

/// No executor: every step waits for an answer that only
/// `complete_step` can give.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unstaffed;

impl Executor for Unstaffed {
    fn name(&self) -> &str {
        "unstaffed"
    }

    fn start(&mut self, _: &StepStart<'_>, _: &Context) -> Plan {
        Plan::Awaits
    }
}

/// A step to POST to a webhook executor. The idempotency key names the
/// flow, step and attempt, so a resend after a restart is harmless.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dispatch {
    pub flow_id: String,
    pub step: usize,
    pub attempt: u32,
    pub executor: String,
    pub url: String,
    pub idempotency_key: String,
    pub body: serde_json::Value,
}

/// Executors that are HTTP endpoints (executor name → URL), and the steps
/// waiting to be sent to them.
#[derive(Debug, Default)]
pub struct Webhooks {
    urls: BTreeMap<String, String>,
    queue: Vec<Dispatch>,
}

impl Webhooks {
    pub fn new(urls: BTreeMap<String, String>) -> Webhooks {
        Webhooks {
            urls,
            queue: Vec::new(),
        }
    }

    /// The same queue, with other URLs.
    pub(crate) fn with_queue(urls: BTreeMap<String, String>, queue: Vec<Dispatch>) -> Webhooks {
        Webhooks { urls, queue }
    }

    /// Whether `executor` is a webhook.
    pub fn takes(&self, executor: &str) -> bool {
        self.urls.contains_key(executor)
    }

    /// Queues step `i` of `flow` for its executor's URL (nothing when the
    /// executor is not a webhook).
    pub fn dispatch(&mut self, flow: &Flow, i: usize, executor: &str) {
        let (Some(url), Some(step)) = (self.urls.get(executor), flow.steps.get(i)) else {
            return;
        };
        self.queue.push(Dispatch {
            flow_id: flow.id.clone(),
            step: i,
            attempt: step.attempts,
            executor: executor.to_string(),
            url: url.clone(),
            idempotency_key: format!("{}:{}:{}", flow.id, i, step.attempts),
            body: serde_json::json!({
                "flow": flow.id, "decision": flow.decision_id, "step": i, "template": step.template,
                "process": step.process, "subject": step.subject, "attempt": step.attempts,
                "signal": flow.signal_id, "option": flow.option, "fields": step.carries,
            }),
        });
    }

    /// The steps queued since the last call.
    pub fn take(&mut self) -> Vec<Dispatch> {
        std::mem::take(&mut self.queue)
    }
}
