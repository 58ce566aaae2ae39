//! Replay: a candidate re-decides the journaled decisions, never acting,
//! and an off-policy estimate says what its value would have been (the
//! share of outcomes within SLA), held against the logged policy's.
//!
//! A candidate is a set of policies and a playbook, with the model as it
//! was (the scores and evidence each decision journaled) or off (rules
//! alone). Its policies are evaluated over the policy input each decision
//! journaled (the `context` fields and the services' health) and the
//! signal it decided, by the engine's own `Decider`. A decision journaled
//! before it kept its policy input is replayed from the verdict its record
//! keeps (the `allowed` flags and the hits' `force(X)` and
//! `require_review(ROLE)` effects) when the candidate's policies are the
//! live ones, and is skipped otherwise.
//!
//! Where the candidate would send an item to a person, the person's answer
//! in the journal stands for what a person would have done; where it acts
//! alone, it takes its pick, or explores as often as its policies say.

pub mod noise;

use std::collections::{BTreeMap, HashMap};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::decide::estimate::{Estimate, Estimator, Sample, estimate};
use crate::decide::model::Model;
use crate::decide::pick::{Learner, Ranked};
use crate::decide::policy::{PolicyHit, Verdict};
use crate::decide::{Decider, Decision, Mode, Rules, choice_for};
use crate::journal::read::{ChosenBy, Logged, Replayable};

/// What the candidate does with one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Redecided {
    pub proposal: String,
    pub mode: Mode,
    pub why: String,
    /// The chance it explores instead of taking `proposal`, among `allowed`.
    pub spread: f64,
    pub allowed: Vec<String>,
    pub hits: Vec<PolicyHit>,
    pub threshold: f64,
}

/// The model a candidate decides with.
#[derive(Debug, Clone)]
pub enum Scoring {
    /// The model as it was: the scores and evidence each decision journaled.
    Logged,
    /// A checkpoint's model, scoring each decision's journaled features.
    Checkpoint(Model),
    /// Off: rules alone.
    Off,
}

/// A candidate: the rules it decides under and its model.
pub struct Candidate {
    pub name: String,
    decider: Decider,
    /// Its policies are the ones that were live: a record without policy
    /// input is replayed from the verdict it keeps.
    live_policy: bool,
    /// Scores come from its own model, not the records.
    rescore: bool,
}

impl Candidate {
    pub fn new(name: String, rules: Rules, scoring: Scoring, live_policy: bool) -> Candidate {
        let learning = !matches!(scoring, Scoring::Off);
        let (model, rescore) = match scoring {
            Scoring::Checkpoint(model) => (model, true),
            // Never consulted: scores come from the records.
            Scoring::Logged | Scoring::Off => (Model::new(1), false),
        };
        let mut decider = Decider::new(
            rules.playbook.clone(),
            rules.steps.clone(),
            rules.policy.clone(),
            model,
            learning,
            0,
        );
        decider.replace_rules(rules);
        Candidate {
            name,
            decider,
            live_policy,
            rescore,
        }
    }

    /// What it makes of one journaled decision; `None` where it cannot say
    /// (see the module's note).
    pub fn redecide(&mut self, r: &Replayable) -> Option<Redecided> {
        let d = &r.decision;
        if d.policy_input.is_none() {
            let keeps = self.live_policy && !self.rescore;
            return keeps.then(|| self.by_the_record(d));
        }
        let again = self.decider.redecide(d, r.signal.as_ref()?, self.rescore)?;
        Some(Redecided {
            allowed: allowed(&again.options),
            proposal: again.pick.proposal,
            mode: again.pick.mode,
            why: again.pick.why,
            spread: again.pick.spread,
            hits: again.hits,
            threshold: again.threshold,
        })
    }

