//! What a node acknowledged, kept in its own intake log (synced, as a
//! single node's is) beside the replicated stream: NATS 2.9 syncs its
//! files on an interval (two minutes by default), so an acknowledgement
//! is in three servers' memory before it is on their disks. A node keeps
//! each signal for `RETAIN`, past that interval, and publishes again, when
//! it starts, whatever an earlier run of it still kept: a repeat the
//! stream already holds is dropped by its message id, or, past the
//! stream's duplicate window, by the partition's engine, which knows
//! every identity it decided. While it runs, it publishes again what it
//! keeps whenever the stream may have lost some of it (`tail`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::intake::Replicate as _;
use crate::intake::log::IntakeLog;

use super::http::Publisher;
use super::tail::Tail;

/// How long a node keeps what it acknowledged.
pub const RETAIN: Duration = Duration::from_secs(300);

/// Rows read, and published again, at once.
const BATCH: usize = 4096;

/// Keeps `log` (the node's) for `RETAIN` on a thread of its own, publishing
/// again through `publisher` what an earlier run left in it, and what it
/// keeps when `tail` asks.
pub fn spawn(
    log: &IntakeLog,
    publisher: Arc<Publisher>,
    tail: Arc<Tail>,
    runtime: tokio::runtime::Handle,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let log = log.clone();
    std::thread::Builder::new()
        .name("retain".into())
        .spawn(move || keep(&log, (&publisher, &tail), &runtime))
}

fn keep(log: &IntakeLog, (publisher, tail): (&Publisher, &Tail), runtime: &tokio::runtime::Handle) {
    let mut reader = match log.reader(None) {
        Ok(reader) => reader,
        Err(e) => {
            tracing::error!(error = %e, "the node's intake log cannot be read; nothing is kept");
            return;
        }
    };
    let progress = reader.progress();
    // Batches read and kept: the last sequence of each, and when the
    // newest of them was acknowledged.
    let mut kept: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let mut republished = 0u64;
    loop {
        reader.beat();
        if reader.halted() {
            return;
        }
        loop {
            let rows = match reader.read_acked(BATCH) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the node's intake log");
                    break;
                }
            };
            if rows.is_empty() {
                break;
            }
            let upto = reader.position();
            let newest = rows.iter().filter_map(|(_, at)| *at).max();
            match newest {
                Some(at) => kept.push_back((upto, at)),
                // Acknowledged by an earlier run: published again, then let go.
                None => {
                    let signals: Vec<_> = rows.into_iter().map(|(s, _)| s).collect();
                    let n = signals.len() as u64;
                    match runtime.block_on(publisher.publish(signals)) {
                        Ok(()) => {
                            republished += n;
                            progress.decided(upto);
                        }
                        Err(e) => {
                            // Kept, and tried again at the next start.
                            tracing::warn!(error = %e, "publishing again what an earlier run acknowledged");
                            kept.push_back((upto, Instant::now()));
                        }
                    }
                }
            }
        }
        if republished > 0 {
            tracing::info!(
                signals = republished,
                "published again what an earlier run of this node acknowledged"
            );
            republished = 0;
        }
        if tail.take_publish_again() {
            publish_kept(&mut reader, publisher, runtime, tail);
        }
        while kept.front().is_some_and(|(_, at)| at.elapsed() >= RETAIN) {
            if let Some((upto, _)) = kept.pop_front() {
                progress.decided(upto);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Publishes again everything kept (read again from the log, from what was
/// last let go up to what was read), then reads on from where it was. A
/// failure asks again at the next round.
fn publish_kept(
    reader: &mut crate::journal::intake_log::LogReader,
    publisher: &Publisher,
    runtime: &tokio::runtime::Handle,
    tail: &Tail,
) {
    let end = reader.position();
    let round = chrono::Utc::now().timestamp_millis().unsigned_abs();
    reader.seek(reader.progress().decided_upto());
    let mut published = 0u64;
    while reader.position() < end {
        let max = usize::try_from(end - reader.position()).map_or(BATCH, |n| n.min(BATCH));
        let signals = match reader.read(max) {
            Ok(signals) => signals,
            Err(e) => {
                tracing::warn!(error = %e, "reading again what this node keeps");
                tail.publish_again();
                break;
            }
        };
        if signals.is_empty() {
            break;
        }
        let n = signals.len() as u64;
        if let Err(e) = runtime.block_on(publisher.publish_round(signals, Some(round))) {
            tracing::warn!(error = %e, "publishing again what this node keeps");
            tail.publish_again();
            break;
        }
        published += n;
    }
    reader.seek(end);
    tracing::info!(
        signals = published,
        "published again what this node keeps: the signal stream may have lost some of it"
    );
}
