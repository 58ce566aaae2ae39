//! The review and task actions: which act at once, which open a dialog,
//! and the dialogs' keys.

use ratatui_textarea::TextArea;

use super::{App, Dialog, DialogKind, Effect, Focus, Input};
use crate::console::keymap::KeyAction;
use crate::flow::TaskAction;
use crate::review::Action;

impl App {
    pub(super) fn start_action(&mut self, action: KeyAction, effects: &mut Vec<Effect>) -> Focus {
        if !self.marked.is_empty() {
            return self.start_bulk(action);
        }
        let Some(item) = self.selected_review().cloned() else {
            self.status_line = Some(("no review item selected".into(), true));
            return Focus::Normal;
        };
        let review_id = item.id.clone();
        let about = item.decision.subject.clone();
        // Someone else holds it: act only when asked twice.
        let held = self
            .holder(&item)
            .filter(|(h, _)| *h != self.operator.name)
            .map(|(holder, _)| {
                format!(
                    "{review_id} is held by {holder}: press {} again to act on it anyway",
                    action.label()
                )
            });
        if self.asked_once(&review_id, action, held) {
            return Focus::Normal;
        }
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
                    target: review_id,
                    targets: Vec::new(),
                    about,
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
                    target: review_id,
                    targets: Vec::new(),
                    about,
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

    /// Acting on what someone else holds goes only when asked twice: with
    /// `held` (why to ask), the first time says it and remembers (`key`,
    /// `action`), and true stops the action; asked again, or with nothing
    /// held, it goes.
    fn asked_once(&mut self, key: &str, action: KeyAction, held: Option<String>) -> bool {
        match held {
            Some(why) if self.confirm_held.as_ref() != Some(&(key.to_string(), action)) => {
                self.status_line = Some((why, true));
                self.confirm_held = Some((key.to_string(), action));
                true
            }
            _ => {
                self.confirm_held = None;
                false
            }
        }
    }

    /// Marks the selected item, or unmarks it.
    pub(super) fn mark(&mut self) {
        let Some(id) = self.selected_review().map(|i| i.id.clone()) else {
            return;
        };
        if !self.marked.remove(&id) {
            self.marked.insert(id);
        }
        self.say_marked();
    }

    /// Marks every open item of the selected one's type and proposal (or,
    /// if they all are, unmarks them).
    pub(super) fn mark_like(&mut self) {
        let Some(item) = self.selected_review() else {
            return;
        };
        let like = |i: &crate::review::ReviewItem| {
            i.decision.signal_type == item.decision.signal_type
                && i.decision.proposal == item.decision.proposal
        };
        let ids: Vec<String> = self
            .reviews
            .values()
            .filter(|i| like(i))
            .map(|i| i.id.clone())
            .collect();
        if ids.iter().all(|id| self.marked.contains(id)) {
            for id in &ids {
                self.marked.remove(id);
            }
        } else {
            self.marked.extend(ids);
        }
        self.say_marked();
    }

    fn say_marked(&mut self) {
        let n = self.marked.len();
        self.status_line = Some((
            match n {
                0 => "no item marked".to_string(),
                _ => format!(
                    "{n} marked: {} or {} acts on each with one note; {} clears",
                    self.keymap.key_for(KeyAction::Approve),
                    self.keymap.key_for(KeyAction::Reject),
                    self.keymap.key_for(KeyAction::Back),
                ),
            },
            false,
        ));
    }

    /// Approve or reject every marked item with one note (each journaled as
    /// its own action); asked twice when some are held by someone else.
    fn start_bulk(&mut self, action: KeyAction) -> Focus {
        let a = match action {
            KeyAction::Approve => Action::Approve,
            KeyAction::Reject => Action::Reject,
            other => {
                self.status_line = Some((
                    format!(
                        "{} marked items can be approved or rejected, not {}; {} clears the marks",
                        self.marked.len(),
                        other.label(),
                        self.keymap.key_for(KeyAction::Back)
                    ),
                    true,
                ));
                return Focus::Normal;
            }
        };
        let items: Vec<&crate::review::ReviewItem> = self
            .marked
            .iter()
            .filter_map(|id| self.reviews.get(id).map(|b| &**b))
            .collect();
        let held: Vec<String> = items
            .iter()
            .filter_map(|i| self.holder(i).filter(|(h, _)| *h != self.operator.name))
            .map(|(h, _)| h.to_string())
            .collect();
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let mut kinds: Vec<String> = items
            .iter()
            .map(|i| format!("{} → {}", i.decision.signal_type, i.decision.proposal))
            .collect();
        kinds.sort();
        kinds.dedup();
        let held = (!held.is_empty()).then(|| {
            format!(
                "{} of the marked items are held by others ({}): press {} again to act on them anyway",
                held.len(),
                held.join(", "),
                action.label()
            )
        });
        if self.asked_once("marked", action, held) {
            return Focus::Normal;
        }
        let mut note = TextArea::default();
        note.set_placeholder_text("why, for each of them (enter to confirm, esc to cancel)");
        Focus::Dialog(Box::new(Dialog {
            target: format!("{} items", ids.len()),
            targets: ids,
            about: match kinds.len() {
                1 => kinds.remove(0),
                n => format!("{n} kinds"),
            },
            kind: DialogKind::Note(a),
            note,
        }))
    }

    /// A task action from the Tasks view: each opens a dialog for the note
    /// (and, to hand a task on, the team).
    pub(super) fn start_task_action(&mut self, action: KeyAction) -> Focus {
        let Some(task) = self.selected_task() else {
            self.status_line = Some(("no task selected".into(), true));
            return Focus::Normal;
        };
        let target = task.id.clone();
        let about = task.subject.clone();
        let current = task.team.clone();
        let mut note = TextArea::default();
        note.set_placeholder_text("note (enter to confirm, esc to cancel)");
        let kind = match action {
            KeyAction::Complete => DialogKind::Task(TaskAction::Complete),
            KeyAction::Fail => DialogKind::Task(TaskAction::Fail),
            KeyAction::Reassign => {
                let teams: Vec<String> = self
                    .status
                    .as_ref()
                    .map(|s| {
                        s.teams
                            .iter()
                            .map(|t| t.id.clone())
                            .filter(|t| *t != current)
                            .collect()
                    })
                    .unwrap_or_default();
                if teams.is_empty() {
                    self.status_line = Some(("no other team to hand it to".into(), true));
                    return Focus::Normal;
                }
                DialogKind::Reassign {
                    teams,
                    selected: 0,
                    writing: false,
                }
            }
            other => {
                let why = format!("`{}` is not an action on a task", other.label());
                self.status_line = Some((why, true));
                return Focus::Normal;
            }
        };
        Focus::Dialog(Box::new(Dialog {
            target,
            targets: Vec::new(),
            about,
            kind,
            note,
        }))
    }

    /// An override from the On-call view: a dialog for "PERSON DURATION"
    /// on the schedule under the cursor.
    pub(super) fn start_override(&mut self) -> Focus {
        let rows = self.rows(super::View::OnCall);
        let t = self
            .tables
            .get(&super::View::OnCall)
            .copied()
            .unwrap_or_default();
        let rota = rows
            .get(t.selected.min(rows.len().saturating_sub(1)))
            .and_then(|i| self.status.as_ref()?.rota.get(i));
        let Some(rota) = rota else {
            self.status_line = Some(("no schedule selected".into(), true));
            return Focus::Normal;
        };
        let schedule = rota.now.schedule.clone();
        let mut note = TextArea::default();
        note.set_placeholder_text("who and for how long, e.g. emil 4h (enter to confirm)");
        Focus::Dialog(Box::new(Dialog {
            target: schedule.clone(),
            targets: Vec::new(),
            about: rota.now.team.clone(),
            kind: DialogKind::OnCall { schedule },
            note,
        }))
    }

    /// "Silence like this" on the review item or incident under the
    /// cursor: matchers for signals like it, counted by the backend before
    /// anyone confirms.
    pub(super) fn start_silence(&mut self, effects: &mut Vec<Effect>) -> Focus {
        let quoted = |name: &str, value: &str| {
            let value = serde_json::to_string(value).unwrap_or_default();
            format!("{name}={value}")
        };
        let picked = match self.view {
            super::View::Incidents => self.selected_incident().map(|i| {
                let mut m = vec![quoted("type", &i.kind)];
                for (path, value) in &i.labels {
                    // The label a path's value carries: its last segment
                    // under data. or extensions.
                    let name = match path.split_once('.') {
                        Some(("data" | "extensions", rest)) => {
                            rest.rsplit('.').next().unwrap_or(rest)
                        }
                        _ => path.as_str(),
                    };
                    m.push(quoted(name, value));
                }
                (m, i.id.clone(), i.group.clone())
            }),
            _ => self.selected_review().map(|item| {
                let labels = crate::noise::labels(&item.signal);
                let mut m = vec![quoted("type", &item.signal.kind)];
                m.push(quoted("subject", &item.signal.subject));
                if let Some(name) = labels.get("alertname") {
                    m.push(quoted("alertname", name));
                }
                (m, item.id.clone(), item.signal.subject.clone())
            }),
        };
        let Some((matchers, target, about)) = picked else {
            self.status_line = Some(("nothing selected to silence".into(), true));
            return Focus::Normal;
        };
        effects.push(Effect::PreviewSilence {
            matchers: matchers.clone(),
        });
        let mut note = TextArea::default();
        note.set_placeholder_text(
            "for how long and why, e.g. 2h database upgrade (enter to confirm)",
        );
        Focus::Dialog(Box::new(Dialog {
            target,
            targets: Vec::new(),
            about,
            kind: DialogKind::Silence {
                matchers,
                preview: None,
            },
            note,
        }))
    }

    /// "DURATION COMMENT" as a silence from the engine's now; why not.
    fn read_silence(&self, matchers: &[String], text: &str) -> Result<Effect, String> {
        let text = text.trim();
        let (span, comment) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let span = read_span(span)?;
        let comment = comment.trim();
        if comment.is_empty() {
            return Err("say why after the duration, e.g. `2h database upgrade`".into());
        }
        let from = self.engine_now();
        Ok(Effect::PutSilence {
            matchers: matchers.to_vec(),
            starts: from,
            ends: from + span,
            comment: comment.to_string(),
        })
    }

    /// The engine's now, as its last status said (a simulated run keeps
    /// its own clock).
    fn engine_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.status
            .as_ref()
            .map_or_else(chrono::Utc::now, |s| s.now)
    }

