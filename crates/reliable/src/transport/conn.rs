//! [`ReliableEndpoint`]: the reliable transport as one sans-IO state machine.
//!
//! It ties the pieces together: the session (handshake, connection ids, restart detection,
//! keepalive, close) lives here; the [`Sender`] and [`Receiver`] halves do the per-packet work.
//!
//! **Session.** Each side picks a random 64-bit connection id from its seed and sends `Hello`
//! with it; the answer is a `Welcome` naming both ids. Every later packet names its receiver's
//! id, so a packet from another conversation (foreign) or from an earlier session of this one
//! (stale: ids are retired, never reused) is dropped and counted. If both sides send `Hello` at
//! once, each answers the other's with a `Welcome` and both end up with the same pair of ids: the
//! tutorial's symmetric setup needs no roles. A side that learned of the session from a `Hello`
//! sends no data until the peer shows it has our `Welcome` (the opener's bare `Ack`, or any
//! packet naming our id): before that the peer could not accept it. A `Hello` from the peer's
//! address with a new id
//! while a session is up means the peer restarted: the old session ends (its unacknowledged
//! messages are reported lost, its partial data discarded), both sides take fresh ids, and the
//! new session starts from sequence number 0, so nothing of the old one can be mixed in.
//!
//! **Timers.** The handshake is resent on the retransmission timeout; data has its own timeout
//! and fast retransmit (see [`Sender`]); acks may wait `max_ack_delay`; a `Ping` goes out after
//! `keepalive` of silence; `idle_timeout` without hearing anything, or `max_retries` consecutive
//! timeouts, end the session with `PeerUnreachable` and a `Lost` event for every message not
//! acknowledged. `close` lingers until every message is acknowledged (or `linger` runs out, and
//! the rest are reported lost), then sends `Close` carrying a final ack.
//!
//! **Redundancy.** With `redundancy` above 0, a datagram carrying a new data packet that leaves
//! room also carries copies of recent unacknowledged ones, as one `Bundle` (the sender chooses
//! them: [`Sender::redundant_copies`]). The receiver takes each packet of a bundle as if it had
//! arrived alone, so a copy that arrives before its original simply is that packet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use udpchat_core::{
    decode, encode_into, Ack, ConnectionId, Data, DecodeError, Hello, Packet, Welcome,
};

use super::config::{ConfigError, ReliableConfig};
use super::fragment::Fragment;
use super::receiver::{Arrival, Receiver};
use super::sender::{BadAck, Outgoing, Sender, TimeoutOutcome};
use crate::endpoint::{DropCause, Endpoint, Event, MessageId, SendError, Stats};

/// How many retired connection ids (ours and the peer's) we remember to tell stale from foreign.
const RETIRED_IDS: usize = 16;

/// How many copies of `Close` we send: it is never acknowledged, so a few copies make its loss
/// unlikely (at 20% loss, all three are lost 0.8% of the time; the peer's idle timeout covers it).
const CLOSE_COPIES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// No session. The peer's address may be known (configured, or from an earlier session).
    Idle,
    /// We sent `Hello` and wait for the answer.
    Handshaking {
        /// When the last `Hello` went out (None: queued, not yet sent).
        sent: Option<Instant>,
        /// Handshake timeouts so far.
        tries: u32,
        /// More than one `Hello` went out, so a `Welcome` gives no clean RTT sample.
        resent: bool,
    },
    /// Both ids known.
    Established {
        /// The peer's connection id.
        peer_id: ConnectionId,
    },
}

/// Control packets waiting to go out; built with the ids current at transmission time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Hello,
    Welcome,
    /// A bare ack: confirms to a peer that answered our `Hello` that we know its id.
    Ack,
    Ping,
    Pong,
    Close(ConnectionId),
}

