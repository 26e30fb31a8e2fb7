//! `udpchat lab --real`: the same sweep over real loopback sockets, through the lab's proxy (or,
//! with `--tun`, between two network namespaces through the TUN relay; kernel TCP always goes
//! that way, see [`super::kernel`]).
//!
//! Each run binds two UDP sockets on 127.0.0.1 (A and B) and starts an in-process
//! [`Proxy`] in front of B with the point's impairment both ways, so A's datagrams really cross the
//! kernel twice and wait in real timers. A small loop of our own drives both endpoints (socket →
//! `handle_datagram`, `poll_transmit` → socket, sleep until the next timer or scheduled send),
//! reading the real clock: this is the I/O layer, like the proxy and the chat driver. It records
//! what it sees in the simulator's [`Trace`] format, so the metrics are computed by the very same
//! code as in simulator mode and the columns mean the same thing.
//!
//! Runs are not bit-exact (the operating system schedules them), and they take real time: the
//! messages' schedule plus whatever the transport needs to finish, at most [`REAL_TAIL`] after the
//! last send. All runs of a sweep go concurrently as tasks on one thread; loopback traffic of a
//! few hundred datagrams per second per run is far below what one core can carry. Every run is
//! prepared (sockets, proxy, endpoints) before any starts its clock, so that no run counts the
//! others' preparation as its own connection setup.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use udpchat_reliable::{Endpoint, Event};

use super::config::{ExperimentConfig, KernelCc, Mode, SweepPoint};
use super::kernel::{KernelTcpJob, RunningRelay, TunRunner};
use super::metrics::{RunMetrics, RunRecord};
use super::run::{endpoints_at, ExperimentError, SweepRuns};
use crate::impairment::{derive_seed, ImpairmentConfig, ImpairmentStats};
use crate::proxy::{Proxy, ProxyConfig, ProxyError, ProxyStats};
use crate::sim::{DirectionSummary, PacketSummary, Side, Trace, TraceEntry, TraceEvent};

/// The longest a real run goes on after its last scheduled send. A run cut short reports the
/// messages it had not delivered as not delivered.
pub const REAL_TAIL: Duration = Duration::from_secs(30);

/// How long a raw run waits after its last send for stragglers, beyond the link's worst delay.
const RAW_GRACE: Duration = Duration::from_millis(250);

/// Runs the whole sweep over loopback, every run at once; `progress(done, total)` after each.
/// Kernel TCP modes are refused (they need [`run_sweep_real_with`] and a runner).
pub fn run_sweep_real(
    config: &ExperimentConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<SweepPoint>, SweepRuns), ExperimentError> {
    run_sweep_real_with(config, RealPaths::default(), progress)
}

/// Where `--real` runs go beyond loopback.
#[derive(Clone, Default)]
pub struct RealPaths {
    /// The TUN relay's runner: it runs the [`Mode::KernelTcp`] runs (see [`super::kernel`]), and
    /// with `udp_through_tun` every other mode's link too.
    pub tun: Option<Rc<dyn TunRunner>>,
    /// Run udpchat's own modes between two namespaces through the TUN relay too (`--tun`), so
    /// that every mode crosses the same relay; otherwise over loopback through the proxy.
    pub udp_through_tun: bool,
}

impl std::fmt::Debug for RealPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealPaths")
            .field("tun", &self.tun.is_some())
            .field("udp_through_tun", &self.udp_through_tun)
            .finish()
    }
}

