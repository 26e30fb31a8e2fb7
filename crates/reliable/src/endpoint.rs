//! The surface every transport offers: the [`Endpoint`] trait, and the values that cross it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

/// Identifies one message this endpoint sent, in sending order from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MessageId(pub u64);

/// A datagram the endpoint wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram's bytes.
    pub payload: Vec<u8>,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A message from the peer, complete.
    Message {
        /// Who sent it.
        from: SocketAddr,
        /// Their nickname (empty in plain mode).
        nick: String,
        /// Their sequence number for it, where the mode has one.
        seq: Option<u64>,
        /// The text. Invalid UTF-8 from the network has been replaced with U+FFFD.
        text: String,
    },
    /// Raw mode: messages `first..=last` from `from` have not arrived (a later one did).
    Gap {
        /// Whose messages are missing.
        from: SocketAddr,
        /// First missing sequence number.
        first: u64,
        /// Last missing sequence number.
        last: u64,
    },
    /// Raw mode: a message arrived that had already arrived.
    Duplicate {
        /// Who sent it.
        from: SocketAddr,
        /// Its sequence number.
        seq: u64,
    },
    /// Raw mode: a message arrived after a later one (it fills an earlier gap).
    Reordered {
        /// Who sent it.
        from: SocketAddr,
        /// Its sequence number.
        seq: u64,
    },
    /// The endpoint now talks to this peer (learned from the first datagram, or connected).
    Peer {
        /// The peer's address.
        addr: SocketAddr,
        /// The peer's nickname, where the mode learns it with the session (reliable mode: in
        /// the handshake). Raw mode learns it with each message instead. Unchecked text from
        /// the network. Left out of the JSON when unknown.
        #[serde(skip_serializing_if = "Option::is_none")]
        nick: Option<String>,
    },
    /// One of our messages reached the peer's application: its transport handed it over (in
    /// order, where delivery is ordered), not only received it. Never reported on the word of an
    /// ack that does not prove it saw the data.
    Delivered {
        /// Which message.
        id: MessageId,
        /// Time from first send to the acknowledgement that said so, less the time the peer
        /// held that acknowledgement back, if known.
        #[serde(serialize_with = "serialize_opt_duration_ms")]
        rtt: Option<Duration>,
    },
    /// We gave up on one of our messages, or the session ended before the peer's application
    /// had it: it may never have been shown.
    Lost {
        /// Which message.
        id: MessageId,
    },
    /// The peer stopped answering; the session is over.
    PeerUnreachable,
    /// The peer restarted (a new session replaced the old one).
    PeerRestarted,
    /// The endpoint has closed; nothing more will happen.
    Closed,
    /// A datagram was ignored; it is also counted in [`Stats`]. Lets the application say why
    /// nothing appeared (e.g. the other side uses `--plain` and this one does not).
    Dropped {
        /// Who sent it.
        from: SocketAddr,
        /// Which `dropped_*` counter it went to.
        cause: DropCause,
        /// A human-readable reason (the decode error, or what did not match).
        detail: String,
    },
    /// Reliable mode: the peer closed the session (it left). Messages of ours it had not
    /// acknowledged are reported `Lost` just before.
    PeerClosed,
    /// Reliable mode: the peer has finished sending (its half-close, a `Fin`, sequenced after
    /// its last message): everything it sent has been delivered, before this event, and
    /// nothing more comes in this session. We may go on sending until we finish too.
    PeerFinished,
    /// Reliable mode: the peer changed its nickname. Sequenced with its messages: the ones
    /// before this event were written under `old`, the ones after under `new`.
    NickChanged {
        /// The name it had. Unchecked text from the network, as `new`.
        old: String,
        /// The name it has from now on.
        new: String,
    },
    /// Reliable mode: our `Hello` to `to` has had no answer, and went out again: `tries` is the
    /// number of times it has been resent so far in this attempt; the next try follows after
    /// `next_in` unless an answer comes first. The attempt ends with `Peer` (answered) or
    /// `PeerUnreachable` (given up).
    NoAnswer {
        /// Where the `Hello`s go.
        to: SocketAddr,
        /// Resends so far, from 1.
        tries: u32,
        /// The wait before the next resend (the backed-off retransmission timeout).
        #[serde(serialize_with = "serialize_duration_ms")]
        next_in: Duration,
    },
    /// Reliable mode: a `Hello` carrying our own connection id arrived from `from`: our own
    /// datagrams come back to us (the peer address is our own, or a relay points back at us).
    /// It is not answered, so we never chat with ourselves, and the handshake to that address
    /// is given up (its messages reported `Lost`); a line sent later tries again.
    TalkingToSelf {
        /// Where our own `Hello` came back from.
        from: SocketAddr,
    },
    /// Reliable mode: someone other than the peer tried to open a session, and was refused
    /// because this endpoint already talks to `peer` (a listener is taken by the first `Hello`;
    /// with `--peer`, only that address is taken). Its `Hello` is also reported as `Dropped`
    /// and counted in `dropped_foreign`, as every one after it; this event comes once per
    /// address, for the first few addresses, so the application can say who was turned away.
    TurnedAway {
        /// Who was turned away.
        from: SocketAddr,
        /// Who we talk to instead.
        peer: SocketAddr,
    },
    /// Encryption (`--secret`): the handshake with `peer` succeeded and proved that both sides
    /// hold the passphrase; from now on every datagram is sealed. `sas` is the short
    /// authentication string both sides show, for two people to compare by voice.
    Secured {
        /// Who the session is with.
        peer: SocketAddr,
        /// A few digits from the handshake hash; equal on both sides of an honest session.
        sas: String,
    },
    /// Encryption (`--secret`): no encrypted session could be made with `peer`; the endpoint
    /// has closed (nothing it held was sent).
    HandshakeFailed {
        /// Who the attempt was with.
        peer: SocketAddr,
        /// Why.
        reason: HandshakeFailure,
    },
}

