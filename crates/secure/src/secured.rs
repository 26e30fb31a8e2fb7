//! [`Secured`]: any udpchat endpoint, encrypted. One mechanism for raw and reliable mode.
//!
//! The wrapper sits between the inner endpoint and the network. What the inner endpoint emits is
//! a plain udpchat datagram; the wrapper seals its body (everything between the version byte
//! and the CRC) into a `Sealed` datagram, and opens what arrives before the inner endpoint sees
//! it, rebuilding the plain datagram. The inner endpoint therefore works unchanged: raw mode
//! still shows loss, gaps and reordering; only forgeries and replays are removed, and counted.
//!
//! **Handshake.** Built with a peer (`--peer`), the wrapper is the initiator: its first
//! `poll_transmit` sends an `Init`, resent as the same bytes after 250 ms, 500 ms, 1 s, then
//! every 2 s, [`HANDSHAKE_TRIES`] sends in all (about 8 s) before it gives up
//! ([`HandshakeFailure::NoAnswer`]). Without one it only answers. While no session exists, the
//! inner endpoint's datagrams wait (at most [`MAX_WAITING`]), then go out sealed. When both
//! sides start with a peer (a simultaneous open), the `Init` whose ephemeral key is larger
//! wins: its sender stays initiator, the other answers it; both sides compute the same order.
//!
//! **Proofs.** A `Reply` that opens proves the responder holds the passphrase. The responder's
//! proof of the initiator is the first sealed datagram from it that opens; until then its answer
//! is a *pending* handshake: at most [`MAX_PENDING`] are kept (the oldest gives way), each with
//! its cached `Reply` for copies of the same `Init`. So the initiator sends a sealed empty
//! datagram (a confirmation) at once, and again on the handshake schedule until the responder
//! answers with one of its own. A `Reply` that does not open means a different passphrase: the
//! initiator says so to the responder with two `Reject`s (16 bytes each, smaller than the
//! `Reply` that caused them) and both report [`HandshakeFailure::WrongPassphrase`].
//!
//! **A peer that lost its keys** (it restarted) cannot say so: nothing unauthenticated is answered.
//! When the inner endpoint gives up on the peer (`Event::PeerUnreachable`, reliable mode), an
//! initiator forgets the session, so the next line it sends brings a new handshake.
//!
//! **Bounds.** Nothing that does not authenticate is ever answered with more bytes than it
//! carried: an `Init` (72 bytes) gets a `Reply` of 72, a `Reply` gets two `Reject`s of 16, and
//! everything else gets nothing. New handshakes are answered at most [`HANDSHAKES_PER_SECOND`]
//! per second (a token bucket), whatever their source: an `Init` costs one key generation and one
//! X25519 operation, and a rate limit bounds that work without the extra round trip a cookie
//! would add (the answer is no larger than the question, so a cookie would buy no protection
//! against reflection here).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use udpchat_core::sealed::{sealed_kind, FrameError, HandshakeFrame, SealedHeader, SealedKind};
use udpchat_core::{DecodeError, HEADER_LEN, MAGIC, TRAILER_LEN, VERSION};
use udpchat_reliable::{
    DropCause, Endpoint, Event, HandshakeFailure, MessageId, NickError, SendError, Stats,
};

use crate::handshake::{ephemeral_of, respond, Initiator};
use crate::passphrase::Psk;
use crate::session::{OpenError, Session};

/// `Init`s sent before the initiator gives up.
pub const HANDSHAKE_TRIES: u32 = 7;
/// The first wait before an `Init` (or a confirmation) is sent again; it doubles up to
/// [`MAX_RETRY_WAIT`].
pub const FIRST_RETRY_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two handshake sends.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// Answered handshakes whose initiator has not yet proven the passphrase.
pub const MAX_PENDING: usize = 8;
/// Plain datagrams of the inner endpoint held while the handshake runs.
pub const MAX_WAITING: usize = 256;
/// New handshakes answered per second (and the burst allowed).
pub const HANDSHAKES_PER_SECOND: u32 = 20;
/// Bytes a sealed datagram adds to the plain one it carries: a 20-byte clear header and a
/// 16-byte tag, less the plain header (3) and CRC (4) it replaces. The inner endpoint's
/// datagram limit must be this much lower than the wire's.
pub const OVERHEAD: usize = udpchat_core::sealed::SEALED_HEADER_LEN + udpchat_core::sealed::TAG_LEN
    - HEADER_LEN
    - TRAILER_LEN;

