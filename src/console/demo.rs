//! A console state built from a real engine run, for snapshot tests and
//! the render benchmark: fixed seed, simulated clock, no terminal.

use chrono::Duration;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use super::app::{App, Message};
use super::keymap::Keymap;
use super::link::{Update, status};
use super::theme::Theme;
use crate::decide::policy::Role;
use crate::engine::{Engine, EngineError, EngineEvent};
use crate::review::Actor;
use crate::sim::{Simulator, default_start, run::STEP, world};

/// Runs seed 1 for `span` of simulated time into `dir` and folds everything
/// the engine published into a fresh `App`, as the console would.
pub fn app_after(dir: &Path, span: Duration) -> Result<App, EngineError> {
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(1), start);
    let mut sim = Simulator::new(1, start, span, &world);
    sim.set_colleagues(1);
    let mut engine = Engine::open(crate::sim::engine_config(dir, 1), world, start)?;
    let keymap = Keymap::load("default", None).unwrap_or_default();
    let mut app = App::new(
        keymap,
        Theme::fallback(false),
        Actor::new("tess", Role::Operator),
        dir.to_path_buf(),
    );
    let mut now = start;
    while now < start + span {
        now += STEP;
        let events = sim.step(&mut engine, now);
        engine.flush()?.wait()?;
        let flushed = engine.take_events();
        app.update(Message::Engine(Update::Events(events)));
        app.update(Message::Engine(Update::Events(flushed)));
    }
    app.update(Message::Engine(Update::Status(Box::new(status(
        &engine, now,
    )))));
    engine.close()?;
    Ok(app)
}

/// Grows a state to the render benchmark's size by repeating what a real
/// run produced under fresh ids: `flows` flows, `reviews` open review items
/// and `signals` signals.
pub fn scale(app: &mut App, flows: usize, reviews: usize, signals: usize) {
    let base_flows = app.flow_rows.clone();
    let mut i = 0;
    while app.flow_rows.len() < flows && !base_flows.is_empty() {
        let mut f = base_flows[i % base_flows.len()].clone();
        f.id = format!("X{i:07}");
        app.upsert_flow_row(f);
        i += 1;
    }
    let base_reviews: Vec<_> = app.reviews.values().cloned().collect();
    let mut events = Vec::new();
    let mut j = 0;
    while app.reviews.len() + events.len() < reviews && !base_reviews.is_empty() {
        let mut r = base_reviews[j % base_reviews.len()].clone();
        r.id = format!("RX{j:07}");
        r.deadline += Duration::seconds(j as i64);
        events.push(EngineEvent::ReviewOpened(r));
        j += 1;
    }
    let base_signals: Vec<_> = app.signals.iter().cloned().collect();
    let mut k = 0;
    while app.signals.len() < signals && !base_signals.is_empty() {
        let mut s = base_signals[k % base_signals.len()].clone();
        s.id = format!("sx-{k:07}");
        app.signals.push_back(s);
        k += 1;
    }
    app.update(Message::Engine(Update::Events(events)));
}
