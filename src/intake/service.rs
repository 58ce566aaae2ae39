//! The engine's thread behind the HTTP intake: the runner on the wall
//! clock, with up to `IN_FLIGHT` turns handed to the journal and not yet
//! answered. Commands reach it through a bounded queue, and signals
//! through the intake log, which acknowledged them once they were durable
//! there.

use std::thread::JoinHandle;

use chrono::Utc;

use crate::context::World;
use crate::engine::Engine;
use crate::engine::EngineConfig;
use crate::engine::host::{Dispatcher, Handle, Host, Notifier};
use crate::engine::runner::{IN_FLIGHT, Nothing, Pace, Runner};
use crate::intake::log::IntakeLog;

/// The engine thread and the intake log in front of it.
pub struct Started {
    pub engine: Handle,
    pub log: IntakeLog,
    pub engine_thread: JoinHandle<()>,
    /// The engine's events, numbered, for `GET /v1/events`.
    pub events: std::sync::Arc<crate::intake::events::EventHub>,
    /// Ends once every `IntakeLog` clone is dropped.
    pub log_writer: JoinHandle<()>,
    /// The intake log's sequence number the engine resumed after (what
    /// the journal's cursor says was decided).
    pub position: u64,
    /// Where a cluster's model stream is to be learnt from (after this).
    pub model_through: Option<u64>,
}

/// Starts the engine thread on `config.data_dir` (resuming a journal
/// there; a fresh one starts from `world`) and the intake log beside it.
pub fn start(
    config: EngineConfig,
    world: World,
    dispatcher: Option<Dispatcher>,
    notifier: Option<Notifier>,
    pager: Option<crate::engine::host::Pager>,
    max_backlog: u64,
    log_name: Option<&str>,
) -> anyhow::Result<Started> {
    let data_dir = config.data_dir.clone();
    let engine = Engine::open(config, world, Utc::now())?;
    let events = crate::intake::events::EventHub::new(engine.last_event_id());
    let model_through = engine.model_through();
    let hub = std::sync::Arc::clone(&events);
    let (log, log_writer) = IntakeLog::open_named(&data_dir, log_name, max_backlog)?;
    let reader = log.reader(engine.intake_cursor())?;
    let position = reader.position();
    let (handle, rx) = Handle::channel(data_dir);
    handle.wake_on_append(&log);
    let stop = handle.clone();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            let mut host = Host::new(engine, Some(reader));
            host.notifier = notifier;
            host.pager = pager;
            host.sink = Some(std::sync::Arc::new(move |batch| hub.publish(batch)));
            let mut runner = Runner::new(host, Pace::Wall);
            runner.in_flight = IN_FLIGHT;
            runner.answerer = true;
            runner.dispatcher = dispatcher;
            // Failed commits are answered as such, and halt the log.
            let engine = runner.run(&rx, &stop, &mut Nothing).engine;
            if let Err(e) = engine.close() {
                tracing::error!(error = %e, "closing the journal");
            }
        })?;
    Ok(Started {
        engine: handle,
        log,
        engine_thread,
        events,
        log_writer,
        position,
        model_through,
    })
}
