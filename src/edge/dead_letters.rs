//! The `jobs-dlq` consumer and the dead-job store.
//!
//! Every dead job is classified (definitive, worker bug, external; seed §9.7), logged as a Sev-2
//! alert line, and kept in the `DEAD_JOBS` R2 bucket under `<class>/<job id>.json` until an
//! operator re-drives it (`POST /admin/jobs/redrive`, `scripts/redrive`). There is no `dlq` table
//! (seed §13). R2 rather than leaving the message in the DLQ: a queue can only be read in order
//! by its consumer, while re-drive needs "this job" or "every external failure" on demand, and
//! R2 keeps the payload as long as the bucket's lifecycle rule says (30 days).

use worker::Bucket;

use babybook_jobs::{DeadJob, DeadLetter, FailureClass};

use crate::alerts::Alert;
use crate::config::binding;
use crate::telemetry::Level;

use super::consumer::deliveries;
use super::context::{self, Io, Settings};
use super::faults::{self, Fault};
use super::job_rows::{self, Subject};

pub fn bucket(io: &Io) -> Result<Bucket, String> {
    io.bucket(binding::DEAD_JOBS)
        .map_err(|e| format!("DEAD_JOBS binding: {e}"))
}

pub fn object_key(dead: &DeadJob, fallback_id: &str) -> String {
    format!("{}.json", dead.key(fallback_id))
}

pub async fn consume(batch: worker::worker_sys::MessageBatch, io: Io, settings: std::rc::Rc<Settings>) {
    let config = &settings.config;
    for delivery in deliveries(&batch) {
        let now = context::now_ms();
        let dead = DeadLetter::from_value(delivery.body_value(), now);
        let class = dead.class();
        let key = object_key(&dead, &delivery.id());
        let stored = if faults::is_on(config, Fault::DeadJobStore) {
            Err("dead_job_store fault switched on (test control)".to_owned())
        } else {
            match bucket(&io) {
                Ok(bucket) => bucket
                    .put(key.clone(), dead.to_json())
                    .execute()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = stored {
            keep_on_the_queue(&delivery, &io, config, &dead, key, e, now).await;
            continue;
        }
        if let Some((job, subject)) = dead.job.as_ref().and_then(|j| Some((j, Subject::of(&j.job)?))) {
            if let Err(e) = job_rows::mark_failed(
                &io,
                job.account_id,
                subject,
                &dead.failure,
                job_rows::MarkedBy::DeadLetters,
            )
            .await
            {
                // The record is stored; the row still says it is being worked on. Try again
                // (storing the record again is idempotent) rather than leave the two apart.
                context::emit(
                    &context::line(config, &job.trace_id, Level::Warn, "dead job row not marked")
                        .field("key", key)
                        .field("detail", e.detail),
                );
                delivery.retry(30);
                continue;
            }
        }
        let trace = dead
            .job
            .as_ref()
            .map(|j| j.trace_id.clone())
            .unwrap_or_else(context::new_trace_id);
        let mut line = Alert::DlqItem
            .on(context::line(config, &trace, Level::Error, "dead job"))
            .field("classification", class.as_str())
            .field(
                "action",
                match class {
                    FailureClass::Definitive => "asset marked failed; the user can be told",
                    FailureClass::WorkerBug => "alert: fix the worker, then re-drive",
                    FailureClass::External => "escalate to the provider; re-drive when it recovers",
                },
            )
            .field("attempts", dead.failure.attempts)
            .field("last_error", serde_json::to_value(&dead.failure).unwrap_or_default())
            .field("dead_job_key", key);
        if let Some(job) = &dead.job {
            line = line
                .account(&job.account_id)
                .field("job_id", job.job_id.to_string())
                .field("job_type", job.job_type().as_str());
            if let Some(asset) = job.job.asset_id() {
                line = line.field("asset_id", asset.to_string());
            }
        }
        super::alerts::raise(&io, config, line);
        delivery.ack();
    }
}

/// The store refused the record: the dead letter goes back on `jobs-dlq`, delayed, as a new
/// message, and this delivery is acked. The runtime drops a message after `max_retries`
/// deliveries (100, 30 s apart: under an hour of outage); a re-published copy starts again, so a
/// store outage of hours loses nothing. Only if even that publish fails is this delivery retried
/// (the runtime's count then runs). The `dead_job_store_failing` alert fires on the first
/// refusal and then about every 10 minutes while the record waits.
async fn keep_on_the_queue(
    delivery: &super::consumer::Delivery,
    io: &Io,
    config: &crate::config::Config,
    dead: &DeadJob,
    key: String,
    detail: String,
    now: i64,
) {
    let delay = u32::try_from(config.dlq_store_retry_seconds).unwrap_or(30).max(1);
    let waiting_seconds = babybook_jobs::parse_rfc3339_millis(&dead.dead_at)
        .map(|at| (now - at).max(0) / 1000)
        .unwrap_or(0);
    let trace = dead
        .job
        .as_ref()
        .map(|j| j.trace_id.clone())
        .unwrap_or_else(context::new_trace_id);
    let mut line = context::line(config, &trace, Level::Error, "dead job not stored")
        .field("key", key)
        .field("detail", detail)
        .field("attempts", delivery.attempts())
        .field("waiting_seconds", waiting_seconds)
        .field("retry_in_seconds", delay);
    match super::jobs::dead_letter_after(io, config, dead, delay).await {
        Ok(()) => {
            delivery.ack();
            line = line.field("kept", "re-published to jobs-dlq");
        }
        Err(e) => {
            delivery.retry(delay);
            line = line.field("publish_error", e);
        }
    }
    let first = waiting_seconds <= i64::from(delay) + 5;
    let periodic = waiting_seconds % 600 < i64::from(delay);
    if first || periodic {
        super::alerts::raise(io, config, Alert::DeadJobStoreFailing.on(line));
    } else {
        context::emit(&line);
    }
}

/// Counts the dead jobs of a class, for the probe and the admin listing.
pub async fn list_keys(io: &Io, class: Option<FailureClass>, limit: u32) -> Result<Vec<String>, String> {
    let bucket = bucket(io)?;
    let mut builder = bucket.list().limit(limit);
    if let Some(class) = class {
        builder = builder.prefix(format!("{}/", class.as_str()));
    }
    let objects = builder.execute().await.map_err(|e| e.to_string())?;
    Ok(objects.objects().into_iter().map(|o| o.key()).collect())
}

pub async fn read(io: &Io, key: &str) -> Result<Option<DeadJob>, String> {
    let Some(object) = bucket(io)?.get(key).execute().await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let text = match object.body() {
        Some(body) => body.text().await.map_err(|e| e.to_string())?,
        None => return Ok(None),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| format!("{key}: {e}"))
}

pub async fn remove(io: &Io, key: &str) -> Result<(), String> {
    bucket(io)?.delete(key).await.map_err(|e| e.to_string())
}
