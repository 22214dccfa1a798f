//! Device cookies (OWASP Authentication Cheat Sheet, "Device Cookies"): a browser that signed in
//! as an email before carries a signed cookie saying so, and is not subject to the per-email
//! ceiling that a guess spread over many networks trips. Strangers can then not lock a family
//! member out; the ceiling still refuses them, and still alerts.
//!
//! `__Host-device=v1.<email key>.<issued at, epoch s>.<mac>`: the email key is the same digest the
//! limiters use ([`crate::rate_limit::email_digest`]), so the cookie holds no email; the mac is
//! HMAC-SHA256 under a key derived from the session key (rotating that rotates this too; the
//! previous key is accepted during a rotation, like sessions).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::session::{SessionKeys, SigningKey};

pub const COOKIE_NAME: &str = "__Host-device";
/// How long a browser stays known after a sign-in (a new sign-in renews it).
pub const DEVICE_TTL_SECONDS: i64 = 180 * 24 * 3600;
const VERSION: &str = "v1";
const PURPOSE: &str = "device-cookie";

fn mac(key: &SigningKey, email_key: &str, issued_at_s: i64) -> Vec<u8> {
    let derived = key.derive(PURPOSE);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&derived).expect("HMAC takes any key length");
    mac.update(format!("{VERSION}|{email_key}|{issued_at_s}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The cookie's value for a sign-in as the email whose key is `email_key`, at `now_s`.
pub fn issue(keys: &SessionKeys, email_key: &str, now_s: i64) -> String {
    let tag = URL_SAFE_NO_PAD.encode(mac(&keys.current, email_key, now_s));
    format!("{VERSION}.{email_key}.{now_s}.{tag}")
}

/// Whether `value` is a device cookie this edge signed, not expired, for `email_key`.
pub fn vouches_for(value: &str, keys: &SessionKeys, email_key: &str, now_s: i64) -> bool {
    let mut parts = value.split('.');
    let (Some(VERSION), Some(key), Some(issued), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued_at_s) = issued.parse::<i64>() else {
        return false;
    };
    if key != email_key || issued_at_s > now_s + 60 || now_s - issued_at_s > DEVICE_TTL_SECONDS {
        return false;
    }
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    keys.all()
        .any(|k| bool::from(mac(k, email_key, issued_at_s).ct_eq(&tag)))
}

/// `Set-Cookie` after a sign-in, with the session cookie's attributes (seed §4.4): `HttpOnly`,
/// `Secure`, host-only (`__Host-`), sent with the app's credentialed calls.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE_NAME}={value}; HttpOnly; Secure; Path=/; SameSite=None; Max-Age={DEVICE_TTL_SECONDS}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> SessionKeys {
        SessionKeys {
            current: SigningKey::new(secret),
            previous: None,
        }
    }

    #[test]
    fn a_device_cookie_vouches_only_for_its_email_under_our_key_and_within_its_life() {
        let keys = keys("session-secret-for-device-tests-0123456789");
        let now = 1_800_000_000;
        let value = issue(&keys, "a1b2", now);
        assert!(vouches_for(&value, &keys, "a1b2", now + 10));
        assert!(!vouches_for(&value, &keys, "ffff", now), "another email");
        assert!(
            !vouches_for(&value, &keys, "a1b2", now + DEVICE_TTL_SECONDS + 1),
            "expired"
        );
        assert!(
            !vouches_for(&value, &self::keys("another-secret-0123456789abcdef"), "a1b2", now),
            "another key"
        );
        let forged = value.replacen(&now.to_string(), &(now + 5).to_string(), 1);
        assert!(!vouches_for(&forged, &keys, "a1b2", now + 10), "a changed date");
        for junk in [
            "",
            "v1",
            "v1.a1b2",
            "v2.a1b2.1.x",
            "v1.a1b2.x.y",
            "v1.a1b2.1.%%%",
            "v1.a1b2.1.x.extra",
        ] {
            assert!(!vouches_for(junk, &keys, "a1b2", now), "{junk:?}");
        }
        assert!(!value.contains('@'), "no email in the cookie");
    }

    #[test]
    fn a_cookie_signed_with_the_previous_key_still_vouches_during_a_rotation() {
        let old = keys("the-previous-session-secret-0123456789");
        let value = issue(&old, "a1b2", 100);
        let rotated = SessionKeys {
            current: SigningKey::new("the-current-session-secret-0123456789"),
            previous: Some(old.current.clone()),
        };
        assert!(vouches_for(&value, &rotated, "a1b2", 200));
    }
}
