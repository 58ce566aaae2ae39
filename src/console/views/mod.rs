//! Drawing: the frame (header, crumbs, status line, key bar) around the
//! current view, and the overlays (prompt, help, detail, dialog). Every
//! function here reads the state and draws; none changes anything.

mod audit;
mod changes;
mod flows;
mod health;
mod incidents;
mod oncall;
mod overview;
mod pages;
mod review;
mod signals;
mod silences;
mod tasks;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, Paragraph, Row, Table, Wrap};

use super::app::{App, DialogKind, Focus, Rows, View};
use super::keymap::{KeyAction, Scope};
use super::theme::Theme;

/// Rows of table body that fit in `area` (border and header taken off).
pub fn page_size(area: Rect) -> usize {
    area.height.saturating_sub(3).max(1) as usize
}

/// The area tables are drawn in, for a terminal of this size.
pub fn body_area(size: Rect) -> Rect {
    let [_, _, body, _, _] = chrome(size);
    body
}

fn chrome(size: Rect) -> [Rect; 5] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(size)
}

pub fn draw(frame: &mut Frame, app: &App) {
    let theme = &app.theme;
    let size = frame.area();
    frame.render_widget(Block::default().style(theme.base()), size);
    let [header, crumbs, body, status, keys] = chrome(size);
    draw_header(frame, header, app);
    frame.render_widget(
        Paragraph::new(Line::styled(app.crumbs(), theme.muted())),
        crumbs,
    );
    match app.view {
        View::Overview => overview::draw(frame, body, app),
        View::Signals => signals::draw(frame, body, app),
        View::Flows => flows::draw(frame, body, app),
        View::Review => review::draw(frame, body, app),
        View::Tasks => tasks::draw(frame, body, app),
        View::Pages => pages::draw(frame, body, app),
        View::OnCall => oncall::draw(frame, body, app),
        View::Incidents => incidents::draw(frame, body, app),
        View::Silences => silences::draw(frame, body, app),
        View::Health => health::draw(frame, body, app),
        View::Audit => audit::draw(frame, body, app),
        View::Changes => changes::draw(frame, body, app),
    }
    draw_status(frame, status, app);
    draw_keys(frame, keys, app);
    match &app.focus {
        Focus::Help => draw_help(frame, body, app),
        Focus::Detail(d) => {
            let area = inset(body, 2, 1);
            frame.render_widget(Clear, area);
            let height = area.height.saturating_sub(2) as usize;
            let lines: Vec<Line> = d
                .lines
                .iter()
                .skip(d.scroll)
                .take(height)
                .map(|l| Line::raw(l.as_str()))
                .collect();
            frame.render_widget(
                Paragraph::new(lines)
                    .style(theme.base())
                    .block(titled(&d.title, theme)),
                area,
            );
        }
        Focus::Dialog(dialog) => draw_dialog(frame, body, app, dialog),
        Focus::ConfirmQuit => {
            let area = centered(body, 50, 4);
            frame.render_widget(Clear, area);
            let text = format!(
                "A dialog is open. Quit anyway?\n{} or {} quits; any other key stays.",
                app.keymap.key_for(KeyAction::Confirm),
                app.keymap.key_for(KeyAction::Quit)
            );
            frame.render_widget(
                Paragraph::new(text)
                    .style(theme.warn())
                    .wrap(Wrap { trim: true })
                    .block(titled("quit", theme)),
                area,
            );
        }
        _ => {}
    }
}

