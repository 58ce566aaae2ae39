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

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::OptionScore;
use super::pick::Pick;
use crate::playbook::Playbook;

#[derive(Debug, Error, PartialEq)]
pub enum RampError {
    #[error("{file}: cannot read: {error}")]
    Io { file: String, error: String },
    #[error("{file}: not a valid ramp: {error}")]
    Invalid { file: String, error: String },
}

/// The ramp file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RampFile {
    candidate: PathBuf,
    #[serde(default)]
    classes: Vec<String>,
    steps: Vec<f64>,
    hold: u64,
    #[serde(default = "default_settle")]
    settle: String,
    #[serde(default)]
    gates: Gates,
}

fn default_settle() -> String {
    "4h".into()
}

/// Where a step's gates pass and fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gates {
    /// Fails when the candidate arm's override rate (overrides per answer
    /// from people) exceeds the live arm's by more than this.
    pub max_override_increase: f64,
    /// Answers each arm needs before its override rate is read.
    pub min_answers: u64,
    /// Outcomes each arm needs before the within-SLA and lower-bound gates
    /// read anything (with fewer they are inconclusive).
    pub min_outcomes: u64,
    /// Fails when the candidate arm's within-SLA rate is below the live
    /// arm's by more than this, and the gap is significant (its 95 %
    /// interval excludes zero).
    pub max_sla_drop: f64,
    /// The 95 % interval of the off-policy difference (candidate − live):
    /// passes when its lower bound is at least this; fails when the
    /// candidate is worse beyond doubt (the upper bound below zero) and
    /// the difference itself is below this; inconclusive otherwise.
    pub min_lower_bound: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            max_override_increase: 0.10,
            min_answers: 20,
            min_outcomes: 20,
            max_sla_drop: 0.05,
            min_lower_bound: -0.05,
        }
    }
}

/// A ramp as planned: the candidate, what it covers and how it is gated.
#[derive(Debug, Clone, PartialEq)]
pub struct RampPlan {
    /// The candidate policy file (relative paths are taken from the ramp
    /// file's directory).
    pub candidate: PathBuf,
    /// The decision classes it ramps; empty: all of them.
    pub classes: Vec<String>,
    /// Coverage of each step, as shares in (0, 1), increasing. A last step
    /// of 100 % in the file is the promotion itself.
    pub steps: Vec<f64>,
    /// Ramped decisions (either arm) a step reads: its batch.
    pub hold: u64,
    /// How long after its batch is full a step waits for the batch's
    /// outcomes before its gates are read (sooner if every one is in).
    pub settle: chrono::Duration,
    pub gates: Gates,
}

impl RampPlan {
    pub fn load(path: &Path, playbook: &Playbook) -> Result<RampPlan, RampError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RampError::Io {
            file: file.clone(),
            error: e.to_string(),
        })?;
        let mut plan = RampPlan::parse(&text, &file, playbook)?;
        if plan.candidate.is_relative()
            && let Some(dir) = path.parent()
        {
            plan.candidate = dir.join(&plan.candidate);
        }
        Ok(plan)
    }

    pub fn parse(text: &str, file: &str, playbook: &Playbook) -> Result<RampPlan, RampError> {
        let invalid = |error: String| RampError::Invalid {
            file: file.to_string(),
            error,
        };
        let parsed: RampFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let known: std::collections::BTreeSet<&str> = playbook
            .signals
            .values()
            .map(|p| p.class.as_str())
            .chain(playbook.fanouts.values().map(|f| f.class.as_str()))
            .collect();
        for class in &parsed.classes {
            if !known.contains(class.as_str()) {
                let known: Vec<&str> = known.iter().copied().collect();
                return Err(invalid(format!(
                    "classes: no decision class `{class}` in the playbook (classes: {})",
                    known.join(", ")
                )));
            }
        }
        let mut steps = parsed.steps;
        if steps.last() == Some(&100.0) {
            steps.pop();
        }
        if steps.is_empty() {
            return Err(invalid(
                "steps: at least one step of coverage below 100 % is needed".into(),
            ));
        }
        let mut last = 0.0;
        for &step in &steps {
            if !(step > last && step < 100.0) {
                return Err(invalid(format!(
                    "steps: `{step}` is not a percentage above the step before and below 100 \
                     (steps increase; a last 100 is the promotion)"
                )));
            }
            last = step;
        }
        if parsed.hold == 0 {
            return Err(invalid("hold: must be at least 1 decision".into()));
        }
        let settle = super::policy::parse_duration(&parsed.settle)
            .map_err(|e| invalid(format!("settle: {e}")))?;
        let g = &parsed.gates;
        for (name, value) in [
            ("gates.max_override_increase", g.max_override_increase),
            ("gates.max_sla_drop", g.max_sla_drop),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(format!(
                    "{name}: `{value}` is not a share in [0, 1]"
                )));
            }
        }
        if !(-1.0..=1.0).contains(&g.min_lower_bound) {
            return Err(invalid(format!(
                "gates.min_lower_bound: `{}` is not a difference in [-1, 1]",
                g.min_lower_bound
            )));
        }
        Ok(RampPlan {
            candidate: parsed.candidate,
            classes: parsed.classes,
            steps: steps.into_iter().map(|s| s / 100.0).collect(),
            hold: parsed.hold,
            settle,
            gates: parsed.gates,
        })
    }

    pub fn covers(&self, class: &str) -> bool {
        covers(&self.classes, class)
    }
}

