//! The revocation journal: every share-link revoke and every session end, written to the
//! `JOURNAL` R2 bucket before the edge answers, so that they survive a point-in-time restore of
//! the database (which brings back every link revoked, and every session ended, after its restore
//! point). `POST /admin/journal/reapply` (`scripts/reapply-journal`) lists the entries from a time
//! on and applies them again; docs/runbooks/pitr-cutover.md makes that a step of the cutover.
//!
//! An entry never holds a raw token or a raw session id: a link is named by its token's SHA-256
//! (as `share_link.token_hash`), a session by its id's SHA-256 (as `user_session.id_hash`).
//!
//! Keys sort by time: `v1/<yyyy-mm-dd>/<epoch ms, 13 digits>-<kind>-<subject>.json`, so "every
//! entry at or after T" is one listing that starts after [`start_after`]`(T)`. The subject part
//! (a hash prefix, or the user id) makes the key of the same change written twice the same key.

use babybook_jobs::{format_rfc3339_millis, parse_rfc3339_millis, Id};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::share::TokenHash;

/// The prefix of every key of this format; another layout would get another one.
pub const PREFIX: &str = "v1/";

/// The SHA-256 of a session id, as `user_session.id_hash` stores it (`digest(id, 'sha256')`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionIdHash(pub [u8; 32]);

impl SessionIdHash {
    pub fn of(session_id: &str) -> SessionIdHash {
        SessionIdHash(Sha256::digest(session_id.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl std::fmt::Debug for SessionIdHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionIdHash({}…)", &self.to_hex()[..12])
    }
}

/// Who revoked a link: its family (a signed-in member), or an operator by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoker {
    Family,
    Operator(String),
}

impl Revoker {
    fn as_text(&self) -> String {
        match self {
            Revoker::Family => "family".to_owned(),
            Revoker::Operator(name) => format!("operator:{name}"),
        }
    }

    fn parse(text: &str) -> Option<Revoker> {
        match text {
            "family" => Some(Revoker::Family),
            _ => text
                .strip_prefix("operator:")
                .filter(|name| !name.is_empty() && name.len() <= 200)
                .map(|name| Revoker::Operator(name.to_owned())),
        }
    }

    /// What `share_link.revoked_by` holds for this revoker (only operators are named there).
    pub fn operator(&self) -> Option<&str> {
        match self {
            Revoker::Family => None,
            Revoker::Operator(name) => Some(name),
        }
    }
}

/// One change a restore could undo. `at_ms` is the database's time of the change (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    ShareRevoked {
        token_hash: TokenHash,
        at_ms: i64,
        by: Revoker,
    },
    SessionEnded {
        session_id_hash: SessionIdHash,
        at_ms: i64,
    },
    /// Every session of the user that existed at `at_ms` ended ("sign out everywhere").
    UserSessionsEnded {
        user_id: Id,
        at_ms: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ShareRevoked,
    SessionEnded,
    UserSessionsEnded,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::ShareRevoked, Kind::SessionEnded, Kind::UserSessionsEnded];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ShareRevoked => "share_revoked",
            Kind::SessionEnded => "session_ended",
            Kind::UserSessionsEnded => "user_sessions_ended",
        }
    }
}

