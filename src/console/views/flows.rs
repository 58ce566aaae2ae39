//! Flows: in-flight and recent, with state, current step, owner, deadline.
//! Enter opens the decision's explanation with the step timeline.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::{short_time, state_style, window};
use crate::console::app::{App, View};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let now = app.status.as_ref().map(|s| s.now);
    let (table, _) = window(
        app,
        View::Flows,
        area,
        "flows",
        &[
            "flow", "signal", "subject", "option", "state", "step", "owner", "deadline",
        ],
        &[
            Constraint::Length(9),
            Constraint::Length(18),
            Constraint::Length(18),
            Constraint::Length(22),
            Constraint::Length(13),
            Constraint::Length(28),
            Constraint::Length(26),
            Constraint::Min(9),
        ],
        |i, _| {
            let f = &app.flow_rows[i];
            let deadline_style = if f.breached {
                theme.bad()
            } else if f.escalated {
                theme.warn()
            } else {
                theme.muted()
            };
            let left = match now {
                Some(n) if !f.state.is_terminal() => {
                    let m = (f.deadline - n).num_minutes();
                    if m < 0 {
                        format!("{}m late", -m)
                    } else {
                        format!("{m}m left")
                    }
                }
                _ => short_time(f.deadline),
            };
            let step = if f.steps > 1 {
                format!("{} (+{})", f.step, f.steps - 1)
            } else {
                f.step.clone()
            };
            Row::new(vec![
                Cell::from(f.id.clone()),
                Cell::from(f.signal_type.clone()),
                Cell::from(f.subject.clone()),
                Cell::from(f.option.clone()),
                Cell::from(f.state.as_str()).style(state_style(theme, f.state.as_str())),
                Cell::from(step),
                Cell::from(f.owner.clone()),
                Cell::from(left).style(deadline_style),
            ])
        },
    );
    frame.render_widget(table, area);
}
