//! `Secured` between two raw endpoints over an in-memory wire that a test can tamper with.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use udpchat_reliable::{RawConfig, RawEndpoint};

use super::*;
use crate::passphrase::KdfParams;

const A: &str = "127.0.0.1:1001";
const B: &str = "127.0.0.1:1002";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn psk(p: &str) -> Psk {
    Psk::derive(p, KdfParams::insecure_for_tests()).unwrap()
}

fn raw(nick: &str, peer: Option<&str>) -> RawEndpoint {
    RawEndpoint::new(RawConfig {
        nick: nick.into(),
        peer: peer.map(addr),
        max_datagram: 1200 - OVERHEAD,
        plain: false,
    })
}

fn secured(nick: &str, peer: Option<&str>, pass: &str, seed: u8) -> Secured<RawEndpoint> {
    Secured::new(
        raw(nick, peer),
        SecureConfig {
            psk: psk(pass),
            seed: [seed; 32],
        },
    )
}

/// Two endpoints joined by a wire with no delay; `filter` sees every datagram (from A when its
/// flag is true) and says whether it arrives.
struct Pair<X: Endpoint, Y: Endpoint> {
    a: X,
    b: Y,
    now: Instant,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
    /// Every datagram sent, `true` for A's.
    wire: Vec<(bool, Vec<u8>)>,
}

