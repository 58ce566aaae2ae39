//! The engine: wires signal → context → decide → flow → review, journals
//! every step, and publishes what happened to whoever subscribes.
//!
//! The engine owns no clock and no thread of its own: callers pass `now`
//! (the simulator's clock, or the wall clock) and drive it with `ingest`,
//! `tick` and `act`. `flush` hands everything produced since the last flush
//! to the journal as one batch; a signal counts as acknowledged only once
//! the `Commit` of the batch holding it has resolved.

mod alerts;
mod batch;
mod fanout;
pub mod guard;
pub mod host;
mod learning;
pub mod notices;
pub mod overview;
pub mod quarantine;
pub mod ramp;
mod recover;
pub mod reload;
mod tasks;
mod watch;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use thiserror::Error;

use crate::CatalogueError;
use crate::context::{Context, ContextError, World};
use crate::decide::model::{DEFAULT_BITS, Model};
use crate::decide::policy::{PolicyError, PolicySet};
use crate::decide::{Case, Decider, Decision, Mode, choice_for, features, record_choice};
use crate::flow::executor::Webhooks;
use crate::flow::{Executor, Flow, FlowBook, FlowEvent, FlowState};
use crate::journal::{Feedback, Journal, JournalError, Record, read};
use crate::metrics::Metrics;
use crate::playbook::steps::{DEFAULT_STEPS, StepCatalogue};
use crate::playbook::{DEFAULT_PLAYBOOK, Playbook};
use crate::review::{Action, Actor, ReviewAction, ReviewError, ReviewItem, ReviewQueue, Settled};
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
    #[error("{file}: not a model checkpoint: {error}")]
    Checkpoint { file: String, error: String },
    #[error(transparent)]
    Author(#[from] crate::journal::author::AuthorError),
    /// A signal's data does not hold what its type declares.
    #[error("the signal does not carry what its type declares: {0}")]
    Data(crate::signal::SignalError),
    /// Done, but the journal commit that was to hold it failed.
    #[error("not durable: the journal commit failed ({0})")]
    NotDurable(String),
}

/// The journal meta key under which the engine records how far it has
/// decided from the intake log (`intake::log`).
pub const INTAKE_CURSOR_KEY: &str = "intake_cursor";

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
    /// A candidate policy file that decides every signal beside the live
    /// one, never acting (shadow mode); its choice is in each decision.
    pub shadow_policy_file: Option<PathBuf>,
    /// A candidate model checkpoint (`signalbox model export`) scoring the
    /// shadow's choice (with the shadow policy, or the live one), never
    /// acting and never learning.
    pub shadow_model_file: Option<PathBuf>,
    /// A candidate playbook offering the shadow its own options (with the
    /// shadow policy, or the live one), never acting.
    pub shadow_playbook_file: Option<PathBuf>,
    /// A guarded ramp file, started once the engine is up unless its
    /// candidate has already ramped in this journal (`ramp`).
    pub ramp_file: Option<PathBuf>,
    /// Publish events for subscribers (the console, the simulator).
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
    /// Where the breaker on the model trips and closes.
    pub model_watch: crate::decide::watch::WatchLimits,
    /// Who writes the journal: the demo, or the deployment whose `rules`
    /// these are. A journal another wrote is refused (`journal::author`).
    pub author: crate::journal::author::Author,
}

