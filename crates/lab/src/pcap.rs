//! Captures for Wireshark: datagrams written as a pcapng (or classic pcap) file, each wrapped in
//! a synthesized IP and UDP header, with what the impaired link did to it as the packet's comment.
//!
//! One writer for every place that sees datagrams (the chat, the proxy, the simulator), so they
//! all produce the same kind of file. It is sans-IO in the lab's sense: it writes to any
//! [`std::io::Write`] and **never reads a clock**. Every packet comes with its timestamp, a
//! [`Duration`] since an epoch the caller chooses: the Unix epoch for real traffic (Wireshark then
//! shows wall-clock times), the start of the run for the simulator's virtual time (Wireshark shows
//! 1970-01-01 00:00:00 plus the virtual time, and `frame.time_relative` is exact to the
//! nanosecond).
//!
//! Choices, and why:
//! - **pcapng by default** ([`Format::PcapNg`]): it is the only one of the two formats with
//!   per-packet comments, and the standard one (an `opt_comment` option on the Enhanced Packet
//!   Block), which Wireshark shows in the packet tree as the `frame.comment` field (inside a
//!   `pkt_comment` layer in `tshark -T json`) and filters on (`frame.comment contains "dropped"`).
//!   Classic pcap ([`Format::Pcap`]) is there for tools that read nothing else; it carries no
//!   comment, so the fates are lost in it.
//! - **Link type `LINKTYPE_RAW` (101)** with a synthesized IPv4 or IPv6 header and a UDP header
//!   rather than the payload alone: Wireshark then shows addresses and ports, and a UDP-port
//!   dissector (`udp.port == 2323` → udpchat) applies. Raw IP says the version in the packet's
//!   first nibble, so IPv4 and IPv6 datagrams share one interface. The headers are complete and
//!   correct: IPv4 header checksum and UDP checksum over the pseudo-header (RFC 768, RFC 8200
//!   §8.1), TTL/hop limit 64, no fragmentation. A mixed pair (an IPv4 address talking to an IPv6
//!   one, as on a dual-stack socket) is written as IPv6 with the IPv4 address mapped
//!   (`::ffff:a.b.c.d`).
//! - **TCP segments** (the simulator's `tcp` modes, [`crate::tcp`]) travel the links without an
//!   IP header; one is recognised by its TCP checksum over the pseudo-header of the datagram's own
//!   addresses (and by not starting with udpchat's magic), and written under an IPv4 header with
//!   protocol 6 instead of inside a UDP header, so Wireshark dissects it as the TCP it is.
//! - **Nanosecond timestamps** in both formats (`if_tsresol = 9` in pcapng, the `0xa1b23c4d`
//!   magic in classic pcap), because simulated time is exact and a microsecond would merge events.
//! - **No crate**: both formats are a few fixed little-endian blocks, and no pcap crate
//!   synthesizes the IP/UDP headers, which are most of the work here.
//!
//! Limits, checked and reported as [`PcapError`]: a payload must fit a UDP datagram over IPv4
//! (65,507 bytes) or IPv6 without jumbograms (65,527); a comment must fit a pcapng option
//! (65,535 bytes); a timestamp must fit the format (pcapng: 2^64 ns, about 584 years; classic:
//! 2^32 s, the year 2106).

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use thiserror::Error;

use crate::impairment::DropCause;

/// `LINKTYPE_RAW`: each packet starts with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u16 = 101;

/// Largest UDP payload in an IPv4 packet: 65,535 minus the 20-byte IP and 8-byte UDP headers.
pub const MAX_PAYLOAD_V4: usize = 65_535 - 20 - 8;
/// Largest UDP payload in an IPv6 packet without jumbograms: the UDP length field is 16 bits.
pub const MAX_PAYLOAD_V6: usize = 65_535 - 8;

const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const TTL: u8 = 64;
const PROTO_UDP: u8 = 17;
const PROTO_TCP: u8 = 6;

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// pcapng: one section, one raw-IP interface, nanosecond timestamps, per-packet comments.
    #[default]
    PcapNg,
    /// Classic libpcap, nanosecond variant: no comments.
    Pcap,
}

