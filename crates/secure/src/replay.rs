//! The sliding-window replay filter of RFC 6479, as WireGuard uses it: one per direction and
//! key epoch.
//!
//! Every sealed datagram carries its sender's counter in clear. A datagram is fresh if its
//! counter is above the highest seen, or within the window below it and not seen yet. The
//! bitmap is a ring of 64-bit blocks: moving the top forward clears whole blocks instead of
//! shifting bits, so each datagram costs O(1) whatever the jump. With [`BLOCKS`] blocks the
//! window is `(BLOCKS - 1) * 64` counters (the top block is partly in the future), so a datagram
//! may arrive up to 1984 datagrams late and still open; older ones are refused as too old,
//! which loses nothing a chat needs (raw mode shows them as a gap, reliable mode resends).
//!
//! The filter is consulted twice: [`ReplayWindow::check`] before decryption (a replay costs no
//! AEAD work) and [`ReplayWindow::record`] after it authenticated (a forgery cannot move the
//! window).

/// Blocks of 64 bits in the ring.
pub const BLOCKS: usize = 32;
/// How far below the highest counter a datagram may be and still be accepted.
pub const WINDOW: u64 = ((BLOCKS - 1) * 64) as u64;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Replay {
    /// It was seen before.
    #[error("a replayed datagram (counter {0} already seen)")]
    Seen(u64),
    /// It is below the window: too old to tell.
    #[error("a datagram too old for the replay window (counter {counter}, newest {top})")]
    TooOld {
        /// The datagram's counter.
        counter: u64,
        /// The highest counter seen.
        top: u64,
    },
}

/// One direction's filter. Fixed size: 32 words and a top, whatever arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The highest counter recorded, if any.
    top: Option<u64>,
    bitmap: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    /// An empty filter: every counter is fresh.
    pub fn new() -> ReplayWindow {
        ReplayWindow {
            top: None,
            bitmap: [0; BLOCKS],
        }
    }

    /// Whether `counter` would be accepted, without recording it.
    pub fn check(&self, counter: u64) -> Result<(), Replay> {
        let Some(top) = self.top else {
            return Ok(());
        };
        if counter > top {
            return Ok(());
        }
        if top - counter >= WINDOW {
            return Err(Replay::TooOld { counter, top });
        }
        let (block, bit) = position(counter);
        if self.bitmap[block] & (1 << bit) != 0 {
            return Err(Replay::Seen(counter));
        }
        Ok(())
    }

    /// Records `counter` if it is fresh (call only once its datagram authenticated).
    pub fn record(&mut self, counter: u64) -> Result<(), Replay> {
        self.check(counter)?;
        match self.top {
            Some(top) if counter <= top => {}
            Some(top) => {
                // Clear the blocks the top moves into: they hold bits from 32 blocks ago.
                let jump = (counter / 64 - top / 64).min(BLOCKS as u64);
                for step in 1..=jump {
                    let (block, _) = position(top + step * 64);
                    self.bitmap[block] = 0;
                }
                self.top = Some(counter);
            }
            None => self.top = Some(counter),
        }
        let (block, bit) = position(counter);
        self.bitmap[block] |= 1 << bit;
        Ok(())
    }
}

fn position(counter: u64) -> (usize, u32) {
    (
        ((counter / 64) % BLOCKS as u64) as usize,
        (counter % 64) as u32,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fresh_then_replayed() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.record(5), Ok(()));
        assert_eq!(w.record(5), Err(Replay::Seen(5)));
        assert_eq!(w.record(3), Ok(()));
        assert_eq!(w.record(3), Err(Replay::Seen(3)));
        assert_eq!(w.check(4), Ok(()));
    }

    #[test]
    fn the_window_is_exactly_window_wide() {
        let mut w = ReplayWindow::new();
        w.record(10_000).unwrap_or_default();
        assert_eq!(w.check(10_000 - WINDOW + 1), Ok(()));
        assert_eq!(
            w.check(10_000 - WINDOW),
            Err(Replay::TooOld {
                counter: 10_000 - WINDOW,
                top: 10_000
            })
        );
    }

    #[test]
    fn a_long_jump_forgets_the_old_bits() {
        let mut w = ReplayWindow::new();
        w.record(64).unwrap_or_default();
        // 32 blocks later the same ring slot is reused: the old bit must not read as "seen".
        w.record(64 + 64 * BLOCKS as u64).unwrap_or_default();
        assert_eq!(w.check(64 * BLOCKS as u64 + 64 - 1), Ok(()));
        assert_eq!(w.record(u64::MAX - 1), Ok(()));
        assert_eq!(w.record(u64::MAX - 1), Err(Replay::Seen(u64::MAX - 1)));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(6479),
            ..ProptestConfig::default()
        })]

        /// Against a model that remembers everything: a counter is accepted exactly when it was
        /// not accepted before and is less than WINDOW below the highest accepted.
        #[test]
        fn accepts_exactly_what_the_reference_model_accepts(
            counters in proptest::collection::vec(
                prop_oneof![0u64..300, 0u64..5_000, any::<u64>()], 1..400)
        ) {
            let mut w = ReplayWindow::new();
            let mut seen = BTreeSet::new();
            for c in counters {
                let top = seen.iter().next_back().copied();
                let model_ok = !seen.contains(&c)
                    && top.is_none_or(|t| c > t || t - c < WINDOW);
                let ok = w.record(c).is_ok();
                prop_assert_eq!(ok, model_ok, "counter {} (top {:?})", c, top);
                if ok {
                    seen.insert(c);
                }
            }
        }

        /// Every counter of a shuffled run is accepted once and refused the second time.
        #[test]
        fn reordering_within_the_window_loses_nothing(
            order in Just((0u64..1_000).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let mut w = ReplayWindow::new();
            for &c in &order {
                prop_assert_eq!(w.record(c), Ok(()));
            }
            for &c in &order {
                prop_assert!(w.record(c).is_err());
            }
        }
    }
}