/// Whether a ramp over `classes` (empty: all) covers `class`.
pub fn covers(classes: &[String], class: &str) -> bool {
    classes.is_empty() || classes.iter().any(|c| c == class)
}

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
    fn weights(&self) -> (f64, f64) {
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
    let to_person = pick.mode == super::Mode::Review;
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

const Z95: f64 = 1.959_964;

/// A gate's verdict, and a step's (the worst of its gates').
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Inconclusive,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReading {
    pub gate: String,
    pub verdict: Verdict,
    /// What was read (none when there was too little to read).
    pub value: Option<f64>,
    pub limit: f64,
    pub why: String,
}

/// A step's gates as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReading {
    pub coverage: f64,
    pub tally: StepTally,
    pub difference: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub gates: Vec<GateReading>,
    pub verdict: Verdict,
}

/// Reads a step's gates.
pub fn evaluate(tally: &StepTally, gates: &Gates, coverage: f64) -> StepReading {
    let (c, l) = (&tally.candidate, &tally.live);
    let overrides = match (c.override_rate(), l.override_rate()) {
        (Some(rc), Some(rl))
            if c.answered >= gates.min_answers && l.answered >= gates.min_answers =>
        {
            let increase = rc - rl;
            let fail = increase > gates.max_override_increase;
            GateReading {
                gate: "override_rate".into(),
                verdict: if fail { Verdict::Fail } else { Verdict::Pass },
                value: Some(increase),
                limit: gates.max_override_increase,
                why: format!(
                    "candidate overridden {:.1} % of {} answers, live {:.1} % of {}: {:+.1} points ({} {:.1})",
                    rc * 100.0,
                    c.answered,
                    rl * 100.0,
                    l.answered,
                    increase * 100.0,
                    if fail { "over" } else { "within" },
                    gates.max_override_increase * 100.0
                ),
            }
        }
        _ => GateReading {
            gate: "override_rate".into(),
            verdict: Verdict::Pass,
            value: None,
            limit: gates.max_override_increase,
            why: format!(
                "not read: {} answers on the candidate, {} on the live policy (needs {} each); \
                 no sign of more overrides",
                c.answered, l.answered, gates.min_answers
            ),
        },
    };
    let enough = c.settled >= gates.min_outcomes && l.settled >= gates.min_outcomes;
    let sla = match (c.within_rate(), l.within_rate()) {
        (Some(rc), Some(rl)) if enough => {
            let drop = rl - rc;
            let se =
                (rc * (1.0 - rc) / c.settled as f64 + rl * (1.0 - rl) / l.settled as f64).sqrt();
            let significant = drop - Z95 * se > 0.0;
            let fail = drop > gates.max_sla_drop && significant;
            GateReading {
                gate: "within_sla".into(),
                verdict: if fail { Verdict::Fail } else { Verdict::Pass },
                value: Some(-drop),
                limit: -gates.max_sla_drop,
                why: format!(
                    "candidate {:.1} % within SLA of {}, live {:.1} % of {}: {:+.1} ± {:.1} points{}",
                    rc * 100.0,
                    c.settled,
                    rl * 100.0,
                    l.settled,
                    -drop * 100.0,
                    Z95 * se * 100.0,
                    if fail {
                        format!(
                            ", a significant drop past {:.1}",
                            gates.max_sla_drop * 100.0
                        )
                    } else {
                        String::new()
                    }
                ),
            }
        }
        _ => GateReading {
            gate: "within_sla".into(),
            verdict: Verdict::Inconclusive,
            value: None,
            limit: -gates.max_sla_drop,
            why: format!(
                "not read: {} outcomes on the candidate, {} on the live policy (needs {} each)",
                c.settled, l.settled, gates.min_outcomes
            ),
        },
    };
    let difference = tally.difference().filter(|_| enough);
    let bound = match difference {
        Some((d, [low, high])) => {
            let verdict = if low >= gates.min_lower_bound {
                Verdict::Pass
            } else if high < 0.0 && d < gates.min_lower_bound {
                Verdict::Fail
            } else {
                Verdict::Inconclusive
            };
            GateReading {
                gate: "lower_bound".into(),
                verdict,
                value: Some(low),
                limit: gates.min_lower_bound,
                why: format!(
                    "off-policy difference {:+.1} points, 95 % interval [{:+.1}, {:+.1}] over {} outcomes \
                     ({} where the policies' chances of what was done differ): {}",
                    d * 100.0,
                    low * 100.0,
                    high * 100.0,
                    tally.samples,
                    tally.differing,
                    match verdict {
                        Verdict::Pass => format!(
                            "lower bound at or above {:+.1}",
                            gates.min_lower_bound * 100.0
                        ),
                        Verdict::Fail => format!(
                            "worse beyond doubt, and by more than {:.1}",
                            -gates.min_lower_bound * 100.0
                        ),
                        Verdict::Inconclusive =>
                            format!("straddles {:+.1}", gates.min_lower_bound * 100.0),
                    }
                ),
            }
        }
        None => GateReading {
            gate: "lower_bound".into(),
            verdict: Verdict::Inconclusive,
            value: None,
            limit: gates.min_lower_bound,
            why: format!(
                "not read: {} outcomes ({} on the candidate, {} on the live policy; needs {} each)",
                tally.samples, c.settled, l.settled, gates.min_outcomes
            ),
        },
    };
    let gates = vec![overrides, sla, bound];
    let verdict = gates
        .iter()
        .map(|g| g.verdict)
        .max()
        .unwrap_or(Verdict::Inconclusive);
    StepReading {
        coverage,
        tally: tally.clone(),
        difference: difference.map(|d| d.0),
        ci: difference.map(|d| d.1),
        gates,
        verdict,
    }
}

