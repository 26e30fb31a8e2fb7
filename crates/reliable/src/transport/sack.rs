//! [`SackRanges`]: which sequence numbers the receiver holds, as "everything below N" plus ranges.
//!
//! This is what an acknowledgement says: a cumulative ack (every sequence number below it has
//! arrived) and the selective-ack ranges above it, so the sender resends only the holes. It is
//! also the receiver's duplicate filter and its window check. The number of ranges is bounded:
//! a peer that sends every other sequence number cannot make the list grow without limit; a
//! packet that would need one range too many is refused (and will be resent).

use std::collections::VecDeque;

use udpchat_core::{AckRange, SeqNum};

/// What inserting a sequence number did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// It was new, and is now recorded.
    New,
    /// It had already arrived.
    Duplicate,
    /// It lies beyond the window, or would need more ranges than allowed: not recorded.
    Refused,
}

/// The set of received sequence numbers: `cumulative` and disjoint ascending ranges above it
/// (each separated from the next by at least one missing number).
#[derive(Debug, Clone)]
pub struct SackRanges {
    cumulative: u64,
    /// Inclusive `(first, last)`, ascending, disjoint, non-adjacent, all above `cumulative`.
    ranges: VecDeque<(u64, u64)>,
    max_ranges: usize,
    window: u64,
}

impl SackRanges {
    /// Nothing received yet. Accepts numbers below `cumulative + window`, in at most `max_ranges`
    /// ranges.
    pub fn new(window: u64, max_ranges: usize) -> Self {
        SackRanges {
            cumulative: 0,
            ranges: VecDeque::new(),
            max_ranges: max_ranges.max(1),
            window,
        }
    }

    /// Every sequence number below this has arrived.
    pub fn cumulative(&self) -> SeqNum {
        SeqNum(self.cumulative)
    }

    /// Whether `seq` has arrived.
    #[cfg(test)]
    pub fn contains(&self, seq: SeqNum) -> bool {
        let s = seq.0;
        s < self.cumulative || self.ranges.iter().any(|&(f, l)| f <= s && s <= l)
    }

    /// The largest sequence number received, if any.
    pub fn largest(&self) -> Option<SeqNum> {
        match self.ranges.back() {
            Some(&(_, last)) => Some(SeqNum(last)),
            None => self.cumulative.checked_sub(1).map(SeqNum),
        }
    }

    /// Records `seq`.
    pub fn insert(&mut self, seq: SeqNum) -> Insert {
        let s = seq.0;
        if s < self.cumulative {
            return Insert::Duplicate;
        }
        if s >= self.cumulative.saturating_add(self.window) {
            return Insert::Refused;
        }
        // Index of the first range that ends at or after s - 1 (the one s may join or precede).
        let i = self
            .ranges
            .partition_point(|&(_, last)| last.saturating_add(1) < s);
        if let Some(&(first, last)) = self.ranges.get(i) {
            if first <= s && s <= last {
                return Insert::Duplicate;
            }
        }
        let joins_prev = self
            .ranges
            .get(i)
            .is_some_and(|&(_, last)| last.saturating_add(1) == s);
        let joins_next_index = if joins_prev { i + 1 } else { i };
        let joins_next = self
            .ranges
            .get(joins_next_index)
            .is_some_and(|&(first, _)| first == s.saturating_add(1));
        match (joins_prev, joins_next) {
            (true, true) => {
                let next_last = self.ranges[i + 1].1;
                self.ranges[i].1 = next_last;
                self.ranges.remove(i + 1);
            }
            (true, false) => self.ranges[i].1 = s,
            (false, true) => self.ranges[i].0 = s,
            (false, false) => {
                if s != self.cumulative && self.ranges.len() >= self.max_ranges {
                    return Insert::Refused;
                }
                self.ranges.insert(i, (s, s));
            }
        }
        // The lowest range reaching down to the cumulative point merges into it.
        if let Some(&(first, last)) = self.ranges.front() {
            if first == self.cumulative {
                self.cumulative = last.saturating_add(1);
                self.ranges.pop_front();
            }
        }
        Insert::New
    }

