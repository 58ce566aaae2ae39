//! The advisor's breaker. It opens after `FAILURES` calls in a row that
//! timed out, could not reach the endpoint, were refused by it or gave an
//! invalid answer, and stays open `COOL` before one call may try again; it
//! opens for `COOL_DISAGREEING` when, over the last `WINDOW` items people
//! answered that it had advised on (at least `MIN_ANSWERS`), fewer than
//! `MIN_AGREEMENT` of its proposals were what they chose. While it is
//! open, nothing is asked and everything else goes on without advice.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

pub const FAILURES: u32 = 3;
pub const COOL: Duration = Duration::from_secs(60);
pub const COOL_DISAGREEING: Duration = Duration::from_secs(3600);
pub const WINDOW: usize = 50;
pub const MIN_ANSWERS: usize = 20;
pub const MIN_AGREEMENT: f64 = 0.3;

#[derive(Debug, Default)]
pub struct Guard {
    failures: u32,
    open_until: Option<Instant>,
    why: String,
    /// Whether each answered item's choice was the advisor's proposal,
    /// oldest first.
    answers: VecDeque<bool>,
    opened: u64,
}

/// The breaker as Health and `/metrics` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GuardState {
    pub open: bool,
    /// Why it is (or last was) open.
    pub why: String,
    pub failures_in_a_row: u32,
    /// Times it opened since start.
    pub opened: u64,
    /// Proposals people's answers agreed with, of those answered, over the
    /// window.
    pub agreed: usize,
    pub answered: usize,
}

impl Guard {
    /// Whether a call may go out at `now`; why not.
    pub fn allows(&self, now: Instant) -> Result<(), String> {
        match self.open_until {
            Some(until) if now < until => Err(self.why.clone()),
            _ => Ok(()),
        }
    }

    /// A call's end: a failure (with why) or a valid answer.
    pub fn called(&mut self, now: Instant, failure: Option<&str>) {
        match failure {
            None => {
                self.failures = 0;
                if self.open_until.is_some_and(|until| now >= until) {
                    self.open_until = None;
                }
            }
            Some(why) => {
                self.failures += 1;
                let half_open = self.open_until.is_some_and(|until| now >= until);
                if self.failures >= FAILURES || half_open {
                    self.open(
                        now,
                        COOL,
                        format!("{} failures in a row, the last: {why}", self.failures),
                    );
                }
            }
        }
    }

    /// A person answered an item the advisor proposed for.
    pub fn answered(&mut self, now: Instant, agreed: bool) {
        self.answers.push_back(agreed);
        while self.answers.len() > WINDOW {
            self.answers.pop_front();
        }
        let (agreed, answered) = self.agreement();
        if answered >= MIN_ANSWERS && (agreed as f64) < MIN_AGREEMENT * answered as f64 {
            self.open(
                now,
                COOL_DISAGREEING,
                format!("people chose its proposal in {agreed} of the last {answered} answers"),
            );
            // It is judged afresh on the answers after it closes.
            self.answers.clear();
        }
    }

    fn open(&mut self, now: Instant, cool: Duration, why: String) {
        self.open_until = Some(now + cool);
        self.why = why;
        self.opened += 1;
        tracing::warn!(why = %self.why, "advisor breaker open");
    }

    fn agreement(&self) -> (usize, usize) {
        (
            self.answers.iter().filter(|a| **a).count(),
            self.answers.len(),
        )
    }

    pub fn state(&self, now: Instant) -> GuardState {
        let (agreed, answered) = self.agreement();
        GuardState {
            open: self.allows(now).is_err(),
            why: self.why.clone(),
            failures_in_a_row: self.failures,
            opened: self.opened,
            agreed,
            answered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_open_it_and_one_success_after_the_cool_closes_it() {
        let mut g = Guard::default();
        let t0 = Instant::now();
        g.called(t0, Some("timeout"));
        g.called(t0, None);
        g.called(t0, Some("timeout"));
        g.called(t0, Some("timeout"));
        assert!(g.allows(t0).is_ok());
        g.called(t0, Some("timeout"));
        assert!(g.allows(t0).unwrap_err().contains("3 failures"));
        let later = t0 + COOL;
        assert!(g.allows(later).is_ok());
        // Half open: one more failure opens it again at once.
        g.called(later, Some("unreachable"));
        assert!(g.allows(later).is_err());
        let again = later + COOL;
        g.called(again, None);
        assert!(g.state(again).failures_in_a_row == 0 && !g.state(again).open);
        assert_eq!(g.state(again).opened, 2);
    }

    #[test]
    fn low_agreement_with_people_opens_it() {
        let mut g = Guard::default();
        let t0 = Instant::now();
        for i in 0..MIN_ANSWERS - 1 {
            g.answered(t0, i % 5 == 0);
        }
        assert!(g.allows(t0).is_ok(), "too few answers to judge");
        g.answered(t0, false);
        assert!(g.allows(t0).unwrap_err().contains("of the last 20"));
        let mut good = Guard::default();
        for i in 0..40 {
            good.answered(t0, i % 2 == 0);
        }
        assert!(good.allows(t0).is_ok());
        assert_eq!((good.state(t0).agreed, good.state(t0).answered), (20, 40));
    }
}
