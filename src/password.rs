//! Password hashes: PBKDF2-HMAC-SHA256, stored as `pbkdf2-sha256$<iterations>$<salt>$<hash>`
//! (base64url). The iteration count lives in each hash, so the work factor can rise over time.
//!
//! Work factor: 100 000 iterations, about 60–90 ms of Worker CPU per login (measured by the
//! benchmark). Workers on the paid plan allow 30 s of CPU per request; the free plan's 10 ms would
//! not fit any acceptable password hash, which is why login requires the paid plan.

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
    format!(
        "{PREFIX}${iterations}${}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(out)
    )
}

/// Checks a password against a stored hash in constant time. A malformed stored hash never
/// verifies.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some(PREFIX), Some(iterations), Some(salt), Some(expected), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return false;
    }
    let (Ok(salt), Ok(expected)) = (URL_SAFE_NO_PAD.decode(salt), URL_SAFE_NO_PAD.decode(expected)) else {
        return false;
    };
    let mut out = vec![0u8; expected.len().clamp(16, 64)];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out);
    out.len() == expected.len() && bool::from(out.ct_eq(&expected))
}

/// What an unknown email is checked against, so a miss costs the same as a wrong password and
/// timing does not reveal which emails have accounts.
pub const DUMMY_HASH: &str = "pbkdf2-sha256$100000$ZHVtbXktc2FsdC0xMjM0NQ$zQ0BpO6Ztx0z8J0nO1vA1kvGQmJ2mX4u1m5P9t1YJZQ";

#[cfg(test)]
mod tests {
    use super::*;

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
