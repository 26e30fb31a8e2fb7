//! Running a sweep: every point × mode × seed in the deterministic simulator.
//!
//! Each run is independent and deterministic (its links and endpoints are seeded from the run's
//! seed alone), so the runs are spread over the machine's cores with `std::thread::scope` and
//! their results put back in sweep order: the output does not depend on the number of threads or
//! on which finished first. Endpoints are built inside the worker that runs them, through a
//! factory, which is also how a test swaps in a deliberately broken transport.
//!
//! All runs of one seed share it across points and modes ("common random numbers"): the links'
//! fates for a given datagram sequence are then the same in raw and reliable mode, and each knob
//! draws from its own stream, so curves across loss rates are smooth rather than noisy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use thiserror::Error;
use udpchat_reliable::{Endpoint, RawConfig, RawEndpoint, ReliableEndpoint};

use super::config::{ConfigError, ExperimentConfig, Mode, SweepPoint};
use super::metrics::{RunMetrics, RunRecord};
use crate::impairment::derive_seed;
use crate::sim::{
    Outcome, Scenario, ScheduledMessage, Side, Simulator, StopReason, ADDR_A, ADDR_B,
};
use crate::tcp::{TcpConfig, TcpCongestion, TcpEndpoint, TcpSetupError};

/// A pair of endpoints: A (the sender, at [`crate::sim::ADDR_A`]) and B (at [`ADDR_B`]).
pub type EndpointPair = (Box<dyn Endpoint>, Box<dyn Endpoint>);

/// How long after the last scheduled send a run may go on. Under 30% loss each way a NewReno
/// sender spends most of its time in retransmission timeouts and needs minutes of virtual time to
/// finish a thousand messages; an hour covers the default sweep with room to spare. Reliable
/// endpoints keep each other alive with keepalives, so runs end at this limit, but the clock jumps
/// from event to event, so the idle tail costs only a few hundred steps.
pub const TAIL: Duration = Duration::from_secs(3600);

/// Consecutive timeouts before the lab's reliable endpoints give up (the transport's default is
/// 10). The lab measures what reliability costs on links that stay alive, however lossy; at 30%
/// loss each way a default sender would give up on a live peer in a sizeable fraction of long
/// runs, and the sweep would measure the give-up rule instead of the transport.
pub const PATIENT_RETRIES: u32 = 40;

/// Idle timeout of the lab's reliable endpoints (the default is 30 s), for the same reason.
pub const PATIENT_IDLE: Duration = Duration::from_secs(600);

/// Why a sweep could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExperimentError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Sockets, the runtime or the proxy failed (`--real` only).
    #[error("{0}")]
    Io(String),
    /// A mode that exists only in the simulator was asked to run over real sockets: the `tcp`
    /// modes are smoltcp's segments on the simulator's links (kernel TCP through the same
    /// impairment is a separate path).
    #[error("--real cannot run the {0} mode: it is smoltcp's TCP on the simulator's links (run it without --real)")]
    SimulatorOnly(Mode),
    /// An endpoint could not be built.
    #[error("cannot build the {mode} endpoint: {reason}")]
    Endpoint {
        /// Which mode.
        mode: Mode,
        /// Why.
        reason: String,
    },
}

/// The endpoints `mode` uses in the simulator, seeded from the run's `seed`: the mode's
/// transport with its defaults, except that reliable endpoints are patient
/// ([`PATIENT_RETRIES`], [`PATIENT_IDLE`]).
pub fn endpoints(mode: Mode, seed: u64) -> Result<EndpointPair, ExperimentError> {
    endpoints_at(mode, seed, ADDR_B)
}

