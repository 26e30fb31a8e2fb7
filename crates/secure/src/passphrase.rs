//! From a passphrase a person can type to the 32-byte pre-shared key (PSK) Noise mixes in.
//!
//! Argon2id (RFC 9106) makes every guess expensive: the handshake lets an active attacker test
//! one guess offline per handshake it takes part in (see docs/protocol.md, "Security"), and each
//! guess then costs it one Argon2id evaluation with [`KdfParams::INTERACTIVE`]: 64 MiB of memory
//! and 3 passes, RFC 9106's second recommended option with one lane (each side derives once per
//! run, so the cost is paid once by a person and per guess by an attacker).
//!
//! The salt is fixed ([`SALT`]): both sides must derive the same key before they have exchanged
//! anything, and there is no account or server to keep a per-user salt. The price, documented in
//! protocol.md, is that a precomputed table for one passphrase works against every udpchat user
//! of that passphrase; the memory cost is what keeps such tables small.

use argon2::{Algorithm, Argon2, Params, Version};
use thiserror::Error;

/// The Argon2id salt: a fixed, versioned label (see the module doc for why it is not random).
pub const SALT: &[u8] = b"udpchat/secure/v1/psk";

/// Argon2id's cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes (parallelism).
    pub lanes: u32,
}

impl KdfParams {
    /// What every chat uses: 64 MiB, 3 passes, 1 lane. Two chats must use the same parameters
    /// to derive the same key, so these are part of the protocol.
    pub const INTERACTIVE: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };

    /// A deliberately cheap set (64 KiB, 1 pass) for unit tests and the simulator, which derive
    /// keys thousands of times. Never used by the binary: its keys could be guessed quickly.
    pub const fn insecure_for_tests() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            passes: 1,
            lanes: 1,
        }
    }
}

/// Why a key could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PassphraseError {
    /// An empty passphrase protects nothing.
    #[error("the passphrase is empty")]
    Empty,
    /// Argon2 refused the parameters or failed (it reports why).
    #[error("Argon2id failed: {0}")]
    Kdf(String),
}

/// The pre-shared key, derived from the passphrase. Not `Debug`-printable, so it cannot end up
/// in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk([u8; 32]);

impl Psk {
    /// Derives the key from `passphrase` with Argon2id and `params`. The passphrase is taken as
    /// its UTF-8 bytes with a final newline removed (files and `echo` add one).
    pub fn derive(passphrase: &str, params: KdfParams) -> Result<Psk, PassphraseError> {
        let passphrase = passphrase.strip_suffix('\n').unwrap_or(passphrase);
        let passphrase = passphrase.strip_suffix('\r').unwrap_or(passphrase);
        if passphrase.is_empty() {
            return Err(PassphraseError::Empty);
        }
        let params = Params::new(params.memory_kib, params.passes, params.lanes, Some(32))
            .map_err(|e| PassphraseError::Kdf(e.to_string()))?;
        let mut key = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), SALT, &mut key)
            .map_err(|e| PassphraseError::Kdf(e.to_string()))?;
        Ok(Psk(key))
    }

    /// A key given as bytes, for the simulator and the lab (keys from the seed).
    pub fn from_bytes(key: [u8; 32]) -> Psk {
        Psk(key)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn same_passphrase_same_key_and_a_final_newline_does_not_count() {
        let p = KdfParams::insecure_for_tests();
        let a = Psk::derive("correct horse", p).unwrap();
        assert!(a == Psk::derive("correct horse\n", p).unwrap());
        assert!(a == Psk::derive("correct horse\r\n", p).unwrap());
        assert!(a != Psk::derive("correct horse ", p).unwrap());
    }

    #[test]
    fn the_parameters_change_the_key() {
        let cheap = Psk::derive("x", KdfParams::insecure_for_tests()).unwrap();
        let other = KdfParams {
            passes: 2,
            ..KdfParams::insecure_for_tests()
        };
        assert!(cheap != Psk::derive("x", other).unwrap());
    }

    #[test]
    fn an_empty_passphrase_is_refused() {
        let p = KdfParams::insecure_for_tests();
        assert_eq!(Psk::derive("\n", p).err(), Some(PassphraseError::Empty));
    }

    /// Pins the real parameters' output, so a change of library or parameter that would make
    /// two builds disagree fails here first.
    #[test]
    fn interactive_parameters_give_a_pinned_key() {
        let key = Psk::derive("udpchat", KdfParams::INTERACTIVE).unwrap();
        let hex: String = key.bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, PINNED);
    }

    const PINNED: &str = "3634cc742e0915650e9fc2a5844cb221e0dcdfb5bd1432250a06762d14a4bc85";
}