/// What a [`Secured`] endpoint needs.
#[derive(Clone)]
pub struct SecureConfig {
    /// The key from the passphrase.
    pub psk: Psk,
    /// All the randomness the wrapper uses (session ids, ephemeral keys). The binary draws it
    /// from the operating system; the simulator from its seed.
    pub seed: [u8; 32],
}

/// The key and the seed stay out of logs: `Debug` names the fields, never their bytes.
impl std::fmt::Debug for SecureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecureConfig { psk: <hidden>, seed: <hidden> }")
    }
}

/// The initiator's attempt in flight.
struct Attempt {
    handshake: Initiator,
    to: SocketAddr,
    sends: u32,
    next: Instant,
}

/// A handshake we answered, waiting for the initiator's proof.
struct Pending {
    init: Vec<u8>,
    reply: Vec<u8>,
    session: Session,
}

/// The initiator's confirmation schedule: until the responder is heard from.
struct Confirm {
    sends: u32,
    next: Instant,
}

/// The wire counters the wrapper keeps (the inner endpoint sees only opened datagrams).
#[derive(Default)]
struct Wire {
    datagrams_sent: u64,
    datagrams_received: u64,
    bytes_sent: u64,
    bytes_received: u64,
    drops: Stats,
}

/// An endpoint whose datagrams are sealed (see the module doc).
pub struct Secured<E> {
    inner: E,
    psk: Psk,
    rng: ChaCha20Rng,
    initiate_to: Option<SocketAddr>,
    started: bool,
    attempt: Option<Attempt>,
    pending: VecDeque<Pending>,
    session: Option<Session>,
    /// The `Init` of the session in use, so a late copy is not taken for a new handshake.
    session_init: Option<Vec<u8>>,
    confirm: Option<Confirm>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    waiting: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    limiter: TokenBucket,
    failed: bool,
    wire: Wire,
    scratch: Vec<u8>,
}

impl<E: Endpoint> Secured<E> {
    /// Wraps `inner`. If it has a peer, the wrapper initiates to it; else it only answers.
    pub fn new(inner: E, config: SecureConfig) -> Secured<E> {
        Secured {
            initiate_to: inner.peer(),
            inner,
            psk: config.psk,
            rng: ChaCha20Rng::from_seed(config.seed),
            started: false,
            attempt: None,
            pending: VecDeque::new(),
            session: None,
            session_init: None,
            confirm: None,
            outbox: VecDeque::new(),
            waiting: VecDeque::new(),
            events: VecDeque::new(),
            limiter: TokenBucket::new(HANDSHAKES_PER_SECOND),
            failed: false,
            wire: Wire::default(),
            scratch: Vec::new(),
        }
    }

