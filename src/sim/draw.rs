//! Common random numbers: every random draw of the simulator comes from
//! what it is about (a signal's outcome, a step's attempt, an operator's
//! moment), not from its place in one long stream.
//!
//! Two runs of the same seed under different policies (rules alone, the
//! model, apprentice mode) then draw the same luck wherever they do the
//! same thing: a signal decided alike in both gets the same outcome, a
//! step routed alike takes as long and fails alike. With one stream per
//! purpose, the first decision that differed shifted every later draw, so
//! two runs that decided identically for hours still read a point apart;
//! comparisons between policies carried that noise.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A generator for one thing to draw about: `purpose` names the kind of
/// draw ("outcome", "step"), `key` what it is about (a signal id and
/// subject, a step's flow and attempt). The same seed, purpose and key
/// always give the same generator.
pub fn about(seed: u64, purpose: &str, key: &str) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(purpose.as_bytes());
    hasher.update([0u8]);
    hasher.update(key.as_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// What a decision's luck is drawn about: its signal and subject, the
/// same in every run of the seed whatever decided it.
pub fn of_decision(decision: &crate::decide::Decision) -> String {
    format!("{}/{}", decision.signal_id, decision.subject)
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn the_same_thing_draws_the_same_and_others_differ() {
        let draw = |seed, purpose, key| about(seed, purpose, key).random::<u64>();
        assert_eq!(draw(7, "outcome", "S1"), draw(7, "outcome", "S1"));
        assert_ne!(draw(7, "outcome", "S1"), draw(7, "outcome", "S2"));
        assert_ne!(draw(7, "outcome", "S1"), draw(7, "delay", "S1"));
        assert_ne!(draw(7, "outcome", "S1"), draw(8, "outcome", "S1"));
    }
}
