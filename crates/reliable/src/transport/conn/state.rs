//! The session's states, each with the data only it needs, and the one place they change.
//!
//! Modelled on quinn-proto's `connection/state.rs`: the state enum is private to this module, so
//! [`State::move_to`] is the only way to go from one state to another, and it checks that the
//! move is one the protocol allows. The endpoint may change a state's own data in place
//! (a handshake's retry count, whether an established peer has confirmed our id): that is not a
//! change of state.
//!
//! The moves ([`State::move_to`] refuses any other):
//!
//! ```text
//! Idle         -> Handshaking   we open: a send with a known peer, --peer, a listener's greeting
//! Idle         -> Established   a listener takes a Hello
//! Handshaking  -> Established   their Welcome, or their Hello crossing ours
//! Established  -> Established   the peer restarted: a new session replaces the old one
//! Handshaking  -> Idle          unreachable, or a greeting nobody answered
//! Established  -> Idle          unreachable, or the peer closed
//! Handshaking  -> Closing       close: the session carries on until all is acknowledged
//! Established  -> Closing
//! Handshaking  -> HalfClosed(we)     finish: our Fin is queued after our last message
//! Established  -> HalfClosed(we)
//! Established  -> HalfClosed(peer)   the peer's Fin was delivered, and all it sent before it
//! HalfClosed(we), HalfClosed(peer) -> HalfClosed(both)   the other side finished too
//! HalfClosed   -> Established   the handshake completes, or a restart (see below)
//! HalfClosed   -> Closing       close (/quit, Ctrl-C): the full close, as from Established
//! HalfClosed(peer) -> Idle      unreachable, or the peer closed: the session is over
//! HalfClosed(we), HalfClosed(both) -> Closed   all acknowledged (both), the peer closed, or
//!                               it stopped answering: nothing is left for us to do
//! Closing      -> Closed        all acknowledged, linger ran out, or the peer closed or vanished
//! Idle         -> Closed        close or finish with no session
//! ```
//!
//! `Closing` and `HalfClosed` wrap the session they close: a handshake still in progress may
//! complete meanwhile (the messages queued before then go out), and a restart may replace the
//! session, as when open. A restart ends a `HalfClosed(peer)`: the peer's new incarnation sends
//! again. `HalfClosed(we)` and `HalfClosed(both)` become `HalfClosed(we)`: our input is still
//! over (the endpoint sends its `Fin` again in the new session), the new peer's is not.
//! `HalfClosed(both)` has no linger deadline, unlike `Closing`: both sides are still
//! exchanging what they had queued, and a dead peer is caught by the idle timeout and the
//! retransmission limit as in any open session.

use std::time::Instant;

use udpchat_core::{Ack, ConnectionId};

/// Where the endpoint is.
#[derive(Debug, Clone)]
pub(super) struct State {
    /// Private, so every change goes through [`State::move_to`].
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    /// No session. The peer's address may be known (configured, or from an earlier session).
    Idle,
    /// A session, being set up or up.
    Open(Session),
    /// One side has finished sending (a half-close): the session carries on in the other
    /// direction until that side finishes too.
    HalfClosed { side: Side, session: Session },
    /// `close` was called during a session: it carries on until every message is acknowledged
    /// or `linger` passes; no new message is accepted.
    Closing { linger: Instant, session: Session },
    /// Done: only the copies of `Close` still queued go out.
    Closed {
        why: CloseReason,
        /// The final ack our `Close` packets carry.
        final_ack: Option<Ack>,
    },
}

/// A session: being set up, or up.
#[derive(Debug, Clone)]
pub(super) enum Session {
    /// We sent `Hello` and wait for the answer.
    Handshaking(Handshake),
    /// Both ids known.
    Established(Established),
}

/// The data of a handshake in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Handshake {
    /// When the last `Hello` went out (None: queued, not yet sent).
    pub(super) sent: Option<Instant>,
    /// Handshake timeouts so far.
    pub(super) tries: u32,
    /// More than one `Hello` went out, so a `Welcome` gives no clean RTT sample.
    pub(super) resent: bool,
    /// Started by a fresh listener that got session traffic for an id it never issued (see
    /// `ReliableEndpoint::greet_after_restart`). If nobody answers, that was a stray datagram,
    /// not a peer: the listener goes back to listening instead of declaring a peer unreachable.
    pub(super) greeting: bool,
}

