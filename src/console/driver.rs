//! The engine's own thread in the console: the host's turns, paced by
//! simulated time. Each turn carries out the commands that arrived (the
//! operator's, and the HTTP intake's when it listens), decides what the
//! intake log acknowledged, advances the simulator at the chosen speed and
//! publishes what happened. The UI never touches the engine; it sends
//! `Command`s through a `Handle` and reads `Update`s.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::engine::host::{Command, Handle, Host};
use crate::engine::{Engine, EngineError, EngineEvent};
use crate::flow::FlowState;
use crate::flow::route::BreakerState;
use crate::intake::log::IntakeLog;
use crate::metrics::Summary;
use crate::sim::{Simulator, default_start, world};

/// A service's health as the Health view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub id: String,
    pub health: String,
    pub latency_ms: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeamRow {
    pub id: String,
    pub process: String,
    pub capacity: u32,
    pub load: u32,
    pub on_shift: bool,
    pub shift: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerRow {
    pub executor: String,
    pub state: BreakerState,
    pub failures: u32,
    pub trips: u32,
}

/// The state of things the engine reports besides its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub now: DateTime<Utc>,
    pub business_hours: bool,
    pub model_version: String,
    pub policy_version: String,
    /// The deployment's playbook, steps and organization (empty for the demo).
    pub rules_version: String,
    pub services: Vec<ServiceRow>,
    pub teams: Vec<TeamRow>,
    pub breakers: Vec<BreakerRow>,
    pub total: Summary,
    pub hourly: Vec<Summary>,
    /// The same hours for the rules-only shadow run on the same stream.
    pub baseline_hourly: Vec<Summary>,
    pub signals: u64,
    pub open_reviews: usize,
    pub active_flows: usize,
    /// Flows in flight (not waiting for a person) past their SLA warning
    /// or their deadline.
    pub sla_at_risk: usize,
    /// Signals held in quarantine, and the newest of them (newest first).
    pub quarantined: u64,
    pub quarantine: Vec<crate::journal::Quarantined>,
    /// Open tasks, most urgent first (at most `TASKS_SHOWN`).
    pub tasks: Vec<crate::flow::Task>,
    pub data_dir: PathBuf,
}

/// Open tasks the Tasks view lists, at most.
pub const TASKS_SHOWN: usize = 500;

pub enum Update {
    Events(Vec<EngineEvent>),
    Status(Box<Status>),
    Failed(String),
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
}

/// Signals decided from the intake log per turn (a turn every ~30 ms), at
/// most; the rest wait for the next turns.
const FROM_LOG: usize = 2048;

/// Commands carried out per turn, at most.
const GROUP: usize = 512;

/// Quarantined signals the Health view lists, at most.
const QUARANTINE_SHOWN: usize = 50;

/// Builds the status from the engine's state.
pub fn status(engine: &Engine, now: DateTime<Utc>) -> Status {
    Status {
        now,
        business_hours: engine.context.calendar.is_business_hours(now),
        model_version: engine.model_version(),
        policy_version: engine.policy().version.clone(),
        rules_version: engine.versions().rules,
        services: engine
            .context
            .services()
            .values()
            .map(|s| ServiceRow {
                id: s.id.clone(),
                health: s.health.as_str().to_string(),
                latency_ms: s.latency_ms,
            })
            .collect(),
        teams: engine
            .context
            .teams
            .values()
            .map(|t| TeamRow {
                id: t.id.clone(),
                process: t.process.clone(),
                capacity: t.capacity,
                load: t.load,
                on_shift: t.shift.covers_at(now, &engine.context.calendar),
                shift: format!("{:02}–{:02}", t.shift.start_hour, t.shift.end_hour),
            })
            .collect(),
        breakers: engine
            .flows
            .breakers
            .by_executor
            .iter()
            .map(|(executor, b)| BreakerRow {
                executor: executor.clone(),
                state: b.state,
                failures: b.consecutive_failures,
                trips: b.trips,
            })
            .collect(),
        total: engine.metrics.total.summary(),
        hourly: engine.metrics.hourly(),
        baseline_hourly: Vec::new(),
        signals: engine.counts().signals,
        open_reviews: engine.reviews.open_count(),
        active_flows: engine.flows.active_count(),
        sla_at_risk: engine
            .flows
            .active()
            .filter(|f| f.state != FlowState::WaitingHuman && (f.escalated || f.breached))
            .count(),
        quarantined: engine.quarantine().held,
        quarantine: engine
            .quarantine()
            .recent
            .iter()
            .rev()
            .take(QUARANTINE_SHOWN)
            .cloned()
            .collect(),
        tasks: {
            let mut tasks = engine.tasks(&crate::flow::TaskFilter::default());
            tasks.truncate(TASKS_SHOWN);
            tasks
        },
        data_dir: engine.data_dir().to_path_buf(),
    }
}

