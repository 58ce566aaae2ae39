//! What the engine has taken in: the identity of every signal journaled
//! (16 bytes each, not the ids: a repeat is counted, never decided twice),
//! signals by type and outcome, counts since start, and the next number it
//! gives a decision, review item or flow.

use super::{EngineCounts, SignalTally};

pub(super) struct Taken {
    seen: crate::FastSet<u128>,
    /// By type (`other` for types outside the playbook, so the set of keys
    /// stays bounded) and outcome.
    by_type: crate::FastMap<String, SignalTally>,
    pub counts: EngineCounts,
    next_id: u64,
    pub numbering: crate::Numbering,
}

impl Taken {
    pub fn new() -> Taken {
        Taken {
            seen: Default::default(),
            by_type: Default::default(),
            counts: EngineCounts::default(),
            next_id: 1,
            numbering: Default::default(),
        }
    }

    /// Whether a signal of this identity is new (and now seen).
    pub fn first_time(&mut self, identity: u128) -> bool {
        self.seen.insert(identity)
    }

    /// What a restart read back: every identity journaled, and the next id.
    pub fn restore(&mut self, seen: Vec<u128>, next_id: Option<u64>) {
        self.seen = seen.into_iter().collect();
        if let Some(next) = next_id {
            self.next_id = next;
        }
    }

    /// Counts one signal of `kind` (already `other` when outside the
    /// playbook).
    pub fn tally(&mut self, kind: &str, count: impl Fn(&mut SignalTally)) {
        // Found without building a key: this runs for every signal.
        match self.by_type.get_mut(kind) {
            Some(tally) => count(tally),
            None => count(self.by_type.entry(kind.to_string()).or_default()),
        }
    }

    pub fn by_type(&self) -> &crate::FastMap<String, SignalTally> {
        &self.by_type
    }

    /// The next number, taken.
    pub fn new_id(&mut self) -> u64 {
        let id = self.numbering.after(self.next_id.saturating_sub(1));
        self.next_id = id + 1;
        id
    }

    /// The next number, as the journal keeps it.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }
}
