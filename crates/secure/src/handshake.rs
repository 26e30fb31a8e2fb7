//! The Noise handshake, `Noise_NNpsk2_25519_ChaChaPoly_BLAKE2s`, over snow.
//!
//! Two messages: the initiator sends a fresh ephemeral key (`-> e`); the responder answers with
//! its own and mixes in both their Diffie-Hellman result and the passphrase's key (`<- e, ee,
//! psk`), then encrypts its session id under the result. Only a responder that holds the PSK
//! can produce an answer the initiator can open, so a `Reply` that opens proves the passphrase;
//! the responder learns the same of the initiator from the first sealed datagram it can open
//! (see `crate::secured`). Why this pattern and not another is argued in docs/protocol.md.
//!
//! Randomness is passed in: snow asks its resolver for a generator, and ours hands it one seeded
//! from the caller's bytes ([`SeededResolver`]), so the simulator's handshakes are reproducible.
//! The transport keys are taken raw from Noise's `Split()` (snow's `risky-raw-split`), because
//! a key epoch needs ciphers of its own next to the previous epoch's (see `crate::session`).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState};
use thiserror::Error;
use udpchat_core::sealed::{HandshakeFrame, SealedKind, NOISE_HANDSHAKE_LEN};

use crate::passphrase::Psk;

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_NNpsk2_25519_ChaChaPoly_BLAKE2s";
/// The start of the prologue both sides hash in; the `Init`'s clear header follows it, so its
/// id and kind are authenticated by the `Reply`.
const PROLOGUE_LABEL: &[u8] = b"udpchat/secure/v1 NNpsk2";
/// Zero padding carried as the first message's payload: it makes the `Init` as long as the
/// `Reply` (no amplification), and being in the transcript it cannot be altered unnoticed. In a
/// PSK pattern the `e` token already mixes a key, so even this payload carries a 16-byte tag
/// (under a key anyone can compute from `e`: it proves nothing, it only fills the length).
const INIT_PADDING: usize = NOISE_HANDSHAKE_LEN - 32 - 16;

/// Why a handshake step failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The peer's message did not authenticate: a different passphrase, or not udpchat.
    #[error("the peer's handshake message does not authenticate")]
    Unauthenticated,
    /// snow refused a step for another reason (a bug of ours if it ever happens).
    #[error("Noise failed: {0}")]
    Noise(String),
}

/// What a finished handshake gives one side.
pub struct Keys {
    /// The key we seal with.
    pub send: [u8; 32],
    /// The key the peer seals with.
    pub recv: [u8; 32],
    /// The peer's session id: what our sealed datagrams carry as receiver.
    pub remote_id: u64,
    /// Noise's handshake hash: equal on both sides of an honest session.
    pub hash: [u8; 32],
}

/// The initiator's half-done handshake: its `Init`, cached for retransmission.
pub struct Initiator {
    state: HandshakeState,
    /// Our session id (the `Init` carries it).
    pub id: u64,
    /// The `Init` datagram, sent again as the same bytes on every retry.
    pub init: Vec<u8>,
}

impl Initiator {
    /// Starts a handshake as initiator with session id `id`, its ephemeral key drawn from `seed`.
    pub fn start(psk: &Psk, id: u64, seed: [u8; 32]) -> Result<Initiator, HandshakeError> {
        let prologue = prologue(id);
        let mut state = builder(seed)?
            .psk(2, psk.bytes())
            .prologue(&prologue)
            .build_initiator()
            .map_err(noise)?;
        let mut message = [0u8; NOISE_HANDSHAKE_LEN];
        let len = state
            .write_message(&[0u8; INIT_PADDING], &mut message)
            .map_err(noise)?;
        let init = HandshakeFrame {
            kind: SealedKind::Init,
            initiator: id,
            noise: &message[..len],
        }
        .emit()
        .ok_or_else(|| HandshakeError::Noise(format!("first message of {len} bytes")))?;
        Ok(Initiator { state, id, init })
    }

    /// Our ephemeral public key, as the `Init` carries it: the tie-break of a simultaneous open.
    pub fn ephemeral(&self) -> &[u8] {
        ephemeral_of(&self.init)
    }

    /// Reads the responder's Noise message; keys if it authenticates.
    pub fn finish(mut self, noise_message: &[u8]) -> Result<Keys, HandshakeError> {
        let mut payload = [0u8; NOISE_HANDSHAKE_LEN];
        let len = self
            .state
            .read_message(noise_message, &mut payload)
            .map_err(|_| HandshakeError::Unauthenticated)?;
        let remote: [u8; 8] = payload[..len]
            .try_into()
            .map_err(|_| HandshakeError::Unauthenticated)?;
        let hash = hash_of(&self.state)?;
        let (i2r, r2i) = self.state.dangerously_get_raw_split();
        Ok(Keys {
            send: i2r,
            recv: r2i,
            remote_id: u64::from_le_bytes(remote),
            hash,
        })
    }
}