    /// The ranges above the cumulative ack, ascending; at most `limit` of them, the highest ones
    /// (they carry the freshest evidence for fast retransmit).
    pub fn ack_ranges(&self, limit: usize) -> Vec<AckRange> {
        let skip = self.ranges.len().saturating_sub(limit);
        self.ranges
            .iter()
            .skip(skip)
            .map(|&(f, l)| AckRange {
                first: SeqNum(f),
                last: SeqNum(l),
            })
            .collect()
    }

    /// How many ranges are held above the cumulative ack.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn ranges(s: &SackRanges) -> Vec<(u64, u64)> {
        s.ack_ranges(usize::MAX)
            .iter()
            .map(|r| (r.first.0, r.last.0))
            .collect()
    }

    #[test]
    fn in_order_arrivals_only_move_the_cumulative_ack() {
        let mut s = SackRanges::new(100, 4);
        for i in 0..10 {
            assert_eq!(s.insert(SeqNum(i)), Insert::New);
        }
        assert_eq!(s.cumulative(), SeqNum(10));
        assert!(ranges(&s).is_empty());
        assert_eq!(s.largest(), Some(SeqNum(9)));
    }

    #[test]
    fn holes_become_ranges_and_filling_them_merges() {
        let mut s = SackRanges::new(100, 4);
        for i in [0, 2, 3, 5, 7, 6] {
            assert_eq!(s.insert(SeqNum(i)), Insert::New);
        }
        assert_eq!(s.cumulative(), SeqNum(1));
        assert_eq!(ranges(&s), vec![(2, 3), (5, 7)]);
        assert_eq!(s.insert(SeqNum(4)), Insert::New);
        assert_eq!(ranges(&s), vec![(2, 7)]);
        assert_eq!(s.insert(SeqNum(1)), Insert::New);
        assert_eq!(s.cumulative(), SeqNum(8));
        assert!(ranges(&s).is_empty());
    }

    #[test]
    fn duplicates_are_recognised_below_and_above_the_cumulative_ack() {
        let mut s = SackRanges::new(100, 4);
        s.insert(SeqNum(0));
        s.insert(SeqNum(5));
        assert_eq!(s.insert(SeqNum(0)), Insert::Duplicate);
        assert_eq!(s.insert(SeqNum(5)), Insert::Duplicate);
        assert!(s.contains(SeqNum(5)) && !s.contains(SeqNum(4)));
    }

    #[test]
    fn the_window_and_the_range_count_are_bounds() {
        let mut s = SackRanges::new(20, 3);
        assert_eq!(s.insert(SeqNum(20)), Insert::Refused);
        for i in [2, 4, 6] {
            assert_eq!(s.insert(SeqNum(i)), Insert::New);
        }
        // A fourth isolated number would need a fourth range.
        assert_eq!(s.insert(SeqNum(8)), Insert::Refused);
        // Extending an existing range, or reaching the cumulative point, still works.
        assert_eq!(s.insert(SeqNum(7)), Insert::New);
        assert_eq!(s.insert(SeqNum(0)), Insert::New);
        assert_eq!(s.range_count(), 3);
    }

    #[test]
    fn ack_ranges_keeps_the_highest_when_limited() {
        let mut s = SackRanges::new(100, 10);
        for i in [2, 4, 6, 8] {
            s.insert(SeqNum(i));
        }
        let r: Vec<_> = s.ack_ranges(2).iter().map(|r| r.first.0).collect();
        assert_eq!(r, vec![6, 8]);
    }

    proptest! {
        // A fixed seed: CI runs the same cases every time, so a failure is reproducible.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x75_64_70),
            ..ProptestConfig::default()
        })]
        #[test]
        fn matches_a_plain_set(seqs in proptest::collection::vec(0u64..64, 0..200)) {
            let mut s = SackRanges::new(64, 64);
            let mut set = std::collections::BTreeSet::new();
            for q in seqs {
                let expected = if set.insert(q) { Insert::New } else { Insert::Duplicate };
                prop_assert_eq!(s.insert(SeqNum(q)), expected);
            }
            let cumulative = (0..).find(|i| !set.contains(i)).unwrap_or(0);
            prop_assert_eq!(s.cumulative(), SeqNum(cumulative));
            for q in 0..64 {
                prop_assert_eq!(s.contains(SeqNum(q)), set.contains(&q));
            }
            let r = ranges(&s);
            for w in r.windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0, "ranges must be disjoint and non-adjacent");
            }
        }
    }
}
