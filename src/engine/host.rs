//! The engine's host: the one turn of work, shared by `serve` and the
//! console, that carries out the commands that arrived, decides what the
//! intake log acknowledged, lets the caller drive the engine (the
//! simulator does), runs the timers and hands everything to the journal as
//! one batch. Replies that promise durability (an ingest, an action) wait
//! for that batch's commit.
//!
//! Commands carry typed replies: what an HTTP client or a terminal makes
//! of them (status codes, JSON, a status line) is theirs to decide.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::notices::Notice;
use super::runner::Pace;
pub use super::status::{Status, status};
use super::{Engine, EngineError, Ingested};
use crate::flow::Dispatch;
use crate::journal::Commit;
use crate::journal::intake_log::{IntakeLog, LogReader, Progress};
use crate::signal::Signal;

pub use super::command::{Command, Reply};

/// What one ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub decisions: Vec<String>,
    /// Signals taken, and held in quarantine since they could not be decided.
    pub quarantined: usize,
}

/// Where dispatched webhook steps go (the executor task).
pub type Dispatcher = tokio::sync::mpsc::UnboundedSender<Dispatch>;

/// Where notices go once durable (`intake::notify`).
pub type Notifier = tokio::sync::mpsc::UnboundedSender<Notice>;

/// Where pages' notifications go once durable (`intake::pager`).
pub type Pager = tokio::sync::mpsc::UnboundedSender<crate::paging::pages::Send>;

/// Where numbered events go once durable (`intake::events`).
pub type EventSink = Arc<dyn Fn(Vec<(u64, super::EngineEvent)>) + Send + Sync>;

/// Why a command could not be queued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Busy {
    /// The queue is full: try again shortly.
    Full,
    /// The engine has stopped.
    Gone,
}

/// Commands the engine's thread may hold before refusing.
pub const QUEUE: usize = 4096;

/// A handle on the engine's thread, cloned into whoever sends it commands.
#[derive(Clone)]
pub struct Handle {
    tx: SyncSender<Command>,
    pub data_dir: PathBuf,
    /// Set at shutdown: the engine answers what is queued, then closes,
    /// whoever still holds a handle.
    stop: Arc<AtomicBool>,
}

impl Handle {
    /// A handle, with the receiving end for the engine's thread.
    pub fn channel(data_dir: PathBuf) -> (Handle, Receiver<Command>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        (
            Handle {
                tx,
                data_dir,
                stop: Default::default(),
            },
            rx,
        )
    }

    /// Asks the engine's thread to drain and close.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether `stop` was asked.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn send(&self, command: Command) -> Result<(), Busy> {
        match self.tx.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Busy::Full),
            Err(TrySendError::Disconnected(_)) => Err(Busy::Gone),
        }
    }

    /// Wakes the engine when the intake log has committed signals (a full
    /// queue needs no wake-up: the engine reads the log at every turn).
    pub fn wake_on_append(&self, log: &IntakeLog) {
        let nudge = self.tx.clone();
        log.on_append(move || {
            let _ = nudge.try_send(Command::Appended);
        });
    }
}

/// Signals decided from the intake log, for the log to learn of once the
/// journal holds their decisions.
pub struct Decided {
    pub progress: Progress,
    /// The last sequence number decided.
    pub upto: u64,
    /// When each was acknowledged (those this process acknowledged).
    pub acked: Vec<Instant>,
}

impl Decided {
    /// The journal holds these decisions: the log may forget their rows,
    /// and their time from 202 to decision is counted.
    pub fn durable(&self) {
        self.progress.observe(&self.acked);
        self.progress.decided(self.upto);
    }
}

/// Replies waiting for a turn's commit.
type Waiting = Vec<Box<dyn FnOnce(Result<(), &str>) + Send>>;

