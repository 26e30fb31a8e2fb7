//! [`ReliableConfig`]: every knob of the reliable transport in one plain struct.
//!
//! The CLI flags, the lab and the tests all build this struct, so a default documented here is the
//! default everywhere. [`ReliableConfig::validate`] checks the few combinations that would make the
//! state machine meaningless (an RTO range upside down, a datagram too small for a header), once, at
//! the edge; the state machine then trusts it.

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;
use udpchat_core::MAX_UDP_PAYLOAD;

/// Which automatic-repeat-request scheme the sender uses. The wire and the receiver are the same
/// for all three; only the sender's choice of what to resend, and when, differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arq {
    /// Resend only what is missing: selective acks, fast retransmit on SACK evidence, and a
    /// retransmission timeout as the last resort. What modern transports (TCP with SACK, QUIC) do.
    #[default]
    SelectiveRepeat,
    /// Cumulative acks only: on a timeout, resend everything from the first hole on, as classic
    /// TCP did. Simple, and wasteful under loss.
    GoBackN,
    /// One packet in flight at a time: the textbook baseline whose throughput is one packet per
    /// round trip.
    StopAndWait,
}

/// Which congestion controller limits how much is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CongestionControl {
    /// NewReno-style: slow start, congestion avoidance, halve on loss, collapse on timeout.
    NewReno,
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406): regrows along a cubic curve of the time
    /// since the last loss, and keeps 0.7 of the window on a loss.
    Cubic,
    /// Model-based, in the spirit of BBR: paces at its bottleneck-bandwidth estimate and keeps
    /// 1.75 bandwidth-delay products in flight; random loss does not shrink it. The default,
    /// chosen by measurement (`docs/performance.md`, "Choosing the default controller").
    #[default]
    Bbr,
    /// No congestion window: only the peer's receive window limits the sender. For experiments.
    None,
}

/// In which order complete messages reach the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// In sending order: a missing message holds back every later one (head-of-line blocking).
    #[default]
    Ordered,
    /// As soon as each message is complete, whatever arrived before it.
    Unordered,
}

