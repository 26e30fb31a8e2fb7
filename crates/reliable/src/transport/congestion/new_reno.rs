//! [`NewReno`]: the default congestion controller (RFC 5681/6582), counted in bytes.
//!
//! Counted in **bytes** as TCP and QUIC (RFC 9002 §7) count it: start at ten full-size
//! datagrams (RFC 6928) and grow by every byte acknowledged (slow start, doubling per round trip)
//! until the first loss or `ssthresh`, then by one full-size datagram per round trip (congestion
//! avoidance). A loss found by fast retransmit halves the window once per recovery episode
//! (losses of one window are one congestion signal), never below two full-size datagrams; a
//! retransmission timeout means the pipe drained, so the window restarts from one full-size
//! datagram (RFC 5681's loss window). The window grows only while it is in use: acks of an
//! application-limited sender (a chat) prove nothing about a larger one (RFC 7661).

use std::time::Instant;

use udpchat_core::SeqNum;

use super::{Acked, CongestionEvent, Controller, INITIAL_WINDOW_PACKETS, MIN_WINDOW_PACKETS};

/// NewReno's state. Every quantity is in bytes.
#[derive(Debug, Clone)]
pub struct NewReno {
    /// A full-size datagram: the unit of growth, and of the initial, minimum and loss windows.
    mss: u64,
    cwnd: u64,
    ssthresh: u64,
    /// Fractional growth in congestion avoidance: bytes acked since the last increment.
    acked_in_avoidance: u64,
    /// While in recovery: the sequence number that, once cumulatively acked, ends it.
    recovery_until: Option<SeqNum>,
    /// Largest window ever useful (the receive window's worth of full datagrams): growth stops
    /// there.
    cap: u64,
    /// `(cwnd, ssthresh)` before the last reduction, to restore if the loss proves spurious.
    before_loss: Option<(u64, u64)>,
}

impl NewReno {
    /// A fresh controller for datagrams of at most `mss` bytes; the window never grows past `cap`
    /// bytes.
    pub fn new(mss: u64, cap: u64) -> Self {
        let mss = mss.max(1);
        let cap = cap.max(mss);
        NewReno {
            mss,
            cwnd: (INITIAL_WINDOW_PACKETS * mss).min(cap),
            ssthresh: u64::MAX,
            acked_in_avoidance: 0,
            recovery_until: None,
            cap,
            before_loss: None,
        }
    }

    fn min_window(&self) -> u64 {
        (MIN_WINDOW_PACKETS * self.mss).min(self.cap)
    }

    /// Fast retransmit found a loss: halve once per recovery episode.
    fn on_loss(&mut self, next_seq: SeqNum) {
        if self.recovery_until.is_some() {
            return;
        }
        self.before_loss = Some((self.cwnd, self.ssthresh));
        self.ssthresh = (self.cwnd / 2).max(self.min_window());
        self.cwnd = self.ssthresh;
        self.acked_in_avoidance = 0;
        self.recovery_until = Some(next_seq);
    }

    /// A retransmission timeout fired: the pipe drained, start again from one full-size
    /// datagram (RFC 5681's loss window).
    fn on_timeout(&mut self, next_seq: SeqNum) {
        if self.recovery_until.is_none() {
            self.before_loss = Some((self.cwnd, self.ssthresh));
            self.ssthresh = (self.cwnd / 2).max(self.min_window());
        }
        self.cwnd = self.mss.min(self.cap);
        self.acked_in_avoidance = 0;
        self.recovery_until = Some(next_seq);
    }
}

impl Controller for NewReno {
    fn window(&self) -> u64 {
        self.cwnd
    }

    /// In slow start the window grows by every byte acknowledged; in congestion avoidance by one
    /// full-size datagram per window's worth (RFC 5681 3.1). Application-limited acks do not
    /// grow it (RFC 9002 §7.8): growth must be earned by a full window delivered.
    fn on_ack(&mut self, _now: Instant, acked: &Acked) {
        if let Some(until) = self.recovery_until {
            if acked.cumulative >= until {
                self.recovery_until = None;
            } else {
                // In recovery the window holds still (NewReno does not grow on partial acks).
                return;
            }
        }
        if acked.app_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(acked.bytes);
        } else {
            self.acked_in_avoidance += acked.bytes;
            while self.acked_in_avoidance >= self.cwnd {
                self.acked_in_avoidance -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
        self.cwnd = self.cwnd.min(self.cap);
    }

    fn on_congestion_event(&mut self, _now: Instant, event: CongestionEvent, next_seq: SeqNum) {
        match event {
            CongestionEvent::Loss => self.on_loss(next_seq),
            CongestionEvent::Timeout => self.on_timeout(next_seq),
        }
    }

    /// Restores the window as it was before the last reduction and leaves recovery.
    fn on_spurious_loss(&mut self) {
        if let Some((cwnd, ssthresh)) = self.before_loss.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = ssthresh;
            self.recovery_until = None;
        }
    }

