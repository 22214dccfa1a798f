//! The exact headers of share responses (SPEC §1, seed §2.2 and §14.1), the weak ETag, and
//! `If-None-Match` evaluation (RFC 9110 §13.1.2).

use sha2::{Digest, Sha256};

use crate::lang::Lang;
use crate::reply::Reply;

/// On every 200 and 304 share response.
pub const SHARE_CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=60";
/// On the 404 page, so a link created later is never masked by a cached "not found".
pub const NOT_FOUND_CACHE_CONTROL: &str = "no-store";
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The CSP of share pages: the SPEC's policy plus `style-src` with the hash of the inline
/// stylesheet (nothing else styles the page), `base-uri 'none'` (an injected `<base>` cannot
/// re-point relative URLs) and `form-action 'none'` (the page has no form; an injected one cannot
/// post anywhere). `media_origin` is `https://media.babybook.com` in production; tests point it at
/// a local stand-in.
pub fn content_security_policy(media_origin: &str) -> String {
    policy(media_origin, "'none'")
}

/// The CSP of a locked link's passphrase form: the same, except that the form may post to
/// `form_action`, the link's own URL (`share::passphrase::form_action_source`), and nowhere else.
pub fn form_content_security_policy(media_origin: &str, form_action: &str) -> String {
    policy(media_origin, form_action)
}

fn policy(media_origin: &str, form_action: &str) -> String {
    format!(
        "default-src 'self'; img-src 'self' data: {media_origin}; style-src {style}; frame-ancestors 'none'; base-uri 'none'; form-action {form_action}",
        style = crate::share::style::style_source(),
    )
}

/// Headers every share response carries, whatever its status.
pub fn apply_security_headers(reply: &mut Reply, media_origin: &str) {
    reply.set_header("x-robots-tag", "noindex");
    reply.set_header("referrer-policy", "no-referrer");
    reply.set_header("x-content-type-options", "nosniff");
    reply.set_header("content-security-policy", content_security_policy(media_origin));
    reply.set_header("strict-transport-security", HSTS);
}

/// The headers of a rendered page, for the 200 and for the 304 that stands for it.
pub fn apply_page_headers(reply: &mut Reply, etag: &str, lang: Lang, media_origin: &str) {
    reply.set_header("cache-control", SHARE_CACHE_CONTROL);
    reply.set_header("etag", etag);
    reply.set_header("vary", "Accept-Language");
    reply.set_header("content-language", lang.tag());
    apply_security_headers(reply, media_origin);
}

/// A weak validator from the rendered bytes: `W/"` + 128 bits of SHA-256 in hex + `"`.
pub fn weak_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(38);
    tag.push_str("W/\"");
    tag.push_str(&crate::hex::encode(&digest[..16]));
    tag.push('"');
    tag
}

/// Does `If-None-Match` match the current representation's tag? Weak comparison: `W/"x"` and
/// `"x"` match each other; `*` matches any current representation; malformed members never match.
pub fn if_none_match_matches(header: &str, current_etag: &str) -> bool {
    let current = opaque_tag(current_etag);
    let header = header.trim();
    if header == "*" {
        return true;
    }
    header
        .split(',')
        .take(64)
        .filter_map(|member| opaque_tag(member.trim()))
        .any(|tag| Some(tag) == current)
}

/// The quoted part of an entity-tag, without the `W/` prefix. `None` if it is not an entity-tag.
fn opaque_tag(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    // etagc = %x21 / %x23-7E / obs-text: no DQUOTE, no controls, no spaces.
    inner
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        .then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_csp_in_production_is_exactly_the_spec() {
        assert_eq!(
            content_security_policy("https://media.babybook.com"),
            format!(
                "default-src 'self'; img-src 'self' data: https://media.babybook.com; style-src {}; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                crate::share::style::style_source()
            )
        );
    }

    #[test]
    fn etags_are_weak_and_follow_the_bytes() {
        let a = weak_etag(b"<html>a</html>");
        assert!(a.starts_with("W/\"") && a.ends_with('"'));
        assert_eq!(a, weak_etag(b"<html>a</html>"));
        assert_ne!(a, weak_etag(b"<html>b</html>"));
    }

    #[test]
    fn if_none_match_uses_weak_comparison_lists_and_star() {
        let etag = "W/\"abc123\"";
        let rows = [
            ("W/\"abc123\"", true),
            ("\"abc123\"", true),
            ("W/\"other\", W/\"abc123\"", true),
            ("  W/\"other\" ,\"abc123\"  ", true),
            ("*", true),
            ("W/\"other\"", false),
            ("abc123", false),
            ("W/abc123", false),
            ("\"abc\"123\"", false),
            ("", false),
        ];
        for (header, want) in rows {
            assert_eq!(if_none_match_matches(header, etag), want, "row {header:?}");
        }
    }

    #[test]
    fn every_share_response_gets_the_security_headers() {
        let mut reply = Reply::new(404);
        apply_security_headers(&mut reply, "https://media.babybook.com");
        for name in [
            "x-robots-tag",
            "referrer-policy",
            "x-content-type-options",
            "content-security-policy",
            "strict-transport-security",
        ] {
            assert!(reply.get(name).is_some(), "missing {name}");
        }
        assert_eq!(reply.get("x-robots-tag"), Some("noindex"));
    }

    proptest! {
        #[test]
        fn if_none_match_never_panics(header in ".{0,200}") {
            let _ = if_none_match_matches(&header, "W/\"abc\"");
        }
    }
}