impl Handshake {
    /// A handshake whose first `Hello` is queued.
    pub(super) fn new(greeting: bool) -> Self {
        Handshake {
            sent: None,
            tries: 0,
            resent: false,
            greeting,
        }
    }
}

/// The data of an established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Established {
    /// The peer's connection id.
    pub(super) peer_id: ConnectionId,
    /// The peer has shown it knows our id (a Welcome from it, or any packet of the session). A
    /// side that learned the session from the peer's `Hello` holds its data back until then:
    /// the peer cannot accept data before it has our `Welcome`.
    pub(super) confirmed: bool,
    /// When our last `Welcome` went out while unconfirmed, and how many timeouts it has had.
    pub(super) welcome_sent: Option<Instant>,
    pub(super) welcome_tries: u32,
    /// When we last heard from the peer in this session (for the idle timeout).
    pub(super) last_received: Instant,
    /// A `Hello` with a new id came from the peer's address: the session is being probed before
    /// that is believed to be a restart (see `ReliableEndpoint::restart_confirmed`).
    pub(super) restart_probe: Option<RestartProbe>,
}

/// The check that the peer really restarted: while it runs, any packet of the current session
/// from the peer ends it (the session is alive, the `Hello` was forged or stray).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RestartProbe {
    /// The session has been silent from the start of the probe until here: the next `Hello`
    /// with a new id from the peer's address is a restart.
    pub(super) until: Instant,
    /// When the next `Ping` of the probe goes out, if another fits before `until`.
    pub(super) next_ping: Option<Instant>,
}

impl Established {
    /// A session with `peer_id` that starts now.
    pub(super) fn new(peer_id: ConnectionId, confirmed: bool, now: Instant) -> Self {
        Established {
            peer_id,
            confirmed,
            welcome_sent: None,
            welcome_tries: 0,
            last_received: now,
            restart_probe: None,
        }
    }
}

/// Which side of a half-closed session has finished sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// We have: our `Fin` is queued or sent; we still receive and acknowledge.
    Local,
    /// The peer has: its `Fin` was delivered, after everything it sent; we may still send.
    Peer,
    /// Both have: the session closes once everything we sent is acknowledged.
    Both,
}

/// Why the endpoint closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CloseReason {
    /// `close` finished: every message acknowledged, or the linger time ran out, or there was no
    /// session to close.
    Finished,
    /// The peer closed the session while we were closing.
    PeerClosed,
    /// The peer stopped answering while we were closing.
    PeerUnreachable,
}

/// A state to move to (see [`State::move_to`]).
#[derive(Debug, Clone)]
pub(super) enum Next {
    Idle,
    Handshaking(Handshake),
    /// A new session (or, from `Established`, a restart replacing the old one). Keeps `Closing`.
    Established(Established),
    HalfClosed(Side),
    Closing {
        linger: Instant,
    },
    Closed {
        why: CloseReason,
        final_ack: Option<Ack>,
    },
}

impl State {
    /// The state of a new endpoint.
    pub(super) fn new() -> Self {
        State { inner: Inner::Idle }
    }

    /// Moves to `next`. Every change of state comes through here, and the moves the protocol
    /// does not have are refused: they would be bugs of the endpoint, never the network's doing,
    /// so a debug build (every test, the fuzzers) stops on them, and a release build keeps its
    /// current state rather than take a network peer down with a panic.
    pub(super) fn move_to(&mut self, next: Next) {
        use Inner::{Closed, Closing, HalfClosed, Idle, Open};
        let legal = matches!(
            (&self.inner, &next),
            // We open: a send with a known peer, --peer, or a listener's greeting.
            (Idle, Next::Handshaking(_))
                // Their Hello or Welcome; from Established, their restart.
                | (Idle | Open(_) | HalfClosed { .. } | Closing { .. }, Next::Established(_))
                // The session ended (unreachable, peer closed, an unanswered greeting).
                | (Open(_), Next::Idle)
                | (HalfClosed { side: Side::Peer, .. }, Next::Idle)
                // We finish; only an established session learns that the peer finished.
                | (Open(_), Next::HalfClosed(Side::Local))
                | (Open(Session::Established(_)), Next::HalfClosed(Side::Peer))
                | (
                    HalfClosed {
                        side: Side::Local | Side::Peer,
                        ..
                    },
                    Next::HalfClosed(Side::Both)
                )
                | (Open(_) | HalfClosed { .. }, Next::Closing { .. })
                | (
                    Idle | Closing { .. } | HalfClosed {
                        side: Side::Local | Side::Both,
                        ..
                    },
                    Next::Closed { .. }
                )
        );
        debug_assert!(legal, "illegal move from {} to {next:?}", self.name());
        if !legal {
            return;
        }
        let current = std::mem::replace(&mut self.inner, Idle);
        self.inner = match (current, next) {
            (Closing { linger, .. }, Next::Established(e)) => Closing {
                linger,
                session: Session::Established(e),
            },
            (
                HalfClosed {
                    side: Side::Local | Side::Both,
                    ..
                },
                Next::Established(e),
            ) => HalfClosed {
                side: Side::Local,
                session: Session::Established(e),
            },
            (Open(session) | HalfClosed { session, .. }, Next::Closing { linger }) => {
                Closing { linger, session }
            }
            (Open(session) | HalfClosed { session, .. }, Next::HalfClosed(side)) => {
                HalfClosed { side, session }
            }
            (_, Next::Idle) => Idle,
            (_, Next::Handshaking(h)) => Open(Session::Handshaking(h)),
            (_, Next::Established(e)) => Open(Session::Established(e)),
            (_, Next::Closed { why, final_ack }) => Closed { why, final_ack },
            // Refused above.
            (current, Next::Closing { .. } | Next::HalfClosed(_)) => current,
        };
    }

