//! The test faults of the job consumer, as a port around the Worker's port: local runs switch
//! them on through the test controls (`faults`), and with them off (always, outside local test
//! runs) every call goes straight through. Neither the runner nor the Worker's port asks whether
//! a fault is on.
//!
//! - `job_db_after_claim`: recording a result and releasing a row fail as a database outage
//!   would (marking a row failed still goes through, so a dead job keeps its status).
//! - `consumer_paused` (chaos drill, seed §7.4 scenario 1): the batch is held, as a stopped
//!   consumer would hold it, so the backlog and its age grow behind it.
//!
//! `queue_publish` and `dlq_publish` fail in `jobs`, `dead_job_store` in the DLQ handler: those
//! are shared with the API and the DLQ consumer.

use babybook_jobs::{DeadJob, Failure, Id, JobMessage, TraceId};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::port::{Bid, Claim, Deletion, Emit, Finished, MediaAnswer, Port, Subject};
use crate::share::purge::PurgeTarget;
use crate::telemetry::{Level, LogLine};

use super::context;
use super::faults::{self, Fault};

/// `inner` with the consumer's test faults.
pub struct Drilled<'a, P> {
    inner: P,
    config: &'a Config,
}

impl<'a, P: Port> Drilled<'a, P> {
    pub fn around(inner: P, config: &'a Config) -> Self {
        Drilled { inner, config }
    }

    /// Holds the batch while `consumer_paused` is on (two minutes at most).
    pub async fn hold_while_paused(&self) {
        if !faults::is_on(self.config, Fault::ConsumerPaused) {
            return;
        }
        context::emit(&context::line(
            self.config,
            &context::new_trace_id(),
            Level::Warn,
            "consumer paused",
        ));
        let mut waited_ms = 0;
        while faults::is_on(self.config, Fault::ConsumerPaused) && waited_ms < 120_000 {
            worker::Delay::from(std::time::Duration::from_millis(250)).await;
            waited_ms += 250;
        }
    }

    fn writes_after_claim(&self) -> Result<(), ApiError> {
        if faults::is_on(self.config, Fault::JobDbAfterClaim) {
            return Err(ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "job_db_after_claim fault switched on (test control)",
            ));
        }
        Ok(())
    }
}

impl<P: Port> Port for Drilled<'_, P> {
    type Delivery = P::Delivery;

    fn message_id(&self, delivery: &Self::Delivery) -> String {
        self.inner.message_id(delivery)
    }

    fn attempts(&self, delivery: &Self::Delivery) -> u32 {
        self.inner.attempts(delivery)
    }

    fn body(&self, delivery: &Self::Delivery) -> String {
        self.inner.body(delivery)
    }

    fn ack(&self, delivery: &Self::Delivery) {
        self.inner.ack(delivery)
    }

    fn retry(&self, delivery: &Self::Delivery, delay_seconds: u32) {
        self.inner.retry(delivery, delay_seconds)
    }

    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }

    fn new_trace_id(&self) -> TraceId {
        self.inner.new_trace_id()
    }

    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }

    fn line(&self, trace: &TraceId, level: Level, text: &str) -> LogLine {
        self.inner.line(trace, level, text)
    }

    fn emit(&self, line: LogLine, how: Emit) {
        self.inner.emit(line, how)
    }

    async fn claim(&self, bids: &[Bid<'_>]) -> Result<Vec<(usize, Claim)>, ApiError> {
        self.inner.claim(bids).await
    }

    async fn record(&self, finished: &[Finished<'_>]) -> Result<Vec<String>, ApiError> {
        self.writes_after_claim()?;
        self.inner.record(finished).await
    }

    async fn release(&self, account: Id, subject: Subject, holder: &str) -> Result<(), ApiError> {
        self.writes_after_claim()?;
        self.inner.release(account, subject, holder).await
    }

    async fn mark_failed(
        &self,
        account: Id,
        subject: Subject,
        failure: &Failure,
        holder: &str,
    ) -> Result<bool, ApiError> {
        self.inner.mark_failed(account, subject, failure, holder).await
    }

    async fn status_of(&self, account: Id, row: Deletion, id: Id) -> Result<Option<String>, ApiError> {
        self.inner.status_of(account, row, id).await
    }

    async fn mark_deleted(&self, account: Id, row: Deletion, id: Id) -> Result<(), ApiError> {
        self.inner.mark_deleted(account, row, id).await
    }

    async fn publish_after(&self, message: &JobMessage, delay_seconds: u32) -> Result<(), String> {
        self.inner.publish_after(message, delay_seconds).await
    }

    async fn dead_letter(&self, delivery: &Self::Delivery, dead: &DeadJob) -> Result<(), String> {
        self.inner.dead_letter(delivery, dead).await
    }

    async fn run_job(&self, message: &JobMessage) -> MediaAnswer {
        self.inner.run_job(message).await
    }

    async fn purge(&self, target: PurgeTarget) -> Result<(), String> {
        self.inner.purge(target).await
    }
}
