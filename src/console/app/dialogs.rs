//! The review actions: which act at once, which open a dialog, and the
//! dialogs' keys.

use ratatui_textarea::TextArea;

use super::{App, Dialog, DialogKind, Effect, Focus, Input};
use crate::console::keymap::KeyAction;
use crate::review::Action;

impl App {
    pub(super) fn start_action(&mut self, action: KeyAction, effects: &mut Vec<Effect>) -> Focus {
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
}
