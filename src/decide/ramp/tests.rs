//! The ramp's plan, arms, gates and state machine, by hand.

use super::*;
use crate::decide::pick::Pick;
use crate::decide::{Mode, OptionScore};
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
