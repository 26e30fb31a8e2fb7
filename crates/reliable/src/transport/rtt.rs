//! [`RttEstimator`]: how long to wait before deciding a packet is lost (RFC 6298).
//!
//! Waiting too little resends packets that were merely slow; waiting too long leaves a lost
//! message stuck. RFC 6298 tracks a smoothed RTT (SRTT) and its variation (RTTVAR) and sets the
//! retransmission timeout to `SRTT + 4·RTTVAR`, clamped to a configured range and doubled on
//! every consecutive timeout (exponential backoff, so a congested or dead path is not hammered).
//!
//! Karn's rule is the caller's half of the bargain: an acknowledgement of a packet that was sent
//! more than once is ambiguous (which copy is it acking?), so no sample is taken from it, and the
//! backed-off timeout stays until a sample from a packet sent only once arrives. The peer reports
//! how long it held the ack back (`ack_delay`); like QUIC we subtract it, unless that would make
//! the sample smaller than the smallest RTT ever seen, so delayed acks do not inflate SRTT.

use std::time::Duration;

/// RFC 6298's clock granularity G. Our clock is the caller's `Instant`, effectively exact; 1 ms
/// keeps `RTTVAR = 0` from yielding a timeout equal to SRTT.
const GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 SRTT/RTTVAR estimator with min/max clamping and exponential backoff.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Option<Duration>,
    latest: Option<Duration>,
    initial_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    ack_delay: Duration,
    backoff: u32,
}

