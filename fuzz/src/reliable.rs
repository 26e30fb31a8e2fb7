//! The reliable endpoint, driven by a fuzzed peer.
//!
//! The fuzzer plays the peer (and strangers): each [`Op`] hands the endpoint a datagram (junk
//! bytes, or a well-formed packet whose ids and sequence numbers are picked *relative to the
//! session's real ones*: ours, the endpoint's current or an earlier id, the next sequence number,
//! a little behind or ahead, or anything), lets time pass, fires the endpoint's timer, sends a
//! line, or closes. After every op the harness drains what the endpoint transmits and reports,
//! and checks what must hold whatever the peer does:
//!
//! - no panic, and every datagram it sends decodes and fits `max_datagram`, to its peer;
//! - the counters agree with what was seen (datagrams in and out, messages sent, received,
//!   delivered, lost), RTT figures are no longer than the time that passed, and no more is in
//!   flight than was ever sent;
//! - `Delivered`/`Lost` name only ids `send` returned, each at most once in all, and `Delivered`
//!   only for a message whose data the endpoint actually transmitted;
//! - no more `Message` events in a session than distinct data packets (sequence numbers) the
//!   fuzzer sent in it: nothing is delivered twice or made up;
//! - a timer that fired moves on: the deadline does not stay in the past (a driver would spin);
//! - *delivered means shown, and forged acks prove nothing*: the fuzzer's acks either echo the
//!   tokens of what they acknowledge (the peer's word: what its application was handed) or carry
//!   a guessed echo (an attacker who knows the connection id but never saw the data). A message
//!   is reported `Delivered` only once acks with the right echo said every one of its fragments
//!   was delivered (their delivered point passed it, or their ranges held it with
//!   `ranges_delivered`); guessed acks never count, whatever they claim;
//! - every ack the endpoint sends echoes the tokens of data the fuzzer really sent it in this
//!   session (the sum over what it acknowledges), its delivered point is no further than its
//!   cumulative ack, and resends keep their packet's token;
//! - *a forged `Hello` does not end a live session*: a `Hello` with a new id from the peer's
//!   address ends the session (`PeerRestarted`) only after the session has been silent (no
//!   packet of it from the peer) for three retransmission timeouts since such a `Hello` came.
//! - in the end, `close` finishes (`is_closed`) within bounded virtual time with nobody
//!   answering, and then every message sent has been reported delivered or lost.
//!
//! Memory is bounded by libFuzzer's `-rss_limit_mb` and `-malloc_limit_mb` (see `run.sh`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use udpchat_core::{
    decode, encode, Ack, AckRange, ConnectionId, Data, Hello, Packet, RawMessage, SeqNum, Welcome,
    MAX_BUNDLE, MAX_UDP_PAYLOAD,
};
use udpchat_reliable::{
    Arq, CongestionControl, Delivery, Endpoint, Event, Redundancy, ReliableConfig, ReliableEndpoint,
};

use crate::tape::{Tape, Write};
use crate::{Bytes, Who, PEER};

/// Check that a fired timer moves past `now` within three rounds even when the smoothed RTT is
/// zero (a handshake answered in no virtual time). On since the fix of the defect in
/// `corpus/reliable_endpoint/tail-copy-timer-zero-rtt` (the tail-copy timer waits at
/// least 1 ms); its input is in the corpus as a regression seed. Off, such a run may take up to
/// 10,000 rounds (an endless spin still fails).
pub const ZERO_RTT_TIMERS_MOVE_ON: bool = true;

/// The endpoint's configuration, from a few fuzzed knobs (always a valid one).
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Listen for anyone's `Hello` (no `--peer`), instead of opening to [`PEER`].
    pub listener: bool,
    /// 0: selective repeat, 1: go-back-N, 2: stop-and-wait (modulo 3).
    pub arq: u8,
    /// Unordered delivery.
    pub unordered: bool,
    /// No congestion control.
    pub no_congestion: bool,
    /// Redundant copies per datagram (modulo 4).
    pub redundancy: u8,
    /// Receive window: 1, 4, 64 or 512 packets (by the low two bits).
    pub window: u8,
    /// The smallest datagram size (128 bytes) instead of 1200: more fragments.
    pub small_datagrams: bool,
    /// Selective-ack ranges per ack: 1 + this modulo 8.
    pub ack_ranges: u8,
    /// The endpoint's random seed (its connection ids).
    pub seed: u64,
}

impl Setup {
    /// The configuration this setup stands for.
    pub fn config(&self) -> ReliableConfig {
        ReliableConfig {
            nick: "fuzz".into(),
            max_datagram: if self.small_datagrams { 128 } else { 1200 },
            max_message: 4096,
            window: [1, 4, 64, 512][usize::from(self.window & 3)],
            arq: [Arq::SelectiveRepeat, Arq::GoBackN, Arq::StopAndWait][usize::from(self.arq % 3)],
            congestion: if self.no_congestion {
                CongestionControl::None
            } else {
                CongestionControl::NewReno
            },
            delivery: if self.unordered {
                Delivery::Unordered
            } else {
                Delivery::Ordered
            },
            redundancy: Redundancy::Fixed(self.redundancy % 4),
            max_ack_ranges: 1 + usize::from(self.ack_ranges % 8),
            ..ReliableConfig::default()
        }
    }
}