/// Answers an `Init` as responder with session id `id`: the `Reply` datagram and the keys. The
/// keys are not yet proven: the initiator proves the passphrase with its first sealed datagram.
pub fn respond(
    psk: &Psk,
    init: &HandshakeFrame<'_>,
    id: u64,
    seed: [u8; 32],
) -> Result<(Vec<u8>, Keys), HandshakeError> {
    let prologue = prologue(init.initiator);
    let mut state = builder(seed)?
        .psk(2, psk.bytes())
        .prologue(&prologue)
        .build_responder()
        .map_err(noise)?;
    let mut padding = [0u8; NOISE_HANDSHAKE_LEN];
    state
        .read_message(init.noise, &mut padding)
        .map_err(|_| HandshakeError::Unauthenticated)?;
    let mut message = [0u8; NOISE_HANDSHAKE_LEN];
    let len = state
        .write_message(&id.to_le_bytes(), &mut message)
        .map_err(noise)?;
    let reply = HandshakeFrame {
        kind: SealedKind::Reply,
        initiator: init.initiator,
        noise: &message[..len],
    }
    .emit()
    .ok_or_else(|| HandshakeError::Noise(format!("second message of {len} bytes")))?;
    let hash = hash_of(&state)?;
    let (i2r, r2i) = state.dangerously_get_raw_split();
    let keys = Keys {
        send: r2i,
        recv: i2r,
        remote_id: init.initiator,
        hash,
    };
    Ok((reply, keys))
}

/// The ephemeral public key inside an `Init` datagram (its first 32 Noise bytes).
pub fn ephemeral_of(init: &[u8]) -> &[u8] {
    init.get(12..44).unwrap_or(&[])
}

/// The short authentication string: six digits from the handshake hash, in two groups of three
/// (`"493 027"`), to compare by voice. Equal on both sides of an honest session; a
/// man-in-the-middle who somehow had the passphrase would run two handshakes with different
/// hashes, and match the digits by chance once in a million.
pub fn sas(hash: &[u8; 32]) -> String {
    let n = u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

fn prologue(initiator: u64) -> Vec<u8> {
    let mut p = PROLOGUE_LABEL.to_vec();
    p.extend_from_slice(&SealedKind::Init.header());
    p.extend_from_slice(&initiator.to_le_bytes());
    p
}

fn builder(seed: [u8; 32]) -> Result<Builder<'static>, HandshakeError> {
    let params: NoiseParams = PATTERN.parse().map_err(noise)?;
    Ok(Builder::with_resolver(
        params,
        Box::new(SeededResolver { seed }),
    ))
}

fn hash_of(state: &HandshakeState) -> Result<[u8; 32], HandshakeError> {
    state
        .get_handshake_hash()
        .try_into()
        .map_err(|_| HandshakeError::Noise("handshake hash is not 32 bytes".into()))
}

fn noise(e: snow::Error) -> HandshakeError {
    HandshakeError::Noise(e.to_string())
}

/// snow's primitives, with the one generator it asks for seeded by the caller.
struct SeededResolver {
    seed: [u8; 32],
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// ChaCha20 from a seed, behind the rand_core 0.6 traits snow 0.9 speaks.
struct SeededRandom(ChaCha20Rng);

impl rand_core_06::RngCore for SeededRandom {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core_06::CryptoRng for SeededRandom {}
impl Random for SeededRandom {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use udpchat_core::sealed::HANDSHAKE_LEN;

    use super::*;
    use crate::passphrase::KdfParams;

    fn psk(p: &str) -> Psk {
        Psk::derive(p, KdfParams::insecure_for_tests()).unwrap()
    }

    #[test]
    fn same_passphrase_agrees_on_keys_hash_and_ids() {
        let i = Initiator::start(&psk("pw"), 11, [1; 32]).unwrap();
        assert_eq!(i.init.len(), HANDSHAKE_LEN);
        let frame = HandshakeFrame::parse(&i.init).unwrap();
        let (reply, r) = respond(&psk("pw"), &frame, 22, [2; 32]).unwrap();
        // The answer to an unauthenticated datagram is never larger than it.
        assert!(reply.len() <= i.init.len());
        let reply = HandshakeFrame::parse(&reply).unwrap();
        assert_eq!(reply.initiator, 11);
        let k = i.finish(reply.noise).unwrap();
        assert_eq!((k.send, k.recv), (r.recv, r.send));
        assert_eq!((k.remote_id, r.remote_id), (22, 11));
        assert_eq!(k.hash, r.hash);
        assert_eq!(sas(&k.hash), sas(&r.hash));
        assert_eq!(sas(&k.hash).len(), 7);
    }

    #[test]
    fn a_different_passphrase_fails_at_the_initiator() {
        let i = Initiator::start(&psk("pw"), 11, [1; 32]).unwrap();
        let frame = HandshakeFrame::parse(&i.init).unwrap();
        let (reply, _) = respond(&psk("other"), &frame, 22, [2; 32]).unwrap();
        let reply = HandshakeFrame::parse(&reply).unwrap();
        assert_eq!(
            i.finish(reply.noise).err(),
            Some(HandshakeError::Unauthenticated)
        );
    }

    #[test]
    fn a_changed_init_header_fails_at_the_responder() {
        // An Init whose id was altered in flight: the prologues differ, so its tag (under a key
        // both sides derive from the prologue and `e`) no longer verifies.
        let i = Initiator::start(&psk("pw"), 11, [1; 32]).unwrap();
        let mut frame = HandshakeFrame::parse(&i.init).unwrap();
        frame.initiator = 12;
        assert_eq!(
            respond(&psk("pw"), &frame, 22, [2; 32]).err(),
            Some(HandshakeError::Unauthenticated)
        );
    }

    #[test]
    fn the_seed_decides_the_ephemeral_key() {
        let a = Initiator::start(&psk("pw"), 1, [9; 32]).unwrap();
        let b = Initiator::start(&psk("pw"), 1, [9; 32]).unwrap();
        let c = Initiator::start(&psk("pw"), 1, [8; 32]).unwrap();
        assert_eq!(a.init, b.init);
        assert_ne!(a.ephemeral(), c.ephemeral());
    }
}
