//! The rate-limit policy table (SPEC §2, seed §2.2, §2.3, §11) and its window arithmetic.
//!
//! Counting happens in Cloudflare's Rate Limiting binding, one binding per policy: fixed windows
//! of 10 or 60 seconds aligned to the epoch (`floor(now / period)`), which is also how
//! `wrangler dev` simulates it. This module decides which policies apply to a request, builds
//! their keys, and computes `Retry-After` and the `RateLimit*` headers from the window.

use sha2::{Digest, Sha256};

/// A limit and what it is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Appears in keys, logs and the `RateLimit-Policy` header.
    pub name: &'static str,
    /// The `[[ratelimits]]` binding in `wrangler.toml` that counts it.
    pub binding: &'static str,
    pub limit: u32,
    pub period_seconds: u32,
    pub keyed_by: KeyedBy,
    /// What to do when the binding itself fails.
    pub on_limiter_error: OnLimiterError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedBy {
    ClientIp,
    /// The email whatever the client: only the per-email ceiling.
    Email,
    /// The email and the client's network ([`email_and_network`]): one network's guesses at an
    /// account never lock out a family member signing in from another.
    EmailAndNetwork,
    /// The signed-in session ([`session_subject`]).
    Session,
    /// A share link, by its token hash ([`link_subject`]).
    Link,
}