/// The reliable transport endpoint. See the module documentation for the protocol.
#[derive(Debug)]
pub struct ReliableEndpoint {
    config: ReliableConfig,
    rng: ChaCha8Rng,
    local_id: ConnectionId,
    /// Accept a session only from this address (given by the user), or from anyone if `None`.
    fixed_peer: Option<SocketAddr>,
    peer_addr: Option<SocketAddr>,
    peer_nick: String,
    session: Session,
    /// The handshake in progress was started by a listener that got session traffic for an id it
    /// never issued (see [`ReliableEndpoint::greet_after_restart`]). If nobody answers, that was a
    /// stray datagram, not a peer: the listener goes back to listening instead of declaring a
    /// peer unreachable.
    greeting_after_restart: bool,
    /// Established, and the peer has shown it knows our id (a Welcome from it, or any packet of
    /// the session). A side that learned the session from the peer's `Hello` holds its data back
    /// until then: the peer cannot accept data before it has our `Welcome`.
    confirmed: bool,
    /// When our last `Welcome` went out, and how many timeouts it has had, while unconfirmed.
    welcome_sent: Option<Instant>,
    welcome_tries: u32,
    retired_local: VecDeque<ConnectionId>,
    retired_peer: VecDeque<ConnectionId>,
    sender: Sender,
    receiver: Receiver,
    control: VecDeque<Control>,
    /// The final ack that goes into our `Close` packets.
    close_ack: Option<Ack>,
    events: VecDeque<Event>,
    stats: Stats,
    next_message: u64,
    linger_deadline: Option<Instant>,
    closed: bool,
    last_sent: Option<Instant>,
    last_received: Option<Instant>,
    scratch: Vec<u8>,
}

