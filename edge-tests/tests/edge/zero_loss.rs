//! Issue 14: zero loss under any single fault. Each test here is one of the holes the issue
//! names, failing on the code before it: a job must end `ready`, or `failed` with its dead
//! record stored, or be back on the queue within one sweep period.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::queues::{asset_status, calls_for, completed_upload_with, wait_for_status};
use crate::{Stack, StackOptions};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn export_status(stack: &Stack, id: &str) -> String {
    stack
        .db()
        .query_one("SELECT status FROM account_export WHERE id = $1::text::uuid", &[&id])
        .unwrap()
        .get(0)
}

/// Hole 1: a claim outlives its delivery (the isolate died after claiming). The next delivery
/// takes over the expired lease, for exports as for assets (exports had no stale-claim rule).
#[test]
fn a_claim_whose_delivery_died_is_taken_over_by_the_next_delivery_exports_included() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let expired = "now() - interval '1 hour' + interval '330 seconds'";
    let export: String = stack
        .db()
        .query_one(
            &format!(
                "INSERT INTO account_export (account_id, status, queued_at, published_at, lease_expires_at, lease_holder)
                 VALUES ($1::text::uuid, 'processing', now() - interval '1 hour', now() - interval '1 hour', {expired}, 'a-delivery-that-died')
                 RETURNING id::text"
            ),
            &[&family.account_id],
        )
        .unwrap()
        .get(0);
    let asset = stack.queued_asset(&family.account_id);
    stack
        .db()
        .execute(
            &format!(
                "UPDATE asset SET status = 'processing', processing_started_at = now() - interval '1 hour',
                   lease_expires_at = {expired}, lease_holder = 'a-delivery-that-died' WHERE id = $1::text::uuid"
            ),
            &[&asset],
        )
        .unwrap();
    let bodies = [
        edge_tests::fixtures::export_job(&family.account_id, &export, "expired-lease-test"),
        edge_tests::fixtures::transcode_job(&family.account_id, &asset, "expired-lease-test"),
    ];
    stack.control(json!({"action": "publish_raw_batch", "bodies": bodies}));
    wait_for_status(stack, &asset, "ready", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    while export_status(stack, &export) != "ready" {
        assert!(
            Instant::now() < deadline,
            "the export's expired claim was never taken over: {}",
            export_status(stack, &export)
        );
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
    let holder: Option<String> = stack
        .db()
        .query_one(
            "SELECT lease_holder FROM account_export WHERE id = $1::text::uuid",
            &[&export],
        )
        .unwrap()
        .get(0);
    assert_eq!(holder, None, "a finished row holds no lease");
}

/// Hole 1, the database being the failing part: after the claim, the final update and the
/// release both fail. The retry of the same message takes its own lease back at once (before,
/// it found the row `processing`, skipped "another delivery" and acked: the upload was lost).
#[test]
fn when_the_database_fails_after_the_claim_the_retry_takes_its_own_lease_back() {
    let stack = Stack::start(StackOptions::named("db-after-claim"));
    let family = stack.family(1, 0);
    let asset = stack.queued_asset(&family.account_id);
    stack.fault("job_db_after_claim", true);
    let job = edge_tests::fixtures::transcode_job(&family.account_id, &asset, "db-after-claim-test");
    stack.control(json!({"action": "publish_raw", "body": job}));
    let retry = stack.wait_for_log(Duration::from_secs(15), "the retry after the failed update", |l| {
        l["message"] == "job retry" && l["asset_id"] == asset.as_str()
    });
    assert!(
        retry["release_error"].as_str().is_some(),
        "the release failed too: {retry}"
    );
    assert_eq!(asset_status(&stack, &asset).0, "processing", "still leased");
    stack.fault("job_db_after_claim", false);
    wait_for_status(&stack, &asset, "ready", Duration::from_secs(20));
    assert!(
        !stack
            .logs()
            .iter()
            .any(|l| l["message"] == "job skipped" && l["asset_id"] == asset.as_str()),
        "no delivery of this job was skipped as someone else's"
    );
}

/// Hole 2: the dead-letter publish fails after the job died. The row is not marked `failed`
/// before its dead record exists; the message is retried and the record reaches the store.
#[test]
fn a_dead_job_whose_dlq_publish_fails_is_kept_until_its_dead_record_is_stored() {
    let stack = Stack::start(StackOptions::named("dlq-publish"));
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    stack.fault("dlq_publish", true);
    let asset = completed_upload_with(
        &stack,
        &s,
        &family.account_id,
        &family.moment_ids[0],
        json!({"mode": "corrupt"}),
    );
    stack.wait_for_log(Duration::from_secs(15), "the failed dead-letter publish", |l| {
        l["message"] == "job dead" && l["asset_id"] == asset.as_str() && l["dlq_publish_error"].is_string()
    });
    assert_ne!(
        asset_status(&stack, &asset).0,
        "failed",
        "marked failed with no dead record anywhere"
    );
    stack.fault("dlq_publish", false);
    let alert = stack.wait_for_log(Duration::from_secs(30), "the stored dead record", |l| {
        l["alert"] == "dlq_item" && l["asset_id"] == asset.as_str()
    });
    assert_eq!(alert["classification"], "definitive");
    wait_for_status(&stack, &asset, "failed", Duration::from_secs(10));
    let listed = stack.admin("GET", "/admin/jobs/dead", None).json();
    assert!(
        listed["dead_jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["key"] == alert["dead_job_key"]),
        "the dead record can be re-driven: {listed}"
    );
}

/// Holes 1 and 3, the issue's acceptance: 100 unpublished queued assets, 20 unpublished queued
/// exports and one asset whose claim is an hour old are all published (one sweep publishes more
/// than the 100 messages one `sendBatch` may carry) and done within three sweep runs.
#[test]
fn the_sweep_republishes_more_than_one_batch_and_every_expired_lease_within_three_runs() {
    let stack = Stack::start(StackOptions::named("sweep-many"));
    let family = stack.family(1, 0);
    let mut db = stack.db();
    db.execute(
        "INSERT INTO asset (account_id, media_type, original_key, size_bytes, status, queued_at)
         SELECT $1::text::uuid, 'image/jpeg', 'originals/sweep-' || n || '.jpg', 1, 'queued', now() - interval '10 minutes'
         FROM generate_series(1, 100) n",
        &[&family.account_id],
    )
    .unwrap();
    db.execute(
        "INSERT INTO account_export (account_id, status, queued_at) SELECT $1::text::uuid, 'queued', now() - interval '10 minutes'
         FROM generate_series(1, 20)",
        &[&family.account_id],
    )
    .unwrap();
    db.execute(
        "INSERT INTO asset (account_id, media_type, original_key, size_bytes, status, queued_at, published_at,
           processing_started_at, lease_expires_at, lease_holder)
         VALUES ($1::text::uuid, 'image/jpeg', 'originals/claimed.jpg', 1, 'processing', now() - interval '1 hour',
           now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour' + interval '330 seconds', 'gone')",
        &[&family.account_id],
    )
    .unwrap();
    let left = |db: &mut postgres::Client| -> i64 {
        let assets: i64 = db
            .query_one(
                "SELECT count(*) FROM asset WHERE account_id = $1::text::uuid AND status <> 'ready'",
                &[&family.account_id],
            )
            .unwrap()
            .get(0);
        let exports: i64 = db
            .query_one(
                "SELECT count(*) FROM account_export WHERE account_id = $1::text::uuid AND status <> 'ready'",
                &[&family.account_id],
            )
            .unwrap()
            .get(0);
        assets + exports
    };
    let start = now_ms() + 3 * 60_000;
    let mut reports = Vec::new();
    for run in 0..3 {
        if left(&mut db) == 0 {
            break;
        }
        let time = start + run * 5 * 60_000;
        // Counted before the trigger: its jobs start completing before its end line is read.
        let before = left(&mut db);
        assert_eq!(stack.fire_cron("*/5 * * * *", time).status, 200);
        let scheduled = babybook_jobs::format_rfc3339_millis(time);
        let end = stack.wait_for_log(Duration::from_secs(20), "the sweep's end line", |l| {
            l["message"] == "cron end" && l["cron_job"] == "queued_sweep" && l["scheduled_time"] == scheduled.as_str()
        });
        assert_eq!(end["ok"], true, "the sweep failed: {end}");
        reports.push(end["report"].clone());
        // The published jobs drain before the next run is fired.
        let deadline = Instant::now() + Duration::from_secs(30);
        let published = end["report"]["assets_republished"].as_i64().unwrap()
            + end["report"]["exports_republished"].as_i64().unwrap();
        while before - left(&mut db) < published {
            assert!(
                Instant::now() < deadline,
                "the published jobs did not complete: {reports:?}"
            );
            std::thread::sleep(Duration::from_millis(200)); // polling interval, bounded by the deadline
        }
    }
    assert_eq!(left(&mut db), 0, "work left behind after three sweeps: {reports:?}");
    let expired: i64 = reports.iter().map(|r| r["leases_expired"].as_i64().unwrap()).sum();
    assert_eq!(expired, 1, "the hour-old claim was taken over: {reports:?}");
    let first = &reports[0];
    assert!(
        first["assets_republished"].as_i64().unwrap() + first["exports_republished"].as_i64().unwrap() > 100,
        "one run published more than one batch: {first}"
    );
}

/// Hole 5: the media worker's output is untrusted. Derivatives that are not an array of
/// `{key, width}` make a `worker_bug` dead job (stored, they made every page showing the asset
/// answer 503), and a bad row written before this check does not break the page.
#[test]
fn output_that_breaks_the_contract_is_a_worker_bug_and_old_bad_rows_do_not_break_pages() {
    let stack = Stack::shared();
    let family = stack.family(2, 1);
    let s = stack.sign_in(&family);
    let asset = completed_upload_with(
        stack,
        &s,
        &family.account_id,
        &family.moment_ids[0],
        json!({"mode": "bad_output"}),
    );
    let dead = stack.wait_for_log(Duration::from_secs(15), "the invalid output's dead letter", |l| {
        l["alert"] == "dlq_item" && l["asset_id"] == asset.as_str()
    });
    assert_eq!(
        (dead["classification"].as_str(), dead["last_error"]["kind"].as_str()),
        (Some("worker_bug"), Some("invalid_output"))
    );
    wait_for_status(stack, &asset, "failed", Duration::from_secs(10));
    assert_eq!(calls_for(stack, &asset).len(), 1, "invalid output is not retried");

    // Rows written before the check: one not an array, one with an element that is no preview.
    let mut db = stack.db();
    for (asset, bad) in family
        .asset_ids
        .iter()
        .zip([r#"{"480": "derived/x.webp"}"#, r#"[{"key": 5, "width": "wide"}]"#])
    {
        db.execute(
            "UPDATE asset SET derivatives = $2::text::jsonb WHERE id = $1::text::uuid",
            &[asset, &bad],
        )
        .unwrap();
    }
    let page = stack.client().get(&format!("/s/{}", family.shares[0].token));
    assert_eq!(page.status, 200, "{}", page.text());
}

/// Hole 4: a transcode may run longer than one HTTP call should wait (the edge gives up on a call
/// after 30 s). The media worker answers `202` with `retry_after_seconds` while the job runs, and
/// the edge asks again then, without holding a connection, a lease or a retry attempt meanwhile.
#[test]
fn a_job_that_runs_longer_than_the_edges_call_timeout_completes_by_asking_again() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let started = Instant::now();
    let asset = completed_upload_with(
        stack,
        &s,
        &family.account_id,
        &family.moment_ids[0],
        json!({"mode": "slow", "seconds": 35}),
    );
    wait_for_status(stack, &asset, "ready", Duration::from_secs(90));
    assert!(
        started.elapsed() > Duration::from_secs(30),
        "the job ran longer than one media call may wait"
    );
    let calls = calls_for(stack, &asset);
    let statuses: Vec<u64> = calls.iter().map(|c| c["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 202) && statuses.len() > 2,
        "asked again while it ran: {statuses:?}"
    );
    let job_ids: std::collections::BTreeSet<&str> = calls.iter().map(|c| c["job_id"].as_str().unwrap()).collect();
    assert_eq!(job_ids.len(), 1, "the same job every time: {job_ids:?}");
    assert!(
        !stack
            .logs()
            .iter()
            .any(|l| l["message"] == "job retry" && l["asset_id"] == asset.as_str()),
        "a running job burns no retry attempts"
    );
}

// ------------------------------------------------- issue 28: writes fenced by the lease

/// A stack whose media calls can be held past a lease while a test takes the row over.
fn lease_stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| Stack::start(StackOptions::named("lease-fence")))
}

/// Publishes `asset`'s transcode with its media call held `delay_ms` and answered `mode`; once
/// the delivery has claimed the row, hands the lease to another delivery (what a second delivery's
/// claim writes after the first one's lease expired), and returns that holder.
fn outlive_the_lease(stack: &Stack, account: &str, asset: &str, mode: &str) -> &'static str {
    stack.media_control(
        "PUT",
        &format!("/__control/behaviour/{asset}"),
        Some(json!({"mode": mode, "delay_ms": 4000})),
    );
    let job = edge_tests::fixtures::transcode_job(account, asset, "lease-fence-test");
    stack.control(json!({"action": "publish_raw", "body": job}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while asset_status(stack, asset).0 != "processing" {
        assert!(Instant::now() < deadline, "the job never claimed its row");
        std::thread::sleep(Duration::from_millis(20)); // polling interval, bounded by the deadline
    }
    let taken = stack
        .db()
        .execute(
            "UPDATE asset SET lease_holder = 'a-later-delivery', lease_expires_at = now() + interval '10 minutes'
             WHERE id = $1::text::uuid AND status = 'processing'",
            &[&asset],
        )
        .unwrap();
    assert_eq!(
        taken, 1,
        "the row was concluded before the takeover: the media call was not held"
    );
    "a-later-delivery"
}

fn holder_of(stack: &Stack, asset: &str) -> (String, Option<String>, String) {
    let row = stack
        .db()
        .query_one(
            "SELECT status, lease_holder, derivatives::text FROM asset WHERE id = $1::text::uuid",
            &[&asset],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[test]
fn a_delivery_that_outlived_its_lease_does_not_finish_the_row_another_delivery_holds() {
    let stack = lease_stack();
    let family = stack.family(1, 0);
    let asset = stack.queued_asset(&family.account_id);
    let holder = outlive_the_lease(stack, &family.account_id, &asset, "ok");
    let lost = stack.wait_for_log(Duration::from_secs(30), "the lost lease's line", |l| {
        l["message"] == "job lease lost" && l["asset_id"] == asset.as_str()
    });
    assert_eq!(lost["write"], "finish");
    let (status, lease_holder, derivatives) = holder_of(stack, &asset);
    assert_eq!(
        (status.as_str(), lease_holder.as_deref(), derivatives.as_str()),
        ("processing", Some(holder), "[]"),
        "the late result overwrote the row its new holder owns"
    );
}

#[test]
fn a_delivery_that_outlived_its_lease_does_not_fail_the_row_another_delivery_holds() {
    let stack = lease_stack();
    let family = stack.family(1, 0);
    let asset = stack.queued_asset(&family.account_id);
    let holder = outlive_the_lease(stack, &family.account_id, &asset, "corrupt");
    let lost = stack.wait_for_log(Duration::from_secs(30), "the lost lease's line", |l| {
        l["message"] == "job lease lost" && l["asset_id"] == asset.as_str()
    });
    assert_eq!(lost["write"], "mark_failed");
    // The DLQ handler stores the record and marks rows too: wait for it before judging the row.
    stack.wait_for_log(Duration::from_secs(30), "the dead job's alert", |l| {
        l["alert"] == "dlq_item" && l["asset_id"] == asset.as_str()
    });
    let (status, lease_holder, _) = holder_of(stack, &asset);
    assert_eq!(
        (status.as_str(), lease_holder.as_deref()),
        ("processing", Some(holder)),
        "the late failure failed the row its new holder owns"
    );
}

// ------------------------------------------------- issue 28: a dead letter is never dropped

#[test]
fn a_dead_job_survives_a_dead_job_store_outage_longer_than_the_dlqs_retries() {
    // Its own stack: the store fault is the whole isolate's.
    let stack = Stack::start(StackOptions::named("dead-store").var("DLQ_STORE_RETRY_SECONDS", "1"));
    let family = stack.family(1, 0);
    let asset = stack.queued_asset(&family.account_id);
    stack.media_control(
        "PUT",
        &format!("/__control/behaviour/{asset}"),
        Some(json!({"mode": "corrupt"})),
    );
    stack.fault("dead_job_store", true);
    let job = edge_tests::fixtures::transcode_job(&family.account_id, &asset, "dead-store-test");
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    stack.control(json!({"action": "publish_raw", "body": job}));

    // Five refusals, one second apart: the same dead letter, each time a new message (its
    // delivery count stays at 1), where the runtime's own retries would count up to
    // `max_retries` and then drop it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refusals = loop {
        let lines: Vec<serde_json::Value> = stack
            .logs()
            .into_iter()
            .filter(|l| l["message"] == "dead job not stored" && l["key"].as_str().is_some_and(|k| k.contains(&job_id)))
            .collect();
        if lines.len() >= 5 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "the dead job was not kept trying: {lines:?}\n{}",
            stack.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200)); // polling interval, bounded by the deadline
    };
    for line in &refusals {
        assert_eq!(line["attempts"], 1, "a delivery counted toward max_retries: {line}");
        assert_eq!(line["kept"], "re-published to jobs-dlq", "{line}");
    }
    assert_eq!(
        refusals[0]["alert"], "dead_job_store_failing",
        "the first refusal alerts"
    );

    stack.fault("dead_job_store", false);
    let stored = stack.wait_for_log(Duration::from_secs(30), "the stored dead job", |l| {
        l["alert"] == "dlq_item" && l["job_id"] == job_id.as_str()
    });
    assert_eq!(stored["classification"], "definitive");
    let dead = stack.admin("GET", "/admin/jobs/dead", None).json();
    assert!(
        dead["dead_jobs"]
            .as_array()
            .is_some_and(|d| d.iter().any(|j| j["job_id"] == job_id.as_str())),
        "the record is in the store, ready to re-drive: {dead}"
    );
    assert_eq!(asset_status(&stack, &asset).0, "failed");
    stack.stop();
}