/// A turn handed to the journal and not yet durable: its replies and the
/// webhook steps it recorded wait for it.
pub struct Turn {
    commit: Result<Commit, EngineError>,
    waiting: Waiting,
    dispatches: Vec<Dispatch>,
    decided: Option<Decided>,
    notices: Vec<Notice>,
    notifier: Option<Notifier>,
    events: Vec<(u64, super::EngineEvent)>,
    sink: Option<EventSink>,
    sends: Vec<crate::paging::pages::Send>,
    pager: Option<Pager>,
}

impl Turn {
    /// Waits for the commit, then answers and dispatches. Returns the
    /// commit's result.
    pub fn settle(self, dispatcher: Option<&Dispatcher>) -> Result<(), EngineError> {
        let result = self
            .commit
            .and_then(|c| c.wait().map_err(EngineError::from));
        match (&result, self.decided) {
            (Ok(()), Some(decided)) => decided.durable(),
            // The engine has taken signals from the log whose decisions the
            // journal does not hold: it must not go on as if it had (the log
            // would delete them); a restart decides them again.
            (Err(e), Some(decided)) => decided
                .progress
                .halt(&format!("journal commit failed: {e}")),
            _ => {}
        }
        if result.is_ok() {
            send_dispatches(self.dispatches, dispatcher);
            if let Some(notifier) = &self.notifier {
                for notice in self.notices {
                    let _ = notifier.send(notice);
                }
            }
            match &self.pager {
                Some(pager) => {
                    for send in self.sends {
                        let _ = pager.send(send);
                    }
                }
                None if !self.sends.is_empty() => {
                    tracing::warn!(
                        n = self.sends.len(),
                        "page notifications with no pager running"
                    )
                }
                None => {}
            }
            if let Some(sink) = &self.sink
                && !self.events.is_empty()
            {
                sink(self.events);
            }
        }
        let shared = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        for reply in self.waiting {
            reply(shared.as_ref().map(|_| ()).map_err(String::as_str));
        }
        result
    }
}

/// Sends committed webhook steps to the executor.
pub fn send_dispatches(jobs: Vec<Dispatch>, dispatcher: Option<&Dispatcher>) {
    for job in jobs {
        match dispatcher {
            Some(d) => {
                let _ = d.send(job);
            }
            None => tracing::warn!(flow = %job.flow_id, "webhook step with no executor running"),
        }
    }
}

/// The engine and, when it has one, the intake log it decides from.
pub struct Host {
    pub engine: Engine,
    pub inbox: Option<LogReader>,
    /// Signals read from the intake log per turn, at most.
    pub from_log: usize,
    /// Where the engine's notices go (none: they are not collected).
    pub notifier: Option<Notifier>,
    /// Where its events go, numbered (none: the host does not take them).
    pub sink: Option<EventSink>,
    /// Where pages' notifications go (none: nobody is notified).
    pub pager: Option<Pager>,
}

impl Host {
    pub fn new(engine: Engine, inbox: Option<LogReader>) -> Host {
        Host {
            engine,
            inbox,
            from_log: super::runner::FROM_LOG,
            notifier: None,
            sink: None,
            pager: None,
        }
    }

    /// One turn: the commands, up to `from_log` signals of the intake log,
    /// whatever `drive` does with the engine (it runs the timers, and
    /// returns the time it brought the engine to: `runner::Beside`), and a
    /// flush. `None` when there was nothing to do (a wake-up for signals
    /// already read).
    pub fn turn(
        &mut self,
        now: DateTime<Utc>,
        commands: Vec<Command>,
        drive: impl FnOnce(&mut Engine) -> DateTime<Utc>,
    ) -> Option<Turn> {
        let only_nudges =
            !commands.is_empty() && commands.iter().all(|c| matches!(c, Command::Appended));
        let mut waiting = Waiting::new();
        for command in commands {
            carry_out(&mut self.engine, command, now, &mut waiting);
        }
        let decided = self
            .inbox
            .as_mut()
            .and_then(|reader| decide_from_log(&mut self.engine, reader, self.from_log, now));
        if only_nudges && decided.is_none() {
            return None;
        }
        drive(&mut self.engine);
        let events = if self.sink.is_some() {
            self.engine.take_numbered_events()
        } else {
            Vec::new()
        };
        let commit = self.engine.flush();
        Some(Turn {
            commit,
            waiting,
            dispatches: self.engine.take_dispatches(),
            decided,
            notices: self.engine.take_notices(),
            notifier: self.notifier.clone(),
            events,
            sink: self.sink.clone(),
            sends: self.engine.take_sends(),
            pager: self.pager.clone(),
        })
    }
}

