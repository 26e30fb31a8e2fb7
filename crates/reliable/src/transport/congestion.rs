//! [`Congestion`]: how many bytes may be in flight, so we do not flood a shared path.
//!
//! Flow control protects the receiver; congestion control protects the network in between. This
//! is NewReno (RFC 5681/6582), counted in **bytes** as TCP and QUIC (RFC 9002 §7) count it: start at
//! ten full-size datagrams (RFC 6928) and grow by every byte acknowledged (slow start, doubling
//! per round trip) until the first loss or `ssthresh`, then by one full-size datagram per round
//! trip (congestion avoidance). A loss found by fast retransmit halves the window once per
//! recovery episode (losses of one window are one congestion signal), never below two full-size
//! datagrams; a retransmission timeout means the pipe drained, so the window restarts from one
//! full-size datagram (RFC 5681's loss window). The window grows only while it is in use: acks
//! of an application-limited sender (a chat) prove nothing about a larger one (RFC 7661). `CongestionControl::None` leaves only the receive
//! window, for experiments that isolate the ARQ scheme.
//!
//! Why bytes and not packets: the network is congested by bytes, and a chat line is a 100-byte
//! datagram. Counted in packets, a window halved to two on a lossy path allowed two chat lines
//! per round trip, as if each were 1,200 bytes: on a 10%-loss link the window (about
//! 1.2/√p ≈ 4 packets) fell below what a line every 20 ms needs, lines queued behind it without
//! bound, and the median round trip reached seconds. Counted in bytes, the same halvings leave a
//! chat far inside its window, while bulk transfer (full-size datagrams) behaves exactly as before.

use super::config::CongestionControl;

/// Initial window in full-size datagrams (RFC 6928's IW10; RFC 9002 §7.2).
pub const INITIAL_WINDOW_PACKETS: u64 = 10;
/// The window never drops below this many full-size datagrams after a fast-retransmit loss
/// (RFC 9002's minimum window).
pub const MIN_WINDOW_PACKETS: u64 = 2;

/// A congestion controller's state. Every quantity is in bytes.
#[derive(Debug, Clone)]
pub struct Congestion {
    kind: CongestionControl,
    /// A full-size datagram: the unit of growth, and of the initial, minimum and loss windows.
    mss: u64,
    cwnd: u64,
    ssthresh: u64,
    /// Fractional growth in congestion avoidance: bytes acked since the last increment.
    acked_in_avoidance: u64,
    /// While in recovery: the sequence number that, once cumulatively acked, ends it.
    recovery_until: Option<u64>,
    /// Largest window ever useful (the receive window's worth of full datagrams): growth stops
    /// there.
    cap: u64,
    /// `(cwnd, ssthresh)` before the last reduction, to restore if the loss proves spurious.
    before_loss: Option<(u64, u64)>,
}

impl Congestion {
    /// A fresh controller for datagrams of at most `mss` bytes; the window never grows past `cap`
    /// bytes.
    pub fn new(kind: CongestionControl, mss: u64, cap: u64) -> Self {
        let mss = mss.max(1);
        let cap = cap.max(mss);
        Congestion {
            kind,
            mss,
            cwnd: (INITIAL_WINDOW_PACKETS * mss).min(cap),
            ssthresh: u64::MAX,
            acked_in_avoidance: 0,
            recovery_until: None,
            cap,
            before_loss: None,
        }
    }

    /// Bytes that may be in flight.
    pub fn window(&self) -> u64 {
        match self.kind {
            CongestionControl::NewReno => self.cwnd,
            CongestionControl::None => self.cap,
        }
    }

    /// The window in full-size datagrams (rounded down, at least one), for counters.
    pub fn window_packets(&self) -> u64 {
        (self.window() / self.mss).max(1)
    }

