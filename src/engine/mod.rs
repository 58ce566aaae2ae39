//! The engine: wires signal → context → decide → flow → review, journals
//! every step, and publishes what happened to whoever subscribes.
//!
//! The engine owns no clock and no thread of its own: callers pass `now`
//! (the simulator's clock, or the wall clock) and drive it with `ingest`,
//! `tick` and `act`. `flush` hands everything produced since the last flush
//! to the journal as one batch; a signal counts as acknowledged only once
//! the `Commit` of the batch holding it has resolved.

pub mod guard;
pub mod quarantine;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use thiserror::Error;

use crate::CatalogueError;
use crate::context::{Context, ContextError, Snapshot, World, split_key};
use crate::decide::model::{Checkpoint, DEFAULT_BITS, Model};
use crate::decide::policy::{PolicyError, PolicySet};
use crate::decide::{Choice, Decider, Decision, Mode, choice_for, features, record_choice};
use crate::flow::assemble::{Branch, fanout_steps, steps_for};
use crate::flow::{Flow, FlowBook, FlowEvent, FlowState, Step, StepState, route};
use crate::journal::{Commit, Feedback, Journal, JournalError, Record, read};
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
}

/// The journal meta key under which the engine records how far it has
/// decided from the intake log (`intake::log`).
pub const INTAKE_CURSOR_KEY: &str = "intake_cursor";

/// How to start an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub seed: u64,
    /// Off: the rules-only baseline (no model scores, no learning).
    pub learning: bool,
    /// A policy file to use instead of the shipped default.
    pub policy_file: Option<PathBuf>,
    /// Publish events for subscribers (the console, the simulator).
    pub publish: bool,
    /// Write a model checkpoint every this many labelled examples.
    pub checkpoint_every: i64,
    /// Executors that are real webhook endpoints (executor name → URL).
    pub webhooks: std::collections::BTreeMap<String, String>,
    /// First retry delay for a failed automated step (doubles each time).
    pub retry_base: Option<Duration>,
    /// How long an open circuit breaker waits before a probe.
    pub breaker_cooldown: Option<Duration>,
}

impl EngineConfig {
    pub fn new(data_dir: &Path, seed: u64) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.to_path_buf(),
            seed,
            learning: true,
            policy_file: None,
            publish: true,
            checkpoint_every: 2000,
            webhooks: Default::default(),
            retry_base: None,
            breaker_cooldown: None,
        }
    }
}

/// What the engine tells subscribers.
#[derive(Debug, Clone)]
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
}

#[derive(Debug, Clone, Serialize)]
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

/// A decision still waiting for its outcome: what it chose and from what.
#[derive(Debug, Clone)]
struct Awaiting {
    option: String,
    features: Vec<String>,
    /// When the option was settled and its flow could start: the decision
    /// time, or later when a person (or the safe default) released it.
    since: DateTime<Utc>,
    /// The flow's own result (label, when), used if no explicit outcome
    /// arrives within `OUTCOME_HORIZON` of it.
    flow_label: Option<(f64, DateTime<Utc>)>,
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
    awaiting: crate::FastMap<String, Awaiting>,
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
    rng: ChaCha8Rng,
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
}

/// Importance of a person's answer as a label, against 1.0 for an explicit
/// outcome: people are right most of the time, outcomes are what happened.
/// An answer teaches at once; the outcome that follows corrects a wrong one.
const PERSON_WEIGHT: f64 = 0.6;

/// Importance of a flow's own failure as a label, against 1.0 for an
/// explicit outcome: it says the work went wrong, not what would have worked.
const FLOW_COMPLETION_WEIGHT: f64 = 0.2;

/// How long after its flow ends an explicit outcome may still arrive. An
/// explicit outcome always wins over the flow's own result; only decisions
/// that never get one learn from their flow (otherwise a quick flow that
/// "succeeds" at the wrong thing would teach the model it was right).
const OUTCOME_HORIZON: Duration = Duration::hours(1);

