//! Notices: what people outside the console must hear of (an escalation,
//! an SLA breached, a signal quarantined, an executor's breaker tripped),
//! collected by the engine when asked to (`EngineConfig::notices`) and sent
//! after the turn's commit by whoever hosts it (`intake::notify`).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Engine;
use crate::flow::{FlowEvent, FlowEventKind};
use crate::review::{Action, ReviewAction, ReviewItem};

/// Notices held between two turns, at most; beyond, the oldest are dropped
/// (and counted): a storm must not grow the engine's memory.
const HELD: usize = 4096;

/// One thing to tell people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// escalation, sla_breach, quarantine or breaker (`intake::notify::NOTIFY_EVENTS`).
    pub event: &'static str,
    /// One line, for a chat message.
    pub text: String,
    /// What it is about: a review item, a flow, a signal, an executor.
    pub reference: String,
    pub subject: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
}

/// Notices collected for the host to send, when it sends them.
pub(super) struct Notices {
    /// Whether notices are collected at all (`EngineConfig::notices`).
    collect: bool,
    held: VecDeque<Notice>,
    /// Dropped because nobody took them in time.
    dropped: u64,
}

impl Notices {
    pub fn new(collect: bool) -> Notices {
        Notices {
            collect,
            held: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Keeps `notice`, dropping the oldest past `HELD`.
    pub fn push(&mut self, notice: Notice) {
        if !self.collect {
            return;
        }
        if self.held.len() >= HELD {
            self.held.pop_front();
            self.dropped += 1;
        }
        self.held.push_back(notice);
    }
}

impl Engine {
    /// Notices since the last call, oldest first.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.outbox.notices.held.drain(..).collect()
    }

    /// Notices dropped because nobody took them in time.
    pub fn notices_dropped(&self) -> u64 {
        self.outbox.notices.dropped
    }

    pub(super) fn notice(&mut self, notice: Notice) {
        self.outbox.notices.push(notice);
    }

    /// A flow whose SLA is at risk or past.
    pub(super) fn notice_flow_event(&mut self, event: &FlowEvent) {
        let (name, what) = match event.kind {
            FlowEventKind::SlaWarning => ("escalation", "SLA at risk"),
            FlowEventKind::SlaBreached => ("sla_breach", "SLA breached"),
            _ => return,
        };
        let Some(flow) = self.flows.get(&event.flow_id) else {
            return;
        };
        let text = format!(
            "{what}: flow {} ({} via {}) on {}, deadline {}: {}",
            flow.id,
            flow.signal_type,
            flow.option,
            flow.subject,
            flow.deadline.format("%Y-%m-%d %H:%M UTC"),
            event.detail
        );
        let notice = Notice {
            event: name,
            text,
            reference: flow.id.clone(),
            subject: flow.subject.clone(),
            time: event.time,
        };
        self.notice(notice);
    }

    /// A review item escalated, or left unanswered past its deadline.
    pub(super) fn notice_review(&mut self, item: &ReviewItem, record: &ReviewAction) {
        let (name, text) = match &record.action {
            Action::Escalate => (
                "escalation",
                format!(
                    "review {} escalated by {}: {} on {} (proposal `{}`), needs {}",
                    item.id,
                    record.actor.name,
                    item.decision.signal_type,
                    item.decision.subject,
                    item.decision.proposal,
                    item.required_role.as_str()
                ),
            ),
            Action::SafeDefault { option } => (
                "sla_breach",
                format!(
                    "review {} unanswered by its deadline: took the safe default `{option}` for {} on {}",
                    item.id, item.decision.signal_type, item.decision.subject
                ),
            ),
            _ => return,
        };
        self.notice(Notice {
            event: name,
            text,
            reference: item.id.clone(),
            subject: item.decision.subject.clone(),
            time: record.time,
        });
    }
}
