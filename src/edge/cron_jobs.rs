//! The cron jobs (SPEC §5): seasonal prewarm, the daily reaper, the synthetic queue probe and the
//! sweep of lost publishes. Each takes "now" from the trigger's scheduled time, so a run fired for
//! a chosen `time` behaves as it would at that time, and logs one start and one end line.

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_postgres::types::Type;

use babybook_jobs::{format_rfc3339_millis, Id, Job, JobMessage, ReapTarget, TraceId};

use crate::alerts::Alert;
use crate::config::Config;
use crate::cron::{
    CronJob, EXPORT_TTL_MS, MAX_PAGES, ORPHAN_GRACE_MS, PAGE_SIZE, PROBE_ALERT_MS, QUEUED_SWEEP_AFTER_MS,
};
use crate::error::ApiError;
use crate::lang::Lang;
use crate::prewarm::active_window;
use crate::share::TokenHash;
use crate::telemetry::Level;

use super::context::{self, Io, Settings};
use super::db::{self, col, Budget, Scope};
use super::exchange::new_id;
use super::faults::{self, Fault};
use super::{job_rows, jobs, share_cache};

/// The account that owns synthetic probe assets (migration V5).
pub const PROBE_ACCOUNT: &str = "00000000-0000-4000-8000-00000000b0b0";

fn text(e: ApiError) -> String {
    format!("{:?}: {}", e.code, e.detail)
}

/// Runs one job with its start and end lines. `Err` is the failure, already logged.
pub async fn run(job: CronJob, io: &Io, settings: &Settings, trace: &TraceId, now_ms: i64) -> Result<(), String> {
    let config = &settings.config;
    let started = context::now_ms();
    context::emit(
        &context::line(config, trace, Level::Info, "cron start")
            .field("cron_job", job.as_str())
            .field("scheduled_time", format_rfc3339_millis(now_ms)),
    );
    let result = if faults::is_on(config, Fault::Cron(job)) {
        Err(format!("cron:{} fault switched on (test control)", job.as_str()))
    } else {
        match job {
            CronJob::Prewarm => {
                let forced = super::switches::is_on(io, config, crate::switches::Switch::ForcePrewarm).await;
                prewarm(io, config, trace, now_ms, forced).await
            }
            CronJob::Reaper => reaper(io, config, trace, now_ms).await,
            CronJob::QueueProbe => probe(io, config, trace, now_ms).await,
            CronJob::QueuedSweep => sweep(io, config, trace, now_ms).await,
            CronJob::SloBurn => super::slo_burn::check(io, config, trace).await,
            CronJob::PurgeSweep => super::share_cache::sweep_pending_purges(io, config, trace).await,
        }
    };
    let duration = context::now_ms() - started;
    let scheduled_time = format_rfc3339_millis(now_ms);
    match &result {
        Ok(report) => context::emit(
            &context::line(config, trace, Level::Info, "cron end")
                .field("cron_job", job.as_str())
                .field("scheduled_time", scheduled_time.clone())
                .field("ok", true)
                .field("duration_ms", duration)
                .field("report", report.clone()),
        ),
        Err(e) => context::emit(
            &context::line(config, trace, Level::Error, "cron end")
                .field("cron_job", job.as_str())
                .field("scheduled_time", scheduled_time.clone())
                .field("ok", false)
                .field("duration_ms", duration)
                .field("error", e.clone()),
        ),
    }
    result.map(|_| ())
}

