//! Issue 27: revocation that holds. A revoked link, a deleted photo or a hidden moment leaves
//! every cached copy, whatever races it; an operator can revoke a leaked link; two versions of
//! the Worker never serve each other's pages.
//!
//! Other data centers are the purge API stand-in's model (`ops::standin::purge`): a test copies
//! what this data center's Cache API stored (key and `Cache-Tag`, read back by a test control)
//! into it, and the stand-in removes entries only as Cloudflare documents (by tag, host, prefix
//! or everything; never by URL for Cache API entries).

use std::process::Command;
use std::time::{Duration, Instant};

use babybook_ops::generate::{Family, Share};
use serde_json::{json, Value};

use crate::{Stack, StackOptions};

/// A stack whose Worker purges through the purge API stand-in. Its tests only read purges of
/// their own tags and entries of their own links.
pub(crate) fn revocation_stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| {
        Stack::start(StackOptions {
            purge_api: true,
            ..StackOptions::named("revocation")
        })
    })
}

fn link_tag(share: &Share) -> String {
    babybook_edge::share::purge::link_tag(
        &babybook_edge::share::TokenHash::from_hex(&share.token_hash_hex).expect("a token hash"),
    )
}

fn account_tag(family: &Family) -> String {
    babybook_edge::share::purge::account_tag(&babybook_jobs::Id::parse(&family.account_id).unwrap())
}

fn page(stack: &Stack, share: &Share, lang: &str) -> edge_tests::Response {
    stack
        .client()
        .get_with(&format!("/s/{}", share.token), &[("accept-language", lang)])
}

/// Serves the link's page in both languages and copies what was cached into the stand-in's
/// other data centers; returns their keys.
fn cached_everywhere(stack: &Stack, share: &Share) -> Vec<String> {
    ["pt-BR", "en"]
        .iter()
        .map(|lang| {
            assert_eq!(page(stack, share, lang).status, 200, "{lang}");
            let entry = stack
                .control(json!({"action": "share_cache_entry", "token": share.token, "lang": lang}))
                .json();
            assert_eq!(entry["found"], true, "{lang}: {entry}");
            let key = entry["key"].as_str().expect("key").to_owned();
            stack.remote_cache_put(&key, entry["headers"]["cache-tag"].as_str());
            key
        })
        .collect()
}

/// Waits (bounded) until the stand-in accepted a purge naming `tag`; returns that request.
pub(crate) fn wait_for_accepted_tag(stack: &Stack, tag: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let accepted = stack.purge_requests().into_iter().find(|r| {
            r["answer"] == "accepted"
                && r["tags"].as_array().is_some_and(|t| {
                    t.iter()
                        .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(tag)))
                })
        });
        if let Some(request) = accepted {
            return request;
        }
        assert!(
            Instant::now() < deadline,
            "no accepted purge of {tag} within {timeout:?}. Tail:\n{}",
            stack.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
}

fn assert_gone_from_other_data_centers(stack: &Stack, keys: &[String]) {
    let remote = stack.remote_cached_keys();
    for key in keys {
        assert!(!remote.contains(key), "another data center still serves {key}");
    }
}

/// The derived preview key of an asset as the page shows it.
fn shows_asset(body: &str, asset_id: &str) -> bool {
    body.contains(&format!("/{asset_id}/"))
}

fn pending_purge_of_link(stack: &Stack, share: &Share) -> bool {
    let hash = babybook_edge::hex::decode::<32>(&share.token_hash_hex)
        .unwrap()
        .to_vec();
    stack
        .db()
        .query_one(
            "SELECT purge_pending_since IS NOT NULL FROM share_link WHERE token_hash = $1",
            &[&hash],
        )
        .expect("share_link")
        .get(0)
}

#[test]
fn deleting_a_photo_shown_on_a_cached_page_removes_it_here_and_in_every_data_center() {
    let stack = revocation_stack();
    let family = stack.family(2, 1);
    let share = &family.shares[0];
    let (deleted, kept) = (&family.asset_ids[0], &family.asset_ids[1]);
    let keys = cached_everywhere(stack, share);
    let hit = page(stack, share, "pt-BR");
    assert_eq!(hit.header("x-cache-status"), Some("hit"));
    assert!(
        shows_asset(&hit.text(), deleted),
        "the photo is on the cached page first"
    );

    let s = stack.sign_in(&family);
    let delete = s.write("DELETE", &format!("/assets/{deleted}"), None);
    assert_eq!(delete.status, 202, "{}", delete.text());

    for lang in ["pt-BR", "en"] {
        let after = page(stack, share, lang);
        assert_eq!(after.status, 200);
        assert!(
            !shows_asset(&after.text(), deleted),
            "{lang}: the deleted photo is still shown"
        );
        assert!(shows_asset(&after.text(), kept), "{lang}: the other photo went too");
    }
    wait_for_accepted_tag(stack, &account_tag(&family), Duration::from_secs(20));
    assert_gone_from_other_data_centers(stack, &keys);
}