/// Decides the next signals of the intake log, and records the engine's
/// position in the log for the next flush.
fn decide_from_log(
    engine: &mut Engine,
    reader: &mut LogReader,
    max: usize,
    now: DateTime<Utc>,
) -> Option<Decided> {
    let before = reader.position();
    let signals = match reader.read_acked(max) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "reading the intake log");
            // Do not spin on a log that cannot be read.
            std::thread::sleep(std::time::Duration::from_millis(100));
            return None;
        }
    };
    let mut acked = Vec::with_capacity(signals.len());
    for (s, at) in signals {
        engine.ingest(s, now);
        acked.extend(at);
    }
    if reader.position() == before {
        return None;
    }
    engine.note_intake_cursor(reader.cursor(), reader.signal_at_cursor());
    Some(Decided {
        progress: reader.progress(),
        upto: reader.position(),
        acked,
    })
}

/// A reply sent once the turn is durable.
fn after_commit<T: Send + 'static>(
    waiting: &mut Waiting,
    reply: Reply<T>,
    value: Result<T, EngineError>,
) {
    waiting.push(Box::new(move |committed| {
        let answer = match (value, committed) {
            (Ok(v), Ok(())) => Ok(v),
            (Err(e), _) => Err(e),
            (Ok(_), Err(why)) => Err(EngineError::NotDurable(why.to_string())),
        };
        let _ = reply.send(answer);
    }));
}

/// Carries out one command; replies that promise durability wait in
/// `waiting` for the turn's commit.
fn carry_out(engine: &mut Engine, command: Command, now: DateTime<Utc>, waiting: &mut Waiting) {
    let Some(command) = answer(engine, command, now) else {
        return;
    };
    let Some(command) = carry_out_for_people(engine, command, now, waiting) else {
        return;
    };
    match command {
        Command::Ingest { signals, reply } => {
            let report = ingest_all(engine, signals, now);
            after_commit(waiting, reply, Ok(report));
        }
        Command::Act {
            review_id,
            actor,
            action,
            note,
            reply,
        } => {
            let done = engine.act(&review_id, &actor, action, &note, now);
            after_commit(waiting, reply, done);
        }
        Command::Quarantine {
            how,
            signal_id,
            source,
            actor,
            note,
            reply,
        } => {
            let done =
                engine.release_quarantined(how, &signal_id, source.as_deref(), &actor, &note, now);
            after_commit(waiting, reply, done);
        }
        Command::Ramp {
            call,
            actor,
            note,
            reply,
        } => {
            let done = engine
                .call_ramp(call, &actor, &note, now)
                .map_err(EngineError::from)
                .and_then(|_| ramp_state(engine));
            after_commit(waiting, reply, done);
        }
        Command::StepResult {
            flow_id,
            step,
            attempt,
            success,
            detail,
        } => engine.complete_step(&flow_id, step, attempt, success, &detail, now),
        // The caller reads the log after handling its commands.
        Command::Appended => {}
        Command::TaskAct {
            task_id,
            action,
            actor,
            note,
            reply,
        } => {
            let done = engine.act_on_task(&task_id, &action, &actor, &note, now);
            after_commit(waiting, reply, done);
        }
        Command::Reload {
            reload,
            actor,
            reply,
        } => {
            let versions = engine.reload(*reload, &actor, now);
            after_commit(waiting, reply, Ok(versions));
        }
        // Questions are answered by `answer`.
        _ => {}
    }
}

