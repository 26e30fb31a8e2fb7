//! The hook through which `udpchat lab --real` runs the kernel's TCP ([`Mode::KernelTcp`]).
//!
//! Kernel TCP cannot cross the lab's UDP proxy: its segments must meet the impairment as IP
//! packets, which takes two network namespaces joined through a TUN relay, and root. That lives
//! in the `udpchat-netem` crate, which depends on this one; so this crate only declares what a
//! run needs ([`KernelTcpJob`]) and what runs it ([`KernelTcpRunner`]), and [`super::real`] hands
//! each kernel run to the runner the binary passes in. Without a runner, kernel modes are refused.
//!
//! [`Mode::KernelTcp`]: super::Mode::KernelTcp

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use tokio::sync::Barrier;

use super::config::{ExperimentConfig, KernelCc};
use super::metrics::RunMetrics;
use super::run::ExperimentError;
use crate::impairment::ImpairmentConfig;

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

/// The future of one kernel TCP run (runs are local tasks on one thread, as the other real runs).
pub type KernelTcpRun = Pin<Box<dyn Future<Output = Result<RunMetrics, ExperimentError>>>>;

/// Runs kernel TCP through an impaired link.
pub trait KernelTcpRunner {
    /// One run. It prepares everything (namespaces, relay, sockets), then waits on `start`
    /// exactly once, failed or not (every run of the sweep starts its clock together), then runs.
    fn run(&self, job: KernelTcpJob, start: Rc<Barrier>) -> KernelTcpRun;
}
