//! The engine: wires signal → context → decide → flow → review, journals
//! every step, and publishes what happened to whoever subscribes.
//!
//! The engine owns no clock and no thread of its own: callers pass `now`
//! (the simulator's clock, or the wall clock) and drive it with `ingest`,
//! `tick` and `act`. `flush` hands everything produced since the last flush
//! to the journal as one batch; a signal counts as acknowledged only once
//! the `Commit` of the batch holding it has resolved.

mod alerts;
pub mod apprentice;
mod batch;
mod command;
mod fanout;
pub mod guard;
mod holdoff;
pub mod host;
mod incidents;
mod learning;
pub mod notices;
pub mod overview;
mod paging;
pub mod quarantine;
pub mod ramp;
mod recover;
pub mod reload;
mod reviews;
pub mod runner;
pub mod shared_model;
mod status;
mod taken;
mod tasks;
mod types;
mod verdicts;
mod watch;

pub use incidents::IncidentRefused;
pub use paging::{ChannelRow, OverrideRefused, PageAction, PageFigures};
pub use types::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::context::{Context, World};
use crate::decide::model::{DEFAULT_BITS, Model};
use crate::decide::policy::{PolicyError, PolicySet};
use crate::decide::{
    Candidate, Case, Choice, Decider, Decision, Mode, choice_for, features, record_choice,
};
use crate::flow::executor::Webhooks;
use crate::flow::{Flow, FlowBook, FlowState};
use crate::journal::{Journal, Record};
use crate::metrics::Metrics;
use crate::playbook::steps::{DEFAULT_STEPS, StepCatalogue};
use crate::playbook::{DEFAULT_PLAYBOOK, Playbook};
use crate::review::ReviewQueue;
use crate::signal::Signal;

pub struct Engine {
    journal: Journal,
    dir: PathBuf,
    pub context: Context,
    decider: Decider,
    pub flows: FlowBook,
    pub reviews: ReviewQueue,
    pub metrics: Metrics,
    quarantine: quarantine::QuarantineBook,
    /// Firing alerts' flows, and the incidents they group into.
    alerts: incidents::Alerts,
    /// Finished flows whose outcome a later signal may still change.
    verdicts: verdicts::Verdicts,
    /// What the next flush hands to the journal, and the events and
    /// notices for whoever hosts the engine.
    outbox: batch::Outbox,
    /// Decisions awaiting their outcome, flow labels, checkpoints.
    learning: learning::Learning,
    /// Pages and the notifications due to go out.
    paging: paging::Paging,
    /// Signals seen and tallied, counts, the next id.
    taken: taken::Taken,
    /// The breaker on the model (`engine::watch`).
    watch: crate::decide::watch::ModelWatch,
    /// The guarded ramp in progress, or the last one (`engine::ramp`).
    ramp: Option<ramp::Ramping>,
    /// Each team's bound of open tasks, and the teams over it.
    task_bounds: tasks::TaskBounds,
    /// The advisor's breaker as the advisor beside the engine last said it
    /// (for Health; the engine never waits for the advisor).
    pub advisor: Option<overview::AdvisorRow>,
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
        let journal = Journal::open_fenced(&config.data_dir, config.fence.clone())?;
        let mut decider = Decider::new(
            Arc::clone(&rules.playbook),
            Arc::clone(&rules.steps),
            Arc::clone(&rules.policy),
            Model::new(DEFAULT_BITS),
            config.learning,
            config.seed,
        );
        decider.shadow = Candidate::shadow(&config.candidates, &rules)?;
        decider.rules_version = rules.version;
        let mut engine = Engine {
            journal,
            dir: config.data_dir.clone(),
            context: Context::from_world(world),
            decider,
            flows: FlowBook::default(),
            reviews: ReviewQueue::default(),
            metrics: Metrics::new(now),
            quarantine: Default::default(),
            alerts: Default::default(),
            verdicts: Default::default(),
            task_bounds: tasks::TaskBounds::new(config.task_bound.clone()),
            outbox: batch::Outbox::new(config.notices),
            learning: learning::Learning::new(config.checkpoint_every),
            paging: Default::default(),
            taken: taken::Taken::new(),
            watch: crate::decide::watch::ModelWatch::new(config.model_watch.clone()),
            ramp: None,
            advisor: None,
        };
        engine.taken.numbering = config.numbering;
        if config.shared_model {
            engine.learning.shared = Some(Default::default());
        }
        engine.paging.book.numbering = config.numbering;
        engine.alerts.incidents.numbering = config.numbering;
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
        engine.paging.review_policy = config.review_page;
        engine.alerts.silence_max = config.silence_max;
        // An auto budget takes each class's review window (the longest of
        // its types').
        let mut windows = std::collections::BTreeMap::<String, u32>::new();
        for play in engine.decider.playbook.signals.values() {
            let w = windows.entry(play.class.clone()).or_default();
            *w = (*w).max(play.review_minutes);
        }
        let budgets = crate::review::budget::Budgets::new(config.review_budget, windows);
        engine.reviews.set_budget(budgets);
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
        if let Some(world) = config.organization {
            engine.context.take_organization(world);
        }
        engine.outbox.publish = config.publish;
        if let Some(file) = &config.candidates.ramp {
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
        self.decider.replace_rules(rules);
        if let Some(world) = world {
            self.context.take_organization(world);
        }
    }

