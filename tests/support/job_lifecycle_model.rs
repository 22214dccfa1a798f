//! A model of one job's life through the queue, driven by random fault sequences (issue 14's
//! state-machine test). It runs the contract's own rules (`babybook_jobs::lifecycle::{may_claim,
//! when_claim_lost, sweep_takes}`, `Decision::after`, the lease length) in the order the Worker's
//! consumer, DLQ handler and sweep run them, with a fault injected at any step: database down
//! before or after the claim, the isolate dying after the claim, media 5xx / timeout / 4xx, the
//! DLQ publish failing, the dead-job store failing, duplicate deliveries, the sweep running
//! while a delivery works. The properties:
//!
//! - at no point is the row `failed` without its dead record (stored, or on its way in `jobs-dlq`);
//! - once the faults stop, within a bound (a lease, two sweep periods and the retry backoff) the
//!   job is `ready`, or `failed` with its dead record stored, and nothing of it is left running.

use babybook_jobs::lifecycle::{may_claim, sweep_takes, when_claim_lost, Lease, LostClaim, RowStatus, LEASE_SECONDS};
use babybook_jobs::{Decision, Failure, FailureKind, MediaOutcome, MAX_ATTEMPTS};

/// The runtime's `max_retries` for `jobs` (wrangler.toml): after this many retries it moves the
/// message to `jobs-dlq` itself.
const RUNTIME_MAX_RETRIES: u32 = 5;
const SWEEP_PERIOD_MS: i64 = 5 * 60_000;
const SWEEP_AFTER_MS: i64 = 2 * 60_000;
const DLQ_RETRY_MS: i64 = 30_000;

/// One step of the world, chosen at random.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// The next visible message of `jobs` is delivered, with this fault on its way.
    Deliver(Fault),
    /// The next visible message of `jobs-dlq` is handled; `store_fails`: R2 is down, `db_down`:
    /// the row cannot be marked.
    HandleDead { store_fails: bool, db_down: bool },
    /// The */5 sweep runs; `db_down`: it cannot.
    Sweep { db_down: bool },
    /// The same job is published once more (a client retry, a producer's duplicate).
    Duplicate,
    /// Time passes.
    Wait { ms: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    DbDownBeforeClaim,
    /// The final update and the release fail.
    DbDownAfterClaim,
    IsolateDiesAfterClaim,
    Media5xx,
    MediaTimeout,
    Media4xx,
    DlqPublishFails,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    /// Deliveries so far.
    attempts: u32,
    visible_at_ms: i64,
}

#[derive(Debug)]
pub struct World {
    now_ms: i64,
    status: RowStatus,
    lease: Option<Lease>,
    published: bool,
    queued_at_ms: i64,
    jobs: Vec<Message>,
    dlq: Vec<Message>,
    stored_dead_records: u32,
    next_message: u32,
    /// The last sweep's time.
    swept_at_ms: i64,
    pub deliveries: u64,
    pub faults_hit: u64,
}

impl World {
    /// A job just committed `queued`; `published`: its publish went through.
    pub fn new(published: bool) -> World {
        let mut world = World {
            now_ms: 1_000_000,
            status: RowStatus::Queued,
            lease: None,
            published,
            queued_at_ms: 1_000_000,
            jobs: Vec::new(),
            dlq: Vec::new(),
            stored_dead_records: 0,
            next_message: 0,
            swept_at_ms: 1_000_000,
            deliveries: 0,
            faults_hit: 0,
        };
        if published {
            world.publish(0);
        }
        world
    }

    fn publish(&mut self, delay_ms: i64) {
        self.next_message += 1;
        self.jobs.push(Message {
            id: format!("m{}", self.next_message),
            attempts: 0,
            visible_at_ms: self.now_ms + delay_ms,
        });
    }

    fn visible(queue: &[Message], now_ms: i64) -> Option<usize> {
        (0..queue.len())
            .filter(|&i| queue[i].visible_at_ms <= now_ms)
            .min_by_key(|&i| queue[i].visible_at_ms)
    }

