//! TCP mode's encryption (`udpchat_secure::SecureStream`): two streams joined by two ordered
//! queues of frames, the way one TCP connection joins them, and an attacker on the path who can
//! alter the byte stream but holds no key.
//!
//! Alice connected (`Initiator`); bob accepted (`Responder`), or also connected ([`Setup`]'s
//! `bob_dials`: TCP's simultaneous open, both `Initiator`). Both hold the same key or
//! (`other_key`) different ones. Each [`Op`] hands the next frame queued towards a side to it
//! (intact, with one bit flipped, or truncated), deletes it, injects a copy of any frame the other
//! side wrote earlier (a replay) or junk bytes, has a side seal a line (a plain udpchat datagram
//! built as the stream's unit tests build one), or lets time pass (the handshake's deadline).
//! Checked after every op (each panic message starts with the invariant's name):
//!
//! - no panic in the stream;
//! - `OPENS_THE_NEXT_SEALED`: every datagram a side opens is exactly the next one the other side
//!   sealed: in order, none twice, none skipped (also right before a key change by time:
//!   [`DELETION_BEFORE_REKEY_REFUSED`]), none forged;
//! - `FAILED_STAYS_FAILED`: once `handle_frame` or `handle_timeout` returned an error on a side,
//!   every later `handle_frame` on it returns [`StreamError::Failed`], it opens nothing, seals
//!   nothing, reports nothing and writes nothing more (besides what the failing call queued);
//! - `ANSWER_NO_LARGER`: what a side writes in answer to a frame (a `Reply` to an `Init`, a
//!   confirmation to a `Reply`, a 16-byte `Reject` to a bad one) is no larger than that frame:
//!   every frame is unauthenticated when it arrives;
//! - `NEVER_PLAIN`: every frame a side writes is one of the encrypted kinds, never a plain udpchat
//!   datagram, and once the side is established only sealed frames; a `Reject` is 16 bytes; a
//!   sealed line is its datagram plus [`OVERHEAD`];
//! - `SEALS_ONLY_ESTABLISHED`: `seal` works exactly when the side is established;
//! - `ESTABLISHED_ONCE`: one `Established` event at most per side, only while it is
//!   established, with the side's own SAS, and both sides' SAS equal; with different keys no
//!   `Established` and nothing opened (`DIFFERENT_KEYS_OPEN_NOTHING`);
//! - `DEADLINE`: `handle_timeout` fails a side exactly when it is still in the handshake
//!   [`HANDSHAKE_TIMEOUT`] after the start, never before and never once established;
//! - `CLEAN_SESSION_COMPLETES`: if the attacker never acted and no deadline passed, then once
//!   every queued frame is delivered both sides are established and have opened everything the
//!   other sealed (same key), or both have failed (different keys). Alice and bob both dialling
//!   with the same seed is left out: their `Init`s are identical, which the stream rightly takes
//!   for its own `Init` reflected back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use udpchat_core::sealed::{sealed_kind, SealedHeader, SealedKind, REJECT_LEN};
use udpchat_core::{ConnectionId, Data, Packet, SeqNum};
use udpchat_reliable::HandshakeFailure;
use udpchat_secure::session::{EPOCH_BITS, EPOCH_DATAGRAMS};
use udpchat_secure::stream::HANDSHAKE_TIMEOUT;
use udpchat_secure::{
    Psk, SecureConfig, SecureStream, StreamError, StreamEvent, StreamRole, OVERHEAD,
};

use crate::tape::{Tape, Write};
use crate::{trace, Bytes, PEER};

/// Check that a deletion just before the sender's key changed by time is refused too. It was
/// not: the stream let the first frame of an epoch follow any frame of the epoch before (a
/// sender moves on after `REKEY_AFTER` whatever its count), so an attacker who deleted the last
/// frames of an epoch went unnoticed (`corpus/secure_stream/deleted-before-rekey`). Fixed by
/// authenticating each sealed frame's place in the stream; on. Off, exactly that case would be
/// let through ([`tail_deleted_before_rekey`]).
pub const DELETION_BEFORE_REKEY_REFUSED: bool = true;

