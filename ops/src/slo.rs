//! The SQL that turns the edge's Analytics Engine data points into the SLIs of
//! `babybook_edge::slo`, and what `scripts/slo` and `scripts/canary` do with the answers.
//!
//! `scripts/*` do the HTTP (curl against the Analytics Engine SQL API); this module writes the
//! queries (`bbops slo-sql`, `bbops canary-sql`) and reads the answers (`bbops slo-report`,
//! `bbops canary-check`), so the arithmetic is plain Rust with tests.
//!
//! Layout of the points (src/edge/sli.rs): blob1 surface · blob2 route · blob3 status class ·
//! blob4 cache status · blob5 version id · blob6 version tag · blob7 environment · double1
//! duration ms · double2 status · double3 sample rate. Queue points (src/edge/consumer.rs):
//! blob1 queue · blob2 version id · double1 batch size · double4 dead · double5 oldest message
//! age ms · double6 backlog. Every count is weighted by `_sample_interval` (Analytics Engine's own
//! sampling) divided by `double3` (ours).

use std::fmt::Write as _;

use babybook_edge::slo::{self, Guardrails, Sli, VersionHealth, Window};
use serde_json::Value;

use babybook_edge::slo::{answer_rows, number, sql_text, POINT_WEIGHT as W, POINT_WEIGHT_WHOLE as WHOLE};
pub use babybook_edge::slo::{edge_dataset, edge_window_sql};

pub fn queue_dataset(environment: &str) -> &'static str {
    match environment {
        "production" => "babybook_queue_health",
        "staging" => "babybook_queue_health_staging",
        _ => "babybook_queue_health_local",
    }
}

/// One row: `batches`, `slow_batches` (oldest message older than 5 minutes), `dead`,
/// `max_backlog` of the `jobs` queue over the last `hours`.
pub fn queue_window_sql(environment: &str, hours: u32) -> String {
    format!(
        "SELECT SUM(_sample_interval) AS batches, \
         SUM(IF(double5 > 300000, _sample_interval, 0)) AS slow_batches, \
         SUM(double4 * _sample_interval) AS dead, \
         MAX(double6) AS max_backlog \
         FROM {table} WHERE timestamp > NOW() - INTERVAL '{hours}' HOUR AND blob1 = 'jobs' \
         FORMAT JSON",
        table = queue_dataset(environment),
    )
}

/// Per version over the last `minutes`: `version`, `requests`, `errors`, `p95_ms`. Every figure
/// weighs each point by the requests it stands for: the stable version's points are sampled
/// (`SLI_SAMPLE_RATE`), the new version's all written, and errors always (src/slo.rs,
/// `PointSampling`), so a row count would compare unlike things.
pub fn canary_sql(environment: &str, minutes: u32) -> String {
    format!(
        "SELECT blob5 AS version, SUM({W}) AS requests, SUM(IF(blob3 = '5xx', {W}, 0)) AS errors, \
         quantileExactWeighted(0.95)(double1, {WHOLE}) AS p95_ms \
         FROM {table} WHERE timestamp > NOW() - INTERVAL '{minutes}' MINUTE AND blob7 = '{environment}' \
         GROUP BY version FORMAT JSON",
        table = edge_dataset(environment),
        environment = sql_text(environment),
    )
}

/// Per consumer version over the last `minutes` (the seed's queue guardrails, §3.4): `jobs`
/// (messages in the batches it consumed), `retried`, `dead`, and `oldest_p99_ms`, the p99 of the
/// oldest message's age at the start of its batches. The queue points carry no sample rate of
/// ours (double3 is `retried`), so only Analytics Engine's `_sample_interval` weighs them.
pub fn canary_queue_sql(environment: &str, minutes: u32) -> String {
    format!(
        "SELECT blob2 AS consumer_version, SUM(double1 * _sample_interval) AS jobs, \
         SUM(double3 * _sample_interval) AS retried, SUM(double4 * _sample_interval) AS dead, \
         quantileExactWeighted(0.99)(double5, _sample_interval) AS oldest_p99_ms \
         FROM {table} WHERE timestamp > NOW() - INTERVAL '{minutes}' MINUTE AND blob1 = 'jobs' \
         GROUP BY consumer_version FORMAT JSON",
        table = queue_dataset(environment),
    )
}

/// The seed's queue guardrails (§3.4): the oldest message's age p99 over 1 minute, or a job
/// failure rate over 2 %, on the batches the new version consumed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueGuardrails {
    pub max_oldest_ms: f64,
    pub max_failure_rate: f64,
}