/// Why a packet or the file could not be written.
#[derive(Debug, Error)]
pub enum PcapError {
    /// Writing to the output failed.
    #[error("cannot write the capture: {0}")]
    Io(#[from] io::Error),
    /// The payload does not fit a UDP datagram of its IP version.
    #[error("a {len}-byte payload does not fit a UDP datagram over IPv{version} (at most {max})")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// 4 or 6.
        version: u8,
        /// The largest that fits.
        max: usize,
    },
    /// The comment does not fit a pcapng option.
    #[error("a {len}-byte comment does not fit a pcapng option (at most 65535)")]
    CommentTooLong {
        /// The comment's length.
        len: usize,
    },
    /// The timestamp does not fit the format.
    #[error("the timestamp {0:?} does not fit the capture format")]
    TimeOutOfRange(Duration),
}

/// What the network did with a datagram, written as the packet's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketFate {
    /// Passed on unharmed (as far as the capture point knows).
    Delivered,
    /// Dropped, for this reason.
    Dropped(DropCause),
    /// An extra copy made by the link.
    Duplicated,
    /// Held back by the link for this long beyond the moment it was sent.
    Delayed(Duration),
    /// This many bits flipped on the way.
    Corrupted {
        /// How many.
        bits: u32,
    },
}

impl fmt::Display for PacketFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketFate::Delivered => f.write_str("delivered"),
            PacketFate::Dropped(cause) => write!(f, "dropped ({cause})"),
            PacketFate::Duplicated => f.write_str("duplicated (extra copy)"),
            PacketFate::Delayed(by) => write!(f, "delayed {:.3} ms", by.as_secs_f64() * 1e3),
            PacketFate::Corrupted { bits } => write!(f, "corrupted ({bits} bits flipped)"),
        }
    }
}

/// One datagram to write.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// When it was seen, since the caller's epoch (see the module documentation).
    pub time: Duration,
    /// Its source address and port.
    pub from: SocketAddr,
    /// Its destination address and port.
    pub to: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
    /// What became of it; the first part of the comment.
    pub fate: Option<PacketFate>,
    /// Anything else worth saying about it (e.g. "arrived after a later one"); the comment's
    /// second part.
    pub note: Option<&'a str>,
}

impl Datagram<'_> {
    /// The packet comment: the fate, then the note, joined by `"; "`. `None` if neither.
    pub fn comment(&self) -> Option<String> {
        match (self.fate, self.note) {
            (Some(fate), Some(note)) => Some(format!("{fate}; {note}")),
            (Some(fate), None) => Some(fate.to_string()),
            (None, Some(note)) => Some(note.to_owned()),
            (None, None) => None,
        }
    }
}

