//! The rows behind jobs, assets and exports alike, as one state machine (the rules are in
//! `babybook_jobs::lifecycle`): claim a lease, release it for a retry, finish, mark failed once
//! the dead record is stored, mark published, and queue again for a re-drive. Every write of a
//! job's row status goes through here.

use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryRow;

use babybook_jobs::lifecycle::{self, MediaOutput, RowStatus};
use babybook_jobs::{Failure, Id};

use crate::error::{ApiError, ErrorCode};
use crate::sql_text;

use super::context::Io;
use super::db::{self, col, Budget, Param, Scope, Tx};

pub use crate::jobs::port::{Bid, Claim, Subject};

/// The table of a job's row.
fn table_of(subject: Subject) -> &'static str {
    match subject {
        Subject::Asset(_) => "asset",
        Subject::Export(_) => "account_export",
    }
}

/// The `SET` items that keep the row's own timestamps: `asset` has `updated_at`,
/// `account_export` has none. `claiming` adds `processing_started_at` (assets only too).
fn touched(subject: Subject, claiming: bool) -> &'static str {
    match (subject, claiming) {
        (Subject::Asset(_), false) => ", updated_at = now()",
        (Subject::Asset(_), true) => ", processing_started_at = now(), updated_at = now()",
        (Subject::Export(_), _) => "",
    }
}

/// The statements that claim the rows of `bids` (one account's, for its transaction) for their
/// holders, with a lease of [`lifecycle::LEASE_SECONDS`]: one statement for the assets and one for
/// the exports, whatever the number of bids. A bid wins a `queued` row, a `processing` row whose
/// lease expired or is already its holder's (its own retry), and a `failed` row when its job was
/// re-driven. Two bids for one row (a duplicate delivery in the same batch): one wins, the other
/// finds the row leased. Each bid gets one answer row: `bid`, `redriven`, `won`, `status`
/// ([`claims_from`]).
pub fn claim_statements(bids: &[Bid<'_>]) -> Vec<String> {
    ["asset", "account_export"]
        .into_iter()
        .filter_map(|table| {
            let mine: Vec<&Bid> = bids.iter().filter(|b| table_of(b.subject) == table).collect();
            let subject = mine.first()?.subject;
            Some(format!(
                "WITH want AS (
                   SELECT * FROM unnest({ids}, {holders}, {redriven}, {numbers}) AS w(id, holder, redriven, bid)
                 ), claimed AS (
                   UPDATE {table} AS t SET status = 'processing', lease_expires_at = now() + interval '{lease} seconds',
                     lease_holder = want.holder{asset_columns}
                   FROM want
                   WHERE t.id = want.id AND (t.status = 'queued'
                     OR (t.status = 'processing' AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now() OR t.lease_holder = want.holder))
                     OR (t.status = 'failed' AND want.redriven))
                   RETURNING t.id, t.lease_holder
                 )
                 SELECT want.bid, want.redriven, coalesce(claimed.lease_holder = want.holder, false) AS won,
                        CASE WHEN claimed.id IS NULL THEN t.status ELSE 'processing' END AS status
                 FROM want LEFT JOIN claimed ON claimed.id = want.id LEFT JOIN {table} AS t ON t.id = want.id",
                ids = sql_text::uuid_array(mine.iter().map(|b| b.subject.raw())),
                holders = sql_text::text_array(mine.iter().map(|b| b.holder)),
                redriven = sql_text::bool_array(mine.iter().map(|b| b.redriven)),
                numbers = sql_text::int_array(mine.iter().map(|b| i32::try_from(b.number).ok())),
                lease = lifecycle::LEASE_SECONDS,
                asset_columns = touched(subject, true),
            ))
        })
        .collect()
}

