//! Property-based fuzzing of every parser of untrusted input (cargo-fuzz needs a nightly
//! toolchain, which these machines cannot install; proptest runs on stable). Each property feeds
//! arbitrary text or bytes — and near-misses built from valid inputs — and asserts the parser
//! returns instead of panicking, and that whatever it accepts round-trips.
//!
//! `cargo test --test fuzz` runs a short pass (part of scripts/test); `scripts/fuzz` runs each
//! target for minutes with `PROPTEST_CASES` raised.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use babybook_edge::api_input::{
    CreateLinkRequest, CreateShareRequest, LoginRequest, UpdateShareRequest, UploadCompleteRequest,
};
use babybook_edge::csrf;
use babybook_edge::hygiene::{screen, RequestHead};
use babybook_edge::lang::Lang;
use babybook_edge::rate_limit::{self, POLICIES};
use babybook_edge::session::{cookie_value, Session, SessionError, SessionKeys, SigningKey};
use babybook_edge::share::headers::if_none_match_matches;
use babybook_edge::share::ShareToken;
use babybook_jobs::{DeadLetter, Id, Job, JobMessage, TraceId};

#[path = "support/job_world.rs"]
mod job_world;
use job_world::{settle_bound_ms, Action, Model, Pass, Script, LEASE_MS};

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

#[test]
fn session_cookies() {
    // Junk: reach is how often it got past the format checks to the key lookup or the MAC.
    fuzz_junk("session_cookies", ".{0,400}", |text| {
        Ok(!matches!(
            Session::open(&text, &keys(), 1_800_000_100),
            Err(SessionError::Malformed)
        ))
    });
}

#[test]
fn session_cookies_one_byte_off() {
    fuzz("session_cookies_one_byte_off", mutated(valid_cookie()), |text| {
        let opened = Session::open(&text, &keys(), 1_800_000_100);
        if text != valid_cookie() {
            prop_assert!(opened.is_err(), "a changed cookie verified");
        }
        // Reached the MAC: the cookie parsed and named a known key.
        Ok(matches!(opened, Ok(_) | Err(SessionError::BadSignature)))
    });
}

#[test]
fn cookie_headers() {
    let header = (".{0,400}", "[A-Za-z_-]{1,20}", any::<bool>()).prop_map(|(junk, name, named)| {
        let header = if named { format!("{junk}; {name}=v") } else { junk };
        (header, name)
    });
    fuzz_junk("cookie_headers", header, |(header, name)| {
        Ok(cookie_value(&header, &name).is_some())
    });
}

#[test]
fn job_messages() {
    fuzz_junk("job_messages", ".{0,600}", |text| {
        let parsed = JobMessage::parse(&text);
        if let Ok(message) = &parsed {
            prop_assert_eq!(JobMessage::parse(&message.to_json()), Ok(message.clone()));
        }
        Ok(parsed.is_ok())
    });
}

#[test]
fn job_messages_near_valid() {
    let valid = JobMessage::new(
        Id::from_random_bytes([1; 16]),
        Id::from_random_bytes([2; 16]),
        TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        0,
        Job::Transcode {
            asset_id: Id::from_random_bytes([3; 16]),
            original_key: "originals/a.jpg".into(),
            media_type: "image/jpeg".into(),
        },
    )
    .to_json();
    fuzz("job_messages_near_valid", mutated(valid), |text| {
        let parsed = JobMessage::parse(&text);
        if let Ok(message) = &parsed {
            prop_assert_eq!(JobMessage::parse(&message.to_json()), Ok(message.clone()));
        }
        Ok(parsed.is_ok())
    });
}

#[test]
fn accept_language_junk() {
    // Reach: the negotiation found a served language in the junk.
    fuzz_junk("accept_language_junk", ".{0,300}", |header| {
        Ok(Lang::negotiate(Some(&header)) == Lang::En)
    });
}

