//! "Delivered" means handed to the peer's application: the tests of issue 11's first defect.
//!
//! A message acknowledged selectively while it waits behind a hole at the receiver is not yet
//! delivered; if the session ends before the hole fills, it is reported lost. And an ack that
//! does not echo the tokens of the data it claims delivered (forged by someone who knows the
//! connection id but never saw the data) is dropped, so it cannot produce a `Delivered` either.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use udpchat_core::{decode, encode, Ack, AckRange, Packet, SeqNum};

use super::config::{Delivery, ReliableConfig};
use super::conn::ReliableEndpoint;
use super::pair::{addr, Link, Pair};
use crate::endpoint::{DropCause, Endpoint, Event, MessageId};

const A: u16 = 1000;
const B: u16 = 2000;

/// Two endpoints driven by hand, every datagram passed (or dropped) explicitly.
struct Manual {
    a: ReliableEndpoint,
    b: ReliableEndpoint,
    now: Instant,
    events_a: Vec<Event>,
    events_b: Vec<Event>,
}

impl Manual {
    fn new(config: ReliableConfig) -> Self {
        let a = ReliableEndpoint::new(config.clone(), Some(addr(B)), 11).unwrap();
        let b = ReliableEndpoint::new(config, None, 22).unwrap();
        let mut m = Manual {
            a,
            b,
            now: Instant::now(),
            events_a: Vec::new(),
            events_b: Vec::new(),
        };
        // Hello, Welcome, and the opener's third-leg Ack.
        m.a_to_b_all();
        m.b_to_a_all();
        m.a_to_b_all();
        assert!(m.a.is_established() && m.b.is_established());
        m
    }

    fn collect(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    /// Everything A wants to send, as datagrams, not yet delivered.
    fn sent_by_a(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.a.poll_transmit_owned(self.now))
            .map(|t| t.payload)
            .collect()
    }

    fn sent_by_b(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.b.poll_transmit_owned(self.now))
            .map(|t| t.payload)
            .collect()
    }

    fn give_b(&mut self, datagram: &[u8]) {
        self.b.handle_datagram(self.now, addr(A), datagram);
        self.collect();
    }

    fn give_a(&mut self, datagram: &[u8]) {
        self.a.handle_datagram(self.now, addr(B), datagram);
        self.collect();
    }

    fn a_to_b_all(&mut self) {
        self.now += Duration::from_millis(10);
        for d in self.sent_by_a() {
            self.give_b(&d);
        }
    }

    fn b_to_a_all(&mut self) {
        self.now += Duration::from_millis(10);
        for d in self.sent_by_b() {
            self.give_a(&d);
        }
    }
}

fn delivered(events: &[Event]) -> Vec<MessageId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn lost(events: &[Event]) -> Vec<MessageId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Lost { id } => Some(*id),
            _ => None,
        })
        .collect()
}

