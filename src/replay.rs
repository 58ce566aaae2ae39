//! Replay: a candidate re-decides the journaled decisions, never acting,
//! and an off-policy estimate says what its value would have been (the
//! share of outcomes within SLA), held against the logged policy's.
//!
//! The candidate here is rules alone (`--model off`) under the policies and
//! playbook that were live: a decision's record keeps what rules need —
//! each option's `allowed` flag and the policy hits, whose effects name
//! `force(X)` and `require_review(ROLE)` — so the rules' pick is remade
//! exactly by the engine's own `pick`. (A changed policy file cannot be
//! replayed from the record alone: policies read the services view and the
//! recent changes, which a decision does not journal.)
//!
//! Where the candidate would send an item to a person, the person's answer
//! in the journal stands for what a person would have done; where it acts
//! alone, it takes its pick with probability one.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::decide::estimate::{Estimate, Estimator, Sample, estimate};
use crate::decide::pick::Ranked;
use crate::decide::policy::Verdict;
use crate::decide::{Decision, Mode, Rules, choice_for};
use crate::journal::read::{ChosenBy, Replayable};

/// What the candidate does with one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Redecided {
    pub proposal: String,
    pub mode: Mode,
    pub why: String,
}

/// Rules alone on a journaled decision, with the policy verdict its record
/// keeps.
pub fn rules_only(decision: &Decision, rules: &Rules) -> Redecided {
    let effects = || decision.policy_hits.iter().flat_map(|h| h.effects.iter());
    let verdict = Verdict {
        require_review: effects().any(|e| e.starts_with("require_review(")),
        forced: effects()
            .find_map(|e| Some(e.strip_prefix("force(")?.strip_suffix(')')?.to_string())),
        ..Verdict::default()
    };
    let choice = choice_for(&rules.playbook, &decision.signal_type);
    let pick = Ranked {
        options: &decision.options,
        choice: &choice,
        verdict: &verdict,
        policy: &rules.policy,
        threshold: decision.threshold,
    }
    .pick(None);
    Redecided {
        proposal: pick.proposal,
        mode: pick.mode,
        why: pick.why,
    }
}

/// One decision the candidate takes differently, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub decision_id: String,
    pub class: String,
    pub signal_type: String,
    pub subject: String,
    /// What was executed, and what chose it.
    pub logged: String,
    pub logged_by: ChosenBy,
    pub logged_mode: Mode,
    pub candidate: String,
    pub candidate_mode: Mode,
    pub why: String,
}

/// An estimate as the report gives it: no value and no interval when it is
/// inconclusive.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    pub estimator: Estimator,
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub ess: f64,
    pub support: f64,
    pub max_weight: f64,
    pub inconclusive: bool,
}

impl From<Estimate> for Reading {
    fn from(e: Estimate) -> Reading {
        let shown = !e.inconclusive;
        Reading {
            estimator: e.estimator,
            value: e.value.filter(|_| shown),
            ci: e.ci.filter(|_| shown),
            ess: e.ess,
            support: e.support,
            max_weight: e.max_weight,
            inconclusive: e.inconclusive,
        }
    }
}

/// What replaying a candidate over a journal found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub candidate: String,
    /// Settled decisions replayed.
    pub decisions: usize,
    /// Of them, those the candidate takes differently (option or mode).
    pub changed: usize,
    pub changed_by_class: BTreeMap<String, usize>,
    /// Acting alone in the journal, to a person under the candidate.
    pub auto_to_review: usize,
    pub review_to_auto: usize,
    /// `logged → candidate` option flips, counted.
    pub flips: BTreeMap<String, usize>,
    /// Up to ten changed decisions.
    pub examples: Vec<Change>,
    /// Decisions with an outcome: what the estimates are over.
    pub with_outcome: usize,
    /// The logged policy's share of outcomes within SLA.
    pub logged_value: Option<f64>,
    /// The headline estimate (doubly robust).
    pub estimate: Reading,
    pub inconclusive: bool,
    /// Every estimator.
    pub estimates: Vec<Reading>,
}

/// Examples a report keeps.
const EXAMPLES: usize = 10;