/// With [`DELETION_BEFORE_REKEY_REFUSED`] off: whether a side opening `sender`'s datagram `at`
/// when `next` was due is that known case: `at` is the first of its key epoch and everything
/// skipped was sealed in the epochs before it.
fn tail_deleted_before_rekey(sender: &End, next: usize, at: usize) -> bool {
    let epoch = |counter: u64| counter >> EPOCH_BITS;
    let counter = sender.counters[at];
    !DELETION_BEFORE_REKEY_REFUSED
        && counter.is_multiple_of(EPOCH_DATAGRAMS)
        && sender.counters[next..at]
            .iter()
            .all(|&c| epoch(c) < epoch(counter))
}

/// The run's setup.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Alice's randomness.
    pub alice_seed: u8,
    /// Bob's randomness.
    pub bob_seed: u8,
    /// Bob holds another key (a different passphrase).
    pub other_key: bool,
    /// Bob connected too (a simultaneous open: both are `Initiator`).
    pub bob_dials: bool,
}

/// One of the two ends.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Connected: always `Initiator`.
    Alice,
    /// Accepted (`Responder`), or connected too.
    Bob,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Alice => 0,
            Side::Bob => 1,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Alice => Side::Bob,
            Side::Bob => Side::Alice,
        }
    }
}

/// One thing that happens. A `Side` in a network op is the receiving side: `Deliver(Bob)`
/// hands alice's next frame to bob.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The next frame towards this side arrives.
    Deliver(Side),
    /// The attacker flips this bit (modulo the frame's bits) of the next frame towards this side.
    Flip(Side, u16),
    /// The attacker cuts the next frame towards this side to this many bytes (modulo its length).
    Truncate(Side, u16),
    /// The attacker deletes the next frame towards this side.
    Delete(Side),
    /// The attacker injects a copy of the n-th frame (modulo how many) the other side wrote.
    Replay(Side, u16),
    /// The attacker injects these bytes as a frame towards this side.
    Junk(Side, Bytes),
    /// This side seals a line of this many bytes (modulo 600) and writes it.
    Send(Side, u16),
    /// Time passes, in milliseconds; both sides' handshake deadline is checked.
    Advance(u16),
}

/// Reads one input: a [`Setup`], then [`Op`]s.
pub fn read(data: &[u8]) -> Option<(Setup, Vec<Op>)> {
    crate::read_input(data)
}

/// A plain udpchat datagram carrying `text`, as TCP mode frames a line.
pub fn datagram(message: u64, text: &str) -> Vec<u8> {
    let packet = Packet::Data(Data {
        dst: ConnectionId(0),
        seq: SeqNum(message),
        message,
        fragment: 0,
        fragments: 1,
        token: 0,
        payload: text.as_bytes().to_vec(),
        ack: None,
    });
    udpchat_core::encode(&packet, 65_507).expect("a line under 600 bytes encodes")
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((setup, ops)) = read(data) else {
        return;
    };
    let start = Instant::now();
    let bob_role = if setup.bob_dials {
        StreamRole::Initiator
    } else {
        StreamRole::Responder
    };
    let bob_key = if setup.other_key { 2 } else { 1 };
    let mut h = Harness {
        sides: [
            End::new("alice", 1, setup.alice_seed, StreamRole::Initiator, start),
            End::new("bob", bob_key, setup.bob_seed, bob_role, start),
        ],
        other_key: setup.other_key,
        start,
        now: start,
        attacked: false,
        timed_out: false,
    };
    h.drain(Side::Alice, false);
    h.drain(Side::Bob, false);
    for op in &ops {
        trace(|| format!("{:>8?} {op:?}", h.now - h.start));
        h.apply(op);
    }
    let reflected = setup.bob_dials && setup.alice_seed == setup.bob_seed;
    if h.attacked || h.timed_out || reflected {
        return;
    }
    trace(|| "the network delivers the rest".into());
    h.deliver_all();
    let [alice, bob] = &h.sides;
    if setup.other_key {
        assert!(
            alice.failed && bob.failed,
            "CLEAN_SESSION_COMPLETES: different keys, and a side has not failed \
             (alice {}, bob {})",
            alice.failed,
            bob.failed
        );
    } else {
        for (me, other) in [(alice, bob), (bob, alice)] {
            assert!(
                !me.failed && me.stream.is_established(),
                "CLEAN_SESSION_COMPLETES: {} is not established after a clean session",
                me.name
            );
            assert_eq!(
                me.opened,
                other.sealed.len(),
                "CLEAN_SESSION_COMPLETES: {} opened {} of the {} datagrams {} sealed",
                me.name,
                me.opened,
                other.sealed.len(),
                other.name
            );
        }
    }
}

