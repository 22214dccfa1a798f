//! Issue 6: media jobs on the local queues: producer, idempotent consumer with backoff, the
//! dead-letter handler, re-drive, and the job contract on the wire.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use edge_tests::SignedIn;

use crate::{Stack, StackOptions};

/// An uploaded original waiting for `POST /uploads/complete`: a `pending` asset row and the
/// object in (stand-in) storage.
pub(crate) fn pending_asset(stack: &Stack, account: &str, moment: &str) -> (String, i64, String) {
    let key = format!(
        "originals/{account}/{}.jpg",
        babybook_edge::secure_random::new_id().unwrap()
    );
    let id: String = stack
        .db()
        .query_one(
            "INSERT INTO asset (account_id, moment_id, media_type, original_key, size_bytes, status) VALUES ($1::text::uuid, $2::text::uuid, 'image/jpeg', $3, 0, 'pending') RETURNING id::text",
            &[&account, &moment, &key],
        )
        .unwrap()
        .get(0);
    let (size, etag) = (3_145_728, format!("etag-{}", &id[..8]));
    stack.media_control(
        "PUT",
        "/__control/objects",
        Some(json!({"key": key, "size": size, "etag": etag})),
    );
    (id, size, etag)
}

pub(crate) fn asset_status(stack: &Stack, id: &str) -> (String, Option<String>) {
    let row = stack
        .db()
        .query_one(
            "SELECT status, failure_reason FROM asset WHERE id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

pub(crate) fn wait_for_status(stack: &Stack, id: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, reason) = asset_status(stack, id);
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "asset {id} is {status} ({reason:?}), not {want}, after {timeout:?}. Tail:\n{}",
            stack.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
}

pub(crate) fn calls_for(stack: &Stack, id: &str) -> Vec<Value> {
    stack
        .media_control("GET", &format!("/__control/calls?id={id}"), None)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn complete(s: &SignedIn, asset: &str, size: i64, etag: &str) -> edge_tests::Response {
    s.write(
        "POST",
        "/uploads/complete",
        Some(&json!({"asset_id": asset, "size_bytes": size, "etag": etag})),
    )
}

/// Uploads an original whose transcode the media stand-in answers with `behaviour`, and completes
/// the upload; returns the asset id.
pub(crate) fn completed_upload_with(
    stack: &Stack,
    s: &SignedIn,
    account: &str,
    moment: &str,
    behaviour: Value,
) -> String {
    let (asset, size, etag) = pending_asset(stack, account, moment);
    stack.media_control("PUT", &format!("/__control/behaviour/{asset}"), Some(behaviour));
    assert_eq!(complete(s, &asset, size, &etag).status, 202);
    asset
}

fn job_schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(edge_tests::stack::repo_root().join("queues/schema/job-message.v1.json")).unwrap();
    jsonschema::draft202012::new(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn an_upload_completes_end_to_end_with_one_trace_id_and_a_schema_valid_job() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let (asset, size, etag) = pending_asset(stack, &family.account_id, &family.moment_ids[0]);
    let r = complete(&s, &asset, size, &etag);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({"asset_id": asset, "status": "queued"}));
    let trace = r.header("x-trace-id").unwrap().to_owned();
    wait_for_status(stack, &asset, "ready", Duration::from_secs(15));

    let published = stack.wait_for_log(Duration::from_secs(5), "the producer's line", |l| {
        l["message"] == "job published" && l["asset_id"] == asset.as_str()
    });
    let done = stack.wait_for_log(Duration::from_secs(5), "the consumer's line", |l| {
        l["message"] == "job done" && l["asset_id"] == asset.as_str()
    });
    assert_eq!(published["trace_id"], trace.as_str());
    assert_eq!(
        done["trace_id"],
        trace.as_str(),
        "the consumer logs the producer's trace id"
    );
    assert!(done["queue_time_ms"].as_i64().is_some());
    assert!(done["account_id_hash"].as_str().unwrap().starts_with("sha256-"));
    assert!(
        !done.to_string().contains(&family.account_id),
        "raw account ids never reach the log"
    );
    // One line per job (SPEC §6): the consumer's line for the outcome, with the job's ids, type,
    // attempt and time in the queue; nothing on receipt.
    let consumer_lines: Vec<Value> = stack
        .logs()
        .into_iter()
        .filter(|l| l["asset_id"] == asset.as_str() && l["job_id"].is_string() && l["message"] != "job published")
        .collect();
    assert_eq!(
        consumer_lines.len(),
        1,
        "one consumer line for the job: {consumer_lines:#?}"
    );

    let calls = calls_for(stack, &asset);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0]["trace_id"],
        trace.as_str(),
        "the media worker gets the trace id"
    );
    assert!(
        calls[0]["authorized"].as_bool().unwrap(),
        "the media worker gets its credential (MEDIA_WORKER_TOKEN)"
    );
    let errors: Vec<String> = job_schema()
        .iter_errors(&calls[0]["body"])
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "the producer's message fails the contract: {errors:?}"
    );
    let asset_json = s.get(&format!("/assets/{asset}")).json();
    assert_eq!(asset_json["status"], "ready");
    assert_eq!(asset_json["previews"].as_array().unwrap().len(), 2);
    // Retrying the call is safe.
    assert_eq!(complete(&s, &asset, size, &etag).json()["status"], "ready");
}

