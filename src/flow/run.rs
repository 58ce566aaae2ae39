//! The state machine's moves: finishing steps that are due, starting those
//! that are ready (routed, then handed to an executor), compensating after
//! a failure, and the SLA timers.

use chrono::{DateTime, Duration, Utc};

use super::book::FlowBook;
use super::compensate::undo_steps;
use super::executor::{Plan, StepStart};
use super::route::{self, Assignee, Router};
use super::types::{Flow, FlowEventKind, FlowState, StepState};
use crate::context::Context;
use crate::playbook::steps::StepCatalogue;

impl FlowBook {
    pub(super) fn advance(
        &mut self,
        flow: &mut Flow,
        now: DateTime<Utc>,
        context: &mut Context,
        catalogue: &StepCatalogue,
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
                self.start_step(flow, i, now, context, catalogue);
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
    ) {
        let template_name = flow.steps[i].template.clone();
        let Some(template) = catalogue.get(&template_name) else {
            flow.steps[i].state = StepState::Failed;
            flow.steps[i].note = Some(format!("no step template `{template_name}`"));
            return;
        };
        let use_people = flow.steps[i].fallback;
        let assignee = match Router::route(template, context, &mut self.breakers, now, use_people) {
            Ok(a) => a,
            Err(no_route) => {
                let reason = no_route.to_string();
                let step = &mut flow.steps[i];
                step.attempts += 1;
                step.started.get_or_insert(now);
                step.state = StepState::Failed;
                step.note = Some(reason.clone());
                step.finished = Some(now);
                self.push_event(&flow.id, now, FlowEventKind::StepFailed, Some(i), reason);
                return;
            }
        };
        let step = &mut flow.steps[i];
        step.attempts += 1;
        step.started.get_or_insert(now);
        let webhook = match &assignee {
            Assignee::Automation { executor, .. } => self.webhooks.takes(executor),
            _ => false,
        };
        let plan = if webhook {
            Plan::Awaits
        } else {
            let start = StepStart {
                flow,
                step: i,
                template,
                assignee: &assignee,
                now,
            };
            self.executor.start(&start, context)
        };
        if !matches!(assignee, Assignee::Automation { .. }) {
            route::take(&assignee, context);
        }
        let step = &mut flow.steps[i];
        match plan {
            Plan::Ends { due, success } => {
                step.will_succeed = success;
                step.due = Some(due);
            }
            // The step runs until its executor answers (`complete_step`).
            Plan::Awaits => step.due = None,
        }
        step.state = StepState::Running;
        let who = match (&assignee, webhook) {
            (Assignee::Automation { executor, .. }, true) => format!("webhook {executor}"),
            _ => assignee.label(),
        };
        step.assignee = Some(assignee);
        let detail = format!(
            "{} {} → {} (attempt {})",
            step.template, step.subject, who, step.attempts
        );
        self.push_event(&flow.id, now, FlowEventKind::StepStarted, Some(i), detail);
        if webhook && let Some(Assignee::Automation { executor, .. }) = &flow.steps[i].assignee {
            let executor = executor.clone();
            self.webhooks.dispatch(flow, i, &executor);
        }
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
            // A person's own words, when they gave some, stay.
            step.note
                .get_or_insert_with(|| "could not be completed".into());
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
