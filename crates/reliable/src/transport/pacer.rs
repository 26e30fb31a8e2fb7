//! [`Pacer`]: spreads a window's worth of packets over the round trip instead of sending it in
//! one burst.
//!
//! A window-based sender that sends everything its window allows the moment an ack opens it puts
//! bursts on the wire; a burst larger than the bottleneck's queue is dropped in part, however
//! right the window is on average. A model-based controller (BBR) depends on pacing altogether:
//! its window is larger than the bandwidth-delay product, and only the pacing rate keeps the queue
//! empty.
//!
//! A token bucket, counted in bytes: tokens accrue at the pacing rate up to a burst allowance,
//! and a packet goes when the bucket holds its size. The allowance is [`BURST_PACKETS`]
//! full-size datagrams, or [`GRANULARITY`] at the pacing rate if that is more: small enough to
//! spread bulk transfer on a network path, and large enough that an application-limited chat
//! (one short line at a time, far below the rate) never waits: its bucket is always full. When a
//! packet must wait, [`Pacer::delay`] says until when; the sender hands that deadline to the
//! endpoint's timer table, so a driver sleeps until then rather than spinning. Time is passed in.
//!
//! **Why the allowance grows with the rate.** A driver's timers are coarse: tokio's wheel ticks
//! once a millisecond, so a wait of 3 µs is a wait of up to a millisecond. With a fixed
//! allowance of ten datagrams, a sender that must wait between bursts can send at most ten
//! datagrams per tick, 14.5 MB/s, whatever the pacing rate says; on loopback, where the
//! bottleneck runs at hundreds of MB/s and the round trip is tens of microseconds, the pacer
//! rather than the path set the rate (0.29 × raw UDP at 1,200 B before this rule). A
//! millisecond's worth of the rate per burst keeps the average at the pacing rate whatever the
//! timer's grain; on the bench's 100 Mbit/s link that is 12.5 kB, under ten datagrams, so the
//! bursts there are as before. (Linux sizes its TSO bursts the same way: a millisecond at the
//! pacing rate.)
//!
//! The rate comes from the controller when it has one (a model-based controller's bandwidth
//! estimate times its gain); for a window-based controller the sender paces at the window per
//! smoothed RTT, times 2 in slow start (the window doubles each round trip, so the rate must
//! too) and 1.25 otherwise, the gains Linux uses: fast enough that the window, not the pacer,
//! is what limits the sender.

use std::time::{Duration, Instant};

/// The smallest burst allowance, in full-size datagrams.
pub const BURST_PACKETS: u64 = 10;

/// The burst allowance is at least this long at the pacing rate: the grain of a driver's timers.
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// The pacing gain of a window-based controller in slow start.
pub const SLOW_START_GAIN: f64 = 2.0;
/// The pacing gain of a window-based controller in congestion avoidance.
pub const AVOIDANCE_GAIN: f64 = 1.25;

/// A token bucket of bytes.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// The allowance at any rate: [`BURST_PACKETS`] datagrams.
    floor: u64,
    /// The allowance at the current rate.
    capacity: u64,
    tokens: u64,
    /// When tokens were last added.
    last: Option<Instant>,
}

impl Pacer {
    /// A full bucket for datagrams of at most `mss` bytes.
    pub(crate) fn new(mss: u64) -> Self {
        let capacity = BURST_PACKETS * mss.max(1);
        Pacer {
            floor: capacity,
            capacity,
            tokens: capacity,
            last: None,
        }
    }

