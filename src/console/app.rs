//! The console's state and its update: input becomes an `Input`, `update`
//! changes the state and returns what to ask of the engine. Drawing reads
//! this state only.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratatui_textarea::TextArea;

use super::driver::{Status, Update};
use super::keymap::{KeyAction, Keymap, Scope};
use super::theme::Theme;
use crate::decide::Decision;
use crate::engine::EngineEvent;
use crate::flow::{Flow, FlowState};
use crate::review::{Action, Actor, ReviewItem};

pub const MAX_SIGNALS: usize = 50_000;
pub const MAX_DECISIONS: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    Overview,
    Signals,
    Flows,
    Review,
    Health,
    Audit,
}

/// Views with their names and aliases, for `:` and the crumb trail.
pub const VIEWS: &[(View, &str, &[&str])] = &[
    (View::Overview, "overview", &["o", "ov", "home", "dash"]),
    (View::Signals, "signals", &["s", "sig", "tail"]),
    (View::Flows, "flows", &["f", "fl", "flow"]),
    (View::Review, "review", &["r", "rev", "queue", "q"]),
    (View::Health, "health", &["h", "services", "teams"]),
    (View::Audit, "audit", &["a", "decisions", "log"]),
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

    fn is_table(self) -> bool {
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
    pub body: String,
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
}

pub struct Dialog {
    pub review_id: String,
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
    Explain {
        decision_id: String,
    },
    SwitchTheme(String),
    Quit,
}

pub struct App {
    pub view: View,
    pub history: Vec<View>,
    pub focus: Focus,
    pub status_line: Option<(String, bool)>,
    pub signals: VecDeque<SignalRow>,
    pub flow_rows: Vec<FlowRow>,
    flow_index: HashMap<String, usize>,
    pub reviews: HashMap<String, ReviewItem>,
    /// Open item ids, most urgent first; kept in step with `reviews`.
    review_ids: Vec<String>,
    reviews_changed: bool,
    pub audit: VecDeque<AuditRow>,
    pub status: Option<Status>,
    pub tables: HashMap<View, TableState>,
    pub filters: HashMap<View, String>,
    pub follow: bool,
    /// Signals per simulated minute, oldest first.
    pub signal_rate: VecDeque<u64>,
    rate_minute: Option<DateTime<Utc>>,
    pub queue_depth: VecDeque<u64>,
    pub keymap: Keymap,
    pub theme: Theme,
    pub operator: Actor,
    pub instance: String,
    pub sources: Vec<String>,
    pub dirty: bool,
    pub engine_error: Option<String>,
    pub data_dir: PathBuf,
    /// Rows per page in the table being shown (set by draw's caller).
    pub page: usize,
}

impl App {
    pub fn new(keymap: Keymap, theme: Theme, operator: Actor, data_dir: PathBuf) -> App {
        App {
            view: View::Overview,
            history: Vec::new(),
            focus: Focus::Normal,
            status_line: None,
            signals: VecDeque::new(),
            flow_rows: Vec::new(),
            flow_index: HashMap::new(),
            reviews: HashMap::new(),
            review_ids: Vec::new(),
            reviews_changed: false,
            audit: VecDeque::new(),
            status: None,
            tables: HashMap::new(),
            filters: HashMap::new(),
            follow: true,
            signal_rate: VecDeque::new(),
            rate_minute: None,
            queue_depth: VecDeque::new(),
            keymap,
            theme,
            operator,
            instance: "northwind (embedded)".into(),
            sources: vec!["sim:northwind".into()],
            dirty: true,
            engine_error: None,
            data_dir,
            page: 20,
        }
    }

    /// The contexts keys are looked up in, for the current mode and view.
    pub fn contexts(&self) -> Vec<Scope> {
        match &self.focus {
            Focus::Dialog(_) => vec![Scope::Dialog],
            // Asked whether to quit: the quit key again says yes.
            Focus::ConfirmQuit => vec![Scope::Dialog, Scope::Global],
            Focus::Command(_) | Focus::Filter(_) => vec![Scope::Dialog],
            Focus::Help | Focus::Detail(_) => vec![Scope::Table, Scope::Global],
            Focus::Normal => {
                let mut c = Vec::new();
                if self.view == View::Review {
                    c.push(Scope::Review);
                }
                if self.view.is_table() {
                    c.push(Scope::Table);
                }
                c.push(Scope::Global);
                c
            }
        }
    }

    /// Whether keys go to a text prompt first.
    pub fn typing(&self) -> bool {
        match &self.focus {
            Focus::Command(_) | Focus::Filter(_) => true,
            Focus::Dialog(d) => matches!(
                d.kind,
                DialogKind::Note(_) | DialogKind::Override { writing: true, .. }
            ),
            _ => false,
        }
    }

    pub fn crumbs(&self) -> String {
        let mut parts: Vec<&str> = vec!["signalbox"];
        parts.push(self.view.name());
        match &self.focus {
            Focus::Detail(d) => parts.push(d.title.as_str()),
            Focus::Dialog(_) => parts.push("action"),
            Focus::Help => parts.push("help"),
            _ => {}
        }
        parts.join(" › ")
    }

    /// Folds what the engine published into the console's own state.
    fn apply(&mut self, update: Update) {
        self.dirty = true;
        match update {
            Update::Events(events) => {
                for e in events {
                    self.apply_event(e);
                }
                self.sort_reviews();
            }
            Update::Status(status) => {
                self.queue_depth.push_back(status.open_reviews as u64);
                if self.queue_depth.len() > 120 {
                    self.queue_depth.pop_front();
                }
                self.status = Some(*status);
            }
            Update::Failed(e) => {
                self.status_line = Some((format!("engine stopped: {e}"), true));
                self.engine_error = Some(e);
            }
        }
    }

    fn apply_event(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Signal { signal, duplicate } => {
                let minute = signal.time.timestamp() / 60;
                match self.rate_minute {
                    Some(m) if m.timestamp() / 60 == minute => {
                        if let Some(last) = self.signal_rate.back_mut() {
                            *last += 1;
                        }
                    }
                    _ => {
                        self.rate_minute = Some(signal.time);
                        self.signal_rate.push_back(1);
                        if self.signal_rate.len() > 120 {
                            self.signal_rate.pop_front();
                        }
                    }
                }
                let summary = signal
                    .data_str("text")
                    .or_else(|| signal.data_str("summary"))
                    .map(String::from)
                    .unwrap_or_else(|| match &signal.data {
                        serde_json::Value::Object(map) => map
                            .iter()
                            .take(3)
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        serde_json::Value::String(text) => text.chars().take(80).collect(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string().chars().take(80).collect(),
                    });
                let body =
                    serde_json::to_string_pretty(&signal.to_cloudevent()).unwrap_or_default();
                self.signals.push_front(SignalRow {
                    id: signal.id.clone(),
                    time: signal.time,
                    kind: signal.kind.clone(),
                    subject: signal.subject.clone(),
                    source: signal.source.clone(),
                    severity: signal.severity.map(|s| s.as_str().to_string()),
                    summary,
                    duplicate,
                    body,
                });
                if self.signals.len() > MAX_SIGNALS {
                    self.signals.pop_back();
                }
                if !self.follow && self.view == View::Signals {
                    // Keep the selected row under the cursor as rows arrive.
                    let t = self.tables.entry(View::Signals).or_default();
                    t.selected += 1;
                    t.offset += 1;
                }
            }
            EngineEvent::Decision(d) => self.push_decision(&d),
            EngineEvent::ReviewOpened(item) => {
                self.reviews.insert(item.id.clone(), *item);
                self.reviews_changed = true;
            }
            EngineEvent::ReviewAction { item, action } => {
                if let Some(row) = self.audit.iter_mut().find(|r| r.id == item.decision.id) {
                    row.actor = action.actor.name.clone();
                    row.outcome = match item.chosen() {
                        Some(o) => format!("{} → {o}", action.action.name()),
                        None => action.action.name().to_string(),
                    };
                }
                if item.outcome.is_some() {
                    self.reviews.remove(&item.id);
                } else {
                    self.reviews.insert(item.id.clone(), *item);
                }
                self.reviews_changed = true;
            }
            EngineEvent::FlowChanged(flow) => self.upsert_flow(&flow),
            EngineEvent::Quarantined(q) => {
                if q.state == crate::journal::QuarantineState::Held {
                    self.status_line = Some((
                        format!(
                            "signal {} ({}) quarantined: {} — see :health",
                            q.signal_id, q.kind, q.error
                        ),
                        true,
                    ));
                }
            }
            EngineEvent::Flow(_)
            | EngineEvent::Settled { .. }
            | EngineEvent::FlowFinished(_)
            | EngineEvent::Learned(_) => {}
        }
    }

    fn push_decision(&mut self, d: &Arc<Decision>) {
        self.audit.push_front(AuditRow {
            id: d.id.clone(),
            time: d.time,
            kind: d.signal_type.clone(),
            subject: d.subject.clone(),
            mode: d.mode.as_str().to_string(),
            proposal: d.proposal.clone(),
            confidence: d.confidence,
            actor: if d.mode.as_str() == "review" {
                String::new()
            } else {
                "signalbox".into()
            },
            outcome: String::new(),
        });
        if self.audit.len() > MAX_DECISIONS {
            self.audit.pop_back();
        }
    }

    pub fn upsert_flow(&mut self, flow: &Flow) {
        self.upsert_flow_row(FlowRow::from_flow(flow));
    }

    pub fn upsert_flow_row(&mut self, row: FlowRow) {
        match self.flow_index.get(&row.id) {
            Some(&i) => self.flow_rows[i] = row,
            None => {
                self.flow_index.insert(row.id.clone(), self.flow_rows.len());
                self.flow_rows.push(row);
            }
        }
    }

    /// Re-sorts the queue if it changed (once per batch of events).
    pub fn sort_reviews(&mut self) {
        if !self.reviews_changed {
            return;
        }
        self.reviews_changed = false;
        let mut keyed: Vec<(_, _, &String)> = self
            .reviews
            .values()
            .map(|i| (i.deadline, std::cmp::Reverse(i.priority), &i.id))
            .collect();
        keyed.sort_unstable();
        self.review_ids = keyed.into_iter().map(|(_, _, id)| id.clone()).collect();
    }

    /// Row count of the current table after its filter.
    pub fn rows(&self, view: View) -> Vec<usize> {
        let filter = self
            .filters
            .get(&view)
            .map(|f| f.to_lowercase())
            .unwrap_or_default();
        let matches = |fields: &[&str]| {
            filter.is_empty() || fields.iter().any(|f| f.to_lowercase().contains(&filter))
        };
        match view {
            View::Signals => (0..self.signals.len())
                .filter(|&i| {
                    let s = &self.signals[i];
                    matches(&[&s.id, &s.kind, &s.subject, &s.summary, &s.source])
                })
                .collect(),
            View::Flows => (0..self.flow_rows.len())
                .rev()
                .filter(|&i| {
                    let f = &self.flow_rows[i];
                    matches(&[
                        &f.id,
                        &f.signal_type,
                        &f.subject,
                        &f.option,
                        f.state.as_str(),
                        &f.owner,
                    ])
                })
                .collect(),
            View::Review if filter.is_empty() => (0..self.review_ids.len()).collect(),
            View::Review => (0..self.review_ids.len())
                .filter(|&i| {
                    let Some(it) = self.review_at(i) else {
                        return false;
                    };
                    matches(&[
                        &it.id,
                        &it.decision.signal_type,
                        &it.decision.subject,
                        &it.decision.proposal,
                    ])
                })
                .collect(),
            View::Audit => (0..self.audit.len())
                .filter(|&i| {
                    let a = &self.audit[i];
                    matches(&[
                        &a.id,
                        &a.kind,
                        &a.subject,
                        &a.mode,
                        &a.actor,
                        &a.outcome,
                        &a.proposal,
                    ])
                })
                .collect(),
            View::Health => self
                .status
                .as_ref()
                .map(|s| (0..s.services.len() + s.teams.len() + s.breakers.len()).collect())
                .unwrap_or_default(),
            View::Overview => Vec::new(),
        }
    }

    fn table(&mut self) -> &mut TableState {
        self.tables.entry(self.view).or_default()
    }

    fn move_selection(&mut self, delta: isize) {
        let n = self.rows(self.view).len();
        let page = self.page.max(1);
        let t = self.table();
        if n == 0 {
            *t = TableState::default();
            return;
        }
        let next = (t.selected as isize + delta).clamp(0, n as isize - 1) as usize;
        t.selected = next;
        if next < t.offset {
            t.offset = next;
        } else if next >= t.offset + page {
            t.offset = next + 1 - page;
        }
        if self.view == View::Signals {
            self.follow = next == 0;
        }
    }

    fn go(&mut self, view: View) {
        if view != self.view {
            self.history.push(self.view);
            self.view = view;
        }
        self.focus = Focus::Normal;
    }

    /// The review item under the cursor.
    pub fn selected_review(&self) -> Option<&ReviewItem> {
        let rows = self.rows(View::Review);
        let t = self.tables.get(&View::Review).copied().unwrap_or_default();
        let i = *rows.get(t.selected.min(rows.len().saturating_sub(1)))?;
        self.review_at(i)
    }

    /// The i-th open item by urgency.
    pub fn review_at(&self, i: usize) -> Option<&ReviewItem> {
        self.reviews.get(self.review_ids.get(i)?)
    }

    /// The one way the console's state changes: a message in, the
    /// effects it asks of the outside world out.
    pub fn update(&mut self, message: impl Into<Message>) -> Vec<Effect> {
        self.dirty = true;
        match message.into() {
            Message::Input(input) => return self.input(input),
            Message::Engine(update) => self.apply(update),
            Message::Acted(result) => self.acted(result),
            Message::Explained { title, text } => self.show_detail(title, text),
            Message::Theme(Ok((name, theme))) => {
                self.theme = theme;
                self.status_line = Some((format!("theme {name}"), false));
            }
            Message::Theme(Err(why)) => self.status_line = Some((why, true)),
            Message::Page(rows) => self.page = rows,
        }
        Vec::new()
    }

    fn input(&mut self, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mode = std::mem::replace(&mut self.focus, Focus::Normal);
        self.focus = match mode {
            Focus::Command(text) => self.prompt(text, input, true, &mut effects),
            Focus::Filter(text) => self.prompt(text, input, false, &mut effects),
            Focus::Dialog(d) => self.dialog(d, input, &mut effects),
            Focus::ConfirmQuit => match input {
                Input::Key(KeyAction::Confirm | KeyAction::Quit) => {
                    effects.push(Effect::Quit);
                    Focus::Normal
                }
                _ => {
                    self.status_line = Some(("quit cancelled".into(), false));
                    Focus::Normal
                }
            },
            Focus::Help => match input {
                Input::Key(KeyAction::Back | KeyAction::Help | KeyAction::Cancel) => Focus::Normal,
                Input::Key(KeyAction::Quit) => {
                    effects.push(Effect::Quit);
                    Focus::Normal
                }
                _ => Focus::Help,
            },
            Focus::Detail(mut d) => match input {
                Input::Key(KeyAction::Back | KeyAction::Cancel) => Focus::Normal,
                Input::Key(KeyAction::Quit) => {
                    effects.push(Effect::Quit);
                    Focus::Normal
                }
                Input::Key(KeyAction::Down) => {
                    d.scroll = (d.scroll + 1).min(d.lines.len().saturating_sub(1));
                    Focus::Detail(d)
                }
                Input::Key(KeyAction::Up) => {
                    d.scroll = d.scroll.saturating_sub(1);
                    Focus::Detail(d)
                }
                Input::Key(KeyAction::PageDown) => {
                    d.scroll = (d.scroll + self.page).min(d.lines.len().saturating_sub(1));
                    Focus::Detail(d)
                }
                Input::Key(KeyAction::PageUp) => {
                    d.scroll = d.scroll.saturating_sub(self.page);
                    Focus::Detail(d)
                }
                _ => Focus::Detail(d),
            },
            Focus::Normal => self.normal(input, &mut effects),
        };
        effects
    }

    fn prompt(
        &mut self,
        mut text: String,
        input: Input,
        command: bool,
        effects: &mut Vec<Effect>,
    ) -> Focus {
        let wrap = |t: String| {
            if command {
                Focus::Command(t)
            } else {
                Focus::Filter(t)
            }
        };
        match input {
            Input::Char('\t') if command => {
                // Complete a view name.
                if let Some((_, name, _)) =
                    VIEWS.iter().find(|(_, n, _)| n.starts_with(text.trim()))
                {
                    text = name.to_string();
                }
                wrap(text)
            }
            Input::Char(c) => {
                text.push(c);
                if !command {
                    self.filters.insert(self.view, text.clone());
                    *self.table() = TableState::default();
                }
                wrap(text)
            }
            Input::Backspace => {
                text.pop();
                if !command {
                    self.filters.insert(self.view, text.clone());
                }
                wrap(text)
            }
            Input::Key(KeyAction::Cancel | KeyAction::Back) => {
                if !command {
                    self.filters.remove(&self.view);
                }
                Focus::Normal
            }
            Input::Key(KeyAction::Confirm) => {
                if command {
                    self.run_command(text.trim(), effects);
                    if matches!(self.focus, Focus::ConfirmQuit) {
                        return Focus::ConfirmQuit;
                    }
                } else if text.is_empty() {
                    self.filters.remove(&self.view);
                }
                Focus::Normal
            }
            _ => wrap(text),
        }
    }

    fn run_command(&mut self, text: &str, effects: &mut Vec<Effect>) {
        let mut words = text.split_whitespace();
        match words.next() {
            Some("quit" | "q" | "exit") => effects.push(Effect::Quit),
            Some("theme") => match words.next() {
                Some(name) => effects.push(Effect::SwitchTheme(name.to_string())),
                None => self.status_line = Some(("usage: :theme NAME".into(), true)),
            },
            Some(name) => match View::parse(name) {
                Some(v) => self.go(v),
                None => {
                    let names: Vec<&str> = VIEWS.iter().map(|(_, n, _)| *n).collect();
                    self.status_line = Some((
                        format!("no view `{name}` (views: {})", names.join(", ")),
                        true,
                    ));
                }
            },
            None => {}
        }
    }

    fn normal(&mut self, input: Input, effects: &mut Vec<Effect>) -> Focus {
        let Input::Key(action) = input else {
            return Focus::Normal;
        };
        match action {
            KeyAction::Quit => effects.push(Effect::Quit),
            KeyAction::Help => return Focus::Help,
            KeyAction::Command => return Focus::Command(String::new()),
            KeyAction::Filter if self.view.is_table() => {
                let current = self.filters.get(&self.view).cloned().unwrap_or_default();
                return Focus::Filter(current);
            }
            KeyAction::Back => {
                if self.filters.remove(&self.view).is_none()
                    && let Some(v) = self.history.pop()
                {
                    self.view = v;
                }
            }
            KeyAction::NextView | KeyAction::PrevView => {
                let i = VIEWS
                    .iter()
                    .position(|(v, _, _)| *v == self.view)
                    .unwrap_or(0);
                let n = VIEWS.len();
                let j = if action == KeyAction::NextView {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.go(VIEWS[j].0);
            }
            KeyAction::Up => self.move_selection(-1),
            KeyAction::Down => self.move_selection(1),
            KeyAction::PageUp => self.move_selection(-(self.page as isize)),
            KeyAction::PageDown => self.move_selection(self.page as isize),
            KeyAction::Top => self.move_selection(-(isize::MAX / 2)),
            KeyAction::Bottom => self.move_selection(isize::MAX / 2),
            KeyAction::Follow if self.view == View::Signals => {
                self.follow = !self.follow;
                if self.follow {
                    *self.table() = TableState::default();
                }
                self.status_line = Some((
                    format!("follow {}", if self.follow { "on" } else { "off" }),
                    false,
                ));
            }
            KeyAction::Open => return self.open(effects),
            KeyAction::Approve
            | KeyAction::Override
            | KeyAction::Reject
            | KeyAction::Escalate
            | KeyAction::Snooze
            | KeyAction::Claim
                if self.view == View::Review =>
            {
                return self.start_action(action, effects);
            }
            _ => {}
        }
        Focus::Normal
    }

    fn open(&mut self, effects: &mut Vec<Effect>) -> Focus {
        let rows = self.rows(self.view);
        let t = self.tables.get(&self.view).copied().unwrap_or_default();
        let Some(&i) = rows.get(t.selected) else {
            return Focus::Normal;
        };
        match self.view {
            View::Signals => {
                let s = &self.signals[i];
                Focus::Detail(Detail {
                    title: format!("signal {}", s.id),
                    lines: s.body.lines().map(String::from).collect(),
                    scroll: 0,
                })
            }
            View::Flows => {
                effects.push(Effect::Explain {
                    decision_id: self.flow_rows[i].decision_id.clone(),
                });
                Focus::Normal
            }
            View::Audit => {
                effects.push(Effect::Explain {
                    decision_id: self.audit[i].id.clone(),
                });
                Focus::Normal
            }
            View::Review => {
                if let Some(item) = self.review_at(i) {
                    effects.push(Effect::Explain {
                        decision_id: item.decision.id.clone(),
                    });
                }
                Focus::Normal
            }
            _ => Focus::Normal,
        }
    }

    fn start_action(&mut self, action: KeyAction, effects: &mut Vec<Effect>) -> Focus {
        let Some(item) = self.selected_review() else {
            self.status_line = Some(("no review item selected".into(), true));
            return Focus::Normal;
        };
        let review_id = item.id.clone();
        let note = || {
            let mut t = TextArea::default();
            t.set_placeholder_text("why (enter to confirm, esc to cancel)");
            t
        };
        match action {
            KeyAction::Override => {
                let choices: Vec<String> = item
                    .decision
                    .options
                    .iter()
                    .filter(|o| o.allowed && o.option != item.decision.proposal)
                    .map(|o| o.option.clone())
                    .collect();
                if choices.is_empty() {
                    self.status_line =
                        Some(("no alternative is allowed for this item".into(), true));
                    return Focus::Normal;
                }
                Focus::Dialog(Box::new(Dialog {
                    review_id,
                    kind: DialogKind::Override {
                        choices,
                        selected: 0,
                        writing: false,
                    },
                    note: note(),
                }))
            }
            KeyAction::Approve | KeyAction::Reject => {
                let a = if action == KeyAction::Approve {
                    Action::Approve
                } else {
                    Action::Reject
                };
                Focus::Dialog(Box::new(Dialog {
                    review_id,
                    kind: DialogKind::Note(a),
                    note: note(),
                }))
            }
            KeyAction::Escalate => {
                effects.push(Effect::Act {
                    review_id,
                    action: Action::Escalate,
                    note: format!("escalated by {}", self.operator.name),
                });
                Focus::Normal
            }
            KeyAction::Snooze => {
                effects.push(Effect::Act {
                    review_id,
                    action: Action::Snooze { minutes: 15 },
                    note: "snoozed 15 minutes".into(),
                });
                Focus::Normal
            }
            KeyAction::Claim => {
                effects.push(Effect::Act {
                    review_id,
                    action: Action::Claim,
                    note: format!("claimed by {}", self.operator.name),
                });
                Focus::Normal
            }
            other => {
                let why = format!("`{}` is not an action on a review item", other.label());
                self.status_line = Some((why, true));
                Focus::Normal
            }
        }
    }

    fn dialog(&mut self, mut d: Box<Dialog>, input: Input, effects: &mut Vec<Effect>) -> Focus {
        if let Input::Key(KeyAction::Cancel) = input {
            self.status_line = Some(("action cancelled".into(), false));
            return Focus::Normal;
        }
        if let Input::Key(KeyAction::Quit) = input {
            return Focus::ConfirmQuit;
        }
        match &mut d.kind {
            DialogKind::Override {
                choices,
                selected,
                writing: false,
            } => {
                match input {
                    Input::Key(KeyAction::Up) => *selected = selected.saturating_sub(1),
                    Input::Key(KeyAction::Down) => {
                        *selected = (*selected + 1).min(choices.len().saturating_sub(1))
                    }
                    Input::Key(KeyAction::Confirm) => {
                        if let DialogKind::Override { writing, .. } = &mut d.kind {
                            *writing = true;
                        }
                    }
                    _ => {}
                }
                Focus::Dialog(d)
            }
            _ => match input {
                Input::Key(KeyAction::Confirm) => {
                    let note = d.note.lines().join("\n");
                    let action = match &d.kind {
                        DialogKind::Override {
                            choices, selected, ..
                        } => Action::Override {
                            option: choices.get(*selected).cloned().unwrap_or_default(),
                        },
                        DialogKind::Note(a) => a.clone(),
                    };
                    effects.push(Effect::Act {
                        review_id: d.review_id.clone(),
                        action,
                        note,
                    });
                    Focus::Normal
                }
                Input::Text(key) => {
                    d.note.input(key);
                    Focus::Dialog(d)
                }
                _ => Focus::Dialog(d),
            },
        }
    }

    /// The engine's answer to an action.
    fn acted(&mut self, result: Result<String, String>) {
        self.status_line = Some(match result {
            Ok(done) => (format!("done: {done}"), false),
            Err(why) => (format!("refused: {why}"), true),
        });
    }

    fn show_detail(&mut self, title: String, text: String) {
        self.focus = Focus::Detail(Detail {
            title,
            lines: text.lines().map(String::from).collect(),
            scroll: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::fixture;

    fn key(action: KeyAction) -> Input {
        Input::Key(action)
    }

    fn on_review() -> App {
        let mut app = fixture::app();
        app.update(Input::Key(KeyAction::NextView));
        app.view = View::Review;
        app
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            let event = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c));
            app.update(Input::Text(event));
        }
    }

    #[test]
    fn the_fixture_has_two_items_the_newest_deadline_last() {
        let app = on_review();
        let ids: Vec<&str> = (0..2)
            .filter_map(|i| app.review_at(i))
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["R0000002", "R0000004"]);
    }

    #[test]
    fn approve_asks_for_a_note_then_acts_with_it() {
        let mut app = on_review();
        assert!(app.update(key(KeyAction::Approve)).is_empty());
        assert!(matches!(app.focus, Focus::Dialog(_)));
        typed(&mut app, "checked stock");
        let effects = app.update(key(KeyAction::Confirm));
        assert_eq!(
            effects,
            vec![Effect::Act {
                review_id: "R0000002".into(),
                action: Action::Approve,
                note: "checked stock".into(),
            }]
        );
        assert!(matches!(app.focus, Focus::Normal));
    }

    #[test]
    fn override_chooses_among_the_other_allowed_options() {
        let mut app = on_review();
        app.update(key(KeyAction::Down));
        app.update(key(KeyAction::Override));
        // The only other allowed option; down stays on it.
        app.update(key(KeyAction::Down));
        app.update(key(KeyAction::Confirm));
        typed(&mut app, "vip");
        let effects = app.update(key(KeyAction::Confirm));
        assert_eq!(
            effects,
            vec![Effect::Act {
                review_id: "R0000004".into(),
                action: Action::Override {
                    option: "expedite".into()
                },
                note: "vip".into(),
            }]
        );
    }

    #[test]
    fn escalate_snooze_and_claim_act_at_once() {
        for (k, action) in [
            (KeyAction::Escalate, Action::Escalate),
            (KeyAction::Snooze, Action::Snooze { minutes: 15 }),
            (KeyAction::Claim, Action::Claim),
        ] {
            let mut app = on_review();
            let effects = app.update(key(k));
            assert!(
                matches!(&effects[..], [Effect::Act { action: a, .. }] if *a == action),
                "{k:?}: {effects:?}"
            );
        }
    }

    #[test]
    fn review_keys_do_nothing_outside_the_review_view() {
        let mut app = fixture::app();
        app.view = View::Flows;
        assert!(app.update(key(KeyAction::Approve)).is_empty());
        assert!(matches!(app.focus, Focus::Normal));
    }

    #[test]
    fn quitting_from_a_dialog_asks_first() {
        let mut app = on_review();
        app.update(key(KeyAction::Reject));
        assert!(app.update(key(KeyAction::Quit)).is_empty());
        assert!(matches!(app.focus, Focus::ConfirmQuit));
        // Any other key stays.
        assert!(app.update(Input::Char('n')).is_empty());
        assert!(matches!(app.focus, Focus::Normal));
        app.update(key(KeyAction::Reject));
        app.update(key(KeyAction::Quit));
        assert_eq!(app.update(key(KeyAction::Confirm)), vec![Effect::Quit]);
    }

    #[test]
    fn cancel_leaves_a_dialog_without_acting() {
        let mut app = on_review();
        app.update(key(KeyAction::Approve));
        assert!(app.update(key(KeyAction::Cancel)).is_empty());
        assert!(matches!(app.focus, Focus::Normal));
        assert_eq!(
            app.status_line,
            Some(("action cancelled".to_string(), false))
        );
    }

    #[test]
    fn opening_a_flow_asks_for_its_explanation() {
        let mut app = fixture::app();
        app.view = View::Flows;
        let effects = app.update(key(KeyAction::Open));
        assert!(
            matches!(&effects[..], [Effect::Explain { decision_id }] if decision_id.starts_with('D')),
            "{effects:?}"
        );
        // The explanation comes back as a message and opens the detail.
        app.update(Message::Explained {
            title: "decision D0000004".into(),
            text: "why\nbecause".into(),
        });
        assert!(matches!(&app.focus, Focus::Detail(d) if d.lines.len() == 2));
    }

    #[test]
    fn commands_go_to_views_switch_themes_or_say_what_exists() {
        let mut app = fixture::app();
        let run = |app: &mut App, text: &str| {
            app.update(key(KeyAction::Command));
            for c in text.chars() {
                app.update(Input::Char(c));
            }
            app.update(key(KeyAction::Confirm))
        };
        assert!(run(&mut app, "health").is_empty());
        assert_eq!(app.view, View::Health);
        assert_eq!(
            run(&mut app, "theme light"),
            vec![Effect::SwitchTheme("light".into())]
        );
        run(&mut app, "nowhere");
        let (line, error) = app.status_line.clone().unwrap_or_default();
        assert!(error && line.contains("no view `nowhere`"), "{line}");
        assert_eq!(run(&mut app, "quit"), vec![Effect::Quit]);
    }

    #[test]
    fn answers_from_outside_land_on_the_status_line() {
        let mut app = fixture::app();
        app.update(Message::Acted(Err("item R1 was already decided".into())));
        assert_eq!(
            app.status_line,
            Some(("refused: item R1 was already decided".to_string(), true))
        );
        app.update(Message::Theme(Err("no theme `x`".into())));
        assert_eq!(app.status_line, Some(("no theme `x`".to_string(), true)));
    }

    #[test]
    fn a_filter_narrows_the_table_and_back_clears_it() {
        let mut app = fixture::app();
        app.view = View::Signals;
        assert_eq!(app.rows(View::Signals).len(), 4);
        app.update(key(KeyAction::Filter));
        for c in "ticket".chars() {
            app.update(Input::Char(c));
        }
        app.update(key(KeyAction::Confirm));
        assert_eq!(app.rows(View::Signals).len(), 1);
        app.update(key(KeyAction::Back));
        assert_eq!(app.rows(View::Signals).len(), 4);
    }
}
