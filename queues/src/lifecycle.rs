//! The life of a job's row (an asset's or an export's) as plain rules: the lease a delivery holds
//! while it works, what a delivery does when it did not win the row, how publishes are cut into
//! batches the queue accepts, and which media-worker output may be stored. The Worker's
//! `job_rows` module executes these against Postgres; `tests/lifecycle.rs` drives them through
//! random fault sequences.
//!
//! ```text
//!   pending ──complete──▶ queued ──claim──▶ processing ──done──▶ ready
//!                           ▲  ▲               │  │
//!                 release ──┘  └── sweep ──────┘  └──dead record stored──▶ failed
//!              (retry)      (lease expired,               (re-drive: failed ─▶ queued)
//!                            or never published)
//! ```

use serde_json::Value;

use crate::{Failure, FailureKind};

/// The media worker's own budget for one job (seed §11).
pub const JOB_BUDGET_SECONDS: u32 = 300;
/// How long a claim lasts: the job budget plus a margin for the final update. A delivery that
/// dies (deploy, eviction, CPU or memory limit) leaves a lease that any later delivery, or the
/// sweep, takes over once it has expired.
pub const LEASE_SECONDS: u32 = JOB_BUDGET_SECONDS + 30;

/// What Queues accepts in one `sendBatch` (and Miniflare enforces locally).
pub const MAX_BATCH_MESSAGES: usize = 100;
pub const MAX_BATCH_BYTES: usize = 256_000;
/// What Queues accepts for one message.
pub const MAX_MESSAGE_BYTES: usize = 128_000;

/// A row's status, as the `status` column spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    Pending,
    Queued,
    Processing,
    Ready,
    Failed,
    Deleted,
}

impl RowStatus {
    pub fn parse(text: &str) -> Option<RowStatus> {
        Some(match text {
            "pending" => RowStatus::Pending,
            "queued" => RowStatus::Queued,
            "processing" => RowStatus::Processing,
            "ready" => RowStatus::Ready,
            "failed" => RowStatus::Failed,
            "deleted" => RowStatus::Deleted,
            _ => return None,
        })
    }
}

/// A claim on a row: who holds it (a queue message id) and until when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub expires_at_ms: i64,
}

/// Whether a delivery (`holder`) wins the row now: a `queued` row; a `processing` row whose lease
/// expired or is its own (this message's retry); a `failed` row when the job was re-driven.
/// `job_rows::claim` is this rule as one `UPDATE … WHERE`.
pub fn may_claim(status: RowStatus, lease: Option<&Lease>, holder: &str, now_ms: i64, redriven: bool) -> bool {
    match status {
        RowStatus::Queued => true,
        RowStatus::Processing => lease.is_none_or(|l| l.expires_at_ms < now_ms || l.holder == holder),
        RowStatus::Failed => redriven,
        RowStatus::Pending | RowStatus::Ready | RowStatus::Deleted => false,
    }
}

/// Whether the sweep hands the row back to the queue: a `queued` row whose publish never
/// happened, queued before `before_ms`, or a `processing` row whose lease expired.
/// `sweep_asset_jobs` / `sweep_export_jobs` (migration V10) are this rule in SQL.
pub fn sweep_takes(
    status: RowStatus,
    published: bool,
    queued_at_ms: i64,
    lease: Option<&Lease>,
    before_ms: i64,
    now_ms: i64,
) -> bool {
    match status {
        RowStatus::Queued => !published && queued_at_ms < before_ms,
        RowStatus::Processing => lease.is_none_or(|l| l.expires_at_ms < now_ms),
        _ => false,
    }
}

/// What a delivery does when its claim did not win the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostClaim {
    /// Ack: the job is finished, or another delivery holds a live lease (if that delivery dies,
    /// its lease expires and the sweep re-publishes the job).
    Skip(&'static str),
    /// Retry once the other delivery's lease may have ended: the bid carries a re-drive, whose
    /// record is gone, and the lease may be held by the delivery that dead-lettered the job and
    /// has yet to mark the row `failed`. Acked, the re-drive would be lost under that mark.
    Wait(&'static str),
    /// The job cannot be done: dead-letter it.
    Fail(Failure),
}

/// The rule for a lost claim. `status` is `None` when the row does not exist in the account;
/// `redriven`: the bid's job was re-driven by an operator.
pub fn when_claim_lost(status: Option<RowStatus>, redriven: bool) -> LostClaim {
    match status {
        None => LostClaim::Fail(Failure::new(
            FailureKind::UnknownTarget,
            None,
            "no such row in the account",
        )),
        Some(RowStatus::Pending) => {
            LostClaim::Fail(Failure::new(FailureKind::UnknownTarget, None, "upload never completed"))
        }
        Some(RowStatus::Ready) => LostClaim::Skip("already ready"),
        Some(RowStatus::Processing) if redriven => LostClaim::Wait("a re-drive waits for another delivery's lease"),
        Some(RowStatus::Processing) => LostClaim::Skip("leased by another delivery"),
        // A failed row has its dead record already (the record is stored before the row is
        // marked); only a re-drive brings it back.
        Some(RowStatus::Failed) => LostClaim::Skip("failed, waiting for a re-drive"),
        Some(RowStatus::Deleted) => LostClaim::Skip("deleted"),
        // The claim of a queued row only loses to a concurrent claim that committed first.
        Some(RowStatus::Queued) => LostClaim::Skip("claimed concurrently"),
    }
}

/// Cuts messages of the given encoded sizes, in order, into `sendBatch` calls within both limits
/// of the queue. A message over [`MAX_MESSAGE_BYTES`] is an error: no batch can carry it.
pub fn batches(sizes: &[usize]) -> Result<Vec<std::ops::Range<usize>>, String> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if size > MAX_MESSAGE_BYTES {
            return Err(format!(
                "message {i} has {size} bytes, over the {MAX_MESSAGE_BYTES}-byte limit"
            ));
        }
        if i > start && (i - start == MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    Ok(out)
}

/// What a transcode or probe stores from the media worker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOutput {
    /// The derivatives as JSON text, exactly the validated array.
    pub derivatives: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
}

