//! The rows behind jobs, assets and exports alike, as one state machine (the rules are in
//! `babybook_jobs::lifecycle`): claim a lease, release it for a retry, finish, mark failed once
//! the dead record is stored, mark published, and queue again for a re-drive. Every write of a
//! job's row status goes through here.

use tokio_postgres::types::Type;

use babybook_jobs::lifecycle::{self, LostClaim, MediaOutput, RowStatus};
use babybook_jobs::{Failure, Id, Job};

use crate::error::{ApiError, ErrorCode};

use super::context::Io;
use super::db::{self, col, Budget, Scope, Tx};

/// The row a job works on.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Asset(Id),
    Export(Id),
}

impl Subject {
    /// The row of a job that has one to lease (deletions and reaps do not: they are idempotent
    /// on their own and hold no claim).
    pub fn of(job: &Job) -> Option<Subject> {
        match job {
            Job::Transcode { asset_id, .. } | Job::Probe { asset_id } => Some(Subject::Asset(*asset_id)),
            Job::Export { export_id } => Some(Subject::Export(*export_id)),
            Job::DeleteAsset { .. } | Job::Reap { .. } | Job::Purge { .. } => None,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Subject::Asset(_) => "asset",
            Subject::Export(_) => "account_export",
        }
    }

    fn id(self) -> String {
        match self {
            Subject::Asset(id) | Subject::Export(id) => id.to_string(),
        }
    }

    /// The `SET` items that keep the row's own timestamps: `asset` has `updated_at`,
    /// `account_export` has none. `claiming` adds `processing_started_at` (assets only too).
    fn touched(self, claiming: bool) -> &'static str {
        match (self, claiming) {
            (Subject::Asset(_), false) => ", updated_at = now()",
            (Subject::Asset(_), true) => ", processing_started_at = now(), updated_at = now()",
            (Subject::Export(_), _) => "",
        }
    }
}

/// Whether a delivery won the row of its job.
pub enum Claim {
    /// The row is `processing` under this delivery's lease.
    Won,
    Lost(LostClaim),
}

/// One job's bid for its row in a batch's claim.
pub struct Bid<'a> {
    pub subject: Subject,
    /// The queue message id: the same on every retry of that message, another for a duplicate.
    pub holder: &'a str,
    /// The job was re-driven: it may take a `failed` row back.
    pub redriven: bool,
}

/// Claims the rows of `bids` (one account's, in its open transaction) for their holders, with a
/// lease of [`lifecycle::LEASE_SECONDS`]: one statement for the assets and one for the exports,
/// whatever the number of bids. A bid wins a `queued` row, a `processing` row whose lease expired
/// or is already its holder's (its own retry), and a `failed` row when its job was re-driven.
/// Two bids for one row (a duplicate delivery in the same batch): one wins, the other finds the
/// row leased. The answer is in the order of `bids`.
pub async fn claim_all(tx: &Tx, bids: &[Bid<'_>]) -> Result<Vec<Claim>, ApiError> {
    let mut claims: Vec<Option<Claim>> = bids.iter().map(|_| None).collect();
    for table in ["asset", "account_export"] {
        let mine: Vec<usize> = (0..bids.len()).filter(|&i| bids[i].subject.table() == table).collect();
        let Some(&first) = mine.first() else { continue };
        let subject = bids[first].subject;
        let ids: Vec<String> = mine.iter().map(|&i| bids[i].subject.id()).collect();
        let holders: Vec<String> = mine.iter().map(|&i| bids[i].holder.to_owned()).collect();
        let redriven: Vec<bool> = mine.iter().map(|&i| bids[i].redriven).collect();
        let sql = format!(
            "WITH want AS (
               SELECT * FROM unnest($1::text[]::uuid[], $2::text[], $3::bool[]) WITH ORDINALITY AS w(id, holder, redriven, n)
             ), claimed AS (
               UPDATE {table} AS t SET status = 'processing', lease_expires_at = now() + interval '{lease} seconds',
                 lease_holder = want.holder{asset_columns}
               FROM want
               WHERE t.id = want.id AND (t.status = 'queued'
                 OR (t.status = 'processing' AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now() OR t.lease_holder = want.holder))
                 OR (t.status = 'failed' AND want.redriven))
               RETURNING t.id, t.lease_holder
             )
             SELECT want.n, coalesce(claimed.lease_holder = want.holder, false),
                    CASE WHEN claimed.id IS NULL THEN t.status ELSE 'processing' END
             FROM want LEFT JOIN claimed ON claimed.id = want.id LEFT JOIN {table} AS t ON t.id = want.id",
            lease = lifecycle::LEASE_SECONDS,
            asset_columns = subject.touched(true),
        );
        let rows = tx
            .rows(
                &sql,
                &[
                    (&ids, Type::TEXT_ARRAY),
                    (&holders, Type::TEXT_ARRAY),
                    (&redriven, Type::BOOL_ARRAY),
                ],
            )
            .await?;
        for row in &rows {
            let n = usize::try_from(col::<i64>(row, 0)?).unwrap_or(0);
            let Some(&index) = n.checked_sub(1).and_then(|k| mine.get(k)) else {
                return Err(ApiError::new(ErrorCode::Internal, "claim answered an unknown bid"));
            };
            claims[index] = Some(if col::<bool>(row, 1)? {
                Claim::Won
            } else {
                let status: Option<String> = col(row, 2)?;
                Claim::Lost(lifecycle::when_claim_lost(status.as_deref().and_then(RowStatus::parse)))
            });
        }
    }
    claims
        .into_iter()
        .map(|c| c.ok_or_else(|| ApiError::new(ErrorCode::Internal, "claim left a bid unanswered")))
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
        subject.table(),
        subject.touched(false),
    );
    let (id, holder) = (subject.id(), holder.to_owned());
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec(&sql, &[(&id, Type::TEXT), (&holder, Type::TEXT)]).await
    })
    .await
    .map(|_| ())
}