    /// Settled decisions whose outcome is still awaited, in memory.
    pub fn awaiting_count(&self) -> usize {
        self.learning.awaiting.len()
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
            feedback: self.learning.feedback,
            open_reviews: self.reviews.open_count(),
            active_flows: self.flows.active_count(),
            quarantined: self.quarantine.held,
            ..self.taken.counts.clone()
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
        self.decider.shadow = candidate.map(crate::decide::Candidate::of_policy);
    }

    pub fn reload_policy(&mut self, path: &Path) -> Result<String, PolicyError> {
        let policy = PolicySet::load(path, &self.decider.playbook)?;
        let version = policy.version.clone();
        self.decider.policy = policy;
        Ok(version)
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<EngineEvent> {
        self.outbox.take_events()
    }

    /// Events since the last call, each with the next id; the last id is
    /// journaled with the next flush.
    pub fn take_numbered_events(&mut self) -> Vec<(u64, EngineEvent)> {
        self.outbox.take_numbered_events()
    }

    /// The id of the last event handed out.
    pub fn last_event_id(&self) -> u64 {
        self.outbox.last_event_id
    }

    fn emit(&mut self, event: EngineEvent) {
        self.outbox.emit(event);
    }

    fn new_id(&mut self) -> u64 {
        self.taken.new_id()
    }

    /// Takes in one signal: journals it, decides, assembles its flow or
    /// opens its review item. A signal whose source and id were seen before
    /// is counted and ignored; one that cannot be decided is quarantined.
    /// Nothing is durable until `flush`.
    pub fn ingest(&mut self, signal: Signal, now: DateTime<Utc>) -> Ingested {
        let signal = Arc::new(signal);
        if !self.taken.first_time(signal.identity()) {
            self.tally(&signal.kind, |t| t.duplicate += 1);
            self.taken.counts.duplicates += 1;
            self.metrics.at(now, |t| t.duplicates += 1);
            self.emit(EngineEvent::Signal {
                signal,
                duplicate: true,
            });
            return Ingested::Duplicate;
        }
        self.taken.counts.signals += 1;
        self.metrics.at(now, |t| t.signals += 1);
        self.outbox
            .records
            .push(Record::Signal(Arc::clone(&signal)));
        self.emit(EngineEvent::Signal {
            signal: Arc::clone(&signal),
            duplicate: false,
        });
        let kind = signal.kind.clone();
        match self.decide_guarded(signal, now) {
            Ok(Some(decision)) => {
                self.tally(&kind, |t| t.decided += 1);
                Ingested::Decided {
                    decision_id: decision.id.clone(),
                    mode: decision.mode,
                }
            }
            Ok(None) => {
                self.tally(&kind, |t| t.decided += 1);
                Ingested::Paused
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
        self.taken.tally(kind, count);
    }

    /// Signals taken in since start, by type (see `tally`).
    pub fn signal_tally(&self) -> &crate::FastMap<String, SignalTally> {
        self.taken.by_type()
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
    /// the signal should this fail: its data checked and folded into the
    /// context, then decided (`decide_taken`), unless its type holds it
    /// off as a possible transient (none: paused, decided later).
    fn decide_signal(
        &mut self,
        signal: Arc<Signal>,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<Decision>>, EngineError> {
        // The boundary's second line of defence, exercised by its tests.
        #[cfg(test)]
        if signal.kind == quarantine::tests::PANICS {
            panic!("a signal made to panic");
        }
        self.take_in(&signal, now)?;
        // A firing alert whose flow is still open (PagerDuty sends every
        // trigger of a key; a sender retries) is a repeat: recorded, no
        // second flow. Once its flow has ended, the same key opens anew.
        // So is an alert that joins an open incident of its group, and one
        // a noise rule holds.
        let held = self.held_by(&signal, now);
        if held.is_none() && self.pause(&signal, now) {
            return Ok(None);
        }
        Ok(Some(self.decide_taken(signal, held, None, now)))
    }

    /// Decides a signal already taken in, held as `held` says (none: asks
    /// the noise rules now), with `note` added to its why: the decision
    /// made and counted, then a flow started or a review item opened.
    fn decide_taken(
        &mut self,
        signal: Arc<Signal>,
        held: Option<incidents::Held>,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Arc<Decision> {
        let held = match (held, &note) {
            (Some(h), _) => Some(h),
            (None, Some(_)) => self.held_by(&signal, now),
            (None, None) => None,
        };
        let playbook = Arc::clone(&self.decider.playbook);
        let mut choice = choice_for(&playbook, &signal.kind);
        if held.is_some() {
            choice = record_choice(&choice);
        }
        let n = self.new_id();
        let decision = self.decide_case(&signal, &choice, held.as_ref(), note, n, now);
        self.count_decision(&decision, now);
        if decision.mode != Mode::Record {
            self.start_flow(&decision, &signal, &choice, n, now);
        }
        self.group(&signal, &decision, held.as_ref(), &format!("F{n:07}"));
        decision
    }

    /// Checks a signal's data against its type and folds it into the
    /// context; an outcome teaches, a resolution closes its alert.
    fn take_in(&mut self, signal: &Signal, now: DateTime<Utc>) -> Result<(), EngineError> {
        self.decider
            .playbook
            .check_data(&signal.kind, &signal.data)
            .map_err(EngineError::Data)?;
        self.fold(signal)?;
        if signal.kind == "outcome.recorded" {
            self.learn_from_outcome(signal, now);
        }
        if signal.kind == "alert.acknowledged" {
            self.acknowledged_at_source(signal, now);
        }
        self.hold_off_change(signal, now);
        if signal.kind == "alert.resolved" {
            self.close_resolved(signal, now);
        }
        self.end_by(signal, now);
        Ok(())
    }

    /// Decision number `n`, for a signal among `choice` (a `held` one is
    /// recorded only, saying why; `note` follows its why).
    fn decide_case(
        &mut self,
        signal: &Signal,
        choice: &Choice<'_>,
        held: Option<&incidents::Held>,
        note: Option<String>,
        n: u64,
        now: DateTime<Utc>,
    ) -> Arc<Decision> {
        let snapshot = self.context.snapshot(signal);
        // A context-only signal is recorded, not scored: no features.
        let features = if choice.record_only() {
            Vec::new()
        } else {
            features::extract(signal, &self.context)
        };
        let case = Case {
            id: format!("D{n:07}"),
            parent: None,
            signal,
            subject: &signal.subject,
            snapshot,
            features,
            choice,
            now,
        };
        let mut decision = self.decider.decide(case, &mut self.context);
        if let Some(held) = held {
            decision.why = held.why();
        }
        if let Some(note) = note {
            decision.why = format!("{note}; {}", decision.why);
        }
        Arc::new(decision)
    }

    /// Counts a decision, hands it to the ramp, the journal and subscribers.
    fn count_decision(&mut self, decision: &Arc<Decision>, now: DateTime<Utc>) {
        self.taken.counts.decisions += 1;
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
        self.ramp_decided(decision, now);
        self.outbox
            .records
            .push(Record::Decision(Arc::clone(decision)));
        self.emit(EngineEvent::Decision(Arc::clone(decision)));
    }

    /// The flow of a decision that acts or asks: running with its steps,
    /// or waiting on the review item it opens.
    fn start_flow(
        &mut self,
        decision: &Arc<Decision>,
        signal: &Arc<Signal>,
        choice: &Choice<'_>,
        n: u64,
        now: DateTime<Utc>,
    ) {
        let flow_id = format!("F{n:07}");
        if signal.kind == "alert.firing"
            && let Some(fingerprint) = signal.data_str("fingerprint")
        {
            self.note_reopening(fingerprint, now);
            self.alerts
                .opened_by
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
            outcome: None,
        };
        if decision.mode == Mode::Review {
            flow.state = FlowState::WaitingHuman;
            self.flows.insert(flow, now);
            let over = self.reviews.over_budget(&decision.class, now);
            let item = self.reviews.open(
                format!("R{n:07}"),
                Arc::clone(decision),
                Arc::clone(signal),
                flow_id,
                now,
            );
            self.outbox.reviews.insert(item.id.clone(), item.clone());
            let id = item.id.clone();
            self.emit(EngineEvent::ReviewOpened(Box::new(item)));
            if let Some(over) = over {
                self.over_review_budget(&id, decision, over, now);
            }
        } else {
            flow.steps = self.assemble(decision, &decision.proposal, signal, choice, now);
            self.keep_page_reason(&flow.id, decision, &decision.proposal, &flow.steps);
            self.flows.insert(flow, now);
            self.settled(decision, &decision.proposal.clone(), now);
        }
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
        self.tick_pages(now);
        self.tick_silences(now);
        self.tick_holds(now);
        self.tick_incidents(now);
        self.tick_verdicts(now);
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
            .learning
            .last_sample
            .is_none_or(|t| now - t >= Duration::minutes(1))
        {
            self.learning.last_sample = Some(now);
            self.learn_from_flows(now);
            self.forget_closed_alerts();
            self.sample_utilisation(now);
        }
    }

    /// A flow has ended: counted, remembered for learning, published.
    fn flow_finished(&mut self, id: &str, now: DateTime<Utc>) {
        self.resolve_flow_pages(id, "its flow ended", now);
        self.end_incident_of(id, now);
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
        let outcome = crate::flow::outcome::Outcome::of_finished(done.state, done.within_deadline);
        self.flows.set_outcome(id, outcome);
        self.count_outcome(outcome, now);
        self.await_end(id);
        self.note_flow_result(&done, allowed, now);
        self.emit(EngineEvent::FlowFinished(done));
    }

    /// Counts a flow's own outcome (the work's, as against an
    /// `outcome.recorded` signal's): one with a verdict, and whether good.
    fn count_outcome(&mut self, outcome: crate::flow::outcome::Outcome, now: DateTime<Utc>) {
        if let Some(good) = outcome.good() {
            self.metrics.at(now, |t| {
                t.work_outcomes += 1;
                t.work_within_sla += u64::from(good);
            });
        }
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
}
