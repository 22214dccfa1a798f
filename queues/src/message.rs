use serde::{Deserialize, Serialize};

use crate::{format_rfc3339_millis, parse_rfc3339_millis, ContractError, Id, TraceId};

/// The only version this crate writes and reads. A consumer meeting another version treats the
/// message as a definitive failure (dead-lettered, re-drivable) rather than guessing.
pub const SCHEMA_VERSION: u32 = 1;

/// One job on the `jobs` queue.
///
/// `job_id` is the idempotency key: the same job delivered twice (at-least-once delivery) is
/// processed once. `trace_id` is the id of the request or cron run that produced the job, so one
/// search finds the producer's and the consumer's log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub schema_version: u32,
    pub job_id: Id,
    pub account_id: Id,
    pub trace_id: TraceId,
    /// When the producer published it (RFC 3339, UTC): the consumer's queue-time metric.
    pub enqueued_at: String,
    /// How many times an operator re-drove this job out of the dead-letter store.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redrive_count: u32,
    #[serde(flatten)]
    pub job: Job,
}

/// 64 lowercase hex digits: the only form of a token hash a purge job may carry.
fn is_token_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What to do, with the fields each job type needs. Serialized with a `job_type` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job_type", rename_all = "snake_case")]
pub enum Job {
    /// Make the derived previews of an uploaded original.
    Transcode {
        asset_id: Id,
        original_key: String,
        media_type: String,
    },
    /// Build a downloadable archive of an account (expires after 72 h).
    Export { export_id: Id },
    /// Delete an asset's stored objects (original and derivatives).
    DeleteAsset { asset_id: Id },
    /// Delete what the daily reaper found expired or orphaned.
    Reap { target: ReapTarget },
    /// The synthetic end-to-end probe: producer → queue → consumer → media worker → database.
    Probe { asset_id: Id },
    /// Purge a share link's cached pages (every language) in every data center, through the zone
    /// purge API: published when the revoke's or edit's own try failed, and published again,
    /// delayed, after each failed try until the API accepts it (see [`crate::purge`]).
    ///
    /// `token_hash` is the SHA-256 of the link's token (64 lowercase hex digits), which is what
    /// the cache keys are built from; the token itself never travels.
    Purge {
        token_hash: String,
        /// Tries that failed before this one (the revoke's own try is the first).
        #[serde(default)]
        failed_attempts: u32,
    },
    /// Purge every cached page of the message's account (its account cache tag), in every data
    /// center: a change the edge cannot map to links (a moment, an asset, a child, a deleted
    /// link). Published and retried like [`Job::Purge`].
    PurgeAccount {
        /// Tries that failed before this one.
        #[serde(default)]
        failed_attempts: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReapTarget {
    Export { export_id: Id },
    OrphanAsset { asset_id: Id },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    Transcode,
    Export,
    DeleteAsset,
    Reap,
    Probe,
    Purge,
    PurgeAccount,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Transcode => "transcode",
            JobType::Export => "export",
            JobType::DeleteAsset => "delete_asset",
            JobType::Reap => "reap",
            JobType::Probe => "probe",
            JobType::Purge => "purge",
            JobType::PurgeAccount => "purge_account",
        }
    }
}

impl Job {
    pub fn job_type(&self) -> JobType {
        match self {
            Job::Transcode { .. } => JobType::Transcode,
            Job::Export { .. } => JobType::Export,
            Job::DeleteAsset { .. } => JobType::DeleteAsset,
            Job::Reap { .. } => JobType::Reap,
            Job::Probe { .. } => JobType::Probe,
            Job::Purge { .. } => JobType::Purge,
            Job::PurgeAccount { .. } => JobType::PurgeAccount,
        }
    }

    /// The asset the job is about, if it is about one.
    pub fn asset_id(&self) -> Option<Id> {
        match self {
            Job::Transcode { asset_id, .. } | Job::DeleteAsset { asset_id } | Job::Probe { asset_id } => {
                Some(*asset_id)
            }
            Job::Reap {
                target: ReapTarget::OrphanAsset { asset_id },
            } => Some(*asset_id),
            Job::Export { .. }
            | Job::Purge { .. }
            | Job::PurgeAccount { .. }
            | Job::Reap {
                target: ReapTarget::Export { .. },
            } => None,
        }
    }
}

impl JobMessage {
    pub fn new(job_id: Id, account_id: Id, trace_id: TraceId, enqueued_at_ms: i64, job: Job) -> Self {
        JobMessage {
            schema_version: SCHEMA_VERSION,
            job_id,
            account_id,
            trace_id,
            enqueued_at: format_rfc3339_millis(enqueued_at_ms),
            redrive_count: 0,
            job,
        }
    }