/// Writes a capture to `W`: the file header at creation, then one record per [`write`] call.
///
/// [`write`]: PcapWriter::write
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    format: Format,
    packets: u64,
    /// The next IPv4 identification field: a counter, as a host's stack would write.
    ip_id: u16,
    /// Reused for each packet's bytes.
    buf: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// Starts a capture: writes the file header(s) to `out`.
    pub fn new(out: W, format: Format) -> Result<Self, PcapError> {
        PcapWriter::with_comment(out, format, None)
    }

    /// Like [`PcapWriter::new`], with a comment on the whole capture (pcapng's section comment,
    /// `shb_comment`: Wireshark shows it under Statistics > Capture File Properties, and
    /// `capinfos` prints it). Classic pcap has nowhere to put it.
    pub fn with_comment(
        mut out: W,
        format: Format,
        comment: Option<&str>,
    ) -> Result<Self, PcapError> {
        if let Some(c) = comment.filter(|c| c.len() > usize::from(u16::MAX)) {
            return Err(PcapError::CommentTooLong { len: c.len() });
        }
        let mut head = Vec::new();
        match format {
            Format::PcapNg => {
                section_header(&mut head, comment);
                interface_description(&mut head);
            }
            Format::Pcap => classic_header(&mut head),
        }
        out.write_all(&head)?;
        Ok(PcapWriter {
            out,
            format,
            packets: 0,
            ip_id: 0,
            buf: Vec::new(),
        })
    }

    /// Writes one datagram. Nothing is written if it is refused.
    pub fn write(&mut self, datagram: &Datagram<'_>) -> Result<(), PcapError> {
        let mut packet = std::mem::take(&mut self.buf);
        packet.clear();
        let built = ip_udp_packet(&mut packet, datagram, self.ip_id).and_then(|()| {
            let mut record = Vec::with_capacity(packet.len() + 64);
            match self.format {
                Format::PcapNg => enhanced_packet(&mut record, datagram, &packet)?,
                Format::Pcap => classic_record(&mut record, datagram.time, &packet)?,
            }
            Ok(record)
        });
        self.buf = packet;
        let record = built?;
        self.out.write_all(&record)?;
        self.ip_id = self.ip_id.wrapping_add(1);
        self.packets += 1;
        Ok(())
    }

    /// How many datagrams were written.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        Ok(self.out.flush()?)
    }

    /// Flushes and returns the output.
    pub fn into_inner(mut self) -> Result<W, PcapError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Appends the IP header, UDP header and payload of `d` to `out` (or, for a TCP segment, the IP
/// header and the segment).
fn ip_udp_packet(out: &mut Vec<u8>, d: &Datagram<'_>, ip_id: u16) -> Result<(), PcapError> {
    let (src, dst) = (d.from.ip(), d.to.ip());
    let len = d.payload.len();
    if let (IpAddr::V4(s), IpAddr::V4(t)) = (src, dst) {
        if is_tcp_segment(d.payload, s, t) {
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&((IPV4_HEADER + len) as u16).to_be_bytes());
            out.extend_from_slice(&ip_id.to_be_bytes());
            out.extend_from_slice(&[0, 0, TTL, PROTO_TCP, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&t.octets());
            let check = checksum(&[&out[..IPV4_HEADER]]);
            out[10..12].copy_from_slice(&check.to_be_bytes());
            out.extend_from_slice(d.payload);
            return Ok(());
        }
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            if len > MAX_PAYLOAD_V4 {
                return Err(too_large(len, 4));
            }
            let total = (IPV4_HEADER + UDP_HEADER + len) as u16;
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]); // version 4, 5 words of header; no DSCP/ECN
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&ip_id.to_be_bytes());
            out.extend_from_slice(&[0, 0, TTL, PROTO_UDP, 0, 0]); // no flags, offset 0
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&t.octets());
            let check = checksum(&[&out[start..]]);
            out[start + 10..start + 12].copy_from_slice(&check.to_be_bytes());
            let pseudo = pseudo_header(&s.octets(), &t.octets(), (UDP_HEADER + len) as u32);
            udp(out, &pseudo, d);
        }
        _ => {
            if len > MAX_PAYLOAD_V6 {
                return Err(too_large(len, 6));
            }
            let (s, t) = (as_v6(src).octets(), as_v6(dst).octets());
            let udp_len = (UDP_HEADER + len) as u16;
            out.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class, no flow label
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[PROTO_UDP, TTL]);
            out.extend_from_slice(&s);
            out.extend_from_slice(&t);
            let pseudo = pseudo_header(&s, &t, u32::from(udp_len));
            udp(out, &pseudo, d);
        }
    }
    Ok(())
}

/// Whether `payload`, sent from `src` to `dst`, is a TCP segment: not a udpchat datagram, and its
/// TCP checksum holds over their pseudo-header.
fn is_tcp_segment(payload: &[u8], src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr) -> bool {
    use smoltcp::wire::{IpAddress, TcpPacket};
    if payload.starts_with(&udpchat_core::MAGIC) || payload.len() > MAX_PAYLOAD_V4 {
        return false;
    }
    TcpPacket::new_checked(payload)
        .is_ok_and(|p| p.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)))
}