/// A connection id, picked relative to the session.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPick {
    /// The endpoint's current id.
    Endpoint,
    /// One of the endpoint's earlier ids (the n-th most recent, modulo how many there were).
    EndpointBefore(u8),
    /// The fuzzer's own current id.
    Mine,
    /// A new id for the fuzzer (in a `Hello` or `Welcome` source: a new session).
    Fresh(u64),
    /// Any id at all.
    Any(u64),
}

/// A sequence number or message number, picked relative to the fuzzer's own counter.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqPick {
    /// The next one (the counter advances).
    Next,
    /// The same as the last one used again.
    Again,
    /// A little behind the counter.
    Behind(u8),
    /// Ahead of the counter.
    Ahead(u16),
    /// Anything.
    Any(u64),
}

/// An acknowledgement, relative to what the endpoint has sent.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct AckPick {
    /// Cumulative ack this far below the endpoint's next sequence number (0: everything).
    pub behind: u8,
    /// Or, if set, this cumulative ack instead.
    pub absolute: Option<u64>,
    /// How many of `ranges` to use (modulo 5).
    pub count: u8,
    /// Selective ranges above the cumulative ack, as (gap before, length) pairs.
    pub ranges: [(u8, u8); 4],
    /// Advertised receive window.
    pub window: u32,
    /// Ack delay, microseconds.
    pub delay_us: u16,
    /// Delivered point this far below the cumulative ack.
    pub undelivered: u8,
    /// The ranges count as delivered (an unordered receiver's claim).
    pub ranges_delivered: bool,
    /// Its echo.
    pub echo: EchoPick,
}

/// An ack's echo: the honest one, or a forger's guess.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoPick {
    /// The sum of the tokens of every packet the ack acknowledges, as the peer that received
    /// them computes it (0 if the ack names packets the endpoint never sent).
    True,
    /// A guess by somebody who never saw the data: these bits, mixed (see [`crate::guess`]).
    Guess(u64),
    /// Zero, the echo of an ack that acknowledges nothing.
    Zero,
}

/// A data packet's fields.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct DataPick {
    /// Whose connection it names.
    pub dst: IdPick,
    /// Its packet sequence number.
    pub seq: SeqPick,
    /// Its message number.
    pub message: SeqPick,
    /// Fragment index and count (count 0 and index ≥ count are allowed: near-valid).
    pub fragment: u8,
    /// Fragment count.
    pub fragments: u8,
    /// Payload: this many bytes (modulo 1200), ASCII or (if set) not UTF-8 at all.
    pub len: u16,
    /// A payload of bytes that are not UTF-8.
    pub binary: bool,
    /// A piggybacked ack.
    pub ack: Option<AckPick>,
}

/// A well-formed packet, built from fuzzed fields.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// Handshake opening.
    Hello {
        /// Source id.
        src: IdPick,
        /// Nickname length (modulo 64).
        nick: u8,
        /// Offered window.
        window: u32,
    },
    /// Handshake answer.
    Welcome {
        /// Source id.
        src: IdPick,
        /// Destination id.
        dst: IdPick,
        /// Offered window.
        window: u32,
    },
    /// One data packet.
    Data(DataPick),
    /// A data packet plus `copies` (modulo 16) copies of earlier ones.
    Bundle {
        /// The first packet.
        first: DataPick,
        /// How many earlier packets come along (they go back from the first one's number).
        copies: u8,
    },
    /// A standalone ack.
    Ack {
        /// Destination id.
        dst: IdPick,
        /// What it acknowledges.
        ack: AckPick,
    },
    /// Keepalive probe.
    Ping(IdPick),
    /// Keepalive answer.
    Pong(IdPick),
    /// The peer leaves.
    Close {
        /// Destination id.
        dst: IdPick,
        /// Its final ack.
        ack: Option<AckPick>,
    },
    /// A raw-mode line (reliable mode must drop it).
    Raw(u64),
}

/// One thing that happens to the endpoint.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Arbitrary bytes arrive.
    Junk(Who, Bytes),
    /// A well-formed packet arrives.
    Packet(Who, Wire),
    /// Time passes, in milliseconds (up to a minute: idle timeouts happen).
    Advance(u16),
    /// Time jumps to the endpoint's next deadline, which fires.
    Timer,
    /// `handle_timeout` now, whether or not anything is due.
    Poke,
    /// The application sends a line: this many characters (modulo 3000: some lines are too
    /// long) of the character picked by the second field (ASCII, 2-, 3- and 4-byte UTF-8, a
    /// newline, a bidi override), so fragments split characters.
    Send(u16, u8),
    /// The application closes.
    Close,
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
    let mut h = Harness::new(&setup);
    for op in &ops {
        crate::trace(|| format!("{:>8?} {op:?}", h.now - h.start));
        h.apply(op);
        h.after_op();
    }
    crate::trace(|| "close with nobody answering".into());
    h.finish();
}

