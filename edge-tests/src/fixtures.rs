//! Job messages for tests and benchmarks, built with the contract's own type so they can never
//! drift from what the producer publishes.

use serde_json::Value;

use babybook_jobs::{Id, Job, JobMessage, TraceId};

fn id(text: &str) -> Id {
    Id::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A job message of `account` for `job`, as JSON.
pub fn job_message(account: &str, trace: &str, job: Job) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let message = JobMessage::new(
        babybook_edge::secure_random::new_id().expect("randomness"),
        id(account),
        TraceId::parse(trace).expect("trace id"),
        now,
        job,
    );
    serde_json::from_str(&message.to_json()).expect("job JSON")
}

/// A `transcode` job for `asset` of `account`, as JSON.
pub fn transcode_job(account: &str, asset: &str, trace: &str) -> Value {
    job_message(
        account,
        trace,
        Job::Transcode {
            asset_id: id(asset),
            original_key: "originals/fixture.jpg".into(),
            media_type: "image/jpeg".into(),
        },
    )
}

/// An `export` job for `export` of `account`, as JSON.
pub fn export_job(account: &str, export: &str, trace: &str) -> Value {
    job_message(account, trace, Job::Export { export_id: id(export) })
}