/// One side: its stream and what the harness knows of it.
struct End {
    name: &'static str,
    stream: SecureStream,
    /// Frames it wrote that the other side has not read yet (its half of the connection).
    in_flight: VecDeque<Vec<u8>>,
    /// Every frame it wrote, for the attacker's replays.
    wrote: Vec<Vec<u8>>,
    /// The plain datagrams it sealed, in order.
    sealed: Vec<Vec<u8>>,
    /// Their counters.
    counters: Vec<u64>,
    /// How many of the other side's sealed datagrams it opened.
    opened: usize,
    /// A call returned an error.
    failed: bool,
    /// The SAS of its `Established` event.
    sas: Option<String>,
}

impl End {
    fn new(name: &'static str, key: u8, seed: u8, role: StreamRole, now: Instant) -> End {
        let config = SecureConfig {
            psk: Psk::from_bytes([key; 32]),
            seed: [seed; 32],
        };
        End {
            name,
            stream: SecureStream::new(config, role, PEER, now).expect("a stream starts"),
            in_flight: VecDeque::new(),
            wrote: Vec::new(),
            sealed: Vec::new(),
            counters: Vec::new(),
            opened: 0,
            failed: false,
            sas: None,
        }
    }
}

struct Harness {
    /// Alice, bob (by [`Side::index`]).
    sides: [End; 2],
    other_key: bool,
    start: Instant,
    now: Instant,
    /// The attacker altered, deleted or injected a frame.
    attacked: bool,
    /// A side failed at its deadline.
    timed_out: bool,
}

