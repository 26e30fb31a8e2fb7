//! [`SecureStream`]: encryption for an ordered stream of frames (TCP mode's `--secret`).
//!
//! TCP mode cuts its byte stream into frames, each one udpchat datagram (see the driver's
//! `tcp::frame`). This state machine runs the same Noise handshake as the UDP modes
//! ([`crate::handshake`]) as the first frames of the stream, then seals every datagram with the
//! same [`Session`] (header and CRC replaced by the sealed header and tag, exactly as
//! [`crate::Secured`] does). What differs is what the stream promises: TCP delivers every byte
//! once and in order, or breaks. So there is no retransmission, no pending handshakes, no rate
//! limit (the kernel's own handshake already proved the peer's address, and one connection runs
//! one handshake), and no replay *window*: the counter of each sealed frame must be exactly the
//! one that follows the previous frame's (the next number in the epoch, or the first of the next
//! epoch), and each frame's place among the sealed frames of its direction is authenticated with
//! it (not sent: both sides count), so that a frame deleted right before a key change, where the
//! counter jumps, is caught too (`place`). Anything else (a replay, a reordered frame, a
//! deleted frame, a forgery, a stray handshake message) can only be an attack on the stream, and
//! a byte stream cannot be resynchronised securely: it is an error, and the caller ends the
//! connection.
//!
//! **Roles.** The side that connected is the [`StreamRole::Initiator`] and sends an `Init` at
//! once; the side that accepted is the [`StreamRole::Responder`] and sends nothing until an
//! `Init` arrives. When both sides connected (TCP's simultaneous open joins two connects into one
//! connection), both send an `Init`, and the rule of the UDP modes decides: the `Init` whose
//! ephemeral key is larger wins, its sender stays initiator and skips the other's `Init`, the
//! other side answers it. Both compute the same order from the same two keys, so no address
//! (which a NAT would show differently to each side) enters the choice.
//!
//! **Proofs.** A `Reply` that opens proves the responder holds the passphrase; the initiator
//! then sends a sealed empty frame at once (the confirmation), which proves the same to the
//! responder. The responder seals nothing before that proof. A `Reply` that does not open means
//! a different passphrase: the initiator sends a `Reject` and both report
//! [`HandshakeFailure::WrongPassphrase`]. A responder whose first frame is not a well-formed
//! `Init` (a plain udpchat peer, something that is not udpchat) answers with a `Reject`, so that
//! a plain udpchat peer can say "the peer uses encryption", and fails. No frame is answered
//! with more bytes than it carried: one shorter than a `Reject` (16 bytes) gets nothing. The handshake must be
//! over within [`HANDSHAKE_TIMEOUT`] of the start.
//!
//! Sans-IO like the rest of the crate: time is an argument and randomness comes from the seed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use thiserror::Error;
use udpchat_core::sealed::{
    sealed_kind, HandshakeFrame, SealedHeader, SealedKind, HANDSHAKE_LEN, REJECT_LEN,
};
use udpchat_reliable::{DropCause, HandshakeFailure};

use crate::handshake::{ephemeral_of, respond, Initiator};
use crate::passphrase::Psk;
use crate::secured::{body_of, rebuild, SecureConfig};
use crate::session::{OpenError, SealError, Session, EPOCH_BITS, EPOCH_DATAGRAMS};

/// How long the handshake may take, from the start of the stream: about as long as the UDP
/// modes try (`crate::secured::HANDSHAKE_TRIES` sends over about 8 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(8);

/// Which side of the stream we are (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRole {
    /// We connected: we send the `Init`.
    Initiator,
    /// We accepted: we answer an `Init`.
    Responder,
}