/// Where a ramp stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Holding its step.
    Running,
    /// A gate was inconclusive: the candidate keeps its coverage and a lead
    /// decides.
    Paused,
    Promoted,
    RolledBack,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Promoted => "promoted",
            Status::RolledBack => "rolled_back",
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, Status::Promoted | Status::RolledBack)
    }
}

/// A step as it ended: its reading and what followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub coverage: f64,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    pub reading: StepReading,
    /// advanced, promoted, paused, rolled_back, extended.
    pub then: String,
    /// The gates, or the lead who decided.
    pub by: String,
}

/// A ramp's state: journaled at each change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RampState {
    pub id: String,
    pub candidate_file: PathBuf,
    pub candidate_version: String,
    /// The live policy when the ramp started (what a rollback keeps).
    pub live_version: String,
    pub classes: Vec<String>,
    pub steps: Vec<f64>,
    pub hold: u64,
    pub settle_seconds: i64,
    pub gates: Gates,
    /// The step being held (an index into `steps`).
    pub step: usize,
    /// The batch of decisions the step reads (from 1, one per step and
    /// per restart), and when it was full.
    pub batch: u32,
    #[serde(default, serialize_with = "crate::timefmt::option::serialize")]
    pub full: Option<DateTime<Utc>>,
    pub status: Status,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub started: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub since: DateTime<Utc>,
    /// The last change, in a sentence.
    pub reason: String,
    /// Decisions the current batch holds (grows when a lead extends it).
    pub hold_until: u64,
    pub history: Vec<StepRecord>,
}

