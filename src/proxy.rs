//! The shielded proxy to the origin API (SPEC §3, seed §4.3): which headers go through, which
//! are ours, and how the origin's answer maps onto the edge's.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode};

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded in either direction.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

/// Internal headers the edge sets for the origin. Client-sent copies are always dropped.
pub const SERVICE_AUTH: &str = "authorization";
pub const TRACE_ID: &str = "x-trace-id";
pub const USER_ID: &str = "x-babybook-user-id";
pub const ACCOUNT_ID: &str = "x-babybook-account-id";
pub const IDENTITY_SIGNATURE: &str = "x-babybook-identity-signature";
pub const CLIENT_IP: &str = "x-babybook-client-ip";

/// The origin's answer within this long, or `504` (seed §11: client timeout 10 s).
pub const ORIGIN_TIMEOUT_MS: u32 = 10_000;

fn is_internal(name: &str) -> bool {
    name.starts_with("x-babybook-")
        || name.starts_with("x-internal-")
        || name.starts_with("cf-")
        || matches!(
            name,
            "authorization"
                | "x-trace-id"
                | "x-forwarded-for"
                | "x-real-ip"
                | "forwarded"
                | "traceparent"
                | "x-service-token"
        )
}

/// The client's headers that may reach the origin: no hop-by-hop headers (including those the
/// `Connection` header names), no internal headers, no `Host`.
pub fn forwardable_request_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    let named_by_connection: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    headers
        .iter()
        .filter(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&lower.as_str())
                && !named_by_connection.contains(&lower)
                && !is_internal(&lower)
                && lower != "host"
                && lower != "content-length"
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The origin's response headers that go back to the client.
pub fn forwardable_response_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&lower.as_str()) && lower != "content-length" && lower != "content-encoding"
        })
        .cloned()
        .collect()
}

/// Signs the identity the edge asserts to the origin: `HMAC-SHA256(key, "user|account|trace")`
/// in hex, with a key derived from `SERVICE_API_TOKEN` so the origin can check it.
pub fn identity_signature(service_token: &str, user_id: &str, account_id: &str, trace_id: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(service_token.as_bytes()).expect("HMAC takes any key length");
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
    fn forged_internal_and_hop_by_hop_headers_never_reach_the_origin() {
        let incoming = headers(&[
            ("Accept", "application/json"),
            ("X-Babybook-Account-Id", "forged"),
            ("X-BABYBOOK-User-Id", "forged"),
            ("Authorization", "Bearer forged"),
            ("X-Trace-Id", "client-trace"),
            ("CF-Connecting-IP", "1.2.3.4"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("X-Custom-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Host", "api.babybook.com"),
            ("Cookie", "__Host-session=abc"),
        ]);
        let names: Vec<String> = forwardable_request_headers(&incoming)
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        assert_eq!(names, ["accept", "cookie"]);
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
}
