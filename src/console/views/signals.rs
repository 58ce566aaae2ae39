//! Signals: a live tail, newest first, filterable.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::{short_time, window};
use crate::console::app::{App, View};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let title = if app.follow {
        "signals · following"
    } else {
        "signals · paused"
    };
    let (table, _) = window(
        app,
        View::Signals,
        area,
        title,
        &["time", "id", "type", "subject", "sev", "summary"],
        &[
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Length(20),
            Constraint::Length(18),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
        |i, _| {
            let s = &app.signals[i];
            let sev = s.severity.clone().unwrap_or_default();
            let sev_style = match sev.as_str() {
                "critical" | "error" => theme.bad(),
                "warning" => theme.warn(),
                _ => theme.muted(),
            };
            let kind = if s.duplicate {
                format!("{} (dup)", s.kind)
            } else {
                s.kind.clone()
            };
            Row::new(vec![
                Cell::from(short_time(s.time)),
                Cell::from(s.id.clone()),
                Cell::from(kind),
                Cell::from(s.subject.clone()),
                Cell::from(sev).style(sev_style),
                Cell::from(s.summary.clone()),
            ])
        },
    );
    frame.render_widget(table, area);
}
