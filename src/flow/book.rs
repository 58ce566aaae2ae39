//! The book of flows: every flow, the set still moving, and when each
//! next needs attention. The state machine's moves are in `run`; what the
//! journal receives, in `changes`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use super::executor::{Dispatch, Executor, Webhooks};
use super::route::{Assignee, Breakers};
use super::types::{ExecutionSettings, Flow, FlowEvent, FlowEventKind, FlowState, Step, StepState};
use crate::context::Context;
use crate::playbook::steps::StepCatalogue;
use crate::timers::Timers;

/// Which flows a page lists (`GET /v1/flows?state=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowFilter {
    #[default]
    Active,
    Done,
    Failed,
    All,
}

impl FlowFilter {
    pub fn parse(name: &str) -> Option<FlowFilter> {
        Some(match name {
            "active" => FlowFilter::Active,
            "done" => FlowFilter::Done,
            "failed" => FlowFilter::Failed,
            "all" => FlowFilter::All,
            _ => return None,
        })
    }
}

/// Every flow, and the set still moving.
#[derive(Debug)]
pub struct FlowBook {
    /// By id. Ordered, not hashed: growing a hash map of 100,000 inline
    /// flows moves them all at once, a stall that showed as a 3x worse p99
    /// in the intake benchmark.
    pub flows: BTreeMap<String, Box<Flow>>,
    pub(super) active: BTreeSet<String>,
    /// When each active flow next needs attention (a step due, a retry, an
    /// SLA timer), so a tick visits only the flows that have something due.
    pub(super) wake: Timers,
    pub(super) dirty: BTreeSet<String>,
    /// For each flow too big to rewrite whole (`BIG_FLOW`), a fingerprint
    /// of each step as last handed to the journal, so a flush writes only
    /// the steps that changed.
    pub(super) journaled_steps: HashMap<String, Vec<u64>>,
    pub(super) events: Vec<FlowEvent>,
    pub breakers: Breakers,
    pub settings: ExecutionSettings,
    /// Executors that are HTTP endpoints: their steps are dispatched.
    pub webhooks: Webhooks,
    /// Who carries out every other step.
    pub executor: Box<dyn Executor>,
    /// Finished flows, oldest first; beyond `KEEP_FINISHED` the oldest
    /// leave memory (the journal keeps them for `explain`).
    pub(super) finished: VecDeque<String>,
}

/// Finished flows kept in memory, so a long-running engine stays bounded:
/// nothing reads them but the moment they finish (the console keeps its
/// own rows, explanations read the journal).
pub const KEEP_FINISHED: usize = 1_000;

impl Default for FlowBook {
    fn default() -> Self {
        FlowBook {
            flows: BTreeMap::new(),
            active: BTreeSet::new(),
            wake: Timers::default(),
            dirty: BTreeSet::new(),
            journaled_steps: HashMap::new(),
            events: Vec::new(),
            breakers: Breakers::default(),
            settings: ExecutionSettings::default(),
            webhooks: Webhooks::default(),
            executor: Box::new(super::executor::Unstaffed),
            finished: VecDeque::new(),
        }
    }
}