    /// "PERSON DURATION" as an override from the engine's now; why not.
    fn read_override(&self, schedule: &str, text: &str) -> Result<Effect, String> {
        let mut words = text.split_whitespace();
        let (Some(person), Some(span), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "{text:?}: write who and for how long, e.g. `emil 4h`"
            ));
        };
        let span = read_span(span)?;
        let from = self.engine_now();
        Ok(Effect::SetOverride {
            schedule: schedule.to_string(),
            person: person.to_string(),
            from,
            to: from + span,
        })
    }

    pub(super) fn dialog(
        &mut self,
        mut d: Box<Dialog>,
        input: Input,
        effects: &mut Vec<Effect>,
    ) -> Focus {
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
                writing,
            }
            | DialogKind::Reassign {
                teams: choices,
                selected,
                writing,
            } if !*writing => {
                match input {
                    Input::Key(KeyAction::Up) => *selected = selected.saturating_sub(1),
                    Input::Key(KeyAction::Down) => {
                        *selected = (*selected + 1).min(choices.len().saturating_sub(1))
                    }
                    Input::Key(KeyAction::Confirm) => *writing = true,
                    _ => {}
                }
                Focus::Dialog(d)
            }
            _ => match input {
                Input::Key(KeyAction::Confirm) => {
                    let note = d.note.lines().join("\n");
                    let target = d.target.clone();
                    let read = match &d.kind {
                        DialogKind::OnCall { schedule } => {
                            Some(self.read_override(schedule, &note))
                        }
                        DialogKind::Silence { matchers, .. } => {
                            Some(self.read_silence(matchers, &note))
                        }
                        _ => None,
                    };
                    if let Some(read) = read {
                        match read {
                            Ok(effect) => {
                                effects.push(effect);
                                return Focus::Normal;
                            }
                            Err(why) => {
                                self.status_line = Some((why, true));
                                return Focus::Dialog(d);
                            }
                        }
                    }
                    let effect = match &d.kind {
                        DialogKind::Override {
                            choices, selected, ..
                        } => Effect::Act {
                            review_id: target,
                            action: Action::Override {
                                option: choices.get(*selected).cloned().unwrap_or_default(),
                            },
                            note,
                        },
                        DialogKind::Note(a) if !d.targets.is_empty() => {
                            self.marked.clear();
                            Effect::ActOnEach {
                                review_ids: std::mem::take(&mut d.targets),
                                action: a.clone(),
                                note,
                            }
                        }
                        DialogKind::Note(a) => Effect::Act {
                            review_id: target,
                            action: a.clone(),
                            note,
                        },
                        DialogKind::Task(a) => Effect::TaskAct {
                            task_id: target,
                            action: a.clone(),
                            note,
                        },
                        DialogKind::Reassign {
                            teams, selected, ..
                        } => Effect::TaskAct {
                            task_id: target,
                            action: TaskAction::Reassign {
                                team: teams.get(*selected).cloned(),
                                agent: None,
                            },
                            note,
                        },
                        DialogKind::OnCall { .. } | DialogKind::Silence { .. } => {
                            return Focus::Dialog(d);
                        }
                    };
                    effects.push(effect);
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
}

/// A dialog's span of time ("30m", "4h", "2d"), longer than nothing.
fn read_span(text: &str) -> Result<chrono::Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .filter(|d| *d > chrono::Duration::zero())
        .ok_or_else(|| format!("{text:?} is not a duration like 30m, 4h or 2d"))
}
