//! Issue 27 item 6: a point-in-time restore of the database brings back every share link
//! revoked, and every session ended, after its restore point. The edge journals each revoke and
//! session end in R2 (`JOURNAL`) before answering; `POST /admin/journal/reapply`
//! (`scripts/reapply-journal`, docs/runbooks/pitr-cutover.md step 4) applies them again.

use serde_json::json;

use crate::Stack;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[test]
fn a_restore_that_brings_revoked_links_and_ended_sessions_back_is_undone_by_reapplying_the_journal() {
    let stack = Stack::shared();
    // Before every change below, by the database's clock (the same machine's).
    let since = babybook_jobs::format_rfc3339_millis(now_ms() - 2_000);
    let family = stack.family(1, 1);
    let other = stack.family(1, 0);
    let share = &family.shares[0];
    let page = format!("/s/{}", share.token);
    let owner = stack.sign_in(&family);
    let phone = stack.sign_in(&family);
    let (laptop, tablet) = (stack.sign_in(&other), stack.sign_in(&other));
    assert_eq!(stack.client().get(&page).status, 200, "the link is live");

    // The changes a restore would undo: a revoke, a sign-out, a sign-out everywhere.
    assert_eq!(
        owner.write("DELETE", &format!("/shares/{}", share.id), None).status,
        204
    );
    assert_eq!(phone.write("POST", "/auth/logout", None).status, 204);
    assert_eq!(laptop.write("POST", "/auth/logout-everywhere", None).status, 204);
    assert_eq!(stack.client().get(&page).status, 404);
    assert_eq!(phone.get("/me").status, 401);
    assert_eq!(tablet.get("/me").status, 401);

    // The restore: the database as it was before them.
    let mut db = stack.db();
    db.execute(
        "UPDATE share_link SET revoked_at = NULL WHERE token_hash = decode($1, 'hex')",
        &[&share.token_hash_hex],
    )
    .expect("un-revoke");
    let restored = db
        .execute(
            "UPDATE user_session SET ended_at = NULL, ended_why = NULL \
             WHERE user_id IN ($1::text::uuid, $2::text::uuid) AND ended_at IS NOT NULL",
            &[&family.user_id, &other.user_id],
        )
        .expect("un-end");
    assert_eq!(restored, 3, "the phone's, the laptop's and the tablet's sessions");
    // The bug: the revoked link and the ended sessions work again.
    assert_eq!(
        stack.client().get(&page).status,
        200,
        "the restore brought the link back"
    );
    assert_eq!(
        phone.get("/me").status,
        200,
        "the restore brought the signed-out session back"
    );
    assert_eq!(
        tablet.get("/me").status,
        200,
        "the restore brought the other user's sessions back"
    );

    let reapply = stack.admin("POST", "/admin/journal/reapply", Some(&json!({"since": since})));
    assert_eq!(reapply.status, 200, "{}", reapply.text());
    let answer = reapply.json();
    assert!(answer["entries"].as_u64().unwrap() >= 3, "{answer}");
    assert_eq!(answer["unreadable"], 0, "{answer}");
    assert_eq!(answer["continue_after"], serde_json::Value::Null, "{answer}");
    // At least ours (other tests on this stack journal too, and theirs are still applied).
    assert!(answer["reapplied"]["share_revoked"].as_u64().unwrap() >= 1, "{answer}");
    assert!(answer["reapplied"]["session_ended"].as_u64().unwrap() >= 1, "{answer}");
    assert!(
        answer["reapplied"]["user_sessions_ended"].as_u64().unwrap() >= 2,
        "{answer}"
    );

    assert_eq!(stack.client().get(&page).status, 404, "revoked again and purged");
    assert_eq!(phone.get("/me").status, 401, "the signed-out session is ended again");
    assert_eq!(laptop.get("/me").status, 401, "signed out everywhere again");
    assert_eq!(tablet.get("/me").status, 401, "signed out everywhere again");
    assert_eq!(owner.get("/me").status, 200, "a session that was never ended stays");
    let revoked_again: bool = db
        .query_one(
            "SELECT revoked_at IS NOT NULL FROM share_link WHERE token_hash = decode($1, 'hex')",
            &[&share.token_hash_hex],
        )
        .expect("link")
        .get(0);
    assert!(revoked_again, "the row says revoked again");

    // Idempotent: once more changes nothing.
    let again = stack
        .admin("POST", "/admin/journal/reapply", Some(&json!({"since": since})))
        .json();
    assert_eq!(
        again["reapplied"],
        json!({"share_revoked": 0, "session_ended": 0, "user_sessions_ended": 0}),
        "{again}"
    );

    // A continuation key from another window, or no time, is refused.
    let bad = stack.admin("POST", "/admin/journal/reapply", Some(&json!({"since": "yesterday"})));
    assert_eq!(bad.status, 422, "{}", bad.text());
    let bad = stack.admin(
        "POST",
        "/admin/journal/reapply",
        Some(&json!({"since": since, "after": "v1/1970-01-01/0000000000000-x"})),
    );
    assert_eq!(bad.status, 422, "{}", bad.text());
}
