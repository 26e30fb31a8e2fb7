//! Raw mode's arrival accounting for one sender: what each arriving sequence number means.
//!
//! Raw mode never resends, so all a receiver can do is say what the network did. It keeps the
//! highest sequence number seen and a fixed window of the [`WINDOW`] numbers below it (a bitmap,
//! plus each datagram's CRC-32 as a fingerprint), so its memory is the same after ten messages or
//! ten billion, whatever numbers a peer sends. Against that state an arrival is:
//!
//! - **in order**: the next number (or the very first arrival, numbered 0);
//! - **a gap**: it jumped ahead, so the numbers skipped over are missing *so far* (the first
//!   arrival from a sender reports `0..seq` missing too: they were sent and never came);
//! - **late**: it fills an earlier gap (reordered by the network);
//! - **a duplicate**: already seen, byte for byte the same datagram;
//! - **a restart**: the sender has started numbering afresh. Two signs: the number is more than
//!   [`WINDOW`] below the highest (a chat is never reordered that far; a restarted peer goes back
//!   to 0), or it was already seen *with different bytes* (a network duplicate is byte-identical;
//!   a restarted peer's new message 0 is a different datagram). Accounting starts over from it.
//!
//! The one case this cannot tell apart: a restarted peer whose message is byte-identical to its
//! earlier message with the same number (same nick, same text) looks like a duplicate.

/// How many sequence numbers below the highest are remembered.
pub const WINDOW: u64 = 1024;

const WORDS: usize = (WINDOW / 64) as usize;

/// What one arrival means. Every variant but [`Arrival::Duplicate`] is to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next number in line, or a first arrival numbered 0.
    InOrder,
    /// Jumped ahead: `first..=last` have not arrived (yet).
    Gap {
        /// First missing number.
        first: u64,
        /// Last missing number.
        last: u64,
    },
    /// Filled an earlier gap: it arrived after a later one.
    Late,
    /// Already seen, same bytes: the network duplicated it.
    Duplicate,
    /// The sender restarted its numbering; accounting started over from this arrival, and
    /// `missing` is what the fresh start says is missing below it (as for a first arrival).
    Restart {
        /// Numbers below this one, from 0, that never arrived in the new numbering.
        missing: Option<(u64, u64)>,
    },
}

/// The bounded record of what one sender's numbers did.
#[derive(Debug, Clone)]
pub struct SeenWindow {
    /// Highest number seen, `None` before the first arrival.
    highest: Option<u64>,
    /// Bit `seq % WINDOW` is set when `seq` (within the window) has arrived.
    seen: [u64; WORDS],
    /// CRC-32 of the datagram that carried `seq`, at index `seq % WINDOW`.
    fingerprints: Box<[u32]>,
}

impl Default for SeenWindow {
    fn default() -> Self {
        SeenWindow {
            highest: None,
            seen: [0; WORDS],
            fingerprints: vec![0; WINDOW as usize].into_boxed_slice(),
        }
    }
}

impl SeenWindow {
    /// Highest number seen so far.
    #[cfg(test)]
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Records the arrival of `seq`, carried by a datagram whose CRC-32 is `fingerprint`, and
    /// says what it means.
    pub fn record(&mut self, seq: u64, fingerprint: u32) -> Arrival {
        let Some(highest) = self.highest else {
            return match self.start(seq, fingerprint) {
                Some((first, last)) => Arrival::Gap { first, last },
                None => Arrival::InOrder,
            };
        };
        if seq > highest {
            self.advance(highest, seq);
            self.mark(seq, fingerprint);
            // seq > highest, so highest + 1 cannot overflow and seq - 1 cannot underflow.
            if seq == highest + 1 {
                Arrival::InOrder
            } else {
                Arrival::Gap {
                    first: highest + 1,
                    last: seq - 1,
                }
            }
        } else if highest - seq >= WINDOW {
            self.restart(seq, fingerprint)
        } else if self.is_seen(seq) {
            if self.fingerprints[slot(seq)] == fingerprint {
                Arrival::Duplicate
            } else {
                self.restart(seq, fingerprint)
            }
        } else {
            self.mark(seq, fingerprint);
            Arrival::Late
        }
    }

    fn restart(&mut self, seq: u64, fingerprint: u32) -> Arrival {
        // Stale fingerprints may stay: a slot's fingerprint is only read when its bit is set.
        self.highest = None;
        self.seen = [0; WORDS];
        Arrival::Restart {
            missing: self.start(seq, fingerprint),
        }
    }

    /// First arrival of a numbering: returns the missing range below it, if any.
    fn start(&mut self, seq: u64, fingerprint: u32) -> Option<(u64, u64)> {
        self.highest = Some(seq);
        self.mark(seq, fingerprint);
        (seq > 0).then(|| (0, seq - 1))
    }

    /// Moves the window's top from `from` to `to` (> `from`), forgetting what falls out.
    fn advance(&mut self, from: u64, to: u64) {
        if to - from >= WINDOW {
            self.seen = [0; WORDS];
        } else {
            for seq in from + 1..=to {
                self.seen[word(seq)] &= !bit(seq);
            }
        }
        self.highest = Some(to);
    }

