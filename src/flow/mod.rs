//! Flows: the work a decision sets in motion, across processes.
//!
//! The flow state machine lives here and only here; the decision layer never
//! touches it. A flow is a small DAG of steps (each step may wait on others),
//! assembled at run time from step templates. `FlowBook` holds every flow and
//! advances them on `tick`, given the time, the context (for routing) and the
//! executors.

pub mod assemble;

pub mod route;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::decide::policy::Priority;
use crate::playbook::steps::StepCatalogue;
use crate::timers::Timers;
use route::{Assignee, Breakers, Router};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    #[default]
    Pending,
    Running,
    WaitingHuman,
    Done,
    Failed,
    Compensated,
}

impl FlowState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            FlowState::Done | FlowState::Failed | FlowState::Compensated
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Pending => "pending",
            FlowState::Running => "running",
            FlowState::WaitingHuman => "waiting_human",
            FlowState::Done => "done",
            FlowState::Failed => "failed",
            FlowState::Compensated => "compensated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

/// One unit of work in a flow.
#[derive(Debug, Clone, PartialEq, Hash, Serialize, Deserialize)]
pub struct Step {
    pub template: String,
    pub process: String,
    pub subject: String,
    /// Indices of steps that must be done first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<usize>,
    pub state: StepState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Assignee>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::timefmt::option::serialize"
    )]
    pub started: Option<DateTime<Utc>>,
    /// When the running attempt ends.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::timefmt::option::serialize"
    )]
    pub due: Option<DateTime<Utc>>,
    /// Whether the running attempt will succeed (decided when it starts, so
    /// a restart replays the same result).
    #[serde(default, skip_serializing_if = "is_false")]
    pub will_succeed: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::timefmt::option::serialize"
    )]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::timefmt::option::serialize"
    )]
    pub finished: Option<DateTime<Utc>>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub fallback: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub compensation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Lets a step's row leave out what is false (the default when read back).
fn is_false(b: &bool) -> bool {
    !*b
}

impl Step {
    pub fn new(template: &str, process: &str, subject: &str, after: Vec<usize>) -> Step {
        Step {
            template: template.to_string(),
            process: process.to_string(),
            subject: subject.to_string(),
            after,
            state: StepState::Pending,
            assignee: None,
            started: None,
            due: None,
            will_succeed: true,
            not_before: None,
            finished: None,
            attempts: 0,
            fallback: false,
            compensation: false,
            note: None,
        }
    }
}

/// A running piece of work assembled from one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Flow {
    pub id: String,
    pub decision_id: String,
    pub signal_id: String,
    pub signal_type: String,
    pub subject: String,
    pub class: String,
    pub option: String,
    pub state: FlowState,
    pub priority: Priority,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub created: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub deadline: DateTime<Utc>,
    #[serde(default)]
    pub escalated: bool,
    #[serde(default)]
    pub breached: bool,
    pub steps: Vec<Step>,
    #[serde(default, serialize_with = "crate::timefmt::option::serialize")]
    pub finished: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Flow {
    /// The flow without its steps (a big flow's own row).
    pub fn header(&self) -> Flow {
        Flow {
            id: self.id.clone(),
            decision_id: self.decision_id.clone(),
            signal_id: self.signal_id.clone(),
            signal_type: self.signal_type.clone(),
            subject: self.subject.clone(),
            class: self.class.clone(),
            option: self.option.clone(),
            state: self.state,
            priority: self.priority,
            created: self.created,
            deadline: self.deadline,
            escalated: self.escalated,
            breached: self.breached,
            steps: Vec::new(),
            finished: self.finished,
            reason: self.reason.clone(),
        }
    }

    /// The first step not yet done, for a one-line summary.
    pub fn current_step(&self) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| matches!(s.state, StepState::Running))
            .or_else(|| self.steps.iter().find(|s| s.state == StepState::Pending))
    }

    /// Whether a main (not compensation) step has failed for good.
    fn failing(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.state == StepState::Failed && !s.compensation)
    }

    /// Whether step `i` may start (its time aside): it is pending, what it
    /// comes after is done, and no main step has failed (`failing`). Once one
    /// has, only compensation steps run, and an undo step follows the one
    /// before it whether that undo worked or not.
    fn can_start(&self, i: usize, failing: bool) -> bool {
        let Some(step) = self.steps.get(i) else {
            return false;
        };
        if step.state != StepState::Pending {
            return false;
        }
        if failing && !step.compensation {
            return false;
        }
        step.after.iter().all(|&d| {
            self.steps.get(d).is_some_and(|s| {
                s.state == StepState::Done || (step.compensation && s.state == StepState::Failed)
            })
        })
    }

    pub fn within_deadline(&self) -> bool {
        self.finished.is_some_and(|f| f <= self.deadline)
    }

    fn processes(&self) -> BTreeSet<&str> {
        self.steps.iter().map(|s| s.process.as_str()).collect()
    }
}

