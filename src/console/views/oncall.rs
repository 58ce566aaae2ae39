//! On-call: each schedule now and next. Who is on call (and by which
//! layer or override), until when, who takes over, and the next stretch
//! within a week when nobody is: the gap someone must fill.

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
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%a %H:%M").to_string();
    let (table, _) = window(
        app,
        View::OnCall,
        area,
        "on call (UTC)",
        &[
            "schedule", "team", "on call", "by", "until", "next", "next gap",
        ],
        &[
            Constraint::Length(16),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Min(20),
        ],
        |i, _| {
            let r = &status.rota[i];
            let (who, style) = match &r.now.person {
                Some(p) => (p.clone(), theme.ok()),
                None => ("nobody".to_string(), theme.bad()),
            };
            let next = r.next.as_ref().map_or("—".to_string(), |n| {
                n.person.clone().unwrap_or("nobody".into())
            });
            let gap = r.gap.map_or_else(
                || ("none this week".to_string(), theme.muted()),
                |(from, to)| (format!("{} – {}", time(from), time(to)), theme.warn()),
            );
            Row::new(vec![
                Cell::from(r.now.schedule.clone()),
                Cell::from(r.now.team.clone()),
                Cell::from(who).style(style),
                Cell::from(r.now.by.clone()),
                Cell::from(r.now.until.map_or("—".to_string(), time)),
                Cell::from(next),
                Cell::from(gap.0).style(gap.1),
            ])
        },
    );
    frame.render_widget(table, area);
}