    /// The wrapped endpoint.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The short authentication string of the session in use, once there is one.
    pub fn sas(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.sas.as_str())
    }

    fn seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        seed
    }

    fn drop_datagram(&mut self, from: SocketAddr, cause: DropCause, detail: String) {
        self.wire.drops.count_drop(cause);
        self.events.push_back(Event::Dropped {
            from,
            cause,
            detail,
        });
    }

    fn fail(&mut self, peer: SocketAddr, reason: HandshakeFailure) {
        self.failed = true;
        self.attempt = None;
        self.confirm = None;
        self.pending.clear();
        self.waiting.clear();
        self.events
            .push_back(Event::HandshakeFailed { peer, reason });
    }

    /// Starts our handshake, once, if we have a peer and no session.
    fn start(&mut self, now: Instant) {
        let Some(to) = self.initiate_to.filter(|_| !self.started && !self.failed) else {
            return;
        };
        self.started = true;
        if self.session.is_some() {
            return;
        }
        let id = self.rng.next_u64();
        let seed = self.seed();
        match Initiator::start(&self.psk, id, seed) {
            Ok(handshake) => {
                self.outbox.push_back((to, handshake.init.clone()));
                self.attempt = Some(Attempt {
                    handshake,
                    to,
                    sends: 1,
                    next: now + FIRST_RETRY_WAIT,
                });
            }
            // snow refused a fresh handshake: nothing can be sent safely.
            Err(_) => self.fail(to, HandshakeFailure::NoAnswer),
        }
    }

    /// Seals one plain datagram of the inner endpoint for the session, or keeps it waiting.
    fn route(&mut self, now: Instant, destination: SocketAddr, plain: Vec<u8>) {
        let Some(body) = body_of(&plain) else {
            // Only framed endpoints can be wrapped (the CLI refuses --plain with --secret).
            return;
        };
        match self.session.as_mut().filter(|s| s.peer == destination) {
            Some(session) => {
                let mut sealed = Vec::with_capacity(plain.len() + OVERHEAD);
                if session.seal(now, body, &mut sealed).is_ok() {
                    self.outbox.push_back((destination, sealed));
                }
            }
            None => {
                if self.waiting.len() >= MAX_WAITING {
                    self.waiting.pop_front();
                }
                self.waiting.push_back((destination, plain));
            }
        }
    }

    /// Sends what waited for the session just made; drops what was meant for someone else.
    fn release_waiting(&mut self, now: Instant) {
        let waiting = std::mem::take(&mut self.waiting);
        for (destination, plain) in waiting {
            if self.session.as_ref().is_some_and(|s| s.peer == destination) {
                self.route(now, destination, plain);
            }
        }
    }

    /// A sealed empty datagram to the session's peer: a confirmation (or its answer).
    fn send_empty(&mut self, now: Instant) {
        if let Some(session) = self.session.as_mut() {
            let mut sealed = Vec::new();
            if session.seal(now, &[], &mut sealed).is_ok() {
                self.outbox.push_back((session.peer, sealed));
            }
        }
    }

    fn established(&mut self, now: Instant, session: Session, init: Vec<u8>) {
        self.events.push_back(Event::Secured {
            peer: session.peer,
            sas: session.sas.clone(),
        });
        self.attempt = None;
        self.session = Some(session);
        self.session_init = Some(init);
        self.release_waiting(now);
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match sealed_kind(datagram) {
            Some(SealedKind::Sealed) => self.on_sealed(now, from, datagram),
            Some(SealedKind::Init) => self.on_init(now, from, datagram),
            Some(SealedKind::Reply) => self.on_reply(now, from, datagram),
            Some(SealedKind::Reject) => self.on_reject(from, datagram),
            None => self.on_plain(from, datagram),
        }
    }

    fn on_plain(&mut self, from: SocketAddr, datagram: &[u8]) {
        match udpchat_core::decode(datagram) {
            Ok(_) => {
                self.drop_datagram(
                    from,
                    DropCause::Unauthenticated,
                    "an unencrypted udpchat datagram: the peer is not encrypted (it runs \
                     without --secret)"
                        .into(),
                );
                let ours = self.initiate_to.is_none_or(|peer| peer == from);
                if self.session.is_none() && ours {
                    self.fail(from, HandshakeFailure::NotEncrypted);
                }
            }
            Err(e @ DecodeError::BadChecksum { .. }) => {
                self.drop_datagram(from, DropCause::Checksum, e.to_string())
            }
            Err(e) => self.drop_datagram(from, DropCause::Malformed, e.to_string()),
        }
    }

    fn frame<'a>(&mut self, from: SocketAddr, datagram: &'a [u8]) -> Option<HandshakeFrame<'a>> {
        match HandshakeFrame::parse(datagram) {
            Ok(frame) => Some(frame),
            Err(e @ FrameError::BadChecksum) => {
                self.drop_datagram(from, DropCause::Checksum, e.to_string());
                None
            }
            Err(e) => {
                self.drop_datagram(from, DropCause::Malformed, e.to_string());
                None
            }
        }
    }

    fn on_init(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(frame) = self.frame(from, datagram) else {
            return;
        };
        if let Some(attempt) = self.attempt.as_ref().filter(|a| a.to == from) {
            if attempt.handshake.init == datagram {
                let detail = "our own handshake came back: talking to ourselves".to_owned();
                return self.drop_datagram(from, DropCause::Foreign, detail);
            }
            // A simultaneous open: the larger ephemeral key stays initiator.
            if attempt.handshake.ephemeral() > ephemeral_of(datagram) {
                let detail = "a simultaneous open: this side stays the initiator".to_owned();
                return self.drop_datagram(from, DropCause::Stale, detail);
            }
            self.attempt = None;
        }
        if self.session_init.as_deref() == Some(datagram) {
            let detail = "a copy of the handshake already done".to_owned();
            return self.drop_datagram(from, DropCause::Stale, detail);
        }
        if let Some(p) = self.pending.iter().find(|p| p.init == datagram) {
            // A copy of an Init we answered: the same Reply again, no new work.
            self.outbox.push_back((from, p.reply.clone()));
            return;
        }
        if !self.limiter.take(now) {
            let detail =
                format!("a handshake refused: more than {HANDSHAKES_PER_SECOND} per second arrive");
            return self.drop_datagram(from, DropCause::Foreign, detail);
        }
        let id = self.rng.next_u64();
        let seed = self.seed();
        let answered = respond(&self.psk, &frame, id, seed)
            .ok()
            .and_then(|(reply, keys)| {
                Session::new(from, id, &keys, false, now)
                    .ok()
                    .map(|s| (reply, s))
            });
        let Some((reply, session)) = answered else {
            let detail = "a handshake that cannot be answered".to_owned();
            return self.drop_datagram(from, DropCause::Malformed, detail);
        };
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.outbox.push_back((from, reply.clone()));
        self.pending.push_back(Pending {
            init: datagram.to_vec(),
            reply,
            session,
        });
    }

    fn on_reply(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(frame) = self.frame(from, datagram) else {
            return;
        };
        let ours = self
            .attempt
            .as_ref()
            .is_some_and(|a| a.to == from && a.handshake.id == frame.initiator);
        let Some(attempt) = self.attempt.take().filter(|_| ours) else {
            let detail = "a handshake reply to no attempt of ours".to_owned();
            return self.drop_datagram(from, DropCause::Stale, detail);
        };
        let id = attempt.handshake.id;
        let init = attempt.handshake.init.clone();
        let keys = match attempt.handshake.finish(frame.noise) {
            Ok(keys) => keys,
            Err(_) => {
                let reject = HandshakeFrame {
                    kind: SealedKind::Reject,
                    initiator: id,
                    noise: &[],
                }
                .emit();
                for _ in 0..2 {
                    if let Some(reject) = reject.clone() {
                        self.outbox.push_back((from, reject));
                    }
                }
                self.wire.drops.count_drop(DropCause::Unauthenticated);
                return self.fail(from, HandshakeFailure::WrongPassphrase);
            }
        };
        let Ok(session) = Session::new(from, id, &keys, true, now) else {
            return self.fail(from, HandshakeFailure::NoAnswer);
        };
        self.established(now, session, init);
        // What waited is the responder's proof; with nothing waiting, an empty datagram is.
        if !self
            .outbox
            .iter()
            .any(|(to, d)| *to == from && sealed_kind(d) == Some(SealedKind::Sealed))
        {
            self.send_empty(now);
        }
        self.confirm = Some(Confirm {
            sends: 1,
            next: now + FIRST_RETRY_WAIT,
        });
    }

    fn on_reject(&mut self, from: SocketAddr, datagram: &[u8]) {
        let Some(frame) = self.frame(from, datagram) else {
            return;
        };
        let before = self.pending.len();
        self.pending
            .retain(|p| !(p.session.peer == from && p.session.remote_id == frame.initiator));
        if self.pending.len() == before || self.session.is_some() {
            let detail = "a handshake reject for no handshake in progress".to_owned();
            return self.drop_datagram(from, DropCause::Stale, detail);
        }
        self.fail(from, HandshakeFailure::WrongPassphrase);
    }

    fn on_sealed(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(header) = SealedHeader::parse(datagram) else {
            let detail = "a sealed datagram too short to hold a header and a tag".to_owned();
            return self.drop_datagram(from, DropCause::Malformed, detail);
        };
        let mut plaintext = std::mem::take(&mut self.scratch);
        let opened = if let Some(session) = self
            .session
            .as_mut()
            .filter(|s| s.local_id == header.receiver)
        {
            session.open(now, datagram, &mut plaintext).map(|()| None)
        } else if let Some(at) = self
            .pending
            .iter()
            .position(|p| p.session.local_id == header.receiver)
        {
            let result = self.pending[at].session.open(now, datagram, &mut plaintext);
            result.map(|()| self.pending.remove(at))
        } else {
            Err(OpenError::Unauthenticated)
        };
        match opened {
            Ok(promoted) => {
                if let Some(p) = promoted {
                    // The initiator proved the passphrase: this is the session now (a
                    // restarted peer's new session replaces the old one).
                    self.established(now, p.session, p.init);
                }
                self.deliver(now, from, &plaintext);
            }
            Err(OpenError::Replay(e)) => {
                self.drop_datagram(from, DropCause::Replayed, e.to_string())
            }
            Err(e) => self.drop_datagram(from, DropCause::Unauthenticated, e.to_string()),
        }
        self.scratch = plaintext;
    }

    /// Hands an opened datagram to the inner endpoint, rebuilt as the plain datagram it was.
    fn deliver(&mut self, now: Instant, from: SocketAddr, body: &[u8]) {
        let initiator = self.session.as_ref().is_some_and(|s| s.initiator);
        if initiator {
            // The responder has spoken: it has our confirmation.
            self.confirm = None;
        }
        if body.is_empty() {
            // A confirmation: the responder answers each one, so the initiator stops resending.
            if !initiator {
                self.send_empty(now);
            }
            return;
        }
        self.inner.handle_datagram(now, from, &rebuild(body));
    }

    fn our_deadline(&self) -> Option<Instant> {
        let attempt = self.attempt.as_ref().map(|a| a.next);
        let confirm = self.confirm.as_ref().map(|c| c.next);
        attempt.into_iter().chain(confirm).min()
    }
}

