//! [`Relay`]: the packet path of the TUN relay, as a pure state machine (no device, no clock).
//!
//! Two directions, A→B and B→A, each one lab [`Impairment`] with its own seed stream, fed whole IP
//! packets. [`Relay::offer`] takes a packet read from one side's TUN device at `now`;
//! [`Relay::poll`] returns the packets due to be written to the other side, and
//! [`Relay::next_release`] when the next one is due. The I/O loop ([`crate::link`]) only moves
//! bytes between devices and this type, so every impairment decision is tested here without root.
//!
//! **What corruption touches.** netem flips bits anywhere in the frame; the lab's semantics are
//! "the receiver's checksum must catch it". A flipped bit in an IPv4 header makes the receiving
//! kernel drop the packet at the IP layer (header checksum), and one in an IPv6 header (which has
//! no checksum) could even deliver it to the wrong address. So the relay protects the IP header
//! ([`Impairment::offer_protecting`]) and flips bits only in what follows: the TCP or UDP header
//! and payload. The receiving kernel then drops the segment on its TCP/UDP checksum, the honest
//! analogue of udpchat's CRC dropping a corrupted datagram: TCP counts it in `TcpInCsumErrors`
//! and retransmits, and a UDP datagram never reaches udpchat at all (raw mode shows a gap).
//!
//! **What is counted.** Beyond the model's own counters (offered, forwarded, dropped by cause,
//! duplicated, corrupted, reordered), each direction counts bytes in and out, packets that are not
//! IP (dropped, never forwarded), and, for TCP, the segments that carry data and those among them
//! that resend bytes already seen on this direction (retransmissions, as a capture would show).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use udpchat_lab::{derive_seed, Impairment, ImpairmentConfig, ImpairmentStats, Verdict};

use crate::packet::{IpPacket, PacketError};

/// One direction of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From side A's device to side B's (`--up` in `udpchat netem`).
    AToB,
    /// From side B's device to side A's (`--down`).
    BToA,
}

impl Direction {
    /// Both, A→B first.
    pub const BOTH: [Direction; 2] = [Direction::AToB, Direction::BToA];

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::AToB => 0,
            Direction::BToA => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AToB => "a->b",
            Direction::BToA => "b->a",
        })
    }
}

/// Flows whose TCP sequence numbers are remembered per direction, to bound memory whatever the
/// traffic; segments of flows beyond it are not checked for retransmission.
pub const MAX_TRACKED_FLOWS: usize = 1024;

/// Counters of one direction. Every field only grows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// The impairment model's counters (packets offered, forwarded, dropped by cause, ...).
    pub model: ImpairmentStats,
    /// Bytes of the packets offered (whole IP packets).
    pub bytes_in: u64,
    /// Bytes of the packets forwarded (copies included).
    pub bytes_out: u64,
    /// Packets that were not IP (too short, unknown version, bad header length): dropped.
    pub malformed: u64,
    /// Offered TCP segments that carry data.
    pub tcp_data_segments: u64,
    /// Offered TCP data segments that resend bytes this direction had already seen.
    pub tcp_retransmissions: u64,
    /// Packets the device refused to take (lost, as on a real link).
    pub write_errors: u64,
}

impl DirectionStats {
    /// Packets dropped by the relay: by the impairment, as malformed, or refused by the device.
    pub fn dropped(&self) -> u64 {
        self.model.dropped() + self.malformed + self.write_errors
    }
}

impl fmt::Display for DirectionStats {
    /// One line of `key=value` pairs, stable for scripts and tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} malformed={} write_errors={} bytes_in={} bytes_out={} tcp_data={} tcp_retransmitted={}",
            self.model,
            self.malformed,
            self.write_errors,
            self.bytes_in,
            self.bytes_out,
            self.tcp_data_segments,
            self.tcp_retransmissions
        )
    }
}

/// A TCP flow in one direction: addresses and ports.
type FlowKey = (IpAddr, IpAddr, u16, u16);

/// One direction: the model, its counters, and the highest sequence end seen per flow.
#[derive(Debug)]
struct Lane {
    model: Impairment<()>,
    stats: DirectionStats,
    seen: HashMap<FlowKey, u32>,
}

impl Lane {
    /// Counts a TCP data segment, and whether it resends bytes already seen.
    fn count_tcp(&mut self, packet: &IpPacket<'_>) {
        let Some(segment) = packet.tcp() else { return };
        if segment.payload_len == 0 {
            return;
        }
        self.stats.tcp_data_segments += 1;
        let (src, dst) = packet.addresses();
        let key = (src, dst, segment.ports.0, segment.ports.1);
        // Sequence numbers wrap: "after" is a positive 32-bit difference (RFC 793's comparison).
        let end = segment.seq.wrapping_add(segment.payload_len as u32);
        let tracked = self.seen.len();
        match self.seen.entry(key) {
            Entry::Occupied(mut highest) => {
                if (end.wrapping_sub(*highest.get()) as i32) <= 0 {
                    self.stats.tcp_retransmissions += 1;
                } else {
                    highest.insert(end);
                }
            }
            Entry::Vacant(slot) if tracked < MAX_TRACKED_FLOWS => {
                slot.insert(end);
            }
            Entry::Vacant(_) => {}
        }
    }
}