/// Renders the top-N share pages into the edge cache, in every served language, exactly as the
/// share route would. Outside a seasonal window (unless forced) it does nothing and says so.
pub async fn prewarm(io: &Io, config: &Config, trace: &TraceId, now_ms: i64, forced: bool) -> Result<Value, String> {
    let window = active_window(&config.prewarm_windows, now_ms).map(|w| w.name.clone());
    if window.is_none() && !forced {
        context::emit(&context::line(
            config,
            trace,
            Level::Info,
            "prewarm skipped: outside any seasonal window",
        ));
        return Ok(
            json!({"window": null, "warmed": 0, "skipped": 0, "failed": 0, "reason": "outside any seasonal window"}),
        );
    }
    let limit = i32::try_from(config.prewarm_top_n).unwrap_or(i32::MAX);
    let hashes: Vec<TokenHash> = db::transaction(io, Scope::System, Budget::Standard, async |tx| {
        let rows = tx
            .rows(
                "SELECT token_hash FROM popular_share_links($1)",
                &[(&limit, Type::INT4)],
            )
            .await?;
        rows.iter().map(|r| col::<Vec<u8>>(r, 0)).collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(text)?
    .into_iter()
    .filter_map(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok().map(TokenHash))
    .collect();
    let deadline = context::now_ms() + i64::try_from(config.prewarm_budget_ms).unwrap_or(20_000);
    let outcomes: Vec<&'static str> = futures_util::stream::iter(hashes.iter())
        .map(|hash| async move {
            if context::now_ms() > deadline {
                return "over_budget";
            }
            match share_cache::render_and_store(io, config, hash, &Lang::ALL, context::now_ms()).await {
                Ok(Some(_)) => "warmed",
                Ok(None) => "skipped",
                Err(_) => "failed",
            }
        })
        .buffer_unordered(config.prewarm_concurrency.max(1))
        .collect()
        .await;
    let n = |what: &str| outcomes.iter().filter(|o| **o == what).count();
    Ok(json!({
        "window": window, "forced": forced, "candidates": hashes.len(),
        "warmed": n("warmed"), "skipped": n("skipped"), "failed": n("failed"), "over_budget": n("over_budget"),
        "languages": Lang::ALL.iter().map(|l| l.tag()).collect::<Vec<_>>(),
    }))
}

/// Enqueues `reap` jobs for exports past their 72 h and orphaned assets, page by page. Rows are
/// locked, published and marked in one transaction: a failed publish rolls the marks back, and a
/// second run finds nothing new.
async fn reaper(io: &Io, config: &Config, trace: &TraceId, now_ms: i64) -> Result<Value, String> {
    let now = format_rfc3339_millis(now_ms);
    let (ttl, grace) = (
        format!("{} milliseconds", EXPORT_TTL_MS),
        format!("{} milliseconds", ORPHAN_GRACE_MS),
    );
    let (mut exports, mut orphans) = (0usize, 0usize);
    for _ in 0..MAX_PAGES {
        let page = db::transaction(io, Scope::System, Budget::Standard, async |tx| {
            let rows = tx
                .rows(
                    "SELECT kind, id::text, account_id::text FROM reap_candidates($1::text::timestamptz, $2::text::interval, $3::text::interval, $4::int)",
                    &[(&now, Type::TEXT), (&ttl, Type::TEXT), (&grace, Type::TEXT), (&PAGE_SIZE, Type::INT8)],
                )
                .await?;
            let mut messages = Vec::new();
            let (mut export_ids, mut asset_ids) = (Vec::new(), Vec::new());
            for row in &rows {
                let (kind, id, account): (String, String, String) = (col(row, 0)?, col(row, 1)?, col(row, 2)?);
                let (Ok(id_parsed), Ok(account)) = (Id::parse(&id), Id::parse(&account)) else { continue };
                let target = if kind == "export" {
                    export_ids.push(id);
                    ReapTarget::Export { export_id: id_parsed }
                } else {
                    asset_ids.push(id);
                    ReapTarget::OrphanAsset { asset_id: id_parsed }
                };
                let job_id = new_id()?;
                messages.push(JobMessage::new(job_id, account, trace.clone(), now_ms, Job::Reap { target }));
            }
            jobs::publish_all(io, config, &messages).await.map_err(|e| ApiError::new(crate::error::ErrorCode::ServiceUnavailable, e))?;
            tx.exec(
                "SELECT mark_reap_enqueued($1::text[]::uuid[], $2::text[]::uuid[], $3::text::timestamptz)",
                &[(&export_ids, Type::TEXT_ARRAY), (&asset_ids, Type::TEXT_ARRAY), (&now, Type::TEXT)],
            )
            .await?;
            Ok((export_ids.len(), asset_ids.len(), rows.len()))
        })
        .await
        .map_err(text)?;
        exports += page.0;
        orphans += page.1;
        if (page.2 as i64) < PAGE_SIZE {
            break;
        }
    }
    // Session rows a day past their end or expiry go too (they open nothing by then).
    let sessions_forgotten = db::transaction(io, Scope::System, Budget::Standard, async |tx| {
        col::<i32>(&tx.one("SELECT forget_old_sessions()", &[]).await?, 0)
    })
    .await
    .map_err(text)?;
    Ok(json!({"exports_enqueued": exports, "orphans_enqueued": orphans, "sessions_forgotten": sessions_forgotten}))
}

/// The synthetic end-to-end probe (seed §5.6): checks the previous probe's time-to-ready, alerts
/// (`queue_ttr`, Sev-2) if it took over 5 minutes or never completed, then publishes the next.
async fn probe(io: &Io, config: &Config, trace: &TraceId, now_ms: i64) -> Result<Value, String> {
    let account = Id::parse(PROBE_ACCOUNT).map_err(|e| e.0)?;
    let (mut report, publish_next) = match latest_probe(io, account).await? {
        Some(previous) => judge_probe(io, config, trace, now_ms, previous),
        None => (json!({"previous": null}), true),
    };
    if publish_next {
        report["published"] = publish_probe(io, config, trace, now_ms, account).await?;
    }
    Ok(report)
}

/// The newest probe asset, after deleting probes older than a day: id, status, queued at,
/// time to ready, and whether it was never claimed.
async fn latest_probe(io: &Io, account: Id) -> Result<Option<ProbeRow>, String> {
    db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        tx.exec("DELETE FROM asset WHERE is_probe AND created_at < now() - interval '1 day' RETURNING 1", &[]).await?;
        let row = tx
            .opt(
                "SELECT id::text, status, (extract(epoch FROM queued_at) * 1000)::int8, (extract(epoch FROM (ready_at - created_at)) * 1000)::int8,
                        status = 'queued' AND processing_started_at IS NULL
                 FROM asset WHERE is_probe ORDER BY created_at DESC LIMIT 1",
                &[],
            )
            .await?;
        row.map(|r| {
            Ok::<_, ApiError>((
                col::<String>(&r, 0)?,
                col::<String>(&r, 1)?,
                col::<Option<i64>>(&r, 2)?,
                col::<Option<i64>>(&r, 3)?,
                col::<bool>(&r, 4)?,
            ))
        })
        .transpose()
    })
    .await
    .map_err(text)
}

