//! The rows behind jobs, assets and exports alike, as one state machine (the rules are in
//! `babybook_jobs::lifecycle`): claim a lease, release it for a retry, finish, mark failed once
//! the dead record is stored, mark published, and queue again for a re-drive. Every write of a
//! job's row status goes through here.

use tokio_postgres::types::Type;

use babybook_jobs::lifecycle::{self, LostClaim, MediaOutput, RowStatus};
use babybook_jobs::{Failure, Id, Job};

use crate::error::ApiError;

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

/// Claims the row for `holder` (the queue message id, stable across that message's retries) with
/// a lease of [`lifecycle::LEASE_SECONDS`]. Wins a `queued` row, a `processing` row whose lease
/// expired or is already `holder`'s (its own retry), and a `failed` row when the job was
/// re-driven.
pub async fn claim(io: &Io, account: Id, subject: Subject, holder: &str, redriven: bool) -> Result<Claim, ApiError> {
    let sql = format!(
        "UPDATE {table} SET status = 'processing', lease_expires_at = now() + interval '{lease} seconds',
           lease_holder = $3{asset_columns}
         WHERE id = $1::uuid AND (status = 'queued'
           OR (status = 'processing' AND (lease_expires_at IS NULL OR lease_expires_at < now() OR lease_holder = $3))
           OR (status = 'failed' AND $2::bool))
         RETURNING 1",
        table = subject.table(),
        lease = lifecycle::LEASE_SECONDS,
        asset_columns = subject.touched(true),
    );
    let id = subject.id();
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        let holder = holder.to_owned();
        if tx
            .exec(
                &sql,
                &[(&id, Type::TEXT), (&redriven, Type::BOOL), (&holder, Type::TEXT)],
            )
            .await?
            == 1
        {
            return Ok(Claim::Won);
        }
        let status = status_of(tx, subject.table(), &id).await?;
        Ok(Claim::Lost(lifecycle::when_claim_lost(
            status.as_deref().and_then(RowStatus::parse),
        )))
    })
    .await
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

/// A transcode or probe is done: the asset is `ready` with the validated output.
pub async fn finish_asset(io: &Io, account: Id, asset: Id, output: &MediaOutput) -> Result<(), ApiError> {
    let id = asset.to_string();
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec(
            "UPDATE asset SET status = 'ready', derivatives = $2::text::jsonb, width = coalesce($3, width),
               height = coalesce($4, height), ready_at = now(), failure_reason = NULL,
               lease_expires_at = NULL, lease_holder = NULL, updated_at = now()
             WHERE id = $1::uuid AND status = 'processing' RETURNING 1",
            &[
                (&id, Type::TEXT),
                (&output.derivatives, Type::TEXT),
                (&output.width, Type::INT4),
                (&output.height, Type::INT4),
            ],
        )
        .await
    })
    .await
    .map(|_| ())
}

/// An export is done: `ready` with its archive's key.
pub async fn finish_export(io: &Io, account: Id, export: Id, object_key: &str) -> Result<(), ApiError> {
    let (id, key) = (export.to_string(), object_key.to_owned());
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec(
            "UPDATE account_export SET status = 'ready', object_key = nullif($2, ''), ready_at = now(),
               lease_expires_at = NULL, lease_holder = NULL
             WHERE id = $1::uuid AND status = 'processing' RETURNING 1",
            &[(&id, Type::TEXT), (&key, Type::TEXT)],
        )
        .await
    })
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
