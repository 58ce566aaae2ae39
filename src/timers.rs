//! Timers by id: each id has at most one due time, and `due` hands out, in
//! time order, the ids whose time has come.
//!
//! The map is the truth; the heap may hold stale entries (an id set again or
//! cleared since), skipped when they surface. That is cheaper than removing
//! an entry from an ordered set at every change, which flows and review
//! items do many times in their lives. Stale entries are dropped once they
//! outnumber the live ones (the heap is rebuilt from the map), so memory
//! follows the timers set, not every timer ever set: a flow that ended
//! hours before its SLA would otherwise be held until then.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Utc};

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, String)>>,
    at: HashMap<String, DateTime<Utc>>,
}

impl Timers {
    /// Sets `id` to go off at `at`, or clears it for `None`.
    pub fn set(&mut self, id: &str, at: Option<DateTime<Utc>>) {
        match at {
            Some(at) => {
                if self.at.get(id) != Some(&at) {
                    self.at.insert(id.to_string(), at);
                    self.heap.push(Reverse((at, id.to_string())));
                    self.compact();
                }
            }
            None => {
                self.at.remove(id);
            }
        }
    }

    /// Rebuilds the heap from the map once stale entries are more than
    /// half of it: linear, and at most once per as many changes as there
    /// are live timers, so its cost per change stays constant.
    fn compact(&mut self) {
        const SLACK: usize = 1024;
        if self.heap.len() <= 2 * self.at.len() + SLACK {
            return;
        }
        self.heap = self
            .at
            .iter()
            .map(|(id, at)| Reverse((*at, id.clone())))
            .collect();
    }

    /// Entries the heap holds, stale ones included (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.heap.len()
    }

    /// Takes off and returns the ids due at `now`, earliest first (ties by id).
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, id))) = self.heap.pop() else {
                break;
            };
            if self.at.get(&id) != Some(&at) {
                continue;
            }
            self.at.remove(&id);
            due.push(id);
        }
        due
    }

    /// How many ids have a timer set.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 9, minute, 0).unwrap()
    }

    #[test]
    fn stale_entries_do_not_pile_up() {
        let mut timers = Timers::default();
        timers.set("live", Some(t(30)));
        for n in 0..100_000 {
            let id = format!("f{n}");
            timers.set(&id, Some(t(50)));
            timers.set(&id, None);
        }
        assert!(
            timers.held() <= 2 * timers.len() + 1025,
            "{}",
            timers.held()
        );
        assert_eq!(timers.due(t(59)), vec!["live".to_string()]);
    }

    #[test]
    fn a_reset_or_cleared_timer_goes_off_once_at_its_last_time() {
        let mut timers = Timers::default();
        timers.set("b", Some(t(5)));
        timers.set("a", Some(t(5)));
        timers.set("c", Some(t(1)));
        timers.set("c", Some(t(9)));
        timers.set("d", Some(t(2)));
        timers.set("d", None);
        timers.set("e", Some(t(3)));
        timers.set("e", Some(t(3)));
        assert_eq!(timers.len(), 4);
        assert_eq!(timers.due(t(0)), Vec::<String>::new());
        assert_eq!(timers.due(t(5)), ["e", "a", "b"]);
        assert_eq!(timers.due(t(8)), Vec::<String>::new());
        assert_eq!(timers.due(t(9)), ["c"]);
        assert!(timers.is_empty());
    }
}