/// The endpoint under test and everything the harness knows about its session.
struct Harness {
    ep: ReliableEndpoint,
    config: ReliableConfig,
    start: Instant,
    now: Instant,
    // What the fuzzer-peer uses.
    mine: ConnectionId,
    next_seq: u64,
    next_message: u64,
    // What the endpoint did.
    endpoint_ids: Vec<ConnectionId>,
    endpoint_next_seq: u64,
    transmitted_messages: HashSet<u64>,
    // Bookkeeping for the invariants.
    sent: u64,
    fragments_sent: u64,
    resolved: HashSet<u64>,
    delivered: u64,
    lost: u64,
    received: u64,
    fed: u64,
    fed_bytes: u64,
    out: u64,
    out_bytes: u64,
    session_seqs: BTreeSet<u64>,
    session_messages: u64,
    // Delivered means shown: what the endpoint sent, per session, and what honest acks claimed.
    sessions: HashMap<ConnectionId, Sent>,
    /// Each message's session, fragment count and the sequence numbers it went out as.
    messages: HashMap<u64, (ConnectionId, u32, BTreeSet<u64>)>,
    /// Tokens of the data the fuzzer sent into the endpoint's current session, by sequence
    /// number; `None` once two packets of one number carried different tokens (junk can).
    fed_tokens: Option<HashMap<u64, u32>>,
    /// When the first `Hello` (from anyone) came since the session last heard from its peer:
    /// a restart probe cannot have started earlier.
    probe_start: Option<Instant>,
    /// The session `probe_start` is about.
    probe_session: ConnectionId,
    /// `Piece`s fed, by datagram id, to note what the endpoint may join (a superset of what it
    /// keeps: noting more only makes the checks laxer). Cleared past 64 datagrams.
    pieces: HashMap<u32, Vec<Option<Vec<u8>>>>,
}

/// One session of the endpoint, as the harness saw it go out and get acknowledged.
#[derive(Default)]
struct Sent {
    /// Its data packets' tokens, by sequence number.
    tokens: Vec<Option<u32>>,
    /// The furthest delivered point an ack with the right echo claimed.
    delivered: u64,
    /// Sequence numbers in ranges an ack with the right echo called delivered.
    ranges_delivered: BTreeSet<u64>,
}

impl Sent {
    /// The echo an honest receiver puts on `ack`, or `None` if it names packets never sent (or
    /// ranges the sender cannot check: below the cumulative ack, or backwards).
    fn echo(&self, ack: &Ack) -> Option<u32> {
        let sum = |from: u64, to: u64| -> Option<u32> {
            (from..to).try_fold(0u32, |sum, seq| {
                let token = (*self.tokens.get(usize::try_from(seq).ok()?)?)?;
                Some(sum.wrapping_add(token))
            })
        };
        let mut echo = sum(0, ack.cumulative.0)?;
        for r in &ack.ranges {
            if r.first < ack.cumulative || r.first > r.last {
                return None;
            }
            echo = echo.wrapping_add(sum(r.first.0, r.last.0.checked_add(1)?)?);
        }
        Some(echo)
    }
}

impl Harness {
    fn new(setup: &Setup) -> Harness {
        let config = setup.config();
        let peer = (!setup.listener).then_some(PEER);
        let ep = match ReliableEndpoint::new(config.clone(), peer, setup.seed) {
            Ok(ep) => ep,
            Err(e) => panic!("the harness built an invalid config: {e}"),
        };
        let start = Instant::now();
        let first_id = ep.local_id();
        Harness {
            endpoint_ids: vec![first_id],
            ep,
            config,
            start,
            now: start,
            mine: ConnectionId(0x5EED_F00D),
            next_seq: 0,
            next_message: 0,
            endpoint_next_seq: 0,
            transmitted_messages: HashSet::new(),
            sent: 0,
            fragments_sent: 0,
            resolved: HashSet::new(),
            delivered: 0,
            lost: 0,
            received: 0,
            fed: 0,
            fed_bytes: 0,
            out: 0,
            out_bytes: 0,
            session_seqs: BTreeSet::new(),
            session_messages: 0,
            sessions: HashMap::new(),
            messages: HashMap::new(),
            fed_tokens: Some(HashMap::new()),
            probe_start: None,
            pieces: HashMap::new(),
            probe_session: first_id,
        }
    }

    /// The endpoint's current session, as sent.
    fn sent(&mut self) -> &mut Sent {
        self.sessions.entry(self.ep.local_id()).or_default()
    }

    /// The echo an honest peer puts on `ack` for the endpoint's current session.
    fn echo_of(&self, ack: &Ack) -> Option<u32> {
        self.sessions.get(&self.ep.local_id())?.echo(ack)
    }

    /// The token the fuzzer's data packet `seq` carries: fixed per sequence number (a resend
    /// keeps it), and not one the endpoint could predict.
    fn token(&self, seq: u64) -> u32 {
        crate::guess(seq ^ self.mine.0.rotate_left(17))
    }