/// Something that happened to a flow, as the journal and subscribers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowEvent {
    pub flow_id: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    pub kind: FlowEventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowEventKind {
    Created,
    StepStarted,
    StepDone,
    StepRetry,
    StepFallback,
    StepFailed,
    SlaWarning,
    SlaBreached,
    Done,
    Failed,
    Compensating,
    Compensated,
    Resumed,
}

/// Knobs for executing steps.
#[derive(Debug, Clone, Copy)]
pub struct ExecutionSettings {
    pub max_retries: u32,
    pub retry_base: Duration,
    /// Share of the way to the deadline at which a flow is escalated.
    pub warn_at: f64,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        ExecutionSettings {
            max_retries: 2,
            retry_base: Duration::seconds(30),
            warn_at: 0.75,
        }
    }
}

/// Every flow, and the set still moving.
#[derive(Debug, Default)]
pub struct FlowBook {
    /// By id. Ordered, not hashed: growing a hash map of 100,000 inline
    /// flows moves them all at once, a stall that showed as a 3x worse p99
    /// in the intake benchmark.
    pub flows: BTreeMap<String, Flow>,
    active: BTreeSet<String>,
    /// When each active flow next needs attention (a step due, a retry, an
    /// SLA timer), so a tick visits only the flows that have something due.
    wake: Timers,
    dirty: BTreeSet<String>,
    /// For each flow too big to rewrite whole (`BIG_FLOW`), a fingerprint
    /// of each step as last handed to the journal, so a flush writes only
    /// the steps that changed.
    journaled_steps: std::collections::HashMap<String, Vec<u64>>,
    events: Vec<FlowEvent>,
    pub breakers: Breakers,
    pub settings: ExecutionSettings,
    /// Executors that are real HTTP endpoints (executor name → URL); steps
    /// for them are dispatched instead of simulated.
    pub webhooks: BTreeMap<String, String>,
    dispatches: Vec<Dispatch>,
    /// Finished flows, oldest first; beyond `KEEP_FINISHED` the oldest
    /// leave memory (the journal keeps them for `explain`).
    finished: std::collections::VecDeque<String>,
}

/// Finished flows kept in memory, so a long-running engine stays bounded:
/// nothing reads them but the moment they finish (the console keeps its
/// own rows, explanations read the journal).
pub const KEEP_FINISHED: usize = 1_000;

/// Steps beyond which a flow is journaled as a row of its own plus a row
/// per step, and only changed steps are written at a flush. A fan-out over
/// a big supplier's open orders has thousands of steps; rewriting all of
/// them whenever one changes made every commit megabytes long.
pub const BIG_FLOW: usize = 64;

/// A flow as the journal receives it at a flush.
#[derive(Debug)]
pub struct FlowChange {
    /// The flow; for a big flow, without its steps.
    pub flow: Flow,
    /// For a big flow, its steps that changed since the last flush (all
    /// of them the first time), by index.
    pub steps: Option<Vec<(usize, Step)>>,
}

fn step_fingerprint(step: &Step) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    step.hash(&mut h);
    h.finish()
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

impl FlowBook {
    /// Steps waiting to be sent to webhook executors.
    pub fn take_dispatches(&mut self) -> Vec<Dispatch> {
        std::mem::take(&mut self.dispatches)
    }

    /// A webhook executor's answer for a dispatched step; stale answers
    /// (an older attempt, a step no longer running) are ignored.
    pub fn complete_step(
        &mut self,
        flow_id: &str,
        step: usize,
        attempt: u32,
        success: bool,
        detail: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(flow) = self.flows.get_mut(flow_id) else {
            return false;
        };
        let applied = match flow.steps.get_mut(step) {
            Some(s)
                if s.state == StepState::Running && s.attempts == attempt && s.due.is_none() =>
            {
                s.will_succeed = success;
                s.due = Some(now);
                if !success {
                    s.note = Some(detail.to_string());
                }
                true
            }
            _ => false,
        };
        if applied {
            self.schedule(flow_id, now);
        }
        applied
    }

