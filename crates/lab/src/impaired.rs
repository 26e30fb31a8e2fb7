//! [`ImpairedEndpoint`]: any endpoint, seen through a bad network of its own.
//!
//! It wraps an [`Endpoint`] and is one: outgoing datagrams pass through an [`Impairment`] before
//! `poll_transmit` hands them out, and (optionally) incoming ones pass through another before the
//! inner endpoint sees them. `poll_timeout` is the earliest of the inner endpoint's timer and the
//! impairments' next release, so whatever drives an endpoint (the tokio driver, the simulator)
//! drives the impairment too, with no change. This is how `udpchat chat --loss 30%` works
//! without a proxy.

use std::net::SocketAddr;
use std::time::Instant;

use udpchat_reliable::endpoint::NickError;
use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats};

use crate::impairment::{derive_seed, Impairment, ImpairmentConfig, ImpairmentStats};

/// Label for [`derive_seed`]: the outgoing direction's stream.
const OUTGOING: u64 = 0;
/// Label for [`derive_seed`]: the incoming direction's stream.
const INCOMING: u64 = 1;

/// An endpoint whose traffic goes through impairments.
#[derive(Debug)]
pub struct ImpairedEndpoint<E> {
    inner: E,
    outgoing: Impairment<SocketAddr>,
    incoming: Option<Impairment<SocketAddr>>,
}

impl<E: Endpoint> ImpairedEndpoint<E> {
    /// Impairs `inner`'s outgoing datagrams with `outgoing` and, if given, its incoming ones with
    /// `incoming`. Each direction draws from its own stream of `seed`.
    pub fn new(
        inner: E,
        outgoing: ImpairmentConfig,
        incoming: Option<ImpairmentConfig>,
        seed: u64,
    ) -> ImpairedEndpoint<E> {
        ImpairedEndpoint {
            inner,
            outgoing: Impairment::new(outgoing, derive_seed(seed, OUTGOING)),
            incoming: incoming.map(|c| Impairment::new(c, derive_seed(seed, INCOMING))),
        }
    }

    /// The wrapped endpoint.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Counters of the outgoing impairment.
    pub fn outgoing_stats(&self) -> &ImpairmentStats {
        self.outgoing.stats()
    }

    /// Counters of the incoming impairment, if there is one.
    pub fn incoming_stats(&self) -> Option<&ImpairmentStats> {
        self.incoming.as_ref().map(Impairment::stats)
    }

    /// Hands incoming datagrams that are due by `now` to the inner endpoint.
    fn release_incoming(&mut self, now: Instant) {
        if let Some(incoming) = &mut self.incoming {
            while let Some(released) = incoming.poll(now) {
                self.inner
                    .handle_datagram(now, released.tag, &released.bytes);
            }
        }
    }
}