impl ReliableEndpoint {
    /// A new endpoint. With `peer`, it opens a session to it at once (the first `poll_transmit`
    /// sends `Hello`) and only ever talks to it; without, it waits for someone's `Hello`.
    /// `seed` is the only source of randomness (connection ids): give every endpoint process its
    /// own, e.g. from the OS at startup, and fixed ones in tests.
    pub fn new(
        config: ReliableConfig,
        peer: Option<SocketAddr>,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let local_id = ConnectionId(rng.next_u64());
        let mut endpoint = ReliableEndpoint {
            sender: Sender::new(&config, rng.next_u64()),
            receiver: Receiver::new(&config),
            config,
            rng,
            local_id,
            fixed_peer: peer,
            peer_addr: peer,
            peer_nick: String::new(),
            session: Session::Idle,
            greeting_after_restart: false,
            confirmed: false,
            welcome_sent: None,
            welcome_tries: 0,
            retired_local: VecDeque::new(),
            retired_peer: VecDeque::new(),
            control: VecDeque::new(),
            close_ack: None,
            events: VecDeque::new(),
            stats: Stats::default(),
            next_message: 0,
            linger_deadline: None,
            closed: false,
            last_sent: None,
            last_received: None,
            scratch: Vec::new(),
        };
        if peer.is_some() {
            endpoint.start_handshake();
        }
        Ok(endpoint)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ReliableConfig {
        &self.config
    }

    /// The peer's nickname, once a session is up.
    pub fn peer_nick(&self) -> &str {
        &self.peer_nick
    }

    /// True while a session is established.
    pub fn is_established(&self) -> bool {
        matches!(self.session, Session::Established { .. })
    }

    /// Our current connection id (changes with every new session).
    pub fn local_id(&self) -> ConnectionId {
        self.local_id
    }

    /// Data packets in flight (sent, neither acknowledged nor declared lost).
    pub fn in_flight(&self) -> u64 {
        self.sender.in_flight()
    }

    #[cfg(test)]
    pub(crate) fn sender(&self) -> &Sender {
        &self.sender
    }

    #[cfg(test)]
    pub(crate) fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    fn start_handshake(&mut self) {
        self.session = Session::Handshaking {
            sent: None,
            tries: 0,
            resent: false,
        };
        self.control.retain(|c| *c != Control::Hello);
        self.control.push_back(Control::Hello);
    }

    fn drop_datagram(&mut self, from: SocketAddr, cause: DropCause, detail: String) {
        self.stats.count_drop(cause);
        self.events.push_back(Event::Dropped {
            from,
            cause,
            detail,
        });
    }

    /// Stale if `dst` is one of our retired ids, foreign otherwise.
    fn drop_misaddressed(&mut self, from: SocketAddr, dst: ConnectionId, what: &str) {
        let cause = if self.retired_local.contains(&dst) || dst == self.local_id {
            DropCause::Stale
        } else {
            DropCause::Foreign
        };
        let detail = format!("{what} for connection {:016x}, not ours", dst.0);
        self.drop_datagram(from, cause, detail);
    }

    fn retire(list: &mut VecDeque<ConnectionId>, id: ConnectionId) {
        if !list.contains(&id) {
            if list.len() == RETIRED_IDS {
                list.pop_front();
            }
            list.push_back(id);
        }
    }

    /// Ends the current session (if any) and prepares a fresh one: new local id, empty halves.
    /// Returns the messages that had started to be sent, which the caller reports as lost.
    fn end_session(&mut self, keep_unsent: bool) -> Vec<MessageId> {
        if let Session::Established { peer_id } = self.session {
            Self::retire(&mut self.retired_peer, peer_id);
        }
        Self::retire(&mut self.retired_local, self.local_id);
        self.local_id = ConnectionId(self.rng.next_u64());
        self.session = Session::Idle;
        self.receiver = Receiver::new(&self.config);
        self.control.retain(|c| matches!(c, Control::Close(..)));
        self.last_received = None;
        if keep_unsent {
            self.sender.restart_session()
        } else {
            self.sender.take_unacknowledged()
        }
    }

    fn report_lost(&mut self, lost: Vec<MessageId>) {
        for id in lost {
            self.stats.messages_lost += 1;
            self.events.push_back(Event::Lost { id });
        }
    }

    fn peer_unreachable(&mut self, now: Instant) {
        let lost = self.end_session(false);
        self.report_lost(lost);
        self.events.push_back(Event::PeerUnreachable);
        if self.linger_deadline.is_some() {
            self.finish_close(now);
        }
    }

    fn established(
        &mut self,
        from: SocketAddr,
        peer_id: ConnectionId,
        nick: &str,
        window: u32,
        confirmed: bool,
    ) {
        self.session = Session::Established { peer_id };
        self.greeting_after_restart = false;
        self.confirmed = confirmed;
        self.welcome_sent = None;
        self.welcome_tries = 0;
        self.peer_addr = Some(from);
        self.peer_nick = nick.to_owned();
        self.sender.set_peer_window(window);
        self.events.push_back(Event::Peer { addr: from });
    }

    fn on_hello(&mut self, now: Instant, from: SocketAddr, hello: Hello) {
        if self.retired_peer.contains(&hello.src) {
            self.drop_datagram(
                from,
                DropCause::Stale,
                "Hello from an earlier session".into(),
            );
            return;
        }
        match self.session {
            Session::Established { peer_id } if Some(from) == self.peer_addr => {
                if hello.src != peer_id {
                    // A new id from the peer's address: the peer restarted.
                    let lost = self.end_session(true);
                    self.report_lost(lost);
                    self.events.push_back(Event::PeerRestarted);
                    self.session = Session::Established { peer_id: hello.src };
                    self.confirmed = false;
                    self.welcome_sent = None;
                    self.welcome_tries = 0;
                    self.peer_nick = hello.nick;
                    self.sender.set_peer_window(hello.window);
                }
                // Either way the peer has not seen our Welcome (yet): (re)send it.
                self.last_received = Some(now);
                self.control.push_back(Control::Welcome);
            }
            Session::Established { .. } => {
                self.drop_datagram(from, DropCause::Foreign, "Hello from a third party".into())
            }
            Session::Handshaking { .. } | Session::Idle => {
                if self.fixed_peer.is_some_and(|p| p != from) {
                    self.drop_datagram(
                        from,
                        DropCause::Foreign,
                        "Hello from an address other than --peer".into(),
                    );
                    return;
                }
                // Both may have sent Hello at once: answering theirs with our id completes the
                // handshake for both sides, whichever Hello or Welcome arrives first.
                self.control.retain(|c| *c != Control::Hello);
                self.established(from, hello.src, &hello.nick, hello.window, false);
                self.last_received = Some(now);
                self.control.push_back(Control::Welcome);
            }
        }
    }

    fn on_welcome(&mut self, now: Instant, from: SocketAddr, welcome: Welcome) {
        if welcome.dst != self.local_id || Some(from) != self.peer_addr {
            self.drop_misaddressed(from, welcome.dst, "Welcome");
            return;
        }
        match self.session {
            Session::Handshaking { sent, resent, .. } => {
                // Karn's rule: only a Hello sent once gives an unambiguous first RTT sample.
                if let (Some(sent), false) = (sent, resent) {
                    self.sender
                        .rtt
                        .on_sample(now.saturating_duration_since(sent), Default::default());
                }
                self.established(from, welcome.src, &welcome.nick, welcome.window, true);
                self.last_received = Some(now);
                // The third leg: tells the peer we have its Welcome, so it may send data.
                self.control.push_back(Control::Ack);
            }
            Session::Established { peer_id } if peer_id == welcome.src => {
                // A repeated Welcome (our Hello was resent, or both sides opened at once): the
                // peer knows our id; and it may not know we have its Welcome yet.
                self.last_received = Some(now);
                self.confirmed = true;
                if !self.control.contains(&Control::Ack) {
                    self.control.push_back(Control::Ack);
                }
            }
            _ => {
                let cause = if self.retired_peer.contains(&welcome.src) {
                    DropCause::Stale
                } else {
                    DropCause::Foreign
                };
                self.drop_datagram(from, cause, "Welcome from another session".into());
            }
        }
    }

    /// While unconfirmed with messages waiting, our `Welcome` is resent on the retransmission
    /// timeout (the peer's `Hello` timer would get there too, but it may be long backed off).
    fn welcome_deadline(&self) -> Option<Instant> {
        if self.confirmed || self.sender.all_delivered() {
            return None;
        }
        self.welcome_sent.map(|t| t + self.sender.rtt.rto())
    }

    /// Checks that a post-handshake packet belongs to the current session.
    fn in_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dst: ConnectionId,
        what: &str,
    ) -> bool {
        let ok = matches!(self.session, Session::Established { .. })
            && dst == self.local_id
            && Some(from) == self.peer_addr;
        if let Session::Handshaking { sent, .. } = self.session {
            if dst == self.local_id && Some(from) == self.peer_addr {
                // The peer has our Hello but its Welcome (or Hello) was lost: we cannot use its
                // data without its id, so ask again now rather than at our next timeout.
                let recently = sent.is_some_and(|t| now < t + self.config.min_rto);
                if !recently && !self.control.contains(&Control::Hello) {
                    self.control.push_back(Control::Hello);
                }
            }
        }
        if ok {
            self.confirmed = true;
        } else {
            self.greet_after_restart(from, what);
            if Some(from) != self.peer_addr && self.peer_addr.is_some() {
                self.drop_datagram(
                    from,
                    DropCause::Foreign,
                    format!("{what} from {from}, not our peer"),
                );
            } else {
                self.drop_misaddressed(from, dst, what);
            }
        }
        ok
    }