    fn mark(&mut self, seq: u64, fingerprint: u32) {
        self.seen[word(seq)] |= bit(seq);
        self.fingerprints[slot(seq)] = fingerprint;
    }

    fn is_seen(&self, seq: u64) -> bool {
        self.seen[word(seq)] & bit(seq) != 0
    }
}

fn slot(seq: u64) -> usize {
    // The remainder is below WINDOW, so it fits any usize.
    (seq % WINDOW) as usize
}

fn word(seq: u64) -> usize {
    slot(seq) / 64
}

fn bit(seq: u64) -> u64 {
    1 << (slot(seq) % 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_all(window: &mut SeenWindow, seqs: &[u64]) -> Vec<Arrival> {
        seqs.iter().map(|&s| window.record(s, s as u32)).collect()
    }

    #[test]
    fn consecutive_numbers_are_in_order() {
        let mut w = SeenWindow::default();
        assert_eq!(record_all(&mut w, &[0, 1, 2]), vec![Arrival::InOrder; 3]);
        assert_eq!(w.highest(), Some(2));
    }

    #[test]
    fn first_arrival_above_zero_reports_what_came_before() {
        let mut w = SeenWindow::default();
        assert_eq!(w.record(3, 0), Arrival::Gap { first: 0, last: 2 });
    }

    #[test]
    fn jump_gap_late_and_duplicate() {
        let mut w = SeenWindow::default();
        let got = record_all(&mut w, &[0, 1, 4, 2, 2, 4, 5]);
        assert_eq!(
            got,
            vec![
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::Gap { first: 2, last: 3 },
                Arrival::Late,
                Arrival::Duplicate,
                Arrival::Duplicate,
                Arrival::InOrder,
            ]
        );
    }

    #[test]
    fn same_number_with_other_bytes_is_a_restart() {
        let mut w = SeenWindow::default();
        assert_eq!(w.record(0, 7), Arrival::InOrder);
        assert_eq!(w.record(1, 8), Arrival::InOrder);
        assert_eq!(w.record(0, 99), Arrival::Restart { missing: None });
        assert_eq!(w.highest(), Some(0));
        // The old 1 is forgotten: the new 1 is simply next.
        assert_eq!(w.record(1, 100), Arrival::InOrder);
    }

    #[test]
    fn falling_below_the_window_is_a_restart_not_a_huge_reorder() {
        let mut w = SeenWindow::default();
        for s in 0..2000 {
            w.record(s, 1);
        }
        assert_eq!(w.record(0, 1), Arrival::Restart { missing: None });
        assert_eq!(w.record(1, 1), Arrival::InOrder);
        // A restart whose message 0 was lost says so.
        for s in 2..2000 {
            w.record(s, 1);
        }
        assert_eq!(
            w.record(1, 2),
            Arrival::Restart {
                missing: Some((0, 0))
            }
        );
    }

    #[test]
    fn the_oldest_number_in_the_window_is_still_remembered() {
        let mut w = SeenWindow::default();
        w.record(0, 5);
        w.record(WINDOW - 1, 5);
        assert_eq!(w.record(0, 5), Arrival::Duplicate);
        w.record(WINDOW, 5);
        // Now 0 is WINDOW below the highest: out of the window, hence a restart.
        assert_eq!(w.record(0, 5), Arrival::Restart { missing: None });
    }

    #[test]
    fn numbers_that_left_the_window_are_forgotten_when_it_moves() {
        let mut w = SeenWindow::default();
        w.record(5, 1);
        // 5 + WINDOW lands on 5's slot: the slot must read as unseen afterwards.
        w.record(5 + WINDOW, 1);
        assert_eq!(w.record(6, 1), Arrival::Late);
        assert_eq!(w.record(5 + WINDOW - 1, 1), Arrival::Late);
    }

    #[test]
    fn extreme_numbers_neither_panic_nor_overflow() {
        let mut w = SeenWindow::default();
        assert_eq!(
            w.record(u64::MAX, 1),
            Arrival::Gap {
                first: 0,
                last: u64::MAX - 1
            }
        );
        assert_eq!(w.record(u64::MAX, 1), Arrival::Duplicate);
        assert_eq!(w.record(u64::MAX - 1, 1), Arrival::Late);
        assert_eq!(w.record(0, 1), Arrival::Restart { missing: None });
        assert_eq!(
            w.record(u64::MAX, 2),
            Arrival::Gap {
                first: 1,
                last: u64::MAX - 1
            }
        );
    }

    #[test]
    fn memory_does_not_grow_with_the_numbers_seen() {
        let mut w = SeenWindow::default();
        let mut seq = 0u64;
        for i in 0..100_000u64 {
            // Jumps of varying sizes, some huge, plus late arrivals and repeats.
            seq = seq.wrapping_add(1 + (i * 7919) % 3000) % (u64::MAX / 2);
            w.record(seq, i as u32);
            w.record(seq.saturating_sub(3), i as u32);
        }
        assert_eq!(w.fingerprints.len(), WINDOW as usize);
    }
}
