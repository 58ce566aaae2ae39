//! Which arm takes a decision (a hash of its id against the coverage), and
//! what a ramped decision keeps: both policies' chance of what was done.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::super::OptionScore;
use super::super::pick::Pick;

/// Which policy took a ramped decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Live,
    Candidate,
}

/// The arm a decision falls in: a hash of the ramp and the decision id,
/// as a share in [0, 1), against the coverage. The same decision falls in
/// the same arm however often it is asked.
pub fn arm_for(ramp: &str, decision_id: &str, coverage: f64) -> Arm {
    let digest = Sha256::new()
        .chain_update(ramp.as_bytes())
        .chain_update([0u8])
        .chain_update(decision_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let share = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    if share < coverage {
        Arm::Candidate
    } else {
        Arm::Live
    }
}

/// What a decision taken during a ramp keeps of it: the arm that took it
/// and each policy's chance of the action taken (its option, and whether it
/// went to a person).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RampMark {
    pub ramp: String,
    pub step: usize,
    /// The batch its step reads it in; 0 when taken between batches (the
    /// step's batch was full), read by none.
    #[serde(default)]
    pub batch: u32,
    pub arm: Arm,
    pub coverage: f64,
    pub candidate: f64,
    pub live: f64,
}

impl RampMark {
    /// The logging policy's chance of the action: the mixture.
    pub fn logged(&self) -> f64 {
        self.coverage * self.candidate + (1.0 - self.coverage) * self.live
    }

    /// Each policy's chance of what was done over the mixture's: the
    /// importance weights of the candidate and of the live policy.
    pub(super) fn weights(&self) -> (f64, f64) {
        let logged = self.logged();
        if logged > 0.0 {
            (self.candidate / logged, self.live / logged)
        } else {
            (0.0, 0.0)
        }
    }
}

/// The chance that a policy whose best pick (not exploring) is `pick`,
/// over `options` as it allows them, takes `option`, to a person
/// (`review`) or not. A pick that explores spreads `pick.spread` evenly
/// over the allowed options; any other is certain.
pub fn chance(pick: &Pick, options: &[OptionScore], option: &str, review: bool) -> f64 {
    let to_person = pick.mode == crate::decide::Mode::Review;
    if to_person || review || pick.spread <= 0.0 {
        return f64::from(u8::from(to_person == review && pick.proposal == option));
    }
    let allowed = options.iter().filter(|o| o.allowed).count();
    if allowed == 0 || !options.iter().any(|o| o.allowed && o.option == option) {
        return 0.0;
    }
    let even = pick.spread / allowed as f64;
    if pick.proposal == option {
        1.0 - pick.spread + even
    } else {
        even
    }
}
