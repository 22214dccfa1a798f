//! The parts of a request's URL the Worker reads: origin, host, path and query.
//!
//! The runtime hands every request its URL already parsed and serialized by the WHATWG URL
//! standard (lower-case scheme and host, default port dropped, dot segments resolved, path
//! percent-encoded, `/` when empty), so the parts are where the serialization puts them and are
//! found by splitting, not by parsing the URL once more (two `Url::parse` per request were 5 % of a
//! cache hit's CPU in a profile). A host test checks every split against the `url` crate's parse
//! of the same serialized URL.

/// A request URL's parts, borrowed from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The host alone (an IPv6 address keeps its brackets), lower case.
    pub host: &'a str,
    /// The port when the URL names one (never the scheme's default: the serialization drops it).
    pub port: Option<&'a str>,
    /// The path, from its `/`.
    pub path: &'a str,
    /// What follows `?`, when there is a `?`.
    pub query: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// The parts of a serialized `http:` or `https:` URL, or `None` for anything else.
    pub fn split(url: &'a str) -> Option<Target<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        if !matches!(scheme, "http" | "https") {
            return None;
        }
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_len);
        // User info ends at the last `@` (one inside it is percent-encoded).
        let host_and_port = authority.rsplit('@').next().unwrap_or_default();
        let host_len = if host_and_port.starts_with('[') {
            host_and_port.find(']')? + 1
        } else {
            host_and_port.find(':').unwrap_or(host_and_port.len())
        };
        let (host, port) = host_and_port.split_at(host_len);
        if host.is_empty() {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        Some(Target {
            scheme,
            host,
            port: port.strip_prefix(':').filter(|p| !p.is_empty()),
            path: if path.is_empty() { "/" } else { path },
            query,
        })
    }

    /// The request's origin, `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }

    /// Length of the request target, path and `?query`.
    pub fn target_len(&self) -> usize {
        self.path.len() + self.query.map_or(0, |q| q.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::Target;
    use proptest::prelude::*;

    /// The `url` crate's reading of a serialized URL, in `Target`'s terms.
    fn by_url_crate(url: &url::Url) -> (String, String, String, Option<String>) {
        (
            url.origin().ascii_serialization(),
            url.host_str().unwrap_or_default().to_owned(),
            url.path().to_owned(),
            url.query().map(str::to_owned),
        )
    }

    fn by_split(serialized: &str) -> (String, String, String, Option<String>) {
        let target = Target::split(serialized).expect("an http(s) URL splits");
        (
            target.origin(),
            target.host.to_owned(),
            target.path.to_owned(),
            target.query.map(str::to_owned),
        )
    }

    #[test]
    fn the_parts_of_request_urls_as_the_runtime_serializes_them() {
        for raw in [
            "https://share.babybook.com/s/epxOBoiY4TyrjYAu-IV7Fg",
            "https://share.babybook.com/s/epxOBoiY4TyrjYAu-IV7Fg?page=2",
            "http://127.0.0.1:8787/s/x?",
            "http://127.0.0.1:8787",
            "https://user:p%40ss@API.babybook.com:8443/a/../b/./c?x=1&y=%20#frag",
            "http://[::1]:8787/health?probe",
            "http://[2001:db8::1]/",
            "https://api.babybook.com:443/me",
            "http://x/a%2Fb/%7E?q=a?b#c?d",
            "https://api.babybook.com/?",
            "http://a/ spaces /and\\backslashes",
        ] {
            let url = url::Url::parse(raw).expect(raw);
            assert_eq!(by_split(url.as_str()), by_url_crate(&url), "{raw} (serialized {url})");
        }
        let target = Target::split("http://127.0.0.1:8787/s/x?page=2").unwrap();
        assert_eq!(target.target_len(), "/s/x?page=2".len());
    }

    #[test]
    fn what_is_not_a_serialized_http_url_does_not_split() {
        for url in [
            "",
            "/s/x",
            "ftp://host/x",
            "https:///x",
            "data:text/plain,x",
            "http://[::1/",
        ] {
            assert_eq!(Target::split(url), None, "{url}");
        }
    }

    proptest! {
        /// Whatever a client sends, the runtime serializes it before the Worker sees it: the
        /// split of that serialization agrees with the `url` crate's parse.
        #[test]
        fn a_split_agrees_with_the_url_crate(
            scheme in prop_oneof!["http", "https", "HTTP"],
            userinfo in proptest::option::of("[a-z%@:]{0,6}@"),
            host in prop_oneof![
                "[a-zA-Z0-9-]{1,8}(\\.[a-zA-Z0-9-]{1,8}){0,2}",
                "(25[0-5]|[0-9]{1,2})(\\.(25[0-5]|[0-9]{1,2})){3}",
                "\\[(::1|2001:db8::[0-9a-f]{1,4})\\]",
            ],
            port in proptest::option::of("[0-9]{1,5}"),
            path in "(/[a-zA-Z0-9 %._~?#&=:@!$'()*+,;\\\\-]{0,8}){0,4}",
            rest in "[a-zA-Z0-9 %._~?#&=/]{0,12}",
        ) {
            let raw = format!(
                "{scheme}://{}{host}{}{path}{rest}",
                userinfo.unwrap_or_default(),
                port.map(|p| format!(":{p}")).unwrap_or_default(),
            );
            if let Ok(url) = url::Url::parse(&raw) {
                prop_assert_eq!(by_split(url.as_str()), by_url_crate(&url), "{} (serialized {})", raw, url);
            }
        }
    }
}
