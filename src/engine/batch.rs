//! Batching for the journal: what a turn produced is handed to the
//! journal as one batch at `flush` (flow and entity states once each,
//! events appended), with the engine's position in the intake log; webhook
//! steps are taken only once it is durable.

use super::{Engine, EngineError, EngineEvent, INTAKE_CURSOR_KEY};
use crate::journal::{Commit, Record};

impl Engine {
    /// Publishes flow events as they happen and keeps them, by flow, for the
    /// next flush. Flow and entity snapshots are taken only at the flush, so
    /// a flow that changes many times between flushes is written once.
    pub(super) fn drain_flow_changes(&mut self) {
        for event in self.flows.take_events() {
            self.notice_flow_event(&event);
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

    /// Steps to POST to webhook executors. Take them after a flush has
    /// committed, so nothing is sent that the journal does not know.
    pub fn take_dispatches(&mut self) -> Vec<crate::flow::Dispatch> {
        self.flows.take_dispatches()
    }
}