    /// The state's name, for messages.
    pub(super) fn name(&self) -> &'static str {
        let session = |s: &Session| match s {
            Session::Handshaking(_) => "handshaking",
            Session::Established(_) => "established",
        };
        match &self.inner {
            Inner::Idle => "idle",
            Inner::Open(s) => session(s),
            Inner::HalfClosed { side, .. } => match side {
                Side::Local => "half-closed (we finished sending)",
                Side::Peer => "half-closed (the peer finished sending)",
                Side::Both => "half-closed (both finished sending)",
            },
            Inner::Closing { session: s, .. } => match s {
                Session::Handshaking(_) => "closing (handshaking)",
                Session::Established(_) => "closing (established)",
            },
            Inner::Closed { why, .. } => match why {
                CloseReason::Finished => "closed",
                CloseReason::PeerClosed => "closed (the peer closed)",
                CloseReason::PeerUnreachable => "closed (the peer was unreachable)",
            },
        }
    }

    /// No session, not closing, not closed.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self.inner, Inner::Idle)
    }

    /// `close` was called and has not finished.
    pub(super) fn is_closing(&self) -> bool {
        matches!(self.inner, Inner::Closing { .. })
    }

    /// Which side has finished sending, while half-closed.
    pub(super) fn half_closed(&self) -> Option<Side> {
        match self.inner {
            Inner::HalfClosed { side, .. } => Some(side),
            _ => None,
        }
    }

    /// When a close in progress gives up waiting for acknowledgements.
    pub(super) fn linger(&self) -> Option<Instant> {
        match self.inner {
            Inner::Closing { linger, .. } => Some(linger),
            _ => None,
        }
    }

    /// `close` has finished (or the session ended while closing).
    pub(super) fn is_closed(&self) -> bool {
        matches!(self.inner, Inner::Closed { .. })
    }

    /// The ack our `Close` packets carry, once closed.
    pub(super) fn final_ack(&self) -> Option<&Ack> {
        match &self.inner {
            Inner::Closed { final_ack, .. } => final_ack.as_ref(),
            _ => None,
        }
    }

    /// The session, open or closing.
    pub(super) fn session(&self) -> Option<&Session> {
        match &self.inner {
            Inner::Open(s)
            | Inner::HalfClosed { session: s, .. }
            | Inner::Closing { session: s, .. } => Some(s),
            Inner::Idle | Inner::Closed { .. } => None,
        }
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.inner {
            Inner::Open(s)
            | Inner::HalfClosed { session: s, .. }
            | Inner::Closing { session: s, .. } => Some(s),
            Inner::Idle | Inner::Closed { .. } => None,
        }
    }

    /// The handshake in progress, open or closing.
    pub(super) fn handshake(&self) -> Option<&Handshake> {
        match self.session() {
            Some(Session::Handshaking(h)) => Some(h),
            _ => None,
        }
    }

    pub(super) fn handshake_mut(&mut self) -> Option<&mut Handshake> {
        match self.session_mut() {
            Some(Session::Handshaking(h)) => Some(h),
            _ => None,
        }
    }

    /// The established session, open or closing.
    pub(super) fn established(&self) -> Option<&Established> {
        match self.session() {
            Some(Session::Established(e)) => Some(e),
            _ => None,
        }
    }

    pub(super) fn established_mut(&mut self) -> Option<&mut Established> {
        match self.session_mut() {
            Some(Session::Established(e)) => Some(e),
            _ => None,
        }
    }

    /// The peer's connection id, while established.
    pub(super) fn peer_id(&self) -> Option<ConnectionId> {
        self.established().map(|e| e.peer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn established(now: Instant) -> Next {
        Next::Established(Established::new(ConnectionId(7), true, now))
    }

    #[test]
    fn a_session_opens_closes_and_ends() {
        let now = Instant::now();
        let mut state = State::new();
        state.move_to(Next::Handshaking(Handshake::new(false)));
        assert!(state.handshake().is_some());
        state.move_to(Next::Closing { linger: now });
        assert_eq!(state.name(), "closing (handshaking)");
        // The handshake completes while closing: still closing, now established.
        state.move_to(established(now));
        assert_eq!(state.peer_id(), Some(ConnectionId(7)));
        assert_eq!(state.linger(), Some(now));
        state.move_to(Next::Closed {
            why: CloseReason::PeerClosed,
            final_ack: None,
        });
        assert!(state.is_closed());
        assert_eq!(state.name(), "closed (the peer closed)");
        assert_eq!(state.peer_id(), None);
    }

    #[test]
    fn a_restart_replaces_the_established_session() {
        let now = Instant::now();
        let mut state = State::new();
        state.move_to(established(now));
        state.move_to(Next::Established(Established::new(
            ConnectionId(8),
            false,
            now,
        )));
        assert_eq!(state.peer_id(), Some(ConnectionId(8)));
        assert_eq!(state.established().map(|e| e.confirmed), Some(false));
    }

    #[test]
    fn both_sides_finish_then_the_session_closes() {
        let now = Instant::now();
        let mut state = State::new();
        state.move_to(Next::Handshaking(Handshake::new(false)));
        state.move_to(Next::HalfClosed(Side::Local));
        assert_eq!(state.half_closed(), Some(Side::Local));
        // The handshake completes after we finished: still finished, now established.
        state.move_to(established(now));
        assert_eq!(state.half_closed(), Some(Side::Local));
        assert_eq!(state.peer_id(), Some(ConnectionId(7)));
        // The peer's Fin: both finished, the session closes once all is acknowledged.
        state.move_to(Next::HalfClosed(Side::Both));
        assert_eq!(state.linger(), None);
        state.move_to(Next::Closed {
            why: CloseReason::Finished,
            final_ack: None,
        });
        assert!(state.is_closed());
    }

    #[test]
    fn a_restart_reopens_what_the_peer_had_finished() {
        let now = Instant::now();
        let mut state = State::new();
        state.move_to(established(now));
        state.move_to(Next::HalfClosed(Side::Peer));
        assert_eq!(state.name(), "half-closed (the peer finished sending)");
        state.move_to(Next::Established(Established::new(
            ConnectionId(8),
            false,
            now,
        )));
        assert_eq!(state.half_closed(), None);
        assert_eq!(state.peer_id(), Some(ConnectionId(8)));
    }

    #[test]
    #[should_panic(expected = "illegal move from handshaking")]
    fn only_an_established_peer_can_finish() {
        let mut state = State::new();
        state.move_to(Next::Handshaking(Handshake::new(false)));
        state.move_to(Next::HalfClosed(Side::Peer));
    }

    #[test]
    #[should_panic(expected = "illegal move from half-closed (the peer finished sending)")]
    fn a_session_the_peer_finished_does_not_close_itself_without_us() {
        let now = Instant::now();
        let mut state = State::new();
        state.move_to(established(now));
        state.move_to(Next::HalfClosed(Side::Peer));
        state.move_to(Next::Closed {
            why: CloseReason::PeerClosed,
            final_ack: None,
        });
    }

    #[test]
    #[should_panic(expected = "illegal move from closed")]
    fn nothing_leaves_closed() {
        let mut state = State::new();
        state.move_to(Next::Closed {
            why: CloseReason::Finished,
            final_ack: None,
        });
        state.move_to(Next::Handshaking(Handshake::new(false)));
    }

    #[test]
    #[should_panic(expected = "illegal move from idle")]
    fn closing_needs_a_session() {
        let mut state = State::new();
        state.move_to(Next::Closing {
            linger: Instant::now(),
        });
    }
}
