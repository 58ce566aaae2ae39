//! Apprentice mode: per decision class, who decides, the rules or the
//! model, and when that changes. In apprentice mode the rules decide a class
//! while the model scores every decision beside them and learns from their
//! outcomes and from people's answers; the model takes the class over only
//! once, on the class's own outcomes, its off-policy lower bound beats what
//! the rules did there and it agrees with people often enough; it hands the
//! class back once the rules' lower bound, read the same way over the
//! model's own decisions, beats what the model did. Pure: the engine feeds
//! it each outcome and answer and journals the switches it returns.
//!
//! The estimate is doubly robust and paired: over each outcome, the
//! challenger's doubly robust value (the model's predicted chance for its
//! pick, corrected by what happened where the two picked alike) minus the
//! incumbent's observed reward; the challenger wins when the bootstrap's
//! 5 % quantile of the mean difference (a one-sided 95 % lower bound) is
//! above zero. A class that has changed hands twice asks for a stricter
//! quantile at each further switch (`tail_after`), so that one whose two
//! sides are about even settles. People's answers, like the readings, are
//! read since the last switch.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::estimate::{BOOTSTRAP, quantile};

/// How far the model may decide a class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelMode {
    /// The rules decide; the model learns beside them and never takes over.
    Rules,
    /// The rules decide until the model has shown it does better.
    Apprentice,
    /// The model decides (within policy), from the start.
    #[default]
    On,
}

impl std::str::FromStr for ModelMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ModelMode, String> {
        match s {
            "rules" => Ok(ModelMode::Rules),
            "apprentice" => Ok(ModelMode::Apprentice),
            "on" => Ok(ModelMode::On),
            _ => Err(format!(
                "`{s}` is not a model mode: rules, apprentice or on"
            )),
        }
    }
}

impl ModelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelMode::Rules => "rules",
            ModelMode::Apprentice => "apprentice",
            ModelMode::On => "on",
        }
    }
}

/// Who decides a class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    #[default]
    Rules,
    Model,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Rules => "rules",
            Side::Model => "model",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Rules => Side::Model,
            Side::Model => Side::Rules,
        }
    }
}

/// On a decision in an apprentice class: who decided it and what the other
/// side would have picked (the model without exploring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprenticeMark {
    pub by: Side,
    pub other: String,
    /// An apprentice trial: the rules' pick, in place of which the
    /// model's was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instead_of: Option<String>,
}

impl ApprenticeMark {
    /// The model's pick and the rules', on a decision of `proposal`.
    pub fn picks<'a>(&'a self, proposal: &'a str) -> (&'a str, &'a str) {
        match (self.by, &self.instead_of) {
            (Side::Rules, Some(rules)) => (&self.other, rules),
            (Side::Rules, None) => (&self.other, proposal),
            (Side::Model, _) => (proposal, &self.other),
        }
    }
}

/// A person's answer on an apprentice decision: was it the model's pick,
/// and was it the rules'?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub model: bool,
    pub rules: bool,
}

/// One outcome of an apprentice class's decision, as the estimate reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub by: Side,
    /// 1 within SLA, 0 not.
    pub reward: f64,
    /// Whether the other side would have picked what was done.
    pub agree: bool,
    /// The chance the deciding side gave what was done.
    pub propensity: f64,
    /// The model's predicted chance of success, at decision time, for what
    /// was done and for the other side's pick.
    pub predicted_done: f64,
    pub predicted_other: f64,
}

impl Reading {
    /// The model's pick, tried while the rules decided.
    fn tried(&self) -> bool {
        self.by == Side::Rules && self.agree && self.propensity < 1.0
    }

    /// The other side's doubly robust value minus the reward observed.
    fn difference(&self) -> f64 {
        let weight = if self.agree && self.propensity > 0.0 {
            1.0 / self.propensity
        } else {
            0.0
        };
        self.predicted_other + weight * (self.reward - self.predicted_done) - self.reward
    }
}

