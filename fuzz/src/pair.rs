//! Two reliable endpoints talking through a network the fuzzer controls.
//!
//! Alice opens to Bob; every datagram either sends waits in a queue towards the other, and the
//! fuzzer decides which queued datagram is delivered next (reordering), dropped, duplicated or
//! delivered with one bit flipped, when time passes and timers fire, who sends what, and who
//! closes. Every line is unique (`a7:…` is Alice's message 7), so a receiver's screen can be
//! checked line by line. Checked, whatever the network does:
//!
//! - no panic;
//! - every line shown is exactly a line the other side sent (no corruption gets through, no
//!   fragments of two messages mixed), shown at most once, and with ordered delivery in sending
//!   order;
//! - `Delivered`/`Lost` only for ids `send` returned, once each;
//! - in the end, after both close and the network delivers what is left, both are closed and
//!   every line was reported delivered or lost.
//!
//! With [`DELIVERED_MEANS_SHOWN`] it also checks the transport's central promise: a line
//! reported delivered was shown by the other side.

use std::collections::{BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::tape::{Tape, Write};
use arbitrary::Arbitrary;
use udpchat_reliable::{
    Arq, Delivery, Endpoint, Event, MessageId, ReliableConfig, ReliableEndpoint,
};

/// Check that every line reported delivered was shown by the receiver. Off until issue 11's
/// first defect is fixed: today a line counts as delivered once the receiver's transport has
/// acknowledged it, even while it waits behind a hole, and a receiver that closes then discards
/// it. Turn on with that fix.
pub const DELIVERED_MEANS_SHOWN: bool = false;

/// Most datagrams waiting in one direction; beyond, the oldest is lost (a router's queue).
const QUEUE: usize = 256;

const ALICE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1001));
const BOB: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1002));

/// Both endpoints' configuration.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// 0: selective repeat, 1: go-back-N, 2: stop-and-wait (modulo 3).
    pub arq: u8,
    /// Unordered delivery.
    pub unordered: bool,
    /// Redundant copies per datagram (modulo 4).
    pub redundancy: u8,
    /// Receive window: 1, 4, 64 or 512 packets (by the low two bits).
    pub window: u8,
    /// 128-byte datagrams instead of 1200: more fragments.
    pub small_datagrams: bool,
    /// Alice's seed (Bob's is derived from it).
    pub seed: u64,
}

/// One of the two.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The opener.
    Alice,
    /// The listener.
    Bob,
}

/// What the network does to the datagram it delivers.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Delivers it and leaves a copy queued.
    Duplicate,
    /// Flips this bit (modulo the datagram's length).
    Flip(u16),
}

/// One thing that happens.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A side sends a line of this many characters (modulo 2000) of the picked character.
    Send(Side, u16, u8),
    /// The network delivers the `pick`-th queued datagram (modulo the queue) to this side.
    Deliver(Side, u8, Fault),
    /// The network loses the `pick`-th datagram queued towards this side.
    Drop(Side, u8),
    /// Time passes, in milliseconds.
    Advance(u16),
    /// Time jumps to the earlier of the two deadlines, and what is due fires.
    Timer,
    /// A side closes.
    Close(Side),
}

/// Reads one input: a [`Setup`], then [`Op`]s.
pub fn read(data: &[u8]) -> Option<(Setup, Vec<Op>)> {
    crate::read_input(data)
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((setup, ops)) = read(data) else {
        return;
    };
    let config = ReliableConfig {
        max_datagram: if setup.small_datagrams { 128 } else { 1200 },
        max_message: 8192,
        window: [1, 4, 64, 512][usize::from(setup.window & 3)],
        arq: [Arq::SelectiveRepeat, Arq::GoBackN, Arq::StopAndWait][usize::from(setup.arq % 3)],
        delivery: if setup.unordered {
            Delivery::Unordered
        } else {
            Delivery::Ordered
        },
        redundancy: setup.redundancy % 4,
        ..ReliableConfig::default()
    };
    let new = |peer, seed| match ReliableEndpoint::new(config.clone(), peer, seed) {
        Ok(ep) => ep,
        Err(e) => panic!("the harness built an invalid config: {e}"),
    };
    let start = Instant::now();
    let mut net = Net {
        alice: Peer::new(new(Some(BOB), setup.seed), 'a'),
        bob: Peer::new(new(None, setup.seed ^ 0x9E37_79B9), 'b'),
        start,
        now: start,
        ordered: !setup.unordered,
    };
    for op in &ops {
        trace(|| format!("{:>8?} {op:?}", net.now - net.start));
        net.apply(op);
        net.settle();
    }
    trace(|| "both close; the network delivers the rest".into());
    net.finish(&config);
}

