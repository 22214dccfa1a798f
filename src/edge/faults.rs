//! Test faults and counters, at the bottom of the shell: production code asks `is_on(Fault::…)`
//! and counts its I/O here without knowing the test-control endpoint that flips and reads them
//! (`test_controls`). Every fault reads off unless `Config::test_controls` (only with
//! `ENVIRONMENT=local` and `TEST_CONTROLS=on`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use crate::config::Config;
use crate::cron::CronJob;

/// What a local test run can break or switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Every queue publish fails.
    QueuePublish,
    /// The dead-letter publish fails.
    DlqPublish,
    /// The dead-job store (R2) refuses every write.
    DeadJobStore,
    /// The job consumer waits (up to two minutes) before taking a batch.
    ConsumerPaused,
    /// Every job-row write after the claim fails.
    JobDbAfterClaim,
    /// The named cron job fails.
    Cron(CronJob),
    /// Protection out of the way: the benchmark prices hygiene and rate limits by switching both
    /// off and on again in one process; the OpenAPI contract run sends hundreds of requests as
    /// one user from one address.
    SkipHygiene,
    SkipRateLimits,
    /// Every rate limit asks a binding that does not exist: share pages stay up, logins shut.
    RateLimiterUnavailable,
}

impl Fault {
    const SIMPLE: [Fault; 8] = [
        Fault::QueuePublish,
        Fault::DlqPublish,
        Fault::DeadJobStore,
        Fault::ConsumerPaused,
        Fault::JobDbAfterClaim,
        Fault::SkipHygiene,
        Fault::SkipRateLimits,
        Fault::RateLimiterUnavailable,
    ];

    /// The name the test controls use (`cron:<job>` for a cron job).
    pub fn name(self) -> String {
        match self {
            Fault::QueuePublish => "queue_publish".into(),
            Fault::DlqPublish => "dlq_publish".into(),
            Fault::DeadJobStore => "dead_job_store".into(),
            Fault::ConsumerPaused => "consumer_paused".into(),
            Fault::JobDbAfterClaim => "job_db_after_claim".into(),
            Fault::Cron(job) => format!("cron:{}", job.as_str()),
            Fault::SkipHygiene => "skip_hygiene".into(),
            Fault::SkipRateLimits => "skip_rate_limits".into(),
            Fault::RateLimiterUnavailable => "rate_limiter_unavailable".into(),
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        match name.strip_prefix("cron:") {
            Some(job) => CronJob::parse(job).map(Fault::Cron),
            None => Fault::SIMPLE.into_iter().find(|f| f.name() == name),
        }
    }
}

thread_local! {
    static FAULTS: RefCell<BTreeSet<Fault>> = const { RefCell::new(BTreeSet::new()) };
    static COUNTS: [Cell<u64>; Counter::ALL.len()] = const { [const { Cell::new(0) }; Counter::ALL.len()] };
}

/// Is `fault` switched on? Always false outside local test runs.
pub fn is_on(config: &Config, fault: Fault) -> bool {
    config.test_controls && FAULTS.with(|f| f.borrow().contains(&fault))
}

pub fn set(fault: Fault, on: bool) {
    FAULTS.with(|f| {
        let mut faults = f.borrow_mut();
        if on {
            faults.insert(fault);
        } else {
            faults.remove(&fault);
        }
    });
}

/// The faults switched on, by name.
pub fn active() -> Vec<String> {
    FAULTS.with(|f| f.borrow().iter().map(|f| f.name()).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    DbConnections,
    /// Statement round trips on an open connection (BEGIN and the settings, pipelined, are one).
    DbRoundTrips,
    OriginCalls,
    MediaCalls,
    Renders,
    /// Cache writes removed because the link changed while its page was rendered.
    FencedWrites,
    /// SLI data points written (`edge::sli`), and the requests they stand for (their weights).
    SliPoints,
    SliWeight,
}

impl Counter {
    pub const ALL: [Counter; 8] = [
        Counter::DbConnections,
        Counter::DbRoundTrips,
        Counter::OriginCalls,
        Counter::MediaCalls,
        Counter::Renders,
        Counter::FencedWrites,
        Counter::SliPoints,
        Counter::SliWeight,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::DbConnections => "db_connections",
            Counter::DbRoundTrips => "db_round_trips",
            Counter::OriginCalls => "origin_calls",
            Counter::MediaCalls => "media_calls",
            Counter::Renders => "renders",
            Counter::FencedWrites => "fenced_writes",
            Counter::SliPoints => "sli_points",
            Counter::SliWeight => "sli_weight",
        }
    }
}

/// Counts always (it is one add); only `/__test/counters` reads it.
pub fn count(counter: Counter) {
    COUNTS.with(|c| {
        let cell = &c[counter as usize];
        cell.set(cell.get() + 1);
    });
}

pub fn add(counter: Counter, n: u64) {
    COUNTS.with(|c| {
        let cell = &c[counter as usize];
        cell.set(cell.get() + n);
    });
}

pub fn counted(counter: Counter) -> u64 {
    COUNTS.with(|c| c[counter as usize].get())
}
