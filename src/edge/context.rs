//! What every entry point shares: the parsed configuration (once per isolate), the clock, the
//! log sink, and the per-request context.

use std::cell::OnceCell;
use std::rc::Rc;

use worker::{Date, Env};

use babybook_jobs::TraceId;

use crate::config::{binding, Config, ConfigError};
use crate::session::SessionKeys;
use crate::telemetry::{DeployedVersion, Level, LogContext, LogLine, SampleClass, SampleRates};

/// Configuration and keys, parsed once per isolate. Parsing is synchronous, so concurrent
/// requests never wait on one another's initialisation.
pub struct Settings {
    pub config: Config,
    pub session_keys: Option<SessionKeys>,
}

thread_local! {
    static SETTINGS: OnceCell<Result<Rc<Settings>, ConfigError>> = const { OnceCell::new() };
}

fn lookup(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|s| s.to_string())
        .or_else(|| env.var(name).ok().map(|v| v.to_string()))
}

pub fn settings(env: &Env) -> Result<Rc<Settings>, ConfigError> {
    SETTINGS.with(|cell| {
        cell.get_or_init(|| {
            let mut config = Config::from_lookup(|name| lookup(env, name))?;
            config.deployed = deployed_version(env);
            let session_keys = config.session_key_current.as_ref().map(|current| {
                SessionKeys::new(
                    current.expose(),
                    config.session_key_previous.as_ref().map(|p| p.expose()),
                )
            });
            Ok(Rc::new(Settings { config, session_keys }))
        })
        .clone()
    })
}

/// The version metadata binding's id, tag and upload time (read as plain properties: `wrangler
/// dev` gives a plain object, not the runtime's class, with the time it started as the upload's).
fn deployed_version(env: &Env) -> DeployedVersion {
    let Ok(metadata) = js_sys::Reflect::get(env, &binding::VERSION_METADATA.into()) else {
        return DeployedVersion::unknown();
    };
    if !metadata.is_object() {
        return DeployedVersion::unknown();
    }
    let text = |key: &str| {
        js_sys::Reflect::get(&metadata, &key.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let id = text("id");
    let uploaded_at_ms = js_sys::Date::parse(&text("timestamp"));
    DeployedVersion {
        id: if id.is_empty() { "unknown".into() } else { id },
        tag: text("tag"),
        uploaded_at_ms: uploaded_at_ms.is_finite().then_some(uploaded_at_ms as i64),
    }
}

/// Wall-clock epoch milliseconds. (Inside a Worker the clock advances only across I/O, which is
/// all the edge needs.)
pub fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

pub fn new_trace_id() -> TraceId {
    // A CSPRNG failure is not worth failing a request over: fall back to the clock.
    crate::secure_random::new_trace_id().unwrap_or_else(|_| {
        TraceId::parse(&format!("edge-{:016x}", now_ms())).unwrap_or_else(|_| TraceId::from_random_bytes([0; 16]))
    })
}

/// Writes a log line to the Worker's log stream (stdout of `wrangler dev`, Workers Logs deployed).
pub fn emit(line: &LogLine) {
    let json = line.to_json();
    match line.level() {
        Level::Error => worker::console_error!("{json}"),
        Level::Warn => worker::console_warn!("{json}"),
        Level::Info => worker::console_log!("{json}"),
    }
}

/// A success's line (a job done, a job published), written for a share `LOG_SAMPLE_SUCCESS` of
/// them as a request's is (SPEC §6: errors and warnings always, successes sampled). Each one is
/// an event Workers Logs bills; the job's row and the queue's batch data point keep the count.
pub fn emit_success(config: &Config, line: &LogLine) {
    if SampleClass::Success.keep(&sample_rates(config), crate::sampling::unit_interval()) {
        emit(line);
    }
}

/// The configured log sampling (cheap rejections at a fixed 1 %).
pub fn sample_rates(config: &Config) -> SampleRates {
    SampleRates {
        success: config.log_sample_success,
        health: config.log_sample_health,
        rejection: 0.01,
    }
}

/// A log line written before the configuration could be read (it names no environment).
pub fn unconfigured_line(level: Level, message: &str, trace_id: &TraceId) -> LogLine {
    let context = LogContext {
        env: "unconfigured",
        trace_id: trace_id.to_string(),
        deployed: DeployedVersion::unknown(),
    };
    LogLine::new(level, message, &context, now_ms())
}

/// A log line for a job or cron run, outside any request.
pub fn line(config: &Config, trace_id: &TraceId, level: Level, message: &str) -> LogLine {
    let context = LogContext {
        env: config.environment.as_str(),
        trace_id: trace_id.to_string(),
        deployed: config.deployed.clone(),
    };
    LogLine::new(level, message, &context, now_ms())
}

/// What keeps an invocation's I/O alive after its answer is out (`waitUntil`).
#[derive(Clone)]
pub enum Lifeline {
    Invocation(Rc<worker::Context>),
    Cron(Rc<worker::ScheduleContext>),
}

impl Lifeline {
    pub fn wait_until(&self, work: impl std::future::Future<Output = ()> + 'static) {
        match self {
            Lifeline::Invocation(ctx) => ctx.wait_until(work),
            Lifeline::Cron(ctx) => ctx.wait_until(work),
        }
    }
}

/// The bindings plus the invocation's lifeline: what every piece of I/O needs.
#[derive(Clone)]
pub struct Io {
    pub env: Env,
    pub lifeline: Lifeline,
    /// How long a unit of work waits for its connection and first statement.
    pub acquire_ms: u32,
}

impl std::ops::Deref for Io {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

/// Everything a handler knows about the request it serves.
pub struct RequestContext {
    pub io: Io,
    pub settings: Rc<Settings>,
    pub trace_id: TraceId,
    pub lang: crate::lang::Lang,
    pub client_ip: String,
    /// `scheme://host[:port]` of the request, for links in local answers.
    pub origin: String,
    pub started_ms: i64,
}

impl RequestContext {
    pub fn config(&self) -> &Config {
        &self.settings.config
    }

    pub fn line(&self, level: Level, message: &str) -> LogLine {
        line(self.config(), &self.trace_id, level, message)
    }
}