type ProbeRow = (String, String, Option<i64>, Option<i64>, bool);

/// Judges the last probe: its report, and whether a new probe goes out (not while one is still
/// in flight within the threshold). Alerts `queue_ttr`, and `consumer_stalled` when nothing even
/// picked the probe up.
fn judge_probe(io: &Io, config: &Config, trace: &TraceId, now_ms: i64, previous: ProbeRow) -> (Value, bool) {
    let (id, status, queued_ms, ttr_ms, never_claimed) = previous;
    let mut publish_next = true;
    let report;
    let age_ms = queued_ms.map(|q| now_ms - q).unwrap_or(0);
    let alert = |why: &str, value: i64| {
        super::alerts::raise(
            io,
            config,
            Alert::QueueTtr
                .on(context::line(config, trace, Level::Error, "queue probe alert"))
                .field("probe_asset_id", id.clone())
                .field("reason", why)
                .field("ttr_ms", value)
                .field("threshold_ms", PROBE_ALERT_MS),
        )
    };
    match (status.as_str(), ttr_ms) {
        ("ready", Some(ttr)) => {
            context::emit(
                &context::line(config, trace, Level::Info, "queue probe ttr")
                    .field("probe_asset_id", id.clone())
                    .field("ttr_ms", ttr),
            );
            if ttr > PROBE_ALERT_MS {
                alert("took longer than the threshold", ttr);
            }
            report = json!({"previous": {"asset_id": id, "status": status, "ttr_ms": ttr}});
        }
        _ if age_ms > PROBE_ALERT_MS => {
            alert("never completed", age_ms);
            if never_claimed {
                // Not even started: nothing is consuming `jobs` (seed §5.5: the queue is stuck).
                let stalled = "consumer stalled: the probe job was never picked up";
                let line = Alert::ConsumerStalled.on(context::line(config, trace, Level::Error, stalled));
                super::alerts::raise(
                    io,
                    config,
                    line.field("probe_asset_id", id.clone()).field("age_ms", age_ms),
                );
            }
            report = json!({"previous": {"asset_id": id, "status": status, "age_ms": age_ms, "alert": "queue_ttr"}});
        }
        _ => {
            publish_next = false;
            report =
                json!({"previous": {"asset_id": id, "status": status, "age_ms": age_ms, "note": "still in flight"}});
        }
    }
    (report, publish_next)
}

