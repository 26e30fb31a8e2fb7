//! Congestion control: how many bytes may be in flight, so we do not flood a shared path.
//!
//! Flow control protects the receiver; congestion control protects the network in between. The
//! sender asks one [`Controller`] for its window and tells it what happened (bytes acknowledged,
//! a loss, a timeout, a loss that proved spurious); the controller never sees packets or
//! sequence-number bookkeeping, so an algorithm is one file here, as in quinn-proto's
//! `congestion/`:
//!
//! - [`new_reno`]: NewReno, counted in bytes;
//! - [`cubic`]: CUBIC (RFC 9438) with HyStart++ ([`hystart`], RFC 9406) leaving slow start;
//! - [`bbr`]: a model-based controller in the spirit of BBR: it estimates the bottleneck
//!   bandwidth and the minimum RTT from delivery-rate samples and paces at the first, so random
//!   loss does not collapse its window;
//! - [`none`]: no congestion window at all, only the receive window (for experiments that
//!   isolate the ARQ scheme).
//!
//! A new algorithm implements [`Controller`], gets a variant of [`CongestionControl`] (the
//! user-facing choice, in `config.rs`), and a line in [`CongestionControl::build`], the factory.
//! Every ack brings a [`DeliverySample`] (bytes delivered over an interval, and whether the
//! sender was application-limited), which window-based controllers may ignore.
//!
//! Every quantity is in bytes. Why bytes and not packets: the network is congested by bytes,
//! and a chat line is a 100-byte datagram. Counted in packets, a window halved to two on a lossy
//! path allowed two chat lines per round trip, as if each were 1,200 bytes: on a 10%-loss link
//! the window (about 1.2/√p ≈ 4 packets) fell below what a line every 20 ms needs, lines queued
//! behind it without bound, and the median round trip reached seconds. Counted in bytes, the
//! same halvings leave a chat far inside its window, while bulk transfer (full-size datagrams)
//! behaves exactly as before.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use udpchat_core::SeqNum;

pub use super::config::CongestionControl;

pub mod bbr;
pub mod cubic;
pub mod hystart;
pub mod new_reno;
pub mod none;

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use new_reno::NewReno;
pub use none::NoCongestionControl;

/// Initial window in full-size datagrams (RFC 6928's IW10; RFC 9002 §7.2).
pub const INITIAL_WINDOW_PACKETS: u64 = 10;
/// The window never drops below this many full-size datagrams after a fast-retransmit loss
/// (RFC 9002's minimum window).
pub const MIN_WINDOW_PACKETS: u64 = 2;

/// What one acknowledgement told the sender, as a controller needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Bytes newly acknowledged (each packet at its congestion cost: payload plus header).
    pub bytes: u64,
    /// The cumulative ack after this one: every sequence number below it is acknowledged.
    /// Recovery episodes end when it passes the sequence number they were opened at.
    pub cumulative: SeqNum,
    /// The sender was not using its window (RFC 7661: nothing queued and less than half of the
    /// window in flight), so the ack proves nothing about a larger window.
    pub app_limited: bool,
    /// The RTT sample this ack gave, if it gave one (Karn's rule may forbid it).
    pub rtt: Option<Duration>,
    /// The smallest RTT measured so far on this path, if any.
    pub min_rtt: Option<Duration>,
    /// The smoothed RTT, if any sample has been taken.
    pub smoothed_rtt: Option<Duration>,
    /// Bytes still in flight after this ack.
    pub bytes_in_flight: u64,
    /// The delivery-rate sample this ack gave (model-based controllers steer by it; window-based
    /// ones may ignore it).
    pub delivery: Option<DeliverySample>,
}

/// One delivery-rate sample (draft-cheng-iccrg-delivery-rate-estimation): `delivered` bytes
/// acknowledged over `interval`, measured from the newest packet this ack acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySample {
    /// Bytes delivered between the newest acknowledged packet's send and this ack.
    pub delivered: u64,
    /// The interval they were delivered over; `None` when it was too short (below the minimum
    /// RTT) to measure a rate.
    pub interval: Option<Duration>,
    /// The newest acknowledged packet was sent while the sender had nothing more to send: the
    /// rate is a lower bound of the path's, not its rate.
    pub app_limited: bool,
    /// Bytes delivered in the whole session when that packet was sent: a round trip ends when a
    /// packet sent after it started is acknowledged ([`RoundCounter`]).
    pub prior_delivered: u64,
    /// Bytes delivered in the whole session, this ack included.
    pub delivered_total: u64,
    /// Bytes still in flight after this ack.
    pub bytes_in_flight: u64,
}

