//! Issue 7: the cron jobs, fired through wrangler's local scheduled endpoint with a chosen time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::{Stack, StackOptions};

const PREWARM: &str = "*/4 * * * *";
const EVERY_FIVE: &str = "*/5 * * * *";
const DAILY: &str = "30 6 * * *";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn at(rfc3339: &str) -> i64 {
    babybook_jobs::parse_rfc3339_millis(rfc3339).unwrap()
}

#[test]
fn inside_the_mothers_day_window_the_most_viewed_pages_are_prewarmed_in_every_language() {
    let stack = Stack::shared();
    let family = stack.family(2, 3);
    let (popular, also_popular, revoked) = (&family.shares[0], &family.shares[1], &family.shares[2]);
    let mut db = stack.db();
    for (share, views) in [
        (popular, 2_000_000_000i64),
        (also_popular, 1_999_999_999),
        (revoked, 1_999_999_998),
    ] {
        db.execute(
            "UPDATE share_link SET view_count = $2 WHERE id = $1::text::uuid",
            &[&share.id, &views],
        )
        .unwrap();
    }
    db.execute(
        "UPDATE share_link SET revoked_at = now() WHERE id = $1::text::uuid",
        &[&revoked.id],
    )
    .unwrap();

    // Second Sunday of May 2027, 10:00 in Brasília: inside the window.
    let time = at("2027-05-09T10:00:00-03:00");
    let fired = stack.fire_cron(PREWARM, time);
    assert_eq!(fired.status, 200, "{}", fired.text());
    // This run's report, not that of another test's prewarm on the shared stack.
    let end = stack.wait_for_log(Duration::from_secs(10), "the prewarm report", |l| {
        l["message"] == "cron end"
            && l["cron_job"] == "prewarm"
            && l["scheduled_time"]
                .as_str()
                .and_then(|t| babybook_jobs::parse_rfc3339_millis(t).ok())
                == Some(time)
    });
    assert_eq!(end["report"]["window"], "dia-das-maes-br", "{end}");
    assert!(end["report"]["warmed"].as_u64().unwrap() >= 2, "{end}");

    let client = stack.client();
    for share in [popular, also_popular] {
        for lang in ["pt-BR", "en"] {
            let r = client.get_with(&format!("/s/{}", share.token), &[("accept-language", lang)]);
            assert_eq!(
                (r.status, r.header("x-cache-status")),
                (200, Some("hit")),
                "{lang} page of a popular link was not prewarmed"
            );
        }
    }
    assert_eq!(
        client.get(&format!("/s/{}", revoked.token)).status,
        404,
        "revoked links are never warmed"
    );
}

#[test]
fn a_prewarmed_page_is_byte_identical_to_what_the_share_route_renders() {
    let stack = Stack::shared();
    let family = stack.family(3, 1);
    let share = &family.shares[0];
    stack
        .db()
        .execute(
            "UPDATE share_link SET view_count = 2000000001 WHERE id = $1::text::uuid",
            &[&share.id],
        )
        .unwrap();
    assert_eq!(stack.fire_cron(PREWARM, at("2027-05-09T12:00:00-03:00")).status, 200);
    let client = stack.client();
    let path = format!("/s/{}", share.token);
    let warmed = client.get(&path);
    assert_eq!(warmed.header("x-cache-status"), Some("hit"));
    // Expire the warmed copy so the route renders its own.
    stack.control(json!({"action": "age_share_cache", "token": share.token, "seconds": 400}));
    let rendered = client.get(&path);
    assert_eq!(rendered.header("x-cache-status"), Some("miss"));
    assert_eq!(warmed.body, rendered.body, "bodies differ");
    let comparable = |r: &edge_tests::Response| {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "x-trace-id" | "x-cache-status" | "date"))
            .cloned()
            .collect();
        h.sort();
        h
    };
    assert_eq!(comparable(&warmed), comparable(&rendered), "headers differ");
}

#[test]
fn outside_any_window_prewarm_does_nothing_and_says_so() {
    let stack = Stack::shared();
    let fired = stack.fire_cron(PREWARM, at("2026-11-29T15:00:00-03:00"));
    assert_eq!(fired.status, 200);
    let skipped = stack.wait_for_log(Duration::from_secs(10), "the skip line", |l| {
        l["message"] == "prewarm skipped: outside any seasonal window"
    });
    // The trigger runs the purge sweep first, under the same trace: the prewarm's own end line.
    let end = stack.wait_for_log(Duration::from_secs(10), "the report", |l| {
        l["message"] == "cron end" && l["trace_id"] == skipped["trace_id"] && l["cron_job"] == "prewarm"
    });
    assert_eq!(end["report"]["warmed"], 0);
}