#[test]
fn the_clients_size_and_etag_are_checked_against_storage_not_trusted() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let (asset, size, etag) = pending_asset(stack, &family.account_id, &family.moment_ids[0]);
    let lying = complete(&s, &asset, size + 1, "etag-other");
    assert_eq!(lying.status, 422);
    let fields = &lying.json()["error"]["fields"];
    assert!(
        fields["size_bytes"].is_string() && fields["etag"].is_string(),
        "{fields}"
    );
    assert_eq!(asset_status(stack, &asset).0, "pending");
    assert_eq!(
        complete(
            &s,
            &babybook_jobs::Id::from_random_bytes([4; 16]).to_string(),
            size,
            &etag
        )
        .status,
        404
    );
}

#[test]
fn a_job_delivered_twice_is_processed_once() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let asset = stack.queued_asset(&family.account_id);
    let job = edge_tests::fixtures::transcode_job(&family.account_id, &asset, "duplicate-delivery-test");
    stack.control(json!({"action": "publish_raw_batch", "bodies": [job, job]}));
    wait_for_status(stack, &asset, "ready", Duration::from_secs(15));
    // The second delivery was consumed too: acked and skipped, not processed.
    let skipped = stack.wait_for_log(Duration::from_secs(15), "the second delivery", |l| {
        l["message"] == "job skipped" && l["asset_id"] == asset.as_str()
    });
    assert!(
        matches!(
            skipped["reason"].as_str(),
            Some("already ready" | "leased by another delivery")
        ),
        "{skipped}"
    );
    assert_eq!(
        calls_for(stack, &asset).len(),
        1,
        "the media worker was called more than once"
    );
}

