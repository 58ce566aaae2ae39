//! The console's state and its update: input becomes an `Input`, `update`
//! changes the state and returns what to ask of the engine. Drawing reads
//! this state only.
//!
//! `state` holds the types; `fold` folds what the engine publishes into
//! the state; `tables` answers which rows a table shows and moves the
//! selection; `keys` turns input into state changes and effects; `dialogs`
//! runs the review actions' dialogs.

mod dialogs;
mod fold;
mod keys;
mod state;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::keymap::{Keymap, Scope};
use super::link::Status;
use super::theme::Theme;
use crate::review::{Actor, ReviewItem};
pub use state::*;
pub use tables::Rows;

pub struct App {
    pub view: View,
    pub history: Vec<View>,
    pub focus: Focus,
    pub status_line: Option<(String, bool)>,
    pub signals: VecDeque<SignalRow>,
    /// Flows in the order first seen, the newest `MAX_FLOWS`.
    pub flow_rows: VecDeque<FlowRow>,
    /// Flow id → the sequence number of its row (the oldest row kept is
    /// `flow_seq - flow_rows.len()`).
    flow_index: HashMap<String, u64>,
    flow_seq: u64,
    /// Open items by id (boxed: a storm of them grows the map by pointers).
    pub reviews: HashMap<String, Box<ReviewItem>>,
    /// Open items, most urgent first (deadline, priority, id); kept in
    /// step with `reviews` once per pass by `sort_reviews`.
    review_order: Vec<ReviewKey>,
    /// The buffer the order is merged into, then swapped with it.
    order_spare: Vec<ReviewKey>,
    /// Keys to take out of the order and to put in, since it was last
    /// brought up to date; or rebuild it whole (after a snapshot).
    order_out: Vec<ReviewKey>,
    order_in: Vec<ReviewKey>,
    order_rebuild: bool,
    pub audit: VecDeque<AuditRow>,
    /// Decision id → the sequence number of its audit row (the newest row
    /// is `audit_seq - 1`).
    audit_index: HashMap<String, u64>,
    audit_seq: u64,
    /// Decisions where the shadow candidate chose otherwise, newest first.
    pub changes: VecDeque<ChangeRow>,
    pub status: Option<Status>,
    pub tables: HashMap<View, TableState>,
    pub filters: HashMap<View, String>,
    pub follow: bool,
    /// Signals per simulated minute, oldest first.
    pub signal_rate: VecDeque<u64>,
    rate_minute: Option<DateTime<Utc>>,
    pub queue_depth: VecDeque<u64>,
    /// Review items opened and answered, per minute of engine time
    /// (minute, opened, answered), oldest first.
    pub queue_flow: VecDeque<(i64, u32, u32)>,
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
    /// The server, when attached to one.
    pub link: Option<super::link::Link>,
    /// Review items marked for one approval or rejection.
    pub marked: std::collections::BTreeSet<String>,
    /// An action asked once on an item someone else holds: asked again, it goes.
    pub confirm_held: Option<(String, super::keymap::KeyAction)>,
    /// Paging back through the journal's history (`fold::older`).
    older: Older,
}

/// Where paging back through history stands: a page asked for and not yet
/// come, or the journal's beginning reached.
#[derive(Debug, Default)]
struct Older {
    asked: bool,
    exhausted: bool,
}

/// Where an open item sorts: sooner deadline, then higher priority first.
type ReviewKey = (
    DateTime<Utc>,
    std::cmp::Reverse<crate::decide::policy::Priority>,
    String,
);

fn review_key(item: &ReviewItem) -> ReviewKey {
    (
        item.deadline,
        std::cmp::Reverse(item.priority),
        item.id.clone(),
    )
}