fn too_large(len: usize, version: u8) -> PcapError {
    let max = if version == 4 {
        MAX_PAYLOAD_V4
    } else {
        MAX_PAYLOAD_V6
    };
    PcapError::TooLarge { len, version, max }
}

/// An address as IPv6, an IPv4 one mapped (`::ffff:a.b.c.d`).
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The UDP checksum's pseudo-header: addresses, protocol, UDP length. IPv4's (RFC 768) and
/// IPv6's (RFC 8200 §8.1) differ in field widths but sum to the same one's-complement value for
/// the same numbers, so one layout serves both.
fn pseudo_header(src: &[u8], dst: &[u8], udp_len: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, PROTO_UDP]);
    p
}

/// Appends the UDP header (with its checksum) and the payload.
fn udp(out: &mut Vec<u8>, pseudo: &[u8], d: &Datagram<'_>) {
    let start = out.len();
    let len = (UDP_HEADER + d.payload.len()) as u16;
    out.extend_from_slice(&d.from.port().to_be_bytes());
    out.extend_from_slice(&d.to.port().to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(d.payload);
    // A computed zero is sent as all ones: zero means "no checksum" (RFC 768), which IPv6 forbids.
    let check = match checksum(&[pseudo, &out[start..]]) {
        0 => 0xffff,
        c => c,
    };
    out[start + 6..start + 8].copy_from_slice(&check.to_be_bytes());
}

/// The Internet checksum (RFC 1071) of the concatenation of `parts`: the one's complement of the
/// one's-complement sum of 16-bit big-endian words, an odd last byte padded with zero. Every part
/// but the last must have an even length (true of the headers it is used on).
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut words = part.chunks_exact(2);
        for w in &mut words {
            sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            sum += u64::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Appends a pcapng block: type, total length, body (padded to 4 bytes), total length again.
fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().next_multiple_of(4);
    let total = (12 + padded) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend_from_slice(&total.to_le_bytes());
}

/// Appends a pcapng option (code, length, value padded to 4 bytes). `value` must fit 16 bits.
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + value.len().next_multiple_of(4) - value.len(), 0);
}

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;

/// The Section Header Block: little-endian, version 1.0, length unknown, written by udpchat.
fn section_header(out: &mut Vec<u8>, comment: Option<&str>) {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    if let Some(comment) = comment {
        option(&mut body, OPT_COMMENT, comment.as_bytes());
    }
    option(&mut body, 4, b"udpchat"); // shb_userappl
    option(&mut body, OPT_END, &[]);
    block(out, SHB, &body);
}

/// The one Interface Description Block: raw IP, no snap length, nanosecond timestamps.
fn interface_description(out: &mut Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    option(&mut body, 2, b"udpchat"); // if_name
    option(&mut body, 9, &[9]); // if_tsresol: 10^-9 s
    option(&mut body, OPT_END, &[]);
    block(out, IDB, &body);
}

/// An Enhanced Packet Block for `packet`, with the datagram's comment if it has one.
fn enhanced_packet(out: &mut Vec<u8>, d: &Datagram<'_>, packet: &[u8]) -> Result<(), PcapError> {
    let nanos = u64::try_from(d.time.as_nanos()).map_err(|_| PcapError::TimeOutOfRange(d.time))?;
    let comment = d.comment();
    if let Some(c) = &comment {
        if c.len() > usize::from(u16::MAX) {
            return Err(PcapError::CommentTooLong { len: c.len() });
        }
    }
    let mut body = Vec::with_capacity(packet.len() + 32);
    body.extend_from_slice(&0u32.to_le_bytes()); // interface 0
    body.extend_from_slice(&((nanos >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(nanos as u32).to_le_bytes());
    let len = packet.len() as u32;
    body.extend_from_slice(&len.to_le_bytes()); // captured
    body.extend_from_slice(&len.to_le_bytes()); // on the wire
    body.extend_from_slice(packet);
    body.resize(body.len().next_multiple_of(4), 0);
    if let Some(c) = comment {
        option(&mut body, OPT_COMMENT, c.as_bytes());
        option(&mut body, OPT_END, &[]);
    }
    block(out, EPB, &body);
    Ok(())
}

/// The classic file header: nanosecond magic, version 2.4, libpcap's largest snap length (above
/// any IPv6 packet here), raw IP.
fn classic_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&u32::from(LINKTYPE_RAW).to_le_bytes());
}