/// Like [`run_sweep_real`], with the TUN relay's runner in `paths` for kernel TCP runs (and,
/// with `udp_through_tun`, every run); they all start together. With a runner, SIGINT or
/// SIGTERM end the sweep with an error, and every run's namespaces and devices are removed.
pub fn run_sweep_real_with(
    config: &ExperimentConfig,
    paths: RealPaths,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<SweepPoint>, SweepRuns), ExperimentError> {
    let points = config.points()?;
    if let Some(&mode) = config.modes.iter().find(|m| m.tcp_congestion().is_some()) {
        return Err(ExperimentError::SimulatorOnly(mode));
    }
    if let Some(mtu) = config.mtu {
        // The proxy forwards any size: a path MTU is the simulator's knob only.
        return Err(ExperimentError::Io(format!(
            "a path MTU ({mtu} bytes) needs the simulator; real sockets carry what loopback does"
        )));
    }
    let seeds = config.seed_list();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| io_error("cannot start the async runtime", &e))?;
    // Endpoints are not `Send` (nor need they be): every run is a local task on this one thread.
    let local = tokio::task::LocalSet::new();
    let runs = points.len() * config.modes.len() * seeds.len();
    let start = Rc::new(tokio::sync::Barrier::new(runs));
    let flat = local.block_on(&runtime, async {
        // Caught before any run creates a namespace; the runs stay local tasks of `local`, so
        // returning early drops them, and their guards remove what they made.
        let interrupted = paths.tun.as_ref().map(|tun| tun.interrupted());
        let all = all_runs(config, &points, &seeds, &paths, start, progress);
        match interrupted {
            None => all.await,
            Some(interrupted) => tokio::select! {
                results = all => results,
                () = interrupted => Err(ExperimentError::Io(
                    "interrupted (every run's namespaces and TUN devices were removed)".to_owned(),
                )),
            },
        }
    })?;
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

