//! Tasks: the steps of flows that people carry out. A step routed to a
//! team or an agent stays open until a person completes it, fails it or
//! hands it on (in the demo, the simulator's people may end it first); its
//! flow's SLA timers escalate it.
//! A task is its step seen from the people's side: `F0000012.1` is step 1
//! of flow F0000012.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::book::FlowBook;
use super::route::{self, Assignee};
use super::types::{Flow, FlowEventKind, StepState};
use crate::context::Context;
use crate::decide::policy::Priority;

/// One task, as the API and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Task {
    pub id: String,
    pub flow: String,
    pub step: usize,
    pub template: String,
    pub process: String,
    pub subject: String,
    pub team: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// open, done or failed.
    pub state: String,
    pub decision: String,
    pub signal_type: String,
    pub option: String,
    pub priority: Priority,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub deadline: DateTime<Utc>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::timefmt::option::serialize"
    )]
    pub started: Option<DateTime<Utc>>,
    /// The flow's SLA is at risk (priority raised) or past.
    pub escalated: bool,
    pub breached: bool,
    pub compensation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub team: Option<String>,
    /// open (the default), done, failed or all.
    pub state: Option<String>,
}

/// What a person does with a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAction {
    Complete,
    Fail,
    /// To a team, or to an agent (of their team).
    Reassign {
        team: Option<String>,
        agent: Option<String>,
    },
}

impl TaskAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskAction::Complete => "complete",
            TaskAction::Fail => "fail",
            TaskAction::Reassign { .. } => "reassign",
        }
    }
}

/// Why a task action was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("no task {0} (a task id is FLOW.STEP, e.g. F0000012.1)")]
    NotFound(String),
    #[error("task {0} is not open (it is {1})")]
    NotOpen(String, &'static str),
    #[error("reassign needs a team or an agent")]
    NoTarget,
    #[error("no team `{0}`")]
    NoTeam(String),
    #[error("no agent `{0}`")]
    NoAgent(String),
}

/// Who a task is handed to: an agent (of their own team), else a team.
fn target(
    team: Option<&str>,
    agent: Option<&str>,
    context: &Context,
) -> Result<Assignee, TaskError> {
    match (agent, team) {
        (Some(agent), _) => {
            let a = context
                .agents
                .get(agent)
                .ok_or_else(|| TaskError::NoAgent(agent.to_string()))?;
            Ok(Assignee::Agent {
                agent: a.id.clone(),
                team: a.team.clone(),
            })
        }
        (None, Some(team)) if context.teams.contains_key(team) => Ok(Assignee::Team {
            team: team.to_string(),
        }),
        (None, Some(team)) => Err(TaskError::NoTeam(team.to_string())),
        (None, None) => Err(TaskError::NoTarget),
    }
}

/// Splits `F0000012.1` into its flow and step.
fn parse_id(id: &str) -> Option<(&str, usize)> {
    let (flow, step) = id.rsplit_once('.')?;
    Some((flow, step.parse().ok()?))
}

/// Whether step `i` of `flow` is people's work, and its state as a task.
fn task_state(flow: &Flow, i: usize) -> Option<&'static str> {
    let step = flow.steps.get(i)?;
    let people = matches!(
        step.assignee,
        Some(Assignee::Team { .. } | Assignee::Agent { .. })
    );
    if !people {
        return None;
    }
    match step.state {
        // Waiting for a person (in the demo, a simulated person may have
        // planned its end: a real one can still answer first).
        StepState::Running => Some("open"),
        StepState::Done => Some("done"),
        StepState::Failed => Some("failed"),
        _ => None,
    }
}

fn task_of(flow: &Flow, i: usize, state: &'static str) -> Option<Task> {
    let step = flow.steps.get(i)?;
    let (team, agent) = match step.assignee.as_ref()? {
        Assignee::Team { team } => (team.clone(), None),
        Assignee::Agent { agent, team } => (team.clone(), Some(agent.clone())),
        Assignee::Automation { .. } => return None,
    };
    Some(Task {
        id: format!("{}.{i}", flow.id),
        flow: flow.id.clone(),
        step: i,
        template: step.template.clone(),
        process: step.process.clone(),
        subject: step.subject.clone(),
        team,
        agent,
        state: state.to_string(),
        decision: flow.decision_id.clone(),
        signal_type: flow.signal_type.clone(),
        option: flow.option.clone(),
        priority: flow.priority,
        deadline: flow.deadline,
        started: step.started,
        escalated: flow.escalated,
        breached: flow.breached,
        compensation: step.compensation,
        note: step.note.clone(),
    })
}

