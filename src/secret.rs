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

/// Who may use `/admin/*`: the `ADMIN_TOKENS` secret, one `name:token` pair per operator,
/// separated by commas or whitespace. Names are what the audit log records.
#[derive(Clone, Default)]
pub struct OperatorTokens(Vec<(String, String)>);

impl std::fmt::Debug for OperatorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "OperatorTokens({names:?}, tokens [REDACTED])")
    }
}

impl OperatorTokens {
    pub fn parse(text: &str) -> Result<OperatorTokens, String> {
        let mut tokens: Vec<(String, String)> = Vec::new();
        for pair in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
        {
            let Some((name, token)) = pair.split_once(':') else {
                return Err("each entry is name:token".into());
            };
            let name_ok = (1..=32).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
            if !name_ok {
                // Not echoed: a pasting mistake could put a token where the name goes.
                return Err("an operator name is not 1 to 32 of a-z 0-9 . _ -".into());
            }
            if token.len() < 32 {
                return Err(format!("{name}'s token must be at least 32 characters of random text"));
            }
            if tokens.iter().any(|(n, t)| n == name || t == token) {
                return Err(format!("{name} is listed twice, or shares a token"));
            }
            tokens.push((name.to_owned(), token.to_owned()));
        }
        Ok(OperatorTokens(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The operator whose token `given` is. Every token is compared, each in constant time, so
    /// the time taken tells neither whether nor which one matched.
    pub fn operator(&self, given: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.0 {
            if same_secret(given, token) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The `X-Admin-Reason` an admin call must carry (seed §4.1's break-glass audit): 3 to 200
/// characters, no control characters.
pub fn admin_reason(header: Option<&str>) -> Result<&str, &'static str> {
    let reason = header.map(str::trim).unwrap_or("");
    if reason.chars().count() < 3 {
        return Err("X-Admin-Reason is required: say why (3 to 200 characters)");
    }
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err("X-Admin-Reason: at most 200 characters, no control characters");
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operator_has_a_token_and_only_that_token_names_them() {
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let tokens = OperatorTokens::parse(&format!("alice:{a}, bob:{b}\n")).unwrap();
        assert_eq!(tokens.operator(&a), Some("alice"));
        assert_eq!(tokens.operator(&b), Some("bob"));
        for wrong in ["", "alice", &a[..31], &format!("{a}a"), &format!("alice:{a}")] {
            assert_eq!(tokens.operator(wrong), None, "{wrong:?}");
        }
        assert!(!format!("{tokens:?}").contains(&a), "tokens never print");
        assert!(OperatorTokens::parse("").unwrap().is_empty());
        for bad in [
            format!("alice{a}"),
            format!("Alice:{a}"),
            "alice:short".to_owned(),
            format!("alice:{a} alice:{b}"),
            format!("alice:{a} bob:{a}"),
        ] {
            assert!(OperatorTokens::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_admin_reason_is_required_short_and_printable() {
        assert_eq!(
            admin_reason(Some("  re-drive after the R2 outage ")),
            Ok("re-drive after the R2 outage")
        );
        for bad in [None, Some(""), Some("  "), Some("ok"), Some("a\u{7}bc")] {
            assert!(admin_reason(bad).is_err(), "{bad:?}");
        }
        assert!(admin_reason(Some(&"x".repeat(201))).is_err());
        assert!(admin_reason(Some(&"ç".repeat(200))).is_ok());
    }

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
