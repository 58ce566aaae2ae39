//! Review: the queue by urgency, and beside it the decision context of the
//! selected item: signal, snapshot, proposal with confidence and its top
//! feature contributions, alternatives with scores, policies that fired,
//! time left.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

use super::{titled, window};
use crate::console::app::{App, View};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    // Side by side when there is room; stacked on narrow terminals.
    let [queue, context] = if area.width >= 110 {
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area)
    } else {
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area)
    };
    queue_table(frame, queue, app);
    decision_context(frame, context, app);
}

/// The widths of the held, proposal, subject and type columns in a queue
/// `width` wide with `columns` columns: what the fixed columns, borders and
/// gaps leave. When it is not enough, the holder gives way first (the
/// context pane names them in full), then subject and type down to 12, then
/// the proposal's minimum, then subject and type to the bone.
fn shared(width: u16, columns: usize, held: u16, subject: u16, kind: u16) -> [u16; 4] {
    let rest = width.saturating_sub(2 + columns as u16 - 1 + 9 + 5 + 6);
    let mut widths = [held, 10, subject, kind];
    let mut over = widths.iter().sum::<u16>().saturating_sub(rest);
    for (i, floor) in [(0, held.min(1)), (2, 12), (3, 12), (1, 6), (2, 7), (3, 4)] {
        let give = over.min(widths[i].saturating_sub(floor));
        widths[i] -= give;
        over -= give;
    }
    widths
}

/// The open items, most urgent first, with the time left to each and who
/// holds it. Type, subject and holder columns are as wide as what the rows
/// in view hold (within bounds); the proposal takes what is left.
// Over 80 lines: the columns' widths from the rows in view, then the row
// builder, in the order they are drawn.
fn queue_table(frame: &mut Frame, queue: Rect, app: &App) {
    let theme = &app.theme;
    let now = app.status.as_ref().map(|s| s.now);
    // Widths from the rows in view: what is drawn, however long the queue.
    let items: Vec<_> = super::in_view(app, View::Review, queue)
        .into_iter()
        .filter_map(|i| app.review_at(i))
        .collect();
    let widest = |f: &dyn Fn(&crate::review::ReviewItem) -> usize, min: usize, max: usize| {
        items
            .iter()
            .map(|it| f(it))
            .max()
            .unwrap_or(0)
            .clamp(min, max) as u16
    };
    let kind = widest(&|it| it.decision.signal_type.chars().count(), 4, 20);
    let subject = widest(&|it| it.decision.subject.chars().count(), 7, 18);
    // Who holds each item, and for how long ("@lena 4m").
    let held_by = |it: &crate::review::ReviewItem| {
        app.holder(it).map(|(who, since)| match (since, now) {
            (Some(since), Some(now)) => format!("@{who} {}m", (now - since).num_minutes().max(0)),
            _ => format!("@{who}"),
        })
    };
    let held = items
        .iter()
        .filter_map(|it| held_by(it))
        .map(|h| h.chars().count())
        .max()
        .map_or(0, |w| w.clamp(4, 16) as u16);
    let header: &[&str] = if held > 0 {
        &[
            "item", "type", "subject", "proposal", "left", "prio", "held",
        ]
    } else {
        &["item", "type", "subject", "proposal", "left", "prio"]
    };
    let [held, proposal, subject, kind] = shared(queue.width, header.len(), held, subject, kind);
    let (table, _) = window(
        app,
        View::Review,
        queue,
        &match app.marked.len() {
            0 => "review queue".to_string(),
            n => format!("review queue · {n} marked"),
        },
        header,
        &[
            Constraint::Length(9),
            Constraint::Length(kind),
            Constraint::Length(subject),
            Constraint::Min(proposal),
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Length(held),
        ][..header.len()],
        |i, _| {
            let Some(it) = app.review_at(i) else {
                return Row::new(Vec::<Cell>::new());
            };
            let left = now.map(|n| (it.deadline - n).num_minutes()).unwrap_or(0);
            let left_style = if left < 5 {
                theme.bad()
            } else if left < 15 {
                theme.warn()
            } else {
                theme.base()
            };
            let mut prio = it.priority.as_str().chars().take(4).collect::<String>();
            if it.required_role.as_str() == "lead" {
                prio.push_str(" L");
            }
            // Who holds it, in every console: in full, or a mark when the
            // column had to give way.
            let holder = match held_by(it) {
                Some(h) if h.chars().count() > usize::from(held) && held < 4 => "●".to_string(),
                Some(h) => h,
                None => String::new(),
            };
            let mut cells = vec![
                // Marked for one approval or rejection.
                match app.marked.contains(&it.id) {
                    true => Cell::from(format!("*{}", it.id)).style(theme.accent()),
                    false => Cell::from(it.id.clone()),
                },
                Cell::from(it.decision.signal_type.clone()),
                Cell::from(it.decision.subject.clone()),
                Cell::from(it.decision.proposal.clone()),
                Cell::from(format!("{left}m")).style(left_style),
                Cell::from(prio),
            ];
            if held > 0 {
                cells.push(Cell::from(holder).style(theme.warn()));
            }
            Row::new(cells)
        },
    );
    frame.render_widget(table, queue);
}

