//! A guarded ramp: a candidate policy takes a growing share of the decisions
//! of some classes (steps of coverage), each step held until enough of its
//! decisions have outcomes and then gated on three readings: the override
//! rate of its arm against the live policy's, the within-SLA rate of its arm
//! against the live policy's, and the lower bound of an off-policy estimate
//! of its value against the live policy's. A failing gate rolls back, an
//! inconclusive one pauses for a lead, and after the last step the
//! candidate is promoted. Pure: the decider assigns arms and marks
//! decisions (`RampMark`), the engine feeds outcomes and answers in and
//! carries out what this says.
//!
//! Which arm decides is drawn per decision from a hash of its id, so the
//! logging policy of a ramped decision is the mixture of the two: the
//! candidate with chance `coverage`, the live policy otherwise. Each
//! decision keeps both policies' chance of the action taken (option, and
//! whether it went to a person), and the mixture is its propensity. Each
//! policy's value is then estimated over every ramped outcome, whichever
//! arm took it, weighting each by that policy's chance of what was done
//! over the mixture's (self-normalised, `StepTally::difference`): where
//! both policies would have done the same the weights are equal and the
//! decision adds to both alike, so a candidate that changes little is
//! judged on what it changes, and the policy against itself reads exactly
//! no difference.

mod arms;
mod gates;
mod machine;
mod plan;
mod tally;
#[cfg(test)]
mod tests;

pub use arms::{Arm, RampMark, arm_for, chance};
pub use gates::{GateReading, StepReading, Verdict, evaluate};
pub use machine::{LeadCall, Ramp, RampOver, RampState, Status, StepRecord, classes_text};
pub use plan::{Gates, RampError, RampPlan, covers};
pub use tally::{ArmTally, StepTally};