/// Replays rules alone over `journal`, estimating with bootstrap `seed`.
pub fn replay(journal: &[Replayable], rules: &Rules, seed: u64) -> Report {
    let redecided: Vec<Redecided> = journal
        .iter()
        .map(|r| rules_only(&r.decision, rules))
        .collect();
    let samples = samples(journal, &redecided);
    let logged_value = (!samples.is_empty())
        .then(|| samples.iter().map(|s| s.reward).sum::<f64>() / samples.len() as f64);
    let estimates: Vec<Reading> = [Estimator::Ips, Estimator::Snips, Estimator::Dr]
        .into_iter()
        .map(|e| estimate(e, &samples, seed).into())
        .collect();
    // The headline: doubly robust, the last.
    let headline = estimates[estimates.len() - 1].clone();
    let mut report = Report {
        candidate: "rules only (--model off), the policies and playbook that were live".into(),
        decisions: journal.len(),
        changed: 0,
        changed_by_class: BTreeMap::new(),
        auto_to_review: 0,
        review_to_auto: 0,
        flips: BTreeMap::new(),
        examples: Vec::new(),
        with_outcome: samples.len(),
        logged_value,
        inconclusive: headline.inconclusive,
        estimate: headline,
        estimates,
    };
    for (r, c) in journal.iter().zip(&redecided) {
        count_change(&mut report, r, c);
    }
    report
}

/// Whether the candidate takes `r` differently, counted into the report.
fn count_change(report: &mut Report, r: &Replayable, c: &Redecided) {
    let d = &r.decision;
    let (was_review, is_review) = (d.mode == Mode::Review, c.mode == Mode::Review);
    if c.proposal == d.proposal && was_review == is_review {
        return;
    }
    report.changed += 1;
    *report.changed_by_class.entry(d.class.clone()).or_default() += 1;
    match (was_review, is_review) {
        (false, true) => report.auto_to_review += 1,
        (true, false) => report.review_to_auto += 1,
        _ => {}
    }
    if c.proposal != d.proposal {
        *report
            .flips
            .entry(format!("{} → {}", d.proposal, c.proposal))
            .or_default() += 1;
    }
    if report.examples.len() < EXAMPLES {
        report.examples.push(Change {
            decision_id: d.id.clone(),
            class: d.class.clone(),
            signal_type: d.signal_type.clone(),
            subject: d.subject.clone(),
            logged: r.logged.option.clone(),
            logged_by: r.logged.by,
            logged_mode: d.mode,
            candidate: c.proposal.clone(),
            candidate_mode: c.mode,
            why: c.why.clone(),
        });
    }
}

/// One sample per decision with an outcome. The option the candidate
/// executes is its pick, or (where it asks a person) the answer the
/// journal holds from one; the reward model for DR is the share within SLA
/// of each class and option in the journal.
fn samples(journal: &[Replayable], redecided: &[Redecided]) -> Vec<Sample> {
    let mut tally: HashMap<(&str, &str), (f64, f64)> = HashMap::new();
    for r in journal {
        if let Some(ok) = r.within_sla {
            let t = tally
                .entry((&r.decision.class, &r.logged.option))
                .or_default();
            t.0 += f64::from(u8::from(ok));
            t.1 += 1.0;
        }
    }
    // Smoothed towards one half where little is known.
    let predicted = |class: &str, option: &str| {
        let (within, n) = tally.get(&(class, option)).copied().unwrap_or_default();
        (within + 0.5) / (n + 1.0)
    };
    journal
        .iter()
        .zip(redecided)
        .filter_map(|(r, c)| {
            let reward = f64::from(u8::from(r.within_sla?));
            let l = &r.logged;
            let person = matches!(l.by, ChosenBy::Person | ChosenBy::SafeDefault);
            let executes = if c.mode == Mode::Review && person {
                l.option.as_str()
            } else {
                c.proposal.as_str()
            };
            let allowed = r
                .decision
                .options
                .iter()
                .any(|o| o.option == executes && o.allowed);
            Some(Sample {
                logged_propensity: l.propensity,
                target: f64::from(u8::from(l.option == executes)),
                supported: l.option == executes || (!l.deterministic && allowed),
                reward,
                predicted_logged: predicted(&r.decision.class, &l.option),
                predicted_target: predicted(&r.decision.class, executes),
            })
        })
        .collect()
}

