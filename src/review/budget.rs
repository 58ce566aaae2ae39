//! How many open review items a decision class may hold (`[review]
//! budget`): a configured number, or `"auto"`: what its reviewers can
//! answer within the class's review window at the pace they have been
//! answering. Past it, a new item takes its safe default.
//!
//! The auto budget is people × window ÷ time per answer: the people who
//! answered an item in the last hour (at least one), and the median time
//! between two answers of one person when they answered one after another
//! (within ten minutes: a person working the queue), over that hour; two
//! minutes until anyone has. It never goes below `AUTO_FLOOR`.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer};

/// The smallest auto budget: a queue always takes a few items.
pub const AUTO_FLOOR: usize = 5;

/// Time per answer until one has been measured.
const DEFAULT_PER_ANSWER: i64 = 120;

/// Answers further apart than this are not one person working the queue.
const WORKING_GAP: i64 = 600;

/// One class's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Fixed(usize),
    /// From the reviewers' measured pace and the class's review window.
    Auto,
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Budget, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(usize),
            Word(String),
        }
        match Written::deserialize(d)? {
            Written::Number(n) => Ok(Budget::Fixed(n)),
            Written::Word(w) if w == "auto" => Ok(Budget::Auto),
            Written::Word(w) => Err(serde::de::Error::custom(format!(
                "{w:?}: a number, or \"auto\""
            ))),
        }
    }
}

/// The budgets of every class, and the pace they are derived from.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    set: BTreeMap<String, Budget>,
    /// Each class's review window, in minutes.
    windows: BTreeMap<String, u32>,
    /// People's answers of the last hour: when, and who.
    answers: VecDeque<(DateTime<Utc>, String)>,
}

impl Budgets {
    pub fn new(set: BTreeMap<String, Budget>, windows: BTreeMap<String, u32>) -> Budgets {
        Budgets {
            set,
            windows,
            answers: VecDeque::new(),
        }
    }

    /// Classes named (not `default`).
    pub fn named(&self) -> impl Iterator<Item = &String> {
        self.set.keys().filter(|k| *k != "default")
    }

    /// A person answered an item at `at`.
    pub fn answered(&mut self, who: &str, at: DateTime<Utc>) {
        if self.set.values().any(|b| *b == Budget::Auto) {
            self.answers.push_back((at, who.to_string()));
            self.forget(at);
        }
    }

    fn forget(&mut self, now: DateTime<Utc>) {
        while self
            .answers
            .front()
            .is_some_and(|(t, _)| *t < now - Duration::hours(1))
        {
            self.answers.pop_front();
        }
    }

    /// The budget of `class` at `now` (none: it has none).
    pub fn of(&self, class: &str, now: DateTime<Utc>) -> Option<usize> {
        match self.set.get(class).or_else(|| self.set.get("default"))? {
            Budget::Fixed(n) => Some(*n),
            Budget::Auto => Some(self.auto(class, now)),
        }
    }

    /// People × window ÷ time per answer, over the last hour's answers.
    fn auto(&self, class: &str, now: DateTime<Utc>) -> usize {
        let recent: Vec<&(DateTime<Utc>, String)> = self
            .answers
            .iter()
            .filter(|(t, _)| *t >= now - Duration::hours(1))
            .collect();
        let mut people: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
        for (t, who) in &recent {
            people.entry(who.as_str()).or_default().push(*t);
        }
        let mut gaps: Vec<i64> = people
            .values()
            .flat_map(|times| times.windows(2).map(|w| (w[1] - w[0]).num_seconds()))
            .filter(|g| (1..=WORKING_GAP).contains(g))
            .collect();
        gaps.sort_unstable();
        let per_answer = gaps
            .get(gaps.len() / 2)
            .copied()
            .unwrap_or(DEFAULT_PER_ANSWER);
        let window = i64::from(self.windows.get(class).copied().unwrap_or(15)) * 60;
        let reviewers = people.len().max(1) as i64;
        let n = reviewers * window / per_answer.max(1);
        (n as usize).max(AUTO_FLOOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(s)
    }

    fn budgets() -> Budgets {
        let set = [
            ("incident".to_string(), Budget::Auto),
            ("default".to_string(), Budget::Fixed(50)),
        ];
        Budgets::new(set.into(), [("incident".to_string(), 15)].into())
    }

    #[test]
    fn reads_a_number_or_auto_and_refuses_anything_else() {
        let read =
            |t: &str| toml::from_str::<BTreeMap<String, Budget>>(t).map_err(|e| e.to_string());
        let b = read("default = 200\nincident = \"auto\"").expect("valid");
        assert_eq!(b["default"], Budget::Fixed(200));
        assert_eq!(b["incident"], Budget::Auto);
        let e = read("incident = \"lots\"").expect_err("a word");
        assert!(e.contains("\"auto\""), "{e}");
    }

    #[test]
    fn auto_follows_how_many_answer_and_how_fast() {
        let mut b = budgets();
        let now = at(3600);
        // Nobody has answered: one person, two minutes each, 15 minutes.
        assert_eq!(b.of("incident", now), Some(7));
        assert_eq!(b.of("maintenance", now), Some(50), "default");
        // Two people answering every 30 s: 2 × 900 / 30.
        for i in 0..10 {
            b.answered("ann", at(3000 + i * 30));
            b.answered("bob", at(3010 + i * 30));
        }
        assert_eq!(b.of("incident", now), Some(60));
        // An hour later they are gone: back to the default pace.
        assert_eq!(b.of("incident", at(3000 + 7200)), Some(7));
    }

    #[test]
    fn a_slow_pace_never_takes_the_queue_below_its_floor() {
        let mut b = budgets();
        b.answered("ann", at(0));
        b.answered("ann", at(590));
        assert_eq!(b.of("incident", at(600)), Some(AUTO_FLOOR));
    }
}
