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
//! address with a new id while a session is up may mean the peer restarted, or may be forged
//! (it needs no id, only the address): the session is pinged, and only if it stays silent for a
//! few timeouts does the next such `Hello` end it. Then its unacknowledged messages are
//! reported lost, its partial data discarded, both sides take fresh ids, and the new session
//! starts from sequence number 0, so nothing of the old one can be mixed in.
//!
//! **States.** Idle, Handshaking, Established, HalfClosed, Closing and Closed, each with its own
//! data, and one place that changes them and refuses moves the protocol does not have
//! (`conn/state.rs`).
//!
//! **Half-close and nickname changes.** Session control that must take effect at a point in the
//! conversation travels in the data stream, as a message under its own packet kind: `Fin` (we
//! have finished sending, [`Endpoint::finish`]) and `Nick` (our new nickname,
//! [`Endpoint::set_nick`]). Each is sequenced, acknowledged and resent like a chat line, so the
//! peer acts on it once, after the lines sent before it. Their message numbers count down from
//! `u64::MAX`, so the application's own messages stay numbered 0, 1, 2, … with no holes, and
//! their deliveries and losses are the transport's business, never reported as a message's.
//! A `Fin` counts once it and everything before it has been delivered: then the peer has
//! finished ([`Event::PeerFinished`]). When both sides have finished and everything we sent is
//! acknowledged, the session closes with `Close`, as after `close`, but with no linger deadline.
//!
//! **Timers.** The handshake is resent on the retransmission timeout; data has its own timeout
//! and fast retransmit (see [`Sender`]); acks may wait `max_ack_delay`; a `Ping` goes out after
//! `keepalive` of silence; `idle_timeout` without hearing anything, or `max_retries` consecutive
//! timeouts, end the session with `PeerUnreachable` and a `Lost` event for every message not
//! acknowledged. `close` lingers until every message is acknowledged (or `linger` runs out, and
//! the rest are reported lost), then sends `Close` carrying a final ack. Every deadline is in one
//! table, each under its timer's name (`conn/timer.rs`): `timer_name` says which fires next.
//!
//! **Redundancy.** With `redundancy` above 0, a datagram carrying a new data packet that leaves
//! room also carries copies of recent unacknowledged ones, as one `Bundle` (the sender chooses
//! them: [`Sender::redundant_copies`]). The receiver takes each packet of a bundle as if it had
//! arrived alone, so a copy that arrives before its original simply is that packet.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use udpchat_core::{
    decode, encode_into, Ack, ConnectionId, Data, DecodeError, Hello, Packet, PacketKind, SeqNum,
    Welcome,
};

use super::config::{ConfigError, ReliableConfig};
use super::fragment::Fragment;
use super::pieces::{self, PieceAssembler};
use super::receiver::{Arrival, Receiver};
use super::sender::{BadAck, Outgoing, Sender, TimeoutOutcome};
use crate::endpoint::{DropCause, Endpoint, Event, MessageId, NickError, SendError, Stats};

mod state;
mod timer;

use state::{CloseReason, Established, Handshake, Next, RestartProbe, Session, Side, State};
use timer::{Timer, TimerTable};

/// How many retired connection ids (ours and the peer's) we remember to tell stale from foreign.
const RETIRED_IDS: usize = 16;

/// How many copies of `Close` we send: it is never acknowledged, so a few copies make its loss
/// unlikely (at 20% loss, all three are lost 0.8% of the time; the peer's idle timeout covers it).
const CLOSE_COPIES: usize = 3;

/// How long, in retransmission timeouts, the current session must stay silent after a `Hello`
/// with a new id from the peer's address before a restart is believed. It is pinged once per
/// timeout meanwhile: a live peer answers the first unless three round trips in a row are lost.
const RESTART_PROBE_RTOS: u32 = 3;

/// For how many distinct addresses a refused `Hello` is reported as [`Event::TurnedAway`]: a
/// few tell the user what happened; a flood from many source ports is only counted.
const TURNED_AWAY_REPORTS: usize = 16;

