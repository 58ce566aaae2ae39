//! A console state built from a real engine run, for snapshot tests and
//! the render benchmark: fixed seed, simulated clock, no terminal.

use std::ops::ControlFlow;

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use super::app::{App, Message};
use super::keymap::Keymap;
use super::link::{Update, status};
use super::theme::Theme;
use crate::decide::policy::Role;
use crate::engine::host::{Handle, Host};
use crate::engine::runner::{Beside, Pace, Runner};
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
    let engine = Engine::open(crate::sim::engine_config(dir, 1), world, start)?;
    let keymap = Keymap::load("default", None).unwrap_or_default();
    let app = App::new(
        keymap,
        Theme::fallback(false),
        Actor::new("tess", Role::Operator),
        dir.to_path_buf(),
    );
    let mut demo = Demo {
        sim,
        app,
        now: start,
        end: start + span,
    };
    let (handle, commands) = Handle::channel(dir.to_path_buf());
    let runner = Runner::new(Host::new(engine, None), Pace::Max { start });
    let ran = runner.run(&commands, &handle, &mut demo);
    ran.result?;
    let mut app = demo.app;
    app.update(Message::Engine(Update::Status(Box::new(status(
        &ran.engine,
        demo.now,
    )))));
    ran.engine.close()?;
    Ok(app)
}

/// The simulator beside the demo's engine, a `STEP` a turn, and the app
/// that folds what it published.
struct Demo {
    sim: Simulator,
    app: App,
    now: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Beside for Demo {
    fn advance(&mut self, engine: &mut Engine, _to: DateTime<Utc>) -> DateTime<Utc> {
        self.now += STEP;
        let events = self.sim.step(engine, self.now);
        self.app.update(Message::Engine(Update::Events(events)));
        self.now
    }

    fn after_turn(&mut self, engine: &mut Engine, now: DateTime<Utc>) -> ControlFlow<()> {
        // What the turn's flush published (flows as they stand).
        let flushed = engine.take_events();
        self.app.update(Message::Engine(Update::Events(flushed)));
        match now >= self.end {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }
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
