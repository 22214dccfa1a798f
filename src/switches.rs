//! Operator switches that need no deploy (seed §7.3 read-only mode, §9.1 forced prewarm, §9.5
//! the export kill switch): their names, how they are stored in the `SWITCHES` KV namespace, and
//! how long an isolate trusts what it read.
//!
//! A switch that was never flipped (no key) falls back to its deploy-time default (`READ_ONLY`
//! for read-only mode, off for the others), so the var stays what a fresh environment starts
//! with, and a flipped switch survives every later deploy: deploys do not touch the namespace.

use std::collections::BTreeMap;

/// How long an isolate serves a switch value it read before reading again. With KV's own edge
/// cache (up to 60 s for a key read before in that location), a flip takes effect everywhere
/// within [`EFFECT_BOUND_SECONDS`]; in `wrangler dev` (one location, no KV edge cache) within
/// this bound.
pub const ISOLATE_CACHE_MS: i64 = 5_000;

/// What the runbooks promise: a flip is seen by every isolate in every location within this.
pub const EFFECT_BOUND_SECONDS: u32 = 65;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Switch {
    /// Refuse every data write (`503 read_only`), as `READ_ONLY=true` does.
    ReadOnly,
    /// The prewarm cron warms the top links on every run, whatever the calendar says.
    ForcePrewarm,
    /// `POST /exports` answers `503` instead of starting an export.
    ExportsOff,
}

pub const ALL: [Switch; 3] = [Switch::ReadOnly, Switch::ForcePrewarm, Switch::ExportsOff];

impl Switch {
    /// The operator's name for it (`scripts/switch read-only on`).
    pub fn name(self) -> &'static str {
        match self {
            Switch::ReadOnly => "read-only",
            Switch::ForcePrewarm => "force-prewarm",
            Switch::ExportsOff => "exports-off",
        }
    }

    /// Its key in the `SWITCHES` namespace.
    pub fn key(self) -> &'static str {
        match self {
            Switch::ReadOnly => "switch:read-only",
            Switch::ForcePrewarm => "switch:force-prewarm",
            Switch::ExportsOff => "switch:exports-off",
        }
    }

    pub fn parse(name: &str) -> Result<Switch, String> {
        ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|s| s.name()).collect();
            format!("unknown switch {name:?}: one of {}", names.join(", "))
        })
    }
}

/// A stored switch value: `on` or `off`. Anything else (a hand edit gone wrong) reads as unset,
/// so the deploy-time default applies rather than a guess.
pub fn parse_stored(value: Option<&str>) -> Option<bool> {
    match value.map(str::trim) {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    }
}

pub fn stored_value(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// What an isolate last read from the namespace, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub read_at_ms: i64,
    /// Only the switches that have a stored value.
    pub stored: BTreeMap<Switch, bool>,
}

impl Snapshot {
    /// Still good at `now_ms`? (A clock that went backwards counts as stale.)
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        (0..ISOLATE_CACHE_MS).contains(&(now_ms - self.read_at_ms))
    }

    /// The switch's effective value: what was stored, else `default`.
    pub fn get(&self, switch: Switch, default: bool) -> bool {
        self.stored.get(&switch).copied().unwrap_or(default)
    }
}

/// `{"read-only": {"on": true, "source": "switch"}, …}`: what `GET /admin/switches` answers.
pub fn describe(snapshot: &Snapshot, read_only_default: bool) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for switch in ALL {
        let default = switch == Switch::ReadOnly && read_only_default;
        let (on, source) = match snapshot.stored.get(&switch) {
            Some(&on) => (on, "switch"),
            None => (default, "deploy default"),
        };
        out.insert(switch.name().into(), serde_json::json!({"on": on, "source": source}));
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_parses_from_its_own_name_and_nothing_else_does() {
        for switch in ALL {
            assert_eq!(Switch::parse(switch.name()), Ok(switch));
            assert!(switch.key().ends_with(switch.name()));
        }
        for bad in ["", "read_only", "READ-ONLY", "exports", "read-only "] {
            assert!(Switch::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_stored_value_is_on_or_off_and_anything_else_means_the_default() {
        let rows = [
            (Some("on"), Some(true)),
            (Some("off"), Some(false)),
            (Some(" on\n"), Some(true)),
            (Some("true"), None),
            (Some(""), None),
            (None, None),
        ];
        for (stored, expected) in rows {
            assert_eq!(parse_stored(stored), expected, "row {stored:?}");
        }
        assert_eq!(parse_stored(Some(stored_value(true))), Some(true));
        assert_eq!(parse_stored(Some(stored_value(false))), Some(false));
    }

    #[test]
    fn a_stored_switch_overrides_the_deploy_default_in_both_directions() {
        let mut snapshot = Snapshot::default();
        assert!(snapshot.get(Switch::ReadOnly, true), "unset: READ_ONLY=true holds");
        assert!(!snapshot.get(Switch::ReadOnly, false));
        snapshot.stored.insert(Switch::ReadOnly, false);
        assert!(
            !snapshot.get(Switch::ReadOnly, true),
            "switched off beats READ_ONLY=true"
        );
        snapshot.stored.insert(Switch::ReadOnly, true);
        assert!(snapshot.get(Switch::ReadOnly, false));
        assert!(!snapshot.get(Switch::ExportsOff, false), "others keep their default");
    }

    #[test]
    fn a_snapshot_is_trusted_for_the_stated_bound_only() {
        let snapshot = Snapshot {
            read_at_ms: 1_000_000,
            stored: BTreeMap::new(),
        };
        assert!(snapshot.is_fresh(1_000_000));
        assert!(snapshot.is_fresh(1_000_000 + ISOLATE_CACHE_MS - 1));
        assert!(!snapshot.is_fresh(1_000_000 + ISOLATE_CACHE_MS));
        assert!(!snapshot.is_fresh(999_999), "a clock that went back rereads");
        assert!(!Snapshot::default().is_fresh(1_000_000), "never read: stale");
    }

    #[test]
    fn the_description_says_where_each_value_comes_from() {
        let mut snapshot = Snapshot::default();
        snapshot.stored.insert(Switch::ExportsOff, true);
        let described = describe(&snapshot, true);
        assert_eq!(
            described["read-only"],
            serde_json::json!({"on": true, "source": "deploy default"})
        );
        assert_eq!(
            described["exports-off"],
            serde_json::json!({"on": true, "source": "switch"})
        );
        assert_eq!(described["force-prewarm"]["on"], false);
    }
}
