//! A recipient link's optional passphrase (`share::link`), checked at the edge before any cached
//! copy of the page is served: the rules of a new passphrase, the form's fields, and the two
//! cookies the form uses, both scoped to the link's own path (`/s/<token>`).
//!
//! - `__Secure-link-pass`: the pass. After a correct answer the browser carries it for a day
//!   (`v1.<issued at, epoch s>.<mac>`, HMAC-SHA256 of the link's token hash and the time under a
//!   key derived from the session key; the previous key is accepted during a rotation). It holds
//!   nothing but that: the passphrase is never in a cookie, a log or a cache.
//! - `__Secure-link-form`: the form's guard, a double-submit token (`crate::csrf`'s, bound to the
//!   link) that the form page sets and repeats in a hidden field. `SameSite=Strict`, so a page of
//!   another site that posts to the link sends no cookie and is refused: the form works without
//!   JavaScript, which cannot send the API's `X-CSRF-Token` header.
//!
//! The passphrase is stored only as a salted PBKDF2 hash (`crate::password`'s format), made and
//! checked by the runtime's Web Crypto. It is compared as typed, after trimming the spaces around
//! it (no case folding or Unicode normalisation: what the family typed is what the relative types).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::session::{SessionKeys, SigningKey};
use crate::share::{ShareToken, TokenHash};

pub const PASS_COOKIE: &str = "__Secure-link-pass";
pub const FORM_COOKIE: &str = "__Secure-link-form";
/// How long a correct answer lets a browser in (the issue's "a day").
pub const PASS_TTL_SECONDS: i64 = 24 * 3600;
/// How long a form page's guard stays valid: a form left open longer is shown again.
pub const FORM_TTL_SECONDS: i64 = 3600;
/// The form's fields.
pub const PASSPHRASE_FIELD: &str = "passphrase";
pub const FORM_TOKEN_FIELD: &str = "form_token";
/// A new passphrase's length, in characters after trimming. Eight is the floor a guesser held to
/// five tries a minute per link meets; 128 keeps the form's body small.
pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;
/// The form's body limit: two fields, URL-encoded (a 128-character passphrase of 4-byte
/// characters percent-encodes to 1,536 bytes).
pub const FORM_BODY_LIMIT: usize = 2048;
const VERSION: &str = "v1";
const PASS_PURPOSE: &str = "share-link-pass";

/// A new passphrase, trimmed, or the problem to name in a validation error.
pub fn check_new(passphrase: &str) -> Result<String, String> {
    let trimmed = passphrase.trim();
    let chars = trimmed.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) || trimmed.chars().any(char::is_control) {
        return Err(format!(
            "must be {MIN_CHARS} to {MAX_CHARS} characters of text, or null for none"
        ));
    }
    Ok(trimmed.to_owned())
}

/// What the form posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Trimmed; empty when the field was missing.
    pub passphrase: String,
    pub form_token: Option<String>,
}

impl Answer {
    /// Reads an `application/x-www-form-urlencoded` body. Unknown fields are ignored; a field
    /// given twice counts once (the first).
    pub fn parse(body: &[u8]) -> Answer {
        let mut passphrase = None;
        let mut form_token = None;
        for (name, value) in url::form_urlencoded::parse(body) {
            match name.as_ref() {
                PASSPHRASE_FIELD if passphrase.is_none() => passphrase = Some(value.trim().to_owned()),
                FORM_TOKEN_FIELD if form_token.is_none() => form_token = Some(value.into_owned()),
                _ => {}
            }
        }
        Answer {
            passphrase: passphrase.unwrap_or_default(),
            form_token,
        }
    }
}

/// What the form's guard token is bound to: the link.
pub fn form_binding(token: &TokenHash) -> String {
    format!("share-link-form:{}", token.to_hex())
}

