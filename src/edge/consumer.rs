//! The `jobs` consumer. Delivery is at-least-once, so every job is idempotent; each message is
//! acked, retried (exponential backoff from its `attempts`) or dead-lettered on its own, and the
//! handler never fails as a whole (that would retry the entire batch).
//!
//! Attempt counts come from the runtime's `Message.attempts`, read from the raw message: the
//! `worker` crate does not expose it yet, which is why this module takes `worker_sys` messages.

use futures_util::StreamExt;
use tokio_postgres::types::Type;
use wasm_bindgen::{JsCast, JsValue};

use babybook_jobs::{DeadJob, Decision, Failure, FailureKind, Id, Job, JobMessage, MediaOutcome, ReapTarget};

use crate::config::Config;
use crate::error::ApiError;
use crate::telemetry::{Level, LogLine};

use super::context::{self, Io, Settings};
use super::db::{self, col, Budget, Scope, Tx};
use super::{jobs, media_client};

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
    let fates: Vec<(Fate, Option<i64>)> = futures_util::stream::iter(messages.iter())
        .map(|delivery| handle(delivery, &io, config))
        .buffer_unordered(config.consumer_concurrency)
        .collect()
        .await;
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
    if let Some(age) = oldest {
        line = line.field("oldest_message_age_ms", age);
    }
    if let Some(backlog) = backlog {
        line = line.field("backlog", backlog);
    }
    context::emit(&line);
    record_metrics(
        &io,
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
    if !super::test_controls::fault(config, "consumer_paused") {
        return;
    }
    context::emit(&context::line(
        config,
        &context::new_trace_id(),
        Level::Warn,
        "consumer paused",
    ));
    let mut waited_ms = 0;
    while super::test_controls::fault(config, "consumer_paused") && waited_ms < 120_000 {
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

async fn handle(delivery: &Delivery, io: &Io, config: &Config) -> (Fate, Option<i64>) {
    let attempts = delivery.attempts();
    let now = context::now_ms();
    let body = delivery.body_text();
    let message = match JobMessage::parse(&body) {
        Ok(message) => message,
        Err(e) => {
            // A poison pill: dead at once, kept verbatim for the operator, never a retry loop.
            let dead = DeadJob::of_unreadable(
                &body,
                Failure::new(FailureKind::InvalidMessage, None, &e.0).with_attempts(attempts),
                now,
            );
            let trace = context::new_trace_id();
            let line = context::line(config, &trace, Level::Warn, "job unreadable")
                .field("message_id", delivery.id())
                .field("detail", e.0);
            return (send_to_dlq(delivery, io, dead, line).await, None);
        }
    };
    let queue_time_ms = now - message.enqueued_at_ms();
    let line = |level, text| {
        let mut line = context::line(config, &message.trace_id, level, text)
            .account(&message.account_id)
            .field("job_id", message.job_id.to_string())
            .field("job_type", message.job_type().as_str())
            .field("attempt", attempts)
            .field("queue_time_ms", queue_time_ms);
        if let Some(asset) = message.job.asset_id() {
            line = line.field("asset_id", asset.to_string());
        }
        line
    };
    context::emit(&line(Level::Info, "job received"));
    let step = match execute(io, config, &message).await {
        Ok(step) => step,
        Err(e) if e.code == crate::error::ErrorCode::DatabaseUnavailable => Step::Failed(Failure::new(
            FailureKind::Unavailable,
            None,
            &format!("database: {}", e.detail),
        )),
        Err(e) => Step::Failed(Failure::new(
            FailureKind::ServerError,
            None,
            &format!("consumer: {}", e.detail),
        )),
    };
    let mut last_failure = None;
    let decision = match step {
        Step::Done => Decision::Ack,
        Step::Skipped(why) => {
            context::emit(&line(Level::Info, "job skipped").field("reason", why));
            delivery.ack();
            return (Fate::Acked, Some(queue_time_ms));
        }
        Step::Failed(failure) => {
            last_failure = Some(failure.clone());
            Decision::after(MediaOutcome::Failed(failure), attempts)
        }
    };
    let fate = match decision {
        Decision::Ack => {
            delivery.ack();
            context::emit(&line(Level::Info, "job done"));
            Fate::Acked
        }
        Decision::Retry { delay_seconds } => {
            release(io, &message).await;
            delivery.retry(delay_seconds);
            let mut retry = line(Level::Warn, "job retry").field("delay_seconds", delay_seconds);
            if let Some(failure) = &last_failure {
                retry = retry
                    .field("failure_kind", serde_json::to_value(failure.kind).unwrap_or_default())
                    .field("failure_status", failure.status)
                    .field("failure_detail", failure.detail.clone());
            }
            context::emit(&retry);
            Fate::Retried
        }
        Decision::Dead(failure) => {
            mark_failed(io, &message, &failure).await;
            let dead = DeadJob::of_job(message.clone(), failure, now);
            send_to_dlq(delivery, io, dead, line(Level::Warn, "job dead")).await
        }
    };
    (fate, Some(queue_time_ms))
}

async fn send_to_dlq(delivery: &Delivery, io: &Io, dead: DeadJob, line: LogLine) -> Fate {
    let line = line
        .field(
            "failure_kind",
            serde_json::to_value(dead.failure.kind).unwrap_or_default(),
        )
        .field("classification", dead.class().as_str())
        .field("failure_detail", dead.failure.detail.clone());
    match jobs::dead_letter(io, &dead).await {
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

async fn execute(io: &Io, config: &Config, message: &JobMessage) -> Result<Step, ApiError> {
    match &message.job {
        Job::Transcode { asset_id, .. } | Job::Probe { asset_id } => {
            process_asset(io, config, message, *asset_id).await
        }
        Job::Export { export_id } => process_export(io, config, message, *export_id).await,
        Job::DeleteAsset { asset_id }
        | Job::Reap {
            target: ReapTarget::OrphanAsset { asset_id },
        } => delete(io, config, message, &ASSET_DELETION, *asset_id).await,
        Job::Reap {
            target: ReapTarget::Export { export_id },
        } => delete(io, config, message, &EXPORT_DELETION, *export_id).await,
    }
}

fn scope(message: &JobMessage) -> Scope {
    Scope::Account(message.account_id)
}

async fn status_of(tx: &Tx, table: &str, id: &str) -> Result<Option<String>, ApiError> {
    let sql = format!("SELECT status FROM {table} WHERE id = $1::uuid");
    tx.opt(&sql, &[(&id, Type::TEXT)])
        .await?
        .map(|r| col::<String>(&r, 0))
        .transpose()
}

/// Whether this delivery won the row of its job.
enum Claim {
    /// The row is now `processing`, ours to finish.
    Won,
    /// No such row in the account.
    Missing,
    /// Someone else's or finished: the row's status.
    Lost(String),
}

/// Claims a job's row with `claim_sql` (`$1` the id, `$2` whether the job was re-driven; it
/// returns a row when it moved the status to `processing`), else reads why not.
async fn claim(io: &Io, message: &JobMessage, table: &str, claim_sql: &str, id: &str) -> Result<Claim, ApiError> {
    let redriven = message.redrive_count > 0;
    db::transaction(io, scope(message), Budget::Standard, async |tx| {
        if tx
            .exec(claim_sql, &[(&id, Type::TEXT), (&redriven, Type::BOOL)])
            .await?
            == 1
        {
            return Ok(Claim::Won);
        }
        Ok(match status_of(tx, table, id).await? {
            None => Claim::Missing,
            Some(status) => Claim::Lost(status),
        })
    })
    .await
}

async fn process_asset(io: &Io, config: &Config, message: &JobMessage, asset_id: Id) -> Result<Step, ApiError> {
    let asset = asset_id.to_string();
    // Claim: queued (or a processing claim older than the 300 s job budget, or a re-driven failure).
    let claimed = claim(
        io,
        message,
        "asset",
        "UPDATE asset SET status = 'processing', processing_started_at = now(), updated_at = now()
         WHERE id = $1::uuid AND (status = 'queued'
           OR (status = 'processing' AND processing_started_at < now() - interval '300 seconds')
           OR (status = 'failed' AND $2::bool))
         RETURNING 1",
        &asset,
    )
    .await?;
    match claimed {
        Claim::Won => {}
        Claim::Missing => {
            return Ok(Step::Failed(Failure::new(
                FailureKind::UnknownTarget,
                None,
                "no such asset in the account",
            )))
        }
        Claim::Lost(status) => {
            return Ok(match status.as_str() {
                "ready" => Step::Skipped("asset already ready"),
                "processing" => Step::Skipped("asset being processed by another delivery"),
                "pending" => Step::Failed(Failure::new(
                    FailureKind::UnknownTarget,
                    None,
                    "asset upload never completed",
                )),
                _ => Step::Skipped("asset failed or deleted"),
            })
        }
    }
    let answer = media_client::run_job(config, message).await;
    if let MediaOutcome::Failed(failure) = answer.outcome {
        return Ok(Step::Failed(failure));
    }
    let derivatives = answer
        .body
        .get("derivatives")
        .cloned()
        .unwrap_or(serde_json::json!([]))
        .to_string();
    let width = answer
        .body
        .get("width")
        .and_then(serde_json::Value::as_i64)
        .map(|w| w as i32);
    let height = answer
        .body
        .get("height")
        .and_then(serde_json::Value::as_i64)
        .map(|h| h as i32);
    db::transaction(io, scope(message), Budget::Standard, async |tx| {
        tx.exec(
            "UPDATE asset SET status = 'ready', derivatives = $2::text::jsonb, width = coalesce($3, width), height = coalesce($4, height),
               ready_at = now(), failure_reason = NULL, updated_at = now()
             WHERE id = $1::uuid AND status = 'processing' RETURNING 1",
            &[(&asset, Type::TEXT), (&derivatives, Type::TEXT), (&width, Type::INT4), (&height, Type::INT4)],
        )
        .await
    })
    .await?;
    Ok(Step::Done)
}

async fn process_export(io: &Io, config: &Config, message: &JobMessage, export_id: Id) -> Result<Step, ApiError> {
    let export = export_id.to_string();
    let claimed = claim(
        io,
        message,
        "account_export",
        "UPDATE account_export SET status = 'processing'
         WHERE id = $1::uuid AND (status = 'queued' OR (status = 'failed' AND $2::bool)) RETURNING 1",
        &export,
    )
    .await?;
    match claimed {
        Claim::Won => {}
        Claim::Missing => {
            return Ok(Step::Failed(Failure::new(
                FailureKind::UnknownTarget,
                None,
                "no such export in the account",
            )))
        }
        Claim::Lost(_) => return Ok(Step::Skipped("export already handled")),
    }
    let answer = media_client::run_job(config, message).await;
    if let MediaOutcome::Failed(failure) = answer.outcome {
        return Ok(Step::Failed(failure));
    }
    let key = answer
        .body
        .get("object_key")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned();
    db::transaction(io, scope(message), Budget::Standard, async |tx| {
        tx.exec(
            "UPDATE account_export SET status = 'ready', object_key = nullif($2, ''), ready_at = now() WHERE id = $1::uuid RETURNING 1",
            &[(&export, Type::TEXT), (&key, Type::TEXT)],
        )
        .await
    })
    .await?;
    Ok(Step::Done)
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
        status_of(tx, what.table, &id).await
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
    if let MediaOutcome::Failed(failure) = media_client::run_job(config, message).await.outcome {
        return Ok(Step::Failed(failure));
    }
    db::transaction(io, scope(message), Budget::Standard, async |tx| {
        tx.exec(what.mark_deleted, &[(&id, Type::TEXT)]).await
    })
    .await?;
    Ok(Step::Done)
}

/// Gives a claimed asset back to the queue before a retry, so the sweep sees it if the retry is lost.
async fn release(io: &Io, message: &JobMessage) {
    let (table, id) = match &message.job {
        Job::Transcode { asset_id, .. } | Job::Probe { asset_id } => ("asset", asset_id.to_string()),
        Job::Export { export_id } => ("account_export", export_id.to_string()),
        _ => return,
    };
    let sql = match table {
        "asset" => "UPDATE asset SET status = 'queued', queued_at = now(), updated_at = now() WHERE id = $1::uuid AND status = 'processing' RETURNING 1",
        _ => "UPDATE account_export SET status = 'queued' WHERE id = $1::uuid AND status = 'processing' RETURNING 1",
    };
    let _ = db::transaction(io, scope(message), Budget::Standard, async |tx| {
        tx.exec(sql, &[(&id, Type::TEXT)]).await
    })
    .await;
}

/// Marks the subject of a dead job `failed` with a reason the app can show.
pub async fn mark_failed(io: &Io, message: &JobMessage, failure: &Failure) {
    let reason = format!(
        "{}: {}",
        failure.kind.class().as_str(),
        serde_json::to_value(failure.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    let (sql, id) = match &message.job {
        Job::Transcode { asset_id, .. } | Job::Probe { asset_id } => (
            "UPDATE asset SET status = 'failed', failure_reason = $2, updated_at = now() WHERE id = $1::uuid AND status NOT IN ('ready', 'deleted') RETURNING 1",
            asset_id.to_string(),
        ),
        Job::Export { export_id } => (
            "UPDATE account_export SET status = 'failed', failure_reason = $2 WHERE id = $1::uuid AND status NOT IN ('ready', 'deleted') RETURNING 1",
            export_id.to_string(),
        ),
        _ => return,
    };
    let _ = db::transaction(io, scope(message), Budget::Standard, async |tx| {
        tx.exec(sql, &[(&id, Type::TEXT), (&reason, Type::TEXT)]).await
    })
    .await;
}
