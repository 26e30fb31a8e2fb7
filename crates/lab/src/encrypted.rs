//! Encrypted sessions in the lab: both endpoints wrapped in `udpchat_secure::Secured`, with every
//! key and nonce from the run's seed.
//!
//! Only the simulator and the lab derive keys this way: a seed is not a secret, so a key from it
//! protects nothing. What it buys is reproducibility: the same seed gives the same handshake,
//! the same session ids and the same sealed bytes, so an encrypted run replays exactly and its
//! byte overhead can be compared with the plain run of the same seed.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use udpchat_reliable::Endpoint;
use udpchat_secure::{Psk, SecureConfig, Secured};

use crate::impairment::derive_seed;

/// Labels of the seeds drawn from a run's seed (distinct from the links' labels).
const KEY_LABEL: u64 = 0x5ec0_0001;
const SIDE_A_LABEL: u64 = 0x5ec0_000a;
const SIDE_B_LABEL: u64 = 0x5ec0_000b;

/// The PSK and the per-side randomness of an encrypted run, all from `seed`.
pub fn configs(seed: u64) -> (SecureConfig, SecureConfig) {
    let psk = Psk::from_bytes(bytes(derive_seed(seed, KEY_LABEL)));
    let side = |label| SecureConfig {
        psk: psk.clone(),
        seed: bytes(derive_seed(seed, label)),
    };
    (side(SIDE_A_LABEL), side(SIDE_B_LABEL))
}

/// Wraps both endpoints of a run with keys from `seed`.
pub fn wrap<A: Endpoint, B: Endpoint>(seed: u64, a: A, b: B) -> (Secured<A>, Secured<B>) {
    let (ca, cb) = configs(seed);
    (Secured::new(a, ca), Secured::new(b, cb))
}

fn bytes(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}