    fn id(&mut self, pick: IdPick) -> ConnectionId {
        match pick {
            IdPick::Endpoint => self.ep.local_id(),
            IdPick::EndpointBefore(n) => {
                let ids = &self.endpoint_ids;
                ids[ids.len() - 1 - usize::from(n) % ids.len()]
            }
            IdPick::Mine => self.mine,
            IdPick::Fresh(id) => {
                self.mine = ConnectionId(id);
                self.next_seq = 0;
                self.next_message = 0;
                self.mine
            }
            IdPick::Any(id) => ConnectionId(id),
        }
    }

    fn seq(counter: &mut u64, pick: SeqPick) -> u64 {
        match pick {
            SeqPick::Next => {
                let s = *counter;
                *counter = counter.saturating_add(1);
                s
            }
            SeqPick::Again => counter.saturating_sub(1),
            SeqPick::Behind(n) => counter.saturating_sub(u64::from(n) + 1),
            SeqPick::Ahead(n) => counter.saturating_add(u64::from(n) + 1),
            SeqPick::Any(s) => s,
        }
    }

    fn ack(&self, pick: &AckPick) -> Ack {
        let cumulative = pick.absolute.unwrap_or(
            self.endpoint_next_seq
                .saturating_sub(u64::from(pick.behind)),
        );
        let mut ranges = Vec::new();
        let mut at = cumulative;
        for &(gap, len) in pick.ranges.iter().take(usize::from(pick.count % 5)) {
            let first = at.saturating_add(u64::from(gap));
            let last = first.saturating_add(u64::from(len));
            ranges.push(AckRange {
                first: SeqNum(first),
                last: SeqNum(last),
            });
            at = last.saturating_add(1);
        }
        let delivered = cumulative.saturating_sub(u64::from(pick.undelivered));
        let mut ack = Ack {
            cumulative: SeqNum(cumulative),
            ranges,
            delay_us: u64::from(pick.delay_us),
            window: pick.window,
            delivered: SeqNum(delivered),
            echo: 0,
            ranges_delivered: pick.ranges_delivered,
        };
        ack.echo = match pick.echo {
            EchoPick::True => self.echo_of(&ack).unwrap_or(0),
            EchoPick::Guess(bits) => crate::guess(bits),
            EchoPick::Zero => 0,
        };
        ack
    }

    fn data(&mut self, pick: &DataPick) -> Data {
        let dst = self.id(pick.dst);
        let seq = Self::seq(&mut self.next_seq, pick.seq);
        let message = Self::seq(&mut self.next_message, pick.message);
        let first = if pick.binary { 0x80 } else { b'a' };
        let payload = (0..usize::from(pick.len) % 1200)
            .map(|i| first + (i % 26) as u8)
            .collect();
        Data {
            dst,
            seq: SeqNum(seq),
            message,
            fragment: u32::from(pick.fragment),
            fragments: u32::from(pick.fragments),
            // The endpoint never checks the tokens of what it receives (it echoes them).
            token: self.token(seq),
            payload,
            ack: pick.ack.as_ref().map(|a| self.ack(a)),
        }
    }

    fn packet(&mut self, wire: &Wire) -> Packet {
        match wire {
            Wire::Hello { src, nick, window } => Packet::Hello(Hello {
                src: self.id(*src),
                nick: "n".repeat(usize::from(nick % 64)),
                window: *window,
            }),
            Wire::Welcome { src, dst, window } => Packet::Welcome(Welcome {
                src: self.id(*src),
                dst: self.id(*dst),
                nick: "peer".into(),
                window: *window,
            }),
            Wire::Data(pick) => Packet::Data(self.data(pick)),
            Wire::Bundle { first, copies } => {
                let first = self.data(first);
                let mut items = vec![first.clone()];
                for back in 1..=u64::from(copies % MAX_BUNDLE as u8) {
                    let mut copy = first.clone();
                    copy.seq = SeqNum(first.seq.0.saturating_sub(back));
                    copy.message = first.message.saturating_sub(back);
                    copy.token = self.token(copy.seq.0);
                    copy.ack = None;
                    items.push(copy);
                }
                Packet::Bundle(items)
            }
            Wire::Ack { dst, ack } => Packet::Ack {
                dst: self.id(*dst),
                ack: self.ack(ack),
            },
            Wire::Ping(dst) => Packet::Ping { dst: self.id(*dst) },
            Wire::Pong(dst) => Packet::Pong { dst: self.id(*dst) },
            Wire::Close { dst, ack } => Packet::Close {
                dst: self.id(*dst),
                ack: ack.as_ref().map(|a| self.ack(a)),
            },
            Wire::Raw(seq) => Packet::Raw(RawMessage {
                seq: *seq,
                nick: "raw".into(),
                text: "hi".into(),
            }),
        }
    }

    fn feed(&mut self, who: Who, datagram: &[u8]) {
        // Whatever this carries (even junk can be a valid datagram), the endpoint may act on
        // it: note its data and acks for the invariants.
        if let Ok(packet) = decode(datagram) {
            self.note_fed(who, &packet);
        }
        self.fed += 1;
        self.fed_bytes += datagram.len() as u64;
        self.ep.handle_datagram(self.now, who.addr(), datagram);
    }

