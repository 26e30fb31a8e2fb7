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
//!
//! **What is logged, on request.** With [`Relay::log_stream`], the relay also keeps a
//! [`StreamLog`] of the first TCP connection A opens: each A→B data segment it releases towards
//! B, when, and which bytes of the stream it carries (offsets from A's SYN). That is what a
//! kernel TCP run needs for its head-of-line figure (when each message had come out of the link
//! whole, [`udpchat_lab::experiment::hol::from_stream`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use udpchat_lab::{derive_seed, Fate, Impairment, ImpairmentConfig, ImpairmentStats, Verdict};

use crate::packet::{IpPacket, PacketError, TCP_ACK, TCP_SYN};

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

/// Most segments a [`StreamLog`] keeps. A lab run sends at most a few thousand messages, about a
/// segment each plus resends, so this is far above any run while bounding the log (24 bytes a
/// segment: under a MiB) whatever crosses a long-lived relay. Past it the log stops, and frames
/// beyond its end have no arrival (they are not measured).
pub const MAX_LOGGED_SEGMENTS: usize = 32_768;

/// A data segment of the logged stream, as the relay released it towards B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedSegment {
    /// When the relay released it (and wrote it to B's device).
    pub at: Instant,
    /// Offset of its first byte in the stream: 0 is the byte after A's SYN.
    pub start: u64,
    /// Bytes of data it carries.
    pub len: u64,
}

/// The A→B data segments of one TCP connection (the first whose SYN A sent) that the relay let
/// through, in release order, resends and duplicates included.
#[derive(Debug, Clone, Default)]
pub struct StreamLog {
    /// The connection, and the sequence number of its first data byte (A's ISN + 1).
    flow: Option<(FlowKey, u32)>,
    segments: Vec<LoggedSegment>,
    /// Offer numbers of packets that had a copy corrupted: B's kernel drops a corrupted copy on
    /// its checksum, and the model does not say which copy was hit, so neither copy is logged
    /// (conservative: an arrival can only seem later than it was).
    corrupted: HashSet<u64>,
    /// True once [`MAX_LOGGED_SEGMENTS`] was reached: nothing more is logged.
    full: bool,
    /// True if the last packet released was logged (undone if the device refuses it).
    last_logged: bool,
}

impl StreamLog {
    /// The segments, in release order.
    pub fn segments(&self) -> &[LoggedSegment] {
        &self.segments
    }

    /// True if the log stopped at [`MAX_LOGGED_SEGMENTS`].
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Notes A's SYN, if `packet` (offered on A→B) is the first.
    fn offered(&mut self, packet: &IpPacket<'_>) {
        if let Some(segment) = packet.tcp() {
            if self.flow.is_none() && segment.flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
                // Data starts one past the SYN's sequence number.
                self.flow = Some((flow_key(packet, &segment), segment.seq.wrapping_add(1)));
            }
        }
    }

    /// Notes the corrupted copies of a packet offered on A→B.
    fn judged(&mut self, verdict: &Verdict) {
        if self.flow.is_none() {
            return;
        }
        let corrupted = |fate: &Fate| matches!(fate, Fate::Scheduled { corrupted_bits, .. } if *corrupted_bits > 0);
        if corrupted(&verdict.original) || verdict.duplicate.as_ref().is_some_and(corrupted) {
            if self.corrupted.len() < MAX_LOGGED_SEGMENTS {
                self.corrupted.insert(verdict.index);
            } else {
                // It could no longer tell a corrupted copy from an intact one.
                self.full = true;
            }
        }
    }

    /// Logs a packet released on A→B at `now`, if it is data of the connection.
    fn released(&mut self, now: Instant, bytes: &[u8], index: u64) {
        self.last_logged = false;
        let Some((flow, base)) = self.flow else {
            return;
        };
        if self.full || self.corrupted.contains(&index) {
            return;
        }
        let Ok(packet) = IpPacket::parse(bytes) else {
            return;
        };
        let Some(segment) = packet.tcp() else { return };
        if segment.payload_len == 0 || flow_key(&packet, &segment) != flow {
            return;
        }
        if self.segments.len() >= MAX_LOGGED_SEGMENTS {
            self.full = true;
            return;
        }
        // Sequence numbers wrap at 2^32: the offset is their difference, modulo 2^32.
        self.segments.push(LoggedSegment {
            at: now,
            start: u64::from(segment.seq.wrapping_sub(base)),
            len: segment.payload_len as u64,
        });
        self.last_logged = true;
    }

    /// The last packet released never reached B: unlog it.
    fn refused(&mut self) {
        if std::mem::take(&mut self.last_logged) {
            self.segments.pop();
        }
    }
}

