//! Input in each focus: prompts, commands, the normal keys, opening a row.

use super::{App, Detail, Effect, Focus, Input, TableState, VIEWS, View};
use crate::console::keymap::KeyAction;

impl App {
    pub(super) fn input(&mut self, input: Input) -> Vec<Effect> {
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
            Some("ramp") => {
                use crate::decide::ramp::LeadCall;
                match words.next().and_then(LeadCall::parse) {
                    Some(call) => effects.push(Effect::Ramp {
                        call,
                        note: words.collect::<Vec<_>>().join(" "),
                    }),
                    None => {
                        self.status_line = Some((
                            "usage: :ramp advance | extend | rollback [note]".into(),
                            true,
                        ))
                    }
                }
            }
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
            KeyAction::Back if self.view == View::Review && !self.marked.is_empty() => {
                self.marked.clear();
                self.status_line = Some(("marks cleared".into(), false));
            }
            KeyAction::Mark if self.view == View::Review => self.mark(),
            KeyAction::MarkLike if self.view == View::Review => self.mark_like(),
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
            KeyAction::Up | KeyAction::PageUp | KeyAction::Top => {
                let delta = match action {
                    KeyAction::Up => -1,
                    KeyAction::PageUp => -(self.page as isize),
                    _ => -(isize::MAX / 2),
                };
                self.move_selection(delta);
            }
            KeyAction::Down | KeyAction::PageDown | KeyAction::Bottom => {
                let delta = match action {
                    KeyAction::Down => 1,
                    KeyAction::PageDown => self.page as isize,
                    _ => isize::MAX / 2,
                };
                let rows = self.move_selection(delta);
                effects.extend(self.older_wanted(rows));
            }
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
            KeyAction::Words => {
                if let Some(decision_id) = self.decision_under_cursor() {
                    effects.push(Effect::Words { decision_id });
                }
            }
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
            KeyAction::Complete | KeyAction::Fail | KeyAction::Reassign
                if self.view == View::Tasks =>
            {
                return self.start_task_action(action);
            }
            KeyAction::Override if self.view == View::OnCall => return self.start_override(),
            KeyAction::Silence if matches!(self.view, View::Review | View::Incidents) => {
                return self.start_silence(effects);
            }
            KeyAction::Resolve if self.view == View::Incidents => {
                if let Some(i) = self.selected_incident() {
                    effects.push(Effect::ResolveIncident {
                        incident_id: i.id.clone(),
                    });
                }
            }
            KeyAction::Expire if self.view == View::Silences => {
                if let Some(s) = self.selected_silence() {
                    effects.push(Effect::ExpireSilence {
                        silence_id: s.id.clone(),
                    });
                }
            }
            KeyAction::Acknowledge | KeyAction::Resolve if self.view == View::Pages => {
                if let Some(page) = self.selected_page() {
                    let action = match action {
                        KeyAction::Acknowledge => crate::engine::PageAction::Acknowledge,
                        _ => crate::engine::PageAction::Resolve,
                    };
                    effects.push(Effect::PageAct {
                        page_id: page.id.clone(),
                        action,
                    });
                }
            }
            _ => {}
        }
        Focus::Normal
    }

    /// The decision the selected row is about, in a view whose rows have
    /// one.
    fn decision_under_cursor(&self) -> Option<String> {
        let rows = self.rows(self.view);
        let t = self.tables.get(&self.view).copied().unwrap_or_default();
        let i = rows.get(t.selected)?;
        let status = self.status.as_ref();
        match self.view {
            View::Flows => Some(self.flow_rows[i].decision_id.clone()),
            View::Audit => Some(self.audit[i].id.clone()),
            View::Changes => Some(self.changes[i].id.clone()),
            View::Tasks => status?.tasks.get(i).map(|t| t.decision.clone()),
            View::Review => self.review_at(i).map(|item| item.decision.id.clone()),
            View::Incidents => status?.incidents.get(i).map(|inc| inc.decision_id.clone()),
            View::Pages => status?.pages.get(i)?.decision_id.clone(),
            _ => None,
        }
    }

    fn open(&mut self, effects: &mut Vec<Effect>) -> Focus {
        let rows = self.rows(self.view);
        let t = self.tables.get(&self.view).copied().unwrap_or_default();
        let Some(i) = rows.get(t.selected) else {
            return Focus::Normal;
        };
        if !matches!(self.view, View::Signals | View::Pages)
            && let Some(decision_id) = self.decision_under_cursor()
        {
            effects.push(Effect::Explain { decision_id });
            return Focus::Normal;
        }
        match self.view {
            View::Signals => {
                let s = &self.signals[i];
                Focus::Detail(Detail {
                    title: format!("signal {}", s.id),
                    lines: serde_json::to_string_pretty(&s.signal.to_cloudevent())
                        .unwrap_or_default()
                        .lines()
                        .map(String::from)
                        .collect(),
                    scroll: 0,
                })
            }
            View::Pages => match self.status.as_ref().and_then(|s| s.pages.get(i)) {
                Some(page) => Focus::Detail(Detail {
                    title: format!("page {}", page.id),
                    lines: crate::paging::pages::describe(page),
                    scroll: 0,
                }),
                None => Focus::Normal,
            },
            _ => Focus::Normal,
        }
    }
}