/// Like [`endpoints`], with A sending to `a_peer` (B learns A's address from what arrives).
pub fn endpoints_at(
    mode: Mode,
    seed: u64,
    a_peer: std::net::SocketAddr,
) -> Result<EndpointPair, ExperimentError> {
    if let Some(congestion) = mode.tcp_congestion() {
        return tcp_endpoints(mode, congestion, seed, a_peer);
    }
    if mode.is_kernel() {
        return Err(ExperimentError::Endpoint {
            mode,
            reason: "kernel TCP runs only with --real (through the TUN relay, as root)".to_owned(),
        });
    }
    match mode.reliable_config() {
        None => {
            let raw = |nick: &str, peer| {
                Box::new(RawEndpoint::new(RawConfig {
                    nick: nick.to_owned(),
                    peer,
                    ..RawConfig::default()
                })) as Box<dyn Endpoint>
            };
            Ok((raw("a", Some(a_peer)), raw("b", None)))
        }
        Some(config) => {
            let build = |nick: &str, peer, label| {
                let config = udpchat_reliable::ReliableConfig {
                    nick: nick.to_owned(),
                    max_retries: PATIENT_RETRIES,
                    idle_timeout: PATIENT_IDLE,
                    ..config.clone()
                };
                ReliableEndpoint::new(config, peer, derive_seed(seed, label))
                    .map(|e| Box::new(e) as Box<dyn Endpoint>)
                    .map_err(|e| ExperimentError::Endpoint {
                        mode,
                        reason: e.to_string(),
                    })
            };
            // B waits for A's Hello, as a chat started without --peer does.
            Ok((build("a", Some(a_peer), 100)?, build("b", None, 101)?))
        }
    }
}

/// The TCP modes' endpoints: A connects to `a_peer` from [`crate::sim::ADDR_A`], B listens at
/// [`ADDR_B`]; smoltcp's defaults but for the controller and Nagle (off), and no user timeout,
/// so TCP is as patient as the lab's reliable endpoints (it retransmits until the run's end).
fn tcp_endpoints(
    mode: Mode,
    congestion: TcpCongestion,
    seed: u64,
    a_peer: std::net::SocketAddr,
) -> Result<EndpointPair, ExperimentError> {
    let config = |local, nick: &str| TcpConfig {
        nick: nick.to_owned(),
        congestion,
        ..TcpConfig::new(local)
    };
    let refused = |e: TcpSetupError| ExperimentError::Endpoint {
        mode,
        reason: e.to_string(),
    };
    let a = TcpEndpoint::connect(config(ADDR_A, "a"), a_peer, derive_seed(seed, 100))
        .map_err(refused)?;
    let b = TcpEndpoint::listen(config(ADDR_B, "b"), derive_seed(seed, 101)).map_err(refused)?;
    Ok((Box::new(a), Box::new(b)))
}

/// The simulator scenario of one run: A sends `config.messages` messages every
/// `config.interval` over links configured for `point`.
pub fn scenario(
    config: &ExperimentConfig,
    point: &SweepPoint,
    seed: u64,
) -> Result<Scenario, ConfigError> {
    let mut scenario = Scenario::new(seed).links(point.link(&config.link)?);
    scenario.messages = (0..config.messages)
        .map(|i| ScheduledMessage {
            at: config.interval * i,
            from: Side::A,
            text: config.message(i),
        })
        .collect();
    scenario.time_limit = config.interval * config.messages + TAIL;
    scenario.mtu = config.mtu;
    Ok(scenario)
}

/// Runs one point with one mode and one seed, with the endpoints from `make`; returns the
/// simulator's outcome (trace included) and the metrics.
pub fn simulate_with<A: Endpoint, B: Endpoint>(
    config: &ExperimentConfig,
    point: &SweepPoint,
    seed: u64,
    a: A,
    b: B,
) -> Result<(Outcome<A, B>, RunMetrics), ExperimentError> {
    let outcome = Simulator::new(scenario(config, point, seed)?, a, b).run();
    let sender = outcome.a.stats();
    let mut metrics = RunMetrics::compute(RunRecord {
        seed,
        messages: u64::from(config.messages),
        size: config.size,
        interval: config.interval,
        summary: &outcome.summary.a_to_b,
        trace: &outcome.trace,
        sender: &sender,
    });
    metrics.cut_short = outcome.summary.stop == StopReason::TimeLimit
        && metrics.delivered + metrics.lost_reported < metrics.messages;
    Ok((outcome, metrics))
}

/// Every run of a sweep: `runs[p][m][s]` for point `p`, mode `m` and seed `s`, in the orders of
/// [`ExperimentConfig::points`], `config.modes` and [`ExperimentConfig::seed_list`].
pub type SweepRuns = Vec<Vec<Vec<RunMetrics>>>;

/// Runs the whole sweep with endpoints from `make`, on up to `threads` threads (at least one),
/// calling `progress(done, total)` after each run.
pub fn run_sweep_with<F>(
    config: &ExperimentConfig,
    make: F,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<SweepPoint>, SweepRuns), ExperimentError>
