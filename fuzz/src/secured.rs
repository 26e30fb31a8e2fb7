//! Two encrypted raw endpoints (`udpchat_secure::Secured`): alice initiates, bob listens, and
//! the fuzzer runs the network between them and an attacker who sees every datagram but holds no
//! key.
//!
//! Each [`Op`] delivers (or loses) alice's or bob's next datagram, replays an earlier one, flips
//! one bit of one, truncates one, throws junk at bob, sends a line from alice, or lets time
//! pass. Checked after every op:
//!
//! - no panic;
//! - every line bob shows is one alice sent, shown at most once (replays are refused);
//! - no answer to an unauthenticated datagram is larger than it: after junk, a replay, a flipped
//!   or a truncated datagram, bob's new datagrams add up to no more bytes than what arrived;
//! - every datagram either side sends is one of the encrypted kinds (nothing plain leaks);
//! - bob's counters account for every datagram fed to him: shown, opened for the session (a
//!   confirmation or a handshake message), or counted as dropped.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use udpchat_core::sealed::sealed_kind;
use udpchat_reliable::{Endpoint, Event, RawConfig, RawEndpoint};
use udpchat_secure::{Psk, SecureConfig, Secured, OVERHEAD};

use crate::{Bytes, PEER};

/// Bob's address (alice is at [`PEER`]).
const BOB: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    2001,
));

/// The run's setup: the seeds of both sides, and whether bob holds the same key.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Alice's randomness.
    pub alice_seed: u8,
    /// Bob's randomness.
    pub bob_seed: u8,
    /// Bob holds another key (a different passphrase).
    pub other_key: bool,
}

/// One thing that happens.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Alice's next datagram arrives at bob.
    AliceToBob,
    /// Bob's next datagram arrives at alice.
    BobToAlice,
    /// Alice's next datagram is lost.
    LoseAlice,
    /// Bob's next datagram is lost.
    LoseBob,
    /// The attacker replays the n-th datagram alice sent (modulo how many).
    Replay(u16),
    /// The attacker flips one bit of the n-th datagram alice sent.
    Flip(u16, u16),
    /// The attacker sends the first `len` bytes of the n-th datagram alice sent.
    Truncate(u16, u16),
    /// The attacker sends arbitrary bytes to bob, from alice's address.
    Junk(Bytes),
    /// Alice sends a line of this many bytes (modulo 600).
    Send(u16),
    /// Time passes, in milliseconds.
    Advance(u16),
}

/// Reads one input: a [`Setup`], then [`Op`]s.
pub fn read(data: &[u8]) -> Option<(Setup, Vec<Op>)> {
    crate::read_input(data)
}

fn endpoint(peer: Option<SocketAddr>, key: u8, seed: u8) -> Secured<RawEndpoint> {
    let raw = RawEndpoint::new(RawConfig {
        nick: "fuzz".into(),
        peer,
        max_datagram: 1200 - OVERHEAD,
        plain: false,
    });
    Secured::new(
        raw,
        SecureConfig {
            psk: Psk::from_bytes([key; 32]),
            seed: [seed; 32],
        },
    )
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((setup, ops)) = read(data) else {
        return;
    };
    let mut h = Harness {
        alice: endpoint(Some(BOB), 1, setup.alice_seed),
        bob: endpoint(None, if setup.other_key { 2 } else { 1 }, setup.bob_seed),
        now: Instant::now(),
        to_bob: VecDeque::new(),
        to_alice: VecDeque::new(),
        alice_sent: Vec::new(),
        lines: HashSet::new(),
        shown: HashSet::new(),
        fed_bob: 0,
    };
    for op in &ops {
        h.apply(op);
    }
}

struct Harness {
    alice: Secured<RawEndpoint>,
    bob: Secured<RawEndpoint>,
    now: Instant,
    to_bob: VecDeque<Vec<u8>>,
    to_alice: VecDeque<Vec<u8>>,
    /// Every datagram alice sent, for the attacker.
    alice_sent: Vec<Vec<u8>>,
    /// Lines alice sent.
    lines: HashSet<String>,
    /// Lines bob showed.
    shown: HashSet<String>,
    fed_bob: u64,
}