#[test]
fn rate_limit_keys() {
    let subject = prop_oneof![
        ".{0,200}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "[0-9a-f:]{2,39}",
    ];
    let strategy = (subject, 0usize..POLICIES.len(), 0usize..POLICIES.len());
    fuzz("rate_limit_keys", strategy, |(subject, a, b)| {
        let ka = rate_limit::key(&POLICIES[a], &subject);
        let kb = rate_limit::key(&POLICIES[b], &subject);
        prop_assert!(a == b || ka != kb);
        // Reach: the header parsed as an address.
        Ok(rate_limit::client_ip_key(Some(&subject)) != "unknown")
    });
}

fn lifecycle_action() -> impl Strategy<Value = Action> {
    let pass = prop_oneof![3 => Just(Pass::Ok), 2 => any::<u8>().prop_map(Pass::Fault)];
    prop_oneof![
        4 => (1usize..5).prop_map(|size| Action::Deliver { size }),
        8 => (any::<usize>(), pass).prop_map(|(pick, pass)| Action::Resume { pick, pass }),
        2 => (0i64..400_000).prop_map(|ms| Action::Wait { ms }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(db_down, partial)| Action::Sweep { db_down, partial }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(store_fails, db_down)| Action::HandleDead { store_fails, db_down }),
        1 => any::<usize>().prop_map(|pick| Action::Duplicate { pick }),
        1 => any::<usize>().prop_map(|pick| Action::Redrive { pick }),
        1 => any::<usize>().prop_map(|pick| Action::Kill { pick }),
    ]
}

fn media_script() -> impl Strategy<Value = Script> {
    (0u32..3, 0u32..4, prop::bool::weighted(0.15)).prop_map(|(running_first, transient_first, then_definitive)| {
        Script {
            running_first,
            transient_first,
            then_definitive,
        }
    })
}

/// The job runner itself (`babybook_edge::jobs::runner`), driven through an in-memory port
/// (`tests/support/job_world.rs`): batches of deliveries of five jobs (transcode, export, delete,
/// reap, purge; duplicates; a poison message), the DLQ handler, the sweep and re-drives run as
/// interleaved steps, and every call of the port waits until the schedule resumes it, with success
/// or a fault (the database failing before or after an account's transaction, the media worker's
/// 5xx, timeout, 422, invalid output or 202, a refused publish, dead letter or purge), or stalls
/// while time passes and isolates die. Then the faults stop, stalled calls go on (past their
/// leases, in some cases), and an operator re-drives what did not fail for good. The properties:
/// no row is `failed` without its dead record, at any step; no lease stays expired past one sweep
/// once the faults stop; every message is acked or retried once; each message that dies leaves
/// one dead letter; at most one media call completes per lease; every job settles (ready, deleted
/// or purged, or dead with its record), and one that nothing failed for good ends done. Reach:
/// cases in which a slow delivery found its lease taken over (its `job lease lost` line).
#[test]
fn job_lifecycle() {
    let stall = prop_oneof![Just(0i64), 0..LEASE_MS, LEASE_MS..3 * LEASE_MS];
    let strategy = (
        [
            media_script(),
            media_script(),
            media_script(),
            media_script(),
            media_script(),
        ],
        any::<[bool; 5]>(),
        any::<bool>(),
        stall,
        proptest::collection::vec(lifecycle_action(), 0..120),
    );
    fuzz(
        "job_lifecycle",
        strategy,
        |(mut scripts, published, poison, stall_ms, actions)| {
            scripts[4].then_definitive = false; // a purge never fails for good
            let mut model = Model::new(scripts, published, poison);
            for action in actions {
                model.step(action);
                if let Some(v) = model.world.borrow().violations.first() {
                    return Err(TestCaseError::fail(format!("after {action:?}: {v}")));
                }
            }
            model
                .run_fault_free(stall_ms, settle_bound_ms(stall_ms))
                .map_err(TestCaseError::fail)?;
            model.check_settled(&scripts).map_err(TestCaseError::fail)?;
            let reached = model.world.borrow().leases_lost > 0;
            Ok(reached)
        },
    );
}