/// Where a class switches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ApprenticeLimits {
    /// Outcomes under the rules before the model may take a class over,
    /// and under the model before it may hand one back (hysteresis: a class
    /// just taken over is not handed back on its first outcomes).
    pub min_outcomes: usize,
    pub min_to_hand_back: usize,
    /// Outcomes the estimate is read over (the latest).
    pub window: usize,
    /// Outcomes between two readings.
    pub every: usize,
    /// People's answers the agreement is read over (the latest); below
    /// `min_answers` of them the agreement is not required.
    pub answers: usize,
    pub min_answers: usize,
    /// The share of people's answers that must be the model's pick for it
    /// to take a class over, unless people chose it at least as often as
    /// the rules' (the items people answer in an apprentice class are
    /// mostly trials, where the two differ: the hard cases).
    pub min_agreement: f64,
}

impl Default for ApprenticeLimits {
    fn default() -> Self {
        ApprenticeLimits {
            min_outcomes: 40,
            min_to_hand_back: 100,
            window: 600,
            every: 10,
            answers: 50,
            min_answers: 10,
            min_agreement: 0.5,
        }
    }
}

/// What a switch read: the paired estimate and the agreement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SwitchReadings {
    /// The deciding side's observed share within SLA.
    pub incumbent: f64,
    /// The challenger's doubly robust share within SLA, and the interval
    /// of its difference from the incumbent's (90 %, or as much wider as
    /// the class's earlier switches ask: its low end is the bound read).
    pub challenger: f64,
    pub difference: [f64; 2],
    pub outcomes: usize,
    /// Of them, the model's picks tried while the rules decided.
    #[serde(default)]
    pub trials: usize,
    /// Share of people's answers that were the model's pick, and that
    /// were the rules'.
    pub agreement: Option<f64>,
    #[serde(default)]
    pub rules_agreement: Option<f64>,
    pub answers: usize,
}

/// A class changing hands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    pub class: String,
    pub to: Side,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub at: DateTime<Utc>,
    /// What read it: `estimate` (the challenger's paired lower bound),
    /// `outcomes` (the model's own outcomes under what the rules had
    /// reached) or `breaker` (the model's breaker opened).
    pub why: Why,
    pub readings: SwitchReadings,
}

/// Why a class changed hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Why {
    Estimate,
    Outcomes,
    Breaker,
}

impl Switch {
    /// One line for people.
    pub fn describe(&self) -> String {
        let r = &self.readings;
        let agreement = match (r.agreement, r.rules_agreement) {
            (Some(a), Some(rules)) => format!(
                "people chose the model's pick {:.0} % of {} answers, the rules' {:.0} %",
                a * 100.0,
                r.answers,
                rules * 100.0
            ),
            (Some(a), None) => format!("agrees with people {:.0} % of {}", a * 100.0, r.answers),
            (None, _) if r.answers == 1 => "1 answer from people".to_string(),
            (None, _) => format!("{} answers from people", r.answers),
        };
        // Who takes it, and whose figure each is.
        let (takes, now, before) = match self.to {
            Side::Model => ("the model takes", "the model", "the rules'"),
            Side::Rules => ("the rules take", "the rules", "the model's"),
        };
        match self.why {
            Why::Breaker => {
                return format!(
                    "the rules take {} back from the model: the model's breaker opened; \
                     the model takes it again only by the same test as at first",
                    self.class
                );
            }
            Why::Outcomes => {
                return format!(
                    "the rules take {} back from the model: its own outcomes reach {:.1} % within SLA \
                     over {} (at most {:.1} %), under the rules' {:.1} % before it took over",
                    self.class,
                    r.incumbent * 100.0,
                    r.outcomes,
                    (r.challenger - r.difference[0]) * 100.0,
                    r.challenger * 100.0,
                );
            }
            Why::Estimate => {}
        }
        // Trials happen only while the rules decide.
        let tried = match self.to {
            Side::Model => format!(", {} of them the model's picks tried", r.trials),
            Side::Rules => String::new(),
        };
        format!(
            "{takes} {} over: {now} would reach {:.1} % within SLA \
             against {before} {:.1} % over {} outcomes{tried} \
             (difference {:+.1} to {:+.1} points); {agreement}",
            self.class,
            r.challenger * 100.0,
            r.incumbent * 100.0,
            r.outcomes,
            r.difference[0] * 100.0,
            r.difference[1] * 100.0,
        )
    }
}