/// What the selected item's decision saw and proposed, and why.
// Over 80 lines: one section of the context after another, in the order shown.
fn decision_context(frame: &mut Frame, context: Rect, app: &App) {
    let theme = &app.theme;
    let now = app.status.as_ref().map(|s| s.now);
    let Some(item) = app.selected_review() else {
        frame.render_widget(
            Paragraph::new(Line::styled("the queue is empty", theme.muted()))
                .block(titled("decision context", theme)),
            context,
        );
        return;
    };
    let d = &item.decision;
    let mut lines: Vec<Line> = Vec::new();
    let head = |t: &str| Line::styled(t.to_string(), theme.title());
    if let Some((holder, since)) = app.holder(item) {
        let when = match (since, app.status.as_ref()) {
            (Some(since), Some(s)) => {
                let lapses = since
                    .checked_add_signed(s.claim_expiry())
                    .map_or(chrono::Duration::zero(), |end| end - s.now);
                format!(
                    " since {} (lapses in {}m)",
                    since.format("%H:%M"),
                    (lapses.num_seconds().max(0) + 59) / 60
                )
            }
            _ => String::new(),
        };
        lines.push(Line::styled(
            format!("held by {holder}{when}"),
            theme.warn(),
        ));
    }
    observed(&mut lines, item, theme);
    lines.push(head("proposal"));
    lines.push(Line::from(vec![
        Span::styled(format!("  {} ", d.proposal), theme.accent()),
        Span::raw(format!(
            "confidence {:.2} (threshold {:.2}) margin {:.2}",
            d.confidence, d.threshold, d.margin
        )),
    ]));
    lines.push(Line::styled(format!("  {}", d.why), theme.muted()));
    let max = d
        .contributions
        .iter()
        .map(|c| c.weight.abs())
        .fold(0.0, f64::max)
        .max(1e-9);
    for c in d.contributions.iter().take(5) {
        let n = ((c.weight.abs() / max) * 12.0).round() as usize;
        let style = if c.weight >= 0.0 {
            theme.ok()
        } else {
            theme.bad()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<13}", "█".repeat(n.max(1))), style),
            Span::raw(format!("{:+.2} {}", c.weight, c.feature)),
        ]));
    }
    if let Some(advice) = item.advice.as_ref().filter(|a| !a.shadow) {
        lines.push(head(&format!("advisor ({}) proposes", advice.model)));
        lines.push(Line::from(vec![
            Span::styled(format!("  {} ", advice.option), theme.accent()),
            Span::raw(advice.reason.clone()),
        ]));
        for cited in advice.citations.iter().take(4) {
            lines.push(Line::styled(format!("    cites {cited}"), theme.muted()));
        }
    }
    lines.push(head("alternatives"));
    for o in d.options.iter().filter(|o| o.option != d.proposal) {
        let note = if o.allowed {
            String::new()
        } else {
            format!(" forbidden by {}", o.forbidden_by.join(","))
        };
        lines.push(Line::raw(format!(
            "  {:<24} {:.2}{note}",
            o.option, o.score
        )));
    }
    lines.push(head("policies"));
    if d.policy_hits.is_empty() {
        lines.push(Line::styled("  none fired", theme.muted()));
    }
    let hits: Vec<_> = d
        .policy_hits
        .iter()
        .map(|h| (h.rule.clone(), h.reason.clone()))
        .collect();
    aligned(&mut lines, "  ", &hits, theme);
    if let Some(n) = now {
        lines.push(Line::styled(
            format!(
                "escalates in {}m · safe default `{}` in {}m · needs {}",
                (item.escalate_at - n).num_minutes(),
                d.safe_default,
                (item.deadline - n).num_minutes(),
                item.required_role.as_str()
            ),
            theme.warn(),
        ));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(titled(&format!("decision context {}", d.id), theme)),
        context,
    );
}

/// What the decision saw: the signal (its data as `key: value` lines) and
/// the entity snapshot (each entity's fields, aligned).
fn observed(
    lines: &mut Vec<Line<'static>>,
    item: &crate::review::ReviewItem,
    theme: &crate::console::theme::Theme,
) {
    let d = &item.decision;
    lines.push(Line::from(vec![
        Span::styled(format!("{} ", item.signal.kind), theme.accent()),
        Span::styled(
            format!(
                "{} · {} · {}",
                item.signal.subject, item.signal.id, item.signal.source
            ),
            theme.muted(),
        ),
    ]));
    let fields = match &item.signal.data {
        serde_json::Value::Object(map) => map
            .iter()
            .take(6)
            .map(|(k, v)| (k.clone(), plain(v)))
            .collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![("data".to_string(), plain(other))],
    };
    aligned(lines, "  ", &fields, theme);
    lines.push(Line::styled("snapshot", theme.title()));
    for (k, v) in d.snapshot.iter().take(4) {
        lines.push(Line::styled(format!("  {k}"), theme.accent()));
        let fields = match serde_json::from_str::<serde_json::Value>(v.as_str()) {
            Ok(serde_json::Value::Object(map)) => map
                .iter()
                .filter(|(field, _)| field.as_str() != "id")
                .take(8)
                .map(|(field, value)| (field.clone(), plain(value)))
                .collect(),
            Ok(serde_json::Value::Null) => vec![("state".to_string(), "gone".to_string())],
            Ok(other) => vec![("value".to_string(), plain(&other))],
            Err(_) => vec![("value".to_string(), v.as_str().chars().take(80).collect())],
        };
        aligned(lines, "    ", &fields, theme);
    }
}

/// `key: value` lines, the values aligned after the longest key.
fn aligned(
    lines: &mut Vec<Line<'static>>,
    indent: &str,
    fields: &[(String, String)],
    theme: &crate::console::theme::Theme,
) {
    let width = fields
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in fields {
        lines.push(Line::from(vec![
            Span::styled(format!("{indent}{k:<width$}: "), theme.muted()),
            Span::raw(v.clone()),
        ]));
    }
}

/// A JSON value as a person reads it: text without quotes, lists joined,
/// objects as `key=value`, at most 80 characters.
fn plain(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".to_string(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    match text.chars().count() > 80 {
        true => text.chars().take(79).chain(['…']).collect(),
        false => text,
    }
}
