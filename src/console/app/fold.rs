//! What the engine publishes, folded into the console's own state.

use std::sync::Arc;

use super::super::attach::{Link, LinkState};
use super::super::driver::Update;
use super::{App, AuditRow, FlowRow, MAX_DECISIONS, MAX_SIGNALS, SignalRow, View};
use crate::decide::Decision;
use crate::engine::EngineEvent;
use crate::flow::Flow;

impl App {
    /// Folds what the engine published into the console's own state.
    pub(super) fn apply(&mut self, update: Update) {
        self.dirty = true;
        match update {
            Update::Events(events) => {
                for e in events {
                    self.apply_event(e);
                }
                self.sort_reviews();
            }
            Update::Status(status) => {
                self.queue_depth.push_back(status.open_reviews as u64);
                if self.queue_depth.len() > 120 {
                    self.queue_depth.pop_front();
                }
                self.status = Some(*status);
            }
            Update::Failed(e) => {
                self.status_line = Some((format!("engine stopped: {e}"), true));
                self.engine_error = Some(e);
            }
            Update::Snapshot(state) => {
                // What the server holds now replaces the queue; flows and
                // figures are brought up to date.
                self.reviews.clear();
                for item in state.reviews {
                    self.reviews.insert(item.id.clone(), item);
                }
                self.reviews_changed = true;
                self.sort_reviews();
                for flow in &state.flows {
                    self.upsert_flow(flow);
                }
                self.status = Some(state.overview);
            }
            Update::Link(link) => {
                let rtt = self.link.as_ref().and_then(|l| l.rtt);
                match &link.state {
                    LinkState::Lost { why, attempt } => {
                        self.status_line = Some((
                            format!(
                                "lost {}: {why}; reconnecting (attempt {attempt}); what is shown is stale",
                                link.server
                            ),
                            true,
                        ));
                    }
                    LinkState::Connected
                        if self
                            .link
                            .as_ref()
                            .is_some_and(|l| l.state != LinkState::Connected) =>
                    {
                        self.status_line = Some((format!("connected to {}", link.server), false));
                    }
                    _ => {}
                }
                self.link = Some(Link { rtt, ..link });
            }
            Update::Rtt(rtt) => {
                if let Some(link) = &mut self.link {
                    link.rtt = Some(rtt);
                }
            }
        }
    }

    // Over 80 lines: one arm per kind of engine event.

    fn apply_event(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Signal { signal, duplicate } => {
                let minute = signal.time.timestamp() / 60;
                match self.rate_minute {
                    Some(m) if m.timestamp() / 60 == minute => {
                        if let Some(last) = self.signal_rate.back_mut() {
                            *last += 1;
                        }
                    }
                    _ => {
                        self.rate_minute = Some(signal.time);
                        self.signal_rate.push_back(1);
                        if self.signal_rate.len() > 120 {
                            self.signal_rate.pop_front();
                        }
                    }
                }
                let summary = signal
                    .data_str("text")
                    .or_else(|| signal.data_str("summary"))
                    .map(String::from)
                    .unwrap_or_else(|| match &signal.data {
                        serde_json::Value::Object(map) => map
                            .iter()
                            .take(3)
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        serde_json::Value::String(text) => text.chars().take(80).collect(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string().chars().take(80).collect(),
                    });
                let body =
                    serde_json::to_string_pretty(&signal.to_cloudevent()).unwrap_or_default();
                self.signals.push_front(SignalRow {
                    id: signal.id.clone(),
                    time: signal.time,
                    kind: signal.kind.clone(),
                    subject: signal.subject.clone(),
                    source: signal.source.clone(),
                    severity: signal.severity.map(|s| s.as_str().to_string()),
                    summary,
                    duplicate,
                    body,
                });
                if self.signals.len() > MAX_SIGNALS {
                    self.signals.pop_back();
                }
                if !self.follow && self.view == View::Signals {
                    // Keep the selected row under the cursor as rows arrive.
                    let t = self.tables.entry(View::Signals).or_default();
                    t.selected += 1;
                    t.offset += 1;
                }
            }
            EngineEvent::Decision(d) => self.push_decision(&d),
            EngineEvent::ReviewOpened(item) => {
                self.count_queue_flow(item.created, 1, 0);
                self.reviews.insert(item.id.clone(), *item);
                self.reviews_changed = true;
            }
            EngineEvent::ReviewAction { item, action } => {
                // The item under the cursor, settled by someone else: say so.
                let selected = self.selected_review().map(|i| i.id.clone());
                if self.view == View::Review
                    && item.outcome.is_some()
                    && selected.as_deref() == Some(item.id.as_str())
                    && action.actor.name != self.operator.name
                {
                    self.status_line = Some((
                        format!(
                            "{} ({}) was decided elsewhere: {} by {}",
                            item.id,
                            item.decision.subject,
                            action.action.name(),
                            action.actor.name
                        ),
                        true,
                    ));
                }
                if let Some(row) = self.audit.iter_mut().find(|r| r.id == item.decision.id) {
                    row.actor = action.actor.name.clone();
                    row.outcome = match item.chosen() {
                        Some(o) => format!("{} → {o}", action.action.name()),
                        None => action.action.name().to_string(),
                    };
                }
                if item.outcome.is_some() {
                    if self.reviews.contains_key(&item.id) {
                        self.count_queue_flow(action.time, 0, 1);
                    }
                    self.reviews.remove(&item.id);
                } else {
                    self.reviews.insert(item.id.clone(), *item);
                }
                self.reviews_changed = true;
            }
            EngineEvent::FlowChanged(flow) => self.upsert_flow(&flow),
            EngineEvent::Quarantined(q) => {
                if q.state == crate::journal::QuarantineState::Held {
                    self.status_line = Some((
                        format!(
                            "signal {} ({}) quarantined: {} — see :health",
                            q.signal_id, q.kind, q.error
                        ),
                        true,
                    ));
                }
            }
            EngineEvent::Reloaded(v) => {
                self.status_line = Some((
                    format!("deployment reloaded: policy {}, {}", v.policy, v.rules),
                    false,
                ));
            }
            EngineEvent::Flow(_)
            | EngineEvent::Settled { .. }
            | EngineEvent::FlowFinished(_)
            | EngineEvent::Learned(_) => {}
        }
    }

