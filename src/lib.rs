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