/// Why the stream cannot go on. Every error is final: the caller ends the connection (after
/// writing what [`SecureStream::poll_transmit`] still has, a `Reject` at most).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    /// The handshake failed.
    #[error("{detail}")]
    Handshake {
        /// Why, in the words every mode shares.
        reason: HandshakeFailure,
        /// What arrived (or did not).
        detail: String,
    },
    /// After the handshake: a sealed frame whose counter is not the next one (replayed,
    /// reordered, or one deleted before it).
    #[error(
        "a sealed frame out of sequence (counter {counter}, {expected} expected): replayed, \
         reordered or deleted in the stream"
    )]
    OutOfSequence {
        /// The frame's counter.
        counter: u64,
        /// The counter that had to come.
        expected: String,
    },
    /// After the handshake: a frame that does not authenticate, or is not a sealed frame.
    #[error("{0}")]
    Unauthenticated(String),
    /// Sealing failed (counters exhausted, or no cipher: never, in practice).
    #[error("{0}")]
    Seal(#[from] SealError),
    /// [`SecureStream::seal`] before the handshake proved the peer (a bug of the caller).
    #[error("nothing can be sealed before the handshake is done")]
    NotEstablished,
    /// [`SecureStream::seal`] of something that is not a framed udpchat datagram.
    #[error("only framed udpchat datagrams can be sealed")]
    NotADatagram,
    /// The stream already failed.
    #[error("the encrypted stream has already failed")]
    Failed,
}

impl StreamError {
    /// The counter a dropped frame of this error belongs to (`dropped_*` in the stats).
    pub fn cause(&self) -> DropCause {
        match self {
            StreamError::OutOfSequence { .. } => DropCause::Replayed,
            _ => DropCause::Unauthenticated,
        }
    }

    /// The handshake's failure, if that is what this is.
    pub fn handshake_failure(&self) -> Option<HandshakeFailure> {
        match self {
            StreamError::Handshake { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// What the stream reports besides opened datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The handshake is done and proved both sides hold the passphrase; `sas` is the short
    /// authentication string to compare.
    Established {
        /// Six digits, equal on both sides of an honest session.
        sas: String,
    },
}

enum State {
    /// We sent an `Init` and wait for the `Reply`. `skipped` once we let a simultaneous `Init`
    /// of the peer's pass (it then answers ours).
    Initiating { handshake: Initiator, skipped: bool },
    /// We wait for the peer's `Init`.
    Listening,
    /// We answered an `Init` and wait for the initiator's first sealed frame (its proof).
    Answered { session: Session },
    /// Both sides proved the passphrase. `last` is the counter of the last frame opened.
    Established { session: Session, last: Option<u64> },
    /// An error ended it.
    Failed,
}

/// Encryption for one ordered stream of frames (see the module doc).
pub struct SecureStream {
    psk: Psk,
    rng: ChaCha20Rng,
    peer: SocketAddr,
    state: State,
    deadline: Instant,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<StreamEvent>,
    /// Sealed frames written so far: the next one's place in our direction of the stream.
    sealed: u64,
    /// Sealed frames opened so far: the place the next one must have been sealed for.
    opened: u64,
}

impl SecureStream {
    /// Starts the stream's encryption at `now`, with `peer` the other end of the connection. An
    /// initiator's `Init` is ready in [`SecureStream::poll_transmit`] at once.
    pub fn new(
        config: SecureConfig,
        role: StreamRole,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<SecureStream, StreamError> {
        let mut stream = SecureStream {
            psk: config.psk,
            rng: ChaCha20Rng::from_seed(config.seed),
            peer,
            state: State::Listening,
            deadline: now + HANDSHAKE_TIMEOUT,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            sealed: 0,
            opened: 0,
        };
        if role == StreamRole::Initiator {
            let id = stream.rng.next_u64();
            let seed = stream.seed();
            let handshake = Initiator::start(&stream.psk, id, seed)
                .map_err(|e| StreamError::Unauthenticated(e.to_string()))?;
            stream.outbox.push_back(handshake.init.clone());
            stream.state = State::Initiating {
                handshake,
                skipped: false,
            };
        }
        Ok(stream)
    }

    /// True once both sides have proved the passphrase: [`SecureStream::seal`] works from then.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    /// The short authentication string, once established.
    pub fn sas(&self) -> Option<&str> {
        match &self.state {
            State::Established { session, .. } => Some(&session.sas),
            _ => None,
        }
    }

    /// The next frame to write (handshake messages, a confirmation, a `Reject`), in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// When the handshake runs out of time, while it runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Initiating { .. } | State::Listening | State::Answered { .. } => {
                Some(self.deadline)
            }
            State::Established { .. } | State::Failed => None,
        }
    }

    /// Fails the handshake if its time is up.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), StreamError> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => Err(self.fail(
                HandshakeFailure::NoAnswer,
                format!(
                    "the handshake was not done within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Seals one plain udpchat datagram into `out` (replacing what it held): the frame to write.
    pub fn seal(
        &mut self,
        now: Instant,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        let State::Established { session, .. } = &mut self.state else {
            return Err(match self.state {
                State::Failed => StreamError::Failed,
                _ => StreamError::NotEstablished,
            });
        };
        let body = body_of(plain).ok_or(StreamError::NotADatagram)?;
        session.seal_bound(now, body, &place(self.sealed), out)?;
        self.sealed += 1;
        Ok(())
    }

    /// Takes the next frame read from the stream: a handshake step (`None`; see
    /// [`SecureStream::poll_transmit`] and [`SecureStream::poll_event`]), or the plain datagram
    /// a sealed frame carried. Any error ends the stream.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: &[u8],
    ) -> Result<Option<Vec<u8>>, StreamError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        match state {
            State::Failed => Err(StreamError::Failed),
            State::Initiating { handshake, skipped } => {
                self.on_initiating(now, frame, handshake, skipped)
            }
            State::Listening => self.on_listening(now, frame),
            State::Answered { session } => self.on_answered(now, frame, session),
            State::Established { session, last } => self.on_established(now, frame, session, last),
        }
    }