/// Spawns every run as a local task and collects their metrics in sweep order.
async fn all_runs(
    config: &ExperimentConfig,
    points: &[SweepPoint],
    seeds: &[u64],
    paths: &RealPaths,
    start: Rc<tokio::sync::Barrier>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<RunMetrics>, ExperimentError> {
    let mut handles = Vec::new();
    for point in points {
        for &mode in &config.modes {
            for &seed in seeds {
                let (config, point, start) = (config.clone(), *point, start.clone());
                let paths = paths.clone();
                handles.push(tokio::task::spawn_local(async move {
                    match mode {
                        Mode::KernelTcp(cc) => {
                            run_kernel(&config, &point, cc, seed, start, paths.tun).await
                        }
                        _ => run_real(&config, &point, mode, seed, &start, &paths).await,
                    }
                }));
            }
        }
    }
    let total = handles.len();
    let mut results = Vec::with_capacity(total);
    for (done, handle) in handles.into_iter().enumerate() {
        let result = handle.await.map_err(|e| ExperimentError::Endpoint {
            mode: config.modes[0],
            reason: format!("a real run failed: {e}"),
        })?;
        results.push(result?);
        progress(done + 1, total);
    }
    Ok(results)
}

/// One kernel TCP run, handed to `tun`; without a runner (or with a bad point) it still waits
/// on `start` once, so the other runs are not held up for ever.
async fn run_kernel(
    config: &ExperimentConfig,
    point: &SweepPoint,
    cc: KernelCc,
    seed: u64,
    start: Rc<tokio::sync::Barrier>,
    tun: Option<Rc<dyn TunRunner>>,
) -> Result<RunMetrics, ExperimentError> {
    let link = point.link(&config.link);
    match (tun, link) {
        (Some(tun), Ok(link)) => {
            let job = KernelTcpJob {
                config: config.clone(),
                link,
                cc,
                seed,
            };
            tun.kernel_tcp(job, start).await
        }
        (None, _) => {
            start.wait().await;
            Err(ExperimentError::Endpoint {
                mode: Mode::KernelTcp(cc),
                reason: "kernel TCP runs only from the udpchat binary, through its TUN relay"
                    .to_owned(),
            })
        }
        (Some(_), Err(e)) => {
            start.wait().await;
            Err(e.into())
        }
    }
}

fn io_error(what: &str, e: &dyn std::fmt::Display) -> ExperimentError {
    ExperimentError::Io(format!("{what}: {e}"))
}

/// What the loop records, in the simulator's terms.
struct Recorder {
    start: Instant,
    trace: Trace,
    next_datagram: u64,
    sent_at: Vec<Option<Duration>>,
    first_delivery: Vec<Option<Duration>>,
    duplicated: u64,
    reordered: u64,
    highest: Option<usize>,
    acked: u64,
    index: HashMap<String, usize>,
}

impl Recorder {
    /// A recorder for the run's messages, `texts`, whose clock starts now.
    fn new(texts: &[String]) -> Recorder {
        let messages = texts.len();
        Recorder {
            start: Instant::now(),
            trace: Trace::default(),
            next_datagram: 0,
            sent_at: vec![None; messages],
            first_delivery: vec![None; messages],
            duplicated: 0,
            reordered: 0,
            highest: None,
            acked: 0,
            index: texts
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, t)| (t, i))
                .collect(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn push(&mut self, event: TraceEvent) {
        let at = self.elapsed();
        self.trace.entries.push(TraceEntry { at, event });
    }

    fn transmit(&mut self, side: Side, payload: &[u8]) {
        let datagram = self.next_datagram;
        self.next_datagram += 1;
        self.push(TraceEvent::Transmit {
            side,
            datagram,
            len: payload.len(),
            packet: PacketSummary::of(payload),
        });
    }

    fn event(&mut self, side: Side, event: Event) {
        match (&side, &event) {
            (Side::B, Event::Message { text, .. }) => {
                let at = self.elapsed();
                if let Some(&i) = self.index.get(text) {
                    if self.first_delivery[i].is_some() {
                        self.duplicated += 1;
                    } else {
                        self.first_delivery[i] = Some(at);
                        match self.highest {
                            Some(h) if i < h => self.reordered += 1,
                            _ => self.highest = Some(i),
                        }
                    }
                }
            }
            (Side::A, Event::Delivered { .. }) => self.acked += 1,
            // The session is established: connection setup ends, and latency counts from here
            // for the messages written before it (see `super::metrics`).
            (Side::A, Event::Lost { .. } | Event::Peer { .. }) => {}
            _ => return,
        }
        self.push(TraceEvent::App { side, event });
    }

    /// Records that message `i` is handed to A now, as the simulator's trace would.
    fn send(&mut self, i: usize, text: &str, result: Result<u64, String>) {
        let at = self.elapsed();
        // Like the simulator's summary, latencies cover the messages A accepted.
        if result.is_ok() {
            self.sent_at[i] = Some(at);
        }
        let event = TraceEvent::Send {
            side: Side::A,
            text: text.to_owned(),
            result,
        };
        self.trace.entries.push(TraceEntry { at, event });
    }

    fn delivered(&self) -> usize {
        self.first_delivery.iter().flatten().count()
    }

    /// Each accepted message's latency, send to first delivery, in sending order; `None` if it
    /// never arrived.
    fn latencies(&self) -> Vec<Option<Duration>> {
        self.sent_at
            .iter()
            .zip(&self.first_delivery)
            .filter_map(|(s, d)| s.map(|s| d.map(|d| d.saturating_sub(s))))
            .collect()
    }
}

/// The proxy in front of B, relaying as a local task until told to stop.
struct RunningProxy {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<ProxyStats, ProxyError>>,
}

impl RunningProxy {
    /// Starts a proxy on loopback to `to`, impairing both ways with `link`.
    async fn start(
        link: &ImpairmentConfig,
        seed: u64,
        to: SocketAddr,
    ) -> Result<RunningProxy, ExperimentError> {
        let proxy = Proxy::bind(ProxyConfig {
            up: link.clone(),
            down: link.clone(),
            seed: derive_seed(seed, 7),
            stats_interval: None,
            ..ProxyConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), to)
        })
        .await
        .map_err(|e| io_error("cannot start the proxy", &e))?;
        let addr = proxy
            .local_addr()
            .map_err(|e| io_error("no address for the proxy", &e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::task::spawn_local(proxy.run(
            async {
                let _ = stopped.await;
            },
            |_| {},
        ));
        Ok(RunningProxy { addr, stop, task })
    }

    /// Stops the proxy and returns what its up direction (A to B) did.
    async fn finish(self) -> Result<ImpairmentStats, ExperimentError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(stats)) => Ok(stats.up.model),
            Ok(Err(e)) => Err(io_error("the proxy failed", &e)),
            Err(e) => Err(io_error("the proxy task failed", &e)),
        }
    }
}

