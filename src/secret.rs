//! Comparing a presented secret with the configured one.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `given` is the secret `expected`, in time that depends on neither's content nor
/// length: both are hashed to 32 bytes first, and the digests compared in constant time. (A
/// length check first, or `==`, tells a guesser the token's length or its first wrong byte.)
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    bool::from(a.ct_eq(&b)) && !expected.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_secret_matches_whatever_the_lengths() {
        let secret = "0123456789abcdef0123456789abcdef"; // secret-scan: allow (a test value)
        assert!(same_secret(secret, secret));
        for other in [
            "",
            "0",
            "0123456789abcdef0123456789abcdee",
            "0123456789abcdef0123456789abcdef0",
            "x".repeat(4096).as_str(),
        ] {
            assert!(!same_secret(other, secret), "{other:?}");
        }
        assert!(!same_secret("", ""), "an empty secret matches nothing");
    }
}