pub const SEED_QUEUE_GUARDRAILS: QueueGuardrails = QueueGuardrails {
    max_oldest_ms: 60_000.0,
    max_failure_rate: 0.02,
};

/// What the new version's consumer did in the window; `None` when it consumed nothing (a quiet
/// queue is no evidence either way, and the request guardrails decide).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueHealth {
    pub jobs: f64,
    /// Failed attempts (retried + dead) over jobs.
    pub failure_rate: f64,
    pub oldest_p99_ms: f64,
}

pub fn queue_health(answer: &Value, canary_version: &str) -> Result<Option<QueueHealth>, String> {
    let rows = answer_rows(answer)?;
    let Some(row) = rows
        .iter()
        .find(|r| r.get("consumer_version").and_then(Value::as_str) == Some(canary_version))
    else {
        return Ok(None);
    };
    let jobs = number(row, "jobs")?;
    if jobs <= 0.0 {
        return Ok(None);
    }
    Ok(Some(QueueHealth {
        jobs,
        failure_rate: (number(row, "retried")? + number(row, "dead")?) / jobs,
        oldest_p99_ms: number(row, "oldest_p99_ms")?,
    }))
}

/// Why the new version's consumer must not get more traffic; `None` when it may.
pub fn queue_breach(health: &QueueHealth, limits: &QueueGuardrails) -> Option<String> {
    if health.oldest_p99_ms > limits.max_oldest_ms {
        return Some(format!(
            "queue age p99 {:.0} ms > {:.0} ms ({:.0} jobs consumed by the new version)",
            health.oldest_p99_ms, limits.max_oldest_ms, health.jobs
        ));
    }
    if health.failure_rate > limits.max_failure_rate {
        return Some(format!(
            "job failure rate {:.2} % > {:.2} % ({:.0} jobs consumed by the new version)",
            health.failure_rate * 100.0,
            limits.max_failure_rate * 100.0,
            health.jobs
        ));
    }
    None
}

/// The SLIs whose 30-day error budget freezes production releases when spent (seed §6.4): the
/// paging ones, availability and share TTFB.
pub fn freeze_slis() -> impl Iterator<Item = Sli> {
    slo::ALL.into_iter().filter(|sli| slo::paging(*sli))
}

/// The budget window of the freeze: the SLO period, 30 days.
pub const FREEZE_WINDOW_HOURS: u32 = 30 * 24;

/// One SLI's budget over the SLO period.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub sli: Sli,
    pub window: Window,
    /// The fraction of the 30-day budget spent (1.0 = all of it): the window's burn rate.
    pub spent: f64,
}

/// The budget of every freezing SLI from the 30-day edge answer; the release is frozen when any
/// has spent all of it.
pub fn budgets(edge_30d: &Value) -> Result<Vec<Budget>, String> {
    let windows = slo::edge_windows(edge_30d)?;
    Ok(freeze_slis()
        .map(|sli| {
            let window = windows
                .iter()
                .find(|(s, _)| *s == sli)
                .map(|(_, w)| *w)
                .unwrap_or(Window { total: 0.0, bad: 0.0 });
            Budget {
                sli,
                window,
                spent: window.burn_rate(sli),
            }
        })
        .collect())
}

/// The table `scripts/slo --freeze-check` prints, and whether a budget is spent.
pub fn freeze_report(budgets: &[Budget]) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<32} {:>10} {:>13}  verdict",
        "SLI", "objective", "30 days", "budget spent"
    );
    let mut frozen = false;
    for b in budgets {
        let spent = b.spent >= 1.0;
        frozen |= spent;
        let _ = writeln!(
            out,
            "{:<24} {:<32} {:>10} {:>11.1} %  {}",
            b.sli.name(),
            b.sli.describe_objective(),
            percent(&b.window),
            b.spent * 100.0,
            if spent { "BUDGET SPENT" } else { "ok" }
        );
    }
    (out, frozen)
}

/// The windows of every SLI from one edge answer and one queue answer.
pub struct Measured {
    pub edge: Vec<(Sli, Window)>,
    pub queue_age: Window,
    pub dead: f64,
    pub max_backlog: f64,
}

pub fn measure(edge: &Value, queue: &Value) -> Result<Measured, String> {
    let rows = answer_rows(queue)?;
    let empty = serde_json::Map::new();
    let q = rows.first().copied().unwrap_or(&empty);
    Ok(Measured {
        edge: slo::edge_windows(edge)?,
        queue_age: Window {
            total: number(q, "batches")?,
            bad: number(q, "slow_batches")?,
        },
        dead: number(q, "dead")?,
        max_backlog: number(q, "max_backlog")?,
    })
}