impl App {
    pub fn new(keymap: Keymap, theme: Theme, operator: Actor, data_dir: PathBuf) -> App {
        App {
            view: View::Overview,
            history: Vec::new(),
            focus: Focus::Normal,
            status_line: None,
            // The tables at their largest from the start: in a storm they
            // fill without a pass that copies one whole table to a bigger
            // one (the memory is only reserved until rows arrive).
            signals: VecDeque::with_capacity(MAX_SIGNALS + 1),
            flow_rows: VecDeque::with_capacity(MAX_FLOWS + 1),
            flow_index: HashMap::with_capacity(MAX_FLOWS + 1),
            flow_seq: 0,
            reviews: HashMap::new(),
            review_order: Vec::new(),
            order_spare: Vec::new(),
            order_out: Vec::new(),
            order_in: Vec::new(),
            order_rebuild: false,
            audit: VecDeque::with_capacity(MAX_DECISIONS + 1),
            audit_index: HashMap::with_capacity(MAX_DECISIONS + 1),
            audit_seq: 0,
            changes: VecDeque::new(),
            status: None,
            tables: HashMap::new(),
            filters: HashMap::new(),
            follow: true,
            signal_rate: VecDeque::new(),
            rate_minute: None,
            queue_depth: VecDeque::new(),
            queue_flow: VecDeque::new(),
            keymap,
            theme,
            operator,
            instance: "northwind (embedded)".into(),
            sources: vec!["sim:northwind".into()],
            dirty: true,
            engine_error: None,
            data_dir,
            page: 20,
            link: None,
            confirm_held: None,
            older: Older::default(),
            marked: Default::default(),
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
                if self.view == View::Tasks {
                    c.push(Scope::Tasks);
                }
                if self.view == View::Pages {
                    c.push(Scope::Pages);
                }
                if self.view == View::OnCall {
                    c.push(Scope::OnCall);
                }
                if self.view == View::Incidents {
                    c.push(Scope::Incidents);
                }
                if self.view == View::Silences {
                    c.push(Scope::Silences);
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
                DialogKind::Note(_)
                    | DialogKind::Task(_)
                    | DialogKind::Override { writing: true, .. }
                    | DialogKind::Reassign { writing: true, .. }
                    | DialogKind::OnCall { .. }
                    | DialogKind::Silence { .. }
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

    /// The review item under the cursor.
    pub fn selected_review(&self) -> Option<&ReviewItem> {
        let rows = self.rows(View::Review);
        let t = self.tables.get(&View::Review).copied().unwrap_or_default();
        let i = rows.get(t.selected.min(rows.len().saturating_sub(1)))?;
        self.review_at(i)
    }

    /// Review items opened and answered per minute over the last
    /// `minutes` of engine time up to `now`.
    pub fn queue_rates(&self, now: DateTime<Utc>, minutes: i64) -> (f64, f64) {
        let from = now.timestamp() / 60 - minutes;
        let (opened, answered) = self
            .queue_flow
            .iter()
            .filter(|(m, _, _)| *m > from)
            .fold((0u32, 0u32), |(o, a), (_, x, y)| (o + x, a + y));
        let per = minutes.max(1) as f64;
        (f64::from(opened) / per, f64::from(answered) / per)
    }

    /// Counts items opened and answered in their minute (the minutes kept
    /// in order: a batch's items need not come in time order).
    fn count_queue_flow(&mut self, at: DateTime<Utc>, opened: u32, answered: u32) {
        let minute = at.timestamp() / 60;
        let at = self.queue_flow.partition_point(|(m, _, _)| *m < minute);
        match self.queue_flow.get_mut(at) {
            Some((m, o, a)) if *m == minute => {
                *o += opened;
                *a += answered;
            }
            _ => {
                self.queue_flow.insert(at, (minute, opened, answered));
                if self.queue_flow.len() > 120 {
                    self.queue_flow.pop_front();
                }
            }
        }
    }

    /// The task under the cursor.
    pub fn selected_task(&self) -> Option<&crate::flow::Task> {
        let rows = self.rows(View::Tasks);
        let t = self.tables.get(&View::Tasks).copied().unwrap_or_default();
        let i = rows.get(t.selected.min(rows.len().saturating_sub(1)))?;
        self.status.as_ref()?.tasks.get(i)
    }

    /// The page under the cursor.
    pub fn selected_page(&self) -> Option<&crate::paging::Page> {
        let rows = self.rows(View::Pages);
        let t = self.tables.get(&View::Pages).copied().unwrap_or_default();
        let i = rows.get(t.selected.min(rows.len().saturating_sub(1)))?;
        self.status.as_ref()?.pages.get(i)
    }

    /// The row under the cursor of a table the status carries.
    fn selected_in_status<T>(
        &self,
        view: View,
        pick: impl Fn(&super::link::Status) -> &[T],
    ) -> Option<&T> {
        let rows = self.rows(view);
        let t = self.tables.get(&view).copied().unwrap_or_default();
        let i = rows.get(t.selected.min(rows.len().saturating_sub(1)))?;
        pick(self.status.as_ref()?).get(i)
    }

    /// The incident under the cursor.
    pub fn selected_incident(&self) -> Option<&crate::flow::incident::IncidentRow> {
        self.selected_in_status(View::Incidents, |s| &s.incidents)
    }

    /// The silence under the cursor.
    pub fn selected_silence(&self) -> Option<&crate::noise::Silence> {
        self.selected_in_status(View::Silences, |s| &s.silences)
    }

    /// Who holds an item now, and since when: a claim lapses after the
    /// server's claim expiry.
    pub fn holder<'a>(&self, item: &'a ReviewItem) -> Option<(&'a str, Option<DateTime<Utc>>)> {
        match &self.status {
            Some(s) => item.holder(s.now, s.claim_expiry()),
            None => item.claimed_by.as_deref().map(|h| (h, item.claimed_at)),
        }
    }

    /// The i-th open item by urgency.
    pub fn review_at(&self, i: usize) -> Option<&ReviewItem> {
        self.reviews.get(&self.review_order.get(i)?.2).map(|b| &**b)
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
            Message::SilencePreview { matchers, preview } => self.previewed(&matchers, preview),
            Message::Older(page) => self.older(page),
        }
        Vec::new()
    }

    /// The counts of a silence still being written, if its dialog is open.
    fn previewed(&mut self, counted: &[String], answer: Result<SilencePreview, String>) {
        if let Focus::Dialog(d) = &mut self.focus
            && let DialogKind::Silence { matchers, preview } = &mut d.kind
            && matchers.as_slice() == counted
        {
            *preview = Some(answer);
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