/// Both directions of the relay.
#[derive(Debug)]
pub struct Relay {
    lanes: [Lane; 2],
}

impl Relay {
    /// A relay impairing A→B with `a_to_b` and B→A with `b_to_a`, each direction drawing from
    /// its own stream of `seed`.
    pub fn new(a_to_b: ImpairmentConfig, b_to_a: ImpairmentConfig, seed: u64) -> Relay {
        let lane = |config, label| Lane {
            model: Impairment::new(config, derive_seed(seed, label)),
            stats: DirectionStats::default(),
            seen: HashMap::new(),
        };
        Relay {
            lanes: [lane(a_to_b, 0), lane(b_to_a, 1)],
        }
    }

    /// Takes a packet read from the device of `from`'s source side at `now`. A packet that is not
    /// IP is counted and dropped (`Err`); otherwise the model decides its fate.
    pub fn offer(
        &mut self,
        now: Instant,
        from: Direction,
        packet: Vec<u8>,
    ) -> Result<Verdict, PacketError> {
        let lane = &mut self.lanes[from.index()];
        lane.stats.bytes_in += packet.len() as u64;
        let header_len = match IpPacket::parse(&packet) {
            Ok(ip) => {
                lane.count_tcp(&ip);
                ip.header_len()
            }
            Err(e) => {
                lane.stats.malformed += 1;
                return Err(e);
            }
        };
        Ok(lane.model.offer_protecting(now, (), packet, header_len))
    }

    /// The next packet due by `now`, and the direction it travels (write it to that direction's
    /// destination device). The earlier-due of the two directions first.
    pub fn poll(&mut self, now: Instant) -> Option<(Direction, Vec<u8>)> {
        let due = Direction::BOTH
            .into_iter()
            .filter_map(|d| {
                let release = self.lanes[d.index()].model.next_release()?;
                (release <= now).then_some((release, d))
            })
            .min_by_key(|&(release, _)| release)?;
        let lane = &mut self.lanes[due.1.index()];
        let released = lane.model.poll(now)?;
        lane.stats.bytes_out += released.bytes.len() as u64;
        Some((due.1, released.bytes))
    }

    /// When the next held packet is due, if any.
    pub fn next_release(&self) -> Option<Instant> {
        self.lanes
            .iter()
            .filter_map(|l| l.model.next_release())
            .min()
    }

    /// Counts a packet `direction`'s destination device refused.
    pub fn count_write_error(&mut self, direction: Direction) {
        self.lanes[direction.index()].stats.write_errors += 1;
    }

    /// The counters of one direction, the model's included.
    pub fn stats(&self, direction: Direction) -> DirectionStats {
        let lane = &self.lanes[direction.index()];
        DirectionStats {
            model: lane.model.stats().clone(),
            ..lane.stats.clone()
        }
    }

