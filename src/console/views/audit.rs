//! Audit: decisions newest first, filterable by actor, type, outcome.
//! Enter shows the explanation, with whether the hash chain verifies.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::{short_time, state_style, window};
use crate::console::app::{App, View};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let (table, _) = window(
        app,
        View::Audit,
        area,
        "decisions",
        &[
            "time", "decision", "type", "subject", "mode", "proposal", "conf", "who", "outcome",
        ],
        &[
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(18),
            Constraint::Length(18),
            Constraint::Length(7),
            Constraint::Length(24),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Min(10),
        ],
        |i, _| {
            let a = &app.audit[i];
            Row::new(vec![
                Cell::from(short_time(a.time)),
                Cell::from(a.id.clone()),
                Cell::from(a.kind.clone()),
                Cell::from(a.subject.clone()),
                Cell::from(a.mode.clone()).style(state_style(theme, &a.mode)),
                Cell::from(a.proposal.clone()),
                Cell::from(format!("{:.2}", a.confidence)),
                Cell::from(a.actor.clone()),
                Cell::from(a.outcome.clone()),
            ])
        },
    );
    frame.render_widget(table, area);
}
