//! Issue 15: sessions the server can end. A cookie stays a signed envelope, and now also names a
//! server-side session that signing out, signing out everywhere, a password change, a move to
//! another account and deleting the user all end: a copy of the cookie stops working at once, on
//! the edge's own routes and through the proxy.

use serde_json::json;

use babybook_ops::generate::Family;
use edge_tests::client::SignedIn;

use crate::Stack;

const APP_ORIGIN: &str = "http://localhost:5173";

/// What a stolen copy of the cookies could do: read `/me`, list shares, share a moment (a valid
/// request, so only the session can refuse it).
fn statuses(copy: &SignedIn, moment: &str) -> [u16; 3] {
    let create = copy.write("POST", "/shares", Some(&json!({"moment_ids": [moment]})));
    [copy.get("/me").status, copy.get("/shares").status, create.status]
}

fn copy_of(signed_in: &SignedIn) -> SignedIn {
    SignedIn {
        client: signed_in.client.with_new_ip(),
        session_cookie: signed_in.session_cookie.clone(),
        csrf_token: signed_in.csrf_token.clone(),
        account_id: signed_in.account_id.clone(),
        user_id: signed_in.user_id.clone(),
    }
}

fn assert_ended(copy: &SignedIn, family: &Family, why: &str) {
    for (what, status) in ["GET /me", "GET /shares", "POST /shares"]
        .iter()
        .zip(statuses(copy, &family.moment_ids[0]))
    {
        assert_eq!(status, 401, "{why}: {what} with a copy of the ended session's cookies");
    }
    let me = copy.get("/me");
    assert_eq!(me.error_code(), "unauthorized", "{why}");
}

#[test]
fn after_logout_a_copy_of_the_session_cookie_is_refused_on_every_route_and_by_the_proxy() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let signed_in = stack.sign_in(&family);
    let copy = copy_of(&signed_in);
    assert_eq!(copy.get("/me").status, 200, "the copy works while the session is live");

    let logout = signed_in.write("POST", "/auth/logout", None);
    assert_eq!(logout.status, 204, "{}", logout.text());
    assert_ended(&copy, &family, "after logout");

    // The proxy asserts identity to the origin only for a live session.
    let trace = "5b8aa5a2d2c872e8321cf37308d69df2";
    let proxied = copy.client.request(
        "GET",
        "/moments",
        &[("cookie", &copy.cookies()), ("x-trace-id", trace)],
        None,
    );
    assert_eq!(proxied.status, 401, "{}", proxied.text());
    let reached = stack
        .origin_requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h[0] == "x-trace-id" && h[1] == trace)
        })
        .count();
    assert_eq!(
        reached, 0,
        "a proxied call with an ended session never reaches the origin"
    );

    // Signing out again is not an error, and the session stays ended.
    assert_eq!(
        signed_in.write("POST", "/auth/logout", None).status,
        204,
        "signing out twice"
    );
    assert_eq!(signed_in.get("/me").status, 401);
    let again = stack.sign_in(&family);
    assert_eq!(
        again.get("/me").status,
        200,
        "signing in again starts a new, live session"
    );
}

#[test]
fn signing_out_everywhere_ends_every_session_of_the_user_and_no_one_elses() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let other = stack.family(1, 0);
    let phone = stack.sign_in(&family);
    let laptop = stack.sign_in(&family);
    let stranger = stack.sign_in(&other);
    for s in [&phone, &laptop, &stranger] {
        assert_eq!(s.get("/me").status, 200);
    }

    let everywhere = phone.client.with_header("origin", APP_ORIGIN).request(
        "POST",
        "/auth/logout-everywhere",
        &[("cookie", &phone.cookies()), ("x-csrf-token", &phone.csrf_token)],
        None,
    );
    assert_eq!(everywhere.status, 204, "{}", everywhere.text());
    assert!(everywhere
        .headers_named("set-cookie")
        .iter()
        .any(|c| c.starts_with("__Host-session=;") && c.contains("Max-Age=0")));
    assert_ended(&phone, &family, "the session that signed out everywhere");
    assert_ended(&laptop, &family, "another session of the same user");
    assert_eq!(stranger.get("/me").status, 200, "another user's session is untouched");

    // Without a CSRF proof it is refused like any other write, and ends nothing.
    let victim = stack.sign_in(&family);
    let forged = victim.client.request(
        "POST",
        "/auth/logout-everywhere",
        &[("cookie", &victim.cookies())],
        None,
    );
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert_eq!(victim.get("/me").status, 200);
}

