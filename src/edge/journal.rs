//! The revocation journal's store (`crate::journal`): the `JOURNAL` R2 bucket. A revoke or a
//! session end is one put, made after the database committed and before the edge answers; the
//! re-apply after a restore (`admin::reapply_journal`) lists and reads it.

use worker::Bucket;

use crate::alerts::Alert;
use crate::config::binding;
use crate::journal::{Entry, Unreadable, PREFIX};
use crate::telemetry::Level;

use super::context::{self, Io, RequestContext};

fn bucket(io: &Io) -> Result<Bucket, String> {
    io.bucket(binding::JOURNAL).map_err(|e| format!("JOURNAL binding: {e}"))
}

/// Writes `entry` (one R2 put). The database already holds the change and stays the truth, so a
/// failed write does not fail the request: it raises `journal_write_failed` with what an
/// operator needs to write the entry by hand (docs/runbooks/pitr-cutover.md).
pub async fn record(cx: &RequestContext, entry: &Entry) {
    let key = entry.key();
    let written = match bucket(&cx.io) {
        Ok(bucket) => bucket
            .put(key.clone(), entry.to_json())
            .execute()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(detail) = written {
        let mut line = Alert::JournalWriteFailed
            .on(cx.line(Level::Error, "revocation journal write failed"))
            .field("journal_kind", entry.kind().as_str())
            .field("journal_key", key)
            .field("detail", detail);
        // A user id is kept out of logs like an account id; the runbook finds it from the time.
        if !matches!(entry, Entry::UserSessionsEnded { .. }) {
            line = line.field("journal_entry", entry.to_value());
        }
        super::alerts::raise(&cx.io, cx.config(), line);
    }
}

/// One page of keys, in order, after `start_after`; `cursor` is where the next page starts.
pub struct Page {
    pub keys: Vec<String>,
    pub cursor: Option<String>,
}

pub async fn list(io: &Io, start_after: &str, cursor: Option<&str>, limit: u32) -> Result<Page, String> {
    let bucket = bucket(io)?;
    let mut builder = bucket.list().prefix(PREFIX).start_after(start_after).limit(limit);
    if let Some(cursor) = cursor {
        builder = builder.cursor(cursor);
    }
    let objects = builder.execute().await.map_err(|e| e.to_string())?;
    Ok(Page {
        keys: objects.objects().into_iter().map(|o| o.key()).collect(),
        cursor: objects.cursor().filter(|_| objects.truncated()),
    })
}

/// The entry stored at `key` (`None`: gone since it was listed).
pub async fn read(io: &Io, key: &str) -> Result<Option<Result<Entry, Unreadable>>, String> {
    let Some(object) = bucket(io)?.get(key).execute().await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Some(body) = object.body() else {
        return Ok(None);
    };
    let text = body.text().await.map_err(|e| e.to_string())?;
    Ok(Some(Entry::parse(&text)))
}

/// A line for an object the re-apply skipped.
pub fn skipped(cx: &RequestContext, key: &str, why: &Unreadable) {
    context::emit(
        &cx.line(Level::Warn, "journal entry unreadable, skipped")
            .field("journal_key", key.to_owned())
            .field("detail", why.0.clone()),
    );
}
