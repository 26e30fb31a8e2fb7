//! [`RedundancyPolicy`]: how many redundant copies an application-limited sender adds to each
//! datagram, fixed by the user or following the loss the sender measures.
//!
//! Copies buy latency with wire bytes: on a lossy path a lost chat line is repaired by the next
//! datagram instead of a round trip later; on a clean path they buy nothing. So the default,
//! [`Redundancy::Auto`], adds copies only while packets are being lost, and as many as the loss
//! rate calls for:
//!
//! - **The measure.** An exponentially weighted moving average of losses per packet (gain 1/16):
//!   a packet acknowledged at its first transmission while no copies were being made is a 0; a
//!   packet whose resend was acknowledged, and not found spurious, is a 1 (a loss that the ack
//!   proves, not a guess: a fast retransmit that reordering caused is undone, and counts
//!   nothing). The average also halves every [`HALF_LIFE`] of time, so that old losses are
//!   forgotten even when no 0 arrives.
//! - **Why not more 0s.** While copies are made, a lost original is repaired by its copy and is
//!   acknowledged like one that arrived: the loss is masked. Counting those acks as 0s would
//!   drive the estimate to zero on a path that still loses 10%, turn the copies off, and let the
//!   losses back in: an oscillation. So while copies are on, only the losses they fail to hide
//!   (all copies lost too) raise the estimate, and only time lowers it.
//! - **The rule.** With an estimated loss `p`, a packet and `k` copies are all lost with
//!   probability about `p^(k+1)` (independent losses). The sender uses the smallest `k` that
//!   brings that below [`RESIDUAL_TARGET`] (one in ten thousand), at most
//!   [`MAX_AUTO_REDUNDANCY`], and none while `p` is below [`LOSS_FLOOR`]: from 0.5% to 1% one
//!   copy, up to 4.6% two, above that three.
//! - **Resends.** The estimate learns only from proven losses, so it lags the first losses by a
//!   round trip; a resend sent in that time, if lost too, waits for a second loss detection
//!   (the worst round trips of the bench's chat at 10% loss were such double losses). So under
//!   `Auto` a resent packet gets one copy whatever the estimate says, with the next datagram
//!   or as a tail copy (`Sender::pick_copies`). A path with no loss and no reordering resends
//!   nothing and so copies nothing; on a jittery loss-free path the spurious fast retransmits
//!   get copies too (under 1% more bytes on the bench's 0% link,
//!   `crates/lab/tests/auto_redundancy.rs`). A fixed count, 0 included, is left as set.
//! - **The bounds.** Whatever the policy, the sender only copies while application-limited
//!   (nothing waits for the window) and only while the copies keep what is in flight within half
//!   the congestion window (`Sender::redundant_copies`), so a congested or window-limited sender
//!   sends none, and copies never take more than half the window.
//!
//! Floating point here is deterministic (the same inputs give the same outputs on every run), so
//! the simulator's replays stay exact.

use std::time::{Duration, Instant};

use super::config::{Redundancy, MAX_AUTO_REDUNDANCY};

/// How much one packet's fate moves the estimate: about the last sixteen packets count.
const GAIN: f64 = 1.0 / 16.0;

/// The estimate halves every this long, so a path that stopped losing turns the copies off.
pub(crate) const HALF_LIFE: Duration = Duration::from_secs(30);

/// The probability that a packet and all its copies are lost which the rule aims below.
pub(crate) const RESIDUAL_TARGET: f64 = 1e-4;

/// Below this estimated loss rate no copy is made: a path this clean gains nothing worth a byte.
pub(crate) const LOSS_FLOOR: f64 = 0.005;

/// A smoothed loss rate that forgets with time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LossEstimate {
    rate: f64,
    /// When `rate` was last brought up to date.
    at: Option<Instant>,
}

impl LossEstimate {
    /// The estimate at `now`: the stored one, decayed by the time since it was stored.
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        match self.at {
            Some(at) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                self.rate * 0.5f64.powf(elapsed / HALF_LIFE.as_secs_f64())
            }
            None => 0.0,
        }
    }

    /// Takes one packet's fate: `lost` or arrived.
    pub(crate) fn sample(&mut self, now: Instant, lost: bool) {
        let rate = self.rate(now);
        let x = if lost { 1.0 } else { 0.0 };
        self.rate = rate + GAIN * (x - rate);
        self.at = Some(now);
    }

    /// The copies the rule gives for the estimate at `now`.
    pub(crate) fn copies(&self, now: Instant) -> usize {
        copies_for(self.rate(now))
    }
}

/// The smallest number of copies `k` with `p^(k+1)` below [`RESIDUAL_TARGET`], at most
/// [`MAX_AUTO_REDUNDANCY`]; none below [`LOSS_FLOOR`].
pub(crate) fn copies_for(p: f64) -> usize {
    if p < LOSS_FLOOR {
        return 0;
    }
    let max = usize::from(MAX_AUTO_REDUNDANCY);
    let mut residual = p;
    for k in 0..max {
        if residual <= RESIDUAL_TARGET {
            return k;
        }
        residual *= p;
    }
    max
}