/// Prints what happens when `UDPCHAT_FUZZ_TRACE` is set (`cargo run --example show -- --run`).
fn trace(line: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("UDPCHAT_FUZZ_TRACE").is_some()) {
        eprintln!("{}", line());
    }
}

/// One endpoint, the datagrams on their way to it, and what it did.
struct Peer {
    ep: ReliableEndpoint,
    inbox: VecDeque<Vec<u8>>,
    prefix: char,
    sent: Vec<String>,
    resolved: BTreeSet<u64>,
    delivered: BTreeSet<u64>,
    shown: BTreeSet<u64>,
    last_shown: Option<u64>,
}

impl Peer {
    fn new(ep: ReliableEndpoint, prefix: char) -> Peer {
        Peer {
            ep,
            inbox: VecDeque::new(),
            prefix,
            sent: Vec::new(),
            resolved: BTreeSet::new(),
            delivered: BTreeSet::new(),
            shown: BTreeSet::new(),
            last_shown: None,
        }
    }

    fn send(&mut self, now: Instant, len: u16, c: u8) {
        let c = ['x', 'é', '€', '😀', '\n'][usize::from(c) % 5];
        let id = self.sent.len();
        let text = format!(
            "{}{id}:{}",
            self.prefix,
            c.to_string().repeat(usize::from(len) % 2000)
        );
        if let Ok(MessageId(n)) = self.ep.send(now, &text) {
            assert_eq!(n, id as u64, "ids count from 0 in sending order");
            self.sent.push(text);
        }
    }
}

struct Net {
    alice: Peer,
    bob: Peer,
    start: Instant,
    now: Instant,
    ordered: bool,
}

impl Net {
    fn side(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Alice => &mut self.alice,
            Side::Bob => &mut self.bob,
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Send(side, len, c) => self.side(side).send(now, len, c),
            Op::Deliver(side, pick, fault) => {
                let from = match side {
                    Side::Alice => BOB,
                    Side::Bob => ALICE,
                };
                let peer = self.side(side);
                if peer.inbox.is_empty() {
                    return;
                }
                let i = usize::from(pick) % peer.inbox.len();
                let Some(mut d) = peer.inbox.remove(i) else {
                    return;
                };
                match fault {
                    Fault::None => {}
                    Fault::Duplicate => peer.inbox.push_back(d.clone()),
                    Fault::Flip(bit) if !d.is_empty() => {
                        let bit = usize::from(bit) % (d.len() * 8);
                        d[bit / 8] ^= 1 << (bit % 8);
                    }
                    Fault::Flip(_) => {}
                }
                peer.ep.handle_datagram(now, from, &d);
            }
            Op::Drop(side, pick) => {
                let inbox = &mut self.side(side).inbox;
                if !inbox.is_empty() {
                    let i = usize::from(pick) % inbox.len();
                    inbox.remove(i);
                }
            }
            Op::Advance(ms) => self.now += Duration::from_millis(u64::from(ms)),
            Op::Timer => self.timer(),
            Op::Close(side) => self.side(side).ep.close(now),
        }
    }

    /// Jumps to the earlier deadline and fires whatever is due.
    fn timer(&mut self) {
        let next = [self.alice.ep.poll_timeout(), self.bob.ep.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if let Some(t) = next {
            self.now = self.now.max(t);
            for peer in [&mut self.alice, &mut self.bob] {
                if peer.ep.poll_timeout().is_some_and(|t| t <= self.now) {
                    peer.ep.handle_timeout(self.now);
                }
            }
        }
    }

    /// Moves what each side sends into the other's inbox, and checks what each reports.
    fn settle(&mut self) {
        carry(&mut self.alice, &mut self.bob, self.now);
        carry(&mut self.bob, &mut self.alice, self.now);
        let ordered = self.ordered;
        let events: Vec<Event> = std::iter::from_fn(|| self.alice.ep.poll_event()).collect();
        for event in events {
            check_event(&mut self.alice, &self.bob, event, ordered);
        }
        let events: Vec<Event> = std::iter::from_fn(|| self.bob.ep.poll_event()).collect();
        for event in events {
            check_event(&mut self.bob, &self.alice, event, ordered);
        }
    }

    /// Both close; the network then delivers everything, in order, until both are closed.
    fn finish(&mut self, config: &ReliableConfig) {
        self.alice.ep.close(self.now);
        self.bob.ep.close(self.now);
        let bound = self.now + 2 * (config.linger + config.give_up_bound()) + config.idle_timeout;
        for _ in 0..100_000 {
            self.settle();
            if self.alice.ep.is_closed() && self.bob.ep.is_closed() {
                break;
            }
            let pending = !self.alice.inbox.is_empty() || !self.bob.inbox.is_empty();
            if pending {
                for side in [Side::Alice, Side::Bob] {
                    let n = self.side(side).inbox.len();
                    for _ in 0..n {
                        self.apply(&Op::Deliver(side, 0, Fault::None));
                    }
                }
            } else {
                self.timer();
            }
            assert!(
                self.now <= bound,
                "still closing after {:?}",
                self.now - self.start
            );
        }
        self.settle();
        for (name, peer, other) in [
            ("Alice", &self.alice, &self.bob),
            ("Bob", &self.bob, &self.alice),
        ] {
            assert!(peer.ep.is_closed(), "{name} never finished closing");
            assert_eq!(
                peer.resolved.len(),
                peer.sent.len(),
                "{name}: some lines reported neither delivered nor lost"
            );
            if DELIVERED_MEANS_SHOWN {
                let unseen: Vec<_> = peer.delivered.difference(&other.shown).collect();
                assert!(
                    unseen.is_empty(),
                    "{name}'s lines {unseen:?} were reported delivered and never shown"
                );
            }
        }
    }
}

