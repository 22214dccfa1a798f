//! Request hygiene: the cheap checks every request meets before routing (SPEC §2, issue 9).
//! Scanners and junk are answered from this module's verdict alone: no cache, database or origin.

use std::borrow::Cow;

/// Request target longer than this → `414`.
pub const MAX_URL_BYTES: usize = 2 * 1024;
/// Header block larger than this → `431`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What the screen needs of a request, computed by the shell without reading the body.
#[derive(Debug, Clone)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// Path as sent, still percent-encoded.
    pub path: &'a str,
    /// Length of path and query as sent.
    pub target_len: usize,
    /// Sum of header name and value lengths.
    pub header_bytes: usize,
    pub host: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    UriTooLong,
    HeadersTooLarge,
    /// A path only scanners ask for: answered `404`, logged with the `scanner` tag.
    Scanner,
    /// A `Host` this Worker does not serve.
    UnknownHost,
    /// A method no route serves, anywhere: `405` before routing.
    UnknownMethod,
    /// A path an origin could read otherwise than the edge does: a path parameter (`;`, which
    /// servlet containers strip, so `..;` reads as `..`) or a segment that decodes to `.`/`..`.
    /// `404` before routing, like a scanner path (no route of ours has such a path): the allowlist
    /// of proxied prefixes judges the path as the edge reads it, and the origin must never read
    /// another. Logged with its own tag.
    AmbiguousPath,
}

impl Rejection {
    pub fn log_tag(self) -> &'static str {
        match self {
            Rejection::UriTooLong => "uri_too_long",
            Rejection::HeadersTooLarge => "headers_too_large",
            Rejection::Scanner => "scanner",
            Rejection::UnknownHost => "unknown_host",
            Rejection::UnknownMethod => "unknown_method",
            Rejection::AmbiguousPath => "ambiguous_path",
        }
    }
}

const KNOWN_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"];

/// Paths (lower-cased, percent-decoded) that no Baby Book route has and scanners always try.
const SCANNER_PREFIXES: [&str; 14] = [
    "/wp-admin",
    "/wp-login",
    "/wp-content",
    "/wp-includes",
    "/xmlrpc",
    "/.env",
    "/.git",
    "/.aws",
    "/.ds_store",
    "/phpmyadmin",
    "/cgi-bin",
    "/vendor/phpunit",
    "/server-status",
    "/actuator",
];

/// Screens a request, cheapest check first.
pub fn screen(head: &RequestHead<'_>, host_is_served: impl Fn(&str) -> bool) -> Result<(), Rejection> {
    if head.target_len > MAX_URL_BYTES {
        return Err(Rejection::UriTooLong);
    }
    if head.header_bytes > MAX_HEADER_BYTES {
        return Err(Rejection::HeadersTooLarge);
    }
    if !KNOWN_METHODS.contains(&head.method) {
        return Err(Rejection::UnknownMethod);
    }
    if is_scanner_path(head.path) {
        return Err(Rejection::Scanner);
    }
    if is_ambiguous_path(head.path) {
        return Err(Rejection::AmbiguousPath);
    }
    let host = lowercase(Cow::Borrowed(head.host.split(':').next().unwrap_or("")));
    if !host_is_served(&host) {
        return Err(Rejection::UnknownHost);
    }
    Ok(())
}

/// Scanner paths, traversal (`..`, `%2e%2e`, double-encoded too), NUL bytes and `*.php`.
pub fn is_scanner_path(raw_path: &str) -> bool {
    // Every request passes here: nothing is copied unless it has escapes or capitals.
    let once = lowercase(percent_decode_lossy(raw_path));
    let twice = percent_decode_lossy(&once);
    let passes: &[&str] = match &twice {
        Cow::Borrowed(_) => &[&once],
        Cow::Owned(decoded) => &[&once, decoded],
    };
    for &path in passes {
        if path.contains('\0') || path.split(['/', '\\']).any(|segment| segment == "..") {
            return true;
        }
        if SCANNER_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            return true;
        }
        if path
            .split('/')
            .any(|segment| segment.ends_with(".php") || segment.ends_with(".asp") || segment.ends_with(".aspx"))
        {
            return true;
        }
    }
    false
}

