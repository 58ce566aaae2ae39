//! Who runs which partition: the node's membership (renewed), its leases
//! (taken by create, renewed by revision, never by a blind put), and the
//! loop that takes the partitions rendezvous hashing gives this node,
//! gives back those it no longer should run, and drops those it lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::UpdateErrorKind;
use bytes::Bytes;

use super::fence::Held;
use super::partition::{self, Running};
use super::{Node, Takeover, bus};

/// A lease this node holds.
struct Lease {
    revision: AtomicU64,
    held: Arc<Held>,
}

type Leases = Arc<std::sync::Mutex<BTreeMap<u32, Arc<Lease>>>>;

/// A partition is handed to the member that should run it only after
/// running here this long (no ping-pong while members come and go).
const SETTLE: Duration = Duration::from_secs(5);

/// Runs the node until `stop` resolves, then gives back every partition.
pub async fn run(node: Arc<Node>, stop: impl std::future::Future<Output = ()>) {
    let leases: Leases = Default::default();
    // Stopped however this loop ends, a panic included: leases nothing
    // runs must lapse.
    let renewer = AbortOnDrop(tokio::spawn(renew(Arc::clone(&node), Arc::clone(&leases))));
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stop => break,
        }
        let mut live = match node.bus.live_members().await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "reading the cluster's members");
                continue;
            }
        };
        if !live.contains(&node.settings.node) {
            live.push(node.settings.node.clone());
            live.sort();
        }
        drop_lost(&node, &leases, &mut running).await;
        hand_over(&node, &leases, &mut running, &live).await;
        take(&node, &leases, &mut running, &live).await;
        if let Ok(mut view) = node.view.lock() {
            view.members = live;
            view.owned = running.keys().copied().collect();
        }
    }
    for (number, part) in std::mem::take(&mut running) {
        part.stop(false).await;
        release(&node, &leases, number).await;
    }
    drop(renewer);
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stops the partitions whose lease was lost or whose engine stopped
/// deciding (its lease is given back then).
async fn drop_lost(node: &Node, leases: &Leases, running: &mut BTreeMap<u32, Running>) {
    let numbers: Vec<u32> = running.keys().copied().collect();
    for number in numbers {
        let lease = leases.lock().ok().and_then(|l| l.get(&number).cloned());
        let lost = lease.as_ref().is_none_or(|l| !l.held.current());
        let trouble = running.get(&number).and_then(Running::trouble);
        if !lost && trouble.is_none() {
            continue;
        }
        if let Some(part) = running.remove(&number) {
            let why = if lost {
                "its lease lapsed or was taken".to_string()
            } else {
                trouble.unwrap_or_default()
            };
            tracing::warn!(partition = number, lost, "giving the partition up: {why}");
            part.stop(true).await;
        }
        release(node, leases, number).await;
    }
}

/// Gives back, gracefully, partitions another live member should run.
async fn hand_over(
    node: &Node,
    leases: &Leases,
    running: &mut BTreeMap<u32, Running>,
    live: &[String],
) {
    let me = node.settings.node.as_str();
    let numbers: Vec<u32> = running.keys().copied().collect();
    for number in numbers {
        let settled = running
            .get(&number)
            .is_some_and(|p| (chrono::Utc::now() - p.since).to_std().unwrap_or_default() >= SETTLE);
        let wanted = super::preferred(number, live);
        if !settled || wanted == Some(me) || wanted.is_none() {
            continue;
        }
        if let Some(part) = running.remove(&number) {
            tracing::info!(partition = number, to = ?wanted, "handing the partition over");
            part.stop(false).await;
        }
        release(node, leases, number).await;
    }
}

/// Takes the free partitions this node should run.
async fn take(
    node: &Arc<Node>,
    leases: &Leases,
    running: &mut BTreeMap<u32, Running>,
    live: &[String],
) {
    let me = node.settings.node.as_str();
    // Leases first, then every partition taken is rebuilt and started at
    // once: a takeover waits for the slowest rebuild, not for their sum.
    let mut starting = Vec::new();
    for number in 0..node.settings.partitions {
        if running.contains_key(&number) || super::preferred(number, live) != Some(me) {
            continue;
        }
        let leased = Instant::now();
        let key = bus::lease_key(number);
        let Ok(revision) = node.bus.leases.create(&key, value(node)).await else {
            continue;
        };
        let valid_for = node
            .settings
            .lease
            .saturating_sub(Duration::from_millis(500));
        let held = Held::new(valid_for);
        held.renew_at(leased);
        let lease = Arc::new(Lease {
            revision: AtomicU64::new(revision),
            held: Arc::clone(&held),
        });
        if let Ok(mut l) = leases.lock() {
            l.insert(number, lease);
        }
        let node = Arc::clone(node);
        starting.push(async move {
            let started = partition::start_guarded(node, number, held, leased).await;
            (number, started)
        });
    }
    for (number, started) in futures_util::future::join_all(starting).await {
        match started {
            Ok(part) => {
                let took_ms = part.took.as_millis() as u64;
                tracing::info!(partition = number, took_ms, "took the partition");
                if let Ok(mut view) = node.view.lock() {
                    view.takeovers.push(Takeover {
                        partition: number,
                        at: chrono::Utc::now(),
                        took_ms,
                        from_sequence: part.fence.start(),
                    });
                    let len = view.takeovers.len();
                    view.takeovers.drain(..len.saturating_sub(64));
                }
                running.insert(number, part);
            }
            Err(why) => {
                tracing::error!(partition = number, reason = %why, "could not start the partition");
                release(node, leases, number).await;
            }
        }
    }
}

/// Gives a lease back (if it is still this node's: by revision).
async fn release(node: &Node, leases: &Leases, number: u32) {
    let lease = leases.lock().ok().and_then(|mut l| l.remove(&number));
    if let Some(lease) = lease
        && !lease.held.revoked()
    {
        let revision = lease.revision.load(Ordering::SeqCst);
        if let Err(e) = node
            .bus
            .leases
            .delete_expect_revision(bus::lease_key(number), Some(revision))
            .await
        {
            tracing::debug!(partition = number, error = %e, "releasing the lease");
        }
    }
}

fn value(node: &Node) -> Bytes {
    Bytes::from(
        serde_json::json!({ "node": node.settings.node, "at": chrono::Utc::now() }).to_string(),
    )
}

/// Renews the node's membership and every lease it holds, four times a
/// lease; a lease whose revision moved on (another node took it) is
/// revoked at once.
async fn renew(node: Arc<Node>, leases: Leases) {
    let every = node.settings.lease / 4;
    loop {
        let member = node
            .bus
            .members
            .put(&node.settings.node, value(&node))
            .await;
        if let Err(e) = member {
            tracing::warn!(error = %e, "renewing the node's membership");
        }
        let held: Vec<(u32, Arc<Lease>)> = leases
            .lock()
            .map(|l| l.iter().map(|(n, l)| (*n, Arc::clone(l))).collect())
            .unwrap_or_default();
        for (number, lease) in held {
            let sent = Instant::now();
            let revision = lease.revision.load(Ordering::SeqCst);
            match node
                .bus
                .leases
                .update(bus::lease_key(number), value(&node), revision)
                .await
            {
                Ok(next) => {
                    lease.revision.store(next, Ordering::SeqCst);
                    lease.held.renew_at(sent);
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(partition = number, "the lease is gone or another node's");
                    lease.held.revoke();
                }
                Err(e) => {
                    tracing::warn!(partition = number, error = %e, "renewing a lease");
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}