/// Where the peer's `Fin` is: not seen, delivered at this sequence number but not yet counted
/// (in unordered delivery, data sent before it may still be missing), or reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerFin {
    NotYet,
    Delivered(SeqNum),
    Reported,
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
    /// The answer to the peer's path MTU probe with this id.
    ProbeAck(u32),
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
    /// Idle, handshaking, established, closing or closed, each with its own data.
    state: State,
    /// Every deadline, refreshed after every event (see [`ReliableEndpoint::arm_timers`]).
    timers: TimerTable,
    retired_local: VecDeque<ConnectionId>,
    retired_peer: VecDeque<ConnectionId>,
    sender: Sender,
    receiver: Receiver,
    control: VecDeque<Control>,
    /// Pieces of a stranded data packet still to send (`pieces.rs`), before anything new.
    pieces_out: VecDeque<Packet>,
    /// The number of the next datagram sent in pieces.
    next_piece_id: u32,
    /// Pieces from the peer being joined.
    pieces_in: PieceAssembler,
    events: VecDeque<Event>,
    stats: Stats,
    next_message: u64,
    /// When we last sent anything (for the keepalive); outlives sessions.
    last_sent: Option<Instant>,
    /// The addresses already reported as [`Event::TurnedAway`] (at most [`TURNED_AWAY_REPORTS`]).
    turned_away: Vec<SocketAddr>,
    /// Our session control messages in the data stream (`Fin`, `Nick`) by message number, until
    /// delivered or lost: sent under their own packet kind, never reported as messages.
    control_out: BTreeMap<u64, PacketKind>,
    /// The next control message's number, counted down from `u64::MAX`.
    next_control: u64,
    /// The peer's control messages that arrived and wait to be delivered in order: their kind
    /// and their packet's sequence number. At most a receive window of them.
    control_in: BTreeMap<u64, (PacketKind, SeqNum)>,
    /// The peer's `Fin` in this session.
    peer_fin: PeerFin,
    /// Our own `Hello` came back to us, and was reported ([`Event::TalkingToSelf`]).
    self_talk_reported: bool,
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
            state: State::new(),
            timers: TimerTable::default(),
            retired_local: VecDeque::new(),
            retired_peer: VecDeque::new(),
            control: VecDeque::new(),
            pieces_out: VecDeque::new(),
            next_piece_id: 0,
            pieces_in: PieceAssembler::default(),
            events: VecDeque::new(),
            stats: Stats::default(),
            next_message: 0,
            last_sent: None,
            turned_away: Vec::new(),
            control_out: BTreeMap::new(),
            next_control: u64::MAX,
            control_in: BTreeMap::new(),
            peer_fin: PeerFin::NotYet,
            self_talk_reported: false,
        };
        if peer.is_some() {
            endpoint.start_handshake(false);
        }
        endpoint.arm_timers();
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

    /// True while a session is established (also while it closes).
    pub fn is_established(&self) -> bool {
        self.state.established().is_some()
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

    /// Idle → Handshaking: queues our `Hello`. `greeting`: see [`Handshake::greeting`].
    fn start_handshake(&mut self, greeting: bool) {
        self.state
            .move_to(Next::Handshaking(Handshake::new(greeting)));
        self.control.retain(|c| *c != Control::Hello);
        self.control.push_back(Control::Hello);
    }

    /// → Established: a session with `peer_id` at `from` (the handshake's end, or a restart
    /// replacing the session). A restart keeps the peer, so only a new session says `Peer`.
    fn established(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer_id: ConnectionId,
        peer: Greeting,
    ) {
        let restart = self.state.established().is_some();
        self.state.move_to(Next::Established(Established::new(
            peer_id,
            peer.confirmed,
            now,
        )));
        self.peer_addr = Some(from);
        let old = std::mem::replace(&mut self.peer_nick, peer.nick.clone());
        self.sender.set_peer_window(peer.window);
        if !restart {
            self.events.push_back(Event::Peer {
                addr: from,
                nick: Some(peer.nick),
            });
        } else if old != peer.nick {
            self.events.push_back(Event::NickChanged {
                old,
                new: peer.nick,
            });
        }
    }

    /// Our input is over (`finish` was called, or `close`): a session that ends now leaves
    /// nothing for us to do, so the endpoint closes rather than waits for a new one.
    fn finishing(&self) -> bool {
        self.state.is_closing()
            || matches!(self.state.half_closed(), Some(Side::Local | Side::Both))
    }

    /// Queues a control message (`Fin`, `Nick`) in the data stream; false if it does not fit.
    fn push_control(&mut self, kind: PacketKind, bytes: &[u8]) -> bool {
        let id = self.next_control;
        if self.sender.push(MessageId(id), bytes).is_err() {
            return false;
        }
        self.next_control -= 1;
        self.control_out.insert(id, kind);
        true
    }

    /// A new session replaced one in which we had finished: our `Fin` goes again, unless it
    /// was never sent (then it moved to the new session with the rest of the unsent data).
    fn refinish_after_restart(&mut self) {
        let fin_queued = self.control_out.values().any(|k| *k == PacketKind::Fin);
        if self.state.half_closed() == Some(Side::Local) && !fin_queued {
            self.push_control(PacketKind::Fin, &[]);
        }
    }

    /// The session is over without `close`: → Idle, or, if we were closing, → Closed.
    fn session_over(&mut self, now: Instant, why: CloseReason) {
        if self.finishing() {
            self.finish_close(now, why);
        } else {
            self.state.move_to(Next::Idle);
        }
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
    fn drop_misaddressed(&mut self, from: SocketAddr, dst: ConnectionId, kind: PacketKind) {
        let cause = if self.retired_local.contains(&dst) || dst == self.local_id {
            DropCause::Stale
        } else {
            DropCause::Foreign
        };
        let detail = format!("{kind:?} for connection {:016x}, not ours", dst.0);
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

    /// Retires the current session's ids and empties its halves for the next one; the caller
    /// moves to the next state. Returns the messages that had started to be sent, which the
    /// caller reports as lost (with `keep_unsent`, messages never sent stay queued).
    fn end_session(&mut self, keep_unsent: bool) -> Vec<MessageId> {
        if let Some(peer_id) = self.state.peer_id() {
            Self::retire(&mut self.retired_peer, peer_id);
        }
        Self::retire(&mut self.retired_local, self.local_id);
        self.local_id = ConnectionId(self.rng.next_u64());
        self.receiver = Receiver::new(&self.config);
        self.control_in.clear();
        self.peer_fin = PeerFin::NotYet;
        self.control.retain(|c| matches!(c, Control::Close(..)));
        if keep_unsent {
            self.sender.restart_session()
        } else {
            self.sender.take_unacknowledged()
        }
    }

    fn report_lost(&mut self, lost: Vec<MessageId>) {
        for id in lost {
            // A control message is the transport's own: the application never sent it.
            if self.control_out.remove(&id.0).is_some() {
                continue;
            }
            self.stats.messages_lost += 1;
            self.events.push_back(Event::Lost { id });
        }
    }

    fn peer_unreachable(&mut self, now: Instant) {
        let lost = self.end_session(false);
        self.report_lost(lost);
        self.events.push_back(Event::PeerUnreachable);
        self.session_over(now, CloseReason::PeerUnreachable);
    }

    fn on_hello(&mut self, now: Instant, from: SocketAddr, hello: Hello) {
        if hello.src == self.local_id || self.retired_local.contains(&hello.src) {
            self.own_hello(now, from);
            return;
        }
        if self.retired_peer.contains(&hello.src) {
            self.drop_datagram(
                from,
                DropCause::Stale,
                "Hello from an earlier session".into(),
            );
            return;
        }
        let peer = Greeting {
            nick: hello.nick,
            window: hello.window,
            confirmed: false,
        };
        match self.state.peer_id() {
            Some(peer_id) if Some(from) == self.peer_addr && hello.src == peer_id => {
                if let Some(session) = self.state.established_mut() {
                    session.last_received = now;
                    // The peer of this session is there: a claimed restart was not one.
                    session.restart_probe = None;
                }
                // The peer has not seen our Welcome (yet): resend it.
                self.control.push_back(Control::Welcome);
            }
            Some(_) if Some(from) == self.peer_addr => {
                if !self.restart_confirmed(now) {
                    self.drop_datagram(
                        from,
                        DropCause::Foreign,
                        "Hello with a new connection id from the peer's address while the \
                         session answers: not a restart"
                            .into(),
                    );
                    return;
                }
                // The session stayed silent for the whole probe: the peer restarted.
                let lost = self.end_session(true);
                self.report_lost(lost);
                self.events.push_back(Event::PeerRestarted);
                self.established(now, from, hello.src, peer);
                self.refinish_after_restart();
                self.control.push_back(Control::Welcome);
            }
            Some(_) => {
                self.drop_datagram(from, DropCause::Foreign, "Hello from a third party".into());
                self.turn_away(from, self.peer_addr);
            }
            None => {
                if self.fixed_peer.is_some_and(|p| p != from) {
                    self.drop_datagram(
                        from,
                        DropCause::Foreign,
                        "Hello from an address other than --peer".into(),
                    );
                    self.turn_away(from, self.fixed_peer);
                    return;
                }
                // Both may have sent Hello at once: answering theirs with our id completes the
                // handshake for both sides, whichever Hello or Welcome arrives first.
                self.control.retain(|c| *c != Control::Hello);
                self.established(now, from, hello.src, peer);
                self.control.push_back(Control::Welcome);
            }
        }
    }

    /// One of our own `Hello`s came back (from `from`): our datagrams loop back to us. Never
    /// answered (we would chat with ourselves). A handshake to that address is given up at
    /// once, since only our own echo will ever answer it: its queued messages are reported
    /// lost, as when a peer is unreachable. Reported for each attempt given up (each is one we
    /// made), and otherwise once, so replayed copies cannot flood the application.
    fn own_hello(&mut self, now: Instant, from: SocketAddr) {
        self.drop_datagram(
            from,
            DropCause::Foreign,
            "our own Hello came back: our datagrams loop back to us".into(),
        );
        let give_up = self.state.handshake().is_some() && Some(from) == self.peer_addr;
        if !std::mem::replace(&mut self.self_talk_reported, true) || give_up {
            self.events.push_back(Event::TalkingToSelf { from });
        }
        if give_up {
            let lost = self.end_session(false);
            self.report_lost(lost);
            self.session_over(now, CloseReason::PeerUnreachable);
        }
    }

    /// Reports that `from`'s `Hello` was refused because we talk to `peer`: once per address,
    /// for the first [`TURNED_AWAY_REPORTS`] addresses.
    fn turn_away(&mut self, from: SocketAddr, peer: Option<SocketAddr>) {
        let Some(peer) = peer else {
            return;
        };
        if self.turned_away.len() < TURNED_AWAY_REPORTS && !self.turned_away.contains(&from) {
            self.turned_away.push(from);
            self.events.push_back(Event::TurnedAway { from, peer });
        }
    }

    /// A `Hello` with a new id came from the peer's address: true if it is a restart. Anyone
    /// who can forge the peer's address can send one, so it is believed only once the current
    /// session has been silent for [`RESTART_PROBE_RTOS`] timeouts while being pinged: the first
    /// such `Hello` starts that probe, and any packet of the session from the peer ends it
    /// ([`ReliableEndpoint::in_session`]). A restarted peer resends its `Hello` until answered,
    /// so a real restart is still taken, on its first `Hello` after the probe.
    fn restart_confirmed(&mut self, now: Instant) -> bool {
        let rto = self.sender.rtt.rto();
        let Some(session) = self.state.established_mut() else {
            return false;
        };
        match session.restart_probe {
            Some(probe) => probe.until <= now,
            None => {
                session.restart_probe = Some(RestartProbe {
                    until: now + rto * RESTART_PROBE_RTOS,
                    next_ping: Some(now + rto),
                });
                self.queue_ping();
                false
            }
        }
    }

    /// The restart probe's timer: ping the session again, while the probe lasts.
    fn probe_timeout(&mut self, now: Instant) {
        let rto = self.sender.rtt.rto();
        let Some(probe) = self
            .state
            .established_mut()
            .and_then(|s| s.restart_probe.as_mut())
        else {
            return;
        };
        let next = now + rto;
        probe.next_ping = (next < probe.until).then_some(next);
        if now < probe.until {
            self.queue_ping();
        }
    }

    fn queue_ping(&mut self) {
        if !self.control.contains(&Control::Ping) {
            self.control.push_back(Control::Ping);
        }
    }

    fn on_welcome(&mut self, now: Instant, from: SocketAddr, welcome: Welcome) {
        if welcome.dst != self.local_id || Some(from) != self.peer_addr {
            self.drop_misaddressed(from, welcome.dst, PacketKind::Welcome);
            return;
        }
        if self.state.handshake().is_some() && self.retired_peer.contains(&welcome.src) {
            // As for a Hello: an id we retired belongs to a dead session. A peer still using it
            // never learned that (its handshake never finished), and joining it now would take
            // the dead session's delayed data, addressed to that id, into the new one.
            self.drop_datagram(
                from,
                DropCause::Stale,
                "Welcome from an earlier session".into(),
            );
            return;
        }
        if let Some(&Handshake { sent, resent, .. }) = self.state.handshake() {
            // Karn's rule: only a Hello sent once gives an unambiguous first RTT sample.
            if let (Some(sent), false) = (sent, resent) {
                self.sender
                    .rtt
                    .on_sample(now.saturating_duration_since(sent), Default::default());
            }
            let peer = Greeting {
                nick: welcome.nick,
                window: welcome.window,
                confirmed: true,
            };
            self.established(now, from, welcome.src, peer);
            // The third leg: tells the peer we have its Welcome, so it may send data.
            self.control.push_back(Control::Ack);
            return;
        }
        match self.state.established_mut() {
            Some(session) if session.peer_id == welcome.src => {
                // A repeated Welcome (our Hello was resent, or both sides opened at once): the
                // peer knows our id; and it may not know we have its Welcome yet.
                session.last_received = now;
                session.confirmed = true;
                session.restart_probe = None;
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
        let session = self.state.established()?;
        if session.confirmed || self.sender.all_delivered() {
            return None;
        }
        session.welcome_sent.map(|t| t + self.sender.rtt.rto())
    }

    /// Checks that a post-handshake packet belongs to the current session; if it does, it counts
    /// as hearing from the peer.
    fn in_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dst: ConnectionId,
        kind: PacketKind,
    ) -> bool {
        let ours = dst == self.local_id && Some(from) == self.peer_addr;
        if let (Some(&Handshake { sent, .. }), true) = (self.state.handshake(), ours) {
            // The peer has our Hello but its Welcome (or Hello) was lost: we cannot use its
            // data without its id, so ask again now rather than at our next timeout.
            let recently = sent.is_some_and(|t| now < t + self.config.min_rto);
            if !recently && !self.control.contains(&Control::Hello) {
                self.control.push_back(Control::Hello);
            }
        }
        if let (Some(session), true) = (self.state.established_mut(), ours) {
            session.confirmed = true;
            session.last_received = now;
            // The session is alive: a Hello claiming a restart was not one.
            session.restart_probe = None;
            return true;
        }
        self.greet_after_restart(from, kind);
        if Some(from) != self.peer_addr && self.peer_addr.is_some() {
            self.drop_datagram(
                from,
                DropCause::Foreign,
                format!("{kind:?} from {from}, not our peer"),
            );
        } else {
            self.drop_misaddressed(from, dst, kind);
        }
        false
    }

    /// A fresh listener (no `--peer`, never had a session) that receives session traffic for a
    /// connection id it never issued has most likely restarted, and `from` is still talking to
    /// its previous incarnation. Answering with a `Hello` lets `from` see a new connection id,
    /// report `PeerRestarted` and open a fresh session, instead of retrying into the void until
    /// it gives up. (A `Close` needs no answer: that peer is leaving.)
    fn greet_after_restart(&mut self, from: SocketAddr, kind: PacketKind) {
        if kind != PacketKind::Close
            && self.state.is_idle()
            && self.peer_addr.is_none()
            && self.fixed_peer.is_none()
        {
            self.peer_addr = Some(from);
            self.start_handshake(true);
        }
    }

    fn on_ack(&mut self, now: Instant, from: SocketAddr, ack: &Ack) {
        match self.sender.on_ack(now, ack) {
            Ok(outcome) => {
                for (id, rtt) in outcome.delivered {
                    if self.control_out.remove(&id.0).is_some() {
                        continue;
                    }
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
                    self.delivered_message(from, number, bytes);
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

    /// Hands one message of the peer's, complete and in order, to the application: a chat line
    /// as `Message`; a control message acted on.
    fn delivered_message(&mut self, from: SocketAddr, number: u64, bytes: Vec<u8>) {
        match self.control_in.remove(&number) {
            Some((PacketKind::Fin, seq)) => self.peer_fin = PeerFin::Delivered(seq),
            Some((PacketKind::Nick, _)) => {
                let new = String::from_utf8_lossy(&bytes).into_owned();
                let old = std::mem::replace(&mut self.peer_nick, new.clone());
                self.events.push_back(Event::NickChanged { old, new });
            }
            _ => {
                self.stats.messages_received += 1;
                self.events.push_back(Event::Message {
                    from,
                    nick: self.peer_nick.clone(),
                    seq: Some(number),
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
        }
    }

    /// Takes a `Fin` or `Nick`: noted by message number, then taken as data, so it is
    /// delivered in order with the rest. At most a receive window of them wait at once (a
    /// sender cannot have more in flight).
    fn on_control_data(&mut self, now: Instant, from: SocketAddr, kind: PacketKind, data: Data) {
        let message = data.message;
        let fresh = !self.control_in.contains_key(&message);
        if fresh && self.control_in.len() >= self.config.window as usize {
            self.drop_datagram(
                from,
                DropCause::Malformed,
                format!("{kind:?} beyond the receive window"),
            );
            return;
        }
        self.control_in.insert(message, (kind, data.seq));
        if !self.on_data(now, from, data, false) && fresh {
            self.control_in.remove(&message);
        }
    }

    /// The peer's `Fin` counts once everything before it has been delivered: then the peer
    /// has finished, and if we had too, the session closes once all we sent is acknowledged.
    fn check_peer_finished(&mut self) {
        let PeerFin::Delivered(seq) = self.peer_fin else {
            return;
        };
        if self.receiver.delivered() <= seq {
            return;
        }
        self.peer_fin = PeerFin::Reported;
        self.events.push_back(Event::PeerFinished);
        // Tell the peer soon that its Fin arrived: it may be waiting for just that to close.
        self.receiver.request_ack();
        match self.state.half_closed() {
            Some(Side::Local) => self.state.move_to(Next::HalfClosed(Side::Both)),
            None if !self.state.is_closing() => self.state.move_to(Next::HalfClosed(Side::Peer)),
            _ => {}
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
        if !self.in_session(now, from, dst, PacketKind::Bundle) {
            return;
        }
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
        // Both had finished: the peer's Close is the session's normal end, not the peer
        // leaving in the middle.
        let both_finished = self.state.half_closed() == Some(Side::Both);
        let lost = self.end_session(false);
        self.report_lost(lost);
        if !both_finished {
            self.events.push_back(Event::PeerClosed);
        }
        self.session_over(now, CloseReason::PeerClosed);
    }

    /// → Closed: reports what was never acknowledged and, when our `close` finished an
    /// established session, queues the copies of `Close` with a final ack.
    fn finish_close(&mut self, now: Instant, why: CloseReason) {
        if self.state.is_closed() {
            return;
        }
        let lost = self.sender.take_unacknowledged();
        self.report_lost(lost);
        let mut final_ack = None;
        if let (Some(peer_id), CloseReason::Finished) = (self.state.peer_id(), why) {
            final_ack = self.receiver.has_received().then(|| self.receiver.ack(now));
            for _ in 0..CLOSE_COPIES {
                self.control.push_back(Control::Close(peer_id));
            }
        }
        self.control.retain(|c| matches!(c, Control::Close(..)));
        self.state.move_to(Next::Closed { why, final_ack });
        self.events.push_back(Event::Closed);
    }

    fn check_close_done(&mut self, now: Instant) {
        let done = self.state.is_closing() || self.state.half_closed() == Some(Side::Both);
        if done && self.sender.all_delivered() {
            self.finish_close(now, CloseReason::Finished);
        }
    }

    /// The control packet for `control` as the session stands now, or `None` if the session it
    /// was meant for is gone.
    fn control_packet(&mut self, now: Instant, control: Control) -> Option<Packet> {
        if let Control::Close(dst) = control {
            let ack = self.state.final_ack().cloned();
            return Some(Packet::Close { dst, ack });
        }
        if let (Control::Hello, Some(handshake)) = (control, self.state.handshake_mut()) {
            handshake.resent |= handshake.sent.is_some();
            handshake.sent = Some(now);
            return Some(Packet::Hello(Hello {
                src: self.local_id,
                nick: self.config.nick.clone(),
                window: self.config.window,
            }));
        }
        let session = self.state.established_mut()?;
        let dst = session.peer_id;
        Some(match control {
            Control::Welcome => {
                if !session.confirmed {
                    session.welcome_sent = Some(now);
                }
                Packet::Welcome(Welcome {
                    src: self.local_id,
                    dst,
                    nick: self.config.nick.clone(),
                    window: self.config.window,
                })
            }
            Control::Ack => Packet::Ack {
                dst,
                ack: self.receiver.ack(now),
            },
            Control::Ping => Packet::Ping { dst },
            Control::Pong => Packet::Pong { dst },
            Control::ProbeAck(id) => Packet::ProbeAck { dst, id },
            Control::Hello | Control::Close(_) => return None,
        })
    }

    /// Builds the next packet to send, if any.
    fn next_packet(&mut self, now: Instant) -> Option<Packet> {
        while let Some(control) = self.control.pop_front() {
            if let Some(packet) = self.control_packet(now, control) {
                return Some(packet);
            }
        }
        if self.state.is_closed() {
            return None;
        }
        if let Some(piece) = self.pieces_out.pop_front() {
            return Some(piece);
        }
        let session = self.state.established()?;
        if !session.confirmed {
            return None;
        }
        let peer_id = session.peer_id;
        // The handshake confirmed the base size both ways: the search for more can start.
        self.sender.path_mtu_mut().start(now);
        if let Some(out) = self.sender.next_packet(now) {
            let kind = self.control_out.get(&out.fragment.message).copied();
            let data = data_packet(peer_id, out);
            return Some(match kind {
                Some(PacketKind::Fin) => Packet::Fin(data),
                Some(PacketKind::Nick) => Packet::Nick(data),
                _ => Packet::Data(data),
            });
        }
        // The sender's budget counts each copy at its worst-case size, envelope included, so
        // only the bundle's count byte needs room of its own.
        let plpmtu = self.sender.path_mtu().current();
        let tail = self.sender.tail_copies(now, plpmtu.saturating_sub(1));
        let tail = self.without_control(tail);
        if !tail.is_empty() {
            let seqs: Vec<_> = tail.iter().map(|c| c.seq).collect();
            self.sender.copies_sent(now, &seqs, true);
            let items = tail.into_iter().map(|c| data_packet(peer_id, c)).collect();
            return Some(Packet::Bundle(items));
        }
        if let Some(probe) = self.next_probe(now, peer_id) {
            return Some(probe);
        }
        if self.receiver.wants_ack_now() {
            return Some(Packet::Ack {
                dst: peer_id,
                ack: self.receiver.ack(now),
            });
        }
        None
    }

    /// A path MTU probe, if one is due: padded to the size being tried (`transport/pmtu.rs`).
    fn next_probe(&mut self, now: Instant, peer_id: ConnectionId) -> Option<Packet> {
        let timeout = self.sender.rtt.rto();
        let (id, size) = self.sender.path_mtu_mut().poll_probe(now, timeout)?;
        Packet::probe(peer_id, id, size)
    }

    /// Puts our ack on a data packet (the first of a bundle) when we have received anything.
    /// Returns whether the packet carries an ack (a bare `Ack` always does).
    fn piggyback_ack(&self, now: Instant, packet: &mut Packet) -> bool {
        let carrier = match packet {
            Packet::Ack { .. } => return true,
            Packet::Data(data) | Packet::Fin(data) | Packet::Nick(data) => Some(data),
            Packet::Bundle(items) => items.first_mut(),
            _ => None,
        };
        match carrier {
            Some(data) if self.receiver.has_received() => {
                data.ack = Some(self.receiver.ack(now));
                true
            }
            _ => false,
        }
    }

    /// Makes a packet too long for the datagram fit: a data packet goes without its ack. Returns
    /// whether it still carries an ack (`acked`: whether it did). A bare ack needs nothing:
    /// `Receiver::ack` already trims its ranges to the datagram, before computing the echo that
    /// covers them (trimming here would break the echo).
    fn shrink(packet: &mut Packet, acked: bool) -> bool {
        match packet {
            Packet::Data(data) | Packet::Fin(data) | Packet::Nick(data) => {
                data.ack = None;
                false
            }
            Packet::Bundle(items) => {
                if let Some(data) = items.first_mut() {
                    data.ack = None;
                }
                false
            }
            _ => acked,
        }
    }

    /// Redundancy: when `data` (`len` bytes encoded) is a new packet and the datagram has room,
    /// the bundle of it and copies of recent unacknowledged packets that replaces it.
    fn with_copies(&mut self, now: Instant, data: &Data, len: usize) -> Option<Packet> {
        // A bundle costs one byte more than the packet alone (its count), and each copy at most
        // its payload plus `udpchat_core::max_data_overhead()`, which is what the sender budgets.
        let max = self.sender.path_mtu().current();
        let room = max.saturating_sub(len + 1);
        let copies = self.sender.redundant_copies(now, data.seq, room);
        let copies = self.without_control(copies);
        if copies.is_empty() {
            return None;
        }
        let seqs: Vec<_> = copies.iter().map(|c| c.seq).collect();
        let mut items = Vec::with_capacity(copies.len() + 1);
        items.push(data.clone());
        items.extend(copies.into_iter().map(|c| data_packet(data.dst, c)));
        let bundle = Packet::Bundle(items);
        // The budget makes this fit; if it did not, the packet goes alone and no copy is counted.
        if bundle.encoded_len() > max {
            return None;
        }
        self.sender.copies_sent(now, &seqs, false);
        Some(bundle)
    }

    /// Redundant copies, less those of control messages: a `Bundle` holds only `Data`, and
    /// a control message is rare enough to rely on resends alone.
    fn without_control(&self, copies: Vec<Outgoing>) -> Vec<Outgoing> {
        copies
            .into_iter()
            .filter(|c| !self.control_out.contains_key(&c.fragment.message))
            .collect()
    }

    /// `poll_transmit`: the next packet, sized to fit, encoded once into `buf`.
    fn transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let destination = self.peer_addr?;
        let mut packet = self.next_packet(now)?;
        // A probe is as large as the size it tries; everything else fits the PLPMTU.
        let max = match &packet {
            Packet::Probe { .. } => packet.encoded_len(),
            _ => self.sender.path_mtu().current(),
        };
        // Piggyback our ack on data when it fits; otherwise it goes on its own.
        let mut acked = self.piggyback_ack(now, &mut packet);
        let mut len = packet.encoded_len();
        if len > max {
            acked = Self::shrink(&mut packet, acked);
            len = packet.encoded_len();
        }
        // Without the ack a data packet fits (it was cut for the PLPMTU), unless it was cut for a
        // larger one before a black hole: then it goes in pieces. An ack is built to fit.
        if len > max {
            return self.transmit_in_pieces(now, &packet, max, buf, destination);
        }
        if let Packet::Data(data) = &packet {
            if let Some(bundle) = self.with_copies(now, data, len) {
                packet = bundle;
            }
        }
        encode_into(&packet, max, buf).ok()?;
        if acked {
            self.receiver.ack_sent();
        }
        self.last_sent = Some(now);
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += buf.len() as u64;
        Some(destination)
    }

    /// A data packet cut for a larger PLPMTU than the path now carries: sent as pieces that fit
    /// (`pieces.rs`), the first now, the rest before anything else. Anything else that does not
    /// fit would be a bug; sending nothing is the safe way to survive it.
    fn transmit_in_pieces(
        &mut self,
        now: Instant,
        packet: &Packet,
        max: usize,
        buf: &mut Vec<u8>,
        destination: SocketAddr,
    ) -> Option<SocketAddr> {
        let (Packet::Data(data) | Packet::Fin(data) | Packet::Nick(data)) = packet else {
            return None;
        };
        let whole = udpchat_core::encode(packet, udpchat_core::MAX_UDP_PAYLOAD).ok()?;
        let id = self.next_piece_id;
        self.next_piece_id = self.next_piece_id.wrapping_add(1);
        let mut split = pieces::split(&whole, data.dst, id, max)?.into_iter();
        let first = split.next()?;
        self.pieces_out.extend(split);
        encode_into(&first, max, buf).ok()?;
        self.last_sent = Some(now);
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += buf.len() as u64;
        Some(destination)
    }

    /// A piece of a datagram too large for the path (`pieces.rs`): once all are in, the
    /// datagram is taken as it is, if it is one of the data stream's.
    fn on_piece(&mut self, now: Instant, from: SocketAddr, piece: (u32, u32, u32, Vec<u8>)) {
        let (id, index, count, bytes) = piece;
        let datagram = match self.pieces_in.push(id, index, count, bytes) {
            Ok(Some(datagram)) => datagram,
            Ok(None) => return,
            Err(e) => return self.drop_datagram(from, DropCause::Malformed, e.to_string()),
        };
        match decode(&datagram) {
            Ok(Packet::Data(data)) => {
                if self.in_session(now, from, data.dst, PacketKind::Data) {
                    self.on_data(now, from, data, false);
                }
            }
            Ok(Packet::Fin(data)) => {
                if self.in_session(now, from, data.dst, PacketKind::Fin) {
                    self.on_control_data(now, from, PacketKind::Fin, data);
                }
            }
            Ok(Packet::Nick(data)) => {
                if self.in_session(now, from, data.dst, PacketKind::Nick) {
                    self.on_control_data(now, from, PacketKind::Nick, data);
                }
            }
            Ok(other) => self.drop_datagram(
                from,
                DropCause::Malformed,
                format!("pieces joined into a {:?}, not data", other.kind()),
            ),
            Err(e) => self.drop_datagram(from, DropCause::Malformed, format!("joined pieces: {e}")),
        }
    }

    /// Takes one datagram (`handle_datagram` without the timer refresh).
    fn on_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        if self.state.is_closed() {
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
        let kind = packet.kind();
        match packet {
            Packet::Raw(_) => self.drop_datagram(
                from,
                DropCause::Stale,
                "a raw-mode message: the peer is not in reliable mode".into(),
            ),
            Packet::Hello(hello) => self.on_hello(now, from, hello),
            Packet::Welcome(welcome) => self.on_welcome(now, from, welcome),
            Packet::Data(data) => {
                if self.in_session(now, from, data.dst, kind) {
                    self.on_data(now, from, data, false);
                }
            }
            Packet::Bundle(items) => self.on_bundle(now, from, items),
            Packet::Fin(data) | Packet::Nick(data) => {
                if self.in_session(now, from, data.dst, kind) {
                    self.on_control_data(now, from, kind, data);
                }
            }
            Packet::Ack { dst, ack } => {
                if self.in_session(now, from, dst, kind) {
                    self.on_ack(now, from, &ack);
                }
            }
            Packet::Ping { dst } => {
                if self.in_session(now, from, dst, kind) {
                    self.control.push_back(Control::Pong);
                }
            }
            // A path MTU probe (RFC 8899) got through at its size: say so. Its padding is not
            // looked at; one answer per probe, so a flood of probes costs the same in answers,
            // each far smaller than the probe.
            Packet::Probe { dst, id, .. } => {
                if self.in_session(now, from, dst, kind) {
                    self.control.push_back(Control::ProbeAck(id));
                }
            }
            // Our probe got through: the path carries its size.
            Packet::ProbeAck { dst, id } => {
                if self.in_session(now, from, dst, kind) {
                    self.sender.path_mtu_mut().on_probe_ack(now, id);
                }
            }
            Packet::Pong { dst } => {
                self.in_session(now, from, dst, kind);
            }
            Packet::Piece {
                dst,
                id,
                index,
                count,
                bytes,
            } => {
                if self.in_session(now, from, dst, kind) {
                    self.on_piece(now, from, (id, index, count, bytes));
                }
            }
            // The extra copies of a Close we already acted on: expected, counted, not reported.
            Packet::Close { dst, .. } if self.retired_local.contains(&dst) => {
                self.stats.dropped_stale += 1;
            }
            Packet::Close { dst, ack } => {
                if self.in_session(now, from, dst, kind) {
                    self.on_close(now, from, ack);
                }
            }
        }
        self.check_peer_finished();
        self.check_close_done(now);
    }

    /// Copies every deadline into the timer table. Called after every event: each deadline
    /// depends on state that several events change (the RTO, whether all is delivered, the
    /// sender's and receiver's own timers), and recomputing them all keeps the table right by
    /// construction.
    fn arm_timers(&mut self) {
        self.timers.clear();
        self.timers.set(Timer::Linger, self.state.linger());
        match self.state.session() {
            None => {}
            Some(Session::Handshaking(handshake)) => {
                let rto = self.sender.rtt.rto();
                self.timers
                    .set(Timer::Handshake, handshake.sent.map(|t| t + rto));
            }
            Some(Session::Established(session)) => {
                let idle = session.last_received + self.config.idle_timeout;
                let [rto, loss, tail] = self.sender.deadlines();
                self.timers.set(Timer::Idle, Some(idle));
                self.timers.set(Timer::Welcome, self.welcome_deadline());
                self.timers
                    .set(Timer::DelayedAck, self.receiver.poll_timeout());
                self.timers.set(Timer::TailCopy, tail);
                self.timers.set(Timer::Loss, loss);
                self.timers.set(Timer::Rto, rto);
                self.timers
                    .set(Timer::Pacing, self.sender.pacing_deadline());
                self.timers
                    .set(Timer::PathMtu, self.sender.path_mtu().deadline());
                self.timers.set(
                    Timer::RestartProbe,
                    session.restart_probe.and_then(|p| p.next_ping),
                );
                self.timers.set(
                    Timer::Keepalive,
                    self.last_sent.map(|t| t + self.config.keepalive),
                );
            }
        }
    }

    /// Lets the expired timers fire (`handle_timeout` without the refresh), in [`Timer::ALL`]'s
    /// order.
    fn on_timeout(&mut self, now: Instant) {
        if self.timers.is_expired(Timer::Linger, now) {
            self.finish_close(now, CloseReason::Finished);
            return;
        }
        if self.timers.is_expired(Timer::Handshake, now) {
            self.handshake_timeout(now);
            return;
        }
        if self.state.established().is_none() {
            return;
        }
        if self.timers.is_expired(Timer::Idle, now) {
            self.peer_unreachable(now);
            return;
        }
        if self.timers.is_expired(Timer::Welcome, now) {
            let tries = self.state.established().map_or(0, |s| s.welcome_tries);
            if tries >= self.config.max_retries {
                self.peer_unreachable(now);
                return;
            }
            if let Some(session) = self.state.established_mut() {
                session.welcome_tries += 1;
                session.welcome_sent = None;
            }
            self.sender.rtt.on_timeout();
            self.control.push_back(Control::Welcome);
        }
        if self.timers.is_expired(Timer::DelayedAck, now) {
            self.receiver.on_timeout(now);
        }
        let sender_due = [Timer::TailCopy, Timer::Loss, Timer::Rto, Timer::Pacing]
            .into_iter()
            .any(|t| self.timers.is_expired(t, now));
        if sender_due && self.sender.on_timeout(now) == TimeoutOutcome::GiveUp {
            self.peer_unreachable(now);
            return;
        }
        if self.timers.is_expired(Timer::PathMtu, now) {
            self.sender.path_mtu_mut().on_timeout(now);
        }
        if self.timers.is_expired(Timer::RestartProbe, now) {
            self.probe_timeout(now);
        }
        if self.timers.is_expired(Timer::Keepalive, now) {
            self.control.push_back(Control::Ping);
            // Counts as activity until the Ping is handed out, so the timer moves on.
            self.last_sent = Some(now);
        }
    }

    /// Our `Hello` went unanswered for a retransmission timeout: resend it, or give up.
    fn handshake_timeout(&mut self, now: Instant) {
        let Some(&Handshake {
            tries, greeting, ..
        }) = self.state.handshake()
        else {
            return;
        };
        if tries >= self.config.max_retries && greeting {
            // Nobody answered our greeting: it was a stray datagram. Listen again (or, if we
            // were closing, there is nobody to wait for).
            self.control.retain(|c| *c != Control::Hello);
            if self.finishing() {
                self.finish_close(now, CloseReason::Finished);
            } else {
                self.state.move_to(Next::Idle);
                self.peer_addr = None;
            }
        } else if tries >= self.config.max_retries {
            self.peer_unreachable(now);
        } else {
            self.sender.rtt.on_timeout();
            if let Some(handshake) = self.state.handshake_mut() {
                handshake.sent = None;
                handshake.tries += 1;
                handshake.resent = true;
            }
            self.control.push_back(Control::Hello);
            // A greeting is the transport's own guess (a listener answering stray traffic):
            // nobody asked for it, so its silence is no news.
            if let (false, Some(to)) = (greeting, self.peer_addr) {
                self.events.push_back(Event::NoAnswer {
                    to,
                    tries: tries + 1,
                    next_in: self.sender.rtt.rto(),
                });
            }
        }
    }
}

/// What a `Hello` or `Welcome` tells about the peer, for [`ReliableEndpoint::established`].
struct Greeting {
    nick: String,
    window: u32,
    /// The peer has shown it knows our id (it answered our `Hello`).
    confirmed: bool,
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

impl Endpoint for ReliableEndpoint {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        let _ = now;
        if self.state.is_closed() || self.finishing() {
            return Err(SendError::Closed);
        }
        if text.len() > self.config.max_message {
            return Err(SendError::TooLong {
                len: text.len(),
                max: self.config.max_message,
            });
        }
        if self.state.is_idle() {
            if self.peer_addr.is_none() {
                return Err(SendError::NoPeer);
            }
            self.start_handshake(false);
        }
        let id = MessageId(self.next_message);
        let pushed = self.sender.push(id, text.as_bytes());
        self.arm_timers();
        pushed?;
        self.next_message += 1;
        self.stats.messages_sent += 1;
        Ok(id)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.on_datagram(now, from, datagram);
        self.arm_timers();
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let destination = self.transmit(now, buf);
        self.arm_timers();
        destination
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // Called after every event by every driver: no allocation, just the earliest of a few.
        self.timers.next().map(|(_, at)| at)
    }

    fn timer_name(&self) -> Option<&'static str> {
        self.timers.next().map(|(timer, _)| timer.name())
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.on_timeout(now);
        self.arm_timers();
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn close(&mut self, now: Instant) {
        if self.state.is_closed() || self.state.is_closing() {
            return;
        }
        if self.state.is_idle() {
            self.finish_close(now, CloseReason::Finished);
        } else {
            self.state.move_to(Next::Closing {
                linger: now + self.config.linger,
            });
            self.receiver.request_ack();
            self.check_close_done(now);
        }
        self.arm_timers();
    }

    fn finish(&mut self, now: Instant) {
        if self.state.is_closed() || self.state.is_closing() {
            return;
        }
        match self.state.half_closed() {
            Some(Side::Local | Side::Both) => return,
            Some(Side::Peer) => self.state.move_to(Next::HalfClosed(Side::Both)),
            None if self.state.is_idle() => {
                // No session: nobody to wait for.
                self.finish_close(now, CloseReason::Finished);
                self.arm_timers();
                return;
            }
            None => self.state.move_to(Next::HalfClosed(Side::Local)),
        }
        self.push_control(PacketKind::Fin, &[]);
        self.receiver.request_ack();
        self.check_close_done(now);
        self.arm_timers();
    }

    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        self.config.nick = nick.to_owned();
        // In a session the change travels in it, sequenced with our lines (after our Fin the
        // peer shows nothing more of ours, so there is no point); otherwise the next Hello
        // carries the new name.
        if self.state.session().is_some() && !self.finishing() {
            self.push_control(PacketKind::Nick, nick.as_bytes());
            self.arm_timers();
        }
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.state.is_closed() && self.control.is_empty()
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
        stats.path_mtu = self.sender.path_mtu().current() as u64;
        stats.pmtu_black_holes = self.sender.path_mtu().black_holes();
        stats
    }
}
