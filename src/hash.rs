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

/// A short fingerprint of a secret keyed by another (HMAC-SHA-256, 8 hex
/// digits): it names what the secret stands for, and without `key` no one
/// can check a guess of the secret against it offline.
pub fn keyed_fingerprint(key: &[u8], secret: &str) -> String {
    use hmac::{KeyInit, Mac};
    // HMAC takes a key of any length; `new_from_slice` refuses none.
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
        return fingerprint(secret);
    };
    mac.update(secret.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..4])
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

    #[test]
    fn keyed_fingerprints_depend_on_the_key() {
        // RFC 4231, test case 2 ("Jefe"), the first 4 bytes.
        assert_eq!(
            keyed_fingerprint(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146"
        );
        assert_ne!(
            keyed_fingerprint(b"a", "abc"),
            keyed_fingerprint(b"b", "abc")
        );
        assert_ne!(keyed_fingerprint(b"a", "abc"), fingerprint("abc"));
    }
}
