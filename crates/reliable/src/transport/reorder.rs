//! [`ReorderBuffer`]: holds packets that arrived early until the ones before them arrive.
//!
//! In-order delivery means a packet that arrives after a hole must wait: this buffer is where it
//! waits. It is a ring of `capacity` slots starting at the next sequence number to deliver, so it
//! can never hold more than the receive window, whatever the peer sends: a packet beyond the ring
//! is refused (the sender will resend it once the window moves), one before it is a duplicate.
//! Insertion and delivery are O(1).

use std::collections::VecDeque;

use udpchat_core::SeqNum;

/// What inserting a packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Stored, waiting for its turn (or ready now).
    Stored,
    /// Already delivered or already waiting: dropped.
    Duplicate,
    /// Beyond the buffer's capacity: dropped.
    OutOfWindow,
}

/// A bounded buffer that releases items in sequence order.
#[derive(Debug, Clone)]
pub struct ReorderBuffer<T> {
    /// Sequence number of `slots[0]`: the next one to release.
    next: u64,
    slots: VecDeque<Option<T>>,
    capacity: usize,
    held: usize,
}

impl<T> ReorderBuffer<T> {
    /// An empty buffer expecting sequence number 0, holding at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        ReorderBuffer {
            next: 0,
            slots: VecDeque::new(),
            capacity: capacity.max(1),
            held: 0,
        }
    }

    /// Stores `item` as sequence number `seq`.
    pub fn insert(&mut self, seq: SeqNum, item: T) -> Placed {
        let Some(offset) = seq.0.checked_sub(self.next) else {
            return Placed::Duplicate;
        };
        let Ok(offset) = usize::try_from(offset) else {
            return Placed::OutOfWindow;
        };
        if offset >= self.capacity {
            return Placed::OutOfWindow;
        }
        if self.slots.len() <= offset {
            self.slots.resize_with(offset + 1, || None);
        }
        if self.slots[offset].is_some() {
            return Placed::Duplicate;
        }
        self.slots[offset] = Some(item);
        self.held += 1;
        Placed::Stored
    }

    /// Releases the next item if it has arrived.
    pub fn pop_ready(&mut self) -> Option<T> {
        match self.slots.front() {
            Some(Some(_)) => {
                let item = self.slots.pop_front().flatten();
                self.next += 1;
                self.held -= 1;
                item
            }
            _ => None,
        }
    }

    /// The next sequence number to release.
    #[cfg(test)]
    pub fn next(&self) -> SeqNum {
        SeqNum(self.next)
    }

    /// Items waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when nothing is waiting.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn releases_in_order_whatever_the_arrival_order() {
        let mut b = ReorderBuffer::new(8);
        for s in [3u64, 1, 2] {
            assert_eq!(b.insert(SeqNum(s), s), Placed::Stored);
        }
        assert_eq!(b.pop_ready(), None, "0 is missing: nothing may pass");
        assert_eq!(b.insert(SeqNum(0), 0), Placed::Stored);
        let out: Vec<u64> = std::iter::from_fn(|| b.pop_ready()).collect();
        assert_eq!(out, vec![0, 1, 2, 3]);
        assert_eq!(b.next(), SeqNum(4));
        assert!(b.is_empty());
    }

    #[test]
    fn duplicates_are_refused_before_and_after_release() {
        let mut b = ReorderBuffer::new(8);
        b.insert(SeqNum(0), 'a');
        b.insert(SeqNum(2), 'c');
        assert_eq!(b.insert(SeqNum(2), 'x'), Placed::Duplicate);
        assert_eq!(b.pop_ready(), Some('a'));
        assert_eq!(b.insert(SeqNum(0), 'x'), Placed::Duplicate);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let mut b = ReorderBuffer::new(4);
        // 0 never arrives; the peer floods everything else.
        let mut stored = 0;
        for s in 1..10_000u64 {
            if b.insert(SeqNum(s), s) == Placed::Stored {
                stored += 1;
            }
        }
        assert_eq!(stored, 3);
        assert_eq!(b.len(), 3);
        assert_eq!(b.insert(SeqNum(u64::MAX), 0), Placed::OutOfWindow);
    }
}
