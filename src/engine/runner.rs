//! The engine's one runner: a loop over a closed set of commands in
//! (`host::Command`), paced by the wall clock, by simulated time or as fast
//! as it goes, with a bound on the turns handed to the journal and not yet
//! answered. `serve`'s engine thread, the console on a deployment and on
//! the simulator, `drain_log`, headless runs, the benchmark and the
//! console's demo all run it; what differs between them is the pace, the
//! world beside the engine (`Beside`: the simulator, or nothing) and where
//! events go (the host's sink, or the world beside).
//!
//! Each pass: wait for a command (no longer than the pace allows), take up
//! to `GROUP` more, let the host carry them out, decide what the intake
//! log acknowledged, bring the world to the pace's time, run the timers,
//! and hand the batch to the journal. A turn is settled (its replies
//! answered, its steps dispatched) once its commit is durable: at once
//! with no turns in flight, else by an answerer thread, in order.

use std::ops::ControlFlow;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};

use super::host::{Command, Dispatcher, Handle, Host, Turn};
use super::{Engine, EngineError};

/// How a runner's time goes.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// The wall clock (`serve`, the console on a deployment): a turn when
    /// commands come or the intake log holds signals, and at least every
    /// `IDLE` for the timers.
    Wall,
    /// Simulated time (the console on the simulator): `speed` simulated
    /// seconds per real second from `start`, a turn every `TICK`.
    Simulated { speed: f64, start: DateTime<Utc> },
    /// As fast as it goes from `start` (headless runs, the benchmark, the
    /// demo): the world beside decides how far each turn goes, and when the
    /// run ends.
    Max { start: DateTime<Utc> },
}

/// With fewer than `GATHER_BELOW` signals waiting, a turn begins at least
/// `GATHER` after the last one, so that it (and the journal commit it ends
/// with, a sync) carries several signals: at a moderate rate, a turn per
/// signal or two spent more of the machine on wake-ups and syncs than on
/// deciding, and the tail of the decisions' latency grew with the load on
/// the cores. A backlog of more is decided at once, turn after turn.
const GATHER: StdDuration = StdDuration::from_millis(5);
const GATHER_BELOW: u64 = 256;

/// With nothing to do, a turn at least this often: the timers still run.
const IDLE: StdDuration = StdDuration::from_millis(200);

/// A simulated turn this often: the simulator advances by the real time
/// since the last one, times the speed.
const TICK: StdDuration = StdDuration::from_millis(30);

/// Most commands folded into one turn.
pub const GROUP: usize = 512;

/// Signals read from the intake log per turn, at most.
pub const FROM_LOG: usize = 512;

/// Turns handed to the journal and not yet answered, at most, where a
/// runner keeps several (`serve`; the bench keeps as many).
pub const IN_FLIGHT: usize = 4;

/// How long a stopping engine goes on deciding what the intake log holds;
/// what is left is decided at the next start.
pub const DRAIN_LIMIT: StdDuration = StdDuration::from_secs(10);

/// What runs beside the engine's turns.
pub trait Beside {
    /// Brings the world beside the engine to `to` and runs the engine's
    /// timers there; returns the time reached. With no world (the wall
    /// clock), only the timers run.
    fn advance(&mut self, engine: &mut Engine, to: DateTime<Utc>) -> DateTime<Utc> {
        engine.tick(to);
        to
    }