impl FlowBook {
    /// The steps `filter` selects as tasks: each flow, step and its state
    /// as a task (people's steps only; open ones of active flows, unless
    /// asked for done, failed or all).
    fn task_steps<'a>(
        &'a self,
        filter: &'a TaskFilter,
    ) -> impl Iterator<Item = (&'a Flow, usize, &'static str)> + 'a {
        let want = filter.state.as_deref().unwrap_or("open");
        let flows: Box<dyn Iterator<Item = &Flow>> = if want == "open" {
            Box::new(self.active())
        } else {
            Box::new(self.flows.values().map(|flow| &**flow))
        };
        flows.flat_map(move |flow| {
            (0..flow.steps.len()).filter_map(move |i| {
                let state = task_state(flow, i)?;
                if want != "all" && want != state {
                    return None;
                }
                let team = match flow.steps[i].assignee.as_ref()? {
                    Assignee::Team { team } | Assignee::Agent { team, .. } => team,
                    Assignee::Automation { .. } => return None,
                };
                if filter.team.as_deref().is_some_and(|t| t != team) {
                    return None;
                }
                Some((flow, i, state))
            })
        })
    }

    /// Tasks of the flows in memory (every active one, the latest finished),
    /// most urgent first.
    pub fn tasks(&self, filter: &TaskFilter) -> Vec<Task> {
        let mut out: Vec<Task> = self
            .task_steps(filter)
            .filter_map(|(flow, i, state)| task_of(flow, i, state))
            .collect();
        out.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.deadline.cmp(&b.deadline))
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// One page of the tasks `tasks` lists, in id order (`engine::page`):
    /// only the page's tasks are made.
    pub fn tasks_page(
        &self,
        filter: &TaskFilter,
        page: &crate::page::Page,
    ) -> crate::page::Paged<Task> {
        let steps = self
            .task_steps(filter)
            .map(|(flow, i, state)| (format!("{}.{i}", flow.id), (flow, i, state)));
        let paged = page.of(steps, |(flow, i, state)| task_of(flow, i, state));
        crate::page::Paged {
            items: paged.items.into_iter().flatten().collect(),
            next: paged.next,
        }
    }

    /// One task, open or not.
    pub fn task(&self, id: &str) -> Result<Task, TaskError> {
        let (flow_id, i) = parse_id(id).ok_or_else(|| TaskError::NotFound(id.to_string()))?;
        let flow = self
            .flows
            .get(flow_id)
            .ok_or_else(|| TaskError::NotFound(id.to_string()))?;
        let state = task_state(flow, i).ok_or_else(|| TaskError::NotFound(id.to_string()))?;
        task_of(flow, i, state).ok_or_else(|| TaskError::NotFound(id.to_string()))
    }

    /// A person completes, fails or hands on an open task. `who` is recorded
    /// in the flow's events with the note. Completing and failing end the
    /// step at the next tick, as an executor's answer would.
    pub fn act_on_task(
        &mut self,
        id: &str,
        action: &TaskAction,
        who: &str,
        note: &str,
        context: &mut Context,
        now: DateTime<Utc>,
    ) -> Result<Task, TaskError> {
        let task = self.task(id)?;
        if task.state != "open" {
            let state = if task.state == "done" {
                "done"
            } else {
                "failed"
            };
            return Err(TaskError::NotOpen(id.to_string(), state));
        }
        let said = if note.is_empty() {
            String::new()
        } else {
            format!(": {note}")
        };
        let (flow_id, i) = (task.flow.clone(), task.step);
        match action {
            TaskAction::Complete | TaskAction::Fail => {
                let success = *action == TaskAction::Complete;
                let verb = if success { "completed" } else { "failed" };
                let detail = format!("{} {verb} by {who}{said}", task.template);
                let Some(step) = self
                    .flows
                    .get_mut(&flow_id)
                    .and_then(|f| f.steps.get_mut(i))
                else {
                    return Err(TaskError::NotFound(id.to_string()));
                };
                // Ends at the next tick, as an executor's answer would.
                step.will_succeed = success;
                step.due = Some(now);
                step.note = Some(detail.clone());
                self.schedule(&flow_id, now);
                self.push_event(&flow_id, now, FlowEventKind::TaskAction, Some(i), detail);
            }
            TaskAction::Reassign { team, agent } => {
                let to = target(team.as_deref(), agent.as_deref(), context)?;
                let detail = format!("{} handed to {} by {who}{said}", task.template, to.label());
                let Some(step) = self
                    .flows
                    .get_mut(&flow_id)
                    .and_then(|f| f.steps.get_mut(i))
                else {
                    return Err(TaskError::NotFound(id.to_string()));
                };
                if let Some(from) = step.assignee.replace(to.clone()) {
                    route::release(&from, context);
                }
                route::take(&to, context);
                step.note = Some(detail.clone());
                self.push_event(&flow_id, now, FlowEventKind::TaskAction, Some(i), detail);
            }
        }
        self.dirty.insert(flow_id.clone());
        let state = self
            .flows
            .get(&flow_id)
            .and_then(|f| task_state(f, i))
            .unwrap_or("open");
        let flow = self
            .flows
            .get(&flow_id)
            .ok_or_else(|| TaskError::NotFound(id.to_string()))?;
        task_of(flow, i, state).ok_or_else(|| TaskError::NotFound(id.to_string()))
    }
}