    /// A fresh listener (no `--peer`, never had a session) that receives session traffic for a
    /// connection id it never issued has most likely restarted, and `from` is still talking to
    /// its previous incarnation. Answering with a `Hello` lets `from` see a new connection id,
    /// report `PeerRestarted` and open a fresh session, instead of retrying into the void until
    /// it gives up. (A `Close` needs no answer: that peer is leaving.)
    fn greet_after_restart(&mut self, from: SocketAddr, what: &str) {
        if what != "Close"
            && matches!(self.session, Session::Idle)
            && self.peer_addr.is_none()
            && self.fixed_peer.is_none()
            && !self.closed
            && self.linger_deadline.is_none()
        {
            self.peer_addr = Some(from);
            self.greeting_after_restart = true;
            self.start_handshake();
        }
    }

    fn on_ack(&mut self, now: Instant, from: SocketAddr, ack: &Ack) {
        match self.sender.on_ack(now, ack) {
            Ok(outcome) => {
                for (id, rtt) in outcome.delivered {
                    self.stats.messages_delivered += 1;
                    self.events.push_back(Event::Delivered { id, rtt });
                }
            }
            Err(BadAck::Impossible) => self.drop_datagram(
                from,
                DropCause::Malformed,
                "ack for sequence numbers never sent".into(),
            ),
            // Not the sum of our tokens: whoever wrote it never received that data.
            Err(BadAck::WrongEcho) => self.drop_datagram(
                from,
                DropCause::Foreign,
                "ack whose echo does not match our data (forged, or not from our peer)".into(),
            ),
        }
    }

