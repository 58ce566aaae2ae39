//! Pages: who is being paged about what, open ones first: the state, the
//! level it has reached, who acknowledged, and how its last notification
//! went. `a` acknowledges (escalation stops for everyone), `r` resolves;
//! Enter shows every attempt.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::window;
use crate::console::app::{App, View};
use crate::paging::{Delivery, PageState};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(status) = app.status.as_ref() else {
        return;
    };
    let now = status.now;
    let (table, _) = window(
        app,
        View::Pages,
        area,
        "pages",
        &[
            "page",
            "state",
            "level",
            "age",
            "by",
            "last attempt",
            "what",
        ],
        &[
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Length(8),
            Constraint::Length(22),
            Constraint::Min(8),
        ],
        |i, _| {
            let p = &status.pages[i];
            let state_style = match p.state {
                PageState::Triggered => theme.bad(),
                PageState::Acknowledged => theme.warn(),
                PageState::Resolved => theme.muted(),
            };
            let by = match (&p.resolved, &p.acknowledged) {
                (Some((who, _)), _) | (None, Some((who, _))) => who.clone(),
                (None, None) => "—".into(),
            };
            let last = p.attempts.last().map_or_else(
                || ("nobody reachable".to_string(), theme.bad()),
                |a| {
                    let (how, style) = match &a.delivery {
                        Delivery::Sending => ("sending", theme.muted()),
                        Delivery::Delivered(_) => ("delivered", theme.ok()),
                        Delivery::Failed(_) => ("FAILED", theme.bad()),
                    };
                    (format!("{} {} {how}", a.person, a.method.as_str()), style)
                },
            );
            Row::new(vec![
                Cell::from(p.id.clone()),
                Cell::from(p.state.as_str()).style(state_style),
                Cell::from(format!("{}·{}", p.level + 1, p.round + 1)),
                Cell::from(super::age(now - p.opened)),
                Cell::from(by),
                Cell::from(last.0).style(last.1),
                Cell::from(p.title.clone()),
            ])
        },
    );
    frame.render_widget(table, area);
}