/// The header: who and where on the left, the model, policy and rules
/// versions on the right. The versions are never cut: when the line is too
/// narrow, the left part is abbreviated step by step (`header_left`).
fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let held = app
        .status
        .as_ref()
        .and_then(|s| s.model_breaker.as_ref())
        .is_some_and(|b| b.open);
    let ramp = app
        .status
        .as_ref()
        .and_then(|s| s.ramp.as_ref())
        .filter(|r| !r.status.finished());
    let paused = ramp.is_some_and(|r| r.status == crate::decide::ramp::Status::Paused);
    let versions = app.status.as_ref().map(|s| {
        let breaker = if held { " (breaker open)" } else { "" };
        let ramping = match ramp {
            Some(_) if paused => " (ramp paused: a lead decides)".to_string(),
            Some(r) => format!(" (ramp {:.0} %)", r.coverage() * 100.0),
            None => String::new(),
        };
        let deciding = s
            .apprentice_share()
            .map(|(taken, of)| format!(" (apprentice {taken}/{of})"))
            .unwrap_or_default();
        let mut v = format!(
            "model {}{breaker}{deciding} policy {}{ramping}",
            s.model_version, s.policy_version
        );
        if !s.rules_version.is_empty() {
            v.push_str(&format!(" {}", s.rules_version));
        }
        v.push(' ');
        v
    });
    let right = versions.as_deref().map_or(0, |v| v.chars().count()) as u16;
    let left = (0..=5)
        .map(|level| header_left(app, level))
        .find(|spans| spans.iter().map(|s| s.width() as u16).sum::<u16>() + right <= area.width)
        .unwrap_or_else(|| header_left(app, 5));
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(right)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(left)), l);
    if let Some(v) = versions {
        let style = if held || paused {
            theme.warn()
        } else {
            theme.muted()
        };
        frame.render_widget(Paragraph::new(Line::styled(v, style)), r);
    }
}

