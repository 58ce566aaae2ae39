//! The breaker on the model (`decide::watch`), wired in: labelled examples
//! and people's answers are its readings; when it opens or closes the
//! decider is told, the change is journaled (an audit entry, and the state
//! as meta for a restart), announced (a `breaker` notice) and shown
//! (`overview::Overview::model_breaker`). Also the one way to put another
//! model in place (`load_model`): journaled, with a checkpoint, so a
//! restart rebuilds the model that was in use.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Engine, notices};
use crate::decide::Decision;
use crate::decide::model::{Checkpoint, CheckpointError, Model};
use crate::decide::watch::{BreakerState, Transition};
use crate::journal::{AuditEntry, Record};
use crate::review::Actor;

/// The journal meta key holding the breaker's state.
pub const BREAKER_KEY: &str = "model_breaker";

impl Engine {
    /// The model's breaker, once it has opened at least once.
    pub fn model_breaker(&self) -> Option<&BreakerState> {
        self.watch.state.as_ref()
    }

    /// A labelled example about to be learned: how far off the model was.
    pub(super) fn watch_label(
        &mut self,
        option: &str,
        features: &[String],
        label: f64,
        weight: f64,
        now: DateTime<Utc>,
    ) {
        let predicted = self.decider.predict(option, features);
        if let Some(t) = self.watch.labelled(predicted, label, weight, now) {
            self.breaker_moved(t, now);
        }
    }

    /// A person approved or overrode: was it the model's best allowed option?
    pub(super) fn watch_answer(&mut self, decision: &Decision, chosen: &str, now: DateTime<Utc>) {
        let best = decision
            .options
            .iter()
            .filter(|o| o.allowed)
            .max_by(|a, b| a.score.total_cmp(&b.score));
        let Some(best) = best else {
            return;
        };
        if let Some(t) = self.watch.answered(best.option == chosen, now) {
            self.breaker_moved(t, now);
        }
    }

    fn breaker_moved(&mut self, t: Transition, now: DateTime<Utc>) {
        let Transition { state, readings } = t;
        self.decider.model_held = state.open;
        if state.open {
            for switch in self.decider.apprentice.hand_back_all(now) {
                self.class_switched(switch);
            }
        }
        let model = self.decider.model_version();
        let what = if state.open { "open" } else { "closed" };
        if state.open {
            tracing::warn!(reason = %state.reason, %model, "model breaker open: deciding by rules alone");
        } else {
            tracing::info!(reason = %state.reason, %model, "model breaker closed");
        }
        self.outbox.records.push(Record::Audit(AuditEntry {
            kind: "model_breaker".into(),
            ref_id: what.into(),
            decision_id: String::new(),
            time: now,
            body: json!({ "state": state, "readings": readings, "model": model }),
        }));
        match serde_json::to_string(&state) {
            Ok(value) => self.outbox.records.push(Record::Meta {
                key: BREAKER_KEY.into(),
                value,
            }),
            Err(e) => tracing::error!(error = %e, "the model breaker's state could not be kept"),
        }
        let text = if state.open {
            format!(
                "model breaker open: {}; decisions fall back to rules alone (review where policy asks) \
                 until the model's readings recover",
                state.reason
            )
        } else {
            format!(
                "model breaker closed: {}; the model decides again",
                state.reason
            )
        };
        self.notice(notices::Notice {
            event: "breaker",
            text,
            reference: "model".into(),
            subject: format!("model/{model}"),
            time: now,
        });
    }

    /// Takes the breaker's journaled state after a restart.
    pub(super) fn resume_breaker(&mut self, journaled: &str) {
        match serde_json::from_str::<BreakerState>(journaled) {
            Ok(state) => {
                self.decider.model_held = state.open;
                self.watch.resume(state);
            }
            Err(e) => {
                tracing::error!(error = %e, "the journaled model breaker state is unreadable: starting closed")
            }
        }
    }

    /// Puts `checkpoint` in place of the model (a rollback, or a model
    /// trained elsewhere); journaled with who did it and a checkpoint.
    pub fn load_model(
        &mut self,
        checkpoint: &Checkpoint,
        actor: &Actor,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<String, CheckpointError> {
        let model = Model::restore(checkpoint)?;
        let before = self.decider.model_version();
        self.decider.model = model;
        let after = self.decider.model_version();
        self.outbox.records.push(Record::Audit(AuditEntry {
            kind: "model".into(),
            ref_id: after.clone(),
            decision_id: String::new(),
            time: now,
            body: json!({
                "actor": actor.name, "role": actor.role.as_str(), "why": why,
                "before": before, "after": after,
            }),
        }));
        tracing::info!(actor = %actor.name, %before, %after, why, "model replaced");
        self.checkpoint();
        Ok(after)
    }

    /// The model as a checkpoint (what `load_model` takes back).
    pub fn model_checkpoint(&self) -> Checkpoint {
        self.decider.model.checkpoint()
    }
}