impl Harness {
    fn side(&mut self, side: Side) -> &mut End {
        &mut self.sides[side.index()]
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Deliver(to) => {
                if let Some(frame) = self.side(to.other()).in_flight.pop_front() {
                    self.feed(*to, &frame);
                }
            }
            Op::Flip(to, bit) => {
                if let Some(mut frame) = self.side(to.other()).in_flight.pop_front() {
                    self.attacked = true;
                    if !frame.is_empty() {
                        let bit = usize::from(*bit) % (frame.len() * 8);
                        frame[bit / 8] ^= 1 << (bit % 8);
                    }
                    self.feed(*to, &frame);
                }
            }
            Op::Truncate(to, len) => {
                if let Some(frame) = self.side(to.other()).in_flight.pop_front() {
                    self.attacked = true;
                    let len = usize::from(*len) % frame.len().max(1);
                    self.feed(*to, &frame[..len]);
                }
            }
            Op::Delete(to) => {
                if self.side(to.other()).in_flight.pop_front().is_some() {
                    self.attacked = true;
                }
            }
            Op::Replay(to, n) => {
                let wrote = &self.side(to.other()).wrote;
                if !wrote.is_empty() {
                    let frame = wrote[usize::from(*n) % wrote.len()].clone();
                    self.attacked = true;
                    self.feed(*to, &frame);
                }
            }
            Op::Junk(to, bytes) => {
                self.attacked = true;
                self.feed(*to, &bytes.0);
            }
            Op::Send(side, len) => self.send(*side, *len),
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timeout(Side::Alice);
                self.timeout(Side::Bob);
            }
        }
    }

    /// Hands `frame` to `to`, and checks what it opens and writes.
    fn feed(&mut self, to: Side, frame: &[u8]) {
        let now = self.now;
        let other_key = self.other_key;
        let [alice, bob] = &mut self.sides;
        let (me, other) = match to {
            Side::Alice => (alice, bob),
            Side::Bob => (bob, alice),
        };
        let was_failed = me.failed;
        let result = me.stream.handle_frame(now, frame);
        trace(|| format!("  {} reads {} bytes: {result:?}", me.name, frame.len()));
        match result {
            Ok(opened) => {
                assert!(
                    !was_failed,
                    "FAILED_STAYS_FAILED: {} took a frame after an error",
                    me.name
                );
                if let Some(datagram) = opened {
                    assert!(
                        !other_key,
                        "DIFFERENT_KEYS_OPEN_NOTHING: {} opened a datagram",
                        me.name
                    );
                    let at = other.sealed[me.opened..]
                        .iter()
                        .position(|d| *d == datagram)
                        .map(|i| me.opened + i);
                    let next = at == Some(me.opened);
                    assert!(
                        next || at
                            .is_some_and(|at| tail_deleted_before_rekey(other, me.opened, at)),
                        "OPENS_THE_NEXT_SEALED: {} opened a datagram that is not the next one {} \
                         sealed ({} of {} opened; this one is {})",
                        me.name,
                        other.name,
                        me.opened,
                        other.sealed.len(),
                        at.map_or("none of them".into(), |at| format!("number {at}"))
                    );
                    me.opened = at.map_or(me.opened, |at| at + 1);
                }
            }
            Err(e) => {
                if was_failed {
                    assert_eq!(
                        e,
                        StreamError::Failed,
                        "FAILED_STAYS_FAILED: {} after an error",
                        me.name
                    );
                }
                me.failed = true;
            }
        }
        let answered = self.drain(to, was_failed);
        assert!(
            answered <= frame.len(),
            "ANSWER_NO_LARGER: {} wrote {answered} bytes in answer to a {}-byte frame",
            self.side(to).name,
            frame.len()
        );
    }

    /// `side` seals a line, if it can, and writes it.
    fn send(&mut self, side: Side, len: u16) {
        let now = self.now;
        let me = self.side(side);
        let text = format!(
            "{} line {} {}",
            me.name,
            me.sealed.len(),
            "x".repeat(usize::from(len) % 600)
        );
        let plain = datagram(me.sealed.len() as u64, &text);
        let established = me.stream.is_established();
        let mut frame = Vec::new();
        let result = me.stream.seal(now, &plain, &mut frame);
        trace(|| format!("  {} seals {} bytes: {result:?}", me.name, plain.len()));
        match result {
            Ok(()) => {
                assert!(
                    established && !me.failed,
                    "SEALS_ONLY_ESTABLISHED: {} sealed before the handshake or after an error",
                    me.name
                );
                assert_eq!(
                    sealed_kind(&frame),
                    Some(SealedKind::Sealed),
                    "NEVER_PLAIN: {} sealed into something else",
                    me.name
                );
                assert_eq!(
                    frame.len(),
                    plain.len() + OVERHEAD,
                    "NEVER_PLAIN: {}'s sealed line is not its datagram plus the overhead",
                    me.name
                );
                let header = SealedHeader::parse(&frame).expect("a sealed frame has a header");
                me.counters.push(header.counter);
                me.sealed.push(plain);
                me.wrote.push(frame.clone());
                me.in_flight.push_back(frame);
            }
            Err(e) => {
                assert!(
                    !established,
                    "SEALS_ONLY_ESTABLISHED: {} established, and seal failed: {e}",
                    me.name
                );
                let expected = if me.failed {
                    StreamError::Failed
                } else {
                    StreamError::NotEstablished
                };
                assert_eq!(e, expected, "SEALS_ONLY_ESTABLISHED: {}", me.name);
            }
        }
        let failed = self.side(side).failed;
        self.drain(side, failed);
    }

    /// `side` checks its handshake deadline at the current time.
    fn timeout(&mut self, side: Side) {
        let now = self.now;
        let deadline = self.start + HANDSHAKE_TIMEOUT;
        let me = self.side(side);
        let was_failed = me.failed;
        let due = !me.failed && !me.stream.is_established() && now >= deadline;
        match me.stream.handle_timeout(now) {
            Ok(()) => assert!(
                !due,
                "DEADLINE: {} is still in the handshake after {HANDSHAKE_TIMEOUT:?}",
                me.name
            ),
            Err(e) => {
                trace(|| format!("  {} times out: {e}", me.name));
                assert!(
                    due,
                    "DEADLINE: {} failed at a timeout it was not due (failed {}, established \
                     {}): {e}",
                    me.name,
                    me.failed,
                    me.stream.is_established()
                );
                assert_eq!(
                    e.handshake_failure(),
                    Some(HandshakeFailure::NoAnswer),
                    "DEADLINE: {}",
                    me.name
                );
                me.failed = true;
                self.timed_out = true;
            }
        }
        self.drain(side, was_failed);
    }

    /// Takes what `side` wrote and reported since the last call; checks it. Returns the bytes
    /// written. `was_failed`: the side had already failed before the call that is being drained.
    fn drain(&mut self, side: Side, was_failed: bool) -> usize {
        let other_key = self.other_key;
        let [alice, bob] = &mut self.sides;
        let (me, other) = match side {
            Side::Alice => (alice, bob),
            Side::Bob => (bob, alice),
        };
        let mut bytes = 0;
        while let Some(frame) = me.stream.poll_transmit() {
            assert!(
                !was_failed,
                "FAILED_STAYS_FAILED: {} wrote after its error",
                me.name
            );
            let kind = sealed_kind(&frame);
            assert!(
                kind.is_some() && udpchat_core::decode(&frame).is_err(),
                "NEVER_PLAIN: {} wrote a frame that is not encrypted",
                me.name
            );
            if me.stream.is_established() || me.sas.is_some() {
                assert_eq!(
                    kind,
                    Some(SealedKind::Sealed),
                    "NEVER_PLAIN: {} wrote an unsealed frame after the handshake",
                    me.name
                );
            }
            if kind == Some(SealedKind::Reject) {
                assert_eq!(frame.len(), REJECT_LEN, "NEVER_PLAIN: {}'s Reject", me.name);
            }
            trace(|| format!("  {} writes {:?}, {} bytes", me.name, kind, frame.len()));
            bytes += frame.len();
            me.wrote.push(frame.clone());
            me.in_flight.push_back(frame);
        }
        while let Some(event) = me.stream.poll_event() {
            let StreamEvent::Established { sas } = event;
            trace(|| format!("  {} established, SAS {sas}", me.name));
            assert!(
                !other_key,
                "DIFFERENT_KEYS_OPEN_NOTHING: {} established with another key",
                me.name
            );
            assert!(
                me.sas.is_none(),
                "ESTABLISHED_ONCE: {} established twice",
                me.name
            );
            assert!(
                !me.failed && me.stream.sas() == Some(sas.as_str()),
                "ESTABLISHED_ONCE: {}'s event, and the stream is not established with its SAS",
                me.name
            );
            if let Some(theirs) = &other.sas {
                assert_eq!(theirs, &sas, "ESTABLISHED_ONCE: the two sides' SAS differ");
            }
            me.sas = Some(sas);
        }
        if me.failed {
            assert!(
                !me.stream.is_established() && me.stream.sas().is_none(),
                "FAILED_STAYS_FAILED: {} still established after an error",
                me.name
            );
            assert!(
                me.stream.poll_timeout().is_none(),
                "FAILED_STAYS_FAILED: {} still has a deadline after an error",
                me.name
            );
        }
        bytes
    }

    /// Delivers every frame in flight, both ways, until both sides are quiet.
    fn deliver_all(&mut self) {
        loop {
            let mut moved = false;
            for to in [Side::Bob, Side::Alice] {
                while let Some(frame) = self.side(to.other()).in_flight.pop_front() {
                    moved = true;
                    self.feed(to, &frame);
                }
            }
            if !moved {
                return;
            }
        }
    }
}