/// What impairs one run's link: the proxy on loopback, or the TUN relay between namespaces.
enum LinkRelay {
    Proxy(RunningProxy),
    Tun(Box<dyn RunningRelay>),
}

impl LinkRelay {
    /// Stops it and returns what the A-to-B direction did.
    async fn finish(self) -> Result<ImpairmentStats, ExperimentError> {
        match self {
            LinkRelay::Proxy(proxy) => proxy.finish().await,
            LinkRelay::Tun(relay) => relay.finish().await,
        }
    }
}

/// One side of a real run: its endpoint, its socket and a buffer to receive into.
struct Peer {
    endpoint: Box<dyn Endpoint>,
    socket: UdpSocket,
    side: Side,
    buf: Vec<u8>,
}

impl Peer {
    /// Sends everything the endpoint has to send, and records it.
    async fn send_all(&mut self, now: Instant, rec: &mut Recorder) {
        while let Some(t) = self.endpoint.poll_transmit_owned(now) {
            rec.transmit(self.side, &t.payload);
            // A failed send is a lost datagram, as UDP would have it; the loop goes on.
            let _ = self.socket.send_to(&t.payload, t.destination).await;
        }
    }

    /// Records the endpoint's events.
    fn take_events(&mut self, rec: &mut Recorder) {
        while let Some(event) = self.endpoint.poll_event() {
            rec.event(self.side, event);
        }
    }

    /// Hands the endpoint its timeout if it is due.
    fn handle_due_timeout(&mut self, now: Instant) {
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
    }
}

/// When a run sends and when it stops waiting.
struct Schedule {
    start: Instant,
    interval: Duration,
    messages: usize,
    /// The end of a reliable run that has not finished by then (it is cut short).
    deadline: Instant,
    /// When a raw run stops waiting for stragglers.
    raw_end: Instant,
}

impl Schedule {
    fn new(config: &ExperimentConfig, link: &ImpairmentConfig, start: Instant) -> Schedule {
        let last_send = start + config.interval * config.messages.saturating_sub(1);
        Schedule {
            start,
            interval: config.interval,
            messages: config.messages as usize,
            deadline: last_send + REAL_TAIL,
            raw_end: last_send + link.delay + link.jitter + RAW_GRACE,
        }
    }

    /// When message `next` is due, if there is one left.
    fn due(&self, next: usize) -> Option<Instant> {
        (next < self.messages).then(|| self.start + self.interval * next as u32)
    }
}

/// What one run needs before its clock starts.
struct Prepared {
    link: ImpairmentConfig,
    relay: LinkRelay,
    a: Peer,
    b: Peer,
    texts: Vec<String>,
}

/// Binds the sockets, starts the proxy (or the TUN relay, with `--tun`) and builds the endpoints
/// of one run.
async fn prepare(
    config: &ExperimentConfig,
    point: &SweepPoint,
    mode: Mode,
    seed: u64,
    paths: &RealPaths,
) -> Result<Prepared, ExperimentError> {
    let link = point.link(&config.link)?;
    let (socket_a, socket_b, relay, a_peer) = if paths.udp_through_tun {
        let tun = paths.tun.as_ref().ok_or_else(|| {
            ExperimentError::Io("--tun needs the udpchat binary's TUN relay".to_owned())
        })?;
        let path = tun.udp_path(&link, seed)?;
        let register = |socket, what: &'static str| {
            UdpSocket::from_std(socket).map_err(|e| io_error(what, &e))
        };
        let socket_a = register(path.a, "cannot register A's socket")?;
        let socket_b = register(path.b, "cannot register B's socket")?;
        let addr_b = socket_b
            .local_addr()
            .map_err(|e| io_error("no address for B", &e))?;
        (socket_a, socket_b, LinkRelay::Tun(path.relay), addr_b)
    } else {
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let bind = |what: &'static str| async move {
            UdpSocket::bind(local).await.map_err(|e| io_error(what, &e))
        };
        let socket_b = bind("cannot bind B's socket").await?;
        let socket_a = bind("cannot bind A's socket").await?;
        let addr_b = socket_b
            .local_addr()
            .map_err(|e| io_error("no address for B", &e))?;
        let proxy = RunningProxy::start(&link, seed, addr_b).await?;
        let to = proxy.addr;
        (socket_a, socket_b, LinkRelay::Proxy(proxy), to)
    };
    let (a, b) = endpoints_at(mode, seed, a_peer)?;
    let peer = |endpoint, socket, side| Peer {
        endpoint,
        socket,
        side,
        buf: vec![0u8; 65_536],
    };
    Ok(Prepared {
        link,
        relay,
        a: peer(a, socket_a, Side::A),
        b: peer(b, socket_b, Side::B),
        texts: (0..config.messages).map(|i| config.message(i)).collect(),
    })
}