    fn dispatch(&mut self, flow: &Flow, i: usize, executor: &str, url: &str) {
        let step = &flow.steps[i];
        self.dispatches.push(Dispatch {
            flow_id: flow.id.clone(),
            step: i,
            attempt: step.attempts,
            executor: executor.to_string(),
            url: url.to_string(),
            idempotency_key: format!("{}:{}:{}", flow.id, i, step.attempts),
            body: serde_json::json!({
                "flow": flow.id, "decision": flow.decision_id, "step": i, "template": step.template,
                "process": step.process, "subject": step.subject, "attempt": step.attempts,
                "signal": flow.signal_id, "option": flow.option,
            }),
        });
    }

    /// After a restart, steps that were with a webhook and never answered
    /// are sent again (same idempotency key).
    pub fn redispatch_waiting(&mut self) {
        let mut jobs = Vec::new();
        for flow in self.flows.values() {
            for (i, step) in flow.steps.iter().enumerate() {
                if step.state == StepState::Running
                    && step.due.is_none()
                    && let Some(Assignee::Automation { executor, .. }) = &step.assignee
                    && let Some(url) = self.webhooks.get(executor)
                {
                    jobs.push((flow.id.clone(), i, executor.clone(), url.clone()));
                }
            }
        }
        for (flow_id, i, executor, url) in jobs {
            if let Some(flow) = self.flows.get(&flow_id).cloned() {
                self.dispatch(&flow, i, &executor, &url);
            }
        }
    }

    pub fn insert(&mut self, flow: Flow, now: DateTime<Utc>) {
        let detail = format!(
            "{} via {} ({} steps across {})",
            flow.signal_type,
            flow.option,
            flow.steps.len(),
            flow.processes().into_iter().collect::<Vec<_>>().join(", ")
        );
        self.push_event(&flow.id, now, FlowEventKind::Created, None, detail);
        if !flow.state.is_terminal() {
            self.active.insert(flow.id.clone());
        }
        self.dirty.insert(flow.id.clone());
        let id = flow.id.clone();
        self.flows.insert(flow.id.clone(), flow);
        self.schedule(&id, now);
    }

    /// Files the flow under its next wake time (or takes it off the schedule).
    fn schedule(&mut self, id: &str, now: DateTime<Utc>) {
        let at = self.flows.get(id).and_then(|f| self.next_wake(f, now));
        self.wake.set(id, at);
    }

    fn next_wake(&self, flow: &Flow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if flow.state.is_terminal() || flow.state == FlowState::WaitingHuman {
            return None;
        }
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| next = Some(next.map_or(t, |n| n.min(t)));
        let failing = flow.failing();
        for (i, step) in flow.steps.iter().enumerate() {
            match step.state {
                // A step with a webhook waits for its answer, not a clock.
                StepState::Running => {
                    if let Some(due) = step.due {
                        consider(due);
                    }
                }
                StepState::Pending => {
                    // A step waiting on others wakes with them, not on its own.
                    if let Some(t) = step.not_before {
                        consider(t.max(now));
                    } else if flow.can_start(i, failing) {
                        consider(now);
                    }
                }
                _ => {}
            }
        }
        if flow.steps.is_empty() || flow.state == FlowState::Pending {
            consider(now);
        }
        if !flow.escalated {
            let span = (flow.deadline - flow.created).num_seconds() as f64;
            consider(flow.created + Duration::seconds((span * self.settings.warn_at) as i64));
        }
        if !flow.breached {
            consider(flow.deadline + Duration::seconds(1));
        }
        next
    }

    /// Puts back a flow read from the journal; in-flight ones keep moving.
    pub fn restore(&mut self, flow: Flow) {
        if !flow.state.is_terminal() {
            self.active.insert(flow.id.clone());
        }
        // Wake at once: whatever came due while the process was down is
        // handled on the first tick.
        let (id, created) = (flow.id.clone(), flow.created);
        self.flows.insert(flow.id.clone(), flow);
        self.schedule(&id, created);
    }