    /// Notes what a datagram the endpoint is about to handle says: the data it carries (for the
    /// no-made-up-messages check and the endpoint's echoes), what its acks claim delivered if
    /// their echo is right, and whether it is session traffic or a `Hello` (the restart probe).
    fn note_fed(&mut self, who: Who, packet: &Packet) {
        let local = self.ep.local_id();
        let (data, acks, dst): (Vec<&Data>, Vec<&Ack>, Option<ConnectionId>) = match packet {
            // Fin and Nick are data-shaped: they take sequence numbers and carry tokens.
            Packet::Data(d) | Packet::Fin(d) | Packet::Nick(d) => {
                (vec![d], d.ack.iter().collect(), Some(d.dst))
            }
            Packet::Bundle(items) => {
                let dst = items.first().map(|d| d.dst);
                let same = items.iter().all(|d| Some(d.dst) == dst);
                let acks = items.iter().filter_map(|d| d.ack.as_ref()).collect();
                (items.iter().collect(), acks, dst.filter(|_| same))
            }
            Packet::Ack { dst, ack } => (vec![], vec![ack], Some(*dst)),
            Packet::Close { dst, ack } => (vec![], ack.iter().collect(), Some(*dst)),
            Packet::Ping { dst }
            | Packet::Pong { dst }
            | Packet::Probe { dst, .. }
            | Packet::ProbeAck { dst, .. } => (vec![], vec![], Some(*dst)),
            Packet::Piece {
                dst,
                id,
                index,
                count,
                bytes,
            } => {
                // The endpoint takes the joined datagram as if it had arrived whole.
                if let Some(joined) = self.join_piece(*id, *index, *count, bytes) {
                    if let Ok(inner) = decode(&joined) {
                        if matches!(inner, Packet::Data(_) | Packet::Fin(_) | Packet::Nick(_)) {
                            self.note_fed(who, &inner);
                        }
                    }
                }
                (vec![], vec![], Some(*dst))
            }
            Packet::Hello(_) => {
                // From anyone: the session's peer may be a stranger that took a listener. (Too
                // early a start only makes the check laxer.)
                self.probe_start.get_or_insert(self.now);
                return;
            }
            Packet::Welcome(_) | Packet::Raw(_) => return,
        };
        self.session_seqs.extend(data.iter().map(|d| d.seq.0));
        // Only what comes from the session's peer, for its current id, can be taken by it.
        if Some(who.addr()) != self.ep.peer() || dst != Some(local) {
            return;
        }
        // Session traffic from the peer: the session is alive, a restart probe ends.
        if !matches!(packet, Packet::Close { .. }) {
            self.probe_start = None;
        }
        for d in data {
            if let Some(tokens) = &mut self.fed_tokens {
                if *tokens.entry(d.seq.0).or_insert(d.token) != d.token {
                    self.fed_tokens = None;
                }
            }
        }
        for ack in acks {
            let sent = self.sessions.entry(local).or_default();
            if sent.echo(ack) != Some(ack.echo) {
                continue;
            }
            sent.delivered = sent.delivered.max(ack.delivered.0.min(ack.cumulative.0));
            if ack.ranges_delivered {
                for r in &ack.ranges {
                    sent.ranges_delivered.extend(r.first.0..=r.last.0);
                }
            }
        }
    }

