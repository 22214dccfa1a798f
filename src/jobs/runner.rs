//! The decisions of the `jobs` consumer, over [`Port`]. Delivery is at-least-once, so every job
//! is idempotent; each message is acked, retried (exponential backoff from its `attempts`) or
//! dead-lettered on its own, and a batch never fails as a whole (that would retry all of it).

use futures_util::StreamExt;

use babybook_jobs::lifecycle::{self, LostClaim};
use babybook_jobs::purge::{after_purge_failure, PurgeDecision};
use babybook_jobs::{DeadJob, Decision, Failure, FailureKind, Id, Job, JobMessage, MediaOutcome, ReapTarget};

use crate::error::{ApiError, ErrorCode};
use crate::share::purge::PurgeTarget;
use crate::telemetry::{Level, LogLine};

use super::port::{Bid, Claim, Deletion, Emit, Finished, Output, Port, Subject};
use super::purge::{purge_failure_line, purge_job, PURGE_HORIZON_MS};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Acked,
    Retried,
    Dead,
}

/// How long the leased jobs of a batch spent in each phase (wall clock, ms), for the batch line.
#[derive(Debug, Default)]
pub struct Phases {
    pub claim_ms: Option<i64>,
    pub media_ms: Option<i64>,
    pub record_ms: Option<i64>,
    pub conclude_ms: Option<i64>,
}

impl Phases {
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, i64)> {
        [
            ("claim_ms", self.claim_ms),
            ("media_ms", self.media_ms),
            ("record_ms", self.record_ms),
            ("conclude_ms", self.conclude_ms),
        ]
        .into_iter()
        .filter_map(|(name, ms)| Some((name, ms?)))
    }
}

/// One message's fate and, for a job, its time in the queue (ms).
pub type Outcome = (Fate, Option<i64>);

/// A batch whose oldest message waited this long is worth a line every time: the canary's queue
/// guardrail (the seed's 1 minute).
pub const SLOW_BATCH_MS: i64 = 60_000;

/// Whether a batch's `queue batch` line is written every time (issue 31: otherwise it is a
/// success's line, sampled at `LOG_SAMPLE_SUCCESS`, as a request's is): when a message was
/// retried or died, or the oldest waited [`SLOW_BATCH_MS`] or more. Every batch still writes its
/// `QUEUE_METRICS` data point, which is what counts batches.
pub fn batch_line_always(outcomes: &[Outcome]) -> bool {
    outcomes
        .iter()
        .any(|(fate, age)| *fate != Fate::Acked || age.is_some_and(|ms| ms >= SLOW_BATCH_MS))
}

/// How long after it was first enqueued a job may still be running on the media worker before
/// the edge counts it as timed out (the media worker's own budget is 300 s per job).
pub const MAX_JOB_WAIT_MS: i64 = 3_600_000;

/// How the work went, before the retry policy decides.
enum Step {
    Done,
    /// The media worker is still running the job: ask again after this many seconds.
    Running(u32),
    Skipped(&'static str),
    /// Lost the claim but may not give up the job ([`LostClaim::Wait`]): retry after a lease.
    Waiting(&'static str),
    Failed(Failure),
}

/// One delivery, read: the job, or why its body is not one.
struct Received<'d, D> {
    delivery: &'d D,
    holder: String,
    attempts: u32,
    /// When the delivery was read (epoch ms).
    now: i64,
    body: String,
    message: Result<JobMessage, String>,
}

impl<'d, D> Received<'d, D> {
    fn read<P: Port<Delivery = D>>(port: &P, delivery: &'d D) -> Received<'d, D> {
        let body = port.body(delivery);
        Received {
            delivery,
            holder: port.message_id(delivery),
            attempts: port.attempts(delivery),
            now: port.now_ms(),
            message: JobMessage::parse(&body).map_err(|e| e.0),
            body,
        }
    }

    fn leases_a_row(&self) -> bool {
        self.message.as_ref().is_ok_and(|m| Subject::of(&m.job).is_some())
    }
}

/// What the runner knows of a delivered job besides its message.
struct Delivered<'m, D> {
    delivery: &'m D,
    message: &'m JobMessage,
    attempts: u32,
    queue_time_ms: i64,
    /// The lease holder: the message id is the same on every retry of this message, and
    /// differs for a duplicate delivery.
    holder: &'m str,
}

impl<'m, D> Delivered<'m, D> {
    fn of(received: &'m Received<'m, D>) -> Option<Delivered<'m, D>> {
        let message = received.message.as_ref().ok()?;
        Some(Delivered {
            delivery: received.delivery,
            message,
            attempts: received.attempts,
            queue_time_ms: received.now - message.enqueued_at_ms(),
            holder: &received.holder,
        })
    }

