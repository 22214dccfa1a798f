//! Password hashes: PBKDF2-HMAC-SHA256, stored as `pbkdf2-sha256$<iterations>$<salt>$<hash>`
//! (base64url). The iteration count lives in each hash, so the work factor can rise over time.
//!
//! Work factor: 100 000 iterations. The Worker derives through the runtime's Web Crypto
//! (`edge::kdf`, native code: 18 ms of Worker CPU per sign-in in the benchmark, `http.sign_in`),
//! and in wasm (here) only for a stored work factor the runtime refuses. Workers on the paid
//! plan allow 30 s of CPU per request; the free plan's 10 ms would not fit any acceptable
//! password hash, which is why login requires the paid plan.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const DEFAULT_ITERATIONS: u32 = 100_000;
const MIN_ITERATIONS: u32 = 10_000;
const MAX_ITERATIONS: u32 = 2_000_000;
const PREFIX: &str = "pbkdf2-sha256";

pub fn hash_password(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    format_hash(iterations, salt, &out)
}

/// The stored form of a derivation made elsewhere (the Worker's Web Crypto).
pub fn format_hash(iterations: u32, salt: &[u8], derived: &[u8]) -> String {
    format!(
        "{PREFIX}${iterations}${}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(derived)
    )
}

/// A stored hash, read: what a derivation needs and what it must equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHash {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub expected: Vec<u8>,
}

impl StoredHash {
    /// `None` for a malformed hash (it never verifies), or a work factor outside the accepted
    /// range, or a derived length outside 16–64 bytes.
    pub fn parse(stored: &str) -> Option<StoredHash> {
        let mut parts = stored.split('$');
        let (Some(PREFIX), Some(iterations), Some(salt), Some(expected), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let iterations = iterations.parse::<u32>().ok()?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return None;
        }
        let (Ok(salt), Ok(expected)) = (URL_SAFE_NO_PAD.decode(salt), URL_SAFE_NO_PAD.decode(expected)) else {
            return None;
        };
        (16..=64).contains(&expected.len()).then_some(StoredHash {
            iterations,
            salt,
            expected,
        })
    }

    /// Whether `derived` (PBKDF2 of the candidate password with this salt and work factor) is
    /// the stored hash, in constant time.
    pub fn matches(&self, derived: &[u8]) -> bool {
        derived.len() == self.expected.len() && bool::from(derived.ct_eq(&self.expected))
    }
}

/// Checks a password against a stored hash in constant time, deriving in this process (the host,
/// and the Worker for a work factor its runtime's Web Crypto refuses). A malformed stored hash
/// never verifies.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Some(hash) = StoredHash::parse(stored) else {
        return false;
    };
    let mut out = vec![0u8; hash.expected.len()];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &hash.salt, hash.iterations, &mut out);
    hash.matches(&out)
}

/// What an unknown email is checked against, so a miss costs the same as a wrong password and
/// timing does not reveal which emails have accounts.
pub const DUMMY_HASH: &str = "pbkdf2-sha256$100000$ZHVtbXktc2FsdC0xMjM0NQ$zQ0BpO6Ztx0z8J0nO1vA1kvGQmJ2mX4u1m5P9t1YJZQ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_hash_reads_back_what_any_derivation_must_equal() {
        let stored = hash_password("correct horse", b"salt-salt-salt-16", 10_000);
        let hash = StoredHash::parse(&stored).expect("a hash of ours");
        assert_eq!(
            (hash.iterations, hash.salt.as_slice()),
            (10_000, &b"salt-salt-salt-16"[..])
        );
        let mut derived = vec![0u8; hash.expected.len()];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"correct horse", &hash.salt, hash.iterations, &mut derived);
        assert!(
            hash.matches(&derived),
            "what the Web Crypto path derives is what it compares"
        );
        derived[0] ^= 1;
        assert!(!hash.matches(&derived));
        assert!(!hash.matches(&derived[..16]), "a shorter derivation never matches");
        for bad in [
            "pbkdf2-sha256$9999$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
            "pbkdf2-sha256$100000$c2FsdA$AAAA",
            "scrypt$100000$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
            "",
        ] {
            assert_eq!(StoredHash::parse(bad), None, "{bad}");
        }
        assert!(StoredHash::parse(DUMMY_HASH).is_some_and(|h| h.iterations == DEFAULT_ITERATIONS));
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash_password("correct horse", b"salt-0123456789", MIN_ITERATIONS);
        assert!(verify_password("correct horse", &stored));
        assert!(!verify_password("correct horsE", &stored));
        assert!(!verify_password("", &stored));
    }

    #[test]
    fn malformed_or_weak_hashes_never_verify() {
        let weak = hash_password("pw", b"salt", 1);
        for stored in [
            "",
            "plain",
            "pbkdf2-sha256$x$y$z",
            "md5$1$a$b",
            weak.as_str(),
            "pbkdf2-sha256$100000$@@$@@",
        ] {
            assert!(!verify_password("pw", stored), "{stored:?}");
        }
    }

    #[test]
    fn the_dummy_hash_is_well_formed_and_matches_no_password() {
        let parts: Vec<&str> = DUMMY_HASH.split('$').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1].parse::<u32>().unwrap(), DEFAULT_ITERATIONS);
        assert!(!verify_password("password", DUMMY_HASH));
    }
}
