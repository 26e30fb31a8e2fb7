//! One encrypted session: sealing and opening datagrams with explicit counters, key epochs, and
//! a replay filter per direction.
//!
//! Each sealed datagram carries its 64-bit counter in clear and uses it as the AEAD nonce, so
//! the receiver never has to guess: loss, duplication and reordering cannot desynchronise the
//! ciphers (Noise's stateless transport mode, as snow calls it). The counter's top 48 bits are
//! the key epoch and its low 16 bits the datagram's number in the epoch, so the epoch costs no
//! header byte.
//!
//! **Rekey.** A sender moves to the next epoch after [`EPOCH_DATAGRAMS`] datagrams or
//! [`REKEY_AFTER`], whichever comes first (the time rule jumps its counter to the next epoch's
//! start). The next key is Noise's `REKEY`: the current key encrypts 32 zero bytes under the
//! reserved nonce 2^64−1, so it is a one-way step and an old epoch's key cannot be recovered
//! from a newer one. Each side advances its receiving key when a datagram of a later epoch
//! authenticates (up to [`MAX_EPOCH_SKIP`] epochs ahead, in case a whole epoch was lost), and
//! keeps the previous epoch's key and window for [`GRACE`] so that datagrams reordered across
//! the change still open. snow's `StatelessTransportState` rekeys in place and cannot hold two
//! epochs at once, so the keys from Noise's `Split()` drive snow's own ChaCha20-Poly1305 cipher
//! objects here, one per epoch.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use snow::params::CipherChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::Cipher;
use thiserror::Error;
use udpchat_core::sealed::{SealedHeader, SEALED_HEADER_LEN, TAG_LEN};

use crate::handshake::{sas, Keys};
use crate::replay::{Replay, ReplayWindow};

/// Low bits of the counter that number datagrams within an epoch.
pub const EPOCH_BITS: u32 = 16;
/// Datagrams a sender seals under one key before it moves to the next.
pub const EPOCH_DATAGRAMS: u64 = 1 << EPOCH_BITS;
/// Time a sender uses one key before it moves to the next (WireGuard's `REKEY_AFTER_TIME`).
pub const REKEY_AFTER: Duration = Duration::from_secs(120);
/// How long the previous epoch's receiving key stays, for datagrams reordered across a change.
pub const GRACE: Duration = Duration::from_secs(30);
/// Epochs a receiver may jump ahead at once (every datagram of the epochs between was lost).
pub const MAX_EPOCH_SKIP: u64 = 4;

/// Why a datagram could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    /// Already received, or too old for the window.
    #[error("{0}")]
    Replay(#[from] Replay),
    /// The tag did not verify: forged, damaged, or sealed under another key.
    #[error("a sealed datagram that does not authenticate (forged, damaged, or another key)")]
    Unauthenticated,
    /// Its epoch is one we no longer (or not yet) hold a key for.
    #[error("a sealed datagram of key epoch {epoch}, which this session does not hold")]
    UnknownEpoch {
        /// The datagram's epoch.
        epoch: u64,
    },
    /// Shorter than a header and a tag.
    #[error("a sealed datagram too short to hold a header and a tag")]
    TooShort,
}

/// Why a datagram could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    /// Every counter was used (2^64 datagrams: never, in practice).
    #[error("the session's counters are exhausted")]
    Exhausted,
    /// The cipher is unavailable (snow's resolver refused ChaCha20-Poly1305: a build defect).
    #[error("no ChaCha20-Poly1305 cipher")]
    NoCipher,
}

/// One key epoch of one direction.
struct EpochKey {
    epoch: u64,
    cipher: Box<dyn Cipher>,
}

impl EpochKey {
    fn new(epoch: u64, key: [u8; 32]) -> Result<EpochKey, SealError> {
        let mut cipher = DefaultResolver
            .resolve_cipher(&CipherChoice::ChaChaPoly)
            .ok_or(SealError::NoCipher)?;
        cipher.set(&key);
        Ok(EpochKey { epoch, cipher })
    }

    /// Noise's `REKEY(k)`: the first 32 bytes of `ENCRYPT(k, 2^64−1, "", zeros)`.
    fn next(&self) -> Result<EpochKey, SealError> {
        let mut out = [0u8; 32 + TAG_LEN];
        self.cipher.encrypt(u64::MAX, &[], &[0u8; 32], &mut out);
        let mut key = [0u8; 32];
        key.copy_from_slice(&out[..32]);
        EpochKey::new(self.epoch + 1, key)
    }
}

struct Receiving {
    key: EpochKey,
    window: ReplayWindow,
}

/// An encrypted session with one peer.
pub struct Session {
    /// Where the peer is.
    pub peer: SocketAddr,
    /// Our session id: the peer's datagrams name it as receiver.
    pub local_id: u64,
    /// The peer's session id: our datagrams name it.
    pub remote_id: u64,
    /// The short authentication string of its handshake.
    pub sas: String,
    /// Whether we started the handshake.
    pub initiator: bool,
    send: EpochKey,
    sent_in_epoch: u64,
    epoch_started: Instant,
    recv: Receiving,
    previous: Option<(Receiving, Instant)>,
}

