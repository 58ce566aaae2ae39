//! Hashes for names and keys: short fingerprints that name a secret
//! without showing it, and stable keys derived from content.

use sha2::{Digest, Sha256};

/// The first `bytes` bytes of the SHA-256 of `parts` (joined by NUL), as
/// lower-case hex.
pub fn hex_digest(parts: &[&[u8]], bytes: usize) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part);
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..bytes.min(digest.len())])
}

/// A short, non-reversible fingerprint of a secret (8 hex digits), to
/// name what it stands for (a token, a PagerDuty integration) without
/// keeping or showing it.
pub fn fingerprint(secret: &str) -> String {
    hex_digest(&[secret.as_bytes()], 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_stable_and_distinct() {
        assert_eq!(fingerprint("abc"), "ba7816bf");
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
        assert_eq!(hex_digest(&[b"a", b"b"], 8).len(), 16);
        assert_ne!(hex_digest(&[b"a", b"b"], 8), hex_digest(&[b"ab"], 8));
    }
}
