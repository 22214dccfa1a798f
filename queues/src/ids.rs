use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ContractError;

/// A UUID as the database writes it (lowercase, hyphenated). Parsed once at the boundary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(uuid::Uuid);

impl Id {
    pub fn parse(text: &str) -> Result<Self, ContractError> {
        // Only the canonical hyphenated form: the same id must have one spelling in logs and keys.
        if text.len() != 36 {
            return Err(ContractError(format!(
                "not a hyphenated UUID: {} characters",
                text.len()
            )));
        }
        uuid::Uuid::try_parse(text)
            .map(Id)
            .map_err(|_| ContractError("not a hyphenated UUID".into()))
    }

    /// A random (version 4) id from 16 bytes the caller drew from a CSPRNG.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Id(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0.hyphenated())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Id::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A request's correlation id: 8 to 64 characters of `[0-9A-Za-z._-]`.
///
/// W3C trace ids (32 lowercase hex) fit; so do the ids other tools send in `X-Trace-Id`.
/// Anything else is refused at the edge and a fresh id is generated instead.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceId(String);

impl TraceId {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, ContractError> {
        let ok_len = (Self::MIN_LEN..=Self::MAX_LEN).contains(&text.len());
        let ok_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok_len && ok_chars {
            Ok(TraceId(text.to_owned()))
        } else {
            Err(ContractError(
                "trace id must be 8-64 characters of [0-9A-Za-z._-]".into(),
            ))
        }
    }

    /// A W3C-style trace id (32 lowercase hex digits) from 16 random bytes.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        let mut text = String::with_capacity(32);
        for b in bytes {
            text.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            text.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        TraceId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.0)
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TraceId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_only_the_canonical_hyphenated_form() {
        let cases = [
            ("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab", true),
            ("6F1C2D3E-4A5B-4C6D-8E7F-0123456789AB", true),
            ("6f1c2d3e4a5b4c6d8e7f0123456789ab", false),
            ("{6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab}", false),
            ("1; DROP TABLE account", false),
            ("", false),
        ];
        for (text, ok) in cases {
            assert_eq!(Id::parse(text).is_ok(), ok, "row {text:?}");
        }
    }

    #[test]
    fn ids_print_lowercase_whatever_case_they_came_in() {
        let id = Id::parse("6F1C2D3E-4A5B-4C6D-8E7F-0123456789AB").unwrap();
        assert_eq!(id.to_string(), "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab");
    }

    #[test]
    fn random_ids_are_version_4() {
        let id = Id::from_random_bytes([0xab; 16]);
        assert_eq!(id.as_uuid().get_version_num(), 4);
    }

    #[test]
    fn trace_ids_refuse_header_injection_and_odd_lengths() {
        let cases = [
            ("4bf92f3577b34da6a3ce929d0e0e4736", true),
            ("bb-trace-uuid-12345", true),
            ("short", false),
            ("has space inside it", false),
            ("line\r\nbreak-injected", false),
            (&"x".repeat(65), false),
        ];
        for (text, ok) in cases {
            assert_eq!(TraceId::parse(text).is_ok(), ok, "row {text:?}");
        }
    }

    #[test]
    fn generated_trace_ids_are_32_lowercase_hex() {
        let id = TraceId::from_random_bytes([0x0f, 0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().starts_with("0fa0"));
        assert!(TraceId::parse(id.as_str()).is_ok());
    }
}
