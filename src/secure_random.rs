//! Randomness from the platform CSPRNG (`crypto.getRandomValues` inside a Worker, the OS on the
//! host), for tokens, ids and nonces. A failing CSPRNG is not something to limp along without.

use babybook_jobs::{Id, TraceId};

/// Fills a fixed-size array with CSPRNG bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)?;
    Ok(out)
}

pub fn new_id() -> Result<Id, getrandom::Error> {
    Ok(Id::from_random_bytes(bytes::<16>()?))
}

pub fn new_trace_id() -> Result<TraceId, getrandom::Error> {
    Ok(TraceId::from_random_bytes(bytes::<16>()?))
}

/// A uniform draw in `[0, 1)`, for log sampling.
pub fn unit_interval() -> f64 {
    match bytes::<8>() {
        Ok(b) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        // Without randomness, sample everything rather than nothing: a log too many beats a blind spot.
        Err(_) => 0.0,
    }
}