/// Why an encrypted handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeFailure {
    /// The peer's answer did not authenticate (or it said ours did not): it uses a different
    /// passphrase, or is not udpchat.
    WrongPassphrase,
    /// The peer sends plain udpchat datagrams: it runs without `--secret`.
    NotEncrypted,
    /// The handshake went unanswered through every retry.
    NoAnswer,
}

/// Why a datagram was dropped: one value per `dropped_*` counter of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropCause {
    /// Failed the CRC check (`dropped_checksum`).
    Checksum,
    /// Not a valid udpchat datagram (`dropped_malformed`).
    Malformed,
    /// From an address other than the peer, or for another connection id (`dropped_foreign`).
    Foreign,
    /// An earlier session's packet, or a kind this mode does not take (`dropped_stale`).
    Stale,
    /// Encryption: a sealed datagram that had already arrived (`dropped_replayed`).
    Replayed,
    /// Encryption: failed authentication, or not encrypted at all (`dropped_unauthenticated`).
    Unauthenticated,
}

fn serialize_opt_duration_ms<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        // Whole microseconds, so the figure prints as `36.412`, not `36.412000000000006`.
        Some(d) => s.serialize_some(&(d.as_micros() as f64 / 1000.0)),
        None => s.serialize_none(),
    }
}

fn serialize_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

/// Why a message could not be accepted for sending.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// The message does not fit (one datagram in raw mode, the fragment limit in reliable mode).
    #[error("message too long: {len} bytes, at most {max} fit")]
    TooLong {
        /// The message's length in bytes.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// There is nobody to send to yet: no `--peer`, and nobody has written to us.
    #[error("no peer yet: give --peer, or wait until someone writes first")]
    NoPeer,
    /// The endpoint is closing or closed.
    #[error("the session is closed")]
    Closed,
}

/// Why the nickname could not be changed mid-session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NickError {
    /// This mode does not send the nickname at all (`--plain`), so the peer would never see a
    /// change.
    #[error("this mode cannot change the nickname mid-session; restart with --nick NAME")]
    Unsupported,
}

/// Counters, for `/stats`, the lab and tests. Every field only ever grows, except the RTT and
/// window figures, which are current values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Datagrams handed out by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Datagrams given to `handle_datagram`.
    pub datagrams_received: u64,
    /// Bytes handed out by `poll_transmit`.
    pub bytes_sent: u64,
    /// Bytes given to `handle_datagram`.
    pub bytes_received: u64,
    /// Messages accepted by `send`.
    pub messages_sent: u64,
    /// Messages delivered to the application (`Event::Message`).
    pub messages_received: u64,
    /// Our messages the peer's application got (`Event::Delivered`).
    pub messages_delivered: u64,
    /// Our messages we gave up on.
    pub messages_lost: u64,
    /// Raw mode: peer messages reported missing by `Event::Gap`.
    pub gaps: u64,
    /// Datagrams or messages that arrived twice.
    pub duplicates: u64,
    /// Datagrams or messages that arrived after a later one.
    pub reordered: u64,
    /// Dropped: failed the CRC check.
    pub dropped_checksum: u64,
    /// Dropped: not a valid udpchat datagram (too short, bad magic or version, bad body).
    pub dropped_malformed: u64,
    /// Dropped: from an address other than the peer, or for another connection id.
    pub dropped_foreign: u64,
    /// Dropped: belonged to an earlier session, or a packet kind this mode does not take.
    pub dropped_stale: u64,
    /// Dropped (encryption): a sealed datagram already received, or too old for the replay window.
    pub dropped_replayed: u64,
    /// Dropped (encryption): failed authentication (forged, damaged, wrong key) or plain.
    pub dropped_unauthenticated: u64,
    /// Retransmissions after a retransmission timeout.
    pub retransmits_timeout: u64,
    /// Retransmissions on SACK evidence, before the timeout.
    pub retransmits_fast: u64,
    /// Retransmissions that turned out needless (the original was acked).
    pub retransmits_spurious: u64,
    /// Smallest RTT sample.
    #[serde(serialize_with = "serialize_opt_duration_ms")]
    pub rtt_min: Option<Duration>,
    /// Smoothed RTT (RFC 6298 SRTT).
    #[serde(serialize_with = "serialize_opt_duration_ms")]
    pub rtt_smoothed: Option<Duration>,
    /// RTT variation (RFC 6298 RTTVAR).
    #[serde(serialize_with = "serialize_opt_duration_ms")]
    pub rtt_var: Option<Duration>,
    /// Current congestion window, in full-size packets (the window itself counts bytes).
    pub cwnd: u64,
    /// Receive window the peer last advertised, in packets.
    pub peer_window: u64,
    /// Redundant copies of unacknowledged packets sent alongside new ones (reliable mode with
    /// `redundancy` above 0). Not counted as retransmissions.
    pub redundant_copies: u64,
    /// Received copies (the packets behind the first in a bundle) that were the first arrival of
    /// their packet: losses (or delays) repaired by redundancy without a resend. Copies arriving
    /// after their packet count as duplicates.
    pub repaired_by_copy: u64,
    /// The largest datagram the reliable sender uses now (its PLPMTU, from path MTU discovery),
    /// in bytes; 0 in raw mode.
    pub path_mtu: u64,
    /// Path MTU black holes detected: large datagrams lost in a row, so the sender fell back to
    /// the base size.
    pub pmtu_black_holes: u64,
}

