//! The edge's SLIs and objectives (seed §6.2) and the burn-rate arithmetic of §6.3: how fast a
//! window spends the error budget. `scripts/slo` and `scripts/canary` print and act on these;
//! the SQL that measures them is here (the edge windows) and in `ops/src/slo.rs` (queue, canary).
//!
//! Each SLI is a fraction of bad events (5xx answers, share pages slower than 300 ms, misses)
//! against a budget (1 − objective). A burn rate of 1 spends the budget exactly over the SLO
//! period; 14.4 over one hour spends 2 % of a 30-day budget (the usual fast-burn page).

/// Which way a measured fraction is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sli {
    /// Answers that were not 5xx, over all answers (both surfaces).
    Availability,
    /// Share pages whose time to first byte was within 300 ms (p95 ≤ 300 ms ⇔ ≥ 95 % within).
    ShareTtfb,
    /// Share pages served from the edge cache (≥ 80 %).
    ShareCacheHit,
}

pub const ALL: [Sli; 3] = [Sli::Availability, Sli::ShareTtfb, Sli::ShareCacheHit];

/// A share page slower than this counts against the TTFB objective.
pub const SHARE_TTFB_MS: f64 = 300.0;

/// The fast-burn page threshold over one hour (2 % of a 30-day budget in an hour).
pub const FAST_BURN_1H: f64 = 14.4;
/// The slow-burn threshold over six hours (5 % of a 30-day budget in six hours).
pub const SLOW_BURN_6H: f64 = 6.0;

impl Sli {
    pub fn name(self) -> &'static str {
        match self {
            Sli::Availability => "availability",
            Sli::ShareTtfb => "share_ttfb_p95",
            Sli::ShareCacheHit => "share_cache_hit_ratio",
        }
    }

    /// The objective as a fraction of good events.
    pub fn objective(self) -> f64 {
        match self {
            Sli::Availability => 0.995,
            Sli::ShareTtfb => 0.95,
            Sli::ShareCacheHit => 0.80,
        }
    }

    pub fn describe_objective(self) -> &'static str {
        match self {
            Sli::Availability => ">= 99.5 % non-5xx (30 days)",
            Sli::ShareTtfb => "share TTFB p95 <= 300 ms",
            Sli::ShareCacheHit => "share cache hit ratio >= 80 %",
        }
    }
}

/// Counts of one window (already scaled back by the sample rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub total: f64,
    pub bad: f64,
}

impl Window {
    /// Fraction of good events; `None` when the window saw nothing.
    pub fn good_fraction(&self) -> Option<f64> {
        (self.total > 0.0).then(|| 1.0 - (self.bad / self.total).clamp(0.0, 1.0))
    }

    /// How many times faster than sustainable the window spent the budget (0 when empty).
    pub fn burn_rate(&self, sli: Sli) -> f64 {
        let budget = 1.0 - sli.objective();
        match self.good_fraction() {
            Some(good) if budget > 0.0 => (1.0 - good) / budget,
            _ => 0.0,
        }
    }
}

/// The verdict `scripts/slo` prints per SLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Burning over [`SLOW_BURN_6H`] for six hours: a ticket.
    SlowBurn,
    /// Burning over [`FAST_BURN_1H`] for one hour *and* six: a page.
    FastBurn,
    NoData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::SlowBurn => "SLOW BURN",
            Verdict::FastBurn => "FAST BURN",
            Verdict::NoData => "no data",
        }
    }
}

/// Multi-window rule (§6.3): fast burn needs both windows over the fast threshold, so one bad
/// minute an hour ago does not page.
pub fn verdict(sli: Sli, one_hour: Window, six_hours: Window) -> Verdict {
    if one_hour.total <= 0.0 && six_hours.total <= 0.0 {
        return Verdict::NoData;
    }
    let (b1, b6) = (one_hour.burn_rate(sli), six_hours.burn_rate(sli));
    if b1 >= FAST_BURN_1H && b6 >= FAST_BURN_1H {
        Verdict::FastBurn
    } else if b6 >= SLOW_BURN_6H {
        Verdict::SlowBurn
    } else {
        Verdict::Ok
    }
}

/// Canary guardrails (seed §3.4): the new version's 5xx rate may exceed the stable one's by at
/// most `max_5xx_excess` (0.005), its p95 by at most `max_p95_ratio` (1.2×).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guardrails {
    pub max_5xx_excess: f64,
    pub max_p95_ratio: f64,
}