#[test]
fn transient_failures_retry_with_growing_delays_until_ready() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let asset = completed_upload_with(
        stack,
        &s,
        &family.account_id,
        &family.moment_ids[0],
        json!({"mode": "transient", "times": 3, "then": "ok"}),
    );
    wait_for_status(stack, &asset, "ready", Duration::from_secs(30));
    let delays: Vec<i64> = stack
        .logs()
        .iter()
        .filter(|l| l["message"] == "job retry" && l["asset_id"] == asset.as_str())
        .map(|l| l["delay_seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(delays, [1, 2, 4], "exponential backoff from 1 s");
    let calls = calls_for(stack, &asset);
    assert_eq!(
        calls.iter().map(|c| c["status"].as_u64().unwrap()).collect::<Vec<_>>(),
        [503, 503, 503, 200]
    );
    let gaps: Vec<i64> = calls
        .windows(2)
        .map(|w| w[1]["at_ms"].as_i64().unwrap() - w[0]["at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        gaps[0] >= 900 && gaps[1] >= 1_900 && gaps[2] >= 3_900,
        "retries came too soon: {gaps:?} ms"
    );
}

#[test]
fn a_poison_pill_in_a_batch_of_ten_is_dead_lettered_while_the_other_nine_complete() {
    let stack = Stack::shared();
    let family = stack.family(9, 0);
    let mut bodies = Vec::new();
    let mut assets = Vec::new();
    for _ in &family.moment_ids {
        let asset = stack.queued_asset(&family.account_id);
        bodies.push(edge_tests::fixtures::transcode_job(
            &family.account_id,
            &asset,
            "poison-batch-test",
        ));
        assets.push(asset);
    }
    let pill = format!("{{not json at all {}", babybook_edge::secure_random::new_id().unwrap());
    bodies.insert(4, Value::String(pill.clone()));
    stack.control(json!({"action": "publish_raw_batch", "bodies": bodies}));
    for asset in &assets {
        wait_for_status(stack, asset, "ready", Duration::from_secs(20));
    }
    let dead = stack.wait_for_log(Duration::from_secs(15), "the pill's dead-letter alert", |l| {
        l["alert"] == "dlq_item" && l["last_error"]["kind"] == "invalid_message" && l["dead_job_key"].as_str().is_some()
    });
    assert_eq!(dead["classification"], "definitive");
    assert_eq!(dead["severity"], "sev2");
    let listed = stack.admin("GET", "/admin/jobs/dead", None).json();
    assert!(
        listed["dead_jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["key"] == dead["dead_job_key"]),
        "the pill is kept for the operator"
    );
}

#[test]
fn a_job_for_an_unknown_asset_is_definitive_and_a_corrupt_upload_marks_the_asset_failed() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let unknown = babybook_edge::secure_random::new_id().unwrap().to_string();
    let job = edge_tests::fixtures::transcode_job(&family.account_id, &unknown, "unknown-asset-test");
    stack.control(json!({"action": "publish_raw", "body": job}));
    let dead = stack.wait_for_log(Duration::from_secs(15), "unknown asset dead letter", |l| {
        l["alert"] == "dlq_item" && l["trace_id"] == "unknown-asset-test"
    });
    assert_eq!(
        (dead["classification"].as_str(), dead["last_error"]["kind"].as_str()),
        (Some("definitive"), Some("unknown_target"))
    );

    let s = stack.sign_in(&family);
    let asset = completed_upload_with(
        stack,
        &s,
        &family.account_id,
        &family.moment_ids[0],
        json!({"mode": "corrupt"}),
    );
    wait_for_status(stack, &asset, "failed", Duration::from_secs(15));
    assert_eq!(
        calls_for(stack, &asset).len(),
        1,
        "a definitive failure burns no retries"
    );
    let shown = s.get(&format!("/assets/{asset}")).json();
    assert_eq!(shown["status"], "failed");
    assert!(
        shown["failure_reason"].as_str().unwrap().contains("corrupt_media"),
        "{shown}"
    );
}

#[test]
fn when_the_provider_stays_down_the_job_dies_as_external_after_five_attempts_and_redrive_completes_it() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let asset = completed_upload_with(
        stack,
        &s,
        &family.account_id,
        &family.moment_ids[0],
        json!({"mode": "transient"}),
    );
    let dead = stack.wait_for_log(Duration::from_secs(60), "the external dead letter", |l| {
        l["alert"] == "dlq_item" && l["asset_id"] == asset.as_str()
    });
    assert_eq!(dead["classification"], "external");
    assert_eq!(dead["attempts"], 5);
    assert_eq!(calls_for(stack, &asset).len(), 5);
    assert_eq!(asset_status(stack, &asset).0, "failed");

    stack.media_control(
        "PUT",
        &format!("/__control/behaviour/{asset}"),
        Some(json!({"mode": "ok"})),
    );
    let job_id = dead["job_id"].as_str().unwrap();
    let redrive = stack.admin("POST", "/admin/jobs/redrive", Some(&json!({"job_id": job_id})));
    assert_eq!(redrive.status, 200, "{}", redrive.text());
    assert_eq!(redrive.json()["redriven"], json!([job_id]));
    wait_for_status(stack, &asset, "ready", Duration::from_secs(15));
    assert_eq!(
        stack
            .admin("POST", "/admin/jobs/redrive", Some(&json!({"job_id": job_id})))
            .status,
        404,
        "a re-driven job leaves the store"
    );
    assert_eq!(
        stack
            .client()
            .request(
                "POST",
                "/admin/jobs/redrive",
                &[("content-type", "application/json")],
                Some(b"{}".to_vec())
            )
            .status,
        401,
        "re-drive needs the admin credential"
    );
}

#[test]
fn exports_and_asset_deletions_are_jobs_too() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let export = s.write("POST", "/exports", None);
    assert_eq!(export.status, 202, "{}", export.text());
    let export_id = export.json()["export_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status: String = stack
            .db()
            .query_one(
                "SELECT status FROM account_export WHERE id = $1::text::uuid",
                &[&export_id],
            )
            .unwrap()
            .get(0);
        if status == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "export stuck in {status}");
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
    let deleted = s.write("DELETE", &format!("/assets/{}", family.asset_ids[0]), None);
    assert_eq!(deleted.status, 202);
    wait_for_status(stack, &family.asset_ids[0], "deleted", Duration::from_secs(15));
    assert_eq!(s.get(&format!("/assets/{}", family.asset_ids[0])).status, 404);
}