    fn push_decision(&mut self, d: &Arc<Decision>) {
        self.audit.push_front(AuditRow {
            id: d.id.clone(),
            time: d.time,
            kind: d.signal_type.clone(),
            subject: d.subject.clone(),
            mode: d.mode.as_str().to_string(),
            proposal: d.proposal.clone(),
            confidence: d.confidence,
            actor: if d.mode.as_str() == "review" {
                String::new()
            } else {
                "signalbox".into()
            },
            outcome: String::new(),
        });
        if self.audit.len() > MAX_DECISIONS {
            self.audit.pop_back();
        }
    }

    pub fn upsert_flow(&mut self, flow: &Flow) {
        self.upsert_flow_row(FlowRow::from_flow(flow));
    }

    pub fn upsert_flow_row(&mut self, row: FlowRow) {
        match self.flow_index.get(&row.id) {
            Some(&i) => self.flow_rows[i] = row,
            None => {
                self.flow_index.insert(row.id.clone(), self.flow_rows.len());
                self.flow_rows.push(row);
            }
        }
    }

    /// Re-sorts the queue if it changed (once per batch of events). The
    /// cursor follows the item it was on; if that item left, it stays
    /// where it was.
    pub fn sort_reviews(&mut self) {
        if !self.reviews_changed {
            return;
        }
        self.reviews_changed = false;
        let rows = self.rows(View::Review);
        let selected = self.tables.get(&View::Review).map_or(0, |t| t.selected);
        let held = rows
            .get(selected)
            .and_then(|&i| self.review_ids.get(i))
            .filter(|id| self.reviews.contains_key(*id))
            .cloned();
        let mut keyed: Vec<(_, _, &String)> = self
            .reviews
            .values()
            .map(|i| (i.deadline, std::cmp::Reverse(i.priority), &i.id))
            .collect();
        keyed.sort_unstable();
        self.review_ids = keyed.into_iter().map(|(_, _, id)| id.clone()).collect();
        if let Some(id) = held {
            let rows = self.rows(View::Review);
            if let Some(pos) = rows
                .iter()
                .position(|&i| self.review_ids.get(i) == Some(&id))
            {
                let page = self.page.max(1);
                let t = self.tables.entry(View::Review).or_default();
                t.selected = pos;
                if pos < t.offset || pos >= t.offset + page {
                    t.offset = pos.saturating_sub(page / 2);
                }
            }
        }
    }
}
