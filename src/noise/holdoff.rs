//! Alerts held off by their type's `hold` (`playbook::hold`): firing
//! alerts paused in case they are transient, and the state changes of
//! each alert that tell when it flaps and when it is stable again.
//! By fingerprint; pure data with the time passed in.
//!
//! A paused alert has no decision yet: a restart finds it undecided in the
//! journal and pauses it again. Flapping alerts (and the firing each one
//! holds back) are kept in a meta record, so a restart resumes them.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::playbook::hold::Flap;
use crate::signal::Signal;

/// The meta key the flapping alerts are journaled under.
pub const FLAPPING_KEY: &str = "flapping";

/// A firing alert waiting to see whether it resolves by itself.
#[derive(Debug, Clone)]
pub struct Paused {
    pub signal: std::sync::Arc<Signal>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// One alert's recent state changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Changes {
    /// When it changed state, within the flap window.
    pub at: VecDeque<DateTime<Utc>>,
    /// Whether its last state is firing.
    pub firing: bool,
    /// Since when it has been flapping (none: it is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping_since: Option<DateTime<Utc>>,
    /// Changes counted while flapping.
    #[serde(default)]
    pub flapped: u32,
    /// The last firing held while flapping: decided if it is still firing
    /// once stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Signal>,
}

impl Changes {
    fn last(&self) -> Option<DateTime<Utc>> {
        self.at.back().copied()
    }
}

/// A flap that ended: the alert has been stable for the flap's `stable`.
#[derive(Debug, Clone)]
pub struct Settled {
    pub fingerprint: String,
    pub since: DateTime<Utc>,
    pub changes: u32,
    /// The firing it held back, if it is still firing.
    pub firing: Option<Signal>,
}

#[derive(Debug, Default)]
pub struct HoldBook {
    pub paused: crate::FastMap<String, Paused>,
    pub alerts: crate::FastMap<String, Changes>,
    changed: bool,
}

impl HoldBook {
    /// Pauses a firing alert until `now + hold`.
    pub fn pause(
        &mut self,
        fingerprint: &str,
        signal: std::sync::Arc<Signal>,
        hold: Duration,
        now: DateTime<Utc>,
    ) {
        let paused = Paused {
            signal,
            since: now,
            until: now + hold,
        };
        self.paused.insert(fingerprint.to_string(), paused);
    }