#[test]
fn a_moment_hidden_through_the_origin_leaves_every_page_of_the_account_everywhere() {
    let stack = revocation_stack();
    let family = stack.family(2, 2);
    let mut keys = Vec::new();
    for share in &family.shares {
        keys.extend(cached_everywhere(stack, share));
    }
    let hidden = &family.moment_ids[0];
    // The origin's own transaction, then its answer to the write the edge proxied.
    stack
        .db()
        .execute(
            "UPDATE moment SET visibility = 'private' WHERE id = $1::text::uuid",
            &[hidden],
        )
        .expect("hide the moment");
    let s = stack.sign_in(&family);
    let write = s.write(
        "PATCH",
        &format!("/moments/{hidden}"),
        Some(&json!({"visibility": "private"})),
    );
    assert_eq!(write.status, 200, "{}", write.text());

    for share in &family.shares {
        let after = page(stack, share, "pt-BR");
        assert!(
            !shows_asset(&after.text(), &family.asset_ids[0]),
            "the hidden moment is still on {}",
            share.id
        );
        assert!(shows_asset(&after.text(), &family.asset_ids[1]));
    }
    wait_for_accepted_tag(stack, &account_tag(&family), Duration::from_secs(20));
    assert_gone_from_other_data_centers(stack, &keys);
}