/// Inserts a probe asset and publishes its job: what was published.
async fn publish_probe(io: &Io, config: &Config, trace: &TraceId, now_ms: i64, account: Id) -> Result<Value, String> {
    let job_id = new_id().map_err(text)?;
    let (job_text, queued_at) = (job_id.to_string(), format_rfc3339_millis(now_ms));
    let asset = db::transaction(io, Scope::Account(account), Budget::Standard, async |tx| {
        let row = tx
            .one(
                "INSERT INTO asset (account_id, media_type, original_key, size_bytes, status, is_probe, job_id, queued_at)
                 VALUES (current_account_id(), 'image/png', 'probes/' || $1 || '.png', 0, 'queued', true, $1::uuid, $2::text::timestamptz)
                 RETURNING id::text",
                &[(&job_text, Type::TEXT), (&queued_at, Type::TEXT)],
            )
            .await?;
        col::<String>(&row, 0)
    })
    .await
    .map_err(text)?;
    let asset_id = Id::parse(&asset).map_err(|e| e.0)?;
    jobs::publish(
        io,
        config,
        &JobMessage::new(job_id, account, trace.clone(), now_ms, Job::Probe { asset_id }),
    )
    .await?;
    job_rows::mark_published(io, account, job_rows::Subject::Asset(asset_id)).await;
    Ok(json!({"asset_id": asset, "job_id": job_text}))
}

/// Re-publishes the work no delivery is coming back for (SPEC §3, issue 14): assets and exports
/// left `queued` because their publish failed after the commit, and rows whose `processing`
/// lease expired (the delivery that held it died). Rows are handed back to `queued`, published
/// (in batches within the queue's limits) and marked in one transaction: a failed publish rolls
/// the marks back and the next run tries again.
/// The job a swept asset row stands for (its own job id when it has one), and whether its lease
/// had expired; `None` for a row whose ids do not parse.
fn swept_asset_job(
    row: &tokio_postgres::Row,
    trace: &TraceId,
    now_ms: i64,
) -> Result<Option<(JobMessage, bool)>, ApiError> {
    let (id, account, job, key, media, is_probe, lease_expired): (
        String,
        String,
        Option<String>,
        String,
        String,
        bool,
        bool,
    ) = (
        col(row, 0)?,
        col(row, 1)?,
        col(row, 2)?,
        col(row, 3)?,
        col(row, 4)?,
        col(row, 5)?,
        col(row, 6)?,
    );
    let (Ok(asset_id), Ok(account)) = (Id::parse(&id), Id::parse(&account)) else {
        return Ok(None);
    };
    let job_id = match job.and_then(|j| Id::parse(&j).ok()) {
        Some(id) => id,
        None => new_id()?,
    };
    let job = if is_probe {
        Job::Probe { asset_id }
    } else {
        Job::Transcode {
            asset_id,
            original_key: key,
            media_type: media,
        }
    };
    Ok(Some((
        JobMessage::new(job_id, account, trace.clone(), now_ms, job),
        lease_expired,
    )))
}

async fn sweep(io: &Io, config: &Config, trace: &TraceId, now_ms: i64) -> Result<Value, String> {
    let (before, now) = (
        format_rfc3339_millis(now_ms - QUEUED_SWEEP_AFTER_MS),
        format_rfc3339_millis(now_ms),
    );
    let limit = PAGE_SIZE as i32;
    let report = db::transaction(io, Scope::System, Budget::Standard, async |tx| {
        let params = [
            (&before as &(dyn tokio_postgres::types::ToSql + Sync), Type::TEXT),
            (&now, Type::TEXT),
            (&limit, Type::INT4),
        ];
        let assets = tx
            .rows(
                "SELECT id::text, account_id::text, job_id::text, original_key, media_type, is_probe, lease_expired
                 FROM sweep_asset_jobs($1::text::timestamptz, $2::text::timestamptz, $3::int)",
                &params,
            )
            .await?;
        let exports = tx
            .rows(
                "SELECT id::text, account_id::text, lease_expired
                 FROM sweep_export_jobs($1::text::timestamptz, $2::text::timestamptz, $3::int)",
                &params,
            )
            .await?;
        let mut messages = Vec::new();
        let mut expired = 0usize;
        for row in &assets {
            if let Some((message, lease_expired)) = swept_asset_job(row, trace, now_ms)? {
                messages.push(message);
                expired += usize::from(lease_expired);
            }
        }
        for row in &exports {
            let (id, account, lease_expired): (String, String, bool) = (col(row, 0)?, col(row, 1)?, col(row, 2)?);
            let (Ok(export_id), Ok(account)) = (Id::parse(&id), Id::parse(&account)) else {
                continue;
            };
            messages.push(JobMessage::new(
                new_id()?,
                account,
                trace.clone(),
                now_ms,
                Job::Export { export_id },
            ));
            expired += usize::from(lease_expired);
        }
        jobs::publish_all(io, config, &messages)
            .await
            .map_err(|e| ApiError::new(crate::error::ErrorCode::ServiceUnavailable, e))?;
        Ok(json!({"assets_republished": assets.len(), "exports_republished": exports.len(), "leases_expired": expired}))
    })
    .await
    .map_err(text)?;
    Ok(report)
}