#[test]
fn a_password_change_a_move_to_another_account_or_deleting_the_user_ends_their_sessions() {
    let stack = Stack::shared();
    let db = || stack.db();

    let family = stack.family(1, 0);
    let signed_in = stack.sign_in(&family);
    let untouched = stack.family(1, 0);
    let bystander = stack.sign_in(&untouched);
    assert_eq!(signed_in.get("/shares").status, 200);
    // Changing something else about the user ends nothing.
    db().execute(
        "UPDATE app_user SET display_name = 'Mãe' WHERE id = $1::text::uuid",
        &[&family.user_id],
    )
    .unwrap();
    assert_eq!(
        signed_in.get("/shares").status,
        200,
        "a display-name change ends no session"
    );
    db().execute(
        "UPDATE app_user SET password_hash = password_hash || 'x' WHERE id = $1::text::uuid",
        &[&family.user_id],
    )
    .unwrap();
    assert_ended(&signed_in, &family, "after a password change");

    let moved = stack.family(1, 0);
    let signed_in = stack.sign_in(&moved);
    let elsewhere = stack.family(1, 0);
    assert_eq!(signed_in.get("/shares").status, 200);
    db().execute(
        "UPDATE app_user SET account_id = $2::text::uuid WHERE id = $1::text::uuid",
        &[&moved.user_id, &elsewhere.account_id],
    )
    .unwrap();
    assert_ended(&signed_in, &moved, "after the user left the account");

    let removed = stack.family(1, 0);
    let signed_in = stack.sign_in(&removed);
    assert_eq!(signed_in.get("/shares").status, 200);
    db().execute("DELETE FROM app_user WHERE id = $1::text::uuid", &[&removed.user_id])
        .unwrap();
    assert_ended(&signed_in, &removed, "after the user was deleted");

    assert_eq!(bystander.get("/shares").status, 200, "other users keep their sessions");
    let reasons: Vec<String> = db()
        .query(
            "SELECT ended_why FROM user_session WHERE user_id IN ($1::text::uuid, $2::text::uuid) ORDER BY ended_why",
            &[&family.user_id, &moved.user_id],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons, ["account_changed", "password_changed"]);
}

#[test]
fn a_signed_cookie_the_server_never_issued_opens_nothing() {
    // A cookie signed with the real key (a leaked key, an old stateless cookie) but naming no
    // server-side session is refused: the signature alone no longer signs anyone in.
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let keys = babybook_edge::session::SessionKeys {
        current: babybook_edge::session::SigningKey::new(&stack.secrets.session_key),
        previous: None,
    };
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let unissued = babybook_edge::session::Session::new(
        "never-issued".into(),
        babybook_jobs::Id::parse(&family.user_id).unwrap(),
        babybook_jobs::Id::parse(&family.account_id).unwrap(),
        now_s,
    )
    .seal(&keys);
    let r = stack
        .client()
        .get_with("/shares", &[("cookie", &format!("__Host-session={unissued}"))]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "unauthorized");
    let live = stack.sealed_session(&family, now_s);
    let r = stack
        .client()
        .get_with("/shares", &[("cookie", &format!("__Host-session={live}"))]);
    assert_eq!(
        r.status,
        200,
        "the same cookie with a server-side session works: {}",
        r.text()
    );
}

