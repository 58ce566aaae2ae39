//! The engine's own thread in the console: it owns the engine and the
//! simulator, advances simulated time at the chosen speed, carries out the
//! operator's commands and publishes what happened. The UI never touches
//! the engine; it sends `Command`s and reads `Update`s.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, EngineConfig, EngineEvent};
use crate::flow::route::BreakerState;
use crate::metrics::Summary;
use crate::review::{Action, Actor};
use crate::sim::{Simulator, default_start, world};

/// What the UI asks of the engine.
pub enum Command {
    Act {
        review_id: String,
        action: Action,
        note: String,
        reply: Sender<Result<String, String>>,
    },
    Stop,
}

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
    /// Signals held in quarantine, and the newest of them (newest first).
    pub quarantined: u64,
    pub quarantine: Vec<crate::journal::Quarantined>,
    pub data_dir: PathBuf,
}

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
    /// Who acts when the UI sends an action.
    pub operator: Actor,
    /// Requests from the HTTP intake, and the intake log its signals are
    /// acknowledged in, when it listens.
    pub intake: Option<(
        Receiver<crate::intake::service::Request>,
        crate::intake::log::IntakeLog,
    )>,
}

/// Signals decided from the intake log per turn (a turn every ~30 ms), at
/// most; the rest wait for the next turns.
const FROM_LOG: usize = 2048;

/// Quarantined signals the Health view lists, at most.
const QUARANTINE_SHOWN: usize = 50;

/// Builds the status from the engine's state.
pub fn status(engine: &Engine, now: DateTime<Utc>) -> Status {
    let hour = chrono::Timelike::hour(&now);
    Status {
        now,
        business_hours: engine.context.calendar.is_business_hours(now),
        model_version: engine.model_version(),
        policy_version: engine.policy().version.clone(),
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
                on_shift: t.shift.covers(hour),
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
        quarantined: engine.quarantine().held,
        quarantine: engine
            .quarantine()
            .recent
            .iter()
            .rev()
            .take(QUARANTINE_SHOWN)
            .cloned()
            .collect(),
        data_dir: engine.data_dir().to_path_buf(),
    }
}

/// Starts the engine thread. Updates go to `updates`; commands come from
/// `commands`. The thread ends on `Command::Stop` or when the UI is gone,
/// closing the journal cleanly.
pub fn spawn(
    options: DriverOptions,
    commands: Receiver<Command>,
    updates: Sender<Update>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            // Nothing decides what the HTTP intake would take now. (Once
            // its reader exists, dropping it halts the log as well, on a
            // panic too.)
            let log = options.intake.as_ref().map(|(_, log)| log.clone());
            if let Err(e) = drive(options, commands, &updates) {
                if let Some(log) = log {
                    log.halt(&format!("the console's engine stopped: {e}"));
                }
                let _ = updates.send(Update::Failed(e));
            }
        })
}

fn drive(
    options: DriverOptions,
    commands: Receiver<Command>,
    updates: &Sender<Update>,
) -> Result<(), String> {
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(options.seed), start);
    // A console session runs a whole simulated week if left alone.
    let mut sim = Simulator::new(options.seed, start, Duration::days(7), &world);
    sim.set_colleagues(options.colleagues);
    let config = EngineConfig::new(&options.data_dir, options.seed);
    let mut engine = Engine::open(config, world, start).map_err(|e| e.to_string())?;
    let mut log_reader = match &options.intake {
        Some((_, log)) => Some(
            log.reader(engine.intake_cursor())
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    // The rules-only shadow: the same stream through an engine with the
    // model off, so the Overview can compare decision quality.
    let shadow_world = world::northwind(&mut ChaCha8Rng::seed_from_u64(options.seed), start);
    let mut shadow_sim = Simulator::new(options.seed, start, Duration::days(7), &shadow_world);
    let mut shadow_config = EngineConfig::new(&options.data_dir.join("baseline"), options.seed);
    shadow_config.learning = false;
    let mut shadow = Engine::open(shadow_config, shadow_world, start).map_err(|e| e.to_string())?;
    let mut now = start;
    let mut last = Instant::now();
    let mut last_status = Instant::now() - StdDuration::from_secs(1);
    loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Act {
                    review_id,
                    action,
                    note,
                    reply,
                }) => {
                    let result = engine
                        .act(&review_id, &options.operator, action, &note, now)
                        .map(|r| format!("{} {} by {}", r.action.name(), r.review_id, r.actor.name))
                        .map_err(|e| e.to_string());
                    let _ = reply.send(result);
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                    engine.close().map_err(|e| e.to_string())?;
                    shadow.close().map_err(|e| e.to_string())?;
                    return Ok(());
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        // Requests from the HTTP intake: answered after this turn's commit.
        let mut waiting = Vec::new();
        if let Some((requests, _)) = &options.intake {
            while let Ok(request) = requests.try_recv() {
                crate::intake::service::handle(&mut engine, request, now, &mut waiting);
            }
        }
        if let Some(reader) = &log_reader {
            reader.beat();
        }
        let decided = log_reader.as_mut().and_then(|reader| {
            crate::intake::service::decide_from_log(&mut engine, reader, FROM_LOG, now)
        });
        let elapsed = last.elapsed();
        last = Instant::now();
        let target =
            now + Duration::milliseconds((elapsed.as_secs_f64() * options.speed * 1000.0) as i64);
        while now < target {
            now = (now + crate::sim::run::STEP).min(target);
            let events = sim.step(&mut engine, now);
            shadow_sim.step(&mut shadow, now);
            if updates.send(Update::Events(events)).is_err() {
                engine.close().map_err(|e| e.to_string())?;
                shadow.close().map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
        shadow.flush().map_err(|e| e.to_string())?;
        let committed = engine
            .flush()
            .and_then(|c| Ok(c.wait()?))
            .map_err(|e| e.to_string());
        crate::intake::service::answer(waiting, committed.clone());
        committed?;
        if let Some(decided) = decided {
            decided.durable();
        }
        let events = engine.take_events();
        if !events.is_empty() {
            let _ = updates.send(Update::Events(events));
        }
        if last_status.elapsed() >= StdDuration::from_millis(250) {
            last_status = Instant::now();
            let mut st = status(&engine, now);
            st.baseline_hourly = shadow.metrics.hourly();
            if updates.send(Update::Status(Box::new(st))).is_err() {
                engine.close().map_err(|e| e.to_string())?;
                shadow.close().map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
        std::thread::sleep(StdDuration::from_millis(30));
    }
}