/// Who decides one class, and the outcomes read since.
#[derive(Debug, Clone, Default)]
struct Class {
    by: Side,
    since: Option<DateTime<Utc>>,
    /// The rules' observed share within SLA when the model took over.
    rules_value: Option<f64>,
    readings: VecDeque<Reading>,
    answers: VecDeque<Answer>,
    /// Outcomes since the last reading.
    fresh: usize,
    /// Times the class changed hands since the engine started.
    switches: u32,
}

/// The classes the model has taken over, as journaled.
pub type Journaled = BTreeMap<String, Held>;

/// A class the model holds: since when, and what the rules had reached
/// there (what its own outcomes must not fall under).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub since: DateTime<Utc>,
    #[serde(default)]
    pub rules_value: Option<f64>,
}

/// Every apprentice class's state.
#[derive(Debug, Clone, Default)]
pub struct Apprentice {
    limits: ApprenticeLimits,
    classes: BTreeMap<String, Class>,
    seed: u64,
}

impl Apprentice {
    pub fn new(limits: ApprenticeLimits) -> Apprentice {
        Apprentice {
            limits,
            ..Apprentice::default()
        }
    }

    /// Who decides `class` now.
    pub fn deciding(&self, class: &str) -> Side {
        self.classes.get(class).map_or(Side::Rules, |c| c.by)
    }

    /// The classes the model decides, with since when.
    pub fn taken(&self) -> Journaled {
        self.classes
            .iter()
            .filter(|(_, c)| c.by == Side::Model)
            .map(|(name, c)| {
                let held = Held {
                    since: c.since.unwrap_or_default(),
                    rules_value: c.rules_value,
                };
                (name.clone(), held)
            })
            .collect()
    }

    /// The model's breaker opened: the rules take back every class the
    /// model holds (it takes each again only as it did at first).
    pub fn hand_back_all(&mut self, now: DateTime<Utc>) -> Vec<Switch> {
        let mut out = Vec::new();
        for (name, c) in self.classes.iter_mut().filter(|(_, c)| c.by == Side::Model) {
            let outcomes = c.readings.len();
            let incumbent = mean_reward(&c.readings);
            let answers = c.answers.len();
            // Not counted among its switches: a breaker is not the
            // estimate's chance favouring a side.
            c.by = Side::Rules;
            c.since = Some(now);
            c.readings.clear();
            c.answers.clear();
            out.push(Switch {
                class: name.clone(),
                to: Side::Rules,
                at: now,
                why: Why::Breaker,
                readings: SwitchReadings {
                    trials: 0,
                    incumbent,
                    challenger: c.rules_value.unwrap_or(incumbent),
                    difference: [0.0, 0.0],
                    outcomes,
                    agreement: None,
                    rules_agreement: None,
                    answers,
                },
            });
        }
        out
    }

    /// Takes the journaled state after a restart: the model decides these
    /// classes again; their readings start afresh.
    pub fn resume(&mut self, taken: Journaled) {
        for (class, held) in taken {
            let c = self.classes.entry(class).or_default();
            c.by = Side::Model;
            c.since = Some(held.since);
            c.rules_value = held.rules_value;
        }
    }

    /// A person answered one of the class's decisions.
    /// One on a decision made before the class last changed hands is
    /// about the side that decided it then, and is not read.
    pub fn answered(&mut self, class: &str, answer: Answer, decided: DateTime<Utc>) {
        let answers = self.limits.answers;
        let c = self.classes.entry(class.to_string()).or_default();
        if c.since.is_some_and(|since| decided < since) {
            return;
        }
        c.answers.push_back(answer);
        while c.answers.len() > answers {
            c.answers.pop_front();
        }
    }

