//! Cluster mode (`serve --cluster URLS --node NAME`): several nodes run one
//! deployment over NATS JetStream, and the loss of a node or of a NATS
//! server loses no acknowledged signal.
//!
//! - Work is cut into `partitions` by a hash of the entity a signal
//!   concerns (`partition_of`: its subject), so an entity's signals stay in
//!   order in one partition.
//! - A node's intake publishes each signal to the replicated signal stream
//!   (`bus`), with `Nats-Msg-Id` the hash of its (source, id), and answers
//!   202 once the stream has acknowledged it.
//! - Each partition has one owner at a time: the node holding its lease in
//!   a KV bucket whose entries lapse on the servers' clocks, taken by create
//!   and renewed by revision (`lease`). Among the live members, the
//!   partition's owner is chosen by rendezvous hashing.
//! - The owner runs an ordinary engine on the partition (`partition`): its
//!   journal is rebuilt from the decision stream, each of its commits is
//!   appended there first with `Nats-Expected-Last-Subject-Sequence`
//!   (`fence`), and its intake log is fed from the signal stream and
//!   numbered by it, so the journal's cursor is a stream position.
//!
//! Without `--cluster` none of this runs: one process, one SQLite journal.

pub mod api;
pub mod bus;
pub mod check;
mod cursor;
pub mod events;
pub mod fence;
pub mod http;
pub mod lease;
mod metrics;
pub mod model;
pub mod partition;
pub mod retain;
pub mod snapshot;
mod state;
pub mod tail;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::deploy::Deployment;
use crate::signal::Signal;

/// Partitions unless configured: enough to spread over a handful of nodes,
/// few enough that a node runs an engine for each of its own.
pub const PARTITIONS: u32 = 16;

/// How long a lease or a membership lasts unrenewed (renewed four times
/// within it).
pub const LEASE: Duration = Duration::from_secs(3);

/// How long a starting node waits for NATS JetStream to be ready.
const CONNECT_FOR: Duration = Duration::from_secs(60);

/// A cluster node's settings, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// NATS servers, `nats://host:port` each.
    pub servers: Vec<String>,
    /// This node's name, unique in the cluster.
    pub node: String,
    pub partitions: u32,
    pub lease: Duration,
    /// How long the signal stream keeps a signal (a partition is rebuilt
    /// from its journal's cursor, so only what is not decided is needed).
    pub signal_retention: Duration,
    /// A partition's journal is snapshot once this many commits were
    /// appended since the last (`snapshot`).
    pub snapshot_every: u64,
    /// How the node proves itself to NATS, and the CA it trusts.
    pub auth: NatsAuth,
}

/// How a node proves itself to the NATS servers (secrets read from the
/// environment, never shown), and the CA bundle it checks them against.
#[derive(Clone, Default)]
pub struct NatsAuth {
    pub credentials: Option<PathBuf>,
    pub token: Option<String>,
    pub user: Option<(String, String)>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for NatsAuth {
    // The token and password are never shown, not even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuth")
            .field("credentials", &self.credentials)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl NatsAuth {
    /// From `[cluster]`: paths relative to the deployment directory `dir`,
    /// secrets from the environment variables it names; at most one way.
    pub fn from_config(
        config: &crate::config::ClusterConfig,
        dir: &std::path::Path,
    ) -> Result<NatsAuth, String> {
        let from_env =
            |field: &str, name: &str| {
                std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("[cluster] {field} = {name:?}: the environment variable {name} is not set")
            })
            };
        let token = match &config.token_env {
            Some(name) => Some(from_env("token_env", name)?),
            None => None,
        };
        let user = match (&config.user, &config.password_env) {
            (Some(user), Some(name)) => Some((user.clone(), from_env("password_env", name)?)),
            (None, None) => None,
            _ => return Err("[cluster] user and password_env go together".into()),
        };
        let credentials = config.credentials.as_ref().map(|p| dir.join(p));
        let ways = [credentials.is_some(), token.is_some(), user.is_some()];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err(
                "[cluster]: one of credentials, token_env or user with password_env".into(),
            );
        }
        if let Some(path) = &credentials
            && !path.is_file()
        {
            return Err(format!(
                "[cluster] credentials: {} is not a file",
                path.display()
            ));
        }
        let ca_file = config.ca_file.as_ref().map(|p| dir.join(p));
        if let Some(path) = &ca_file
            && !path.is_file()
        {
            return Err(format!(
                "[cluster] ca_file: {} is not a file",
                path.display()
            ));
        }
        Ok(NatsAuth {
            credentials,
            token,
            user,
            ca_file,
        })
    }
}

impl Settings {
    /// `servers`: comma-separated `nats://` URLs; `node`: letters, digits,
    /// `-` and `_`.
    pub fn parse(servers: &str, node: &str) -> Result<Settings, String> {
        let servers: Vec<String> = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if servers.is_empty() {
            return Err("--cluster: no NATS server given (nats://HOST:PORT,...)".into());
        }
        for url in &servers {
            if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                return Err(format!(
                    "--cluster: {url:?} must be nats://HOST:PORT or tls://HOST:PORT"
                ));
            }
            if url.contains('@') {
                return Err(format!(
                    "--cluster: {url:?} holds a credential; give NATS credentials another way"
                ));
            }
        }
        let valid = !node.is_empty()
            && node.len() <= 64
            && node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "--node: {node:?} must be 1 to 64 letters, digits, '-' or '_'"
            ));
        }
        Ok(Settings {
            servers,
            node: node.to_string(),
            partitions: PARTITIONS,
            lease: LEASE,
            signal_retention: Duration::from_secs(7 * 24 * 3600),
            snapshot_every: snapshot::EVERY,
            auth: NatsAuth::default(),
        })
    }

    /// Copies of each stream and bucket: one per server given, at most 3.
    pub fn replicas(&self) -> usize {
        self.servers.len().clamp(1, 3)
    }
}

