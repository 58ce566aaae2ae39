//! Overview: signal rate, review queue, flows in flight, SLA at risk,
//! automation and override rates, outcomes within SLA, service health, team
//! load, and decision quality over time (model against rules-only).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, Gauge, GraphType, Paragraph, Sparkline};

use super::{paragraph, pct, titled};
use crate::console::app::App;
use crate::console::link::Status;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(status) = &app.status else {
        frame.render_widget(
            paragraph(
                vec![Line::raw("waiting for the engine…")],
                "overview",
                theme,
            ),
            area,
        );
        return;
    };
    let [row1, row2, row3] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Min(6),
    ])
    .areas(area);
    activity(frame, row1, app, status);
    rates_and_services(frame, row2, app, status);
    quality_and_load(frame, row3, app, status);
}

/// Signals per minute, the review queue's depth, flows in flight.
fn activity(frame: &mut Frame, row: Rect, app: &App, status: &Status) {
    let theme = &app.theme;
    let [rate, queue, inflight] = Layout::horizontal([
        Constraint::Percentage(40),
        Constraint::Percentage(30),
        Constraint::Percentage(30),
    ])
    .areas(row);

    let per_min: Vec<u64> = app.signal_rate.iter().copied().collect();
    let last = per_min.last().copied().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .data(&per_min)
            .style(theme.accent())
            .block(titled(
                &format!("signals/min {last} · total {}", status.signals),
                theme,
            )),
        rate,
    );
    let depth: Vec<u64> = app.queue_depth.iter().copied().collect();
    let oldest = status
        .oldest_review
        .map(|c| (status.now - c).num_minutes())
        .unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .data(&depth)
            .style(if status.open_reviews > 20 {
                theme.warn()
            } else {
                theme.ok()
            })
            .block(titled(
                &format!(
                    "review queue {}{} · oldest {oldest}m",
                    status.open_reviews,
                    budgets(status)
                ),
                theme,
            )),
        queue,
    );
    // A queue that grows faster than people answer it is a signal too.
    let (arriving, answered) = app.queue_rates(status.now, 15);
    let open = status.open_reviews as f64;
    let clears = if open == 0.0 {
        "clear".to_string()
    } else if answered > arriving {
        format!("clears in ~{:.0}m", open / (answered - arriving))
    } else if answered == 0.0 && arriving == 0.0 {
        "unanswered".to_string()
    } else {
        "growing".to_string()
    };
    let pace = Line::from(vec![
        Span::styled(
            format!(" {arriving:.1} in, {answered:.1} out /min · "),
            theme.muted(),
        ),
        Span::styled(
            clears.clone(),
            if clears.starts_with("clear") {
                theme.ok()
            } else {
                theme.warn()
            },
        ),
    ]);
    if queue.height > 2 {
        let line = Rect {
            y: queue.y + queue.height - 1,
            height: 1,
            x: queue.x + 1,
            width: queue.width.saturating_sub(2),
        };
        frame.render_widget(Paragraph::new(pace), line);
    }
    let at_risk = status.sla_at_risk;
    let lines = vec![
        Line::from(vec![
            Span::styled("in flight  ", theme.muted()),
            Span::styled(status.active_flows.to_string(), theme.title()),
        ]),
        Line::from(vec![
            Span::styled("SLA at risk ", theme.muted()),
            Span::styled(
                at_risk.to_string(),
                if at_risk > 0 {
                    theme.warn()
                } else {
                    theme.ok()
                },
            ),
        ]),
        Line::from(vec![
            Span::styled("done/failed ", theme.muted()),
            Span::styled(
                format!(
                    "{}/{}",
                    status.total.flows_done,
                    status.total.flows_failed + status.total.flows_compensated
                ),
                theme.base(),
            ),
        ]),
        pages_line(status, theme),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(titled("flows", theme)),
        inflight,
    );
}

/// The review budgets in use (`/200`, or per class when several).
fn budgets(status: &Status) -> String {
    match status.review_budgets.as_slice() {
        [] => String::new(),
        [(_, _, budget)] => format!("/{budget}"),
        many => {
            let each: Vec<String> = many
                .iter()
                .map(|(class, open, budget)| format!("{class} {open}/{budget}"))
                .collect();
            format!(" ({})", each.join(", "))
        }
    }
}