/// Queue age: 95 % of batches start with their oldest message under 5 minutes (seed §6.2).
const QUEUE_AGE_OBJECTIVE: f64 = 0.95;

fn queue_burn(w: &Window) -> f64 {
    match w.good_fraction() {
        Some(good) => (1.0 - good) / (1.0 - QUEUE_AGE_OBJECTIVE),
        None => 0.0,
    }
}

fn percent(w: &Window) -> String {
    w.good_fraction()
        .map_or_else(|| "-".to_owned(), |g| format!("{:.2} %", g * 100.0))
}

/// The table `scripts/slo` prints, and whether anything burns fast (the exit status).
pub fn report(one_hour: &Measured, six_hours: &Measured) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<32} {:>10} {:>10} {:>8} {:>8}  verdict",
        "SLI", "objective", "1h", "6h", "burn 1h", "burn 6h"
    );
    let mut fast = false;
    for ((sli, w1), (_, w6)) in one_hour.edge.iter().zip(&six_hours.edge) {
        let verdict = slo::verdict(*sli, *w1, *w6);
        fast |= verdict == slo::Verdict::FastBurn;
        let _ = writeln!(
            out,
            "{:<24} {:<32} {:>10} {:>10} {:>8.2} {:>8.2}  {}",
            sli.name(),
            sli.describe_objective(),
            percent(w1),
            percent(w6),
            w1.burn_rate(*sli),
            w6.burn_rate(*sli),
            verdict.as_str()
        );
    }
    let (q1, q6) = (&one_hour.queue_age, &six_hours.queue_age);
    let (b1, b6) = (queue_burn(q1), queue_burn(q6));
    let verdict = if q1.total <= 0.0 && q6.total <= 0.0 {
        slo::Verdict::NoData
    } else if b1 >= slo::FAST_BURN_1H && b6 >= slo::FAST_BURN_1H {
        slo::Verdict::FastBurn
    } else if b6 >= slo::SLOW_BURN_6H {
        slo::Verdict::SlowBurn
    } else {
        slo::Verdict::Ok
    };
    fast |= verdict == slo::Verdict::FastBurn;
    let _ = writeln!(
        out,
        "{:<24} {:<32} {:>10} {:>10} {:>8.2} {:>8.2}  {}",
        "queue_age_p95",
        "queue age p95 <= 5 min",
        percent(q1),
        percent(q6),
        b1,
        b6,
        verdict.as_str()
    );
    let _ = writeln!(
        out,
        "{:<24} {:<32} {:>10} {:>10}",
        "queue_backlog_max",
        "(no objective)",
        format!("{:.0}", one_hour.max_backlog),
        format!("{:.0}", six_hours.max_backlog)
    );
    let _ = writeln!(
        out,
        "{:<24} {:<32} {:>10} {:>10}",
        "dlq_items",
        "0 (each one alerts)",
        format!("{:.0}", one_hour.dead),
        format!("{:.0}", six_hours.dead)
    );
    (out, fast)
}

/// The version serving the largest share of traffic in `wrangler deployments status --json`
/// (`{"versions": [{"version_id", "percentage"}, …]}`): the stable one a canary goes back to.
pub fn stable_version(status: &Value) -> Result<String, String> {
    status
        .get("versions")
        .and_then(Value::as_array)
        .and_then(|versions| {
            versions
                .iter()
                .filter_map(|v| Some((v.get("version_id")?.as_str()?, v.get("percentage")?.as_f64()?)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
        })
        .map(|(id, _)| id.to_owned())
        .ok_or_else(|| {
            format!(
                "no version in the deployment status: {}",
                status.to_string().chars().take(200).collect::<String>()
            )
        })
}

/// What a canary step decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Promote {
        canary: VersionHealth,
        baseline: VersionHealth,
    },
    Breach(String),
    /// Too few requests on the new version to judge: never a promotion.
    Undecided(String),
}