    /// An outcome of one of the class's decisions; a switch when it tips
    /// the reading.
    pub fn outcome(&mut self, class: &str, reading: Reading, now: DateTime<Utc>) -> Option<Switch> {
        let limits = self.limits;
        let c = self.classes.entry(class.to_string()).or_default();
        // Decided before the last switch: not the deciding side's.
        if reading.by != c.by {
            return None;
        }
        c.readings.push_back(reading);
        while c.readings.len() > limits.window {
            c.readings.pop_front();
        }
        c.fresh += 1;
        let least = match c.by {
            Side::Rules => limits.min_outcomes,
            Side::Model => limits.min_to_hand_back,
        };
        if c.readings.len() < least || c.fresh < limits.every {
            return None;
        }
        c.fresh = 0;
        self.seed = self.seed.wrapping_add(1);
        let tail = tail_after(c.switches);
        let readings = read(c, &limits, self.seed, tail);
        let challenger = c.by.other();
        let agreed = |a: f64| {
            a >= limits
                .min_agreement
                .min(readings.rules_agreement.unwrap_or(1.0))
        };
        let shown = challenger == Side::Rules || readings.agreement.is_none_or(agreed);
        let (why, readings) = if readings.difference[0] > 0.0 && shown {
            (Why::Estimate, readings)
        } else {
            // The model's own outcomes under what the rules had reached:
            // read without the model's predictions, which may be what broke.
            match (c.by, c.rules_value) {
                (Side::Model, Some(rules)) => {
                    let readings = against_rules(c, rules, self.seed);
                    if readings.difference[0] <= 0.0 {
                        return None;
                    }
                    (Why::Outcomes, readings)
                }
                _ => return None,
            }
        };
        c.rules_value = match challenger {
            Side::Model => Some(readings.incumbent),
            Side::Rules => None,
        };
        c.by = challenger;
        c.since = Some(now);
        c.switches += 1;
        c.readings.clear();
        c.answers.clear();
        Some(Switch {
            class: class.to_string(),
            to: challenger,
            at: now,
            why,
            readings,
        })
    }
}

/// The one-sided tail of a switch's bound: 95 %.
const TAIL: f64 = 0.05;
/// The smallest tail a class's switches come to: 99.5 %.
const LEAST_TAIL: f64 = 0.005;

/// The tail of the next switch of a class that changed hands `switches`
/// times: 5 % for the first takeover and the first hand-back, then half
/// of it for each further switch, down to `LEAST_TAIL`. The estimate is
/// read after every few outcomes, and where the two sides are about even
/// some reading sooner or later favours the other side by chance: each
/// switch back asks for stronger evidence, so such a class settles instead
/// of changing hands all day.
fn tail_after(switches: u32) -> f64 {
    let halvings = switches.saturating_sub(1).min(8);
    (TAIL / f64::from(1u32 << halvings)).max(LEAST_TAIL)
}

/// The share of the readings within SLA.
fn mean_reward(readings: &VecDeque<Reading>) -> f64 {
    readings.iter().map(|r| r.reward).sum::<f64>() / readings.len().max(1) as f64
}