impl Write for Setup {
    fn write(&self, t: &mut Tape) {
        t.u8(self.alice_seed)
            .u8(self.bob_seed)
            .bool(self.other_key)
            .bool(self.bob_dials);
    }
}

impl Write for Side {
    fn write(&self, t: &mut Tape) {
        t.variant(self.index() as u32, 2);
    }
}

impl Write for Op {
    fn write(&self, t: &mut Tape) {
        const N: u32 = 8;
        match self {
            Op::Deliver(to) => {
                t.variant(0, N);
                to.write(t);
            }
            Op::Flip(to, bit) => {
                t.variant(1, N);
                to.write(t);
                t.u16(*bit);
            }
            Op::Truncate(to, len) => {
                t.variant(2, N);
                to.write(t);
                t.u16(*len);
            }
            Op::Delete(to) => {
                t.variant(3, N);
                to.write(t);
            }
            Op::Replay(to, n) => {
                t.variant(4, N);
                to.write(t);
                t.u16(*n);
            }
            Op::Junk(to, bytes) => {
                t.variant(5, N);
                to.write(t);
                t.bytes(&bytes.0);
            }
            Op::Send(side, len) => {
                t.variant(6, N);
                side.write(t);
                t.u16(*len);
            }
            Op::Advance(ms) => {
                t.variant(7, N).u16(*ms);
            }
        }
    }
}