/// What a sealed datagram carries of a plain one: its body, between the version byte and the
/// CRC (the clear sealed header stands in for the first, the AEAD tag for the second). `None`
/// for anything that is not a framed udpchat datagram.
pub(crate) fn body_of(plain: &[u8]) -> Option<&[u8]> {
    let framed =
        plain.len() >= HEADER_LEN + TRAILER_LEN && plain[..2] == MAGIC && plain[2] == VERSION;
    framed.then(|| &plain[HEADER_LEN..plain.len() - TRAILER_LEN])
}

/// The plain datagram an opened body was: header, body, and the CRC the inner decoder checks
/// (the AEAD tag already proved the bytes intact).
pub(crate) fn rebuild(body: &[u8]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(body.len() + HEADER_LEN + TRAILER_LEN);
    plain.extend_from_slice(&MAGIC);
    plain.push(VERSION);
    plain.extend_from_slice(body);
    let crc = crc32fast::hash(&plain);
    plain.extend_from_slice(&crc.to_le_bytes());
    plain
}

fn retry_wait(sends: u32) -> Duration {
    FIRST_RETRY_WAIT
        .saturating_mul(1 << sends.saturating_sub(1).min(8))
        .min(MAX_RETRY_WAIT)
}

impl<E: Endpoint> Endpoint for Secured<E> {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        if self.failed {
            return Err(SendError::Closed);
        }
        self.inner.send(now, text)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.wire.datagrams_received += 1;
        self.wire.bytes_received += datagram.len() as u64;
        if self.failed {
            return;
        }
        self.on_datagram(now, from, datagram);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        loop {
            if let Some((to, datagram)) = self.outbox.pop_front() {
                self.wire.datagrams_sent += 1;
                self.wire.bytes_sent += datagram.len() as u64;
                *buf = datagram;
                return Some(to);
            }
            if self.failed {
                return None;
            }
            self.start(now);
            if !self.outbox.is_empty() {
                continue;
            }
            let mut plain = Vec::new();
            let destination = self.inner.poll_transmit(now, &mut plain)?;
            self.route(now, destination, plain);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let ours = self.our_deadline();
        let inner = self.inner.poll_timeout();
        ours.into_iter().chain(inner).min()
    }

