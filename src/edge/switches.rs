//! The operator switches (`crate::switches`) read from the `OPS_STATE` KV namespace, which works
//! while the database is down. Each isolate keeps what it read for `ISOLATE_CACHE_MS`; a request
//! that finds the snapshot stale reads again itself (it never waits on another request's read).
//! Only the paths a switch governs read it: share pages and reads never touch KV.

use std::cell::RefCell;

use crate::config::{binding, Config};
use crate::switches::{self, Snapshot, Switch, ALL};
use crate::telemetry::Level;

use super::context::{self, Io};

thread_local! {
    static SNAPSHOT: RefCell<Option<Snapshot>> = const { RefCell::new(None) };
}

/// The switches as this isolate knows them, read again when older than the bound. If KV cannot
/// be read, the last snapshot (else the deploy defaults) stands, and the next call tries again.
pub async fn snapshot(io: &Io, config: &Config) -> Snapshot {
    let now = context::now_ms();
    if let Some(fresh) = SNAPSHOT.with(|s| s.borrow().clone().filter(|s| s.is_fresh(now))) {
        return fresh;
    }
    match read(io).await {
        Ok(stored) => {
            let snapshot = Snapshot {
                read_at_ms: now,
                stored,
            };
            SNAPSHOT.with(|s| *s.borrow_mut() = Some(snapshot.clone()));
            snapshot
        }
        Err(e) => {
            context::emit(
                &context::line(config, &context::new_trace_id(), Level::Warn, "switches unreadable").field("detail", e),
            );
            SNAPSHOT.with(|s| s.borrow().clone()).unwrap_or_default()
        }
    }
}

/// The switch's effective value (`READ_ONLY` is read-only mode's default).
pub async fn is_on(io: &Io, config: &Config, switch: Switch) -> bool {
    snapshot(io, config).await.get(switch, default_of(config, switch))
}

pub fn default_of(config: &Config, switch: Switch) -> bool {
    switch == Switch::ReadOnly && config.read_only
}

async fn read(io: &Io) -> Result<std::collections::BTreeMap<Switch, bool>, String> {
    let kv = io.kv(binding::OPS_STATE).map_err(|e| e.to_string())?;
    let mut stored = std::collections::BTreeMap::new();
    for switch in ALL {
        let value = kv.get(switch.key()).text().await.map_err(|e| e.to_string())?;
        if let Some(on) = switches::parse_stored(value.as_deref()) {
            stored.insert(switch, on);
        }
    }
    Ok(stored)
}

/// Stores a switch (no expiry: it holds across deploys until flipped back) and forgets this
/// isolate's snapshot, so the isolate that took the call sees it at once.
pub async fn set(io: &Io, switch: Switch, on: bool) -> Result<(), String> {
    let kv = io.kv(binding::OPS_STATE).map_err(|e| e.to_string())?;
    kv.put(switch.key(), switches::stored_value(on))
        .map_err(|e| e.to_string())?
        .execute()
        .await
        .map_err(|e| e.to_string())?;
    SNAPSHOT.with(|s| *s.borrow_mut() = None);
    Ok(())
}