/// The partition a signal belongs to: a hash of the entity it concerns
/// (its subject; a signal without one is its own entity).
pub fn partition_of(signal: &Signal, partitions: u32) -> u32 {
    if signal.subject.is_empty() {
        let key = format!("{}\u{0}{}", signal.source, signal.id);
        return partition_of_subject(&key, partitions);
    }
    partition_of_subject(&signal.subject, partitions)
}

/// The partition of the signals about `subject`.
pub fn partition_of_subject(subject: &str, partitions: u32) -> u32 {
    (hash64(&[subject.as_bytes()]) % u64::from(partitions.max(1))) as u32
}

fn hash64(parts: &[&[u8]]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The member that should own `partition` (rendezvous hashing: the highest
/// hash of member and partition), so that a member leaving moves only its
/// own partitions and one coming back takes back only its own.
pub fn preferred(partition: u32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .max_by_key(|m| hash64(&[m.as_bytes(), &partition.to_be_bytes()]))
        .map(String::as_str)
}

/// A partition taken over, for `/v1/cluster` and the logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Takeover {
    pub partition: u32,
    pub at: chrono::DateTime<chrono::Utc>,
    /// From taking the lease to deciding again (rebuild and start).
    pub took_ms: u64,
    /// Commits read back from the decision stream's position.
    pub from_sequence: u64,
}

/// What the node shows of itself.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct NodeView {
    pub members: Vec<String>,
    /// Partitions this node runs, by number.
    pub owned: Vec<u32>,
    pub takeovers: Vec<Takeover>,
}

/// One node of the cluster.
pub struct Node {
    pub settings: Settings,
    pub bus: bus::Bus,
    pub deployment: Deployment,
    /// This node's partitions' journals and logs.
    pub dir: PathBuf,
    /// The address links in pages point at.
    pub base_url: String,
    pub view: Mutex<NodeView>,
    /// The node's HTTP state (tokens, limits), which each partition's own
    /// router shares (`api`); set before the node takes partitions.
    pub front: std::sync::OnceLock<crate::intake::AppState>,
    /// What follows the signal stream going back (`tail`).
    pub tail: Arc<tail::Tail>,
}

impl Node {
    pub async fn connect(
        settings: Settings,
        deployment: Deployment,
        data_dir: &std::path::Path,
        base_url: String,
    ) -> Result<Arc<Node>, String> {
        // NATS may be starting beside this node (a JetStream cluster elects
        // its leader first): tried again for a minute before giving up.
        let began = std::time::Instant::now();
        let bus = loop {
            match bus::Bus::connect(&settings).await {
                Ok(bus) => break bus,
                Err(e) if began.elapsed() < CONNECT_FOR => {
                    tracing::warn!(error = %e, "NATS JetStream is not ready; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let dir = data_dir.join(format!("cluster-{}", settings.node));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Arc::new(Node {
            settings,
            bus,
            deployment,
            dir,
            base_url,
            view: Mutex::new(NodeView::default()),
            front: std::sync::OnceLock::new(),
            tail: Default::default(),
        }))
    }

    /// What the node shows of itself now.
    pub fn view(&self) -> NodeView {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_what_is_wrong() {
        assert!(
            Settings::parse("", "a")
                .unwrap_err()
                .contains("no NATS server")
        );
        assert!(
            Settings::parse("http://x:4222", "a")
                .unwrap_err()
                .contains("nats://")
        );
        assert!(
            Settings::parse("nats://u:p@x:4222", "a")
                .unwrap_err()
                .contains("credential")
        );
        assert!(
            Settings::parse("nats://x:4222", "a b")
                .unwrap_err()
                .contains("--node")
        );
        let s = Settings::parse("nats://a:4222, nats://b:4222", "n1").unwrap();
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.replicas(), 2);
    }

    #[test]
    fn an_entitys_signals_share_a_partition_and_partitions_spread() {
        let signal = |i: usize, subject: &str| {
            crate::testkit::signal(i, "order.placed", subject, serde_json::json!({}))
        };
        let a = partition_of(&signal(1, "order/o1"), PARTITIONS);
        assert_eq!(a, partition_of(&signal(2, "order/o1"), PARTITIONS));
        let used: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| partition_of(&signal(i, &format!("order/o{i}")), PARTITIONS))
            .collect();
        assert_eq!(used.len(), PARTITIONS as usize);
    }

    #[test]
    fn rendezvous_moves_only_the_partitions_of_a_member_that_left() {
        let three: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let two: Vec<String> = ["n1", "n3"].map(String::from).to_vec();
        for p in 0..PARTITIONS {
            let before = preferred(p, &three).unwrap();
            let after = preferred(p, &two).unwrap();
            if before != "n2" {
                assert_eq!(before, after, "partition {p} moved without cause");
            }
        }
        let counts = (0..PARTITIONS).fold([0; 3], |mut c, p| {
            let i = three
                .iter()
                .position(|m| m == preferred(p, &three).unwrap())
                .unwrap();
            c[i] += 1;
            c
        });
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    }
}