    /// A log line about this job: its ids, type, attempt and time in the queue.
    fn line<P: Port>(&self, port: &P, level: Level, text: &str) -> LogLine {
        let message = self.message;
        let mut line = port
            .line(&message.trace_id, level, text)
            .account(&message.account_id)
            .field("job_id", message.job_id.to_string())
            .field("job_type", message.job_type().as_str())
            .field("attempt", self.attempts)
            .field("queue_time_ms", self.queue_time_ms);
        if let Some(asset) = message.job.asset_id() {
            line = line.field("asset_id", asset.to_string());
        }
        if let Job::Purge { token_hash, .. } = &message.job {
            line = line.field("token_hash", token_hash.get(..12).unwrap_or_default());
        }
        line
    }
}

/// Runs one batch: the jobs that lease a row (transcodes, probes, exports) are claimed together
/// and their results recorded together ([`leased`]); the others (purges, deletions, reaps,
/// unreadable messages) go one by one. The two never run at once, so the batch stays within
/// `concurrency` open connections. Every message is acked or retried by the time it returns.
pub async fn run_batch<P: Port>(port: &P, deliveries: &[P::Delivery]) -> (Vec<Outcome>, Phases) {
    let received: Vec<Received<'_, P::Delivery>> = deliveries.iter().map(|d| Received::read(port, d)).collect();
    let (leasing, single): (Vec<&Received<'_, P::Delivery>>, Vec<_>) = received.iter().partition(|r| r.leases_a_row());
    let mut outcomes: Vec<Outcome> = futures_util::stream::iter(single)
        .map(|r| handle(port, r))
        .buffer_unordered(port.concurrency())
        .collect()
        .await;
    let mut phases = Phases::default();
    outcomes.extend(leased(port, &leasing, &mut phases).await);
    (outcomes, phases)
}

/// A job that does not lease a row, or a message that is no job.
async fn handle<P: Port>(port: &P, received: &Received<'_, P::Delivery>) -> Outcome {
    let Some(job) = Delivered::of(received) else {
        let problem = received.message.as_ref().err().map_or("", String::as_str);
        return (unreadable(port, received, problem).await, None);
    };
    let message = job.message;
    let purge_target = match &message.job {
        Job::Purge {
            token_hash,
            failed_attempts,
        } => Some((
            crate::share::TokenHash::from_hex(token_hash).map(PurgeTarget::Link),
            *failed_attempts,
        )),
        Job::PurgeAccount { failed_attempts } => {
            Some((Some(PurgeTarget::Account(message.account_id)), *failed_attempts))
        }
        _ => None,
    };
    if let Some((target, failed_attempts)) = purge_target {
        return (
            purge(port, &job, target, failed_attempts).await,
            Some(job.queue_time_ms),
        );
    }
    let step = match execute(port, message).await {
        Ok(step) => step,
        Err(e) => Step::Failed(database_failure(&e)),
    };
    conclude(port, &job, step, false).await
}

/// Acts on how a job's work went: ack, wait for a running job, or let the retry policy decide.
/// `won`: this delivery won its row's claim (only then may it mark the row `failed` itself).
async fn conclude<P: Port>(port: &P, job: &Delivered<'_, P::Delivery>, step: Step, won: bool) -> Outcome {
    let mut last_failure = None;
    let decision = match step {
        Step::Done => Decision::Ack,
        Step::Skipped(why) => {
            port.ack(job.delivery);
            port.emit(
                job.line(port, Level::Info, "job skipped").field("reason", why),
                Emit::Success,
            );
            return (Fate::Acked, Some(job.queue_time_ms));
        }
        Step::Waiting(why) => {
            port.retry(job.delivery, lifecycle::LEASE_SECONDS);
            let line = job
                .line(port, Level::Info, "job waiting")
                .field("reason", why)
                .field("delay_seconds", lifecycle::LEASE_SECONDS);
            port.emit(line, Emit::Always);
            return (Fate::Retried, Some(job.queue_time_ms));
        }
        Step::Running(after) if job.queue_time_ms < MAX_JOB_WAIT_MS => {
            return (wait_for_running(port, job, after).await, Some(job.queue_time_ms));
        }
        Step::Running(_) => {
            let failure = Failure::new(
                FailureKind::Timeout,
                Some(202),
                "still running after the longest wait for a job",
            );
            last_failure = Some(failure.clone());
            Decision::after(MediaOutcome::Failed(failure), job.attempts)
        }
        Step::Failed(failure) => {
            last_failure = Some(failure.clone());
            Decision::after(MediaOutcome::Failed(failure), job.attempts)
        }
    };
    let fate = settle(port, job, decision, last_failure.as_ref(), won).await;
    (fate, Some(job.queue_time_ms))
}

/// A poison pill: dead at once, kept verbatim for the operator, never a retry loop.
async fn unreadable<P: Port>(port: &P, received: &Received<'_, P::Delivery>, problem: &str) -> Fate {
    let failure = Failure::new(FailureKind::InvalidMessage, None, problem).with_attempts(received.attempts);
    let dead = DeadJob::of_unreadable(&received.body, failure, received.now);
    let line = port
        .line(&port.new_trace_id(), Level::Warn, "job unreadable")
        .field("message_id", received.holder.clone())
        .field("detail", problem);
    send_to_dlq(port, received.delivery, dead, line).await
}

/// Carries out the decision on a delivery: ack, retry (releasing the lease), or dead letter.
async fn settle<P: Port>(
    port: &P,
    job: &Delivered<'_, P::Delivery>,
    decision: Decision,
    last_failure: Option<&Failure>,
    won: bool,
) -> Fate {
    let message = job.message;
    match decision {
        Decision::Ack => {
            port.ack(job.delivery);
            port.emit(job.line(port, Level::Info, "job done"), Emit::Success);
            Fate::Acked
        }
        Decision::Retry { delay_seconds } => {
            let mut retry = job
                .line(port, Level::Warn, "job retry")
                .field("delay_seconds", delay_seconds);
            if let Some(subject) = Subject::of(&message.job) {
                if let Err(e) = port.release(message.account_id, subject, job.holder).await {
                    // The retry of this same message takes its own lease back.
                    retry = retry.field("release_error", e.detail);
                }
            }
            port.retry(job.delivery, delay_seconds);
            if let Some(failure) = last_failure {
                retry = retry
                    .field("failure_kind", serde_json::to_value(failure.kind).unwrap_or_default())
                    .field("failure_status", failure.status)
                    .field("failure_detail", failure.detail.clone());
            }
            port.emit(retry, Emit::Always);
            Fate::Retried
        }
        Decision::Dead(failure) => {
            // The dead record first, then the row: a failure between the two leaves the row
            // leased (this message's retry, or the sweep, brings the job back), never a `failed`
            // row without its record.
            let dead = DeadJob::of_job(message.clone(), failure.clone(), port.now_ms());
            let fate = send_to_dlq(port, job.delivery, dead, job.line(port, Level::Warn, "job dead")).await;
            if fate == Fate::Dead && won {
                if let Some(subject) = Subject::of(&message.job) {
                    // Best effort, and only a row still under this delivery's lease: the DLQ
                    // handler marks it too, once the record is stored. A row another delivery
                    // took over (this one outlived its lease), or one re-driven since, is left.
                    if let Ok(false) = port
                        .mark_failed(message.account_id, subject, &failure, job.holder)
                        .await
                    {
                        port.emit(lease_lost(port, job, "mark_failed"), Emit::Always);
                    }
                }
            }
            fate
        }
    }
}

/// The line of a write that found the row no longer under this delivery's lease (another
/// delivery took it over, or it was already concluded): the write changed nothing.
fn lease_lost<P: Port>(port: &P, job: &Delivered<'_, P::Delivery>, write: &str) -> LogLine {
    job.line(port, Level::Warn, "job lease lost").field("write", write)
}

/// The media worker answered `202`: the lease is handed back and the same job message goes on
/// the queue again, delayed, before this delivery is acked. The next delivery is another message
/// (the lease could not be its own), and asks the media worker again. If the publish fails this
/// delivery is retried instead; if only the release fails, the lease expires and the sweep
/// publishes the job again.
async fn wait_for_running<P: Port>(port: &P, job: &Delivered<'_, P::Delivery>, after: u32) -> Fate {
    let message = job.message;
    let line = job
        .line(port, Level::Info, "job running")
        .field("retry_after_seconds", after);
    if let Some(subject) = Subject::of(&message.job) {
        if let Err(e) = port.release(message.account_id, subject, job.holder).await {
            port.retry(job.delivery, after);
            port.emit(line.field("release_error", e.detail), Emit::Always);
            return Fate::Retried;
        }
    }
    match port.publish_after(message, after).await {
        Ok(()) => {
            port.ack(job.delivery);
            port.emit(line, Emit::Always);
            Fate::Acked
        }
        Err(e) => {
            port.retry(job.delivery, after);
            port.emit(line.field("publish_error", e), Emit::Always);
            Fate::Retried
        }
    }
}

/// A `purge` or `purge_account` job: one call of the zone purge API naming the link's or the
/// account's cache tag. Accepted: ack. Refused: the same job goes on the queue again with one
/// more failed attempt, delayed by the backoff, and this delivery is acked (the runtime's retries
/// would stop at `max_retries`; a purge stops only when the API accepts it, or when every copy it
/// would remove has expired). From the third failure on each failure is a `purge_failing` alert.
async fn purge<P: Port>(
    port: &P,
    job: &Delivered<'_, P::Delivery>,
    target: Option<PurgeTarget>,
    failed_before: u32,
) -> Fate {
    let (message, delivery) = (job.message, job.delivery);
    let now = port.now_ms();
    let Some(target) = target else {
        // The contract refuses such a message before this point; a dead record, never a panic.
        let failure = Failure::new(FailureKind::InvalidMessage, None, "token_hash is not a SHA-256");
        let dead = DeadJob::of_job(message.clone(), failure, now);
        return send_to_dlq(port, delivery, dead, job.line(port, Level::Warn, "job dead")).await;
    };
    let detail = match port.purge(target).await {
        Ok(()) => {
            port.ack(delivery);
            let done = job
                .line(port, Level::Info, "job done")
                .field("failed_attempts", failed_before);
            // A purge that went through after failing is worth a line every time.
            port.emit(done, if failed_before > 0 { Emit::Always } else { Emit::Success });
            return Fate::Acked;
        }
        Err(detail) => detail,
    };
    let failed = failed_before.saturating_add(1);
    match after_purge_failure(failed, message.enqueued_at_ms(), now, PURGE_HORIZON_MS) {
        PurgeDecision::Moot => {
            port.ack(delivery);
            let moot = job
                .line(port, Level::Warn, "purge moot")
                .field("failed_attempts", failed)
                .field("detail", detail)
                .field("reason", "every cached copy it would remove has expired");
            port.emit(moot, Emit::Always);
            Fate::Acked
        }
        PurgeDecision::Retry { delay_seconds, alert } => {
            let mut next = message.clone();
            next.job = purge_job(target, failed);
            let line = |level: Level, text: &str| job.line(port, level, text);
            let mut failure_line = purge_failure_line(&line, failed, &detail, delay_seconds, alert);
            match port.publish_after(&next, delay_seconds).await {
                Ok(()) => port.ack(delivery),
                Err(e) => {
                    // This delivery comes back instead (with the runtime's own retry limit).
                    port.retry(delivery, delay_seconds);
                    failure_line = failure_line.field("publish_error", e);
                }
            }
            port.emit(failure_line, Emit::Alert);
            Fate::Retried
        }
    }
}

fn database_failure(e: &ApiError) -> Failure {
    if e.code == ErrorCode::DatabaseUnavailable {
        Failure::new(FailureKind::Unavailable, None, &format!("database: {}", e.detail))
    } else {
        Failure::new(FailureKind::ServerError, None, &format!("consumer: {}", e.detail))
    }
}

async fn send_to_dlq<P: Port>(port: &P, delivery: &P::Delivery, dead: DeadJob, line: LogLine) -> Fate {
    let line = line
        .field(
            "failure_kind",
            serde_json::to_value(dead.failure.kind).unwrap_or_default(),
        )
        .field("classification", dead.class().as_str())
        .field("failure_detail", dead.failure.detail.clone());
    match port.dead_letter(delivery, &dead).await {
        Ok(()) => {
            port.ack(delivery);
            port.emit(line, Emit::Always);
            Fate::Dead
        }
        Err(e) => {
            // Could not reach the DLQ: keep the message (the runtime moves it after max_retries).
            port.retry(delivery, 5);
            port.emit(line.field("dlq_publish_error", e), Emit::Always);
            Fate::Retried
        }
    }
}

/// The work of a job that leases no row.
async fn execute<P: Port>(port: &P, message: &JobMessage) -> Result<Step, ApiError> {
    match &message.job {
        Job::DeleteAsset { asset_id }
        | Job::Reap {
            target: ReapTarget::OrphanAsset { asset_id },
        } => delete(port, message, Deletion::Asset, *asset_id).await,
        Job::Reap {
            target: ReapTarget::Export { export_id },
        } => delete(port, message, Deletion::Export, *export_id).await,
        // `handle` gives purge jobs their own path (they have no row and retry differently).
        Job::Purge { .. } | Job::PurgeAccount { .. } => Ok(Step::Skipped("purge jobs are handled apart")),
        // `run_batch` sends these to `leased`; never acked unworked if one strays here.
        Job::Transcode { .. } | Job::Probe { .. } | Job::Export { .. } => Err(ApiError::new(
            ErrorCode::Internal,
            "a job that leases a row reached the single-job path",
        )),
    }
}

/// Deletes the stored objects through the media worker, then marks the row deleted; a row already
/// deleted is skipped without calling the media worker again.
async fn delete<P: Port>(port: &P, message: &JobMessage, row: Deletion, id: Id) -> Result<Step, ApiError> {
    let account = message.account_id;
    match port.status_of(account, row, id).await? {
        None => {
            return Ok(Step::Failed(Failure::new(
                FailureKind::UnknownTarget,
                None,
                row.unknown(),
            )))
        }
        Some(status) if status == "deleted" => return Ok(Step::Skipped(row.already())),
        Some(_) => {}
    }
    let answer = port.run_job(message).await;
    if let Some(after) = answer.running {
        return Ok(Step::Running(after));
    }
    if let MediaOutcome::Failed(failure) = answer.outcome {
        return Ok(Step::Failed(failure));
    }
    port.mark_deleted(account, row, id).await?;
    Ok(Step::Done)
}

/// Where a leased job is between its claim and its conclusion.
enum Progress {
    /// The work ended here (lost claim, media failure, still running, database error).
    Ended(Step),
    /// The media worker finished: the result waits to be recorded with the batch's.
    Finished(Output),
}

/// The jobs of a batch that lease a row: every row is claimed in one round trip, the media worker
/// is asked for the jobs that won, the results are recorded in a second round trip, and only then
/// is each job concluded (acked, retried, dead-lettered) on its own. A job is acked only after its
/// result is committed; a failed claim or record fails the jobs it covered, which retry.
async fn leased<P: Port>(port: &P, received: &[&Received<'_, P::Delivery>], phases: &mut Phases) -> Vec<Outcome> {
    let jobs: Vec<Delivered<'_, P::Delivery>> = received.iter().filter_map(|r| Delivered::of(r)).collect();
    if jobs.is_empty() {
        return Vec::new();
    }
    let mut lap = port.now_ms();
    let mut took = || {
        let now = port.now_ms();
        Some(now - std::mem::replace(&mut lap, now))
    };
    let claims = claim_batch(port, &jobs).await;
    let won: Vec<bool> = claims.iter().map(|c| matches!(c, Ok(Claim::Won))).collect();
    phases.claim_ms = took();
    let progress: Vec<Progress> = futures_util::stream::iter(jobs.iter().zip(claims))
        .map(|(job, claim)| run_claimed(port, job.message, claim))
        .buffered(port.concurrency())
        .collect()
        .await;
    phases.media_ms = took();
    let steps = record_batch(port, &jobs, progress).await;
    phases.record_ms = took();
    let outcomes = futures_util::stream::iter(jobs.iter().zip(steps).zip(won))
        .map(|((job, step), won)| conclude(port, job, step, won))
        .buffer_unordered(port.concurrency())
        .collect()
        .await;
    phases.conclude_ms = took();
    outcomes
}

/// Claims every job's row in ONE round trip. The answer is in the order of `jobs`; when the
/// round trip fails, every job gets the database's error (its transaction, and any after it, did
/// not commit; one before it that did leaves its row leased to the job, whose retry takes it back).
async fn claim_batch<P: Port>(port: &P, jobs: &[Delivered<'_, P::Delivery>]) -> Vec<Result<Claim, ApiError>> {
    let bids: Vec<Bid<'_>> = jobs
        .iter()
        .enumerate()
        .filter_map(|(number, job)| {
            Some(Bid {
                number,
                account: job.message.account_id,
                subject: Subject::of(&job.message.job)?,
                holder: job.holder,
                redriven: job.message.redrive_count > 0,
            })
        })
        .collect();
    match port.claim(&bids).await {
        Ok(answers) => {
            let mut claims: Vec<Option<Claim>> = jobs.iter().map(|_| None).collect();
            for (number, claim) in answers {
                if let Some(slot) = claims.get_mut(number) {
                    *slot = Some(claim);
                }
            }
            claims
                .into_iter()
                .map(|claim| claim.ok_or_else(|| ApiError::new(ErrorCode::Internal, "no claim was made for the job")))
                .collect()
        }
        Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// After its claim, a job that won asks the media worker; its finished answer is validated
/// before anything of it may reach the row.
async fn run_claimed<P: Port>(port: &P, message: &JobMessage, claim: Result<Claim, ApiError>) -> Progress {
    match claim {
        Err(e) => return Progress::Ended(Step::Failed(database_failure(&e))),
        Ok(Claim::Lost(LostClaim::Skip(why))) => return Progress::Ended(Step::Skipped(why)),
        Ok(Claim::Lost(LostClaim::Wait(why))) => return Progress::Ended(Step::Waiting(why)),
        Ok(Claim::Lost(LostClaim::Fail(failure))) => return Progress::Ended(Step::Failed(failure)),
        Ok(Claim::Won) => {}
    }
    let answer = port.run_job(message).await;
    if let Some(after) = answer.running {
        return Progress::Ended(Step::Running(after));
    }
    if let MediaOutcome::Failed(failure) = answer.outcome {
        return Progress::Ended(Step::Failed(failure));
    }
    match &message.job {
        Job::Export { .. } => Progress::Finished(Output::Export(
            answer
                .body
                .get("object_key")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )),
        // Untrusted output never reaches the row (a bad one would break every page showing it).
        _ => match lifecycle::media_output_of(&answer.body, &message.account_id) {
            Ok(output) => Progress::Finished(Output::Asset(output)),
            Err(failure) => Progress::Ended(Step::Failed(failure)),
        },
    }
}

/// Records the finished jobs' results in ONE round trip, each fenced by its lease. Every job's
/// step, in the order of `jobs`; when the round trip fails every finished job fails with it and
/// is retried (a transaction that did commit before the failure leaves its rows `ready`, and the
/// retry finds them so and acks).
async fn record_batch<P: Port>(port: &P, jobs: &[Delivered<'_, P::Delivery>], progress: Vec<Progress>) -> Vec<Step> {
    let finished: Vec<Finished<'_>> = jobs
        .iter()
        .zip(&progress)
        .filter_map(|(job, p)| match p {
            Progress::Finished(output) => Some(Finished {
                account: job.message.account_id,
                subject: Subject::of(&job.message.job)?,
                holder: job.holder,
                output,
            }),
            Progress::Ended(_) => None,
        })
        .collect();
    let recorded = if finished.is_empty() {
        Ok(Vec::new())
    } else {
        port.record(&finished).await
    };
    drop(finished);
    jobs.iter()
        .zip(progress)
        .map(|(job, p)| match p {
            Progress::Ended(step) => step,
            Progress::Finished(_) => match &recorded {
                Err(e) => Step::Failed(database_failure(e)),
                Ok(written) if Subject::of(&job.message.job).is_some_and(|s| written.contains(&s.id())) => Step::Done,
                // Another delivery holds the row now (this one outlived its lease): it finishes
                // the job; this result was not written.
                Ok(_) => {
                    port.emit(lease_lost(port, job, "finish"), Emit::Always);
                    Step::Skipped("the lease was lost before the result was recorded")
                }
            },
        })
        .collect()
}

#[cfg(test)]
mod batch_line_tests {
    use super::*;

    /// Issue 31: a healthy batch's line is sampled; one with a retry, a death or a slow message is
    /// always written.
    #[test]
    fn a_batch_line_is_always_written_only_for_a_batch_that_went_wrong_or_waited() {
        let ok = (Fate::Acked, Some(1_000));
        assert!(!batch_line_always(&[ok, ok, (Fate::Acked, None)]));
        assert!(!batch_line_always(&[]));
        assert!(batch_line_always(&[ok, (Fate::Retried, Some(10))]));
        assert!(batch_line_always(&[(Fate::Dead, None)]));
        assert!(batch_line_always(&[ok, (Fate::Acked, Some(SLOW_BATCH_MS))]));
        assert!(!batch_line_always(&[(Fate::Acked, Some(SLOW_BATCH_MS - 1))]));
    }
}
