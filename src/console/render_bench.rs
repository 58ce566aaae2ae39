//! The render benchmark: each view drawn at 160×48 with 100,000 flows,
//! 10,000 review items and 50,000 signals loaded; per-view p50/p99 frame
//! time against the 4 ms budget, and the peak resident memory.

use std::time::Instant;

use chrono::Duration;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

use super::app::{Message, VIEWS};
use super::{demo, views};

const FRAMES: usize = 200;
const BUDGET_MS: f64 = 4.0;

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(dir: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut app = demo::app_after(dir, Duration::hours(3))?;
    demo::scale(&mut app, 100_000, 10_000, 50_000);
    println!(
        "render: state {} flows, {} review items, {} signals, {} decisions (built in {:.1} s)",
        app.flow_rows.len(),
        app.reviews.len(),
        app.signals.len(),
        app.audit.len(),
        started.elapsed().as_secs_f64()
    );
    let (w, h) = (160, 48);
    let mut terminal = Terminal::new(TestBackend::new(w, h))?;
    app.update(Message::Page(views::page_size(views::body_area(
        Rect::new(0, 0, w, h),
    ))));
    let mut worst: f64 = 0.0;
    for &(view, name, _) in VIEWS {
        app.view = view;
        let mut times = Vec::with_capacity(FRAMES);
        for i in 0..FRAMES {
            // Scroll as an operator would, so windows move.
            app.tables.entry(view).or_default().selected = (i * 37) % 5_000;
            let t = Instant::now();
            terminal.draw(|f| views::draw(f, &app))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        worst = worst.max(p(0.99));
        println!(
            "render: {name:<9} p50 {:.2} ms  p99 {:.2} ms  (budget {BUDGET_MS} ms)",
            p(0.5),
            p(0.99)
        );
    }
    let rss = peak_rss_mb().unwrap_or(f64::NAN);
    println!(
        "render: worst p99 {worst:.2} ms (budget {BUDGET_MS} ms), peak RSS {rss:.0} MB (budget 300 MB)"
    );
    Ok(())
}