    /// After each turn went to the journal (`settled`: and was answered):
    /// `Break` stops the runner.
    fn after_turn(&mut self, _engine: &mut Engine, _now: DateTime<Utc>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// Nothing beside the engine: the wall clock alone.
pub struct Nothing;

impl Beside for Nothing {}

/// The engine's host, paced.
pub struct Runner {
    pub host: Host,
    pub pace: Pace,
    /// Turns handed to the journal and not yet answered, at most; with 0,
    /// each is settled before the next begins. A failed commit stops the
    /// runner with its error, unless an answerer settles them.
    pub in_flight: usize,
    /// Turns are settled by a thread of their own, as soon as each is
    /// durable (`serve`: replies go out while the engine works on).
    pub answerer: bool,
    /// Where committed webhook steps go.
    pub dispatcher: Option<Dispatcher>,
    /// How long a stopping runner goes on deciding the intake log (none:
    /// until it is empty).
    pub drain_limit: Option<StdDuration>,
}

/// Where the turns' answers are given.
enum Answers {
    /// Settled here, the oldest once more than `in_flight` wait.
    Here(std::collections::VecDeque<Turn>),
    /// By the answerer thread, in order.
    Thread {
        to_answer: mpsc::SyncSender<Turn>,
        answerer: std::thread::JoinHandle<()>,
    },
}

/// The runner's clock: the wall's, or simulated time and the real instant
/// it was last advanced.
struct Clock {
    pace: Pace,
    simulated: DateTime<Utc>,
    last: Instant,
}

impl Clock {
    fn new(pace: Pace) -> Clock {
        let simulated = match pace {
            Pace::Wall => Utc::now(),
            Pace::Simulated { start, .. } | Pace::Max { start } => start,
        };
        Clock {
            pace,
            simulated,
            last: Instant::now(),
        }
    }

    /// The time commands are carried out at, and the time the world is
    /// brought to in this turn.
    fn next(&mut self) -> (DateTime<Utc>, DateTime<Utc>) {
        match self.pace {
            Pace::Wall => {
                let now = Utc::now();
                (now, now)
            }
            Pace::Simulated { speed, .. } => {
                let real = self.last.elapsed();
                self.last = Instant::now();
                let ms = (real.as_secs_f64() * speed * 1000.0) as i64;
                (self.simulated, self.simulated + Duration::milliseconds(ms))
            }
            Pace::Max { .. } => (self.simulated, DateTime::<Utc>::MAX_UTC),
        }
    }
}

impl Runner {
    /// A runner on `host` at `pace`, settling each turn before the next.
    pub fn new(host: Host, pace: Pace) -> Runner {
        Runner {
            host,
            pace,
            in_flight: 0,
            answerer: false,
            dispatcher: None,
            drain_limit: Some(DRAIN_LIMIT),
        }
    }

    /// Runs until `handle.stop()` is asked (then drains the intake log, up
    /// to `drain_limit`), every sender of `commands` is gone, or `beside`
    /// says stop. Returns the engine, not yet closed, with the first failed
    /// commit when turns are settled here, every turn settled.
    pub fn run(
        mut self,
        commands: &Receiver<Command>,
        handle: &Handle,
        beside: &mut impl Beside,
    ) -> Ran {
        let mut answers = match self.answers() {
            Ok(a) => a,
            Err(e) => return Ran::failed(self.host.engine, e),
        };
        let mut spent = Spent::default();
        let mut clock = Clock::new(self.pace);
        let mut stopping: Option<Instant> = None;
        let mut last_turn = Instant::now();
        let mut result = Ok(());
        loop {
            let unread = self.host.inbox.as_ref().is_some_and(|r| {
                r.beat();
                r.pending()
            });
            if stopping.is_none() && handle.stopping() {
                stopping = Some(Instant::now());
            }
            let deadline = Instant::now() + self.patience(stopping.is_some(), last_turn);
            let first = match receive(commands, deadline, unread) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => None,
            };
            if first.is_none()
                && let Some(since) = stopping
            {
                if !unread {
                    break;
                }
                if self
                    .drain_limit
                    .is_some_and(|limit| since.elapsed() > limit)
                {
                    tracing::warn!(
                        left = self.host.inbox.as_ref().map_or(0, |r| r.backlog()),
                        "stopping: signals left in the intake log are decided at the next start"
                    );
                    break;
                }
            }
            let mut batch: Vec<Command> = first.into_iter().collect();
            batch.extend(commands.try_iter().take(GROUP - batch.len()));
            let (now, to) = clock.next();
            let mut reached = now;
            let mut flushed = Instant::now();
            let turn = self.host.turn(now, batch, |engine| {
                reached = beside.advance(engine, to);
                flushed = Instant::now();
                reached
            });
            spent.flush += flushed.elapsed();
            clock.simulated = reached;
            if let Some(turn) = turn {
                last_turn = Instant::now();
                let waited = Instant::now();
                let settled = self.settle(&mut answers, turn);
                spent.wait += waited.elapsed();
                if let Err(e) = settled {
                    result = Err(e);
                    break;
                }
            }
            if beside.after_turn(&mut self.host.engine, reached).is_break() {
                break;
            }
        }
        let waited = Instant::now();
        match answers {
            Answers::Here(kept) => {
                for turn in kept {
                    let settled = turn.settle(self.dispatcher.as_ref());
                    result = result.and(settled);
                }
            }
            Answers::Thread {
                to_answer,
                answerer,
            } => {
                drop(to_answer);
                if answerer.join().is_err() {
                    tracing::error!("the engine's answer thread panicked");
                }
            }
        }
        spent.wait += waited.elapsed();
        let Host { engine, inbox, .. } = self.host;
        // The reader goes first: the log takes no more once it is gone.
        drop(inbox);
        Ran {
            engine,
            result,
            spent,
        }
    }

    /// The answerer thread, if there is to be one.
    fn answers(&self) -> Result<Answers, EngineError> {
        if !self.answerer {
            return Ok(Answers::Here(Default::default()));
        }
        let (to_answer, answers) = mpsc::sync_channel::<Turn>(self.in_flight);
        let dispatcher = self.dispatcher.clone();
        let answerer = std::thread::Builder::new()
            .name("engine-answers".into())
            .spawn(move || {
                for turn in answers {
                    let _ = turn.settle(dispatcher.as_ref());
                }
            })
            .map_err(|e| EngineError::NotDurable(format!("cannot start the answer thread: {e}")))?;
        Ok(Answers::Thread {
            to_answer,
            answerer,
        })
    }

    /// Settles the oldest turn here once more than `in_flight` wait, or
    /// hands `turn` to the answerer.
    fn settle(&self, answers: &mut Answers, turn: Turn) -> Result<(), EngineError> {
        match answers {
            Answers::Here(kept) => {
                kept.push_back(turn);
                match kept.len() > self.in_flight {
                    true => kept
                        .pop_front()
                        .map_or(Ok(()), |t| t.settle(self.dispatcher.as_ref())),
                    false => Ok(()),
                }
            }
            Answers::Thread { to_answer, .. } => match to_answer.send(turn) {
                Ok(()) => Ok(()),
                // The answerer is gone (it panicked): answer here.
                Err(mpsc::SendError(turn)) => turn.settle(self.dispatcher.as_ref()),
            },
        }
    }

    /// How long to wait for the next command: nothing while stopping or
    /// behind, a moment to gather a few signals, else until the next
    /// simulated tick or the idle turn.
    fn patience(&self, stopping: bool, last_turn: Instant) -> StdDuration {
        let (pending, backlog) = self
            .host
            .inbox
            .as_ref()
            .map_or((false, 0), |r| (r.pending(), r.backlog()));
        if stopping {
            StdDuration::ZERO
        } else if pending && backlog < GATHER_BELOW {
            GATHER.saturating_sub(last_turn.elapsed())
        } else if pending {
            StdDuration::ZERO
        } else {
            match self.pace {
                Pace::Wall => IDLE,
                Pace::Simulated { .. } => TICK.saturating_sub(last_turn.elapsed()),
                Pace::Max { .. } => StdDuration::ZERO,
            }
        }
    }
}

/// What a run leaves: the engine (not yet closed), the first failed commit
/// among the turns settled here, and where the runner's own time went.
pub struct Ran {
    pub engine: Engine,
    pub result: Result<(), EngineError>,
    pub spent: Spent,
}

impl Ran {
    fn failed(engine: Engine, e: EngineError) -> Ran {
        Ran {
            engine,
            result: Err(e),
            spent: Spent::default(),
        }
    }
}

/// The runner's own time: handing turns to the journal (flushing), and
/// waiting for their commits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    pub flush: StdDuration,
    pub wait: StdDuration,
}

/// The first command before `deadline`; a wake-up for signals already
/// known to wait (`unread`) does not end the gathering.
fn receive(
    commands: &Receiver<Command>,
    deadline: Instant,
    unread: bool,
) -> Result<Command, RecvTimeoutError> {
    loop {
        match commands.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Command::Appended) if unread && Instant::now() < deadline => continue,
            other => return other,
        }
    }
}
