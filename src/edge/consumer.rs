//! The `jobs` consumer. Delivery is at-least-once, so every job is idempotent; each message is
//! acked, retried (exponential backoff from its `attempts`) or dead-lettered on its own, and the
//! handler never fails as a whole (that would retry the entire batch).
//!
//! Attempt counts come from the runtime's `Message.attempts`, read from the raw message: the
//! `worker` crate does not expose it yet, which is why this module takes `worker_sys` messages.

use futures_util::StreamExt;
use tokio_postgres::types::Type;
use wasm_bindgen::{JsCast, JsValue};

use babybook_jobs::lifecycle::{self, LostClaim};
use babybook_jobs::purge::{after_purge_failure, PurgeDecision};

use crate::share::purge::PurgeTarget;
use babybook_jobs::{DeadJob, Decision, Failure, FailureKind, Id, Job, JobMessage, MediaOutcome, ReapTarget};

use crate::config::Config;
use crate::error::ApiError;
use crate::telemetry::{Level, LogLine};

use super::context::{self, Io, Settings};
use super::db::{self, Budget, Scope};
use super::faults::{self, Fault};
use super::{job_rows, jobs, media_client, share_cache};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Acked,
    Retried,
    Dead,
}

/// How the work went, before the retry policy decides.
enum Step {
    Done,
    /// The media worker is still running the job: ask again after this many seconds.
    Running(u32),
    Skipped(&'static str),
    Failed(Failure),
}

/// A message as the runtime hands it over.
pub struct Delivery {
    pub raw: worker::worker_sys::Message,
}

impl Delivery {
    pub fn attempts(&self) -> u32 {
        js_sys::Reflect::get(&self.raw, &JsValue::from_str("attempts"))
            .ok()
            .and_then(|v| v.as_f64())
            .map_or(1, |n| n.max(1.0) as u32)
    }

    pub fn id(&self) -> String {
        self.raw.id().map(String::from).unwrap_or_default()
    }

    /// The body as JSON text (a text message is its own text).
    pub fn body_text(&self) -> String {
        match self.raw.body() {
            Ok(value) => match value.as_string() {
                Some(text) => text,
                None => js_sys::JSON::stringify(&value)
                    .ok()
                    .and_then(|s| s.as_string())
                    .unwrap_or_default(),
            },
            Err(_) => String::new(),
        }
    }

    pub fn body_value(&self) -> serde_json::Value {
        let text = self.body_text();
        match self.raw.body().ok().and_then(|v| v.as_string()) {
            Some(_) => serde_json::Value::String(text),
            None => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        }
    }

    pub fn ack(&self) {
        let _ = self.raw.ack();
    }