where
    F: Fn(Mode, u64) -> Result<EndpointPair, ExperimentError> + Sync,
{
    let points = config.points()?;
    let seeds = config.seed_list();
    let (n_modes, n_seeds) = (config.modes.len(), seeds.len());
    let jobs: Vec<(usize, usize, usize)> = (0..points.len())
        .flat_map(|p| (0..n_modes).flat_map(move |m| (0..n_seeds).map(move |s| (p, m, s))))
        .collect();
    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let results = parallel(total, threads, |index| {
        let (p, m, s) = jobs[index];
        let (mode, seed) = (config.modes[m], seeds[s]);
        let result = make(mode, seed)
            .and_then(|(a, b)| simulate_with(config, &points[p], seed, a, b))
            .map(|(_, metrics)| metrics);
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        result
    });
    let flat = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut flat = flat.into_iter();
    let runs = points
        .iter()
        .map(|_| {
            config
                .modes
                .iter()
                .map(|_| flat.by_ref().take(seeds.len()).collect())
                .collect()
        })
        .collect();
    Ok((points, runs))
}

/// Calls `job(i)` for every `i` in `0..total` on up to `threads` threads (at least one), each
/// taking the next index as it comes free, and returns the results in index order. A panic in a
/// job propagates (the threads are scoped).
pub fn parallel<T: Send>(total: usize, threads: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..total).map(|_| None).collect());
    let worker = || loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= total {
            return;
        }
        let result = job(index);
        if let Ok(mut slots) = slots.lock() {
            slots[index] = Some(result);
        }
    };
    thread::scope(|scope| {
        for _ in 1..threads.clamp(1, total.max(1)) {
            scope.spawn(worker);
        }
        worker();
    });
    // Every slot is filled: a job that panicked has already propagated out of the scope.
    slots
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Runs the whole sweep with each mode's own endpoints, on all available cores.
pub fn run_sweep(
    config: &ExperimentConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<SweepPoint>, SweepRuns), ExperimentError> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    run_sweep_with(config, endpoints, threads, progress)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probability::Probability;

    fn small() -> ExperimentConfig {
        ExperimentConfig {
            losses: vec![Probability::ZERO, Probability::new(0.2).unwrap()],
            messages: 200,
            seeds: 2,
            ..ExperimentConfig::default()
        }
    }

    #[test]
    fn raw_loses_what_the_link_drops_and_reliable_delivers_everything() {
        let (points, runs) = run_sweep(&small(), &|_, _| {}).unwrap();
        assert_eq!(points.len(), 2);
        let raw_clean = &runs[0][0][0];
        assert_eq!(raw_clean.delivered, 200);
        assert_eq!(raw_clean.transmissions_per_message, 1.0);
        let raw_lossy = &runs[1][0][0];
        assert!(raw_lossy.delivered < 200);
        assert!(raw_lossy.delivered > 120, "{raw_lossy:?}");
        for seed_run in &runs[1][1] {
            assert_eq!(seed_run.delivered, 200, "{seed_run:?}");
            assert!(seed_run.transmissions_per_message > 1.0);
            assert!(seed_run.retransmits_fast + seed_run.retransmits_timeout > 0);
        }
        // Latency is at least the link's delay minus its jitter: 20 ms - 5 ms.
        assert!(raw_clean.latency_min_ms.unwrap() >= 15.0);
        // 200 messages of 64 B over the 1.99 s of sends plus one delay: about 51 kbit/s.
        let goodput = raw_clean.goodput_bps.unwrap();
        assert!((50_000.0..52_000.0).contains(&goodput), "{goodput}");
        // The keepalives two idle reliable endpoints exchange until the time limit are not a
        // cost of the messages: a clean link costs one data datagram and about half an ack.
        let reliable_clean = &runs[0][1][0];
        let per_message = reliable_clean.datagrams_per_delivered.unwrap();
        assert!((1.3..1.8).contains(&per_message), "{per_message}");
        assert!(!reliable_clean.cut_short);
    }

    #[test]
    fn results_do_not_depend_on_the_number_of_threads() {
        let config = small();
        let one = run_sweep_with(&config, endpoints, 1, &|_, _| {}).unwrap();
        let two = run_sweep_with(&config, endpoints, 2, &|_, _| {}).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn progress_counts_every_run() {
        let count = AtomicUsize::new(0);
        let last = Mutex::new((0, 0));
        run_sweep(&small(), &|done, total| {
            count.fetch_add(1, Ordering::Relaxed);
            let mut last = last.lock().unwrap();
            *last = (last.0.max(done), total);
        })
        .unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 8);
        assert_eq!(*last.lock().unwrap(), (8, 8));
    }
}