impl Session {
    /// A session from a finished handshake's keys.
    pub fn new(
        peer: SocketAddr,
        local_id: u64,
        keys: &Keys,
        initiator: bool,
        now: Instant,
    ) -> Result<Session, SealError> {
        Ok(Session {
            peer,
            local_id,
            remote_id: keys.remote_id,
            sas: sas(&keys.hash),
            initiator,
            send: EpochKey::new(0, keys.send)?,
            sent_in_epoch: 0,
            epoch_started: now,
            recv: Receiving {
                key: EpochKey::new(0, keys.recv)?,
                window: ReplayWindow::new(),
            },
            previous: None,
        })
    }

    /// The epoch our next datagram goes out in.
    pub fn send_epoch(&self) -> u64 {
        self.send.epoch
    }

    /// For tests elsewhere in the crate: counts `n` datagrams as already sealed in this epoch,
    /// so a test reaches the count rule without sealing 65 536 of them.
    #[cfg(test)]
    pub(crate) fn pretend_sealed_in_epoch(&mut self, n: u64) {
        self.sent_in_epoch = n;
    }

    /// Seals `plaintext` as one datagram into `out` (replacing what it held).
    pub fn seal(
        &mut self,
        now: Instant,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        self.seal_bound(now, plaintext, &[], out)
    }

    /// [`Session::seal`], with `context` authenticated too: not sent, so the receiver must know
    /// it (an ordered stream binds each frame to its place in the stream this way).
    pub fn seal_bound(
        &mut self,
        now: Instant,
        plaintext: &[u8],
        context: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        if self.sent_in_epoch >= EPOCH_DATAGRAMS
            || now.saturating_duration_since(self.epoch_started) >= REKEY_AFTER
        {
            self.send = self.send.next()?;
            self.sent_in_epoch = 0;
            self.epoch_started = now;
        }
        let counter = self
            .send
            .epoch
            .checked_mul(EPOCH_DATAGRAMS)
            .and_then(|base| base.checked_add(self.sent_in_epoch))
            .filter(|&c| c != u64::MAX)
            .ok_or(SealError::Exhausted)?;
        self.sent_in_epoch += 1;
        let header = SealedHeader {
            receiver: self.remote_id,
            counter,
        }
        .emit();
        out.clear();
        out.extend_from_slice(&header);
        out.resize(SEALED_HEADER_LEN + plaintext.len() + TAG_LEN, 0);
        let written = self.send.cipher.encrypt(
            counter,
            &associated(&header, context),
            plaintext,
            &mut out[SEALED_HEADER_LEN..],
        );
        out.truncate(SEALED_HEADER_LEN + written);
        Ok(())
    }

    /// Opens a sealed datagram addressed to this session into `out` (its plaintext).
    pub fn open(
        &mut self,
        now: Instant,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), OpenError> {
        self.open_bound(now, datagram, &[], out)
    }

    /// [`Session::open`] of a datagram sealed by [`Session::seal_bound`] with `context`: any
    /// other context fails like a forgery.
    pub fn open_bound(
        &mut self,
        now: Instant,
        datagram: &[u8],
        context: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), OpenError> {
        let header = SealedHeader::parse(datagram).ok_or(OpenError::TooShort)?;
        let epoch = header.counter >> EPOCH_BITS;
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
        {
            self.previous = None;
        }
        let current = self.recv.key.epoch;
        if epoch == current {
            return open_with(&mut self.recv, header.counter, datagram, context, out);
        }
        if let Some((previous, _)) = self.previous.as_mut().filter(|(p, _)| p.key.epoch == epoch) {
            return open_with(previous, header.counter, datagram, context, out);
        }
        if epoch <= current || epoch - current > MAX_EPOCH_SKIP {
            return Err(OpenError::UnknownEpoch { epoch });
        }
        // A later epoch: derive its key, and keep it only if the datagram authenticates.
        let mut key = self
            .recv
            .key
            .next()
            .map_err(|_| OpenError::Unauthenticated)?;
        while key.epoch < epoch {
            key = key.next().map_err(|_| OpenError::Unauthenticated)?;
        }
        let mut next = Receiving {
            key,
            window: ReplayWindow::new(),
        };
        open_with(&mut next, header.counter, datagram, context, out)?;
        let old = std::mem::replace(&mut self.recv, next);
        self.previous = Some((old, now + GRACE));
        Ok(())
    }
}

/// The AEAD's associated data: the clear header, then the caller's context (usually none).
fn associated<'a>(header: &'a [u8], context: &[u8]) -> std::borrow::Cow<'a, [u8]> {
    if context.is_empty() {
        std::borrow::Cow::Borrowed(header)
    } else {
        std::borrow::Cow::Owned([header, context].concat())
    }
}