const MAX_DERIVATIVES: usize = 32;
/// The `purpose` of the link-preview derivative: a JPEG or PNG (what WhatsApp, iMessage, Telegram
/// and Slack unfurl; WebP is not shown reliably) with its `height`, 1200x630 from the media worker.
pub const OG_PURPOSE: &str = "og";
const MAX_KEY_CHARS: usize = 512;
const MAX_DIMENSION: i64 = 100_000;

/// Validates a 2xx answer of the media worker for an asset job. Untrusted output never reaches
/// the database: anything but an array of `{key, width}` (and positive dimensions) is an
/// [`FailureKind::InvalidOutput`] failure, a `worker_bug` dead job.
/// [`media_output`] of a job of `account`: every derivative is also a plain key under
/// `derived/<account>/` (`crate::media_keys`), so no answer of the media worker can put an
/// original, another family's photo or a key that climbs out of its folder on a page.
pub fn media_output_of(body: &Value, account: &crate::Id) -> Result<MediaOutput, Failure> {
    let output = media_output(body)?;
    let keys: Vec<Value> = serde_json::from_str(&output.derivatives).unwrap_or_default();
    let foreign = keys
        .iter()
        .filter_map(|d| d.get("key").and_then(Value::as_str))
        .find(|k| !crate::media_keys::is_derivative_key(k, account));
    match foreign {
        Some(_) => Err(Failure::new(
            FailureKind::InvalidOutput,
            Some(200),
            "a derivative is not under the account's derived/ folder",
        )),
        None => Ok(output),
    }
}

