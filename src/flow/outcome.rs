//! How a flow ended, derived from what happened to it (no signal needed):
//! its work done by its deadline or late, failed, withdrawn by a person,
//! or over at the source before anyone acted; set when the flow ends,
//! journaled with it, and counted (`metrics`: work outcomes). One done in
//! time becomes `reopened` if its alert fires again within its type's
//! `reopen` span (`engine::alerts`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its work got done (or its incident resolved) by its deadline.
    WithinSla,
    /// Done, or resolved, after its deadline.
    Late,
    /// Its work failed (compensated or not).
    Failed,
    /// A person rejected the proposal: no work was done.
    Withdrawn,
    /// Its alert resolved at the source while it waited for a person.
    ResolvedAtSource,
    /// Done in time, but its alert fired again within the type's `reopen`
    /// span of its resolution.
    Reopened,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::WithinSla => "within SLA",
            Outcome::Late => "late",
            Outcome::Failed => "failed",
            Outcome::Withdrawn => "withdrawn",
            Outcome::ResolvedAtSource => "resolved at the source",
            Outcome::Reopened => "reopened",
        }
    }

    /// Whether it went well: the work done in time or not. Withdrawn and
    /// resolved-at-source flows did no work to judge (none).
    pub fn good(self) -> Option<bool> {
        match self {
            Outcome::WithinSla => Some(true),
            Outcome::Late | Outcome::Failed | Outcome::Reopened => Some(false),
            Outcome::Withdrawn | Outcome::ResolvedAtSource => None,
        }
    }

    /// A finished flow's outcome: done within its deadline or not, or
    /// failed.
    pub fn of_finished(state: super::FlowState, within_deadline: bool) -> Outcome {
        match (state, within_deadline) {
            (super::FlowState::Done, true) => Outcome::WithinSla,
            (super::FlowState::Done, false) => Outcome::Late,
            _ => Outcome::Failed,
        }
    }
}