/// The claims answered in `rows` (rows of other statements, without a `bid` column, are
/// skipped), by bid number; a bid with no answer row is absent.
pub fn claims_from(rows: &[SimpleQueryRow]) -> Result<Vec<(usize, Claim)>, ApiError> {
    let bad = |what: &str| ApiError::new(ErrorCode::Internal, format!("claim answer: {what}"));
    rows.iter()
        .filter(|row| row.columns().iter().any(|c| c.name() == "bid"))
        .map(|row| {
            let text = |name: &str| row.try_get(name).map_err(|e| bad(&e.to_string()));
            let number = text("bid")?.and_then(|n| n.parse().ok()).ok_or_else(|| bad("bid"))?;
            let claim = if text("won")? == Some("t") {
                Claim::Won
            } else {
                let status = text("status")?.and_then(RowStatus::parse);
                Claim::Lost(lifecycle::when_claim_lost(status, text("redriven")? == Some("t")))
            };
            Ok((number, claim))
        })
        .collect()
}

/// The `status` of row `id` of `table`, in an open transaction (`None`: not in the account).
pub async fn status_of(tx: &Tx, table: &str, id: &str) -> Result<Option<String>, ApiError> {
    let sql = format!("SELECT status FROM {table} WHERE id = $1::uuid");
    tx.opt(&sql, &[(&id, Type::TEXT)])
        .await?
        .map(|r| col::<String>(&r, 0))
        .transpose()
}

/// Hands the row back to `queued` before a retry, so nothing waits for the lease to run out.
/// If this fails (the database is the failing part), the retry of the same message takes its own
/// lease back, and if no retry comes the lease expires and the sweep re-publishes the job.
pub async fn release(io: &Io, account: Id, subject: Subject, holder: &str) -> Result<(), ApiError> {
    let sql = format!(
        "UPDATE {} SET status = 'queued', queued_at = now(), lease_expires_at = NULL, lease_holder = NULL{}
         WHERE id = $1::uuid AND status = 'processing' AND lease_holder = $2 RETURNING 1",
        table_of(subject),
        touched(subject, false),
    );
    let (id, holder) = (subject.id(), holder.to_owned());
    write(io, account, &sql, &[(&id, Type::TEXT), (&holder, Type::TEXT)])
        .await
        .map(|_| ())
}

/// The statements that record finished jobs (one account's, for its transaction): each asset
/// `ready` with its validated output, each export `ready` with its archive's key; one statement
/// per table, none for a table with nothing to record. Every write is fenced by the lease: only a
/// row still `processing` under the delivery that ran the job changes, so a delivery that
/// outlived its lease (another one took the row over) writes nothing. Each row written answers
/// `finished` = its id ([`finished_from`]).
pub fn finish_statements(assets: &[(Id, &str, &MediaOutput)], exports: &[(Id, &str, &str)]) -> Vec<String> {
    let mut statements = Vec::new();
    if !assets.is_empty() {
        statements.push(format!(
            "UPDATE asset AS t SET status = 'ready', derivatives = w.derivatives::jsonb, width = coalesce(w.width, t.width),
               height = coalesce(w.height, t.height), ready_at = now(), failure_reason = NULL,
               lease_expires_at = NULL, lease_holder = NULL, updated_at = now()
             FROM unnest({ids}, {holders}, {derivatives}, {widths}, {heights}) AS w(id, holder, derivatives, width, height)
             WHERE t.id = w.id AND t.status = 'processing' AND t.lease_holder = w.holder
             RETURNING t.id::text AS finished",
            ids = sql_text::uuid_array(assets.iter().map(|(id, _, _)| *id)),
            holders = sql_text::text_array(assets.iter().map(|(_, holder, _)| *holder)),
            derivatives = sql_text::text_array(assets.iter().map(|(_, _, o)| o.derivatives.as_str())),
            widths = sql_text::int_array(assets.iter().map(|(_, _, o)| o.width)),
            heights = sql_text::int_array(assets.iter().map(|(_, _, o)| o.height)),
        ));
    }
    if !exports.is_empty() {
        statements.push(format!(
            "UPDATE account_export AS t SET status = 'ready', object_key = nullif(w.key, ''), ready_at = now(),
               lease_expires_at = NULL, lease_holder = NULL
             FROM unnest({ids}, {holders}, {keys}) AS w(id, holder, key)
             WHERE t.id = w.id AND t.status = 'processing' AND t.lease_holder = w.holder
             RETURNING t.id::text AS finished",
            ids = sql_text::uuid_array(exports.iter().map(|(id, _, _)| *id)),
            holders = sql_text::text_array(exports.iter().map(|(_, holder, _)| *holder)),
            keys = sql_text::text_array(exports.iter().map(|(_, _, key)| *key)),
        ));
    }
    statements
}

