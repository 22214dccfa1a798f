//! Share tokens: 128 random bits, base64url (22 characters), shown to the family once. Only the
//! SHA-256 of the token's bytes is stored, so a database leak does not leak working links.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A syntactically valid share token. Whether it names a live link is the database's call.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareToken([u8; ShareToken::BYTES]);

/// What a malformed token is: rejected before the cache and the database are touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedToken;

impl ShareToken {
    pub const BYTES: usize = 16;
    /// base64url without padding of 16 bytes.
    pub const TEXT_LEN: usize = 22;

    /// Accepts exactly the canonical encoding: 22 base64url characters whose unused low bits are
    /// zero, so one token has one spelling (and one cache key).
    pub fn parse(text: &str) -> Result<ShareToken, MalformedToken> {
        if text.len() != Self::TEXT_LEN
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(MalformedToken);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| MalformedToken)?;
        let bytes: [u8; Self::BYTES] = bytes.try_into().map_err(|_| MalformedToken)?;
        Ok(ShareToken(bytes))
    }

    pub fn from_bytes(bytes: [u8; Self::BYTES]) -> ShareToken {
        ShareToken(bytes)
    }

    /// A new token from the platform CSPRNG.
    pub fn generate() -> Result<ShareToken, getrandom::Error> {
        Ok(ShareToken(crate::secure_random::bytes()?))
    }

    pub fn as_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for ShareToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A token is a bearer credential: it never reaches a log, even through Debug.
        f.write_str("ShareToken([REDACTED])")
    }
}

/// SHA-256 of a token: what the database stores and the cache key is made of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<TokenHash> {
        crate::hex::decode(text).map(TokenHash)
    }

    /// From the database's `bytea` (32 bytes, or nothing).
    pub fn from_bytes(bytes: &[u8]) -> Option<TokenHash> {
        <[u8; 32]>::try_from(bytes).ok().map(TokenHash)
    }

    /// The first 12 hex digits, enough to correlate log lines without being usable.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_owned()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_have_128_bits_and_22_url_safe_characters() {
        let a = ShareToken::generate().unwrap();
        let b = ShareToken::generate().unwrap();
        assert_ne!(a, b);
        let text = a.as_text();
        assert_eq!(text.len(), ShareToken::TEXT_LEN);
        assert_eq!(ShareToken::parse(&text), Ok(a));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = ShareToken::from_bytes([7; 16]).as_text();
        let rows = [
            ("", "empty"),
            ("abc", "short"),
            ("AAAAAAAAAAAAAAAAAAAAAAAA", "long"),
            ("AAAAAAAAAAAAAAAAAAAA+/", "standard base64 alphabet"),
            ("AAAAAAAAAAAAAAAAAAAA%2", "percent"),
            ("AAAAAAAAAAAAAAAAAAAAAB", "non-canonical trailing bits"),
            ("ÀAAAAAAAAAAAAAAAAAAA", "non-ascii"),
        ];
        for (text, why) in rows {
            assert_eq!(ShareToken::parse(text), Err(MalformedToken), "{why}: {text:?}");
        }
        assert!(ShareToken::parse(&good).is_ok());
    }

    #[test]
    fn the_hash_is_sha256_of_the_token_bytes() {
        let token = ShareToken::from_bytes([0; 16]);
        assert_eq!(
            token.hash().to_hex(),
            "374708fff7719dd5979ec875d56cd2286f6d3cf7ec317a3b25632aab28ec37bb"
        );
        assert_eq!(TokenHash::from_hex(&token.hash().to_hex()), Some(token.hash()));
    }

    #[test]
    fn tokens_never_print() {
        let token = ShareToken::from_bytes([1; 16]);
        assert!(!format!("{token:?}").contains(&token.as_text()));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_what_it_prints(text in ".{0,40}") {
            if let Ok(token) = ShareToken::parse(&text) {
                prop_assert_eq!(token.as_text(), text);
            }
        }
    }
}
