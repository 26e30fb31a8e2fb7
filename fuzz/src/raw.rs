//! The raw endpoint, driven by a fuzzed peer and strangers.
//!
//! Each [`Op`] hands the endpoint a datagram (junk, a framed raw message with a sequence number
//! picked near the last one or anywhere, or a framed packet of another kind), sends a line, lets
//! time pass or closes. Checked after every op, whatever arrives:
//!
//! - no panic; every datagram it sends goes to its peer, fits `max_datagram` and, framed,
//!   decodes to the line that was sent, numbered in sending order;
//! - at most one `Message` per datagram, and none twice for the same sequence number between
//!   two `PeerRestarted` events (a duplicate is reported, not delivered again);
//! - at most one `Peer` event (none with a configured peer), and nothing but drops from anyone
//!   else once the peer is known;
//! - the counters agree with what was seen, and `Gap` ranges are ordered;
//! - after `close`, once its datagrams are out, `is_closed` holds and `send` is refused.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use udpchat_core::{decode, encode, Packet, RawMessage, MAX_UDP_PAYLOAD};
use udpchat_reliable::{Endpoint, Event, RawConfig, RawEndpoint, SendError};

use crate::tape::{Tape, Write};
use crate::{Bytes, Who, PEER};

/// The endpoint's configuration.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Bare UTF-8 datagrams (`--plain`).
    pub plain: bool,
    /// A configured peer ([`PEER`]) instead of learning it from the first datagram.
    pub fixed_peer: bool,
    /// The smallest datagrams (64 bytes) instead of 1200.
    pub small_datagrams: bool,
}

/// One thing that happens to the endpoint.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Arbitrary bytes arrive.
    Junk(Who, Bytes),
    /// A framed raw message arrives.
    Line {
        /// From whom.
        from: Who,
        /// Its sequence number.
        seq: SeqPick,
        /// Text: this many bytes (modulo 2000).
        len: u16,
        /// A variation of the text, so a reused number can come with different bytes.
        variant: u8,
    },
    /// A framed packet of a reliable-mode kind arrives (raw mode must drop it).
    Foreign(Who),
    /// The application sends a line of this many bytes (modulo 2000: some are too long).
    Send(u16),
    /// Time passes (raw mode has no timers; it must not care).
    Advance(u16),
    /// The application closes.
    Close,
}

/// A sequence number relative to the last one the fuzzer used.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqPick {
    /// The next one.
    Next,
    /// The last one again.
    Again,
    /// A little behind.
    Behind(u16),
    /// Ahead.
    Ahead(u16),
    /// Anything.
    Any(u64),
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
    let config = RawConfig {
        nick: "fuzz".into(),
        peer: setup.fixed_peer.then_some(PEER),
        max_datagram: if setup.small_datagrams { 64 } else { 1200 },
        plain: setup.plain,
    };
    let mut h = Harness {
        ep: RawEndpoint::new(config.clone()),
        config,
        now: Instant::now(),
        last_seq: 0,
        sent: 0,
        fed: 0,
        received: 0,
        peers: 0,
        closing: false,
        delivered_seqs: HashSet::new(),
    };
    for op in &ops {
        h.apply(op);
        h.after_op();
    }
    h.ep.close(h.now);
    h.after_op();
    assert!(h.ep.is_closed(), "closed and drained, but not is_closed");
    assert!(
        h.ep.send(h.now, "late").is_err(),
        "send accepted after close"
    );
}

struct Harness {
    ep: RawEndpoint,
    config: RawConfig,
    now: Instant,
    last_seq: u64,
    sent: u64,
    fed: u64,
    received: u64,
    peers: u64,
    closing: bool,
    /// Sequence numbers delivered since the last `PeerRestarted`.
    delivered_seqs: HashSet<u64>,
}

