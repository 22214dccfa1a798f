//! One Workers Analytics Engine data point per request, sampled with its weight
//! (`crate::slo::PointSampling`): the stable version writes a share `SLI_SAMPLE_RATE` of them, a
//! version under canary (uploaded less than `SLI_CANARY_MINUTES` ago) and every bad event of a
//! paging SLI write every one. Each point records the rate it was written at (double3), so it
//! weighs 1/rate and every count sums weights. Written after the answer is built; a failed write
//! costs nothing but the point.
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
    let surface = match point.surface {
        Some(Surface::Share) => "share",
        Some(Surface::Api) => "api",
        Some(Surface::Any) => "any",
        None => "none",
    };
    let sampling = crate::slo::PointSampling::new(
        config.sli_sample_rate,
        config.deployed.uploaded_at_ms,
        config.sli_canary_minutes,
    );
    let bad = crate::slo::paging_bad_event(surface, point.route, point.status, point.duration_ms as f64);
    let Some(rate) = sampling.decide(super::context::now_ms(), bad, crate::sampling::unit_interval) else {
        return;
    };
    // What the test controls' counters show (`sli_points`, `sli_weight`): the edge tests check
    // the sampling and the weights where Analytics Engine cannot be read (`wrangler dev`).
    super::faults::count(super::faults::Counter::SliPoints);
    super::faults::add(super::faults::Counter::SliWeight, crate::slo::weight_of(rate));
    let Ok(dataset) = io.analytics_engine(binding::EDGE_METRICS) else {
        return;
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