#[test]
fn a_moment_hidden_without_the_edge_leaves_every_data_center_at_the_next_sweep() {
    let stack = revocation_stack();
    let family = stack.family(2, 1);
    let share = &family.shares[0];
    let keys = cached_everywhere(stack, share);
    let mut db = stack.db();
    db.execute(
        "UPDATE moment SET visibility = 'private' WHERE id = $1::text::uuid",
        &[&family.moment_ids[0]],
    )
    .expect("hide the moment");
    let pending: bool = db
        .query_one(
            "SELECT purge_pending_since IS NOT NULL FROM account WHERE id = $1::text::uuid",
            &[&family.account_id],
        )
        .unwrap()
        .get(0);
    assert!(pending, "the change noted its purge in its own transaction");
    // The sweep leaves a fresh intent to the edge's own try for 30 s: this one is older.
    db.execute(
        "UPDATE account SET purge_pending_since = now() - interval '1 minute' WHERE id = $1::text::uuid",
        &[&family.account_id],
    )
    .unwrap();

    let fired = stack.fire_cron("*/4 * * * *", now_ms());
    assert!(fired.status < 300, "{}", fired.text());
    wait_for_accepted_tag(stack, &account_tag(&family), Duration::from_secs(20));
    assert_gone_from_other_data_centers(stack, &keys);
    let after = page(stack, share, "pt-BR");
    assert!(!shows_asset(&after.text(), &family.asset_ids[0]), "still shown here");
    let cleared: bool = db
        .query_one(
            "SELECT purge_pending_since IS NULL FROM account WHERE id = $1::text::uuid",
            &[&family.account_id],
        )
        .unwrap()
        .get(0);
    assert!(cleared, "the accepted purge confirmed the intent");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn an_operator_revokes_a_leaked_link_with_the_script_and_every_data_center_drops_it() {
    let stack = revocation_stack();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    let keys = cached_everywhere(stack, share);
    let leaked = format!("https://share.babybook.com/s/{}", share.token);

    let out = Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/revoke-share"))
        .args(["--url", &stack.base_url, &leaked])
        .env("ADMIN_TOKEN", &stack.secrets.admin_token)
        .env("ADMIN_REASON", "link posted in a public group (ticket 4711)")
        .output()
        .expect("scripts/revoke-share");
    assert!(out.status.success(), "{out:?}");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(answer["revoked"], true, "{answer}");
    assert_eq!(answer["revoked_by"], stack.secrets.admin_operator.as_str());

    for lang in ["pt-BR", "en"] {
        assert_eq!(page(stack, share, lang).status, 404, "{lang}");
    }
    wait_for_accepted_tag(stack, &link_tag(share), Duration::from_secs(20));
    assert_gone_from_other_data_centers(stack, &keys);
    let audit = stack.wait_for_log(Duration::from_secs(10), "the operator's audit line", |l| {
        l["message"] == "share link revoked by an operator" && l["token_hash"] == share.token_hash_hex[..12]
    });
    assert_eq!(audit["operator"], stack.secrets.admin_operator.as_str());
    assert_eq!(audit["admin_reason"], "link posted in a public group (ticket 4711)");
    assert!(
        !audit.to_string().contains(&share.token),
        "the token never reaches a log line"
    );
    let revoked_by: Option<String> = stack
        .db()
        .query_one(
            "SELECT revoked_by FROM share_link WHERE id = $1::text::uuid",
            &[&share.id],
        )
        .unwrap()
        .get(0);
    assert_eq!(revoked_by.as_deref(), Some(stack.secrets.admin_operator.as_str()));

    let unknown = stack.admin(
        "POST",
        "/admin/shares/revoke",
        Some(&json!({"token_hash": "ab".repeat(32)})),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let malformed = stack.admin("POST", "/admin/shares/revoke", Some(&json!({"token": "not a link"})));
    assert_eq!(malformed.status, 422, "{}", malformed.text());
}

#[test]
fn a_revoke_whose_purge_and_retry_job_are_both_lost_is_purged_by_the_sweep() {
    // Its own stack: it breaks queue publishing for the whole isolate.
    let stack = Stack::start(StackOptions {
        purge_api: true,
        ..StackOptions::named("purge-durable")
    });
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    let keys = cached_everywhere(&stack, share);
    stack.purge_failure(Some(json!({"mode": "server_error", "matching": share.token_hash_hex})));
    stack.fault("queue_publish", true);
    let s = stack.sign_in(&family);

    assert_eq!(s.write("DELETE", &format!("/shares/{}", share.id), None).status, 204);
    assert!(
        pending_purge_of_link(&stack, share),
        "the purge intent is in the database when the edge answers"
    );
    stack.wait_for_log(Duration::from_secs(20), "the lost purge's alert", |l| {
        l["alert"] == "purge_failing" && l["token_hash"] == share.token_hash_hex[..12]
    });
    assert_eq!(
        stack.remote_cached_keys().len(),
        keys.len(),
        "the API refused: the other data centers still hold the pages"
    );

    // The API and the queue come back; the isolate that tried is long gone as far as anyone knows.
    stack.purge_failure(None);
    stack.fault("queue_publish", false);
    let hash = babybook_edge::hex::decode::<32>(&share.token_hash_hex)
        .unwrap()
        .to_vec();
    stack
        .db()
        .execute(
            "UPDATE share_link SET purge_pending_since = now() - interval '1 minute' WHERE token_hash = $1",
            &[&hash],
        )
        .unwrap();
    let fired = stack.fire_cron("*/4 * * * *", now_ms());
    assert!(fired.status < 300, "{}", fired.text());
    wait_for_accepted_tag(&stack, &link_tag(share), Duration::from_secs(20));
    assert_gone_from_other_data_centers(&stack, &keys);
    assert!(!pending_purge_of_link(&stack, share), "the sweep confirmed it");
    stack.stop();
}

#[test]
fn a_page_read_before_a_revoke_is_never_kept_after_it() {
    // Its own stack: the test holds a lock every share page waits for.
    let stack = Stack::start(StackOptions::named("share-fence"));
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    let s = stack.sign_in(&family);

    // The miss's read waits on a lock while the revoke commits; its snapshot predates the revoke.
    let mut locker = stack.db();
    let mut lock = locker.transaction().expect("begin");
    lock.execute("LOCK TABLE asset IN ACCESS EXCLUSIVE MODE", &[])
        .expect("lock");
    let miss = std::thread::scope(|scope| {
        let reader = scope.spawn(|| page(&stack, share, "pt-BR"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 = stack
                .db()
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%public_share_link_page%' AND wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the page's read never waited on the lock");
            std::thread::sleep(Duration::from_millis(20)); // polling interval, bounded by the deadline
        }
        assert_eq!(s.write("DELETE", &format!("/shares/{}", share.id), None).status, 204);
        // Held past the 2 s acquire budget: a read waiting on a lock is slow work on a server it
        // has, not a pool without servers, and gets its statement budget (5 s).
        std::thread::sleep(Duration::from_millis(2_500)); // pacing: the lock's length is the point
        lock.rollback().expect("release the lock");
        reader.join().expect("reader")
    });
    assert_eq!(
        miss.status,
        200,
        "the race did not happen: the read saw the revoke ({})",
        miss.text()
    );

    stack.wait_for_log(Duration::from_secs(20), "the fenced write", |l| {
        l["message"] == "share cache write fenced" && l["token_hash"] == share.token_hash_hex[..12]
    });
    for _ in 0..3 {
        for lang in ["pt-BR", "en"] {
            assert_eq!(
                page(&stack, share, lang).status,
                404,
                "{lang}: the revoked page was kept"
            );
        }
    }
    assert_eq!(stack.counters()["fenced_writes"], 1);
    stack.stop();
}

#[test]
fn a_page_another_version_of_the_worker_cached_is_never_served() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    let now = now_ms();
    let hex = &share.token_hash_hex;
    // What the version before this one stored (its key layout), and what a canary of another
    // render would store: fresh, for the same link and language.
    for key in [
        format!("https://localhost/__edge-cache/v1/page/{hex}/pt-BR"),
        format!("https://localhost/__edge-cache/v2/000000000000/page/{hex}/pt-BR"),
    ] {
        stack.control(json!({
            "action": "cache_put_raw",
            "key": key,
            "body": "<html><style>body{color:red}</style>PAGE OF ANOTHER VERSION</html>",
            "headers": {
                "content-type": "text/html; charset=utf-8",
                "etag": "W/\"other\"",
                "x-rendered-at": now.to_string(),
                "x-share-generation": "other",
                "cache-control": "public, max-age=86400",
            },
        }));
    }
    let served = page(stack, share, "pt-BR");
    assert_eq!(served.status, 200);
    assert!(
        !served.text().contains("PAGE OF ANOTHER VERSION"),
        "a page rendered by another version was served"
    );
    assert_eq!(served.header("x-cache-status"), Some("miss"));
}
