//! One JSON log line per request or job (SPEC §6, seed §5.1), sampling, and rejection counters.
//!
//! Lines carry `timestamp, level, message, service, env, version, trace_id` and whatever the
//! caller adds. Account ids are hashed (`account_id_hash`); health and vault values never pass
//! through the edge, so no line can carry them; request
//! bodies, tokens and cookies are never logged.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use babybook_jobs::{format_rfc3339_millis, Id};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// The deployed version of the Worker (the `CF_VERSION_METADATA` binding): every log line and
/// data point carries it, so the canary and the stable version can be told apart (seed §3.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployedVersion {
    /// The version id Cloudflare gave the upload (a UUID); `unknown` without the binding.
    pub id: String,
    /// The tag given at upload (`wrangler versions upload --tag`), often empty.
    pub tag: String,
    /// When the version was uploaded (the binding's `timestamp`, epoch ms): a version younger
    /// than `SLI_CANARY_MINUTES` writes every SLI point (`crate::slo::PointSampling`).
    pub uploaded_at_ms: Option<i64>,
}

impl DeployedVersion {
    pub fn unknown() -> DeployedVersion {
        DeployedVersion {
            id: "unknown".into(),
            tag: String::new(),
            uploaded_at_ms: None,
        }
    }
}

/// What every line of one request or job shares.
#[derive(Debug, Clone)]
pub struct LogContext {
    pub env: &'static str,
    pub trace_id: String,
    pub deployed: DeployedVersion,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    fields: Map<String, Value>,
    level: Level,
}

impl LogLine {
    pub fn new(level: Level, message: &str, context: &LogContext, now_ms: i64) -> LogLine {
        let mut fields = Map::new();
        fields.insert("timestamp".into(), Value::String(format_rfc3339_millis(now_ms)));
        fields.insert("level".into(), Value::String(level.as_str().into()));
        fields.insert("message".into(), Value::String(message.into()));
        fields.insert("service".into(), Value::String(crate::SERVICE.into()));
        fields.insert("env".into(), Value::String(context.env.into()));
        fields.insert("version".into(), Value::String(crate::VERSION.into()));
        fields.insert("version_id".into(), Value::String(context.deployed.id.clone()));
        fields.insert("version_tag".into(), Value::String(context.deployed.tag.clone()));
        fields.insert("trace_id".into(), Value::String(context.trace_id.clone()));
        LogLine { fields, level }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> LogLine {
        self.fields.insert(key.into(), value.into());
        self
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.into(), value.into());
    }

    /// Records the account as `account_id_hash`; the raw id never reaches the log.
    pub fn account(self, account_id: &Id) -> LogLine {
        self.field("account_id_hash", account_id_hash(account_id))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }
}

/// `sha256-<hex>` of the account id.
pub fn account_id_hash(account_id: &Id) -> String {
    let digest = Sha256::digest(account_id.to_string().as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256-");
    out.push_str(&crate::hex::encode(&digest));
    out
}

/// Which sampling rate applies to a finished request (SPEC §6: errors 100 %, `/health` 0.1 %,
/// successes 1–10 %). Rejections of junk (hygiene, rate limits) are counted always and logged by
/// a sample, so a flood cannot flood the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleClass {
    Always,
    Health,
    Success,
    Rejection,
}

#[derive(Debug, Clone, Copy)]
pub struct SampleRates {
    pub success: f64,
    pub health: f64,
    pub rejection: f64,
}

impl SampleClass {
    pub fn of_request(status: u16, is_health: bool, is_rejection: bool) -> SampleClass {
        if is_rejection {
            SampleClass::Rejection
        } else if status >= 400 {
            SampleClass::Always
        } else if is_health {
            SampleClass::Health
        } else {
            SampleClass::Success
        }
    }

    /// `draw` is uniform in `[0, 1)`.
    pub fn keep(self, rates: &SampleRates, draw: f64) -> bool {
        match self {
            SampleClass::Always => true,
            SampleClass::Health => draw < rates.health,
            SampleClass::Success => draw < rates.success,
            SampleClass::Rejection => draw < rates.rejection,
        }
    }
}

thread_local! {
    static REJECTIONS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
    static REJECTION_TOTALS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Counts a rejection by tag (`scanner`, `rate_limited`, …) in this isolate.
pub fn count_rejection(tag: &'static str) {
    REJECTIONS.with(|r| *r.borrow_mut().entry(tag).or_insert(0) += 1);
    REJECTION_TOTALS.with(|r| *r.borrow_mut().entry(tag).or_insert(0) += 1);
}

/// Every rejection this isolate has counted, by tag (never reset; for test counters).
pub fn rejection_totals() -> Map<String, Value> {
    REJECTION_TOTALS.with(|r| {
        r.borrow()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    })
}

/// The counts since the last call, for the next logged line (`rejections` field).
pub fn take_rejection_counts() -> Map<String, Value> {
    REJECTIONS
        .with(|r| std::mem::take(&mut *r.borrow_mut()))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> LogContext {
        LogContext {
            env: "local",
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            deployed: DeployedVersion {
                id: "6a4d2b1c-0000-4000-8000-000000000001".into(),
                tag: "canary".into(),
                uploaded_at_ms: None,
            },
        }
    }

    #[test]
    fn a_line_has_the_fields_of_the_seed_example() {
        let account = Id::from_random_bytes([9; 16]);
        let line = LogLine::new(Level::Info, "Job received", &context(), 0)
            .account(&account)
            .field("queue_time_ms", 120);
        let value: Value = serde_json::from_str(&line.to_json()).unwrap();
        for key in [
            "timestamp",
            "level",
            "message",
            "service",
            "env",
            "version",
            "version_id",
            "version_tag",
            "trace_id",
            "account_id_hash",
            "queue_time_ms",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(value["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["version_id"], "6a4d2b1c-0000-4000-8000-000000000001");
        assert_eq!(value["version_tag"], "canary");
        assert!(!line.to_json().contains(&account.to_string()), "raw account id leaked");
        assert!(value["account_id_hash"].as_str().unwrap().starts_with("sha256-"));
    }

    #[test]
    fn sampling_keeps_every_error_and_a_fraction_of_the_rest() {
        let rates = SampleRates {
            success: 0.05,
            health: 0.001,
            rejection: 0.01,
        };
        assert!(SampleClass::of_request(500, false, false).keep(&rates, 0.999));
        assert!(SampleClass::of_request(404, false, false).keep(&rates, 0.999));
        assert!(!SampleClass::of_request(200, true, false).keep(&rates, 0.01));
        assert!(SampleClass::of_request(200, true, false).keep(&rates, 0.0005));
        assert!(SampleClass::of_request(200, false, false).keep(&rates, 0.04));
        assert!(!SampleClass::of_request(200, false, false).keep(&rates, 0.06));
        assert!(
            !SampleClass::of_request(429, false, true).keep(&rates, 0.5),
            "floods are sampled, not logged in full"
        );
    }

    #[test]
    fn rejection_counts_are_handed_over_once() {
        count_rejection("scanner");
        count_rejection("scanner");
        count_rejection("rate_limited");
        let counts = take_rejection_counts();
        assert_eq!(counts["scanner"], 2);
        assert_eq!(counts["rate_limited"], 1);
        assert!(take_rejection_counts().is_empty());
    }
}
