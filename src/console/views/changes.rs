//! Changes: where the shadow candidate (`--shadow`) chose otherwise than
//! the live policy, newest first, the two proposals side by side and what
//! a person answered. Enter shows the decision's explanation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::{short_time, state_style, window};
use crate::console::app::{App, View};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let shadowing = app
        .status
        .as_ref()
        .is_some_and(|s| s.total.shadow_agreement.is_some());
    let title = if shadowing || !app.changes.is_empty() {
        "shadow disagrees"
    } else {
        "shadow disagrees (no shadow candidate: serve or run with --shadow FILE)"
    };
    let (table, _) = window(
        app,
        View::Changes,
        area,
        title,
        &[
            "time", "decision", "type", "subject", "live", "", "shadow", "", "person",
        ],
        &[
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Length(20),
            Constraint::Length(6),
            Constraint::Length(20),
            Constraint::Min(10),
        ],
        |i, _| {
            let c = &app.changes[i];
            Row::new(vec![
                Cell::from(short_time(c.time)),
                Cell::from(c.id.clone()),
                Cell::from(c.kind.clone()),
                Cell::from(c.subject.clone()),
                Cell::from(c.live_mode.clone()).style(state_style(theme, &c.live_mode)),
                Cell::from(c.live.clone()),
                Cell::from(c.shadow_mode.clone()).style(state_style(theme, &c.shadow_mode)),
                Cell::from(c.shadow.clone()),
                Cell::from(c.person.clone()),
            ])
        },
    );
    frame.render_widget(table, area);
}