pub const SEED_GUARDRAILS: Guardrails = Guardrails {
    max_5xx_excess: 0.005,
    max_p95_ratio: 1.2,
};

/// One version's numbers over the observation window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VersionHealth {
    pub requests: f64,
    pub error_rate: f64,
    pub p95_ms: f64,
}

/// Why a canary step must not go on; `None` when it may.
pub fn breach(canary: &VersionHealth, baseline: &VersionHealth, limits: &Guardrails) -> Option<String> {
    if canary.error_rate > baseline.error_rate + limits.max_5xx_excess {
        return Some(format!(
            "5xx rate {:.3} % > baseline {:.3} % + {:.3} %",
            canary.error_rate * 100.0,
            baseline.error_rate * 100.0,
            limits.max_5xx_excess * 100.0
        ));
    }
    if baseline.p95_ms > 0.0 && canary.p95_ms > baseline.p95_ms * limits.max_p95_ratio {
        return Some(format!(
            "p95 {:.0} ms > baseline {:.0} ms x {:.2}",
            canary.p95_ms, baseline.p95_ms, limits.max_p95_ratio
        ));
    }
    None
}

/// What one request's data point says (written by `edge::sli`, read by the SQL below).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPoint<'a> {
    /// `share`, `api`, `any` (health probes) or `none` (refused before routing).
    pub surface: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub cache_status: &'a str,
    pub version_id: &'a str,
    pub version_tag: &'a str,
    pub environment: &'a str,
    pub duration_ms: f64,
    pub sample_rate: f64,
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl RequestPoint<'_> {
    /// blob1…blob7, in the order the SQL reads them.
    pub fn blobs(&self) -> [&str; 7] {
        [
            self.surface,
            self.route,
            status_class(self.status),
            self.cache_status,
            self.version_id,
            self.version_tag,
            self.environment,
        ]
    }

    /// double1…double3.
    pub fn doubles(&self) -> [f64; 3] {
        [self.duration_ms, f64::from(self.status), self.sample_rate]
    }
}

/// Which requests write a data point, and what each weighs (issue 31). The stable version writes
/// a share `stable_rate` (`SLI_SAMPLE_RATE`, `1/N`) of its points, each recording that rate so
/// it weighs `N` (`POINT_WEIGHT`). Two kinds are written every time, at weight 1:
///
/// - every point of a version under canary, one uploaded less than `SLI_CANARY_MINUTES` ago, so
///   `scripts/canary` compares every request of the new version (the stable side is weighted);
/// - every bad event of a paging SLI (a 5xx, a share page over [`SHARE_TTFB_MS`]), so the burn
///   rates' numerators are exact counts and only their denominators are estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointSampling {
    pub stable_rate: f64,
    /// Until when (epoch ms) this version writes every point; `None`: an upload time unknown.
    pub every_point_until_ms: Option<i64>,
}

impl PointSampling {
    pub fn new(stable_rate: f64, uploaded_at_ms: Option<i64>, canary_minutes: u32) -> PointSampling {
        PointSampling {
            stable_rate,
            every_point_until_ms: uploaded_at_ms.map(|at| at.saturating_add(i64::from(canary_minutes) * 60_000)),
        }
    }

    /// The rate a point is written at (it weighs 1/rate): 1 under canary and for a bad event.
    pub fn rate(&self, now_ms: i64, bad: bool) -> f64 {
        if bad || self.every_point_until_ms.is_some_and(|until| now_ms < until) {
            1.0
        } else {
            self.stable_rate
        }
    }

    /// Whether this point is written, and at which rate; `draw` is uniform in `[0, 1)` (only
    /// asked for when the rate is under 1).
    pub fn decide(&self, now_ms: i64, bad: bool, draw: impl FnOnce() -> f64) -> Option<f64> {
        let rate = self.rate(now_ms, bad);
        (rate >= 1.0 || draw() < rate).then_some(rate)
    }
}

/// A point's weight: how many requests it stands for (a whole number, `SLI_SAMPLE_RATE` is 1/N).
pub fn weight_of(rate: f64) -> u64 {
    (1.0 / rate).round() as u64
}

/// A bad event of a paging SLI, as the SQL below counts it: a 5xx answer, or a share page
/// (`share`, `/s/:token`) slower than [`SHARE_TTFB_MS`].
pub fn paging_bad_event(surface: &str, route: &str, status: u16, duration_ms: f64) -> bool {
    status_class(status) == "5xx" || (surface == "share" && route == "/s/:token" && duration_ms > SHARE_TTFB_MS)
}