impl EngineConfig {
    pub fn new(data_dir: &Path, seed: u64) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.to_path_buf(),
            seed,
            learning: true,
            policy_file: None,
            shadow_policy_file: None,
            shadow_model_file: None,
            shadow_playbook_file: None,
            ramp_file: None,
            publish: true,
            checkpoint_every: 2000,
            webhooks: Default::default(),
            executor: None,
            rules: None,
            notices: false,
            retry_base: None,
            claim_expiry: None,
            breaker_cooldown: None,
            model_watch: Default::default(),
            author: Default::default(),
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

pub struct Engine {
    journal: Journal,
    dir: PathBuf,
    pub context: Context,
    decider: Decider,
    pub flows: FlowBook,
    pub reviews: ReviewQueue,
    pub metrics: Metrics,
    /// The identity of every signal journaled (`Signal::identity`): 16
    /// bytes each, not the ids themselves.
    seen: crate::FastSet<u128>,
    quarantine: quarantine::QuarantineBook,
    /// Signals taken in since start, by type (`other` for types outside
    /// the playbook, so the set of keys stays bounded) and outcome.
    signal_tally: crate::FastMap<String, SignalTally>,
    /// Boxed: a table sized for a burst's peak stays that size until it is
    /// shrunk (`learning::shrink`), and buckets of pointers make that 4x
    /// smaller than buckets of entries.
    awaiting: crate::FastMap<String, Box<learning::Awaiting>>,
    /// The flow each firing alert opened, by fingerprint.
    opened_by: crate::FastMap<String, String>,
    /// Flow results waiting out the horizon, oldest first.
    flow_labels: VecDeque<(DateTime<Utc>, String)>,
    pending: Vec<Record>,
    pending_events: std::collections::BTreeMap<String, Vec<FlowEvent>>,
    /// Review items changed since the last flush, latest state each: an item
    /// opened, escalated and settled between two flushes is written once.
    pending_reviews: std::collections::BTreeMap<String, ReviewItem>,
    events: VecDeque<EngineEvent>,
    publish: bool,
    next_id: u64,
    feedback_count: i64,
    checkpoint_at: i64,
    checkpoint_every: i64,
    last_sample: Option<DateTime<Utc>>,
    counts: EngineCounts,
    policy_file: Option<PathBuf>,
    /// How far the engine has decided from the intake log
    /// (`intake::log::CURSOR_KEY`), as journaled.
    intake_cursor: Option<String>,
    collect_notices: bool,
    notices: VecDeque<notices::Notice>,
    notices_dropped: u64,
    /// The last id given to a published event, as journaled.
    last_event_id: u64,
    /// The breaker on the model (`engine::watch`).
    watch: crate::decide::watch::ModelWatch,
    /// The guarded ramp in progress, or the last one (`engine::ramp`).
    ramp: Option<ramp::Ramping>,
}

impl Engine {
    /// Opens the journal in `config.data_dir`; a fresh journal starts from
    /// `world`, an existing one resumes where it stopped.
    pub fn open(
        config: EngineConfig,
        world: World,
        now: DateTime<Utc>,
    ) -> Result<Engine, EngineError> {
        guard::install_hook_once();
        let rules = match config.rules.clone() {
            Some(rules) => rules,
            None => Engine::shipped_rules(config.policy_file.as_deref())?,
        };
        let fresh = !config.data_dir.join(crate::journal::FILE_NAME).exists();
        // Before anything is decided into it.
        let record_author = crate::journal::author::check(&config.data_dir, &config.author)?;
        let journal = Journal::open(&config.data_dir)?;
        let mut decider = Decider::new(
            Arc::clone(&rules.playbook),
            Arc::clone(&rules.steps),
            Arc::clone(&rules.policy),
            Model::new(DEFAULT_BITS),
            config.learning,
            config.seed,
        );
        decider.rules_version = rules.version;
        if let Some(path) = &config.shadow_playbook_file {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| CatalogueError::Parse {
                file: file.clone(),
                error: format!("cannot read: {e}"),
            })?;
            decider.shadow_playbook = Some(Arc::new(Playbook::parse(&text, &file, &rules.steps)?));
        }
        if let Some(path) = &config.shadow_policy_file {
            // Its options are the candidate playbook's, if there is one.
            let against = decider.shadow_playbook.as_ref().unwrap_or(&rules.playbook);
            decider.shadow = Some(PolicySet::load(path, against)?);
        }
        if let Some(path) = &config.shadow_model_file {
            decider.shadow_model = Some(load_checkpoint(path)?);
        }
        let mut engine = Engine {
            journal,
            dir: config.data_dir.clone(),
            context: Context::from_world(world),
            decider,
            flows: FlowBook::default(),
            reviews: ReviewQueue::default(),
            metrics: Metrics::new(now),
            seen: Default::default(),
            quarantine: Default::default(),
            signal_tally: Default::default(),
            awaiting: Default::default(),
            opened_by: Default::default(),
            flow_labels: VecDeque::new(),
            pending: Vec::new(),
            pending_events: Default::default(),
            pending_reviews: Default::default(),
            events: VecDeque::new(),
            publish: config.publish,
            next_id: 1,
            feedback_count: 0,
            checkpoint_at: 0,
            checkpoint_every: config.checkpoint_every.max(1),
            last_sample: None,
            counts: EngineCounts::default(),
            policy_file: config.policy_file.clone(),
            intake_cursor: None,
            collect_notices: config.notices,
            notices: VecDeque::new(),
            notices_dropped: 0,
            last_event_id: 0,
            watch: crate::decide::watch::ModelWatch::new(config.model_watch.clone()),
            ramp: None,
        };
        engine.flows.webhooks = Webhooks::new(config.webhooks);
        if let Some(executor) = config.executor {
            engine.flows.executor = executor;
        }
        if let Some(base) = config.retry_base {
            engine.flows.settings.retry_base = base;
        }
        if let Some(cooldown) = config.breaker_cooldown {
            engine.flows.breakers.cooldown = cooldown;
        }
        if let Some(expiry) = config.claim_expiry {
            engine.reviews.set_claim_expiry(expiry);
        }
        if fresh {
            let records = engine
                .context
                .all_entities()
                .into_iter()
                .map(|(key, body)| Record::Entity { key, body })
                .collect();
            engine.journal.submit(records)?.wait()?;
        } else {
            engine.recover(now)?;
        }
        if record_author {
            let author = Record::Meta {
                key: crate::journal::author::AUTHOR_KEY.into(),
                value: serde_json::to_string(&config.author).unwrap_or_default(),
            };
            engine.journal.submit(vec![author])?.wait()?;
        }
        if let Some(file) = &config.ramp_file {
            engine.ramp_from_start(file, now)?;
        }
        Ok(engine)
    }

