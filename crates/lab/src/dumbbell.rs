//! A dumbbell: several endpoint pairs whose datagrams share one bottleneck, on a virtual clock.
//!
//! [`crate::sim::Simulator`] joins one pair over two links of its own; fairness needs flows that
//! compete. Here every flow's A → B datagrams enter **one** [`Impairment`] (the bottleneck: a
//! rate limit with a finite FIFO queue, tail drop, and the path's delay), tagged with their
//! flow, and every B → A datagram (acks, mostly) enters one shared return link. So a flow that
//! fills the queue delays and drops the other's datagrams exactly as a router's queue would, and
//! which flow gets how much of the link is decided by the transports alone.
//!
//! Flows are isolated otherwise: flow `i`'s B only ever hears from flow `i`'s A, at
//! [`ADDR_A`] (and A from B at [`ADDR_B`]), so any endpoint built for the simulator works here
//! unchanged. A flow starts at a time of its own ([`Dumbbell::add_flow`]): its endpoints are
//! not polled before it, as if the program had not run yet. The step API is the simulator's
//! ([`Dumbbell::advance_within`], [`Dumbbell::take_events`], [`Dumbbell::endpoint_mut`]), and
//! everything is a function of the seed: both links draw from it, nothing reads a clock.

use std::time::{Duration, Instant};

use udpchat_reliable::{Endpoint, Event};

use crate::impairment::{derive_seed, Impairment, ImpairmentConfig, ImpairmentStats};
use crate::sim::{Side, ADDR_A, ADDR_B};

/// The two shared links of a dumbbell.
#[derive(Debug, Clone, PartialEq)]
pub struct DumbbellConfig {
    /// Every flow's A → B datagrams: the bottleneck (give it a `rate` and a `queue`).
    pub forward: ImpairmentConfig,
    /// Every flow's B → A datagrams.
    pub reverse: ImpairmentConfig,
    /// Largest datagram the path carries, both ways; a larger one is dropped (as a router does
    /// with "don't fragment" set), so a transport that probes for a larger MTU learns the truth.
    /// `None`: no limit.
    pub mtu: Option<usize>,
    /// Seed of both links' randomness.
    pub seed: u64,
}

/// A flow's index, as [`Dumbbell::add_flow`] returns it and events name it.
pub type FlowId = usize;

/// Counters of one flow on the shared links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowWire {
    /// Datagrams A offered to the bottleneck.
    pub offered: u64,
    /// Datagrams the bottleneck delivered to B.
    pub delivered: u64,
    /// Bytes the bottleneck delivered to B.
    pub delivered_bytes: u64,
    /// Datagrams (either way) dropped for being larger than the path's MTU.
    pub dropped_mtu: u64,
}

#[derive(Debug)]
struct Flow<E> {
    a: E,
    b: E,
    start: Instant,
    wire: FlowWire,
}

impl<E: Endpoint> Flow<E> {
    fn started(&self, now: Instant) -> bool {
        now >= self.start
    }

