//! [`TunLab`]: what `udpchat lab --real` is handed to run traffic through the TUN relay.
//!
//! It implements the lab's [`TunRunner`] hook: kernel TCP runs ([`crate::kernel_tcp`]), relayed
//! UDP socket pairs for udpchat's own modes with `--tun` ([`TunLab::udp_path`]: the same link,
//! relay and seed derivation as kernel TCP, so every mode crosses the very same relay code), and
//! the SIGINT/SIGTERM notice that ends a sweep cleanly.

use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use tokio::sync::{oneshot, Barrier};
use udpchat_lab::derive_seed;
use udpchat_lab::experiment::kernel::{
    KernelTcpJob, LocalFuture, RunningRelay, TunRunner, TunUdpPath,
};
use udpchat_lab::experiment::metrics::RunMetrics;
use udpchat_lab::experiment::ExperimentError;
use udpchat_lab::{ImpairmentConfig, ImpairmentStats};

use crate::error::NetemError;
use crate::kernel_tcp::experiment_error;
use crate::link::{run_relay, LinkAddresses, NamespaceLink};
use crate::namespace::in_namespace;
use crate::relay::{Direction, Relay};

/// The TUN relay's runner for `udpchat lab --real`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TunLab;

impl TunRunner for TunLab {
    fn kernel_tcp(
        &self,
        job: KernelTcpJob,
        start: Rc<Barrier>,
    ) -> LocalFuture<Result<RunMetrics, ExperimentError>> {
        Box::pin(crate::kernel_tcp::run(job, start))
    }

    fn udp_path(&self, link: &ImpairmentConfig, seed: u64) -> Result<TunUdpPath, ExperimentError> {
        udp_path(link, seed).map_err(experiment_error)
    }

    fn interrupted(&self) -> LocalFuture<()> {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered now, before any namespace exists; waited for later.
        let signals = signal(SignalKind::interrupt())
            .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
        Box::pin(async move {
            match signals {
                Ok((mut interrupt, mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                // Not catching them, the default action still ends the process.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

/// A fresh pair of namespaces joined through the relay, with a UDP socket bound in each (on an
/// ephemeral port) and the relay running as a local task. Must be called within a `LocalSet`.
fn udp_path(link: &ImpairmentConfig, seed: u64) -> Result<TunUdpPath, NetemError> {
    let namespaces = NamespaceLink::create(LinkAddresses::default())?;
    let addresses = namespaces.addresses();
    let bind = |path, address| {
        in_namespace(path, move || {
            let socket = UdpSocket::bind(SocketAddr::from((address, 0)))?;
            socket.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(socket)
        })?
        .map_err(|e| NetemError::io("cannot bind a UDP socket in a namespace", e))
    };
    let a = bind(namespaces.namespace_a().path(), addresses.a)?;
    let b = bind(namespaces.namespace_b().path(), addresses.b)?;
    // The same seed derivation as the proxy and kernel TCP runs: one stream per direction.
    let mut relay = Relay::new(link.clone(), link.clone(), derive_seed(seed, 7));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::task::spawn_local(async move {
        let stop = async {
            let _ = stopped.await;
        };
        let result = run_relay(namespaces.devices(), &mut relay, stop).await;
        (result, relay.stats(Direction::AToB).model, namespaces)
    });
    Ok(TunUdpPath {
        a,
        b,
        relay: Box::new(Running { stop, task }),
    })
}

/// A relay task of [`udp_path`].
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(Result<(), NetemError>, ImpairmentStats, NamespaceLink)>,
}

impl RunningRelay for Running {
    fn finish(self: Box<Self>) -> LocalFuture<Result<ImpairmentStats, ExperimentError>> {
        Box::pin(async move {
            let _ = self.stop.send(());
            let (result, stats, namespaces) = self
                .task
                .await
                .map_err(|e| ExperimentError::Io(format!("the TUN relay task failed: {e}")))?;
            // Removing namespaces runs `ip` and waits: off the thread the other runs measure on
            // (the runtime waits for blocking tasks when it shuts down).
            tokio::task::spawn_blocking(move || drop(namespaces));
            result.map_err(experiment_error)?;
            Ok(stats)
        })
    }
}