impl FlowBook {
    /// Steps waiting to be sent to webhook executors.
    pub fn take_dispatches(&mut self) -> Vec<Dispatch> {
        self.webhooks.take()
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

    /// After a restart, steps that were with a webhook and never answered
    /// are sent again (same idempotency key).
    pub fn redispatch_waiting(&mut self) {
        let mut jobs = Vec::new();
        for flow in self.flows.values() {
            for (i, step) in flow.steps.iter().enumerate() {
                if step.state == StepState::Running
                    && step.due.is_none()
                    && let Some(Assignee::Automation { executor, .. }) = &step.assignee
                    && self.webhooks.takes(executor)
                {
                    jobs.push((flow.id.clone(), i, executor.clone()));
                }
            }
        }
        for (flow_id, i, executor) in jobs {
            if let Some(flow) = self.flows.get(&flow_id) {
                self.webhooks.dispatch(flow, i, &executor);
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
        self.flows.insert(flow.id.clone(), Box::new(flow));
        self.schedule(&id, now);
    }

    /// Files the flow under its next wake time (or takes it off the schedule).
    pub(super) fn schedule(&mut self, id: &str, now: DateTime<Utc>) {
        let at = self.flows.get(id).and_then(|f| self.next_wake(f, now));
        self.wake.set(id, at);
    }

    pub(super) fn next_wake(&self, flow: &Flow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
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

    /// Sets how a finished flow ended.
    pub fn set_outcome(&mut self, id: &str, outcome: super::outcome::Outcome) {
        if let Some(flow) = self.flows.get_mut(id) {
            flow.outcome = Some(outcome);
            self.dirty.insert(id.to_string());
        }
    }

    /// How a flow ended, if it has.
    pub fn outcome(&self, id: &str) -> Option<super::outcome::Outcome> {
        self.flows.get(id)?.outcome
    }

    /// Escalates a running flow now (its priority raised), saying why in
    /// its events; false if it is over or already escalated.
    pub fn escalate(
        &mut self,
        id: &str,
        step: Option<usize>,
        detail: String,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(flow) = self.flows.get_mut(id) else {
            return false;
        };
        if flow.escalated || flow.state.is_terminal() {
            return false;
        }
        flow.escalated = true;
        flow.priority = flow.priority.raised();
        self.dirty.insert(id.to_string());
        self.push_event(id, now, FlowEventKind::Overflow, step, detail);
        true
    }

    /// Puts back a flow read from the journal; in-flight ones keep moving.
    pub fn restore(&mut self, flow: Flow) {
        if !flow.state.is_terminal() {
            self.active.insert(flow.id.clone());
        }
        // Wake at once: whatever came due while the process was down is
        // handled on the first tick.
        let (id, created) = (flow.id.clone(), flow.created);
        self.flows.insert(flow.id.clone(), Box::new(flow));
        self.schedule(&id, created);
    }

    pub fn get(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id).map(|flow| &**flow)
    }

    /// Finished flows still in memory.
    pub fn finished_count(&self) -> usize {
        self.finished.len()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    pub fn active(&self) -> impl Iterator<Item = &Flow> {
        self.active.iter().filter_map(|id| self.get(id))
    }

    /// One page of the flows in memory, in id order (`engine::page`): the
    /// active ones, or the latest finished (`KEEP_FINISHED`) in `state`
    /// (`done`, `failed`: failed or compensated), or `all` of them. Only the
    /// page's flows are copied.
    pub fn flows_page(
        &self,
        state: FlowFilter,
        page: &crate::page::Page,
    ) -> crate::page::Paged<Flow> {
        let active = matches!(state, FlowFilter::Active | FlowFilter::All)
            .then(|| self.active())
            .into_iter()
            .flatten();
        let finished = (state != FlowFilter::Active)
            .then(|| self.finished.iter().filter_map(|id| self.get(id)))
            .into_iter()
            .flatten()
            .filter(|flow| match state {
                FlowFilter::Done => flow.state == FlowState::Done,
                FlowFilter::Failed => flow.state.is_terminal() && flow.state != FlowState::Done,
                _ => true,
            });
        page.of(
            active.chain(finished).map(|flow| (flow.id.as_str(), flow)),
            Flow::clone,
        )
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
        // Its incident (or its work) is over: in time or not.
        flow.outcome = Some(match now <= flow.deadline {
            true => super::outcome::Outcome::WithinSla,
            false => super::outcome::Outcome::Late,
        });
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
    /// Ends a flow that waited for a person without doing its work, with
    /// how it ended (withdrawn, or resolved at the source).
    pub fn cancel(
        &mut self,
        id: &str,
        reason: &str,
        outcome: super::outcome::Outcome,
        now: DateTime<Utc>,
    ) {
        if let Some(flow) = self.flows.get_mut(id) {
            flow.outcome = Some(outcome);
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

    pub(super) fn push_event(
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
            self.advance(&mut flow, now, context, catalogue);
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
}
