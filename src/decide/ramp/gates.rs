//! A step's three gates, read from its tally: the override rate, the
//! within-SLA rate and the lower bound of the off-policy difference.

use serde::{Deserialize, Serialize};

use super::plan::Gates;
use super::tally::{ArmTally, StepTally};

pub(super) const Z95: f64 = 1.959_964;

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
    let enough = c.settled >= gates.min_outcomes && l.settled >= gates.min_outcomes;
    let difference = tally.difference().filter(|_| enough);
    let readings = vec![
        override_gate(c, l, gates),
        sla_gate(c, l, gates, enough),
        bound_gate(tally, difference, gates),
    ];
    let verdict = readings
        .iter()
        .map(|g| g.verdict)
        .max()
        .unwrap_or(Verdict::Inconclusive);
    StepReading {
        coverage,
        tally: tally.clone(),
        difference: difference.map(|d| d.0),
        ci: difference.map(|d| d.1),
        gates: readings,
        verdict,
    }
}

/// The override gate: the candidate arm's override rate against the live
/// arm's, read from `min_answers` answers each.
fn override_gate(c: &ArmTally, l: &ArmTally, gates: &Gates) -> GateReading {
    match (c.override_rate(), l.override_rate()) {
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
    }
}

/// The within-SLA gate: fails on a significant drop past `max_sla_drop`.
fn sla_gate(c: &ArmTally, l: &ArmTally, gates: &Gates, enough: bool) -> GateReading {
    match (c.within_rate(), l.within_rate()) {
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
    }
}

/// The off-policy gate: the lower bound of the value difference.
fn bound_gate(
    tally: &StepTally,
    difference: Option<(f64, [f64; 2])>,
    gates: &Gates,
) -> GateReading {
    let (c, l) = (&tally.candidate, &tally.live);
    match difference {
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
    }
}
