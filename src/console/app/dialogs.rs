//! The review and task actions: which act at once, which open a dialog,
//! and the dialogs' keys.

use ratatui_textarea::TextArea;

use super::{App, Dialog, DialogKind, Effect, Focus, Input};
use crate::console::keymap::KeyAction;
use crate::flow::TaskAction;
use crate::review::Action;

impl App {
    pub(super) fn start_action(&mut self, action: KeyAction, effects: &mut Vec<Effect>) -> Focus {
        let Some(item) = self.selected_review().cloned() else {
            self.status_line = Some(("no review item selected".into(), true));
            return Focus::Normal;
        };
        let review_id = item.id.clone();
        let about = item.decision.subject.clone();
        // Someone else holds it: act only when asked twice.
        if let Some((holder, _)) = self.holder(&item).filter(|(h, _)| *h != self.operator.name)
            && self.confirm_held.as_ref() != Some(&(review_id.clone(), action))
        {
            self.status_line = Some((
                format!(
                    "{review_id} is held by {holder}: press {} again to act on it anyway",
                    action.label()
                ),
                true,
            ));
            self.confirm_held = Some((review_id, action));
            return Focus::Normal;
        }
        self.confirm_held = None;
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
            about,
            kind,
            note,
        }))
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
