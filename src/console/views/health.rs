//! Health: services with status and latency, what the noise rules hold,
//! circuit breakers, teams with capacity, load and shift, and the signals
//! held in quarantine.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Row, Table};

use super::{paragraph, state_style, titled};
use crate::console::app::App;
use crate::console::link::Status;
use crate::console::theme::Theme;

// Over 80 lines: four panes laid out together.

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(status) = &app.status else {
        frame.render_widget(
            paragraph(vec![Line::raw("waiting for the engine…")], "health", theme),
            area,
        );
        return;
    };
    let [top, teams_area] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Min(5)]).areas(area);
    let [services_area, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let [breakers_area, quarantine_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
    let [services_area, noise_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(5)]).areas(services_area);
    draw_services(frame, services_area, status, theme);
    draw_noise(frame, noise_area, status, theme);
    draw_breakers(frame, breakers_area, status, theme);
    draw_teams(frame, teams_area, status, theme);
    draw_quarantine(frame, quarantine_area, app);
}

/// The services' health and latency.
fn draw_services(frame: &mut Frame, services_area: Rect, status: &Status, theme: &Theme) {
    let services: Vec<Row> = status
        .services
        .iter()
        .map(|s| {
            Row::new(vec![
                Cell::from(s.id.clone()),
                Cell::from(s.health.clone()).style(state_style(theme, &s.health)),
                Cell::from(format!("{} ms", s.latency_ms)),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            services,
            [
                Constraint::Length(16),
                Constraint::Length(10),
                Constraint::Min(8),
            ],
        )
        .header(Row::new(vec!["service", "health", "latency"]).style(theme.title()))
        .block(titled("services", theme)),
        services_area,
    );
}

/// What the noise rules hold back now (alerts paused as possible
/// transients, alerts flapping), and the signals they held since start.
fn draw_noise(frame: &mut Frame, area: Rect, status: &Status, theme: &Theme) {
    let noise = &status.noise;
    let now = Line::from(vec![
        ratatui::text::Span::raw(format!("now: {} paused as transient · ", noise.paused)),
        ratatui::text::Span::styled(
            format!("{} flapping", noise.flapping),
            if noise.flapping > 0 {
                theme.warn()
            } else {
                theme.muted()
            },
        ),
    ]);
    let held: Vec<String> = noise
        .held
        .iter()
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    let since = match held.is_empty() {
        true => Line::styled("since start: nothing held", theme.muted()),
        false => Line::raw(format!("since start: {}", held.join(" · "))),
    };
    frame.render_widget(paragraph(vec![now, since], "noise held", theme), area);
}

/// The circuit breakers: the model's, once it has opened, and each
/// executor's.
fn draw_breakers(frame: &mut Frame, breakers_area: Rect, status: &Status, theme: &Theme) {
    // The model's breaker first, once it has opened (it is not an
    // executor: no failures in a row, its readings are in the journal).
    let model = status.model_breaker.as_ref().map(|m| {
        let state = if m.open { "open" } else { "closed" };
        Row::new(vec![
            Cell::from("model"),
            Cell::from(state).style(state_style(theme, state)),
            Cell::from(""),
            Cell::from(m.trips.to_string()),
        ])
    });
    let executors = status.breakers.iter().map(|b| {
        Row::new(vec![
            Cell::from(b.executor.clone()),
            Cell::from(b.state.as_str()).style(state_style(theme, b.state.as_str())),
            Cell::from(b.failures.to_string()),
            Cell::from(b.trips.to_string()),
        ])
    });
    // Each paging channel, by its last attempt: failing means people are
    // being moved on to their next method.
    let channels = status.paging.channels.iter().map(|c| {
        let state = if c.failing { "failing" } else { "delivering" };
        Row::new(vec![
            Cell::from(format!("page by {}", c.method)),
            Cell::from(state).style(if c.failing { theme.bad() } else { theme.ok() }),
            Cell::from(c.failed.to_string()),
            Cell::from(""),
        ])
    });
    // The advisor's, where one runs: while it is open there is no advice,
    // and everything else goes on.
    let advisor = status.advisor.as_ref().map(|a| {
        let state = if a.open { "open" } else { "closed" };
        Row::new(vec![
            Cell::from(format!("advisor {}", a.model)),
            Cell::from(state).style(state_style(theme, state)),
            Cell::from(a.failures_in_a_row.to_string()),
            Cell::from(a.trips.to_string()),
        ])
    });
    let mut breakers: Vec<Row> = model
        .into_iter()
        .chain(advisor)
        .chain(executors)
        .chain(channels)
        .collect();
    if breakers.is_empty() {
        breakers.push(Row::new(vec![
            Cell::from("no automation has run yet").style(theme.muted()),
        ]));
    }
    let breakers_title = match (&status.model_breaker, &status.advisor) {
        (Some(m), _) if m.open => format!(
            "circuit breakers · model open since {}: rules decide",
            m.since.format("%H:%M")
        ),
        (_, Some(a)) if a.open => "circuit breakers · advisor open: no advice".to_string(),
        _ => "circuit breakers".to_string(),
    };
    frame.render_widget(
        Table::new(
            breakers,
            [
                Constraint::Length(16),
                Constraint::Length(10),
                Constraint::Length(9),
                Constraint::Min(5),
            ],
        )
        .header(Row::new(vec!["executor", "breaker", "failures", "trips"]).style(theme.title()))
        .block(titled(&breakers_title, theme)),
        breakers_area,
    );
}

/// Each team's load against its capacity, and its shift.
fn draw_teams(frame: &mut Frame, teams_area: Rect, status: &Status, theme: &Theme) {
    let teams: Vec<Row> = status
        .teams
        .iter()
        .map(|t| {
            let util = f64::from(t.load) / f64::from(t.capacity.max(1));
            let bar_len = ((util.min(2.0)) * 10.0).round() as usize;
            let bar = format!("{:<20}", "█".repeat(bar_len));
            let style = super::load_style(theme, util);
            Row::new(vec![
                Cell::from(t.id.clone()),
                Cell::from(t.process.clone()),
                Cell::from(format!("{}/{}", t.load, t.capacity)),
                Cell::from(bar).style(style),
                Cell::from(format!(
                    "{} {}",
                    t.shift,
                    if t.on_shift { "on shift" } else { "off shift" }
                )),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            teams,
            [
                Constraint::Length(20),
                Constraint::Length(17),
                Constraint::Length(8),
                Constraint::Length(21),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(vec!["team", "process", "load", "", "shift"]).style(theme.title()))
        .block(titled("teams", theme)),
        teams_area,
    );
}

/// The signals the engine could not decide: when, which, and why.
fn draw_quarantine(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(status) = &app.status else { return };
    let title = format!("quarantine ({} held)", status.quarantined);
    if status.quarantine.is_empty() {
        let none = Line::styled("no signal quarantined", theme.muted());
        frame.render_widget(paragraph(vec![none], &title, theme), area);
        return;
    }
    let rows: Vec<Row> = status
        .quarantine
        .iter()
        .map(|q| {
            Row::new(vec![
                Cell::from(q.time.format("%H:%M:%S").to_string()),
                Cell::from(format!("{} {}", q.kind, q.signal_id)),
                Cell::from(q.error.clone()).style(theme.bad()),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(8),
                Constraint::Percentage(40),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(vec!["time", "signal", "error"]).style(theme.title()))
        .block(titled(&title, theme)),
        area,
    );
}