    /// A record without policy input, under the policies that were live:
    /// the verdict its record keeps.
    fn by_the_record(&self, d: &Decision) -> Redecided {
        let effects = || d.policy_hits.iter().flat_map(|h| h.effects.iter());
        let verdict = Verdict {
            require_review: effects().any(|e| e.starts_with("require_review(")),
            forced: effects()
                .find_map(|e| Some(e.strip_prefix("force(")?.strip_suffix(')')?.to_string())),
            ..Verdict::default()
        };
        let choice = choice_for(&self.decider.playbook, &d.signal_type);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let pick = Ranked {
            options: &d.options,
            choice: &choice,
            verdict: &verdict,
            policy: &self.decider.policy,
            threshold: d.threshold,
        }
        .pick(self.decider.learning.then_some(Learner {
            rng: &mut rng,
            explore: false,
        }));
        Redecided {
            proposal: pick.proposal,
            mode: pick.mode,
            why: pick.why,
            spread: pick.spread,
            allowed: allowed(&d.options),
            hits: d.policy_hits.clone(),
            threshold: d.threshold,
        }
    }
}

fn allowed(options: &[crate::decide::OptionScore]) -> Vec<String> {
    options
        .iter()
        .filter(|o| o.allowed)
        .map(|o| o.option.clone())
        .collect()
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
    /// As `explain` would show the two side by side: `-` the journal's,
    /// `+` the candidate's.
    pub diff: Vec<String>,
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
    /// Settled decisions the candidate could not replay (see the module's
    /// note).
    pub skipped: usize,
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
    /// Decisions with an outcome (fan-out branches are measured through
    /// their parent's): what the estimates are over.
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

/// A decision with an outcome, kept until the reward model is known.
struct Pending {
    reward: f64,
    logged_propensity: f64,
    target: f64,
    supported: bool,
    class: u32,
    logged: u32,
    /// What the candidate executes, with what chance.
    executes: Vec<(u32, f64)>,
    /// The candidate asks a person where the journal acted alone.
    asks_anew: bool,
}

/// A replay under way: decisions are added one at a time, as the journal
/// streams them, and `finish` estimates.
pub struct Replay {
    candidate: Candidate,
    report: Report,
    pending: Vec<Pending>,
    /// Class and option names, numbered.
    names: HashMap<String, u32>,
    /// Within SLA and seen, per (class, option) executed.
    tally: HashMap<(u32, u32), (f64, f64)>,
    /// The same, of the options people settled on.
    by_people: HashMap<(u32, u32), (f64, f64)>,
}

impl Replay {
    pub fn new(candidate: Candidate) -> Replay {
        let nothing = Reading {
            estimator: Estimator::Dr,
            value: None,
            ci: None,
            ess: 0.0,
            support: 0.0,
            max_weight: 0.0,
            inconclusive: true,
        };
        Replay {
            report: Report {
                candidate: candidate.name.clone(),
                decisions: 0,
                skipped: 0,
                changed: 0,
                changed_by_class: BTreeMap::new(),
                auto_to_review: 0,
                review_to_auto: 0,
                flips: BTreeMap::new(),
                examples: Vec::new(),
                with_outcome: 0,
                logged_value: None,
                estimate: nothing,
                inconclusive: true,
                estimates: Vec::new(),
            },
            candidate,
            pending: Vec::new(),
            names: HashMap::new(),
            tally: HashMap::new(),
            by_people: HashMap::new(),
        }
    }

    fn name(&mut self, name: &str) -> u32 {
        if let Some(&n) = self.names.get(name) {
            return n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.insert(name.to_string(), n);
        n
    }

    /// Replays one journaled decision.
    pub fn add(&mut self, r: &Replayable) {
        let Some(c) = self.candidate.redecide(r) else {
            self.report.skipped += 1;
            return;
        };
        self.report.decisions += 1;
        count_change(&mut self.report, r, &c);
        // A fan-out branch's outcome is measured through its parent's, as
        // the headless report measures: it is not a sample of its own.
        let Some(ok) = r.within_sla.filter(|_| r.decision.parent.is_none()) else {
            return;
        };
        let reward = f64::from(u8::from(ok));
        let l = &r.logged;
        let (class, logged) = (self.name(&r.decision.class), self.name(&l.option));
        count(&mut self.tally, (class, logged), reward);
        if asked(l) {
            count(&mut self.by_people, (class, logged), reward);
        }
        // Asking a person the journal never asked: what they would have
        // chosen, and what the wait would have cost, are not in it. No
        // support; DR takes what people's answers in the class came to.
        let asks_anew = c.mode == Mode::Review && !asked(l);
        let executes = executes(r, &c);
        let target = if asks_anew {
            0.0
        } else {
            executes
                .iter()
                .find(|(o, _)| *o == l.option)
                .map_or(0.0, |(_, p)| *p)
        };
        // Supported: what it most likely executes had a logged chance.
        let likeliest = executes
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(l.option.as_str(), |(o, _)| o.as_str());
        let logged_could = !l.deterministic
            && r.decision
                .options
                .iter()
                .any(|o| o.option == likeliest && o.allowed);
        let supported = !asks_anew && (likeliest == l.option || logged_could);
        let executes = executes.iter().map(|(o, p)| (self.name(o), *p)).collect();
        self.pending.push(Pending {
            reward,
            logged_propensity: l.propensity,
            target,
            supported,
            class,
            logged,
            executes,
            asks_anew,
        });
    }

    /// The report, with estimates bootstrapped with `seed`. The reward
    /// model for DR is the share within SLA of each class and option in
    /// the journal (of people's answers, where the candidate asks anew),
    /// smoothed towards one half where little is known.
    pub fn finish(self, seed: u64) -> Report {
        let Replay {
            mut report,
            pending,
            tally,
            by_people,
            ..
        } = self;
        let smoothed = |tally: &HashMap<(u32, u32), (f64, f64)>, class: u32, option: u32| {
            let (within, n) = tally.get(&(class, option)).copied().unwrap_or_default();
            (within + 0.5) / (n + 1.0)
        };
        let predicted = |class, option| smoothed(&tally, class, option);
        let samples: Vec<Sample> = pending
            .iter()
            .map(|p| Sample {
                logged_propensity: p.logged_propensity,
                target: p.target,
                supported: p.supported,
                reward: p.reward,
                predicted_logged: predicted(p.class, p.logged),
                predicted_target: p
                    .executes
                    .iter()
                    .map(|&(o, w)| {
                        let model = if p.asks_anew { &by_people } else { &tally };
                        w * smoothed(model, p.class, o)
                    })
                    .sum(),
            })
            .collect();
        report.with_outcome = samples.len();
        report.logged_value = (!samples.is_empty())
            .then(|| samples.iter().map(|s| s.reward).sum::<f64>() / samples.len() as f64);
        report.estimates = [Estimator::Ips, Estimator::Snips, Estimator::Dr]
            .into_iter()
            .map(|e| estimate(e, &samples, seed).into())
            .collect();
        // The headline: doubly robust, the last.
        if let Some(headline) = report.estimates.last() {
            report.inconclusive = headline.inconclusive;
            report.estimate = headline.clone();
        }
        report
    }
}

/// What the candidate executes for `r`, with what chance: where it asks a
/// person who answered in the journal, that answer; otherwise its pick, or
/// (as often as it explores) any option it allows.
fn executes(r: &Replayable, c: &Redecided) -> Vec<(String, f64)> {
    let l = &r.logged;
    if c.mode == Mode::Review && asked(l) {
        return vec![(l.option.clone(), 1.0)];
    }
    let k = c.allowed.len();
    if c.spread <= 0.0 || k < 2 {
        return vec![(c.proposal.clone(), 1.0)];
    }
    let each = c.spread / k as f64;
    c.allowed
        .iter()
        .map(|o| {
            let p = if *o == c.proposal {
                1.0 - c.spread + each
            } else {
                each
            };
            (o.clone(), p)
        })
        .collect()
}

/// The journal sent it to a person (who answered, or let the safe default
/// stand).
fn asked(l: &Logged) -> bool {
    matches!(l.by, ChosenBy::Person | ChosenBy::SafeDefault)
}

/// One more outcome of `key`, within SLA or not, into `tally`.
fn count(tally: &mut HashMap<(u32, u32), (f64, f64)>, key: (u32, u32), reward: f64) {
    let t = tally.entry(key).or_default();
    t.0 += reward;
    t.1 += 1.0;
}

/// Whether the candidate takes `r` differently, counted into the report.
fn count_change(report: &mut Report, r: &Replayable, c: &Redecided) {
    let d = &r.decision;
    let (was_review, is_review) = (d.mode == Mode::Review, c.mode == Mode::Review);
    if c.proposal == d.proposal && was_review == is_review {
        return;
    }
    // Explored in the journal, and the candidate would explore it too: the
    // same policy, another draw.
    if d.explored && c.spread > 0.0 && c.mode == d.mode && c.allowed.contains(&d.proposal) {
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
            diff: diff(d, c),
        });
    }
}