/// The report as text.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let pct = |v: f64| format!("{:.1} %", 100.0 * v);
    let mut out = String::new();
    let _ = writeln!(out, "candidate: {}", r.candidate);
    let _ = writeln!(
        out,
        "decisions replayed: {}; changed: {} (to a person: {}, acting alone instead: {})",
        r.decisions, r.changed, r.auto_to_review, r.review_to_auto
    );
    for (class, n) in &r.changed_by_class {
        let _ = writeln!(out, "  {class}: {n} changed");
    }
    let mut flips: Vec<_> = r.flips.iter().collect();
    flips.sort_by(|a, b| b.1.cmp(a.1));
    for (flip, n) in flips.iter().take(EXAMPLES) {
        let _ = writeln!(out, "  {flip}: {n}");
    }
    if !r.examples.is_empty() {
        let _ = writeln!(out, "examples:");
    }
    for e in &r.examples {
        let _ = writeln!(
            out,
            "  {} {} {}: executed `{}` ({}, {}) → candidate `{}` ({}): {}",
            e.decision_id,
            e.signal_type,
            e.subject,
            e.logged,
            serde_json::to_value(e.logged_by)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            e.logged_mode.as_str(),
            e.candidate,
            e.candidate_mode.as_str(),
            e.why
        );
    }
    let logged = r.logged_value.map_or("no outcomes".into(), pct);
    let _ = writeln!(
        out,
        "value (outcomes within SLA), over {} decisions with an outcome: logged {logged}",
        r.with_outcome
    );
    for e in &r.estimates {
        let name = format!("{:?}", e.estimator).to_uppercase();
        let measure = match (e.value, e.ci) {
            (Some(v), Some([low, high])) => {
                format!("{} (95 % interval {} – {})", pct(v), pct(low), pct(high))
            }
            _ => "inconclusive, no estimate".into(),
        };
        let _ = writeln!(
            out,
            "  {name:<5} {measure}; support {}, effective sample size {:.0}, largest weight {:.1}",
            pct(e.support),
            e.ess,
            e.max_weight
        );
    }
    if r.inconclusive {
        let _ = writeln!(
            out,
            "inconclusive: the journal does not support this candidate well enough (support under {}, or under {:.0} effective samples)",
            pct(crate::decide::estimate::MIN_SUPPORT),
            crate::decide::estimate::MIN_ESS
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::policy::PolicyHit;
    use crate::testkit::{decision, signal};

    fn order() -> Decision {
        let s = signal(0, "order.placed", "order/o1", serde_json::json!({}));
        let options = [
            ("expedite_fulfillment", 0.9),
            ("standard_fulfillment", 0.4),
            ("credit_check_first", 0.1),
        ];
        decision(1, &s, &options, "auto", "operator")
    }

    fn hit(effects: &[&str]) -> PolicyHit {
        PolicyHit {
            rule: "r".into(),
            reason: "because".into(),
            effects: effects.iter().map(|e| e.to_string()).collect(),
            option: None,
        }
    }

    #[test]
    fn rules_alone_take_the_default_a_forced_option_or_ask_as_the_record_says() {
        let rules = crate::engine::Engine::shipped_rules(None).unwrap();
        let d = order();
        let plain = rules_only(&d, &rules);
        assert_eq!(
            (plain.proposal.as_str(), plain.mode),
            ("standard_fulfillment", Mode::Rules)
        );
        let mut forced = order();
        forced.policy_hits = vec![hit(&["priority(urgent)", "force(expedite_fulfillment)"])];
        let f = rules_only(&forced, &rules);
        assert_eq!(
            (f.proposal.as_str(), f.mode),
            ("expedite_fulfillment", Mode::Forced)
        );
        let mut reviewed = order();
        reviewed.policy_hits = vec![hit(&["require_review(lead)"])];
        reviewed.options[1].allowed = false;
        let r = rules_only(&reviewed, &rules);
        // The default forbidden: the first allowed option, for a person.
        assert_eq!(
            (r.proposal.as_str(), r.mode),
            ("expedite_fulfillment", Mode::Review)
        );
    }
}