/// The header's left part, abbreviated to `level` (0: in full; then the
/// sources counted, the clock to minutes, the instance shortened, then left
/// out, then the role left out).
fn header_left(app: &App, level: u8) -> Vec<Span<'static>> {
    let theme = &app.theme;
    let mut spans = vec![Span::styled(" signalbox ", theme.title())];
    match level {
        0..=2 => spans.push(Span::styled(format!("{} ", app.instance), theme.accent())),
        3 => {
            let short = app
                .instance
                .trim_start_matches("attached to ")
                .trim_end_matches(" (embedded)");
            spans.push(Span::styled(format!("{short} "), theme.accent()));
        }
        _ => {}
    }
    match &app.link {
        Some(link) => {
            use crate::console::link::LinkState;
            let rtt = link
                .rtt
                .map(|d| format!(" {}ms", d.as_millis()))
                .unwrap_or_default();
            let attached = app
                .status
                .as_ref()
                .and_then(|s| s.attached)
                .map(|n| format!(" · {n} attached"))
                .unwrap_or_default();
            spans.push(match &link.state {
                LinkState::Connected => {
                    Span::styled(format!("connected{rtt}{attached} "), theme.ok())
                }
                LinkState::Connecting => Span::styled("connecting… ", theme.warn()),
                LinkState::Lost { attempt, .. } => {
                    Span::styled(format!("LOST (retry {attempt}) stale "), theme.bad())
                }
            });
        }
        None if level == 0 => spans.push(Span::styled(
            format!("src {} ", app.sources.join(",")),
            theme.muted(),
        )),
        None if level == 1 => spans.push(Span::styled(
            match app.sources.len() {
                1 => "1 source ".to_string(),
                n => format!("{n} sources "),
            },
            theme.muted(),
        )),
        None => {}
    }
    let who = match level {
        0..=4 => format!("{} ({}) ", app.operator.name, app.operator.role.as_str()),
        _ => format!("{} ", app.operator.name),
    };
    spans.push(Span::styled(who, theme.base()));
    match &app.status {
        Some(s) => {
            let clock = match level {
                0..=1 => s.now.format("%a %H:%M:%S "),
                _ => s.now.format("%H:%M "),
            };
            spans.push(Span::styled(clock.to_string(), theme.base()));
            spans.push(match (s.business_hours, level) {
                (true, 0..=1) => Span::styled("business hours ", theme.ok()),
                (true, _) => Span::styled("hours ", theme.ok()),
                (false, _) => Span::styled("off-hours ", theme.warn()),
            });
        }
        None => spans.push(Span::styled("starting…", theme.muted())),
    }
    spans
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let line = match &app.focus {
        Focus::Command(text) => {
            let hint: Vec<&str> = super::app::VIEWS
                .iter()
                .map(|(_, n, _)| *n)
                .filter(|n| !text.is_empty() && n.starts_with(text.trim()))
                .collect();
            Line::from(vec![
                Span::styled(format!(":{text}▏"), theme.accent()),
                Span::styled(format!("  {}", hint.join(" ")), theme.muted()),
            ])
        }
        Focus::Filter(text) => Line::styled(format!("/{text}▏"), theme.accent()),
        _ => match &app.status_line {
            Some((text, true)) => Line::styled(text.as_str(), theme.bad()),
            Some((text, false)) => Line::styled(text.as_str(), theme.ok()),
            None => Line::styled("", theme.muted()),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_keys(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = Vec::new();
    for context in app.contexts() {
        for (keys, action) in app.keymap.bindings(context) {
            spans.push(Span::styled(format!(" {keys}"), theme.accent()));
            spans.push(Span::styled(format!(" {}", action.label()), theme.muted()));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_help(frame: &mut Frame, body: Rect, app: &App) {
    let theme = &app.theme;
    let area = inset(body, 4, 1);
    frame.render_widget(Clear, area);
    let mut items: Vec<ListItem> = Vec::new();
    for context in [
        Scope::Global,
        Scope::Table,
        Scope::Review,
        Scope::Tasks,
        Scope::Dialog,
    ] {
        items.push(ListItem::new(Line::styled(
            format!("[{}]", context.name()),
            theme.title(),
        )));
        for (keys, action) in app.keymap.bindings(context) {
            items.push(ListItem::new(Line::from(vec![
                Span::styled(format!("  {keys:<16}"), theme.accent()),
                Span::styled(action.label(), theme.base()),
            ])));
        }
    }
    let views: Vec<String> = super::app::VIEWS
        .iter()
        .map(|(_, n, a)| format!("{n} ({})", a.join(",")))
        .collect();
    items.push(ListItem::new(Line::styled(
        format!("views: {}", views.join("  ")),
        theme.muted(),
    )));
    frame.render_widget(
        List::new(items).block(titled(&format!("help: keymap {}", app.keymap.name), theme)),
        area,
    );
}

// Over 80 lines: a chooser stage and a note stage, one layout for every dialog.

fn draw_dialog(frame: &mut Frame, body: Rect, app: &App, dialog: &super::app::Dialog) {
    let theme = &app.theme;
    let area = centered(body, 70, 12);
    frame.render_widget(Clear, area);
    let title = match &dialog.kind {
        DialogKind::Override { .. } => format!("override {}", dialog.target),
        DialogKind::Note(a) => format!("{} {}", a.name(), dialog.target),
        DialogKind::Task(a) => format!("{} task {}", a.as_str(), dialog.target),
        DialogKind::Reassign { .. } => format!("hand task {} to", dialog.target),
        DialogKind::OnCall { schedule } => format!("override on {schedule}"),
        DialogKind::Silence { .. } => format!("silence like {}", dialog.target),
    };
    let title = format!("{title} · {}", dialog.about);
    let block = titled(&title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    match &dialog.kind {
        DialogKind::Override {
            choices,
            selected,
            writing: false,
        }
        | DialogKind::Reassign {
            teams: choices,
            selected,
            writing: false,
        } => {
            let items: Vec<ListItem> = choices
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let style = if i == *selected {
                        theme.selection()
                    } else {
                        theme.base()
                    };
                    ListItem::new(Line::styled(format!(" {c}"), style))
                })
                .collect();
            let [list, hint] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
            frame.render_widget(List::new(items), list);
            frame.render_widget(
                Paragraph::new(Line::styled(
                    if matches!(dialog.kind, DialogKind::Reassign { .. }) {
                        "choose the team, enter to write the note"
                    } else {
                        "choose the option to take, enter to write the note"
                    },
                    theme.muted(),
                )),
                hint,
            );
        }
        kind => {
            let lines = if matches!(kind, DialogKind::Silence { .. }) {
                3
            } else {
                1
            };
            let [what, note] =
                Layout::vertical([Constraint::Length(lines), Constraint::Min(3)]).areas(inner);
            let what_text = match kind {
                DialogKind::Override {
                    choices, selected, ..
                } => {
                    format!(
                        "take `{}` — note (required):",
                        choices.get(*selected).cloned().unwrap_or_default()
                    )
                }
                DialogKind::Note(a) if a.name() == "reject" => "note (required):".to_string(),
                DialogKind::OnCall { .. } => {
                    "who is on call from now, and for how long:".to_string()
                }
                DialogKind::Silence { matchers, preview } => {
                    let counted = match preview {
                        None => "counting what it would match…".to_string(),
                        Some(Ok(p)) => format!(
                            "would match {} open item{} and {} signal{} of the last day",
                            p.open_items,
                            if p.open_items == 1 { "" } else { "s" },
                            p.last_day,
                            if p.last_day == 1 { "" } else { "s" }
                        ),
                        Some(Err(why)) => format!("could not count: {why}"),
                    };
                    format!(
                        "matchers: {}\n{counted}\nfor how long, and why:",
                        matchers.join(", ")
                    )
                }
                DialogKind::Reassign {
                    teams, selected, ..
                } => format!(
                    "hand to `{}` — note:",
                    teams.get(*selected).cloned().unwrap_or_default()
                ),
                _ => "note:".to_string(),
            };
            let what_lines: Vec<Line> = what_text
                .lines()
                .map(|l| Line::styled(l.to_string(), theme.accent()))
                .collect();
            frame.render_widget(Paragraph::new(what_lines), what);
            let mut textarea = dialog.note.clone();
            textarea.set_block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.border()),
            );
            textarea.set_style(theme.base());
            frame.render_widget(&textarea, note);
        }
    }
}

pub fn titled<'a>(title: &str, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(Span::styled(format!(" {title} "), theme.title()))
}

pub fn inset(area: Rect, x: u16, y: u16) -> Rect {
    Rect {
        x: area.x + x.min(area.width / 4),
        y: area.y + y.min(area.height / 4),
        width: area.width.saturating_sub(2 * x.min(area.width / 4)),
        height: area.height.saturating_sub(2 * y.min(area.height / 4)),
    }
}

pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// The first row in view and the selected row's position, as `window`
/// draws them.
fn scroll(app: &App, view: View, rows: &Rows, area: Rect) -> (usize, usize) {
    let t = app.tables.get(&view).copied().unwrap_or_default();
    let page = page_size(area);
    let selected = t.selected.min(rows.len().saturating_sub(1));
    let offset = t
        .offset
        .min(selected)
        .max(selected.saturating_sub(page.saturating_sub(1)));
    (offset, selected)
}

/// The indices of the rows in view in a table drawn in `area`.
pub fn in_view(app: &App, view: View, area: Rect) -> Vec<usize> {
    let rows = app.rows(view);
    let (offset, _) = scroll(app, view, &rows, area);
    rows.window(offset, page_size(area))
}

/// A windowed table: only the rows in view are built.
pub fn window<'a>(
    app: &App,
    view: View,
    area: Rect,
    title: &str,
    header: &[&'a str],
    widths: &[Constraint],
    mut row: impl FnMut(usize, bool) -> Row<'a>,
) -> (Table<'a>, usize) {
    let theme = &app.theme;
    let rows = app.rows(view);
    let (offset, selected) = scroll(app, view, &rows, area);
    let body: Vec<Row> = rows
        .window(offset, page_size(area))
        .into_iter()
        .zip(offset..)
        .map(|(i, pos)| {
            let is_selected = pos == selected;
            let r = row(i, is_selected);
            if is_selected {
                r.style(theme.selection())
            } else {
                r
            }
        })
        .collect();
    let filter = app
        .filters
        .get(&view)
        .map(|f| format!(" /{f}"))
        .unwrap_or_default();
    let title = format!("{title} ({}){filter}", rows.len());
    let table = Table::new(body, widths.to_vec())
        .header(Row::new(header.to_vec()).style(theme.title()))
        .block(titled(&title, theme))
        .style(theme.base());
    (table, rows.len())
}

pub fn paragraph<'a>(lines: Vec<Line<'a>>, title: &str, theme: &Theme) -> Paragraph<'a> {
    Paragraph::new(lines)
        .block(titled(title, theme))
        .wrap(Wrap { trim: false })
}