pub fn canary_step(
    answer: &Value,
    canary_version: &str,
    baseline_version: &str,
    limits: &Guardrails,
    min_requests: f64,
) -> Result<Step, String> {
    let rows = answer_rows(answer)?;
    let health = |version: &str| -> Result<Option<VersionHealth>, String> {
        let Some(row) = rows
            .iter()
            .find(|r| r.get("version").and_then(Value::as_str) == Some(version))
        else {
            return Ok(None);
        };
        let requests = number(row, "requests")?;
        Ok(Some(VersionHealth {
            requests,
            error_rate: if requests > 0.0 {
                number(row, "errors")? / requests
            } else {
                0.0
            },
            p95_ms: number(row, "p95_ms")?,
        }))
    };
    let canary = health(canary_version)?.unwrap_or(VersionHealth {
        requests: 0.0,
        error_rate: 0.0,
        p95_ms: 0.0,
    });
    if canary.requests < min_requests {
        return Ok(Step::Undecided(format!(
            "{:.0} requests on the new version, fewer than --min-requests {min_requests:.0}",
            canary.requests
        )));
    }
    // Without traffic on the old version (a quiet hour), judge against zero errors and no p95 limit.
    let baseline = health(baseline_version)?.unwrap_or(VersionHealth {
        requests: 0.0,
        error_rate: 0.0,
        p95_ms: 0.0,
    });
    Ok(match slo::breach(&canary, &baseline, limits) {
        Some(why) => Step::Breach(why),
        None => Step::Promote { canary, baseline },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_queries_name_the_environments_dataset_and_window() {
        let sql = edge_window_sql("production", 6);
        assert!(sql.contains("FROM babybook_edge_requests WHERE"), "{sql}");
        assert!(sql.contains("INTERVAL '6' HOUR"));
        assert!(sql.contains("blob7 = 'production'"));
        assert!(canary_sql("staging", 5).contains("FROM babybook_edge_requests_staging"));
        assert!(
            canary_sql("x'; DROP", 5).contains("blob7 = 'xDROP'"),
            "no quote gets through"
        );
        assert!(queue_window_sql("production", 1).contains("FROM babybook_queue_health WHERE"));
    }

    /// Issue 31: the stable version's points are sampled and weigh 1/rate, the canary's weigh 1:
    /// every figure of the canary's query sums or weighs by the point's weight, none counts rows.
    #[test]
    fn every_canary_figure_weighs_points_by_the_requests_they_stand_for() {
        let sql = canary_sql("production", 5);
        assert!(sql.contains("SUM((_sample_interval / double3)) AS requests"), "{sql}");
        assert!(
            sql.contains("IF(blob3 = '5xx', (_sample_interval / double3), 0)"),
            "{sql}"
        );
        assert!(
            sql.contains("quantileExactWeighted(0.95)(double1, toUInt32(_sample_interval / double3 + 0.5))"),
            "{sql}"
        );
        assert!(!sql.to_lowercase().contains("count("), "{sql}");
        let edge = edge_window_sql("production", 1);
        assert!(!edge.to_lowercase().contains("count("), "{edge}");
        assert_eq!(edge.matches("_sample_interval / double3").count(), 5, "{edge}");
        // A stable version sampled at 0.1 beside a canary writing all: the weighted answer
        // compares like with like (1 000 requests each, 1 % and 2 % errors).
        let answer = json!({"data": [
            {"version": "new", "requests": 1000.0, "errors": 20.0, "p95_ms": 100},
            {"version": "old", "requests": 1000.0, "errors": 10.0, "p95_ms": 100},
        ]});
        match canary_step(&answer, "new", "old", &slo::SEED_GUARDRAILS, 50.0).unwrap() {
            Step::Breach(why) => assert!(why.starts_with("5xx"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    fn edge(requests: f64, errors: f64, share: f64, slow: f64, misses: f64) -> Value {
        json!({"meta": [], "data": [{"requests": requests, "errors": errors.to_string(), "share_pages": share, "share_slow": slow, "share_misses": misses}], "rows": 1})
    }

    #[test]
    fn the_report_flags_a_fast_burn_only_when_both_windows_burn() {
        let queue = json!({"data": [{"batches": 100, "slow_batches": 0, "dead": 0, "max_backlog": 3}]});
        let healthy = measure(&edge(10_000.0, 5.0, 4_000.0, 40.0, 400.0), &queue).unwrap();
        let burning = measure(&edge(10_000.0, 900.0, 4_000.0, 40.0, 400.0), &queue).unwrap();
        let (text, fast) = report(&healthy, &healthy);
        assert!(!fast, "{text}");
        assert!(text.contains("availability") && text.contains("99.95 %"), "{text}");
        let (text, fast) = report(&burning, &burning);
        assert!(fast, "{text}");
        assert!(text.contains("FAST BURN"));
        let (_, fast) = report(&burning, &healthy);
        assert!(!fast, "one bad hour in a good six is not a page");
    }

    #[test]
    fn an_answer_that_is_not_analytics_engine_is_an_error_not_zeroes() {
        let queue = json!({"data": []});
        assert!(measure(&json!({"errors": ["bad token"]}), &queue).is_err());
        assert!(measure(&json!({"data": [{"requests": "many"}]}), &queue).is_err());
        let empty = measure(&json!({"data": []}), &queue).unwrap();
        assert_eq!(empty.edge[0].1.total, 0.0);
    }

    #[test]
    fn the_stable_version_is_the_one_with_the_most_traffic() {
        let status =
            json!({"versions": [{"version_id": "a", "percentage": 5}, {"version_id": "b", "percentage": 95.0}]});
        assert_eq!(stable_version(&status).unwrap(), "b");
        assert!(stable_version(&json!({"versions": []})).is_err());
        assert!(stable_version(&json!("not logged in")).is_err());
    }

    #[test]
    fn the_queue_guardrails_judge_the_new_versions_batches_only() {
        let answer = |retried: f64, dead: f64, p99: f64| {
            json!({"data": [
                {"consumer_version": "new", "jobs": 1000, "retried": retried, "dead": dead, "oldest_p99_ms": p99},
                {"consumer_version": "old", "jobs": 9000, "retried": 900, "dead": 90, "oldest_p99_ms": 900_000},
            ]})
        };
        let judge = |a: &Value| {
            queue_health(a, "new")
                .unwrap()
                .and_then(|h| queue_breach(&h, &SEED_QUEUE_GUARDRAILS))
        };
        assert_eq!(judge(&answer(10.0, 0.0, 2_000.0)), None);
        assert!(judge(&answer(15.0, 10.0, 2_000.0))
            .unwrap()
            .starts_with("job failure rate 2.50 %"));
        assert!(judge(&answer(0.0, 0.0, 61_000.0)).unwrap().starts_with("queue age p99"));
        assert_eq!(
            queue_health(&json!({"data": []}), "new").unwrap(),
            None,
            "no jobs: no verdict"
        );
        assert!(queue_health(&json!({"data": [{"consumer_version": "new", "jobs": "x"}]}), "new").is_err());
        assert!(canary_queue_sql("production", 5).contains("FROM babybook_queue_health WHERE"));
        assert!(!canary_queue_sql("production", 5).contains("GROUP BY version"));
    }

    #[test]
    fn the_freeze_holds_when_a_paging_slis_30_day_budget_is_spent() {
        // 99.5 % availability: 0.5 % of 1 000 000 requests is a budget of 5 000 errors.
        let spent = budgets(&edge(1_000_000.0, 5_001.0, 400_000.0, 100.0, 0.0)).unwrap();
        let (text, frozen) = freeze_report(&spent);
        assert!(frozen, "{text}");
        assert!(text.contains("availability") && text.contains("100.0 %") && text.contains("BUDGET SPENT"));
        let healthy = budgets(&edge(1_000_000.0, 4_000.0, 400_000.0, 100.0, 0.0)).unwrap();
        let (text, frozen) = freeze_report(&healthy);
        assert!(!frozen, "{text}");
        assert!(text.contains("80.0 %"), "{text}");
        assert_eq!(healthy.len(), 2, "availability and share TTFB, not the cache hit ratio");
        let (_, frozen) = freeze_report(&budgets(&json!({"data": []})).unwrap());
        assert!(!frozen, "no traffic spends no budget");
    }

    #[test]
    fn a_canary_step_promotes_breaches_or_waits_for_traffic() {
        let answer = |errors: f64, p95: f64, requests: f64| {
            json!({"data": [
                {"version": "new", "requests": requests, "errors": errors, "p95_ms": p95},
                {"version": "old", "requests": 10_000, "errors": 10, "p95_ms": 100},
            ]})
        };
        let step = |a: &Value| canary_step(a, "new", "old", &slo::SEED_GUARDRAILS, 50.0).unwrap();
        assert!(matches!(step(&answer(0.0, 110.0, 500.0)), Step::Promote { .. }));
        assert!(matches!(step(&answer(10.0, 110.0, 500.0)), Step::Breach(why) if why.starts_with("5xx")));
        assert!(matches!(step(&answer(0.0, 130.0, 500.0)), Step::Breach(why) if why.starts_with("p95")));
        assert!(matches!(step(&answer(0.0, 100.0, 10.0)), Step::Undecided(_)));
        assert!(matches!(step(&json!({"data": []})), Step::Undecided(_)));
        assert!(canary_step(&json!("Bad Gateway"), "new", "old", &slo::SEED_GUARDRAILS, 0.0).is_err());
    }
}
