//! A response as plain data: what the core decides, before the shell turns it into a
//! `worker::Response`. Keeps handlers' decisions testable on the host.

use std::borrow::Cow;

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// Shared, not copied, when it comes from a cached page (`Bytes` clones are a count).
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status)
            .header("content-type", "application/json; charset=utf-8")
            .with_body(value.to_string().into_bytes())
    }

    pub fn html(status: u16, html: String) -> Reply {
        Reply::new(status)
            .header("content-type", "text/html; charset=utf-8")
            .with_body(html.into_bytes())
    }

    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Reply {
        self.set_header(name, value);
        self
    }

    /// Replaces any header of that name (names compare case-insensitively).
    pub fn set_header(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
    }

    /// Adds a value to a list-valued header such as `Vary`, once.
    pub fn append_to_list(&mut self, name: &'static str, value: &str) {
        match self.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, existing)) => {
                if !existing.split(',').any(|v| v.trim().eq_ignore_ascii_case(value)) {
                    existing.push_str(", ");
                    existing.push_str(value);
                }
            }
            None => self.headers.push((Cow::Borrowed(name), value.to_owned())),
        }
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

/// A header's value in a list of pairs, by case-insensitive name (the first, if it repeats): the
/// one lookup for requests and replies alike.
pub fn header_value<'h, N: AsRef<str>>(headers: &'h [(N, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_header_replaces_case_insensitively() {
        let reply = Reply::new(200)
            .header("Cache-Control", "no-store")
            .header("cache-control", "public");
        assert_eq!(reply.headers.len(), 1);
        assert_eq!(reply.get("CACHE-CONTROL"), Some("public"));
    }

    #[test]
    fn list_headers_gain_each_value_once() {
        let mut reply = Reply::new(200).header("Vary", "Accept-Language");
        reply.append_to_list("vary", "Origin");
        reply.append_to_list("Vary", "origin");
        assert_eq!(reply.get("vary"), Some("Accept-Language, Origin"));
    }
}
