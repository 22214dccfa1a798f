//! CORS for the API host: one pinned origin (seed §2.1, §4.5). Every API response varies on
//! `Origin`; only the configured app origin gets a grant, with credentials.

use crate::reply::Reply;

pub const ALLOWED_METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
pub const ALLOWED_HEADERS: &str = "Content-Type, X-CSRF-Token, X-Trace-Id, Traceparent";
pub const EXPOSED_HEADERS: &str = "X-Trace-Id, Retry-After, RateLimit, RateLimit-Policy";
/// Browsers cap this (Chromium at 2 h); 10 minutes keeps policy changes quick to take effect.
pub const MAX_AGE_SECONDS: u32 = 600;

/// Whether the request's `Origin` may act on the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginCheck {
    /// No `Origin` header: not a cross-origin browser request (curl, server-to-server).
    Absent,
    Allowed,
    Refused,
}

pub fn check_origin(origin: Option<&str>, app_origin: &str) -> OriginCheck {
    match origin {
        None => OriginCheck::Absent,
        Some(o) if o == app_origin => OriginCheck::Allowed,
        Some(_) => OriginCheck::Refused,
    }
}

/// Adds the CORS headers of an actual (non-preflight) response.
pub fn decorate(reply: &mut Reply, check: OriginCheck, app_origin: &str) {
    reply.append_to_list("vary", "Origin");
    if check == OriginCheck::Allowed {
        reply.set_header("access-control-allow-origin", app_origin);
        reply.set_header("access-control-allow-credentials", "true");
        reply.set_header("access-control-expose-headers", EXPOSED_HEADERS);
    }
}

/// The answer to an `OPTIONS` preflight: `204`, a grant only for the app origin.
pub fn preflight(check: OriginCheck, app_origin: &str) -> Reply {
    let mut reply = Reply::new(204).header("cache-control", "no-store");
    decorate(&mut reply, check, app_origin);
    if check == OriginCheck::Allowed {
        reply.set_header("access-control-allow-methods", ALLOWED_METHODS);
        reply.set_header("access-control-allow-headers", ALLOWED_HEADERS);
        reply.set_header("access-control-max-age", MAX_AGE_SECONDS.to_string());
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "https://app.babybook.com";

    #[test]
    fn the_app_origin_gets_a_credentialed_grant() {
        let reply = preflight(check_origin(Some(APP), APP), APP);
        assert_eq!(reply.status, 204);
        assert_eq!(reply.get("access-control-allow-origin"), Some(APP));
        assert_eq!(reply.get("access-control-allow-credentials"), Some("true"));
        assert!(reply
            .get("access-control-allow-headers")
            .unwrap()
            .contains("X-CSRF-Token"));
        assert_eq!(reply.get("vary"), Some("Origin"));
    }

    #[test]
    fn other_origins_get_no_grant_but_still_vary() {
        for origin in [
            "https://evil.example",
            "https://app.babybook.com.evil.example",
            "null",
            "http://app.babybook.com",
        ] {
            let reply = preflight(check_origin(Some(origin), APP), APP);
            assert_eq!(reply.get("access-control-allow-origin"), None, "{origin}");
            assert_eq!(reply.get("access-control-allow-methods"), None, "{origin}");
            assert_eq!(reply.get("vary"), Some("Origin"), "{origin}");
        }
    }
}
