//! [`Congestion`]: how many packets may be in flight, so we do not flood a shared path.
//!
//! Flow control protects the receiver; congestion control protects the network in between. This
//! is NewReno counted in packets (RFC 5681/6582): start at ten packets (RFC 6928) and double every
//! round trip (slow start) until the first loss or `ssthresh`, then grow by one packet per round
//! trip (congestion avoidance). A loss found by fast retransmit halves the window once per
//! recovery episode (losses of one window are one congestion signal); a retransmission timeout
//! means the pipe drained, so the window restarts from one packet. `CongestionControl::None`
//! leaves only the receive window, for experiments that isolate the ARQ scheme.

use super::config::CongestionControl;

/// Initial window in packets (RFC 6928's IW10).
pub const INITIAL_WINDOW: u64 = 10;
/// The window never drops below this after a fast-retransmit loss.
pub const MIN_WINDOW: u64 = 2;

/// A congestion controller's state.
#[derive(Debug, Clone)]
pub struct Congestion {
    kind: CongestionControl,
    cwnd: u64,
    ssthresh: u64,
    /// Fractional growth in congestion avoidance: packets acked since the last increment.
    acked_in_avoidance: u64,
    /// While in recovery: the sequence number that, once cumulatively acked, ends it.
    recovery_until: Option<u64>,
    /// Largest window ever useful (the receive window): growth stops there.
    cap: u64,
    /// `(cwnd, ssthresh)` before the last reduction, to restore if the loss proves spurious.
    before_loss: Option<(u64, u64)>,
}

impl Congestion {
    /// A fresh controller; the window never grows past `cap` packets.
    pub fn new(kind: CongestionControl, cap: u64) -> Self {
        Congestion {
            kind,
            cwnd: INITIAL_WINDOW.min(cap.max(1)),
            ssthresh: u64::MAX,
            acked_in_avoidance: 0,
            recovery_until: None,
            cap: cap.max(1),
            before_loss: None,
        }
    }

    /// Packets that may be in flight.
    pub fn window(&self) -> u64 {
        match self.kind {
            CongestionControl::NewReno => self.cwnd,
            CongestionControl::None => self.cap,
        }
    }

    /// Slow-start threshold (`u64::MAX` until the first loss).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    /// `newly_acked` packets were acknowledged; the cumulative ack is now `cumulative`.
    pub fn on_ack(&mut self, newly_acked: u64, cumulative: u64) {
        if let Some(until) = self.recovery_until {
            if cumulative >= until {
                self.recovery_until = None;
            } else {
                // In recovery the window holds still (NewReno does not grow on partial acks).
                return;
            }
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(newly_acked);
        } else {
            self.acked_in_avoidance += newly_acked;
            while self.acked_in_avoidance >= self.cwnd {
                self.acked_in_avoidance -= self.cwnd;
                self.cwnd += 1;
            }
        }
        self.cwnd = self.cwnd.min(self.cap);
    }

    /// Fast retransmit found a loss; `next_seq` is the first sequence number not yet sent.
    pub fn on_loss(&mut self, next_seq: u64) {
        if self.recovery_until.is_some() {
            return;
        }
        self.before_loss = Some((self.cwnd, self.ssthresh));
        self.ssthresh = (self.cwnd / 2).max(MIN_WINDOW);
        self.cwnd = self.ssthresh;
        self.acked_in_avoidance = 0;
        self.recovery_until = Some(next_seq);
    }

    /// The last loss was not one (a resend proved needless): restore the window as it was
    /// before that reduction and leave recovery (Eifel-style undo, RFC 4015).
    pub fn undo(&mut self) {
        if let Some((cwnd, ssthresh)) = self.before_loss.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = ssthresh;
            self.recovery_until = None;
        }
    }

    /// A retransmission timeout fired: the pipe drained, start again from one packet.
    pub fn on_timeout(&mut self, next_seq: u64) {
        if self.recovery_until.is_none() {
            self.before_loss = Some((self.cwnd, self.ssthresh));
            self.ssthresh = (self.cwnd / 2).max(MIN_WINDOW);
        }
        self.cwnd = 1;
        self.acked_in_avoidance = 0;
        self.recovery_until = Some(next_seq);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn newreno() -> Congestion {
        Congestion::new(CongestionControl::NewReno, 1000)
    }

    #[test]
    fn slow_start_doubles_per_round_trip() {
        let mut c = newreno();
        assert_eq!(c.window(), 10);
        c.on_ack(10, 10);
        assert_eq!(c.window(), 20);
        c.on_ack(20, 30);
        assert_eq!(c.window(), 40);
    }

    #[test]
    fn loss_halves_once_per_episode_then_avoidance_adds_one_per_window() {
        let mut c = newreno();
        c.on_ack(30, 30); // 40
        c.on_loss(70);
        assert_eq!(c.window(), 20);
        c.on_loss(70);
        assert_eq!(c.window(), 20, "one reduction per recovery episode");
        c.on_ack(5, 50);
        assert_eq!(c.window(), 20, "no growth during recovery");
        c.on_ack(5, 70); // recovery over; 5 acked in avoidance
        c.on_ack(15, 85);
        assert_eq!(c.window(), 21);
    }

    #[test]
    fn a_spurious_loss_is_undone() {
        let mut c = newreno();
        c.on_ack(30, 30); // 40
        c.on_loss(70);
        assert_eq!(c.window(), 20);
        c.undo();
        assert_eq!(c.window(), 40);
        assert_eq!(c.ssthresh(), u64::MAX);
        c.undo();
        assert_eq!(c.window(), 40, "nothing more to undo");
    }

    #[test]
    fn timeout_restarts_from_one_packet() {
        let mut c = newreno();
        c.on_ack(30, 30);
        c.on_timeout(40);
        assert_eq!(c.window(), 1);
        assert_eq!(c.ssthresh(), 20);
        c.on_ack(1, 40);
        assert_eq!(c.window(), 2, "slow start again after recovery");
    }

    #[test]
    fn none_is_only_the_cap_and_growth_stops_at_the_cap() {
        let mut none = Congestion::new(CongestionControl::None, 256);
        none.on_loss(5);
        assert_eq!(none.window(), 256);
        let mut capped = Congestion::new(CongestionControl::NewReno, 16);
        capped.on_ack(100, 100);
        assert_eq!(capped.window(), 16);
    }
}