impl KeyedBy {
    /// Keyed by a login's email: applied by the login handler, which has read the body.
    pub fn needs_email(self) -> bool {
        matches!(self, KeyedBy::Email | KeyedBy::EmailAndNetwork)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLimiterError {
    /// Serve the request (and log): an outage of the limiter must not take share pages down.
    FailOpen,
    /// Refuse it: better a failed login than unlimited password guessing.
    FailClosed,
}

/// `/s/*`: 60 requests per second per IP, enforced as 600 per 10 s (the binding's shortest period,
/// and how Cloudflare's own WAF rate rules count).
pub const SHARE: Policy = Policy {
    name: "share",
    binding: "RL_SHARE",
    limit: 600,
    period_seconds: 10,
    keyed_by: KeyedBy::ClientIp,
    on_limiter_error: OnLimiterError::FailOpen,
};
/// API requests without a session: 60 per minute per IP (seed §11).
pub const API_IP: Policy = Policy {
    name: "api_ip",
    binding: "RL_API_IP",
    limit: 60,
    period_seconds: 60,
    keyed_by: KeyedBy::ClientIp,
    on_limiter_error: OnLimiterError::FailOpen,
};
/// API requests with a session are counted per session, not per IP: families behind one carrier
/// NAT do not share a budget, one user's flood does not limit another, and a copy of a cookie
/// whose session has ended (a stolen one after logout) spends only that ended session's budget,
/// never the budget of the user's live sessions ([`session_subject`]).
pub const API_USER: Policy = Policy {
    name: "api_user",
    binding: "RL_API_USER",
    limit: 120,
    period_seconds: 60,
    keyed_by: KeyedBy::Session,
    on_limiter_error: OnLimiterError::FailOpen,
};
/// Writes per session, on top of `api_user` (the seed's "token bucket por usuário").
pub const USER_WRITES: Policy = Policy {
    name: "user_writes",
    binding: "RL_USER_WRITES",
    limit: 30,
    period_seconds: 60,
    keyed_by: KeyedBy::Session,
    on_limiter_error: OnLimiterError::FailOpen,
};
/// Login attempts per IP, whatever the email.
pub const LOGIN_IP: Policy = Policy {
    name: "login_ip",
    binding: "RL_LOGIN_IP",
    limit: 5,
    period_seconds: 60,
    keyed_by: KeyedBy::ClientIp,
    on_limiter_error: OnLimiterError::FailClosed,
};
/// Login attempts per email from one client network: the strict limit. Keyed by the network too,
/// so someone guessing from one place cannot lock a family member out from another.
pub const LOGIN_EMAIL: Policy = Policy {
    name: "login_email",
    binding: "RL_LOGIN_EMAIL",
    limit: 5,
    period_seconds: 60,
    keyed_by: KeyedBy::EmailAndNetwork,
    on_limiter_error: OnLimiterError::FailClosed,
};
/// Login attempts per email from every network together: a ceiling only a guess spread over many
/// networks reaches (a family signing in is a handful of attempts). Reaching it refuses and
/// raises the `login_email_ceiling` alert, so the lockout is never silent.
pub const LOGIN_EMAIL_CEILING: Policy = Policy {
    name: "login_email_ceiling",
    binding: "RL_LOGIN_EMAIL_CEILING",
    limit: 20,
    period_seconds: 60,
    keyed_by: KeyedBy::Email,
    on_limiter_error: OnLimiterError::FailClosed,
};

/// Failed `/admin/*` authentications per IP. Only failures are counted (an operator's own calls
/// never are); once over, that client's failures answer `429` instead of `401` until the window
/// ends, and a limiter outage refuses too.
pub const ADMIN_FAILURES: Policy = Policy {
    name: "admin_failures",
    binding: "RL_ADMIN_FAILURES",
    limit: 10,
    period_seconds: 60,
    keyed_by: KeyedBy::ClientIp,
    on_limiter_error: OnLimiterError::FailClosed,
};

/// Answers to a locked link's passphrase form, per link whoever sends them: a guess spread over
/// many networks meets it. Reaching it refuses and raises the `link_passphrase_guessed` alert.
/// Relatives who answered once carry the link's pass for a day and never post again.
pub const LINK_PASSPHRASE: Policy = Policy {
    name: "link_passphrase",
    binding: "RL_LINK_PASSPHRASE",
    limit: 5,
    period_seconds: 60,
    keyed_by: KeyedBy::Link,
    on_limiter_error: OnLimiterError::FailClosed,
};
/// Answers to passphrase forms per client, whatever the link: one client trying many links.
pub const PASSPHRASE_IP: Policy = Policy {
    name: "passphrase_ip",
    binding: "RL_PASSPHRASE_IP",
    limit: 10,
    period_seconds: 60,
    keyed_by: KeyedBy::ClientIp,
    on_limiter_error: OnLimiterError::FailClosed,
};

/// Every policy, for the table in docs/api-and-security.md, `wrangler.toml` checks and tests.
pub const POLICIES: [Policy; 10] = [
    SHARE,
    API_IP,
    API_USER,
    USER_WRITES,
    LOGIN_IP,
    LOGIN_EMAIL,
    LOGIN_EMAIL_CEILING,
    ADMIN_FAILURES,
    LINK_PASSPHRASE,
    PASSPHRASE_IP,
];

/// Which policies a request meets, in the order they are checked (cheapest key first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    Share,
    ApiAnonymous,
    ApiAuthenticatedRead,
    ApiAuthenticatedWrite,
    Login,
    /// Health probes and static files: not limited.
    Exempt,
}

impl RequestClass {
    pub fn policies(self) -> &'static [Policy] {
        match self {
            RequestClass::Share => &[SHARE],
            RequestClass::ApiAnonymous => &[API_IP],
            RequestClass::ApiAuthenticatedRead => &[API_USER],
            RequestClass::ApiAuthenticatedWrite => &[API_USER, USER_WRITES],
            RequestClass::Login => &[LOGIN_IP, LOGIN_EMAIL, LOGIN_EMAIL_CEILING],
            RequestClass::Exempt => &[],
        }
    }
}

/// The client's address as the limiter keys it, from `CF-Connecting-IP` only (`X-Forwarded-For`
/// is client-controlled). IPv6 is keyed by its /64: one subscriber's whole prefix is one client.
pub fn client_ip_key(cf_connecting_ip: Option<&str>) -> String {
    match cf_connecting_ip
        .map(str::trim)
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
    {
        Some(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    }
}

/// The network a client address key belongs to: an IPv4 address's /24, an IPv6 key's /64 (what
/// [`client_ip_key`] already keeps), `unknown` as it is.
pub fn client_network(ip_key: &str) -> String {
    match ip_key.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Err(_) => ip_key.to_owned(),
    }
}

