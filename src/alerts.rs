//! Alerts that reach a person (seed §5.4, §6.2): which alerts exist, how severe each is, where
//! its runbook is, the small JSON document the webhook receives, and the de-duplication rule
//! (one page per alert per window, however many isolates raise it).
//!
//! An alert is first a log line (`alert`, `severity`, `runbook` fields, never sampled away);
//! `edge::alerts` forwards that line to `ALERT_WEBHOOK_URL` when the window allows.

use serde_json::{json, Value};

use crate::telemetry::DeployedVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Alert {
    /// A job reached the dead-letter queue.
    DlqItem,
    /// The synthetic probe's job took over 5 minutes, or never finished.
    QueueTtr,
    /// Global cache purges keep failing: a revoked link may still be served elsewhere.
    PurgeFailing,
    /// One email is being tried from many networks.
    LoginEmailCeiling,
    /// The probe's job was not even picked up within 5 minutes: nothing consumes `jobs`.
    ConsumerStalled,
    /// The 5xx rate or the share pages' TTFB spends the error budget over 14.4× too fast in
    /// both the last hour and the last six (`crate::slo`), checked by the `slo_burn` cron job.
    SloFastBurn,
    /// A revoke or a session end was not written to the revocation journal: a point-in-time
    /// restore to before it would bring the link or the session back (`crate::journal`).
    JournalWriteFailed,
    /// The dead-job store (R2) refuses a dead job's record: the DLQ handler keeps it on the queue,
    /// re-published, until the store takes it.
    DeadJobStoreFailing,
    /// One locked link's passphrase form gets more answers than relatives send: someone is
    /// guessing (`rate_limit::LINK_PASSPHRASE`).
    LinkPassphraseGuessed,
}

/// A keyed digest of an email for an alert line (32 hex digits of HMAC-SHA256 under a key derived
/// from `key`): stable per address, so alerts about one address can be grouped, and not a plain
/// hash, which anyone with the log could test guessed addresses against.
pub fn keyed_email_digest(key: &crate::session::SigningKey, folded_email: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let derived = key.derive("alert-email");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&derived).expect("HMAC takes any key length");
    mac.update(folded_email.as_bytes());
    crate::hex::encode(&mac.finalize().into_bytes()[..16])
}

pub const ALL: [Alert; 9] = [
    Alert::DlqItem,
    Alert::QueueTtr,
    Alert::PurgeFailing,
    Alert::LoginEmailCeiling,
    Alert::ConsumerStalled,
    Alert::SloFastBurn,
    Alert::JournalWriteFailed,
    Alert::DeadJobStoreFailing,
    Alert::LinkPassphraseGuessed,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Sev1,
    Sev2,
    Sev3,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Sev1 => "sev1",
            Severity::Sev2 => "sev2",
            Severity::Sev3 => "sev3",
        }
    }
}

impl Alert {
    /// The `alert` field of its log line and of the webhook document.
    pub fn name(self) -> &'static str {
        match self {
            Alert::DlqItem => "dlq_item",
            Alert::QueueTtr => "queue_ttr",
            Alert::PurgeFailing => "purge_failing",
            Alert::LoginEmailCeiling => "login_email_ceiling",
            Alert::ConsumerStalled => "consumer_stalled",
            Alert::SloFastBurn => "slo_fast_burn",
            Alert::JournalWriteFailed => "journal_write_failed",
            Alert::DeadJobStoreFailing => "dead_job_store_failing",
            Alert::LinkPassphraseGuessed => "link_passphrase_guessed",
        }
    }

    pub fn parse(name: &str) -> Option<Alert> {
        ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn severity(self) -> Severity {
        match self {
            // Seed §5.5: a stuck queue is a fire.
            Alert::ConsumerStalled | Alert::SloFastBurn => Severity::Sev1,
            Alert::DlqItem
            | Alert::QueueTtr
            | Alert::PurgeFailing
            | Alert::JournalWriteFailed
            | Alert::DeadJobStoreFailing => Severity::Sev2,
            Alert::LoginEmailCeiling | Alert::LinkPassphraseGuessed => Severity::Sev3,
        }
    }

    /// Marks a log line as this alert: its name, severity and runbook, the fields
    /// `edge::alerts::raise` and the log readers look for.
    pub fn on(self, line: crate::telemetry::LogLine) -> crate::telemetry::LogLine {
        line.field("alert", self.name())
            .field("severity", self.severity().as_str())
            .field("runbook", self.runbook())
    }

    /// The runbook, as a path in this repository (the webhook gets it behind `RUNBOOK_BASE_URL`).
    pub fn runbook(self) -> &'static str {
        match self {
            Alert::DlqItem => "docs/runbooks/dlq.md",
            Alert::QueueTtr => "docs/runbooks/dlq.md#queue-probe",
            Alert::PurgeFailing => "docs/runbooks/cache-purge.md",
            Alert::LoginEmailCeiling => "docs/runbooks/abuse.md#login_email_ceiling",
            Alert::ConsumerStalled => "docs/runbooks/incident.md#consumer-stalled",
            Alert::SloFastBurn => "docs/runbooks/incident.md#the-first-five-minutes",
            Alert::JournalWriteFailed => "docs/runbooks/pitr-cutover.md#the-revocation-journal",
            Alert::DeadJobStoreFailing => "docs/runbooks/dlq.md#the-dead-job-store-is-failing",
            Alert::LinkPassphraseGuessed => "docs/runbooks/abuse.md#link_passphrase_guessed",
        }
    }
}