/// Why a stored object is not an entry (the reapply skips it and says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl Entry {
    pub fn kind(&self) -> Kind {
        match self {
            Entry::ShareRevoked { .. } => Kind::ShareRevoked,
            Entry::SessionEnded { .. } => Kind::SessionEnded,
            Entry::UserSessionsEnded { .. } => Kind::UserSessionsEnded,
        }
    }

    pub fn at_ms(&self) -> i64 {
        match self {
            Entry::ShareRevoked { at_ms, .. }
            | Entry::SessionEnded { at_ms, .. }
            | Entry::UserSessionsEnded { at_ms, .. } => *at_ms,
        }
    }

    fn subject(&self) -> String {
        match self {
            Entry::ShareRevoked { token_hash, .. } => token_hash.to_hex()[..16].to_owned(),
            Entry::SessionEnded { session_id_hash, .. } => session_id_hash.to_hex()[..16].to_owned(),
            Entry::UserSessionsEnded { user_id, .. } => user_id.to_string(),
        }
    }

    /// Where the entry is stored: sorted by time, then kind, then subject.
    pub fn key(&self) -> String {
        format!(
            "{}-{}-{}.json",
            time_prefix(self.at_ms()),
            self.kind().as_str(),
            self.subject()
        )
    }

    pub fn to_value(&self) -> Value {
        let at = format_rfc3339_millis(self.at_ms());
        match self {
            Entry::ShareRevoked { token_hash, by, .. } => {
                json!({"kind": "share_revoked", "token_hash": token_hash.to_hex(), "at": at, "by": by.as_text()})
            }
            Entry::SessionEnded { session_id_hash, .. } => {
                json!({"kind": "session_ended", "session_id_hash": session_id_hash.to_hex(), "at": at})
            }
            Entry::UserSessionsEnded { user_id, .. } => {
                json!({"kind": "user_sessions_ended", "user_id": user_id.to_string(), "at": at})
            }
        }
    }

    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// An entry from a stored object's text. Strict: a digest must be 64 lower-case hex digits,
    /// the time RFC 3339, and nothing else may be present, so a raw token or session id put
    /// there by mistake is refused, never applied.
    pub fn parse(text: &str) -> Result<Entry, Unreadable> {
        let bad = |why: &str| Unreadable(why.to_owned());
        let value: Value = serde_json::from_str(text).map_err(|_| bad("not JSON"))?;
        let object = value.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let field = |name: &str| object.get(name).and_then(Value::as_str);
        let digest = |name: &str| {
            field(name)
                .filter(|h| h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
                .and_then(crate::hex::decode::<32>)
                .ok_or_else(|| Unreadable(format!("{name}: not 64 lower-case hex digits")))
        };
        let at_ms = field("at")
            .and_then(|t| parse_rfc3339_millis(t).ok())
            .ok_or_else(|| bad("at: not an RFC 3339 time"))?;
        let (entry, fields) = match field("kind") {
            Some("share_revoked") => {
                let by = field("by")
                    .and_then(Revoker::parse)
                    .ok_or_else(|| bad("by: not family or operator:<name>"))?;
                let token_hash = TokenHash(digest("token_hash")?);
                (Entry::ShareRevoked { token_hash, at_ms, by }, 4)
            }
            Some("session_ended") => {
                let session_id_hash = SessionIdHash(digest("session_id_hash")?);
                (Entry::SessionEnded { session_id_hash, at_ms }, 3)
            }
            Some("user_sessions_ended") => {
                let user_id = field("user_id")
                    .and_then(|u| Id::parse(u).ok())
                    .ok_or_else(|| bad("user_id: not a UUID"))?;
                (Entry::UserSessionsEnded { user_id, at_ms }, 3)
            }
            _ => return Err(bad("kind: not share_revoked, session_ended or user_sessions_ended")),
        };
        if object.len() != fields {
            return Err(bad("unexpected fields"));
        }
        Ok(entry)
    }
}

/// `v1/<yyyy-mm-dd>/<epoch ms, 13 digits>`: every key of an entry at `at_ms` starts with it.
fn time_prefix(at_ms: i64) -> String {
    let at_ms = at_ms.max(0);
    let day = &format_rfc3339_millis(at_ms)[..10];
    format!("{PREFIX}{day}/{at_ms:013}")
}

/// The listing's `startAfter` for "every entry at or after `since_ms`": each such key is longer
/// than this prefix of its own, or sorts after it; each earlier one sorts before.
pub fn start_after(since_ms: i64) -> String {
    time_prefix(since_ms)
}

/// How many entries of each kind a reapply read and how many rows each changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub entries: u64,
    pub unreadable: u64,
    /// Rows the database changed, per kind (a row the restore did not undo changes nothing).
    pub reapplied: [u64; 3],
}

impl Tally {
    pub fn add_reapplied(&mut self, kind: Kind, rows: u64) {
        self.reapplied[kind as usize] += rows;
    }