/// The edge dataset of an environment (wrangler.toml, `EDGE_METRICS`).
pub fn edge_dataset(environment: &str) -> &'static str {
    match environment {
        "production" => "babybook_edge_requests",
        "staging" => "babybook_edge_requests_staging",
        _ => "babybook_edge_requests_local",
    }
}

/// Weight of one point: how many requests it stands for (Analytics Engine's own sampling times
/// ours: `double3` is the rate the point was written at, [`PointSampling`]). Every count sums it.
pub const POINT_WEIGHT: &str = "(_sample_interval / double3)";
/// The same weight as a whole number, for `quantileExactWeighted` (whole weights only): 1/rate
/// is whole by configuration, and `+ 0.5` rounds a quotient a float's error put just under it.
pub const POINT_WEIGHT_WHOLE: &str = "toUInt32(_sample_interval / double3 + 0.5)";
const SHARE_PAGE: &str = "blob1 = 'share' AND blob2 = '/s/:token'";

/// Environment names are ours, but a quote in one would end the literal: keep only safe bytes.
pub fn sql_text(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// One row: `requests`, `errors` (5xx), `share_pages`, `share_slow` (over 300 ms),
/// `share_misses` (not served from the edge cache) over the last `hours`. What `scripts/slo`
/// prints and what the Worker's `slo_burn` cron job pages on.
pub fn edge_window_sql(environment: &str, hours: u32) -> String {
    format!(
        "SELECT SUM({W}) AS requests, \
         SUM(IF(blob3 = '5xx', {W}, 0)) AS errors, \
         SUM(IF({SHARE_PAGE}, {W}, 0)) AS share_pages, \
         SUM(IF({SHARE_PAGE} AND double1 > {slow}, {W}, 0)) AS share_slow, \
         SUM(IF({SHARE_PAGE} AND blob4 != 'hit', {W}, 0)) AS share_misses \
         FROM {table} WHERE timestamp > NOW() - INTERVAL '{hours}' HOUR AND blob7 = '{environment}' \
         FORMAT JSON",
        W = POINT_WEIGHT,
        slow = SHARE_TTFB_MS,
        table = edge_dataset(environment),
        environment = sql_text(environment),
    )
}

type Row = serde_json::Map<String, serde_json::Value>;

/// The rows of an Analytics Engine SQL answer (`{"data": [{…}], …}`); anything else is an error,
/// never zeroes.
pub fn answer_rows(answer: &serde_json::Value) -> Result<Vec<&Row>, String> {
    let data = answer
        .get("data")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| format!("not an Analytics Engine SQL answer (no data): {}", clip(answer)))?;
    data.iter()
        .map(|r| {
            r.as_object()
                .ok_or_else(|| format!("a row that is not an object: {}", clip(r)))
        })
        .collect()
}

fn clip(value: &serde_json::Value) -> String {
    value.to_string().chars().take(200).collect()
}

