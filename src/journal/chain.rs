//! The audit hash chain: each entry's hash covers the previous hash, its
//! kind and its body, so changing or removing any record breaks every hash
//! after it.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn link(prev_hash: &str, kind: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update([0u8]);
    hasher.update(kind.as_bytes());
    hasher.update([0u8]);
    hasher.update(body.as_bytes());
    hex::encode(hasher.finalize())
}

/// Where a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

/// A checkpoint of the chain is kept every this many records
/// (`chain_marks`): one record's place is verified from the checkpoint
/// before it to the one after it, in time independent of the journal's
/// length.
pub const MARK_EVERY: i64 = 1024;

/// Checks entries given in order as (seq, kind, body, prev_hash, hash).
pub fn verify<I>(entries: I) -> Result<u64, Break>
where
    I: IntoIterator<Item = (i64, String, String, String, String)>,
{
    verify_from(GENESIS, entries).map(|(count, _)| count)
}

/// Checks entries that follow the entry whose hash is `start`; the count
/// checked and the last hash.
pub fn verify_from<I>(start: &str, entries: I) -> Result<(u64, String), Break>
where
    I: IntoIterator<Item = (i64, String, String, String, String)>,
{
    let mut expected_prev = start.to_string();
    let mut count = 0;
    for (seq, kind, body, prev, hash) in entries {
        if prev != expected_prev {
            return Err(Break {
                seq,
                reason: "prev_hash does not match the entry before it".into(),
            });
        }
        if link(&prev, &kind, &body) != hash {
            return Err(Break {
                seq,
                reason: "hash does not match the entry's contents".into(),
            });
        }
        expected_prev = hash;
        count += 1;
    }
    Ok((count, expected_prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_body_breaks_the_chain() {
        let h1 = link(GENESIS, "decision", "a");
        let h2 = link(&h1, "review", "b");
        let good = vec![
            (
                1,
                "decision".to_string(),
                "a".to_string(),
                GENESIS.to_string(),
                h1.clone(),
            ),
            (
                2,
                "review".to_string(),
                "b".to_string(),
                h1.clone(),
                h2.clone(),
            ),
        ];
        assert_eq!(verify(good.clone()), Ok(2));
        let mut bad = good;
        bad[0].2 = "tampered".into();
        assert_eq!(verify(bad).unwrap_err().seq, 1);
    }
}
