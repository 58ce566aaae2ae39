//! What a flow is: its steps, its states and the events it reports.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::route::Assignee;
use crate::decide::policy::Priority;

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
    /// The fields of the signal and context its template carries to an
    /// automation, taken when the flow was assembled.
    #[serde(default, skip_serializing_if = "Carried::is_empty")]
    pub carries: Carried,
}

/// What a step carries to its automation: field name → value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Carried(pub std::collections::BTreeMap<String, serde_json::Value>);

impl Carried {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Hashed as its JSON text (a step's fingerprint; JSON values have no
/// `Hash` of their own).
impl std::hash::Hash for Carried {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if !self.0.is_empty() {
            serde_json::to_string(&self.0)
                .unwrap_or_default()
                .hash(state);
        }
    }
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
            carries: Carried::default(),
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
    /// How it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<super::outcome::Outcome>,
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
            outcome: self.outcome,
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
    pub(super) fn failing(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.state == StepState::Failed && !s.compensation)
    }

    /// Whether step `i` may start (its time aside): it is pending, what it
    /// comes after is done, and no main step has failed (`failing`). Once one
    /// has, only compensation steps run, and an undo step follows the one
    /// before it whether that undo worked or not.
    pub(super) fn can_start(&self, i: usize, failing: bool) -> bool {
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

    pub(super) fn processes(&self) -> BTreeSet<&str> {
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
    /// A person completed, failed or handed on a task.
    TaskAction,
    /// A task given to a team over its bound of open tasks: escalated.
    Overflow,
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