/// Transcodes and probes that are done (one account's, in its open transaction): each asset is
/// `ready` with its validated output, in one statement.
pub async fn finish_assets(tx: &Tx, done: &[(Id, &MediaOutput)]) -> Result<(), ApiError> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = done.iter().map(|(id, _)| id.to_string()).collect();
    let derivatives: Vec<&str> = done.iter().map(|(_, o)| o.derivatives.as_str()).collect();
    let widths: Vec<Option<i32>> = done.iter().map(|(_, o)| o.width).collect();
    let heights: Vec<Option<i32>> = done.iter().map(|(_, o)| o.height).collect();
    tx.exec(
        "UPDATE asset AS t SET status = 'ready', derivatives = w.derivatives::jsonb, width = coalesce(w.width, t.width),
           height = coalesce(w.height, t.height), ready_at = now(), failure_reason = NULL,
           lease_expires_at = NULL, lease_holder = NULL, updated_at = now()
         FROM unnest($1::text[]::uuid[], $2::text[], $3::int4[], $4::int4[]) AS w(id, derivatives, width, height)
         WHERE t.id = w.id AND t.status = 'processing' RETURNING 1",
        &[
            (&ids, Type::TEXT_ARRAY),
            (&derivatives, Type::TEXT_ARRAY),
            (&widths, Type::INT4_ARRAY),
            (&heights, Type::INT4_ARRAY),
        ],
    )
    .await
    .map(|_| ())
}

/// Exports that are done (one account's, in its open transaction): each `ready` with its
/// archive's key, in one statement.
pub async fn finish_exports(tx: &Tx, done: &[(Id, &str)]) -> Result<(), ApiError> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = done.iter().map(|(id, _)| id.to_string()).collect();
    let keys: Vec<&str> = done.iter().map(|(_, key)| *key).collect();
    tx.exec(
        "UPDATE account_export AS t SET status = 'ready', object_key = nullif(w.key, ''), ready_at = now(),
           lease_expires_at = NULL, lease_holder = NULL
         FROM unnest($1::text[]::uuid[], $2::text[]) AS w(id, key)
         WHERE t.id = w.id AND t.status = 'processing' RETURNING 1",
        &[(&ids, Type::TEXT_ARRAY), (&keys, Type::TEXT_ARRAY)],
    )
    .await
    .map(|_| ())
}

/// Marks the row `failed` with a reason the app can show. Called only once the dead record is on
/// its way to the store (the consumer) or stored (the DLQ handler): a failed row always has one.
pub async fn mark_failed(io: &Io, account: Id, subject: Subject, failure: &Failure) -> Result<(), ApiError> {
    let reason = format!(
        "{}: {}",
        failure.kind.class().as_str(),
        serde_json::to_value(failure.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    let sql = format!(
        "UPDATE {} SET status = 'failed', failure_reason = $2, lease_expires_at = NULL, lease_holder = NULL{}
         WHERE id = $1::uuid AND status NOT IN ('ready', 'deleted') RETURNING 1",
        subject.table(),
        subject.touched(false),
    );
    let id = subject.id();
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec(&sql, &[(&id, Type::TEXT), (&reason, Type::TEXT)]).await
    })
    .await
    .map(|_| ())
}

/// Records that the row's job is on the queue, so the sweep of lost publishes leaves it alone.
/// Best effort: if this fails the sweep publishes the job once more, which the consumer's
/// idempotency absorbs.
pub async fn mark_published(io: &Io, account: Id, subject: Subject) {
    let sql = format!(
        "UPDATE {} SET published_at = now() WHERE id = $1::uuid RETURNING 1",
        subject.table()
    );
    let id = subject.id();
    let _ = db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec(&sql, &[(&id, Type::TEXT)]).await
    })
    .await;
}

/// Before a re-drive: a `failed` row goes back to `queued`, not yet published.
pub async fn requeue_for_redrive(io: &Io, account: Id, subject: Subject) -> Result<(), ApiError> {
    let sql = format!(
        "UPDATE {} SET status = 'queued', queued_at = now(), published_at = NULL, failure_reason = NULL{}
         WHERE id = $1::uuid AND status = 'failed' RETURNING 1",
        subject.table(),
        subject.touched(false),
    );
    let id = subject.id();
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec(&sql, &[(&id, Type::TEXT)]).await
    })
    .await
    .map(|_| ())
}