/// The reliable transport's configuration. Every field has a documented default
/// ([`ReliableConfig::default`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReliableConfig {
    /// Our nickname, sent in the handshake. Default: empty.
    pub nick: String,
    /// Largest datagram we send, in bytes: the cap of path MTU discovery (DPLPMTUD, RFC 8899,
    /// `transport/pmtu.rs`), which starts at 1200 bytes (safe on real internet paths) and probes
    /// up to this. At most 1200 turns discovery off. Default: [`DEFAULT_PMTU_CAP`] (1452: an
    /// Ethernet frame's 1500 bytes less IPv6 and UDP headers). At least [`MIN_DATAGRAM`].
    pub max_datagram: usize,
    /// Largest message `send` accepts, in bytes of UTF-8. Default: 1 MiB. Larger ones get
    /// `SendError::TooLong`; the receiver refuses fragments that would exceed it.
    pub max_message: usize,
    /// Receive window we advertise, in packets: the peer may send sequence numbers up to this far
    /// past our cumulative ack, and no further. It bounds our reorder and reassembly memory, and
    /// it caps the congestion window, so it must cover the path's bandwidth-delay product or bulk
    /// transfer is window-limited. Default: 1024 (about 1.2 MB at 1200-byte datagrams). A
    /// 100 Mbit/s path with a 40 ms round trip needs 420 packets in flight, but under random loss
    /// the window is counted from the oldest hole, which takes two round trips or more to repair:
    /// with 512, the default controller at 1% loss was held to 48 Mbit/s on that path, with
    /// 1024 it reaches 69 (`docs/performance.md`, "Choosing the default controller", which also
    /// shows the price: a clean transfer's startup overflows a one-BDP queue once); 256 held even
    /// a loss-free transfer to 51 Mbit/s.
    pub window: u32,
    /// The ARQ scheme. Default: selective repeat.
    pub arq: Arq,
    /// The congestion controller. Default: the model-based one ([`CongestionControl::Bbr`]),
    /// chosen by measurement: it keeps most of the link under random loss where NewReno and
    /// CUBIC collapse, and chat latency is the same with all three (`docs/performance.md`).
    pub congestion: CongestionControl,
    /// Message delivery order. Default: ordered.
    pub delivery: Delivery,
    /// Retransmission timeout before any RTT sample (RFC 6298 says 1 s). Default: 1 s.
    pub initial_rto: Duration,
    /// Floor of the retransmission timeout. RFC 6298 says 1 s and Linux uses 200 ms, floors
    /// meant to absorb receivers' delayed acks; our timeout adds the peer's `max_ack_delay`
    /// explicitly (as QUIC does), so the floor can be low and a lost chat line on a fast path is
    /// resent in tens of milliseconds. Default: 50 ms.
    pub min_rto: Duration,
    /// Ceiling of the retransmission timeout, backoff included. Default: 3 s.
    pub max_rto: Duration,
    /// Consecutive retransmission timeouts without any progress after which we give up: every
    /// unacknowledged message is reported lost and the peer unreachable. Default: 10 (with the
    /// default `max_rto`, a dead peer is reported within 33 s; on a link losing 20% each way a
    /// live one is given up on about once in 30,000 timeouts).
    pub max_retries: u32,
    /// Longest we hold an acknowledgement back hoping to piggyback it or to ack two packets at
    /// once. Default: 25 ms.
    pub max_ack_delay: Duration,
    /// Fast retransmit: a packet counts as lost once this many packets sent after it have been
    /// acknowledged and it has been out for 9/8 of an RTT. Default: 1, which makes loss
    /// detection purely time-based (RACK, RFC 8985): it works with windows of two or three
    /// packets, where TCP's classic three duplicate acks (set 3) never come, and the 9/8 RTT wait
    /// is what tolerates reordering.
    pub reorder_threshold: u32,
    /// Send a keepalive probe after this long without sending anything. Default: 5 s.
    pub keepalive: Duration,
    /// Declare the peer unreachable after this long without hearing anything. Default: 30 s.
    pub idle_timeout: Duration,
    /// How long `close` waits for outstanding messages to be acknowledged. Default: 3 s.
    pub linger: Duration,
    /// At most this many selective-ack ranges go in one ack (the highest ones), fewer if they do
    /// not fit the datagram. A receiver that takes in a burst of packets before answering sends
    /// one ack for all of them, so this must cover the holes a window can have at the loss rates
    /// we care about, or the sender resends what arrived. Default: 96 (fits 1200 bytes for
    /// sequence numbers below 2^32).
    pub max_ack_ranges: usize,
    /// Redundancy for an application-limited sender: each datagram that carries a new packet
    /// and has room also carries copies of up to N of the newest unacknowledged packets (as a
    /// `Bundle`), and when no new packet follows within half a round trip the newest ones get up
    /// to N copies of their own, so a lost chat line is usually repaired by the next datagram,
    /// without waiting a round trip for an ack. Costs wire bytes (each copy counts against the
    /// congestion window); never used while data waits for the window or beyond half of it, so
    /// bulk transfer is unaffected. Default: [`Redundancy::Auto`]: N follows the measured loss
    /// rate, 0 on a clean path (`docs/protocol.md`, "Redundancy").
    pub redundancy: Redundancy,
}

/// How many redundant copies an application-limited sender adds (see
/// [`ReliableConfig::redundancy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Redundancy {
    /// As many as the loss the sender measures calls for: none on a clean path, up to
    /// [`MAX_AUTO_REDUNDANCY`] while packets are being lost (the rule: `transport/redundancy.rs`).
    #[default]
    Auto,
    /// Always this many (at most [`MAX_REDUNDANCY`]); 0 turns redundancy off, so transmissions
    /// per message stay 1/(1−p) and every lab figure means what theory says.
    Fixed(u8),
}

