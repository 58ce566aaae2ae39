//! The engine behind the HTTP intake: one thread owns the engine; requests
//! reach it through a bounded queue, and signals through the intake log
//! (`log`), which acknowledged them once they were durable there. The
//! engine decides them from the log in order, journaling its position in
//! the log with their decisions. Ingest requests from internal sources
//! (files, probes) go to the engine directly; those that arrive together
//! share one journal commit (group commit) and are answered only after it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::engine::{Engine, EngineConfig, Ingested};
use crate::intake::log::{IntakeLog, LogReader, Progress};

use crate::review::{Action, Actor};
use crate::signal::Signal;
use crate::sim::{default_start, world};

/// What one ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub decisions: Vec<String>,
    /// Signals taken, and held in quarantine since they could not be decided.
    pub quarantined: usize,
}

/// A snapshot of engine state for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    pub decisions_by_mode: Vec<(String, u64)>,
    pub open_reviews: usize,
    pub flows_by_state: Vec<(String, u64)>,
    pub breakers: Vec<(String, String)>,
    pub last_commit_micros: u64,
    pub commits: u64,
    /// Signals taken in, by type (`other` outside the playbook) and outcome.
    pub signals: Vec<(String, &'static str, u64)>,
    /// Quarantined since start, and held now.
    pub quarantined: u64,
    pub quarantine_held: u64,
    pub policy_errors: u64,
    /// How long each journal commit took.
    pub journal_commits: Option<prometheus_client::metrics::histogram::Histogram>,
}

pub enum Request {
    Ingest {
        signals: Vec<Signal>,
        reply: oneshot::Sender<Result<IngestReport, String>>,
    },
    Reviews {
        reply: oneshot::Sender<Value>,
    },
    Act {
        review_id: String,
        actor: Actor,
        action: Action,
        note: String,
        reply: oneshot::Sender<Result<Value, (u16, String)>>,
    },
    Stats {
        reply: oneshot::Sender<EngineStats>,
    },
    /// A webhook executor's answer for a dispatched step.
    StepResult {
        flow_id: String,
        step: usize,
        attempt: u32,
        success: bool,
        detail: String,
    },
    /// A lead retries or drops a quarantined signal.
    Quarantine {
        how: crate::engine::quarantine::Release,
        signal_id: String,
        source: Option<String>,
        actor: Actor,
        note: String,
        reply: oneshot::Sender<Result<Value, (u16, String)>>,
    },
    /// The intake log has committed signals the engine has not read.
    Appended,
}

/// Where dispatched webhook steps go (the executor task).
pub type Dispatcher = tokio::sync::mpsc::UnboundedSender<crate::flow::Dispatch>;

/// Why a request could not be queued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Busy {
    /// The queue is full: try again shortly.
    Full,
    /// The engine has stopped.
    Gone,
}

#[derive(Clone)]
pub struct EngineHandle {
    tx: SyncSender<Request>,
    pub data_dir: PathBuf,
    /// Set at shutdown: the engine answers what is queued, then closes,
    /// whoever still holds a handle.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EngineHandle {
    /// A handle on an engine owned elsewhere (the console's engine thread),
    /// with the receiving end to poll there.
    pub fn channel(data_dir: PathBuf) -> (EngineHandle, Receiver<Request>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        (
            EngineHandle {
                tx,
                data_dir,
                stop: Default::default(),
            },
            rx,
        )
    }

    /// Asks the engine thread to drain and close.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn send(&self, request: Request) -> Result<(), Busy> {
        match self.tx.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Busy::Full),
            Err(TrySendError::Disconnected(_)) => Err(Busy::Gone),
        }
    }
}

/// Requests the engine thread may hold before refusing with 503.
pub const QUEUE: usize = 4096;

/// The engine thread and the intake log in front of it.
pub struct Started {
    pub engine: EngineHandle,
    pub log: IntakeLog,
    pub engine_thread: JoinHandle<()>,
    /// Ends once every `IntakeLog` clone is dropped.
    pub log_writer: JoinHandle<()>,
}

