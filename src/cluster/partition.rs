//! One partition on the node that holds its lease: its journal rebuilt
//! from the decision stream, an engine on it whose commits are fenced,
//! its intake log fed from the signal stream, and what it sends out
//! (webhook steps, pages, notifications) on the node's runtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};

use super::Node;
use super::bus::{self, Bus};
use super::fence::{Held, StreamFence, rebuild};
use super::tail::{self, Checkpoints};
use crate::engine::host::Handle;
use crate::intake::log::{IntakeLog, Refused};
use crate::signal::Signal;

/// Signals taken from the stream into one commit of the log, at most.
const FEED_BATCH: usize = 256;

/// A partition this node runs.
pub struct Running {
    pub number: u32,
    dir: PathBuf,
    pub fence: Arc<StreamFence>,
    pub log: IntakeLog,
    engine: Handle,
    engine_thread: Option<JoinHandle<()>>,
    log_writer: Option<JoinHandle<()>>,
    /// What it runs on the node's runtime: first the cluster's own tasks
    /// (`essential` of them, named in `ESSENTIAL`), which run as long as
    /// it does, then its probes and what it sends out (which may stop
    /// early on a setting of theirs, and say so).
    tasks: Vec<tokio::task::JoinHandle<()>>,
    essential: usize,
    /// From taking the lease to deciding again.
    pub took: Duration,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Where a partition's journal and log are kept on this node.
pub fn dir_of(node: &Node, partition: u32) -> PathBuf {
    node.dir.join(format!("p{partition:03}"))
}

/// The partition's intake log's name: the same on every node, so that the
/// journal's cursor (a sequence number of the signal stream) means the
/// same wherever the partition is rebuilt.
fn log_name(partition: u32) -> String {
    format!("{}:{}", bus::SIGNALS, bus::signal_subject(partition))
}

/// How a partition numbers what it opens: its own residue of 100
/// (`crate::Numbering`), so an id names one thing in the whole cluster
/// (its last two digits are its partition).
pub fn numbering(partition: u32) -> crate::Numbering {
    const _: () = assert!(
        super::PARTITIONS <= 100,
        "a partition's residue is two digits"
    );
    crate::Numbering {
        stride: 100,
        offset: u64::from(partition),
    }
}

/// Rebuilds `partition` from the decision stream and starts deciding it
/// (the lease is held, `held`). `leased` is when the lease was taken.
pub async fn start(
    node: &Arc<Node>,
    partition: u32,
    held: Arc<Held>,
    leased: Instant,
) -> Result<Running, String> {
    let dir = dir_of(node, partition);
    if dir.exists() {
        // This node's old view: the stream is the record.
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let last = rebuild(&node.bus, partition, &dir).await?;
    let fence = Arc::new(StreamFence::new(
        &node.bus,
        bus::decision_subject(partition),
        last,
        held,
        tokio::runtime::Handle::current(),
    ));
    let went_back = node.tail.take_rewind(partition);
    rewind_cursor(&node.bus, partition, (&dir, went_back), &fence).await?;
    let (dispatch_tx, dispatch_rx) = tokio::sync::mpsc::unbounded_channel();
    let (pager_tx, pager_rx) = tokio::sync::mpsc::unbounded_channel();
    let (notice_tx, notice_rx) = tokio::sync::mpsc::unbounded_channel();
    let config = &node.deployment.server;
    let notifier = (!config.notify.is_empty()).then_some(notice_tx);
    let mut setup = crate::setup::engine(
        crate::setup::Runs::Deployment(&node.deployment),
        &dir,
        Default::default(),
        chrono::Utc::now(),
    )
    .map_err(|e| e.to_string())?;
    setup.config.fence = Some(Arc::clone(&fence) as Arc<dyn crate::journal::Fence>);
    setup.config.numbering = numbering(partition);
    setup.config.shared_model = true;
    let max_backlog = config.max_backlog();
    let name = log_name(partition);
    // Opening recovers the journal: file work, off the runtime's threads.
    let started = tokio::task::spawn_blocking(move || {
        crate::intake::service::start(
            setup.config,
            setup.world,
            Some(dispatch_tx),
            notifier,
            Some(pager_tx),
            max_backlog,
            Some(&name),
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{e:#}"))?;
    let log = started.log.clone().with_integration_key(&node.bus.secret);
    let ca_file = config.tls.as_ref().and_then(|t| t.ca_file.clone());
    let mut tasks = cluster_tasks(node, partition, &started, &log, (&dir, &fence));
    let essential = tasks.len();
    tasks.extend(probes(node, partition, &started.engine, ca_file.as_ref()));
    tasks.extend([
        tokio::spawn(crate::intake::webhook::run(
            dispatch_rx,
            started.engine.clone(),
            ca_file.clone(),
        )),
        tokio::spawn(crate::intake::pager::run(
            pager_rx,
            started.engine.clone(),
            config.pager(&node.base_url, node.bus.secret.clone()),
        )),
    ]);
    if !config.notify.is_empty() {
        tasks.push(tokio::spawn(crate::intake::notify::run(
            notice_rx,
            config.notify.clone(),
            ca_file,
        )));
    }
    Ok(Running {
        number: partition,
        dir,
        fence,
        log,
        engine: started.engine,
        engine_thread: Some(started.engine_thread),
        log_writer: Some(started.log_writer),
        tasks,
        essential,
        took: leased.elapsed(),
        since: chrono::Utc::now(),
    })
}

/// The tasks `cluster_tasks` starts, in order (`api` only where the node
/// serves HTTP, and last).
const ESSENTIAL: [&str; 5] = ["signal feed", "model", "event", "snapshot", "API"];

/// The first of `tasks` that has finished (each should run until the
/// partition stops), by its place.
fn stopped_task(tasks: &[tokio::task::JoinHandle<()>]) -> Option<usize> {
    tasks.iter().position(tokio::task::JoinHandle::is_finished)
}

/// Starts `partition` as `start` does, on a task of its own, so that a
/// panic while it is rebuilt is an error (the lease is given back and the
/// partition taken again), not the end of the node's lease loop.
pub async fn start_guarded(
    node: Arc<Node>,
    partition: u32,
    held: Arc<Held>,
    leased: Instant,
) -> Result<Running, String> {
    let started = tokio::spawn(async move { start(&node, partition, held, leased).await });
    guarded(started).await
}

async fn guarded<T>(task: tokio::task::JoinHandle<Result<T, String>>) -> Result<T, String> {
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let what = crate::engine::guard::panic_message(e.into_panic().as_ref());
            Err(format!("starting it panicked: {what}"))
        }
        Err(e) => Err(format!("starting it was cancelled: {e}")),
    }
}

/// What a partition runs because it is in a cluster: its intake log fed
/// from the signal stream, its model from the model stream, its events
/// out to the event stream, its HTTP API answered over NATS, and its
/// snapshots kept.
fn cluster_tasks(
    node: &Arc<Node>,
    partition: u32,
    started: &crate::intake::service::Started,
    log: &IntakeLog,
    (dir, fence): (&PathBuf, &Arc<StreamFence>),
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(feed(
            Arc::clone(node),
            partition,
            started.position,
            log.clone(),
        )),
        tokio::spawn(super::model::follow(
            node.bus.clone(),
            started.engine.clone(),
            started.model_through.unwrap_or(0),
        )),
        tokio::spawn(super::events::publish(
            node.bus.clone(),
            partition,
            started.events.tap(),
        )),
        tokio::spawn(super::snapshot::keep(
            node.bus.clone(),
            partition,
            dir.clone(),
            Arc::clone(fence),
            node.settings.snapshot_every,
        )),
    ];
    if let Some(front) = node.front.get() {
        // The HTTP API for this partition, as a single process serves it.
        let state = crate::intake::AppState {
            engine: started.engine.clone(),
            log: log.clone(),
            events: Some(Arc::clone(&started.events)),
            cluster: None,
            words: None,
            // Its own counts (of what was asked of it), apart from the
            // node's intake, which the node shows itself.
            counters: Default::default(),
            ..front.clone()
        };
        let router = crate::intake::router(state);
        tasks.push(tokio::spawn(super::api::answer(
            node.bus.client.clone(),
            partition,
            router,
        )));
    }
    tasks
}

/// The deployment's health probes of services in this partition: run by
/// its owner, so each runs once in the cluster (and again, from a fresh
/// first reading, on the node that takes the partition over).
fn probes(
    node: &Node,
    partition: u32,
    engine: &Handle,
    ca_file: Option<&PathBuf>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for probe in &node.deployment.organization.probes {
        if super::partition_of_subject(&probe.subject(), node.settings.partitions) != partition {
            continue;
        }
        match crate::intake::probe::Probe::new(probe.clone()) {
            Ok(probe) => tasks.push(tokio::spawn(probe.run(engine.clone(), ca_file.cloned()))),
            Err(e) => tracing::warn!(partition, error = %e, "a probe cannot run"),
        }
    }
    tasks
}

impl Running {
    /// Why the partition cannot go on here, if it cannot: its appends are
    /// refused, its log is unavailable, or its engine or one of its tasks
    /// (each runs as long as the partition does) has stopped, by a panic
    /// or otherwise. The node then gives it up and takes it again afresh
    /// from the stream, as another node would.
    pub fn trouble(&self) -> Option<String> {
        if self.fence.lost() {
            return Some("its appends are refused (the fence is lost)".into());
        }
        if let Some(why) = self.log.unavailable() {
            return Some(format!("its intake log is unavailable: {why}"));
        }
        if self.engine_thread.as_ref().is_none_or(|t| t.is_finished()) {
            return Some("its engine thread stopped".into());
        }
        let essential = self.tasks.get(..self.essential).unwrap_or_default();
        stopped_task(essential).map(|i| {
            let name = ESSENTIAL.get(i).copied().unwrap_or("cluster");
            format!("its {name} task stopped")
        })
    }

    /// Stops the partition: no more signals from the stream, the engine
    /// decides what its log holds (through the fence, while the lease is
    /// held; `lost`: nothing more is appended), then closes.
    pub async fn stop(mut self, lost: bool) {
        if lost {
            self.fence.close();
        }
        for task in &self.tasks {
            task.abort();
        }
        self.engine.stop();
        let (engine_thread, log_writer) = (self.engine_thread.take(), self.log_writer.take());
        let log = self.log.clone();
        let engine = self.engine.clone();
        let dir = self.dir.clone();
        drop(self);
        let joined = tokio::task::spawn_blocking(move || {
            if let Some(thread) = engine_thread
                && thread.join().is_err()
            {
                tracing::error!("a partition's engine thread panicked");
            }
            drop(engine);
            drop(log);
            if let Some(writer) = log_writer
                && writer.join().is_err()
            {
                tracing::error!("a partition's intake log writer panicked");
            }
            // The stream is the record; this view is rebuilt by whoever
            // takes the partition next, here or elsewhere.
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing a partition's view");
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("stopping a partition failed");
        }
    }
}

/// Takes the partition's signals from the stream, after `after`, into its
/// intake log, numbered by their stream sequence, until the log is halted
/// (the partition stops). A lost connection is retried from where it was.
async fn feed(node: Arc<Node>, partition: u32, mut after: u64, log: IntakeLog) {
    loop {
        match feed_from(&node, partition, &mut after, &log).await {
            Ok(()) => return,
            Err(why) => {
                tracing::warn!(partition, after, reason = %why, "reading the signal stream; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Reads message by message from the stream's leader (no consumer: a 2.9
/// server may place one on a peer that is down, and it never answers; no
/// direct gets: a replica may hold, for a while, messages its re-formed
/// stream has lost, and a partition that read them would see them go and
/// restart, again and again), woken by a plain subscription to the
/// partition's subject, or every `IDLE`.
async fn feed_from(
    node: &Node,
    partition: u32,
    after: &mut u64,
    log: &IntakeLog,
) -> Result<(), String> {
    let bus = &node.bus;
    let subject = bus::signal_subject(partition);
    let mut checkpoints = Checkpoints::starting_after(&bus.signals, *after).await;
    let mut wake = bus
        .client
        .subscribe(subject.clone())
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let mut signals = Vec::new();
        let mut at = Vec::new();
        let mut last = *after;
        let mut last_id = None;
        while signals.len() < FEED_BATCH {
            let next = Bus::next_at_leader(&bus.signals, &subject, last + 1)
                .await
                .map_err(|e| e.to_string())?;
            let Some(message) = next else { break };
            last = message.sequence;
            last_id = tail::id_of(&message);
            match serde_json::from_slice::<Signal>(&message.payload) {
                Ok(signal) => {
                    signals.push(signal);
                    at.push(message.sequence);
                }
                // Published by a node after checking it: only a damaged
                // stream holds one that does not read.
                Err(e) => {
                    tracing::error!(partition, seq = message.sequence, error = %e, "a signal in the stream does not parse; skipped")
                }
            }
        }
        // What was read is checked against what was read before it: were
        // that gone, this batch was read past sequences given again, which
        // only a restart of the partition (from `again`) can follow.
        let woken = if last == *after {
            let woken = tokio::select! {
                _ = wake.next() => true,
                () = tokio::time::sleep(IDLE) => false,
            };
            while let Some(Some(_)) = wake.next().now_or_never() {}
            woken
        } else {
            true
        };
        if woken && let Some(again) = checkpoints.went_back(&bus.signals).await {
            tracing::warn!(
                partition,
                read = *after,
                again,
                "the signal stream went back under a running partition"
            );
            tail::announce(node, partition, again).await;
            log.halt(&format!(
                "the signal stream of partition {partition} went back under {}; reading it again after {again}",
                *after
            ));
            return Ok(());
        }
        if !signals.is_empty() && !append(log, &signals, at).await? {
            return Ok(());
        }
        if let Some(id) = last_id {
            checkpoints.push(last, id);
        }
        *after = last;
    }
}

/// How often an idle partition looks for signals its wake-up missed.
const IDLE: Duration = Duration::from_millis(250);

/// If the signal stream's servers lost their unsynced tail (all of them at
/// once), the sequences past what they kept are given again, to new
/// signals, and a cursor past them would skip those: it is moved back to
/// the stream's last sequence of the partition. (What was decided past it
/// is known by identity: a signal published again is a repeat.) A cursor
/// not past the stream's end is checked too: the message at it must be
/// the signal read there, one this journal holds; if the sequence now
/// holds another (given again before any node took the partition), the
/// partition reads again all the stream holds. The rewound cursor is
/// committed through the fence, as any commit is: a node that takes the
/// partition later rebuilds it from the decision stream, and must start
/// where this one did, not past signals given the lost sequences since. A
/// partition that saw its stream go back while it ran (`tail`) is moved
/// back to where that found a message still in place.
async fn rewind_cursor(
    bus: &Bus,
    partition: u32,
    (dir, went_back): (&std::path::Path, Option<u64>),
    fence: &Arc<StreamFence>,
) -> Result<(), String> {
    let subject = bus::signal_subject(partition);
    let last = Bus::last_sequence(&bus.signals, &subject)
        .await
        .map_err(|e| e.to_string())?;
    let kept = went_back.map_or(last, |again| again.min(last));
    let name = log_name(partition);
    let path = dir.join(crate::journal::FILE_NAME);
    let [cursor, read_at] = meta(
        &path,
        [
            crate::engine::INTAKE_CURSOR_KEY,
            crate::engine::INTAKE_CURSOR_SIGNAL_KEY,
        ],
    )?;
    let Some(at) = crate::intake::log::position_in(cursor.as_deref(), &name) else {
        return Ok(());
    };
    // The message at the cursor, or at where the stream now ends for a
    // cursor past it (that end may itself be a sequence given again).
    let checked = at.min(kept);
    // At the cursor itself it must be the very signal read there, when the
    // journal says which (a copy of another one published again there
    // after the stream went back is a signal the journal holds too).
    let read_at_cursor = read_at.and_then(|v| {
        let (of, identity) = v.rsplit_once(' ')?;
        let identity = u128::from_str_radix(identity, 16).ok()?;
        (Some(of) == cursor.as_deref() && checked == at).then_some(identity)
    });
    let read_there =
        checked == 0 || still_read_at(bus, &subject, checked, (&path, read_at_cursor)).await?;
    let to = if read_there && at > kept {
        tracing::warn!(
            partition,
            cursor = at,
            stream = kept,
            "the signal stream lost its tail; reading it again from where it ends"
        );
        kept
    } else if !read_there {
        let first = match bus.signals.clone().info().await {
            Ok(info) => info.state.first_sequence,
            Err(e) => return Err(format!("asking where the signal stream begins: {e}")),
        };
        tracing::warn!(
            partition,
            cursor = at,
            first,
            "the message at the cursor is not the signal read there: the stream went back \
             and gave its sequences again; reading again all it holds"
        );
        first.saturating_sub(1)
    } else {
        return Ok(());
    };
    let fence = Arc::clone(fence) as Arc<dyn crate::journal::Fence>;
    let dir = dir.to_path_buf();
    let rewound = vec![
        crate::journal::Record::Meta {
            key: crate::engine::INTAKE_CURSOR_KEY.into(),
            value: format!("{name}:{to}"),
        },
        // No signal is known to have been read at the rewound cursor: the
        // one named before must not be taken for it if the reader comes
        // back to that text.
        crate::journal::Record::Meta {
            key: crate::engine::INTAKE_CURSOR_SIGNAL_KEY.into(),
            value: String::new(),
        },
    ];
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let journal =
            crate::journal::Journal::open_fenced(&dir, Some(fence)).map_err(|e| e.to_string())?;
        let commit = journal.submit(rewound).map_err(|e| e.to_string())?;
        commit.wait().map_err(|e| e.to_string())?;
        journal.close().map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Journal meta values, each if it is there.
fn meta<const N: usize>(
    path: &std::path::Path,
    keys: [&str; N],
) -> Result<[Option<String>; N], String> {
    let conn = crate::journal::connect(path).map_err(|e| e.to_string())?;
    let mut values = [const { None }; N];
    for (value, key) in values.iter_mut().zip(keys) {
        *value = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        ))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(values)
}

/// Whether the message at `at` is still the signal the partition read
/// there: on its subject, and the signal whose identity the journal says
/// it read there (`read`), or, where it does not say, a
/// signal this journal holds (decided, or in quarantine). A message gone
/// (aged out, or past a stream that went back) or one that does not read
/// says nothing against it.
async fn still_read_at(
    bus: &Bus,
    subject: &str,
    at: u64,
    (journal, read): (&std::path::Path, Option<u128>),
) -> Result<bool, String> {
    let Some(message) = Bus::at_leader(&bus.signals, at)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(true);
    };
    if message.subject.as_str() != subject {
        return Ok(false);
    }
    let Ok(signal) = serde_json::from_slice::<Signal>(&message.payload) else {
        return Ok(true);
    };
    if let Some(read) = read {
        return Ok(signal.identity() == read);
    }
    let conn = crate::journal::connect(journal).map_err(|e| e.to_string())?;
    let held: Option<i64> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT 1 FROM signals WHERE id = ?1 AND source = ?2
         UNION ALL SELECT 1 FROM quarantine WHERE signal_id = ?1 AND source = ?2 LIMIT 1",
        [&signal.id, &signal.source],
        |r| r.get(0),
    ))
    .map_err(|e| {
        format!(
            "{}: looking up signal {}: {e}",
            journal.display(),
            signal.id
        )
    })?;
    Ok(held.is_some())
}

/// Appends to the log, waiting while it is full; false once it is halted.
async fn append(log: &IntakeLog, signals: &[Signal], at: Vec<u64>) -> Result<bool, String> {
    loop {
        match log.append_at(signals, at.clone()) {
            Ok(done) => {
                return match done.await {
                    Ok(Ok(())) => Ok(true),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Ok(false),
                };
            }
            Err(Refused::Full { .. } | Refused::Stuck(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(Refused::Halted(_) | Refused::Gone) => return Ok(false),
            Err(Refused::Unwritable(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_while_starting_is_an_error_naming_it() {
        let panicked = tokio::spawn(async {
            if std::env::var_os("SIGNALBOX_NEVER_SET").is_none() {
                panic!("the snapshot read went wrong");
            }
            Ok(1)
        });
        let why = guarded(panicked).await.err().unwrap_or_default();
        assert!(
            why.contains("panicked") && why.contains("the snapshot read went wrong"),
            "{why}"
        );
        let fine = tokio::spawn(async { Ok::<_, String>(7) });
        assert_eq!(guarded(fine).await, Ok(7));
        let failed = tokio::spawn(async { Err::<u8, _>("no stream".to_string()) });
        assert_eq!(guarded(failed).await, Err("no stream".to_string()));
    }

    #[tokio::test]
    async fn a_stopped_task_is_found_by_its_place() {
        let (_keep, mut wait) = tokio::sync::mpsc::channel::<()>(1);
        let tasks = vec![
            tokio::spawn(async move {
                wait.recv().await;
            }),
            tokio::spawn(async {
                if std::env::var_os("SIGNALBOX_NEVER_SET").is_none() {
                    panic!("a task of the partition panicked");
                }
            }),
        ];
        let mut found = None;
        for _ in 0..200 {
            found = stopped_task(&tasks);
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(found, Some(1));
        assert_eq!(stopped_task(&tasks[..1]), None);
    }
}