    /// Takes one data packet (`copy`: a redundant copy behind a new packet in a bundle); true if
    /// it was new (not a duplicate, not refused).
    fn on_data(&mut self, now: Instant, from: SocketAddr, data: Data, copy: bool) -> bool {
        if let Some(ack) = &data.ack {
            self.on_ack(now, from, ack);
        }
        let fragment = Fragment {
            message: data.message,
            index: data.fragment,
            count: data.fragments,
            payload: data.payload,
        };
        let arrival = if copy {
            self.receiver.on_copy(now, data.seq, data.token, fragment)
        } else {
            self.receiver.on_data(now, data.seq, data.token, fragment)
        };
        match arrival {
            Arrival::New {
                messages,
                reordered,
                malformed,
            } => {
                if reordered {
                    self.stats.reordered += 1;
                }
                self.stats.dropped_malformed += u64::from(malformed);
                for (number, bytes) in messages {
                    self.stats.messages_received += 1;
                    self.events.push_back(Event::Message {
                        from,
                        nick: self.peer_nick.clone(),
                        seq: Some(number),
                        text: String::from_utf8_lossy(&bytes).into_owned(),
                    });
                }
                true
            }
            Arrival::Duplicate => {
                self.stats.duplicates += 1;
                false
            }
            // Beyond our window: not an error of the datagram, the sender will resend.
            Arrival::Refused => false,
            Arrival::Malformed => {
                self.drop_datagram(
                    from,
                    DropCause::Malformed,
                    "invalid fragment header or size".into(),
                );
                false
            }
        }
    }

    /// Takes a bundle: its packets one by one, as if each had arrived alone. All must name the
    /// same connection. The first is the sender's new packet (or, in a tail copy, the copy it
    /// most wants acknowledged: a duplicate of it is answered at once, like a resend's); the
    /// rest are copies.
    fn on_bundle(&mut self, now: Instant, from: SocketAddr, items: Vec<Data>) {
        let Some(dst) = items.first().map(|d| d.dst) else {
            return;
        };
        if items.iter().any(|d| d.dst != dst) {
            self.drop_datagram(
                from,
                DropCause::Malformed,
                "bundle of packets for different connections".into(),
            );
            return;
        }
        if !self.in_session(now, from, dst, "Bundle") {
            return;
        }
        self.last_received = Some(now);
        for (index, data) in items.into_iter().enumerate() {
            if self.on_data(now, from, data, index > 0) && index > 0 {
                self.stats.repaired_by_copy += 1;
            }
        }
    }

    fn on_close(&mut self, now: Instant, from: SocketAddr, ack: Option<Ack>) {
        if let Some(ack) = &ack {
            self.on_ack(now, from, ack);
        }
        let lost = self.end_session(false);
        self.report_lost(lost);
        self.events.push_back(Event::PeerClosed);
        if self.linger_deadline.is_some() {
            self.finish_close(now);
        }
    }