#[test]
fn the_session_check_rides_in_the_round_trip_that_sets_the_account() {
    // A stack of its own: the Worker's counters are per isolate, and nothing else may use it.
    let stack = Stack::start(crate::StackOptions::named("round-trips"));
    let family = stack.family(1, 1);
    let signed_in = stack.sign_in(&family);
    let counted = |f: &dyn Fn() -> u16| {
        let before = stack.counters();
        let status = f();
        let after = stack.counters();
        let delta = |name: &str| after[name].as_u64().unwrap() - before[name].as_u64().unwrap();
        (status, delta("db_connections"), delta("db_round_trips"))
    };
    // Issue 31: BEGIN with the settings (the session check inside them), the read and COMMIT in
    // one message: one round trip, where it was three.
    assert_eq!(counted(&|| signed_in.get("/me").status), (200, 1, 1), "GET /me");
    assert_eq!(counted(&|| signed_in.get("/shares").status), (200, 1, 1), "GET /shares");
    // An ended session is refused by that same first round trip.
    let copy = copy_of(&signed_in);
    assert_eq!(signed_in.write("POST", "/auth/logout", None).status, 204);
    assert_eq!(counted(&|| copy.get("/shares").status), (401, 1, 1), "an ended session");
    stack.stop();
}

/// Issue 29: a stolen copy of a cookie whose session has ended spends nothing of its user. After
/// logout, 300 cheap requests with the old cookie meet only that ended session's budget; the
/// user's new session still answers 200.
#[test]
fn an_ended_sessions_cookie_spends_nothing_of_its_users_live_sessions() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let signed_in = stack.sign_in(&family);
    let stolen = copy_of(&signed_in);
    assert_eq!(signed_in.write("POST", "/auth/logout", None).status, 204);
    let mut limited = 0;
    for _ in 0..300 {
        match stolen.get("/me").status {
            401 => {}
            429 => limited += 1,
            other => panic!("the ended cookie got {other}"),
        }
    }
    assert!(limited > 0, "the ended cookie never met a limit in 300 requests");
    let again = stack.sign_in(&family);
    let me = again.get("/me");
    assert_eq!(
        me.status,
        200,
        "the user's new session paid for the ended one: {}",
        me.text()
    );
}

/// Issue 29: a session is bound to its account in SQL. A session row whose user has left the
/// account (a sign-in racing a move) opens nothing, and `begin_session` refuses a user outside the
/// account whatever called it.
#[test]
fn a_session_whose_user_is_not_in_its_account_opens_nothing() {
    let stack = Stack::shared();
    let (a, b) = (stack.family(1, 0), stack.family(1, 0));
    let mut app = stack.db_as("app_rw");
    let refused = app.execute(
        "SELECT begin_session('a-session-id-for-this-test-0001', $1::text::uuid, $2::text::uuid, now() + interval '1 hour')",
        &[&a.user_id, &b.account_id],
    );
    assert!(
        refused.is_err(),
        "begin_session opened a session of A's user in B's account"
    );

    // A's user has a session of A; the user is moved to B (whose trigger ends the session), and
    // the row is live again: what a sign-in racing the move can leave (its insert committed
    // after the trigger ran). The session still names A, where its user no longer is.
    let now_s = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()) as i64;
    let cookie = format!("__Host-session={}", stack.sealed_session(&a, now_s));
    let me = |c: &str| stack.client().get_with("/me", &[("cookie", c)]).status;
    assert_eq!(me(&cookie), 200);
    let mut db = stack.db();
    db.execute(
        "UPDATE app_user SET account_id = $2::text::uuid WHERE id = $1::text::uuid",
        &[&a.user_id, &b.account_id],
    )
    .unwrap();
    db.execute(
        "UPDATE user_session SET ended_at = NULL, ended_why = NULL WHERE user_id = $1::text::uuid",
        &[&a.user_id],
    )
    .unwrap();
    assert_eq!(
        me(&cookie),
        401,
        "a session of a user who left the account still opened it"
    );
}