/// A path an origin may read differently from the edge: `;` anywhere once or twice decoded (path
/// parameters: Tomcat and Jetty drop `;…` from a segment, so `/moments/..;/admin` is
/// `/moments/../admin` to them), or a segment that decodes to `.` or `..` (with `\` read as `/`,
/// as IIS and some frameworks do). Every route of ours and every proxied path is plain
/// segments; the runtime's URL parser has already resolved the literal `.`/`..` segments.
pub fn is_ambiguous_path(raw_path: &str) -> bool {
    if !raw_path.bytes().any(|b| matches!(b, b';' | b'%' | b'.' | b'\\')) {
        return false;
    }
    let once = percent_decode_lossy(raw_path);
    let twice = percent_decode_lossy(&once).into_owned();
    [once.as_ref(), twice.as_str()]
        .iter()
        .any(|path| path.contains(';') || path.split(['/', '\\']).any(|segment| segment == "." || segment == ".."))
}

fn lowercase(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        text
    }
}

/// Decodes `%XX` escapes; invalid escapes stay as they are. Bytes that are not UTF-8 become U+FFFD.
fn percent_decode_lossy(text: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(method: &'a str, path: &'a str) -> RequestHead<'a> {
        RequestHead {
            method,
            path,
            target_len: path.len(),
            header_bytes: 200,
            host: "api.babybook.com",
        }
    }

    fn served(host: &str) -> bool {
        host == "api.babybook.com" || host == "share.babybook.com"
    }

    #[test]
    fn scanner_paths_are_recognised_however_they_are_spelled() {
        let rows = [
            "/wp-admin/setup.php",
            "/WP-LOGIN.PHP",
            "/.env",
            "/.git/config",
            "/phpmyadmin/",
            "/index.php",
            "/s/../../etc/passwd",
            "/s/%2e%2e/%2E%2E/etc/passwd",
            "/s/%252e%252e/x",
            "/a%00b",
            "/..\\windows",
            "/cgi-bin/luci",
        ];
        for path in rows {
            assert_eq!(screen(&head("GET", path), served), Err(Rejection::Scanner), "{path}");
        }
    }

    #[test]
    fn path_parameters_and_dot_segments_an_origin_could_read_otherwise_are_refused() {
        let rows = [
            "/moments/..;/internal/x",
            "/moments/%2e%2e;/x",
            "/moments/%2E%2e%3B/x",
            "/moments/.;/x",
            "/moments/x;jsessionid=1",
            "/moments/x%3bfoo",
            "/moments/x%253bfoo",
            "/moments/%252e/x",
            "/moments/.%5cx",
            "/account;/x",
            "/children/%2e/x",
        ];
        for path in rows {
            let verdict = screen(&head("GET", path), served);
            assert!(
                matches!(verdict, Err(Rejection::AmbiguousPath | Rejection::Scanner)),
                "{path}: {verdict:?}"
            );
            assert!(is_ambiguous_path(path) || is_scanner_path(path), "{path}");
        }
        for path in [
            "/moments/5f0c/assets",
            "/a.b/c",
            "/s/AAAAAAAAAAAAAAAAAAAAAA",
            "/moments/x.y.z",
        ] {
            assert!(!is_ambiguous_path(path), "{path}");
        }
    }

    #[test]
    fn real_routes_pass() {
        for path in [
            "/s/AAAAAAAAAAAAAAAAAAAAAA",
            "/health",
            "/auth/login",
            "/shares/6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab",
            "/_static/share.abc.css",
            "/a.b/c",
        ] {
            assert_eq!(screen(&head("GET", path), served), Ok(()), "{path}");
        }
    }

    #[test]
    fn oversized_targets_and_headers_are_refused_first() {
        let long = format!("/s/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(screen(&head("GET", &long), served), Err(Rejection::UriTooLong));
        let mut big = head("GET", "/health");
        big.header_bytes = MAX_HEADER_BYTES + 1;
        assert_eq!(screen(&big, served), Err(Rejection::HeadersTooLarge));
    }

    #[test]
    fn unknown_methods_and_hosts_are_refused() {
        assert_eq!(screen(&head("TRACE", "/health"), served), Err(Rejection::UnknownMethod));
        assert_eq!(screen(&head("PUT", "/health"), served), Err(Rejection::UnknownMethod));
        let mut other = head("GET", "/health");
        other.host = "evil.example:443";
        assert_eq!(screen(&other, served), Err(Rejection::UnknownHost));
        other.host = "API.babybook.com:8787";
        assert_eq!(screen(&other, served), Ok(()));
    }

    #[test]
    fn percent_decoding_tolerates_junk() {
        assert_eq!(percent_decode_lossy("%"), "%");
        assert_eq!(percent_decode_lossy("%4"), "%4");
        assert_eq!(percent_decode_lossy("%zz%41"), "%zzA");
    }
}
