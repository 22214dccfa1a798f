//! What a `purge` or `purge_account` job is made of, shared by the runner (a refused purge goes
//! on the queue again) and the share cache (a revoke's own failed try publishes the first one).

use babybook_jobs::Job;

use crate::alerts::Alert;
use crate::share::cache_policy;
use crate::share::purge::PurgeTarget;
use crate::telemetry::{Level, LogLine};

/// How long after it was asked for a purge is still worth retrying: the edge cache keeps a page
/// this long, so by then every copy it would remove has expired.
pub const PURGE_HORIZON_MS: i64 = cache_policy::cache_entry_ttl_seconds() * 1000;

/// The job that retries a purge of `target`, after `failed_attempts` failed tries.
pub fn purge_job(target: PurgeTarget, failed_attempts: u32) -> Job {
    match target {
        PurgeTarget::Link(hash) => Job::Purge {
            token_hash: hash.to_hex(),
            failed_attempts,
        },
        PurgeTarget::Account(_) => Job::PurgeAccount { failed_attempts },
    }
}

/// The log line of a failed purge try: a warning, or from the `PURGE_ALERT_AFTER_FAILURES`-th
/// failure on the `purge_failing` alert (Sev-2: a revoked link may still be served elsewhere).
pub fn purge_failure_line(
    line: &dyn Fn(Level, &str) -> LogLine,
    failed_attempts: u32,
    detail: &str,
    retry_in_seconds: u32,
    alert: bool,
) -> LogLine {
    let base = if alert {
        Alert::PurgeFailing.on(line(Level::Error, "global cache purge failing"))
    } else {
        line(Level::Warn, "global cache purge failed")
    };
    base.field("failed_attempts", failed_attempts)
        .field("detail", detail.to_owned())
        .field("retry_in_seconds", retry_in_seconds)
}
