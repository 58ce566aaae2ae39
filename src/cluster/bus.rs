//! What a node uses of NATS JetStream: the signal stream (what was
//! acknowledged), the decision stream (what was decided: each partition's
//! journal commits, fenced), the lease and member buckets, and the
//! cluster's one secret. Every name is made here, once, and each is
//! created by whichever node comes first with the same configuration.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

use super::Settings;

pub const SIGNALS: &str = "SB_SIGNALS";
pub const DECISIONS: &str = "SB_DECISIONS";
pub const EVENTS: &str = "SB_EVENTS";
pub const MODEL: &str = "SB_MODEL";
const LEASES: &str = "sb_leases";
const MEMBERS: &str = "sb_members";
const SECRETS: &str = "sb_cluster";
const SNAPSHOTS: &str = "sb_snapshots";

/// A partition's subject in the signal stream.
pub fn signal_subject(partition: u32) -> String {
    format!("sb.sig.{partition}")
}

/// A partition's subject in the decision stream.
pub fn decision_subject(partition: u32) -> String {
    format!("sb.dec.{partition}")
}

/// A partition's subject in the event stream.
pub fn event_subject(partition: u32) -> String {
    format!("sb.evt.{partition}")
}

/// Every partition's events.
pub const ALL_EVENTS: &str = "sb.evt.>";

/// A partition's subject in the model stream (its labelled examples).
pub fn model_subject(partition: u32) -> String {
    format!("sb.model.{partition}")
}

/// Every partition's examples: what every partition's model learns.
pub const ALL_MODEL: &str = "sb.model.>";

/// Examples the model stream keeps, at most: a partition rebuilt from a
/// checkpoint learns what followed it from here (every partition
/// checkpoints every 2,000 examples).
const MODEL_KEPT: i64 = 1_000_000;

/// The subject a partition's owner answers the HTTP API on (core NATS
/// requests, never stored).
pub fn api_subject(partition: u32) -> String {
    format!("sb.api.{partition}")
}

/// Events the event stream keeps, at most (and for at most a day): what a
/// console coming back after a while resumes from.
const EVENTS_KEPT: i64 = 1_000_000;

/// A partition's key in the lease bucket.
pub fn lease_key(partition: u32) -> String {
    format!("p{partition}")
}

/// Why the bus could not be reached or set up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {urls}: {error}")]
    Connect { urls: String, error: String },
    #[error("NATS JetStream {what}: {error}")]
    JetStream { what: String, error: String },
}

fn js_error(what: impl Into<String>) -> impl FnOnce(String) -> BusError {
    let what = what.into();
    move |error| BusError::JetStream { what, error }
}

/// The node's connection and the cluster's streams and buckets.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub signals: stream::Stream,
    pub decisions: stream::Stream,
    /// Every partition's engine events, for any node's `/v1/events`.
    pub events: stream::Stream,
    /// Every partition's labelled examples, which every model learns.
    pub model: stream::Stream,
    pub leases: kv::Store,
    pub members: kv::Store,
    /// Each partition's latest snapshot (`snapshot`).
    pub snapshots: async_nats::jetstream::object_store::ObjectStore,
    /// The member bucket's stream, listed by subject (see `live_members`).
    members_stream: stream::Stream,
    /// The cluster's secret (fingerprints of routing keys, signed links),
    /// the same on every node.
    pub secret: Vec<u8>,
}

