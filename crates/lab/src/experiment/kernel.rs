//! The hook through which `udpchat lab --real` runs traffic through the TUN relay: the kernel's
//! TCP ([`Mode::KernelTcp`]), and with `--tun` udpchat's own modes too.
//!
//! Kernel TCP cannot cross the lab's UDP proxy: its segments must meet the impairment as IP
//! packets, which takes two network namespaces joined through a TUN relay, and root. That lives
//! in the `udpchat-netem` crate, which depends on this one; so this crate only declares what it
//! needs ([`TunRunner`]), and [`super::real`] uses the runner the binary passes in. Without a
//! runner, kernel modes and `--tun` are refused.
//!
//! [`Mode::KernelTcp`]: super::Mode::KernelTcp

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use tokio::sync::Barrier;

use super::config::{ExperimentConfig, KernelCc};
use super::metrics::RunMetrics;
use super::run::ExperimentError;
use crate::impairment::{ImpairmentConfig, ImpairmentStats};

/// What one kernel TCP run needs.
#[derive(Debug, Clone)]
pub struct KernelTcpJob {
    /// The sweep (messages, size, interval).
    pub config: ExperimentConfig,
    /// The link of this point, both directions.
    pub link: ImpairmentConfig,
    /// The congestion control to set on both sockets.
    pub cc: KernelCc,
    /// The run's seed.
    pub seed: u64,
}

/// A local future (runs are local tasks on one thread, as the other real runs).
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Two UDP sockets, one in each of a fresh pair of namespaces joined through the TUN relay
/// (already relaying), for udpchat's own modes with `--tun`.
pub struct TunUdpPath {
    /// A's socket, bound in A's namespace (non-blocking).
    pub a: std::net::UdpSocket,
    /// B's socket, bound in B's namespace (non-blocking).
    pub b: std::net::UdpSocket,
    /// The relay between them.
    pub relay: Box<dyn RunningRelay>,
}

impl std::fmt::Debug for TunUdpPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunUdpPath")
            .field("a", &self.a)
            .field("b", &self.b)
            .finish_non_exhaustive()
    }
}

/// A relay running for one run.
pub trait RunningRelay {
    /// Stops it, removes its namespaces and devices, and returns what the A-to-B direction did.
    fn finish(self: Box<Self>) -> LocalFuture<Result<ImpairmentStats, ExperimentError>>;
}

/// Runs lab traffic through the TUN relay.
pub trait TunRunner {
    /// One kernel TCP run. It prepares everything (namespaces, relay, sockets), then waits on
    /// `start` exactly once, failed or not (every run of the sweep starts its clock together),
    /// then runs.
    fn kernel_tcp(
        &self,
        job: KernelTcpJob,
        start: Rc<Barrier>,
    ) -> LocalFuture<Result<RunMetrics, ExperimentError>>;

    /// A relayed pair of UDP sockets with `link` both ways, seeded from the run's `seed`.
    fn udp_path(&self, link: &ImpairmentConfig, seed: u64) -> Result<TunUdpPath, ExperimentError>;

    /// Completes at SIGINT or SIGTERM, caught from the moment this is called: the sweep then
    /// stops, and dropping its runs removes their namespaces and devices.
    fn interrupted(&self) -> LocalFuture<()>;
}