/// A number field; Analytics Engine writes some numbers as strings. Missing or null is 0.
pub fn number(row: &Row, key: &str) -> Result<f64, String> {
    match row.get(key) {
        None | Some(serde_json::Value::Null) => Ok(0.0),
        Some(serde_json::Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{key}: {n}")),
        Some(serde_json::Value::String(s)) => s.trim().parse().map_err(|_| format!("{key}: {s:?} is not a number")),
        Some(other) => Err(format!("{key}: {other} is not a number")),
    }
}

/// The three edge SLIs' windows from an answer to [`edge_window_sql`] (no row: an empty window).
pub fn edge_windows(answer: &serde_json::Value) -> Result<Vec<(Sli, Window)>, String> {
    let rows = answer_rows(answer)?;
    let empty = Row::new();
    let row = rows.first().copied().unwrap_or(&empty);
    Ok(vec![
        (
            Sli::Availability,
            Window {
                total: number(row, "requests")?,
                bad: number(row, "errors")?,
            },
        ),
        (
            Sli::ShareTtfb,
            Window {
                total: number(row, "share_pages")?,
                bad: number(row, "share_slow")?,
            },
        ),
        (
            Sli::ShareCacheHit,
            Window {
                total: number(row, "share_pages")?,
                bad: number(row, "share_misses")?,
            },
        ),
    ])
}

/// The SLIs that page when they burn fast (seed §5.5: 5xx rate, share TTFB); the cache hit
/// ratio is a ticket, not a page.
pub fn paging(sli: Sli) -> bool {
    matches!(sli, Sli::Availability | Sli::ShareTtfb)
}

/// The paging SLIs burning fast in both windows.
pub fn fast_burning(one_hour: &[(Sli, Window)], six_hours: &[(Sli, Window)]) -> Vec<Sli> {
    one_hour
        .iter()
        .zip(six_hours)
        .filter(|((sli, w1), (_, w6))| paging(*sli) && verdict(*sli, *w1, *w6) == Verdict::FastBurn)
        .map(|((sli, _), _)| *sli)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_rate_is_the_bad_fraction_over_the_budget() {
        let w = Window {
            total: 10_000.0,
            bad: 50.0,
        };
        assert!(
            (w.burn_rate(Sli::Availability) - 1.0).abs() < 1e-9,
            "0.5 % bad = budget pace"
        );
        let w = Window {
            total: 1_000.0,
            bad: 72.0,
        };
        assert!((w.burn_rate(Sli::Availability) - 14.4).abs() < 1e-9);
        assert_eq!(Window { total: 0.0, bad: 0.0 }.burn_rate(Sli::Availability), 0.0);
        let slow = Window {
            total: 100.0,
            bad: 10.0,
        };
        assert!(
            (slow.burn_rate(Sli::ShareTtfb) - 2.0).abs() < 1e-9,
            "10 % slow vs 5 % budget"
        );
    }

    #[test]
    fn only_both_windows_over_the_fast_threshold_page() {
        let w = |bad: f64| Window { total: 1_000.0, bad };
        let rows = [
            (w(100.0), w(100.0), Verdict::FastBurn),
            (w(100.0), w(1.0), Verdict::Ok),
            (w(1.0), w(40.0), Verdict::SlowBurn),
            (w(0.0), w(0.0), Verdict::Ok),
            (
                Window { total: 0.0, bad: 0.0 },
                Window { total: 0.0, bad: 0.0 },
                Verdict::NoData,
            ),
        ];
        for (i, (one, six, expected)) in rows.into_iter().enumerate() {
            assert_eq!(verdict(Sli::Availability, one, six), expected, "row {i}");
        }
    }

    #[test]
    fn the_edge_answer_becomes_windows_and_only_paging_slis_burning_in_both_windows_page() {
        let answer = |errors: u32, slow: u32, misses: u32| serde_json::json!({"data": [{"requests": "10000", "errors": errors, "share_pages": 1000, "share_slow": slow, "share_misses": misses}]});
        let calm = edge_windows(&answer(1, 10, 100)).unwrap();
        let hot = edge_windows(&answer(900, 900, 900)).unwrap();
        assert_eq!(fast_burning(&hot, &hot), [Sli::Availability, Sli::ShareTtfb]);
        assert!(fast_burning(&hot, &calm).is_empty(), "one window is not enough");
        assert!(fast_burning(&calm, &calm).is_empty());
        assert!(edge_windows(&serde_json::json!({"errors": ["no"]})).is_err());
        assert!(edge_windows(&serde_json::json!({"data": [{"requests": "lots"}]})).is_err());
        assert_eq!(edge_windows(&serde_json::json!({"data": []})).unwrap()[0].1.total, 0.0);
        let sql = edge_window_sql("production", 6);
        assert!(
            sql.contains("FROM babybook_edge_requests WHERE") && sql.contains("INTERVAL '6' HOUR"),
            "{sql}"
        );
        assert_eq!(sql_text("x'; DROP"), "xDROP");
    }

    #[test]
    fn the_sql_reads_each_column_where_the_point_writes_it() {
        let point = RequestPoint {
            surface: "share",
            route: "/s/:token",
            status: 503,
            cache_status: "hit",
            version_id: "v-id",
            version_tag: "v-tag",
            environment: "production",
            duration_ms: 301.0,
            sample_rate: 0.5,
        };
        let blob = |value: &str| format!("blob{}", point.blobs().iter().position(|b| *b == value).unwrap() + 1);
        let double = |value: f64| {
            format!(
                "double{}",
                point.doubles().iter().position(|d| *d == value).unwrap() + 1
            )
        };
        let sql = edge_window_sql("production", 1);
        for needle in [
            format!("{} = 'share'", blob("share")),
            format!("{} = '/s/:token'", blob("/s/:token")),
            format!("{} = '5xx'", blob("5xx")),
            format!("{} != 'hit'", blob("hit")),
            format!("{} = 'production'", blob("production")),
            format!("{} > 300", double(301.0)),
            format!("_sample_interval / {}", double(0.5)),
        ] {
            assert!(sql.contains(&needle), "{needle} not in {sql}");
        }
        assert_eq!(blob("v-id"), "blob5", "scripts/canary groups by blob5");
        assert_eq!(
            [status_class(200), status_class(404), status_class(101)],
            ["2xx", "4xx", "1xx"]
        );
    }

    /// Issue 31: the stable version samples, each point weighing 1/rate; a version under canary
    /// and every bad event of a paging SLI write every point at weight 1; weighted sums count
    /// every request.
    #[test]
    fn sampled_points_carry_their_weight_and_a_canary_or_a_bad_event_writes_every_point() {
        let uploaded = 1_000_000_000_000;
        let sampling = PointSampling::new(0.1, Some(uploaded), 60);
        let during = uploaded + 59 * 60_000;
        let after = uploaded + 60 * 60_000;
        assert_eq!(sampling.rate(during, false), 1.0, "under canary: every point");
        assert_eq!(sampling.rate(after, false), 0.1, "stable: sampled");
        assert_eq!(sampling.rate(after, true), 1.0, "a bad event: every point");
        assert_eq!(
            PointSampling::new(0.1, None, 60).rate(after, false),
            0.1,
            "no upload time: stable"
        );
        assert_eq!(
            PointSampling::new(0.1, Some(uploaded), 0).rate(uploaded, false),
            0.1,
            "0 minutes: never"
        );
        assert_eq!(
            sampling.decide(during, false, || unreachable!("no draw at rate 1")),
            Some(1.0)
        );
        assert_eq!(sampling.decide(after, false, || 0.09), Some(0.1));
        assert_eq!(sampling.decide(after, false, || 0.1), None);
        assert_eq!(
            [weight_of(1.0), weight_of(0.1), weight_of(0.125), weight_of(0.05)],
            [1, 10, 8, 20]
        );

        // 100 000 stable requests, 1 % of them bad: the weighted sums find both counts.
        let mut draws = (0u64..).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64);
        let (mut points, mut requests, mut bad) = (0u64, 0u64, 0u64);
        for i in 0..100_000 {
            let is_bad = i % 100 == 0;
            if let Some(rate) = sampling.decide(after, is_bad, || draws.next().unwrap()) {
                points += 1;
                requests += weight_of(rate);
                bad += u64::from(is_bad) * weight_of(rate);
            }
        }
        assert_eq!(bad, 1_000, "bad events are exact");
        assert!(
            (requests as f64 - 100_000.0).abs() < 3_000.0,
            "{requests} weighted requests"
        );
        assert!(
            points < 12_000,
            "{points} points for 100 000 requests at 0.1 and 1 % bad"
        );

        assert!(paging_bad_event("api", "/me", 503, 5.0));
        assert!(paging_bad_event("share", "/s/:token", 200, 301.0));
        assert!(!paging_bad_event("share", "/s/:token", 200, 300.0));
        assert!(
            !paging_bad_event("api", "/shares", 200, 900.0),
            "TTFB is the share pages' SLI"
        );
        assert!(!paging_bad_event("share", "/s/:token", 404, 10.0));
    }

    /// The SQL's bad events are [`paging_bad_event`]'s: a point written at weight 1 because it
    /// was bad is one the SQL counts as bad.
    #[test]
    fn the_sql_counts_as_bad_what_the_sampler_writes_every_time() {
        let sql = edge_window_sql("production", 1);
        assert!(sql.contains("blob3 = '5xx'"), "{sql}");
        assert!(
            sql.contains(&format!("{SHARE_PAGE} AND double1 > {SHARE_TTFB_MS}")),
            "{sql}"
        );
        assert!(SHARE_PAGE.contains("blob1 = 'share'") && SHARE_PAGE.contains("blob2 = '/s/:token'"));
    }

    #[test]
    fn a_canary_breaches_on_errors_or_latency_against_its_baseline() {
        let base = VersionHealth {
            requests: 1000.0,
            error_rate: 0.001,
            p95_ms: 100.0,
        };
        let ok = VersionHealth {
            requests: 50.0,
            error_rate: 0.005,
            p95_ms: 119.0,
        };
        assert_eq!(breach(&ok, &base, &SEED_GUARDRAILS), None);
        let errors = VersionHealth {
            error_rate: 0.0061,
            ..ok
        };
        assert!(breach(&errors, &base, &SEED_GUARDRAILS).unwrap().starts_with("5xx"));
        let slow = VersionHealth { p95_ms: 121.0, ..ok };
        assert!(breach(&slow, &base, &SEED_GUARDRAILS).unwrap().starts_with("p95"));
    }
}