/// Starts the engine thread. Updates go to `updates`; commands come from
/// `commands` (the receiving end of `handle`). The thread ends once
/// `handle.stop()` is asked or the UI is gone, closing the journal cleanly.
pub fn spawn(
    options: DriverOptions,
    handle: Handle,
    commands: Receiver<Command>,
    updates: Sender<Update>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            // Nothing decides what the HTTP intake would take now. (Once
            // its reader exists, dropping it halts the log as well, on a
            // panic too.)
            let log = options.intake.clone();
            if let Err(e) = drive(options, &handle, commands, &updates) {
                if let Some(log) = log {
                    log.halt(&format!("the console's engine stopped: {e}"));
                }
                let _ = updates.send(Update::Failed(e.to_string()));
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
    updates: &Sender<Update>,
) -> Result<(), EngineError> {
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(options.seed), start);
    // A console session runs a whole simulated week if left alone.
    let mut sim = Simulator::new(options.seed, start, Duration::days(7), &world);
    sim.set_colleagues(options.colleagues);
    let config = crate::sim::engine_config(&options.data_dir, options.seed);
    let engine = Engine::open(config, world, start)?;
    let inbox = match &options.intake {
        Some(log) => Some(log.reader(engine.intake_cursor())?),
        None => None,
    };
    let mut host = Host::new(engine, inbox);
    host.from_log = FROM_LOG;
    let shadow_world = world::northwind(&mut ChaCha8Rng::seed_from_u64(options.seed), start);
    let shadow_sim = Simulator::new(options.seed, start, Duration::days(7), &shadow_world);
    let mut shadow_config =
        crate::sim::engine_config(&options.data_dir.join("baseline"), options.seed);
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
        handle,
        &commands,
        updates,
    );
    let Host { engine, inbox, .. } = host;
    drop(inbox);
    let closed = engine.close().map(drop);
    let shadow_closed = world.shadow.close().map(drop);
    result.and(closed).and(shadow_closed)
}

/// The turns, until the UI stops the engine or is gone.
fn turns(
    host: &mut Host,
    world: &mut World,
    speed: f64,
    handle: &Handle,
    commands: &Receiver<Command>,
    updates: &Sender<Update>,
) -> Result<(), EngineError> {
    let mut now = default_start();
    let mut last = Instant::now();
    let mut last_status = Instant::now() - StdDuration::from_secs(1);
    loop {
        let mut batch = Vec::new();
        while batch.len() < GROUP {
            match commands.try_recv() {
                Ok(c) => batch.push(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if handle.stopping() && batch.is_empty() {
            return Ok(());
        }
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
                gone = updates.send(Update::Events(events)).is_err();
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
        let events = host.engine.take_events();
        if !events.is_empty() {
            let _ = updates.send(Update::Events(events));
        }
        if last_status.elapsed() >= StdDuration::from_millis(250) {
            last_status = Instant::now();
            let mut st = status(&host.engine, now);
            st.baseline_hourly = world.shadow.metrics.hourly();
            if updates.send(Update::Status(Box::new(st))).is_err() {
                return Ok(());
            }
        }
        std::thread::sleep(StdDuration::from_millis(30));
    }
}