/// The ids of the rows the finish statements wrote (rows of other statements are skipped).
pub fn finished_from(rows: &[SimpleQueryRow]) -> Vec<String> {
    rows.iter()
        .filter(|row| row.columns().iter().any(|c| c.name() == "finished"))
        .filter_map(|row| row.try_get("finished").ok().flatten().map(str::to_owned))
        .collect()
}

/// Who marks a row `failed`, which decides what it may overwrite.
#[derive(Debug, Clone, Copy)]
pub enum MarkedBy<'a> {
    /// The delivery that ran the job, by its lease: a row another delivery holds is left alone.
    Delivery(&'a str),
    /// The DLQ handler, once the dead record is stored: any row not under a live lease.
    DeadLetters,
}

/// Marks the row `failed` with a reason the app can show. Called only once the dead record is on
/// its way to the store (the consumer) or stored (the DLQ handler): a failed row always has one.
/// `Ok(false)`: nothing changed (the row is ready, deleted, or leased by another delivery).
pub async fn mark_failed(
    io: &Io,
    account: Id,
    subject: Subject,
    failure: &Failure,
    by: MarkedBy<'_>,
) -> Result<bool, ApiError> {
    let reason = format!(
        "{}: {}",
        failure.kind.class().as_str(),
        serde_json::to_value(failure.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    let fence = match by {
        // Only its own lease: a row it never won, or one re-driven since, is the DLQ handler's.
        MarkedBy::Delivery(_) => "(status = 'processing' AND lease_holder = $3)",
        // `$3` is no message id: only an expired lease or none lets the handler through.
        MarkedBy::DeadLetters => {
            "(status <> 'processing' OR lease_expires_at IS NULL OR lease_expires_at < now() OR lease_holder = $3)"
        }
    };
    let holder = match by {
        MarkedBy::Delivery(holder) => holder.to_owned(),
        MarkedBy::DeadLetters => String::new(),
    };
    let sql = format!(
        "UPDATE {} SET status = 'failed', failure_reason = $2, lease_expires_at = NULL, lease_holder = NULL{}
         WHERE id = $1::uuid AND status NOT IN ('ready', 'deleted') AND {fence} RETURNING 1",
        table_of(subject),
        touched(subject, false),
    );
    let id = subject.id();
    write(
        io,
        account,
        &sql,
        &[(&id, Type::TEXT), (&reason, Type::TEXT), (&holder, Type::TEXT)],
    )
    .await
    .map(|changed| changed > 0)
}

/// Records that the row's job is on the queue, so the sweep of lost publishes leaves it alone.
/// Best effort: if this fails the sweep publishes the job once more, which the consumer's
/// idempotency absorbs.
pub async fn mark_published(io: &Io, account: Id, subject: Subject) {
    let sql = format!(
        "UPDATE {} SET published_at = now() WHERE id = $1::uuid RETURNING 1",
        table_of(subject)
    );
    let id = subject.id();
    let _ = write(io, account, &sql, &[(&id, Type::TEXT)]).await;
}

/// Before a re-drive: a `failed` row goes back to `queued`, not yet published.
pub async fn requeue_for_redrive(io: &Io, account: Id, subject: Subject) -> Result<(), ApiError> {
    let sql = format!(
        "UPDATE {} SET status = 'queued', queued_at = now(), published_at = NULL, failure_reason = NULL{}
         WHERE id = $1::uuid AND status = 'failed' RETURNING 1",
        table_of(subject),
        touched(subject, false),
    );
    let id = subject.id();
    write(io, account, &sql, &[(&id, Type::TEXT)]).await.map(|_| ())
}

/// One write of a job's row (or a delete job's), alone in a transaction of `account`: how many
/// rows it changed. Every such write goes through here, so the Worker carries one copy of the
/// transaction's code for them, not one per write (the size budget, docs/performance.md).
pub async fn write(io: &Io, account: Id, sql: &str, params: &[Param<'_>]) -> Result<u64, ApiError> {
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec(sql, params).await
    })
    .await
}
