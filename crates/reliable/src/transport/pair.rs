//! A test-only `Pair`: two endpoints joined by a seeded lossy link in virtual time.
//!
//! Like quinn-proto's test `Pair`: no sockets, no sleeping; `step` jumps the clock to the next
//! thing that happens (a datagram arriving or a timer), so a minute of chat runs in microseconds
//! and every run with the same seed is the same run. The link drops, duplicates, delays, reorders
//! and corrupts with probabilities drawn from one ChaCha RNG. The lab's simulator is the grown-up
//! version; this one exists so the transport can be tested on its own: the lab depends on this
//! crate, so this crate's tests cannot use the lab's driver (issue 10 keeps this loop apart for
//! that reason alone).

#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::ReliableConfig;
use super::conn::ReliableEndpoint;
use crate::endpoint::{Endpoint, Event};

/// One direction's impairments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    pub loss: f64,
    pub duplicate: f64,
    /// Probability that a datagram is held back by an extra 1–3 delays (so later ones pass it).
    pub reorder: f64,
    pub corrupt: f64,
    pub delay: Duration,
    /// Uniform extra delay in `[0, jitter]`.
    pub jitter: Duration,
}

impl Link {
    pub fn clean(delay_ms: u64) -> Self {
        Link {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
        }
    }

    pub fn lossy(loss: f64, duplicate: f64, reorder: f64, corrupt: f64) -> Self {
        Link {
            loss,
            duplicate,
            reorder,
            corrupt,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    A,
    B,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    arrive: Instant,
    order: u64,
    to: Side,
    bytes: Vec<u8>,
}

pub struct Pair {
    pub a: ReliableEndpoint,
    pub b: ReliableEndpoint,
    pub addr_a: SocketAddr,
    pub addr_b: SocketAddr,
    pub start: Instant,
    pub now: Instant,
    pub link_ab: Link,
    pub link_ba: Link,
    pub events_a: Vec<(Instant, Event)>,
    pub events_b: Vec<(Instant, Event)>,
    /// Every datagram A put on the wire, before impairment (for replaying stale packets).
    pub wire_a: Vec<Vec<u8>>,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    rng: ChaCha8Rng,
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Pair {
    /// A connects to B (B listens); both with `config`.
    pub fn new(config: ReliableConfig, link: Link, seed: u64) -> Self {
        let a = ReliableEndpoint::new(config.clone(), Some(addr(2000)), seed ^ 0xA).unwrap();
        let b = ReliableEndpoint::new(config, None, seed ^ 0xB).unwrap();
        Self::with(a, b, link, seed)
    }

    pub fn with(a: ReliableEndpoint, b: ReliableEndpoint, link: Link, seed: u64) -> Self {
        let start = Instant::now();
        Pair {
            a,
            b,
            addr_a: addr(1000),
            addr_b: addr(2000),
            start,
            now: start,
            link_ab: link,
            link_ba: link,
            events_a: Vec::new(),
            events_b: Vec::new(),
            wire_a: Vec::new(),
            queue: BinaryHeap::new(),
            order: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn impair_and_queue(&mut self, to: Side, mut bytes: Vec<u8>) {
        let link = match to {
            Side::B => self.link_ab,
            Side::A => self.link_ba,
        };
        if self.rng.random_bool(link.loss) {
            return;
        }
        let copies = if self.rng.random_bool(link.duplicate) {
            2
        } else {
            1
        };
        if self.rng.random_bool(link.corrupt) && !bytes.is_empty() {
            let bit = self.rng.random_range(0..bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        for _ in 0..copies {
            let mut delay = link.delay;
            if !link.jitter.is_zero() {
                delay += link.jitter.mul_f64(self.rng.random::<f64>());
            }
            if self.rng.random_bool(link.reorder) {
                delay += link.delay * self.rng.random_range(1..=3u32);
            }
            self.order += 1;
            self.queue.push(Reverse(InFlight {
                arrive: self.now + delay,
                order: self.order,
                to,
                bytes: bytes.clone(),
            }));
        }
    }

    /// Hands out everything both endpoints want to send, and collects their events.
    pub fn flush(&mut self) {
        while let Some(t) = self.a.poll_transmit_owned(self.now) {
            assert_eq!(t.destination, self.addr_b);
            self.wire_a.push(t.payload.clone());
            self.impair_and_queue(Side::B, t.payload);
        }
        while let Some(t) = self.b.poll_transmit_owned(self.now) {
            assert_eq!(t.destination, self.addr_a);
            self.impair_and_queue(Side::A, t.payload);
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push((self.now, e));
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push((self.now, e));
        }
    }

    /// Sends `datagram` to `to` as if from `from`, now.
    pub fn inject(&mut self, to: Side, from: SocketAddr, datagram: &[u8]) {
        match to {
            Side::A => self.a.handle_datagram(self.now, from, datagram),
            Side::B => self.b.handle_datagram(self.now, from, datagram),
        }
        self.flush();
    }

    /// Advances to the next arrival or timer and processes it. False when nothing is pending.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next_arrival = self.queue.peek().map(|r| r.0.arrive);
        let next = [next_arrival, self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        while self.queue.peek().is_some_and(|r| r.0.arrive <= self.now) {
            let Reverse(d) = self.queue.pop().unwrap();
            match d.to {
                Side::A => self.a.handle_datagram(self.now, self.addr_b, &d.bytes),
                Side::B => self.b.handle_datagram(self.now, self.addr_a, &d.bytes),
            }
        }
        if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
            self.a.handle_timeout(self.now);
        }
        if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
            self.b.handle_timeout(self.now);
        }
        self.flush();
        true
    }

    /// Steps until `done` holds or `limit` of virtual time has passed; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        let deadline = self.start + limit;
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            if self.now > deadline || !self.step() {
                return done(self);
            }
        }
    }

    /// Advances virtual time to `at`, processing whatever happens on the way.
    pub fn run_to(&mut self, at: Instant) {
        loop {
            self.flush();
            let next_arrival = self.queue.peek().map(|r| r.0.arrive);
            let next = [next_arrival, self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(n) if n <= at => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(at);
        self.flush();
    }

    pub fn messages(events: &[(Instant, Event)]) -> Vec<String> {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn count(events: &[(Instant, Event)], pred: impl Fn(&Event) -> bool) -> usize {
        events.iter().filter(|(_, e)| pred(e)).count()
    }
}
