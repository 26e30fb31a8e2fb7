//! A checked view of the IP packets a TUN device hands over: just enough of IPv4, IPv6 and TCP to
//! protect the IP header from corruption and to count what crosses the relay.
//!
//! In the style of smoltcp's `wire` module: [`IpPacket::parse`] validates lengths before any field
//! is read and returns a small typed error, never panics, and allocates nothing. The relay needs
//! three facts of a packet: where the IP header ends (corruption flips bits only after it, see
//! [`crate::relay`]), which transport protocol it carries, and, for TCP, the sequence number and
//! payload length of the segment (to count data segments and retransmissions as seen on the wire),
//! and its flags (a SYN gives the stream's initial sequence number).
//! IPv6 extension headers are not walked: they count as payload, so an IPv6 packet with extension
//! headers may have one of them corrupted (and is then dropped by the receiving kernel, as a
//! corrupted segment is), and its transport is reported as the first next-header value.

use std::net::IpAddr;

use thiserror::Error;

/// IANA protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// The SYN bit of a TCP segment's flags.
pub const TCP_SYN: u8 = 0x02;
/// The ACK bit of a TCP segment's flags.
pub const TCP_ACK: u8 = 0x10;

/// Why bytes from a TUN device are not an IP packet the relay can forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Shorter than the fixed part of its IP header.
    #[error("packet of {len} B is shorter than an IP header")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// The version nibble is neither 4 nor 6.
    #[error("IP version {0} is neither 4 nor 6")]
    UnknownVersion(u8),
    /// An IPv4 header length (IHL) below 5 words or beyond the packet.
    #[error("IPv4 header length {header_len} B does not fit a packet of {len} B")]
    BadHeaderLength {
        /// The header length the packet claims.
        header_len: usize,
        /// The packet's length.
        len: usize,
    },
}

/// A TCP segment's numbers, as far as the relay looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source and destination ports.
    pub ports: (u16, u16),
    /// The sequence number.
    pub seq: u32,
    /// The flag bits (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR from the lowest): [`TCP_SYN`]...
    pub flags: u8,
    /// Bytes of data the segment carries (0 for a pure ack).
    pub payload_len: usize,
}

/// A validated IP packet (borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket<'a> {
    bytes: &'a [u8],
    header_len: usize,
    protocol: u8,
}

impl<'a> IpPacket<'a> {
    /// Checks, in the order a reader checks by eye: length, version, header length.
    pub fn parse(bytes: &'a [u8]) -> Result<IpPacket<'a>, PacketError> {
        let len = bytes.len();
        let first = *bytes.first().ok_or(PacketError::TooShort { len })?;
        match first >> 4 {
            4 => {
                if len < 20 {
                    return Err(PacketError::TooShort { len });
                }
                let header_len = usize::from(first & 0x0f) * 4;
                if header_len < 20 || header_len > len {
                    return Err(PacketError::BadHeaderLength { header_len, len });
                }
                Ok(IpPacket {
                    bytes,
                    header_len,
                    protocol: bytes[9],
                })
            }
            6 => {
                if len < 40 {
                    return Err(PacketError::TooShort { len });
                }
                Ok(IpPacket {
                    bytes,
                    header_len: 40,
                    protocol: bytes[6],
                })
            }
            other => Err(PacketError::UnknownVersion(other)),
        }
    }

    /// Length of the IP header (IPv4 options included; IPv6: the fixed 40 bytes).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The transport protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6...).
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Source and destination addresses.
    pub fn addresses(&self) -> (IpAddr, IpAddr) {
        let b = self.bytes;
        if self.header_len == 40 && b[0] >> 4 == 6 {
            let addr = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b[at..at + 16]);
                IpAddr::from(octets)
            };
            (addr(8), addr(24))
        } else {
            let addr = |at: usize| IpAddr::from([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            (addr(12), addr(16))
        }
    }

    /// What follows the IP header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }

    /// The TCP segment this packet carries, if it is TCP with a whole TCP header.
    pub fn tcp(&self) -> Option<TcpSegment> {
        if self.protocol != PROTO_TCP {
            return None;
        }
        let t = self.payload();
        let data_offset = usize::from(*t.get(12)? >> 4) * 4;
        if data_offset < 20 || data_offset > t.len() {
            return None;
        }
        Some(TcpSegment {
            ports: (
                u16::from_be_bytes([t[0], t[1]]),
                u16::from_be_bytes([t[2], t[3]]),
            ),
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            flags: t[13],
            payload_len: t.len() - data_offset,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An IPv4 TCP segment from 10.77.0.1:40000 to 10.77.0.2:5001 carrying `payload`, no flags.
    pub(crate) fn tcp_v4(seq: u32, payload: &[u8]) -> Vec<u8> {
        tcp_v4_flags(seq, 0, payload)
    }

    /// The same with the TCP `flags` set.
    pub(crate) fn tcp_v4_flags(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        let total = (40 + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 64;
        p[9] = PROTO_TCP;
        p[12..16].copy_from_slice(&[10, 77, 0, 1]);
        p[16..20].copy_from_slice(&[10, 77, 0, 2]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&5001u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn an_ipv4_tcp_segment_is_read_field_by_field() {
        let bytes = tcp_v4(1000, b"hello");
        let p = IpPacket::parse(&bytes).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.protocol(), PROTO_TCP);
        assert_eq!(
            p.addresses(),
            ("10.77.0.1".parse().unwrap(), "10.77.0.2".parse().unwrap())
        );
        assert_eq!(
            p.tcp(),
            Some(TcpSegment {
                ports: (40000, 5001),
                seq: 1000,
                flags: 0,
                payload_len: 5
            })
        );
    }

    #[test]
    fn ipv6_has_a_fixed_header() {
        let mut bytes = vec![0u8; 48];
        bytes[0] = 0x60;
        bytes[6] = PROTO_UDP;
        let p = IpPacket::parse(&bytes).unwrap();
        assert_eq!((p.header_len(), p.protocol()), (40, PROTO_UDP));
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.tcp(), None);
    }

    #[test]
    fn bad_packets_are_typed_errors() {
        assert_eq!(IpPacket::parse(&[]), Err(PacketError::TooShort { len: 0 }));
        assert_eq!(
            IpPacket::parse(&[0x45; 10]),
            Err(PacketError::TooShort { len: 10 })
        );
        assert_eq!(
            IpPacket::parse(&[0x60; 39]),
            Err(PacketError::TooShort { len: 39 })
        );
        assert_eq!(
            IpPacket::parse(&[0x12; 40]),
            Err(PacketError::UnknownVersion(1))
        );
        let mut short_ihl = tcp_v4(0, b"");
        short_ihl[0] = 0x44;
        assert_eq!(
            IpPacket::parse(&short_ihl),
            Err(PacketError::BadHeaderLength {
                header_len: 16,
                len: 40
            })
        );
        let mut long_ihl = vec![0u8; 24];
        long_ihl[0] = 0x4f;
        assert!(matches!(
            IpPacket::parse(&long_ihl),
            Err(PacketError::BadHeaderLength { .. })
        ));
    }

    #[test]
    fn a_truncated_tcp_header_is_not_a_segment() {
        let mut bytes = tcp_v4(0, b"");
        bytes.truncate(30);
        assert_eq!(IpPacket::parse(&bytes).unwrap().tcp(), None);
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_bytes_never_panics(bytes in proptest::collection::vec(0u8..=255, 0..80)) {
            if let Ok(p) = IpPacket::parse(&bytes) {
                let _ = (p.addresses(), p.tcp(), p.payload());
            }
        }
    }
}