    /// The queue's retry of message `m`: redelivered later, or moved to `jobs-dlq` by the
    /// runtime once its retries are spent.
    fn retry(&mut self, mut m: Message, delay_ms: i64) {
        if m.attempts > RUNTIME_MAX_RETRIES {
            self.dlq.push(Message {
                visible_at_ms: self.now_ms,
                ..m
            });
        } else {
            m.visible_at_ms = self.now_ms + delay_ms;
            self.jobs.push(m);
        }
    }

    /// A failed row always has its dead record, stored or on its way.
    pub fn check_safety(&self) -> Result<(), String> {
        if self.status == RowStatus::Failed && self.stored_dead_records == 0 && self.dlq.is_empty() {
            return Err(format!("failed without a dead record: {self:?}"));
        }
        Ok(())
    }

    /// Finished: ready, or failed with the record stored, and no message of it left on either
    /// queue (a leftover duplicate is delivered, skipped and acked first).
    pub fn settled(&self) -> bool {
        let terminal =
            self.status == RowStatus::Ready || (self.status == RowStatus::Failed && self.stored_dead_records > 0);
        terminal && self.dlq.is_empty() && self.jobs.is_empty()
    }

    pub fn step(&mut self, event: Event, media: &mut MediaScript) {
        match event {
            Event::Wait { ms } => self.now_ms += ms,
            Event::Duplicate => self.publish(0),
            Event::Sweep { db_down } => self.sweep(db_down),
            Event::HandleDead { store_fails, db_down } => self.handle_dead(store_fails, db_down),
            Event::Deliver(fault) => self.deliver(fault, media),
        }
    }

    fn sweep(&mut self, db_down: bool) {
        self.swept_at_ms = self.now_ms;
        if db_down {
            return;
        }
        if sweep_takes(
            self.status,
            self.published,
            self.queued_at_ms,
            self.lease.as_ref(),
            self.now_ms - SWEEP_AFTER_MS,
            self.now_ms,
        ) {
            self.status = RowStatus::Queued;
            self.lease = None;
            self.published = true;
            self.queued_at_ms = self.now_ms;
            self.publish(0);
        }
    }

    fn handle_dead(&mut self, store_fails: bool, db_down: bool) {
        let Some(i) = Self::visible(&self.dlq, self.now_ms) else {
            return;
        };
        let mut m = self.dlq.remove(i);
        if store_fails {
            m.visible_at_ms = self.now_ms + DLQ_RETRY_MS;
            self.dlq.push(m);
            return;
        }
        self.stored_dead_records += 1;
        if db_down {
            // Stored, but the row could not be marked: retried (storing again is idempotent).
            m.visible_at_ms = self.now_ms + DLQ_RETRY_MS;
            self.dlq.push(m);
            return;
        }
        if !matches!(self.status, RowStatus::Ready | RowStatus::Deleted) {
            self.status = RowStatus::Failed;
            self.lease = None;
        }
    }

