//! Encrypted sessions in the lab: both endpoints wrapped in `udpchat_secure::Secured`, with every
//! key and nonce from the run's seed.
//!
//! Only the simulator and the lab derive keys this way: a seed is not a secret, so a key from it
//! protects nothing. What it buys is reproducibility: the same seed gives the same handshake,
//! the same session ids and the same sealed bytes, so an encrypted run replays exactly and its
//! byte overhead can be compared with the plain run of the same seed.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use udpchat_reliable::Endpoint;
use udpchat_secure::{Psk, SecureConfig, Secured};

use crate::experiment::run::{self, EndpointPair, ExperimentError, SweepRuns};
use crate::experiment::Mode;
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

/// The lab's endpoints for `mode` ([`run::endpoints`]), encrypted with keys from `seed`: the
/// factory `udpchat lab --encrypt` runs its sweep with. The inner endpoints keep their datagram
/// limit, so a full-size datagram grows by [`udpchat_secure::OVERHEAD`] bytes (the simulator
/// sets no MTU unless asked).
pub fn endpoints(mode: Mode, seed: u64) -> Result<EndpointPair, ExperimentError> {
    let (a, b) = run::endpoints(mode, seed)?;
    let (a, b) = wrap(seed, a, b);
    Ok((Box::new(a), Box::new(b)))
}

/// What encryption cost one mode over a whole sweep: the same points and seeds run plain and
/// encrypted (common random numbers: the links treat both alike as far as their datagrams
/// match).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overhead {
    /// The mode.
    pub mode: Mode,
    /// Messages sent over the whole sweep (each run's, summed).
    pub messages: u64,
    /// Of those, delivered in the plain runs.
    pub plain_delivered: u64,
    /// Delivered in the encrypted runs.
    pub encrypted_delivered: u64,
    /// Bytes on the links (both ways, UDP payloads), plain.
    pub plain_bytes: u64,
    /// The same, encrypted.
    pub encrypted_bytes: u64,
    /// Datagrams on the links, plain.
    pub plain_datagrams: u64,
    /// The same, encrypted (the handshake's are among them).
    pub encrypted_datagrams: u64,
    /// `encrypted_bytes / plain_bytes − 1`, in percent.
    pub bytes_percent: f64,
    /// Mean bytes per datagram, encrypted minus plain.
    pub bytes_per_datagram: f64,
}

/// The overhead per mode, from the runs of a plain and an encrypted sweep of the same config
/// (`runs[point][mode][seed]`).
pub fn overhead(modes: &[Mode], plain: &SweepRuns, encrypted: &SweepRuns) -> Vec<Overhead> {
    let total = |runs: &SweepRuns, m: usize| {
        runs.iter()
            .flat_map(|point| point.get(m).into_iter().flatten())
            .fold((0u64, 0u64, 0u64, 0u64), |(b, d, sent, got), r| {
                (
                    b + r.wire_bytes,
                    d + r.datagrams,
                    sent + r.messages,
                    got + r.delivered,
                )
            })
    };
    let per = |bytes: u64, datagrams: u64| bytes as f64 / datagrams.max(1) as f64;
    modes
        .iter()
        .enumerate()
        .map(|(m, &mode)| {
            let (plain_bytes, plain_datagrams, messages, plain_delivered) = total(plain, m);
            let (encrypted_bytes, encrypted_datagrams, _, encrypted_delivered) =
                total(encrypted, m);
            Overhead {
                mode,
                messages,
                plain_delivered,
                encrypted_delivered,
                plain_bytes,
                encrypted_bytes,
                plain_datagrams,
                encrypted_datagrams,
                bytes_percent: (encrypted_bytes as f64 / plain_bytes.max(1) as f64 - 1.0) * 100.0,
                bytes_per_datagram: per(encrypted_bytes, encrypted_datagrams)
                    - per(plain_bytes, plain_datagrams),
            }
        })
        .collect()
}

impl Overhead {
    /// One line for the table: `encryption (raw): delivered 171 → 171 of 400, +40.1% bytes...`.
    pub fn line(&self) -> String {
        format!(
            "encryption ({}): delivered {} → {} of {}; {:+.1}% bytes on the wire, {:+.1} bytes \
             per datagram ({} → {} bytes, {} → {} datagrams)",
            self.mode.name(),
            self.plain_delivered,
            self.encrypted_delivered,
            self.messages,
            self.bytes_percent,
            self.bytes_per_datagram,
            self.plain_bytes,
            self.encrypted_bytes,
            self.plain_datagrams,
            self.encrypted_datagrams
        )
    }
}

fn bytes(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::experiment::ExperimentConfig;

    #[test]
    fn an_encrypted_sweep_delivers_alike_and_costs_the_seal_per_datagram() {
        let config = ExperimentConfig {
            losses: vec![crate::Probability::ZERO],
            messages: 50,
            seeds: 1,
            ..ExperimentConfig::default()
        };
        let (_, plain) = run::run_sweep_with(&config, run::endpoints, 1, &|_, _| {}).unwrap();
        let (_, sealed) = run::run_sweep_with(&config, endpoints, 1, &|_, _| {}).unwrap();
        for mode in &sealed[0] {
            assert_eq!(mode[0].delivered, 50);
        }
        let rows = overhead(&config.modes, &plain, &sealed);
        // Raw mode: 50 data datagrams plain; encrypted, the same 50 sealed (29 bytes more each)
        // plus the handshake (two 72-byte messages, and a confirmation each way).
        let raw = &rows[0];
        assert_eq!(raw.plain_datagrams, 50);
        assert_eq!(raw.encrypted_datagrams, 54);
        assert_eq!(
            raw.encrypted_bytes - raw.plain_bytes,
            50 * udpchat_secure::OVERHEAD as u64 + 2 * 72 + 2 * 36
        );
        assert!(rows[1].bytes_percent > 0.0);
    }
}