    /// The shipped Northwind playbook and steps, with the shipped policies
    /// or those of `policy_file`.
    pub fn shipped_rules(policy_file: Option<&Path>) -> Result<crate::decide::Rules, EngineError> {
        let steps = Arc::new(StepCatalogue::parse(DEFAULT_STEPS, "playbooks/steps.toml")?);
        let playbook = Arc::new(Playbook::parse(
            DEFAULT_PLAYBOOK,
            "playbooks/default.toml",
            &steps,
        )?);
        let policy = match policy_file {
            Some(path) => PolicySet::load(path, &playbook)?,
            None => Arc::new(PolicySet::default_set(&playbook)?),
        };
        Ok(crate::decide::Rules {
            steps,
            playbook,
            policy,
            version: String::new(),
        })
    }

    /// Decides under `rules` from now on, and takes `world`'s organization
    /// (teams, agents, services, calendar, customers) into the context.
    /// Running flows keep the steps they were assembled with.
    pub fn replace_rules(&mut self, rules: crate::decide::Rules, world: Option<World>) {
        self.policy_file = None;
        self.decider.replace_rules(rules);
        if let Some(world) = world {
            self.context.take_organization(world);
        }
    }

    /// Settled decisions whose outcome is still awaited, in memory.
    pub fn awaiting_count(&self) -> usize {
        self.awaiting.len()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn playbook(&self) -> &Playbook {
        &self.decider.playbook
    }

    pub fn policy(&self) -> &PolicySet {
        &self.decider.policy
    }

    pub fn model_version(&self) -> String {
        self.decider.model_version()
    }

    pub fn counts(&self) -> EngineCounts {
        EngineCounts {
            feedback: self.feedback_count,
            open_reviews: self.reviews.open_count(),
            active_flows: self.flows.active_count(),
            quarantined: self.quarantine.held,
            ..self.counts.clone()
        }
    }

    /// How long each journal commit took, in seconds.
    pub fn journal_commits(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.journal.commit_seconds.clone()
    }

    pub fn journal_stats(&self) -> crate::journal::WriterStats {
        self.journal
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Loads a policy file; on any error the engine keeps the policy it has.
    /// Sets (or clears) the shadow candidate deciding beside the live
    /// policy from now on.
    pub fn set_shadow(&mut self, candidate: Option<Arc<PolicySet>>) {
        self.decider.shadow = candidate;
    }

    pub fn reload_policy(&mut self, path: &Path) -> Result<String, PolicyError> {
        let policy = PolicySet::load(path, &self.decider.playbook)?;
        let version = policy.version.clone();
        self.decider.policy = policy;
        self.policy_file = Some(path.to_path_buf());
        Ok(version)
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<EngineEvent> {
        self.events.drain(..).collect()
    }

    /// Publish events (`take_events`) from now on, or stop.
    pub fn set_publish(&mut self, on: bool) {
        self.publish = on;
        if !on {
            self.events.clear();
        }
    }

    /// Events since the last call, each with the next id; the last id is
    /// journaled with the next flush.
    pub fn take_numbered_events(&mut self) -> Vec<(u64, EngineEvent)> {
        if self.events.is_empty() {
            return Vec::new();
        }
        let first = self.last_event_id + 1;
        let numbered: Vec<(u64, EngineEvent)> = (first..).zip(self.events.drain(..)).collect();
        self.last_event_id += numbered.len() as u64;
        self.pending.push(Record::Meta {
            key: EVENT_ID_KEY.into(),
            value: self.last_event_id.to_string(),
        });
        numbered
    }

    /// The id of the last event handed out.
    pub fn last_event_id(&self) -> u64 {
        self.last_event_id
    }

    fn emit(&mut self, event: EngineEvent) {
        if self.publish {
            self.events.push_back(event);
        }
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Takes in one signal: journals it, decides, assembles its flow or
    /// opens its review item. A signal whose source and id were seen before
    /// is counted and ignored; one that cannot be decided is quarantined.
    /// Nothing is durable until `flush`.
    pub fn ingest(&mut self, signal: Signal, now: DateTime<Utc>) -> Ingested {
        let signal = Arc::new(signal);
        if !self.seen.insert(signal.identity()) {
            self.tally(&signal.kind, |t| t.duplicate += 1);
            self.counts.duplicates += 1;
            self.metrics.at(now, |t| t.duplicates += 1);
            self.emit(EngineEvent::Signal {
                signal,
                duplicate: true,
            });
            return Ingested::Duplicate;
        }
        self.counts.signals += 1;
        self.metrics.at(now, |t| t.signals += 1);
        self.pending.push(Record::Signal(Arc::clone(&signal)));
        self.emit(EngineEvent::Signal {
            signal: Arc::clone(&signal),
            duplicate: false,
        });
        let kind = signal.kind.clone();
        match self.decide_guarded(signal, now) {
            Ok(decision) => {
                self.tally(&kind, |t| t.decided += 1);
                Ingested::Decided {
                    decision_id: decision.id.clone(),
                    mode: decision.mode,
                }
            }
            Err(error) => {
                self.tally(&kind, |t| t.quarantined += 1);
                Ingested::Quarantined { error }
            }
        }
    }

    fn tally(&mut self, kind: &str, count: impl Fn(&mut SignalTally)) {
        let kind = if self.decider.playbook.play(kind).is_some() {
            kind
        } else {
            "other"
        };
        // Found without building a key: this runs for every signal.
        match self.signal_tally.get_mut(kind) {
            Some(tally) => count(tally),
            None => count(self.signal_tally.entry(kind.to_string()).or_default()),
        }
    }

    /// Signals taken in since start, by type (see `tally`).
    pub fn signal_tally(&self) -> &crate::FastMap<String, SignalTally> {
        &self.signal_tally
    }

    /// Folds the signal's facts into the context: its type's built-in
    /// fold, then its declared updates (`playbook::fold`).
    fn fold(&mut self, signal: &Signal) -> Result<(), EngineError> {
        let play = self.decider.playbook.play(&signal.kind);
        let fold = play.and_then(|p| p.fold.as_deref());
        self.context.apply(signal, fold)?;
        let updates = self.decider.playbook.updates.for_kind(&signal.kind);
        if updates.is_empty() {
            return Ok(());
        }
        for upsert in crate::decide::fold::evaluate(updates, signal)? {
            let origin = format!("update of {}/{}", upsert.kind, upsert.id);
            self.context
                .upsert(&upsert.kind, &upsert.id, upsert.fields, &origin)?;
        }
        Ok(())
    }

    /// Decides one signal. Runs inside `decide_guarded`, which quarantines
    /// the signal should this fail.
    fn decide_signal(
        &mut self,
        signal: Arc<Signal>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Decision>, EngineError> {
        // The boundary's second line of defence, exercised by its tests.
        #[cfg(test)]
        if signal.kind == quarantine::tests::PANICS {
            panic!("a signal made to panic");
        }
        self.decider
            .playbook
            .check_data(&signal.kind, &signal.data)
            .map_err(EngineError::Data)?;
        self.fold(&signal)?;
        if signal.kind == "outcome.recorded" {
            self.learn_from_outcome(&signal, now);
        }
        if signal.kind == "alert.resolved" {
            self.close_resolved(&signal, now);
        }
        let playbook = Arc::clone(&self.decider.playbook);
        let mut choice = choice_for(&playbook, &signal.kind);
        // A firing alert whose flow is still open (PagerDuty sends every
        // trigger of a key; a sender retries) is a repeat: recorded, no
        // second flow. Once its flow has ended, the same key opens anew.
        let repeat_of = self.open_flow_of(&signal);
        if repeat_of.is_some() {
            choice = record_choice(&choice);
        }
        let snapshot = self.context.snapshot(&signal);
        // A context-only signal is recorded, not scored: no features.
        let features = if choice.record_only() {
            Vec::new()
        } else {
            features::extract(&signal, &self.context)
        };
        let n = self.new_id();
        let case = Case {
            id: format!("D{n:07}"),
            parent: None,
            signal: &signal,
            subject: &signal.subject,
            snapshot,
            features,
            choice: &choice,
            now,
        };
        let mut decision = self.decider.decide(case, &self.context);
        if let Some(flow) = repeat_of {
            decision.why = format!("repeat of the alert still open in {flow}: recorded");
        }
        let decision = Arc::new(decision);
        self.counts.decisions += 1;
        let mode = decision.mode;
        let errors = decision.policy_errors.len() as u64;
        let shadow = decision
            .shadow
            .as_ref()
            .map(|s| u64::from(s.proposal == decision.proposal));
        self.metrics.at(now, |t| {
            t.count_decision(mode);
            t.policy_errors += errors;
            if let Some(agreed) = shadow {
                t.shadowed += 1;
                t.shadow_agreed += agreed;
            }
        });
        self.ramp_decided(&decision, now);
        self.pending.push(Record::Decision(Arc::clone(&decision)));
        self.emit(EngineEvent::Decision(Arc::clone(&decision)));
        if mode == Mode::Record {
            return Ok(decision);
        }
        let flow_id = format!("F{n:07}");
        if signal.kind == "alert.firing"
            && let Some(fingerprint) = signal.data_str("fingerprint")
        {
            self.opened_by
                .insert(fingerprint.to_string(), flow_id.clone());
        }
        let mut flow = Flow {
            id: flow_id.clone(),
            decision_id: decision.id.clone(),
            signal_id: signal.id.clone(),
            signal_type: signal.kind.clone(),
            subject: signal.subject.clone(),
            class: decision.class.clone(),
            option: decision.proposal.clone(),
            state: FlowState::Running,
            priority: decision.priority,
            created: now,
            deadline: decision.deadline,
            escalated: false,
            breached: false,
            steps: Vec::new(),
            finished: None,
            reason: None,
        };
        if mode == Mode::Review {
            flow.state = FlowState::WaitingHuman;
            self.flows.insert(flow, now);
            let item = self.reviews.open(
                format!("R{n:07}"),
                Arc::clone(&decision),
                Arc::clone(&signal),
                flow_id,
                now,
            );
            self.pending_reviews.insert(item.id.clone(), item.clone());
            self.emit(EngineEvent::ReviewOpened(Box::new(item)));
        } else {
            flow.steps = self.assemble(&decision, &decision.proposal, &signal, &choice, now);
            self.flows.insert(flow, now);
            self.settled(&decision, &decision.proposal.clone(), now);
        }
        self.drain_flow_changes();
        Ok(decision)
    }

    /// A person (or the engine, for timers) acts on a review item. A refused
    /// action changes nothing and says why.
    pub fn act(
        &mut self,
        review_id: &str,
        actor: &Actor,
        action: Action,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<ReviewAction, EngineError> {
        let settled = match self.reviews.act(review_id, actor, action, note, now) {
            // Decided long enough ago to have left memory: the journal says
            // by whom.
            Err(ReviewError::NotFound(id)) => {
                return Err(match read::review_outcome(&self.dir, &id)? {
                    Some(done) => ReviewError::AlreadyDecided {
                        id,
                        action: done.action.name().to_string(),
                        by: done.actor.name,
                        at: done.time,
                    },
                    None => ReviewError::NotFound(id),
                }
                .into());
            }
            other => other?,
        };
        let record = settled.record.clone();
        self.apply_settled(settled, now);
        Ok(record)
    }

    fn apply_settled(&mut self, settled: Settled, now: DateTime<Utc>) {
        let Settled { item, record } = settled;
        self.notice_review(&item, &record);
        let decision = Arc::clone(&item.decision);
        let at = record.time;
        match &record.action {
            Action::Approve => self.metrics.at(at, |t| t.approvals += 1),
            Action::Override { .. } => self.metrics.at(at, |t| t.overrides += 1),
            Action::Reject => self.metrics.at(at, |t| t.rejections += 1),
            Action::SafeDefault { .. } => self.metrics.at(at, |t| t.safe_defaults += 1),
            Action::Escalate => self.metrics.at(at, |t| t.escalations += 1),
            Action::Snooze { .. } | Action::Claim => {}
        }
        let person_chose = match &record.action {
            Action::Approve => Some(decision.proposal.as_str()),
            Action::Override { option } => Some(option.as_str()),
            _ => None,
        };
        if let (Some(shadow), Some(option)) = (&decision.shadow, person_chose) {
            let agreed = u64::from(shadow.proposal == option);
            self.metrics.at(at, |t| {
                t.shadow_answered += 1;
                t.shadow_people_agreed += agreed;
            });
        }
        if let Some(option) = person_chose {
            self.ramp_answered(&decision, option != decision.proposal);
        }
        if let Some(option) = person_chose
            && self.decider.learning
        {
            let option = option.to_string();
            self.watch_answer(&decision, &option, now);
        }
        self.learn_from_answer(&decision, &record.action, now);
        if let Some(option) = item.chosen().map(String::from) {
            let signal = Arc::clone(&item.signal);
            let playbook = Arc::clone(&self.decider.playbook);
            let choice = choice_for(&playbook, &signal.kind);
            let steps = self.assemble(&decision, &option, &signal, &choice, now);
            self.flows.release(&item.flow_id, &option, steps, now);
            self.settled(&decision, &option, now);
        } else if record.action == Action::Reject {
            let reason = format!("rejected by {}: {}", record.actor.name, record.note);
            self.flows.cancel(&item.flow_id, &reason, now);
        }
        self.pending.push(Record::ReviewAction(record.clone()));
        self.pending_reviews.insert(item.id.clone(), item.clone());
        self.emit(EngineEvent::ReviewAction {
            item: Box::new(item),
            action: record,
        });
        self.drain_flow_changes();
    }

    /// Advances timers to `now`: flow steps, SLA timers, review escalation
    /// and safe defaults, team utilisation samples.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        for settled in self.reviews.tick(now) {
            self.apply_settled(settled, now);
        }
        let steps = Arc::clone(&self.decider.steps);
        let finished = self.flows.tick(now, &mut self.context, &steps);
        for id in finished {
            self.flow_finished(&id, now);
        }
        self.ramp_tick(now);
        for (executor, failures) in self.flows.breakers.take_tripped() {
            let cooldown = self.flows.breakers.cooldown.num_seconds();
            self.notice(notices::Notice {
                event: "breaker",
                text: format!(
                    "executor `{executor}` failed {failures} times in a row: its breaker is open, \
                     steps go to people; one call is tried again after {cooldown}s"
                ),
                reference: executor.clone(),
                subject: format!("executor/{executor}"),
                time: now,
            });
        }
        self.drain_flow_changes();
        if self
            .last_sample
            .is_none_or(|t| now - t >= Duration::minutes(1))
        {
            self.last_sample = Some(now);
            self.learn_from_flows(now);
            self.forget_closed_alerts();
            self.sample_utilisation(now);
        }
    }

    /// A flow has ended: counted, remembered for learning, published.
    fn flow_finished(&mut self, id: &str, now: DateTime<Utc>) {
        let Some(flow) = self.flows.get(id) else {
            return;
        };
        let done = FlowFinished {
            flow_id: flow.id.clone(),
            decision_id: flow.decision_id.clone(),
            signal_id: flow.signal_id.clone(),
            subject: flow.subject.clone(),
            option: flow.option.clone(),
            state: flow.state,
            within_deadline: flow.within_deadline(),
            time: now,
        };
        let cycle = (now - flow.created).num_seconds() as f64 / 60.0;
        let allowed = flow.deadline - flow.created;
        self.metrics.at(now, |t| {
            match done.state {
                FlowState::Done => t.flows_done += 1,
                FlowState::Compensated => t.flows_compensated += 1,
                _ => t.flows_failed += 1,
            }
            t.count_cycle(cycle);
        });
        self.note_flow_result(&done, allowed, now);
        self.emit(EngineEvent::FlowFinished(done));
    }

    /// Each team's load against its capacity, sampled for utilisation.
    fn sample_utilisation(&mut self, now: DateTime<Utc>) {
        let loads: Vec<(String, f64)> = self
            .context
            .teams
            .values()
            .map(|t| {
                (
                    t.id.clone(),
                    f64::from(t.load) / f64::from(t.capacity.max(1)),
                )
            })
            .collect();
        self.metrics.at(now, |t| {
            t.utilisation_samples += 1;
            for (team, u) in &loads {
                *t.utilisation_sum.entry(team.clone()).or_default() += u;
            }
        });
    }

    /// Flushes, writes a final checkpoint and the metrics, and closes the
    /// journal, waiting until everything is durable.
    pub fn close(mut self) -> Result<Metrics, EngineError> {
        self.checkpoint();
        self.flush()?.wait()?;
        let metrics = self.metrics.clone();
        self.journal.close()?;
        Ok(metrics)
    }

    /// A webhook executor's answer for a step it was sent.
    pub fn complete_step(
        &mut self,
        flow_id: &str,
        step: usize,
        attempt: u32,
        success: bool,
        detail: &str,
        now: DateTime<Utc>,
    ) {
        if self
            .flows
            .complete_step(flow_id, step, attempt, success, detail, now)
        {
            self.tick(now);
        }
    }

    /// Records whether a proposal matched the ground truth (only a simulator
    /// knows it).
    pub fn note_judgement(&mut self, at: DateTime<Utc>, right: bool) {
        self.metrics.at(at, |t| {
            t.judged += 1;
            t.judged_right += u64::from(right);
        });
    }

    pub fn open_reviews(&self) -> Vec<ReviewItem> {
        self.reviews.open_items()
    }

    /// One page of the open review items, in id order.
    pub fn reviews_page(&self, page: &crate::page::Page) -> crate::page::Paged<ReviewItem> {
        let paged = page.of(
            self.reviews.open_ids().map(|id| (id.as_str(), id.as_str())),
            |id| self.reviews.get(id),
        );
        crate::page::Paged {
            items: paged.items.into_iter().flatten().collect(),
            next: paged.next,
        }
    }
}

/// A model checkpoint file (`signalbox model export`) as a model.
pub fn load_checkpoint(path: &Path) -> Result<Model, EngineError> {
    let bad = |error: String| EngineError::Checkpoint {
        file: path.display().to_string(),
        error,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let checkpoint: crate::decide::model::Checkpoint =
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    Model::restore(&checkpoint).map_err(|e| bad(e.to_string()))
}