/// Most copies [`Redundancy::Auto`] ever adds: three cover the packets a chat keeps
/// unacknowledged on a 60 ms round trip at one line per 20 ms (`docs/protocol.md`).
pub const MAX_AUTO_REDUNDANCY: u8 = 3;

/// Largest `redundancy`: a bundle holds the new packet and this many copies.
pub const MAX_REDUNDANCY: u8 = (udpchat_core::MAX_BUNDLE - 1) as u8;

/// The default cap of path MTU discovery: 1500-byte Ethernet frames less 40 bytes of IPv6 and
/// 8 of UDP header (as quinn's default), so a LAN or loopback gets full-size datagrams and a
/// 1,200-byte chat line travels in one.
pub const DEFAULT_PMTU_CAP: usize = 1452;

/// The smallest `max_datagram` accepted: room for the headers and a useful payload.
pub const MIN_DATAGRAM: usize = 128;

impl Default for ReliableConfig {
    fn default() -> Self {
        ReliableConfig {
            nick: String::new(),
            max_datagram: DEFAULT_PMTU_CAP,
            max_message: 1 << 20,
            window: 1024,
            arq: Arq::SelectiveRepeat,
            congestion: CongestionControl::Bbr,
            delivery: Delivery::Ordered,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(50),
            max_rto: Duration::from_secs(3),
            max_retries: 10,
            max_ack_delay: Duration::from_millis(25),
            reorder_threshold: 1,
            keepalive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(3),
            max_ack_ranges: 96,
            redundancy: Redundancy::Auto,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `max_datagram` outside `MIN_DATAGRAM..=MAX_UDP_PAYLOAD`.
    #[error("max datagram {0} bytes is outside {MIN_DATAGRAM}..={MAX_UDP_PAYLOAD}")]
    Datagram(usize),
    /// `max_message` is zero, or needs more fragments than a u32 counts.
    #[error("max message size {0} bytes is not usable")]
    Message(usize),
    /// `window` outside `1..=65536`.
    #[error("window {0} packets is outside 1..=65536")]
    Window(u32),
    /// `min_rto` is zero or above `max_rto`, or `initial_rto` is outside them.
    #[error("retransmission timeouts must satisfy 0 < min-rto <= initial-rto <= max-rto")]
    Rto,
    /// `reorder_threshold` or `max_ack_ranges` is zero.
    #[error("reorder threshold and max ack ranges must be at least 1")]
    Zero,
    /// `idle_timeout` not above `keepalive`, or either is zero.
    #[error("idle timeout must be longer than the keepalive interval, both non-zero")]
    Idle,
    /// `redundancy` above [`MAX_REDUNDANCY`].
    #[error("redundancy {0} is above the maximum of {MAX_REDUNDANCY} copies per datagram")]
    Redundancy(u8),
}

impl ReliableConfig {
    /// Checks that the configuration is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_DATAGRAM..=MAX_UDP_PAYLOAD).contains(&self.max_datagram) {
            return Err(ConfigError::Datagram(self.max_datagram));
        }
        let fragments = self.max_message.div_ceil(self.fragment_payload());
        if self.max_message == 0 || u32::try_from(fragments).is_err() {
            return Err(ConfigError::Message(self.max_message));
        }
        if !(1..=65_536).contains(&self.window) {
            return Err(ConfigError::Window(self.window));
        }
        if self.min_rto.is_zero()
            || self.min_rto > self.initial_rto
            || self.initial_rto > self.max_rto
        {
            return Err(ConfigError::Rto);
        }
        if self.reorder_threshold == 0 || self.max_ack_ranges == 0 {
            return Err(ConfigError::Zero);
        }
        if self.keepalive.is_zero() || self.idle_timeout <= self.keepalive {
            return Err(ConfigError::Idle);
        }
        if let Redundancy::Fixed(n) = self.redundancy {
            if n > MAX_REDUNDANCY {
                return Err(ConfigError::Redundancy(n));
            }
        }
        Ok(())
    }