fn shown(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn data_seq(datagram: &[u8]) -> Option<SeqNum> {
    match decode(datagram).ok()? {
        Packet::Data(d) => Some(d.seq),
        _ => None,
    }
}

#[test]
fn messages_held_behind_a_hole_are_not_delivered_and_are_lost_when_the_receiver_closes() {
    let mut m = Manual::new(ReliableConfig::default());
    for text in ["zero", "one", "two"] {
        m.a.send(m.now, text).unwrap();
    }
    m.now += Duration::from_millis(10);
    let sent = m.sent_by_a();
    assert_eq!(sent.len(), 3);
    assert_eq!(data_seq(&sent[0]), Some(SeqNum(0)));
    // Packet 0 is lost; 1 and 2 arrive and wait behind the hole, selectively acknowledged.
    for d in &sent[1..] {
        m.give_b(d);
    }
    assert!(shown(&m.events_b).is_empty(), "held behind the hole");
    m.b_to_a_all();
    assert!(
        delivered(&m.events_a).is_empty(),
        "acknowledged selectively is not delivered: {:?}",
        m.events_a
    );
    // The receiver leaves before the hole is repaired: what it held was never shown.
    m.b.close(m.now);
    m.collect();
    m.b_to_a_all();
    assert!(m.events_a.contains(&Event::PeerClosed), "{:?}", m.events_a);
    assert!(shown(&m.events_b).is_empty());
    assert!(delivered(&m.events_a).is_empty(), "{:?}", m.events_a);
    assert_eq!(
        lost(&m.events_a),
        vec![MessageId(0), MessageId(1), MessageId(2)]
    );
}

#[test]
fn once_the_hole_is_repaired_everything_it_held_is_delivered() {
    let mut m = Manual::new(ReliableConfig::default());
    for text in ["zero", "one", "two"] {
        m.a.send(m.now, text).unwrap();
    }
    m.now += Duration::from_millis(10);
    let sent = m.sent_by_a();
    for d in &sent[1..] {
        m.give_b(d);
    }
    m.b_to_a_all();
    assert!(delivered(&m.events_a).is_empty());
    // The hole is repaired (here: the original, late); the next ack says all three are shown.
    m.give_b(&sent[0]);
    assert_eq!(shown(&m.events_b), vec!["zero", "one", "two"]);
    m.b_to_a_all();
    assert_eq!(
        delivered(&m.events_a),
        vec![MessageId(0), MessageId(1), MessageId(2)]
    );
    assert!(m.a.sender().all_delivered());
}

/// An ack from B's address for A's connection, as anyone who knows the connection id (but did
/// not see the data) could write it.
fn forged_ack(m: &Manual, cumulative: u64, delivered: u64, echo: u32) -> Vec<u8> {
    forged(m, cumulative, &[], delivered, echo, false)
}

fn forged(
    m: &Manual,
    cumulative: u64,
    ranges: &[(u64, u64)],
    delivered: u64,
    echo: u32,
    ranges_delivered: bool,
) -> Vec<u8> {
    let packet = Packet::Ack {
        dst: m.a.local_id(),
        ack: Ack {
            cumulative: SeqNum(cumulative),
            ranges: ranges
                .iter()
                .map(|&(first, last)| AckRange {
                    first: SeqNum(first),
                    last: SeqNum(last),
                })
                .collect(),
            delay_us: 0,
            window: 512,
            delivered: SeqNum(delivered),
            echo,
            ranges_delivered,
        },
    };
    encode(&packet, 1200).unwrap()
}

#[test]
fn a_forged_ack_for_data_the_receiver_never_got_delivers_nothing() {
    // Path MTU discovery off: this counts A's datagrams one by one, and probes are not data.
    let mut m = Manual::new(ReliableConfig {
        max_datagram: 1200,
        ..ReliableConfig::default()
    });
    m.a.send(m.now, "secret plans").unwrap();
    m.a.send(m.now, "more plans").unwrap();
    m.now += Duration::from_millis(10);
    let sent = m.sent_by_a();
    assert_eq!(sent.len(), 2, "both lost on the way: B never sees them");
    let dropped_before = m.a.stats().dropped_foreign;
    // Claims both delivered, guessing the echo: every guess is wrong but one in 2^32.
    for echo in [0, 1, 0xdead_beef, u32::MAX] {
        let forged = forged_ack(&m, 2, 2, echo);
        m.give_a(&forged);
    }
    assert!(delivered(&m.events_a).is_empty(), "{:?}", m.events_a);
    assert_eq!(m.a.stats().dropped_foreign, dropped_before + 4);
    assert!(m.events_a.iter().any(|e| matches!(
        e,
        Event::Dropped {
            cause: DropCause::Foreign,
            ..
        }
    )));
    // Claiming receipt without delivery needs the echo just as much: otherwise the sender would
    // stop resending what never arrived.
    let claims_receipt_only = forged_ack(&m, 2, 0, 0);
    m.give_a(&claims_receipt_only);
    assert_eq!(m.a.stats().dropped_foreign, dropped_before + 5);
    assert!(delivered(&m.events_a).is_empty(), "{:?}", m.events_a);
    // So the retransmission timer still resends both, and the real acks count.
    m.now = m.a.poll_timeout().unwrap();
    m.a.handle_timeout(m.now);
    let resent = m.sent_by_a();
    assert_eq!(
        resent
            .iter()
            .filter_map(|d| data_seq(d))
            .collect::<Vec<_>>(),
        vec![SeqNum(0), SeqNum(1)],
        "the forged acks stopped no resend"
    );
    for d in &resent {
        m.give_b(d);
    }
    m.b_to_a_all();
    assert_eq!(shown(&m.events_b), vec!["secret plans", "more plans"]);
    assert_eq!(delivered(&m.events_a), vec![MessageId(0), MessageId(1)]);
}

/// Every `Delivered` a side reports comes at or after the moment the peer showed the message.
fn assert_delivered_only_after_shown(sender: &[(Instant, Event)], receiver: &[(Instant, Event)]) {
    for (at, event) in sender {
        let Event::Delivered { id, .. } = event else {
            continue;
        };
        let shown_at = receiver.iter().find_map(|(t, e)| match e {
            Event::Message { seq, .. } if *seq == Some(id.0) => Some(*t),
            _ => None,
        });
        assert!(
            shown_at.is_some_and(|t| t <= *at),
            "message {id:?} reported delivered at {at:?}, shown at {shown_at:?}"
        );
    }
}

fn lossy_run(delivery: Delivery, seed: u64) {
    let config = ReliableConfig {
        delivery,
        max_retries: 30,
        idle_timeout: Duration::from_secs(300),
        ..ReliableConfig::default()
    };
    let mut pair = Pair::new(config, Link::lossy(0.15, 0.05, 0.1, 0.02), seed);
    let n = 150;
    for i in 0..n {
        pair.a.send(pair.now, &format!("a line {i}")).unwrap();
    }
    pair.flush();
    assert!(pair.run_until(Duration::from_secs(60), |p| p.b.is_established()));
    for i in 0..n {
        pair.b.send(pair.now, &format!("b line {i}")).unwrap();
    }
    let count =
        |events: &[(Instant, Event)]| Pair::count(events, |e| matches!(e, Event::Delivered { .. }));
    let done = pair.run_until(Duration::from_secs(600), |p| {
        count(&p.events_a) == n && count(&p.events_b) == n
    });
    assert!(done, "seed {seed}: not all delivered");
    assert_eq!(Pair::messages(&pair.events_b).len(), n);
    assert_eq!(Pair::messages(&pair.events_a).len(), n);
    assert_delivered_only_after_shown(&pair.events_a, &pair.events_b);
    assert_delivered_only_after_shown(&pair.events_b, &pair.events_a);
    assert_eq!(
        pair.a.stats().dropped_foreign,
        0,
        "no genuine ack is refused"
    );
    assert_eq!(
        pair.b.stats().dropped_foreign,
        0,
        "no genuine ack is refused"
    );
}

#[test]
fn lossy_ordered_runs_deliver_everything_and_report_delivered_only_once_shown() {
    for seed in [1, 2, 3] {
        lossy_run(Delivery::Ordered, seed);
    }
}

#[test]
fn lossy_unordered_runs_deliver_everything_and_report_delivered_only_once_shown() {
    for seed in [4, 5] {
        lossy_run(Delivery::Unordered, seed);
    }
}

fn unordered() -> ReliableConfig {
    ReliableConfig {
        delivery: Delivery::Unordered,
        ..ReliableConfig::default()
    }
}

#[test]
fn unordered_messages_shown_above_a_hole_are_delivered_at_once_and_only_the_hole_is_lost() {
    let mut m = Manual::new(unordered());
    for text in ["zero", "one", "two"] {
        m.a.send(m.now, text).unwrap();
    }
    m.now += Duration::from_millis(10);
    let sent = m.sent_by_a();
    for d in &sent[1..] {
        m.give_b(d);
    }
    assert_eq!(
        shown(&m.events_b),
        vec!["one", "two"],
        "unordered: shown at once"
    );
    m.b_to_a_all();
    assert_eq!(delivered(&m.events_a), vec![MessageId(1), MessageId(2)]);
    m.b.close(m.now);
    m.collect();
    m.b_to_a_all();
    assert!(m.events_a.contains(&Event::PeerClosed), "{:?}", m.events_a);
    assert_eq!(lost(&m.events_a), vec![MessageId(0)]);
}

#[test]
fn a_forged_ack_claiming_ranges_delivered_delivers_nothing() {
    let mut m = Manual::new(unordered());
    for text in ["zero", "one", "two"] {
        m.a.send(m.now, text).unwrap();
    }
    m.now += Duration::from_millis(10);
    let sent = m.sent_by_a();
    assert_eq!(sent.len(), 3);
    let dropped_before = m.a.stats().dropped_foreign;
    // Nothing delivered below 0 (so that part of the echo is 0), but the ranges claim 1..=2.
    for echo in [0, 7, u32::MAX] {
        let forged = forged(&m, 0, &[(1, 2)], 0, echo, true);
        m.give_a(&forged);
    }
    assert!(delivered(&m.events_a).is_empty(), "{:?}", m.events_a);
    assert_eq!(m.a.stats().dropped_foreign, dropped_before + 3);
    for d in &sent {
        m.give_b(d);
    }
    m.b_to_a_all();
    assert_eq!(
        delivered(&m.events_a),
        vec![MessageId(0), MessageId(1), MessageId(2)]
    );
}

#[test]
fn acks_trimmed_to_a_small_datagram_still_verify() {
    // 128-byte datagrams hold only a few ack ranges: the receiver keeps the highest that fit and
    // computes its echo over exactly those, so the sender can check every ack it gets.
    let config = ReliableConfig {
        max_datagram: 128,
        max_retries: 30,
        idle_timeout: Duration::from_secs(300),
        ..ReliableConfig::default()
    };
    let mut pair = Pair::new(config, Link::lossy(0.3, 0.0, 0.2, 0.0), 8);
    let n = 300;
    for i in 0..n {
        pair.a.send(pair.now, &format!("a line {i}")).unwrap();
    }
    pair.flush();
    let done = pair.run_until(Duration::from_secs(600), |p| {
        Pair::count(&p.events_a, |e| matches!(e, Event::Delivered { .. })) == n
    });
    assert!(done, "not all delivered");
    assert_eq!(Pair::messages(&pair.events_b).len(), n);
    assert_eq!(
        pair.a.stats().dropped_foreign,
        0,
        "every genuine ack verified"
    );
    assert_eq!(pair.a.stats().dropped_malformed, 0);
}
