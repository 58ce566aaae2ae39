//! The console's types: views, rows, tables, focus, input, messages and
//! effects.

use chrono::{DateTime, Utc};
use ratatui_textarea::TextArea;

use super::super::keymap::KeyAction;
use super::super::link::Update;
use super::super::theme::Theme;
use crate::flow::{Flow, FlowState, TaskAction};
use crate::review::Action;

pub use super::super::link::{MAX_DECISIONS, MAX_SIGNALS};
/// Shadow disagreements kept for the changes view, newest first.
pub const MAX_CHANGES: usize = 5_000;
pub const MAX_FLOWS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    Overview,
    Signals,
    Flows,
    Review,
    Tasks,
    Pages,
    OnCall,
    Incidents,
    Silences,
    Health,
    Audit,
    Changes,
}

/// Views with their names and aliases, for `:` and the crumb trail.
pub const VIEWS: &[(View, &str, &[&str])] = &[
    (View::Overview, "overview", &["o", "ov", "home", "dash"]),
    (View::Signals, "signals", &["s", "sig", "tail"]),
    (View::Flows, "flows", &["f", "fl", "flow"]),
    (View::Review, "review", &["r", "rev", "queue", "q"]),
    (View::Tasks, "tasks", &["t", "task", "todo", "work"]),
    (View::Pages, "pages", &["p", "pg", "page", "paging"]),
    (
        View::OnCall,
        "oncall",
        &["on-call", "who", "rota", "schedules"],
    ),
    (View::Incidents, "incidents", &["i", "inc", "incident"]),
    (
        View::Silences,
        "silences",
        &["sil", "silence", "mute", "muted"],
    ),
    (View::Health, "health", &["h", "services", "teams"]),
    (View::Audit, "audit", &["a", "decisions", "log"]),
    (View::Changes, "changes", &["c", "ch", "shadow", "diff"]),
];