impl RampState {
    pub fn coverage(&self) -> f64 {
        self.steps.get(self.step).copied().unwrap_or(1.0)
    }

    pub fn covers(&self, class: &str) -> bool {
        covers(&self.classes, class)
    }
}

/// What a lead may do with a ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadCall {
    /// Take the step as passed: on to the next, or promote after the last.
    Advance,
    /// Hold the step for another `hold` decisions, then read the gates again.
    Extend,
    /// Roll back now.
    RollBack,
}

impl LeadCall {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadCall::Advance => "advance",
            LeadCall::Extend => "extend",
            LeadCall::RollBack => "rollback",
        }
    }

    pub fn parse(text: &str) -> Option<LeadCall> {
        match text {
            "advance" | "continue" | "promote" => Some(LeadCall::Advance),
            "extend" | "hold" => Some(LeadCall::Extend),
            "rollback" | "roll-back" | "abort" => Some(LeadCall::RollBack),
            _ => None,
        }
    }
}

/// A ramp in progress: its state and the current step's tally.
#[derive(Debug, Clone)]
pub struct Ramp {
    pub state: RampState,
    pub tally: StepTally,
}

impl Ramp {
    pub fn new(
        plan: &RampPlan,
        candidate_version: &str,
        live_version: &str,
        now: DateTime<Utc>,
    ) -> Ramp {
        let id = format!(
            "ramp-{}",
            &crate::hash::hex_digest(
                &[candidate_version.as_bytes(), now.to_rfc3339().as_bytes()],
                4
            )
        );
        Ramp {
            state: RampState {
                id,
                candidate_file: plan.candidate.clone(),
                candidate_version: candidate_version.to_string(),
                live_version: live_version.to_string(),
                classes: plan.classes.clone(),
                steps: plan.steps.clone(),
                hold: plan.hold,
                settle_seconds: plan.settle.num_seconds(),
                gates: plan.gates.clone(),
                step: 0,
                batch: 1,
                full: None,
                status: Status::Running,
                started: now,
                since: now,
                reason: format!(
                    "started at {:.0} % of {}",
                    plan.steps.first().copied().unwrap_or(0.0) * 100.0,
                    classes_text(&plan.classes)
                ),
                hold_until: plan.hold,
                history: Vec::new(),
            },
            tally: StepTally::default(),
        }
    }

    /// A ramp journaled before a restart: its step starts a new batch (the
    /// tally of the one before is gone with the process).
    pub fn resume(mut state: RampState) -> Ramp {
        state.hold_until = state.hold;
        state.batch += 1;
        state.full = None;
        Ramp {
            state,
            tally: StepTally::default(),
        }
    }

    /// The batch decisions are read in now: none once it is full (or the
    /// ramp is over).
    pub fn filling(&self) -> Option<u32> {
        let s = &self.state;
        (s.full.is_none() && !s.status.finished()).then_some(s.batch)
    }

    /// Whether the mark is of the batch the current step reads. A step
    /// reads only what was decided in its batch, and only once the batch's
    /// outcomes are in: outcomes arrive late, and later for some actions
    /// than for others (after a person, after a slower option), so the
    /// first outcomes to arrive are not a fair sample of the decisions.
    fn counts(&self, mark: &RampMark) -> bool {
        mark.ramp == self.state.id
            && mark.batch != 0
            && mark.batch == self.state.batch
            && !self.state.status.finished()
    }