/// The journaled decision and the candidate's, line by line where they
/// differ: proposal and mode, threshold, each option's allowance, and the
/// policy hits.
fn diff(d: &Decision, c: &Redecided) -> Vec<String> {
    let mut out = Vec::new();
    let mut pair = |what: &str, was: String, now: String| {
        if was != now {
            out.push(format!("- {what}: {was}"));
            out.push(format!("+ {what}: {now}"));
        }
    };
    pair("proposal", d.proposal.clone(), c.proposal.clone());
    pair("mode", d.mode.as_str().into(), c.mode.as_str().into());
    pair("why", d.why.clone(), c.why.clone());
    pair(
        "threshold",
        format!("{:.2}", d.threshold),
        format!("{:.2}", c.threshold),
    );
    let was_allowed = allowed(&d.options);
    pair("allowed", was_allowed.join(", "), c.allowed.join(", "));
    let line =
        |h: &PolicyHit| format!("policy {}: {} ({})", h.rule, h.effects.join(", "), h.reason);
    let (was, now): (Vec<String>, Vec<String>) = (
        d.policy_hits.iter().map(line).collect(),
        c.hits.iter().map(line).collect(),
    );
    for h in was.iter().filter(|h| !now.contains(h)) {
        out.push(format!("- {h}"));
    }
    for h in now.iter().filter(|h| !was.contains(h)) {
        out.push(format!("+ {h}"));
    }
    out
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
    if r.skipped > 0 {
        let _ = writeln!(
            out,
            "not replayed: {} (journaled before decisions kept what policies read, or a play the candidate's playbook lacks)",
            r.skipped
        );
    }
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
        for line in &e.diff {
            let _ = writeln!(out, "      {line}");
        }
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
        let candidate = Candidate::new("rules".into(), rules, Scoring::Off, true);
        let rules_only = |d: &Decision| candidate.by_the_record(d);
        let d = order();
        let plain = rules_only(&d);
        assert_eq!(
            (plain.proposal.as_str(), plain.mode),
            ("standard_fulfillment", Mode::Rules)
        );
        let mut forced = order();
        forced.policy_hits = vec![hit(&["priority(urgent)", "force(expedite_fulfillment)"])];
        let f = rules_only(&forced);
        assert_eq!(
            (f.proposal.as_str(), f.mode),
            ("expedite_fulfillment", Mode::Forced)
        );
        let mut reviewed = order();
        reviewed.policy_hits = vec![hit(&["require_review(lead)"])];
        reviewed.options[1].allowed = false;
        let r = rules_only(&reviewed);
        // The default forbidden: the first allowed option, for a person.
        assert_eq!(
            (r.proposal.as_str(), r.mode),
            ("expedite_fulfillment", Mode::Review)
        );
    }
}