    /// Adds what `rate` bytes per second earned since the last refill.
    fn refill(&mut self, now: Instant, rate: u64) {
        let Some(last) = self.last else {
            self.last = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(last).as_nanos();
        let earned = u128::from(rate) * elapsed / 1_000_000_000;
        // Time that earned less than a byte is kept for the next refill, not lost.
        if earned > 0 {
            self.tokens = u64::try_from(u128::from(self.tokens) + earned)
                .unwrap_or(u64::MAX)
                .min(self.capacity);
            self.last = Some(now);
        }
    }

    /// When a packet of `size` bytes may go at `rate` bytes per second: `None` if now. Without a
    /// rate (no RTT measured yet) nothing is paced.
    pub(crate) fn delay(&mut self, now: Instant, rate: Option<u64>, size: u64) -> Option<Instant> {
        let rate = rate.filter(|&r| r > 0)?;
        let grain = u128::from(rate) * GRANULARITY.as_nanos() / 1_000_000_000;
        self.capacity = self.floor.max(u64::try_from(grain).unwrap_or(u64::MAX));
        self.refill(now, rate);
        let need = size.min(self.capacity);
        if self.tokens >= need {
            return None;
        }
        let deficit = u128::from(need - self.tokens);
        let nanos = (deficit * 1_000_000_000).div_ceil(u128::from(rate));
        // At least a microsecond: a deadline at `now` would have a driver spin.
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            .max(Duration::from_micros(1));
        Some(now + wait)
    }

    /// A packet of `size` bytes went out.
    pub(crate) fn on_sent(&mut self, size: u64) {
        self.tokens = self.tokens.saturating_sub(size);
    }
}

/// The pacing rate for a window-based controller: `window` bytes per `srtt`, times
/// [`SLOW_START_GAIN`] or [`AVOIDANCE_GAIN`].
pub(crate) fn window_rate(window: u64, srtt: Duration, slow_start: bool) -> Option<u64> {
    let secs = srtt.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    let gain = if slow_start {
        SLOW_START_GAIN
    } else {
        AVOIDANCE_GAIN
    };
    Some((gain * window as f64 / secs).max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u64 = 1000;

    #[test]
    fn a_burst_allowance_goes_at_once_then_packets_are_spaced_by_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(MSS);
        let rate = Some(1_000_000); // 1 MB/s: one 1,000-byte packet per millisecond.
        for _ in 0..BURST_PACKETS {
            assert_eq!(p.delay(t0, rate, MSS), None);
            p.on_sent(MSS);
        }
        assert_eq!(p.delay(t0, rate, MSS), Some(t0 + Duration::from_millis(1)));
        let t1 = t0 + Duration::from_millis(1);
        assert_eq!(p.delay(t1, rate, MSS), None);
        p.on_sent(MSS);
        // Half a packet's time later, half a packet's time to wait.
        let t2 = t1 + Duration::from_micros(500);
        assert_eq!(
            p.delay(t2, rate, MSS),
            Some(t2 + Duration::from_micros(500))
        );
    }

    #[test]
    fn an_idle_sender_gets_back_only_the_burst_allowance() {
        let t0 = Instant::now();
        let mut p = Pacer::new(MSS);
        let rate = Some(1_000_000);
        assert_eq!(p.delay(t0, rate, MSS), None);
        p.on_sent(BURST_PACKETS * MSS);
        let later = t0 + Duration::from_secs(60);
        for _ in 0..BURST_PACKETS {
            assert_eq!(p.delay(later, rate, MSS), None);
            p.on_sent(MSS);
        }
        assert!(p.delay(later, rate, MSS).is_some());
    }

    #[test]
    fn at_a_high_rate_a_burst_holds_a_timer_grain_of_it() {
        let t0 = Instant::now();
        let mut p = Pacer::new(MSS);
        // 100 MB/s: a millisecond of it is 100 datagrams, ten times the fixed allowance.
        let rate = Some(100_000_000);
        assert_eq!(p.delay(t0, rate, MSS), None);
        p.on_sent(MSS);
        // A coarse timer wakes the sender a millisecond later: it earned 100 datagrams, and may
        // send them all at once, so the average stays at the rate.
        let t1 = t0 + GRANULARITY;
        for i in 0..100 {
            assert_eq!(p.delay(t1, rate, MSS), None, "datagram {i}");
            p.on_sent(MSS);
        }
        assert_eq!(p.delay(t1, rate, MSS), Some(t1 + Duration::from_micros(10)));
        // At a low rate the allowance is the fixed one: a millisecond would be under a datagram.
        let mut slow = Pacer::new(MSS);
        let rate = Some(1_000_000);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(slow.delay(t0, rate, MSS), None);
        for _ in 0..BURST_PACKETS {
            assert_eq!(slow.delay(later, rate, MSS), None);
            slow.on_sent(MSS);
        }
        assert!(slow.delay(later, rate, MSS).is_some());
    }

    #[test]
    fn without_a_rate_nothing_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::new(MSS);
        p.on_sent(100 * MSS);
        assert_eq!(p.delay(t0, None, MSS), None);
    }

    #[test]
    fn the_window_rate_has_the_slow_start_and_avoidance_gains() {
        let srtt = Duration::from_millis(100);
        assert_eq!(window_rate(100_000, srtt, true), Some(2_000_000));
        assert_eq!(window_rate(100_000, srtt, false), Some(1_250_000));
        assert_eq!(window_rate(100_000, Duration::ZERO, false), None);
    }
}
