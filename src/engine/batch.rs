//! Batching for the journal: what a turn produced is handed to the
//! journal as one batch at `flush` (flow and entity states once each,
//! events appended), with the engine's position in the intake log; webhook
//! steps are taken only once it is durable.

use std::collections::{BTreeMap, VecDeque};

use super::notices::Notices;
use super::{
    EVENT_ID_KEY, Engine, EngineError, EngineEvent, INTAKE_CURSOR_KEY, INTAKE_CURSOR_SIGNAL_KEY,
};
use crate::flow::FlowEvent;
use crate::journal::{Commit, Record};
use crate::review::ReviewItem;

/// What the engine produced since the last flush: records for the
/// journal, flow events and review items to write once each, and the
/// events and notices its host hands on once they are durable.
pub(super) struct Outbox {
    pub records: Vec<Record>,
    /// Flow events by flow, written with the flow's state at the flush.
    pub flow_events: BTreeMap<String, Vec<FlowEvent>>,
    /// Review items changed since the last flush, latest state each: an item
    /// opened, escalated and settled between two flushes is written once.
    pub reviews: BTreeMap<String, ReviewItem>,
    pub events: VecDeque<EngineEvent>,
    /// Whether events are kept for subscribers (`EngineConfig::publish`).
    pub publish: bool,
    /// The last id given to a published event, as journaled.
    pub last_event_id: u64,
    /// How far the engine has decided from the intake log
    /// (`intake::log::CURSOR_KEY`), as journaled.
    pub intake_cursor: Option<String>,
    pub notices: Notices,
    /// When the figures (`Metrics`) were last journaled by a flush.
    pub metrics_written: Option<std::time::Instant>,
}

/// How often a busy engine journals its figures between checkpoints, so a
/// restart (even after kill -9) resumes them.
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Outbox {
    /// An empty outbox; events are kept once the engine is open.
    pub fn new(collect_notices: bool) -> Outbox {
        Outbox {
            records: Vec::new(),
            flow_events: BTreeMap::new(),
            reviews: BTreeMap::new(),
            events: VecDeque::new(),
            publish: false,
            last_event_id: 0,
            intake_cursor: None,
            notices: Notices::new(collect_notices),
            metrics_written: None,
        }
    }

    /// Keeps `event` for subscribers, if they are served.
    pub fn emit(&mut self, event: EngineEvent) {
        if self.publish {
            self.events.push_back(event);
        }
    }

    /// Events since the last take, oldest first.
    pub fn take_events(&mut self) -> Vec<EngineEvent> {
        self.events.drain(..).collect()
    }

    /// Events since the last take, each with the next id; the last id is
    /// journaled with the next flush.
    pub fn take_numbered_events(&mut self) -> Vec<(u64, EngineEvent)> {
        if self.events.is_empty() {
            return Vec::new();
        }
        let first = self.last_event_id + 1;
        let numbered: Vec<(u64, EngineEvent)> = (first..).zip(self.events.drain(..)).collect();
        self.last_event_id += numbered.len() as u64;
        self.records.push(Record::Meta {
            key: EVENT_ID_KEY.into(),
            value: self.last_event_id.to_string(),
        });
        numbered
    }
}

impl Engine {
    /// Publishes flow events as they happen and keeps them, by flow, for the
    /// next flush. Flow and entity snapshots are taken only at the flush, so
    /// a flow that changes many times between flushes is written once.
    pub(super) fn drain_flow_changes(&mut self) {
        let events = self.flows.take_events();
        self.bound_tasks(&events);
        for event in events {
            self.notice_flow_event(&event);
            self.page_for_step(&event);
            if self.outbox.publish {
                self.outbox
                    .events
                    .push_back(EngineEvent::Flow(event.clone()));
            }
            self.outbox
                .flow_events
                .entry(event.flow_id.clone())
                .or_default()
                .push(event);
        }
    }

    /// Where the engine is in the intake log, as the journal last recorded.
    pub fn intake_cursor(&self) -> Option<&str> {
        self.outbox.intake_cursor.as_deref()
    }

    /// Records the engine's position in the intake log with the next flush,
    /// in the same commit as the decisions of the signals read up to it,
    /// and the identity of the signal read there when it is known.
    pub fn note_intake_cursor(&mut self, cursor: String, signal: Option<u128>) {
        if let Some(identity) = signal {
            self.outbox.records.push(Record::Meta {
                key: INTAKE_CURSOR_SIGNAL_KEY.into(),
                value: format!("{cursor} {identity:032x}"),
            });
        }
        self.outbox.records.push(Record::Meta {
            key: INTAKE_CURSOR_KEY.into(),
            value: cursor.clone(),
        });
        self.outbox.intake_cursor = Some(cursor);
    }

    /// Hands everything since the last flush to the journal as one batch.
    /// Wait on the returned `Commit` before acknowledging its signals.
    pub fn flush(&mut self) -> Result<Commit, EngineError> {
        self.drain_flow_changes();
        let dirty = self.flows.take_changed();
        let mut records = Vec::with_capacity(
            self.outbox.records.len()
                + dirty.len()
                + self.outbox.flow_events.len()
                + self.outbox.reviews.len()
                + self.context.dirty_count()
                + 1,
        );
        records.append(&mut self.outbox.records);
        if self.outbox.publish {
            for change in &dirty {
                let flow = match change.steps {
                    None => change.flow.clone(),
                    Some(_) => match self.flows.get(&change.flow.id) {
                        Some(f) => f.clone(),
                        None => continue,
                    },
                };
                self.outbox
                    .events
                    .push_back(EngineEvent::FlowChanged(Box::new(flow)));
            }
        }
        let mut events = std::mem::take(&mut self.outbox.flow_events);
        records.extend(dirty.into_iter().map(|change| Record::Flow {
            events: events.remove(&change.flow.id).unwrap_or_default(),
            flow: Box::new(change.flow),
            steps: change.steps,
        }));
        records.extend(events.into_values().map(Record::FlowEvents));
        records.extend(self.page_records());
        records.extend(self.incident_records());
        records.extend(self.silence_records());
        records.extend(self.verdicts.take_changed());
        let reviews = std::mem::take(&mut self.outbox.reviews);
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
                value: self.taken.next_id().to_string(),
            });
            let due = self
                .outbox
                .metrics_written
                .is_none_or(|t| t.elapsed() >= METRICS_EVERY);
            if due && let Ok(value) = serde_json::to_string(&self.metrics) {
                records.push(Record::Meta {
                    key: "metrics".into(),
                    value,
                });
                self.outbox.metrics_written = Some(std::time::Instant::now());
            }
        }
        Ok(self.journal.submit(records)?)
    }

    /// Steps to POST to webhook executors. Take them after a flush has
    /// committed, so nothing is sent that the journal does not know.
    pub fn take_dispatches(&mut self) -> Vec<crate::flow::Dispatch> {
        self.flows.take_dispatches()
    }
}