    pub fn get(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id)
    }

    /// Finished flows still in memory.
    pub fn finished_count(&self) -> usize {
        self.finished.len()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    pub fn active(&self) -> impl Iterator<Item = &Flow> {
        self.active.iter().filter_map(|id| self.flows.get(id))
    }

    /// Replaces a waiting flow's steps once a person has chosen, and starts it.
    pub fn release(&mut self, id: &str, option: &str, steps: Vec<Step>, now: DateTime<Utc>) {
        if let Some(flow) = self.flows.get_mut(id) {
            flow.option = option.to_string();
            flow.steps = steps;
            flow.state = FlowState::Running;
            if flow.steps.is_empty() {
                flow.state = FlowState::Done;
                flow.finished = Some(now);
                self.active.remove(id);
            }
            self.dirty.insert(id.to_string());
            let kind = if flow.state == FlowState::Done {
                FlowEventKind::Done
            } else {
                FlowEventKind::Resumed
            };
            let detail = format!("released with `{option}`");
            self.push_event(id, now, kind, None, detail);
        }
        self.schedule(id, now);
    }

    /// Closes a flow whose cause went away (an alert resolved at its
    /// source): what has not run is skipped and the flow is done. Returns
    /// the assignees of steps that were running, so their load can be
    /// given back.
    pub fn close(&mut self, id: &str, reason: &str, now: DateTime<Utc>) -> Vec<Assignee> {
        let mut freed = Vec::new();
        let Some(flow) = self.flows.get_mut(id) else {
            return freed;
        };
        if flow.state.is_terminal() {
            return freed;
        }
        for step in &mut flow.steps {
            if step.state == StepState::Running
                && let Some(a) = &step.assignee
            {
                freed.push(a.clone());
            }
            if matches!(step.state, StepState::Pending | StepState::Running) {
                step.state = StepState::Skipped;
            }
        }
        flow.state = FlowState::Done;
        flow.finished = Some(now);
        flow.reason = Some(reason.to_string());
        self.active.remove(id);
        self.dirty.insert(id.to_string());
        self.wake.set(id, None);
        self.push_event(
            id,
            now,
            FlowEventKind::Done,
            None,
            format!("closed: {reason}"),
        );
        self.finished.push_back(id.to_string());
        freed
    }

    /// Ends a waiting flow that a person rejected.
    pub fn cancel(&mut self, id: &str, reason: &str, now: DateTime<Utc>) {
        if let Some(flow) = self.flows.get_mut(id) {
            flow.state = FlowState::Failed;
            flow.finished = Some(now);
            flow.reason = Some(reason.to_string());
            self.active.remove(id);
            self.dirty.insert(id.to_string());
            self.push_event(id, now, FlowEventKind::Failed, None, reason.to_string());
            self.finished.push_back(id.to_string());
        }
        self.wake.set(id, None);
    }

    pub fn take_events(&mut self) -> Vec<FlowEvent> {
        std::mem::take(&mut self.events)
    }

    /// The flows changed since the last call, as the journal writes them.
    pub fn take_changed(&mut self) -> Vec<FlowChange> {
        let mut out = Vec::with_capacity(self.dirty.len());
        for id in std::mem::take(&mut self.dirty) {
            let Some(flow) = self.flows.get(&id) else {
                continue;
            };
            if flow.steps.len() <= BIG_FLOW && !self.journaled_steps.contains_key(&id) {
                out.push(FlowChange {
                    flow: flow.clone(),
                    steps: None,
                });
                continue;
            }
            // Once journaled by step, a flow stays so (its steps are read
            // from their rows).
            let marks = self.journaled_steps.entry(id.clone()).or_default();
            let mut changed = Vec::new();
            for (i, step) in flow.steps.iter().enumerate() {
                let mark = step_fingerprint(step);
                if marks.get(i) != Some(&mark) {
                    changed.push((i, step.clone()));
                    if let Some(m) = marks.get_mut(i) {
                        *m = mark;
                    } else {
                        marks.push(mark);
                    }
                }
            }
            if flow.state.is_terminal() {
                self.journaled_steps.remove(&id);
            }
            out.push(FlowChange {
                flow: flow.header(),
                steps: Some(changed),
            });
        }
        out
    }

    /// Notes that a recovered flow's steps are in the journal as they are
    /// (a big flow's rows), so the next flush does not write them again.
    pub fn journaled_by_step(&mut self, id: &str) {
        if let Some(flow) = self.flows.get(id) {
            let marks = flow.steps.iter().map(step_fingerprint).collect();
            self.journaled_steps.insert(id.to_string(), marks);
        }
    }

    fn push_event(
        &mut self,
        flow_id: &str,
        time: DateTime<Utc>,
        kind: FlowEventKind,
        step: Option<usize>,
        detail: String,
    ) {
        self.events.push(FlowEvent {
            flow_id: flow_id.to_string(),
            time,
            kind,
            step,
            detail,
        });
    }

    /// Advances every active flow to `now`: finishes steps that are due,
    /// starts steps that are ready, runs SLA timers. Returns flows that
    /// reached a terminal state.
    pub fn tick(
        &mut self,
        now: DateTime<Utc>,
        context: &mut Context,
        catalogue: &StepCatalogue,
        rng: &mut ChaCha8Rng,
    ) -> Vec<String> {
        let mut finished = Vec::new();
        for id in self.wake.due(now) {
            // Taken out of its slot (not out of the map) while it advances.
            let Some(mut flow) = self.flows.get_mut(&id).map(std::mem::take) else {
                continue;
            };
            // Every change to a flow pushes an event, so the event count tells
            // whether the flow needs journaling without copying it.
            let (events_before, state_before) = (self.events.len(), flow.state);
            self.advance(&mut flow, now, context, catalogue, rng);
            if self.events.len() != events_before || flow.state != state_before {
                self.dirty.insert(id.clone());
            }
            if flow.state.is_terminal() {
                self.active.remove(&id);
                finished.push(id.clone());
                self.finished.push_back(id.clone());
            }
            // Scheduled from the flow in hand: one search of the map fewer.
            let at = self.next_wake(&flow, now);
            self.wake.set(&id, at);
            if let Some(slot) = self.flows.get_mut(&id) {
                *slot = flow;
            }
        }
        self.evict();
        finished
    }

    /// Drops the oldest finished flows beyond `KEEP_FINISHED` from memory.
    /// A flow still waiting to be journaled stays until the next call.
    fn evict(&mut self) {
        while self.finished.len() > KEEP_FINISHED {
            let Some(id) = self.finished.front() else {
                break;
            };
            if self.dirty.contains(id) {
                break;
            }
            if let Some(id) = self.finished.pop_front() {
                self.flows.remove(&id);
            }
        }
    }

    fn advance(
        &mut self,
        flow: &mut Flow,
        now: DateTime<Utc>,
        context: &mut Context,
        catalogue: &StepCatalogue,
        rng: &mut ChaCha8Rng,
    ) {
        if flow.state == FlowState::WaitingHuman || flow.state.is_terminal() {
            return;
        }
        if flow.state == FlowState::Pending {
            flow.state = FlowState::Running;
        }
        // Finish what is due.
        for i in 0..flow.steps.len() {
            let step = &flow.steps[i];
            if step.state != StepState::Running || step.due.is_none_or(|d| d > now) {
                continue;
            }
            self.finish_step(flow, i, now, context);
        }
        // Start what is ready. `failing` is taken once per pass: a step that
        // fails to start (no route) holds back the others from the next pass.
        let failing = flow.failing();
        for i in 0..flow.steps.len() {
            if flow.can_start(i, failing) && flow.steps[i].not_before.is_none_or(|t| t <= now) {
                self.start_step(flow, i, now, context, catalogue, rng);
            }
        }
        self.settle(flow, now, catalogue);
        self.sla_timers(flow, now);
    }

    fn start_step(
        &mut self,
        flow: &mut Flow,
        i: usize,
        now: DateTime<Utc>,
        context: &mut Context,
        catalogue: &StepCatalogue,
        rng: &mut ChaCha8Rng,
    ) {
        let template_name = flow.steps[i].template.clone();
        let Some(template) = catalogue.get(&template_name) else {
            flow.steps[i].state = StepState::Failed;
            flow.steps[i].note = Some(format!("no step template `{template_name}`"));
            return;
        };
        let use_people = flow.steps[i].fallback;
        let route = Router::route(template, context, &mut self.breakers, now, use_people);
        let step = &mut flow.steps[i];
        step.attempts += 1;
        step.started.get_or_insert(now);
        match route {
            Ok(Assignee::Automation { executor, service })
                if self.webhooks.contains_key(&executor) =>
            {
                // A real endpoint: the step runs until its executor answers.
                step.due = None;
                step.assignee = Some(Assignee::Automation {
                    executor: executor.clone(),
                    service,
                });
                step.state = StepState::Running;
                let url = self.webhooks.get(&executor).cloned().unwrap_or_default();
                let detail = format!(
                    "{} {} → webhook {executor} (attempt {})",
                    step.template, step.subject, step.attempts
                );
                self.push_event(&flow.id, now, FlowEventKind::StepStarted, Some(i), detail);
                self.dispatch(flow, i, &executor, &url);
                return;
            }
            Ok(Assignee::Automation { executor, service }) => {
                let health = context.service_health(&service);
                let fail_p = match health {
                    Some(crate::context::Health::Down) => 1.0,
                    Some(crate::context::Health::Degraded) => 0.35,
                    _ => 0.02,
                };
                step.will_succeed = rng.random::<f64>() >= fail_p;
                let secs = f64::from(template.auto_seconds) * rng.random_range(0.6..1.4);
                let secs = if step.will_succeed {
                    secs
                } else {
                    secs.min(30.0)
                };
                step.due = Some(now + Duration::seconds(secs as i64));
                step.assignee = Some(Assignee::Automation { executor, service });
            }
            Ok(assignee) => {
                let load_factor = route::load_factor(&assignee, context);
                let minutes =
                    f64::from(template.minutes) * load_factor * rng.random_range(0.6..1.4);
                // People rarely fail a step, but they can: the flow compensates.
                step.will_succeed = rng.random::<f64>() >= 0.01;
                step.due = Some(now + Duration::seconds((minutes * 60.0) as i64));
                route::take(&assignee, context);
                step.assignee = Some(assignee);
            }
            Err(reason) => {
                step.state = StepState::Failed;
                step.note = Some(reason.clone());
                step.finished = Some(now);
                self.push_event(&flow.id, now, FlowEventKind::StepFailed, Some(i), reason);
                return;
            }
        }
        step.state = StepState::Running;
        let who = step
            .assignee
            .as_ref()
            .map(Assignee::label)
            .unwrap_or_default();
        let detail = format!(
            "{} {} → {} (attempt {})",
            step.template, step.subject, who, step.attempts
        );
        self.push_event(&flow.id, now, FlowEventKind::StepStarted, Some(i), detail);
    }

    fn finish_step(
        &mut self,
        flow: &mut Flow,
        i: usize,
        now: DateTime<Utc>,
        context: &mut Context,
    ) {
        let settings = self.settings;
        let step = &mut flow.steps[i];
        let assignee = step.assignee.clone();
        if let Some(a) = &assignee {
            route::release(a, context);
        }
        let automated = matches!(assignee, Some(Assignee::Automation { .. }));
        if let Some(Assignee::Automation { executor, .. }) = &assignee {
            self.breakers.record(executor, step.will_succeed, now);
        }
        if step.will_succeed {
            step.state = StepState::Done;
            step.finished = Some(now);
            let detail = format!("{} done", step.template);
            self.push_event(&flow.id, now, FlowEventKind::StepDone, Some(i), detail);
            return;
        }
        if automated && step.attempts <= settings.max_retries {
            // Retry with exponential backoff; the jitter comes from the attempt
            // number and flow id so it is the same after a restart.
            // Jitter of up to a third of the base, from the flow and step so
            // a restart waits the same.
            let spread = (flow.id.bytes().map(u64::from).sum::<u64>() + i as u64 * 13) % 10;
            let jitter = settings.retry_base * (spread as i32) / 30;
            let backoff = settings.retry_base * 2i32.pow(step.attempts - 1) + jitter;
            step.state = StepState::Pending;
            step.not_before = Some(now + backoff);
            let detail = format!(
                "{} failed, retry in {}s",
                step.template,
                backoff.num_seconds()
            );
            self.push_event(&flow.id, now, FlowEventKind::StepRetry, Some(i), detail);
        } else if automated {
            step.state = StepState::Pending;
            step.fallback = true;
            step.not_before = None;
            let detail = format!(
                "{} failed after {} attempts: fallback to people",
                step.template, step.attempts
            );
            self.push_event(&flow.id, now, FlowEventKind::StepFallback, Some(i), detail);
        } else {
            step.state = StepState::Failed;
            step.finished = Some(now);
            step.note = Some("could not be completed".into());
            let detail = format!("{} failed", step.template);
            self.push_event(&flow.id, now, FlowEventKind::StepFailed, Some(i), detail);
        }
    }

    /// Moves the flow to its next state once its steps allow it.
    fn settle(&mut self, flow: &mut Flow, now: DateTime<Utc>, catalogue: &StepCatalogue) {
        let main_failed = flow
            .steps
            .iter()
            .any(|s| !s.compensation && s.state == StepState::Failed);
        let busy = flow.steps.iter().any(|s| s.state == StepState::Running);
        if main_failed && !busy {
            let compensating = flow.steps.iter().any(|s| s.compensation);
            if !compensating {
                let undo = undo_steps(&flow.steps, catalogue);
                for step in &mut flow.steps {
                    if step.state == StepState::Pending {
                        step.state = StepState::Skipped;
                    }
                }
                if undo.is_empty() {
                    flow.state = FlowState::Failed;
                    flow.finished = Some(now);
                    self.push_event(
                        &flow.id,
                        now,
                        FlowEventKind::Failed,
                        None,
                        "a step failed; nothing to undo".into(),
                    );
                    return;
                }
                let detail = format!("a step failed; running {} compensation steps", undo.len());
                flow.steps.extend(undo);
                self.push_event(&flow.id, now, FlowEventKind::Compensating, None, detail);
                return;
            }
            let comp_done = flow
                .steps
                .iter()
                .filter(|s| s.compensation)
                .all(|s| matches!(s.state, StepState::Done | StepState::Failed));
            if comp_done {
                flow.finished = Some(now);
                let all_undone = flow
                    .steps
                    .iter()
                    .filter(|s| s.compensation)
                    .all(|s| s.state == StepState::Done);
                flow.state = if all_undone {
                    FlowState::Compensated
                } else {
                    FlowState::Failed
                };
                let kind = if all_undone {
                    FlowEventKind::Compensated
                } else {
                    FlowEventKind::Failed
                };
                self.push_event(&flow.id, now, kind, None, "compensation finished".into());
            }
            return;
        }
        if !main_failed && flow.steps.iter().all(|s| s.state == StepState::Done) {
            flow.state = FlowState::Done;
            flow.finished = Some(now);
            let detail = if now <= flow.deadline {
                "done within SLA"
            } else {
                "done after the deadline"
            };
            self.push_event(&flow.id, now, FlowEventKind::Done, None, detail.into());
        }
    }

    fn sla_timers(&mut self, flow: &mut Flow, now: DateTime<Utc>) {
        if flow.state.is_terminal() {
            return;
        }
        let span = (flow.deadline - flow.created).num_seconds() as f64;
        let warn_at = flow.created + Duration::seconds((span * self.settings.warn_at) as i64);
        if !flow.escalated && now >= warn_at {
            flow.escalated = true;
            flow.priority = flow.priority.raised();
            let detail = format!("SLA at risk: priority raised to {}", flow.priority.as_str());
            self.push_event(&flow.id, now, FlowEventKind::SlaWarning, None, detail);
        }
        if !flow.breached && now > flow.deadline {
            flow.breached = true;
            self.push_event(
                &flow.id,
                now,
                FlowEventKind::SlaBreached,
                None,
                "deadline passed".into(),
            );
        }
    }
}

