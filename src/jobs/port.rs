//! What the runner needs from the world, as one trait: the queue's messages (read, ack, retry),
//! the rows of a batch (claim, record, release, mark failed, the rows of delete and reap jobs),
//! publishing, the dead-letter publish, the media worker, the purge API, log lines and the clock.
//! The Worker's implementation is `src/edge/consumer.rs`, wrapped by the test faults of local runs
//! (`src/edge/consumer_drills.rs`); the in-memory one is `tests/support/job_world.rs`. The runner
//! never asks whether a fault is on.

use babybook_jobs::lifecycle::{LostClaim, MediaOutput};
use babybook_jobs::{DeadJob, Failure, Id, Job, JobMessage, MediaOutcome, TraceId};

use crate::error::ApiError;
use crate::share::purge::PurgeTarget;
use crate::telemetry::{Level, LogLine};

/// The row a job works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Asset(Id),
    Export(Id),
}

impl Subject {
    /// The row of a job that has one to lease (deletions and reaps do not: they are idempotent
    /// on their own and hold no claim).
    pub fn of(job: &Job) -> Option<Subject> {
        match job {
            Job::Transcode { asset_id, .. } | Job::Probe { asset_id } => Some(Subject::Asset(*asset_id)),
            Job::Export { export_id } => Some(Subject::Export(*export_id)),
            Job::DeleteAsset { .. } | Job::Reap { .. } | Job::Purge { .. } | Job::PurgeAccount { .. } => None,
        }
    }

    pub fn raw(self) -> Id {
        match self {
            Subject::Asset(id) | Subject::Export(id) => id,
        }
    }

    pub fn id(self) -> String {
        self.raw().to_string()
    }
}

/// Whether a delivery won the row of its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The row is `processing` under this delivery's lease.
    Won,
    Lost(LostClaim),
}

/// One job's bid for its row in a batch's claim.
#[derive(Debug, Clone, Copy)]
pub struct Bid<'a> {
    /// The bid's number in the batch: its answer carries it back.
    pub number: usize,
    pub account: Id,
    pub subject: Subject,
    /// The queue message id: the same on every retry of that message, another for a duplicate.
    pub holder: &'a str,
    /// The job was re-driven: it may take a `failed` row back.
    pub redriven: bool,
}

/// What the media worker's finished answer leaves to record on the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Asset(MediaOutput),
    /// The archive's object key (empty: none given).
    Export(String),
}

/// One finished job's result, to be recorded under its lease.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    pub account: Id,
    pub subject: Subject,
    pub holder: &'a str,
    pub output: &'a Output,
}

/// The row a delete or reap job removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Asset,
    Export,
}

impl Deletion {
    pub fn unknown(self) -> &'static str {
        match self {
            Deletion::Asset => "no such asset in the account",
            Deletion::Export => "no such export in the account",
        }
    }

    pub fn already(self) -> &'static str {
        match self {
            Deletion::Asset => "asset already deleted",
            Deletion::Export => "export already deleted",
        }
    }
}

/// The media worker's answer to a job.
#[derive(Debug, Clone)]
pub struct MediaAnswer {
    pub outcome: MediaOutcome,
    pub body: serde_json::Value,
    /// `202`: the job is still running on the media worker; ask again after this many seconds.
    pub running: Option<u32>,
}

impl MediaAnswer {
    pub fn failed(failure: Failure) -> MediaAnswer {
        MediaAnswer {
            outcome: MediaOutcome::Failed(failure),
            body: serde_json::Value::Null,
            running: None,
        }
    }
}

/// How a log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Always,
    /// A success's line, sampled at `LOG_SAMPLE_SUCCESS`.
    Success,
    /// Written, and sent to the alert webhook when it carries an `alert`.
    Alert,
}

/// The world of the runner. Every `async fn` is an await point where the world may fail or
/// stall; the in-memory implementation does both.
#[allow(async_fn_in_trait)] // one implementation per target, never sent across threads
pub trait Port {
    /// A message as the queue handed it over.
    type Delivery;

    /// The message id: the lease holder of the job's row (the same on each retry of it).
    fn message_id(&self, delivery: &Self::Delivery) -> String;
    /// Deliveries of this message so far, this one included (at least 1).
    fn attempts(&self, delivery: &Self::Delivery) -> u32;
    /// The body as JSON text.
    fn body(&self, delivery: &Self::Delivery) -> String;
    fn ack(&self, delivery: &Self::Delivery);
    fn retry(&self, delivery: &Self::Delivery, delay_seconds: u32);

    fn now_ms(&self) -> i64;
    fn new_trace_id(&self) -> TraceId;
    /// How many jobs of a batch run at once.
    fn concurrency(&self) -> usize;
    /// A log line with the service's context.
    fn line(&self, trace: &TraceId, level: Level, text: &str) -> LogLine;
    fn emit(&self, line: LogLine, how: Emit);

    /// Claims every bid's row in one round trip: a transaction per account, in order of first
    /// appearance. The answers by bid number; `Err` when the round trip failed (a transaction of
    /// an earlier account may have committed).
    async fn claim(&self, bids: &[Bid<'_>]) -> Result<Vec<(usize, Claim)>, ApiError>;
    /// Records the results in one round trip, each fenced by its lease: the ids of the rows
    /// written (a row another delivery took over is not).
    async fn record(&self, finished: &[Finished<'_>]) -> Result<Vec<String>, ApiError>;
    /// Hands a row leased by `holder` back to `queued`.
    async fn release(&self, account: Id, subject: Subject, holder: &str) -> Result<(), ApiError>;
    /// Marks a row leased by `holder` (or not leased) `failed`; `Ok(false)`: nothing changed.
    async fn mark_failed(
        &self,
        account: Id,
        subject: Subject,
        failure: &Failure,
        holder: &str,
    ) -> Result<bool, ApiError>;
    /// The `status` of a row a delete or reap job removes (`None`: not in the account).
    async fn status_of(&self, account: Id, row: Deletion, id: Id) -> Result<Option<String>, ApiError>;
    async fn mark_deleted(&self, account: Id, row: Deletion, id: Id) -> Result<(), ApiError>;

    /// Publishes `message` to `jobs`, delivered after `delay_seconds`.
    async fn publish_after(&self, message: &JobMessage, delay_seconds: u32) -> Result<(), String>;
    /// Publishes the dead job of `delivery` to `jobs-dlq`.
    async fn dead_letter(&self, delivery: &Self::Delivery, dead: &DeadJob) -> Result<(), String>;
    /// Asks the media worker to run (or finish) the job.
    async fn run_job(&self, message: &JobMessage) -> MediaAnswer;
    /// One purge of every data center's cached copies of `target`.
    async fn purge(&self, target: PurgeTarget) -> Result<(), String>;
}
