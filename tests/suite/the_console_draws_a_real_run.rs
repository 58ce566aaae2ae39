//! The console end to end: a real engine run (seed 1, simulated clock, 90
//! minutes) folded into the console's state as the console would, drawn
//! at 120×40. The views' own snapshots, from a small hand-made state, are
//! beside them (`console::views` tests); this one shows they still fit
//! together over a real engine.

use chrono::Duration;

use signalbox::console::app::View;
use signalbox::console::demo;
use signalbox::console::views;

#[test]
fn overview_after_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo::app_after(dir.path(), Duration::minutes(90)).unwrap();
    app.view = View::Overview;
    let screen = views::screen_text(&mut app, 120, 40).unwrap();
    insta::assert_snapshot!("overview_after_90_minutes_120x40", screen);
}
