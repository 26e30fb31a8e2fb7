//! [`Net`]: two endpoints, two impaired links and a virtual clock, driven step by step.
//!
//! The lab's [`udpchat_lab::sim::Simulator`] runs a fixed scenario to the end. The comparison
//! needs a little more: the chat workload echoes each message back as it arrives, the dead-peer
//! workload turns the link dark mid-run, and bulk transfers must not pay for a per-message trace.
//! So this is the same machine taken apart: the same [`Impairment`] per direction, seeded the same
//! way ([`derive_seed`] of the run's seed with labels 0 and 1, exactly as the simulator does), the
//! same "jump to the next thing that can happen" clock, but the workload holds the loop: it calls
//! [`Net::advance`] with the time of its own next action, reads the application events that came
//! out, and reacts (sends, echoes) before advancing again.
//!
//! Two link properties the lab's model does not have live here, applied equally to every system:
//! a path MTU (a datagram larger than it is dropped, as a router would with "don't fragment" set,
//! so a transport that probes for a larger MTU learns the truth) and a time after which the link
//! is dark (every datagram is lost, both ways).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_lab::impairment::{derive_seed, Impairment, ImpairmentConfig};
use udpchat_lab::sim::{Side, ADDR_A, ADDR_B};
use udpchat_reliable::{Endpoint, Event};

/// Counters of one direction, as seen by the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounters {
    /// Datagrams the sending endpoint put on the link.
    pub datagrams: u64,
    /// Their bytes (UDP payload; IP and UDP headers are not counted).
    pub bytes: u64,
    /// Datagrams larger than the path MTU, dropped.
    pub dropped_mtu: u64,
    /// Datagrams lost because the link was dark.
    pub dropped_dark: u64,
    /// Datagrams handed to the receiving endpoint.
    pub delivered: u64,
}

/// The links between A and B: their impairments and the extra properties described above.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    /// The A → B direction.
    pub a_to_b: ImpairmentConfig,
    /// The B → A direction.
    pub b_to_a: ImpairmentConfig,
    /// Largest datagram the path carries, in bytes. Default 1200 (every system is configured for
    /// 1200-byte datagrams; QUIC's path MTU discovery probes above it and finds nothing).
    pub mtu: usize,
    /// From this time after the start, every datagram is lost. Default never.
    pub dark_after: Option<Duration>,
    /// Seed of both directions' randomness.
    pub seed: u64,
}

impl LinkSpec {
    /// The same impairment both ways, the default MTU, never dark.
    pub fn symmetric(config: ImpairmentConfig, seed: u64) -> LinkSpec {
        LinkSpec {
            a_to_b: config.clone(),
            b_to_a: config,
            mtu: 1200,
            dark_after: None,
            seed,
        }
    }
}

/// Two endpoints joined by two impaired links. `a` lives at [`ADDR_A`], `b` at [`ADDR_B`].
#[derive(Debug)]
pub struct Net<A, B> {
    /// Endpoint A.
    pub a: A,
    /// Endpoint B.
    pub b: B,
    a_to_b: Impairment<()>,
    b_to_a: Impairment<()>,
    mtu: usize,
    dark_at: Option<Instant>,
    epoch: Instant,
    now: Instant,
    events: Vec<(Side, Event)>,
    wire_a_to_b: WireCounters,
    wire_b_to_a: WireCounters,
    steps: u64,
}

