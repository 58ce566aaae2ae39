//! What the engine is made with and says: its errors, its settings
//! (`EngineConfig`), the events it publishes and what it counts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use thiserror::Error;

use super::{quarantine, ramp, reload};
use crate::CatalogueError;
use crate::context::ContextError;
use crate::decide::policy::PolicyError;
use crate::decide::{Decision, Mode};
use crate::flow::{Executor, Flow, FlowEvent, FlowState};
use crate::journal::{Feedback, JournalError};
use crate::review::{ReviewAction, ReviewError, ReviewItem};
use crate::signal::Signal;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error("journal in {dir}: {reason}")]
    Recovery { dir: String, reason: String },
    #[error("the signal cannot be folded into the context: {0}")]
    Context(#[from] ContextError),
    #[error(transparent)]
    Quarantine(#[from] quarantine::QuarantineError),
    #[error(transparent)]
    Task(#[from] crate::flow::TaskError),
    #[error(transparent)]
    Ramp(#[from] ramp::RampRefused),
    #[error(transparent)]
    Candidate(#[from] crate::decide::candidate::CandidateError),
    #[error(transparent)]
    Author(#[from] crate::journal::author::AuthorError),
    /// A signal's data does not hold what its type declares.
    #[error("the signal does not carry what its type declares: {0}")]
    Data(crate::signal::SignalError),
    #[error(transparent)]
    Page(#[from] crate::paging::pages::PageRefused),
    #[error(transparent)]
    Override(#[from] super::paging::OverrideRefused),
    #[error(transparent)]
    Incident(#[from] super::incidents::IncidentRefused),
    #[error(transparent)]
    Silence(#[from] crate::noise::SilenceRefused),
    /// Done, but the journal commit that was to hold it failed.
    #[error("not durable: the journal commit failed ({0})")]
    NotDurable(String),
}

/// The journal meta key under which the engine records how far it has
/// decided from the intake log (`intake::log`).
pub const INTAKE_CURSOR_KEY: &str = "intake_cursor";

/// The journal meta key under which the engine records which signal it
/// read at that cursor: `CURSOR IDENTITY` (the cursor, and the signal's
/// identity in hex), written with the cursor when the row there was read.
/// A cluster partition checks at start that its stream still holds that
/// signal at the cursor's sequence (`cluster::partition`).
pub const INTAKE_CURSOR_SIGNAL_KEY: &str = "intake_cursor_signal";

/// The journal meta key under which the last event id handed out
/// (`host::Host::turn`, for `GET /v1/events`) is kept, so that ids go on
/// increasing across restarts.
pub const EVENT_ID_KEY: &str = "event_id";

/// How to start an engine.
#[derive(Debug)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub seed: u64,
    /// Off: the rules-only baseline (no model scores, no learning).
    pub learning: bool,
    /// A policy file to use instead of the shipped default.
    pub policy_file: Option<PathBuf>,
    /// A shadow candidate deciding beside the live rules, never acting,
    /// and a guarded ramp, started once the engine is up unless its
    /// candidate has already ramped in this journal (`ramp`).
    pub candidates: crate::decide::CandidateFiles,
    /// Publish events for subscribers (the console, the simulator, `GET
    /// /v1/events`); what opening the journal does is never published.
    pub publish: bool,
    /// Write a model checkpoint every this many labelled examples.
    pub checkpoint_every: i64,
    /// Executors that are real webhook endpoints (executor name → URL).
    pub webhooks: std::collections::BTreeMap<String, String>,
    /// Who carries out the other steps. With none, they wait for an
    /// answer through `complete_step`.
    pub executor: Option<Box<dyn Executor>>,
    /// The playbook, steps and policies of a deployment; none: the shipped
    /// Northwind set (with `policy_file`, if given).
    pub rules: Option<crate::decide::Rules>,
    /// Collect notices (`notices::Notice`) for someone to send.
    pub notices: bool,
    /// First retry delay for a failed automated step (doubles each time).
    pub retry_base: Option<Duration>,
    /// How long an open circuit breaker waits before a probe.
    pub breaker_cooldown: Option<Duration>,
    /// How long a claim holds a review item (`[review] claim_expiry`).
    pub claim_expiry: Option<Duration>,
    /// The escalation policy paged when an unanswered review item
    /// escalates (`[review] page`).
    pub review_page: Option<String>,
    /// How long a silence may last (`[silences] max_length`).
    pub silence_max: Option<Duration>,
    /// Open review items per decision class (`[review] budget`).
    pub review_budget: std::collections::BTreeMap<String, crate::review::budget::Budget>,
    /// Open tasks per team (`[tasks] bound`).
    pub task_bound: std::collections::BTreeMap<String, crate::review::budget::Budget>,
    /// Where the breaker on the model trips and closes.
    pub model_watch: crate::decide::watch::WatchLimits,
    /// Who writes the journal: the demo, or the deployment whose `rules`
    /// these are. A journal another wrote is refused (`journal::author`).
    pub author: crate::journal::author::Author,
    /// An organization taken over what a resumed journal holds (a
    /// deployment's: its teams, people, services and calendar).
    pub organization: Option<crate::context::World>,
    /// Where each journal commit is replicated before it is made (a
    /// cluster node's partition, `journal::fence`); none: the journal is
    /// the record.
    pub fence: Option<std::sync::Arc<dyn crate::journal::Fence>>,
    /// How decisions, review items, flows, pages and incidents are
    /// numbered (a cluster's partition: its own, `Numbering`).
    pub numbering: crate::Numbering,
    /// The model learns from a cluster's model stream only
    /// (`Engine::learn_shared`), its own examples too once they come back.
    pub shared_model: bool,
}

impl EngineConfig {
    pub fn new(data_dir: &Path, seed: u64) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.to_path_buf(),
            seed,
            learning: true,
            policy_file: None,
            candidates: Default::default(),
            publish: true,
            checkpoint_every: 2000,
            webhooks: Default::default(),
            executor: None,
            rules: None,
            notices: false,
            retry_base: None,
            claim_expiry: None,
            review_page: None,
            silence_max: None,
            review_budget: Default::default(),
            task_bound: Default::default(),
            breaker_cooldown: None,
            model_watch: Default::default(),
            author: Default::default(),
            organization: None,
            fence: None,
            numbering: Default::default(),
            shared_model: false,
        }
    }

    /// The same, with `executor` carrying out steps.
    pub fn with_executor(mut self, executor: impl Executor + 'static) -> EngineConfig {
        self.executor = Some(Box::new(executor));
        self
    }
}

/// What the engine tells subscribers (the console; `GET /v1/events`, where
/// each is `{"type": ..., "data": ...}`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EngineEvent {
    Signal {
        signal: Arc<Signal>,
        duplicate: bool,
    },
    Decision(Arc<Decision>),
    ReviewOpened(Box<ReviewItem>),
    ReviewAction {
        item: Box<ReviewItem>,
        action: ReviewAction,
    },
    /// The advisor proposed for an open item.
    ReviewAdvised(Box<ReviewItem>),
    Flow(FlowEvent),
    /// The option a decision finally took (at once, or after review).
    Settled {
        decision_id: String,
        option: String,
        at: DateTime<Utc>,
    },
    FlowFinished(FlowFinished),
    /// A flow's state as of the last flush (for views that list flows).
    FlowChanged(Box<Flow>),
    Learned(Feedback),
    /// A signal put in quarantine, or taken out of it.
    Quarantined(Box<crate::journal::Quarantined>),
    /// A page acknowledged or resolved by a person.
    Page(Box<crate::paging::Page>),
    /// The deployment was reloaded.
    Reloaded(reload::Versions),
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FlowFinished {
    pub flow_id: String,
    pub decision_id: String,
    pub signal_id: String,
    pub subject: String,
    pub option: String,
    pub state: FlowState,
    pub within_deadline: bool,
    pub time: DateTime<Utc>,
}

/// What `ingest` did with a signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    Decided {
        decision_id: String,
        mode: Mode,
    },
    Duplicate,
    /// An alert paused as a possible transient: decided when its hold-off
    /// ends, or recorded as transient if it resolves first.
    Paused,
    /// It could not be decided, and is held in quarantine with this error.
    Quarantined {
        error: String,
    },
}

/// Signals of one type taken in since start, by what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalTally {
    pub decided: u64,
    pub duplicate: u64,
    pub quarantined: u64,
}

/// Counts since start, for health endpoints and the header.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineCounts {
    pub signals: u64,
    pub duplicates: u64,
    pub decisions: u64,
    pub feedback: i64,
    pub open_reviews: usize,
    pub active_flows: usize,
    /// Signals held in quarantine now.
    pub quarantined: u64,
}
