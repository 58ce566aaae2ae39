//! The engine's thread behind the HTTP intake: the host's turns, paced for
//! a server. Commands reach it through a bounded queue, and signals
//! through the intake log, which acknowledged them once they were durable
//! there. A turn's batch goes to the journal without waiting for the ones
//! before; an answerer thread waits for each commit in order, then replies
//! and dispatches.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;

use crate::context::World;
use crate::engine::host::{Command, Dispatcher, Handle, Host, Notifier, Turn};
use crate::engine::{Engine, EngineConfig};
use crate::intake::log::{IntakeLog, LogReader};

/// The engine thread and the intake log in front of it.
pub struct Started {
    pub engine: Handle,
    pub log: IntakeLog,
    pub engine_thread: JoinHandle<()>,
    /// The engine's events, numbered, for `GET /v1/events`.
    pub events: std::sync::Arc<crate::intake::events::EventHub>,
    /// Ends once every `IntakeLog` clone is dropped.
    pub log_writer: JoinHandle<()>,
}

/// Starts the engine thread on `config.data_dir` (resuming a journal
/// there; a fresh one starts from `world`) and the intake log beside it.
/// With `organization`, the deployment's organization is taken over what
/// a resumed journal held.
pub fn start(
    mut config: EngineConfig,
    world: World,
    organization: bool,
    dispatcher: Option<Dispatcher>,
    notifier: Option<Notifier>,
    max_backlog: u64,
) -> anyhow::Result<Started> {
    let data_dir = config.data_dir.clone();
    config.publish = false;
    config.notices = notifier.is_some();
    // A resumed journal keeps its own entities; a deployment's organization
    // is then taken over them.
    let organization = organization.then(|| world.clone());
    let mut engine = Engine::open(config, world, Utc::now())?;
    if let Some(world) = organization {
        engine.context.take_organization(world);
    }
    engine.set_publish(true);
    let events = crate::intake::events::EventHub::new(engine.last_event_id());
    let hub = std::sync::Arc::clone(&events);
    let (log, log_writer) = IntakeLog::open_with(&data_dir, max_backlog)?;
    let reader = log.reader(engine.intake_cursor())?;
    let (handle, rx) = Handle::channel(data_dir);
    handle.wake_on_append(&log);
    let stop = handle.clone();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            let mut host = Host::new(engine, Some(reader));
            host.notifier = notifier;
            host.sink = Some(std::sync::Arc::new(move |batch| hub.publish(batch)));
            run(host, rx, dispatcher, stop)
        })?;
    Ok(Started {
        engine: handle,
        log,
        engine_thread,
        events,
        log_writer,
    })
}

/// With fewer than `GATHER_BELOW` signals waiting, a turn begins at least
/// `GATHER` after the last one, so that it (and the journal commit it ends
/// with, a sync) carries several signals: at a moderate rate, a turn per
/// signal or two spent more of the machine on wake-ups and syncs than on
/// deciding, and the tail of the decisions' latency grew with the load on
/// the cores. A backlog of more is decided at once, turn after turn.
const GATHER: StdDuration = StdDuration::from_millis(5);
const GATHER_BELOW: u64 = 256;

/// How long a stopping engine goes on deciding what the intake log holds;
/// what is left is decided at the next start.
const DRAIN_LIMIT: StdDuration = StdDuration::from_secs(10);

/// Most commands folded into one turn.
const GROUP: usize = 512;

/// Turns handed to the journal and not yet answered, at most (the bench
/// keeps as many).
pub(crate) const IN_FLIGHT: usize = 4;

/// How long to wait for the next command: nothing while stopping or
/// behind, a moment to gather a few signals, else until the idle tick.
fn patience(reader: &LogReader, stopping: bool, last_turn: Instant) -> StdDuration {
    if stopping {
        StdDuration::ZERO
    } else if reader.pending() && reader.backlog() < GATHER_BELOW {
        GATHER.saturating_sub(last_turn.elapsed())
    } else if reader.pending() {
        StdDuration::ZERO
    } else {
        StdDuration::from_millis(200)
    }
}

fn run(mut host: Host, rx: Receiver<Command>, dispatcher: Option<Dispatcher>, stop: Handle) {
    let (to_answer, answers) = mpsc::sync_channel::<Turn>(IN_FLIGHT);
    let answer_dispatcher = dispatcher.clone();
    let answerer = std::thread::Builder::new()
        .name("intake-answers".into())
        .spawn(move || {
            for turn in answers {
                let _ = turn.settle(answer_dispatcher.as_ref());
            }
        });
    let answerer = match answerer {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the intake's answer thread");
            return;
        }
    };
    let mut stopping: Option<Instant> = None;
    let mut last_turn = Instant::now();
    while let Some(reader) = host.inbox.as_ref() {
        reader.beat();
        if stopping.is_none() && stop.stopping() {
            stopping = Some(Instant::now());
        }
        let unread = reader.pending();
        let deadline = Instant::now() + patience(reader, stopping.is_some(), last_turn);
        let received = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                // A wake-up for signals already known to wait: keep gathering.
                Ok(Command::Appended) if unread && Instant::now() < deadline => continue,
                other => break other,
            }
        };
        let first = match received {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) if unread => None,
            Err(RecvTimeoutError::Timeout) if stopping.is_some() => break,
            // Idle: the timers still run.
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if first.is_none()
            && let Some(since) = stopping
            && since.elapsed() > DRAIN_LIMIT
        {
            tracing::warn!(
                left = reader.backlog(),
                "stopping: signals left in the intake log are decided at the next start"
            );
            break;
        }
        let mut commands: Vec<Command> = first.into_iter().collect();
        while commands.len() < GROUP {
            match rx.try_recv() {
                Ok(c) => commands.push(c),
                Err(_) => break,
            }
        }
        let now = Utc::now();
        let Some(turn) = host.turn(now, commands, |_| now) else {
            continue;
        };
        last_turn = Instant::now();
        if let Err(mpsc::SendError(turn)) = to_answer.send(turn) {
            // The answerer is gone (it panicked): answer here.
            let _ = turn.settle(dispatcher.as_ref());
        }
    }
    drop(to_answer);
    if answerer.join().is_err() {
        tracing::error!("the intake's answer thread panicked");
    }
    let Host { engine, inbox, .. } = host;
    // The reader goes first: the log takes no more once it is gone.
    drop(inbox);
    if let Err(e) = engine.close() {
        tracing::error!(error = %e, "closing the journal");
    }
}