/// Starts the engine thread on `data_dir` (resuming a journal there) and
/// the intake log beside it. `configure` adjusts the engine's settings
/// (webhooks, timings).
pub fn start(
    data_dir: PathBuf,
    seed: u64,
    configure: impl FnOnce(&mut EngineConfig),
    dispatcher: Option<Dispatcher>,
    max_backlog: u64,
) -> anyhow::Result<Started> {
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(seed), start);
    let mut config = EngineConfig::new(&data_dir, seed);
    config.publish = false;
    configure(&mut config);
    let engine = Engine::open(config, world, Utc::now())?;
    let (log, log_writer) = IntakeLog::open_with(&data_dir, max_backlog)?;
    let reader = log.reader(engine.intake_cursor())?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let nudge = tx.clone();
    // A full queue needs no wake-up: the engine reads the log at every turn.
    log.on_append(move || {
        let _ = nudge.try_send(Request::Appended);
    });
    let handle = EngineHandle {
        tx,
        data_dir,
        stop: Default::default(),
    };
    let stop = Arc::clone(&handle.stop);
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || run(engine, rx, reader, dispatcher, stop))?;
    Ok(Started {
        engine: handle,
        log,
        engine_thread,
        log_writer,
    })
}

/// Signals read from the intake log per turn, at most. The engine decides
/// as fast as signals are acknowledged, bursts included: decisions are
/// wanted most in an alert storm, and holding them back to acknowledge
/// faster only moved the wait from the 202 to the decision.
const FROM_LOG: usize = 512;

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

/// Decides the next signals of the intake log, and records the engine's
/// position in the log for the next flush. Returns what it decided, for
/// the log to learn once the flush is durable.
pub fn decide_from_log(
    engine: &mut Engine,
    reader: &mut LogReader,
    max: usize,
    now: chrono::DateTime<Utc>,
) -> Option<Decided> {
    let before = reader.position();
    let signals = match reader.read_acked(max) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "reading the intake log");
            // Do not spin on a log that cannot be read.
            std::thread::sleep(StdDuration::from_millis(100));
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
    engine.note_intake_cursor(reader.cursor());
    Some(Decided {
        progress: reader.progress(),
        upto: reader.position(),
        acked,
    })
}

/// Decides whatever the intake log in `dir` holds past the engine's
/// cursor, as a restart of `serve` would, and commits it. Returns how many
/// signals it read (0 when there is no log).
pub fn drain_log(engine: &mut Engine) -> anyhow::Result<u64> {
    let dir = engine.data_dir().to_path_buf();
    if !dir.join(crate::intake::log::FILE_NAME).exists() {
        return Ok(0);
    }
    let (log, writer) = IntakeLog::open(&dir)?;
    let mut reader = log.reader(engine.intake_cursor())?;
    let before = reader.position();
    while let Some(decided) = decide_from_log(engine, &mut reader, FROM_LOG, Utc::now()) {
        engine.flush()?.wait()?;
        decided.durable();
    }
    let read = reader.position() - before;
    drop(reader);
    drop(log);
    if writer.join().is_err() {
        anyhow::bail!("the intake log's writer panicked");
    }
    Ok(read)
}

/// Most requests folded into one commit.
const GROUP: usize = 512;

/// Batches handed to the journal and not yet answered, at most (the
/// bench keeps as many).
pub(crate) const IN_FLIGHT: usize = 4;

/// Sends committed webhook steps to the executor.
fn send_dispatches(jobs: Vec<crate::flow::Dispatch>, dispatcher: Option<&Dispatcher>) {
    for job in jobs {
        match dispatcher {
            Some(d) => {
                let _ = d.send(job);
            }
            None => tracing::warn!(flow = %job.flow_id, "webhook step with no executor running"),
        }
    }
}

/// A batch handed to the journal and not yet durable: its replies and the
/// webhook steps it recorded wait for it.
struct InFlight {
    commit: Result<crate::journal::Commit, String>,
    waiting: Waiting,
    dispatches: Vec<crate::flow::Dispatch>,
    /// What this batch decided from the intake log.
    decided: Option<Decided>,
}

impl InFlight {
    /// Waits for the commit, then answers and dispatches.
    fn settle(self, dispatcher: Option<&Dispatcher>) {
        let result = self
            .commit
            .and_then(|c| c.wait().map_err(|e| e.to_string()));
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
        }
        answer(self.waiting, result);
    }
}