impl Harness {
    fn apply(&mut self, op: &Op) {
        self.collect();
        match op {
            Op::AliceToBob => {
                if let Some(d) = self.to_bob.pop_front() {
                    self.feed_bob(&d, false);
                }
            }
            Op::BobToAlice => {
                if let Some(d) = self.to_alice.pop_front() {
                    self.alice.handle_datagram(self.now, BOB, &d);
                }
            }
            Op::LoseAlice => drop(self.to_bob.pop_front()),
            Op::LoseBob => drop(self.to_alice.pop_front()),
            Op::Replay(n) => {
                if let Some(d) = self.pick(*n) {
                    self.feed_bob(&d, true);
                }
            }
            Op::Flip(n, bit) => {
                if let Some(mut d) = self.pick(*n) {
                    let bit = usize::from(*bit) % (d.len() * 8);
                    d[bit / 8] ^= 1 << (bit % 8);
                    self.feed_bob(&d, true);
                }
            }
            Op::Truncate(n, len) => {
                if let Some(d) = self.pick(*n) {
                    let len = usize::from(*len) % d.len();
                    self.feed_bob(&d[..len], true);
                }
            }
            Op::Junk(bytes) => self.feed_bob(&bytes.0, true),
            Op::Send(len) => {
                let text = format!(
                    "line {} {}",
                    self.lines.len(),
                    "x".repeat(usize::from(*len) % 600)
                );
                if self.alice.send(self.now, &text).is_ok() {
                    self.lines.insert(text);
                }
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.alice.handle_timeout(self.now);
                self.bob.handle_timeout(self.now);
            }
        }
        self.collect();
    }

    fn pick(&self, n: u16) -> Option<Vec<u8>> {
        let count = self.alice_sent.len();
        (count > 0).then(|| self.alice_sent[usize::from(n) % count].clone())
    }

    /// Gives bob a datagram; for one the attacker made, checks bob's answer is no larger.
    fn feed_bob(&mut self, datagram: &[u8], attacker: bool) {
        self.collect();
        self.fed_bob += 1;
        let shown_before = self.shown.len();
        self.bob.handle_datagram(self.now, PEER, datagram);
        let answered: usize = self.drain_bob().iter().map(Vec::len).sum();
        if attacker {
            assert!(
                answered <= datagram.len(),
                "{answered} bytes answered {} unauthenticated bytes",
                datagram.len()
            );
        }
        assert!(
            self.shown.len() <= shown_before + 1,
            "one datagram, several lines"
        );
        let s = self.bob.stats();
        let dropped = s.dropped_checksum
            + s.dropped_malformed
            + s.dropped_foreign
            + s.dropped_stale
            + s.dropped_replayed
            + s.dropped_unauthenticated;
        assert_eq!(s.datagrams_received, self.fed_bob);
        assert!(dropped + s.messages_received <= self.fed_bob, "{s:?}");
    }

    fn drain_bob(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(to) = self.bob.poll_transmit(self.now, &mut buf) {
            assert_eq!(to, PEER, "bob answers only alice's address");
            assert!(sealed_kind(&buf).is_some(), "bob sent a plain datagram");
            out.push(buf.clone());
            self.to_alice.push_back(buf.clone());
        }
        self.bob_events();
        out
    }

    fn bob_events(&mut self) {
        while let Some(event) = self.bob.poll_event() {
            if let Event::Message { text, .. } = event {
                assert!(
                    self.lines.contains(&text),
                    "bob showed a line alice never sent"
                );
                assert!(self.shown.insert(text), "bob showed a line twice");
            }
        }
    }

    /// Moves what both sides want to send onto the network, and drains their events.
    fn collect(&mut self) {
        let mut buf = Vec::new();
        while let Some(to) = self.alice.poll_transmit(self.now, &mut buf) {
            assert_eq!(to, BOB, "alice sends only to bob");
            assert!(sealed_kind(&buf).is_some(), "alice sent a plain datagram");
            self.alice_sent.push(buf.clone());
            self.to_bob.push_back(buf.clone());
        }
        while self.alice.poll_event().is_some() {}
        self.drain_bob();
    }
}

impl crate::tape::Write for Setup {
    fn write(&self, t: &mut crate::tape::Tape) {
        t.u8(self.alice_seed).u8(self.bob_seed).bool(self.other_key);
    }
}

impl crate::tape::Write for Op {
    fn write(&self, t: &mut crate::tape::Tape) {
        const N: u32 = 10;
        match self {
            Op::AliceToBob => t.variant(0, N),
            Op::BobToAlice => t.variant(1, N),
            Op::LoseAlice => t.variant(2, N),
            Op::LoseBob => t.variant(3, N),
            Op::Replay(n) => t.variant(4, N).u16(*n),
            Op::Flip(n, bit) => t.variant(5, N).u16(*n).u16(*bit),
            Op::Truncate(n, len) => t.variant(6, N).u16(*n).u16(*len),
            Op::Junk(bytes) => t.variant(7, N).bytes(&bytes.0),
            Op::Send(len) => t.variant(8, N).u16(*len),
            Op::Advance(ms) => t.variant(9, N).u16(*ms),
        };
    }
}