impl RttEstimator {
    /// A fresh estimator: the timeout is `initial_rto` until the first sample.
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: None,
            latest: None,
            initial_rto,
            min_rto,
            max_rto,
            ack_delay: Duration::ZERO,
            backoff: 0,
        }
    }

    /// Adds the peer's largest ack delay to the timeout (as QUIC's PTO does): an ack the peer
    /// may legitimately hold back for that long must not trigger a resend.
    pub fn with_ack_delay(mut self, max_ack_delay: Duration) -> Self {
        self.ack_delay = max_ack_delay;
        self
    }

    /// Takes one RTT sample (from a packet sent exactly once: Karn's rule) whose ack the peer held
    /// for `ack_delay`. Resets the backoff: the path is answering again.
    pub fn on_sample(&mut self, rtt: Duration, ack_delay: Duration) {
        let min_rtt = self.min_rtt.map_or(rtt, |m| m.min(rtt));
        self.min_rtt = Some(min_rtt);
        let adjusted = match rtt.checked_sub(ack_delay) {
            Some(a) if a >= min_rtt => a,
            _ => rtt,
        };
        self.latest = Some(adjusted);
        match self.srtt {
            // RFC 6298 2.2: the first measurement R gives SRTT = R, RTTVAR = R/2.
            None => {
                self.srtt = Some(adjusted);
                self.rttvar = adjusted / 2;
            }
            // RFC 6298 2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|, then SRTT = 7/8 SRTT + 1/8 R'.
            Some(srtt) => {
                let deviation = srtt.abs_diff(adjusted);
                self.rttvar = (self.rttvar * 3 + deviation) / 4;
                self.srtt = Some((srtt * 7 + adjusted) / 8);
            }
        }
        self.backoff = 0;
    }

    /// The path made progress (an ack of new data, even of a resent packet): drop the backoff.
    /// RFC 6298 keeps it until a clean sample arrives, which on a very lossy path may be never
    /// (every packet acked was a resend), leaving the timeout pinned at `max_rto`; like QUIC's
    /// PTO count and Linux, we reset on forward progress. Samples still obey Karn's rule.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// A retransmission timeout fired: double the timeout (RFC 6298 5.5), up to `max_rto`.
    pub fn on_timeout(&mut self) {
        self.backoff = self.backoff.saturating_add(1).min(32);
    }

    /// The timeout without backoff: `SRTT + max(G, 4·RTTVAR)` plus the peer's ack delay,
    /// clamped to `[min_rto, max_rto]`, or the initial timeout before any sample.
    pub fn base_rto(&self) -> Duration {
        match self.srtt {
            None => self.initial_rto,
            Some(srtt) => (srtt + GRANULARITY.max(self.rttvar * 4) + self.ack_delay)
                .clamp(self.min_rto, self.max_rto),
        }
    }

    /// The current timeout, backoff included, never above `max_rto`.
    pub fn rto(&self) -> Duration {
        let factor = 1u32.checked_shl(self.backoff).unwrap_or(u32::MAX);
        self.base_rto().saturating_mul(factor).min(self.max_rto)
    }

    /// Smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RTT variation, once there is a sample.
    pub fn rttvar(&self) -> Option<Duration> {
        self.srtt.map(|_| self.rttvar)
    }

    /// Smallest raw sample seen.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// Most recent (ack-delay adjusted) sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn estimator() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(200), ms(3000))
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let rtt = estimator();
        assert_eq!(rtt.rto(), ms(1000));
        assert_eq!(rtt.srtt(), None);
    }

    #[test]
    fn first_sample_follows_rfc6298_2_2() {
        let mut rtt = estimator();
        rtt.on_sample(ms(100), Duration::ZERO);
        assert_eq!(rtt.srtt(), Some(ms(100)));
        assert_eq!(rtt.rttvar(), Some(ms(50)));
        // SRTT + 4·RTTVAR = 300 ms.
        assert_eq!(rtt.rto(), ms(300));
    }

    #[test]
    fn later_samples_follow_rfc6298_2_3() {
        let mut rtt = estimator();
        rtt.on_sample(ms(100), Duration::ZERO);
        rtt.on_sample(ms(180), Duration::ZERO);
        // RTTVAR = 3/4·50 + 1/4·|100−180| = 57.5; SRTT = 7/8·100 + 1/8·180 = 110.
        assert_eq!(rtt.rttvar(), Some(Duration::from_micros(57_500)));
        assert_eq!(rtt.srtt(), Some(ms(110)));
        assert_eq!(rtt.rto(), ms(110 + 230));
    }

    #[test]
    fn rto_is_clamped_to_min_and_max() {
        let mut rtt = estimator();
        for _ in 0..50 {
            rtt.on_sample(ms(1), Duration::ZERO);
        }
        assert_eq!(rtt.rto(), ms(200));
        let mut slow = estimator();
        slow.on_sample(ms(2000), Duration::ZERO);
        assert_eq!(slow.rto(), ms(3000));
    }

    #[test]
    fn backoff_doubles_until_max_and_a_sample_resets_it() {
        let mut rtt = estimator();
        rtt.on_sample(ms(100), Duration::ZERO);
        rtt.on_timeout();
        assert_eq!(rtt.rto(), ms(600));
        rtt.on_timeout();
        assert_eq!(rtt.rto(), ms(1200));
        rtt.on_timeout();
        rtt.on_timeout();
        assert_eq!(rtt.rto(), ms(3000));
        for _ in 0..100 {
            rtt.on_timeout();
        }
        assert_eq!(rtt.rto(), ms(3000));
        rtt.on_sample(ms(100), Duration::ZERO);
        assert!(rtt.rto() < ms(600));
    }

    #[test]
    fn the_peers_ack_delay_is_added_to_the_timeout() {
        let mut rtt = estimator().with_ack_delay(ms(25));
        rtt.on_sample(ms(100), Duration::ZERO);
        assert_eq!(rtt.rto(), ms(325));
    }

    #[test]
    fn ack_delay_is_subtracted_but_not_below_min_rtt() {
        let mut rtt = estimator();
        rtt.on_sample(ms(100), Duration::ZERO);
        rtt.on_sample(ms(140), ms(25));
        assert_eq!(rtt.latest(), Some(ms(115)));
        // 100 − 25 = 75 would undercut the 100 ms minimum: the delay is not trusted.
        rtt.on_sample(ms(100), ms(25));
        assert_eq!(rtt.latest(), Some(ms(100)));
        assert_eq!(rtt.min_rtt(), Some(ms(100)));
    }
}
