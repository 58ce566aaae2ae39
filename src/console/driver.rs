//! The engine's own thread in the console: the engine's runner, paced by
//! simulated time beside the simulator, or by the wall clock on a
//! deployment. Each turn carries out the commands that arrived (the
//! operator's, and the HTTP intake's when it listens), decides what the
//! intake log acknowledged, advances the simulator at the chosen speed and
//! publishes what happened. The UI never touches the engine; it sends
//! `Command`s through a `Handle` and reads `Update`s.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::feed::Feed;
use crate::engine::host::{Command, Handle, Host};
use crate::engine::runner::{self, Pace, Runner};
use crate::engine::{Engine, EngineError, EngineEvent};
use crate::intake::log::IntakeLog;
use crate::setup::Runs;
use crate::sim::{Simulator, default_start, world};

use super::link::{Update, status};

pub struct DriverOptions {
    pub seed: u64,
    /// Simulated seconds per real second.
    pub speed: f64,
    pub data_dir: PathBuf,
    /// Simulated colleagues who answer review items too (0 = only you).
    pub colleagues: usize,
    /// The intake log the HTTP intake acknowledges signals in, when it
    /// listens.
    pub intake: Option<IntakeLog>,
    /// A deployment to run instead of the simulator: its rules and
    /// organization, the wall clock, people's steps as tasks.
    pub deployment: Option<Box<crate::deploy::Deployment>>,
    /// The user's settings (`config.toml`), for the simulator.
    pub server: crate::config::Config,
    /// A shadow candidate and a guarded ramp beside the live rules.
    pub candidates: crate::decide::CandidateFiles,
    /// Where committed webhook steps go, and notices.
    pub dispatcher: Option<crate::engine::host::Dispatcher>,
    pub notifier: Option<crate::engine::host::Notifier>,
    pub pager: Option<crate::engine::host::Pager>,
}

/// The figures (`Update::Status`) are published this often.
const STATUS_EVERY: StdDuration = StdDuration::from_millis(250);

/// Signals decided from the intake log per turn (a turn every ~30 ms), at
/// most; the rest wait for the next turns.
const FROM_LOG: usize = 2048;

/// Starts the engine thread. Updates go to `feed`; commands come from
/// `commands` (the receiving end of `handle`). The thread ends once
/// `handle.stop()` is asked or the UI is gone, closing the journal cleanly.
pub fn spawn(
    options: DriverOptions,
    handle: Handle,
    commands: Receiver<Command>,
    feed: Feed,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            // Nothing decides what the HTTP intake would take now. (Once
            // its reader exists, dropping it halts the log as well, on a
            // panic too.)
            let log = options.intake.clone();
            if let Err(e) = drive(options, &handle, &commands, &feed) {
                if let Some(log) = log {
                    log.halt(&format!("the console's engine stopped: {e}"));
                }
                let _ = feed.publish(Update::Failed(e.to_string()));
            }
        })
}