pub fn state_style(theme: &Theme, state: &str) -> Style {
    match state {
        "done" | "up" | "closed" => theme.ok(),
        "failed" | "down" | "open" | "compensated" => theme.bad(),
        "waiting_human" | "degraded" | "half_open" | "review" => theme.warn(),
        _ => theme.base(),
    }
}

/// A span of time as the tables show it: `42s`, `17m`, `3h`, `2d`.
pub fn age(span: chrono::Duration) -> String {
    let s = span.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m", s / 60),
        3_600..86_400 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The style for a team's load: over capacity is bad, above 80% a warning.
pub fn load_style(theme: &Theme, utilisation: f64) -> Style {
    if utilisation > 1.0 {
        theme.bad()
    } else if utilisation > 0.8 {
        theme.warn()
    } else {
        theme.ok()
    }
}

pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

pub fn short_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%H:%M:%S").to_string()
}

/// The screen `app` draws at `width`×`height`, as text: one line per row,
/// trailing blanks trimmed (the views' snapshots).
pub fn screen_text(
    app: &mut App,
    width: u16,
    height: u16,
) -> Result<String, <ratatui::backend::TestBackend as ratatui::backend::Backend>::Error> {
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height))?;
    let page = page_size(body_area(Rect::new(0, 0, width, height)));
    app.update(super::app::Message::Page(page));
    terminal.draw(|f| draw(f, app))?;
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::app::Input;
    use crate::console::fixture;
    use crate::console::keymap::KeyAction;

    /// Every view of the hand-made state, at a roomy and a small terminal.
    /// A failing snapshot is named after its view and size.
    #[test]
    fn every_view_at_two_sizes() {
        let mut app = fixture::app();
        for &(view, name, _) in crate::console::app::VIEWS {
            app.view = view;
            for (w, h) in [(120, 40), (80, 24)] {
                let screen = screen_text(&mut app, w, h).unwrap();
                insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen);
            }
        }
    }

    /// With a shadow candidate deciding beside the live policy, Overview
    /// says how often it agrees; without one, it says nothing of it.
    #[test]
    fn overview_shows_the_shadows_agreement_when_there_is_one() {
        let mut app = fixture::app();
        app.view = View::Overview;
        let without = screen_text(&mut app, 120, 40).unwrap();
        assert!(!without.contains("shadow"), "{without}");
        if let Some(status) = app.status.as_mut() {
            status.total.shadow_agreement = Some(0.876);
            status.total.shadow_people_agreement = Some(0.7);
            status.total.advisor_agreement = Some(0.55);
        }
        let with = screen_text(&mut app, 120, 40).unwrap();
        assert!(with.contains("shadow: live 88% people 70%"), "{with}");
        assert!(with.contains("overrides · advisor 55%"), "{with}");
    }

    /// The advisor's breaker is a row of Health's breakers; open, it heads
    /// them and says that there is no advice.
    #[test]
    fn the_advisors_breaker_shows_in_health() {
        let mut app = fixture::app();
        app.view = View::Health;
        let none = screen_text(&mut app, 120, 40).unwrap();
        assert!(!none.contains("advisor"), "{none}");
        let mut row = crate::engine::overview::AdvisorRow {
            model: "smollm2".into(),
            ..Default::default()
        };
        if let Some(status) = app.status.as_mut() {
            status.advisor = Some(row.clone());
        }
        let closed = screen_text(&mut app, 120, 40).unwrap();
        assert!(closed.contains("advisor smollm2"), "{closed}");
        assert!(!closed.contains("no advice"), "{closed}");
        row.open = true;
        row.why = "3 failures in a row".into();
        row.trips = 1;
        if let Some(status) = app.status.as_mut() {
            status.advisor = Some(row);
        }
        let open = screen_text(&mut app, 120, 40).unwrap();
        assert!(open.contains("advisor open: no advice"), "{open}");
    }

    /// An open breaker on the model is in the header on every view and
    /// heads Health's breakers.
    #[test]
    fn an_open_model_breaker_shows_in_the_header_and_health() {
        let mut app = fixture::app();
        app.view = View::Health;
        let closed = screen_text(&mut app, 120, 40).unwrap();
        assert!(!closed.contains("breaker open"), "{closed}");
        if let Some(status) = app.status.as_mut() {
            status.model_breaker = Some(crate::decide::watch::BreakerState {
                open: true,
                since: crate::testkit::at(15),
                reason: "the model is off".into(),
                trips: 2,
            });
        }
        let open = screen_text(&mut app, 120, 40).unwrap();
        assert!(open.contains("(breaker open)"), "{open}");
        assert!(
            open.contains("model open since 10:15: rules decide"),
            "{open}"
        );
        assert!(open.contains("│model"), "{open}");
    }

    #[test]
    fn overlays() {
        let mut app = fixture::app();
        app.view = View::Review;
        app.update(Input::Key(KeyAction::Override));
        insta::assert_snapshot!("override_dialog", screen_text(&mut app, 100, 30).unwrap());
        app.update(Input::Key(KeyAction::Quit));
        insta::assert_snapshot!("confirm_quit", screen_text(&mut app, 100, 30).unwrap());
        app.update(Input::Key(KeyAction::Cancel));
        app.view = View::Tasks;
        app.update(Input::Key(KeyAction::Reassign));
        insta::assert_snapshot!("reassign_dialog", screen_text(&mut app, 100, 30).unwrap());
        app.update(Input::Key(KeyAction::Cancel));
        app.update(Input::Key(KeyAction::Help));
        insta::assert_snapshot!("help", screen_text(&mut app, 100, 30).unwrap());
    }

    /// The review view at 120x40 with the cursor on an item a colleague
    /// holds (who, for how long, the context as `key: value` lines), then
    /// after that colleague decides it: the status line says so, by whom.
    #[test]
    fn an_item_held_then_decided_elsewhere() {
        use crate::console::link::Update;
        use crate::engine::EngineEvent;
        use crate::review::{Action, Actor, ReviewAction};
        let mut app = fixture::app();
        app.view = View::Review;
        let id = app.selected_review().unwrap().id.clone();
        let now = app.status.as_ref().unwrap().now;
        if let Some(item) = app.reviews.get_mut(&id) {
            let mut d = (*item.decision).clone();
            d.snapshot.insert(
                "customer/c2".into(),
                serde_json::from_str(
                    r#"{"id":"c2","name":"Brightline Motors","tier":"gold","open_escalation":false,"regions":["eu","us"]}"#,
                )
                .unwrap(),
            );
            d.policy_hits.push(crate::decide::policy::PolicyHit {
                rule: "gold_needs_review".into(),
                reason: "gold customers are reviewed by a person".into(),
                effects: vec!["review".into()],
                option: None,
            });
            item.decision = std::sync::Arc::new(d);
            item.claimed_by = Some("lena".into());
            item.claimed_at = Some(now - chrono::Duration::minutes(4));
        }
        insta::assert_snapshot!("review_held", screen_text(&mut app, 120, 40).unwrap());
        let mut item = (*app.reviews[&id]).clone();
        let record = ReviewAction {
            review_id: id.clone(),
            decision_id: item.decision.id.clone(),
            actor: Actor::new("lena", crate::decide::policy::Role::Lead),
            action: Action::Approve,
            note: "checked with the customer".into(),
            time: now,
            advised: None,
        };
        item.outcome = Some(record.clone());
        app.update(super::super::app::Message::Engine(Update::Events(vec![
            EngineEvent::ReviewAction {
                item: Box::new(item),
                action: record,
            },
        ])));
        insta::assert_snapshot!(
            "review_decided_elsewhere",
            screen_text(&mut app, 120, 40).unwrap()
        );
    }
}
