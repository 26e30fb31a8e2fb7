//! [`Plan`]: which workloads run at which sizes, and running them into a [`Report`].
//!
//! The full sizes are the (1,000 chat round trips, 10 MB bulk transfers, 200,000
//! loopback messages; 200,000 messages each way through the simulator for `sim`); `--quick` shrinks each so that everything finishes in well under a minute
//! on two cores in a release build, keeping every link and setting the same.

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use crate::loopback::LoopbackError;
use crate::quic_endpoint::{QuicIdentity, QuicSetupError};
use crate::report::{Report, ResultRow, Versions, Workload};
use crate::system::{BuildError, System};
use crate::{bulk, chat, dead_peer, fairness, loopback, simulator};

/// Why a run could not finish.
#[derive(Debug, Error)]
pub enum RunError {
    /// QUIC's certificate or TLS configuration.
    #[error(transparent)]
    Quic(#[from] QuicSetupError),
    /// A system's endpoints could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The loopback workload failed (sockets, threads).
    #[error(transparent)]
    Loopback(#[from] LoopbackError),
}

/// Sizes of the workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sizes {
    /// Chat round trips per link.
    pub chat_rounds: usize,
    /// Bulk bytes per transfer.
    pub bulk_bytes: usize,
    /// When the dead-peer link goes dark.
    pub dark_after: Duration,
    /// Loopback messages per run.
    pub loopback_messages: u64,
    /// Messages each way in the `sim` workload (one datagram each).
    pub sim_messages: u32,
    /// Virtual time of one fairness run (shares are measured over its last three quarters).
    pub fairness_run: Duration,
}

impl Sizes {
    /// The sizes.
    pub const FULL: Sizes = Sizes {
        chat_rounds: 1000,
        bulk_bytes: 10_000_000,
        dark_after: Duration::from_secs(10),
        loopback_messages: 200_000,
        sim_messages: 200_000,
        fairness_run: Duration::from_secs(40),
    };
    /// Small enough for a quick look (and for CI).
    pub const QUICK: Sizes = Sizes {
        chat_rounds: 200,
        bulk_bytes: 1_000_000,
        dark_after: Duration::from_secs(5),
        loopback_messages: 20_000,
        sim_messages: 50_000,
        fairness_run: Duration::from_secs(15),
    };
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The workloads, in order.
    pub workloads: Vec<Workload>,
    /// How big.
    pub sizes: Sizes,
    /// True when `sizes` are the quick ones (reported).
    pub quick: bool,
    /// Seed of every link (and of the endpoints' own randomness).
    pub seed: u64,
    /// Simulated systems to run, of those each workload has ([`System::for_workload`]); raw
    /// UDP always runs on loopback, as the ceiling.
    pub systems: Vec<System>,
}

impl Plan {
    /// Runs the plan. `progress` hears about each row as it is made (the binary prints to
    /// stderr, so long runs show life).
    pub fn run(&self, mut progress: impl FnMut(&ResultRow)) -> Result<Report, RunError> {
        let quic = QuicIdentity::generate()?;
        let mut results = Vec::new();
        let mut push = |row: ResultRow, results: &mut Vec<ResultRow>| {
            progress(&row);
            results.push(row);
        };
        for workload in &self.workloads {
            let systems: Vec<System> = System::for_workload(*workload)
                .into_iter()
                .filter(|system| self.systems.contains(system))
                .collect();
            match workload {
                Workload::Chat => {
                    for link in chat::links() {
                        for &system in &systems {
                            let row =
                                chat::run(system, link, self.sizes.chat_rounds, self.seed, &quic)?;
                            push(row, &mut results);
                        }
                    }
                }
                Workload::Bulk => {
                    for loss in bulk::LOSSES {
                        for &system in &systems {
                            let row =
                                bulk::run(system, loss, self.sizes.bulk_bytes, self.seed, &quic)?;
                            push(row, &mut results);
                        }
                    }
                }
                Workload::DeadPeer => {
                    for &system in &systems {
                        let row = dead_peer::run(system, self.sizes.dark_after, self.seed, &quic)?;
                        push(row, &mut results);
                    }
                }
                Workload::Loopback => {
                    for row in loopback::run(self.sizes.loopback_messages, self.seed) {
                        push(row?, &mut results);
                    }
                }
                Workload::Sim => push(simulator::run(self.sizes.sim_messages), &mut results),
                Workload::Fairness => {
                    for pair in fairness::pairs(&systems) {
                        let run = self.sizes.fairness_run;
                        let row = fairness::run(pair, run, self.seed, &quic)?;
                        push(row, &mut results);
                    }
                }
            }
        }
        Ok(Report {
            versions: Versions::built(),
            quick: self.quick,
            seed: self.seed,
            results,
        })
    }
}