    fn seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        seed
    }

    /// Fails the handshake: nothing more is read or sealed.
    fn fail(&mut self, reason: HandshakeFailure, detail: String) -> StreamError {
        self.state = State::Failed;
        StreamError::Handshake { reason, detail }
    }

    /// Queues a `Reject` for the attempt `initiator` in answer to a frame of `cause` bytes, unless
    /// that frame was shorter than the `Reject` (16 bytes): nothing that has not proven the
    /// passphrase gets more bytes than it sent. No frame a `Reject` is for is that short (an
    /// `Init` or a `Reply` is 72 bytes, a plain udpchat peer's first frame, its `Nick`, over 20).
    fn reject(&mut self, initiator: u64, cause: usize) {
        if cause < REJECT_LEN {
            return;
        }
        let reject = HandshakeFrame {
            kind: SealedKind::Reject,
            initiator,
            noise: &[],
        }
        .emit();
        self.outbox.extend(reject);
    }

    /// What a frame that is no handshake message and no sealed frame is, in words and as the
    /// failure to report: a plain udpchat peer, or something else.
    fn stranger(&mut self, frame: &[u8], wanted: &str) -> StreamError {
        match udpchat_core::decode(frame) {
            Ok(_) => self.fail(
                HandshakeFailure::NotEncrypted,
                "an unencrypted udpchat datagram: the peer is not encrypted (it runs without \
                 --secret)"
                    .into(),
            ),
            Err(e) => self.fail(
                HandshakeFailure::WrongPassphrase,
                format!("{wanted} expected, and this is not one: {e}"),
            ),
        }
    }

    fn on_initiating(
        &mut self,
        now: Instant,
        frame: &[u8],
        handshake: Initiator,
        skipped: bool,
    ) -> Result<Option<Vec<u8>>, StreamError> {
        match sealed_kind(frame) {
            Some(SealedKind::Init) if !skipped => {
                let Ok(init) = HandshakeFrame::parse(frame) else {
                    return Err(self.malformed_handshake(frame));
                };
                if frame == handshake.init.as_slice() {
                    let detail = "our own handshake came back: talking to ourselves".into();
                    return Err(self.fail(HandshakeFailure::WrongPassphrase, detail));
                }
                if handshake.ephemeral() > ephemeral_of(frame) {
                    // A simultaneous open, and ours wins: the peer answers our Init.
                    self.state = State::Initiating {
                        handshake,
                        skipped: true,
                    };
                    return Ok(None);
                }
                // Theirs wins: answer it; ours is skipped on their side.
                self.answer(now, &init)
            }
            Some(SealedKind::Reply) => {
                let reply = match HandshakeFrame::parse(frame) {
                    Ok(reply) if reply.initiator == handshake.id => reply,
                    _ => {
                        self.reject(handshake.id, frame.len());
                        return Err(self.malformed_handshake(frame));
                    }
                };
                let id = handshake.id;
                let Ok(keys) = handshake.finish(reply.noise) else {
                    self.reject(id, frame.len());
                    let detail = "the handshake's reply does not authenticate".into();
                    return Err(self.fail(HandshakeFailure::WrongPassphrase, detail));
                };
                let mut session = Session::new(self.peer, id, &keys, true, now)?;
                // The confirmation: our proof of the passphrase, whatever we send next.
                let mut confirmation = Vec::new();
                session.seal_bound(now, &[], &place(self.sealed), &mut confirmation)?;
                self.sealed += 1;
                self.outbox.push_back(confirmation);
                self.establish(session, None);
                Ok(None)
            }
            Some(SealedKind::Reject) => Err(self.rejected(frame)),
            _ => Err(self.stranger(frame, "a handshake reply")),
        }
    }

    fn on_listening(&mut self, now: Instant, frame: &[u8]) -> Result<Option<Vec<u8>>, StreamError> {
        let init = match HandshakeFrame::parse(frame) {
            Ok(init) if init.kind == SealedKind::Init => init,
            _ => {
                return Err(match sealed_kind(frame) {
                    Some(SealedKind::Reject) => self.rejected(frame),
                    kind => {
                        // Nothing we answer: say that this side is encrypted (a plain udpchat
                        // peer names it from the Reject), then give up.
                        self.reject(0, frame.len());
                        if kind == Some(SealedKind::Init) {
                            self.malformed_handshake(frame)
                        } else {
                            self.stranger(frame, "a handshake Init")
                        }
                    }
                });
            }
        };
        self.answer(now, &init)
    }

    /// Answers `init` as responder: the `Reply` goes out, the session waits for its proof.
    fn answer(
        &mut self,
        now: Instant,
        init: &HandshakeFrame<'_>,
    ) -> Result<Option<Vec<u8>>, StreamError> {
        let id = self.rng.next_u64();
        let seed = self.seed();
        let Ok((reply, keys)) = respond(&self.psk, init, id, seed) else {
            self.reject(init.initiator, HANDSHAKE_LEN);
            let detail = "a handshake Init that does not authenticate".into();
            return Err(self.fail(HandshakeFailure::WrongPassphrase, detail));
        };
        let session = Session::new(self.peer, id, &keys, false, now)?;
        self.outbox.push_back(reply);
        self.state = State::Answered { session };
        Ok(None)
    }

    fn on_answered(
        &mut self,
        now: Instant,
        frame: &[u8],
        mut session: Session,
    ) -> Result<Option<Vec<u8>>, StreamError> {
        match sealed_kind(frame) {
            Some(SealedKind::Sealed) => {}
            Some(SealedKind::Reject) => return Err(self.rejected(frame)),
            _ => {
                let detail = "a frame other than the initiator's first sealed frame after the \
                              handshake reply"
                    .into();
                return Err(self.fail(HandshakeFailure::WrongPassphrase, detail));
            }
        }
        let opened = open_next(now, &mut session, None, self.opened, frame).map_err(|e| {
            let detail = format!("the initiator's first sealed frame: {e}");
            self.fail(HandshakeFailure::WrongPassphrase, detail)
        })?;
        let counter = opened.0;
        self.opened += 1;
        self.establish(session, Some(counter));
        Ok(opened.1)
    }

    fn on_established(
        &mut self,
        now: Instant,
        frame: &[u8],
        mut session: Session,
        last: Option<u64>,
    ) -> Result<Option<Vec<u8>>, StreamError> {
        if sealed_kind(frame) != Some(SealedKind::Sealed) {
            let what = match sealed_kind(frame) {
                Some(kind) => format!("a handshake {} frame", kind.name()),
                None => "a frame that is not sealed".to_owned(),
            };
            return Err(StreamError::Unauthenticated(format!(
                "{what} after the handshake: nothing unsealed may follow it"
            )));
        }
        let (counter, plain) = open_next(now, &mut session, last, self.opened, frame)?;
        self.opened += 1;
        self.state = State::Established {
            session,
            last: Some(counter),
        };
        Ok(plain)
    }

    fn establish(&mut self, session: Session, last: Option<u64>) {
        self.events.push_back(StreamEvent::Established {
            sas: session.sas.clone(),
        });
        self.state = State::Established { session, last };
    }

    fn malformed_handshake(&mut self, frame: &[u8]) -> StreamError {
        let detail = match HandshakeFrame::parse(frame) {
            Err(e) => e.to_string(),
            Ok(_) => "a handshake message of another attempt".into(),
        };
        self.fail(HandshakeFailure::WrongPassphrase, detail)
    }

    fn rejected(&mut self, frame: &[u8]) -> StreamError {
        match HandshakeFrame::parse(frame) {
            Ok(_) => self.fail(
                HandshakeFailure::WrongPassphrase,
                "the peer refused the handshake (a Reject)".into(),
            ),
            Err(e) => self.fail(HandshakeFailure::WrongPassphrase, e.to_string()),
        }
    }
}

