//! The retry policy of a global cache purge: a revoked or edited share link must leave every
//! data center, so a purge the zone purge API did not accept is tried again, with backoff, until
//! it is accepted, alerting while it keeps failing. It is never dead-lettered: nothing but the
//! purge API accepting it, or every copy it would remove having expired, ends it.

use crate::retry_delay_seconds;

/// From this many failed tries on (the revoke's own try is the first), every further failure logs
/// a `purge_failing` alert: by then the API has refused the purge for several seconds, and a
/// revoked link may still be served from other data centers.
pub const PURGE_ALERT_AFTER_FAILURES: u32 = 3;

/// What to do after a try of a purge failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeDecision {
    /// Try again after `delay_seconds`; `alert` says whether this failure raises the alert.
    Retry { delay_seconds: u32, alert: bool },
    /// Every cached copy the purge would remove has expired on its own: nothing is left to purge.
    Moot,
}

/// After the `failed_attempts`-th failed try (1-based) of a purge first published at
/// `enqueued_at_ms`: retry after `1 s · 2^(failed-1)` (capped at 5 minutes, so a purge failing
/// for hours costs one try and one alert line per 5 minutes), or stop once `keep_ms` (how long
/// the edge cache keeps a page) has passed since the purge was asked for.
pub fn after_purge_failure(failed_attempts: u32, enqueued_at_ms: i64, now_ms: i64, keep_ms: i64) -> PurgeDecision {
    if is_moot(enqueued_at_ms, now_ms, keep_ms) {
        return PurgeDecision::Moot;
    }
    PurgeDecision::Retry {
        delay_seconds: retry_delay_seconds(failed_attempts),
        alert: failed_attempts >= PURGE_ALERT_AFTER_FAILURES,
    }
}

/// A purge asked for at `enqueued_at_ms` has nothing left to remove once every page cached before
/// it has expired: the cache keeps a page `keep_ms` at most.
pub fn is_moot(enqueued_at_ms: i64, now_ms: i64, keep_ms: i64) -> bool {
    now_ms.saturating_sub(enqueued_at_ms) > keep_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RETRY_CAP_SECONDS;

    const KEEP_MS: i64 = 24 * 3_600_000;

    #[test]
    fn a_failing_purge_backs_off_from_one_second_and_alerts_from_the_third_failure() {
        let rows = [
            (1, 1, false),
            (2, 2, false),
            (3, 4, true),
            (4, 8, true),
            (9, 256, true),
            (10, RETRY_CAP_SECONDS, true),
            (500, RETRY_CAP_SECONDS, true),
        ];
        for (failed, delay, alert) in rows {
            assert_eq!(
                after_purge_failure(failed, 0, 60_000, KEEP_MS),
                PurgeDecision::Retry {
                    delay_seconds: delay,
                    alert
                },
                "after failure {failed}"
            );
        }
    }

    #[test]
    fn a_purge_keeps_being_retried_until_every_copy_it_would_remove_has_expired() {
        let asked = 1_000_000;
        assert!(matches!(
            after_purge_failure(300, asked, asked + KEEP_MS, KEEP_MS),
            PurgeDecision::Retry { .. }
        ));
        assert_eq!(
            after_purge_failure(300, asked, asked + KEEP_MS + 1, KEEP_MS),
            PurgeDecision::Moot
        );
        assert!(
            !is_moot(asked, asked - 5_000, KEEP_MS),
            "a clock behind the producer's is not moot"
        );
    }

    proptest::proptest! {
        #[test]
        fn within_the_horizon_a_purge_is_always_retried_and_never_sooner_than_a_second(
            failed in 1u32..10_000, age in 0i64..=KEEP_MS
        ) {
            match after_purge_failure(failed, 0, age, KEEP_MS) {
                PurgeDecision::Retry { delay_seconds, alert } => {
                    proptest::prop_assert!((1..=RETRY_CAP_SECONDS).contains(&delay_seconds));
                    proptest::prop_assert_eq!(alert, failed >= PURGE_ALERT_AFTER_FAILURES);
                }
                PurgeDecision::Moot => proptest::prop_assert!(false, "moot within the horizon"),
            }
        }
    }
}