fn run(
    mut engine: Engine,
    rx: Receiver<Request>,
    mut reader: LogReader,
    dispatcher: Option<Dispatcher>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    // Batches go to the journal without waiting for the ones before: the
    // engine decides the next requests while earlier commits are written,
    // and batches that queue up behind a commit share the next one (the
    // writer folds them into one transaction). The answerer thread waits
    // for each commit in order and answers (and dispatches) as soon as it
    // is durable; at most `IN_FLIGHT` batches wait for it.
    let (to_answer, answers) = mpsc::sync_channel::<InFlight>(IN_FLIGHT);
    let answer_dispatcher = dispatcher.clone();
    let answerer = std::thread::Builder::new()
        .name("intake-answers".into())
        .spawn(move || {
            for batch in answers {
                batch.settle(answer_dispatcher.as_ref());
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
    loop {
        reader.beat();
        if stopping.is_none() && stop.load(Ordering::SeqCst) {
            stopping = Some(Instant::now());
        }
        let unread = reader.pending();
        let idle = if stopping.is_some() {
            StdDuration::ZERO
        } else if unread && reader.backlog() < GATHER_BELOW {
            GATHER.saturating_sub(last_turn.elapsed())
        } else if unread {
            StdDuration::ZERO
        } else {
            StdDuration::from_millis(200)
        };
        let deadline = Instant::now() + idle;
        let received = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                // A wake-up for signals already known to wait: keep gathering.
                Ok(Request::Appended) if unread && Instant::now() < deadline => continue,
                other => break other,
            }
        };
        let first = match received {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) if unread => None,
            Err(RecvTimeoutError::Timeout) => {
                if stopping.is_some() {
                    break;
                }
                engine.tick(Utc::now());
                if let Ok(c) = engine.flush()
                    && c.wait().is_ok()
                {
                    send_dispatches(engine.take_dispatches(), dispatcher.as_ref());
                }
                continue;
            }
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
        let mut batch: Vec<Request> = first.into_iter().collect();
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let now = Utc::now();
        let only_nudges = !batch.is_empty() && batch.iter().all(|r| matches!(r, Request::Appended));
        let mut waiting = Vec::new();
        for request in batch {
            handle(&mut engine, request, now, &mut waiting);
        }
        let decided = decide_from_log(&mut engine, &mut reader, FROM_LOG, now);
        if only_nudges && decided.is_none() {
            // Woken for signals already read: nothing to commit.
            continue;
        }
        last_turn = Instant::now();
        engine.tick(now);
        let commit = engine.flush().map_err(|e| e.to_string());
        let dispatches = engine.take_dispatches();
        let batch = InFlight {
            commit,
            waiting,
            dispatches,
            decided,
        };
        if let Err(mpsc::SendError(batch)) = to_answer.send(batch) {
            // The answerer is gone (it panicked): answer here.
            batch.settle(dispatcher.as_ref());
        }
    }
    drop(to_answer);
    if answerer.join().is_err() {
        tracing::error!("the intake's answer thread panicked");
    }
    if let Err(e) = engine.close() {
        tracing::error!(error = %e, "closing the journal");
    }
}

/// Ingest replies waiting for the next commit.
pub type Waiting = Vec<(oneshot::Sender<Result<IngestReport, String>>, IngestReport)>;

/// Carries out one request on the engine. Ingest replies are queued in
/// `waiting`: the caller answers them after the next commit.
pub fn handle(
    engine: &mut Engine,
    request: Request,
    now: chrono::DateTime<Utc>,
    waiting: &mut Waiting,
) {
    match request {
        Request::Ingest { signals, reply } => {
            let mut report = IngestReport::default();
            for s in signals {
                match engine.ingest(s, now) {
                    Ingested::Decided { decision_id, .. } => {
                        report.accepted += 1;
                        report.decisions.push(decision_id);
                    }
                    Ingested::Duplicate => report.duplicates += 1,
                    Ingested::Quarantined { .. } => {
                        report.accepted += 1;
                        report.quarantined += 1;
                    }
                }
            }
            waiting.push((reply, report));
        }
        Request::Reviews { reply } => {
            let items: Vec<Value> = engine
                .open_reviews()
                .into_iter()
                .map(|i| {
                    json!({
                        "id": i.id, "decision": i.decision.id, "signal_type": i.decision.signal_type,
                        "subject": i.decision.subject, "proposal": i.decision.proposal,
                        "confidence": i.decision.confidence, "priority": i.priority.as_str(),
                        "required_role": i.required_role.as_str(), "deadline": i.deadline,
                        "alternatives": i.decision.options.iter().filter(|o| o.allowed).map(|o| &o.option).collect::<Vec<_>>(),
                        "why": i.decision.why,
                    })
                })
                .collect();
            let _ = reply.send(json!({ "items": items }));
        }
        Request::Act {
            review_id,
            actor,
            action,
            note,
            reply,
        } => {
            let result = engine.act(&review_id, &actor, action, &note, now);
            let answer = match result {
                Ok(record) => Ok(json!({
                    "review": record.review_id, "decision": record.decision_id,
                    "action": record.action.name(), "actor": record.actor.name, "note": record.note,
                })),
                Err(e) => Err((status_of(&e), e.to_string())),
            };
            // Acknowledge the action only once it is durable.
            let durable = engine.flush().and_then(|c| Ok(c.wait()?));
            let _ = reply.send(match durable {
                Ok(()) => answer,
                Err(e) => Err((500, e.to_string())),
            });
        }
        Request::Stats { reply } => {
            let _ = reply.send(stats(engine));
        }
        Request::StepResult {
            flow_id,
            step,
            attempt,
            success,
            detail,
        } => engine.complete_step(&flow_id, step, attempt, success, &detail, now),
        Request::Quarantine {
            how,
            signal_id,
            source,
            actor,
            note,
            reply,
        } => {
            use crate::engine::quarantine::Released;
            let answer = engine
                .release_quarantined(how, &signal_id, source.as_deref(), &actor, &note, now)
                .map(|released| match released {
                    Released::Decided(decision) => {
                        json!({"id": signal_id, "state": "decided", "decision": decision})
                    }
                    Released::HeldAgain(error) => {
                        json!({"id": signal_id, "state": "quarantined", "error": error})
                    }
                    Released::Dropped(q) => {
                        json!({"id": q.signal_id, "source": q.source, "state": "dropped"})
                    }
                })
                .map_err(|e| (status_of(&e), e.to_string()));
            let durable = engine.flush().and_then(|c| Ok(c.wait()?));
            let _ = reply.send(match durable {
                Ok(()) => answer,
                Err(e) => Err((500, e.to_string())),
            });
        }
        // The caller reads the log after handling its requests.
        Request::Appended => {}
    }
}

/// The HTTP status for an engine's refusal.
fn status_of(e: &crate::engine::EngineError) -> u16 {
    use crate::engine::EngineError;
    use crate::engine::quarantine::QuarantineError;
    use crate::review::ReviewError;
    match e {
        EngineError::Review(ReviewError::NotFound(_))
        | EngineError::Quarantine(QuarantineError::NotHeld(_)) => 404,
        EngineError::Review(ReviewError::Viewer { .. } | ReviewError::RoleTooLow { .. })
        | EngineError::Quarantine(QuarantineError::NotALead(_)) => 403,
        EngineError::Review(ReviewError::AlreadyDecided { .. })
        | EngineError::Quarantine(QuarantineError::Ambiguous { .. }) => 409,
        EngineError::Review(_) => 400,
        _ => 500,
    }
}

/// Answers the ingest requests once their commit is durable (or failed).
pub fn answer(waiting: Waiting, result: Result<(), String>) {
    for (reply, report) in waiting {
        let _ = reply.send(result.clone().map(|()| report));
    }
}

fn stats(engine: &Engine) -> EngineStats {
    let t = &engine.metrics.total;
    let mut signals: Vec<(String, &'static str, u64)> = engine
        .signal_tally()
        .iter()
        .flat_map(|(kind, t)| {
            [
                ("decided", t.decided),
                ("duplicate", t.duplicate),
                ("quarantined", t.quarantined),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(outcome, n)| (kind.clone(), outcome, n))
        })
        .collect();
    signals.sort();
    let mut flows: std::collections::BTreeMap<String, u64> = Default::default();
    for f in engine.flows.flows.values() {
        *flows.entry(f.state.as_str().to_string()).or_default() += 1;
    }
    let journal = engine.journal_stats();
    EngineStats {
        decisions_by_mode: vec![
            ("auto".into(), t.auto),
            ("forced".into(), t.forced),
            ("rules".into(), t.rules),
            ("review".into(), t.review),
            ("record".into(), t.record),
        ],
        open_reviews: engine.reviews.open_count(),
        flows_by_state: flows.into_iter().collect(),
        breakers: engine
            .flows
            .breakers
            .by_executor
            .iter()
            .map(|(e, b)| (e.clone(), b.state.as_str().to_string()))
            .collect(),
        last_commit_micros: journal.last_commit_micros,
        commits: journal.commits,
        signals,
        quarantined: engine.quarantine().quarantined,
        quarantine_held: engine.quarantine().held,
        policy_errors: t.policy_errors,
        journal_commits: Some(engine.journal_commits()),
    }
}