/// The counters that may follow `last`: the next in its epoch, or the first of the next epoch (a
/// sender's counters go exactly so: see `crate::session`). Before the first frame (`None`) that
/// is 0, or the first of epoch 1: a sender whose first frame comes [`crate::session::REKEY_AFTER`]
/// after the handshake has moved to epoch 1 before sealing anything in epoch 0 (a responder
/// that stays silent for two minutes).
fn next_counters(last: Option<u64>) -> [Option<u64>; 2] {
    let (next, epoch) = match last {
        None => (Some(0), 0),
        Some(last) => (last.checked_add(1), last >> EPOCH_BITS),
    };
    [next, (epoch + 1).checked_mul(EPOCH_DATAGRAMS)]
}

/// Whether `counter` may follow `last` (see [`next_counters`]).
fn follows(last: Option<u64>, counter: u64) -> bool {
    next_counters(last).contains(&Some(counter))
}

/// The context each sealed frame is bound to (`Session::seal_bound`): its place among the sealed
/// frames of its direction, from 0 (the initiator's confirmation, the responder's first frame).
/// It is not sent: the receiver counts what it opened. So a frame deleted from the stream makes
/// the next one fail to authenticate, wherever the deletion is, key changes included (a counter
/// alone says where a frame is in its key epoch, not how many frames the epoch before held).
/// The label keeps a stream's frames apart from the UDP modes' datagrams, which have none.
fn place(index: u64) -> [u8; 22] {
    let mut context = [0u8; 22];
    context[..14].copy_from_slice(b"udpchat/stream");
    context[14..].copy_from_slice(&index.to_be_bytes());
    context
}

/// Opens a sealed frame whose counter must follow `last` and which must have been sealed as the
/// stream's sealed frame number `index` ([`place`]): its counter and the plain datagram it
/// carried (`None` for an empty one, a confirmation).
fn open_next(
    now: Instant,
    session: &mut Session,
    last: Option<u64>,
    index: u64,
    frame: &[u8],
) -> Result<(u64, Option<Vec<u8>>), StreamError> {
    let header = SealedHeader::parse(frame)
        .ok_or_else(|| StreamError::Unauthenticated(OpenError::TooShort.to_string()))?;
    if !follows(last, header.counter) {
        let expected = next_counters(last)
            .iter()
            .flatten()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(StreamError::OutOfSequence {
            counter: header.counter,
            expected,
        });
    }
    let mut body = Vec::new();
    session
        .open_bound(now, frame, &place(index), &mut body)
        .map_err(|e| StreamError::Unauthenticated(e.to_string()))?;
    Ok((header.counter, (!body.is_empty()).then(|| rebuild(&body))))
}

#[cfg(test)]
mod tests;