/// Runs `case` over `strategy` (`PROPTEST_CASES` cases, proptest's shrinking on failure) and
/// reports how many cases the code under test took past its first rejection: `case` returns
/// `true` for those, judged by what the code answered (the stage its error names, an accepted
/// value), never by what the generator meant to produce. A structured target whose inputs never
/// get past the first check tests nothing, so the count is printed (`reach <target> <cases>
/// <reached>`, summed by scripts/fuzz) and must not be zero.
fn fuzz<S: Strategy>(name: &str, strategy: S, case: impl Fn(S::Value) -> Result<bool, TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let reached = run_counting(name, strategy, case);
    assert!(reached > 0, "{name}: no case got past the first rejection");
}

/// `fuzz` for arbitrary junk, whose point is that nothing panics: its reach is printed but may be
/// zero.
fn fuzz_junk<S: Strategy>(name: &str, strategy: S, case: impl Fn(S::Value) -> Result<bool, TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    run_counting(name, strategy, case);
}

fn run_counting<S: Strategy>(name: &str, strategy: S, case: impl Fn(S::Value) -> Result<bool, TestCaseError>) -> u64
where
    S::Value: std::fmt::Debug,
{
    let (cases, reached) = (Cell::new(0u64), Cell::new(0u64));
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        cases.set(cases.get() + 1);
        if case(value)? {
            reached.set(reached.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    println!("reach {name} {} {}", cases.get(), reached.get());
    reached.get()
}

/// Either a valid value or one with a targeted mutation, half and half.
fn valid_or_mutated(valid: impl Strategy<Value = String> + Clone + 'static) -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        valid.clone().prop_map(|v| (v, true)),
        valid.prop_flat_map(|v| mutated(v).prop_map(|m| (m, false))),
    ]
}

#[test]
fn share_tokens() {
    let valid = any::<[u8; 16]>().prop_map(|b| ShareToken::from_bytes(b).as_text());
    // The last character carries 2 bits of the token and 4 padding bits: swapping it for another
    // letter of the alphabet mostly spells the same bytes with non-zero padding, which must be
    // refused (one spelling per token, so one cache key and one rate-limit key per link).
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last_swapped = (valid.clone(), 0..ALPHABET.len()).prop_map(|(mut text, i)| {
        text.pop();
        text.push(char::from(ALPHABET[i]));
        (text, false)
    });
    let tokens = prop_oneof![2 => valid_or_mutated(valid), 1 => last_swapped];
    fuzz("share_tokens", tokens, |(text, untouched)| {
        match ShareToken::parse(&text) {
            Ok(token) => {
                // One spelling per token: whatever parses is its own canonical text.
                prop_assert_eq!(token.as_text(), text.clone());
                Ok(true)
            }
            Err(_) => {
                prop_assert!(!untouched, "a generated token was refused: {}", text);
                Ok(false)
            }
        }
    });
}

#[test]
fn csrf_tokens() {
    let sid = proptest::option::of("[a-zA-Z0-9_-]{1,30}");
    let strategy = (sid, any::<[u8; 16]>(), 0u8..4).prop_flat_map(|(sid, random, how)| {
        let token = csrf::issue(&keys(), sid.as_deref(), random);
        (Just(sid), Just(token.clone()), mutated(token), Just(how))
    });
    fuzz("csrf_tokens", strategy, |(sid, token, changed, how)| {
        let verify =
            |sid: Option<&str>, header: &str, cookie: &str| csrf::verify(&keys(), sid, Some(header), Some(cookie));
        let answer = match how {
            // The pair the server issued verifies for its own session.
            0 => {
                let answer = verify(sid.as_deref(), &token, &token);
                prop_assert!(answer.is_ok());
                answer
            }
            // Header and cookie agree but one byte is off: the MAC must refuse it.
            1 => {
                let answer = verify(sid.as_deref(), &changed, &changed);
                prop_assert!(changed == token || answer.is_err(), "{}", changed);
                answer
            }
            // Another session's token, matching pair: refused.
            2 => {
                let other = Some(sid.as_deref().map_or("someone-else".to_owned(), |s| format!("{s}x")));
                let answer = verify(other.as_deref(), &token, &token);
                prop_assert!(answer.is_err());
                answer
            }
            // Header and cookie differ: refused before the MAC.
            _ => {
                let answer = verify(sid.as_deref(), &changed, &token);
                prop_assert!(changed == token || answer.is_err());
                answer
            }
        };
        // Reach: the pair matched and the MAC was checked.
        Ok(matches!(answer, Ok(()) | Err(csrf::CsrfError::NotForThisSession)))
    });
}

#[test]
fn dead_letters() {
    let job = (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(j, a, x)| {
        JobMessage::new(
            Id::from_random_bytes(j),
            Id::from_random_bytes(a),
            TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            0,
            Job::Export {
                export_id: Id::from_random_bytes(x),
            },
        )
    });
    let body = job.prop_flat_map(|job| {
        let reported = babybook_jobs::DeadJob::of_job(
            job.clone(),
            babybook_jobs::Failure::new(babybook_jobs::FailureKind::CorruptMedia, Some(422), "corrupt"),
            0,
        )
        .to_json();
        prop_oneof![
            Just((job.clone(), job.to_json(), 0u8)),
            Just((job.clone(), reported.clone(), 1u8)),
            mutated(reported).prop_map(move |m| (job.clone(), m, 2u8)),
        ]
    });
    fuzz("dead_letters", body, |(job, text, kind)| {
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        let dead = DeadLetter::from_value(value, 0);
        match kind {
            // A raw job the runtime moved: kept whole, as `unreported`.
            0 => {
                prop_assert_eq!(dead.job.as_ref(), Some(&job));
                prop_assert_eq!(dead.failure.kind, babybook_jobs::FailureKind::Unreported);
            }
            // A dead job the consumer reported: its own failure kept.
            1 => {
                prop_assert_eq!(dead.job.as_ref(), Some(&job));
                prop_assert_eq!(dead.failure.kind, babybook_jobs::FailureKind::CorruptMedia);
            }
            // One byte off: whatever it becomes, never a retryable kind without its job.
            _ => prop_assert!(!dead.failure.kind.is_transient() || dead.job.is_some()),
        }
        Ok(dead.job.is_some())
    });
}

#[test]
fn if_none_match() {
    let current = "W/\"0123456789abcdef\"";
    let member = prop_oneof![
        Just(current.to_owned()),
        Just("\"0123456789abcdef\"".to_owned()),
        "W/\"[0-9a-f]{16}\"",
        ".{0,20}",
    ];
    let header = (proptest::collection::vec(member, 0..80), ", ?|,  ").prop_map(|(members, sep)| members.join(&sep));
    fuzz("if_none_match", header, |header| {
        let matched = if_none_match_matches(&header, current);
        let listed = header.split(',').take(64).any(|m| {
            let m = m.trim();
            m == current || m == "\"0123456789abcdef\""
        });
        // The weak comparison of RFC 9110: the current tag in the first 64 members matches.
        prop_assert!(!listed || matched, "{}", header);
        prop_assert!(!matched || listed || header.trim() == "*");
        // Reach: the code found the current tag among the members.
        Ok(matched)
    });
}

#[test]
fn accept_language() {
    // A header of weighted language ranges, as browsers send them, with junk ranges and malformed
    // weights among them. The model: of the first 32 items, the served language (pt*, en*) with
    // the highest q above zero wins, the first listed on a tie; nothing served means pt-BR.
    let range = prop_oneof![
        Just("pt-BR"),
        Just("pt"),
        Just("PT-br"),
        Just("en"),
        Just("en-US"),
        Just("fr-FR"),
        Just("de"),
        Just("*"),
        Just("english"),
    ];
    let weight = prop_oneof![
        Just((String::new(), Some(1000u16))),
        (0u16..=1000).prop_map(|q| (format!(";q={}.{:03}", q / 1000, q % 1000), Some(q))),
        (0u16..=999).prop_map(|q| (format!(";q=0.{}", q / 100), Some(q / 100 * 100))),
        prop_oneof![Just(";q=2"), Just(";q=0.1234"), Just(";q=abc"), Just(";q=1.5")].prop_map(|w| (w.to_owned(), None)),
    ];
    let items = proptest::collection::vec((range, weight), 0..40);
    fuzz("accept_language", items, |items| {
        let header = items
            .iter()
            .map(|(range, (weight, _))| format!("{range}{weight}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut best: Option<(u16, Lang)> = None;
        for (range, (_, q)) in items.iter().take(32) {
            let lang = match range.to_ascii_lowercase() {
                r if r == "pt" || r.starts_with("pt-") => Lang::PtBr,
                r if r == "en" || r.starts_with("en-") => Lang::En,
                _ => continue,
            };
            match q {
                Some(q) if *q > 0 && best.is_none_or(|(b, _)| *q > b) => best = Some((*q, lang)),
                _ => {}
            }
        }
        let expected = best.map_or(Lang::PtBr, |(_, lang)| lang);
        let negotiated = Lang::negotiate(Some(&header));
        prop_assert_eq!(negotiated, expected, "{}", header);
        // Reach: the weights chose English over the default.
        Ok(negotiated == Lang::En)
    });
}

#[test]
fn request_heads() {
    let path = prop_oneof![
        "/s/[A-Za-z0-9_-]{22}",
        "/(wp-login\\.php|\\.env|\\.git/config|admin\\.php)",
        "/[a-z/%.]{0,60}",
        ".{0,300}",
    ];
    let strategy = (
        prop_oneof![Just("GET".to_owned()), Just("POST".to_owned()), "[A-Z]{0,10}"],
        path,
        prop_oneof![
            Just("share.babybook.com".to_owned()),
            Just("SHARE.babybook.com:443".to_owned()),
            ".{0,40}"
        ],
        prop_oneof![0usize..4096, 4096usize..20_000],
        prop_oneof![0usize..16_384, 16_384usize..64_000],
    );
    fuzz(
        "request_heads",
        strategy,
        |(method, path, host, target_len, header_bytes)| {
            let head = RequestHead {
                method: &method,
                path: &path,
                target_len,
                header_bytes,
                host: &host,
            };
            let verdict = screen(&head, |h| h == "share.babybook.com");
            let passed_size = target_len <= babybook_edge::hygiene::MAX_URL_BYTES
                && header_bytes <= babybook_edge::hygiene::MAX_HEADER_BYTES;
            if verdict.is_ok() {
                prop_assert!(
                    passed_size,
                    "an oversized request passed: {} {}",
                    target_len,
                    header_bytes
                );
                prop_assert!(!babybook_edge::hygiene::is_scanner_path(&path));
            }
            // Reach: the screen got past the size checks.
            Ok(!matches!(
                verdict,
                Err(babybook_edge::hygiene::Rejection::UriTooLong | babybook_edge::hygiene::Rejection::HeadersTooLarge)
            ))
        },
    );
}

fn api_body() -> impl Strategy<Value = (String, u8)> {
    let uuid = any::<[u8; 16]>().prop_map(|b| Id::from_random_bytes(b).to_string());
    let login = ("[a-z]{1,10}@[a-z]{1,10}\\.test", "[ -~]{1,40}")
        .prop_map(|(e, p)| serde_json::json!({"email": e, "password": p}).to_string());
    let create = (
        proptest::collection::vec(uuid.clone(), 1..5),
        proptest::option::of("[a-zA-Z ]{1,40}"),
        proptest::option::of(1u32..365),
    )
        .prop_map(|(ids, title, days)| {
            serde_json::json!({"moment_ids": ids, "title": title, "expires_in_days": days}).to_string()
        });
    let link = (
        "[a-zA-Z \u{e0}-\u{ff}]{0,90}",
        proptest::option::of(0u32..400),
        proptest::option::of("[ a-z\u{e0}-\u{ff}\t]{0,140}"),
    )
        .prop_map(|(name, days, passphrase)| {
            serde_json::json!({"name": name, "expires_in_days": days, "passphrase": passphrase}).to_string()
        });
    let complete = (uuid, 1i64..1_000_000_000, "[a-f0-9]{8,32}")
        .prop_map(|(id, size, etag)| serde_json::json!({"asset_id": id, "size_bytes": size, "etag": etag}).to_string());
    prop_oneof![
        login.clone().prop_map(|b| (b, 0u8)),
        create.clone().prop_map(|b| (b, 1u8)),
        complete.clone().prop_map(|b| (b, 2u8)),
        link.clone().prop_map(|b| (b, 3u8)),
        login.prop_flat_map(|b| mutated(b).prop_map(|m| (m, 10u8))),
        create.prop_flat_map(|b| mutated(b).prop_map(|m| (m, 11u8))),
        complete.prop_flat_map(|b| mutated(b).prop_map(|m| (m, 12u8))),
        link.prop_flat_map(|b| mutated(b).prop_map(|m| (m, 13u8))),
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(|b| (String::from_utf8_lossy(&b).into_owned(), 20u8)),
    ]
}

#[test]
fn api_bodies() {
    fuzz("api_bodies", api_body(), |(body, kind)| {
        let bytes = body.as_bytes();
        let results = [
            LoginRequest::parse(bytes).map(|_| ()),
            CreateShareRequest::parse(bytes).map(|_| ()),
            UploadCompleteRequest::parse(bytes).map(|_| ()),
            CreateLinkRequest::parse(bytes).map(|_| ()),
        ];
        let _ = UpdateShareRequest::parse(bytes);
        if kind < 3 {
            // A well-formed body of its kind is accepted.
            prop_assert!(results[kind as usize].is_ok(), "{}: {:?}", body, results[kind as usize]);
        }
        if kind == 3 {
            // A link body is accepted exactly when its name has text, its days are in range and
            // its passphrase, if any, is long enough.
            let value: serde_json::Value = serde_json::from_str(&body).unwrap();
            let name = value["name"].as_str().unwrap_or_default();
            let named = !name.trim().is_empty() && name.trim().chars().count() <= 80 && name.chars().count() <= 80;
            let days_ok = value["expires_in_days"].as_u64().is_none_or(|d| (1..=365).contains(&d));
            // A passphrase is absent, or 8 to 128 characters of text once trimmed.
            let passphrase_ok = value["passphrase"].as_str().is_none_or(|p| {
                let p = p.trim();
                (8..=128).contains(&p.chars().count()) && !p.contains('\t')
            });
            prop_assert_eq!(
                results[3].is_ok(),
                named && days_ok && passphrase_ok,
                "{}: {:?}",
                body,
                results[3]
            );
        }
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            // A refusal says what is wrong, in the envelope's terms: a 400 or a 422 with fields.
            let status = refused.code.status();
            prop_assert!(
                status == 400 || status == 413 || status == 415 || status == 422,
                "{:?}",
                refused
            );
            prop_assert!(
                status != 422 || !refused.fields.is_empty(),
                "a 422 without fields: {:?}",
                refused
            );
        }
        // Reach: some parser accepted the body or judged its fields (a 422 names them).
        Ok(results
            .iter()
            .any(|r| r.as_ref().map_or_else(|e| e.code.status() == 422, |_| true)))
    });
}