fn open_with(
    recv: &mut Receiving,
    counter: u64,
    datagram: &[u8],
    context: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), OpenError> {
    recv.window.check(counter)?;
    let (header, sealed) = datagram.split_at(SEALED_HEADER_LEN);
    out.clear();
    out.resize(sealed.len(), 0);
    let len = recv
        .key
        .cipher
        .decrypt(counter, &associated(header, context), sealed, out)
        .map_err(|_| OpenError::Unauthenticated)?;
    out.truncate(len);
    recv.window.record(counter)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pair(now: Instant) -> (Session, Session) {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = Keys {
            send: [1; 32],
            recv: [2; 32],
            remote_id: 20,
            hash: [3; 32],
        };
        let b = Keys {
            send: [2; 32],
            recv: [1; 32],
            remote_id: 10,
            hash: [3; 32],
        };
        (
            Session::new(addr, 10, &a, true, now).unwrap(),
            Session::new(addr, 20, &b, false, now).unwrap(),
        )
    }

    #[test]
    fn seal_open_and_the_clear_header() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        let mut d = Vec::new();
        a.seal(now, b"secret words", &mut d).unwrap();
        assert_eq!(d.len(), SEALED_HEADER_LEN + 12 + TAG_LEN);
        assert!(!d.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            SealedHeader::parse(&d),
            Some(SealedHeader {
                receiver: 20,
                counter: 0
            })
        );
        let mut out = Vec::new();
        b.open(now, &d, &mut out).unwrap();
        assert_eq!(out, b"secret words");
        assert_eq!(
            b.open(now, &d, &mut out),
            Err(OpenError::Replay(Replay::Seen(0)))
        );
    }

    #[test]
    fn a_wrong_key_does_not_open() {
        let now = Instant::now();
        let (mut a, _) = pair(now);
        let (_, mut c) = pair(now);
        c.recv.key = EpochKey::new(0, [9; 32]).unwrap();
        let mut d = Vec::new();
        a.seal(now, b"x", &mut d).unwrap();
        assert_eq!(
            c.open(now, &d, &mut Vec::new()),
            Err(OpenError::Unauthenticated)
        );
        // A failed open does not spend the counter: the genuine datagram still opens.
        c.recv.key = EpochKey::new(0, [1; 32]).unwrap();
        assert_eq!(c.open(now, &d, &mut Vec::new()), Ok(()));
    }

    #[test]
    fn keys_change_with_time_and_the_old_epoch_opens_within_the_grace() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let mut late = Vec::new();
        a.seal(t0, b"epoch 0", &mut late).unwrap();
        let t1 = t0 + REKEY_AFTER;
        let mut d = Vec::new();
        a.seal(t1, b"epoch 1", &mut d).unwrap();
        assert_eq!(a.send_epoch(), 1);
        assert_eq!(SealedHeader::parse(&d).unwrap().counter, EPOCH_DATAGRAMS);
        let mut out = Vec::new();
        b.open(t1, &d, &mut out).unwrap();
        assert_eq!(out, b"epoch 1");
        // Reordered across the change: epoch 0 still opens within the grace...
        b.open(t1 + GRACE / 2, &late, &mut out).unwrap();
        assert_eq!(out, b"epoch 0");
        // ...and not after it.
        let mut later = Vec::new();
        let (mut a2, mut b2) = pair(t0);
        a2.seal(t0, b"old", &mut later).unwrap();
        a2.seal(t1, b"new", &mut d).unwrap();
        b2.open(t1, &d, &mut out).unwrap();
        assert_eq!(
            b2.open(t1 + GRACE, &later, &mut out),
            Err(OpenError::UnknownEpoch { epoch: 0 })
        );
    }

    #[test]
    fn keys_change_after_an_epoch_of_datagrams() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        a.sent_in_epoch = EPOCH_DATAGRAMS - 1;
        let mut d = Vec::new();
        let mut out = Vec::new();
        a.seal(now, b"last of 0", &mut d).unwrap();
        b.open(now, &d, &mut out).unwrap();
        a.seal(now, b"first of 1", &mut d).unwrap();
        assert_eq!(a.send_epoch(), 1);
        b.open(now, &d, &mut out).unwrap();
        assert_eq!(out, b"first of 1");
    }

    #[test]
    fn a_receiver_catches_up_over_lost_epochs_but_not_too_far() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let mut d = Vec::new();
        for i in 1..=3 {
            a.seal(t0 + REKEY_AFTER * i, b"lost", &mut d).unwrap();
        }
        let mut out = Vec::new();
        b.open(t0, &d, &mut out).unwrap();
        assert_eq!(out, b"lost");
        for i in 4..=(4 + MAX_EPOCH_SKIP as u32) {
            a.seal(t0 + REKEY_AFTER * i, b"far", &mut d).unwrap();
        }
        assert!(matches!(
            b.open(t0, &d, &mut out),
            Err(OpenError::UnknownEpoch { .. })
        ));
    }
}
