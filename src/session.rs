//! The session cookie: `__Host-session=v1.<key id>.<payload>.<mac>`, HMAC-SHA256 signed.
//!
//! Two keys come from secrets, current and previous: cookies signed with either verify, new ones
//! are signed with the current key. Rotating (previous ← current, current ← new) is graceful;
//! replacing both logs everyone out (runbook: docs/runbooks/key-rotation.md).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use babybook_jobs::Id;

type HmacSha256 = Hmac<Sha256>;

pub const COOKIE_NAME: &str = "__Host-session";
/// Sessions last two weeks; signing in again renews.
pub const SESSION_TTL_SECONDS: i64 = 14 * 24 * 3600;
const VERSION: &str = "v1";

/// A signing key and its id (the first 8 hex digits of its SHA-256, so ids change with keys).
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
}

impl SigningKey {
    pub fn new(secret: &str) -> SigningKey {
        let digest = Sha256::digest(format!("babybook-session-key:{secret}").as_bytes());
        let id = crate::hex::encode(&digest[..4]);
        SigningKey {
            id,
            secret: secret.as_bytes().to_vec(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        <HmacSha256 as KeyInit>::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    /// A key for another purpose (CSRF, internal headers) derived from this one, so rotating the
    /// session secret rotates them too.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(b"babybook-derive:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

/// The current key and, during a rotation, the previous one.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

impl SessionKeys {
    /// The keys of the two secrets (`SESSION_KEY_CURRENT`, and `SESSION_KEY_PREVIOUS` during a
    /// rotation).
    pub fn new(current: &str, previous: Option<&str>) -> SessionKeys {
        SessionKeys {
            current: SigningKey::new(current),
            previous: previous.map(SigningKey::new),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }

    fn by_id(&self, id: &str) -> Option<&SigningKey> {
        self.all().find(|k| k.id == id)
    }
}

/// Who is signed in. Parsed from a verified cookie, never from anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Session id: what CSRF tokens are bound to.
    pub sid: String,
    pub uid: Id,
    pub aid: Id,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    Missing,
    Malformed,
    UnknownKey,
    BadSignature,
    Expired,
}

impl SessionError {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionError::Missing => "missing",
            SessionError::Malformed => "malformed",
            SessionError::UnknownKey => "unknown_key",
            SessionError::BadSignature => "bad_signature",
            SessionError::Expired => "expired",
        }
    }
}

impl Session {
    pub fn new(sid: String, uid: Id, aid: Id, now_s: i64) -> Session {
        Session {
            sid,
            uid,
            aid,
            iat: now_s,
            exp: now_s + SESSION_TTL_SECONDS,
        }
    }

    /// The cookie value, signed with the current key.
    pub fn seal(&self, keys: &SessionKeys) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let signed = format!("{VERSION}.{}.{payload}", keys.current.id);
        let mut mac = keys.current.mac();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// Verifies a cookie value: known key, valid MAC (constant-time), not expired.
    pub fn open(value: &str, keys: &SessionKeys, now_s: i64) -> Result<Session, SessionError> {
        if value.len() > 1024 {
            return Err(SessionError::Malformed);
        }
        let mut parts = value.split('.');
        let (Some(version), Some(key_id), Some(payload), Some(tag_text), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        if version != VERSION {
            return Err(SessionError::Malformed);
        }
        let key = keys.by_id(key_id).ok_or(SessionError::UnknownKey)?;
        let tag = URL_SAFE_NO_PAD.decode(tag_text).map_err(|_| SessionError::Malformed)?;
        let signed = &value[..value.len() - tag_text.len() - 1];
        let mut mac = key.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).map_err(|_| SessionError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| SessionError::Malformed)?;
        let session: Session = serde_json::from_slice(&payload).map_err(|_| SessionError::Malformed)?;
        if session.exp <= now_s {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE_NAME}={value}; HttpOnly; Secure; Path=/; SameSite=None; Max-Age={SESSION_TTL_SECONDS}")
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; Secure; Path=/; SameSite=None; Max-Age=0")
}

/// The value of the first cookie called `name` in a `Cookie` header. Junk pairs are skipped.
pub fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn session() -> Session {
        Session::new(
            "sid-1".into(),
            Id::from_random_bytes([1; 16]),
            Id::from_random_bytes([2; 16]),
            NOW,
        )
    }

    #[test]
    fn a_sealed_session_opens_with_the_same_keys() {
        let k = SessionKeys::new("current-secret-0123456789abcdef0123", None);
        let value = session().seal(&k);
        assert!(value.starts_with(&format!("v1.{}.", k.current.id())));
        assert_eq!(Session::open(&value, &k, NOW + 10), Ok(session()));
    }

    #[test]
    fn flipping_any_byte_fails_verification() {
        let k = SessionKeys::new("current-secret-0123456789abcdef0123", None);
        let value = session().seal(&k);
        for i in 0..value.len() {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != value {
                assert!(
                    Session::open(&tampered, &k, NOW).is_err(),
                    "byte {i} flipped still verifies"
                );
            }
        }
    }

    #[test]
    fn rotation_accepts_the_previous_key_until_it_is_removed() {
        let old = SessionKeys::new("old-secret-0123456789abcdef0123456789", None);
        let value = session().seal(&old);
        let rotated = SessionKeys::new(
            "new-secret-0123456789abcdef0123456789",
            Some("old-secret-0123456789abcdef0123456789"),
        );
        assert!(Session::open(&value, &rotated, NOW).is_ok());
        let finished = SessionKeys::new("new-secret-0123456789abcdef0123456789", None);
        assert_eq!(Session::open(&value, &finished, NOW), Err(SessionError::UnknownKey));
    }

    #[test]
    fn expired_and_malformed_cookies_are_refused() {
        let k = SessionKeys::new("current-secret-0123456789abcdef0123", None);
        let value = session().seal(&k);
        assert_eq!(
            Session::open(&value, &k, NOW + SESSION_TTL_SECONDS),
            Err(SessionError::Expired)
        );
        for junk in [
            "",
            "v1",
            "v1.a.b",
            "v2.a.b.c",
            "v1.a.b.c.d",
            "v1.%%%.@@.!!",
            &"x".repeat(5000),
        ] {
            assert!(Session::open(junk, &k, NOW).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_cookie_signed_by_another_key_with_the_same_id_fails() {
        let k = SessionKeys::new("current-secret-0123456789abcdef0123", None);
        let value = session().seal(&k);
        let forged_tag = URL_SAFE_NO_PAD.encode([0u8; 32]);
        let forged = format!("{}.{forged_tag}", &value[..value.rfind('.').unwrap()]);
        assert_eq!(Session::open(&forged, &k, NOW), Err(SessionError::BadSignature));
    }

    #[test]
    fn the_cookie_has_every_attribute_the_spec_lists() {
        let header = set_cookie("abc");
        for attr in ["__Host-session=abc", "HttpOnly", "Secure", "Path=/", "SameSite=None"] {
            assert!(header.contains(attr), "missing {attr}");
        }
        assert!(!header.contains("Domain"), "__Host- cookies must not set Domain");
    }

    #[test]
    fn cookie_values_are_found_among_junk() {
        let header = "theme=dark; junk; __Host-session=v1.a.b.c ; other=1";
        assert_eq!(cookie_value(header, COOKIE_NAME), Some("v1.a.b.c"));
        assert_eq!(cookie_value("a=b", COOKIE_NAME), None);
    }
}