/// What the webhook receives: small, and nothing personal (the log line it came from may carry
/// an account hash or a job id; the page only says what, where and which version).
pub fn webhook_document(
    alert: Alert,
    summary: &str,
    environment: &str,
    version: &DeployedVersion,
    trace_id: &str,
    runbook_base_url: &str,
) -> Value {
    json!({
        "severity": alert.severity().as_str(),
        "alert": alert.name(),
        "summary": summary,
        "environment": environment,
        "version": {"id": version.id, "tag": version.tag, "package": crate::VERSION},
        "trace_id": trace_id,
        "runbook": format!("{}{}", runbook_base_url, alert.runbook()),
    })
}

/// Whether an alert last sent at `last_sent_ms` (never: `None`) is sent again at `now_ms`: once
/// per `window_ms`. A clock that went backwards does not re-send.
pub fn due(last_sent_ms: Option<i64>, now_ms: i64, window_ms: i64) -> bool {
    match last_sent_ms {
        None => true,
        Some(last) => now_ms - last >= window_ms,
    }
}

/// The key in the operations namespace that records when an alert was last sent.
pub fn sent_key(alert: Alert) -> String {
    format!("alert-sent:{}", alert.name())
}

/// Default de-duplication window: one page per alert per 15 minutes.
pub const DEFAULT_WINDOW_SECONDS: u64 = 900;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alerts_email_key_is_keyed_stable_and_not_the_plain_digest() {
        use crate::session::SigningKey;
        let key = SigningKey::new("session-secret-for-alert-tests-0123456789");
        let email = crate::rate_limit::fold_email("Mae@Example.com");
        let a = keyed_email_digest(&key, &email);
        assert_eq!(a, keyed_email_digest(&key, "mae@example.com"), "one address, one key");
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            crate::rate_limit::email_digest("mae@example.com"),
            "not the plain digest"
        );
        assert_ne!(
            a,
            keyed_email_digest(&SigningKey::new("another-secret-0123456789abcdef"), &email),
            "keyed"
        );
    }

    #[test]
    fn every_alert_has_a_name_a_severity_and_a_runbook_that_exists() {
        for alert in ALL {
            assert_eq!(Alert::parse(alert.name()), Some(alert));
            let file = alert.runbook().split('#').next().unwrap();
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            assert!(path.is_file(), "{}: runbook {file} is missing", alert.name());
            if let Some(anchor) = alert.runbook().split('#').nth(1) {
                let text = std::fs::read_to_string(&path).unwrap();
                let has_heading = text
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .any(|l| heading_anchor(l) == anchor);
                assert!(has_heading, "{}: no heading for #{anchor} in {file}", alert.name());
            }
        }
        assert_eq!(Alert::parse("nope"), None);
    }

    /// GitHub's anchor for a Markdown heading line.
    fn heading_anchor(line: &str) -> String {
        line.trim_start_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_webhook_document_has_exactly_the_fields_a_person_needs() {
        let version = DeployedVersion {
            id: "6a4d2b1c-0000-4000-8000-000000000001".into(),
            tag: "v42".into(),
            uploaded_at_ms: None,
        };
        let doc = webhook_document(
            Alert::DlqItem,
            "dead job",
            "production",
            &version,
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "https://git.example/babybook-edge/blob/main/",
        );
        let mut keys: Vec<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "alert",
                "environment",
                "runbook",
                "severity",
                "summary",
                "trace_id",
                "version"
            ]
        );
        assert_eq!(doc["severity"], "sev2");
        assert_eq!(doc["version"]["id"], version.id.as_str());
        assert_eq!(
            doc["runbook"],
            "https://git.example/babybook-edge/blob/main/docs/runbooks/dlq.md"
        );
    }

    #[test]
    fn an_alert_is_sent_once_per_window() {
        let window = 900_000;
        let rows = [
            (None, 0, true),
            (Some(0), 1, false),
            (Some(0), window - 1, false),
            (Some(0), window, true),
            (Some(10_000), 5_000, false),
        ];
        for (last, now, expected) in rows {
            assert_eq!(due(last, now, window), expected, "row {last:?} {now}");
        }
    }
}