impl View {
    pub fn name(self) -> &'static str {
        VIEWS
            .iter()
            .find(|(v, _, _)| *v == self)
            .map_or("?", |(_, n, _)| n)
    }

    pub fn parse(text: &str) -> Option<View> {
        let t = text.trim().to_lowercase();
        VIEWS
            .iter()
            .find(|(_, n, aliases)| *n == t || aliases.contains(&t.as_str()))
            .map(|(v, _, _)| *v)
    }

    pub(super) fn is_table(self) -> bool {
        !matches!(self, View::Overview)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignalRow {
    pub id: String,
    pub time: DateTime<Utc>,
    pub kind: String,
    pub subject: String,
    pub source: String,
    pub severity: Option<String>,
    pub summary: String,
    pub duplicate: bool,
    /// The signal itself, rendered as a CloudEvent when opened.
    pub signal: std::sync::Arc<crate::signal::Signal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub id: String,
    pub decision_id: String,
    pub signal_type: String,
    pub subject: String,
    pub option: String,
    pub state: FlowState,
    pub step: String,
    pub owner: String,
    pub steps: usize,
    pub processes: String,
    pub created: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub escalated: bool,
    pub breached: bool,
}

impl FlowRow {
    pub fn from_flow(f: &Flow) -> FlowRow {
        let current = f.current_step();
        let mut processes: Vec<&str> = f.steps.iter().map(|s| s.process.as_str()).collect();
        processes.sort_unstable();
        processes.dedup();
        FlowRow {
            id: f.id.clone(),
            decision_id: f.decision_id.clone(),
            signal_type: f.signal_type.clone(),
            subject: f.subject.clone(),
            option: f.option.clone(),
            state: f.state,
            step: current.map(|s| s.template.clone()).unwrap_or_default(),
            owner: current
                .and_then(|s| s.assignee.as_ref())
                .map(|a| a.label())
                .unwrap_or_default(),
            steps: f.steps.len(),
            processes: processes.join(","),
            created: f.created,
            deadline: f.deadline,
            escalated: f.escalated,
            breached: f.breached,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: String,
    pub time: DateTime<Utc>,
    pub kind: String,
    pub subject: String,
    pub mode: String,
    pub proposal: String,
    pub confidence: f64,
    pub actor: String,
    pub outcome: String,
}

/// A decision where the shadow candidate chose otherwise than the live
/// policy: another option, or asking a person where the live one acted
/// (or the reverse).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    pub id: String,
    pub time: DateTime<Utc>,
    pub kind: String,
    pub subject: String,
    pub live_mode: String,
    pub live: String,
    pub shadow_mode: String,
    pub shadow: String,
    /// What a person answered, once one has.
    pub person: String,
}

impl ChangeRow {
    /// The row for a decision, if its shadow chose otherwise.
    pub fn of(d: &crate::decide::Decision) -> Option<ChangeRow> {
        let shadow = d.shadow.as_ref()?;
        let asks = |m: crate::decide::Mode| m == crate::decide::Mode::Review;
        if shadow.proposal == d.proposal && asks(shadow.mode) == asks(d.mode) {
            return None;
        }
        Some(ChangeRow {
            id: d.id.clone(),
            time: d.time,
            kind: d.signal_type.clone(),
            subject: d.subject.clone(),
            live_mode: d.mode.as_str().to_string(),
            live: d.proposal.clone(),
            shadow_mode: shadow.mode.as_str().to_string(),
            shadow: shadow.proposal.clone(),
            person: String::new(),
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TableState {
    pub selected: usize,
    pub offset: usize,
}

/// What the note dialog is for.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogKind {
    /// Choose an alternative (stage 0), then write the note (stage 1).
    Override {
        choices: Vec<String>,
        selected: usize,
        writing: bool,
    },
    Note(Action),
    /// Complete or fail a task, with a note.
    Task(TaskAction),
    /// Choose the team to hand a task to (stage 0), then the note.
    Reassign {
        teams: Vec<String>,
        selected: usize,
        writing: bool,
    },
    /// Put someone on call on this schedule from now: "PERSON DURATION".
    OnCall {
        schedule: String,
    },
    /// A silence of signals like the one under the cursor: its matchers,
    /// and how many open items and signals of the last day they match
    /// (once the backend has counted), then "DURATION COMMENT".
    Silence {
        matchers: Vec<String>,
        preview: Option<Result<SilencePreview, String>>,
    },
}

/// What a silence would match before it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilencePreview {
    pub open_items: usize,
    pub last_day: u64,
}

pub struct Dialog {
    /// The review item or task it acts on (or, for marked items, how many).
    pub target: String,
    /// The marked review items it acts on, each as its own action; empty
    /// for one item (`target`).
    pub targets: Vec<String>,
    /// What it is about (its subject), shown with the id.
    pub about: String,
    pub kind: DialogKind,
    pub note: TextArea<'static>,
}

pub struct Detail {
    pub title: String,
    pub lines: Vec<String>,
    pub scroll: usize,
}

pub enum Focus {
    Normal,
    Command(String),
    Filter(String),
    Help,
    Detail(Detail),
    Dialog(Box<Dialog>),
    ConfirmQuit,
}

/// One input, after the keymap.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key(KeyAction),
    /// Text typed into a prompt, filter or dialog.
    Char(char),
    Backspace,
    /// Raw key for the text area (it has its own editing keys).
    Text(crossterm::event::KeyEvent),
    Resize,
    Tick,
}

/// Everything that changes the console's state: input from the terminal,
/// and what comes back from outside (the engine, an action's answer, an
/// explanation read from the journal, a theme loaded).
pub enum Message {
    Input(Input),
    Engine(Update),
    /// The engine's answer to an action: what was done, or why not.
    Acted(Result<String, String>),
    Explained {
        title: String,
        text: String,
    },
    Theme(Result<(String, Theme), String>),
    /// Rows per page in the table being shown, as the layout has it.
    Page(usize),
    /// What a silence with these matchers would match.
    SilencePreview {
        matchers: Vec<String>,
        preview: Result<SilencePreview, String>,
    },
    /// A page of history before the oldest decision shown, oldest first
    /// (signals and decisions as events), and whether there is more.
    Older(Result<(Vec<crate::engine::EngineEvent>, bool), String>),
}

impl From<Input> for Message {
    fn from(input: Input) -> Message {
        Message::Input(input)
    }
}

/// What the update asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Act {
        review_id: String,
        action: Action,
        note: String,
    },
    /// A person's answer to a task.
    TaskAct {
        task_id: String,
        action: TaskAction,
        note: String,
    },
    /// The same action on each of several review items, each journaled
    /// as its own action.
    ActOnEach {
        review_ids: Vec<String>,
        action: Action,
        note: String,
    },
    Explain {
        decision_id: String,
    },
    /// The decision explained in words, by the advisor.
    Words {
        decision_id: String,
    },
    /// A lead's call on the guarded ramp.
    Ramp {
        call: crate::decide::ramp::LeadCall,
        note: String,
    },
    /// Put `person` on call on `schedule` from `from` to `to`.
    SetOverride {
        schedule: String,
        person: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Acknowledge or resolve a page.
    PageAct {
        page_id: String,
        action: crate::engine::PageAction,
    },
    /// A person resolves an incident.
    ResolveIncident {
        incident_id: String,
    },
    /// End a silence now.
    ExpireSilence {
        silence_id: String,
    },
    /// Count what a silence with these matchers would match.
    PreviewSilence {
        matchers: Vec<String>,
    },
    /// Make a silence from `starts` (the engine's now, which a simulated
    /// run keeps) to `ends`, as the console's operator.
    PutSilence {
        matchers: Vec<String>,
        starts: DateTime<Utc>,
        ends: DateTime<Utc>,
        comment: String,
    },
    /// The page of history before decision `before` (the oldest shown).
    OlderHistory {
        before: String,
    },
    SwitchTheme(String),
    Quit,
}