    fn timer_name(&self) -> Option<&'static str> {
        match (self.our_deadline(), self.inner.poll_timeout()) {
            (Some(ours), Some(inner)) if ours > inner => self.inner.timer_name(),
            (Some(_), _) if self.attempt.is_some() => Some("handshake"),
            (Some(_), _) => Some("handshake confirm"),
            _ => self.inner.timer_name(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.failed {
            return;
        }
        self.inner.handle_timeout(now);
        if let Some(attempt) = self.attempt.as_mut().filter(|a| a.next <= now) {
            if attempt.sends >= HANDSHAKE_TRIES {
                let to = attempt.to;
                return self.fail(to, HandshakeFailure::NoAnswer);
            }
            attempt.sends += 1;
            attempt.next = now + retry_wait(attempt.sends);
            let resend = (attempt.to, attempt.handshake.init.clone());
            self.outbox.push_back(resend);
        }
        if let Some(confirm) = self.confirm.as_mut().filter(|c| c.next <= now) {
            if confirm.sends >= HANDSHAKE_TRIES {
                self.confirm = None;
            } else {
                confirm.sends += 1;
                confirm.next = now + retry_wait(confirm.sends);
                self.send_empty(now);
            }
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        let event = self
            .events
            .pop_front()
            .or_else(|| self.inner.poll_event())?;
        if event == Event::PeerUnreachable && self.initiate_to.is_some() {
            // The peer went silent: it may have restarted and lost our keys, and it cannot tell
            // us (nothing unauthenticated is answered). A line sent now opens a new session
            // (reliable mode says so), so it gets a new handshake too.
            self.session = None;
            self.session_init = None;
            self.confirm = None;
            self.started = false;
        }
        Some(event)
    }

    fn close(&mut self, now: Instant) {
        self.inner.close(now)
    }

    fn finish(&mut self, now: Instant) {
        self.inner.finish(now)
    }

    fn is_closed(&self) -> bool {
        if !self.outbox.is_empty() {
            return false;
        }
        // Lines typed before the handshake finished go out once it does.
        self.failed
            || (self.inner.is_closed() && (self.waiting.is_empty() || self.attempt.is_none()))
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.inner.peer()
    }

    fn stats(&self) -> Stats {
        let mut stats = self.inner.stats();
        stats.datagrams_sent = self.wire.datagrams_sent;
        stats.datagrams_received = self.wire.datagrams_received;
        stats.bytes_sent = self.wire.bytes_sent;
        stats.bytes_received = self.wire.bytes_received;
        let ours = &self.wire.drops;
        stats.dropped_checksum += ours.dropped_checksum;
        stats.dropped_malformed += ours.dropped_malformed;
        stats.dropped_foreign += ours.dropped_foreign;
        stats.dropped_stale += ours.dropped_stale;
        stats.dropped_replayed += ours.dropped_replayed;
        stats.dropped_unauthenticated += ours.dropped_unauthenticated;
        stats
    }

    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        self.inner.set_nick(nick)
    }
}

/// A token bucket: `rate` tokens a second, at most `rate` saved up.
struct TokenBucket {
    rate: u32,
    tokens: u32,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(rate: u32) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate,
            last: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let last = *self.last.get_or_insert(now);
        let per_token = Duration::from_secs(1) / self.rate.max(1);
        let earned = now.saturating_duration_since(last).as_nanos() / per_token.as_nanos().max(1);
        if earned > 0 {
            let tokens = (u128::from(self.tokens) + earned).min(u128::from(self.rate));
            self.tokens = u32::try_from(tokens).unwrap_or(self.rate);
            // A full bucket starts counting afresh; else keep the fraction of a token earned.
            self.last = Some(if self.tokens == self.rate {
                now
            } else {
                last + per_token * u32::try_from(earned).unwrap_or(self.rate)
            });
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests;
