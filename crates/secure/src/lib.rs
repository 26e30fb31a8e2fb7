//! udpchat's encryption (`--secret`): a shared passphrase, a Noise handshake, sealed datagrams.
//!
//! The passphrase becomes a 32-byte key through Argon2id ([`passphrase`]); two endpoints that
//! hold it run `Noise_NNpsk2_25519_ChaChaPoly_BLAKE2s` ([`handshake`]) and then seal every
//! datagram with ChaCha20-Poly1305 under an explicit counter, filtered by a replay window
//! ([`session`], [`replay`]). [`Secured`] wraps any [`udpchat_reliable::Endpoint`] — raw or
//! reliable — so that one mechanism serves both modes; [`SecureStream`] runs the same handshake
//! and sealing over TCP mode's ordered frames. Like the transports, nothing here owns a
//! socket, reads a clock or draws global randomness: time is an argument and all randomness
//! comes from the seed in [`SecureConfig`], so the simulator runs encrypted sessions
//! reproducibly. The wire format and the security argument are in docs/protocol.md, "Security".

pub mod handshake;
pub mod passphrase;
pub mod replay;
pub mod secured;
pub mod session;
pub mod stream;

pub use passphrase::{KdfParams, PassphraseError, Psk};
pub use secured::{SecureConfig, Secured, OVERHEAD};
pub use stream::{SecureStream, StreamError, StreamEvent, StreamRole};
