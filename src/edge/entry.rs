//! The three entry points. Each builds its context, dispatches, and never lets an error escape as
//! an exception the runtime would turn into a retry storm or an HTML error page.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use worker::{event, Context, Env};

use crate::config::queue_name;
use crate::cron::jobs_for;
use crate::telemetry::Level;

use super::context::{self, Io, Lifeline, Settings};
use super::{consumer, cron_jobs, dead_letters, pipeline};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Takes the runtime's request as it is: `worker::Request` reads `request.cf` when it is made,
/// which the runtime builds afresh on every access (8 % of a cache hit's CPU in a profile), and
/// nothing here needs it.
#[event(fetch)]
async fn fetch(req: worker::web_sys::Request, env: Env, ctx: Context) -> worker::Result<worker::web_sys::Response> {
    Ok(pipeline::handle(req, env, ctx).await)
}

fn settings_or_log(env: &Env) -> Option<Rc<Settings>> {
    match context::settings(env) {
        Ok(settings) => Some(settings),
        Err(e) => {
            let line = context::unconfigured_line(Level::Error, "configuration error", &context::new_trace_id());
            context::emit(&line.field("detail", e.to_string()));
            None
        }
    }
}

/// Queue consumer export, written by hand instead of `#[event(queue)]` for two reasons: the
/// runtime's per-message `attempts` is only on the raw message, and the macro turns an `Err` into
/// a panic that retries the whole batch. This handler decides per message and always resolves.
#[wasm_bindgen]
pub fn queue(batch: worker::worker_sys::MessageBatch, env: Env, ctx: worker::worker_sys::Context) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        let Some(settings) = settings_or_log(&env) else {
            // Without configuration nothing can be processed correctly: retry later, all of it.
            let _ = batch.retry_all(JsValue::NULL);
            return Ok(JsValue::UNDEFINED);
        };
        let io = Io {
            env,
            lifeline: Lifeline::Invocation(Rc::new(Context::new(ctx))),
            acquire_ms: settings.config.db_acquire_timeout_ms,
        };
        let queue = batch.queue().map(String::from).unwrap_or_default();
        if queue.starts_with(queue_name::JOBS_DLQ) {
            dead_letters::consume(batch, io, settings).await;
        } else if queue.starts_with(queue_name::JOBS) {
            consumer::consume(batch, io, settings).await;
        } else {
            let line = context::line(
                &settings.config,
                &context::new_trace_id(),
                Level::Error,
                "batch from an unknown queue",
            );
            context::emit(&line.field("queue", queue));
        }
        Ok(JsValue::UNDEFINED)
    })
}

/// Cron export, by hand so that a failed job rejects the promise: the runtime (and
/// `/cdn-cgi/handler/scheduled` locally) then reports the run as failed. Every job of the trigger
/// runs even when one fails.
#[wasm_bindgen]
pub fn scheduled(
    event: worker::worker_sys::ScheduledEvent,
    env: Env,
    ctx: worker::worker_sys::ScheduleContext,
) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        let Some(settings) = settings_or_log(&env) else {
            return Err(JsValue::from_str("configuration error"));
        };
        let io = Io {
            env,
            lifeline: Lifeline::Cron(Rc::new(worker::ScheduleContext::from(ctx))),
            acquire_ms: settings.config.db_acquire_timeout_ms,
        };
        let cron = event.cron().unwrap_or_default();
        let now_ms = event
            .scheduled_time()
            .map(|t| t as i64)
            .unwrap_or_else(|_| context::now_ms());
        let trace = context::new_trace_id();
        let jobs = jobs_for(&cron);
        if jobs.is_empty() {
            context::emit(
                &context::line(&settings.config, &trace, Level::Warn, "cron trigger with no jobs")
                    .field("cron", cron.clone()),
            );
        }
        let mut failures = Vec::new();
        for &job in jobs {
            if let Err(e) = cron_jobs::run(job, &io, &settings, &trace, now_ms).await {
                failures.push(format!("{}: {e}", job.as_str()));
            }
        }
        if failures.is_empty() {
            Ok(JsValue::UNDEFINED)
        } else {
            Err(JsValue::from_str(&format!(
                "cron {cron} (trace {trace}): {}",
                failures.join("; ")
            )))
        }
    })
}