impl Bus {
    pub async fn connect(settings: &Settings) -> Result<Bus, BusError> {
        let urls = settings.servers.join(",");
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("signalbox {}", settings.node))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect();
        let auth = &settings.auth;
        if let Some(path) = &auth.credentials {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| BusError::Connect {
                    urls: urls.clone(),
                    error: format!("credentials {}: {e}", path.display()),
                })?;
        }
        if let Some(token) = &auth.token {
            options = options.token(token.clone());
        }
        if let Some((user, password)) = &auth.user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &auth.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        // What the server last refused (a bad token, say): the client
        // retries quietly, and the first request only times out.
        let refused: Arc<Mutex<Option<String>>> = Arc::default();
        let heard = Arc::clone(&refused);
        options = options.event_callback(move |event| {
            let heard = Arc::clone(&heard);
            async move {
                let said = match event {
                    async_nats::Event::ServerError(e) => e.to_string(),
                    async_nats::Event::ClientError(e) => e.to_string(),
                    _ => return,
                };
                if let Ok(mut heard) = heard.lock() {
                    *heard = Some(said);
                }
            }
        });
        let client = options
            .connect(settings.servers.as_slice())
            .await
            .map_err(|e| BusError::Connect {
                urls: urls.clone(),
                error: e.to_string(),
            })?;
        Bus::open(client, settings).await.map_err(|e| match e {
            BusError::JetStream { what, error } => {
                let said = refused.lock().ok().and_then(|r| r.clone());
                let error = match said {
                    Some(said) => format!("{error} (the server refused this node: {said})"),
                    None => error,
                };
                BusError::JetStream { what, error }
            }
            other => other,
        })
    }

    /// The streams and buckets, made if missing, over a connected client.
    async fn open(client: async_nats::Client, settings: &Settings) -> Result<Bus, BusError> {
        let js = jetstream::new(client.clone());
        let replicas = settings.replicas();
        let signals = js
            .get_or_create_stream(stream::Config {
                name: SIGNALS.into(),
                description: Some("signalbox: acknowledged signals, by partition".into()),
                subjects: vec!["sb.sig.>".into()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                // A repeat of a (source, id) posted to any node within this
                // window is acknowledged and not stored again; past it, the
                // partition's engine knows every identity it decided.
                duplicate_window: Duration::from_secs(120),
                max_age: settings.signal_retention,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error(format!("stream {SIGNALS}")))?;
        let decisions = js
            .get_or_create_stream(stream::Config {
                name: DECISIONS.into(),
                description: Some("signalbox: each partition's journal commits, fenced".into()),
                subjects: vec!["sb.dec.>".into()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error(format!("stream {DECISIONS}")))?;
        let events = js
            .get_or_create_stream(stream::Config {
                name: EVENTS.into(),
                description: Some("signalbox: each partition's engine events".into()),
                subjects: vec![ALL_EVENTS.into()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                // An event published again by an owner that did not see
                // its acknowledgement is the same message id.
                duplicate_window: Duration::from_secs(120),
                max_age: Duration::from_secs(24 * 3600),
                max_messages: EVENTS_KEPT,
                discard: stream::DiscardPolicy::Old,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error(format!("stream {EVENTS}")))?;
        let model = js
            .get_or_create_stream(stream::Config {
                name: MODEL.into(),
                description: Some("signalbox: labelled examples, the cluster's one model".into()),
                subjects: vec![ALL_MODEL.into()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: Duration::from_secs(120),
                max_messages: MODEL_KEPT,
                discard: stream::DiscardPolicy::Old,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error(format!("stream {MODEL}")))?;
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: name.into(),
            history: 1,
            max_age,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        // Leases and members lapse on the servers' clocks: an entry not
        // renewed within `lease` is gone, whatever its node believes.
        let leases = key_value(&js, bucket(LEASES, settings.lease)).await?;
        let members = key_value(&js, bucket(MEMBERS, settings.lease)).await?;
        let secrets = key_value(&js, bucket(SECRETS, Duration::ZERO)).await?;
        let secret = shared_secret(&secrets).await?;
        let snapshots = snapshot_store(&js, replicas).await?;
        let members_stream = js
            .get_stream(format!("KV_{MEMBERS}"))
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error(format!("bucket {MEMBERS}")))?;
        Ok(Bus {
            snapshots,
            members_stream,
            client,
            js,
            signals,
            decisions,
            events,
            model,
            leases,
            members,
            secret,
        })
    }

    /// The nodes whose membership is current, sorted: the subjects the
    /// member bucket's stream holds (an entry lapses with its message). Read
    /// from the stream's information, not through a consumer, which a 2.9
    /// server may place on a peer that is down.
    pub async fn live_members(&self) -> Result<Vec<String>, BusError> {
        use futures_util::TryStreamExt as _;
        let prefix = format!("$KV.{MEMBERS}.");
        let subjects: Vec<(String, usize)> = self
            .members_stream
            .info_with_subjects(format!("{prefix}>"))
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("listing members"))?
            .try_collect()
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("listing members"))?;
        let mut members: Vec<String> = subjects
            .into_iter()
            .filter_map(|(subject, _)| subject.strip_prefix(&prefix).map(String::from))
            .collect();
        members.sort();
        Ok(members)
    }

    /// The first message of `subject` at or after `sequence` in `stream`,
    /// read directly from any replica (none: there is none yet).
    pub async fn next_of(
        stream: &stream::Stream,
        subject: &str,
        sequence: u64,
    ) -> Result<Option<async_nats::jetstream::message::StreamMessage>, BusError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        match stream
            .direct_get_next_for_subject(subject, Some(sequence.max(1)))
            .await
        {
            Ok(message) => Ok(Some(message)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(BusError::JetStream {
                what: format!("reading {subject} from {sequence}"),
                error: e.to_string(),
            }),
        }
    }

    /// The first message of `subject` at or after `sequence` in `stream`,
    /// asked of its leader (none: there is none yet). While restarted
    /// servers re-form, a replica may still hold messages its leader does
    /// not, and will lose them: read there, they would come and go.
    pub async fn next_at_leader(
        stream: &stream::Stream,
        subject: &str,
        sequence: u64,
    ) -> Result<Option<StreamMessage>, BusError> {
        let asked = stream
            .raw_message_builder()
            .sequence(sequence.max(1))
            .next_by_subject(subject)
            .send()
            .await;
        found(asked, || format!("reading {subject} from {sequence}"))
    }

    /// The message at `sequence` in `stream`, asked of its leader (a
    /// replica behind would not have it yet); none: no message there.
    pub async fn at_leader(
        stream: &stream::Stream,
        sequence: u64,
    ) -> Result<Option<StreamMessage>, BusError> {
        let asked = stream.get_raw_message(sequence).await;
        found(asked, || format!("reading message {sequence}"))
    }

    /// The last sequence of `subject` in `stream` (0: none).
    pub async fn last_sequence(stream: &stream::Stream, subject: &str) -> Result<u64, BusError> {
        let asked = stream.get_last_raw_message_by_subject(subject).await;
        let last = found(asked, || format!("last message of {subject}"))?;
        Ok(last.map_or(0, |m| m.sequence))
    }
}

/// A message the leader answered with, none if it said there is none, or
/// the error naming `what` was asked.
fn found(
    asked: Result<StreamMessage, stream::RawMessageError>,
    what: impl FnOnce() -> String,
) -> Result<Option<StreamMessage>, BusError> {
    match asked {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(BusError::JetStream {
            what: what(),
            error: e.to_string(),
        }),
    }
}

/// Wakes a reader of a stream when something is published on its subject
/// (a plain subscription, no consumer), or after a second in case a
/// wake-up was missed or the subscription could not be made.
pub struct Wake {
    subscription: Option<async_nats::Subscriber>,
}

impl Bus {
    /// A `Wake` for `subject` (`what` names the stream in a warning).
    pub async fn wake_on(&self, subject: &str, what: &str) -> Wake {
        let subscription = match self.client.subscribe(subject.to_string()).await {
            Ok(subscription) => Some(subscription),
            Err(e) => {
                tracing::warn!(error = %e, "{what} is read every second, unwoken");
                None
            }
        };
        Wake { subscription }
    }
}

impl Wake {
    /// Until something is published, or a second passes; the wake-ups
    /// waiting are spent with it (one read takes every publication).
    pub async fn wait(&mut self) {
        use futures_util::{FutureExt as _, StreamExt as _};
        let woken = async {
            match self.subscription.as_mut() {
                Some(subscription) => {
                    subscription.next().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Some(subscription) = self.subscription.as_mut() {
            while let Some(Some(_)) = subscription.next().now_or_never() {}
        }
    }
}

/// A KV bucket, made if missing. Its stream is made here as the KV
/// convention lays it out (ADR-8: `KV_<bucket>`, `$KV.<bucket>.>`, one
/// message per key, roll-ups, direct gets): the client's own create first
/// asks the account's limits, whose answer from a 2.9 server it cannot
/// read.
async fn key_value(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, BusError> {
    let name = config.bucket.clone();
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        description: Some(config.description),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: config.history.max(1),
        max_age: config.max_age,
        storage: config.storage,
        num_replicas: config.num_replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
    .map_err(js_error(format!("bucket {name}")))?;
    js.get_key_value(&name)
        .await
        .map_err(|e| e.to_string())
        .map_err(js_error(format!("bucket {name}")))
}

/// The snapshot bucket, made if missing.
async fn snapshot_store(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<async_nats::jetstream::object_store::ObjectStore, BusError> {
    if let Ok(store) = js.get_object_store(SNAPSHOTS).await {
        return Ok(store);
    }
    js.create_object_store(async_nats::jetstream::object_store::Config {
        bucket: SNAPSHOTS.into(),
        description: Some("signalbox: each partition's latest journal snapshot".into()),
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
    .map_err(js_error(format!("object store {SNAPSHOTS}")))
}

/// The cluster's secret: made by the first node (a create, so two first
/// nodes agree on one), read by the others.
async fn shared_secret(store: &kv::Store) -> Result<Vec<u8>, BusError> {
    let fresh: [u8; 32] = rand::random();
    let _ = store
        .create("integration_key", Bytes::from(hex::encode(fresh)))
        .await;
    let entry = store
        .get("integration_key")
        .await
        .map_err(|e| e.to_string())
        .map_err(js_error("the cluster's secret"))?;
    entry
        .and_then(|value| hex::decode(&value).ok())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| BusError::JetStream {
            what: "the cluster's secret".into(),
            error: "missing or not hex".into(),
        })
}
