//! View counting for popularity (what cron prewarm ranks by) with no database write on the hot
//! path: views are tallied in the isolate and flushed in one statement, in the background, at
//! most once per flush interval. An evicted isolate loses its unflushed tally; popularity is a
//! ranking, not a ledger, so that is the right trade.

use std::collections::BTreeMap;

use crate::share::TokenHash;

#[derive(Debug, Default)]
pub struct ViewTally {
    counts: BTreeMap<TokenHash, u32>,
    last_flush_ms: Option<i64>,
}

/// At most this many distinct links per flush: bounds the statement and the memory.
pub const MAX_LINKS_PER_FLUSH: usize = 500;

impl ViewTally {
    pub fn record(&mut self, hash: TokenHash) {
        if self.counts.len() < MAX_LINKS_PER_FLUSH || self.counts.contains_key(&hash) {
            *self.counts.entry(hash).or_insert(0) += 1;
        }
    }

    /// Takes the tally if a flush is due (`interval_ms` since the last one, or the tally is full).
    pub fn take_if_due(&mut self, now_ms: i64, interval_ms: i64) -> Option<Vec<(TokenHash, u32)>> {
        if self.counts.is_empty() {
            return None;
        }
        let due = match self.last_flush_ms {
            None => true,
            Some(last) => now_ms - last >= interval_ms || self.counts.len() >= MAX_LINKS_PER_FLUSH,
        };
        if !due {
            return None;
        }
        self.last_flush_ms = Some(now_ms);
        Some(std::mem::take(&mut self.counts).into_iter().collect())
    }

    /// Puts back a tally whose flush failed, so the views are counted next time.
    pub fn restore(&mut self, tally: Vec<(TokenHash, u32)>) {
        for (hash, n) in tally {
            *self.counts.entry(hash).or_insert(0) += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_flushed_at_most_once_per_interval() {
        let mut tally = ViewTally::default();
        let a = TokenHash([1; 32]);
        tally.record(a);
        tally.record(a);
        assert_eq!(
            tally.take_if_due(0, 30_000),
            Some(vec![(a, 2)]),
            "the first view flushes at once"
        );
        tally.record(a);
        assert_eq!(tally.take_if_due(10_000, 30_000), None);
        assert_eq!(tally.take_if_due(30_000, 30_000), Some(vec![(a, 1)]));
        assert_eq!(tally.take_if_due(90_000, 30_000), None, "nothing to flush");
    }

    #[test]
    fn a_failed_flush_is_put_back() {
        let mut tally = ViewTally::default();
        let a = TokenHash([1; 32]);
        tally.record(a);
        let taken = tally.take_if_due(0, 0).unwrap();
        tally.restore(taken);
        tally.record(a);
        assert_eq!(tally.take_if_due(1, 0), Some(vec![(a, 2)]));
    }
}
