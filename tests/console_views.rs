//! Each view drawn with ratatui's TestBackend at 120×40 and 80×24 from a
//! deterministic engine state (seed 1, simulated clock), against snapshots.

use chrono::Duration;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use signalbox::console::app::{App, Input, View};
use signalbox::console::demo;
use signalbox::console::keymap::KeyAction;
use signalbox::console::views;

fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render(app: &mut App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    app.page = views::page_size(views::body_area(ratatui::layout::Rect::new(
        0, 0, width, height,
    )));
    terminal.draw(|f| views::draw(f, app)).unwrap();
    text(terminal.backend().buffer())
}

#[test]
fn every_view_at_two_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo::app_after(dir.path(), Duration::minutes(90)).unwrap();
    for (view, name) in [
        (View::Overview, "overview"),
        (View::Signals, "signals"),
        (View::Flows, "flows"),
        (View::Review, "review"),
        (View::Health, "health"),
        (View::Audit, "audit"),
    ] {
        app.view = view;
        for (w, h) in [(120, 40), (80, 24)] {
            let screen = render(&mut app, w, h);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen);
        }
    }
}

#[test]
fn help_and_dialog_overlays() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo::app_after(dir.path(), Duration::minutes(30)).unwrap();
    app.view = View::Review;
    app.update(Input::Key(KeyAction::Override));
    insta::assert_snapshot!("override_dialog_120x40", render(&mut app, 120, 40));
    app.update(Input::Key(KeyAction::Cancel));
    app.update(Input::Key(KeyAction::Help));
    insta::assert_snapshot!("help_120x40", render(&mut app, 120, 40));
}