    fn finish_close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let lost = self.sender.take_unacknowledged();
        self.report_lost(lost);
        if let Session::Established { peer_id } = self.session {
            self.close_ack = self.receiver.has_received().then(|| self.receiver.ack(now));
            for _ in 0..CLOSE_COPIES {
                self.control.push_back(Control::Close(peer_id));
            }
        }
        self.control.retain(|c| matches!(c, Control::Close(..)));
        self.session = Session::Idle;
        self.closed = true;
        self.linger_deadline = None;
        self.events.push_back(Event::Closed);
    }

    fn check_close_done(&mut self, now: Instant) {
        if self.linger_deadline.is_some() && self.sender.all_delivered() {
            self.finish_close(now);
        }
    }

    /// Builds the next packet to send, if any.
    fn next_packet(&mut self, now: Instant) -> Option<Packet> {
        while let Some(control) = self.control.pop_front() {
            let packet = match (control, self.session) {
                (Control::Close(dst), _) => Packet::Close {
                    dst,
                    ack: self.close_ack.clone(),
                },
                (
                    Control::Hello,
                    Session::Handshaking {
                        sent,
                        tries,
                        resent,
                    },
                ) => {
                    self.session = Session::Handshaking {
                        sent: Some(now),
                        tries,
                        resent: resent || sent.is_some(),
                    };
                    Packet::Hello(Hello {
                        src: self.local_id,
                        nick: self.config.nick.clone(),
                        window: self.config.window,
                    })
                }
                (Control::Welcome, Session::Established { peer_id }) => {
                    if !self.confirmed {
                        self.welcome_sent = Some(now);
                    }
                    Packet::Welcome(Welcome {
                        src: self.local_id,
                        dst: peer_id,
                        nick: self.config.nick.clone(),
                        window: self.config.window,
                    })
                }
                (Control::Ack, Session::Established { peer_id }) => Packet::Ack {
                    dst: peer_id,
                    ack: self.receiver.ack(now),
                },
                (Control::Ping, Session::Established { peer_id }) => Packet::Ping { dst: peer_id },
                (Control::Pong, Session::Established { peer_id }) => Packet::Pong { dst: peer_id },
                // The session this was meant for is gone.
                _ => continue,
            };
            return Some(packet);
        }
        if self.closed {
            return None;
        }
        let Session::Established { peer_id } = self.session else {
            return None;
        };
        if !self.confirmed {
            return None;
        }
        if let Some(out) = self.sender.next_packet(now) {
            return Some(Packet::Data(data_packet(peer_id, out)));
        }
        // The sender's budget counts each copy at its worst-case size, envelope included, so
        // only the bundle's count byte needs room of its own.
        let tail = self
            .sender
            .tail_copies(now, self.config.max_datagram.saturating_sub(1));
        if !tail.is_empty() {
            let seqs: Vec<_> = tail.iter().map(|c| c.seq).collect();
            self.sender.copies_sent(now, &seqs, true);
            let items = tail.into_iter().map(|c| data_packet(peer_id, c)).collect();
            return Some(Packet::Bundle(items));
        }
        if self.receiver.wants_ack_now() {
            return Some(Packet::Ack {
                dst: peer_id,
                ack: self.receiver.ack(now),
            });
        }
        None
    }

    /// Redundancy: when `data` (just encoded into `scratch`) is a new packet and the datagram has
    /// room, re-encodes it as a bundle with copies of recent unacknowledged packets.
    fn add_copies(&mut self, now: Instant, data: &Data) {
        // A bundle costs one byte more than the packet alone (its count), and each copy at most
        // its payload plus `udpchat_core::max_data_overhead()`, which is what the sender budgets.
        let room = self
            .config
            .max_datagram
            .saturating_sub(self.scratch.len() + 1);
        let copies = self.sender.redundant_copies(now, data.seq, room);
        if copies.is_empty() {
            return;
        }
        let seqs: Vec<_> = copies.iter().map(|c| c.seq).collect();
        let mut items = Vec::with_capacity(copies.len() + 1);
        items.push(data.clone());
        items.extend(copies.into_iter().map(|c| data_packet(data.dst, c)));
        let mut bundle = Vec::new();
        // The budget makes this fit; if it did not, the packet goes alone and no copy is counted.
        if encode_into(
            &Packet::Bundle(items),
            self.config.max_datagram,
            &mut bundle,
        )
        .is_ok()
        {
            self.scratch = bundle;
            self.sender.copies_sent(now, &seqs, false);
        }
    }
}

/// The `Data` packet for `out`, addressed to `dst`, without an ack.
fn data_packet(dst: ConnectionId, out: Outgoing) -> Data {
    Data {
        dst,
        seq: out.seq,
        message: out.fragment.message,
        fragment: out.fragment.index,
        fragments: out.fragment.count,
        token: out.token,
        payload: out.fragment.payload,
        ack: None,
    }
}

