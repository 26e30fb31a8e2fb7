//! What a TCP segment on the simulator's links says, in one line: flags, sequence and
//! acknowledgement numbers, payload length, window, SACK blocks.
//!
//! The TCP endpoint puts bare TCP segments on the links (the IP header is left off, as the UDP
//! and IP headers are for raw and reliable mode, so bytes on the wire compare like for like; see
//! [`super`]). A bare segment does not say it is one, so a datagram is taken for a segment only
//! if its TCP checksum holds over the pseudo-header of the simulator's two addresses
//! ([`crate::sim::ADDR_A`] and [`crate::sim::ADDR_B`], either way): random or corrupted bytes
//! pass that 16-bit check about once in 65 536, and a udpchat datagram is tried as one first.
//! Sequence numbers are shown as they are on the wire (absolute), as the ladder and the trace
//! need no state to print them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use smoltcp::wire::{IpAddress, TcpPacket};

use crate::sim::{ADDR_A, ADDR_B};

/// A TCP segment's header, as the describers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentSummary {
    /// Flags set, in `SFRPA` order (`S` SYN, `F` FIN, `R` RST, `P` PSH, `A` ACK), e.g. `"SA"`.
    pub flags: String,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number, when the ACK flag is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<u32>,
    /// Payload bytes.
    pub len: usize,
    /// Advertised window (unscaled, as in the header).
    pub window: u16,
    /// SACK blocks, `(left, right)` with `right` exclusive, as carried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sack: Vec<(u32, u32)>,
}

impl SegmentSummary {
    /// True if the segment carries payload or a SYN or FIN (it occupies sequence space).
    pub fn occupies_sequence(&self) -> bool {
        self.len > 0 || self.flags.contains('S') || self.flags.contains('F')
    }

    /// True if it carries payload.
    pub fn carries_data(&self) -> bool {
        self.len > 0
    }
}

impl fmt::Display for SegmentSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp [{}] seq={}", self.flags, self.seq)?;
        if let Some(ack) = self.ack {
            write!(f, " ack={ack}")?;
        }
        write!(f, " len={} win={}", self.len, self.window)?;
        for (i, (left, right)) in self.sack.iter().enumerate() {
            let sep = if i == 0 { " sack=" } else { "," };
            write!(f, "{sep}{left}-{right}")?;
        }
        Ok(())
    }
}

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    }
}

/// The segment `datagram` holds, if it is a TCP segment between the simulator's two addresses
/// (checksum verified); `None` otherwise.
pub fn parse(datagram: &[u8]) -> Option<SegmentSummary> {
    let packet = TcpPacket::new_checked(datagram).ok()?;
    let (a, b) = (v4(ADDR_A.ip())?, v4(ADDR_B.ip())?);
    let (a, b) = (IpAddress::Ipv4(a), IpAddress::Ipv4(b));
    if !packet.verify_checksum(&a, &b) && !packet.verify_checksum(&b, &a) {
        return None;
    }
    let flags: String = [
        (packet.syn(), 'S'),
        (packet.fin(), 'F'),
        (packet.rst(), 'R'),
        (packet.psh(), 'P'),
        (packet.ack(), 'A'),
    ]
    .into_iter()
    .filter_map(|(set, c)| set.then_some(c))
    .collect();
    let sack = packet
        .selective_ack_ranges()
        .ok()?
        .into_iter()
        .flatten()
        .collect();
    Some(SegmentSummary {
        flags,
        seq: packet.seq_number().0 as u32,
        ack: packet.ack().then(|| packet.ack_number().0 as u32),
        len: packet.payload().len(),
        window: packet.window_len(),
        sack,
    })
}