fn mac(key: &SigningKey, token: &TokenHash, issued_at_s: i64) -> Vec<u8> {
    let derived = key.derive(PASS_PURPOSE);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&derived).expect("HMAC takes any key length");
    mac.update(format!("{VERSION}|{}|{issued_at_s}", token.to_hex()).as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The pass cookie's value for `token`, issued at `now_s`.
pub fn issue_pass(keys: &SessionKeys, token: &TokenHash, now_s: i64) -> String {
    let tag = URL_SAFE_NO_PAD.encode(mac(&keys.current, token, now_s));
    format!("{VERSION}.{now_s}.{tag}")
}

/// Whether `value` is a pass this edge signed for `token`, issued in the last day.
pub fn pass_admits(value: &str, keys: &SessionKeys, token: &TokenHash, now_s: i64) -> bool {
    let mut parts = value.split('.');
    let (Some(VERSION), Some(issued), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued_at_s) = issued.parse::<i64>() else {
        return false;
    };
    if issued_at_s > now_s + 60 || now_s - issued_at_s > PASS_TTL_SECONDS {
        return false;
    }
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    keys.all().any(|k| bool::from(mac(k, token, issued_at_s).ct_eq(&tag)))
}

/// The link's own path: what both cookies are scoped to and the form posts to.
pub fn link_path(token: &ShareToken) -> String {
    format!("/s/{}", token.as_text())
}

/// `Set-Cookie` of the pass: `HttpOnly`, `Secure`, the link's path only, sent when the relative
/// opens the link from a message (`Lax`), for a day.
pub fn pass_set_cookie(token: &ShareToken, value: &str) -> String {
    format!(
        "{PASS_COOKIE}={value}; HttpOnly; Secure; Path={}; SameSite=Lax; Max-Age={PASS_TTL_SECONDS}",
        link_path(token)
    )
}

/// `Set-Cookie` of the form's guard: `SameSite=Strict`, so only a post from this site carries it.
pub fn form_set_cookie(token: &ShareToken, value: &str) -> String {
    format!(
        "{FORM_COOKIE}={value}; HttpOnly; Secure; Path={}; SameSite=Strict; Max-Age={FORM_TTL_SECONDS}",
        link_path(token)
    )
}

/// `Set-Cookie` that drops the form's guard once it has served.
pub fn form_clear_cookie(token: &ShareToken) -> String {
    format!(
        "{FORM_COOKIE}=; HttpOnly; Secure; Path={}; SameSite=Strict; Max-Age=0",
        link_path(token)
    )
}

/// The `form-action` of the form page's CSP: the link's own URL, nothing else.
pub fn form_action_source(origin: &str, token: &ShareToken) -> String {
    format!("{}{}", origin.trim_end_matches('/'), link_path(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn hash(b: u8) -> TokenHash {
        TokenHash([b; 32])
    }

    #[test]
    fn a_pass_admits_its_own_link_for_a_day_and_nothing_else() {
        let k = SessionKeys::new("k1-current-secret-0123456789abcdef", None);
        let pass = issue_pass(&k, &hash(1), NOW);
        assert!(pass_admits(&pass, &k, &hash(1), NOW));
        assert!(pass_admits(&pass, &k, &hash(1), NOW + PASS_TTL_SECONDS));
        assert!(
            !pass_admits(&pass, &k, &hash(1), NOW + PASS_TTL_SECONDS + 1),
            "a day, no more"
        );
        assert!(!pass_admits(&pass, &k, &hash(2), NOW), "another link's pass");
        assert!(!pass_admits(
            &pass,
            &SessionKeys::new("another-secret-0123456789abcdef00", None),
            &hash(1),
            NOW
        ));
        // Moving the issue time forward (to live longer) breaks the mac.
        let later = pass.replacen(&NOW.to_string(), &(NOW + 3600).to_string(), 1);
        assert!(!pass_admits(&later, &k, &hash(1), NOW + PASS_TTL_SECONDS + 10));
        for junk in ["", "v1", "v1..", "v2.1.x", &format!("{pass}.x"), "v1.abc.def"] {
            assert!(!pass_admits(junk, &k, &hash(1), NOW), "{junk:?}");
        }
    }

    #[test]
    fn a_pass_signed_before_a_key_rotation_still_admits() {
        let old = SessionKeys::new("old-secret-0123456789abcdef012345", None);
        let pass = issue_pass(&old, &hash(3), NOW);
        let rotated = SessionKeys::new(
            "new-secret-0123456789abcdef012345",
            Some("old-secret-0123456789abcdef012345"),
        );
        assert!(pass_admits(&pass, &rotated, &hash(3), NOW + 10));
    }

    #[test]
    fn a_new_passphrase_is_8_to_128_characters_of_text_trimmed() {
        assert_eq!(check_new("  bolo de fubá  ").as_deref(), Ok("bolo de fubá"));
        assert!(check_new("1234567").is_err());
        assert!(check_new("        12345678        ").is_ok());
        assert!(check_new(&"é".repeat(128)).is_ok());
        assert!(check_new(&"é".repeat(129)).is_err());
        assert!(check_new("tab\tinside1").is_err());
    }

    #[test]
    fn the_form_body_is_read_as_a_browser_sends_it() {
        let a = Answer::parse(b"form_token=n.m&passphrase=+bolo+de+fub%C3%A1+&passphrase=second&x=1");
        assert_eq!(a.passphrase, "bolo de fubá");
        assert_eq!(a.form_token.as_deref(), Some("n.m"));
        let empty = Answer::parse(b"");
        assert_eq!((empty.passphrase.as_str(), empty.form_token), ("", None));
        // Not a form at all: nothing is read, nothing panics.
        let junk = Answer::parse(&[0xff, 0x00, b'%', b'=', b'&']);
        assert_eq!(junk.form_token, None);
    }

    #[test]
    fn both_cookies_are_scoped_to_the_links_path_and_secure() {
        let token = ShareToken::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let pass = pass_set_cookie(&token, "v");
        let form = form_set_cookie(&token, "v");
        for cookie in [&pass, &form, &form_clear_cookie(&token)] {
            for attr in ["HttpOnly", "Secure", "Path=/s/AAAAAAAAAAAAAAAAAAAAAA;"] {
                assert!(cookie.contains(attr), "{cookie}: {attr}");
            }
            assert!(!cookie.contains("Domain"), "{cookie}");
        }
        assert!(pass.contains("SameSite=Lax") && pass.contains("Max-Age=86400"));
        assert!(form.contains("SameSite=Strict"));
        assert_eq!(
            form_action_source("https://share.babybook.com/", &token),
            "https://share.babybook.com/s/AAAAAAAAAAAAAAAAAAAAAA"
        );
    }
}
