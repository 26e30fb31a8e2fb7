//! The congestion controllers on the bench's bulk link (the lab's simulator, seeded): a
//! 100 Mbit/s, 20 ms one-way path with a 500 kB queue. Figures are compared as ratios between
//! controllers on the same seed, never against wall-clock thresholds.

#![allow(clippy::unwrap_used)]

use udpchat_bench::bulk;
use udpchat_bench::quic_endpoint::QuicIdentity;
use udpchat_bench::system::System;

/// Goodput of `system` moving `total` bytes at `loss`, seed `seed`; every byte must arrive.
fn goodput(system: System, loss: f64, total: usize, seed: u64) -> f64 {
    let quic = QuicIdentity::generate().unwrap();
    let row = bulk::run(system, loss, total, seed, &quic).unwrap();
    assert_eq!(
        row.delivered, total as u64,
        "{system} at {loss}: {:?}",
        row.note
    );
    assert_eq!(row.note, None, "{system} at {loss}");
    row.goodput_mbps.flatten().unwrap()
}

#[test]
fn the_model_based_controller_keeps_goodput_under_one_percent_random_loss() {
    // NewReno reads each random loss as congestion and sits near the Mathis bound; the model
    // keeps its estimate of the bottleneck rate. Same link, same seed.
    let total = 3_000_000;
    let newreno = goodput(System::UdpchatNewreno, 0.01, total, 1);
    let bbr = goodput(System::UdpchatBbr, 0.01, total, 1);
    assert!(
        bbr >= 5.0 * newreno,
        "bbr {bbr} vs newreno {newreno} Mbit/s"
    );
}

#[test]
fn every_controller_moves_every_byte_at_five_percent_loss() {
    for system in System::CONTROLLERS {
        goodput(system, 0.05, 300_000, 2);
    }
}