/// Pages not yet acknowledged, and each team's mean time to acknowledge.
fn pages_line<'a>(status: &Status, theme: &crate::console::theme::Theme) -> Line<'a> {
    let count = |state: &str| {
        status
            .paging
            .by_state
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    };
    let unacknowledged = count("triggered");
    let mtta: Vec<String> = status
        .paging
        .acknowledge_seconds
        .iter()
        .map(|(team, secs)| {
            format!(
                "{team} {}",
                super::age(chrono::Duration::seconds(*secs as i64))
            )
        })
        .collect();
    Line::from(vec![
        Span::styled("unacked pages ", theme.muted()),
        Span::styled(
            unacknowledged.to_string(),
            if unacknowledged > 0 {
                theme.bad()
            } else {
                theme.ok()
            },
        ),
        Span::styled(
            match mtta.is_empty() {
                true => String::new(),
                false => format!(" · MTTA {}", mtta.join(", ")),
            },
            theme.muted(),
        ),
    ])
}

/// Automation, overrides, outcomes in SLA, and each service's health.
fn rates_and_services(frame: &mut Frame, row: Rect, app: &App, status: &Status) {
    let theme = &app.theme;
    let [auto, overrides, sla, health] = Layout::horizontal([
        Constraint::Percentage(22),
        Constraint::Percentage(22),
        Constraint::Percentage(22),
        Constraint::Percentage(34),
    ])
    .areas(row);
    let gauge = |label: &str, v: Option<f64>, style: Style| {
        Gauge::default()
            .block(titled(label, theme))
            .gauge_style(style)
            .ratio(v.unwrap_or(0.0).clamp(0.0, 1.0))
            .label(pct(v))
    };
    frame.render_widget(
        gauge("automation", status.total.automation_rate, theme.accent()),
        auto,
    );
    // With an advisor, how often people chose what it proposed.
    let overrides_title = match status.total.advisor_agreement {
        Some(agreement) => format!("overrides · advisor {}", pct(Some(agreement))),
        None => "overrides".to_string(),
    };
    frame.render_widget(
        gauge(&overrides_title, status.total.override_rate, theme.warn()),
        overrides,
    );
    frame.render_widget(
        gauge("outcomes in SLA", status.total.within_sla, theme.ok()),
        sla,
    );
    let mut spans = Vec::new();
    for s in &status.services {
        let style = super::state_style(theme, &s.health);
        let mark = match s.health.as_str() {
            "up" => "●",
            "degraded" => "◐",
            _ => "○",
        };
        spans.push(Span::styled(format!("{mark} {} ", s.id), style));
    }
    // A candidate deciding beside the live policy (`--shadow`) is named in
    // the title, which the row's height never hides: how often it agrees
    // with the live policy, and with people where they answered.
    let title = match status.total.shadow_agreement {
        Some(agreement) => format!(
            "services · shadow: live {} people {}",
            pct(Some(agreement)),
            pct(status.total.shadow_people_agreement)
        ),
        None => "services".to_string(),
    };

    frame.render_widget(
        Paragraph::new(Line::from(spans))
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(titled(&title, theme)),
        health,
    );
}

/// Outcomes within SLA by hour against the rules-only shadow, and each
/// team's load.
fn quality_and_load(frame: &mut Frame, row: Rect, app: &App, status: &Status) {
    let theme = &app.theme;
    let [chart, teams] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(row);
    let series = |hourly: &[crate::metrics::Summary]| -> Vec<(f64, f64)> {
        hourly
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.within_sla.map(|v| (i as f64, v * 100.0)))
            .collect()
    };
    let model = series(&status.hourly);
    let baseline = series(&status.baseline_hourly);
    let hours = status.hourly.len().max(2) as f64;
    let datasets = vec![
        Dataset::default()
            .name("model")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.ok())
            .data(&model),
        Dataset::default()
            .name("rules only")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.muted())
            .data(&baseline),
    ];
    let title = match status.deciding() {
        Some(deciding) => format!("within SLA by hour · {deciding}"),
        None => "outcomes within SLA by hour: model vs rules-only".to_string(),
    };
    frame.render_widget(
        Chart::new(datasets)
            .block(titled(&title, theme))
            .x_axis(
                Axis::default()
                    .bounds([0.0, hours - 1.0])
                    .style(theme.muted())
                    .labels(["h0".to_string(), format!("h{}", hours as usize - 1)]),
            )
            .y_axis(
                Axis::default()
                    .bounds([0.0, 100.0])
                    .style(theme.muted())
                    .labels(["0%", "50%", "100%"]),
            ),
        chart,
    );
    let team_lines: Vec<Line> = status
        .teams
        .iter()
        .map(|t| {
            let util = f64::from(t.load) / f64::from(t.capacity.max(1));
            let width = (teams.width.saturating_sub(28)) as f64;
            let bar = "█".repeat(((util.min(1.0)) * width).round() as usize);
            let style = super::load_style(theme, util);
            Line::from(vec![
                Span::styled(format!("{:<19}", t.id), theme.base()),
                Span::styled(bar, style),
                Span::styled(format!(" {:.0}%", util * 100.0), theme.muted()),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(team_lines).block(titled("team load", theme)),
        teams,
    );
}