/// Opens the engine (on the simulator, or the deployment), runs it until
/// the UI stops it or is gone, and closes its journal.
fn drive(
    mut options: DriverOptions,
    handle: &Handle,
    commands: &Receiver<Command>,
    feed: &Feed,
) -> Result<(), EngineError> {
    let deployment = options.deployment.take();
    // A journal already here is resumed: simulated time goes on from its
    // last record, and the simulator numbers what it makes after the
    // signals it holds.
    let (start, after) = match &deployment {
        Some(_) => (chrono::Utc::now(), 0),
        None => resumed(&options.data_dir)?,
    };
    let runs = match &deployment {
        Some(d) => Runs::Deployment(d),
        None => Runs::Demo {
            seed: options.seed,
            server: &options.server,
        },
    };
    let setup = crate::setup::engine(runs, &options.data_dir, options.candidates.clone(), start)
        .map_err(|e| EngineError::Recovery {
            dir: options.data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
    let mut beside = match deployment {
        Some(_) => Beside::Wall(Watch::new(feed)),
        None => Beside::Simulated(Box::new(World::new(&options, &setup, start, after, feed)?)),
    };
    let engine = Engine::open(setup.config, setup.world, start)?;
    let mut host = host_on(engine, options.intake.as_ref())?;
    host.notifier = options.notifier.take();
    host.pager = options.pager.take();
    let events = feed.clone();
    host.sink = Some(std::sync::Arc::new(
        move |batch: Vec<(u64, EngineEvent)>| {
            let _ = events.events(batch.into_iter().map(|(_, e)| e).collect());
        },
    ));
    if deployment_or_resumed(&beside, after) {
        // What the journal holds: the queue and the flows in flight.
        let state = crate::engine::overview::State::of(
            &host.engine,
            start,
            &crate::page::Page::everything(),
        );
        let _ = feed.publish(Update::Snapshot(Box::new(state)));
    }
    let pace = match &beside {
        Beside::Wall(_) => Pace::Wall,
        Beside::Simulated(_) => Pace::Simulated {
            speed: options.speed,
            start,
        },
    };
    let mut runner = Runner::new(host, pace);
    runner.dispatcher = options.dispatcher.take();
    let ran = runner.run(commands, handle, &mut beside);
    let (engine, result) = (ran.engine, ran.result);
    let closed = engine.close().map(drop);
    let shadow_closed = match beside {
        Beside::Simulated(world) => world.shadow.close().map(drop),
        Beside::Wall(_) => Ok(()),
    };
    result.and(closed).and(shadow_closed)
}

/// Whether the journal's state is published before the first turn: on a
/// deployment always, on the simulator when it resumed a journal.
fn deployment_or_resumed(beside: &Beside<'_>, after: u64) -> bool {
    matches!(beside, Beside::Wall(_)) || after > 0
}

/// The engine behind its host, reading what the HTTP intake acknowledged
/// (when it listens) from where the journal left off.
fn host_on(engine: Engine, intake: Option<&IntakeLog>) -> Result<Host, EngineError> {
    let inbox = match intake {
        Some(log) => Some(log.reader(engine.intake_cursor())?),
        None => None,
    };
    let mut host = Host::new(engine, inbox);
    host.from_log = FROM_LOG;
    Ok(host)
}

/// Where a simulated session starts: the default start on a fresh data
/// directory, or the last record's time of the journal in it, with the
/// number of signals it holds.
fn resumed(dir: &std::path::Path) -> Result<(chrono::DateTime<chrono::Utc>, u64), EngineError> {
    if !dir.join(crate::journal::FILE_NAME).exists() {
        return Ok((default_start(), 0));
    }
    let (last, signals) = crate::journal::read::stopped_at(dir)?;
    Ok((last.unwrap_or_else(default_start), signals))
}

/// What runs beside the console's engine.
enum Beside<'a> {
    /// On a deployment: the figures, published now and then.
    Wall(Watch<'a>),
    /// The simulator, its rules-only shadow, and the figures.
    Simulated(Box<World<'a>>),
}

/// Publishes the figures every `STATUS_EVERY`, and knows when the UI is gone.
struct Watch<'a> {
    feed: &'a Feed,
    last_status: Instant,
    gone: bool,
}

impl<'a> Watch<'a> {
    fn new(feed: &'a Feed) -> Watch<'a> {
        Watch {
            feed,
            last_status: Instant::now() - STATUS_EVERY,
            gone: false,
        }
    }

    /// The figures, when due; `Break` once the UI is gone.
    fn after(
        &mut self,
        engine: &Engine,
        now: DateTime<Utc>,
        baseline: Option<&Engine>,
    ) -> ControlFlow<()> {
        if self.gone || self.feed.is_gone() {
            return ControlFlow::Break(());
        }
        if self.last_status.elapsed() < STATUS_EVERY {
            return ControlFlow::Continue(());
        }
        self.last_status = Instant::now();
        let mut figures = status(engine, now);
        if let Some(baseline) = baseline {
            figures.baseline_hourly = baseline.metrics.hourly();
        }
        match self.feed.publish(Update::Status(Box::new(figures))) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }
}

/// The simulated world and its rules-only shadow: the same stream through
/// an engine with the model off, so the Overview can compare decision
/// quality.
struct World<'a> {
    sim: Simulator,
    shadow_sim: Simulator,
    shadow: Engine,
    watch: Watch<'a>,
    /// The simulated time reached.
    now: DateTime<Utc>,
}

impl<'a> World<'a> {
    /// The simulator on the setup's world, numbering after the `after`
    /// signals a resumed journal holds, and its shadow in `baseline/`.
    fn new(
        options: &DriverOptions,
        setup: &crate::setup::Setup,
        start: DateTime<Utc>,
        after: u64,
        feed: &'a Feed,
    ) -> Result<World<'a>, EngineError> {
        // A console session runs a whole simulated week if left alone.
        let mut sim = Simulator::after(options.seed, start, Duration::days(7), &setup.world, after);
        sim.set_colleagues(options.colleagues);
        let baseline = options.data_dir.join("baseline");
        let (_, shadow_after) = resumed(&baseline)?;
        let shadow_world = world::northwind(&mut ChaCha8Rng::seed_from_u64(options.seed), start);
        let shadow_sim = Simulator::after(
            options.seed,
            start,
            Duration::days(7),
            &shadow_world,
            shadow_after,
        );
        let mut shadow_config = crate::sim::engine_config(&baseline, options.seed);
        shadow_config.learning = false;
        let shadow = Engine::open(shadow_config, shadow_world, start)?;
        Ok(World {
            sim,
            shadow_sim,
            shadow,
            watch: Watch::new(feed),
            now: start,
        })
    }
}

impl runner::Beside for Beside<'_> {
    fn advance(&mut self, engine: &mut Engine, to: DateTime<Utc>) -> DateTime<Utc> {
        let Beside::Simulated(world) = self else {
            engine.tick(to);
            return to;
        };
        while world.now < to && !world.watch.gone {
            world.now = (world.now + crate::sim::run::STEP).min(to);
            let events = world.sim.step(engine, world.now);
            world.shadow_sim.step(&mut world.shadow, world.now);
            world.watch.gone = world.watch.feed.events(events).is_err();
        }
        world.now
    }

    fn after_turn(&mut self, engine: &mut Engine, now: DateTime<Utc>) -> ControlFlow<()> {
        match self {
            Beside::Wall(watch) => watch.after(engine, now, None),
            Beside::Simulated(world) => {
                if let Err(e) = world.shadow.flush() {
                    tracing::error!(error = %e, "the baseline's journal");
                    return ControlFlow::Break(());
                }
                world.watch.after(engine, now, Some(&world.shadow))
            }
        }
    }
}