    /// Records a fed piece; the datagram once all its pieces have been fed.
    fn join_piece(&mut self, id: u32, index: u32, count: u32, bytes: &[u8]) -> Option<Vec<u8>> {
        if !(2..=udpchat_core::MAX_PIECES).contains(&count) || index >= count {
            return None;
        }
        if self.pieces.len() > 64 {
            self.pieces.clear();
        }
        let parts = self
            .pieces
            .entry(id)
            .or_insert_with(|| vec![None; count as usize]);
        if parts.len() != count as usize {
            *parts = vec![None; count as usize];
        }
        parts[index as usize] = Some(bytes.to_vec());
        if parts.iter().any(Option::is_none) {
            return None;
        }
        self.pieces
            .remove(&id)
            .map(|p| p.into_iter().flatten().flatten().collect())
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Junk(who, bytes) => self.feed(*who, &bytes.0),
            Op::Packet(who, wire) => {
                let packet = self.packet(wire);
                // Some fuzzed packets are too big for one datagram: then nothing is sent.
                if let Ok(datagram) = encode(&packet, MAX_UDP_PAYLOAD) {
                    self.feed(*who, &datagram);
                }
            }
            Op::Advance(ms) => self.now += Duration::from_millis(u64::from(*ms)),
            Op::Timer => {
                if let Some(t) = self.ep.poll_timeout() {
                    self.now = self.now.max(t);
                    self.fire();
                }
            }
            Op::Poke => self.ep.handle_timeout(self.now),
            Op::Send(len, c) => {
                let c = ['x', 'é', '€', '😀', '\n', '\u{202e}'][usize::from(*c) % 6];
                let text = c.to_string().repeat(usize::from(*len) % 3000);
                if let Ok(id) = self.ep.send(self.now, &text) {
                    assert_eq!(id.0, self.sent, "message ids count from 0 in sending order");
                    self.sent += 1;
                    let fragments = text.len().div_ceil(self.config.fragment_payload()).max(1);
                    self.fragments_sent += fragments as u64;
                }
            }
            Op::Close => self.ep.close(self.now),
        }
    }

    /// Fires the timer that is due now. A driver calls `handle_timeout` whenever the deadline has
    /// passed, so a deadline that stays in the past after firing (and sending what it queued)
    /// would make it spin at full CPU: the deadline must move past `now` within a few rounds.
    fn fire(&mut self) {
        // See ZERO_RTT_TIMERS_MOVE_ON: with a zero smoothed RTT, the tail-copy timer re-arms at
        // `now` (a bounded number of times per new packet); only an endless spin fails then.
        let zero_rtt = self.ep.stats().rtt_smoothed == Some(Duration::ZERO);
        let rounds = if zero_rtt && !ZERO_RTT_TIMERS_MOVE_ON {
            10_000
        } else {
            3
        };
        for _ in 0..rounds {
            self.ep.handle_timeout(self.now);
            self.drain_transmits();
            match self.ep.poll_timeout() {
                Some(t) if t <= self.now => {}
                _ => return,
            }
        }
        panic!(
            "timer spin: after {rounds} rounds at {:?}, the {:?} timer is still due (smoothed RTT \
             {:?})",
            self.now - self.start,
            self.ep.timer_name(),
            self.ep.stats().rtt_smoothed
        );
    }

    /// Takes every datagram the endpoint wants sent, and checks it.
    fn drain_transmits(&mut self) {
        let mut buf = Vec::new();
        for _ in 0..100_000 {
            let Some(to) = self.ep.poll_transmit(self.now, &mut buf) else {
                return;
            };
            self.out += 1;
            self.out_bytes += buf.len() as u64;
            assert_eq!(
                Some(to),
                self.ep.peer(),
                "sent somewhere other than the peer"
            );
            assert!(
                buf.len() <= self.config.max_datagram,
                "a datagram of {} bytes, above max_datagram",
                buf.len()
            );
            let packet = match decode(&buf) {
                Ok(p) => p,
                Err(e) => panic!("the endpoint sent a datagram that does not decode: {e}"),
            };
            self.note_sent(&packet);
        }
        panic!("poll_transmit never ran dry: 100,000 datagrams for one op");
    }

    fn note_sent(&mut self, packet: &Packet) {
        let (data, ack): (Vec<&Data>, Option<&Ack>) = match packet {
            Packet::Data(d) | Packet::Fin(d) | Packet::Nick(d) => (vec![d], d.ack.as_ref()),
            Packet::Bundle(items) => (
                items.iter().collect(),
                items.iter().find_map(|d| d.ack.as_ref()),
            ),
            Packet::Ack { ack, .. } => (vec![], Some(ack)),
            // A Close's final ack may belong to the session that just ended.
            _ => (vec![], None),
        };
        let session = self.ep.local_id();
        for d in data {
            self.transmitted_messages.insert(d.message);
            self.endpoint_next_seq = self.endpoint_next_seq.max(d.seq.0.saturating_add(1));
            let Ok(seq) = usize::try_from(d.seq.0) else {
                panic!("sequence number {} sent", d.seq.0);
            };
            let tokens = &mut self.sent().tokens;
            if tokens.len() <= seq {
                tokens.resize(seq + 1, None);
            }
            let token = tokens[seq].get_or_insert(d.token);
            assert_eq!(*token, d.token, "packet {seq} resent with another token");
            let entry = self
                .messages
                .entry(d.message)
                .or_insert_with(|| (session, d.fragments, BTreeSet::new()));
            if entry.0 != session {
                *entry = (session, d.fragments, BTreeSet::new());
            }
            entry.2.insert(d.seq.0);
        }
        if let Some(ack) = ack {
            self.check_echo(ack);
        }
    }

    /// An ack the endpoint sent acknowledges only data the fuzzer sent it in this session, and
    /// echoes exactly those packets' tokens, so an honest sender takes it.
    fn check_echo(&self, ack: &Ack) {
        assert!(
            ack.delivered <= ack.cumulative,
            "ack delivered point {} beyond its cumulative ack {}",
            ack.delivered.0,
            ack.cumulative.0
        );
        let Some(fed) = &self.fed_tokens else {
            return;
        };
        let token = |seq: u64| match fed.get(&seq) {
            Some(t) => *t,
            None => panic!("the endpoint acknowledged packet {seq}, never sent to it"),
        };
        let mut echo = 0u32;
        // Acknowledged below the cumulative ack: each was sent (and this loop is bounded by
        // what was fed, as the first unknown number panics).
        for seq in 0..ack.cumulative.0 {
            echo = echo.wrapping_add(token(seq));
        }
        for r in &ack.ranges {
            for seq in r.first.0..=r.last.0 {
                echo = echo.wrapping_add(token(seq));
            }
        }
        assert_eq!(
            ack.echo, echo,
            "the endpoint's echo is not the sum of the tokens it acknowledges"
        );
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.ep.poll_event() {
            crate::trace(|| format!("  {event:?}"));
            match event {
                Event::Delivered { id, rtt } => {
                    assert!(id.0 < self.sent, "Delivered({}) was never sent", id.0);
                    assert!(
                        self.resolved.insert(id.0),
                        "message {} reported delivered after it was resolved",
                        id.0
                    );
                    assert!(
                        self.transmitted_messages.contains(&id.0),
                        "message {} reported delivered before any of its data went out",
                        id.0
                    );
                    if let Some(rtt) = rtt {
                        assert!(
                            rtt <= self.now - self.start,
                            "rtt {rtt:?} longer than the run"
                        );
                    }
                    self.check_claimed(id.0);
                    self.delivered += 1;
                }
                Event::Lost { id } => {
                    assert!(id.0 < self.sent, "Lost({}) was never sent", id.0);
                    assert!(
                        self.resolved.insert(id.0),
                        "message {} reported lost after it was resolved",
                        id.0
                    );
                    self.lost += 1;
                }
                Event::Message { text, .. } => {
                    assert!(
                        text.len() <= 3 * self.config.max_message,
                        "a message of {} bytes, above max_message",
                        text.len()
                    );
                    self.received += 1;
                    self.session_messages += 1;
                }
                Event::PeerRestarted => {
                    // The restart probe: a Hello with a new id from the peer's address started
                    // it, and the session then stayed silent for three timeouts of at least
                    // `min_rto` each.
                    let quiet = self.probe_start.map(|t| self.now - t);
                    assert!(
                        quiet.is_some_and(|q| q >= self.config.min_rto * 3),
                        "a Hello with a new id ended a session that was heard from {quiet:?} \
                         before (the restart probe lasts three timeouts)"
                    );
                }
                _ => {}
            }
        }
    }

    /// A message reported delivered: acks with the right echo (the peer's word, not a forger's
    /// guess) said every one of its fragments reached the peer's application.
    fn check_claimed(&self, message: u64) {
        let Some((session, fragments, seqs)) = self.messages.get(&message) else {
            panic!("message {message} reported delivered, never sent");
        };
        assert_eq!(
            seqs.len() as u64,
            u64::from(*fragments),
            "message {message} reported delivered with {} of its {fragments} fragments sent",
            seqs.len()
        );
        let sent = self.sessions.get(session);
        let unclaimed: Vec<_> = seqs
            .iter()
            .filter(|&&seq| {
                sent.is_none_or(|s| seq >= s.delivered && !s.ranges_delivered.contains(&seq))
            })
            .collect();
        assert!(
            unclaimed.is_empty(),
            "message {message} reported delivered, but no ack with the right echo said packets \
             {unclaimed:?} were delivered"
        );
    }

    fn after_op(&mut self) {
        // Only a session's end changes the endpoint's id (restart, close or timeout; such ops
        // deliver no data), and its receiver and packet numbering start afresh with it.
        let id = self.ep.local_id();
        if self.endpoint_ids.last() != Some(&id) {
            crate::trace(|| format!("  new connection id {:016x}", id.0));
            self.endpoint_ids.push(id);
            if self.endpoint_ids.len() > 32 {
                self.endpoint_ids.remove(0);
            }
            self.endpoint_next_seq = 0;
            self.session_seqs.clear();
            self.session_messages = 0;
            self.fed_tokens = Some(HashMap::new());
        }
        self.drain_transmits();
        self.drain_events();
        if self.probe_session != id {
            // A new session has no restart probe (checked after its events: the session may
            // have ended in a restart).
            self.probe_session = id;
            self.probe_start = None;
        }
        assert!(
            self.session_messages <= self.session_seqs.len() as u64,
            "{} messages delivered in a session from {} distinct data packets",
            self.session_messages,
            self.session_seqs.len()
        );
        self.check_stats();
    }

    fn check_stats(&self) {
        let s = self.ep.stats();
        let elapsed = self.now - self.start;
        assert_eq!(s.datagrams_received, self.fed);
        assert_eq!(s.bytes_received, self.fed_bytes);
        assert_eq!(s.datagrams_sent, self.out);
        assert_eq!(s.bytes_sent, self.out_bytes);
        assert_eq!(s.messages_sent, self.sent);
        assert_eq!(s.messages_received, self.received);
        assert_eq!(s.messages_delivered, self.delivered);
        assert_eq!(s.messages_lost, self.lost);
        let per_datagram = 2 * MAX_BUNDLE as u64 + 1;
        let dropped =
            s.dropped_checksum + s.dropped_malformed + s.dropped_foreign + s.dropped_stale;
        assert!(
            dropped <= self.fed * per_datagram,
            "{dropped} drops of {} datagrams",
            self.fed
        );
        assert!(s.duplicates + s.reordered <= 2 * self.fed * MAX_BUNDLE as u64);
        assert!(s.retransmits_timeout + s.retransmits_fast <= self.out);
        assert!(s.retransmits_spurious <= s.retransmits_timeout + s.retransmits_fast);
        for rtt in [s.rtt_min, s.rtt_smoothed, s.rtt_var].into_iter().flatten() {
            assert!(rtt <= elapsed, "an RTT figure of {rtt:?} after {elapsed:?}");
        }
        assert!(
            self.ep.in_flight() <= self.fragments_sent,
            "{} packets in flight of {} ever sent",
            self.ep.in_flight(),
            self.fragments_sent
        );
    }

    /// Closes with nobody answering: the close must finish, and account for every message.
    fn finish(&mut self) {
        self.ep.close(self.now);
        let bound = self.now + self.config.linger + self.config.give_up_bound();
        for _ in 0..100_000 {
            self.after_op();
            if self.ep.is_closed() {
                break;
            }
            let Some(t) = self.ep.poll_timeout() else {
                break;
            };
            self.now = self.now.max(t);
            assert!(
                self.now <= bound,
                "still closing at {:?}",
                self.now - self.start
            );
            self.fire();
        }
        self.after_op();
        assert!(self.ep.is_closed(), "close never finished");
        assert!(
            self.ep.send(self.now, "late").is_err(),
            "send accepted after close"
        );
        assert_eq!(
            self.resolved.len() as u64,
            self.sent,
            "after close, {} of {} messages were reported neither delivered nor lost",
            self.sent - self.resolved.len() as u64,
            self.sent
        );
    }
}