    pub fn to_value(&self) -> Value {
        let reapplied: serde_json::Map<String, Value> = Kind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), self.reapplied[*k as usize].into()))
            .collect();
        json!({"reapplied": reapplied, "entries": self.entries, "unreadable": self.unreadable})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_765_700_000_123; // 2025-12-14T08:13:20.123Z

    fn examples() -> Vec<Entry> {
        vec![
            Entry::ShareRevoked {
                token_hash: TokenHash([0xab; 32]),
                at_ms: AT,
                by: Revoker::Family,
            },
            Entry::ShareRevoked {
                token_hash: TokenHash([0x01; 32]),
                at_ms: AT,
                by: Revoker::Operator("ana".into()),
            },
            Entry::SessionEnded {
                session_id_hash: SessionIdHash::of("session-id"),
                at_ms: AT,
            },
            Entry::UserSessionsEnded {
                user_id: Id::parse("6a4d2b1c-0000-4000-8000-000000000001").unwrap(),
                at_ms: AT,
            },
        ]
    }

    #[test]
    fn every_kind_of_entry_reads_back_as_it_was_written() {
        for entry in examples() {
            assert_eq!(Entry::parse(&entry.to_json()), Ok(entry.clone()), "{}", entry.to_json());
        }
    }

    #[test]
    fn entries_have_the_documented_shape() {
        let [family, operator, session, user] = examples().try_into().unwrap();
        assert_eq!(
            family.to_value(),
            json!({"kind": "share_revoked", "token_hash": "ab".repeat(32), "at": "2025-12-14T08:13:20.123Z", "by": "family"})
        );
        assert_eq!(operator.to_value()["by"], "operator:ana");
        assert_eq!(
            session.to_value(),
            json!({"kind": "session_ended", "session_id_hash": crate::hex::encode(&Sha256::digest(b"session-id")), "at": "2025-12-14T08:13:20.123Z"})
        );
        assert_eq!(
            user.to_value(),
            json!({"kind": "user_sessions_ended", "user_id": "6a4d2b1c-0000-4000-8000-000000000001", "at": "2025-12-14T08:13:20.123Z"})
        );
    }

    #[test]
    fn a_session_is_named_by_the_digest_user_session_stores_never_by_its_id() {
        let entry = Entry::SessionEnded {
            session_id_hash: SessionIdHash::of("the-raw-session-id"),
            at_ms: AT,
        };
        assert!(!entry.to_json().contains("the-raw-session-id"));
        assert!(!entry.key().contains("the-raw-session-id"));
        // digest(p_session, 'sha256') in migrations/V11 hashes the id's UTF-8 bytes.
        assert_eq!(
            SessionIdHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn anything_but_a_well_formed_entry_is_unreadable() {
        let hash = "ab".repeat(32);
        let rows = [
            ("not json", "{".to_owned()),
            ("an array", "[]".to_owned()),
            ("unknown kind", json!({"kind": "share_deleted", "token_hash": hash, "at": "2025-12-14T08:13:20.123Z", "by": "family"}).to_string()),
            ("upper-case hex", json!({"kind": "share_revoked", "token_hash": hash.to_uppercase(), "at": "2025-12-14T08:13:20.123Z", "by": "family"}).to_string()),
            ("a raw token", json!({"kind": "share_revoked", "token_hash": "epxOBoiY4TyrjYAu-IV7Fg", "at": "2025-12-14T08:13:20.123Z", "by": "family"}).to_string()),
            ("a bad time", json!({"kind": "session_ended", "session_id_hash": hash, "at": "yesterday"}).to_string()),
            ("an unknown revoker", json!({"kind": "share_revoked", "token_hash": hash, "at": "2025-12-14T08:13:20.123Z", "by": "someone"}).to_string()),
            ("an operator without a name", json!({"kind": "share_revoked", "token_hash": hash, "at": "2025-12-14T08:13:20.123Z", "by": "operator:"}).to_string()),
            ("a user id that is not a UUID", json!({"kind": "user_sessions_ended", "user_id": "42", "at": "2025-12-14T08:13:20.123Z"}).to_string()),
            ("an extra field", json!({"kind": "session_ended", "session_id_hash": hash, "at": "2025-12-14T08:13:20.123Z", "session_id": "raw"}).to_string()),
        ];
        for (why, text) in rows {
            assert!(Entry::parse(&text).is_err(), "{why}: {text}");
        }
    }

    #[test]
    fn keys_name_the_day_the_time_the_kind_and_never_a_whole_digest() {
        let [family, _, session, user] = examples().try_into().unwrap();
        assert_eq!(
            family.key(),
            "v1/2025-12-14/1765700000123-share_revoked-abababababababab.json"
        );
        assert!(session.key().starts_with("v1/2025-12-14/1765700000123-session_ended-"));
        assert_eq!(
            user.key(),
            "v1/2025-12-14/1765700000123-user_sessions_ended-6a4d2b1c-0000-4000-8000-000000000001.json"
        );
    }

    #[test]
    fn keys_sort_by_time_across_days_and_digit_counts() {
        let times = [0, 999, 86_399_999, 86_400_000, AT - 1, AT, AT + 1, 9_999_999_999_999];
        let keys: Vec<String> = times
            .iter()
            .map(|&at_ms| {
                Entry::SessionEnded {
                    session_id_hash: SessionIdHash([0; 32]),
                    at_ms,
                }
                .key()
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn listing_after_the_start_key_finds_exactly_the_entries_at_or_after_since() {
        let since = AT;
        let start = start_after(since);
        for (at_ms, wanted) in [
            (AT - 86_400_000, false),
            (AT - 1, false),
            (AT, true),
            (AT + 1, true),
            (AT + 86_400_000, true),
        ] {
            for entry in [
                Entry::ShareRevoked {
                    token_hash: TokenHash([0; 32]),
                    at_ms,
                    by: Revoker::Family,
                },
                Entry::UserSessionsEnded {
                    user_id: Id::parse("00000000-0000-4000-8000-000000000000").unwrap(),
                    at_ms,
                },
            ] {
                let key = entry.key();
                assert_eq!(key.as_str() > start.as_str(), wanted, "{key} after {start}");
                assert!(key.starts_with(PREFIX));
            }
        }
    }

    #[test]
    fn the_answer_counts_every_kind_even_when_none_was_reapplied() {
        let mut tally = Tally {
            entries: 3,
            ..Tally::default()
        };
        tally.add_reapplied(Kind::SessionEnded, 2);
        assert_eq!(
            tally.to_value(),
            json!({"reapplied": {"share_revoked": 0, "session_ended": 2, "user_sessions_ended": 0}, "entries": 3, "unreadable": 0})
        );
    }
}
