//! Dead jobs: what the consumer sends to `jobs-dlq`, and how the DLQ handler classifies it.

use serde::{Deserialize, Serialize};

use crate::{format_rfc3339_millis, ContractError, JobMessage, SCHEMA_VERSION};

/// Why a job failed, in the words the runbook (docs/runbooks/dlq.md) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The body is not a v1 job message (bad JSON, wrong schema, unknown version).
    InvalidMessage,
    /// The job names an asset or export that does not exist (or not in that account).
    UnknownTarget,
    /// The media worker could not decode the original (422).
    CorruptMedia,
    /// Storage or the media worker refused our credentials (401/403).
    Forbidden,
    /// The media worker refused the request as malformed (other 4xx).
    Rejected,
    /// The media worker asked us to slow down (429).
    Throttled,
    /// The media worker or its provider is down (502/503/504).
    Unavailable,
    /// The media worker failed on its own (500 and other 5xx).
    ServerError,
    /// No answer within the edge's time budget.
    Timeout,
    /// The connection to the media worker failed.
    Connection,
    /// The media worker answered 2xx with output that breaks the contract (derivatives that are
    /// not an array of `{key, width}`, say): stored, it would break every page showing the asset.
    InvalidOutput,
    /// The runtime dead-lettered it after `max_retries` without the consumer reporting why:
    /// the consumer itself kept failing on it.
    Unreported,
}

/// The three ways a job ends up dead (seed §9.7), each with its own response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Nothing will make it succeed (corrupt media, invalid message): mark the asset `failed`,
    /// the user can be told.
    Definitive,
    /// Our code or the media worker's is wrong: alert, hotfix, then re-drive.
    WorkerBug,
    /// A provider is failing (storage 403, outage): escalate, re-drive when it recovers.
    External,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Definitive => "definitive",
            FailureClass::WorkerBug => "worker_bug",
            FailureClass::External => "external",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ContractError> {
        match text {
            "definitive" => Ok(FailureClass::Definitive),
            "worker_bug" => Ok(FailureClass::WorkerBug),
            "external" => Ok(FailureClass::External),
            other => Err(ContractError(format!("unknown failure class {other:?}"))),
        }
    }
}