pub fn media_output(body: &Value) -> Result<MediaOutput, Failure> {
    let bad = |what: &str| Failure::new(FailureKind::InvalidOutput, Some(200), what);
    let dimension = |name: &str| -> Result<Option<i32>, Failure> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|n| (1..=MAX_DIMENSION).contains(n))
                .map(|n| Some(n as i32))
                .ok_or_else(|| bad(&format!("{name} is not a positive whole number"))),
        }
    };
    let (width, height) = (dimension("width")?, dimension("height")?);
    let derivatives = match body.get("derivatives") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_DERIVATIVES => items
            .iter()
            .map(|item| {
                let key = item
                    .get("key")
                    .and_then(Value::as_str)
                    .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS && !k.chars().any(char::is_control))
                    .ok_or_else(|| bad("a derivative has no usable key"))?;
                let width = item
                    .get("width")
                    .and_then(Value::as_i64)
                    .filter(|n| (1..=MAX_DIMENSION).contains(n))
                    .ok_or_else(|| bad("a derivative has no positive width"))?;
                match item.get("purpose").and_then(Value::as_str) {
                    None => Ok(serde_json::json!({"key": key, "width": width})),
                    Some(OG_PURPOSE) => {
                        let height = item
                            .get("height")
                            .and_then(Value::as_i64)
                            .filter(|n| (1..=MAX_DIMENSION).contains(n))
                            .ok_or_else(|| bad("an og derivative has no positive height"))?;
                        let lower = key.to_ascii_lowercase();
                        if ![".jpg", ".jpeg", ".png"].iter().any(|ext| lower.ends_with(ext)) {
                            return Err(bad("an og derivative is not a .jpg, .jpeg or .png"));
                        }
                        Ok(serde_json::json!({"key": key, "width": width, "height": height, "purpose": OG_PURPOSE}))
                    }
                    Some(_) => Err(bad("a derivative has an unknown purpose")),
                }
            })
            .collect::<Result<Vec<_>, Failure>>()?,
        Some(_) => return Err(bad("derivatives is not an array of at most 32 {key, width}")),
    };
    Ok(MediaOutput {
        derivatives: Value::Array(derivatives).to_string(),
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_respect_the_count_and_the_byte_limits() {
        assert_eq!(batches(&[]).unwrap(), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches(&[10; 250]).unwrap(), vec![0..100, 100..200, 200..250]);
        assert_eq!(batches(&[100_000; 5]).unwrap(), vec![0..2, 2..4, 4..5]);
        assert_eq!(batches(&[128_000, 127_990, 10, 1]).unwrap(), vec![0..3, 3..4]);
        assert!(batches(&[10, MAX_MESSAGE_BYTES + 1]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn every_message_is_in_exactly_one_batch_within_the_limits(sizes in proptest::collection::vec(1usize..=MAX_MESSAGE_BYTES, 0..400)) {
            let cut = batches(&sizes).unwrap();
            let mut next = 0;
            for range in &cut {
                proptest::prop_assert_eq!(range.start, next, "in order, no gap, no overlap");
                proptest::prop_assert!(!range.is_empty());
                proptest::prop_assert!(range.len() <= MAX_BATCH_MESSAGES);
                proptest::prop_assert!(sizes[range.clone()].iter().sum::<usize>() <= MAX_BATCH_BYTES);
                next = range.end;
            }
            proptest::prop_assert_eq!(next, sizes.len());
        }
    }

    #[test]
    fn a_jobs_derivatives_must_be_its_own_accounts_plain_keys() {
        let account = crate::Id::parse("9a1e2b3c-4d5e-4f60-8a7b-c9d0e1f2a3b4").unwrap();
        let answer = |key: String| json!({"derivatives": [{"key": key, "width": 480}]});
        assert!(media_output_of(&answer(format!("derived/{account}/asset/480.webp")), &account).is_ok());
        for key in [
            format!("originals/{account}/asset.jpg"),
            format!("derived/{account}/../../originals/{account}/asset.jpg"),
            "derived/00000000-0000-4000-8000-000000000001/asset/480.webp".to_owned(),
        ] {
            let failure = media_output_of(&answer(key.clone()), &account).expect_err(&key);
            assert_eq!(failure.kind, FailureKind::InvalidOutput, "{key}");
        }
    }

    #[test]
    fn media_output_keeps_valid_derivatives_and_refuses_anything_else() {
        let good = json!({"width": 1600, "height": 1200, "derivatives": [{"key": "derived/a/b/480.webp", "width": 480, "extra": 1}]});
        let out = media_output(&good).unwrap();
        assert_eq!(out.derivatives, r#"[{"key":"derived/a/b/480.webp","width":480}]"#);
        assert_eq!((out.width, out.height), (Some(1600), Some(1200)));
        assert_eq!(media_output(&json!({"status": "ready"})).unwrap().derivatives, "[]");
        let with_og = json!({"derivatives": [{"key": "d/a/b/og.jpg", "width": 1200, "height": 630, "purpose": "og"}]});
        assert_eq!(
            media_output(&with_og).unwrap().derivatives,
            r#"[{"height":630,"key":"d/a/b/og.jpg","purpose":"og","width":1200}]"#,
            "the link-preview derivative keeps its height and purpose"
        );
        for bad in [
            json!({"derivatives": {"key": "a", "width": 1}}),
            json!({"derivatives": "derived/a.webp"}),
            json!({"derivatives": [{"key": "a"}]}),
            json!({"derivatives": [{"key": "", "width": 10}]}),
            json!({"derivatives": [{"key": "a", "width": -3}]}),
            json!({"derivatives": [{"key": "a", "width": 1.5}]}),
            json!({"derivatives": [{"key": "a\n", "width": 10}]}),
            json!({"derivatives": [7]}),
            json!({"derivatives": [{"key": "a/og.webp", "width": 1200, "height": 630, "purpose": "og"}]}),
            json!({"derivatives": [{"key": "a/og.jpg", "width": 1200, "purpose": "og"}]}),
            json!({"derivatives": [{"key": "a/og.jpg", "width": 1200, "height": 630, "purpose": "banner"}]}),
            json!({"width": "1600"}),
            json!({"height": 0}),
        ] {
            let failure = media_output(&bad).expect_err(&bad.to_string());
            assert_eq!(failure.kind, FailureKind::InvalidOutput, "{bad}");
            assert_eq!(failure.kind.class(), crate::FailureClass::WorkerBug);
            assert!(!failure.kind.is_transient());
        }
    }

    #[test]
    fn a_lost_claim_skips_only_when_the_job_is_finished_or_leased_and_fails_when_it_cannot_be_done() {
        assert!(matches!(when_claim_lost(None, false), LostClaim::Fail(f) if f.kind == FailureKind::UnknownTarget));
        assert!(matches!(
            when_claim_lost(Some(RowStatus::Pending), false),
            LostClaim::Fail(_)
        ));
        for status in [
            RowStatus::Ready,
            RowStatus::Processing,
            RowStatus::Failed,
            RowStatus::Deleted,
            RowStatus::Queued,
        ] {
            assert!(
                matches!(when_claim_lost(Some(status), false), LostClaim::Skip(_)),
                "{status:?}"
            );
        }
        // A re-drive (its record is gone) never gives up on a row another delivery holds.
        assert!(matches!(
            when_claim_lost(Some(RowStatus::Processing), true),
            LostClaim::Wait(_)
        ));
        assert_eq!(RowStatus::parse("processing"), Some(RowStatus::Processing));
        assert_eq!(RowStatus::parse("gone"), None);
    }
}