    fn ssthresh(&self) -> Option<u64> {
        Some(self.ssthresh)
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Windows below are in full-size datagrams of this many bytes.
    const MSS: u64 = 1000;

    fn newreno() -> NewReno {
        NewReno::new(MSS, 1000 * MSS)
    }

    fn ack(c: &mut NewReno, bytes: u64, cumulative: u64, app_limited: bool) {
        let acked = Acked {
            bytes,
            cumulative: SeqNum(cumulative),
            app_limited,
            rtt: None,
            min_rtt: None,
            smoothed_rtt: None,
            bytes_in_flight: 0,
            delivery: None,
        };
        c.on_ack(Instant::now(), &acked);
    }

    fn loss(c: &mut NewReno, next: u64) {
        c.on_congestion_event(Instant::now(), CongestionEvent::Loss, SeqNum(next));
    }

    #[test]
    fn slow_start_doubles_per_round_trip() {
        let mut c = newreno();
        assert_eq!(c.window(), 10 * MSS);
        ack(&mut c, 10 * MSS, 10, false);
        assert_eq!(c.window(), 20 * MSS);
        ack(&mut c, 20 * MSS, 30, false);
        assert_eq!(c.window(), 40 * MSS);
    }

    #[test]
    fn loss_halves_once_per_episode_then_avoidance_adds_one_datagram_per_window() {
        let mut c = newreno();
        ack(&mut c, 30 * MSS, 30, false); // 40
        loss(&mut c, 70);
        assert_eq!(c.window(), 20 * MSS);
        loss(&mut c, 70);
        assert_eq!(c.window(), 20 * MSS, "one reduction per recovery episode");
        ack(&mut c, 5 * MSS, 50, false);
        assert_eq!(c.window(), 20 * MSS, "no growth during recovery");
        ack(&mut c, 5 * MSS, 70, false); // recovery over; 5 acked in avoidance
        ack(&mut c, 15 * MSS, 85, false);
        assert_eq!(c.window(), 21 * MSS);
    }

    #[test]
    fn an_application_limited_sender_does_not_grow_the_window() {
        let mut c = newreno();
        for round in 0..100 {
            ack(&mut c, MSS, round, true);
        }
        assert_eq!(c.window(), 10 * MSS, "acks of a thin flow earn no window");
        ack(&mut c, MSS, 100, false);
        assert_eq!(c.window(), 11 * MSS);
    }

    #[test]
    fn small_datagrams_cost_only_their_bytes() {
        // Repeated losses pin the window at its minimum, two full-size datagrams: that is still
        // room for twenty 100-byte chat lines, where a window in packets allowed two.
        let mut c = newreno();
        for round in 0..10 {
            loss(&mut c, round * 10 + 5);
            ack(&mut c, 100, round * 10 + 5, false);
        }
        assert_eq!(c.window(), 2 * MSS);
        assert!(c.window() / 100 >= 20);
    }

    #[test]
    fn a_spurious_loss_is_undone() {
        let mut c = newreno();
        ack(&mut c, 30 * MSS, 30, false); // 40
        loss(&mut c, 70);
        assert_eq!(c.window(), 20 * MSS);
        c.on_spurious_loss();
        assert_eq!(c.window(), 40 * MSS);
        assert_eq!(c.ssthresh(), Some(u64::MAX));
        c.on_spurious_loss();
        assert_eq!(c.window(), 40 * MSS, "nothing more to undo");
    }

    #[test]
    fn timeout_restarts_from_one_datagram() {
        let mut c = newreno();
        ack(&mut c, 30 * MSS, 30, false);
        c.on_congestion_event(Instant::now(), CongestionEvent::Timeout, SeqNum(40));
        assert_eq!(c.window(), MSS);
        assert_eq!(c.ssthresh(), Some(20 * MSS));
        ack(&mut c, MSS, 40, false);
        assert_eq!(c.window(), 2 * MSS, "slow start again after recovery");
    }

    #[test]
    fn growth_stops_at_the_cap() {
        let mut capped = NewReno::new(MSS, 16 * MSS);
        ack(&mut capped, 100 * MSS, 100, false);
        assert_eq!(capped.window(), 16 * MSS);
    }
}
