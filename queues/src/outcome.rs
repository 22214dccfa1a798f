//! What the consumer does with a job after each attempt: the retry policy as plain functions.

use crate::{Failure, FailureKind};

/// Deliveries a job gets before it is dead-lettered: the first and four retries (seed §11 asks for
/// 5 tries with exponential backoff; the runtime's `max_retries = 5` stays a backstop above this).
pub const MAX_ATTEMPTS: u32 = 5;
/// Exponential backoff base (seed §11: base 1 s).
pub const RETRY_BASE_SECONDS: u32 = 1;
/// No single retry waits longer than this, however many attempts came before.
pub const RETRY_CAP_SECONDS: u32 = 300;

/// The delay before the next delivery after attempt number `attempt` (1-based) failed:
/// `base · 2^(attempt-1)`, capped. 1 s, 2 s, 4 s, 8 s, … Never zero.
pub fn retry_delay_seconds(attempt: u32) -> u32 {
    let exponent = attempt.saturating_sub(1).min(31);
    RETRY_BASE_SECONDS
        .saturating_mul(1u32 << exponent)
        .clamp(1, RETRY_CAP_SECONDS)
}

/// How a call to the media worker ended, from the consumer's side of the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOutcome {
    Done,
    Failed(Failure),
}

impl MediaOutcome {
    /// Maps an HTTP answer of the media worker. `detail` is a short, PII-free excerpt for the log.
    pub fn from_status(status: u16, detail: &str) -> Self {
        let kind = match status {
            200..=299 => return MediaOutcome::Done,
            422 => FailureKind::CorruptMedia,
            401 | 403 => FailureKind::Forbidden,
            429 => FailureKind::Throttled,
            502..=504 => FailureKind::Unavailable,
            400..=499 => FailureKind::Rejected,
            _ => FailureKind::ServerError,
        };
        MediaOutcome::Failed(Failure::new(kind, Some(status), detail))
    }
}

/// What to tell the queue about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ack,
    Retry {
        delay_seconds: u32,
    },
    /// Stop retrying: publish a [`crate::DeadJob`] with this failure to the dead-letter queue, then ack.
    Dead(Failure),
}

impl Decision {
    /// `attempts` counts this delivery (the runtime's `Message.attempts`, 1 on first delivery).
    pub fn after(outcome: MediaOutcome, attempts: u32) -> Decision {
        match outcome {
            MediaOutcome::Done => Decision::Ack,
            MediaOutcome::Failed(failure) if failure.kind.is_transient() && attempts < MAX_ATTEMPTS => {
                Decision::Retry {
                    delay_seconds: retry_delay_seconds(attempts),
                }
            }
            MediaOutcome::Failed(failure) => Decision::Dead(failure.with_attempts(attempts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureClass;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_from_one_second() {
        let delays: Vec<u32> = (1..=6).map(retry_delay_seconds).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32]);
        assert_eq!(
            retry_delay_seconds(0),
            1,
            "a runtime that reports 0 attempts still waits"
        );
        assert_eq!(retry_delay_seconds(40), RETRY_CAP_SECONDS);
    }

    proptest! {
        #[test]
        fn backoff_never_shrinks_and_stays_within_bounds(attempt in 0u32..100) {
            let here = retry_delay_seconds(attempt);
            prop_assert!((1..=RETRY_CAP_SECONDS).contains(&here));
            prop_assert!(retry_delay_seconds(attempt + 1) >= here);
        }
    }

    #[test]
    fn status_codes_map_to_the_three_ways_a_job_fails() {
        let rows = [
            (200, None),
            (422, Some((FailureKind::CorruptMedia, false, FailureClass::Definitive))),
            (403, Some((FailureKind::Forbidden, false, FailureClass::External))),
            (401, Some((FailureKind::Forbidden, false, FailureClass::External))),
            (400, Some((FailureKind::Rejected, false, FailureClass::WorkerBug))),
            (404, Some((FailureKind::Rejected, false, FailureClass::WorkerBug))),
            (429, Some((FailureKind::Throttled, true, FailureClass::External))),
            (500, Some((FailureKind::ServerError, true, FailureClass::WorkerBug))),
            (503, Some((FailureKind::Unavailable, true, FailureClass::External))),
            (504, Some((FailureKind::Unavailable, true, FailureClass::External))),
        ];
        for (status, want) in rows {
            match (MediaOutcome::from_status(status, ""), want) {
                (MediaOutcome::Done, None) => {}
                (MediaOutcome::Failed(f), Some((kind, transient, class))) => {
                    assert_eq!(f.kind, kind, "status {status}");
                    assert_eq!(f.kind.is_transient(), transient, "status {status}");
                    assert_eq!(f.kind.class(), class, "status {status}");
                }
                (got, want) => panic!("status {status}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn transient_failures_retry_until_the_fifth_attempt_then_die() {
        let unavailable = || MediaOutcome::from_status(503, "down");
        for attempt in 1..MAX_ATTEMPTS {
            assert_eq!(
                Decision::after(unavailable(), attempt),
                Decision::Retry {
                    delay_seconds: retry_delay_seconds(attempt)
                },
                "attempt {attempt}"
            );
        }
        match Decision::after(unavailable(), MAX_ATTEMPTS) {
            Decision::Dead(failure) => assert_eq!(failure.attempts, MAX_ATTEMPTS),
            other => panic!("attempt {MAX_ATTEMPTS}: {other:?}"),
        }
    }

    #[test]
    fn definitive_failures_skip_the_retries() {
        match Decision::after(MediaOutcome::from_status(422, "corrupt"), 1) {
            Decision::Dead(failure) => {
                assert_eq!(failure.kind, FailureKind::CorruptMedia);
                assert_eq!(failure.attempts, 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
