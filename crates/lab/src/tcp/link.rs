//! The device smoltcp sends through and receives from: two queues of IP packets that the
//! endpoint fills from, and empties onto, the simulator's links.
//!
//! smoltcp's interface speaks IP (`Medium::Ip`, as a TUN device does). On the links only the TCP
//! segment travels: [`Wire::strip`] takes the IPv4 header off what smoltcp sends, and
//! [`Wire::wrap`] puts one back on what arrives (source: the address the datagram came from,
//! destination: our own), with its checksum, so smoltcp checks the TCP checksum against the same
//! pseudo-header the sender used. Nothing here reads a clock.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN};

/// The queues between smoltcp and the endpoint.
#[derive(Debug)]
pub struct Wire {
    /// IP packets that arrived, for smoltcp to take.
    inbound: VecDeque<Vec<u8>>,
    /// IP packets smoltcp sent, for the endpoint to put on the link.
    outbound: VecDeque<Vec<u8>>,
    /// Largest IP packet smoltcp may send: the segment size plus the header left off.
    ip_mtu: usize,
}

/// Why an arrived segment could not be handed to smoltcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl Wire {
    /// Queues with room for segments of up to `max_segment` bytes (TCP header included).
    pub fn new(max_segment: usize) -> Wire {
        Wire {
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
            ip_mtu: max_segment + IPV4_HEADER_LEN,
        }
    }

    /// Puts an IPv4 header (from `src` to `dst`, protocol TCP) on `segment` and queues it for
    /// smoltcp.
    pub fn wrap(&mut self, src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> Result<(), TooLarge> {
        let total = IPV4_HEADER_LEN + segment.len();
        if total > usize::from(u16::MAX) {
            return Err(TooLarge);
        }
        let mut packet = vec![0u8; total];
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: segment.len(),
            hop_limit: 64,
        };
        let mut view = Ipv4Packet::new_unchecked(&mut packet[..]);
        repr.emit(&mut view, &ChecksumCapabilities::default());
        packet[IPV4_HEADER_LEN..].copy_from_slice(segment);
        self.inbound.push_back(packet);
        Ok(())
    }

    /// The next IP packet smoltcp sent, with its IPv4 header taken off: the TCP segment and the
    /// destination address. Packets that are not IPv4 carrying TCP (smoltcp sends none) are
    /// skipped.
    pub fn strip(&mut self) -> Option<(Ipv4Addr, Vec<u8>)> {
        while let Some(packet) = self.outbound.pop_front() {
            let Ok(view) = Ipv4Packet::new_checked(&packet[..]) else {
                continue;
            };
            if view.next_header() != IpProtocol::Tcp {
                continue;
            }
            let dst = view.dst_addr();
            let header = usize::from(view.header_len());
            let end = usize::from(view.total_len()).min(packet.len());
            return Some((dst, packet.get(header..end)?.to_vec()));
        }
        None
    }

    /// True if smoltcp sent something not yet taken.
    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }
}

/// A packet handed to smoltcp.
pub struct Rx(Vec<u8>);

/// Room for one packet from smoltcp.
pub struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut packet = vec![0u8; len];
        let result = f(&mut packet);
        self.0.push_back(packet);
        result
    }
}

impl phy::Device for Wire {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: SmolInstant) -> Option<(Rx, Tx<'_>)> {
        let packet = self.inbound.pop_front()?;
        Some((Rx(packet), Tx(&mut self.outbound)))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.outbound))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.ip_mtu;
        caps
    }
}