/// The compensation steps for what was done, as a saga undoes it: a done
/// step is undone only after the undo of every done step that came after
/// it in its own chain, so work is undone newest first where one piece
/// built on another, while independent chains (one per order of a
/// fan-out) are undone side by side. A done step without an undo template
/// passes its ordering on to the undo of what it came after.
fn undo_steps(steps: &[Step], catalogue: &StepCatalogue) -> Vec<Step> {
    let base = steps.len();
    let template_of = |step: &Step| {
        catalogue
            .get(&step.template)
            .and_then(|t| t.compensate.as_ref())
            .and_then(|c| catalogue.get(c).map(|t| (c, t)))
    };
    // Undo steps are numbered newest first.
    let mut undo_index: Vec<Option<usize>> = vec![None; base];
    let mut undo: Vec<Step> = Vec::new();
    for (i, step) in steps.iter().enumerate().rev() {
        if step.state != StepState::Done || step.compensation {
            continue;
        }
        if let Some((c, t)) = template_of(step) {
            undo_index[i] = Some(base + undo.len());
            let mut s = Step::new(c, &t.process, &step.subject, Vec::new());
            s.compensation = true;
            undo.push(s);
        }
    }
    // Done steps that came directly after each step.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); base];
    for (j, step) in steps.iter().enumerate() {
        if step.state == StepState::Done && !step.compensation {
            for &d in &step.after {
                if let Some(list) = dependents.get_mut(d) {
                    list.push(j);
                }
            }
        }
    }
    // What the undo of step i waits for: the undos of its dependents, or,
    // for a dependent with no undo of its own, what that one would wait for.
    // Dependents come later in the list, so walking backwards finds theirs
    // settled first.
    let mut waits: Vec<Vec<usize>> = vec![Vec::new(); base];
    for i in (0..base).rev() {
        let mut w: Vec<usize> = Vec::new();
        for &j in &dependents[i] {
            match undo_index[j] {
                Some(u) => w.push(u),
                None if j > i => w.extend(waits[j].iter().copied()),
                None => {}
            }
        }
        w.sort_unstable();
        w.dedup();
        waits[i] = w;
    }
    for (i, u) in undo_index.iter().enumerate() {
        if let Some(u) = u {
            undo[u - base].after = std::mem::take(&mut waits[i]);
        }
    }
    undo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::steps::DEFAULT_STEPS;
    use rand::SeedableRng;

    fn at(minutes: i64) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 31, 9, 0, 0).unwrap()
            + Duration::minutes(minutes)
    }

    /// A flow whose second step fails for good after its first was done:
    /// the first is undone, then the flow ends compensated, and it stops
    /// waking up.
    #[test]
    fn a_failed_step_runs_the_undo_of_what_was_done() {
        let catalogue = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let world = crate::sim::world::northwind(&mut rng, at(0));
        let mut context = Context::from_world(world);
        let mut pick = Step::new("fulfillment.pick", "fulfillment", "order/o1", vec![]);
        pick.state = StepState::Done;
        pick.finished = Some(at(0));
        let mut ship = Step::new("fulfillment.ship", "fulfillment", "order/o1", vec![0]);
        // A person's step that fails is not retried.
        ship.state = StepState::Running;
        ship.attempts = 1;
        ship.will_succeed = false;
        ship.due = Some(at(1));
        let flow = Flow {
            id: "F1".into(),
            decision_id: "D1".into(),
            signal_id: "s1".into(),
            signal_type: "order.placed".into(),
            subject: "order/o1".into(),
            class: "fulfillment".into(),
            option: "standard_fulfillment".into(),
            state: FlowState::Running,
            created: at(0),
            deadline: at(600),
            steps: vec![pick, ship],
            ..Flow::default()
        };
        let mut book = FlowBook::default();
        book.insert(flow, at(0));
        let mut finished = Vec::new();
        for m in (1..600).step_by(5) {
            finished.extend(book.tick(at(m), &mut context, &catalogue, &mut rng));
        }
        let flow = book.get("F1").unwrap();
        assert_eq!(flow.state, FlowState::Compensated, "{:?}", flow.steps);
        assert_eq!(finished, vec!["F1".to_string()]);
        let undo: Vec<_> = flow.steps.iter().filter(|s| s.compensation).collect();
        assert_eq!(undo.len(), 1);
        assert_eq!(undo[0].template, "fulfillment.restock");
        assert_eq!(undo[0].state, StepState::Done);
        assert!(book.wake.is_empty(), "a finished flow has no timer");
    }

    /// A fan-out over two orders (replan, then move the promised date, for
    /// each) where a later step failed: within an order the date is restored
    /// before the replan is cancelled; the two orders are undone side by
    /// side, not one after the other.
    #[test]
    fn undo_follows_each_chain_backwards_and_chains_run_side_by_side() {
        let catalogue = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
        let done = |template: &str, subject: &str, after: Vec<usize>| {
            let mut s = Step::new(template, "procurement", subject, after);
            s.state = StepState::Done;
            s
        };
        let steps = vec![
            done("procurement.replan_order", "order/o1", vec![]),
            done("fulfillment.move_promised_date", "order/o1", vec![0]),
            done("procurement.replan_order", "order/o2", vec![]),
            done("fulfillment.move_promised_date", "order/o2", vec![2]),
            // Nothing to undo for a notice, but what it came after waits
            // for nothing on its account.
            done("customer_service.notify_customer", "customer/c1", vec![3]),
        ];
        let undo = undo_steps(&steps, &catalogue);
        let named: Vec<(String, String, Vec<usize>)> = undo
            .iter()
            .map(|s| (s.template.clone(), s.subject.clone(), s.after.clone()))
            .collect();
        // Numbered from 5, newest first.
        assert_eq!(
            named,
            vec![
                (
                    "fulfillment.restore_promised_date".into(),
                    "order/o2".into(),
                    vec![]
                ),
                (
                    "procurement.cancel_replan".into(),
                    "order/o2".into(),
                    vec![5]
                ),
                (
                    "fulfillment.restore_promised_date".into(),
                    "order/o1".into(),
                    vec![]
                ),
                (
                    "procurement.cancel_replan".into(),
                    "order/o1".into(),
                    vec![7]
                ),
            ]
        );
        assert!(undo.iter().all(|s| s.compensation));
    }
}
