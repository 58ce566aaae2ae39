//! Recovery: a restart puts back what was in flight (entities, flows,
//! review items, the model, metrics, open alerts, quarantine) from the
//! journal, and decides what was journaled but never decided.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError, INTAKE_CURSOR_KEY, quarantine, shared_model};
use crate::decide::model::{Checkpoint, Model};
use crate::flow::{StepState, route};
use crate::journal::read;
use crate::metrics::Metrics;

impl Engine {
    pub(super) fn recover(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let mut recovered = read::recover(&self.dir)?;
        let mut unreadable = std::mem::take(&mut recovered.unreadable);
        for (key, body) in recovered.entities {
            if body.is_null() {
                continue;
            }
            let raw = body.to_string();
            if let Err(e) = self.context.restore(&key, body) {
                unreadable.push(read::Unreadable {
                    table: "entities",
                    key,
                    error: e.to_string(),
                    raw,
                    signal: None,
                });
            }
        }
        if let Some(text) = &recovered.checkpoint {
            let restored = serde_json::from_str::<Checkpoint>(text)
                .map_err(|e| e.to_string())
                .and_then(|c| Model::restore(&c).map_err(|e| e.to_string()));
            match restored {
                Ok(model) => self.decider.model = model,
                // The model starts afresh from the feedback after it.
                Err(error) => unreadable.push(read::Unreadable {
                    table: "checkpoints",
                    key: "last".into(),
                    error,
                    raw: text.clone(),
                    signal: None,
                }),
            }
        }
        self.restore_verdicts(std::mem::take(&mut recovered.verdicts), &mut unreadable);
        self.await_due_again(std::mem::take(&mut recovered.labels_due), &mut unreadable);
        self.set_aside(unreadable, now);
        self.restore_shared(recovered.meta.get(shared_model::THROUGH_KEY));
        for fb in &recovered.feedback_after_checkpoint {
            // A cluster's model learns what followed its checkpoint from
            // the model stream again, not from this journal.
            if self.decider.learning && !self.learns_shared() {
                self.decider
                    .learn(&fb.option, &fb.features, fb.label, fb.importance);
            }
        }
        self.learning.feedback = recovered.feedback_count;
        self.learning.checkpoint_at =
            recovered.feedback_count - recovered.feedback_after_checkpoint.len() as i64;
        self.await_again(&recovered.active_flows, &recovered.awaiting);
        for flow in recovered.active_flows {
            self.flows.restore(flow);
        }
        for id in &recovered.flows_by_step {
            self.flows.journaled_by_step(id);
        }
        self.recount_loads();
        self.flows.redispatch_waiting();
        if let Some(last) = &recovered.last_page {
            self.paging.book.taken(last);
        }
        self.restore_pages(std::mem::take(&mut recovered.open_pages));
        for item in recovered.open_reviews {
            self.reviews.restore(item);
        }
        let next_id = recovered.meta.get("next_id").and_then(|v| v.parse().ok());
        self.taken
            .restore(std::mem::take(&mut recovered.seen_signals), next_id);
        self.quarantine = quarantine::QuarantineBook::restore(recovered.quarantined);
        self.alerts.opened_by = recovered.alert_flows.into_iter().collect();
        let silences = std::mem::take(&mut recovered.silences);
        self.restore_noise(&recovered.meta, silences);
        let last_incident = recovered.last_incident.take();
        self.restore_incidents(
            std::mem::take(&mut recovered.open_incidents),
            last_incident.as_deref(),
        );
        self.outbox.intake_cursor = recovered.meta.get(INTAKE_CURSOR_KEY).cloned();
        if let Some(state) = recovered.meta.get(super::watch::BREAKER_KEY) {
            self.resume_breaker(state);
        }
        if let Some(state) = recovered.meta.get(super::apprentice::APPRENTICE_KEY) {
            self.resume_apprentice(state);
        }
        if let Some(state) = recovered.meta.get(super::ramp::RAMP_KEY) {
            self.resume_ramp(state, now);
        }
        self.outbox.last_event_id = recovered
            .meta
            .get(super::EVENT_ID_KEY)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
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
            feedback = self.learning.feedback,
            "resumed from journal"
        );
        Ok(())
    }

    /// What holds alerts back: inhibitions, flapping hold-offs, silences.
    fn restore_noise(
        &mut self,
        meta: &std::collections::HashMap<String, String>,
        silences: Vec<crate::noise::Silence>,
    ) {
        if let Some(book) = meta
            .get(crate::noise::inhibit::INHIBITORS_KEY)
            .and_then(|v| serde_json::from_str(v).ok())
        {
            self.alerts.inhibit = book;
        }
        if let Some(flapping) = meta.get(crate::noise::holdoff::FLAPPING_KEY) {
            self.alerts.hold.restore(flapping);
        }
        for s in silences {
            self.alerts.silences.restore(s);
        }
    }

    /// The decisions of the flows in flight wait for their outcomes again,
    /// as when they settled.
    fn await_again(&mut self, flows: &[crate::flow::Flow], decisions: &[crate::decide::Decision]) {
        let running: std::collections::HashMap<&str, (&str, DateTime<Utc>)> = flows
            .iter()
            .map(|f| (f.decision_id.as_str(), (f.option.as_str(), f.created)))
            .collect();
        for decision in decisions {
            // One already waiting out its horizon keeps that (and its row).
            if let Some(&(option, since)) = running.get(decision.id.as_str())
                && !self.learning.awaiting.contains_key(&decision.id)
            {
                self.awaits(decision, option, since);
            }
        }
    }

    /// The finished flows whose outcome still waits on a later signal; a
    /// row that does not read is set aside.
    fn restore_verdicts(
        &mut self,
        rows: Vec<(String, String)>,
        unreadable: &mut Vec<read::Unreadable>,
    ) {
        for (key, body) in rows {
            if let Err(error) = self.verdicts.restore(key.clone(), &body) {
                unreadable.push(read::Unreadable {
                    table: "verdicts",
                    key,
                    error,
                    raw: body,
                    signal: None,
                });
            }
        }
    }

    /// Journals each record a restart could not read in `set_aside`, with
    /// its text, and holds an unreadable signal in quarantine; `check`
    /// and the quarantine list name them.
    fn set_aside(&mut self, unreadable: Vec<read::Unreadable>, now: DateTime<Utc>) {
        for record in unreadable {
            tracing::error!(
                table = record.table,
                key = %record.key,
                error = %record.error,
                "a journal record cannot be read; set aside"
            );
            if let Some(parts) = record.signal.clone() {
                self.hold_unreadable(parts, &record.error, now);
            }
            self.outbox
                .records
                .push(crate::journal::Record::SetAside(crate::journal::SetAside {
                    table: record.table.to_string(),
                    key: record.key,
                    error: record.error,
                    raw: record.raw,
                    time: now,
                }));
        }
    }

    /// Team and agent loads follow from the steps people are working on.
    pub(super) fn recount_loads(&mut self) {
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
}
