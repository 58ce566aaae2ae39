//! Tasks: the steps people carry out, open, most urgent first: who has
//! each, for which flow, and how long is left. `d` completes, `x` fails
//! (the flow compensates), `r` hands it to another team, each with a note;
//! Enter explains the decision that made it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::window;
use crate::console::app::{App, View};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(status) = app.status.as_ref() else {
        return;
    };
    let now = status.now;
    let (table, _) = window(
        app,
        View::Tasks,
        area,
        "tasks",
        &[
            "task", "step", "subject", "team", "agent", "priority", "left",
        ],
        &[
            Constraint::Length(11),
            Constraint::Length(30),
            Constraint::Length(18),
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Min(9),
        ],
        |i, _| {
            let t = &status.tasks[i];
            let style = if t.breached {
                theme.bad()
            } else if t.escalated {
                theme.warn()
            } else {
                theme.muted()
            };
            let m = (t.deadline - now).num_minutes();
            let left = if m < 0 {
                format!("{}m late", -m)
            } else {
                format!("{m}m left")
            };
            let step = if t.compensation {
                format!("undo: {}", t.template)
            } else {
                t.template.clone()
            };
            Row::new(vec![
                Cell::from(t.id.clone()),
                Cell::from(step),
                Cell::from(t.subject.clone()),
                Cell::from(t.team.clone()),
                Cell::from(t.agent.clone().unwrap_or_else(|| "—".into())),
                Cell::from(t.priority.as_str()),
                Cell::from(left).style(style),
            ])
        },
    );
    frame.render_widget(table, area);
}