#[test]
fn the_sweep_leaves_published_jobs_alone_even_when_they_wait_long() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let (asset, _, _) = pending_asset(stack, &family.account_id, &family.moment_ids[0]);
    stack
        .db()
        .execute("UPDATE asset SET status = 'queued', queued_at = now() - interval '10 minutes', published_at = now() - interval '10 minutes' WHERE id = $1::text::uuid", &[&asset])
        .unwrap();
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(stack.fire_cron("*/5 * * * *", later).status, 200);
    // The sweep ran to its end (its report is logged after its publish)…
    let scheduled = babybook_jobs::format_rfc3339_millis(later);
    let end = stack.wait_for_log(Duration::from_secs(15), "the sweep's end line", |l| {
        l["message"] == "cron end" && l["cron_job"] == "queued_sweep" && l["scheduled_time"] == scheduled.as_str()
    });
    assert_eq!(end["ok"], true, "{end}");
    // …and anything it published has been consumed.
    stack.drain_jobs(&family.account_id);
    assert!(
        calls_for(stack, &asset).is_empty(),
        "a job already on the queue was published again"
    );
    assert_eq!(asset_status(stack, &asset).0, "queued");
}

#[test]
fn a_failed_publish_after_the_commit_loses_no_job_the_sweep_republishes_it() {
    let stack = Stack::start(StackOptions::named("publish-fault"));
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let (asset, size, etag) = pending_asset(&stack, &family.account_id, &family.moment_ids[0]);
    stack.fault("queue_publish", true);
    let r = complete(&s, &asset, size, &etag);
    assert_eq!(r.status, 202, "the commit happened: the client is told it is queued");
    stack.wait_for_log(Duration::from_secs(5), "publish deferred", |l| {
        l["message"] == "publish deferred"
    });
    // The fault is on publishes through the producer; the sentinel goes through the test control.
    stack.drain_jobs(&family.account_id);
    assert_eq!(asset_status(&stack, &asset).0, "queued");
    assert!(calls_for(&stack, &asset).is_empty());
    stack.fault("queue_publish", false);
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3 * 60_000;
    let cron = stack.fire_cron("*/5 * * * *", later);
    assert_eq!(cron.status, 200, "{}", cron.text());
    wait_for_status(&stack, &asset, "ready", Duration::from_secs(15));
}