    /// Packets held (delayed) in both directions.
    pub fn held(&self) -> usize {
        self.lanes.iter().map(|l| l.model.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use udpchat_lab::{Fate, Probability};

    use super::*;
    use crate::packet::tests::tcp_v4;

    fn lossy(p: f64) -> ImpairmentConfig {
        ImpairmentConfig {
            loss: Probability::new(p).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn a_perfect_relay_passes_packets_unchanged_in_their_direction() {
        let t0 = Instant::now();
        let mut relay = Relay::new(ImpairmentConfig::default(), ImpairmentConfig::default(), 1);
        relay.offer(t0, Direction::AToB, tcp_v4(1, b"ab")).unwrap();
        relay.offer(t0, Direction::BToA, tcp_v4(9, b"")).unwrap();
        assert_eq!(relay.poll(t0), Some((Direction::AToB, tcp_v4(1, b"ab"))));
        assert_eq!(relay.poll(t0), Some((Direction::BToA, tcp_v4(9, b""))));
        assert_eq!(relay.poll(t0), None);
        let up = relay.stats(Direction::AToB);
        assert_eq!((up.model.received, up.model.forwarded), (1, 1));
        assert_eq!((up.bytes_in, up.bytes_out), (42, 42));
        assert_eq!(up.tcp_data_segments, 1);
        assert_eq!(relay.stats(Direction::BToA).tcp_data_segments, 0);
    }

    #[test]
    fn the_relay_drops_exactly_what_the_seeded_model_drops() {
        // The same seed and config in a bare Impairment predict every fate of the A->B lane.
        let t0 = Instant::now();
        let mut relay = Relay::new(lossy(0.3), ImpairmentConfig::default(), 7);
        let mut model: Impairment<()> = Impairment::new(lossy(0.3), derive_seed(7, 0));
        let mut expected_out = 0;
        for i in 0..300u32 {
            let packet = tcp_v4(i * 10, &[0u8; 10]);
            let predicted = model.offer(t0, (), packet.clone());
            let got = relay.offer(t0, Direction::AToB, packet).unwrap();
            assert_eq!(got, predicted);
            if matches!(predicted.original, Fate::Scheduled { .. }) {
                expected_out += 1;
            }
        }
        let out = std::iter::from_fn(|| relay.poll(t0)).count();
        assert_eq!(out, expected_out);
        let up = relay.stats(Direction::AToB);
        assert_eq!(up.model.dropped_loss, 300 - expected_out as u64);
        assert!((50..130).contains(&up.model.dropped_loss), "{up}");
    }

    #[test]
    fn corruption_spares_the_ip_header() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            corrupt: Probability::ONE,
            ..Default::default()
        };
        let mut relay = Relay::new(config, ImpairmentConfig::default(), 3);
        let original = tcp_v4(5, &[0u8; 100]);
        for _ in 0..100 {
            relay.offer(t0, Direction::AToB, original.clone()).unwrap();
        }
        while let Some((_, packet)) = relay.poll(t0) {
            assert_eq!(packet[..20], original[..20], "IP header changed");
            let flipped: u32 = packet
                .iter()
                .zip(&original)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1);
        }
        assert_eq!(relay.stats(Direction::AToB).model.corrupted, 100);
    }

    #[test]
    fn delay_holds_packets_until_due_and_directions_interleave_by_time() {
        let t0 = Instant::now();
        let slow = ImpairmentConfig {
            delay: Duration::from_millis(30),
            ..Default::default()
        };
        let fast = ImpairmentConfig {
            delay: Duration::from_millis(10),
            ..Default::default()
        };
        let mut relay = Relay::new(slow, fast, 1);
        relay.offer(t0, Direction::AToB, tcp_v4(0, b"x")).unwrap();
        relay.offer(t0, Direction::BToA, tcp_v4(0, b"y")).unwrap();
        assert_eq!(relay.poll(t0), None);
        assert_eq!(relay.held(), 2);
        assert_eq!(relay.next_release(), Some(t0 + Duration::from_millis(10)));
        let later = t0 + Duration::from_millis(30);
        assert_eq!(relay.poll(later).unwrap().0, Direction::BToA);
        assert_eq!(relay.poll(later).unwrap().0, Direction::AToB);
    }

    #[test]
    fn not_ip_is_counted_and_dropped() {
        let t0 = Instant::now();
        let mut relay = Relay::new(ImpairmentConfig::default(), ImpairmentConfig::default(), 1);
        assert!(relay.offer(t0, Direction::BToA, vec![0x20; 30]).is_err());
        assert_eq!(relay.poll(t0), None);
        let down = relay.stats(Direction::BToA);
        assert_eq!(
            (down.malformed, down.model.received, down.dropped()),
            (1, 0, 1)
        );
    }

    #[test]
    fn resent_bytes_count_as_retransmissions_across_sequence_wrap() {
        let t0 = Instant::now();
        let mut relay = Relay::new(ImpairmentConfig::default(), ImpairmentConfig::default(), 1);
        let start = u32::MAX - 5;
        for (seq, len) in [(start, 4), (start.wrapping_add(4), 4), (start, 4), (2, 4)] {
            relay
                .offer(t0, Direction::AToB, tcp_v4(seq, &vec![0u8; len]))
                .unwrap();
        }
        // A pure ack is not data.
        relay.offer(t0, Direction::AToB, tcp_v4(6, b"")).unwrap();
        let up = relay.stats(Direction::AToB);
        assert_eq!((up.tcp_data_segments, up.tcp_retransmissions), (4, 1));
    }

    #[test]
    fn duplicates_are_counted_once_as_data_and_forwarded_twice() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            duplicate: Probability::ONE,
            ..Default::default()
        };
        let mut relay = Relay::new(config, ImpairmentConfig::default(), 1);
        relay.offer(t0, Direction::AToB, tcp_v4(0, b"abc")).unwrap();
        assert_eq!(std::iter::from_fn(|| relay.poll(t0)).count(), 2);
        let up = relay.stats(Direction::AToB);
        assert_eq!((up.model.duplicated, up.model.forwarded), (1, 2));
        assert_eq!((up.tcp_data_segments, up.tcp_retransmissions), (1, 0));
    }
}