impl<A: Endpoint, B: Endpoint> Net<A, B> {
    /// Joins `a` and `b` with `links`; virtual time starts at `epoch` (endpoints built with
    /// instants of their own must take them from the same epoch).
    pub fn new(epoch: Instant, links: LinkSpec, a: A, b: B) -> Net<A, B> {
        Net {
            a,
            b,
            a_to_b: Impairment::new(links.a_to_b, derive_seed(links.seed, 0)),
            b_to_a: Impairment::new(links.b_to_a, derive_seed(links.seed, 1)),
            mtu: links.mtu,
            dark_at: links.dark_after.map(|d| epoch + d),
            epoch,
            now: epoch,
            events: Vec::new(),
            wire_a_to_b: WireCounters::default(),
            wire_b_to_a: WireCounters::default(),
            steps: 0,
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// The instant `offset` after the start.
    pub fn at(&self, offset: Duration) -> Instant {
        self.epoch + offset
    }

    /// Clock steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// What went over the wire from `side`.
    pub fn wire(&self, side: Side) -> WireCounters {
        match side {
            Side::A => self.wire_a_to_b,
            Side::B => self.wire_b_to_a,
        }
    }

    /// The application events that came out since the last call, in order.
    pub fn take_events(&mut self) -> Vec<(Side, Event)> {
        std::mem::take(&mut self.events)
    }

    /// Moves everything the endpoints want to send onto the links, then jumps the clock to the
    /// earliest of `until` and the next thing that can happen (a datagram leaving a link, an
    /// endpoint's timer), never past `limit`, and does what is due then. Returns false, without
    /// moving, if nothing can happen before `limit` and `until` is `None` (the run is idle).
    pub fn advance(&mut self, until: Option<Instant>, limit: Instant) -> bool {
        self.flush();
        let next = [
            until,
            self.a.poll_timeout(),
            self.b.poll_timeout(),
            self.a_to_b.next_release(),
            self.b_to_a.next_release(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { return false };
        if next > limit {
            self.now = self.now.max(limit);
            return false;
        }
        self.steps += 1;
        // A timer in the past fires now: the clock never goes backwards.
        self.now = self.now.max(next);
        let now = self.now;
        let dark = self.is_dark();
        while let Some(released) = self.a_to_b.poll(now) {
            if dark {
                self.wire_a_to_b.dropped_dark += 1;
                continue;
            }
            self.wire_a_to_b.delivered += 1;
            self.b.handle_datagram(now, ADDR_A, &released.bytes);
        }
        while let Some(released) = self.b_to_a.poll(now) {
            if dark {
                self.wire_b_to_a.dropped_dark += 1;
                continue;
            }
            self.wire_b_to_a.delivered += 1;
            self.a.handle_datagram(now, ADDR_B, &released.bytes);
        }
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
        }
        if self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
        }
        self.flush();
        true
    }

    fn is_dark(&self) -> bool {
        self.dark_at.is_some_and(|at| self.now >= at)
    }

    /// Puts every pending datagram on its link and collects application events.
    pub fn flush(&mut self) {
        let now = self.now;
        let dark = self.is_dark();
        while let Some(t) = self.a.poll_transmit_owned(now) {
            carry(
                &mut self.a_to_b,
                &mut self.wire_a_to_b,
                now,
                self.mtu,
                dark,
                t.destination,
                ADDR_B,
                t.payload,
            );
        }
        while let Some(t) = self.b.poll_transmit_owned(now) {
            carry(
                &mut self.b_to_a,
                &mut self.wire_b_to_a,
                now,
                self.mtu,
                dark,
                t.destination,
                ADDR_A,
                t.payload,
            );
        }
        while let Some(event) = self.a.poll_event() {
            self.events.push((Side::A, event));
        }
        while let Some(event) = self.b.poll_event() {
            self.events.push((Side::B, event));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn carry(
    link: &mut Impairment<()>,
    wire: &mut WireCounters,
    now: Instant,
    mtu: usize,
    dark: bool,
    to: SocketAddr,
    expected: SocketAddr,
    payload: Vec<u8>,
) {
    wire.datagrams += 1;
    wire.bytes += payload.len() as u64;
    if to != expected {
        // Addressed to nobody on this network: it goes nowhere, like a real stray datagram.
        return;
    }
    if payload.len() > mtu {
        wire.dropped_mtu += 1;
        return;
    }
    if dark {
        wire.dropped_dark += 1;
        return;
    }
    link.offer(now, (), payload);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use udpchat_reliable::{RawConfig, RawEndpoint};

    fn raw(peer: SocketAddr) -> RawEndpoint {
        RawEndpoint::new(RawConfig {
            peer: Some(peer),
            ..RawConfig::default()
        })
    }

    #[test]
    fn a_message_crosses_with_the_link_delay_and_is_counted() {
        let epoch = Instant::now();
        let config = ImpairmentConfig {
            delay: Duration::from_millis(30),
            ..Default::default()
        };
        let mut net = Net::new(
            epoch,
            LinkSpec::symmetric(config, 1),
            raw(ADDR_B),
            raw(ADDR_A),
        );
        net.a.send(epoch, "hello").unwrap();
        let limit = epoch + Duration::from_secs(1);
        let mut seen = None;
        while net.advance(None, limit) {
            for (side, event) in net.take_events() {
                if let (Side::B, Event::Message { text, .. }) = (side, event) {
                    seen = Some((text, net.elapsed()));
                }
            }
        }
        assert_eq!(seen, Some(("hello".to_owned(), Duration::from_millis(30))));
        assert_eq!(net.wire(Side::A).datagrams, 1);
        assert_eq!(net.wire(Side::A).delivered, 1);
    }

    #[test]
    fn a_dark_link_and_a_small_mtu_drop_everything_they_should() {
        let epoch = Instant::now();
        let mut links = LinkSpec::symmetric(ImpairmentConfig::default(), 1);
        links.dark_after = Some(Duration::from_millis(10));
        links.mtu = 200;
        let mut net = Net::new(epoch, links, raw(ADDR_B), raw(ADDR_A));
        net.a.send(epoch, "fits").unwrap();
        net.a.send(epoch, &"x".repeat(300)).unwrap();
        let later = epoch + Duration::from_millis(20);
        while net.now() < later {
            net.advance(Some(later), epoch + Duration::from_secs(1));
        }
        net.a.send(net.now(), "too late").unwrap();
        while net.advance(None, epoch + Duration::from_secs(1)) {}
        let wire = net.wire(Side::A);
        assert_eq!(wire.datagrams, 3);
        assert_eq!(wire.dropped_mtu, 1);
        assert_eq!(wire.dropped_dark, 1);
        assert_eq!(wire.delivered, 1);
    }
}
