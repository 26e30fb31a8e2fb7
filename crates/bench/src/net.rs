//! The bench's links: the lab's [`Simulator`], driven step by step, with the bench's link model.
//!
//! The workloads hold the loop (the chat workload echoes each message as it arrives, the
//! dead-peer workload watches what each side is told), so they drive the simulator with its step
//! API: [`Simulator::advance_within`] with the time of their own next action, then
//! [`Simulator::take_events`], then their reactions through [`Simulator::send`]. The links are the
//! simulator's, seeded the same way for every system, with its trace off (bulk transfers must not
//! pay for a per-datagram trace) and two properties set here: a path MTU (a datagram larger than
//! it is dropped, as a router would with "don't fragment" set, so a transport that probes for a
//! larger MTU learns the truth) and a time after which the link is dark (every datagram is lost,
//! both ways).

use std::time::{Duration, Instant};

use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::sim::{Scenario, Simulator};
use udpchat_reliable::Endpoint;

pub use udpchat_lab::sim::WireCounters;

/// Two endpoints joined by two impaired links: `a` lives at [`udpchat_lab::sim::ADDR_A`], `b` at
/// [`udpchat_lab::sim::ADDR_B`].
pub type Net<A, B> = Simulator<A, B>;

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

/// Joins `a` and `b` with `links`, trace off; virtual time starts at `epoch` (endpoints built
/// with instants of their own must take them from the same epoch).
pub fn net<A: Endpoint, B: Endpoint>(epoch: Instant, links: LinkSpec, a: A, b: B) -> Net<A, B> {
    let mut scenario = Scenario::new(links.seed);
    scenario.a_to_b = links.a_to_b;
    scenario.b_to_a = links.b_to_a;
    scenario.mtu = Some(links.mtu);
    scenario.dark_after = links.dark_after;
    Simulator::starting_at(epoch, scenario, a, b).without_trace()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::SocketAddr;
    use udpchat_lab::sim::{Side, ADDR_A, ADDR_B};
    use udpchat_reliable::{Event, RawConfig, RawEndpoint};

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
        let mut net = net(
            epoch,
            LinkSpec::symmetric(config, 1),
            raw(ADDR_B),
            raw(ADDR_A),
        );
        net.send(Side::A, "hello").unwrap();
        let limit = epoch + Duration::from_secs(1);
        let mut seen = None;
        while net.advance_within(None, limit) {
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
        let mut net = net(epoch, links, raw(ADDR_B), raw(ADDR_A));
        net.send(Side::A, "fits").unwrap();
        net.send(Side::A, &"x".repeat(300)).unwrap();
        let later = epoch + Duration::from_millis(20);
        while net.now() < later {
            net.advance_within(Some(later), epoch + Duration::from_secs(1));
        }
        net.send(Side::A, "too late").unwrap();
        while net.advance_within(None, epoch + Duration::from_secs(1)) {}
        let wire = net.wire(Side::A);
        assert_eq!(wire.datagrams, 3);
        assert_eq!(wire.dropped_mtu, 1);
        assert_eq!(wire.dropped_dark, 1);
        assert_eq!(wire.delivered, 1);
    }
}
