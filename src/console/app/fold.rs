//! What the engine publishes, folded into the console's own state.

use std::sync::Arc;

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::super::feed::{Pending, ReviewChange};
use super::super::link::{Link, LinkState, Update};
use super::{
    App, AuditRow, ChangeRow, Effect, FlowRow, MAX_CHANGES, MAX_DECISIONS, MAX_FLOWS, MAX_SIGNALS,
    SignalRow, View,
};
use crate::decide::Decision;
use crate::engine::EngineEvent;
use crate::flow::Flow;
use crate::signal::Signal;

impl App {
    /// Folds one update into the console's own state.
    pub(super) fn apply(&mut self, update: Update) {
        self.fold_for(&mut Pending::of(update), None);
    }

    /// Folds what was published since the last pass, until `until` if one
    /// is given: true once all of it is folded. A storm's pending state is
    /// bounded by what the tables keep; what is left waits for the next
    /// pass, after the keys and a frame, and is folded before the next one
    /// is taken.
    pub fn fold_for(&mut self, p: &mut Pending, until: Option<Instant>) -> bool {
        self.dirty = true;
        let done = self.fold_rows(p, until);
        self.sort_reviews();
        if !done {
            return false;
        }
        if let Some(status) = p.status.take() {
            self.queue_depth.push_back(status.open_reviews as u64);
            if self.queue_depth.len() > 120 {
                self.queue_depth.pop_front();
            }
            self.status = Some(*status);
        }
        if let Some(link) = p.link.take() {
            self.apply_link(link);
        }
        if let Some(rtt) = p.rtt.take()
            && let Some(link) = &mut self.link
        {
            link.rtt = Some(rtt);
        }
        if let Some(e) = p.failed.take() {
            self.status_line = Some((format!("engine stopped: {e}"), true));
            self.engine_error = Some(e);
        }
        true
    }

    /// The tables' part of `fold_for`, in the order things happened: the
    /// snapshot, signals, decisions, review items, flows, notices. False if
    /// `until` came first.
    fn fold_rows(&mut self, p: &mut Pending, until: Option<Instant>) -> bool {
        let mut n = 0u32;
        let mut over = || {
            n = n.wrapping_add(1);
            n.is_multiple_of(128) && until.is_some_and(|t| Instant::now() >= t)
        };
        if let Some(state) = p.snapshot.take() {
            // What the server holds now replaces the queue; flows and
            // figures are brought up to date.
            self.reviews.clear();
            for item in state.reviews {
                self.reviews.insert(item.id.clone(), Box::new(item));
            }
            self.order_rebuild = true;
            let reviews = &self.reviews;
            self.marked.retain(|id| reviews.contains_key(id));
            for flow in &state.flows {
                self.upsert_flow(flow);
            }
            self.status = Some(state.overview);
        }
        for (first, n) in std::mem::take(&mut p.signal_minutes) {
            self.count_signals(first, n);
        }
        let selected = (self.view == View::Review && !p.reviews.is_empty())
            .then(|| self.selected_review().map(|i| i.id.clone()))
            .flatten();
        let done = self.drain(&mut p.signals, &mut over, |a, (s, d)| a.push_signal(s, d))
            && self.drain(&mut p.decisions, &mut over, |a, d| a.push_decision(&d))
            && self.drain(&mut p.reviews, &mut over, |a, c| {
                a.apply_review(c, selected.as_deref())
            })
            && self.drain(&mut p.flows, &mut over, |a, f| a.upsert_flow(&f));
        if !done {
            return false;
        }
        for notice in std::mem::take(&mut p.notices) {
            self.apply_notice(notice);
        }
        true
    }

    /// Folds `queue` from its front with `fold` until it is empty (true) or
    /// `over` says the pass's time is up (false).
    fn drain<T>(
        &mut self,
        queue: &mut std::collections::VecDeque<T>,
        over: &mut impl FnMut() -> bool,
        mut fold: impl FnMut(&mut App, T),
    ) -> bool {
        while let Some(x) = queue.pop_front() {
            fold(self, x);
            if over() {
                return false;
            }
        }
        true
    }