/// Carries out what people do about pages, incidents, silences and who
/// is on call; any other command is handed back.
fn carry_out_for_people(
    engine: &mut Engine,
    command: Command,
    now: DateTime<Utc>,
    waiting: &mut Waiting,
) -> Option<Command> {
    match command {
        Command::PutSilence {
            asked,
            actor,
            reply,
        } => {
            let done = engine
                .put_silence(asked, &actor, now)
                .map_err(EngineError::from);
            after_commit(waiting, reply, done);
        }
        Command::ExpireSilence { id, actor, reply } => {
            let done = engine
                .expire_silence(&id, &actor, now)
                .map_err(EngineError::from);
            after_commit(waiting, reply, done);
        }
        Command::ResolveIncident { id, actor, reply } => {
            let done = engine
                .resolve_incident(&id, &actor, now)
                .map_err(EngineError::from);
            after_commit(waiting, reply, done);
        }
        Command::PageAct {
            id,
            action,
            actor,
            reply,
        } => {
            let done = engine
                .page_act(&id, action, &actor, now)
                .map_err(EngineError::from);
            after_commit(waiting, reply, done);
        }
        Command::AdvisorState(row) => engine.advisor = Some(row),
        Command::LearnShared(updates) => engine.learn_shared(updates, now),
        Command::Advise {
            review_id,
            advice,
            reply,
        } => {
            let done = engine.advise(&review_id, advice);
            after_commit(waiting, reply, done);
        }
        Command::PageDelivered {
            page_id,
            attempt,
            result,
        } => engine.page_delivered(&page_id, attempt, result, now),
        Command::Override {
            schedule,
            person,
            from,
            to,
            actor,
            reply,
        } => {
            let done = engine
                .set_override(&schedule, &person, (from, to), &actor, now)
                .map_err(EngineError::from);
            after_commit(waiting, reply, done);
        }
        other => return Some(other),
    }
    None
}

/// Answers a question (a read, nothing to journal) at once; any other
/// command is handed back.
fn answer(engine: &mut Engine, command: Command, now: DateTime<Utc>) -> Option<Command> {
    match command {
        Command::Reviews { page, reply } => {
            let _ = reply.send(engine.reviews_page(&page));
        }
        Command::Review { id, reply } => {
            let _ = reply.send(engine.reviews.get(&id));
        }
        Command::Status { reply } => {
            let _ = reply.send(status(engine));
        }
        Command::Tasks {
            filter,
            page,
            reply,
        } => {
            let _ = reply.send(engine.tasks_page(&filter, &page));
        }
        Command::Flows {
            filter,
            page,
            reply,
        } => {
            let _ = reply.send(engine.flows_page(filter, &page));
        }
        Command::Flow { id, reply } => {
            let _ = reply.send(engine.flow(&id).cloned().map(Box::new));
        }
        Command::Versions { reply } => {
            let _ = reply.send(engine.versions());
        }
        Command::Pages { open_only, reply } => {
            let _ = reply.send(engine.pages(open_only));
        }
        Command::Page { id, reply } => {
            let _ = reply.send(engine.page(&id));
        }
        Command::Silences { reply } => {
            let _ = reply.send(engine.silences());
        }
        Command::SilencePreview { matchers, reply } => {
            let _ = reply.send((engine.open_items_matching(&matchers), now));
        }
        Command::Incidents { open_only, reply } => {
            let _ = reply.send(engine.incidents(open_only));
        }
        Command::Incident { id, reply } => {
            let _ = reply.send(engine.incident(&id));
        }
        Command::OnCall { team, at, reply } => {
            let _ = reply.send(engine.on_call(at, team.as_deref()));
        }
        Command::State {
            overview_only,
            page,
            reply,
        } => {
            let state = if overview_only {
                super::overview::State::overview(engine, now)
            } else {
                super::overview::State::of(engine, now, &page)
            };
            let _ = reply.send(Box::new(state));
        }
        other => return Some(other),
    }
    None
}

