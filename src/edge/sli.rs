//! One Workers Analytics Engine data point per request (sampled by `SLI_SAMPLE_RATE`, which each
//! point records so sums scale back): the edge SLIs of `docs/slo.md`. Written after the answer is
//! built; a failed write costs nothing but the point.
//!
//! The layout is `crate::slo::RequestPoint` (index1 the surface); a host test checks that the
//! SQL reads each column where the point writes it.

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

pub fn record(io: &Io, config: &Config, point: &Point<'_>) {
    let rate = config.sli_sample_rate;
    if rate <= 0.0 || (rate < 1.0 && crate::sampling::unit_interval() >= rate) {
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
    let point = crate::slo::RequestPoint {
        surface,
        route: point.route,
        status: point.status,
        cache_status: point.cache_status,
        version_id: &config.deployed.id,
        version_tag: &config.deployed.tag,
        environment: config.environment.as_str(),
        duration_ms: point.duration_ms as f64,
        sample_rate: rate,
    };
    let mut builder = worker::AnalyticsEngineDataPointBuilder::new().indexes([point.surface]);
    for blob in point.blobs() {
        builder = builder.add_blob(blob);
    }
    let _ = builder.doubles(point.doubles()).write_to(&dataset);
}
