//! The engine's own thread in the console: the host's turns, paced by
//! simulated time. Each turn carries out the commands that arrived (the
//! operator's, and the HTTP intake's when it listens), decides what the
//! intake log acknowledged, advances the simulator at the chosen speed and
//! publishes what happened. The UI never touches the engine; it sends
//! `Command`s through a `Handle` and reads `Update`s.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::feed::Feed;
use crate::engine::host::{Command, Handle, Host};
use crate::engine::{Engine, EngineError, EngineEvent};
use crate::intake::log::IntakeLog;
use crate::sim::{Simulator, default_start, world};

pub use crate::engine::overview::{BreakerRow, Overview as Status, ServiceRow, TeamRow, status};

pub enum Update {
    Events(Vec<EngineEvent>),
    Status(Box<Status>),
    Failed(String),
    /// A server's whole state (an attached console's start, or after a reset).
    Snapshot(Box<crate::engine::overview::State>),
    /// How the link to the server stands.
    Link(super::attach::Link),
    /// The last round trip to the server.
    Rtt(std::time::Duration),
}

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
    pub claim_expiry: Option<Duration>,
    /// A candidate policy file deciding beside the live one (shadow mode).
    pub shadow: Option<PathBuf>,
    /// A candidate model checkpoint deciding beside the live model.
    pub shadow_model: Option<PathBuf>,
    /// A candidate playbook deciding beside the live one.
    pub shadow_playbook: Option<PathBuf>,
    /// A guarded ramp file, started with the engine.
    pub ramp: Option<PathBuf>,
}

/// Signals decided from the intake log per turn (a turn every ~30 ms), at
/// most; the rest wait for the next turns.
const FROM_LOG: usize = 2048;

/// The figures (`Update::Status`) are published this often.
const STATUS_EVERY: StdDuration = StdDuration::from_millis(250);

/// Commands carried out per turn, at most.
const GROUP: usize = 512;

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
            let driven = if options.deployment.is_some() {
                drive_deployment(options, &handle, commands, &feed)
            } else {
                drive(options, &handle, commands, &feed)
            };
            if let Err(e) = driven {
                if let Some(log) = log {
                    log.halt(&format!("the console's engine stopped: {e}"));
                }
                let _ = feed.publish(Update::Failed(e.to_string()));
            }
        })
}

/// The simulated world and its rules-only shadow: the same stream through
/// an engine with the model off, so the Overview can compare decision
/// quality.
struct World {
    sim: Simulator,
    shadow_sim: Simulator,
    shadow: Engine,
}

fn drive(
    options: DriverOptions,
    handle: &Handle,
    commands: Receiver<Command>,
    feed: &Feed,
) -> Result<(), EngineError> {
    // A journal already here is resumed: simulated time goes on from its
    // last record, and the simulator numbers what it makes after the
    // signals it holds.
    let (start, after) = resumed(&options.data_dir)?;
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(options.seed), start);
    // A console session runs a whole simulated week if left alone.
    let mut sim = Simulator::after(options.seed, start, Duration::days(7), &world, after);
    sim.set_colleagues(options.colleagues);
    let mut config = crate::sim::engine_config(&options.data_dir, options.seed);
    config.claim_expiry = options.claim_expiry;
    config.shadow_policy_file = options.shadow.clone();
    config.ramp_file = options.ramp.clone();
    config.shadow_model_file = options.shadow_model.clone();
    config.shadow_playbook_file = options.shadow_playbook.clone();
    let engine = Engine::open(config, world, start)?;
    let mut host = host_on(engine, options.intake.as_ref())?;
    if after > 0 {
        // What the resumed journal holds: the queue and the flows in flight.
        let state = crate::engine::overview::State::of(
            &host.engine,
            start,
            &crate::page::Page::everything(),
        );
        let _ = feed.publish(Update::Snapshot(Box::new(state)));
    }
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
    let mut world = World {
        sim,
        shadow_sim,
        shadow,
    };
    let result = turns(
        &mut host,
        &mut world,
        options.speed,
        start,
        handle,
        &commands,
        feed,
    );
    let Host { engine, inbox, .. } = host;
    drop(inbox);
    let closed = engine.close().map(drop);
    let shadow_closed = world.shadow.close().map(drop);
    result.and(closed).and(shadow_closed)
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

