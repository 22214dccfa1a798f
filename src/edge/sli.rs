//! One Workers Analytics Engine data point per request (sampled by `SLI_SAMPLE_RATE`, which each
//! point records so sums scale back): the edge SLIs of `docs/slo.md`. Written after the answer is
//! built; a failed write costs nothing but the point.
//!
//! Layout (the SQL in `ops/src/slo_sql.rs` reads it by position):
//! index1 surface · blob1 surface · blob2 route · blob3 status class (`2xx`…`5xx`) · blob4 cache
//! status (`hit`, `miss`, … or empty) · blob5 version id · blob6 version tag · blob7 environment ·
//! double1 duration ms · double2 status · double3 sample rate.

use crate::config::{binding, Config};
use crate::routes::Surface;

use super::context::Io;

pub struct Point<'a> {
    pub surface: Option<Surface>,
    pub route: &'a str,
    pub status: u16,
    pub cache_status: &'a str,
    pub duration_ms: i64,
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

pub fn record(io: &Io, config: &Config, point: &Point<'_>) {
    let rate = config.sli_sample_rate;
    if rate <= 0.0 || (rate < 1.0 && crate::secure_random::unit_interval() >= rate) {
        return;
    }
    let Ok(dataset) = io.analytics_engine(binding::EDGE_METRICS) else {
        return;
    };
    let surface = match point.surface {
        Some(Surface::Share) => "share",
        Some(Surface::Api) => "api",
        Some(Surface::Any) => "any",
        None => "none",
    };
    let _ = worker::AnalyticsEngineDataPointBuilder::new()
        .indexes([surface])
        .add_blob(surface)
        .add_blob(point.route)
        .add_blob(status_class(point.status))
        .add_blob(point.cache_status)
        .add_blob(config.deployed.id.as_str())
        .add_blob(config.deployed.tag.as_str())
        .add_blob(config.environment.as_str())
        .doubles([point.duration_ms as f64, f64::from(point.status), rate])
        .write_to(&dataset);
}