    /// The paused alerts whose hold-off is over, oldest first.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Paused> {
        let due: Vec<String> = self
            .paused
            .iter()
            .filter(|(_, p)| p.until <= now)
            .map(|(f, _)| f.clone())
            .collect();
        let mut out: Vec<Paused> = due.iter().filter_map(|f| self.paused.remove(f)).collect();
        out.sort_by_key(|p| p.since);
        out
    }

    /// Counts a state change of the alert `fingerprint` (`firing` or not):
    /// whether this change made it start flapping. A repeat of its state
    /// is not a change.
    pub fn change(
        &mut self,
        fingerprint: &str,
        firing: bool,
        flap: &Flap,
        now: DateTime<Utc>,
    ) -> bool {
        let entry = self.alerts.entry(fingerprint.to_string()).or_default();
        if !entry.at.is_empty() && entry.firing == firing {
            return false;
        }
        // A first resolution with no firing seen is no change to count.
        if entry.at.is_empty() && !firing {
            return false;
        }
        entry.firing = firing;
        entry.at.push_back(now);
        while entry.at.front().is_some_and(|t| *t <= now - flap.within) {
            entry.at.pop_front();
        }
        if entry.flapping_since.is_some() {
            entry.flapped += 1;
            if !firing {
                entry.held = None;
            }
            self.changed = true;
            return false;
        }
        if entry.at.len() >= flap.changes as usize {
            entry.flapping_since = Some(now);
            entry.flapped = entry.at.len() as u32;
            self.changed = true;
            return true;
        }
        false
    }

    /// Whether the alert is flapping now.
    pub fn flapping(&self, fingerprint: &str) -> Option<&Changes> {
        self.alerts
            .get(fingerprint)
            .filter(|c| c.flapping_since.is_some())
    }

    /// Keeps `signal` as the firing a flapping alert holds back.
    pub fn hold(&mut self, fingerprint: &str, signal: &Signal) {
        if let Some(c) = self.alerts.get_mut(fingerprint) {
            c.held = Some(signal.clone());
            self.changed = true;
        }
    }

    /// Flaps that are over (no change for the flap's `stable`; every one,
    /// with no `flap` any more), and forgets the history of alerts quiet
    /// for longer than its window.
    pub fn settle(&mut self, now: DateTime<Utc>, flap: Option<&Flap>) -> Vec<Settled> {
        let mut out = Vec::new();
        self.alerts.retain(|fingerprint, c| {
            let last = c.last().unwrap_or(now);
            let stable = flap.is_none_or(|f| now - last >= f.stable());
            match c.flapping_since {
                Some(since) if stable => {
                    out.push(Settled {
                        fingerprint: fingerprint.clone(),
                        since,
                        changes: c.flapped,
                        firing: c.held.take().filter(|_| c.firing),
                    });
                    false
                }
                Some(_) => true,
                None => flap.is_some_and(|f| now - last < f.within),
            }
        });
        if !out.is_empty() {
            self.changed = true;
        }
        out
    }

    /// How many alerts flap now.
    pub fn flapping_count(&self) -> usize {
        self.alerts
            .values()
            .filter(|c| c.flapping_since.is_some())
            .count()
    }

    /// The flapping alerts as JSON, if they changed since the last call.
    pub fn take_changed(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let flapping: std::collections::BTreeMap<&String, &Changes> = self
            .alerts
            .iter()
            .filter(|(_, c)| c.flapping_since.is_some())
            .collect();
        serde_json::to_string(&flapping).ok()
    }

    /// Flapping alerts as journaled: back after a restart. Unreadable
    /// JSON is left out (the alerts flap again as they change).
    pub fn restore(&mut self, journaled: &str) {
        match serde_json::from_str::<std::collections::BTreeMap<String, Changes>>(journaled) {
            Ok(all) => self.alerts.extend(all),
            Err(e) => {
                tracing::warn!(error = %e, "flapping alerts unreadable in the journal: left out")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(m: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::minutes(m)
    }

    fn flap() -> Flap {
        Flap {
            changes: 4,
            within: Duration::minutes(10),
            stable: Some(Duration::minutes(15)),
        }
    }

    #[test]
    fn four_changes_in_ten_minutes_flap_until_fifteen_quiet_minutes() {
        let mut book = HoldBook::default();
        let f = flap();
        assert!(!book.change("a", true, &f, at(0)));
        assert!(!book.change("a", true, &f, at(1)), "a repeat is no change");
        assert!(!book.change("a", false, &f, at(2)));
        assert!(!book.change("a", true, &f, at(4)));
        assert!(book.change("a", false, &f, at(6)), "the fourth change");
        assert!(book.flapping("a").is_some());
        assert!(!book.change("a", true, &f, at(8)), "already flapping");
        book.hold(
            "a",
            &Signal {
                id: "s9".into(),
                ..Signal::default()
            },
        );
        assert!(
            book.settle(at(20), Some(&flap())).is_empty(),
            "12 minutes quiet: not yet"
        );
        assert!(book.flapping("a").is_some());
        let settled = book.settle(at(23), Some(&flap()));
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].changes, 5);
        assert_eq!(
            settled[0].firing.as_ref().map(|s| s.id.as_str()),
            Some("s9")
        );
        assert!(book.flapping("a").is_none());
    }

    #[test]
    fn slow_changes_never_flap_and_are_forgotten() {
        let mut book = HoldBook::default();
        let f = flap();
        for (i, m) in [0, 4, 8, 12, 16, 20].iter().enumerate() {
            assert!(!book.change("a", i % 2 == 0, &f, at(*m)), "at {m}");
        }
        assert!(book.settle(at(40), Some(&flap())).is_empty());
        assert!(book.alerts.is_empty(), "quiet for longer than the window");
    }

    #[test]
    fn a_flap_that_ends_resolved_releases_nothing() {
        let mut book = HoldBook::default();
        let f = flap();
        for (i, m) in [0, 1, 2, 3].iter().enumerate() {
            book.change("a", i % 2 == 0, &f, at(*m));
        }
        book.hold("a", &Signal::default());
        book.change("a", true, &f, at(4));
        book.change("a", false, &f, at(5));
        let settled = book.settle(at(30), Some(&flap()));
        assert!(settled[0].firing.is_none());
    }

    #[test]
    fn flapping_alerts_survive_a_restart_through_their_record() {
        let mut book = HoldBook::default();
        let f = flap();
        for (i, m) in [0, 1, 2, 3].iter().enumerate() {
            book.change("a", i % 2 == 0, &f, at(*m));
        }
        let journaled = book.take_changed().expect("changed");
        assert!(book.take_changed().is_none());
        let mut again = HoldBook::default();
        again.restore(&journaled);
        assert_eq!(again.flapping("a"), book.flapping("a"));
        again.restore("{not json");
        assert_eq!(again.flapping_count(), 1);
    }

    #[test]
    fn paused_alerts_come_due_oldest_first() {
        let mut book = HoldBook::default();
        let s = std::sync::Arc::new(Signal::default());
        book.pause("b", std::sync::Arc::clone(&s), Duration::minutes(2), at(1));
        book.pause("a", s, Duration::minutes(2), at(0));
        assert!(book.due(at(1)).is_empty());
        let due = book.due(at(3));
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].since, at(0));
        assert!(book.paused.is_empty());
    }
}