    /// Parses a message body: JSON text, then the checks JSON Schema also makes.
    pub fn parse(body: &str) -> Result<Self, ContractError> {
        let message: JobMessage =
            serde_json::from_str(body).map_err(|e| ContractError(format!("not a v1 job message: {e}")))?;
        message.validate()?;
        Ok(message)
    }

    /// Like [`JobMessage::parse`], for a body the queue runtime already decoded.
    pub fn from_value(body: serde_json::Value) -> Result<Self, ContractError> {
        let message: JobMessage =
            serde_json::from_value(body).map_err(|e| ContractError(format!("not a v1 job message: {e}")))?;
        message.validate()?;
        Ok(message)
    }

    fn validate(&self) -> Result<(), ContractError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(ContractError(format!(
                "unsupported schema_version {}",
                self.schema_version
            )));
        }
        parse_rfc3339_millis(&self.enqueued_at)?;
        if let Job::Transcode {
            original_key,
            media_type,
            ..
        } = &self.job
        {
            if original_key.is_empty() || original_key.len() > 1024 {
                return Err(ContractError("original_key must be 1-1024 characters".into()));
            }
            if !(media_type.starts_with("image/") || media_type.starts_with("video/")) {
                return Err(ContractError("media_type must be image/* or video/*".into()));
            }
        }
        if let Job::Purge { token_hash, .. } = &self.job {
            if !is_token_hash(token_hash) {
                return Err(ContractError(
                    "token_hash must be 64 lowercase hex digits (a SHA-256, never a token)".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn enqueued_at_ms(&self) -> i64 {
        // validate() has checked it; a hand-built message with a bad timestamp reads as epoch 0
        parse_rfc3339_millis(&self.enqueued_at).unwrap_or(0)
    }

    pub fn job_type(&self) -> JobType {
        self.job.job_type()
    }

    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys, no floats.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::from_random_bytes([n; 16])
    }

    #[test]
    fn a_transcode_job_flattens_its_fields_beside_the_job_type() {
        let trace = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let job = Job::Transcode {
            asset_id: id(2),
            original_key: "originals/a.jpg".into(),
            media_type: "image/jpeg".into(),
        };
        let message = JobMessage::new(id(1), id(3), trace, 1_700_000_000_000, job);
        let value: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(value["job_type"], "transcode");
        assert_eq!(value["asset_id"], id(2).to_string());
        assert_eq!(value["enqueued_at"], "2023-11-14T22:13:20.000Z");
        assert!(value.get("redrive_count").is_none(), "zero redrives are left out");
        assert_eq!(JobMessage::parse(&message.to_json()), Ok(message));
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let trace = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let mut message = JobMessage::new(id(1), id(3), trace, 0, Job::Export { export_id: id(4) });
        message.schema_version = 2;
        assert!(JobMessage::parse(&message.to_json()).is_err());
    }

    #[test]
    fn a_purge_job_carries_a_token_hash_and_nothing_else_passes_for_one() {
        let trace = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let purge = |token_hash: &str| {
            JobMessage::new(
                id(1),
                id(3),
                trace.clone(),
                0,
                Job::Purge {
                    token_hash: token_hash.into(),
                    failed_attempts: 2,
                },
            )
        };
        let good = purge(&"ab".repeat(32));
        let value: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
        assert_eq!(value["job_type"], "purge");
        assert_eq!(value["failed_attempts"], 2);
        assert_eq!(JobMessage::parse(&good.to_json()), Ok(good.clone()));
        assert_eq!(good.job.asset_id(), None);
        let rows = [
            ("AB".repeat(32), "uppercase hex"),
            ("ab".repeat(31), "62 digits"),
            ("ab".repeat(33), "66 digits"),
            (format!("{}zz", "ab".repeat(31)), "not hex"),
            ("Zm9vYmFyLXRva2VuLW5vdC1oYXNo".into(), "a base64url token"),
            (String::new(), "empty"),
        ];
        for (token_hash, why) in rows {
            assert!(
                JobMessage::parse(&purge(&token_hash).to_json()).is_err(),
                "{why} passed"
            );
        }
        let without_attempts = good.to_json().replace(",\"failed_attempts\":2", "");
        assert!(!without_attempts.contains("failed_attempts"));
        match JobMessage::parse(&without_attempts).unwrap().job {
            Job::Purge { failed_attempts, .. } => assert_eq!(failed_attempts, 0, "absent means none failed"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_asset_of_a_job_is_known_only_for_asset_jobs() {
        assert_eq!(Job::Probe { asset_id: id(5) }.asset_id(), Some(id(5)));
        assert_eq!(Job::Export { export_id: id(5) }.asset_id(), None);
        assert_eq!(
            Job::Reap {
                target: ReapTarget::OrphanAsset { asset_id: id(6) }
            }
            .asset_id(),
            Some(id(6))
        );
    }
}
