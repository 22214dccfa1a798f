//! The in-isolate copy of the hottest share pages, bounded in bytes: what an isolate may hold
//! in front of the Cache API without a large share (or many) pushing it over its memory limit.
//!
//! An isolate has 128 MB, shared by every request it serves at once. A share page is not small
//! by nature: any account can make one of about 20 MB (200 moments of 20,000 characters), and a
//! count of entries says nothing about bytes. So the memory is bounded by bytes in total
//! ([`BUDGET_BYTES`]), a page larger than [`MAX_PAGE_BYTES`] is never kept (it is served from the
//! Cache API instead), and values are shared (`Rc`), so a hit copies nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

/// The most page bytes one isolate keeps: an eighth of its 128 MB, so that the pages being
/// rendered and served by concurrent requests, and the Worker's own heap, keep the rest.
pub const BUDGET_BYTES: usize = 16 * 1024 * 1024;

/// The largest page kept. Typical pages are 5–50 KiB; a page over 1 MiB is rare, costs a Cache
/// API read at most, and would otherwise take a sixteenth of the budget alone.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// What an entry costs besides its value's own bytes (key, times, map slot, allocations).
pub const ENTRY_OVERHEAD_BYTES: usize = 128;

struct Entry<V> {
    value: Rc<V>,
    bytes: usize,
    stored_ms: i64,
}

/// Values by key, each with its size in bytes and the time it was stored; entries older than
/// `ttl_ms` are never returned and are the first to go.
pub struct PageMemory<K, V> {
    entries: HashMap<K, Entry<V>>,
    bytes: usize,
    budget: usize,
    max_entry: usize,
}

/// What the memory holds, for the test counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub entries: usize,
    pub bytes: usize,
    pub largest_entry_bytes: usize,
}

impl<K: Eq + Hash + Copy, V> PageMemory<K, V> {
    /// A memory of `budget` bytes in all that keeps no entry over `max_entry` bytes.
    pub fn new(budget: usize, max_entry: usize) -> PageMemory<K, V> {
        PageMemory {
            entries: HashMap::new(),
            bytes: 0,
            budget,
            max_entry: max_entry.min(budget),
        }
    }

    /// The value under `key` if stored within `ttl_ms` of `now_ms`: shared, not copied.
    pub fn get(&self, key: &K, now_ms: i64, ttl_ms: i64) -> Option<Rc<V>> {
        self.entries
            .get(key)
            .filter(|e| now_ms - e.stored_ms <= ttl_ms)
            .map(|e| Rc::clone(&e.value))
    }