    pub fn retry(&self, delay_seconds: u32) {
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(
            &options,
            &JsValue::from_str("delaySeconds"),
            &JsValue::from(delay_seconds),
        );
        let _ = self.raw.retry(options.into());
    }
}

pub fn deliveries(batch: &worker::worker_sys::MessageBatch) -> Vec<Delivery> {
    batch
        .messages()
        .map(|array| {
            array
                .iter()
                .map(|m| Delivery {
                    raw: m.unchecked_into(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Consumes one batch of `jobs`.
pub async fn consume(batch: worker::worker_sys::MessageBatch, io: Io, settings: std::rc::Rc<Settings>) {
    let started = context::now_ms();
    let queue = batch.queue().map(String::from).unwrap_or_default();
    let backlog = batch_metric(&batch, "backlogCount");
    let config = &settings.config;
    wait_while_paused(config).await;
    let messages = deliveries(&batch);
    let size = messages.len();
    let (fates, phases) = handle_batch(&messages, &io, config).await;
    let count = |fate| fates.iter().filter(|(f, _)| *f == fate).count();
    let oldest = fates.iter().filter_map(|(_, age)| *age).max();
    let trace = context::new_trace_id();
    let mut line = context::line(config, &trace, Level::Info, "queue batch")
        .field("queue", queue.clone())
        .field("batch_size", size)
        .field("acked", count(Fate::Acked))
        .field("retried", count(Fate::Retried))
        .field("dead", count(Fate::Dead))
        .field("duration_ms", context::now_ms() - started);
    for (name, ms) in phases.fields() {
        line = line.field(name, ms);
    }
    if let Some(age) = oldest {
        line = line.field("oldest_message_age_ms", age);
    }
    if let Some(backlog) = backlog {
        line = line.field("backlog", backlog);
    }
    context::emit(&line);
    record_metrics(
        &io,
        &settings.config.deployed,
        &queue,
        size,
        count(Fate::Acked),
        count(Fate::Retried),
        count(Fate::Dead),
        oldest.unwrap_or(0),
        backlog.unwrap_or(0.0),
    );
}

/// Chaos drill (seed §7.4, scenario 1), local test runs only: the `consumer_paused` fault holds
/// the batch, as a stopped consumer would, so the backlog and its age grow behind it.
async fn wait_while_paused(config: &Config) {
    if !faults::is_on(config, Fault::ConsumerPaused) {
        return;
    }
    context::emit(&context::line(
        config,
        &context::new_trace_id(),
        Level::Warn,
        "consumer paused",
    ));
    let mut waited_ms = 0;
    while faults::is_on(config, Fault::ConsumerPaused) && waited_ms < 120_000 {
        worker::Delay::from(std::time::Duration::from_millis(250)).await;
        waited_ms += 250;
    }
}

/// The runtime's batch metadata (`metadata.metrics.backlogCount`, …) when it provides it.
fn batch_metric(batch: &worker::worker_sys::MessageBatch, name: &str) -> Option<f64> {
    let metadata = js_sys::Reflect::get(batch, &JsValue::from_str("metadata")).ok()?;
    let metrics = js_sys::Reflect::get(&metadata, &JsValue::from_str("metrics")).ok()?;
    js_sys::Reflect::get(&metrics, &JsValue::from_str(name)).ok()?.as_f64()
}

/// Queue health signals (seed §5.2) to Workers Analytics Engine; the same numbers are in the
/// `queue batch` log line, which is what local runs and tests read.
#[allow(clippy::too_many_arguments)]
fn record_metrics(
    io: &Io,
    deployed: &crate::telemetry::DeployedVersion,
    queue: &str,
    size: usize,
    acked: usize,
    retried: usize,
    dead: usize,
    oldest_ms: i64,
    backlog: f64,
) {
    if let Ok(dataset) = io.analytics_engine(crate::config::binding::QUEUE_METRICS) {
        let _ = worker::AnalyticsEngineDataPointBuilder::new()
            .indexes([queue])
            .add_blob(queue)
            .add_blob(deployed.id.as_str())
            .add_blob(deployed.tag.as_str())
            .doubles([
                size as f64,
                acked as f64,
                retried as f64,
                dead as f64,
                oldest_ms as f64,
                backlog,
            ])
            .write_to(&dataset);
    }
}

/// One delivery, read: the job, or why its body is not one.
struct Received<'d> {
    delivery: &'d Delivery,
    attempts: u32,
    /// When the delivery was read (epoch ms).
    now: i64,
    body: String,
    message: Result<JobMessage, String>,
}

impl<'d> Received<'d> {
    fn read(delivery: &'d Delivery) -> Received<'d> {
        let body = delivery.body_text();
        Received {
            delivery,
            attempts: delivery.attempts(),
            now: context::now_ms(),
            message: JobMessage::parse(&body).map_err(|e| e.0),
            body,
        }
    }

    /// The row this job leases, if it is a job that leases one.
    fn subject(&self) -> Option<job_rows::Subject> {
        self.message.as_ref().ok().and_then(|m| job_rows::Subject::of(&m.job))
    }
}

/// A batch, with its database work done per batch: the jobs that lease a row (transcodes,
/// probes, exports) are claimed together and their results recorded together ([`leased`]); the
/// others (purges, deletions, reaps, unreadable messages) go one by one. The two never run at
/// once, so the batch stays within `consumer_concurrency` open connections.
async fn handle_batch(messages: &[Delivery], io: &Io, config: &Config) -> (Vec<(Fate, Option<i64>)>, Phases) {
    let (leasing, single): (Vec<Received>, Vec<Received>) =
        messages.iter().map(Received::read).partition(|r| r.subject().is_some());
    let mut fates: Vec<(Fate, Option<i64>)> = futures_util::stream::iter(single)
        .map(|received| handle(received, io, config))
        .buffer_unordered(config.consumer_concurrency)
        .collect()
        .await;
    let mut phases = Phases::default();
    fates.extend(leased(leasing, io, config, &mut phases).await);
    (fates, phases)
}

/// How long the leased jobs of a batch spent in each phase (wall clock, ms), for the batch line.
#[derive(Default)]
struct Phases {
    claim_ms: Option<i64>,
    media_ms: Option<i64>,
    record_ms: Option<i64>,
    conclude_ms: Option<i64>,
}

impl Phases {
    fn fields(&self) -> impl Iterator<Item = (&'static str, i64)> {
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

/// A job that does not lease a row, or a message that is no job.
async fn handle(received: Received<'_>, io: &Io, config: &Config) -> (Fate, Option<i64>) {
    let delivery = received.delivery;
    let message = match received.message {
        Ok(message) => message,
        Err(problem) => {
            let fate = unreadable(delivery, io, config, &received.body, &problem, received.now).await;
            return (fate, None);
        }
    };
    let job = Delivered::of(&message, received.attempts, received.now, delivery.id());
    let purge_job = match &message.job {
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
    if let Some((target, failed_attempts)) = purge_job {
        let line = |level: Level, text: &str| job.line(config, level, text);
        let fate = purge(delivery, io, config, &message, target, failed_attempts, &line).await;
        return (fate, Some(job.queue_time_ms));
    }
    let step = match execute(io, config, &message).await {
        Ok(step) => step,
        Err(e) => Step::Failed(database_failure(&e)),
    };
    conclude(delivery, io, config, &job, step).await
}

/// What the consumer knows of a delivered job besides its message.
struct Delivered<'m> {
    message: &'m JobMessage,
    attempts: u32,
    queue_time_ms: i64,
    /// The lease holder: the message id is the same on every retry of this message, and
    /// differs for a duplicate delivery.
    holder: String,
}

impl<'m> Delivered<'m> {
    fn of(message: &'m JobMessage, attempts: u32, now: i64, holder: String) -> Delivered<'m> {
        Delivered {
            message,
            attempts,
            queue_time_ms: now - message.enqueued_at_ms(),
            holder,
        }
    }

    fn line(&self, config: &Config, level: Level, text: &str) -> LogLine {
        job_line(config, self.message, self.attempts, self.queue_time_ms, level, text)
    }
}

/// Acts on how a job's work went: ack, wait for a running job, or let the retry policy decide.
async fn conclude(
    delivery: &Delivery,
    io: &Io,
    config: &Config,
    job: &Delivered<'_>,
    step: Step,
) -> (Fate, Option<i64>) {
    let (message, holder) = (job.message, job.holder.as_str());
    let line = |level: Level, text: &str| job.line(config, level, text);
    let mut last_failure = None;
    let decision = match step {
        Step::Done => Decision::Ack,
        Step::Skipped(why) => {
            context::emit_success(config, &line(Level::Info, "job skipped").field("reason", why));
            delivery.ack();
            return (Fate::Acked, Some(job.queue_time_ms));
        }
        Step::Running(after) if job.queue_time_ms < MAX_JOB_WAIT_MS => {
            let running = line(Level::Info, "job running");
            let fate = wait_for_running(delivery, io, config, message, holder, after, running).await;
            return (fate, Some(job.queue_time_ms));
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
    let fate = settle(
        delivery,
        io,
        config,
        message,
        holder,
        decision,
        last_failure.as_ref(),
        &line,
    )
    .await;
    (fate, Some(job.queue_time_ms))
}

/// A log line about one job: its ids, type, attempt and time in the queue.
fn job_line(
    config: &Config,
    message: &JobMessage,
    attempts: u32,
    queue_time_ms: i64,
    level: Level,
    text: &str,
) -> LogLine {
    let mut line = context::line(config, &message.trace_id, level, text)
        .account(&message.account_id)
        .field("job_id", message.job_id.to_string())
        .field("job_type", message.job_type().as_str())
        .field("attempt", attempts)
        .field("queue_time_ms", queue_time_ms);
    if let Some(asset) = message.job.asset_id() {
        line = line.field("asset_id", asset.to_string());
    }
    if let Job::Purge { token_hash, .. } = &message.job {
        line = line.field("token_hash", token_hash.get(..12).unwrap_or_default());
    }
    line
}

/// A poison pill: dead at once, kept verbatim for the operator, never a retry loop.
async fn unreadable(delivery: &Delivery, io: &Io, config: &Config, body: &str, problem: &str, now: i64) -> Fate {
    let failure = Failure::new(FailureKind::InvalidMessage, None, problem).with_attempts(delivery.attempts());
    let dead = DeadJob::of_unreadable(body, failure, now);
    let trace = context::new_trace_id();
    let line = context::line(config, &trace, Level::Warn, "job unreadable")
        .field("message_id", delivery.id())
        .field("detail", problem);
    send_to_dlq(delivery, io, config, dead, line).await
}

/// Carries out the decision on a delivery: ack, retry (releasing the lease), or dead letter.
#[allow(clippy::too_many_arguments)]
async fn settle(
    delivery: &Delivery,
    io: &Io,
    config: &Config,
    message: &JobMessage,
    holder: &str,
    decision: Decision,
    last_failure: Option<&Failure>,
    line: &dyn Fn(Level, &str) -> LogLine,
) -> Fate {
    match decision {
        Decision::Ack => {
            delivery.ack();
            context::emit_success(config, &line(Level::Info, "job done"));
            Fate::Acked
        }
        Decision::Retry { delay_seconds } => {
            let mut retry = line(Level::Warn, "job retry").field("delay_seconds", delay_seconds);
            if let Some(subject) = job_rows::Subject::of(&message.job) {
                let released = if faults::is_on(config, Fault::JobDbAfterClaim) {
                    Err(fault_error())
                } else {
                    job_rows::release(io, message.account_id, subject, holder).await
                };
                if let Err(e) = released {
                    // The retry of this same message takes its own lease back.
                    retry = retry.field("release_error", e.detail);
                }
            }
            delivery.retry(delay_seconds);
            if let Some(failure) = last_failure {
                retry = retry
                    .field("failure_kind", serde_json::to_value(failure.kind).unwrap_or_default())
                    .field("failure_status", failure.status)
                    .field("failure_detail", failure.detail.clone());
            }
            context::emit(&retry);
            Fate::Retried
        }
        Decision::Dead(failure) => {
            // The dead record first, then the row: a failure between the two leaves the row
            // leased (this message's retry, or the sweep, brings the job back), never a `failed`
            // row without its record.
            let dead = DeadJob::of_job(message.clone(), failure.clone(), context::now_ms());
            let fate = send_to_dlq(delivery, io, config, dead, line(Level::Warn, "job dead")).await;
            if fate == Fate::Dead {
                if let Some(subject) = job_rows::Subject::of(&message.job) {
                    // Best effort: the DLQ handler marks it too, once the record is stored. A
                    // row another delivery took over (this one outlived its lease) is left to it.
                    let by = job_rows::MarkedBy::Delivery(holder);
                    if let Ok(false) = job_rows::mark_failed(io, message.account_id, subject, &failure, by).await {
                        context::emit(&lease_lost(line, "mark_failed"));
                    }
                }
            }
            fate
        }
    }
}

/// The line of a write that found the row no longer under this delivery's lease (another
/// delivery took it over, or it was already concluded): the write changed nothing.
fn lease_lost(line: &dyn Fn(Level, &str) -> LogLine, write: &str) -> LogLine {
    line(Level::Warn, "job lease lost").field("write", write)
}

fn fault_error() -> ApiError {
    ApiError::new(
        crate::error::ErrorCode::DatabaseUnavailable,
        "job_db_after_claim fault switched on (test control)",
    )
}

/// How long after it was first enqueued a job may still be running on the media worker before
/// the edge counts it as timed out (the media worker's own budget is 300 s per job).
const MAX_JOB_WAIT_MS: i64 = 3_600_000;

/// The media worker answered `202`: the lease is handed back and the same job message goes on
/// the queue again, delayed, before this delivery is acked. The next delivery is another message
/// (the lease could not be its own), and asks the media worker again. If the publish fails this
/// delivery is retried instead; if only the release fails, the lease expires and the sweep
/// publishes the job again.
async fn wait_for_running(
    delivery: &Delivery,
    io: &Io,
    config: &Config,
    message: &JobMessage,
    holder: &str,
    after: u32,
    line: LogLine,
) -> Fate {
    let line = line.field("retry_after_seconds", after);
    if let Some(subject) = job_rows::Subject::of(&message.job) {
        if let Err(e) = job_rows::release(io, message.account_id, subject, holder).await {
            delivery.retry(after);
            context::emit(&line.field("release_error", e.detail));
            return Fate::Retried;
        }
    }
    match jobs::publish_after(io, config, message, after).await {
        Ok(()) => {
            delivery.ack();
            context::emit(&line);
            Fate::Acked
        }
        Err(e) => {
            delivery.retry(after);
            context::emit(&line.field("publish_error", e));
            Fate::Retried
        }
    }
}

/// A `purge` or `purge_account` job: one call of the zone purge API naming the link's or the
/// account's cache tag. Accepted: ack. Refused: the same job goes on
/// the queue again with one more failed attempt, delayed by the backoff, and this delivery is
/// acked (the runtime's retries would stop at `max_retries`; a purge stops only when the API
/// accepts it, or when every copy it would remove has expired). From the third failure on each
/// failure is a `purge_failing` alert.
async fn purge(
    delivery: &Delivery,
    io: &Io,
    config: &Config,
    message: &JobMessage,
    target: Option<PurgeTarget>,
    failed_before: u32,
    line: &dyn Fn(Level, &str) -> LogLine,
) -> Fate {
    let now = context::now_ms();
    let Some(target) = target else {
        // The contract refuses such a message before this point; a dead record, never a panic.
        let failure = Failure::new(FailureKind::InvalidMessage, None, "token_hash is not a SHA-256");
        let dead = DeadJob::of_job(message.clone(), failure, now);
        return send_to_dlq(delivery, io, config, dead, line(Level::Warn, "job dead")).await;
    };
    let detail = match share_cache::purge_globally(config, &[target]).await {
        Ok(()) => {
            delivery.ack();
            let done = line(Level::Info, "job done").field("failed_attempts", failed_before);
            // A purge that went through after failing is worth a line every time.
            if failed_before > 0 {
                context::emit(&done);
            } else {
                context::emit_success(config, &done);
            }
            return Fate::Acked;
        }
        Err(detail) => detail,
    };
    let failed = failed_before.saturating_add(1);
    match after_purge_failure(failed, message.enqueued_at_ms(), now, share_cache::PURGE_HORIZON_MS) {
        PurgeDecision::Moot => {
            delivery.ack();
            context::emit(
                &line(Level::Warn, "purge moot")
                    .field("failed_attempts", failed)
                    .field("detail", detail)
                    .field("reason", "every cached copy it would remove has expired"),
            );
            Fate::Acked
        }
        PurgeDecision::Retry { delay_seconds, alert } => {
            let mut next = message.clone();
            next.job = share_cache::purge_job(target, failed);
            let mut failure_line = share_cache::purge_failure_line(line, failed, &detail, delay_seconds, alert);
            match jobs::publish_after(io, config, &next, delay_seconds).await {
                Ok(()) => delivery.ack(),
                Err(e) => {
                    // This delivery comes back instead (with the runtime's own retry limit).
                    delivery.retry(delay_seconds);
                    failure_line = failure_line.field("publish_error", e);
                }
            }
            super::alerts::raise(io, config, failure_line);
            Fate::Retried
        }
    }
}

fn database_failure(e: &ApiError) -> Failure {
    if e.code == crate::error::ErrorCode::DatabaseUnavailable {
        Failure::new(FailureKind::Unavailable, None, &format!("database: {}", e.detail))
    } else {
        Failure::new(FailureKind::ServerError, None, &format!("consumer: {}", e.detail))
    }
}

async fn send_to_dlq(delivery: &Delivery, io: &Io, config: &Config, dead: DeadJob, line: LogLine) -> Fate {
    let line = line
        .field(
            "failure_kind",
            serde_json::to_value(dead.failure.kind).unwrap_or_default(),
        )
        .field("classification", dead.class().as_str())
        .field("failure_detail", dead.failure.detail.clone());
    match jobs::dead_letter(io, config, &dead).await {
        Ok(()) => {
            delivery.ack();
            context::emit(&line);
            Fate::Dead
        }
        Err(e) => {
            // Could not reach the DLQ: keep the message (the runtime moves it after max_retries).
            delivery.retry(5);
            context::emit(&line.field("dlq_publish_error", e));
            Fate::Retried
        }
    }
}

/// The work of a job that leases no row.
async fn execute(io: &Io, config: &Config, message: &JobMessage) -> Result<Step, ApiError> {
    match &message.job {
        Job::DeleteAsset { asset_id }
        | Job::Reap {
            target: ReapTarget::OrphanAsset { asset_id },
        } => delete(io, config, message, &ASSET_DELETION, *asset_id).await,
        Job::Reap {
            target: ReapTarget::Export { export_id },
        } => delete(io, config, message, &EXPORT_DELETION, *export_id).await,
        // `handle` gives purge jobs their own path (they have no row and retry differently).
        Job::Purge { .. } | Job::PurgeAccount { .. } => Ok(Step::Skipped("purge jobs are handled apart")),
        // `handle_batch` sends these to `leased`; never acked unworked if one strays here.
        Job::Transcode { .. } | Job::Probe { .. } | Job::Export { .. } => Err(ApiError::new(
            crate::error::ErrorCode::Internal,
            "a job that leases a row reached the single-job path",
        )),
    }
}

fn scope(message: &JobMessage) -> Scope<'static> {
    Scope::Account(message.account_id)
}

/// What a delete job removes: the row's table, its words for the outcome, and the update that
/// marks it deleted (`$1` is the id).
struct Deletion {
    table: &'static str,
    unknown: &'static str,
    already: &'static str,
    mark_deleted: &'static str,
}

const ASSET_DELETION: Deletion = Deletion {
    table: "asset",
    unknown: "no such asset in the account",
    already: "asset already deleted",
    mark_deleted: "UPDATE asset SET status = 'deleted', deleted_at = now(), moment_id = NULL, derivatives = '[]'::jsonb, updated_at = now()
                   WHERE id = $1::uuid RETURNING 1",
};

const EXPORT_DELETION: Deletion = Deletion {
    table: "account_export",
    unknown: "no such export in the account",
    already: "export already deleted",
    mark_deleted: "UPDATE account_export SET status = 'deleted', deleted_at = now() WHERE id = $1::uuid RETURNING 1",
};

/// Deletes the stored objects through the media worker, then marks the row deleted; a row already
/// deleted is skipped without calling the media worker again.
async fn delete(io: &Io, config: &Config, message: &JobMessage, what: &Deletion, id: Id) -> Result<Step, ApiError> {
    let id = id.to_string();
    match db::transaction(io, scope(message), Budget::Hot, async |tx| {
        job_rows::status_of(tx, what.table, &id).await
    })
    .await?
    {
        None => {
            return Ok(Step::Failed(Failure::new(
                FailureKind::UnknownTarget,
                None,
                what.unknown,
            )))
        }
        Some(status) if status == "deleted" => return Ok(Step::Skipped(what.already)),
        Some(_) => {}
    }
    let answer = media_client::run_job(config, message).await;
    if let Some(after) = answer.running {
        return Ok(Step::Running(after));
    }
    if let MediaOutcome::Failed(failure) = answer.outcome {
        return Ok(Step::Failed(failure));
    }
    db::transaction(io, scope(message), Budget::Standard, async |tx| {
        tx.exec(what.mark_deleted, &[(&id, Type::TEXT)]).await
    })
    .await?;
    Ok(Step::Done)
}

/// What the media worker's finished answer leaves to record on the row.
enum Output {
    Asset(lifecycle::MediaOutput),
    Export(String),
}

/// Where a leased job is between its claim and its conclusion.
enum Progress {
    /// The work ended here (lost claim, media failure, still running, database error).
    Ended(Step),
    /// The media worker finished: the result waits to be recorded with the batch's.
    Finished(Output),
}

/// The jobs of a batch that lease a row: every row is claimed in one round trip (a transaction
/// per account, all in one message), the media worker is asked for the jobs that won, the results
/// are recorded in a second round trip, and only then is each job concluded (acked, retried,
/// dead-lettered) on its own. A job is acked only after its
/// result is committed; a failed claim or record fails the jobs it covered, which retry.
async fn leased(
    received: Vec<Received<'_>>,
    io: &Io,
    config: &Config,
    phases: &mut Phases,
) -> Vec<(Fate, Option<i64>)> {
    let jobs: Vec<(&Delivery, Delivered<'_>)> = received
        .iter()
        .filter_map(|r| {
            let message = r.message.as_ref().ok()?;
            Some((r.delivery, Delivered::of(message, r.attempts, r.now, r.delivery.id())))
        })
        .collect();
    if jobs.is_empty() {
        return Vec::new();
    }
    let mut lap = context::now_ms();
    let mut took = || {
        let now = context::now_ms();
        Some(now - std::mem::replace(&mut lap, now))
    };
    let claims = claim_batch(io, &jobs).await;
    phases.claim_ms = took();
    let progress: Vec<Progress> = futures_util::stream::iter(jobs.iter().zip(claims))
        .map(|((_, job), claim)| run_claimed(config, job.message, claim))
        .buffered(config.consumer_concurrency)
        .collect()
        .await;
    phases.media_ms = took();
    let steps = record_batch(io, config, &jobs, progress).await;
    phases.record_ms = took();
    let fates = futures_util::stream::iter(jobs.iter().zip(steps))
        .map(|((delivery, job), step)| conclude(delivery, io, config, job, step))
        .buffer_unordered(config.consumer_concurrency)
        .collect()
        .await;
    phases.conclude_ms = took();
    fates
}

/// The accounts of `jobs`, each once, in order of first appearance.
fn accounts_of(jobs: &[(&Delivery, Delivered<'_>)]) -> Vec<Id> {
    let mut accounts: Vec<Id> = Vec::new();
    for (_, job) in jobs {
        if !accounts.contains(&job.message.account_id) {
            accounts.push(job.message.account_id);
        }
    }
    accounts
}

/// Claims every job's row in ONE message: a transaction per account, a statement per table
/// (`job_rows::claim_statements`). The answer is in the order of `jobs`; when the message fails,
/// every job gets the database's error (its transaction, and any after it, did not commit).
async fn claim_batch(io: &Io, jobs: &[(&Delivery, Delivered<'_>)]) -> Vec<Result<job_rows::Claim, ApiError>> {
    let transactions: Vec<String> = accounts_of(jobs)
        .into_iter()
        .map(|account| {
            let bids: Vec<job_rows::Bid> = jobs
                .iter()
                .enumerate()
                .filter(|(_, (_, job))| job.message.account_id == account)
                .filter_map(|(number, (_, job))| {
                    Some(job_rows::Bid {
                        number,
                        subject: job_rows::Subject::of(&job.message.job)?,
                        holder: &job.holder,
                        redriven: job.message.redrive_count > 0,
                    })
                })
                .collect();
            let statements = job_rows::claim_statements(&bids);
            crate::sql_text::transaction(Budget::Standard.statement_ms(), Some(account), &statements)
        })
        .collect();
    let answered = db::one_message(io, Budget::Standard, &transactions.join("; "))
        .await
        .and_then(|rows| job_rows::claims_from(&rows));
    let mut claims: Vec<Option<job_rows::Claim>> = jobs.iter().map(|_| None).collect();
    match answered {
        Ok(answers) => {
            for (number, claim) in answers {
                if let Some(slot) = claims.get_mut(number) {
                    *slot = Some(claim);
                }
            }
            claims
                .into_iter()
                .map(|claim| {
                    claim.ok_or_else(|| {
                        ApiError::new(crate::error::ErrorCode::Internal, "no claim was made for the job")
                    })
                })
                .collect()
        }
        Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// After its claim, a job that won asks the media worker; its finished answer is validated
/// before anything of it may reach the row.
async fn run_claimed(config: &Config, message: &JobMessage, claim: Result<job_rows::Claim, ApiError>) -> Progress {
    match claim {
        Err(e) => return Progress::Ended(Step::Failed(database_failure(&e))),
        Ok(job_rows::Claim::Lost(LostClaim::Skip(why))) => return Progress::Ended(Step::Skipped(why)),
        Ok(job_rows::Claim::Lost(LostClaim::Fail(failure))) => return Progress::Ended(Step::Failed(failure)),
        Ok(job_rows::Claim::Won) => {}
    }
    let answer = media_client::run_job(config, message).await;
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
        _ => match lifecycle::media_output(&answer.body) {
            Ok(output) => Progress::Finished(Output::Asset(output)),
            Err(failure) => Progress::Ended(Step::Failed(failure)),
        },
    }
}

/// Records the finished jobs' results in ONE message: a transaction per account, a statement per
/// table (`job_rows::finish_statements`). Every job's step, in the order of `jobs`; when the
/// message fails every finished job fails with it and is retried (a transaction that did commit
/// before the failure leaves its rows `ready`, and the retry finds them so and acks).
async fn record_batch(
    io: &Io,
    config: &Config,
    jobs: &[(&Delivery, Delivered<'_>)],
    progress: Vec<Progress>,
) -> Vec<Step> {
    let mut transactions = Vec::new();
    for account in accounts_of(jobs) {
        let mut assets = Vec::new();
        let mut exports = Vec::new();
        for ((_, job), p) in jobs.iter().zip(&progress) {
            let Progress::Finished(output) = p else { continue };
            if job.message.account_id != account {
                continue;
            }
            let holder = job.holder.as_str();
            match (output, &job.message.job) {
                (Output::Export(key), Job::Export { export_id }) => exports.push((*export_id, holder, key.as_str())),
                (Output::Asset(output), job) => assets.extend(job.asset_id().map(|id| (id, holder, output))),
                (Output::Export(_), _) => {}
            }
        }
        let statements = job_rows::finish_statements(&assets, &exports);
        if !statements.is_empty() {
            transactions.push(crate::sql_text::transaction(
                Budget::Standard.statement_ms(),
                Some(account),
                &statements,
            ));
        }
    }
    let recorded: Result<Vec<String>, ApiError> = if transactions.is_empty() {
        Ok(Vec::new())
    } else if faults::is_on(config, Fault::JobDbAfterClaim) {
        Err(fault_error())
    } else {
        db::one_message(io, Budget::Standard, &transactions.join("; "))
            .await
            .map(|rows| job_rows::finished_from(&rows))
    };
    jobs.iter()
        .zip(progress)
        .map(|((_, job), p)| match p {
            Progress::Ended(step) => step,
            Progress::Finished(_) => match &recorded {
                Err(e) => Step::Failed(database_failure(e)),
                Ok(finished) if job_rows::Subject::of(&job.message.job).is_some_and(|s| finished.contains(&s.id())) => {
                    Step::Done
                }
                // Another delivery holds the row now (this one outlived its lease): it finishes
                // the job; this result was not written.
                Ok(_) => {
                    context::emit(&lease_lost(&|level, text| job.line(config, level, text), "finish"));
                    Step::Skipped("the lease was lost before the result was recorded")
                }
            },
        })
        .collect()
}