    fn endpoint(&mut self, side: Side) -> &mut E {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// The earliest of its endpoints' timers, or its start.
    fn wakeup(&self, now: Instant) -> Option<Instant> {
        if !self.started(now) {
            return Some(self.start);
        }
        [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Dumbbell<E> {
    epoch: Instant,
    now: Instant,
    flows: Vec<Flow<E>>,
    forward: Impairment<FlowId>,
    reverse: Impairment<FlowId>,
    events: Vec<(FlowId, Side, Event)>,
    mtu: usize,
    buf: Vec<u8>,
}

impl<E: Endpoint> Dumbbell<E> {
    /// A dumbbell with no flows yet; virtual time starts at `epoch`.
    pub fn new(epoch: Instant, config: DumbbellConfig) -> Dumbbell<E> {
        Dumbbell {
            epoch,
            now: epoch,
            flows: Vec::new(),
            forward: Impairment::new(config.forward, derive_seed(config.seed, 0)),
            reverse: Impairment::new(config.reverse, derive_seed(config.seed, 1)),
            events: Vec::new(),
            mtu: config.mtu.unwrap_or(usize::MAX),
            buf: Vec::new(),
        }
    }

    /// Adds a flow from `a` (which talks to [`ADDR_B`]) to `b`, starting `start` after the
    /// epoch; returns its id (0, 1, ... in the order added).
    pub fn add_flow(&mut self, start: Duration, a: E, b: E) -> FlowId {
        self.flows.push(Flow {
            a,
            b,
            start: self.epoch + start,
            wire: FlowWire::default(),
        });
        self.flows.len() - 1
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the epoch.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// True once `flow` has started. `None` if there is no such flow.
    pub fn started(&self, flow: FlowId) -> Option<bool> {
        self.flows.get(flow).map(|f| f.started(self.now))
    }

    /// One endpoint of a flow, for the workload to hand it messages. `None` if there is no such
    /// flow. What it queues goes out at the next step.
    pub fn endpoint_mut(&mut self, flow: FlowId, side: Side) -> Option<&mut E> {
        self.flows.get_mut(flow).map(|f| f.endpoint(side))
    }

    /// A flow's counters on the bottleneck.
    pub fn wire(&self, flow: FlowId) -> Option<FlowWire> {
        self.flows.get(flow).map(|f| f.wire)
    }

    /// The bottleneck's own counters (queue drops among them).
    pub fn bottleneck(&self) -> &ImpairmentStats {
        self.forward.stats()
    }

    /// The application events since the last call, with their flow and side, in order.
    pub fn take_events(&mut self) -> Vec<(FlowId, Side, Event)> {
        std::mem::take(&mut self.events)
    }

    /// The step of a workload: hands every started endpoint's pending datagrams to the links,
    /// then advances to the earlier of `next_action` and the next thing that can happen (a
    /// datagram leaving a link, a timer, a flow starting), never past `limit`, and runs it.
    /// Returns false if nothing could happen by `limit` (the clock is then at `limit`).
    pub fn advance_within(&mut self, next_action: Option<Instant>, limit: Instant) -> bool {
        self.flush();
        let next = [
            next_action,
            self.forward.next_release(),
            self.reverse.next_release(),
        ]
        .into_iter()
        .chain(self.flows.iter().map(|f| f.wakeup(self.now)))
        .flatten()
        .min();
        match next {
            Some(next) if next <= limit => {
                self.now = self.now.max(next);
                self.deliver();
                self.fire_timers();
                self.flush();
                true
            }
            _ => {
                self.now = self.now.max(limit);
                false
            }
        }
    }

    /// Offers every started endpoint's datagrams to its link and collects its events.
    fn flush(&mut self) {
        let now = self.now;
        for (id, flow) in self.flows.iter_mut().enumerate() {
            if !flow.started(now) {
                continue;
            }
            while flow.a.poll_transmit(now, &mut self.buf).is_some() {
                flow.wire.offered += 1;
                if self.buf.len() > self.mtu {
                    flow.wire.dropped_mtu += 1;
                } else {
                    self.forward.offer(now, id, self.buf.clone());
                }
            }
            while flow.b.poll_transmit(now, &mut self.buf).is_some() {
                if self.buf.len() > self.mtu {
                    flow.wire.dropped_mtu += 1;
                } else {
                    self.reverse.offer(now, id, self.buf.clone());
                }
            }
            for side in [Side::A, Side::B] {
                while let Some(event) = flow.endpoint(side).poll_event() {
                    self.events.push((id, side, event));
                }
            }
        }
    }

    /// Hands every datagram due by now to its flow's receiving endpoint.
    fn deliver(&mut self) {
        let now = self.now;
        while let Some(released) = self.forward.poll(now) {
            if let Some(flow) = self.flows.get_mut(released.tag) {
                flow.wire.delivered += 1;
                flow.wire.delivered_bytes += released.bytes.len() as u64;
                flow.b.handle_datagram(now, ADDR_A, &released.bytes);
            }
        }
        while let Some(released) = self.reverse.poll(now) {
            if let Some(flow) = self.flows.get_mut(released.tag) {
                flow.a.handle_datagram(now, ADDR_B, &released.bytes);
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for flow in self.flows.iter_mut().filter(|f| f.started(now)) {
            for side in [Side::A, Side::B] {
                let endpoint = flow.endpoint(side);
                if endpoint.poll_timeout().is_some_and(|at| at <= now) {
                    endpoint.handle_timeout(now);
                }
            }
        }
    }
}

/// Jain's fairness index of `shares`, `(Σx)² / (n · Σx²)`: 1 when all are equal, `1/n` when one
/// takes everything. `None` for no values, or when all are zero (nobody got anything: neither
/// fair nor unfair).
pub fn jain_index(shares: &[f64]) -> Option<f64> {
    let n = shares.len() as f64;
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    (n > 0.0 && squares > 0.0).then(|| sum * sum / (n * squares))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::parse::{BitRate, QueueLimit};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::net::SocketAddr;
    use udpchat_reliable::endpoint::{MessageId, SendError, Stats};

    #[test]
    fn jain_index_is_one_when_equal_and_one_over_n_when_one_takes_all() {
        assert_eq!(jain_index(&[5.0, 5.0]), Some(1.0));
        assert_eq!(jain_index(&[3.0, 3.0, 3.0, 3.0]), Some(1.0));
        assert_eq!(jain_index(&[7.0, 0.0]), Some(0.5));
        assert_eq!(jain_index(&[7.0, 0.0, 0.0, 0.0]), Some(0.25));
        // (1 + 3)² / (2 · (1 + 9)) = 16 / 20.
        assert!((jain_index(&[1.0, 3.0]).unwrap() - 0.8).abs() < 1e-12);
        // It does not depend on the unit.
        assert_eq!(jain_index(&[1.0, 3.0]), jain_index(&[1e6, 3e6]));
        assert_eq!(jain_index(&[]), None);
        assert_eq!(jain_index(&[0.0, 0.0]), None);
    }

    /// Sends datagrams of `size` bytes to its peer, one every `every` on average, from its start
    /// on, and counts what it receives. No reaction to anything: a fixed-rate source. The gaps
    /// are drawn (exponential, seeded) rather than exact, as independent sources' are: exact
    /// periods in step would lock one flow out of a tail-drop queue by phase alone (its
    /// datagrams always arriving just after the other's filled the last place).
    #[derive(Debug)]
    struct Paced {
        size: usize,
        every: Duration,
        next: Option<Instant>,
        due: u64,
        received: u64,
        rng: ChaCha8Rng,
    }

    impl Paced {
        fn new(size: usize, every: Duration, seed: u64) -> Paced {
            Paced {
                size,
                every,
                next: None,
                due: 0,
                received: 0,
                rng: ChaCha8Rng::seed_from_u64(seed),
            }
        }

        fn gap(&mut self) -> Duration {
            let uniform: f64 = self.rng.random_range(f64::EPSILON..1.0);
            self.every.mul_f64(-uniform.ln())
        }
    }

    impl Endpoint for Paced {
        fn send(&mut self, _: Instant, _: &str) -> Result<MessageId, SendError> {
            Err(SendError::Closed)
        }
        fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {
            self.received += 1;
        }
        fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
            // The first poll (the flow's start) starts the clock of a sender.
            if self.every > Duration::ZERO && self.next.is_none() {
                self.next = Some(now);
            }
            (self.due > 0).then(|| {
                self.due -= 1;
                buf.clear();
                buf.resize(self.size, 0);
                ADDR_B
            })
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.next
        }
        fn handle_timeout(&mut self, now: Instant) {
            while let Some(at) = self.next.filter(|&at| at <= now) {
                self.due += 1;
                self.next = Some(at + self.gap());
            }
        }
        fn poll_event(&mut self) -> Option<Event> {
            None
        }
        fn close(&mut self, _: Instant) {}
        fn finish(&mut self, _: Instant) {}
        fn is_closed(&self) -> bool {
            false
        }
        fn peer(&self) -> Option<SocketAddr> {
            None
        }
        fn stats(&self) -> Stats {
            Stats::default()
        }
    }

    /// A 1 Mbit/s bottleneck with a 20-datagram queue and 10 ms of delay.
    fn bottleneck(seed: u64) -> DumbbellConfig {
        DumbbellConfig {
            forward: ImpairmentConfig {
                rate: BitRate::from_bits_per_second(1_000_000),
                queue: QueueLimit::bytes(20 * 1000).unwrap(),
                delay: Duration::from_millis(10),
                ..ImpairmentConfig::default()
            },
            reverse: ImpairmentConfig {
                delay: Duration::from_millis(10),
                ..ImpairmentConfig::default()
            },
            mtu: Some(1000),
            seed,
        }
    }

    /// Two fixed-rate flows of 1000-byte datagrams, one every `offered[i]`, the second starting
    /// 1 s after the first, run for `secs`. Returns what the bottleneck delivered of each.
    fn two_paced_flows(offered: [Duration; 2], secs: u64) -> (Dumbbell<Paced>, [u64; 2]) {
        let epoch = Instant::now();
        let mut net = Dumbbell::new(epoch, bottleneck(1));
        let starts = [Duration::ZERO, Duration::from_secs(1)];
        for (flow, (every, start)) in offered.into_iter().zip(starts).enumerate() {
            let a = Paced::new(1000, every, flow as u64);
            let b = Paced::new(1000, Duration::ZERO, 0);
            net.add_flow(start, a, b);
        }
        let end = epoch + Duration::from_secs(secs);
        while net.advance_within(None, end) {}
        let got = [0, 1].map(|f| net.wire(f).unwrap().delivered);
        (net, got)
    }

    #[test]
    fn a_datagram_above_the_mtu_is_dropped_and_counted() {
        let epoch = Instant::now();
        let mut net = Dumbbell::new(epoch, bottleneck(1));
        let flow = net.add_flow(
            Duration::ZERO,
            Paced::new(1001, Duration::from_millis(100), 1),
            Paced::new(1000, Duration::ZERO, 0),
        );
        while net.advance_within(None, epoch + Duration::from_secs(1)) {}
        let wire = net.wire(flow).unwrap();
        assert_eq!(
            (wire.offered, wire.dropped_mtu, wire.delivered),
            (wire.offered, wire.offered, 0)
        );
        assert!(wire.offered > 0);
    }

    #[test]
    fn under_capacity_each_flow_gets_all_it_offers() {
        // 0.4 + 0.2 Mbit/s on average on 1 Mbit/s, with a queue of 20: nothing drops.
        let every = [Duration::from_millis(20), Duration::from_millis(40)];
        let (mut net, got) = two_paced_flows(every, 11);
        assert_eq!(net.bottleneck().dropped_queue, 0);
        for (flow, got) in got.into_iter().enumerate() {
            let wire = net.wire(flow).unwrap();
            assert_eq!(wire.dropped_mtu, 0);
            // Only datagrams still on the link at the end (sent in its last ~20 ms) are missing.
            assert!(wire.offered - wire.delivered <= 5, "{wire:?}");
            assert_eq!(net.endpoint_mut(flow, Side::B).unwrap().received, got);
        }
        // 11 s of flow 0 at 50 datagrams/s, 10 s of flow 1 (from 1 s on) at 25/s, give or take
        // the draws (a few standard deviations of a Poisson count: ±3·√550, ±3·√250).
        assert!(got[0].abs_diff(550) < 70, "{got:?}");
        assert!(got[1].abs_diff(250) < 48, "{got:?}");
    }

    #[test]
    fn over_capacity_a_shared_fifo_serves_each_flow_in_proportion_to_what_it_offers() {
        // 1.6 + 0.8 Mbit/s offered on 1 Mbit/s, so 2.4 times the capacity: one FIFO queue with
        // tail drop serves the flows 2:1, and the link is never idle.
        let every = [Duration::from_micros(5000), Duration::from_micros(10_000)];
        let (net, _) = two_paced_flows(every, 21);
        assert!(net.bottleneck().dropped_queue > 0);
        let got = [0, 1].map(|f| net.wire(f).unwrap().delivered_bytes as f64);
        let total_bits = (got[0] + got[1]) * 8.0;
        // The link ran full all along (less the 10 ms still in flight at the end).
        assert!((total_bits / 21e6 - 1.0).abs() < 0.01, "{total_bits}");
        // Flow 0 had the link alone for the first second (1 Mbit), then two thirds of it for
        // 20 s; flow 1 one third for 20 s: (1 + 40/3) / (20/3) = 2.15.
        let ratio = got[0] / got[1];
        assert!((ratio - 2.15).abs() < 0.1, "{got:?} {ratio}");
        // The same seed, the same run, datagram for datagram.
        let (_, again) = two_paced_flows(every, 21);
        assert_eq!(again, [0, 1].map(|f| net.wire(f).unwrap().delivered));
    }
}