    /// Slow-start threshold in bytes (`u64::MAX` until the first loss).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn min_window(&self) -> u64 {
        (MIN_WINDOW_PACKETS * self.mss).min(self.cap)
    }

    /// `newly_acked` bytes were acknowledged; the cumulative ack is now `cumulative`.
    /// `app_limited`: the sender was not using its window (RFC 7661), so the window does not
    /// grow (RFC 9002 §7.8): growth must be earned by a full window delivered.
    pub fn on_ack(&mut self, newly_acked: u64, cumulative: u64, app_limited: bool) {
        if let Some(until) = self.recovery_until {
            if cumulative >= until {
                self.recovery_until = None;
            } else {
                // In recovery the window holds still (NewReno does not grow on partial acks).
                return;
            }
        }
        if app_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(newly_acked);
        } else {
            // One full-size datagram per window's worth of acknowledged bytes (RFC 5681 3.1).
            self.acked_in_avoidance += newly_acked;
            while self.acked_in_avoidance >= self.cwnd {
                self.acked_in_avoidance -= self.cwnd;
                self.cwnd += self.mss;
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
        self.ssthresh = (self.cwnd / 2).max(self.min_window());
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

    /// A retransmission timeout fired: the pipe drained, start again from one full-size
    /// datagram (RFC 5681's loss window).
    pub fn on_timeout(&mut self, next_seq: u64) {
        if self.recovery_until.is_none() {
            self.before_loss = Some((self.cwnd, self.ssthresh));
            self.ssthresh = (self.cwnd / 2).max(self.min_window());
        }
        self.cwnd = self.mss.min(self.cap);
        self.acked_in_avoidance = 0;
        self.recovery_until = Some(next_seq);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Windows below are in full-size datagrams of this many bytes.
    const MSS: u64 = 1000;

    fn newreno() -> Congestion {
        Congestion::new(CongestionControl::NewReno, MSS, 1000 * MSS)
    }

    #[test]
    fn slow_start_doubles_per_round_trip() {
        let mut c = newreno();
        assert_eq!(c.window(), 10 * MSS);
        c.on_ack(10 * MSS, 10, false);
        assert_eq!(c.window(), 20 * MSS);
        c.on_ack(20 * MSS, 30, false);
        assert_eq!(c.window(), 40 * MSS);
        assert_eq!(c.window_packets(), 40);
    }

    #[test]
    fn loss_halves_once_per_episode_then_avoidance_adds_one_datagram_per_window() {
        let mut c = newreno();
        c.on_ack(30 * MSS, 30, false); // 40
        c.on_loss(70);
        assert_eq!(c.window(), 20 * MSS);
        c.on_loss(70);
        assert_eq!(c.window(), 20 * MSS, "one reduction per recovery episode");
        c.on_ack(5 * MSS, 50, false);
        assert_eq!(c.window(), 20 * MSS, "no growth during recovery");
        c.on_ack(5 * MSS, 70, false); // recovery over; 5 acked in avoidance
        c.on_ack(15 * MSS, 85, false);
        assert_eq!(c.window(), 21 * MSS);
    }

    #[test]
    fn an_application_limited_sender_does_not_grow_the_window() {
        let mut c = newreno();
        for round in 0..100 {
            c.on_ack(MSS, round, true);
        }
        assert_eq!(c.window(), 10 * MSS, "acks of a thin flow earn no window");
        c.on_ack(MSS, 100, false);
        assert_eq!(c.window(), 11 * MSS);
    }

    #[test]
    fn small_datagrams_cost_only_their_bytes() {
        // Repeated losses pin the window at its minimum, two full-size datagrams: that is still
        // room for twenty 100-byte chat lines, where a window in packets allowed two.
        let mut c = newreno();
        for round in 0..10 {
            c.on_loss(round * 10 + 5);
            c.on_ack(100, round * 10 + 5, false);
        }
        assert_eq!(c.window(), 2 * MSS);
        assert!(c.window() / 100 >= 20);
    }

    #[test]
    fn a_spurious_loss_is_undone() {
        let mut c = newreno();
        c.on_ack(30 * MSS, 30, false); // 40
        c.on_loss(70);
        assert_eq!(c.window(), 20 * MSS);
        c.undo();
        assert_eq!(c.window(), 40 * MSS);
        assert_eq!(c.ssthresh(), u64::MAX);
        c.undo();
        assert_eq!(c.window(), 40 * MSS, "nothing more to undo");
    }

    #[test]
    fn timeout_restarts_from_one_datagram() {
        let mut c = newreno();
        c.on_ack(30 * MSS, 30, false);
        c.on_timeout(40);
        assert_eq!(c.window(), MSS);
        assert_eq!(c.ssthresh(), 20 * MSS);
        c.on_ack(MSS, 40, false);
        assert_eq!(c.window(), 2 * MSS, "slow start again after recovery");
    }

    #[test]
    fn none_is_only_the_cap_and_growth_stops_at_the_cap() {
        let mut none = Congestion::new(CongestionControl::None, MSS, 256 * MSS);
        none.on_loss(5);
        assert_eq!(none.window(), 256 * MSS);
        let mut capped = Congestion::new(CongestionControl::NewReno, MSS, 16 * MSS);
        capped.on_ack(100 * MSS, 100, false);
        assert_eq!(capped.window(), 16 * MSS);
    }
}
