//! The review queue: decisions that wait for a person.
//!
//! Every item carries its whole decision (signal, snapshot, proposal,
//! alternatives, policy hits, deadline). Actions are checked against the
//! actor's role and the item's state; a refused action changes nothing.
//! Items nobody answers escalate, then take the safe default at their final
//! deadline, and that is recorded like any other action.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::decide::Decision;
use crate::decide::policy::{Priority, Role};
use crate::signal::Signal;

pub mod budget;
mod packed;
mod queue;
mod row;
pub use queue::{KEEP_DECIDED, ReviewQueue};
pub use row::ReviewRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    pub fn new(name: &str, role: Role) -> Actor {
        Actor {
            name: name.to_string(),
            role,
        }
    }

    pub fn system() -> Actor {
        Actor::new("signalbox", Role::System)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Approve,
    Override {
        option: String,
    },
    Reject,
    Escalate,
    Snooze {
        minutes: u32,
    },
    Claim,
    /// Taken by the engine at the final deadline.
    SafeDefault {
        option: String,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Override { .. } => "override",
            Action::Reject => "reject",
            Action::Escalate => "escalate",
            Action::Snooze { .. } => "snooze",
            Action::Claim => "claim",
            Action::SafeDefault { .. } => "safe_default",
        }
    }

    /// Whether the action settles the item (as opposed to moving it along).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Action::Approve | Action::Override { .. } | Action::Reject | Action::SafeDefault { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Open,
    Escalated,
    Snoozed,
    Decided,
}

impl ReviewState {
    /// As the journal's `reviews.state` column holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Open => "open",
            ReviewState::Escalated => "escalated",
            ReviewState::Snoozed => "snoozed",
            ReviewState::Decided => "decided",
        }
    }
}

/// An operator's action as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewAction {
    pub review_id: String,
    pub decision_id: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    pub actor: Actor,
    #[serde(flatten)]
    pub action: Action,
    pub note: String,
    /// What the advisor had proposed for the item, if anything: the answer
    /// is journaled against it as against the model's proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advised: Option<String>,
}

/// An item waiting for a person. The journal and the event stream name its
/// decision and signal by id ([`ReviewItem::stored`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: String,
    pub decision: Arc<Decision>,
    pub signal: Arc<Signal>,
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
    /// The advisor's proposal, shown beside the model's (never acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
}

/// What the advisor (a language model) proposed for an item: one of the
/// options the decision allows, why, and the journal's facts it rests on.
/// It never acts; a person's answer is journaled against it and against
/// the model's proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    pub option: String,
    pub reason: String,
    /// The facts it cites, each as `name = value`.
    #[serde(default)]
    pub citations: Vec<String>,
    pub model: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    /// Recorded beside the item, not shown to people (a shadow advisor,
    /// judged against their answers before it is trusted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

impl ReviewItem {
    /// Whether the advisor is asked for this item: the signal's type is
    /// unknown, or the model was less sure than its threshold (a shadow
    /// advisor is asked for every item).
    pub fn wants_advice(&self) -> bool {
        let d = &self.decision;
        d.unrecognised || d.confidence < d.threshold
    }

    /// Who holds the item at `now`, and since when: a claim lapses
    /// `expiry` after it was made.
    pub fn holder(
        &self,
        now: DateTime<Utc>,
        expiry: Duration,
    ) -> Option<(&str, Option<DateTime<Utc>>)> {
        let who = self.claimed_by.as_deref()?;
        match self.claimed_at {
            Some(at) if at.checked_add_signed(expiry).is_some_and(|end| now >= end) => None,
            at => Some((who, at)),
        }
    }

    /// The option the item settled on, if it is settled on one.
    pub fn chosen(&self) -> Option<&str> {
        match &self.outcome.as_ref()?.action {
            Action::Approve => Some(&self.decision.proposal),
            Action::Override { option } | Action::SafeDefault { option } => Some(option),
            _ => None,
        }
    }

    /// Sort key for the queue: the soonest deadline, then the highest priority.
    pub fn urgency(&self) -> (DateTime<Utc>, std::cmp::Reverse<Priority>, &str) {
        (self.deadline, std::cmp::Reverse(self.priority), &self.id)
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum ReviewError {
    #[error("no review item `{0}`")]
    NotFound(String),
    #[error("{actor} is a viewer: viewers cannot act on review items")]
    Viewer { actor: String },
    #[error("item {id} needs a {needed}; {actor} is a {has}")]
    RoleTooLow {
        id: String,
        actor: String,
        needed: &'static str,
        has: &'static str,
    },
    #[error("item {id} was already decided: {action} by {by} at {at}")]
    AlreadyDecided {
        id: String,
        action: String,
        by: String,
        at: DateTime<Utc>,
    },
    #[error("`{option}` is not an allowed option for item {id} (allowed: {allowed})")]
    UnknownOption {
        id: String,
        option: String,
        allowed: String,
    },
    #[error("a {action} needs a note saying why")]
    NoteRequired { action: &'static str },
    #[error("override needs a different option than the proposal `{0}`; use approve")]
    OverrideSameAsProposal(String),
    #[error("item {id} cannot be read back: {error}")]
    Unreadable { id: String, error: String },
    #[error(
        "item {id} is claimed by {holder} since {since}; a lead may take it over, or wait until the claim lapses"
    )]
    ClaimedByOther {
        id: String,
        holder: String,
        since: String,
    },
}

/// How long a claim holds an item unless configured (`[review]
/// claim_expiry`).
pub const CLAIM_EXPIRY: Duration = Duration::minutes(15);

/// Settings for review timing.
#[derive(Debug, Clone, Copy)]
pub struct ReviewTiming {
    /// Share of the window after which an unanswered item escalates.
    pub escalate_at: f64,
    pub max_snooze: Duration,
    /// How long a claim holds an item for its claimant.
    pub claim_expiry: Duration,
}

impl Default for ReviewTiming {
    fn default() -> Self {
        ReviewTiming {
            escalate_at: 0.6,
            max_snooze: Duration::hours(4),
            claim_expiry: CLAIM_EXPIRY,
        }
    }
}

/// What the queue tells the engine after an action or a timer.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub item: ReviewItem,
    pub record: ReviewAction,
}