/// Writes a [`Setup`] for the seed corpus.
impl Write for Setup {
    fn write(&self, t: &mut Tape) {
        t.bool(self.listener)
            .u8(self.arq)
            .bool(self.unordered)
            .bool(self.no_congestion)
            .u8(self.redundancy)
            .u8(self.window)
            .bool(self.small_datagrams)
            .u8(self.ack_ranges)
            .u64(self.seed);
    }
}

impl Write for IdPick {
    fn write(&self, t: &mut Tape) {
        match *self {
            IdPick::Endpoint => t.variant(0, 5),
            IdPick::EndpointBefore(n) => t.variant(1, 5).u8(n),
            IdPick::Mine => t.variant(2, 5),
            IdPick::Fresh(id) => t.variant(3, 5).u64(id),
            IdPick::Any(id) => t.variant(4, 5).u64(id),
        };
    }
}

impl Write for SeqPick {
    fn write(&self, t: &mut Tape) {
        match *self {
            SeqPick::Next => t.variant(0, 5),
            SeqPick::Again => t.variant(1, 5),
            SeqPick::Behind(n) => t.variant(2, 5).u8(n),
            SeqPick::Ahead(n) => t.variant(3, 5).u16(n),
            SeqPick::Any(s) => t.variant(4, 5).u64(s),
        };
    }
}