impl<X: Endpoint, Y: Endpoint> Pair<X, Y> {
    fn new(a: X, b: Y) -> Self {
        Pair {
            a,
            b,
            now: Instant::now(),
            a_events: Vec::new(),
            b_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// Moves datagrams and fires timers for `span` of virtual time.
    fn run(&mut self, span: Duration, filter: &mut dyn FnMut(bool, &[u8]) -> bool) {
        let end = self.now + span;
        loop {
            let mut moved = false;
            let mut buf = Vec::new();
            while self.a.poll_transmit(self.now, &mut buf).is_some() {
                moved = true;
                self.wire.push((true, buf.clone()));
                if filter(true, &buf) {
                    self.b.handle_datagram(self.now, addr(A), &buf);
                }
            }
            while self.b.poll_transmit(self.now, &mut buf).is_some() {
                moved = true;
                self.wire.push((false, buf.clone()));
                if filter(false, &buf) {
                    self.a.handle_datagram(self.now, addr(B), &buf);
                }
            }
            self.a_events
                .extend(std::iter::from_fn(|| self.a.poll_event()));
            self.b_events
                .extend(std::iter::from_fn(|| self.b.poll_event()));
            if moved {
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
    }

    fn pass(&mut self, span: Duration) {
        self.run(span, &mut |_, _| true);
    }
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn sas_of(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Secured { sas, .. } => Some(sas.clone()),
            _ => None,
        })
        .collect()
}

fn failures(events: &[Event]) -> Vec<HandshakeFailure> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::HandshakeFailed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// alice (initiator) and bob (listener), with one line each way exchanged.
fn talking() -> Pair<Secured<RawEndpoint>, Secured<RawEndpoint>> {
    let mut pair = Pair::new(
        secured("alice", Some(B), "pw", 1),
        secured("bob", None, "pw", 2),
    );
    pair.a.send(pair.now, "hello bob").unwrap();
    pair.pass(Duration::from_secs(1));
    pair.b.send(pair.now, "hi alice").unwrap();
    pair.pass(Duration::from_secs(1));
    pair
}

/// The last sealed datagram alice sent.
fn last_sealed_from_a<X: Endpoint, Y: Endpoint>(pair: &Pair<X, Y>) -> Vec<u8> {
    pair.wire
        .iter()
        .rev()
        .find(|(from_a, d)| *from_a && sealed_kind(d) == Some(SealedKind::Sealed) && d.len() > 40)
        .map(|(_, d)| d.clone())
        .unwrap()
}

#[test]
fn same_passphrase_converses_and_both_sides_show_the_same_sas() {
    let pair = talking();
    assert_eq!(texts(&pair.b_events), ["hello bob"]);
    assert_eq!(texts(&pair.a_events), ["hi alice"]);
    let (a, b) = (sas_of(&pair.a_events), sas_of(&pair.b_events));
    assert_eq!(a.len(), 1);
    assert_eq!(a, b);
    assert_eq!(pair.a.sas(), pair.b.sas());
    // Nothing readable on the wire: no text, no nickname.
    for (_, d) in &pair.wire {
        for needle in [&b"hello"[..], b"alice", b"bob"] {
            assert!(!d.windows(needle.len()).any(|w| w == needle));
        }
    }
}

#[test]
fn a_replayed_datagram_is_dropped_counted_and_not_shown_twice() {
    let mut pair = talking();
    let sealed = last_sealed_from_a(&pair);
    pair.b.handle_datagram(pair.now, addr(A), &sealed);
    pair.pass(Duration::from_millis(10));
    assert_eq!(texts(&pair.b_events), ["hello bob"]);
    assert_eq!(pair.b.stats().dropped_replayed, 1);
    assert!(pair.b_events.iter().any(|e| matches!(
        e,
        Event::Dropped {
            cause: DropCause::Replayed,
            ..
        }
    )));
}

#[test]
fn truncated_and_forged_datagrams_are_dropped_and_the_chat_goes_on() {
    let mut pair = talking();
    pair.a.send(pair.now, "still here").unwrap();
    let mut fresh = Vec::new();
    pair.a.poll_transmit(pair.now, &mut fresh).unwrap();
    let header = SealedHeader::parse(&fresh).unwrap();
    // Truncated: one byte short (fails its tag), and shorter than a tag (malformed).
    pair.b
        .handle_datagram(pair.now, addr(A), &fresh[..fresh.len() - 1]);
    pair.b.handle_datagram(pair.now, addr(A), &fresh[..24]);
    // Forged: the right receiver id and fresh counters, sealed under a key of our own.
    let keys = crate::handshake::Keys {
        send: [7; 32],
        recv: [8; 32],
        remote_id: header.receiver,
        hash: [0; 32],
    };
    let mut forger = Session::new(addr(B), 1, &keys, true, pair.now).unwrap();
    let mut forged = Vec::new();
    for i in 0..10 {
        forger
            .seal(pair.now, b"\x00\x00\x01xforged", &mut forged)
            .unwrap();
        // Counters alice has used would be refused as replays before any key is tried.
        if i >= 5 {
            pair.b.handle_datagram(pair.now, addr(A), &forged);
        }
    }
    let stats = pair.b.stats();
    assert_eq!(stats.dropped_unauthenticated, 6, "{stats:?}");
    assert_eq!(stats.dropped_malformed, 1);
    // The genuine datagram was not spent by the failures.
    pair.b.handle_datagram(pair.now, addr(A), &fresh);
    pair.pass(Duration::from_secs(1));
    assert_eq!(texts(&pair.b_events), ["hello bob", "still here"]);
}

#[test]
fn a_different_passphrase_fails_on_both_sides_and_shows_nothing() {
    let mut pair = Pair::new(
        secured("alice", Some(B), "pw", 1),
        secured("bob", None, "other", 2),
    );
    pair.a.send(pair.now, "hello").unwrap();
    pair.pass(Duration::from_secs(3));
    assert_eq!(
        failures(&pair.a_events),
        [HandshakeFailure::WrongPassphrase]
    );
    assert_eq!(
        failures(&pair.b_events),
        [HandshakeFailure::WrongPassphrase]
    );
    assert!(texts(&pair.b_events).is_empty());
    assert!(pair.a.is_closed() && pair.b.is_closed());
    assert_eq!(pair.a.send(pair.now, "more"), Err(SendError::Closed));
}

#[test]
fn a_lost_handshake_is_resent_as_the_same_bytes_then_given_up() {
    let mut pair = Pair::new(
        secured("alice", Some(B), "pw", 1),
        secured("bob", None, "pw", 2),
    );
    pair.a.send(pair.now, "hello").unwrap();
    let start = pair.now;
    pair.run(Duration::from_secs(30), &mut |_, _| false);
    let inits: Vec<_> = pair.wire.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(inits.len(), HANDSHAKE_TRIES as usize);
    assert!(inits.iter().all(|d| *d == inits[0]));
    assert_eq!(failures(&pair.a_events), [HandshakeFailure::NoAnswer]);
    assert!(pair.a.is_closed());
    // 250 + 500 + 1000 + 2000 × 4 ms: about eight seconds.
    let _ = start;
}

#[test]
fn a_handshake_survives_losing_its_first_messages() {
    let mut pair = Pair::new(
        secured("alice", Some(B), "pw", 1),
        secured("bob", None, "pw", 2),
    );
    pair.a.send(pair.now, "hello").unwrap();
    let mut n = 0;
    // The first two Inits and the first Reply are lost.
    pair.run(Duration::from_secs(10), &mut |_, d| {
        n += 1;
        !(sealed_kind(d) != Some(SealedKind::Sealed) && n <= 4 && n != 3)
    });
    assert_eq!(texts(&pair.b_events), ["hello"]);
    assert_eq!(sas_of(&pair.a_events), sas_of(&pair.b_events));
}

#[test]
fn a_simultaneous_open_resolves_to_one_session() {
    for seeds in [(1, 2), (2, 1), (7, 9)] {
        let mut pair = Pair::new(
            secured("alice", Some(B), "pw", seeds.0),
            secured("bob", Some(A), "pw", seeds.1),
        );
        pair.a.send(pair.now, "from a").unwrap();
        pair.b.send(pair.now, "from b").unwrap();
        pair.pass(Duration::from_secs(2));
        assert_eq!(texts(&pair.b_events), ["from a"], "seeds {seeds:?}");
        assert_eq!(texts(&pair.a_events), ["from b"], "seeds {seeds:?}");
        let sas = sas_of(&pair.a_events);
        assert_eq!(sas.len(), 1);
        assert_eq!(sas, sas_of(&pair.b_events));
    }
}

#[test]
fn encrypted_and_plain_say_so_on_both_sides() {
    // alice encrypted, bob plain: bob names the encrypted datagram; alice, hearing bob's plain
    // line, says the peer is not encrypted.
    let mut pair = Pair::new(secured("alice", Some(B), "pw", 1), raw("bob", Some(A)));
    pair.b.send(pair.now, "plain hello").unwrap();
    pair.pass(Duration::from_secs(1));
    assert_eq!(failures(&pair.a_events), [HandshakeFailure::NotEncrypted]);
    assert!(texts(&pair.a_events).is_empty());
    assert!(pair.b_events.iter().any(|e| matches!(
        e,
        Event::Dropped { detail, .. } if detail.contains("--secret")
    )));
}

#[test]
fn no_answer_to_an_unauthenticated_datagram_is_larger_and_new_handshakes_are_rate_limited() {
    let mut bob = secured("bob", None, "pw", 2);
    let now = Instant::now();
    let mut answered = 0;
    for i in 0..100u8 {
        let init = Initiator::start(&psk("anything"), u64::from(i), [i; 32])
            .unwrap()
            .init;
        bob.handle_datagram(now, addr(A), &init);
        let mut buf = Vec::new();
        while bob.poll_transmit(now, &mut buf).is_some() {
            assert!(buf.len() <= init.len());
            answered += 1;
        }
        // Junk of every short size gets no answer at all.
        bob.handle_datagram(now, addr(A), &init[..usize::from(i) % init.len()]);
        assert_eq!(bob.poll_transmit(now, &mut buf), None);
    }
    assert_eq!(answered, HANDSHAKES_PER_SECOND);
    assert!(bob.pending.len() <= MAX_PENDING);
    // A second later, the bucket has refilled.
    let later = now + Duration::from_secs(1);
    let init = Initiator::start(&psk("x"), 500, [5; 32]).unwrap().init;
    bob.handle_datagram(later, addr(A), &init);
    assert!(bob.poll_transmit(later, &mut Vec::new()).is_some());
}

#[test]
fn after_the_peer_lost_its_keys_a_new_line_brings_a_new_handshake() {
    let reliable = |peer: Option<&str>, seed| {
        let config = udpchat_reliable::ReliableConfig {
            max_datagram: 1200 - OVERHEAD,
            max_retries: 3,
            ..udpchat_reliable::ReliableConfig::default()
        };
        udpchat_reliable::ReliableEndpoint::new(config, peer.map(addr), seed).unwrap()
    };
    let config = |seed| SecureConfig {
        psk: psk("pw"),
        seed: [seed; 32],
    };
    let mut pair = Pair::new(
        Secured::new(reliable(Some(B), 1), config(1)),
        Secured::new(reliable(None, 2), config(2)),
    );
    pair.a.send(pair.now, "before").unwrap();
    pair.pass(Duration::from_secs(1));
    assert_eq!(texts(&pair.b_events), ["before"]);
    // bob restarts: a new process, no keys. alice's datagrams are refused until she gives up.
    pair.b = Secured::new(reliable(None, 3), config(3));
    pair.b_events.clear();
    pair.a.send(pair.now, "lost").unwrap();
    pair.pass(Duration::from_secs(60));
    assert!(pair.a_events.contains(&Event::PeerUnreachable));
    assert!(texts(&pair.b_events).is_empty());
    pair.a.send(pair.now, "after").unwrap();
    pair.pass(Duration::from_secs(5));
    assert_eq!(texts(&pair.b_events), ["after"]);
    assert_eq!(sas_of(&pair.a_events).len(), 2, "a second handshake");
}

#[test]
fn a_listener_never_initiates() {
    let mut bob = secured("bob", None, "pw", 2);
    let now = Instant::now();
    assert_eq!(bob.poll_transmit(now, &mut Vec::new()), None);
    assert_eq!(bob.poll_timeout(), None);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ea1),
        ..ProptestConfig::default()
    })]

    /// Any single-bit flip anywhere in a sealed datagram is rejected (and counted); the genuine
    /// datagram still opens afterwards, so flips cannot spend its counter.
    #[test]
    fn every_single_bit_flip_of_a_sealed_datagram_is_rejected(text in "[a-z ]{1,40}") {
        let mut pair = talking();
        pair.a.send(pair.now, &text).unwrap();
        let mut sealed = None;
        let mut buf = Vec::new();
        while let Some(_to) = pair.a.poll_transmit(pair.now, &mut buf) {
            sealed = Some(buf.clone());
        }
        let sealed = sealed.unwrap();
        let before = pair.b.stats();
        let drops = |s: &Stats| s.dropped_checksum + s.dropped_malformed + s.dropped_foreign
            + s.dropped_stale + s.dropped_replayed + s.dropped_unauthenticated;
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            pair.b.handle_datagram(pair.now, addr(A), &flipped);
            let _ = pair.b.poll_transmit(pair.now, &mut buf);
        }
        let after = pair.b.stats();
        prop_assert_eq!(drops(&after) - drops(&before), (sealed.len() * 8) as u64);
        let shown: Vec<_> = std::iter::from_fn(|| pair.b.poll_event())
            .filter(|e| matches!(e, Event::Message { .. }))
            .collect();
        prop_assert!(shown.is_empty());
        pair.b.handle_datagram(pair.now, addr(A), &sealed);
        let shown = texts(&std::iter::from_fn(|| pair.b.poll_event()).collect::<Vec<_>>());
        prop_assert_eq!(shown, vec![text]);
    }
}