impl FailureKind {
    /// Worth another attempt after a backoff delay.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::Throttled
                | FailureKind::Unavailable
                | FailureKind::ServerError
                | FailureKind::Timeout
                | FailureKind::Connection
        )
    }

    pub fn class(self) -> FailureClass {
        match self {
            FailureKind::InvalidMessage | FailureKind::UnknownTarget | FailureKind::CorruptMedia => {
                FailureClass::Definitive
            }
            FailureKind::Forbidden
            | FailureKind::Throttled
            | FailureKind::Unavailable
            | FailureKind::Timeout
            | FailureKind::Connection => FailureClass::External,
            FailureKind::Rejected | FailureKind::ServerError | FailureKind::InvalidOutput | FailureKind::Unreported => {
                FailureClass::WorkerBug
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The media worker's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A short excerpt for the operator; never user content.
    pub detail: String,
    /// Deliveries made before giving up.
    #[serde(default)]
    pub attempts: u32,
}

impl Failure {
    pub const MAX_DETAIL: usize = 300;

    pub fn new(kind: FailureKind, status: Option<u16>, detail: &str) -> Self {
        let mut end = detail.len().min(Self::MAX_DETAIL);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        Failure {
            kind,
            status,
            detail: detail[..end].to_owned(),
            attempts: 0,
        }
    }

    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
}

/// The body the consumer publishes to `jobs-dlq` when it gives up on a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadJob {
    pub schema_version: u32,
    /// The job, when the body was a valid job message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMessage>,
    /// The original body (truncated) when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    pub failure: Failure,
    pub dead_at: String,
}

impl DeadJob {
    pub const MAX_RAW_BODY: usize = 16 * 1024;

    pub fn of_job(job: JobMessage, failure: Failure, now_ms: i64) -> Self {
        DeadJob {
            schema_version: SCHEMA_VERSION,
            job: Some(job),
            raw_body: None,
            failure,
            dead_at: format_rfc3339_millis(now_ms),
        }
    }

    pub fn of_unreadable(raw_body: &str, failure: Failure, now_ms: i64) -> Self {
        let mut end = raw_body.len().min(Self::MAX_RAW_BODY);
        while !raw_body.is_char_boundary(end) {
            end -= 1;
        }
        DeadJob {
            schema_version: SCHEMA_VERSION,
            job: None,
            raw_body: Some(raw_body[..end].to_owned()),
            failure,
            dead_at: format_rfc3339_millis(now_ms),
        }
    }

    pub fn class(&self) -> FailureClass {
        self.failure.kind.class()
    }

    /// A stable name for where the dead job is kept until re-driven: `<class>/<job id or digest>`.
    pub fn key(&self, fallback_id: &str) -> String {
        let id = self
            .job
            .as_ref()
            .map(|j| j.job_id.to_string())
            .unwrap_or_else(|| fallback_id.to_owned());
        format!("{}/{}", self.class().as_str(), id)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What arrives on `jobs-dlq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    /// The consumer gave up and said why.
    Reported(DeadJob),
    /// The runtime moved a job after `max_retries` without the consumer saying why.
    Unreported(JobMessage),
    /// Neither: something else was published to the DLQ.
    Unreadable(String),
}

impl DeadLetter {
    pub fn from_value(body: serde_json::Value, now_ms: i64) -> DeadJob {
        match Self::classify_body(body) {
            DeadLetter::Reported(dead) => dead,
            DeadLetter::Unreported(job) => DeadJob::of_job(
                job,
                Failure::new(
                    FailureKind::Unreported,
                    None,
                    "dead-lettered by the runtime after max_retries",
                ),
                now_ms,
            ),
            DeadLetter::Unreadable(raw) => DeadJob::of_unreadable(
                &raw,
                Failure::new(FailureKind::InvalidMessage, None, "unreadable dead letter"),
                now_ms,
            ),
        }
    }

    pub fn classify_body(body: serde_json::Value) -> DeadLetter {
        if body.get("failure").is_some() {
            if let Ok(dead) = serde_json::from_value::<DeadJob>(body.clone()) {
                return DeadLetter::Reported(dead);
            }
        }
        match JobMessage::from_value(body.clone()) {
            Ok(job) => DeadLetter::Unreported(job),
            Err(_) => DeadLetter::Unreadable(match body {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Id, Job, TraceId};

    fn job() -> JobMessage {
        JobMessage::new(
            Id::from_random_bytes([1; 16]),
            Id::from_random_bytes([2; 16]),
            TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            0,
            Job::Probe {
                asset_id: Id::from_random_bytes([3; 16]),
            },
        )
    }

    #[test]
    fn a_reported_dead_job_keeps_its_failure_through_the_dlq() {
        let dead = DeadJob::of_job(
            job(),
            Failure::new(FailureKind::CorruptMedia, Some(422), "bad header").with_attempts(1),
            5,
        );
        let body: serde_json::Value = serde_json::from_str(&dead.to_json()).unwrap();
        assert_eq!(DeadLetter::classify_body(body), DeadLetter::Reported(dead.clone()));
        assert_eq!(dead.class(), FailureClass::Definitive);
        assert!(dead.key("x").starts_with("definitive/"));
    }

    #[test]
    fn a_job_moved_by_the_runtime_is_an_unreported_worker_bug() {
        let body: serde_json::Value = serde_json::from_str(&job().to_json()).unwrap();
        let dead = DeadLetter::from_value(body, 0);
        assert_eq!(dead.failure.kind, FailureKind::Unreported);
        assert_eq!(dead.class(), FailureClass::WorkerBug);
    }

    #[test]
    fn anything_else_is_an_invalid_message_kept_verbatim() {
        let dead = DeadLetter::from_value(serde_json::Value::String("{not json".into()), 0);
        assert_eq!(dead.class(), FailureClass::Definitive);
        assert_eq!(dead.raw_body.as_deref(), Some("{not json"));
    }

    #[test]
    fn details_are_cut_on_a_character_boundary() {
        let failure = Failure::new(FailureKind::Rejected, Some(400), &"é".repeat(400));
        assert!(failure.detail.len() <= Failure::MAX_DETAIL);
    }
}