impl Write for u64 {
    fn write(&self, t: &mut Tape) {
        t.u64(*self);
    }
}

impl Write for AckPick {
    fn write(&self, t: &mut Tape) {
        t.u8(self.behind);
        self.absolute.write(t);
        t.u8(self.count);
        for (gap, len) in self.ranges {
            t.u8(gap).u8(len);
        }
        t.u32(self.window)
            .u16(self.delay_us)
            .u8(self.undelivered)
            .bool(self.ranges_delivered);
        match self.echo {
            EchoPick::True => t.variant(0, 3),
            EchoPick::Guess(bits) => t.variant(1, 3).u64(bits),
            EchoPick::Zero => t.variant(2, 3),
        };
    }
}

impl Write for DataPick {
    fn write(&self, t: &mut Tape) {
        self.dst.write(t);
        self.seq.write(t);
        self.message.write(t);
        t.u8(self.fragment)
            .u8(self.fragments)
            .u16(self.len)
            .bool(self.binary);
        self.ack.write(t);
    }
}

impl Write for Wire {
    fn write(&self, t: &mut Tape) {
        const N: u32 = 9;
        match self {
            Wire::Hello { src, nick, window } => {
                t.variant(0, N);
                src.write(t);
                t.u8(*nick).u32(*window);
            }
            Wire::Welcome { src, dst, window } => {
                t.variant(1, N);
                src.write(t);
                dst.write(t);
                t.u32(*window);
            }
            Wire::Data(d) => {
                t.variant(2, N);
                d.write(t);
            }
            Wire::Bundle { first, copies } => {
                t.variant(3, N);
                first.write(t);
                t.u8(*copies);
            }
            Wire::Ack { dst, ack } => {
                t.variant(4, N);
                dst.write(t);
                ack.write(t);
            }
            Wire::Ping(dst) => {
                t.variant(5, N);
                dst.write(t);
            }
            Wire::Pong(dst) => {
                t.variant(6, N);
                dst.write(t);
            }
            Wire::Close { dst, ack } => {
                t.variant(7, N);
                dst.write(t);
                ack.write(t);
            }
            Wire::Raw(seq) => {
                t.variant(8, N).u64(*seq);
            }
        }
    }
}

impl Write for Op {
    fn write(&self, t: &mut Tape) {
        const N: u32 = 7;
        match self {
            Op::Junk(who, bytes) => {
                t.variant(0, N);
                who.write(t);
                t.bytes(&bytes.0);
            }
            Op::Packet(who, wire) => {
                t.variant(1, N);
                who.write(t);
                wire.write(t);
            }
            Op::Advance(ms) => {
                t.variant(2, N).u16(*ms);
            }
            Op::Timer => {
                t.variant(3, N);
            }
            Op::Poke => {
                t.variant(4, N);
            }
            Op::Send(len, c) => {
                t.variant(5, N).u16(*len).u8(*c);
            }
            Op::Close => {
                t.variant(6, N);
            }
        }
    }
}