/// The mean of `values` and its bootstrap interval between the `tail`
/// and 1 − `tail` quantiles (at least `BOOTSTRAP` resamples drawn with
/// `seed`): the `tail` quantile is a one-sided 1 − `tail` lower bound.
fn bootstrap_mean(values: &[f64], seed: u64, tail: f64) -> (f64, [f64; 2]) {
    let n = values.len();
    let mean = |pick: &mut dyn Iterator<Item = usize>| {
        let (sum, count) = pick.fold((0.0, 0usize), |(s, k), i| {
            (s + values.get(i).copied().unwrap_or(0.0), k + 1)
        });
        sum / count.max(1) as f64
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Enough draws that the tail's quantile is read from at least five.
    let count = BOOTSTRAP.max((5.0 / tail).ceil() as usize);
    let mut draws: Vec<f64> = (0..count)
        .map(|_| mean(&mut (0..n).map(|_| rng.random_range(0..n.max(1)))))
        .collect();
    draws.sort_by(f64::total_cmp);
    (
        mean(&mut (0..n)),
        [quantile(&draws, tail), quantile(&draws, 1.0 - tail)],
    )
}

/// The model's own outcomes against what the rules had reached before it
/// took over (`rules`): the rules' value less the ends of the model's
/// interval, read without the model's predictions.
fn against_rules(c: &Class, rules: f64, seed: u64) -> SwitchReadings {
    let rewards: Vec<f64> = c.readings.iter().map(|r| r.reward).collect();
    let (own, [low, high]) = bootstrap_mean(&rewards, seed, TAIL);
    SwitchReadings {
        incumbent: own,
        challenger: rules,
        difference: [rules - high, rules - low],
        outcomes: rewards.len(),
        trials: 0,
        // People's answers are not read here.
        agreement: None,
        rules_agreement: None,
        answers: 0,
    }
}

/// The paired estimate over a class's readings, and people's agreement.
fn read(c: &Class, limits: &ApprenticeLimits, seed: u64, tail: f64) -> SwitchReadings {
    let differences: Vec<f64> = c.readings.iter().map(Reading::difference).collect();
    let (gain, difference) = bootstrap_mean(&differences, seed, tail);
    let incumbent = mean_reward(&c.readings);
    let answers = c.answers.len();
    let share = |side: fn(&Answer) -> bool| {
        (answers >= limits.min_answers)
            .then(|| c.answers.iter().filter(|a| side(a)).count() as f64 / answers as f64)
    };
    let (agreement, rules_agreement) = (share(|a| a.model), share(|a| a.rules));
    SwitchReadings {
        incumbent,
        challenger: incumbent + gain,
        difference,
        outcomes: c.readings.len(),
        trials: c.readings.iter().filter(|r| r.tried()).count(),
        agreement,
        rules_agreement,
        answers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-31T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// Rules decided: the default succeeds `rules` of the time; where the
    /// model picks otherwise (every other decision) it predicts `model`.
    fn rules_readings(i: usize, rules: f64, model: f64) -> Reading {
        let reward = f64::from(u8::from((i * 37 % 100) as f64 / 100.0 < rules));
        Reading {
            by: Side::Rules,
            reward,
            agree: i.is_multiple_of(2),
            propensity: 1.0,
            predicted_done: rules,
            predicted_other: if i.is_multiple_of(2) { rules } else { model },
        }
    }

    #[test]
    fn the_model_takes_over_only_when_its_lower_bound_beats_the_rules() {
        let mut a = Apprentice::new(ApprenticeLimits::default());
        // Predicting no better than the rules: never switches.
        for i in 0..1_000 {
            assert_eq!(a.outcome("c", rules_readings(i, 0.6, 0.6), now()), None);
        }
        assert_eq!(a.deciding("c"), Side::Rules);
        // Predicting clearly better where it differs: takes over.
        let switch = (0..1_000).find_map(|i| a.outcome("c", rules_readings(i, 0.6, 0.9), now()));
        let switch = switch.expect("the model takes over");
        assert_eq!((switch.to, a.deciding("c")), (Side::Model, Side::Model));
        assert!(switch.readings.difference[0] > 0.0, "{switch:?}");
        let text = switch.describe();
        assert!(
            text.starts_with("the model takes c over: the model would reach"),
            "{text}"
        );
        assert!(text.contains("against the rules' "), "{text}");
        assert_eq!(a.taken().len(), 1);
    }

    #[test]
    fn people_disagreeing_keep_the_rules_deciding() {
        let mut a = Apprentice::new(ApprenticeLimits::default());
        let (model, rules) = (
            Answer {
                model: true,
                rules: false,
            },
            Answer {
                model: false,
                rules: true,
            },
        );
        for _ in 0..10 {
            a.answered("c", rules, now());
        }
        for i in 0..1_000 {
            assert_eq!(a.outcome("c", rules_readings(i, 0.6, 0.9), now()), None);
        }
        // Enough agreement lets it through.
        for _ in 0..40 {
            a.answered("c", model, now());
        }
        assert!((0..200).any(|i| a.outcome("c", rules_readings(i, 0.6, 0.9), now()).is_some()));
    }

    #[test]
    fn the_model_hands_back_when_the_rules_would_do_better_on_its_own_decisions() {
        let mut a = Apprentice::new(ApprenticeLimits::default());
        let held = Held {
            since: now(),
            rules_value: None,
        };
        a.resume([("c".to_string(), held)].into_iter().collect());
        assert_eq!(a.deciding("c"), Side::Model);
        // A reading taken before the switch does not count for the model.
        assert_eq!(a.outcome("c", rules_readings(0, 0.6, 0.9), now()), None);
        // The model's picks succeed 30 %; the rules would pick otherwise
        // half the time, predicted 80 %.
        let model = |i: usize| Reading {
            by: Side::Model,
            reward: f64::from(u8::from(i % 10 < 3)),
            agree: i.is_multiple_of(2),
            propensity: 0.95,
            predicted_done: 0.3,
            predicted_other: if i.is_multiple_of(2) { 0.3 } else { 0.8 },
        };
        let switch = (0..1_000).find_map(|i| a.outcome("c", model(i), now()));
        let switch = switch.expect("the rules take it back");
        assert_eq!((switch.to, a.deciding("c")), (Side::Rules, Side::Rules));
        assert!(a.taken().is_empty());
    }

    /// Where the model's predictions cannot be trusted (they may be what
    /// broke), its own outcomes falling under what the rules had reached
    /// hand the class back; the breaker hands back every class at once.
    #[test]
    fn the_model_hands_back_on_its_own_outcomes_and_when_its_breaker_opens() {
        let mut a = Apprentice::new(ApprenticeLimits::default());
        let held = Held {
            since: now(),
            rules_value: Some(0.65),
        };
        a.resume(
            [("c".to_string(), held), ("d".to_string(), held)]
                .into_iter()
                .collect(),
        );
        // The model's picks succeed 40 %, and it predicts the rules' picks
        // no better than its own: only the outcomes say it.
        let broken = |i: usize| Reading {
            by: Side::Model,
            reward: f64::from(u8::from(i % 10 < 4)),
            agree: true,
            propensity: 1.0,
            predicted_done: 0.9,
            predicted_other: 0.9,
        };
        let switch = (0..1_000).find_map(|i| a.outcome("c", broken(i), now()));
        let switch = switch.expect("the rules take it back");
        assert_eq!((switch.why, switch.to), (Why::Outcomes, Side::Rules));
        assert!(
            switch.describe().contains("under the rules' 65.0 %"),
            "{}",
            switch.describe()
        );
        // Doing as well as the rules did keeps it.
        let sound = |i: usize| Reading {
            reward: f64::from(u8::from(i % 10 < 7)),
            ..broken(i)
        };
        assert!((0..1_000).all(|i| a.outcome("d", sound(i), now()).is_none()));
        let back = a.hand_back_all(now());
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].class.as_str(), back[0].why), ("d", Why::Breaker));
        assert!(a.taken().is_empty());
    }

    /// After a hand-back, people's answers from before it, or on
    /// decisions made before it, are not read: they were about the model
    /// as it was.
    #[test]
    fn a_class_handed_back_is_taken_again_on_fresh_answers() {
        let mut a = Apprentice::new(ApprenticeLimits::default());
        a.resume(
            [(
                "c".to_string(),
                Held {
                    since: now(),
                    rules_value: None,
                },
            )]
            .into_iter()
            .collect(),
        );
        // While the model held it, people chose the rules' picks.
        let rules = Answer {
            model: false,
            rules: true,
        };
        for _ in 0..20 {
            a.answered("c", rules, now());
        }
        let later = now() + chrono::Duration::hours(1);
        let back = a.hand_back_all(later);
        assert_eq!((back.len(), back[0].readings.answers), (1, 20));
        // Answered after the hand-back, on items the model had put to
        // people before it: not read either.
        for _ in 0..20 {
            a.answered("c", rules, now());
        }
        let switch = (0..1_000).find_map(|i| a.outcome("c", rules_readings(i, 0.6, 0.9), now()));
        let switch = switch.expect("the model takes it again");
        assert_eq!((switch.to, switch.readings.answers), (Side::Model, 0));
    }

    /// Each switch after the first hand-back asks for a stricter bound,
    /// down to a floor, and its interval is read from enough draws.
    #[test]
    fn each_switch_back_asks_for_stronger_evidence() {
        let tails: Vec<f64> = (0..8).map(tail_after).collect();
        assert_eq!(&tails[..3], &[0.05, 0.05, 0.025]);
        assert!(tails.windows(2).all(|w| w[1] <= w[0]), "{tails:?}");
        assert_eq!(tails[7], LEAST_TAIL);
        // The same readings: a stricter tail widens the interval.
        let values: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
        let (_, loose) = bootstrap_mean(&values, 7, TAIL);
        let (_, strict) = bootstrap_mean(&values, 7, LEAST_TAIL);
        assert!(
            strict[0] < loose[0] && strict[1] > loose[1],
            "{loose:?} {strict:?}"
        );
    }
}
