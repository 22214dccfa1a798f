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

// ------------------------------------------------------------------ passphrases

const PASS_COOKIE: &str = "__Secure-link-pass";
const FORM_COOKIE: &str = "__Secure-link-form";

fn add_locked_link(signed_in: &edge_tests::SignedIn, share_id: &str, name: &str, passphrase: &str) -> Link {
    let made = signed_in.write(
        "POST",
        &format!("/shares/{share_id}/links"),
        Some(&json!({"name": name, "passphrase": passphrase})),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let body = made.json();
    assert_eq!(body["link"]["passphrase"], true);
    assert!(!made.text().contains(passphrase), "the passphrase is never shown back");
    Link {
        id: body["link"]["id"].as_str().expect("id").to_owned(),
        token: body["token"].as_str().expect("token").to_owned(),
    }
}

/// A form page's guard: its cookie and its hidden field.
struct Guard {
    cookie: String,
    field: String,
}

/// Reads the passphrase form a locked link answers without its pass, and its guard.
fn form_of(answer: &edge_tests::Response, link: &Link) -> Guard {
    let html = answer.text();
    assert!(
        html.contains(&format!(
            "<form class=\"pass\" method=\"post\" action=\"{}",
            link.path()
        )),
        "not the passphrase form: {html}"
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("etag"), None);
    assert_eq!(answer.header("x-cache-status"), None, "no cached copy was looked at");
    assert_cookie_set(
        answer,
        FORM_COOKIE,
        &["SameSite=Strict", &format!("Path={};", link.path())],
    );
    let field = html
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the hidden field")
        .to_owned();
    Guard {
        cookie: edge_tests::client::set_cookie_value(answer, FORM_COOKIE).expect("guard value"),
        field,
    }
}

/// Asserts the answer sets cookie `name` `HttpOnly`, `Secure` and with `attrs`.
fn assert_cookie_set(answer: &edge_tests::Response, name: &str, attrs: &[&str]) {
    let set = answer
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"));
    for attr in ["HttpOnly", "Secure"].iter().chain(attrs) {
        assert!(set.contains(attr), "{set}: {attr}");
    }
}

/// `application/x-www-form-urlencoded`, as a browser encodes a form.
fn form_body(fields: &[(&str, &str)]) -> Vec<u8> {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// Posts an answer to the link's form, with the guard's cookie and field (or without either).
fn answer(client: &edge_tests::Client, link: &Link, guard: Option<&Guard>, passphrase: &str) -> edge_tests::Response {
    let cookie = guard.map(|g| format!("{FORM_COOKIE}={}", g.cookie));
    let mut headers = vec![
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept-language", "pt-BR"),
    ];
    if let Some(cookie) = &cookie {
        headers.push(("cookie", cookie.as_str()));
    }
    let field = guard.map(|g| g.field.as_str()).unwrap_or("");
    let body = form_body(&[("form_token", field), ("passphrase", passphrase)]);
    client.request("POST", &link.path(), &headers, Some(body))
}

#[test]
fn a_passphrase_link_shows_no_page_without_its_pass_lets_the_right_answer_in_and_keeps_the_pages_headers() {
    let stack = revocation_stack();
    let family = stack.family(2, 1);
    let share = &family.shares[0];
    let s = stack.sign_in(&family);
    let secret = "bolo de fubá 1950";
    let locked = add_locked_link(&s, &share.id, "Vovó Maria", secret);
    let other = add_locked_link(&s, &share.id, "Tio João", "outra senha 42");
    let client = stack.client();
    let pt = [("accept-language", "pt-BR")];

    // The share's page is in the cache, from its own link.
    let own = client.get_with(&format!("/s/{}", share.token), &pt);
    assert_eq!(own.status, 200);
    wait_for_page_kept(stack, &TokenHash::from_hex(&share.token_hash_hex).unwrap());
    // The first moment's title: on the page, never on the form.
    let on_the_page = "Primeiro sorriso";
    assert!(own.text().contains(on_the_page));

    // Without the pass: the form, not the page, on the first request here (the database says
    // the link is locked) and on later ones (its resolution says so, no database).
    let first = client.get_with(&locked.path(), &pt);
    assert_eq!(first.status, 200);
    let guard = form_of(&first, &locked);
    assert!(
        !first.text().contains(on_the_page),
        "nothing of the page before the pass"
    );
    let csp = first.header("content-security-policy").unwrap();
    assert!(
        csp.ends_with(&format!("form-action {}{}", stack.base_url, locked.path())),
        "the form may post only to its own link: {csp}"
    );
    assert_eq!(stack.request_line(&first)["share"], "locked");
    assert!(stored_resolution(stack, &locked)["body"]
        .as_str()
        .unwrap()
        .ends_with(" locked"));
    let later = client.get_with(&format!("{}?page=2", locked.path()), &pt);
    form_of(&later, &locked);
    assert!(later.text().contains(&format!("action=\"{}?page=2\"", locked.path())));
    assert!(
        stack.request_line(&later).get("db_render_ms").is_none(),
        "no database trip"
    );

    // A post without the form's guard (what another site's page can send): the form again.
    let forged = answer(&client, &locked, None, secret);
    assert_eq!(forged.status, 403, "{}", forged.text());
    form_of(&forged, &locked);
    assert_eq!(edge_tests::client::set_cookie_value(&forged, PASS_COOKIE), None);
    // The wrong passphrase: the form again, saying so.
    let wrong = answer(&client, &locked, Some(&guard), "bolo de milho 1950");
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert!(wrong.text().contains("Senha incorreta") && wrong.text().contains("role=\"alert\""));
    assert_eq!(edge_tests::client::set_cookie_value(&wrong, PASS_COOKIE), None);
    assert_eq!(stack.request_line(&wrong)["passphrase"], "wrong");
    assert!(
        !stack.logs().iter().any(|l| l.to_string().contains("fubá")),
        "never logged"
    );

    // The right one (spaces around it do not matter): the pass, for this link's path, a day.
    let right = answer(&client, &locked, Some(&guard), &format!("  {secret} "));
    assert_eq!(right.status, 303, "{}", right.text());
    assert_eq!(right.header("location"), Some(locked.path().as_str()));
    assert_cookie_set(
        &right,
        PASS_COOKIE,
        &["SameSite=Lax", "Max-Age=86400", &format!("Path={};", locked.path())],
    );
    let pass = format!(
        "{PASS_COOKIE}={}",
        edge_tests::client::set_cookie_value(&right, PASS_COOKIE).unwrap()
    );

    // With the pass: the share's cached page, with exactly the headers its own link gets.
    let page = client.get_with(&locked.path(), &[("accept-language", "pt-BR"), ("cookie", &pass)]);
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains(on_the_page));
    assert_eq!(page.header("x-cache-status"), Some("hit"));
    for name in [
        "cache-control",
        "etag",
        "vary",
        "content-security-policy",
        "content-language",
    ] {
        assert_eq!(page.header(name), own.header(name), "{name}");
    }
    assert!(page.headers_named("set-cookie").is_empty());
    // The pass opens its own link only.
    let elsewhere = client.get_with(&other.path(), &[("accept-language", "pt-BR"), ("cookie", &pass)]);
    form_of(&elsewhere, &other);
    // A guard is its own link's: with another link's, an answer is not even read.
    let open = answer(
        &client,
        &Link {
            id: String::new(),
            token: share.token.clone(),
        },
        Some(&guard),
        secret,
    );
    assert_eq!(open.status, 403, "{}", open.text());
    form_of(
        &open,
        &Link {
            id: String::new(),
            token: share.token.clone(),
        },
    );

    // Revoked: the pass no longer opens anything.
    let revoked = s.write("DELETE", &format!("/shares/{}/links/{}", share.id, locked.id), None);
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    let gone = client.get_with(&locked.path(), &[("accept-language", "pt-BR"), ("cookie", &pass)]);
    assert_eq!(gone.status, 404);
    let unknown = client.get_with("/s/AAAAAAAAAAAAAAAAAAAAAA", &pt);
    assert_eq!(gone.body, unknown.body, "byte-identical to an unknown token's 404");
    // An answer to it, even the right one with a valid guard, is the one 404 page.
    let after = answer(&client, &locked, Some(&guard), secret);
    assert_eq!(after.status, 404, "{}", after.text());
    assert_eq!(after.body, unknown.body);
}

#[test]
fn guesses_at_a_passphrase_are_throttled_per_link_with_an_alert_and_per_client() {
    let stack = revocation_stack();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    let s = stack.sign_in(&family);
    let client = stack.client();
    let pt = [("accept-language", "pt-BR")];

    // Per link: five answers a minute from anywhere, the sixth meets 429 (and so would the right
    // one), and the link's alert fires. A burst a slow machine stretches over the window's end
    // is tried again with a new link.
    crate::protection::in_one_window(60, 20, || {
        let link = add_locked_link(&s, &share.id, "Prima Bia", "segredo da prima");
        let guard = form_of(&client.get_with(&link.path(), &pt), &link);
        let statuses: Vec<u16> = (0..5)
            .map(|i| answer(&client.with_new_network(), &link, Some(&guard), &format!("chute {i}")).status)
            .collect();
        let sixth = answer(&client.with_new_network(), &link, Some(&guard), "chute 6");
        let right = answer(&client.with_new_network(), &link, Some(&guard), "segredo da prima");
        move || {
            assert_eq!(statuses, [403; 5]);
            crate::protection::assert_429(&sixth, "link_passphrase", 60);
            assert!(sixth.text().contains("Muitas tentativas"), "the form, saying why");
            form_of(&sixth, &link);
            assert_eq!(right.status, 429, "the right answer waits too");
            let trace = sixth.header("x-trace-id").unwrap().to_owned();
            let short = link.hash().short();
            let alert = stack.wait_for_log(Duration::from_secs(10), "the link_passphrase_guessed alert", |l| {
                l["alert"] == "link_passphrase_guessed" && l["trace_id"] == trace.as_str()
            });
            assert_eq!(alert["token_hash"], short.as_str());
            assert_eq!(alert["severity"], "sev3");
        }
    });

    // Per client: ten answers a minute over any links, the eleventh meets 429 (no alert).
    crate::protection::in_one_window(60, 20, || {
        let links: Vec<Link> = (0..3)
            .map(|i| add_locked_link(&s, &share.id, &format!("Vizinho {i}"), "senha do vizinho"))
            .collect();
        let one = client.with_new_ip();
        let guards: Vec<Guard> = links
            .iter()
            .map(|l| form_of(&one.get_with(&l.path(), &pt), l))
            .collect();
        let statuses: Vec<u16> = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
            .iter()
            .map(|&k| answer(&one, &links[k], Some(&guards[k]), "errada").status)
            .collect();
        let eleventh = answer(&one, &links[2], Some(&guards[2]), "errada");
        let elsewhere = answer(&client.with_new_ip(), &links[2], Some(&guards[2]), "errada");
        move || {
            assert_eq!(statuses, [403; 10]);
            crate::protection::assert_429(&eleventh, "passphrase_ip", 60);
            assert_eq!(elsewhere.status, 403, "another client still answers that link");
        }
    });
}

#[test]
fn the_passphrase_form_has_no_wcag_violations_and_a_browser_gets_in_without_javascript() {
    let stack = revocation_stack();
    let family = stack.family(2, 1);
    let share = &family.shares[0];
    let s = stack.sign_in(&family);
    let secret = "pão de queijo";
    let link = add_locked_link(&s, &share.id, "Madrinha", secret);
    let url = format!("{}{}", stack.base_url, link.path());
    let headers = |lang: &str| json!({"accept-language": lang, "cf-connecting-ip": edge_tests::client::unique_ip()});
    let mut pt = crate::share_page::page_spec("pass-pt-BR", &url, headers("pt-BR"), false, false);
    pt["submit"] = json!({"field": "passphrase", "value": secret});
    let en = crate::share_page::page_spec("pass-en", &url, headers("en"), false, false);
    let pages = crate::share_page::browser(&[pt, en]);
    for (name, heading) in [("pass-pt-BR", "Página protegida"), ("pass-en", "Protected page")] {
        let page = &pages[name];
        assert_eq!(page["status"], 200, "{name}: {page}");
        crate::share_page::assert_no_violations(name, page);
        assert!(page["text"].as_str().unwrap().contains(heading), "{name}: {page}");
    }
    let submitted = &pages["pass-pt-BR"]["submitted"];
    assert_eq!(submitted["status"], 200, "{submitted}");
    assert_eq!(submitted["url"], url.as_str(), "back on the link, past the form");
    assert!(
        submitted["text"].as_str().unwrap().contains("Primeiro sorriso"),
        "the page itself: {submitted}"
    );
    assert_eq!(submitted["csp_violations"], json!([]), "{submitted}");
}
