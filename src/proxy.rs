//! The shielded proxy to the origin API (SPEC §3, seed §4.3): which headers go through, which
//! are ours, and how the origin's answer maps onto the edge's.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode};

/// Internal headers the edge sets for the origin. Client-sent copies never get through: they
/// are not on [`FORWARDED_REQUEST_HEADERS`].
pub const SERVICE_AUTH: &str = "authorization";
pub const TRACE_ID: &str = "x-trace-id";
pub const USER_ID: &str = "x-babybook-user-id";
pub const ACCOUNT_ID: &str = "x-babybook-account-id";
pub const IDENTITY_SIGNATURE: &str = "x-babybook-identity-signature";
pub const CLIENT_IP: &str = "x-babybook-client-ip";

/// The origin's answer within this long, or `504` (seed §11: client timeout 10 s).
pub const ORIGIN_TIMEOUT_MS: u32 = 10_000;

/// The largest body the edge forwards to the origin (the edge's own JSON routes take 64 KiB).
pub const MAX_PROXY_BODY: usize = 1024 * 1024;

/// The only client headers the origin gets: content negotiation, the body's type, conditional
/// and range requests, the user agent and an idempotency key for retried writes. Everything
/// else stays at the edge, whatever its name: the caller's cookies (the edge asserts the
/// identity, signed, instead), forwarding and method-override headers an origin framework might
/// trust (`X-Forwarded-Host`, `X-HTTP-Method-Override`, `X-Original-URL`), forged internal
/// headers, hop-by-hop headers. `Content-Length` is the runtime's: it frames the bytes the edge
/// read and forwards.
pub const FORWARDED_REQUEST_HEADERS: [&str; 12] = [
    "accept",
    "accept-language",
    "content-type",
    "content-language",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    "user-agent",
    "idempotency-key",
];

/// The only origin response headers the caller gets: what describes the body and how to cache
/// it. Never `Set-Cookie` (the edge owns the session), never `Access-Control-*` (the edge sets
/// its own CORS grant), never server banners or internals.
pub const RETURNED_RESPONSE_HEADERS: [&str; 11] = [
    "content-type",
    "content-language",
    "content-disposition",
    "content-range",
    "accept-ranges",
    "cache-control",
    "expires",
    "etag",
    "last-modified",
    "retry-after",
    "vary",
];

/// The origin's paths whose writes can change what a share page shows (a moment, its photos, a
/// child's name, the account): after such a write succeeds the edge purges the account's pages
/// (`edge::share_cache::purge`, by the account's cache tag).
pub const PAGE_ALTERING_PREFIXES: [&str; 3] = ["/account", "/children", "/moments"];

/// Whether a proxied request that succeeded may have changed share pages.
pub fn write_alters_pages(method: &str, path: &str) -> bool {
    let write = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
    write
        && PAGE_ALTERING_PREFIXES.iter().any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// The client's headers that may reach the origin, by their allowlisted name.
pub fn forwardable_request_headers(headers: &[(String, String)]) -> Vec<(&'static str, &str)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            FORWARDED_REQUEST_HEADERS
                .iter()
                .find(|allowed| name.eq_ignore_ascii_case(allowed))
                .map(|allowed| (*allowed, value.as_str()))
        })
        .collect()
}

/// The origin's response headers that go back to the caller, by their allowlisted name.
/// `Location` only where it means something to the caller: a redirect (passed back, never
/// followed) or `201 Created`.
pub fn forwardable_response_headers(status: u16, headers: &[(String, String)]) -> Vec<(&'static str, String)> {
    let location_allowed = (300..400).contains(&status) || status == 201;
    headers
        .iter()
        .filter_map(|(name, value)| {
            let allowed = RETURNED_RESPONSE_HEADERS
                .iter()
                .copied()
                .chain(location_allowed.then_some("location"))
                .find(|allowed| name.eq_ignore_ascii_case(allowed))?;
            Some((allowed, value.clone()))
        })
        .collect()
}

