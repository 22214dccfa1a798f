//! Property-based fuzzing of every parser of untrusted input (cargo-fuzz needs a nightly
//! toolchain, which these machines cannot install; proptest runs on stable). Each property feeds
//! arbitrary text or bytes — and near-misses built from valid inputs — and asserts the parser
//! returns instead of panicking, and that whatever it accepts round-trips.
//!
//! `cargo test --test fuzz` runs a short pass (part of scripts/test); `scripts/fuzz` runs each
//! target for minutes with `PROPTEST_CASES` raised.

use proptest::prelude::*;

use babybook_edge::api_input::{CreateShareRequest, LoginRequest, UpdateShareRequest, UploadCompleteRequest};
use babybook_edge::csrf;
use babybook_edge::hygiene::{screen, RequestHead};
use babybook_edge::lang::Lang;
use babybook_edge::rate_limit::{self, POLICIES};
use babybook_edge::session::{cookie_value, Session, SessionKeys, SigningKey};
use babybook_edge::share::headers::if_none_match_matches;
use babybook_edge::share::ShareToken;
use babybook_jobs::{DeadLetter, Id, Job, JobMessage, TraceId};

#[path = "support/job_lifecycle_model.rs"]
mod job_lifecycle_model;
use job_lifecycle_model::{settle_bound_ms, Event, Fault, MediaScript, World};

fn keys() -> SessionKeys {
    SessionKeys {
        current: SigningKey::new("fuzz-session-key-0123456789abcdef0123456789"),
        previous: None,
    }
}

fn valid_cookie() -> String {
    Session::new(
        "sid".into(),
        Id::from_random_bytes([1; 16]),
        Id::from_random_bytes([2; 16]),
        1_800_000_000,
    )
    .seal(&keys())
}