/// How many copies the sender adds, and what it learns from acks to decide.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RedundancyPolicy {
    /// Always this many (`--redundancy N`; 0 is off).
    Fixed(usize),
    /// Follows the measured loss rate.
    Auto(LossEstimate),
}

impl RedundancyPolicy {
    /// The policy a configuration asks for.
    pub(crate) fn new(config: Redundancy) -> Self {
        match config {
            Redundancy::Fixed(n) => RedundancyPolicy::Fixed(usize::from(n)),
            Redundancy::Auto => RedundancyPolicy::Auto(LossEstimate::default()),
        }
    }

    /// Copies per datagram at `now` (before the sender's own bounds).
    pub(crate) fn copies(&self, now: Instant) -> usize {
        match self {
            RedundancyPolicy::Fixed(n) => *n,
            RedundancyPolicy::Auto(estimate) => estimate.copies(now),
        }
    }

    /// A packet was acknowledged: sent `transmissions` times, `spurious` if its resend turned
    /// out needless. A resend that was needed is a loss; a first transmission acknowledged while
    /// no copies are made is an arrival; anything else may have been repaired by a copy, and
    /// says nothing (see the module documentation).
    pub(crate) fn on_acked(&mut self, now: Instant, transmissions: u32, spurious: bool) {
        let RedundancyPolicy::Auto(estimate) = self else {
            return;
        };
        if transmissions > 1 && !spurious {
            estimate.sample(now, true);
        } else if transmissions == 1 && estimate.copies(now) == 0 {
            estimate.sample(now, false);
        }
    }

    /// True if a resent packet gets a copy whatever the estimate (see `Sender::pick_copies`):
    /// only under `Auto`, since a fixed count, 0 included, is the user's to choose.
    pub(crate) fn protects_resends(&self) -> bool {
        matches!(self, RedundancyPolicy::Auto(_))
    }

    /// The estimated loss rate (0 for a fixed policy).
    #[cfg(test)]
    pub(crate) fn loss_rate(&self, now: Instant) -> f64 {
        match self {
            RedundancyPolicy::Fixed(_) => 0.0,
            RedundancyPolicy::Auto(estimate) => estimate.rate(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_gives_the_fewest_copies_that_bring_the_residual_below_the_target() {
        assert_eq!(copies_for(0.0), 0);
        assert_eq!(copies_for(LOSS_FLOOR / 2.0), 0);
        // 0.9%: a packet and one copy are both lost 8e-5 of the time.
        assert_eq!(copies_for(0.009), 1);
        // 2%: 4e-4 with one copy, 8e-6 with two.
        assert_eq!(copies_for(0.02), 2);
        // 10%: 1e-3 with two, 1e-4 with three.
        assert_eq!(copies_for(0.10), 3);
        // Never more than the cap, however bad the path.
        assert_eq!(copies_for(0.5), usize::from(MAX_AUTO_REDUNDANCY));
    }

    #[test]
    fn a_clean_path_never_turns_copies_on() {
        let t0 = Instant::now();
        let mut policy = RedundancyPolicy::new(Redundancy::Auto);
        for i in 0..1000u64 {
            policy.on_acked(t0 + Duration::from_millis(20 * i), 1, false);
        }
        assert_eq!(policy.copies(t0 + Duration::from_secs(20)), 0);
        assert_eq!(policy.loss_rate(t0 + Duration::from_secs(20)), 0.0);
    }

    #[test]
    fn a_proven_loss_turns_copies_on_and_time_turns_them_off() {
        let t0 = Instant::now();
        let mut policy = RedundancyPolicy::new(Redundancy::Auto);
        policy.on_acked(t0, 2, false);
        // One loss in the memory of sixteen packets: 6%, three copies.
        assert_eq!(policy.copies(t0), 3);
        // A spurious resend is no loss.
        let mut other = RedundancyPolicy::new(Redundancy::Auto);
        other.on_acked(t0, 2, true);
        assert_eq!(other.copies(t0), 0);
        // While copies are on, acknowledged first transmissions say nothing (a copy may have
        // repaired them): only time lowers the estimate, halving every half-life.
        for i in 0..100u64 {
            policy.on_acked(t0 + Duration::from_millis(i), 1, false);
        }
        let rate = policy.loss_rate(t0);
        assert!((rate - GAIN).abs() < 1e-12, "{rate}");
        let later = t0 + HALF_LIFE;
        assert!((policy.loss_rate(later) - GAIN / 2.0).abs() < 1e-12);
        // About four half-lives later it is below the floor: the path is clean again.
        assert_eq!(policy.copies(t0 + HALF_LIFE * 4), 0);
    }

    #[test]
    fn a_fixed_policy_ignores_what_it_sees() {
        let t0 = Instant::now();
        let mut policy = RedundancyPolicy::new(Redundancy::Fixed(2));
        policy.on_acked(t0, 5, false);
        assert_eq!(policy.copies(t0), 2);
        assert_eq!(RedundancyPolicy::new(Redundancy::Fixed(0)).copies(t0), 0);
    }
}