    /// A ramped decision; true when it fills the batch (decisions from now
    /// on are marked as between batches).
    pub fn decided(&mut self, mark: &RampMark, now: DateTime<Utc>) -> bool {
        if !self.counts(mark) || self.state.full.is_some() {
            return false;
        }
        self.tally.decided(mark);
        if self.tally.decisions() >= self.state.hold_until {
            self.state.full = Some(now);
            return true;
        }
        false
    }

    pub fn answered(&mut self, mark: &RampMark, overridden: bool) {
        if self.counts(mark) {
            self.tally.answered(mark, overridden);
        }
    }

    /// An outcome; the step's gates are read once its batch is full and
    /// its outcomes are in, and the change they call for is returned.
    pub fn outcome(&mut self, mark: &RampMark, within: bool, now: DateTime<Utc>) -> Option<Status> {
        if !self.counts(mark) {
            return None;
        }
        self.tally.outcome(mark, within);
        self.tick(now)
    }

    /// Reads the gates if the batch's wait is over.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<Status> {
        let full = self.state.full?;
        let waited = now - full >= chrono::Duration::seconds(self.state.settle_seconds);
        let all_in = self.tally.settled() >= self.tally.decisions();
        if self.state.status != Status::Running || !(waited || all_in) {
            return None;
        }
        let reading = evaluate(&self.tally, &self.state.gates, self.state.coverage());
        let (then, reason) = match reading.verdict {
            Verdict::Pass => (self.advance_or_promote(), "the gates passed".to_string()),
            Verdict::Fail => (Status::RolledBack, failing(&reading)),
            Verdict::Inconclusive => (Status::Paused, inconclusive(&reading)),
        };
        Some(self.change(then, reading, "gates", reason, now))
    }

    /// A lead's call on the ramp.
    pub fn call(
        &mut self,
        call: LeadCall,
        lead: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Status, String> {
        if self.state.status.finished() {
            return Err(format!(
                "the ramp {} is over ({})",
                self.state.id,
                self.state.status.as_str()
            ));
        }
        let reading = evaluate(&self.tally, &self.state.gates, self.state.coverage());
        let noted = |what: &str| {
            if note.is_empty() {
                format!("{lead} {what}")
            } else {
                format!("{lead} {what}: {note}")
            }
        };
        let then = match call {
            LeadCall::Advance => self.advance_or_promote(),
            LeadCall::RollBack => Status::RolledBack,
            LeadCall::Extend => {
                self.state.hold_until = self.tally.decisions() + self.state.hold;
                self.state.full = None;
                let reason = noted(&format!(
                    "held the step for another {} decisions",
                    self.state.hold
                ));
                self.record(reading, "extended", lead, now);
                self.state.status = Status::Running;
                self.state.since = now;
                self.state.reason = reason;
                return Ok(Status::Running);
            }
        };
        let what = match then {
            Status::Promoted => "promoted the candidate",
            Status::RolledBack => "rolled the ramp back",
            _ => "advanced the ramp",
        };
        Ok(self.change(then, reading, lead, noted(what), now))
    }

    /// The next step, or promotion after the last.
    fn advance_or_promote(&self) -> Status {
        if self.state.step + 1 < self.state.steps.len() {
            Status::Running
        } else {
            Status::Promoted
        }
    }

    fn change(
        &mut self,
        then: Status,
        reading: StepReading,
        by: &str,
        reason: String,
        now: DateTime<Utc>,
    ) -> Status {
        let label = match then {
            Status::Running => "advanced",
            other => other.as_str(),
        };
        self.record(reading, label, by, now);
        if then == Status::Running {
            self.state.step += 1;
            self.state.batch += 1;
            self.state.full = None;
            self.tally = StepTally::default();
            self.state.hold_until = self.state.hold;
        }
        self.state.status = then;
        self.state.since = now;
        self.state.reason = match then {
            Status::Running => format!("{reason}; now at {:.0} %", self.state.coverage() * 100.0),
            _ => reason,
        };
        then
    }

    fn record(&mut self, reading: StepReading, then: &str, by: &str, now: DateTime<Utc>) {
        self.state.history.push(StepRecord {
            step: self.state.step,
            coverage: self.state.coverage(),
            time: now,
            reading,
            then: then.to_string(),
            by: by.to_string(),
        });
    }
}