    fn apply_link(&mut self, link: Link) {
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

    /// Signals per minute of signal time, oldest first.
    fn count_signals(&mut self, first: DateTime<Utc>, n: u64) {
        let minute = first.timestamp() / 60;
        match self.rate_minute {
            Some(m) if m.timestamp() / 60 == minute => {
                if let Some(last) = self.signal_rate.back_mut() {
                    *last += n;
                }
            }
            _ => {
                self.rate_minute = Some(first);
                self.signal_rate.push_back(n);
                if self.signal_rate.len() > 120 {
                    self.signal_rate.pop_front();
                }
            }
        }
    }

    fn push_signal(&mut self, signal: Arc<Signal>, duplicate: bool) {
        self.signals.push_front(signal_row(signal, duplicate));
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

    /// A review item's latest state: opened, claimed, or settled.
    fn apply_review(&mut self, change: ReviewChange, selected: Option<&str>) {
        let ReviewChange {
            item,
            action,
            opened,
        } = change;
        if opened {
            self.count_queue_flow(item.created, 1, 0);
        }
        if let Some(action) = &action {
            // The item under the cursor, settled by someone else: say so.
            if item.outcome.is_some()
                && selected == Some(item.id.as_str())
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
            let answer = match item.chosen() {
                Some(o) => format!("{} → {o}", action.action.name()),
                None => action.action.name().to_string(),
            };
            if let Some(row) = self.changes.iter_mut().find(|c| c.id == item.decision.id) {
                row.person = match item.chosen() {
                    Some(o) => format!("{} → {o}", action.actor.name),
                    None => format!("{}: {}", action.actor.name, action.action.name()),
                };
            }
            if let Some(row) = self.audit_row_mut(&item.decision.id) {
                row.actor = action.actor.name.clone();
                row.outcome = answer;
            }
        }
        if let Some(old) = self.reviews.get(&item.id) {
            self.order_out.push(super::review_key(old));
        }
        if item.outcome.is_some() {
            if let Some(action) = &action
                && (opened || self.reviews.contains_key(&item.id))
            {
                self.count_queue_flow(action.time, 0, 1);
            }
            self.reviews.remove(&item.id);
            self.marked.remove(&item.id);
        } else {
            self.order_in.push(super::review_key(&item));
            self.reviews.insert(item.id.clone(), item);
        }
    }

    fn apply_notice(&mut self, notice: EngineEvent) {
        match notice {
            EngineEvent::Quarantined(q) if q.state == crate::journal::QuarantineState::Held => {
                self.status_line = Some((
                    format!(
                        "signal {} ({}) quarantined: {} — see :health",
                        q.signal_id, q.kind, q.error
                    ),
                    true,
                ));
            }
            EngineEvent::Reloaded(v) => {
                self.status_line = Some((
                    format!("deployment reloaded: policy {}, {}", v.policy, v.rules),
                    false,
                ));
            }
            _ => {}
        }
    }

    /// Asks for the page of history before the oldest decision shown, when
    /// the selection has reached the last row of Audit or Signals (once at
    /// a time, until the journal's beginning, within what the views keep).
    /// `rows`: how many the view shows.
    pub(super) fn older_wanted(&mut self, rows: usize) -> Option<Effect> {
        if !matches!(self.view, View::Audit | View::Signals)
            || self.older.asked
            || self.older.exhausted
            || self.audit.len() >= MAX_DECISIONS
        {
            return None;
        }
        let at = self.tables.get(&self.view).map_or(0, |t| t.selected);
        if rows == 0 || at + 1 < rows {
            return None;
        }
        let before = self.audit.back()?.id.clone();
        self.older.asked = true;
        self.status_line = Some((format!("reading the history before {before}…"), false));
        Some(Effect::OlderHistory { before })
    }

    /// A page of older history: its rows go below those shown, oldest last.
    pub(super) fn older(&mut self, page: Result<(Vec<EngineEvent>, bool), String>) {
        self.older.asked = false;
        let (events, more) = match page {
            Ok(page) => page,
            Err(why) => {
                self.status_line = Some((format!("history: {why}"), true));
                return;
            }
        };
        self.older.exhausted = !more;
        let mut decisions = 0;
        for event in events.into_iter().rev() {
            match event {
                EngineEvent::Signal { signal, duplicate } if self.signals.len() < MAX_SIGNALS => {
                    self.signals.push_back(signal_row(signal, duplicate));
                }
                EngineEvent::Decision(d) if self.audit.len() < MAX_DECISIONS => {
                    // Not indexed: a row this old is not updated in place.
                    self.audit.push_back(audit_row(&d));
                    decisions += 1;
                }
                _ => {}
            }
        }
        let end = if more {
            ""
        } else {
            " (the journal's beginning)"
        };
        self.status_line = Some((format!("{decisions} older decisions{end}"), false));
    }

    /// The audit row of a decision, found through the index.
    fn audit_row_mut(&mut self, decision_id: &str) -> Option<&mut AuditRow> {
        let seq = *self.audit_index.get(decision_id)?;
        let pos = self.audit_seq.checked_sub(seq + 1)?;
        self.audit.get_mut(usize::try_from(pos).ok()?)
    }

    fn push_decision(&mut self, d: &Arc<Decision>) {
        if let Some(change) = ChangeRow::of(d) {
            self.changes.push_front(change);
            self.changes.truncate(MAX_CHANGES);
        }
        self.audit.push_front(audit_row(d));
        self.audit_index.insert(d.id.clone(), self.audit_seq);
        self.audit_seq += 1;
        if self.audit.len() > MAX_DECISIONS
            && let Some(gone) = self.audit.pop_back()
        {
            self.audit_index.remove(&gone.id);
        }
    }

    pub fn upsert_flow(&mut self, flow: &Flow) {
        self.upsert_flow_row(FlowRow::from_flow(flow));
    }

    pub fn upsert_flow_row(&mut self, row: FlowRow) {
        let first = self.flow_seq - self.flow_rows.len() as u64;
        let at = self
            .flow_index
            .get(&row.id)
            .and_then(|&seq| usize::try_from(seq.checked_sub(first)?).ok());
        match at.and_then(|i| self.flow_rows.get_mut(i)) {
            Some(kept) => *kept = row,
            None => {
                self.flow_index.insert(row.id.clone(), self.flow_seq);
                self.flow_seq += 1;
                self.flow_rows.push_back(row);
                if self.flow_rows.len() > MAX_FLOWS
                    && let Some(gone) = self.flow_rows.pop_front()
                {
                    self.flow_index.remove(&gone.id);
                }
            }
        }
    }

    /// Brings the queue's order up to date with what changed since the
    /// last pass: the changed items' old places are taken out and their new
    /// ones merged in (linear in the queue, not a sort of it; a snapshot
    /// rebuilds it). The cursor follows the item it was on; if that item
    /// left, it stays where it was.
    pub fn sort_reviews(&mut self) {
        if !self.order_rebuild && self.order_in.is_empty() && self.order_out.is_empty() {
            return;
        }
        let rows = self.rows(View::Review);
        let selected = self.tables.get(&View::Review).map_or(0, |t| t.selected);
        let held = rows
            .get(selected)
            .and_then(|i| self.review_order.get(i))
            .map(|k| k.2.clone())
            .filter(|id| self.reviews.contains_key(id));
        let (mut out, mut put) = (
            std::mem::take(&mut self.order_out),
            std::mem::take(&mut self.order_in),
        );
        if std::mem::take(&mut self.order_rebuild) {
            self.review_order = self
                .reviews
                .values()
                .map(|i| super::review_key(i))
                .collect();
            self.review_order.sort_unstable();
        } else {
            out.sort_unstable();
            put.sort_unstable();
            let mut out = out.iter().peekable();
            // Each key taken out takes out one equal key.
            self.review_order.retain(|x| {
                while out.peek().is_some_and(|o| *o < x) {
                    out.next();
                }
                let gone = out.peek().is_some_and(|o| *o == x);
                if gone {
                    out.next();
                }
                !gone
            });
            // Merged into the spare buffer (its capacity kept from pass to
            // pass), then swapped in.
            let mut merged = std::mem::take(&mut self.order_spare);
            merged.clear();
            merge(&mut merged, self.review_order.drain(..), put);
            self.order_spare = std::mem::replace(&mut self.review_order, merged);
        }
        if let Some(id) = held {
            let at = self.review_order.iter().position(|k| k.2 == id);
            if let Some(pos) = at.and_then(|i| self.rows(View::Review).position(i)) {
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

/// Two sorted lists into `out`.
fn merge<T: Ord>(out: &mut Vec<T>, a: impl ExactSizeIterator<Item = T>, b: Vec<T>) {
    out.reserve(a.len() + b.len());
    let (mut a, mut b) = (a.peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
}

/// A signal's row in the Signals view.
fn signal_row(signal: Arc<Signal>, duplicate: bool) -> SignalRow {
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
    SignalRow {
        id: signal.id.clone(),
        time: signal.time,
        kind: signal.kind.clone(),
        subject: signal.subject.clone(),
        source: signal.source.clone(),
        severity: signal.severity.map(|s| s.as_str().to_string()),
        summary,
        duplicate,
        signal,
    }
}

/// A decision's row in the Audit view.
fn audit_row(d: &Decision) -> AuditRow {
    AuditRow {
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
    }
}