impl<E: Endpoint> Endpoint for ImpairedEndpoint<E> {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        self.inner.send(now, text)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match &mut self.incoming {
            None => self.inner.handle_datagram(now, from, datagram),
            Some(incoming) => {
                incoming.offer(now, from, datagram.to_vec());
                self.release_incoming(now);
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        while let Some(transmit) = self.inner.poll_transmit_owned(now) {
            self.outgoing
                .offer(now, transmit.destination, transmit.payload);
        }
        let released = self.outgoing.poll(now)?;
        *buf = released.bytes;
        Some(released.tag)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.inner.poll_timeout(),
            self.outgoing.next_release(),
            self.incoming.as_ref().and_then(Impairment::next_release),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn timer_name(&self) -> Option<&'static str> {
        // The inner endpoint's timer when it is the earliest (ties go to it: it fires too);
        // otherwise a datagram the impairment held is due.
        let due = self.poll_timeout()?;
        if self.inner.poll_timeout() == Some(due) {
            self.inner.timer_name()
        } else {
            Some("impairment release")
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.release_incoming(now);
        // Our timeout may have been an impairment's release: only wake the inner endpoint when
        // its own timer is due.
        if self.inner.poll_timeout().is_some_and(|t| t <= now) {
            self.inner.handle_timeout(now);
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.inner.poll_event()
    }

    fn close(&mut self, now: Instant) {
        self.inner.close(now);
    }

    fn finish(&mut self, now: Instant) {
        self.inner.finish(now);
    }

    /// Closed once the inner endpoint is and every delayed outgoing datagram has left.
    fn is_closed(&self) -> bool {
        self.inner.is_closed() && self.outgoing.is_empty()
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.inner.peer()
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }

    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        self.inner.set_nick(nick)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::probability::Probability;
    use crate::test_endpoint::LineEndpoint;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn outgoing_delay_shows_in_poll_timeout_and_release() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            delay: Duration::from_millis(40),
            ..Default::default()
        };
        let mut ep = ImpairedEndpoint::new(LineEndpoint::new(Some(addr(2))), config, None, 1);
        ep.send(t0, "hi").unwrap();
        assert!(ep.poll_transmit_owned(t0).is_none());
        assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_millis(40)));
        assert_eq!(ep.timer_name(), Some("impairment release"));
        ep.close(t0);
        assert!(!ep.is_closed(), "closed with a datagram still on the wire");
        let later = t0 + Duration::from_millis(40);
        ep.handle_timeout(later);
        let t = ep.poll_transmit_owned(later).unwrap();
        assert_eq!(
            (t.destination, t.payload.as_slice()),
            (addr(2), &b"0:hi"[..])
        );
        assert!(ep.is_closed());
        assert_eq!(ep.outgoing_stats().forwarded, 1);
    }

    #[test]
    fn the_inner_endpoints_timer_keeps_its_name() {
        let t0 = Instant::now();
        let inner = LineEndpoint::new(Some(addr(2))).heartbeat(t0, Duration::from_millis(10), 1);
        let ep = ImpairedEndpoint::new(inner, ImpairmentConfig::default(), None, 1);
        assert_eq!(ep.timer_name(), Some("heartbeat"));
    }

    #[test]
    fn outgoing_loss_drops_what_the_inner_endpoint_sent() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            loss: Probability::ONE,
            ..Default::default()
        };
        let mut ep = ImpairedEndpoint::new(LineEndpoint::new(Some(addr(2))), config, None, 1);
        for _ in 0..5 {
            ep.send(t0, "x").unwrap();
        }
        assert!(ep.poll_transmit_owned(t0).is_none());
        assert_eq!(
            ep.stats().datagrams_sent,
            5,
            "the inner endpoint did send them"
        );
        assert_eq!(ep.outgoing_stats().dropped_loss, 5);
    }

    #[test]
    fn incoming_delay_holds_datagrams_until_their_timeout() {
        let t0 = Instant::now();
        let incoming = ImpairmentConfig {
            delay: Duration::from_millis(25),
            ..Default::default()
        };
        let mut ep = ImpairedEndpoint::new(
            LineEndpoint::new(None),
            ImpairmentConfig::default(),
            Some(incoming),
            1,
        );
        ep.handle_datagram(t0, addr(3), b"0:hello");
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_millis(25)));
        ep.handle_timeout(t0 + Duration::from_millis(25));
        assert!(matches!(ep.poll_event(), Some(Event::Message { text, .. }) if text == "hello"));
        assert_eq!(ep.incoming_stats().unwrap().forwarded, 1);
    }

    #[test]
    fn nick_changes_reach_the_inner_endpoint() {
        let mut ep = ImpairedEndpoint::new(
            LineEndpoint::new(None),
            ImpairmentConfig::default(),
            None,
            1,
        );
        assert_eq!(ep.set_nick("carol"), Ok(()));
        assert_eq!(ep.inner().nick, "carol");
    }

    #[test]
    fn an_impaired_endpoint_runs_in_the_simulator_like_any_other() {
        use crate::sim::{Scenario, Side, Simulator, ADDR_A, ADDR_B};
        // A's own 100% outgoing loss, on perfect simulated links: B hears nothing, A hears B.
        let scenario = Scenario::new(1)
            .messages_every(Side::A, "a", Duration::ZERO, Duration::from_millis(1), 10)
            .messages_every(Side::B, "b", Duration::ZERO, Duration::from_millis(1), 10);
        let a = ImpairedEndpoint::new(
            LineEndpoint::new(Some(ADDR_B)),
            ImpairmentConfig {
                loss: Probability::ONE,
                ..Default::default()
            },
            None,
            1,
        );
        let out = Simulator::new(scenario, a, LineEndpoint::new(Some(ADDR_A))).run();
        assert_eq!(out.summary.a_to_b.delivered, 0);
        assert_eq!(out.summary.b_to_a.delivered, 10);
        assert_eq!(out.a.outgoing_stats().dropped_loss, 10);
    }

    #[test]
    fn perfect_incoming_passes_straight_through() {
        let t0 = Instant::now();
        let mut ep = ImpairedEndpoint::new(
            LineEndpoint::new(None),
            ImpairmentConfig::default(),
            Some(ImpairmentConfig::default()),
            1,
        );
        ep.handle_datagram(t0, addr(3), b"0:now");
        assert!(matches!(ep.poll_event(), Some(Event::Message { text, .. }) if text == "now"));
        assert_eq!(ep.poll_timeout(), None);
    }
}