/// Signs the identity the edge asserts to the origin: `HMAC-SHA256(key, "user|account|trace")`
/// in hex, keyed with `ORIGIN_API_TOKEN` (the origin's credential, never the media worker's) so
/// the origin can check it.
pub fn identity_signature(origin_token: &str, user_id: &str, account_id: &str, trace_id: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(origin_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"babybook-identity-v1|");
    mac.update(user_id.as_bytes());
    mac.update(b"|");
    mac.update(account_id.as_bytes());
    mac.update(b"|");
    mac.update(trace_id.as_bytes());
    crate::hex::encode(&mac.finalize().into_bytes())
}

/// What the edge answers for an origin status: 5xx becomes a `502` envelope (the origin's body,
/// which may hold internals, is dropped); everything else passes through.
pub fn map_origin_status(status: u16) -> Result<u16, ApiError> {
    if status >= 500 {
        Err(ApiError::new(
            ErrorCode::BadGateway,
            format!("origin answered {status}"),
        ))
    } else {
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_allowlisted_client_headers_reach_the_origin() {
        let incoming = headers(&[
            ("Accept", "application/json"),
            ("Accept-Language", "en"),
            ("Content-Type", "application/json"),
            ("If-None-Match", "W/\"1\""),
            ("Range", "bytes=0-9"),
            ("X-Babybook-Account-Id", "forged"),
            ("X-BABYBOOK-User-Id", "forged"),
            ("Authorization", "Bearer forged"),
            ("X-Trace-Id", "client-trace"),
            ("CF-Connecting-IP", "1.2.3.4"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Original-URL", "/admin"),
            ("X-CSRF-Token", "t"),
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("X-Custom-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "99"),
            ("Host", "api.babybook.com"),
            ("Cookie", "__Host-session=abc"),
        ]);
        let names: Vec<&str> = forwardable_request_headers(&incoming).iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["accept", "accept-language", "content-type", "if-none-match", "range"]
        );
    }

    #[test]
    fn only_allowlisted_origin_headers_reach_the_caller() {
        let answer = headers(&[
            ("Content-Type", "application/json"),
            ("ETag", "\"e\""),
            ("Cache-Control", "private"),
            ("Vary", "Accept-Language"),
            ("Set-Cookie", "origin=1"),
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Credentials", "true"),
            ("X-Powered-By", "framework"),
            ("Server", "gunicorn"),
            ("Content-Length", "12"),
            ("Content-Encoding", "gzip"),
            ("Location", "https://elsewhere.example/"),
        ]);
        let names = |status| -> Vec<&str> {
            forwardable_response_headers(status, &answer)
                .iter()
                .map(|(n, _)| *n)
                .collect()
        };
        assert_eq!(names(200), ["content-type", "etag", "cache-control", "vary"]);
        for status in [201, 301, 302, 303, 307, 308] {
            assert_eq!(
                names(status),
                ["content-type", "etag", "cache-control", "vary", "location"],
                "status {status}"
            );
        }
    }

    #[test]
    fn origin_failures_become_502_without_their_body() {
        assert_eq!(map_origin_status(200), Ok(200));
        assert_eq!(map_origin_status(404), Ok(404));
        assert_eq!(map_origin_status(500).unwrap_err().code, ErrorCode::BadGateway);
        assert_eq!(map_origin_status(503).unwrap_err().code, ErrorCode::BadGateway);
    }

    #[test]
    fn identity_signatures_bind_user_account_and_trace() {
        let a = identity_signature("token-0123456789abcdef0123456789ab", "u", "a", "t");
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            identity_signature("token-0123456789abcdef0123456789ab", "u", "b", "t")
        );
        assert_ne!(
            a,
            identity_signature("other-0123456789abcdef0123456789ab", "u", "a", "t")
        );
    }

    #[test]
    fn writes_to_moments_children_and_the_account_alter_pages_and_nothing_else_does() {
        let rows = [
            ("PATCH", "/moments/5f0c", true),
            ("DELETE", "/moments/5f0c", true),
            ("POST", "/moments", true),
            ("PUT", "/children/1/name", true),
            ("DELETE", "/account", true),
            ("GET", "/moments/5f0c", false),
            ("HEAD", "/account", false),
            ("POST", "/uploads", false),
            ("POST", "/exports", false),
            ("DELETE", "/health-measurements/1", false),
            ("POST", "/momentsx", false),
        ];
        for (method, path, want) in rows {
            assert_eq!(write_alters_pages(method, path), want, "{method} {path}");
        }
    }
}
