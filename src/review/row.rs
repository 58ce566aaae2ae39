//! A review item as the journal keeps it, and back.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ReviewAction, ReviewItem, ReviewState};
use crate::decide::Decision;
use crate::decide::policy::{Priority, Role};
use crate::signal::Signal;

/// A review item as the journal's `reviews` table keeps it. Its decision and
/// signal are journaled once already (`audit`, `signals`), and an item is
/// rewritten at every change of state, so the row names them by id and
/// recovery joins them back (`ReviewRow::into_item`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRow {
    pub id: String,
    pub decision_id: String,
    pub signal_id: String,
    pub flow_id: String,
    pub state: ReviewState,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub created: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub escalate_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub deadline: DateTime<Utc>,
    pub priority: Priority,
    pub required_role: Role,
    #[serde(default)]
    pub level: u32,
    #[serde(default)]
    pub claimed_by: Option<String>,
    /// When the claim was made; it lapses `ReviewTiming::claim_expiry`
    /// later (a claim journaled before this was kept has none).
    #[serde(default, serialize_with = "crate::timefmt::option::serialize")]
    pub claimed_at: Option<DateTime<Utc>>,
    #[serde(default, serialize_with = "crate::timefmt::option::serialize")]
    pub snoozed_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub outcome: Option<ReviewAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<super::Advice>,
}

impl ReviewRow {
    /// Sort key for the queue: the soonest deadline, then the highest priority.
    pub fn urgency(&self) -> (DateTime<Utc>, std::cmp::Reverse<Priority>, &str) {
        (self.deadline, std::cmp::Reverse(self.priority), &self.id)
    }

    pub fn into_item(self, decision: Arc<Decision>, signal: Arc<Signal>) -> ReviewItem {
        ReviewItem {
            id: self.id,
            decision,
            signal,
            flow_id: self.flow_id,
            state: self.state,
            created: self.created,
            escalate_at: self.escalate_at,
            deadline: self.deadline,
            priority: self.priority,
            required_role: self.required_role,
            level: self.level,
            claimed_by: self.claimed_by,
            claimed_at: self.claimed_at,
            snoozed_until: self.snoozed_until,
            outcome: self.outcome,
            advice: self.advice,
        }
    }
}

impl ReviewItem {
    /// The item as its journal row.
    pub fn stored(&self) -> ReviewRow {
        ReviewRow {
            id: self.id.clone(),
            decision_id: self.decision.id.clone(),
            signal_id: self.signal.id.clone(),
            flow_id: self.flow_id.clone(),
            state: self.state,
            created: self.created,
            escalate_at: self.escalate_at,
            deadline: self.deadline,
            priority: self.priority,
            required_role: self.required_role,
            level: self.level,
            claimed_by: self.claimed_by.clone(),
            claimed_at: self.claimed_at,
            snoozed_until: self.snoozed_until,
            outcome: self.outcome.clone(),
            advice: self.advice.clone(),
        }
    }
}