    /// The datagram size every path is assumed to carry: the base of path MTU discovery
    /// (1200 bytes), or `max_datagram` if that is smaller. Acknowledgements are sized to it, and
    /// the congestion window counts in it.
    pub fn base_datagram(&self) -> usize {
        self.max_datagram.min(crate::transport::pmtu::BASE_PLPMTU)
    }

    /// Payload bytes per fragment at the base datagram size: the smallest fragments a sender
    /// cuts (path MTU discovery may let it cut larger ones), so the most a message needs. The
    /// datagram less the widest header a data packet can have (`udpchat_core::max_data_overhead`,
    /// computed by the codec).
    pub fn fragment_payload(&self) -> usize {
        self.base_datagram()
            .saturating_sub(udpchat_core::max_data_overhead())
            .max(1)
    }

    /// Most fragments a message of `max_message` bytes needs.
    pub fn max_fragments(&self) -> u32 {
        u32::try_from(self.max_message.div_ceil(self.fragment_payload())).unwrap_or(u32::MAX)
    }

    /// The longest a sender can go without progress before giving up: `max_retries + 1`
    /// retransmission timeouts, each at most `max_rto`. A dead peer is reported within this bound
    /// of the last acknowledgement (or of the first send, when nothing was ever acknowledged).
    pub fn give_up_bound(&self) -> Duration {
        self.max_rto
            .saturating_mul(self.max_retries.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ReliableConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_full_data_packet_fits_the_datagram() {
        use udpchat_core::{encode, ConnectionId, Data, Packet, SeqNum};
        let config = ReliableConfig::default();
        let packet = Packet::Data(Data {
            dst: ConnectionId(u64::MAX),
            seq: SeqNum(u64::MAX),
            message: u64::MAX,
            fragment: u32::MAX,
            fragments: u32::MAX,
            token: u32::MAX,
            payload: vec![0xAB; config.fragment_payload()],
            ack: None,
        });
        let bytes = encode(&packet, config.max_datagram).unwrap();
        assert!(bytes.len() <= config.max_datagram);
    }

    #[test]
    fn bad_values_are_refused() {
        let base = ReliableConfig::default();
        let cases = [
            ReliableConfig {
                max_datagram: 64,
                ..base.clone()
            },
            ReliableConfig {
                window: 0,
                ..base.clone()
            },
            ReliableConfig {
                min_rto: Duration::from_secs(5),
                ..base.clone()
            },
            ReliableConfig {
                max_message: 0,
                ..base.clone()
            },
            ReliableConfig {
                idle_timeout: Duration::from_secs(1),
                ..base.clone()
            },
            ReliableConfig {
                reorder_threshold: 0,
                ..base.clone()
            },
            ReliableConfig {
                redundancy: Redundancy::Fixed(MAX_REDUNDANCY + 1),
                ..base.clone()
            },
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?} should be refused");
        }
    }

    #[test]
    fn the_default_window_covers_a_100_mbit_path_with_a_40_ms_round_trip() {
        // The window caps the congestion window too: below the bandwidth-delay product, bulk
        // transfer cannot fill the path however clean it is.
        let config = ReliableConfig::default();
        let window_bits = u64::from(config.window) * config.fragment_payload() as u64 * 8;
        let bdp_bits = 100_000_000 * 40 / 1000;
        assert!(window_bits >= bdp_bits, "{window_bits} < {bdp_bits}");
    }

    #[test]
    fn give_up_bound_is_retries_plus_one_max_rtos() {
        let config = ReliableConfig {
            max_rto: Duration::from_secs(2),
            max_retries: 4,
            ..ReliableConfig::default()
        };
        assert_eq!(config.give_up_bound(), Duration::from_secs(10));
    }
}