impl Engine {
    /// Opens the journal in `config.data_dir`; a fresh journal starts from
    /// `world`, an existing one resumes where it stopped.
    pub fn open(
        config: EngineConfig,
        world: World,
        now: DateTime<Utc>,
    ) -> Result<Engine, EngineError> {
        guard::install_hook_once();
        let steps = Arc::new(StepCatalogue::parse(DEFAULT_STEPS, "playbooks/steps.toml")?);
        let playbook = Arc::new(Playbook::parse(
            DEFAULT_PLAYBOOK,
            "playbooks/default.toml",
            &steps,
        )?);
        let policy = match &config.policy_file {
            Some(path) => PolicySet::load(path, &playbook)?,
            None => Arc::new(PolicySet::default_set(&playbook)?),
        };
        let fresh = !config.data_dir.join(crate::journal::FILE_NAME).exists();
        let journal = Journal::open(&config.data_dir)?;
        let decider = Decider::new(
            playbook,
            steps,
            policy,
            Model::new(DEFAULT_BITS),
            config.learning,
            config.seed,
        );
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
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0xf10e),
            next_id: 1,
            feedback_count: 0,
            checkpoint_at: 0,
            checkpoint_every: config.checkpoint_every.max(1),
            last_sample: None,
            counts: EngineCounts::default(),
            policy_file: config.policy_file.clone(),
            intake_cursor: None,
        };
        engine.flows.webhooks = config.webhooks.clone();
        if let Some(base) = config.retry_base {
            engine.flows.settings.retry_base = base;
        }
        if let Some(cooldown) = config.breaker_cooldown {
            engine.flows.breakers.cooldown = cooldown;
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
        Ok(engine)
    }

    fn recover(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let dir = self.dir.display().to_string();
        let bad = |reason: String| EngineError::Recovery {
            dir: dir.clone(),
            reason,
        };
        let recovered = read::recover(&self.dir)?;
        for (key, body) in recovered.entities {
            if body.is_null() {
                continue;
            }
            self.context.restore(&key, body).map_err(&bad)?;
        }
        if let Some(text) = &recovered.checkpoint {
            let checkpoint: Checkpoint =
                serde_json::from_str(text).map_err(|e| bad(format!("model checkpoint: {e}")))?;
            self.decider.model =
                Model::restore(&checkpoint).map_err(|e| bad(format!("model checkpoint: {e}")))?;
        }
        for fb in &recovered.feedback_after_checkpoint {
            if self.decider.learning {
                self.decider
                    .learn(&fb.option, &fb.features, fb.label, fb.importance);
            }
        }
        self.feedback_count = recovered.feedback_count;
        self.checkpoint_at =
            recovered.feedback_count - recovered.feedback_after_checkpoint.len() as i64;
        for flow in recovered.active_flows {
            self.flows.restore(flow);
        }
        for id in &recovered.flows_by_step {
            self.flows.journaled_by_step(id);
        }
        self.recount_loads();
        self.flows.redispatch_waiting();
        for item in recovered.open_reviews {
            self.reviews.restore(item);
        }
        self.seen = recovered.seen_signals.into_iter().collect();
        self.quarantine = quarantine::QuarantineBook::restore(recovered.quarantined);
        self.opened_by = recovered.alert_flows.into_iter().collect();
        if let Some(next) = recovered.meta.get("next_id").and_then(|v| v.parse().ok()) {
            self.next_id = next;
        }
        self.intake_cursor = recovered.meta.get(INTAKE_CURSOR_KEY).cloned();
        if let Some(metrics) = recovered.meta.get("metrics")
            && let Ok(m) = serde_json::from_str::<Metrics>(metrics)
        {
            self.metrics = m;
        }
        // Acknowledged but never decided (the process stopped between the
        // commit of the signal and the commit of its decision): decide now.
        for signal in recovered.undecided {
            // A failure here is quarantined like any other.
            let _ = self.decide_guarded(Arc::new(signal), now);
        }
        tracing::info!(
            flows = self.flows.active_count(),
            reviews = self.reviews.open_count(),
            feedback = self.feedback_count,
            "resumed from journal"
        );
        Ok(())
    }

    /// Team and agent loads follow from the steps people are working on.
    fn recount_loads(&mut self) {
        for team in self.context.teams.values_mut() {
            team.load = 0;
        }
        for agent in self.context.agents.values_mut() {
            agent.load = 0;
        }
        let running: Vec<_> = self
            .flows
            .active()
            .flat_map(|f| f.steps.iter())
            .filter(|s| s.state == StepState::Running)
            .filter_map(|s| s.assignee.clone())
            .collect();
        for assignee in &running {
            route::take(assignee, &mut self.context);
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
        self.context.apply(&signal)?;
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
        let mut decision = self.decider.decide(
            format!("D{n:07}"),
            None,
            &signal,
            &signal.subject,
            &self.context,
            snapshot,
            features,
            &choice,
            now,
        );
        if let Some(flow) = repeat_of {
            decision.why = format!("repeat of the alert still open in {flow}: recorded");
        }
        let decision = Arc::new(decision);
        self.counts.decisions += 1;
        let mode = decision.mode;
        let errors = decision.policy_errors.len() as u64;
        self.metrics.at(now, |t| {
            t.count_decision(mode);
            t.policy_errors += errors;
        });
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
            let item = self
                .reviews
                .open(
                    format!("R{n:07}"),
                    Arc::clone(&decision),
                    Arc::clone(&signal),
                    flow_id,
                    now,
                )
                .clone();
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

    /// The flow a firing alert of this fingerprint opened, if it is still
    /// running (or waiting for a person).
    fn open_flow_of(&self, signal: &Signal) -> Option<String> {
        if signal.kind != "alert.firing" {
            return None;
        }
        let flow_id = self.opened_by.get(signal.data_str("fingerprint")?)?;
        let flow = self.flows.get(flow_id)?;
        (!flow.state.is_terminal()).then(|| flow_id.clone())
    }

    /// A resolved alert closes what its firing opened: the review item still
    /// waiting on it, or the flow still running for it.
    fn close_resolved(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let Some(fingerprint) = signal.data_str("fingerprint") else {
            return;
        };
        // Recovery puts back the alerts still open; one whose flow ended
        // has nothing left to close.
        let Some(flow_id) = self.opened_by.remove(fingerprint) else {
            return;
        };
        let note = format!("alert resolved at the source ({})", signal.source);
        let review = self.reviews.open_for_flow(&flow_id).map(|i| i.id.clone());
        if let Some(review_id) = review {
            if let Ok(settled) =
                self.reviews
                    .act(&review_id, &Actor::system(), Action::Reject, &note, now)
            {
                self.apply_settled(settled, now);
            }
            return;
        }
        for assignee in self.flows.close(&flow_id, &note, now) {
            route::release(&assignee, &mut self.context);
        }
        self.drain_flow_changes();
    }

    /// The option is final: remember it for the outcome, tell subscribers.
    fn settled(&mut self, decision: &Decision, option: &str, now: DateTime<Utc>) {
        self.awaiting.insert(
            decision.id.clone(),
            Awaiting {
                option: option.to_string(),
                features: decision.features.clone(),
                since: now,
                flow_label: None,
            },
        );
        self.emit(EngineEvent::Settled {
            decision_id: decision.id.clone(),
            option: option.to_string(),
            at: now,
        });
    }

    /// The steps of `option` for this decision; a fan-out takes one
    /// sub-decision per affected order.
    fn assemble(
        &mut self,
        decision: &Decision,
        option: &str,
        signal: &Signal,
        choice: &Choice<'_>,
        now: DateTime<Utc>,
    ) -> Vec<Step> {
        let playbook = Arc::clone(&self.decider.playbook);
        let steps = Arc::clone(&self.decider.steps);
        let Some(fanout_name) = playbook.options.get(option).and_then(|o| o.fanout.clone()) else {
            return steps_for(option, &decision.subject, &playbook, &steps);
        };
        let Some(fanout) = playbook.fanouts.get(&fanout_name) else {
            return Vec::new();
        };
        let supplier = split_key(&decision.subject)
            .map(|(_, id)| id.to_string())
            .unwrap_or_default();
        let orders: Vec<_> = self
            .context
            .open_orders_of(&supplier)
            .into_iter()
            .cloned()
            .collect();
        let sub_choice = Choice {
            class: &fanout.class,
            options: &fanout.options,
            default: &fanout.default,
            safe_default: &fanout.default,
            sla: choice.sla,
            review_window: choice.review_window,
            unrecognised: false,
        };
        let mut branches = Vec::new();
        for order in orders {
            let mut snapshot = Snapshot::new();
            for key in [
                format!("order/{}", order.id),
                format!("customer/{}", order.customer),
                format!("supplier/{}", order.supplier),
            ] {
                if let Some(v) = self.context.entity_json(&key) {
                    snapshot.insert(key, v);
                }
            }
            if let Some(alt) = self
                .context
                .suppliers
                .get(&order.supplier)
                .and_then(|s| s.alternate.clone())
                && let Some(v) = self.context.entity_json(&format!("supplier/{alt}"))
            {
                snapshot.insert(format!("supplier/{alt}"), v);
            }
            let features = features::for_order(signal, &order, &self.context);
            let n = self.new_id();
            let mut sub = self.decider.decide(
                format!("D{n:07}"),
                Some(decision.id.clone()),
                signal,
                &format!("order/{}", order.id),
                &self.context,
                snapshot,
                features,
                &sub_choice,
                now,
            );
            if sub.mode == Mode::Review {
                // The parent decision is the one a person reviews; a branch
                // takes the best allowed option and says so.
                sub.mode = if self.decider.learning {
                    Mode::Auto
                } else {
                    Mode::Rules
                };
                sub.why = format!(
                    "fan-out branch of {}: best allowed option ({})",
                    decision.id, sub.why
                );
            }
            let notify = self
                .context
                .customers
                .get(&order.customer)
                .is_some_and(|c| fanout.notify_tiers.iter().any(|t| t == c.tier.as_str()));
            branches.push(Branch {
                order: order.id.clone(),
                customer: order.customer.clone(),
                choice: sub.proposal.clone(),
                notify,
            });
            let sub = Arc::new(sub);
            self.pending.push(Record::Decision(Arc::clone(&sub)));
            self.emit(EngineEvent::Decision(Arc::clone(&sub)));
            self.settled(&sub, &sub.proposal.clone(), now);
        }
        fanout_steps(fanout, &branches, &playbook, &steps)
    }

    fn learn_from_outcome(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let Some(decision_id) = signal.data_str("decision").map(String::from) else {
            tracing::warn!(signal = %signal.id, "outcome without a decision id: recorded, not learned");
            return;
        };
        let Some(within) = signal
            .data
            .get("within_sla")
            .and_then(serde_json::Value::as_bool)
        else {
            tracing::warn!(signal = %signal.id, "outcome without within_sla: recorded, not learned");
            return;
        };
        let awaiting = match self.awaiting.remove(&decision_id) {
            Some(a) => Some(a),
            None => self.awaiting_from_journal(&decision_id, signal),
        };
        let Some(awaiting) = awaiting else {
            tracing::warn!(decision = %decision_id, "outcome for an unknown decision: recorded, not learned");
            return;
        };
        let is_child = signal
            .data
            .get("branch")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if !is_child {
            self.metrics.at(now, |t| {
                t.outcomes += 1;
                t.within_sla += u64::from(within);
            });
        }
        let label = if within { 1.0 } else { 0.0 };
        self.feedback(
            &decision_id,
            &awaiting.option,
            awaiting.features,
            label,
            1.0,
            "outcome",
            now,
        );
    }

    /// After a restart the in-memory map is gone: read the decision back
    /// and take the option from its flow (or its proposal).
    fn awaiting_from_journal(&self, decision_id: &str, signal: &Signal) -> Option<Awaiting> {
        let decision = read::decision(&self.dir, decision_id).ok().flatten()?;
        let option = signal
            .data_str("option")
            .map(String::from)
            .unwrap_or_else(|| decision.proposal.clone());
        Some(Awaiting {
            option,
            features: decision.features,
            since: decision.time,
            flow_label: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn feedback(
        &mut self,
        decision_id: &str,
        option: &str,
        features: Vec<String>,
        label: f64,
        importance: f64,
        source: &str,
        now: DateTime<Utc>,
    ) {
        if self.decider.learning {
            self.decider.learn(option, &features, label, importance);
        }
        let fb = Feedback {
            decision_id: decision_id.to_string(),
            option: option.to_string(),
            label,
            importance,
            source: source.to_string(),
            features,
            time: now,
        };
        self.feedback_count += 1;
        self.emit(EngineEvent::Learned(fb.clone()));
        self.pending.push(Record::Feedback(fb));
        if self.feedback_count - self.checkpoint_at >= self.checkpoint_every {
            self.checkpoint();
        }
    }

    fn checkpoint(&mut self) {
        let body = serde_json::to_string(&self.decider.model.checkpoint()).unwrap_or_default();
        self.pending.push(Record::Checkpoint {
            feedback_count: self.feedback_count,
            body,
        });
        self.pending.push(Record::Meta {
            key: "metrics".into(),
            value: serde_json::to_string(&self.metrics).unwrap_or_default(),
        });
        self.checkpoint_at = self.feedback_count;
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
        // What a person's answer teaches: approve confirms the proposal,
        // override refutes it and confirms the alternative, reject refutes it.
        let features = decision.features.clone();
        match &record.action {
            Action::Approve => {
                self.feedback(
                    &decision.id,
                    &decision.proposal,
                    features,
                    1.0,
                    PERSON_WEIGHT,
                    "approve",
                    now,
                );
            }
            Action::Override { option } => {
                self.feedback(
                    &decision.id,
                    &decision.proposal,
                    features.clone(),
                    0.0,
                    PERSON_WEIGHT,
                    "override",
                    now,
                );
                self.feedback(
                    &decision.id,
                    option,
                    features,
                    1.0,
                    PERSON_WEIGHT,
                    "override",
                    now,
                );
            }
            Action::Reject => {
                self.feedback(
                    &decision.id,
                    &decision.proposal,
                    features,
                    0.0,
                    0.5,
                    "reject",
                    now,
                );
            }
            _ => {}
        }
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
        let finished = self
            .flows
            .tick(now, &mut self.context, &steps, &mut self.rng);
        for id in finished {
            let Some(flow) = self.flows.get(&id) else {
                continue;
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
            // A flow that failed, was compensated or took longer than its
            // decision allowed is weak evidence against what it ran, kept
            // until an explicit outcome arrives or the horizon passes. A flow
            // that simply got done is no evidence either way: every option
            // usually gets its work done, and labelling that 1 would push
            // every option's score to 1 and erase the margins the model
            // decides on. Time spent waiting for a person before the flow
            // could start is not the option's doing: a flow released late
            // from review that then ran within the time it was given is no
            // evidence either (labelling it 0 taught the model that every
            // safe default fails whenever nobody answers, which sent ever
            // more decisions to review).
            if let Some(awaiting) = self.awaiting.get_mut(&done.decision_id) {
                let failed = done.state != FlowState::Done || now - awaiting.since > allowed;
                if failed {
                    awaiting.flow_label = Some((0.0, now));
                }
                // Either way the entry is dropped after the horizon.
                self.flow_labels.push_back((now, done.decision_id.clone()));
            }
            self.emit(EngineEvent::FlowFinished(done));
        }
        self.drain_flow_changes();
        if self
            .last_sample
            .is_none_or(|t| now - t >= Duration::minutes(1))
        {
            self.learn_from_flows(now);
            // Alerts whose flows have ended are no longer open.
            let flows = &self.flows;
            self.opened_by
                .retain(|_, flow| flows.get(flow).is_some_and(|f| !f.state.is_terminal()));
            self.last_sample = Some(now);
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
    }

    /// Decisions whose flow ended more than the horizon ago without an
    /// explicit outcome learn from the flow's own result.
    fn learn_from_flows(&mut self, now: DateTime<Utc>) {
        let mut due = Vec::new();
        while let Some((at, _)) = self.flow_labels.front() {
            if now - *at < OUTCOME_HORIZON {
                break;
            }
            if let Some((_, id)) = self.flow_labels.pop_front() {
                due.push(id);
            }
        }
        for id in due {
            let Some(a) = self.awaiting.remove(&id) else {
                continue;
            };
            let Some((label, _)) = a.flow_label else {
                continue;
            };
            self.feedback(
                &id,
                &a.option,
                a.features,
                label,
                FLOW_COMPLETION_WEIGHT,
                "flow",
                now,
            );
        }
    }

    /// Publishes flow events as they happen and keeps them, by flow, for the
    /// next flush. Flow and entity snapshots are taken only at the flush, so
    /// a flow that changes many times between flushes is written once.
    fn drain_flow_changes(&mut self) {
        for event in self.flows.take_events() {
            if self.publish {
                self.events.push_back(EngineEvent::Flow(event.clone()));
            }
            self.pending_events
                .entry(event.flow_id.clone())
                .or_default()
                .push(event);
        }
    }

    /// Where the engine is in the intake log, as the journal last recorded.
    pub fn intake_cursor(&self) -> Option<&str> {
        self.intake_cursor.as_deref()
    }

    /// Records the engine's position in the intake log with the next flush,
    /// in the same commit as the decisions of the signals read up to it.
    pub fn note_intake_cursor(&mut self, cursor: String) {
        self.pending.push(Record::Meta {
            key: INTAKE_CURSOR_KEY.into(),
            value: cursor.clone(),
        });
        self.intake_cursor = Some(cursor);
    }

    /// Hands everything since the last flush to the journal as one batch.
    /// Wait on the returned `Commit` before acknowledging its signals.
    pub fn flush(&mut self) -> Result<Commit, EngineError> {
        self.drain_flow_changes();
        let dirty = self.flows.take_changed();
        let mut records = Vec::with_capacity(
            self.pending.len()
                + dirty.len()
                + self.pending_events.len()
                + self.pending_reviews.len()
                + self.context.dirty_count()
                + 1,
        );
        records.append(&mut self.pending);
        if self.publish {
            for change in &dirty {
                let flow = match change.steps {
                    None => change.flow.clone(),
                    Some(_) => match self.flows.get(&change.flow.id) {
                        Some(f) => f.clone(),
                        None => continue,
                    },
                };
                self.events
                    .push_back(EngineEvent::FlowChanged(Box::new(flow)));
            }
        }
        let mut events = std::mem::take(&mut self.pending_events);
        records.extend(dirty.into_iter().map(|change| Record::Flow {
            events: events.remove(&change.flow.id).unwrap_or_default(),
            flow: Box::new(change.flow),
            steps: change.steps,
        }));
        records.extend(events.into_values().map(Record::FlowEvents));
        let reviews = std::mem::take(&mut self.pending_reviews);
        records.extend(reviews.into_values().map(|r| Record::Review(Box::new(r))));
        records.extend(
            self.context
                .take_dirty()
                .into_iter()
                .map(|(key, body)| Record::Entity { key, body }),
        );
        // Nothing happened (an idle tick): the batch stays empty, so its
        // transaction writes and syncs nothing, while its `Commit` still
        // resolves only after everything submitted before it.
        if !records.is_empty() {
            records.push(Record::Meta {
                key: "next_id".into(),
                value: self.next_id.to_string(),
            });
        }
        Ok(self.journal.submit(records)?)
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

    /// Steps to POST to webhook executors. Take them after a flush has
    /// committed, so nothing is sent that the journal does not know.
    pub fn take_dispatches(&mut self) -> Vec<crate::flow::Dispatch> {
        self.flows.take_dispatches()
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

    pub fn open_reviews(&self) -> Vec<&ReviewItem> {
        self.reviews.open_items()
    }
}
