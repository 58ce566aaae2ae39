//! Changes: a guarded ramp in progress (its step, what the step has read,
//! the last gate readings, and what a lead may do when it pauses), and
//! where the shadow candidate (`--shadow`) chose otherwise than the live
//! policy, newest first, the two proposals side by side and what a person
//! answered. Enter shows the decision's explanation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::{paragraph, short_time, state_style, window};
use crate::console::app::{App, View};
use crate::decide::ramp::{RampState, Status, StepTally, Verdict, classes_text};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let ramp = app.status.as_ref().and_then(|s| s.ramp.as_ref());
    let area = match ramp {
        Some(ramp) => {
            let step = app.status.as_ref().and_then(|s| s.ramp_step.as_ref());
            let lines = ramp_lines(ramp, step, app);
            // Wrapped lines take as many rows as they need.
            let inner = usize::from(area.width.saturating_sub(2).max(1));
            let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
            let height = (rows as u16 + 2).min(area.height / 2);
            let [top, rest] =
                Layout::vertical([Constraint::Length(height), Constraint::Min(3)]).areas(area);
            let title = format!("ramp {} · {}", ramp.id, ramp.status.as_str());
            frame.render_widget(paragraph(lines, &title, theme), top);
            rest
        }
        None => area,
    };
    let shadowing = app
        .status
        .as_ref()
        .is_some_and(|s| s.total.shadow_agreement.is_some());
    let title = if shadowing || !app.changes.is_empty() {
        "shadow disagrees"
    } else {
        "shadow disagrees (no shadow candidate: serve or run with --shadow FILE)"
    };
    let (table, _) = window(
        app,
        View::Changes,
        area,
        title,
        &[
            "time", "decision", "type", "subject", "live", "", "shadow", "", "person",
        ],
        &[
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Length(20),
            Constraint::Length(6),
            Constraint::Length(20),
            Constraint::Min(10),
        ],
        |i, _| {
            let c = &app.changes[i];
            Row::new(vec![
                Cell::from(short_time(c.time)),
                Cell::from(c.id.clone()),
                Cell::from(c.kind.clone()),
                Cell::from(c.subject.clone()),
                Cell::from(c.live_mode.clone()).style(state_style(theme, &c.live_mode)),
                Cell::from(c.live.clone()),
                Cell::from(c.shadow_mode.clone()).style(state_style(theme, &c.shadow_mode)),
                Cell::from(c.shadow.clone()),
                Cell::from(c.person.clone()),
            ])
        },
    );
    frame.render_widget(table, area);
}

/// A ramp as the pane shows it.
fn ramp_lines<'a>(ramp: &RampState, step: Option<&StepTally>, app: &App) -> Vec<Line<'a>> {
    let theme = &app.theme;
    let mut lines = vec![Line::raw(format!(
        "{} against {} · {} · step {}/{} at {:.0} %",
        ramp.candidate_version,
        ramp.live_version,
        classes_text(&ramp.classes),
        (ramp.step + 1).min(ramp.steps.len()),
        ramp.steps.len(),
        ramp.coverage() * 100.0
    ))];
    if let Some(t) = step {
        let batch = match ramp.full {
            None => format!("{}/{} decisions", t.decisions(), ramp.hold_until),
            Some(full) => format!(
                "{} decisions, full since {}, {}/{} outcomes in",
                t.decisions(),
                full.format("%H:%M"),
                t.settled(),
                t.decisions()
            ),
        };
        lines.push(Line::raw(format!(
            "this step: {batch} (candidate {}, live {} outcomes); {}",
            t.candidate.settled, t.live.settled, ramp.reason
        )));
    } else {
        lines.push(Line::raw(ramp.reason.clone()));
    }
    if let Some(last) = ramp.history.last() {
        for gate in &last.reading.gates {
            let style = match gate.verdict {
                Verdict::Pass => theme.ok(),
                Verdict::Inconclusive => theme.warn(),
                Verdict::Fail => theme.bad(),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", gate.gate), style),
                Span::raw(gate.why.clone()),
            ]));
        }
    }
    if ramp.status == Status::Paused {
        lines.push(Line::styled(
            "a lead decides: :ramp advance | :ramp extend | :ramp rollback [note]",
            theme.warn(),
        ));
    }
    lines
}