    /// Stores `value` of `value_bytes` under `key`, replacing what was there. A value over the
    /// entry limit is not kept (and the old one under its key is dropped). To make room, expired
    /// entries go first, then the oldest. Returns whether the value was kept.
    pub fn put(&mut self, key: K, value: Rc<V>, value_bytes: usize, now_ms: i64, ttl_ms: i64) -> bool {
        self.remove(&key);
        let bytes = value_bytes.saturating_add(ENTRY_OVERHEAD_BYTES);
        if bytes > self.max_entry {
            return false;
        }
        if self.bytes + bytes > self.budget {
            self.retain(|_, stored_ms| now_ms - stored_ms <= ttl_ms);
        }
        while self.bytes + bytes > self.budget {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.stored_ms).map(|(k, _)| *k) else {
                break;
            };
            self.remove(&oldest);
        }
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                value,
                bytes,
                stored_ms: now_ms,
            },
        );
        true
    }

    pub fn remove(&mut self, key: &K) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.bytes;
        }
    }

    /// Keeps the entries for which `keep(key, stored_ms)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, i64) -> bool) {
        let mut freed = 0;
        self.entries.retain(|k, e| {
            let kept = keep(k, e.stored_ms);
            if !kept {
                freed += e.bytes;
            }
            kept
        });
        self.bytes -= freed;
    }

    pub fn usage(&self) -> Usage {
        Usage {
            entries: self.entries.len(),
            bytes: self.bytes,
            largest_entry_bytes: self.entries.values().map(|e| e.bytes).max().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 2_000;
    /// A value whose cost, overhead included, is `n` bytes.
    fn cost(n: usize) -> usize {
        n - ENTRY_OVERHEAD_BYTES
    }

    fn memory(budget: usize, max_entry: usize) -> PageMemory<u32, &'static str> {
        PageMemory::new(budget, max_entry)
    }

    #[test]
    fn a_hit_shares_the_stored_value() {
        let mut m = memory(10_000, 1_000);
        let value = Rc::new("page");
        assert!(m.put(1, Rc::clone(&value), cost(500), 0, TTL));
        let hit = m.get(&1, 10, TTL).unwrap();
        assert!(Rc::ptr_eq(&hit, &value), "a hit is the same allocation, not a copy");
    }

    #[test]
    fn bytes_are_counted_on_put_replace_remove_and_retain() {
        let mut m = memory(10_000, 2_000);
        m.put(1, Rc::new("a"), cost(1_000), 0, TTL);
        m.put(2, Rc::new("b"), cost(2_000), 0, TTL);
        assert_eq!(
            m.usage(),
            Usage {
                entries: 2,
                bytes: 3_000,
                largest_entry_bytes: 2_000
            }
        );
        m.put(1, Rc::new("a2"), cost(500), 1, TTL);
        assert_eq!(m.usage().bytes, 2_500, "a replaced entry's bytes are given back");
        m.remove(&2);
        assert_eq!(
            m.usage(),
            Usage {
                entries: 1,
                bytes: 500,
                largest_entry_bytes: 500
            }
        );
        m.retain(|_, _| false);
        assert_eq!(m.usage(), Usage::default());
    }

    #[test]
    fn a_value_over_the_entry_limit_is_never_kept_and_drops_the_old_one() {
        let mut m = memory(10_000, 1_000);
        assert!(m.put(1, Rc::new("small"), cost(800), 0, TTL));
        assert!(!m.put(1, Rc::new("huge"), 20_000_000, 1, TTL));
        assert_eq!(m.get(&1, 2, TTL), None, "no stale copy stays behind");
        assert_eq!(m.usage(), Usage::default());
    }

    #[test]
    fn the_budget_is_never_exceeded_and_expired_entries_go_before_live_ones() {
        let mut m = memory(3_000, 1_000);
        m.put(1, Rc::new("old"), cost(1_000), 0, TTL);
        m.put(2, Rc::new("live"), cost(1_000), 2_500, TTL);
        m.put(3, Rc::new("live"), cost(1_000), 2_600, TTL);
        // Full: the expired entry (stored at 0) goes, the live ones stay.
        m.put(4, Rc::new("new"), cost(1_000), 2_700, TTL);
        assert!(m.usage().bytes <= 3_000);
        assert_eq!(m.get(&1, 2_700, i64::MAX), None);
        for key in [2, 3, 4] {
            assert!(m.get(&key, 2_700, TTL).is_some(), "live entry {key}");
        }
        // Full of live entries: the oldest go, as many as the new value needs.
        m.put(5, Rc::new("wide"), cost(1_000), 2_800, TTL);
        assert_eq!(m.get(&2, 2_800, TTL), None, "the oldest live entry made room");
        assert!(m.usage().bytes <= 3_000);
    }

    #[test]
    fn many_large_pages_stay_within_the_budget() {
        let mut m: PageMemory<u32, ()> = PageMemory::new(BUDGET_BYTES, MAX_PAGE_BYTES);
        for key in 0..1_000 {
            m.put(
                key,
                Rc::new(()),
                MAX_PAGE_BYTES - ENTRY_OVERHEAD_BYTES,
                i64::from(key),
                TTL,
            );
            let usage = m.usage();
            assert!(usage.bytes <= BUDGET_BYTES, "after {key}: {usage:?}");
            assert!(usage.largest_entry_bytes <= MAX_PAGE_BYTES);
        }
        assert_eq!(m.usage().entries, BUDGET_BYTES / MAX_PAGE_BYTES);
    }

    #[test]
    fn entries_past_their_ttl_are_not_returned() {
        let mut m = memory(10_000, 1_000);
        m.put(1, Rc::new("x"), cost(200), 0, TTL);
        assert!(m.get(&1, TTL, TTL).is_some());
        assert!(m.get(&1, TTL + 1, TTL).is_none());
    }
}