#[test]
fn the_reaper_deletes_exports_past_72_hours_and_orphans_once_and_spares_younger_exports() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let mut db = stack.db();
    let insert_export = |db: &mut postgres::Client, hours: i32| -> String {
        db.query_one(
            "INSERT INTO account_export (account_id, status, object_key, created_at, ready_at) VALUES ($1::text::uuid, 'ready', 'exports/x.zip', now() - make_interval(hours => $2), now()) RETURNING id::text",
            &[&family.account_id, &hours],
        )
        .unwrap()
        .get(0)
    };
    let old = insert_export(&mut db, 73);
    let young = insert_export(&mut db, 71);
    let orphan: String = db
        .query_one(
            "INSERT INTO asset (account_id, media_type, original_key, size_bytes, status, created_at) VALUES ($1::text::uuid, 'image/jpeg', 'originals/orphan.jpg', 10, 'ready', now() - interval '25 hours') RETURNING id::text",
            &[&family.account_id],
        )
        .unwrap()
        .get(0);

    assert_eq!(stack.fire_cron(DAILY, now_ms()).status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let export: String = db
            .query_one("SELECT status FROM account_export WHERE id = $1::text::uuid", &[&old])
            .unwrap()
            .get(0);
        let asset: String = db
            .query_one("SELECT status FROM asset WHERE id = $1::text::uuid", &[&orphan])
            .unwrap()
            .get(0);
        if export == "deleted" && asset == "deleted" {
            break;
        }
        assert!(Instant::now() < deadline, "export {export}, orphan {asset}");
        std::thread::sleep(Duration::from_millis(200)); // polling interval, bounded by the deadline
    }
    let young_state: (String, Option<std::time::SystemTime>) = {
        let r = db
            .query_one(
                "SELECT status, reap_enqueued_at FROM account_export WHERE id = $1::text::uuid",
                &[&young],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(young_state, ("ready".to_owned(), None), "a 71 h export was touched");

    assert_eq!(stack.fire_cron(DAILY, now_ms()).status, 200);
    // Whatever the second run published has been consumed before the calls are counted.
    stack.drain_jobs(&family.account_id);
    let calls = stack.media_control("GET", &format!("/__control/calls?id={old}"), None);
    assert_eq!(
        calls.as_array().unwrap().len(),
        1,
        "a second run re-enqueued the export"
    );
    let calls = stack.media_control("GET", &format!("/__control/calls?id={orphan}"), None);
    assert_eq!(
        calls.as_array().unwrap().len(),
        1,
        "a second run re-enqueued the orphan"
    );
}

#[test]
fn the_queue_probe_logs_its_time_to_ready_and_alerts_when_a_probe_never_completes() {
    let stack = Stack::start(StackOptions::named("probe"));
    let t0 = now_ms();
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0).status, 200);
    let first = stack.wait_for_log(Duration::from_secs(10), "the first probe", |l| {
        l["message"] == "cron end" && l["cron_job"] == "queue_probe"
    });
    let probe_asset = first["report"]["published"]["asset_id"]
        .as_str()
        .expect("a probe was published")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    while stack
        .db()
        .query_one("SELECT status FROM asset WHERE id = $1::text::uuid", &[&probe_asset])
        .unwrap()
        .get::<_, String>(0)
        != "ready"
    {
        assert!(Instant::now() < deadline, "the probe never completed");
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0 + 5 * 60_000).status, 200);
    let ttr = stack.wait_for_log(Duration::from_secs(10), "the probe's TTR", |l| {
        l["message"] == "queue probe ttr" && l["probe_asset_id"] == probe_asset.as_str()
    });
    assert!(ttr["ttr_ms"].as_i64().unwrap() < 5 * 60_000);
    assert!(
        !stack.logs().iter().any(|l| l["alert"] == "queue_ttr"),
        "no alert for a healthy queue"
    );

    stack.media.lock().unwrap().stop();
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0 + 10 * 60_000).status, 200);
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0 + 16 * 60_000).status, 200);
    let alert = stack.wait_for_log(Duration::from_secs(10), "the Sev-2 queue_ttr alert", |l| {
        l["alert"] == "queue_ttr"
    });
    assert_eq!(alert["severity"], "sev2");
    assert_eq!(alert["reason"], "never completed");
    stack.media.lock().unwrap().start();
}

#[test]
fn a_cron_job_that_fails_is_reported_as_a_failure_with_its_trace_id_and_the_others_still_run() {
    let stack = Stack::start(StackOptions::named("cron-fault"));
    stack.fault("cron:queue_probe", true);
    let fired = stack.fire_cron(EVERY_FIVE, now_ms());
    assert_eq!(fired.status, 500, "the scheduled endpoint reports the failed run");
    let failed = stack.wait_for_log(Duration::from_secs(10), "the failed job's end line", |l| {
        l["message"] == "cron end" && l["cron_job"] == "queue_probe"
    });
    assert_eq!(failed["ok"], false);
    assert_eq!(failed["level"], "ERROR");
    let trace = failed["trace_id"].as_str().unwrap();
    let sweep = stack.wait_for_log(Duration::from_secs(10), "the other job of the trigger", |l| {
        l["message"] == "cron end" && l["cron_job"] == "queued_sweep" && l["trace_id"] == trace
    });
    assert_eq!(sweep["ok"], true, "one failing job must not stop the others");
    stack.fault("cron:queue_probe", false);
    assert_eq!(stack.fire_cron(EVERY_FIVE, now_ms()).status, 200);
}