/// The subject of the per-user budgets: the session, by a digest of its id (the id itself is a
/// bearer secret and stays out of the limiter). The server ends sessions, not users' budgets: a
/// budget keyed by the user would let an ended cookie, which the edge can only tell from a live
/// one after asking the database, exhaust the user's live sessions.
pub fn session_subject(sid: &str) -> String {
    format!(
        "s{}",
        crate::hex::encode(&Sha256::digest(format!("rate-limit-session:{sid}").as_bytes())[..16])
    )
}

/// The subject of [`LINK_PASSPHRASE`]: the link's token hash (never the token).
pub fn link_subject(token: &crate::share::TokenHash) -> String {
    token.to_hex()
}

/// The subject of [`LOGIN_EMAIL`]: the email and the client's network, space-separated (an email
/// never holds whitespace).
pub fn email_and_network(email: &str, ip_key: &str) -> String {
    format!("{email} {}", client_network(ip_key))
}

/// An email as the database compares it: `app_user.email` is `citext`, which compares
/// `lower()` of both sides, a character-for-character mapping. Rust's `str::to_lowercase` is
/// not that: it maps `İ` to two characters and a word-final `Σ` to `ς`, so spellings the
/// database takes for one address would be fresh limiter keys. Each character maps to its first
/// lowercase character instead. Surrounding whitespace goes, as `Email::parse` drops it before
/// the database sees the address.
pub fn fold_email(email: &str) -> String {
    email
        .trim()
        .chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// The digest of an email every limiter key and device cookie uses: 32 hex digits of the SHA-256
/// of its [`fold_email`] form (no PII in the limiter).
pub fn email_digest(email: &str) -> String {
    crate::hex::encode(&Sha256::digest(fold_email(email).as_bytes())[..16])
}

/// The binding key: `<policy>:<subject>`. Emails go in as their [`email_digest`], so case games
/// do not multiply the budget.
pub fn key(policy: &Policy, subject: &str) -> String {
    let email_hash = email_digest;
    match policy.keyed_by {
        KeyedBy::Email => format!("{}:{}", policy.name, email_hash(subject)),
        KeyedBy::EmailAndNetwork => {
            let (email, network) = subject.rsplit_once(' ').unwrap_or((subject, "unknown"));
            format!("{}:{}:{network}", policy.name, email_hash(email))
        }
        KeyedBy::ClientIp | KeyedBy::Session | KeyedBy::Link => format!("{}:{subject}", policy.name),
    }
}

/// Seconds until the current fixed window ends: never 0, never more than the period.
pub fn retry_after_seconds(policy: &Policy, now_ms: i64) -> u32 {
    let period_ms = i64::from(policy.period_seconds) * 1000;
    let into_window = now_ms.rem_euclid(period_ms);
    let remaining_ms = period_ms - into_window;
    // Round up: a client told "1" that comes back after 1 s must land in the next window.
    u32::try_from((remaining_ms + 999) / 1000)
        .unwrap_or(policy.period_seconds)
        .clamp(1, policy.period_seconds)
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers syntax) for a refusal.
pub fn refusal_headers(policy: &Policy, now_ms: i64) -> [(&'static str, String); 3] {
    let reset = retry_after_seconds(policy, now_ms);
    [
        ("retry-after", reset.to_string()),
        (
            "ratelimit-policy",
            format!("\"{}\";q={};w={}", policy.name, policy.limit, policy.period_seconds),
        ),
        ("ratelimit", format!("\"{}\";r=0;t={reset}", policy.name)),
    ]
}

/// A model of the binding's fixed window, for property tests of the arithmetic above and for
/// the benchmark's rate-math micro-benchmark.
#[derive(Debug, Clone)]
pub struct FixedWindow {
    pub limit: u32,
    pub period_ms: i64,
    window: i64,
    count: u32,
}

impl FixedWindow {
    pub fn new(policy: &Policy) -> FixedWindow {
        FixedWindow {
            limit: policy.limit,
            period_ms: i64::from(policy.period_seconds) * 1000,
            window: i64::MIN,
            count: 0,
        }
    }

    pub fn admit(&mut self, now_ms: i64) -> bool {
        let window = now_ms.div_euclid(self.period_ms);
        if window != self.window {
            self.window = window;
            self.count = 0;
        }
        if self.count >= self.limit {
            return false;
        }
        self.count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_share_policy_is_sixty_per_second_as_six_hundred_per_ten() {
        assert_eq!(SHARE.limit / SHARE.period_seconds, 60);
        assert_eq!((SHARE.limit, SHARE.period_seconds), (600, 10));
        assert_eq!((API_IP.limit, API_IP.period_seconds), (60, 60));
    }

    #[test]
    fn every_environment_binds_every_policy_with_its_limit_and_period() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wrangler.toml")).expect("wrangler.toml");
        let toml: toml::Table = toml::from_str(&text).expect("parses");
        let bindings_of = |table: &toml::Value| -> Vec<(String, i64, i64)> {
            let mut b: Vec<(String, i64, i64)> = table["ratelimits"]
                .as_array()
                .expect("ratelimits")
                .iter()
                .map(|r| {
                    let name = r["name"].as_str().expect("name").to_owned();
                    (
                        name,
                        r["simple"]["limit"].as_integer().expect("limit"),
                        r["simple"]["period"].as_integer().expect("period"),
                    )
                })
                .collect();
            b.sort();
            b
        };
        let mut want: Vec<(String, i64, i64)> = POLICIES
            .iter()
            .map(|p| (p.binding.to_owned(), i64::from(p.limit), i64::from(p.period_seconds)))
            .collect();
        want.sort();
        let top = toml::Value::Table(toml.clone());
        assert_eq!(bindings_of(&top), want, "top level");
        for env in ["staging", "production"] {
            assert_eq!(bindings_of(&top["env"][env]), want, "env.{env}");
        }
    }

    #[test]
    fn periods_are_ones_the_binding_supports() {
        for p in POLICIES {
            assert!([10, 60].contains(&p.period_seconds), "{}", p.name);
        }
    }

    #[test]
    fn credential_guessing_fails_closed_and_everything_else_fails_open() {
        for p in POLICIES {
            let closed = p.on_limiter_error == OnLimiterError::FailClosed;
            assert_eq!(
                closed,
                p.name.starts_with("login") || p.name.contains("passphrase") || p.name == "admin_failures",
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn client_ips_come_only_from_cf_connecting_ip_and_are_normalised() {
        assert_eq!(client_ip_key(Some("203.0.113.9")), "203.0.113.9");
        assert_eq!(client_ip_key(Some("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(client_ip_key(Some("2001:db8:1:2:ffff::1")), "2001:db8:1:2::/64");
        assert_eq!(client_ip_key(Some("not-an-ip")), "unknown");
        assert_eq!(client_ip_key(None), "unknown");
    }

    #[test]
    fn per_user_budgets_are_keyed_by_a_digest_of_the_session_never_the_id() {
        let (a, b) = (session_subject("session-id-one"), session_subject("session-id-two"));
        assert_ne!(a, b, "two sessions of one user are two budgets");
        assert_eq!(a, session_subject("session-id-one"));
        assert!(
            !key(&API_USER, &a).contains("session-id-one"),
            "the bearer id stays out"
        );
        assert_eq!(a.len(), 33);
    }

    #[test]
    fn an_email_folds_as_the_databases_citext_compares_it() {
        // Spellings citext takes for one address are one key; Rust's own lowercasing split them.
        let rows = [
            ("MARIA@EXAMPLE.COM", "maria@example.com"),
            ("ÉLODIE@EXAMPLE.COM", "élodie@example.com"),
            ("ΑΣ@EXAMPLE.COM", "ασ@example.com"),
            ("İ@EXAMPLE.COM", "i@example.com"),
        ];
        for (a, b) in rows {
            assert_eq!(email_digest(a), email_digest(b), "{a} and {b}");
        }
        assert_ne!(
            "ΑΣ@EXAMPLE.COM".to_lowercase(),
            "ασ@example.com",
            "the bug this guards against"
        );
        assert_ne!(email_digest("maria@example.com"), email_digest("mario@example.com"));
    }

    #[test]
    fn email_keys_hide_the_email_and_ignore_case() {
        let a = key(&LOGIN_EMAIL_CEILING, "Mae@Example.com");
        assert_eq!(a, key(&LOGIN_EMAIL_CEILING, "mae@example.com "));
        assert!(!a.contains("example"));
        let b = key(&LOGIN_EMAIL, &email_and_network("Mae@Example.com", "203.0.113.9"));
        assert_eq!(
            b,
            key(&LOGIN_EMAIL, &email_and_network("mae@example.com", "203.0.113.200"))
        );
        assert!(!b.contains("example"));
    }

    #[test]
    fn the_strict_login_limit_is_per_email_and_network_and_the_ceiling_per_email() {
        let here = key(&LOGIN_EMAIL, &email_and_network("mae@example.com", "203.0.113.9"));
        let next_door = key(&LOGIN_EMAIL, &email_and_network("mae@example.com", "203.0.113.77"));
        let elsewhere = key(&LOGIN_EMAIL, &email_and_network("mae@example.com", "198.51.100.9"));
        let v6 = key(&LOGIN_EMAIL, &email_and_network("mae@example.com", "2001:db8:1:2::/64"));
        let other_email = key(&LOGIN_EMAIL, &email_and_network("pai@example.com", "203.0.113.9"));
        assert_eq!(here, next_door, "one /24 is one network");
        assert_ne!(here, elsewhere, "another network has its own budget");
        assert_ne!(here, other_email);
        assert!(v6.ends_with(":2001:db8:1:2::/64"), "{v6}");
        assert_eq!(client_network("unknown"), "unknown");
        // Only the email-keyed policies wait for the handler; the ceiling is higher than the strict limit.
        let by_email: Vec<_> = POLICIES
            .iter()
            .filter(|p| p.keyed_by.needs_email())
            .map(|p| p.name)
            .collect();
        assert_eq!(by_email, ["login_email", "login_email_ceiling"]);
        const { assert!(LOGIN_EMAIL_CEILING.limit > 3 * LOGIN_EMAIL.limit) };
    }

    #[test]
    fn the_refusal_headers_name_the_policy_and_the_reset() {
        let headers = refusal_headers(&SHARE, 1_000_003_500);
        assert_eq!(headers[0], ("retry-after", "7".to_owned()));
        assert_eq!(headers[1], ("ratelimit-policy", "\"share\";q=600;w=10".to_owned()));
        assert_eq!(headers[2], ("ratelimit", "\"share\";r=0;t=7".to_owned()));
    }

    proptest! {
        #[test]
        fn retry_after_is_within_one_period_and_never_zero(now in any::<i64>(), p in 0usize..POLICIES.len()) {
            let policy = POLICIES[p];
            let after = retry_after_seconds(&policy, now);
            prop_assert!(after >= 1 && after <= policy.period_seconds);
        }

        #[test]
        fn waiting_retry_after_always_reaches_the_next_window(now in 0i64..4_000_000_000_000, p in 0usize..POLICIES.len()) {
            let policy = POLICIES[p];
            let period = i64::from(policy.period_seconds) * 1000;
            let later = now + i64::from(retry_after_seconds(&policy, now)) * 1000;
            prop_assert!(later.div_euclid(period) > now.div_euclid(period));
        }

        #[test]
        fn the_window_model_used_by_tests_and_the_benchmark_never_admits_more_than_the_limit(mut times in proptest::collection::vec(0i64..120_000, 0..2000), p in 0usize..POLICIES.len()) {
            let policy = POLICIES[p];
            times.sort_unstable();
            let mut window = FixedWindow::new(&policy);
            let mut admitted: std::collections::HashMap<i64, u32> = Default::default();
            for t in times {
                if window.admit(t) {
                    *admitted.entry(t.div_euclid(window.period_ms)).or_default() += 1;
                }
            }
            prop_assert!(admitted.values().all(|&n| n <= policy.limit));
        }

        #[test]
        fn keys_of_different_policies_never_collide(a in 0usize..POLICIES.len(), b in 0usize..POLICIES.len(), s in "[ -~]{0,40}", t in "[ -~]{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(key(&POLICIES[a], &s), key(&POLICIES[b], &t));
        }
    }
}