/// A valid input with one byte changed, one inserted or one removed.
fn mutated(base: String) -> impl Strategy<Value = String> {
    let len = base.len().max(1);
    (0..len, any::<u8>(), 0u8..3).prop_map(move |(i, b, how)| {
        let mut bytes = base.clone().into_bytes();
        let i = i.min(bytes.len().saturating_sub(1));
        match how {
            0 if !bytes.is_empty() => bytes[i] = b,
            1 => bytes.insert(i, b),
            _ if !bytes.is_empty() => {
                bytes.remove(i);
            }
            _ => {}
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

proptest! {
    #[test]
    fn share_tokens(text in ".{0,64}") {
        if let Ok(token) = ShareToken::parse(&text) {
            prop_assert_eq!(token.as_text(), text);
        }
    }

    #[test]
    fn session_cookies(text in ".{0,400}") {
        let _ = Session::open(&text, &keys(), 1_800_000_100);
    }

    #[test]
    fn session_cookies_one_byte_off(text in mutated(valid_cookie())) {
        let opened = Session::open(&text, &keys(), 1_800_000_100);
        if text != valid_cookie() {
            prop_assert!(opened.is_err(), "a changed cookie verified");
        }
    }

    #[test]
    fn cookie_headers(header in ".{0,400}", name in "[A-Za-z_-]{1,20}") {
        let _ = cookie_value(&header, &name);
    }

    #[test]
    fn csrf_tokens(header in ".{0,200}", cookie in ".{0,200}", sid in proptest::option::of("[a-zA-Z0-9_-]{0,30}")) {
        let verified = csrf::verify(&keys(), sid.as_deref(), Some(&header), Some(&cookie)).is_ok();
        prop_assert!(!verified || header == cookie);
    }

    #[test]
    fn job_messages(text in ".{0,600}") {
        if let Ok(message) = JobMessage::parse(&text) {
            prop_assert_eq!(JobMessage::parse(&message.to_json()), Ok(message));
        }
    }

    #[test]
    fn job_messages_near_valid(text in mutated(JobMessage::new(
        Id::from_random_bytes([1; 16]), Id::from_random_bytes([2; 16]),
        TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(), 0,
        Job::Transcode { asset_id: Id::from_random_bytes([3; 16]), original_key: "originals/a.jpg".into(), media_type: "image/jpeg".into() },
    ).to_json())) {
        if let Ok(message) = JobMessage::parse(&text) {
            prop_assert_eq!(JobMessage::parse(&message.to_json()), Ok(message));
        }
    }

    #[test]
    fn dead_letters(text in ".{0,600}") {
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        let dead = DeadLetter::from_value(value, 0);
        prop_assert!(!dead.failure.kind.is_transient() || dead.job.is_some());
    }

    #[test]
    fn if_none_match(header in ".{0,300}") {
        let _ = if_none_match_matches(&header, "W/\"0123456789abcdef\"");
    }

    #[test]
    fn accept_language(header in ".{0,300}") {
        let _ = Lang::negotiate(Some(&header));
    }

    #[test]
    fn rate_limit_keys(subject in ".{0,200}", a in 0usize..6, b in 0usize..6) {
        let ka = rate_limit::key(&POLICIES[a], &subject);
        let kb = rate_limit::key(&POLICIES[b], &subject);
        prop_assert!(a == b || ka != kb);
        let _ = rate_limit::client_ip_key(Some(&subject));
    }

    #[test]
    fn request_heads(method in "[A-Z]{0,10}", path in ".{0,300}", host in ".{0,80}") {
        let head = RequestHead { method: &method, path: &path, target_len: path.len(), header_bytes: 100, host: &host };
        let _ = screen(&head, |h| h == "share.babybook.com");
    }

    #[test]
    fn api_bodies(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = LoginRequest::parse(&body);
        let _ = CreateShareRequest::parse(&body);
        let _ = UpdateShareRequest::parse(&body);
        let _ = UploadCompleteRequest::parse(&body);
    }

    #[test]
    fn api_json_bodies(json in r#"\{("[a-z_]{1,15}": ?("[^"\\]{0,40}"|[0-9]{1,6}|null|true|\[\]|\["[0-9a-f-]{36}"\]),? ?){0,4}\}"#) {
        let _ = LoginRequest::parse(json.as_bytes());
        let _ = CreateShareRequest::parse(json.as_bytes());
        let _ = UpdateShareRequest::parse(json.as_bytes());
        let _ = UploadCompleteRequest::parse(json.as_bytes());
    }
}

fn lifecycle_event() -> impl Strategy<Value = Event> {
    let fault = prop_oneof![
        4 => Just(Fault::None),
        1 => Just(Fault::DbDownBeforeClaim),
        1 => Just(Fault::DbDownAfterClaim),
        1 => Just(Fault::IsolateDiesAfterClaim),
        1 => Just(Fault::Media5xx),
        1 => Just(Fault::MediaTimeout),
        1 => Just(Fault::Media4xx),
        1 => Just(Fault::DlqPublishFails),
    ];
    prop_oneof![
        6 => fault.prop_map(Event::Deliver),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(store_fails, db_down)| Event::HandleDead { store_fails, db_down }),
        2 => any::<bool>().prop_map(|db_down| Event::Sweep { db_down }),
        1 => Just(Event::Duplicate),
        3 => (0i64..400_000).prop_map(|ms| Event::Wait { ms }),
    ]
}

proptest! {
    /// Issue 14's state machine: any sequence of single faults at any step of a job's life, then
    /// the faults stop. At no point is the row `failed` without its dead record, and within a
    /// lease, two sweep periods and the retry backoff the job is `ready` or `failed` with its
    /// record stored, with nothing of it left on the queues.
    #[test]
    fn job_lifecycle(
        published in any::<bool>(),
        transient_first in 0u32..8,
        then_definitive in any::<bool>(),
        events in proptest::collection::vec(lifecycle_event(), 0..80),
    ) {
        let mut media = MediaScript { transient_first, then_definitive };
        let mut world = World::new(published);
        for event in events {
            world.step(event, &mut media);
            world.check_safety().map_err(TestCaseError::fail)?;
        }
        world.run_fault_free(&mut media, settle_bound_ms()).map_err(TestCaseError::fail)?;
    }
}
