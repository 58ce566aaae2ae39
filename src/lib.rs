//! signalbox: an operations console over an embedded process orchestrator.
//!
//! The engine cycle is signal → context → decide → flow → review, with every
//! step journaled. See ARCHITECTURE.md for the map.

pub mod advisor;
pub mod bench;
pub mod cel_bounded;
pub mod cel_check;
pub mod cluster;
pub mod config;
pub mod console;
pub mod context;
pub mod decide;
pub mod deploy;
pub mod engine;
pub mod flow;
pub mod hash;
pub mod intake;
pub mod journal;
pub mod metrics;
pub mod noise;
pub mod outbound;
pub mod page;
pub mod paging;
pub mod playbook;
pub mod replay;
pub mod review;
pub mod setup;
pub mod signal;
pub mod sim;
#[cfg(test)]
mod testkit;
pub mod timefmt;
pub mod timers;

use thiserror::Error;

/// Hash maps and sets on the engine's hot paths (signal ids, orders,
/// decisions awaiting outcomes): foldhash, randomly seeded as hashbrown's
/// default is, instead of std's SipHash, which the bench showed at ~4% of
/// the engine thread (2026-11-26).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// How a journal numbers the decisions, review items, flows, pages and
/// incidents it opens: `stride·k + offset` for k = 1, 2, ... A single
/// process counts 1, 2, 3...; a cluster's partition p counts with stride
/// 100 and offset p, so every id names one thing in the whole cluster
/// and stays short (`D0000103` is partition 3's first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbering {
    pub stride: u64,
    pub offset: u64,
}

impl Default for Numbering {
    fn default() -> Numbering {
        Numbering {
            stride: 1,
            offset: 0,
        }
    }
}

impl Numbering {
    /// The first number of this numbering past `last`.
    pub fn after(self, last: u64) -> u64 {
        let stride = self.stride.max(1);
        (last / stride + 1) * stride + self.offset % stride
    }

    /// How many numbers were given, `last` being the last.
    pub fn count(self, last: u64) -> u64 {
        last / self.stride.max(1)
    }
}

#[cfg(test)]
mod numbering_tests {
    use super::Numbering;

    #[test]
    fn a_partition_numbers_within_its_residue_and_a_process_counts_from_one() {
        let one = Numbering::default();
        assert_eq!((one.after(0), one.after(1), one.count(7)), (1, 2, 7));
        let p3 = Numbering {
            stride: 100,
            offset: 3,
        };
        assert_eq!(p3.after(0), 103);
        assert_eq!(p3.after(103), 203);
        // Past a number it did not give (a journal written otherwise).
        assert_eq!(p3.after(250), 303);
        assert_eq!(p3.count(303), 3);
    }
}

/// Gives back most of a map's table once it holds under a quarter of what
/// it has room for (a burst's peak), keeping room for twice what it holds:
/// memory follows what is held, and a map that shrinks and grows again
/// rehashes once per halving, not per entry.
pub fn shrink<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut std::collections::HashMap<K, V, S>,
) {
    if let Some(room) = room_to_keep(map.len(), map.capacity()) {
        map.shrink_to(room);
    }
}

/// `shrink`'s rule for any collection: the room to keep when one holding
/// `len` has room for `capacity`, if it is time to give some back.
pub fn room_to_keep(len: usize, capacity: usize) -> Option<usize> {
    (capacity > 4 * len.max(1024)).then_some(2 * len)
}

/// A playbook or step catalogue that cannot be used.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CatalogueError {
    #[error("{file}: {error}")]
    Parse { file: String, error: String },
    #[error("{file}: `{item}` refers to `{missing}`, which is not defined")]
    Reference {
        file: String,
        item: String,
        missing: String,
    },
    #[error("{file}: `{item}`: {reason}")]
    Invalid {
        file: String,
        item: String,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_map_emptied_after_a_burst_gives_its_table_back() {
        let mut map: crate::FastMap<u64, u64> = Default::default();
        map.extend((0..100_000).map(|n| (n, n)));
        map.retain(|&n, _| n < 10);
        let peak = map.capacity();
        crate::shrink(&mut map);
        assert!(map.capacity() < peak / 16, "{} of {peak}", map.capacity());
        assert_eq!(map.len(), 10);
        let before = map.capacity();
        crate::shrink(&mut map);
        assert_eq!(map.capacity(), before, "shrunk once, not again");
    }
}