impl Harness {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Junk(who, bytes) => self.feed(*who, &bytes.0),
            Op::Line {
                from,
                seq,
                len,
                variant,
            } => {
                let seq = match *seq {
                    SeqPick::Next => self.last_seq.saturating_add(1),
                    SeqPick::Again => self.last_seq,
                    SeqPick::Behind(n) => self.last_seq.saturating_sub(u64::from(n)),
                    SeqPick::Ahead(n) => self.last_seq.saturating_add(u64::from(n)),
                    SeqPick::Any(s) => s,
                };
                self.last_seq = seq;
                let text = format!("{variant}:{}", "t".repeat(usize::from(*len) % 2000));
                let packet = Packet::Raw(RawMessage {
                    seq,
                    nick: "peer".into(),
                    text,
                });
                if let Ok(d) = encode(&packet, MAX_UDP_PAYLOAD) {
                    self.feed(*from, &d);
                }
            }
            Op::Foreign(who) => {
                let packet = Packet::Ping {
                    dst: udpchat_core::ConnectionId(1),
                };
                if let Ok(d) = encode(&packet, MAX_UDP_PAYLOAD) {
                    self.feed(*who, &d);
                }
            }
            Op::Send(len) => {
                let text = "s".repeat(usize::from(*len) % 2000);
                let peer = self.ep.peer();
                match self.ep.send(self.now, &text) {
                    Ok(id) => {
                        assert_eq!(id.0, self.sent, "ids count from 0 in sending order");
                        self.sent += 1;
                        self.check_sent(&text);
                    }
                    Err(SendError::NoPeer) => assert!(peer.is_none(), "NoPeer with a peer"),
                    Err(SendError::Closed) => assert!(self.closing, "Closed before close"),
                    Err(SendError::TooLong { len, max }) => {
                        assert!(len > max, "refused {len} bytes as above {max}");
                    }
                }
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.ep.handle_timeout(self.now);
                assert_eq!(self.ep.poll_timeout(), None, "raw mode has no timers");
            }
            Op::Close => {
                self.closing = true;
                self.ep.close(self.now);
            }
        }
    }

    fn feed(&mut self, who: Who, datagram: &[u8]) {
        self.fed += 1;
        let before = self.received;
        self.ep.handle_datagram(self.now, who.addr(), datagram);
        self.drain_events();
        assert!(
            self.received - before <= 1,
            "one datagram, several messages"
        );
    }

    /// The datagram for the line just sent: one, to the peer, framed as sent.
    fn check_sent(&mut self, text: &str) {
        let mut buf = Vec::new();
        let to = self.ep.poll_transmit(self.now, &mut buf);
        assert_eq!(
            to,
            self.ep.peer(),
            "a line went somewhere other than the peer"
        );
        assert!(buf.len() <= self.config.max_datagram);
        if self.config.plain {
            assert_eq!(buf, format!("{text}\n").as_bytes());
        } else {
            match decode(&buf) {
                Ok(Packet::Raw(m)) => {
                    assert_eq!(m.seq, self.sent - 1, "lines numbered in sending order");
                    assert_eq!(m.text, text);
                }
                other => panic!("sent a line as {other:?}"),
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.ep.poll_event() {
            match event {
                Event::Message { seq, from, .. } => {
                    assert_eq!(Some(from), self.ep.peer(), "a message from a non-peer");
                    self.received += 1;
                    assert_eq!(seq.is_none(), self.config.plain);
                    if let Some(seq) = seq {
                        assert!(
                            self.delivered_seqs.insert(seq),
                            "message {seq} delivered twice with no restart between"
                        );
                    }
                }
                Event::PeerRestarted => self.delivered_seqs.clear(),
                Event::Peer { addr, .. } => {
                    self.peers += 1;
                    assert!(self.config.peer.is_none(), "Peer event with a fixed peer");
                    assert_eq!(self.peers, 1, "the peer changed");
                    assert_eq!(Some(addr), self.ep.peer());
                }
                Event::Gap { first, last, .. } => assert!(first <= last, "gap {first}..={last}"),
                _ => {}
            }
        }
    }

    fn after_op(&mut self) {
        self.drain_events();
        let mut buf = Vec::new();
        // Lines already checked in `check_sent`; anything left is a bug.
        assert!(
            self.ep.poll_transmit(self.now, &mut buf).is_none(),
            "a datagram nobody sent"
        );
        let s = self.ep.stats();
        assert_eq!(s.datagrams_received, self.fed);
        assert_eq!(s.messages_sent, self.sent);
        assert_eq!(s.datagrams_sent, self.sent);
        assert_eq!(s.messages_received, self.received);
        let dropped =
            s.dropped_checksum + s.dropped_malformed + s.dropped_foreign + s.dropped_stale;
        assert_eq!(
            dropped + s.messages_received + s.duplicates,
            self.fed,
            "every datagram is delivered, a duplicate, or a counted drop"
        );
    }
}

impl Write for Setup {
    fn write(&self, t: &mut Tape) {
        t.bool(self.plain)
            .bool(self.fixed_peer)
            .bool(self.small_datagrams);
    }
}

impl Write for SeqPick {
    fn write(&self, t: &mut Tape) {
        match *self {
            SeqPick::Next => t.variant(0, 5),
            SeqPick::Again => t.variant(1, 5),
            SeqPick::Behind(n) => t.variant(2, 5).u16(n),
            SeqPick::Ahead(n) => t.variant(3, 5).u16(n),
            SeqPick::Any(s) => t.variant(4, 5).u64(s),
        };
    }
}

impl Write for Op {
    fn write(&self, t: &mut Tape) {
        const N: u32 = 6;
        match self {
            Op::Junk(who, bytes) => {
                t.variant(0, N);
                who.write(t);
                t.bytes(&bytes.0);
            }
            Op::Line {
                from,
                seq,
                len,
                variant,
            } => {
                t.variant(1, N);
                from.write(t);
                seq.write(t);
                t.u16(*len).u8(*variant);
            }
            Op::Foreign(who) => {
                t.variant(2, N);
                who.write(t);
            }
            Op::Send(len) => {
                t.variant(3, N).u16(*len);
            }
            Op::Advance(ms) => {
                t.variant(4, N).u16(*ms);
            }
            Op::Close => {
                t.variant(5, N);
            }
        }
    }
}