impl Stats {
    /// Counts one dropped datagram in the counter its cause names. Raw and reliable mode both
    /// count drops here, so a new cause is one new arm, not one per mode.
    pub fn count_drop(&mut self, cause: DropCause) {
        let counter = match cause {
            DropCause::Checksum => &mut self.dropped_checksum,
            DropCause::Malformed => &mut self.dropped_malformed,
            DropCause::Foreign => &mut self.dropped_foreign,
            DropCause::Stale => &mut self.dropped_stale,
            DropCause::Replayed => &mut self.dropped_replayed,
            DropCause::Unauthenticated => &mut self.dropped_unauthenticated,
        };
        *counter += 1;
    }
}

/// A transport endpoint as a pure state machine. Raw and reliable modes both implement it, so the
/// tokio driver, the proxy-driven tests and the simulator drive either alike.
pub trait Endpoint {
    /// Accepts one message (a chat line, without its newline) for sending.
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError>;
    /// Takes in one datagram that arrived from `from`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    /// Writes the next datagram to send into `buf` (replacing what it held) and returns where it
    /// goes; `None` (with `buf` unspecified) when there is nothing to send. The caller keeps one
    /// buffer for every datagram, so the hot path allocates nothing per datagram.
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr>;
    /// The next datagram as an owned [`Transmit`]: for callers that keep datagrams (queues,
    /// tests), at the cost of one allocation each.
    fn poll_transmit_owned(&mut self, now: Instant) -> Option<Transmit> {
        let mut payload = Vec::new();
        let destination = self.poll_transmit(now, &mut payload)?;
        Some(Transmit {
            destination,
            payload,
        })
    }
    /// When `handle_timeout` should next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The name of the timer behind [`Endpoint::poll_timeout`] (`"rto"`, `"delayed ack"`, …), so
    /// traces and ladders can say which timer fired. `None` where the mode does not name them.
    fn timer_name(&self) -> Option<&'static str> {
        None
    }
    /// Lets timers that have expired by `now` fire.
    fn handle_timeout(&mut self, now: Instant);
    /// The next event for the application, if any.
    fn poll_event(&mut self) -> Option<Event>;
    /// Starts closing: no more `send`s; finishes what the mode promises to finish.
    fn close(&mut self, now: Instant);
    /// We have finished sending (a half-close, as TCP's FIN): no more `send`s, but the peer may
    /// go on sending, and we go on receiving, until it finishes too; then the endpoint closes.
    /// A mode without a half-close closes. Required, not defaulted: a wrapper that forgot to
    /// pass it on would silently turn a half-close into a full close.
    fn finish(&mut self, now: Instant);
    /// True once closing has finished and there is nothing left to transmit.
    fn is_closed(&self) -> bool;
    /// Where datagrams go, once known.
    fn peer(&self) -> Option<SocketAddr>;
    /// The counters.
    fn stats(&self) -> Stats;
    /// Carries `nick` (already validated) on our next messages, where the mode can. The default
    /// refuses: only a mode that sends the nickname with every message can change it.
    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        let _ = nick;
        Err(NickError::Unsupported)
    }
}

/// A boxed endpoint is an endpoint, so the binary can pick a mode at run time
/// (`Box<dyn Endpoint>`) and still wrap it in generic layers such as the lab's impairment.
impl<E: Endpoint + ?Sized> Endpoint for Box<E> {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        (**self).send(now, text)
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        (**self).handle_datagram(now, from, datagram)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        (**self).poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
    fn timer_name(&self) -> Option<&'static str> {
        (**self).timer_name()
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
    fn poll_event(&mut self) -> Option<Event> {
        (**self).poll_event()
    }
    fn close(&mut self, now: Instant) {
        (**self).close(now)
    }
    fn finish(&mut self, now: Instant) {
        (**self).finish(now)
    }
    fn is_closed(&self) -> bool {
        (**self).is_closed()
    }
    fn peer(&self) -> Option<SocketAddr> {
        (**self).peer()
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        (**self).set_nick(nick)
    }
}