/// A standalone ack packet with `ack`'s contents, to measure its encoded size.
fn packet_ack_probe(ack: &Ack) -> Packet {
    Packet::Ack {
        dst: ConnectionId(u64::MAX),
        ack: ack.clone(),
    }
}

impl Endpoint for ReliableEndpoint {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        let _ = now;
        if self.closed || self.linger_deadline.is_some() {
            return Err(SendError::Closed);
        }
        if text.len() > self.config.max_message {
            return Err(SendError::TooLong {
                len: text.len(),
                max: self.config.max_message,
            });
        }
        if self.session == Session::Idle {
            if self.peer_addr.is_none() {
                return Err(SendError::NoPeer);
            }
            self.start_handshake();
        }
        let id = MessageId(self.next_message);
        self.sender.push(id, text.as_bytes())?;
        self.next_message += 1;
        self.stats.messages_sent += 1;
        Ok(id)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        if self.closed {
            return;
        }
        let packet = match decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                let cause = match e {
                    DecodeError::BadChecksum { .. } => DropCause::Checksum,
                    _ => DropCause::Malformed,
                };
                self.drop_datagram(from, cause, e.to_string());
                return;
            }
        };
        match packet {
            Packet::Raw(_) => self.drop_datagram(
                from,
                DropCause::Stale,
                "a raw-mode message: the peer is not in reliable mode".into(),
            ),
            Packet::Hello(hello) => self.on_hello(now, from, hello),
            Packet::Welcome(welcome) => self.on_welcome(now, from, welcome),
            Packet::Data(data) => {
                if self.in_session(now, from, data.dst, "Data") {
                    self.last_received = Some(now);
                    self.on_data(now, from, data, false);
                }
            }
            Packet::Bundle(items) => self.on_bundle(now, from, items),
            Packet::Ack { dst, ack } => {
                if self.in_session(now, from, dst, "Ack") {
                    self.last_received = Some(now);
                    self.on_ack(now, from, &ack);
                }
            }
            Packet::Ping { dst } => {
                if self.in_session(now, from, dst, "Ping") {
                    self.last_received = Some(now);
                    self.control.push_back(Control::Pong);
                }
            }
            Packet::Pong { dst } => {
                if self.in_session(now, from, dst, "Pong") {
                    self.last_received = Some(now);
                }
            }
            // The extra copies of a Close we already acted on: expected, counted, not reported.
            Packet::Close { dst, .. } if self.retired_local.contains(&dst) => {
                self.stats.dropped_stale += 1;
            }
            Packet::Close { dst, ack } => {
                if self.in_session(now, from, dst, "Close") {
                    self.on_close(now, from, ack);
                }
            }
        }
        self.check_close_done(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let destination = self.peer_addr?;
        let mut packet = self.next_packet(now)?;
        // Piggyback our ack on data when it fits; otherwise it goes on its own.
        let mut acked = matches!(packet, Packet::Ack { .. });
        let carrier = match &mut packet {
            Packet::Data(data) => Some(data),
            Packet::Bundle(items) => items.first_mut(),
            _ => None,
        };
        if let Some(data) = carrier {
            if self.receiver.has_received() {
                data.ack = Some(self.receiver.ack(now));
                acked = true;
            }
        }
        if encode_into(&packet, self.config.max_datagram, &mut self.scratch).is_err() {
            match &mut packet {
                Packet::Data(data) => {
                    data.ack = None;
                    acked = false;
                }
                Packet::Bundle(items) => {
                    if let Some(data) = items.first_mut() {
                        data.ack = None;
                    }
                    acked = false;
                }
                // Too many ranges for the datagram: keep the highest ones that fit.
                Packet::Ack { ack, .. } => {
                    while ack.ranges.len() > 1
                        && encode_into(
                            &packet_ack_probe(ack),
                            self.config.max_datagram,
                            &mut self.scratch,
                        )
                        .is_err()
                    {
                        let half = ack.ranges.len() / 2;
                        ack.ranges.drain(..half);
                    }
                }
                _ => {}
            }
            // Without the ack a data packet always fits (the fragment size guarantees it), and a
            // halved ack eventually fits. A failure here would be a bug; sending nothing is the
            // safe way to survive it.
            encode_into(&packet, self.config.max_datagram, &mut self.scratch).ok()?;
        }
        if let Packet::Data(data) = &packet {
            self.add_copies(now, data);
        }
        if acked {
            self.receiver.ack_sent();
        }
        self.last_sent = Some(now);
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += self.scratch.len() as u64;
        buf.clear();
        buf.extend_from_slice(&self.scratch);
        Some(destination)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        // Called after every event by every driver: no allocation, just the earliest of a few.
        let session = match self.session {
            Session::Idle => [None; 5],
            Session::Handshaking { sent, .. } => [
                sent.map(|t| t + self.sender.rtt.rto()),
                None,
                None,
                None,
                None,
            ],
            Session::Established { .. } => [
                self.sender.poll_timeout(),
                self.receiver.poll_timeout(),
                self.welcome_deadline(),
                self.last_sent.map(|t| t + self.config.keepalive),
                self.last_received.map(|t| t + self.config.idle_timeout),
            ],
        };
        session
            .into_iter()
            .chain(std::iter::once(self.linger_deadline))
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.linger_deadline.is_some_and(|d| d <= now) {
            self.finish_close(now);
            return;
        }
        match self.session {
            Session::Idle => {}
            Session::Handshaking { sent, tries, .. } => {
                if sent.is_some_and(|t| t + self.sender.rtt.rto() <= now) {
                    if tries >= self.config.max_retries && self.greeting_after_restart {
                        // Nobody answered our greeting: it was a stray datagram. Listen again.
                        self.greeting_after_restart = false;
                        self.session = Session::Idle;
                        self.peer_addr = None;
                        self.control.retain(|c| *c != Control::Hello);
                    } else if tries >= self.config.max_retries {
                        self.peer_unreachable(now);
                    } else {
                        self.sender.rtt.on_timeout();
                        self.session = Session::Handshaking {
                            sent: None,
                            tries: tries + 1,
                            resent: true,
                        };
                        self.control.push_back(Control::Hello);
                    }
                }
            }
            Session::Established { .. } => {
                if self
                    .last_received
                    .is_some_and(|t| t + self.config.idle_timeout <= now)
                {
                    self.peer_unreachable(now);
                    return;
                }
                if self.welcome_deadline().is_some_and(|d| d <= now) {
                    if self.welcome_tries >= self.config.max_retries {
                        self.peer_unreachable(now);
                        return;
                    }
                    self.welcome_tries += 1;
                    self.welcome_sent = None;
                    self.sender.rtt.on_timeout();
                    self.control.push_back(Control::Welcome);
                }
                self.receiver.on_timeout(now);
                if self.sender.on_timeout(now) == TimeoutOutcome::GiveUp {
                    self.peer_unreachable(now);
                    return;
                }
                if self
                    .last_sent
                    .is_some_and(|t| t + self.config.keepalive <= now)
                {
                    self.control.push_back(Control::Ping);
                    // Counts as activity until the Ping is handed out, so the timer moves on.
                    self.last_sent = Some(now);
                }
            }
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn close(&mut self, now: Instant) {
        if self.closed || self.linger_deadline.is_some() {
            return;
        }
        self.linger_deadline = Some(now + self.config.linger);
        if self.session == Session::Idle {
            self.finish_close(now);
        } else {
            self.receiver.request_ack();
            self.check_close_done(now);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed && self.control.is_empty()
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        let counters = self.sender.counters;
        stats.retransmits_timeout = counters.retransmits_timeout;
        stats.retransmits_fast = counters.retransmits_fast;
        stats.retransmits_spurious = counters.retransmits_spurious;
        stats.rtt_min = self.sender.rtt.min_rtt();
        stats.rtt_smoothed = self.sender.rtt.srtt();
        stats.rtt_var = self.sender.rtt.rttvar();
        stats.cwnd = self.sender.window_packets();
        stats.peer_window = self.sender.peer_window();
        stats.redundant_copies = counters.redundant_copies;
        stats
    }
}