/// Issue 17: a batch's database work is done per batch, not per job. Ten jobs of one account
/// published together are claimed in one statement and finished in one statement, each in one
/// round trip (the whole transaction in one message) on a connection of its own. Before, every
/// job opened two connections of its own (claim, finish) and made six round trips. Its own
/// stack: the counters are the Worker's, and nothing else may use the database meanwhile.
#[test]
fn a_batch_of_jobs_is_claimed_and_finished_in_one_statement_each_not_one_per_job() {
    let stack = Stack::start(StackOptions::named("queue-batching"));
    let family = stack.family(1, 0);
    let assets: Vec<String> = (0..10).map(|_| stack.queued_asset(&family.account_id)).collect();
    let bodies: Vec<Value> = assets
        .iter()
        .map(|asset| edge_tests::fixtures::transcode_job(&family.account_id, asset, "batching-test"))
        .collect();
    let before = stack.counters();
    let published_at = babybook_jobs::format_rfc3339_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    stack.control(json!({"action": "publish_raw_batch", "bodies": bodies}));
    for asset in &assets {
        wait_for_status(&stack, asset, "ready", Duration::from_secs(30));
        assert_eq!(calls_for(&stack, asset).len(), 1, "one media call for {asset}");
    }
    // The batch lines (one per batch the local queue made of the ten) come after the acks.
    let deadline = Instant::now() + Duration::from_secs(15);
    let batches = loop {
        let lines: Vec<Value> = stack
            .logs()
            .into_iter()
            .filter(|l| {
                l["message"] == "queue batch"
                    && l["queue"] == "jobs"
                    && l["timestamp"].as_str().is_some_and(|t| t >= published_at.as_str())
            })
            .collect();
        let acked: u64 = lines.iter().map(|l| l["acked"].as_u64().unwrap_or(0)).sum();
        if acked >= 10 {
            break lines.len() as f64;
        }
        assert!(Instant::now() < deadline, "only {acked} jobs acked in batch lines");
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    };
    let after = stack.counters();
    let used = |name: &str| after[name].as_f64().unwrap() - before[name].as_f64().unwrap();
    let (round_trips, connections) = (used("db_round_trips"), used("db_connections"));
    assert!(
        connections <= 2.0 * batches,
        "{connections} connections for 10 jobs in {batches} batch(es)"
    );
    assert!(
        round_trips <= 2.0 * batches,
        "{round_trips} round trips for 10 jobs in {batches} batch(es)"
    );
}

/// SPEC §6: a success's line is sampled like a request's (`LOG_SAMPLE_SUCCESS`), a warning never
/// is. With the rate at 0 an upload that completes logs nothing of its job (neither the
/// producer's `job published` nor the consumer's `job done`), while a message that is no job
/// still logs its warning.
#[test]
fn job_success_lines_are_sampled_and_warnings_are_not() {
    let stack = Stack::start(StackOptions::named("job-log-sampling").var("LOG_SAMPLE_SUCCESS", "0"));
    let family = stack.family(1, 0);
    let s = stack.sign_in(&family);
    let (asset, size, etag) = pending_asset(&stack, &family.account_id, &family.moment_ids[0]);
    assert_eq!(complete(&s, &asset, size, &etag).status, 202);
    wait_for_status(&stack, &asset, "ready", Duration::from_secs(15));
    // Published after the job was done: its warning comes after any line the job wrote.
    stack.control(json!({"action": "publish_raw", "body": "not a job"}));
    stack.wait_for_log(
        Duration::from_secs(15),
        "the warning of a message that is no job",
        |l| l["message"] == "job unreadable",
    );
    let job_lines: Vec<Value> = stack
        .logs()
        .into_iter()
        .filter(|l| l["asset_id"] == asset.as_str())
        .collect();
    assert!(
        job_lines.is_empty(),
        "success lines at LOG_SAMPLE_SUCCESS=0: {job_lines:#?}"
    );
}