    fn deliver(&mut self, fault: Fault, media: &mut MediaScript) {
        let Some(i) = Self::visible(&self.jobs, self.now_ms) else {
            return;
        };
        let mut m = self.jobs.remove(i);
        m.attempts += 1;
        self.deliveries += 1;
        if fault != Fault::None {
            self.faults_hit += 1;
        }
        // The consumer's order: claim, media, validate, finish; then the decision.
        let failure = |kind| Failure::new(kind, None, "model");
        let step: Result<(), Failure> = 'work: {
            if fault == Fault::DbDownBeforeClaim {
                break 'work Err(failure(FailureKind::Unavailable));
            }
            if !may_claim(self.status, self.lease.as_ref(), &m.id, self.now_ms, false) {
                match when_claim_lost(Some(self.status)) {
                    LostClaim::Skip(_) => return, // acked
                    LostClaim::Fail(f) => break 'work Err(f),
                }
            }
            self.status = RowStatus::Processing;
            self.lease = Some(Lease {
                holder: m.id.clone(),
                expires_at_ms: self.now_ms + i64::from(LEASE_SECONDS) * 1000,
            });
            if fault == Fault::IsolateDiesAfterClaim {
                // Nothing more runs; the runtime redelivers the message later.
                self.retry(m, 60_000);
                return;
            }
            let outcome = match fault {
                Fault::Media5xx => MediaOutcome::from_status(503, "model"),
                Fault::MediaTimeout => MediaOutcome::Failed(failure(FailureKind::Timeout)),
                Fault::Media4xx => MediaOutcome::from_status(422, "model"),
                _ => media.next(),
            };
            if let MediaOutcome::Failed(f) = outcome {
                break 'work Err(f);
            }
            if fault == Fault::DbDownAfterClaim {
                break 'work Err(failure(FailureKind::Unavailable));
            }
            if self.status == RowStatus::Processing {
                self.status = RowStatus::Ready;
                self.lease = None;
            }
            Ok(())
        };
        let decision = match step {
            Ok(()) => Decision::Ack,
            Err(f) => Decision::after(MediaOutcome::Failed(f), m.attempts),
        };
        match decision {
            Decision::Ack => {}
            Decision::Retry { delay_seconds } => {
                let db_down = matches!(fault, Fault::DbDownBeforeClaim | Fault::DbDownAfterClaim);
                let ours = self.lease.as_ref().is_some_and(|l| l.holder == m.id);
                if !db_down && self.status == RowStatus::Processing && ours {
                    self.status = RowStatus::Queued;
                    self.lease = None;
                    self.queued_at_ms = self.now_ms;
                }
                self.retry(m, i64::from(delay_seconds) * 1000);
            }
            Decision::Dead(_) => {
                if fault == Fault::DlqPublishFails {
                    self.retry(m, 5_000);
                    return;
                }
                self.dlq.push(Message {
                    visible_at_ms: self.now_ms,
                    ..m
                });
                let db_down = matches!(fault, Fault::DbDownBeforeClaim | Fault::DbDownAfterClaim);
                if !db_down && !matches!(self.status, RowStatus::Ready | RowStatus::Deleted) {
                    self.status = RowStatus::Failed;
                    self.lease = None;
                }
            }
        }
    }

    /// Runs without faults until settled or `limit_ms` of model time passes: deliveries, the DLQ
    /// handler and the */5 sweep as the runtime would schedule them.
    pub fn run_fault_free(&mut self, media: &mut MediaScript, limit_ms: i64) -> Result<i64, String> {
        let start = self.now_ms;
        while self.now_ms - start <= limit_ms {
            self.check_safety()?;
            if self.settled() {
                return Ok(self.now_ms - start);
            }
            if Self::visible(&self.jobs, self.now_ms).is_some() {
                self.deliver(Fault::None, media);
            } else if Self::visible(&self.dlq, self.now_ms).is_some() {
                self.handle_dead(false, false);
            } else if self.now_ms - self.swept_at_ms >= SWEEP_PERIOD_MS {
                self.sweep(false);
            } else {
                self.now_ms += 1_000;
            }
        }
        Err(format!("not settled {limit_ms} ms after the faults stopped: {self:?}"))
    }
}

/// What the media worker answers, when no fault decides: transient failures first, then a
/// definitive one or success.
#[derive(Debug, Clone)]
pub struct MediaScript {
    pub transient_first: u32,
    pub then_definitive: bool,
}

impl MediaScript {
    fn next(&mut self) -> MediaOutcome {
        if self.transient_first > 0 {
            self.transient_first -= 1;
            return MediaOutcome::from_status(503, "model");
        }
        if self.then_definitive {
            MediaOutcome::from_status(422, "model")
        } else {
            MediaOutcome::Done
        }
    }
}

/// The bound after the faults stop: a lease, two sweep periods, and the longest backoff of a
/// job's retries and of the runtime's redeliveries.
pub fn settle_bound_ms() -> i64 {
    let backoff: i64 = (1..=MAX_ATTEMPTS + RUNTIME_MAX_RETRIES)
        .map(|a| i64::from(babybook_jobs::retry_delay_seconds(a)) * 1000 + 60_000)
        .sum();
    i64::from(LEASE_SECONDS) * 1000 + 2 * SWEEP_PERIOD_MS + backoff + 10 * DLQ_RETRY_MS
}
