//! Issue 32: recipient links. One share, a link per relative: each revocable alone, with its own
//! views, all showing one cached render of the share's page.
//!
//! Runs on the revocation stack (the purge API stand-in and its model of other data centers);
//! every count here is of this test's own links (request lines by trace id, purges by tag).

use std::time::{Duration, Instant};

use babybook_edge::share::purge::link_tag;
use babybook_edge::share::{ShareToken, TokenHash};
use serde_json::{json, Value};

use crate::revocation::{revocation_stack, wait_for_accepted_tag};
use crate::Stack;

struct Link {
    id: String,
    token: String,
}

impl Link {
    fn hash(&self) -> TokenHash {
        ShareToken::parse(&self.token).expect("a token").hash()
    }

    fn path(&self) -> String {
        format!("/s/{}", self.token)
    }
}

fn add_link(signed_in: &edge_tests::SignedIn, share_id: &str, name: &str) -> Link {
    let made = signed_in.write(
        "POST",
        &format!("/shares/{share_id}/links"),
        Some(&json!({"name": name, "expires_in_days": 30})),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let body = made.json();
    assert_eq!(body["link"]["name"], name);
    assert_eq!(body["link"]["status"], "live");
    assert_eq!(body["path"], format!("/s/{}", body["token"].as_str().unwrap()));
    Link {
        id: body["link"]["id"].as_str().expect("id").to_owned(),
        token: body["token"].as_str().expect("token").to_owned(),
    }
}

fn resolution(stack: &Stack, link: &Link) -> Value {
    stack
        .control(json!({"action": "share_link_resolution", "token": link.token}))
        .json()
}

/// Waits (bounded) for a link's resolution to be stored: it is written after the answer.
fn stored_resolution(stack: &Stack, link: &Link) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entry = resolution(stack, link);
        if entry["found"] == true {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no resolution stored: {entry}",
            link.token
        );
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
}

/// Waits for the share's page to be written (and kept) under its page key: the write follows
/// the answer.
fn wait_for_page_kept(stack: &Stack, page_key: &TokenHash) {
    let short = page_key.short();
    stack.wait_for_log(Duration::from_secs(10), "the page's cache write", |l| {
        l["message"] == "share cache write kept" && l["token_hash"] == short.as_str()
    });
}