impl DeliverySample {
    /// The delivery rate in bytes per second, if the interval allows one.
    pub fn rate(&self) -> Option<u64> {
        let nanos = self.interval?.as_nanos();
        if nanos == 0 {
            return None;
        }
        let rate = u128::from(self.delivered) * 1_000_000_000 / nanos;
        Some(u64::try_from(rate).unwrap_or(u64::MAX))
    }
}

/// Counts round trips in delivered bytes (as BBR does): a round ends when a packet sent after
/// the previous round ended is acknowledged, that is when an ack's `prior_delivered` reaches the
/// total delivered at the round's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundCounter {
    /// Rounds completed.
    pub count: u64,
    next_round_delivered: u64,
}

impl RoundCounter {
    /// Takes one ack's sample; true if it ended a round (and started the next).
    pub fn on_ack(&mut self, sample: &DeliverySample) -> bool {
        if sample.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = sample.delivered_total;
            self.count += 1;
            true
        } else {
            false
        }
    }
}

/// A congestion signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionEvent {
    /// Loss found by fast retransmit (SACK evidence): the path is congested, data still flows.
    Loss,
    /// A retransmission timeout fired: the pipe drained.
    Timeout,
}

/// One congestion-control algorithm's state, driven by the sender. Time comes in as an
/// argument; a controller never reads a clock.
pub trait Controller: Debug + Send {
    /// Bytes that may be in flight now.
    fn window(&self) -> u64;

    /// `bytes` went on the wire at `now` (first transmissions, resends and redundant copies).
    /// Rate-based controllers (a BBR-like model) track delivery rate from this; window-based
    /// ones need not.
    fn on_sent(&mut self, now: Instant, bytes: u64) {
        let _ = (now, bytes);
    }

    /// An acknowledgement arrived at `now` and acknowledged new data.
    fn on_ack(&mut self, now: Instant, acked: &Acked);

    /// A congestion signal at `now`. `next_seq` is the first sequence number not yet sent: the
    /// episode lasts until the cumulative ack passes it (losses within one window are one
    /// signal).
    fn on_congestion_event(&mut self, now: Instant, event: CongestionEvent, next_seq: SeqNum);

    /// Fast retransmit declared packets of `bytes` bytes in all lost at `now` (just before the
    /// congestion event they cause). A model-based controller measures its loss rate from it;
    /// window-based ones need not.
    fn on_packets_lost(&mut self, now: Instant, bytes: u64) {
        let _ = (now, bytes);
    }

    /// The last loss was not one (a resend proved needless): undo the response to it, if the
    /// algorithm can (Eifel, RFC 4015).
    fn on_spurious_loss(&mut self);

    /// The rate, in bytes per second, at which the controller wants packets spread out, if it
    /// has a rate of its own (a model-based one). `None` lets the sender pace a window-based
    /// controller at a multiple of its window per smoothed RTT (`transport/pacer.rs`).
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// Slow-start threshold in bytes, where the algorithm has one (`u64::MAX` before the first
    /// loss); for counters and tests.
    fn ssthresh(&self) -> Option<u64> {
        None
    }

    /// A boxed copy (controllers are held as `Box<dyn Controller>`).
    fn clone_box(&self) -> Box<dyn Controller>;
}

impl Clone for Box<dyn Controller> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl CongestionControl {
    /// The factory: a fresh controller of this kind for datagrams of at most `mss` bytes, whose
    /// window never grows past `cap` bytes (the receive window's worth of full datagrams: more
    /// could never be used).
    pub fn build(self, mss: u64, cap: u64) -> Box<dyn Controller> {
        match self {
            CongestionControl::NewReno => Box::new(NewReno::new(mss, cap)),
            CongestionControl::Cubic => Box::new(Cubic::new(mss, cap)),
            CongestionControl::Bbr => Box::new(Bbr::new(mss, cap)),
            CongestionControl::None => Box::new(NoCongestionControl::new(mss, cap)),
        }
    }
}
