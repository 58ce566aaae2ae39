//! What a step has read: each arm's answers and outcomes, and the sums of
//! the off-policy difference of the two policies' values.

use serde::{Deserialize, Serialize};

use super::arms::{Arm, RampMark};
use super::gates::Z95;

/// One arm's counts in a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmTally {
    pub decisions: u64,
    /// Decisions with an outcome, and of them within SLA.
    pub settled: u64,
    pub within: u64,
    /// Approvals and overrides from people, and of them overrides.
    pub answered: u64,
    pub overridden: u64,
}

impl ArmTally {
    pub fn within_rate(&self) -> Option<f64> {
        rate(self.within, self.settled)
    }

    pub fn override_rate(&self) -> Option<f64> {
        rate(self.overridden, self.answered)
    }
}

fn rate(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// What a step has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTally {
    pub candidate: ArmTally,
    pub live: ArmTally,
    /// Outcomes the off-policy difference is read over, and of them those
    /// where the two policies' chances of what was done differ.
    pub samples: u64,
    pub differing: u64,
    sums: Sums,
}

/// Sums over the outcomes of each policy's weight (its chance of what was
/// done over the mixture's), the weight times the reward, the squared
/// weight, the squared weight times the reward, and the two weights'
/// product, alone and times the reward (rewards are 0 or 1): all that the
/// self-normalised estimates and their variance need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Sums {
    c: f64,
    c_r: f64,
    cc: f64,
    cc_r: f64,
    l: f64,
    l_r: f64,
    ll: f64,
    ll_r: f64,
    cl: f64,
    cl_r: f64,
}

impl StepTally {
    fn arm(&mut self, arm: Arm) -> &mut ArmTally {
        match arm {
            Arm::Live => &mut self.live,
            Arm::Candidate => &mut self.candidate,
        }
    }

    pub fn decided(&mut self, mark: &RampMark) {
        self.arm(mark.arm).decisions += 1;
    }

    pub fn answered(&mut self, mark: &RampMark, overridden: bool) {
        let arm = self.arm(mark.arm);
        arm.answered += 1;
        arm.overridden += u64::from(overridden);
    }

    pub fn outcome(&mut self, mark: &RampMark, within: bool) {
        let arm = self.arm(mark.arm);
        arm.settled += 1;
        arm.within += u64::from(within);
        let (c, l) = mark.weights();
        let r = f64::from(u8::from(within));
        let s = &mut self.sums;
        s.c += c;
        s.c_r += c * r;
        s.cc += c * c;
        s.cc_r += c * c * r;
        s.l += l;
        s.l_r += l * r;
        s.ll += l * l;
        s.ll_r += l * l * r;
        s.cl += c * l;
        s.cl_r += c * l * r;
        self.samples += 1;
        self.differing += u64::from(c != l);
    }

    /// Ramped decisions, either arm.
    pub fn decisions(&self) -> u64 {
        self.candidate.decisions + self.live.decisions
    }

    /// Ramped decisions with an outcome, either arm.
    pub fn settled(&self) -> u64 {
        self.candidate.settled + self.live.settled
    }

    /// The off-policy difference (candidate − live) and its 95 % interval.
    /// Each policy's value is the self-normalised estimate over every
    /// outcome (`Σ w·r / Σ w`, with `w` its chance of what was done over the
    /// mixture's); the interval is normal, with the variance of the
    /// difference by the delta method. Self-normalised because outcomes
    /// arrive late, and later after a person than after an automated
    /// action: a step reads the outcomes it has, not every decision, and a
    /// plain mean of weighted rewards would count the missing ones as
    /// failures for whichever policy sent more to people.
    pub fn difference(&self) -> Option<(f64, [f64; 2])> {
        let s = &self.sums;
        if self.samples < 2 || s.c <= 0.0 || s.l <= 0.0 {
            return None;
        }
        let (vc, vl) = (s.c_r / s.c, s.l_r / s.l);
        // Σ w²(r − v)² and Σ w_c w_l (r − v_c)(r − v_l), with r ∈ {0, 1}.
        let own = |ww: f64, ww_r: f64, v: f64| ww_r * (1.0 - v).powi(2) + (ww - ww_r) * v * v;
        let cross = s.cl_r * (1.0 - vc) * (1.0 - vl) + (s.cl - s.cl_r) * vc * vl;
        let variance = own(s.cc, s.cc_r, vc) / (s.c * s.c) + own(s.ll, s.ll_r, vl) / (s.l * s.l)
            - 2.0 * cross / (s.c * s.l);
        let d = vc - vl;
        let half = Z95 * variance.max(0.0).sqrt();
        Some((d, [d - half, d + half]))
    }
}
