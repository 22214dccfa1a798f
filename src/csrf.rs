//! CSRF protection: signed double-submit tokens bound to the session.
//!
//! The session cookie is `SameSite=None` (the API is on its own host), so this token is the only
//! CSRF defence (seed §2.1, §4.5). A token is `<nonce>.<mac>` where the MAC binds the nonce to the
//! session id (or to "anonymous" before sign-in). A write must send it both as the `__Host-csrf`
//! cookie and in `X-CSRF-Token`: equal (constant-time) and valid for the caller's session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::session::{SessionKeys, SigningKey};

pub const COOKIE_NAME: &str = "__Host-csrf";
pub const HEADER_NAME: &str = "x-csrf-token";
const ANONYMOUS: &str = "anonymous";
const PURPOSE: &str = "csrf-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfError {
    MissingHeader,
    MissingCookie,
    Mismatch,
    NotForThisSession,
}

impl CsrfError {
    pub fn as_str(self) -> &'static str {
        match self {
            CsrfError::MissingHeader => "missing_header",
            CsrfError::MissingCookie => "missing_cookie",
            CsrfError::Mismatch => "mismatch",
            CsrfError::NotForThisSession => "not_for_this_session",
        }
    }
}

fn tag(key: &SigningKey, binding: &str, nonce: &str) -> Vec<u8> {
    let derived = key.derive(PURPOSE);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&derived).expect("HMAC takes any key length");
    mac.update(binding.as_bytes());
    mac.update(b"|");
    mac.update(nonce.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A new token for the session `sid` (`None` before sign-in), from 16 random bytes.
pub fn issue(keys: &SessionKeys, sid: Option<&str>, random: [u8; 16]) -> String {
    let nonce = URL_SAFE_NO_PAD.encode(random);
    let mac = URL_SAFE_NO_PAD.encode(tag(&keys.current, sid.unwrap_or(ANONYMOUS), &nonce));
    format!("{nonce}.{mac}")
}

/// Checks a write's header token against its cookie token and the caller's session.
pub fn verify(
    keys: &SessionKeys,
    sid: Option<&str>,
    header: Option<&str>,
    cookie: Option<&str>,
) -> Result<(), CsrfError> {
    let header = header.filter(|h| !h.is_empty()).ok_or(CsrfError::MissingHeader)?;
    let cookie = cookie.filter(|c| !c.is_empty()).ok_or(CsrfError::MissingCookie)?;
    if header.len() != cookie.len() || !bool::from(header.as_bytes().ct_eq(cookie.as_bytes())) {
        return Err(CsrfError::Mismatch);
    }
    let (nonce, mac) = header.split_once('.').ok_or(CsrfError::NotForThisSession)?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| CsrfError::NotForThisSession)?;
    let binding = sid.unwrap_or(ANONYMOUS);
    let valid = keys.all().any(|key| bool::from(tag(key, binding, nonce).ct_eq(&mac)));
    if valid {
        Ok(())
    } else {
        Err(CsrfError::NotForThisSession)
    }
}

/// `Set-Cookie` for a token. Not `HttpOnly`: a same-site app may read it; the SPA on another
/// host uses the copy in the response body.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE_NAME}={token}; Secure; Path=/; SameSite=None; Max-Age={}",
        crate::session::SESSION_TTL_SECONDS
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Secure; Path=/; SameSite=None; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys::new("current-secret-0123456789abcdef0123", None)
    }

    #[test]
    fn a_token_verifies_for_its_own_session_only() {
        let k = keys();
        let token = issue(&k, Some("sid-a"), [3; 16]);
        assert_eq!(verify(&k, Some("sid-a"), Some(&token), Some(&token)), Ok(()));
        assert_eq!(
            verify(&k, Some("sid-b"), Some(&token), Some(&token)),
            Err(CsrfError::NotForThisSession)
        );
        assert_eq!(
            verify(&k, None, Some(&token), Some(&token)),
            Err(CsrfError::NotForThisSession)
        );
    }

    #[test]
    fn header_and_cookie_must_both_be_there_and_equal() {
        let k = keys();
        let token = issue(&k, None, [4; 16]);
        let other = issue(&k, None, [5; 16]);
        assert_eq!(verify(&k, None, None, Some(&token)), Err(CsrfError::MissingHeader));
        assert_eq!(verify(&k, None, Some(&token), None), Err(CsrfError::MissingCookie));
        assert_eq!(verify(&k, None, Some(&token), Some(&other)), Err(CsrfError::Mismatch));
        assert_eq!(
            verify(&k, None, Some("forged.value"), Some("forged.value")),
            Err(CsrfError::NotForThisSession)
        );
        assert_eq!(verify(&k, None, Some(""), Some("")), Err(CsrfError::MissingHeader));
    }

    #[test]
    fn tokens_survive_a_graceful_key_rotation() {
        let before = keys();
        let token = issue(&before, Some("s"), [6; 16]);
        let after = SessionKeys {
            current: SigningKey::new("next-secret-0123456789abcdef012345"),
            previous: Some(before.current.clone()),
        };
        assert_eq!(verify(&after, Some("s"), Some(&token), Some(&token)), Ok(()));
    }
}