/// One run over loopback. Every run of the sweep is prepared first and then they all start
/// together (`start`): all runs share one thread, so a run whose clock started while the others
/// were still binding sockets and building endpoints would charge their setup to its handshake
/// (a hundred milliseconds and more of "connection setup" on a clean loopback link, in a debug
/// build with a dozen runs).
async fn run_real(
    config: &ExperimentConfig,
    point: &SweepPoint,
    mode: Mode,
    seed: u64,
    start: &tokio::sync::Barrier,
    paths: &RealPaths,
) -> Result<RunMetrics, ExperimentError> {
    let prepared = prepare(config, point, mode, seed, paths).await;
    // Every run reaches the barrier exactly once, failed or not, so none waits forever.
    start.wait().await;
    let Prepared {
        link,
        relay,
        mut a,
        mut b,
        texts,
    } = prepared?;
    let mut rec = Recorder::new(&texts);
    let schedule = Schedule::new(config, &link, rec.start);
    let cut_short = drive(&mut a, &mut b, &texts, &schedule, mode, &mut rec).await;
    let link_stats = relay.finish().await?;
    Ok(run_metrics(config, seed, &rec, link_stats, &a, cut_short))
}

/// Drives both sides until the run is over: every message delivered (and, in reliable modes,
/// acknowledged), or its time is up. Returns true if a reliable run was cut short.
async fn drive(
    a: &mut Peer,
    b: &mut Peer,
    texts: &[String],
    schedule: &Schedule,
    mode: Mode,
    rec: &mut Recorder,
) -> bool {
    let messages = texts.len();
    let mut next = 0usize;
    loop {
        let now = Instant::now();
        // Events first: the session established (or a message delivered) by the datagram just
        // handled is recorded before what the endpoints send in answer, as in the simulator.
        a.take_events(rec);
        b.take_events(rec);
        a.send_all(now, rec).await;
        b.send_all(now, rec).await;
        a.take_events(rec);
        b.take_events(rec);
        let all_sent = next == messages;
        let finished = if mode == Mode::Raw {
            all_sent && (rec.delivered() == messages || now >= schedule.raw_end)
        } else {
            all_sent && rec.delivered() == messages && rec.acked >= messages as u64
        };
        if finished {
            return false;
        }
        if now >= schedule.deadline {
            return mode != Mode::Raw;
        }
        let wake = [
            schedule.due(next),
            a.endpoint.poll_timeout(),
            b.endpoint.poll_timeout(),
            Some(schedule.deadline),
        ]
        .into_iter()
        .flatten()
        .chain((mode == Mode::Raw).then_some(schedule.raw_end))
        .min()
        .unwrap_or(schedule.deadline);
        tokio::select! {
            received = a.socket.recv_from(&mut a.buf) => {
                if let Ok((len, from)) = received {
                    a.endpoint.handle_datagram(Instant::now(), from, &a.buf[..len]);
                }
            }
            received = b.socket.recv_from(&mut b.buf) => {
                if let Ok((len, from)) = received {
                    b.endpoint.handle_datagram(Instant::now(), from, &b.buf[..len]);
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
        }
        let now = Instant::now();
        a.handle_due_timeout(now);
        b.handle_due_timeout(now);
        while schedule.due(next).is_some_and(|due| due <= now) {
            // A refused message is simply never delivered; it counts against the ratio.
            let result = a.endpoint.send(now, &texts[next]);
            let result = result.map(|id| id.0).map_err(|e| e.to_string());
            rec.send(next, &texts[next], result);
            next += 1;
        }
    }
}

/// The run's metrics, computed by the simulator's code from what the loop recorded.
fn run_metrics(
    config: &ExperimentConfig,
    seed: u64,
    rec: &Recorder,
    link: ImpairmentStats,
    a: &Peer,
    cut_short: bool,
) -> RunMetrics {
    let messages = config.messages as usize;
    let latencies = rec.latencies();
    let delivered = latencies.iter().flatten().count() as u64;
    let summary = DirectionSummary {
        sent: messages as u64,
        delivered,
        lost: messages as u64 - delivered,
        duplicated: rec.duplicated,
        reordered: rec.reordered,
        latencies,
        link,
        ..DirectionSummary::default()
    };
    let sender = a.endpoint.stats();
    let mut metrics = RunMetrics::compute(RunRecord {
        seed,
        messages: messages as u64,
        size: config.size,
        interval: config.interval,
        summary: &summary,
        trace: &rec.trace,
        sender: &sender,
    });
    metrics.cut_short = cut_short && metrics.delivered + metrics.lost_reported < metrics.messages;
    metrics
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probability::Probability;

    #[test]
    fn kernel_tcp_and_tun_paths_are_refused_without_the_relays_runner() {
        let config = ExperimentConfig {
            losses: vec![Probability::ZERO],
            messages: 5,
            seeds: 1,
            modes: vec![Mode::KernelTcp(KernelCc::Reno)],
            ..ExperimentConfig::default()
        };
        let err = run_sweep_real(&config, &|_, _| {}).unwrap_err();
        assert!(err.to_string().contains("TUN relay"), "{err}");
        let udp_through_tun = RealPaths {
            tun: None,
            udp_through_tun: true,
        };
        let config = ExperimentConfig {
            modes: vec![Mode::Raw],
            ..config
        };
        let err = run_sweep_real_with(&config, udp_through_tun, &|_, _| {}).unwrap_err();
        assert!(err.to_string().contains("--tun"), "{err}");
    }

    #[test]
    fn a_real_sweep_over_loopback_delivers_like_the_simulator() {
        let config = ExperimentConfig {
            losses: vec![Probability::ZERO, Probability::new(0.2).unwrap()],
            messages: 60,
            interval: Duration::from_millis(5),
            seeds: 1,
            ..ExperimentConfig::default()
        };
        let (points, runs) = run_sweep_real(&config, &|_, _| {}).unwrap();
        assert_eq!(points.len(), 2);
        let (raw_clean, reliable_clean) = (&runs[0][0][0], &runs[0][1][0]);
        assert_eq!(raw_clean.delivered, 60, "{raw_clean:?}");
        assert_eq!(reliable_clean.delivered, 60, "{reliable_clean:?}");
        // The proxy's delay is real: nothing arrives sooner than delay - jitter.
        assert!(raw_clean.latency_min_ms.unwrap() >= 15.0, "{raw_clean:?}");
        let (raw_lossy, reliable_lossy) = (&runs[1][0][0], &runs[1][1][0]);
        // At 20% loss, all 60 surviving has probability 0.8^60 ≈ 1.5e-6.
        assert!(raw_lossy.delivered < 60, "{raw_lossy:?}");
        assert_eq!(reliable_lossy.delivered, 60, "{reliable_lossy:?}");
        assert!(reliable_lossy.data_transmissions > 60);
        // Arrivals at the receiving endpoint are not seen here: no head-of-line figure rather
        // than a false zero.
        assert_eq!(reliable_lossy.hol_blocked, None);
    }
}