/// A classic record: seconds, nanoseconds, captured and original length, the packet.
fn classic_record(out: &mut Vec<u8>, time: Duration, packet: &[u8]) -> Result<(), PcapError> {
    let secs = u32::try_from(time.as_secs()).map_err(|_| PcapError::TimeOutOfRange(time))?;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&time.subsec_nanos().to_le_bytes());
    let len = packet.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(packet);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A packet as a minimal reader finds it in the file.
    #[derive(Debug)]
    struct Read {
        nanos: u64,
        data: Vec<u8>,
        comment: Option<String>,
    }

    fn u16le(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }
    fn u32le(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u16be(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// The options of a pcapng block body from `at`: (code, value).
    fn options(body: &[u8], mut at: usize) -> Vec<(u16, Vec<u8>)> {
        let mut found = Vec::new();
        while at + 4 <= body.len() {
            let (code, len) = (u16le(body, at), usize::from(u16le(body, at + 2)));
            if code == OPT_END {
                break;
            }
            found.push((code, body[at + 4..at + 4 + len].to_vec()));
            at += 4 + len.next_multiple_of(4);
        }
        found
    }

    /// Reads a pcapng file as this writer makes it, checking the framing of every block.
    fn read_pcapng(file: &[u8]) -> Vec<Read> {
        let mut packets = Vec::new();
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < file.len() {
            let kind = u32le(file, at);
            let total = u32le(file, at + 4) as usize;
            assert_eq!(total % 4, 0);
            assert_eq!(
                u32le(file, at + total - 4) as usize,
                total,
                "trailing length"
            );
            let body = &file[at + 8..at + total - 4];
            kinds.push(kind);
            match kind {
                SHB => {
                    assert_eq!(u32le(body, 0), 0x1a2b_3c4d);
                    assert_eq!((u16le(body, 4), u16le(body, 6)), (1, 0));
                }
                IDB => {
                    assert_eq!(u16le(body, 0), LINKTYPE_RAW);
                    let opts = options(body, 8);
                    assert!(opts.contains(&(9, vec![9])), "nanosecond resolution");
                }
                EPB => {
                    assert_eq!(u32le(body, 0), 0);
                    let nanos = (u64::from(u32le(body, 4)) << 32) | u64::from(u32le(body, 8));
                    let (cap, orig) = (u32le(body, 12) as usize, u32le(body, 16) as usize);
                    assert_eq!(cap, orig);
                    let data = body[20..20 + cap].to_vec();
                    let comment = options(body, 20 + cap.next_multiple_of(4))
                        .into_iter()
                        .find(|(c, _)| *c == OPT_COMMENT)
                        .map(|(_, v)| String::from_utf8(v).unwrap());
                    packets.push(Read {
                        nanos,
                        data,
                        comment,
                    });
                }
                other => panic!("unexpected block {other:#x}"),
            }
            at += total;
        }
        assert_eq!(at, file.len());
        assert_eq!(&kinds[..2], &[SHB, IDB]);
        packets
    }

    fn read_classic(file: &[u8]) -> Vec<Read> {
        assert_eq!(u32le(file, 0), 0xa1b2_3c4d, "nanosecond magic");
        assert_eq!((u16le(file, 4), u16le(file, 6)), (2, 4));
        assert_eq!(u32le(file, 20), u32::from(LINKTYPE_RAW));
        let mut at = 24;
        let mut packets = Vec::new();
        while at < file.len() {
            let nanos = u64::from(u32le(file, at)) * 1_000_000_000 + u64::from(u32le(file, at + 4));
            let (cap, orig) = (u32le(file, at + 8) as usize, u32le(file, at + 12) as usize);
            assert_eq!(cap, orig);
            packets.push(Read {
                nanos,
                data: file[at + 16..at + 16 + cap].to_vec(),
                comment: None,
            });
            at += 16 + cap;
        }
        packets
    }

    /// The one's-complement sum of `bytes` (a valid checksummed region sums to 0xffff).
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        !checksum(parts)
    }

    /// Checks the IP and UDP headers of `data` and returns (src, dst, payload).
    fn parse_ip_udp(data: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
        match data[0] >> 4 {
            4 => {
                assert_eq!(data[0], 0x45);
                assert_eq!(usize::from(u16be(data, 2)), data.len(), "total length");
                assert_eq!((data[8], data[9]), (64, 17), "ttl, protocol");
                assert_eq!(ones_sum(&[&data[..20]]), 0xffff, "IPv4 header checksum");
                let src: [u8; 4] = data[12..16].try_into().unwrap();
                let dst: [u8; 4] = data[16..20].try_into().unwrap();
                let udp = &data[20..];
                assert_eq!(usize::from(u16be(udp, 4)), udp.len(), "UDP length");
                // RFC 768 pseudo-header: src, dst, zero, protocol, UDP length.
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&src);
                pseudo.extend_from_slice(&dst);
                pseudo.extend_from_slice(&[0, 17]);
                pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
                assert_ne!(u16be(udp, 6), 0);
                assert_eq!(ones_sum(&[&pseudo, udp]), 0xffff, "UDP checksum");
                (
                    SocketAddr::from((src, u16be(udp, 0))),
                    SocketAddr::from((dst, u16be(udp, 2))),
                    udp[8..].to_vec(),
                )
            }
            6 => {
                assert_eq!(
                    usize::from(u16be(data, 4)),
                    data.len() - 40,
                    "payload length"
                );
                assert_eq!((data[6], data[7]), (17, 64), "next header, hop limit");
                let src: [u8; 16] = data[8..24].try_into().unwrap();
                let dst: [u8; 16] = data[24..40].try_into().unwrap();
                let udp = &data[40..];
                assert_eq!(usize::from(u16be(udp, 4)), udp.len());
                // RFC 8200 §8.1: src, dst, 32-bit length, three zero bytes, next header.
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&src);
                pseudo.extend_from_slice(&dst);
                pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 17]);
                assert_eq!(ones_sum(&[&pseudo, udp]), 0xffff, "UDP checksum");
                (
                    SocketAddr::from((src, u16be(udp, 0))),
                    SocketAddr::from((dst, u16be(udp, 2))),
                    udp[8..].to_vec(),
                )
            }
            v => panic!("IP version {v}"),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Three datagrams: one delivered, one dropped with a note, one delayed with an odd length.
    fn sample() -> Vec<(Datagram<'static>, &'static str)> {
        let (a, b) = (addr("10.0.0.1:2323"), addr("10.0.0.2:40000"));
        vec![
            (
                Datagram {
                    time: Duration::from_millis(20),
                    from: a,
                    to: b,
                    payload: b"hello",
                    fate: Some(PacketFate::Delivered),
                    note: None,
                },
                "delivered",
            ),
            (
                Datagram {
                    time: Duration::new(3, 123_456_789),
                    from: b,
                    to: a,
                    payload: b"ack",
                    fate: Some(PacketFate::Dropped(DropCause::BurstLoss)),
                    note: Some("ack 7"),
                },
                "dropped (burst_loss); ack 7",
            ),
            (
                Datagram {
                    time: Duration::new(4_000_000_000, 1),
                    from: addr("[2001:db8::1]:2323"),
                    to: addr("[2001:db8::2]:2323"),
                    payload: b"odd-length payload",
                    fate: Some(PacketFate::Delayed(Duration::from_micros(12_500))),
                    note: None,
                },
                "delayed 12.500 ms",
            ),
        ]
    }

    #[test]
    fn internet_checksum_matches_a_known_header() {
        // A textbook IPv4 header (192.168.0.1 -> 192.168.0.199, UDP, 115 bytes) whose checksum
        // field holds 0xb861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&[&header]), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&[&header]), 0);
        // An odd trailing byte counts as the high half of a word.
        assert_eq!(checksum(&[&[0x01]]), !0x0100);
    }

    #[test]
    fn pcapng_round_trips_headers_lengths_timestamps_and_comments() {
        let mut w = PcapWriter::new(Vec::new(), Format::PcapNg).unwrap();
        for (d, _) in sample() {
            w.write(&d).unwrap();
        }
        assert_eq!(w.packets(), 3);
        let file = w.into_inner().unwrap();
        let read = read_pcapng(&file);
        assert_eq!(read.len(), 3);
        for (r, (d, comment)) in read.iter().zip(sample()) {
            assert_eq!(u128::from(r.nanos), d.time.as_nanos());
            let (from, to, payload) = parse_ip_udp(&r.data);
            assert_eq!((from, to), (d.from, d.to));
            assert_eq!(payload, d.payload);
            let header = if d.from.is_ipv4() { 28 } else { 48 };
            assert_eq!(r.data.len(), header + d.payload.len());
            assert_eq!(r.comment.as_deref(), Some(comment));
        }
        // IPv4 identification counts packets, as a stack would.
        assert_eq!(u16be(&read[0].data, 4), 0);
        assert_eq!(u16be(&read[1].data, 4), 1);
    }

    /// A TCP segment of the simulator's TCP mode is written under an IPv4 header with protocol 6,
    /// not inside UDP; a udpchat datagram between the same addresses stays UDP.
    #[test]
    fn a_tcp_segment_is_written_as_tcp() {
        use udpchat_reliable::Endpoint;
        let (a, b) = (crate::sim::ADDR_A, crate::sim::ADDR_B);
        let config = crate::tcp::TcpConfig::new(a);
        let mut tcp = crate::tcp::TcpEndpoint::connect(config, b, 1).unwrap();
        let mut syn = Vec::new();
        let epoch = std::time::Instant::now();
        assert_eq!(tcp.poll_transmit(epoch, &mut syn), Some(b));
        let udp = udpchat_core::encode(
            &udpchat_core::Packet::Ping {
                dst: udpchat_core::ConnectionId(1),
            },
            1200,
        )
        .unwrap();
        let mut w = PcapWriter::new(Vec::new(), Format::Pcap).unwrap();
        for payload in [&syn, &udp] {
            w.write(&Datagram {
                time: Duration::ZERO,
                from: a,
                to: b,
                payload,
                fate: None,
                note: None,
            })
            .unwrap();
        }
        let read = read_classic(&w.into_inner().unwrap());
        assert_eq!(read[0].data[9], PROTO_TCP);
        assert_eq!(&read[0].data[20..], &syn[..]);
        assert_eq!(checksum(&[&read[0].data[..20]]), 0, "header checksum");
        assert_eq!(read[1].data[9], PROTO_UDP);
    }

    #[test]
    fn a_packet_without_fate_or_note_has_no_comment() {
        let mut w = PcapWriter::new(Vec::new(), Format::PcapNg).unwrap();
        let d = Datagram {
            note: None,
            fate: None,
            ..sample()[0].0
        };
        w.write(&d).unwrap();
        let read = read_pcapng(&w.into_inner().unwrap());
        assert_eq!(read[0].comment, None);
        assert_eq!(
            Datagram {
                fate: None,
                note: Some("late"),
                ..d
            }
            .comment()
            .as_deref(),
            Some("late")
        );
    }

    #[test]
    fn classic_pcap_round_trips_everything_but_comments() {
        let mut w = PcapWriter::new(Vec::new(), Format::Pcap).unwrap();
        // The classic format's seconds end in 2106: the third sample's 4e9 s is the last that fits.
        for (d, _) in sample() {
            w.write(&d).unwrap();
        }
        let read = read_classic(&w.into_inner().unwrap());
        assert_eq!(read.len(), 3);
        for (r, (d, _)) in read.iter().zip(sample()) {
            assert_eq!(u128::from(r.nanos), d.time.as_nanos());
            let (from, to, payload) = parse_ip_udp(&r.data);
            assert_eq!((from, to, payload.as_slice()), (d.from, d.to, d.payload));
        }
    }

    #[test]
    fn a_mixed_family_pair_is_written_as_ipv6_with_a_mapped_address() {
        let mut w = PcapWriter::new(Vec::new(), Format::PcapNg).unwrap();
        let d = Datagram {
            from: addr("127.0.0.1:5000"),
            to: addr("[::1]:6000"),
            ..sample()[0].0
        };
        w.write(&d).unwrap();
        let read = read_pcapng(&w.into_inner().unwrap());
        let (from, to, _) = parse_ip_udp(&read[0].data);
        assert_eq!(from, addr("[::ffff:127.0.0.1]:5000"));
        assert_eq!(to, addr("[::1]:6000"));
    }

    #[test]
    fn a_udp_checksum_that_comes_out_zero_is_sent_as_all_ones() {
        // Find a payload whose checksum computes to zero by choosing its last two bytes: the
        // checksum is the complement of the sum, so make the sum (without them) plus them 0xffff.
        let (from, to) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        let mut payload = vec![0u8, 0];
        let d = |p: &[u8]| -> Vec<u8> {
            let datagram = Datagram {
                time: Duration::ZERO,
                from,
                to,
                payload: p,
                fate: None,
                note: None,
            };
            let mut out = Vec::new();
            ip_udp_packet(&mut out, &datagram, 0).unwrap();
            out
        };
        let zeroed = d(&payload);
        let mut udp = zeroed[20..].to_vec();
        udp[6..8].copy_from_slice(&[0, 0]);
        let pseudo = pseudo_header(&[10, 0, 0, 1], &[10, 0, 0, 2], udp.len() as u32);
        let sum = !checksum(&[&pseudo, &udp]);
        payload.copy_from_slice(&(0xffff - sum).to_be_bytes());
        let packet = d(&payload);
        assert_eq!(u16be(&packet, 26), 0xffff);
        parse_ip_udp(&packet);
    }

    #[test]
    fn what_does_not_fit_is_refused_and_nothing_is_written() {
        let mut w = PcapWriter::new(Vec::new(), Format::PcapNg).unwrap();
        let big = vec![0u8; MAX_PAYLOAD_V4 + 1];
        let d = Datagram {
            payload: &big,
            ..sample()[0].0
        };
        assert!(matches!(
            w.write(&d),
            Err(PcapError::TooLarge { version: 4, .. })
        ));
        let fits = vec![0u8; MAX_PAYLOAD_V4];
        w.write(&Datagram {
            payload: &fits,
            ..d
        })
        .unwrap();
        let v6 = Datagram {
            from: addr("[::1]:1"),
            to: addr("[::1]:2"),
            payload: &big,
            ..d
        };
        w.write(&v6).unwrap();
        let long = "x".repeat(70_000);
        assert!(matches!(
            w.write(&Datagram {
                note: Some(&long),
                ..sample()[0].0
            }),
            Err(PcapError::CommentTooLong { .. })
        ));
        assert_eq!(w.packets(), 2);
        assert_eq!(read_pcapng(&w.into_inner().unwrap()).len(), 2);

        let mut classic = PcapWriter::new(Vec::new(), Format::Pcap).unwrap();
        let late = Datagram {
            time: Duration::from_secs(u64::from(u32::MAX) + 1),
            ..sample()[0].0
        };
        assert!(matches!(
            classic.write(&late),
            Err(PcapError::TimeOutOfRange(_))
        ));
        assert_eq!(classic.into_inner().unwrap().len(), 24);
    }

    #[test]
    fn fates_read_as_words() {
        assert_eq!(
            PacketFate::Duplicated.to_string(),
            "duplicated (extra copy)"
        );
        assert_eq!(
            PacketFate::Corrupted { bits: 3 }.to_string(),
            "corrupted (3 bits flipped)"
        );
        assert_eq!(
            PacketFate::Dropped(DropCause::Loss).to_string(),
            "dropped (loss)"
        );
    }
}
