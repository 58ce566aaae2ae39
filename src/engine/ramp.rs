//! The guarded ramp (`decide::ramp`), wired in: starting one puts the
//! candidate beside the live policy with the first step's coverage and
//! keeps the model as it was; answers and outcomes of ramped decisions are
//! its readings; each change is carried out (the next coverage, the
//! candidate made live, or the live policy and the kept model put back),
//! journaled (an audit entry with the readings, the state as meta for a
//! restart) and announced (a `ramp` notice).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use thiserror::Error;

use super::{Engine, notices};
use crate::decide::model::Checkpoint;
use crate::decide::policy::{PolicyError, PolicySet, Role};
use crate::decide::ramp::{LeadCall, Ramp, RampMark, RampPlan, RampState, Status, classes_text};
use crate::decide::{Decision, RampArm};
use crate::journal::{AuditEntry, Record, read};
use crate::review::Actor;

/// The journal meta key holding the ramp's state.
pub const RAMP_KEY: &str = "ramp";

/// The audit kind of a ramp's changes; `ramp_model` holds the model as it
/// was when the ramp started.
pub const RAMP_AUDIT: &str = "ramp";
const RAMP_MODEL_AUDIT: &str = "ramp_model";

#[derive(Debug, Error)]
pub enum RampRefused {
    #[error("ramp {0} is still {1}: it must be promoted or rolled back before another starts")]
    Busy(String, &'static str),
    #[error("no ramp is in progress")]
    NoRamp,
    #[error("{0} may not decide a ramp: it takes a lead")]
    NotLead(String),
    #[error(transparent)]
    Over(#[from] crate::decide::ramp::RampOver),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Plan(#[from] crate::decide::ramp::RampError),
}

/// A ramp in progress, with what carrying it out needs.
pub(super) struct Ramping {
    pub ramp: Ramp,
    candidate: Arc<PolicySet>,
    /// The model when the ramp started: a rollback puts it back.
    model_at_start: Option<Checkpoint>,
}

impl Engine {
    /// The ramp in progress, or the last one.
    pub fn ramp(&self) -> Option<&RampState> {
        self.ramp.as_ref().map(|r| &r.ramp.state)
    }

    /// What the ramp's current step has read so far.
    pub fn ramp_step(&self) -> Option<&crate::decide::ramp::StepTally> {
        self.ramp
            .as_ref()
            .filter(|r| !r.ramp.state.status.finished())
            .map(|r| &r.ramp.tally)
    }

    /// Starts a guarded ramp of `plan`'s candidate.
    pub fn start_ramp(
        &mut self,
        plan: &RampPlan,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<String, RampRefused> {
        if let Some(r) = &self.ramp
            && !r.ramp.state.status.finished()
        {
            let state = &r.ramp.state;
            return Err(RampRefused::Busy(state.id.clone(), state.status.as_str()));
        }
        let candidate = PolicySet::load(&plan.candidate, &self.decider.playbook)?;
        let ramp = Ramp::new(plan, &candidate.version, &self.decider.policy.version, now);
        let id = ramp.state.id.clone();
        let model = self.decider.learning.then(|| self.model_checkpoint());
        if let Some(model) = &model {
            match serde_json::to_value(model) {
                Ok(body) => self.outbox.records.push(Record::Audit(AuditEntry {
                    kind: RAMP_MODEL_AUDIT.into(),
                    ref_id: id.clone(),
                    decision_id: String::new(),
                    time: now,
                    body,
                })),
                Err(e) => {
                    tracing::error!(error = %e, "the model kept for the ramp could not be journaled")
                }
            }
        }
        self.ramp = Some(Ramping {
            ramp,
            candidate,
            model_at_start: model,
        });
        self.arm_decider();
        let state = self.ramp().cloned();
        if let Some(state) = state {
            let text = format!(
                "ramp {id} started by {}: {} takes {:.0} % of {}, each step read over {} decisions",
                actor.name,
                state.candidate_version,
                state.coverage() * 100.0,
                classes_text(&state.classes),
                state.hold
            );
            self.journal_ramp("started", &state, &actor.name, &text, now);
        }
        Ok(id)
    }

    /// The ramp a process was started with (`--ramp`): started unless a
    /// ramp is in progress, or this candidate has already ramped here (a
    /// restart with the same flags must not ramp a rolled-back candidate
    /// again).
    pub(super) fn ramp_from_start(
        &mut self,
        file: &std::path::Path,
        now: DateTime<Utc>,
    ) -> Result<(), RampRefused> {
        let plan = RampPlan::load(file, &self.decider.playbook)?;
        let candidate = PolicySet::load(&plan.candidate, &self.decider.playbook)?;
        if let Some(state) = self.ramp()
            && (!state.status.finished() || state.candidate_version == candidate.version)
        {
            tracing::info!(
                ramp = %state.id, status = state.status.as_str(), candidate = %state.candidate_version,
                "--ramp {}: this journal's ramp stands; not started again",
                file.display()
            );
            return Ok(());
        }
        let by = Actor::new("ramp file", Role::Lead);
        self.start_ramp(&plan, &by, now).map(drop)
    }

    /// A lead's call on the ramp in progress.
    pub fn call_ramp(
        &mut self,
        call: LeadCall,
        actor: &Actor,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Status, RampRefused> {
        if actor.role < Role::Lead {
            return Err(RampRefused::NotLead(actor.name.clone()));
        }
        let ramping = self.ramp.as_mut().ok_or(RampRefused::NoRamp)?;
        let status = ramping
            .ramp
            .call(call, &actor.name, note, now)
            .map_err(RampRefused::Over)?;
        self.ramp_moved(status, actor, now);
        Ok(status)
    }

    /// A ramped decision was taken; once it fills the step's batch,
    /// decisions are taken between batches until the gates are read.
    pub(super) fn ramp_decided(&mut self, decision: &Decision, now: DateTime<Utc>) {
        if let (Some(r), Some(mark)) = (self.ramp.as_mut(), &decision.ramp)
            && r.ramp.decided(mark, now)
        {
            self.arm_decider();
        }
    }

    /// Reads the step's gates once its batch's wait is over.
    pub(super) fn ramp_tick(&mut self, now: DateTime<Utc>) {
        if let Some(r) = self.ramp.as_mut()
            && let Some(status) = r.ramp.tick(now)
        {
            let gates = Actor::new("ramp gates", Role::System);
            self.ramp_moved(status, &gates, now);
        }
    }

    /// A person approved (or overrode) a ramped decision.
    pub(super) fn ramp_answered(&mut self, decision: &Decision, overridden: bool) {
        if let (Some(r), Some(mark)) = (self.ramp.as_mut(), &decision.ramp) {
            r.ramp.answered(mark, overridden);
        }
    }

    /// A ramped decision's outcome; the step's gates are read once it has
    /// held long enough.
    pub(super) fn ramp_outcome(&mut self, mark: &RampMark, within: bool, now: DateTime<Utc>) {
        let Some(r) = self.ramp.as_mut() else {
            return;
        };
        if let Some(status) = r.ramp.outcome(mark, within, now) {
            let gates = Actor::new("ramp gates", Role::System);
            self.ramp_moved(status, &gates, now);
        }
    }

    /// Carries out a change of the ramp's state, journals and announces it.
    fn ramp_moved(&mut self, status: Status, actor: &Actor, now: DateTime<Utc>) {
        let Some(r) = self.ramp.as_mut() else {
            return;
        };
        let state = r.ramp.state.clone();
        let (candidate, model) = (Arc::clone(&r.candidate), r.model_at_start.take());
        let what = match status {
            Status::Running => "advanced",
            other => other.as_str(),
        };
        match status {
            Status::Running | Status::Paused => {
                // Still ramping (an extended step is Running too).
                r.model_at_start = model;
            }
            Status::Promoted => {
                self.decider.policy = candidate;
            }
            Status::RolledBack => {
                if let Some(model) = model
                    && let Err(e) = self.load_model(
                        &model,
                        actor,
                        &format!("ramp {} rolled back", state.id),
                        now,
                    )
                {
                    tracing::error!(ramp = %state.id, error = %e, "the model kept at the ramp's start could not be put back");
                }
            }
        }
        self.arm_decider();
        let text = match status {
            Status::Running => format!(
                "ramp {}: {} now takes {:.0} % ({})",
                state.id,
                state.candidate_version,
                state.coverage() * 100.0,
                state.reason
            ),
            Status::Paused => format!("ramp {} paused: {}", state.id, state.reason),
            Status::Promoted => format!(
                "ramp {}: {} promoted, it decides everything now ({})",
                state.id, state.candidate_version, state.reason
            ),
            Status::RolledBack => format!(
                "ramp {} rolled back: {} decides everything again and the model is as it was at the start ({})",
                state.id, state.live_version, state.reason
            ),
        };
        match status {
            Status::RolledBack | Status::Paused => {
                tracing::warn!(ramp = %state.id, reason = %state.reason, "ramp {what}")
            }
            _ => tracing::info!(ramp = %state.id, reason = %state.reason, "ramp {what}"),
        }
        self.journal_ramp(what, &state, &actor.name, &text, now);
    }

    /// Tells the decider the candidate and its coverage, or that there is
    /// none.
    fn arm_decider(&mut self) {
        self.decider.ramp = self.ramp.as_ref().and_then(|r| {
            let state = &r.ramp.state;
            (!state.status.finished()).then(|| RampArm {
                id: state.id.clone(),
                step: state.step,
                batch: r.ramp.filling(),
                coverage: state.coverage(),
                classes: state.classes.clone(),
                candidate: crate::decide::Candidate::of_policy(Arc::clone(&r.candidate)),
            })
        });
    }

    fn journal_ramp(
        &mut self,
        what: &str,
        state: &RampState,
        by: &str,
        text: &str,
        now: DateTime<Utc>,
    ) {
        self.outbox.records.push(Record::Audit(AuditEntry {
            kind: RAMP_AUDIT.into(),
            ref_id: what.into(),
            decision_id: String::new(),
            time: now,
            body: json!({
                "ramp": state.id, "by": by, "text": text,
                "status": state.status, "step": state.step, "coverage": state.coverage(),
                "reading": state.history.last().map(|h| &h.reading),
            }),
        }));
        match serde_json::to_string(state) {
            Ok(value) => self.outbox.records.push(Record::Meta {
                key: RAMP_KEY.into(),
                value,
            }),
            Err(e) => tracing::error!(error = %e, "the ramp's state could not be kept"),
        }
        if what != "started" {
            self.notice(notices::Notice {
                event: "ramp",
                text: text.to_string(),
                reference: state.id.clone(),
                subject: format!("policy/{}", state.candidate_version),
                time: now,
            });
        }
    }

    /// Takes the ramp's journaled state after a restart. A ramp in progress
    /// goes on at its step (the step's tally starts again); a promoted
    /// candidate stays live if the engine came up with the policy it
    /// replaced. A candidate that cannot be loaded as it was is rolled back.
    pub(super) fn resume_ramp(&mut self, journaled: &str, now: DateTime<Utc>) {
        let state = match serde_json::from_str::<RampState>(journaled) {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(error = %e, "the journaled ramp state is unreadable: no ramp");
                return;
            }
        };
        let candidate = PolicySet::load(&state.candidate_file, &self.decider.playbook)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                if c.version == state.candidate_version {
                    Ok(c)
                } else {
                    Err(format!(
                        "{} is now {}, not {}",
                        state.candidate_file.display(),
                        c.version,
                        state.candidate_version
                    ))
                }
            });
        match state.status {
            Status::RolledBack => {}
            Status::Promoted => match candidate {
                Ok(candidate) if self.decider.policy.version == state.live_version => {
                    self.decider.policy = Arc::clone(&candidate);
                }
                Ok(_) => tracing::info!(
                    ramp = %state.id,
                    "the engine came up with another policy than the one the ramp replaced: it stays"
                ),
                Err(e) => {
                    tracing::error!(ramp = %state.id, error = %e, "the promoted candidate cannot be loaded: the configured policy decides")
                }
            },
            Status::Running | Status::Paused => {
                let model = read::audit_entries(&self.dir, RAMP_MODEL_AUDIT)
                    .map_err(|e| e.to_string())
                    .and_then(|entries| {
                        let entry = entries.into_iter().rev().find(|e| e.ref_id == state.id);
                        entry
                            .map(|e| {
                                serde_json::from_value::<Checkpoint>(e.body)
                                    .map_err(|e| e.to_string())
                            })
                            .transpose()
                    });
                let model = match model {
                    Ok(model) => model,
                    Err(e) => {
                        tracing::error!(ramp = %state.id, error = %e, "the model kept at the ramp's start is unreadable");
                        None
                    }
                };
                let ramp = Ramp::resume(state);
                let id = ramp.state.id.clone();
                match candidate {
                    Ok(candidate) => {
                        self.ramp = Some(Ramping {
                            ramp,
                            candidate,
                            model_at_start: model,
                        });
                        self.arm_decider();
                        tracing::info!(ramp = %id, "ramp resumed");
                    }
                    Err(e) => {
                        let placeholder = Arc::clone(&self.decider.policy);
                        self.ramp = Some(Ramping {
                            ramp,
                            candidate: placeholder,
                            model_at_start: model,
                        });
                        let restart = Actor::new("restart", Role::System);
                        let note = format!("the candidate cannot be loaded as it was: {e}");
                        if let Some(r) = self.ramp.as_mut()
                            && let Ok(status) =
                                r.ramp.call(LeadCall::RollBack, "restart", &note, now)
                        {
                            self.ramp_moved(status, &restart, now);
                        }
                    }
                }
                return;
            }
        }
        self.ramp = Some(Ramping {
            ramp: Ramp::resume(state),
            candidate: Arc::clone(&self.decider.policy),
            model_at_start: None,
        });
    }
}
