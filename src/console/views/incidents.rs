//! Incidents: alerts grouped while any fires, open ones first: how many
//! alerts each has gathered and how many still fire, its group, and who
//! resolved it. `r` resolves the one under the cursor (its flow closes,
//! its pages with it); Enter explains the decision of its first alert.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};

use super::window;
use crate::console::app::{App, View};
use crate::flow::incident::IncidentState;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(status) = app.status.as_ref() else {
        return;
    };
    let now = status.now;
    let (table, _) = window(
        app,
        View::Incidents,
        area,
        "incidents",
        &["incident", "state", "alerts", "age", "group", "resolved by"],
        &[
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(15),
            Constraint::Length(5),
            Constraint::Min(20),
            Constraint::Length(34),
        ],
        |i, _| {
            let r = &status.incidents[i];
            let state = match r.state {
                IncidentState::Open => theme.bad(),
                IncidentState::Resolved => theme.muted(),
            };
            Row::new(vec![
                Cell::from(r.id.clone()),
                Cell::from(r.state.as_str()).style(state),
                Cell::from(format!("{}/{} firing", r.firing, r.alerts)),
                Cell::from(super::age(now - r.opened)),
                Cell::from(r.group.clone()),
                Cell::from(
                    r.resolved
                        .as_ref()
                        .map_or("—".to_string(), |(who, _)| who.clone()),
                ),
            ])
        },
    );
    frame.render_widget(table, area);
}