fn flow_key(packet: &IpPacket<'_>, segment: &crate::packet::TcpSegment) -> FlowKey {
    let (src, dst) = packet.addresses();
    (src, dst, segment.ports.0, segment.ports.1)
}

/// Both directions of the relay.
#[derive(Debug)]
pub struct Relay {
    lanes: [Lane; 2],
    /// The A→B stream log, when asked for.
    log: Option<StreamLog>,
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
            log: None,
        }
    }

    /// From now on, keeps a [`StreamLog`] of A's first TCP connection (its SYN must come after
    /// this call).
    pub fn log_stream(&mut self) {
        self.log.get_or_insert_with(StreamLog::default);
    }

    /// The stream log, if [`Relay::log_stream`] asked for one.
    pub fn stream_log(&self) -> Option<&StreamLog> {
        self.log.as_ref()
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
        let ip = match IpPacket::parse(&packet) {
            Ok(ip) => ip,
            Err(e) => {
                lane.stats.malformed += 1;
                return Err(e);
            }
        };
        lane.count_tcp(&ip);
        let header_len = ip.header_len();
        let log = match from {
            Direction::AToB => self.log.as_mut(),
            Direction::BToA => None,
        };
        if let Some(log) = log {
            // Before the model takes the packet (and may corrupt it).
            log.offered(&ip);
            let verdict = lane.model.offer_protecting(now, (), packet, header_len);
            log.judged(&verdict);
            Ok(verdict)
        } else {
            Ok(lane.model.offer_protecting(now, (), packet, header_len))
        }
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
        if let (Some(log), Direction::AToB) = (&mut self.log, due.1) {
            log.released(now, &released.bytes, released.index);
        }
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
        if let (Some(log), Direction::AToB) = (&mut self.log, direction) {
            log.refused();
        }
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
    use crate::packet::tests::{tcp_v4, tcp_v4_flags};

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

    /// The offsets and release times (ms after `t0`) a relay's stream log holds.
    fn logged(relay: &Relay, t0: Instant) -> Vec<(u64, u64, u64)> {
        let log = relay.stream_log().unwrap();
        log.segments()
            .iter()
            .map(|s| (s.at.duration_since(t0).as_millis() as u64, s.start, s.len))
            .collect()
    }

    #[test]
    fn the_stream_log_holds_released_data_by_offset_from_the_syn_across_the_wrap() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let delayed = ImpairmentConfig {
            delay: ms(5),
            ..Default::default()
        };
        let mut relay = Relay::new(delayed, ImpairmentConfig::default(), 1);
        assert!(relay.stream_log().is_none());
        relay.log_stream();
        let isn = u32::MAX - 2;
        relay
            .offer(t0, Direction::AToB, tcp_v4_flags(isn, TCP_SYN, b""))
            .unwrap();
        // Data of another connection (another source port) is not logged, nor its SYN.
        let mut other = tcp_v4_flags(5, TCP_SYN, b"");
        other[20..22].copy_from_slice(&40001u16.to_be_bytes());
        relay.offer(t0, Direction::AToB, other.clone()).unwrap();
        other[33] = 0;
        other.extend_from_slice(b"other");
        relay.offer(t0, Direction::AToB, other).unwrap();
        // B's SYN-ACK and acks travel the other way: not logged.
        relay
            .offer(
                t0,
                Direction::BToA,
                tcp_v4_flags(99, TCP_SYN | TCP_ACK, b""),
            )
            .unwrap();
        let first = isn.wrapping_add(1);
        // Offsets 0..4 (sequence numbers u32::MAX - 1 to 1), 4..8, a pure ack, then 0..4 again.
        relay
            .offer(t0 + ms(1), Direction::AToB, tcp_v4(first, b"abcd"))
            .unwrap();
        relay
            .offer(
                t0 + ms(2),
                Direction::AToB,
                tcp_v4(first.wrapping_add(4), b"efgh"),
            )
            .unwrap();
        relay
            .offer(
                t0 + ms(3),
                Direction::AToB,
                tcp_v4_flags(first.wrapping_add(8), TCP_ACK, b""),
            )
            .unwrap();
        relay
            .offer(t0 + ms(4), Direction::AToB, tcp_v4(first, b"abcd"))
            .unwrap();
        // Released late by the poll (the relay's loop was busy): the log has the poll's time.
        let polled = std::iter::from_fn(|| relay.poll(t0 + ms(20))).count();
        assert_eq!(polled, 8);
        assert_eq!(logged(&relay, t0), vec![(20, 0, 4), (20, 4, 4), (20, 0, 4)]);
        assert!(!relay.stream_log().unwrap().is_full());
    }

    #[test]
    fn a_lost_segment_is_not_logged_and_a_refused_one_is_unlogged() {
        let t0 = Instant::now();
        let mut relay = Relay::new(lossy(0.5), ImpairmentConfig::default(), 5);
        relay.log_stream();
        // The SYN may be lost: the connection is known from the segment offered, whatever its fate.
        relay
            .offer(t0, Direction::AToB, tcp_v4_flags(0, TCP_SYN, b""))
            .unwrap();
        let mut through = Vec::new();
        for i in 0..40u32 {
            let verdict = relay
                .offer(t0, Direction::AToB, tcp_v4(1 + i * 10, &[0u8; 10]))
                .unwrap();
            if matches!(verdict.original, Fate::Scheduled { .. }) {
                through.push((0, u64::from(i) * 10, 10));
            }
        }
        while relay.poll(t0).is_some() {}
        assert!((5..35).contains(&through.len()), "{through:?}");
        assert_eq!(logged(&relay, t0), through);
        // Offered until the model lets one through; B's device then refuses it.
        while !matches!(
            relay
                .offer(t0, Direction::AToB, tcp_v4(401, b"x"))
                .unwrap()
                .original,
            Fate::Scheduled { .. }
        ) {}
        assert_eq!(relay.poll(t0).map(|(d, _)| d), Some(Direction::AToB));
        assert_eq!(logged(&relay, t0).len(), through.len() + 1);
        relay.count_write_error(Direction::AToB);
        assert_eq!(
            logged(&relay, t0),
            through,
            "a refused segment never reached B"
        );
    }

    #[test]
    fn a_corrupted_copy_is_not_logged() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            corrupt: Probability::new(0.5).unwrap(),
            ..Default::default()
        };
        let mut relay = Relay::new(config, ImpairmentConfig::default(), 2);
        relay.log_stream();
        relay
            .offer(t0, Direction::AToB, tcp_v4_flags(0, TCP_SYN, b""))
            .unwrap();
        let mut intact = Vec::new();
        for i in 0..40u32 {
            let verdict = relay
                .offer(t0, Direction::AToB, tcp_v4(1 + i * 10, &[0u8; 10]))
                .unwrap();
            if matches!(
                verdict.original,
                Fate::Scheduled {
                    corrupted_bits: 0,
                    ..
                }
            ) {
                intact.push((0, u64::from(i) * 10, 10));
            }
        }
        while relay.poll(t0).is_some() {}
        assert!((5..35).contains(&intact.len()), "{intact:?}");
        assert_eq!(logged(&relay, t0), intact);
    }

    #[test]
    fn the_stream_log_stops_at_its_bound() {
        let t0 = Instant::now();
        let mut relay = Relay::new(ImpairmentConfig::default(), ImpairmentConfig::default(), 1);
        relay.log_stream();
        relay
            .offer(t0, Direction::AToB, tcp_v4_flags(0, TCP_SYN, b""))
            .unwrap();
        for i in 0..=MAX_LOGGED_SEGMENTS as u32 {
            relay
                .offer(t0, Direction::AToB, tcp_v4(1 + i, b"x"))
                .unwrap();
            while relay.poll(t0).is_some() {}
        }
        let log = relay.stream_log().unwrap();
        assert_eq!(log.segments().len(), MAX_LOGGED_SEGMENTS);
        assert!(log.is_full());
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
