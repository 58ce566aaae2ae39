//! The engine behind the HTTP intake: one thread owns the engine; requests
//! reach it through a bounded queue. Ingest requests that arrive together
//! share one journal commit (group commit) and are answered only after it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration as StdDuration;

use chrono::Utc;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::engine::{Engine, EngineConfig, Ingested};
use crate::review::{Action, Actor};
use crate::signal::Signal;
use crate::sim::{default_start, world};

/// What one ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub decisions: Vec<String>,
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

/// Starts the engine thread on `data_dir` (resuming a journal there).
/// `configure` adjusts the engine's settings (webhooks, timings).
pub fn start(
    data_dir: PathBuf,
    seed: u64,
    configure: impl FnOnce(&mut EngineConfig),
    dispatcher: Option<Dispatcher>,
) -> anyhow::Result<(EngineHandle, JoinHandle<()>)> {
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(seed), start);
    let mut config = EngineConfig::new(&data_dir, seed);
    config.publish = false;
    configure(&mut config);
    let engine = Engine::open(config, world, Utc::now())?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let handle = EngineHandle {
        tx,
        data_dir,
        stop: Default::default(),
    };
    let stop = Arc::clone(&handle.stop);
    let thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || run(engine, rx, dispatcher, stop))?;
    Ok((handle, thread))
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
}

impl InFlight {
    /// Waits for the commit, then answers and dispatches.
    fn settle(self, dispatcher: Option<&Dispatcher>) {
        let result = self
            .commit
            .and_then(|c| c.wait().map_err(|e| e.to_string()));
        if result.is_ok() {
            send_dispatches(self.dispatches, dispatcher);
        }
        answer(self.waiting, result);
    }
}

fn run(
    mut engine: Engine,
    rx: Receiver<Request>,
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
    loop {
        let idle = if stop.load(Ordering::SeqCst) {
            StdDuration::from_millis(0)
        } else {
            StdDuration::from_millis(200)
        };
        let first = match rx.recv_timeout(idle) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::SeqCst) {
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
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let now = Utc::now();
        let mut waiting = Vec::new();
        for request in batch {
            handle(&mut engine, request, now, &mut waiting);
        }
        engine.tick(now);
        let commit = engine.flush().map_err(|e| e.to_string());
        let dispatches = engine.take_dispatches();
        let batch = InFlight {
            commit,
            waiting,
            dispatches,
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
                Err(e) => {
                    let status = match &e {
                        crate::engine::EngineError::Review(
                            crate::review::ReviewError::NotFound(_),
                        ) => 404,
                        crate::engine::EngineError::Review(
                            crate::review::ReviewError::Viewer { .. }
                            | crate::review::ReviewError::RoleTooLow { .. },
                        ) => 403,
                        crate::engine::EngineError::Review(
                            crate::review::ReviewError::AlreadyDecided { .. },
                        ) => 409,
                        crate::engine::EngineError::Review(_) => 400,
                        _ => 500,
                    };
                    Err((status, e.to_string()))
                }
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
    }
}