/// The classes a ramp covers, for a sentence.
pub fn classes_text(classes: &[String]) -> String {
    if classes.is_empty() {
        "every class".to_string()
    } else {
        format!("class {}", classes.join(", "))
    }
}

fn failing(reading: &StepReading) -> String {
    let failed: Vec<String> = reading
        .gates
        .iter()
        .filter(|g| g.verdict == Verdict::Fail)
        .map(|g| format!("{}: {}", g.gate, g.why))
        .collect();
    format!("a gate failed ({})", failed.join("; "))
}

fn inconclusive(reading: &StepReading) -> String {
    let open: Vec<String> = reading
        .gates
        .iter()
        .filter(|g| g.verdict == Verdict::Inconclusive)
        .map(|g| format!("{}: {}", g.gate, g.why))
        .collect();
    format!("inconclusive, a lead decides ({})", open.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Mode;
    use crate::playbook::steps::{DEFAULT_STEPS, StepCatalogue};
    use crate::playbook::{DEFAULT_PLAYBOOK, Playbook};

    fn playbook() -> Playbook {
        let steps = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
        Playbook::parse(DEFAULT_PLAYBOOK, "playbook", &steps).unwrap()
    }

    fn plan(text: &str) -> Result<RampPlan, RampError> {
        RampPlan::parse(text, "ramp.toml", &playbook())
    }

    #[test]
    fn a_plan_names_what_is_wrong_with_it() {
        let ok = plan("candidate = \"c.toml\"\nsteps = [5, 25, 50, 100]\nhold = 300\n").unwrap();
        assert_eq!(ok.steps, vec![0.05, 0.25, 0.5]);
        assert_eq!(ok.gates, Gates::default());
        for (text, field) in [
            ("candidate = \"c\"\nsteps = [25, 5]\nhold = 3\n", "steps"),
            ("candidate = \"c\"\nsteps = [100]\nhold = 3\n", "steps"),
            ("candidate = \"c\"\nsteps = [5]\nhold = 0\n", "hold"),
            (
                "candidate = \"c\"\nsteps = [5]\nhold = 3\nclasses = [\"nope\"]\n",
                "classes",
            ),
            (
                "candidate = \"c\"\nsteps = [5]\nhold = 3\n[gates]\nmax_sla_drop = 2.0\n",
                "max_sla_drop",
            ),
            (
                "candidate = \"c\"\nsteps = [5]\nhold = 3\ncoverage = 3\n",
                "coverage",
            ),
            ("steps = [5]\nhold = 3\n", "candidate"),
            ("candidate = \"c\"\nsteps = [5]\nhold = -3\n", "hold"),
            (
                "candidate = \"c\"\nsteps = [5]\nhold = 3\nsettle = \"soon\"\n",
                "settle",
            ),
        ] {
            let e = plan(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn arms_follow_the_coverage() {
        let n = 20_000;
        let candidate = (0..n)
            .filter(|i| arm_for("r", &format!("D{i:07}"), 0.25) == Arm::Candidate)
            .count();
        let share = candidate as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.01, "{share}");
        assert_eq!(arm_for("r", "D1", 0.0), Arm::Live);
        assert_eq!(arm_for("r", "D1", 1.0), Arm::Candidate);
    }

    fn pick(proposal: &str, mode: Mode, spread: f64) -> Pick {
        Pick {
            proposal: proposal.into(),
            confidence: 0.9,
            margin: 0.5,
            mode,
            why: String::new(),
            explored: false,
            propensity: 1.0,
            spread,
        }
    }

    fn options(names: &[(&str, bool)]) -> Vec<OptionScore> {
        names
            .iter()
            .map(|(n, allowed)| OptionScore {
                option: n.to_string(),
                score: 0.5,
                allowed: *allowed,
                forbidden_by: Vec::new(),
                evidence: None,
            })
            .collect()
    }

    #[test]
    fn chances_sum_to_one_over_the_actions() {
        let opts = options(&[("a", true), ("b", true), ("c", false)]);
        let exploring = pick("a", Mode::Auto, 0.1);
        let total: f64 = ["a", "b", "c"]
            .iter()
            .flat_map(|o| [false, true].map(|r| chance(&exploring, &opts, o, r)))
            .sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        assert!((chance(&exploring, &opts, "a", false) - 0.95).abs() < 1e-12);
        assert_eq!(chance(&exploring, &opts, "c", false), 0.0);
        let review = pick("b", Mode::Review, 0.0);
        assert_eq!(chance(&review, &opts, "b", true), 1.0);
        assert_eq!(chance(&review, &opts, "b", false), 0.0);
        let forced = pick("b", Mode::Forced, 0.0);
        assert_eq!(chance(&forced, &opts, "b", false), 1.0);
        assert_eq!(chance(&forced, &opts, "a", false), 0.0);
    }

    fn mark(arm: Arm, candidate: f64, live: f64, coverage: f64) -> RampMark {
        RampMark {
            ramp: "r".into(),
            step: 0,
            batch: 1,
            arm,
            coverage,
            candidate,
            live,
        }
    }

    /// Two deterministic policies that differ on a share of decisions; the
    /// candidate's choice works with chance `pc`, the live one's with `pl`.
    fn simulate(pc: f64, pl: f64, coverage: f64, n: u64, seed: u64) -> StepTally {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut tally = StepTally::default();
        for _ in 0..n {
            let differ = rng.random::<f64>() < 0.3;
            let arm = if rng.random::<f64>() < coverage {
                Arm::Candidate
            } else {
                Arm::Live
            };
            let (m, p) = match (differ, arm) {
                (false, _) => (mark(arm, 1.0, 1.0, coverage), 0.8),
                (true, Arm::Candidate) => (mark(arm, 1.0, 0.0, coverage), pc),
                (true, Arm::Live) => (mark(arm, 0.0, 1.0, coverage), pl),
            };
            tally.outcome(&m, rng.random::<f64>() < p);
        }
        tally
    }

    #[test]
    fn the_difference_is_estimated_without_bias_and_covered() {
        // True difference: 0.3 × (0.2 − 0.9) = −0.21.
        let mut covered = 0;
        for seed in 0..40 {
            let (d, [low, high]) = simulate(0.2, 0.9, 0.1, 3000, seed).difference().unwrap();
            assert!((d + 0.21).abs() < 0.12, "{d}");
            covered += u32::from(low <= -0.21 && -0.21 <= high);
        }
        assert!(covered >= 34, "{covered} of 40 intervals cover the truth");
        // The same policy against itself: exactly no difference.
        let same = simulate(0.9, 0.9, 0.1, 500, 1);
        let mut itself = StepTally::default();
        for _ in 0..same.samples {
            itself.outcome(&mark(Arm::Live, 1.0, 1.0, 0.1), true);
        }
        assert_eq!(itself.difference(), Some((0.0, [0.0, 0.0])));
    }

    #[test]
    fn gates_fail_a_harmful_candidate_and_pass_a_harmless_one() {
        let gates = Gates::default();
        let harmful = evaluate(&simulate(0.2, 0.9, 0.1, 2000, 7), &gates, 0.1);
        assert_eq!(harmful.verdict, Verdict::Fail, "{:#?}", harmful.gates);
        let harmless = evaluate(&simulate(0.9, 0.9, 0.1, 2000, 7), &gates, 0.1);
        assert_ne!(harmless.verdict, Verdict::Fail, "{:#?}", harmless.gates);
        let few = evaluate(&simulate(0.2, 0.9, 0.1, 20, 7), &gates, 0.1);
        assert_eq!(few.verdict, Verdict::Inconclusive, "{:#?}", few.gates);
    }

    #[test]
    fn a_ramp_reads_each_batch_once_its_outcomes_are_in() {
        let text = "candidate = \"c\"\nsteps = [10, 50]\nhold = 4\nsettle = \"1h\"\n\
                    [gates]\nmin_outcomes = 2\n";
        let plan = plan(text).unwrap();
        let t0 = chrono::Utc::now();
        let mut ramp = Ramp::new(&plan, "cand", "live", t0);
        // The policies agree: the difference is nothing.
        let same = |ramp: &Ramp, arm| {
            let mut m = mark(arm, 1.0, 1.0, ramp.state.coverage()).with_ramp(&ramp.state.id);
            (m.step, m.batch) = (ramp.state.step, ramp.state.batch);
            m
        };
        let arms = [Arm::Live, Arm::Candidate, Arm::Live, Arm::Candidate];
        let marks: Vec<RampMark> = arms.iter().map(|&a| same(&ramp, a)).collect();
        let full: Vec<bool> = marks.iter().map(|m| ramp.decided(m, t0)).collect();
        assert_eq!(
            full,
            [false, false, false, true],
            "the fourth fills the batch"
        );
        assert_eq!(ramp.filling(), None);
        // A decision between batches is not read.
        let mut between = same(&ramp, Arm::Live);
        between.batch = 0;
        assert!(!ramp.decided(&between, t0));
        assert_eq!(ramp.outcome(&between, true, t0), None);
        for m in &marks[..3] {
            assert_eq!(ramp.outcome(m, true, t0), None, "not every outcome is in");
        }
        assert_eq!(ramp.outcome(&marks[3], true, t0), Some(Status::Running));
        assert_eq!((ramp.state.step, ramp.state.coverage()), (1, 0.5));
        assert_eq!((ramp.filling(), ramp.tally.samples), (Some(2), 0));
        // A mark of another ramp, or of the batch before, is not read.
        assert_eq!(
            ramp.outcome(&mark(Arm::Live, 1.0, 1.0, 0.5), true, t0),
            None
        );
        assert_eq!(ramp.outcome(&marks[0], true, t0), None);
        assert_eq!(ramp.tally.samples, 0);

        // The policies differ; one outcome never comes: read after the
        // wait, too little to tell the two apart, paused.
        let marks: Vec<RampMark> = (0..4)
            .map(|i| {
                let (arm, c, l) = if i % 2 == 0 {
                    (Arm::Candidate, 1.0, 0.0)
                } else {
                    (Arm::Live, 0.0, 1.0)
                };
                let mut m = mark(arm, c, l, 0.5).with_ramp(&ramp.state.id);
                (m.step, m.batch) = (1, 2);
                m
            })
            .collect();
        for m in &marks {
            ramp.decided(m, t0);
        }
        for (m, within) in marks.iter().zip([true, true, false]) {
            assert_eq!(ramp.outcome(m, within, t0), None);
        }
        assert_eq!(ramp.tick(t0 + chrono::Duration::minutes(59)), None);
        assert_eq!(
            ramp.tick(t0 + chrono::Duration::hours(1)),
            Some(Status::Paused)
        );
        assert!(
            ramp.state.reason.starts_with("inconclusive"),
            "{}",
            ramp.state.reason
        );
        assert_eq!(
            ramp.call(LeadCall::Extend, "lee", "", t0),
            Ok(Status::Running)
        );
        assert_eq!((ramp.state.hold_until, ramp.filling()), (8, Some(2)));
        assert_eq!(
            ramp.call(LeadCall::Advance, "lee", "looks fine", t0),
            Ok(Status::Promoted)
        );
        assert!(
            ramp.state
                .reason
                .contains("lee promoted the candidate: looks fine")
        );
        assert!(ramp.call(LeadCall::RollBack, "lee", "", t0).is_err());
        let thens: Vec<&str> = ramp.state.history.iter().map(|h| h.then.as_str()).collect();
        assert_eq!(thens, ["advanced", "paused", "extended", "promoted"]);
        // A restart starts the step's batch again.
        let resumed = Ramp::resume(ramp.state.clone());
        assert_eq!(resumed.state.batch, 3);
    }

    impl RampMark {
        fn with_ramp(mut self, id: &str) -> RampMark {
            self.ramp = id.to_string();
            self
        }
    }
}