#[test]
fn three_recipients_share_one_render_and_one_revoked_link_goes_alone() {
    let stack = revocation_stack();
    let family = stack.family(2, 1);
    let share = &family.shares[0];
    let s = stack.sign_in(&family);
    let links: Vec<Link> = ["Vovó Maria", "Tio João", "Dinda Ana"]
        .iter()
        .map(|name| add_link(&s, &share.id, name))
        .collect();
    let client = stack.client();

    // First requests: one render for the three, the others take it from the cache.
    let share_key = TokenHash::from_hex(&share.token_hash_hex).unwrap();
    let mut first = Vec::new();
    for link in &links {
        first.push(client.get_with(&link.path(), &[("accept-language", "pt-BR")]));
        wait_for_page_kept(stack, &share_key);
    }
    let mut renders = Vec::new();
    for (link, answer) in links.iter().zip(&first) {
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("etag"), first[0].header("etag"), "one page, one ETag");
        assert!(
            answer.text().contains(&link.token),
            "og:url names the link it was opened by"
        );
        renders.push(stack.request_line(answer)["page_render"].clone());
    }
    assert_eq!(
        renders,
        [json!("new"), json!("shared"), json!("shared")],
        "three recipients, one render"
    );
    // Each recipient's way to the page is kept, tagged with its own link and the share's.
    for link in &links {
        let entry = stored_resolution(stack, link);
        let tags = entry["headers"]["cache-tag"].as_str().expect("cache-tag");
        assert!(tags.contains(&link_tag(&link.hash())), "{tags}");
        assert!(tags.contains(&link_tag(&share_key)), "{tags}");
        assert!(!tags.contains(&link.token), "a tag never holds the token: {tags}");
    }
    // Second requests: hits, with no database trip.
    for link in &links {
        let hit = client.get_with(&link.path(), &[("accept-language", "pt-BR")]);
        assert_eq!(hit.header("x-cache-status"), Some("hit"), "{}", link.token);
        let line = stack.request_line(&hit);
        assert!(line.get("db_render_ms").is_none(), "a hit read the database: {line}");
    }

    // Other data centers hold the page and each resolution (the stand-in's model).
    let page_key = stack
        .control(json!({"action": "share_cache_entry", "token": share.token, "lang": "pt-BR"}))
        .json();
    assert_eq!(page_key["found"], true, "the page is cached under the share's own key");
    stack.remote_cache_put(
        page_key["key"].as_str().unwrap(),
        page_key["headers"]["cache-tag"].as_str(),
    );
    for link in &links {
        let entry = resolution(stack, link);
        stack.remote_cache_put(entry["key"].as_str().unwrap(), entry["headers"]["cache-tag"].as_str());
    }

    // Revoke one link: 404 for it, byte for byte the unknown token's; the others stay.
    let (revoked, kept) = (&links[1], [&links[0], &links[2]]);
    let revoke = s.write("DELETE", &format!("/shares/{}/links/{}", share.id, revoked.id), None);
    assert_eq!(revoke.status, 204, "{}", revoke.text());
    let unknown = client.get("/s/AAAAAAAAAAAAAAAAAAAAAA");
    let gone = client.get(&revoked.path());
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.comparable(),
        unknown.comparable(),
        "the revoked link's 404 is the unknown token's"
    );
    for link in kept {
        let still = client.get_with(&link.path(), &[("accept-language", "pt-BR")]);
        assert_eq!(still.status, 200, "{}", link.token);
        assert_eq!(still.header("x-cache-status"), Some("hit"), "the page was not purged");
    }
    // Everywhere: the purge names the revoked link's tag alone, which only its resolution carries.
    let purge = wait_for_accepted_tag(stack, &link_tag(&revoked.hash()), Duration::from_secs(20));
    assert_eq!(purge["tags"].as_array().map(Vec::len), Some(1), "{purge}");
    let remote = stack.remote_cached_keys();
    let revoked_key = resolution(stack, revoked)["key"].as_str().unwrap().to_owned();
    assert!(
        !remote.contains(&revoked_key),
        "another data center still resolves the revoked link"
    );
    assert!(
        remote.contains(&page_key["key"].as_str().unwrap().to_owned()),
        "the share's page went with one link"
    );
    for link in kept {
        assert!(remote.contains(&resolution(stack, link)["key"].as_str().unwrap().to_owned()));
    }

    // Revoking the share takes every link with it, here and everywhere (the share's tag).
    assert_eq!(s.write("DELETE", &format!("/shares/{}", share.id), None).status, 204);
    for link in kept {
        assert_eq!(client.get(&link.path()).status, 404, "{}", link.token);
    }
    wait_for_accepted_tag(stack, &link_tag(&share_key), Duration::from_secs(20));
    let remote = stack.remote_cached_keys();
    assert!(!remote.contains(&page_key["key"].as_str().unwrap().to_owned()));
    for link in kept {
        assert!(!remote.contains(&resolution(stack, link)["key"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn a_family_sees_each_links_views_per_day_and_the_share_its_own() {
    let stack = revocation_stack();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    let s = stack.sign_in(&family);
    let (grandma, uncle) = (
        add_link(&s, &share.id, "Vovó Maria"),
        add_link(&s, &share.id, "Tio João"),
    );
    let client = stack.client();
    for _ in 0..4 {
        assert_eq!(client.get(&grandma.path()).status, 200);
    }
    assert_eq!(client.get(&uncle.path()).status, 200);
    assert_eq!(client.get(&format!("/s/{}", share.token)).status, 200);

    // Views are tallied at the edge and flushed in the background (at once on this stack).
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let listed = s.get(&format!("/shares/{}/links", share.id));
        assert_eq!(listed.status, 200, "{}", listed.text());
        let body = listed.json();
        let count = |i: usize| body["links"][i]["view_count"].as_i64().unwrap_or(-1);
        if (count(0), count(1), count(2)) == (1, 4, 1) {
            break body;
        }
        assert!(Instant::now() < deadline, "views never added up: {body}");
        std::thread::sleep(Duration::from_millis(200)); // polling interval, bounded by the deadline
    };
    let links = listed["links"].as_array().unwrap();
    assert_eq!(links[0]["original"], true);
    assert_eq!(links[0]["id"], share.id.as_str());
    assert_eq!(links[1]["id"], grandma.id.as_str());
    assert_eq!(links[1]["name"], "Vovó Maria");
    assert_eq!(links[2]["name"], "Tio João");
    let today = links[1]["views_by_day"].as_array().expect("views_by_day");
    assert_eq!(today.len(), 1, "{today:?}");
    assert_eq!(today[0]["views"], 4);
    assert_eq!(links[1]["last_viewed_on"], today[0]["day"], "day precision, no time");
    let shares = s.get("/shares").json();
    let mine = shares["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == share.id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(mine["view_count"], 6, "the share counts every link's views");
    // Nothing about the viewer is kept.
    let columns: Vec<String> = stack
        .db()
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name IN ('share_recipient', 'share_view_day')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for personal in ["ip", "user_agent", "viewed_at", "country"] {
        assert!(
            !columns.iter().any(|c| c.contains(personal)),
            "{personal} in {columns:?}"
        );
    }
}

#[test]
fn links_of_another_account_or_of_no_share_are_not_there() {
    let stack = revocation_stack();
    let (owner, stranger) = (stack.family(1, 1), stack.family(1, 1));
    let share = &owner.shares[0];
    let mine = add_link(&stack.sign_in(&owner), &share.id, "Vovó Maria");
    let other = stack.sign_in(&stranger);
    assert_eq!(other.get(&format!("/shares/{}/links", share.id)).status, 404);
    assert_eq!(
        other
            .write(
                "POST",
                &format!("/shares/{}/links", share.id),
                Some(&json!({"name": "x"}))
            )
            .status,
        404
    );
    assert_eq!(
        other
            .write("DELETE", &format!("/shares/{}/links/{}", share.id, mine.id), None)
            .status,
        404
    );
    assert_eq!(
        stack.client().get(&mine.path()).status,
        200,
        "the stranger changed nothing"
    );
    let owner_s = stack.sign_in(&owner);
    let refused = owner_s.write(
        "POST",
        &format!("/shares/{}/links", share.id),
        Some(&json!({"name": "  "})),
    );
    assert_eq!(refused.status, 422);
    assert!(
        refused.json()["error"]["fields"].get("name").is_some(),
        "{}",
        refused.text()
    );
}