/// Queues everything `from` wants sent towards `to`.
fn carry(from: &mut Peer, to: &mut Peer, now: Instant) {
    let mut buf = Vec::new();
    let mut n = 0;
    while from.ep.poll_transmit(now, &mut buf).is_some() {
        n += 1;
        assert!(n < 100_000, "poll_transmit never ran dry");
        if to.inbox.len() == QUEUE {
            to.inbox.pop_front();
        }
        to.inbox.push_back(buf.clone());
    }
}

/// Checks one event of `me`, whose peer is `other`.
fn check_event(me: &mut Peer, other: &Peer, event: Event, ordered: bool) {
    trace(|| match &event {
        Event::Message { text, .. } => format!("  {} shows {:.12?}", me.prefix, text),
        other => format!("  {} {other:?}", me.prefix),
    });
    match event {
        Event::Message { text, .. } => {
            let id = text
                .strip_prefix(other.prefix)
                .and_then(|rest| rest.split_once(':'))
                .and_then(|(n, _)| n.parse::<usize>().ok());
            let Some(id) = id.filter(|&id| other.sent.get(id) == Some(&text)) else {
                panic!("shown a line the peer never sent: {text:?}");
            };
            let id = id as u64;
            assert!(me.shown.insert(id), "line {id} shown twice");
            if ordered {
                assert!(
                    me.last_shown.is_none_or(|last| last < id),
                    "line {id} shown after line {:?}",
                    me.last_shown
                );
            }
            me.last_shown = Some(id);
        }
        Event::Delivered { id, .. } => {
            assert!(
                (id.0 as usize) < me.sent.len(),
                "Delivered({}) never sent",
                id.0
            );
            assert!(me.resolved.insert(id.0), "{} resolved twice", id.0);
            me.delivered.insert(id.0);
        }
        Event::Lost { id } => {
            assert!((id.0 as usize) < me.sent.len(), "Lost({}) never sent", id.0);
            assert!(me.resolved.insert(id.0), "{} resolved twice", id.0);
        }
        _ => {}
    }
}

impl Write for Setup {
    fn write(&self, t: &mut Tape) {
        t.u8(self.arq)
            .bool(self.unordered)
            .u8(self.redundancy)
            .u8(self.window)
            .bool(self.small_datagrams)
            .u64(self.seed);
    }
}

impl Write for Side {
    fn write(&self, t: &mut Tape) {
        t.variant(*self as u32, 2);
    }
}

impl Write for Op {
    fn write(&self, t: &mut Tape) {
        const N: u32 = 6;
        match *self {
            Op::Send(side, len, c) => {
                t.variant(0, N);
                side.write(t);
                t.u16(len).u8(c);
            }
            Op::Deliver(side, pick, fault) => {
                t.variant(1, N);
                side.write(t);
                t.u8(pick);
                match fault {
                    Fault::None => t.variant(0, 3),
                    Fault::Duplicate => t.variant(1, 3),
                    Fault::Flip(bit) => t.variant(2, 3).u16(bit),
                };
            }
            Op::Drop(side, pick) => {
                t.variant(2, N);
                side.write(t);
                t.u8(pick);
            }
            Op::Advance(ms) => {
                t.variant(3, N).u16(ms);
            }
            Op::Timer => {
                t.variant(4, N);
            }
            Op::Close(side) => {
                t.variant(5, N);
                side.write(t);
            }
        }
    }
}
