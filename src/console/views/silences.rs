//! Silences: what each holds back (its matchers), until when, who made it
//! and why, and how many signals it has held. `x` ends the one under the
//! cursor now (yours, or any as a lead). They are made over Alertmanager's
//! API (`amtool silence add`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::window;
use crate::console::app::{App, View};
use crate::noise::SilenceState;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(status) = app.status.as_ref() else {
        return;
    };
    let now = status.now;
    let (table, _) = window(
        app,
        View::Silences,
        area,
        "silences",
        &[
            "silence", "state", "ends", "by", "held", "matchers", "comment",
        ],
        &[
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Min(16),
            Constraint::Length(24),
        ],
        |i, _| {
            let s = &status.silences[i];
            let state = s.state(now);
            let style = match state {
                SilenceState::Active => theme.warn(),
                SilenceState::Pending => theme.base(),
                SilenceState::Expired => theme.muted(),
            };
            let ends = match state {
                SilenceState::Expired => "ended".to_string(),
                _ => format!("in {}", super::age(s.ends_at - now)),
            };
            Row::new(vec![
                Cell::from(s.id.chars().take(8).collect::<String>()),
                Cell::from(state.as_str()).style(style),
                Cell::from(ends),
                Cell::from(s.created_by.clone()),
                Cell::from(s.held.to_string()),
                Cell::from(s.text()),
                Cell::from(s.comment.clone()),
            ])
        },
    );
    frame.render_widget(table, area);
}