/// Ingests signals one after another, and what became of them.
fn ingest_all(engine: &mut Engine, signals: Vec<Signal>, now: DateTime<Utc>) -> IngestReport {
    let mut report = IngestReport::default();
    for s in signals {
        match engine.ingest(s, now) {
            Ingested::Decided { decision_id, .. } => {
                report.accepted += 1;
                report.decisions.push(decision_id);
            }
            Ingested::Duplicate => report.duplicates += 1,
            Ingested::Paused => report.accepted += 1,
            Ingested::Quarantined { .. } => {
                report.accepted += 1;
                report.quarantined += 1;
            }
        }
    }
    report
}

/// The ramp as it stands after a lead's call.
fn ramp_state(engine: &Engine) -> Result<crate::decide::ramp::RampState, EngineError> {
    engine
        .ramp()
        .cloned()
        .ok_or(EngineError::Ramp(super::ramp::RampRefused::NoRamp))
}

/// Decides whatever the intake log in the engine's directory holds past
/// its cursor, as a restart of `serve` would, and commits it. Returns how
/// many signals it read (0 when there is no log).
pub fn drain_log(engine: Engine) -> Result<(Engine, u64), EngineError> {
    let dir = engine.data_dir().to_path_buf();
    if !dir.join(crate::journal::intake_log::FILE_NAME).exists() {
        return Ok((engine, 0));
    }
    let (log, writer) = IntakeLog::open(&dir)?;
    let reader = log.reader(engine.intake_cursor())?;
    let before = reader.position();
    let mut runner = super::runner::Runner::new(Host::new(engine, Some(reader)), Pace::Wall);
    runner.drain_limit = None;
    // Asked to stop before it starts: it decides what the log holds, and ends.
    let (handle, commands) = Handle::channel(dir);
    handle.stop();
    let progress = runner.host.inbox.as_ref().map(LogReader::progress);
    let ran = runner.run(&commands, &handle, &mut super::runner::Nothing);
    let (engine, result) = (ran.engine, ran.result);
    let read = progress.map_or(0, |p| p.decided_upto().saturating_sub(before));
    drop(log);
    if writer.join().is_err() {
        tracing::error!("the intake log's writer panicked");
    }
    result.map(|()| (engine, read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{at, signal};
    use rand::SeedableRng;
    use tokio::sync::oneshot;
    use tokio::sync::oneshot::error::TryRecvError;

    fn host(dir: &std::path::Path) -> Host {
        let world =
            crate::sim::world::northwind(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1), at(0));
        let engine = Engine::open(crate::sim::engine_config(dir, 1), world, at(0))
            .expect("the engine opens");
        Host::new(engine, None)
    }

    /// An ingest's answer waits for the turn's commit; a repeat in the same
    /// command is counted, not decided.
    #[test]
    fn an_ingest_is_answered_once_its_turn_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host(dir.path());
        let s = signal(1, "ticket.opened", "customer/c0001", serde_json::json!({}));
        let (tx, mut rx) = oneshot::channel();
        let ingest = Command::Ingest {
            signals: vec![s.clone(), s],
            reply: tx,
        };
        let turn = host.turn(at(1), vec![ingest], |_| at(1));
        let turn = turn.expect("a command makes a turn");
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        turn.settle(None).unwrap();
        let report = rx.try_recv().unwrap().unwrap();
        assert_eq!((report.accepted, report.duplicates), (1, 1));
        assert_eq!(report.decisions.len(), 1);
        host.engine.close().unwrap();
    }

    /// Questions that promise nothing durable are answered within the turn.
    #[test]
    fn a_status_is_answered_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host(dir.path());
        let (tx, mut rx) = oneshot::channel();
        let turn = host.turn(at(1), vec![Command::Status { reply: tx }], |_| at(1));
        assert!(rx.try_recv().is_ok(), "answered before the commit");
        turn.map(|t| t.settle(None)).transpose().unwrap();
        host.engine.close().unwrap();
    }

    /// A wake-up for signals already read, with no log to read, is no turn:
    /// nothing is flushed and the caller waits again.
    #[test]
    fn a_wake_up_with_nothing_to_read_is_no_turn() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host(dir.path());
        let turn = host.turn(at(1), vec![Command::Appended], |_| at(1));
        assert!(turn.is_none());
        host.engine.close().unwrap();
    }
}
