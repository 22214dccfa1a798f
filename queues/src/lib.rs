//! The job-message contract of the `jobs` queue, version 1.
//!
//! Producer (the API routes and the cron jobs) and consumers (the `jobs` and `jobs-dlq` handlers)
//! use these types and nothing else, and `schema/job-message.v1.json` describes the same wire
//! format for anyone outside Rust. `tests/contract.rs` validates every example in `examples/`
//! against the schema and round-trips it through [`JobMessage`], so the two cannot drift.
//!
//! The crate has no Worker dependency: it is plain Rust that tests on the host.

mod dead_job;
mod ids;
pub mod lifecycle;
pub mod media_keys;
mod message;
mod outcome;
pub mod purge;
mod timestamp;

pub use dead_job::{DeadJob, DeadLetter, Failure, FailureClass, FailureKind};
pub use ids::{Id, TraceId};
pub use message::{Job, JobMessage, JobType, ReapTarget, SCHEMA_VERSION};
pub use outcome::{retry_delay_seconds, Decision, MediaOutcome, MAX_ATTEMPTS, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS};
pub use timestamp::{civil_from_days, days_from_civil, format_rfc3339_millis, parse_rfc3339_millis};

/// Why a message body could not become a [`JobMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError(pub String);

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ContractError {}
