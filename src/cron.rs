//! Which jobs each cron trigger runs. `wrangler.toml` declares the same expressions for every
//! environment; a test compares the two.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CronJob {
    /// Inside a seasonal window, render the most popular share pages into the edge cache.
    Prewarm,
    /// Enqueue `reap` jobs for exports older than 72 h and orphaned assets.
    Reaper,
    /// Publish a synthetic probe job and check the previous one's time-to-ready.
    QueueProbe,
    /// Re-publish assets stuck in `queued` (a publish that failed after its commit).
    QueuedSweep,
    /// Read the edge SLIs from the Analytics Engine SQL API and page on a fast burn.
    SloBurn,
    /// Purge by tag every link and account whose purge the database still holds as pending (a
    /// purge whose own try failed, or a change made without the edge, e.g. by the origin).
    PurgeSweep,
}

impl CronJob {
    pub fn as_str(self) -> &'static str {
        match self {
            CronJob::Prewarm => "prewarm",
            CronJob::Reaper => "reaper",
            CronJob::QueueProbe => "queue_probe",
            CronJob::QueuedSweep => "queued_sweep",
            CronJob::SloBurn => "slo_burn",
            CronJob::PurgeSweep => "purge_sweep",
        }
    }

    pub fn parse(text: &str) -> Option<CronJob> {
        [
            CronJob::Prewarm,
            CronJob::Reaper,
            CronJob::QueueProbe,
            CronJob::QueuedSweep,
            CronJob::SloBurn,
            CronJob::PurgeSweep,
        ]
        .into_iter()
        .find(|j| j.as_str() == text)
    }
}

/// Cron expression → the jobs it runs, in order. Every expression here is in `wrangler.toml`.
/// Prewarm runs every 4 minutes, inside the 5-minute `max-age` of the pages it renders, so a
/// warmed page never goes cold between runs; the purge sweep runs first on the same trigger, so a
/// change the edge did not purge itself leaves every data center within 4 minutes (plus the
/// sweep's 30 s grace).
pub const SCHEDULES: [(&str, &[CronJob]); 3] = [
    ("*/4 * * * *", &[CronJob::PurgeSweep, CronJob::Prewarm]),
    (
        "*/5 * * * *",
        &[CronJob::QueueProbe, CronJob::QueuedSweep, CronJob::SloBurn],
    ),
    ("30 6 * * *", &[CronJob::Reaper]),
];

pub fn jobs_for(cron: &str) -> &'static [CronJob] {
    SCHEDULES
        .iter()
        .find(|(expr, _)| *expr == cron.trim())
        .map(|(_, jobs)| *jobs)
        .unwrap_or(&[])
}

/// A queued asset is considered lost (its publish failed after the commit) after this long.
pub const QUEUED_SWEEP_AFTER_MS: i64 = 2 * 60_000;
/// Exports expire after 72 h (seed §2.5, §7.2, §11).
pub const EXPORT_TTL_MS: i64 = 72 * 3_600_000;
/// An asset attached to no moment for this long is an orphan.
pub const ORPHAN_GRACE_MS: i64 = 24 * 3_600_000;
/// The probe alerts when a job takes longer than this to be ready (seed §5.6).
pub const PROBE_ALERT_MS: i64 = 5 * 60_000;
/// Rows per page of a reaper or sweep query, and pages per run.
pub const PAGE_SIZE: i64 = 100;
pub const MAX_PAGES: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_on_some_schedule_exactly_once() {
        let mut seen = Vec::new();
        for (_, jobs) in SCHEDULES {
            seen.extend_from_slice(jobs);
        }
        for job in [
            CronJob::Prewarm,
            CronJob::Reaper,
            CronJob::QueueProbe,
            CronJob::QueuedSweep,
            CronJob::SloBurn,
            CronJob::PurgeSweep,
        ] {
            assert_eq!(seen.iter().filter(|j| **j == job).count(), 1, "{job:?}");
            assert_eq!(CronJob::parse(job.as_str()), Some(job));
        }
        assert!(jobs_for("* * * * *").is_empty());
    }

    #[test]
    fn the_crons_in_wrangler_toml_are_exactly_these() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wrangler.toml")).expect("wrangler.toml");
        let config = toml::Value::Table(toml::from_str(&text).expect("wrangler.toml parses"));
        let mut want: Vec<&str> = SCHEDULES.iter().map(|(e, _)| *e).collect();
        want.sort_unstable();
        let crons_of = |table: &toml::Value| -> Vec<String> {
            let mut crons: Vec<String> = table["triggers"]["crons"]
                .as_array()
                .expect("crons")
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            crons.sort();
            crons
        };
        assert_eq!(crons_of(&config), want, "top level");
        for env in ["staging", "production"] {
            assert_eq!(crons_of(&config["env"][env]), want, "env.{env}");
        }
    }
}