/// A deployment on the wall clock: no simulator; what happens comes from
/// the HTTP intake and the operator. A journal already in the data
/// directory is resumed.
fn drive_deployment(
    mut options: DriverOptions,
    handle: &Handle,
    commands: Receiver<Command>,
    feed: &Feed,
) -> Result<(), EngineError> {
    let Some(deployment) = options.deployment.take() else {
        return Ok(());
    };
    let mut config = crate::engine::EngineConfig::new(&options.data_dir, options.seed);
    config.rules = Some(deployment.rules.clone());
    config.author = crate::journal::author::Author::deployment(&deployment.dir);
    config.claim_expiry = options.claim_expiry;
    config.shadow_policy_file = options.shadow.clone();
    config.ramp_file = options.ramp.clone();
    config.shadow_model_file = options.shadow_model.clone();
    config.shadow_playbook_file = options.shadow_playbook.clone();
    let world = deployment.organization.world.clone();
    let mut engine = Engine::open(config, world.clone(), chrono::Utc::now())?;
    engine.context.take_organization(world);
    let mut host = host_on(engine, options.intake.as_ref())?;
    // What a resumed journal holds: the queue and the flows in flight.
    let state = crate::engine::overview::State::of(
        &host.engine,
        chrono::Utc::now(),
        &crate::page::Page::everything(),
    );
    let _ = feed.publish(Update::Snapshot(Box::new(state)));
    let mut last_status = Instant::now() - STATUS_EVERY;
    let result = loop {
        let Some(batch) = gather(&commands, handle) else {
            break Ok(());
        };
        if let Some(reader) = &host.inbox {
            reader.beat();
        }
        let now = chrono::Utc::now();
        if let Some(turn) = host.turn(now, batch, |_| now)
            && let Err(e) = turn.settle(None)
        {
            break Err(e);
        }
        if feed.events(host.engine.take_events()).is_err() {
            break Ok(());
        }
        if due(&mut last_status)
            && feed
                .publish(Update::Status(Box::new(status(&host.engine, now))))
                .is_err()
        {
            break Ok(());
        }
        std::thread::sleep(StdDuration::from_millis(30));
    };
    let Host { engine, inbox, .. } = host;
    drop(inbox);
    result.and(engine.close().map(drop))
}

/// Whether the figures are due again (every `STATUS_EVERY`); if so, from now.
fn due(last: &mut Instant) -> bool {
    let due = last.elapsed() >= STATUS_EVERY;
    if due {
        *last = Instant::now();
    }
    due
}

/// The commands waiting, up to `GROUP`; `None` once the UI is gone, or
/// asked the engine to stop and nothing is left to carry out.
fn gather(commands: &Receiver<Command>, handle: &Handle) -> Option<Vec<Command>> {
    let mut batch = Vec::new();
    while batch.len() < GROUP {
        match commands.try_recv() {
            Ok(c) => batch.push(c),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => return None,
        }
    }
    (!(handle.stopping() && batch.is_empty())).then_some(batch)
}

/// The turns, until the UI stops the engine or is gone.
fn turns(
    host: &mut Host,
    world: &mut World,
    speed: f64,
    start: chrono::DateTime<chrono::Utc>,
    handle: &Handle,
    commands: &Receiver<Command>,
    feed: &Feed,
) -> Result<(), EngineError> {
    let mut now = start;
    let mut last = Instant::now();
    let mut last_status = Instant::now() - STATUS_EVERY;
    loop {
        let Some(batch) = gather(commands, handle) else {
            return Ok(());
        };
        if let Some(reader) = &host.inbox {
            reader.beat();
        }
        let elapsed = last.elapsed();
        last = Instant::now();
        let target = now + Duration::milliseconds((elapsed.as_secs_f64() * speed * 1000.0) as i64);
        let mut gone = false;
        let turn = host.turn(now, batch, |engine| {
            while now < target && !gone {
                now = (now + crate::sim::run::STEP).min(target);
                let events = world.sim.step(engine, now);
                world.shadow_sim.step(&mut world.shadow, now);
                gone = feed.events(events).is_err();
            }
            now
        });
        world.shadow.flush()?;
        if let Some(turn) = turn {
            turn.settle(None)?;
        }
        if gone {
            return Ok(());
        }
        if feed.events(host.engine.take_events()).is_err() {
            return Ok(());
        }
        if due(&mut last_status) {
            let mut st = status(&host.engine, now);
            st.baseline_hourly = world.shadow.metrics.hourly();
            if feed.publish(Update::Status(Box::new(st))).is_err() {
                return Ok(());
            }
        }
        std::thread::sleep(StdDuration::from_millis(30));
    }
}
