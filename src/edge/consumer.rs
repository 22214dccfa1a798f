//! The `jobs` consumer's shell: the Worker's side of the runner's port (`crate::jobs::port`) and
//! the `queue` event's batch line and metrics. Every decision about a job is the runner's
//! (`crate::jobs::runner`); here are only the JavaScript messages, the SQL, the media worker and
//! purge API calls, the publishes and the log stream. The test faults of local runs wrap this
//! port from outside (`consumer_drills`).
//!
//! Attempt counts come from the runtime's `Message.attempts`, read from the raw message: the
//! `worker` crate does not expose it yet, which is why this module takes `worker_sys` messages.

use tokio_postgres::types::Type;
use wasm_bindgen::{JsCast, JsValue};

use babybook_jobs::{DeadJob, Failure, Id, JobMessage, TraceId};

use crate::config::Config;
use crate::error::ApiError;
use crate::jobs::port::{Bid, Claim, Deletion, Emit, Finished, MediaAnswer, Output, Port, Subject};
use crate::jobs::runner::{self, Fate};
use crate::share::purge::PurgeTarget;
use crate::telemetry::{Level, LogLine};

use super::consumer_drills::Drilled;
use super::context::{self, Io, Settings};
use super::db::{self, Budget, Scope};
use super::{job_rows, jobs, media_client, share_cache};

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
    let port = Drilled::around(WorkerPort { io: &io, config }, config);
    port.hold_while_paused().await;
    let messages = deliveries(&batch);
    let size = messages.len();
    let (fates, phases) = runner::run_batch(&port, &messages).await;
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
    // A healthy batch's line is a success's (sampled); the data point below counts every batch.
    if runner::batch_line_always(&fates) {
        context::emit(&line);
    } else {
        context::emit_success(config, &line);
    }
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

/// The Worker's side of the runner's port (its test faults are `consumer_drills`').
struct WorkerPort<'a> {
    io: &'a Io,
    config: &'a Config,
}

/// What a delete job's row is called in SQL, and the update that marks it deleted (`$1`: the id).
fn deletion_sql(row: Deletion) -> (&'static str, &'static str) {
    match row {
        Deletion::Asset => (
            "asset",
            "UPDATE asset SET status = 'deleted', deleted_at = now(), moment_id = NULL, derivatives = '[]'::jsonb, updated_at = now()
                   WHERE id = $1::uuid RETURNING 1",
        ),
        Deletion::Export => (
            "account_export",
            "UPDATE account_export SET status = 'deleted', deleted_at = now() WHERE id = $1::uuid RETURNING 1",
        ),
    }
}

/// The accounts of `items`, each once, in order of first appearance: one transaction each.
fn accounts_of(accounts: impl Iterator<Item = Id>) -> Vec<Id> {
    let mut seen: Vec<Id> = Vec::new();
    for account in accounts {
        if !seen.contains(&account) {
            seen.push(account);
        }
    }
    seen
}

impl Port for WorkerPort<'_> {
    type Delivery = Delivery;

    fn message_id(&self, delivery: &Delivery) -> String {
        delivery.id()
    }

    fn attempts(&self, delivery: &Delivery) -> u32 {
        delivery.attempts()
    }

    fn body(&self, delivery: &Delivery) -> String {
        delivery.body_text()
    }

    fn ack(&self, delivery: &Delivery) {
        delivery.ack();
    }

    fn retry(&self, delivery: &Delivery, delay_seconds: u32) {
        delivery.retry(delay_seconds);
    }

    fn now_ms(&self) -> i64 {
        context::now_ms()
    }

    fn new_trace_id(&self) -> TraceId {
        context::new_trace_id()
    }

    fn concurrency(&self) -> usize {
        self.config.consumer_concurrency
    }

    fn line(&self, trace: &TraceId, level: Level, text: &str) -> LogLine {
        context::line(self.config, trace, level, text)
    }

    fn emit(&self, line: LogLine, how: Emit) {
        match how {
            Emit::Always => context::emit(&line),
            Emit::Success => context::emit_success(self.config, &line),
            Emit::Alert => super::alerts::raise(self.io, self.config, line),
        }
    }

    /// ONE message: a transaction per account, a statement per table
    /// (`job_rows::claim_statements`).
    async fn claim(&self, bids: &[Bid<'_>]) -> Result<Vec<(usize, Claim)>, ApiError> {
        let transactions: Vec<String> = accounts_of(bids.iter().map(|b| b.account))
            .into_iter()
            .map(|account| {
                let mine: Vec<Bid> = bids.iter().filter(|b| b.account == account).copied().collect();
                let statements = job_rows::claim_statements(&mine);
                crate::sql_text::transaction(Budget::Standard.statement_ms(), Some(account), &statements)
            })
            .collect();
        db::one_message(self.io, Budget::Standard, &transactions.join("; "))
            .await
            .and_then(|rows| job_rows::claims_from(&rows))
    }

    /// ONE message: a transaction per account, a statement per table
    /// (`job_rows::finish_statements`).
    async fn record(&self, finished: &[Finished<'_>]) -> Result<Vec<String>, ApiError> {
        let mut transactions = Vec::new();
        for account in accounts_of(finished.iter().map(|f| f.account)) {
            let mut assets = Vec::new();
            let mut exports = Vec::new();
            for f in finished.iter().filter(|f| f.account == account) {
                match (f.output, f.subject) {
                    (Output::Export(key), Subject::Export(id)) => exports.push((id, f.holder, key.as_str())),
                    (Output::Asset(output), Subject::Asset(id)) => assets.push((id, f.holder, output)),
                    _ => {}
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
        if transactions.is_empty() {
            return Ok(Vec::new());
        }
        db::one_message(self.io, Budget::Standard, &transactions.join("; "))
            .await
            .map(|rows| job_rows::finished_from(&rows))
    }

    async fn release(&self, account: Id, subject: Subject, holder: &str) -> Result<(), ApiError> {
        job_rows::release(self.io, account, subject, holder).await
    }

    async fn mark_failed(
        &self,
        account: Id,
        subject: Subject,
        failure: &Failure,
        holder: &str,
    ) -> Result<bool, ApiError> {
        job_rows::mark_failed(self.io, account, subject, failure, job_rows::MarkedBy::Delivery(holder)).await
    }

    async fn status_of(&self, account: Id, row: Deletion, id: Id) -> Result<Option<String>, ApiError> {
        let (table, _) = deletion_sql(row);
        let id = id.to_string();
        db::transaction(self.io, Scope::Account(account), Budget::Hot, async |tx| {
            job_rows::status_of(tx, table, &id).await
        })
        .await
    }

    async fn mark_deleted(&self, account: Id, row: Deletion, id: Id) -> Result<(), ApiError> {
        let (_, mark_deleted) = deletion_sql(row);
        let id = id.to_string();
        job_rows::write(self.io, account, mark_deleted, &[(&id, Type::TEXT)])
            .await
            .map(|_| ())
    }

    async fn publish_after(&self, message: &JobMessage, delay_seconds: u32) -> Result<(), String> {
        jobs::publish_after(self.io, self.config, message, delay_seconds).await
    }

    async fn dead_letter(&self, _: &Delivery, dead: &DeadJob) -> Result<(), String> {
        jobs::dead_letter(self.io, self.config, dead).await
    }

    async fn run_job(&self, message: &JobMessage) -> MediaAnswer {
        media_client::run_job(self.config, message).await
    }

    async fn purge(&self, target: PurgeTarget) -> Result<(), String> {
        share_cache::purge_globally(self.config, &[target]).await
    }
}
