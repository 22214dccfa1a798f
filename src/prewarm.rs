//! Seasonal prewarm windows (seed §8.3, §9.1), configured as data in `PREWARM_WINDOWS`:
//!
//! ```json
//! [{"name": "dia-das-maes-br", "month": 5, "weekday": "sunday", "nth": 2,
//!   "utc_offset": "-03:00", "duration_hours": 24, "lead_minutes": 120},
//!  {"name": "natal-2026", "start": "2026-12-24T00:00:00-03:00", "end": "2026-12-26T00:00:00-03:00", "lead_minutes": 120}]
//! ```
//!
//! A window is active from `lead_minutes` before it starts (the runbook's T-2h) until it ends.

use serde::Deserialize;

use babybook_jobs::{civil_from_days, days_from_civil, parse_rfc3339_millis};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeasonalWindow {
    pub name: String,
    #[serde(flatten)]
    pub when: When,
    #[serde(default = "default_lead")]
    pub lead_minutes: u32,
}

fn default_lead() -> u32 {
    120
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum When {
    /// A yearly day such as "the second Sunday of May" in a fixed UTC offset.
    NthWeekday {
        month: u32,
        weekday: Weekday,
        nth: u32,
        utc_offset: String,
        duration_hours: u32,
    },
    /// Fixed instants (RFC 3339).
    Fixed { start: String, end: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// 0 = Monday … 6 = Sunday.
    fn index(self) -> i64 {
        self as i64
    }
}

const MS_PER_DAY: i64 = 86_400_000;

impl SeasonalWindow {
    /// `[start - lead, end)` of the occurrence that could contain `now_ms`, in epoch ms.
    fn occurrences(&self, now_ms: i64) -> Vec<(i64, i64)> {
        let lead = i64::from(self.lead_minutes) * 60_000;
        match &self.when {
            When::Fixed { start, end } => match (parse_rfc3339_millis(start), parse_rfc3339_millis(end)) {
                (Ok(s), Ok(e)) => vec![(s - lead, e)],
                _ => Vec::new(),
            },
            When::NthWeekday {
                month,
                weekday,
                nth,
                utc_offset,
                duration_hours,
            } => {
                let Some(offset_ms) = parse_offset(utc_offset) else {
                    return Vec::new();
                };
                let year = civil_year(now_ms + offset_ms);
                [year - 1, year, year + 1]
                    .into_iter()
                    .filter_map(|y| nth_weekday(y, *month, *weekday, *nth))
                    .map(|day| {
                        let start = day * MS_PER_DAY - offset_ms;
                        (start - lead, start + i64::from(*duration_hours) * 3_600_000)
                    })
                    .collect()
            }
        }
    }

    pub fn contains(&self, now_ms: i64) -> bool {
        self.occurrences(now_ms)
            .into_iter()
            .any(|(from, until)| from <= now_ms && now_ms < until)
    }
}

/// The first configured window active at `now_ms`, if any.
pub fn active_window(windows: &[SeasonalWindow], now_ms: i64) -> Option<&SeasonalWindow> {
    windows.iter().find(|w| w.contains(now_ms))
}

fn parse_offset(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3_600_000 + m * 60_000))
}

fn civil_year(ms: i64) -> i64 {
    civil_from_days(ms.div_euclid(MS_PER_DAY)).0
}

/// Days since the epoch of the `nth` `weekday` of `month` in `year` (nth from 1; 5 may not exist).
fn nth_weekday(year: i64, month: u32, weekday: Weekday, nth: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=5).contains(&nth) {
        return None;
    }
    let first = days_from_civil(year, i64::from(month), 1);
    // 1970-01-01 was a Thursday (index 3).
    let first_weekday = (first + 3).rem_euclid(7);
    let offset = (weekday.index() - first_weekday).rem_euclid(7);
    let day = first + offset + 7 * i64::from(nth - 1);
    (civil_from_days(day).1 == i64::from(month)).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mothers_day() -> SeasonalWindow {
        serde_json::from_str(
            r#"{"name":"dia-das-maes-br","month":5,"weekday":"sunday","nth":2,"utc_offset":"-03:00","duration_hours":24,"lead_minutes":120}"#,
        )
        .unwrap()
    }

    fn at(text: &str) -> i64 {
        parse_rfc3339_millis(text).unwrap()
    }

    #[test]
    fn nth_weekdays_fall_on_their_calendar_dates() {
        let rows = [
            (2026, 5, Weekday::Sunday, 2, Some("2026-05-10")),
            (2027, 5, Weekday::Sunday, 2, Some("2027-05-09")),
            (2026, 11, Weekday::Thursday, 4, Some("2026-11-26")),
            (2026, 5, Weekday::Friday, 5, Some("2026-05-29")),
            (2024, 2, Weekday::Thursday, 5, Some("2024-02-29")),
            (2026, 2, Weekday::Sunday, 5, None),
            (2026, 13, Weekday::Sunday, 1, None),
            (2026, 1, Weekday::Thursday, 1, Some("2026-01-01")),
            (1999, 12, Weekday::Friday, 5, Some("1999-12-31")),
        ];
        for (year, month, weekday, nth, want) in rows {
            let got = nth_weekday(year, month, weekday, nth)
                .map(|day| babybook_jobs::format_rfc3339_millis(day * MS_PER_DAY)[..10].to_owned());
            assert_eq!(got.as_deref(), want, "{year}-{month} {weekday:?} #{nth}");
        }
        assert_eq!(civil_year(at("2026-12-31T23:59:59Z")), 2026);
        assert_eq!(civil_year(at("1969-12-31T23:59:59Z")), 1969);
    }

    #[test]
    fn mothers_day_in_brazil_is_the_second_sunday_of_may() {
        // 2026-05-10 and 2027-05-09 are the second Sundays of May.
        assert_eq!(
            nth_weekday(2026, 5, Weekday::Sunday, 2).map(|d| d * MS_PER_DAY),
            Some(at("2026-05-10T00:00:00Z"))
        );
        assert_eq!(
            nth_weekday(2027, 5, Weekday::Sunday, 2).map(|d| d * MS_PER_DAY),
            Some(at("2027-05-09T00:00:00Z"))
        );
        assert_eq!(
            nth_weekday(2026, 2, Weekday::Sunday, 5),
            None,
            "February 2026 has four Sundays"
        );
    }

    #[test]
    fn the_window_opens_two_hours_early_and_closes_after_the_day() {
        let w = mothers_day();
        let rows = [
            ("2026-05-09T21:59:00-03:00", false),
            ("2026-05-09T22:00:00-03:00", true),
            ("2026-05-10T12:00:00-03:00", true),
            ("2026-05-10T23:59:00-03:00", true),
            ("2026-05-11T00:00:00-03:00", false),
            ("2026-11-29T12:00:00Z", false),
            ("2027-05-09T10:00:00-03:00", true),
        ];
        for (time, want) in rows {
            assert_eq!(w.contains(at(time)), want, "{time}");
        }
    }

    #[test]
    fn fixed_windows_and_lists_work_too() {
        let windows: Vec<SeasonalWindow> = serde_json::from_str(
            r#"[{"name":"natal","start":"2026-12-24T00:00:00-03:00","end":"2026-12-26T00:00:00-03:00","lead_minutes":60}]"#,
        )
        .unwrap();
        assert_eq!(
            active_window(&windows, at("2026-12-23T23:30:00-03:00")).map(|w| w.name.as_str()),
            Some("natal")
        );
        assert!(active_window(&windows, at("2026-12-26T00:00:00-03:00")).is_none());
    }
}
