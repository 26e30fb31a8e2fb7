//! The UDP impairment proxy: a userspace `tc netem` between any two UDP programs.
//!
//! Datagrams that a client sends to the listen address go through the *up* [`Impairment`] and on
//! to the forward address; replies come back through the *down* one to that client. Each client
//! gets its own upstream socket (as a NAT would), so the forward side sees one address per
//! client and several clients can share the proxy.
//!
//! The impairment model stays pure: this module only does I/O, timing and the bounds that keep a
//! long-running proxy alive whatever arrives:
//! - **clients**: at most `max_clients` upstream sockets are open (default 256, well below the
//!   usual limit of 1,024 open files); a new client beyond that makes the proxy forget the one
//!   heard from least recently, closing its socket at once. If the system refuses a socket anyway
//!   (a lower file limit), the proxy forgets the idlest client, tries once more, and from then
//!   on keeps no more clients than it then holds. Datagrams
//!   still delayed for a forgotten client are dropped when they leave the queue
//!   (`dropped_forgotten`): sending them from a fresh socket would show the forward side a
//!   client it has never heard of. Replies for it are still delivered (its address is known).
//! - **memory**: what the delay queues hold is bounded in bytes, per direction
//!   (`max_held_bytes`, default 32 MiB) and in all (`max_held_bytes_total`, default 48 MiB); a
//!   datagram that does not fit is dropped before the impairment sees it (`dropped_memory`), so
//!   it takes no random draw, and the seed gives the same fates as long as the bound is never
//!   reached. The model's own `limit` still bounds the number of datagrams.
//! - **failures**: a socket operation that fails (opening an upstream socket, a send, a receive
//!   on one client's socket) is counted and reported, at most once per kind every
//!   [`PROBLEM_REPORT_INTERVAL`], and the proxy goes on. Only the listen socket failing again
//!   and again ([`LISTEN_FAILURES_FATAL`] times in a row) ends it.
//!
//! With a capture ([`Proxy::capture`]) every datagram is written to a pcap file twice, as
//! `tcpdump -i lo` would see it: when it reaches the proxy (its comment says what the impairment
//! does with it: dropped and why, delayed by how much, duplicated, corrupted) and when it leaves
//! ("delivered", from the proxy's socket on that side). Both records carry the direction and the
//! datagram's offer number (`up #17`), so the two can be matched. The same events are logged at
//! debug level under the target [`crate::wire::TARGET`] (`udpchat proxy -v`), one line each.
//!
//! One task does everything: it owns the impairments, the listen socket and every upstream
//! socket, and sleeps until a socket is readable or the next datagram is due. Owning the sockets
//! in one place is what makes forgetting a client close its socket at once (a task per client
//! would close it only when the runtime gets round to dropping the task, which under a flood of
//! new clients it may not do before the file limit is reached). Time comes from the real clock
//! here (this is the I/O layer), and randomness from the seed. Every socket moves datagrams in
//! batches ([`crate::batch_socket`], as the chat's driver does): a receive takes all that one
//! `recvmmsg` returns, offering each datagram to the impairment in arrival order, and datagrams
//! due at once through one socket to one address leave in one GSO send, in release order.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::Poll;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;
use tokio::net::UdpSocket;

use crate::batch_socket::{BatchSocket, RecvBatch, SendBatch};
use crate::capture::CaptureFile;
use crate::impairment::{
    derive_seed, Fate, Impairment, ImpairmentConfig, ImpairmentStats, Released, Verdict,
};
use crate::pcap::{Datagram, PacketFate};
use crate::sim::verdict_words;
use crate::wire::{describe, TARGET};

/// Default most clients (upstream sockets) at once: a quarter of the usual 1,024-file limit.
pub const DEFAULT_MAX_CLIENTS: usize = 256;
/// Default most bytes held per direction: 32 MiB.
pub const DEFAULT_MAX_HELD_BYTES: u64 = 32 << 20;
/// Default most bytes held by both directions together: 48 MiB.
pub const DEFAULT_MAX_HELD_BYTES_TOTAL: u64 = 48 << 20;
/// A kind of failure is reported at most once in this interval (the counters have the totals).
pub const PROBLEM_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Consecutive failures of the listen socket after which the proxy gives up: a socket that fails
/// this often without one success in between is broken, not unlucky.
pub const LISTEN_FAILURES_FATAL: u32 = 1000;

/// What the proxy does.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Where clients send.
    pub listen: SocketAddr,
    /// Where their datagrams go.
    pub forward: SocketAddr,
    /// Client → forward.
    pub up: ImpairmentConfig,
    /// Forward → client.
    pub down: ImpairmentConfig,
    /// Seed of both directions (each derives its own stream).
    pub seed: u64,
    /// Most clients remembered (upstream sockets open) at once. Default
    /// [`DEFAULT_MAX_CLIENTS`]; 0 is taken as 1. If the system refuses a socket below that, the
    /// proxy lowers it to the number it holds.
    pub max_clients: usize,
    /// Most bytes of datagrams held in one direction's queue. Default
    /// [`DEFAULT_MAX_HELD_BYTES`].
    pub max_held_bytes: u64,
    /// Most bytes of datagrams held by both directions together. Default
    /// [`DEFAULT_MAX_HELD_BYTES_TOTAL`].
    pub max_held_bytes_total: u64,
    /// How often `run` reports counters, if at all. Default every 10 s.
    pub stats_interval: Option<Duration>,
}

impl ProxyConfig {
    /// A proxy with these addresses, perfect links, seed 0 and the documented defaults.
    pub fn new(listen: SocketAddr, forward: SocketAddr) -> ProxyConfig {
        ProxyConfig {
            listen,
            forward,
            up: ImpairmentConfig::default(),
            down: ImpairmentConfig::default(),
            seed: 0,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
            max_held_bytes_total: DEFAULT_MAX_HELD_BYTES_TOTAL,
            stats_interval: Some(Duration::from_secs(10)),
        }
    }
}

/// What can go wrong.
#[derive(Debug, Error)]
pub enum ProxyError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The listen socket failed [`LISTEN_FAILURES_FATAL`] times in a row.
    #[error("the listen socket keeps failing: {0}")]
    Io(#[from] io::Error),
}

/// The counters of one direction, in datagrams. Every datagram received, and every duplicate
/// the impairment made, ends as exactly one of: forwarded, dropped (for one of the `dropped_*`
/// causes), a send error, or still held:
/// `received + duplicated = forwarded + dropped() + send_errors + held`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectionStats {
    /// Datagrams that arrived at the proxy in this direction.
    pub received: u64,
    /// Datagrams sent on (copies included).
    pub forwarded: u64,
    /// Dropped by the impairment's independent loss.
    pub dropped_loss: u64,
    /// Dropped by the impairment's burst loss.
    pub dropped_burst: u64,
    /// Dropped because the rate limiter's queue was full.
    pub dropped_queue: u64,
    /// Dropped because the impairment already held `limit` datagrams.
    pub dropped_limit: u64,
    /// Dropped because holding them would pass the proxy's byte bound.
    pub dropped_memory: u64,
    /// Dropped when leaving the delay queue because their client had been forgotten (up only).
    pub dropped_forgotten: u64,
    /// Datagrams lost because the system refused to send them, or (up) to open a socket for
    /// their client.
    pub send_errors: u64,
    /// Extra copies the impairment made.
    pub duplicated: u64,
    /// Datagrams released after one offered later (the receiver sees them arrive late).
    pub reordered: u64,
    /// Copies with bits flipped.
    pub corrupted: u64,
    /// Datagrams held (delayed) right now.
    pub held: u64,
    /// Bytes held right now.
    pub held_bytes: u64,
    /// What the impairment model itself counted (of the datagrams offered to it), as the
    /// simulator reports it.
    pub model: ImpairmentStats,
}

impl DirectionStats {
    /// All drops, whatever the cause (send errors apart).
    pub fn dropped(&self) -> u64 {
        self.dropped_loss
            + self.dropped_burst
            + self.dropped_queue
            + self.dropped_limit
            + self.dropped_memory
            + self.dropped_forgotten
    }
}

impl fmt::Display for DirectionStats {
    /// One line of `key=value` pairs, stable for scripts and tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} forwarded={} dropped_loss={} dropped_burst={} dropped_queue={} \
             dropped_limit={} dropped_memory={} dropped_forgotten={} send_errors={} \
             duplicated={} reordered={} corrupted={} held={}",
            self.received,
            self.forwarded,
            self.dropped_loss,
            self.dropped_burst,
            self.dropped_queue,
            self.dropped_limit,
            self.dropped_memory,
            self.dropped_forgotten,
            self.send_errors,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.held
        )
    }
}

/// The proxy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Client → forward.
    pub up: DirectionStats,
    /// Forward → client.
    pub down: DirectionStats,
    /// Clients seen since the start.
    pub clients: u64,
    /// Clients remembered (upstream sockets open) right now.
    pub clients_now: u64,
    /// Clients forgotten to make room for newer ones (or because their socket failed).
    pub clients_forgotten: u64,
    /// The bound on clients remembered at once (lowered if the system refused a socket).
    pub max_clients: u64,
    /// Failed receives (on the listen socket or a client's upstream socket).
    pub recv_errors: u64,
    /// The bound on bytes held per direction.
    pub max_held_bytes: u64,
    /// The bound on bytes held in all.
    pub max_held_bytes_total: u64,
}

impl ProxyStats {
    /// What the counters mean, in one line (printed with the final counters).
    pub const LEGEND: &'static str = "every datagram received, and every duplicate, is \
        forwarded (sent on), dropped_* (on purpose: by the impairment, or by the proxy's bounds), \
        a send_error (the system refused it: lost), or still held (delayed)";
}

impl fmt::Display for ProxyStats {
    /// Three lines: `up   (client -> forward): key=value ...`, `down (forward -> client): ...`,
    /// then the clients and the memory held against their bounds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "up   (client -> forward): {}", self.up)?;
        writeln!(f, "down (forward -> client): {}", self.down)?;
        write!(
            f,
            "clients={} now={} forgotten={} (at most {} at once) recv_errors={} held_bytes={} \
             (at most {} per direction, {} in all)",
            self.clients,
            self.clients_now,
            self.clients_forgotten,
            self.max_clients,
            self.recv_errors,
            self.up.held_bytes + self.down.held_bytes,
            format_size(self.max_held_bytes),
            format_size(self.max_held_bytes_total)
        )
    }
}

/// A byte count as a person writes it: `32 MiB`, `500 kB` or `1500 bytes` (the largest unit
/// that divides it exactly, binary first).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("kB", 1_000),
    ];
    UNITS
        .iter()
        .find(|&&(_, size)| bytes >= size && bytes % size == 0)
        .map_or_else(
            || format!("{bytes} bytes"),
            |&(unit, size)| format!("{} {unit}", bytes / size),
        )
}

/// What [`Proxy::run`] reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum ProxyReport<'a> {
    /// The counters, every `stats_interval`.
    Counters(&'a ProxyStats),
    /// A failure the proxy survived (rate-limited: see [`PROBLEM_REPORT_INTERVAL`]).
    Problem(&'a ProxyProblem),
}

/// The kinds of failure the proxy survives; each is reported on its own schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The system refused an upstream socket; the idlest client was forgotten to make room.
    SocketLimit,
    /// No upstream socket at all for a new client: its datagram is lost.
    NoSocket,
    /// Sending towards the forward address failed.
    SendUp,
    /// Sending to a client failed.
    SendDown,
    /// Receiving on a client's upstream socket failed.
    RecvUpstream,
    /// Receiving on the listen socket failed.
    RecvListen,
}

/// A failure the proxy survived, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProblem {
    /// Which kind.
    pub kind: ProblemKind,
    /// One sentence: what failed, why, and what became of the datagram.
    pub message: String,
    /// Failures of this kind not reported since the last report of it.
    pub unreported: u64,
}

impl fmt::Display for ProxyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.unreported > 0 {
            write!(
                f,
                " ({} more like this since the last such warning)",
                self.unreported
            )?;
        }
        Ok(())
    }
}

/// Decides which failures to report: the first of each kind at once, then at most one per kind
/// every `interval`, carrying the number left unreported in between. Pure: time is passed in.
#[derive(Debug)]
struct ProblemLog {
    interval: Duration,
    /// Per kind: when it was last reported, and how many occurred since.
    kinds: HashMap<ProblemKind, (Instant, u64)>,
}

impl ProblemLog {
    fn new(interval: Duration) -> ProblemLog {
        ProblemLog {
            interval,
            kinds: HashMap::new(),
        }
    }

    /// Records one failure of `kind` at `now`; returns `Some(unreported)` if it is to be
    /// reported now, with the count of those left unreported since the last report.
    fn record(&mut self, kind: ProblemKind, now: Instant) -> Option<u64> {
        match self.kinds.get_mut(&kind) {
            None => {
                self.kinds.insert(kind, (now, 0));
                Some(0)
            }
            Some((last, unreported)) => {
                if now.saturating_duration_since(*last) >= self.interval {
                    let count = *unreported;
                    *last = now;
                    *unreported = 0;
                    Some(count)
                } else {
                    *unreported += 1;
                    None
                }
            }
        }
    }
}

/// Bytes held by the two delay queues, against the bounds per direction and in all.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeldBytes {
    per_direction: u64,
    total: u64,
    held: [u64; 2],
}

/// A direction, as an index into [`HeldBytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Up = 0,
    Down = 1,
}

impl HeldBytes {
    fn new(per_direction: u64, total: u64) -> HeldBytes {
        HeldBytes {
            per_direction,
            total,
            held: [0, 0],
        }
    }

    /// True if `len` more bytes in direction `way` stay within both bounds.
    fn admits(&self, way: Way, len: u64) -> bool {
        let [up, down] = self.held;
        self.held[way as usize].saturating_add(len) <= self.per_direction
            && up.saturating_add(down).saturating_add(len) <= self.total
    }

    fn add(&mut self, way: Way, len: u64) {
        self.held[way as usize] = self.held[way as usize].saturating_add(len);
    }

    fn remove(&mut self, way: Way, len: u64) {
        self.held[way as usize] = self.held[way as usize].saturating_sub(len);
    }

    fn held(&self, way: Way) -> u64 {
        self.held[way as usize]
    }
}

impl Way {
    /// As counters and captures name it.
    fn name(self) -> &'static str {
        match self {
            Way::Up => "up",
            Way::Down => "down",
        }
    }
}

/// One client, and the socket that speaks for it towards the forward address.
#[derive(Debug)]
struct Client<S> {
    addr: SocketAddr,
    socket: S,
    last_heard: Instant,
}

/// The clients remembered, at most `max` at once; generic over the socket so the bookkeeping is
/// tested without sockets. Ids are never reused, so a datagram delayed for a forgotten client
/// cannot go out through the socket of the one that took its place.
#[derive(Debug)]
struct Clients<S> {
    by_id: HashMap<u64, Client<S>>,
    by_addr: HashMap<SocketAddr, u64>,
    max: usize,
    next_id: u64,
    forgotten: u64,
}

impl<S> Clients<S> {
    fn new(max: usize) -> Clients<S> {
        Clients {
            by_id: HashMap::new(),
            by_addr: HashMap::new(),
            max: max.max(1),
            next_id: 0,
            forgotten: 0,
        }
    }

    /// The id of the client at `addr`, if remembered, noting that it was heard at `now`.
    fn touch(&mut self, addr: SocketAddr, now: Instant) -> Option<u64> {
        let id = *self.by_addr.get(&addr)?;
        if let Some(client) = self.by_id.get_mut(&id) {
            client.last_heard = now;
        }
        Some(id)
    }

    fn get(&self, id: u64) -> Option<&Client<S>> {
        self.by_id.get(&id)
    }

    fn is_full(&self) -> bool {
        self.by_id.len() >= self.max
    }

    /// Forgets the client heard from least recently (dropping its socket); returns its id.
    fn forget_idlest(&mut self) -> Option<u64> {
        let idlest = self
            .by_id
            .iter()
            .min_by_key(|(&id, c)| (c.last_heard, id))
            .map(|(&id, _)| id)?;
        self.forget(idlest);
        Some(idlest)
    }

    /// Forgets one client (dropping its socket).
    fn forget(&mut self, id: u64) {
        if let Some(client) = self.by_id.remove(&id) {
            self.by_addr.remove(&client.addr);
            self.forgotten += 1;
        }
    }

    /// Remembers a new client, forgetting the idlest first if the table is full.
    fn insert(&mut self, addr: SocketAddr, socket: S, now: Instant) -> u64 {
        if self.is_full() {
            self.forget_idlest();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_id.insert(
            id,
            Client {
                addr,
                socket,
                last_heard: now,
            },
        );
        self.by_addr.insert(addr, id);
        id
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// One direction: the impairment, and what the proxy itself counts around it.
#[derive(Debug)]
struct Direction<T> {
    model: Impairment<T>,
    dropped_memory: u64,
    dropped_forgotten: u64,
    /// Released by the model, then refused by the system.
    send_failed: u64,
    /// Never offered: no upstream socket could be opened for the client (up only).
    no_socket: u64,
}

impl<T: Clone> Direction<T> {
    fn new(config: ImpairmentConfig, seed: u64) -> Direction<T> {
        Direction {
            model: Impairment::new(config, seed),
            dropped_memory: 0,
            dropped_forgotten: 0,
            send_failed: 0,
            no_socket: 0,
        }
    }

    /// Offers a datagram to the model if the byte bound has room for it (and returns the
    /// model's verdict); counts it otherwise. A duplicate copy is admitted with its original, so
    /// the bound can be passed by at most one datagram (64 KiB).
    fn offer(
        &mut self,
        budget: &mut HeldBytes,
        way: Way,
        now: Instant,
        tag: T,
        bytes: &[u8],
    ) -> Option<Verdict> {
        let len = bytes.len() as u64;
        if !budget.admits(way, len) {
            self.dropped_memory += 1;
            return None;
        }
        let verdict = self.model.offer(now, tag, bytes.to_vec());
        let held = [Some(verdict.original), verdict.duplicate]
            .into_iter()
            .flatten()
            .filter(|fate| matches!(fate, Fate::Scheduled { .. }))
            .count() as u64;
        budget.add(way, len * held);
        Some(verdict)
    }

    fn stats(&self, held_bytes: u64) -> DirectionStats {
        let model: &ImpairmentStats = self.model.stats();
        DirectionStats {
            received: model.received + self.dropped_memory + self.no_socket,
            forwarded: model
                .forwarded
                .saturating_sub(self.dropped_forgotten + self.send_failed),
            dropped_loss: model.dropped_loss,
            dropped_burst: model.dropped_burst,
            dropped_queue: model.dropped_queue,
            dropped_limit: model.dropped_limit,
            dropped_memory: self.dropped_memory,
            dropped_forgotten: self.dropped_forgotten,
            send_errors: self.send_failed + self.no_socket,
            duplicated: model.duplicated,
            reordered: model.reordered,
            corrupted: model.corrupted,
            held: self.model.len() as u64,
            held_bytes,
            model: model.clone(),
        }
    }
}

/// Everything the relaying task owns.
#[derive(Debug)]
struct Relay {
    listen: BatchSocket,
    forward: SocketAddr,
    /// Tagged with the client's id: a forgotten client's datagrams must not go out.
    up: Direction<u64>,
    /// Tagged with the client's address: replies reach it even if it was forgotten meanwhile.
    down: Direction<SocketAddr>,
    budget: HeldBytes,
    clients: Clients<BatchSocket>,
    /// The datagrams of one send (one GSO batch), reused for every send.
    out: SendBatch,
    recv_errors: u64,
    /// Failures of the listen socket since its last success.
    listen_failures: u32,
    log: ProblemLog,
    /// Problems to report, drained by the loop after each event.
    problems: Vec<ProxyProblem>,
    /// Where every datagram is written, if anywhere.
    capture: Option<CaptureFile>,
    /// The listen socket's address, as captures show it.
    listen_addr: SocketAddr,
}

impl Relay {
    fn new(config: &ProxyConfig, listen: BatchSocket, capture: Option<CaptureFile>) -> Relay {
        let listen_addr = listen.socket().local_addr().unwrap_or(config.listen);
        Relay {
            out: listen.send_batch(),
            capture,
            listen_addr,
            listen,
            forward: config.forward,
            up: Direction::new(config.up.clone(), derive_seed(config.seed, 0)),
            down: Direction::new(config.down.clone(), derive_seed(config.seed, 1)),
            budget: HeldBytes::new(config.max_held_bytes, config.max_held_bytes_total),
            clients: Clients::new(config.max_clients),
            recv_errors: 0,
            listen_failures: 0,
            log: ProblemLog::new(PROBLEM_REPORT_INTERVAL),
            problems: Vec::new(),
        }
    }

    fn stats(&self) -> ProxyStats {
        ProxyStats {
            up: self.up.stats(self.budget.held(Way::Up)),
            down: self.down.stats(self.budget.held(Way::Down)),
            clients: self.clients.next_id,
            clients_now: self.clients.len() as u64,
            clients_forgotten: self.clients.forgotten,
            max_clients: self.clients.max as u64,
            recv_errors: self.recv_errors,
            max_held_bytes: self.budget.per_direction,
            max_held_bytes_total: self.budget.total,
        }
    }

    /// Notes a failure of `kind`; builds its message only if it is to be reported now.
    fn problem(&mut self, kind: ProblemKind, now: Instant, message: impl FnOnce() -> String) {
        if let Some(unreported) = self.log.record(kind, now) {
            self.problems.push(ProxyProblem {
                kind,
                message: message(),
                unreported,
            });
        }
    }

    /// True if datagrams are captured or traced: only then are their words worked out.
    fn watched(&self) -> bool {
        self.capture.is_some() || tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
    }

    /// Captures and traces one datagram seen at `now` going `way`.
    #[allow(clippy::too_many_arguments)] // one call per place a datagram is seen, all named
    fn saw(
        &self,
        now: Instant,
        way: Way,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
        fate: Option<PacketFate>,
        note: &str,
    ) {
        let datagram = Datagram {
            time: Duration::ZERO,
            from,
            to,
            payload: bytes,
            fate,
            note: Some(note),
        };
        if let Some(capture) = &self.capture {
            capture.record(now, &datagram);
        }
        tracing::debug!(
            target: TARGET,
            "{way} {from} -> {to} {len} B, {words}: {packet}",
            way = way.name(),
            len = bytes.len(),
            words = datagram.comment().unwrap_or_default(),
            packet = describe(bytes),
        );
    }

    /// Captures and traces what the impairment decided for a datagram that arrived going `way`.
    fn saw_arrival(
        &self,
        now: Instant,
        way: Way,
        (from, to): (SocketAddr, SocketAddr),
        bytes: &[u8],
        verdict: Option<Verdict>,
    ) {
        match verdict {
            Some(v) => {
                let label = format!("{} #{} received", way.name(), v.index);
                let (fate, note) = verdict_words(now, &label, &v);
                self.saw(now, way, from, to, bytes, Some(fate), &note);
            }
            None => self.saw(
                now,
                way,
                from,
                to,
                bytes,
                None,
                "dropped (the proxy's memory bound, --max-held)",
            ),
        }
    }

    /// A datagram from a client: find or open its upstream socket, then offer it up.
    async fn on_client_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        let id = match self.clients.touch(from, now) {
            Some(id) => id,
            None => match self.open_client(from, now).await {
                Some(id) => id,
                None => {
                    self.up.no_socket += 1;
                    if self.watched() {
                        let note = "dropped (no socket towards --forward could be opened)";
                        self.saw(now, Way::Up, from, self.listen_addr, bytes, None, note);
                    }
                    return;
                }
            },
        };
        let verdict = self.up.offer(&mut self.budget, Way::Up, now, id, bytes);
        if self.watched() {
            let ends = (from, self.listen_addr);
            self.saw_arrival(now, Way::Up, ends, bytes, verdict);
        }
    }

    /// Opens an upstream socket for a new client. When the system has no file to spare (its
    /// file limit is below `max_clients`, or other programs use the files), the idlest client
    /// is forgotten to make room and the proxy tries once more; if that works, the bound on
    /// clients comes down to what the system allowed, so later clients cost no failed call.
    /// Any other failure loses this one datagram, and nobody else's socket.
    async fn open_client(&mut self, from: SocketAddr, now: Instant) -> Option<u64> {
        if self.clients.is_full() {
            // Forget first, so its file is closed before a new one is asked for.
            self.clients.forget_idlest();
        }
        let mut error = match upstream_socket(self.forward).await {
            Ok(socket) => return Some(self.clients.insert(from, socket, now)),
            Err(e) => e,
        };
        let forward = self.forward;
        if is_file_limit(&error) && self.clients.forget_idlest().is_some() {
            match upstream_socket(forward).await {
                Ok(socket) => {
                    let id = self.clients.insert(from, socket, now);
                    let (was, now_max) = (self.clients.max, self.clients.len());
                    self.clients.max = now_max;
                    self.problem(ProblemKind::SocketLimit, now, || {
                        format!(
                            "cannot open a socket towards {forward} for a new client ({error}): \
                             forgot the idlest client to make room, and keeps at most \
                             {now_max} clients from now on instead of {was}"
                        )
                    });
                    return Some(id);
                }
                Err(e) => error = e,
            }
        }
        self.problem(ProblemKind::NoSocket, now, || {
            format!(
                "cannot open a socket towards {forward} for client {from} ({error}): its \
                 datagram is lost"
            )
        });
        None
    }

    /// What one client's upstream socket received: replies to offer down, or a failure.
    fn on_upstream_recv(
        &mut self,
        id: u64,
        received: io::Result<()>,
        batch: &RecvBatch,
        now: Instant,
    ) {
        match received {
            // The socket is connected: every datagram is from the forward address.
            Ok(()) => {
                for (_, bytes) in batch.datagrams() {
                    self.on_upstream_datagram(id, bytes, now);
                }
            }
            // Nobody listening at the forward address (yet): an ICMP error for an earlier
            // send, already counted there.
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                let Some(addr) = self.clients.get(id).map(|c| c.addr) else {
                    return;
                };
                // A socket that failed may fail again at once: forget it rather than spin on
                // it; the client's next datagram opens a fresh one.
                self.recv_errors += 1;
                self.clients.forget(id);
                self.problem(ProblemKind::RecvUpstream, now, || {
                    format!(
                        "cannot receive on the socket of client {addr} ({e}): forgot the \
                         client, its next datagram opens a new socket"
                    )
                });
            }
        }
    }

    /// One reply from the forward address on client `id`'s socket: offered down to the client.
    fn on_upstream_datagram(&mut self, id: u64, bytes: &[u8], now: Instant) {
        let Some(addr) = self.clients.get(id).map(|c| c.addr) else {
            return;
        };
        let verdict = self
            .down
            .offer(&mut self.budget, Way::Down, now, addr, bytes);
        if self.watched() {
            let local = self.upstream_addr(id);
            self.saw_arrival(now, Way::Down, (self.forward, local), bytes, verdict);
        }
    }

    /// A failed receive on the listen socket: survived, unless it keeps failing.
    fn listen_failed(&mut self, e: io::Error, now: Instant) -> Result<(), ProxyError> {
        // An ICMP "port unreachable" for an earlier reply surfaces here on some systems; it
        // concerns one client, not the proxy.
        if is_transient(&e) {
            return Ok(());
        }
        self.recv_errors += 1;
        self.listen_failures += 1;
        if self.listen_failures >= LISTEN_FAILURES_FATAL {
            return Err(ProxyError::Io(e));
        }
        self.problem(ProblemKind::RecvListen, now, || {
            format!("cannot receive on the listen socket ({e})")
        });
        Ok(())
    }

    /// The address of client `id`'s socket towards the forward address, as captures show it.
    fn upstream_addr(&self, id: u64) -> SocketAddr {
        let unknown = SocketAddr::new(self.listen_addr.ip(), 0);
        self.clients
            .get(id)
            .and_then(|c| c.socket.socket().local_addr().ok())
            .unwrap_or(unknown)
    }

    /// Captures and traces a datagram leaving going `way` (`sent`: whether the system took it).
    fn saw_departure(
        &self,
        now: Instant,
        way: Way,
        (from, to): (SocketAddr, SocketAddr),
        released: &Released<impl Sized>,
        sent: Result<(), &str>,
    ) {
        let mut note = format!("{} #{} sent on", way.name(), released.index);
        if released.late {
            note.push_str(", late (after one that arrived later)");
        }
        match sent {
            Ok(()) => self.saw(
                now,
                way,
                from,
                to,
                &released.bytes,
                Some(PacketFate::Delivered),
                &note,
            ),
            Err(why) => {
                let note = format!("lost: {why}; {note}");
                self.saw(now, way, from, to, &released.bytes, None, &note);
            }
        }
    }

    /// Sends every datagram whose time has come, both ways, in batches: a run of datagrams
    /// through one socket to one address goes out in one GSO send where the system has it.
    async fn release_due(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(released) = self.up.model.poll(now) {
            self.budget.remove(Way::Up, released.bytes.len() as u64);
            due.push(released);
        }
        self.release_up(now, &due).await;
        let mut due = Vec::new();
        while let Some(released) = self.down.model.poll(now) {
            self.budget.remove(Way::Down, released.bytes.len() as u64);
            due.push(released);
        }
        self.release_down(now, &due).await;
    }

    /// Sends `due` (in release order) through each client's socket towards the forward address.
    async fn release_up(&mut self, now: Instant, due: &[Released<u64>]) {
        let watched = self.watched();
        let mut rest = due;
        while let Some(first) = rest.first() {
            let id = first.tag;
            // Only worked out when watched: it asks the system for the socket's address.
            let ends = watched.then(|| (self.upstream_addr(id), self.forward));
            let Some(client) = self.clients.get(id) else {
                let run = rest.iter().take_while(|r| r.tag == id).count();
                for released in &rest[..run] {
                    self.up.dropped_forgotten += 1;
                    if let Some(ends) = ends {
                        let why = "its client was forgotten (dropped_forgotten)";
                        self.saw_departure(now, Way::Up, ends, released, Err(why));
                    }
                }
                rest = &rest[run..];
                continue;
            };
            self.out.set_max_segments(client.socket.max_segments());
            let run = fill(&mut self.out, self.forward, rest);
            let result = client.socket.send(&mut self.out).await;
            let (sent, later) = rest.split_at(run);
            rest = later;
            if let Some(ends) = ends {
                for released in sent {
                    let why = result.as_ref().err().map(|_| REFUSED);
                    self.saw_departure(now, Way::Up, ends, released, why.map_or(Ok(()), Err));
                }
            }
            if let Err(e) = result {
                self.up.send_failed += sent.len() as u64;
                let forward = self.forward;
                self.problem(ProblemKind::SendUp, now, || {
                    format!("cannot send to {forward} ({e}): the datagram is lost")
                });
            }
        }
    }

    /// Sends `due` (in release order) through the listen socket to each client.
    async fn release_down(&mut self, now: Instant, due: &[Released<SocketAddr>]) {
        let watched = self.watched();
        self.out.set_max_segments(self.listen.max_segments());
        let mut rest = due;
        while let Some(first) = rest.first() {
            let to = first.tag;
            let run = fill(&mut self.out, to, rest);
            let result = self.listen.send(&mut self.out).await;
            let (sent, later) = rest.split_at(run);
            rest = later;
            if watched {
                let ends = (self.listen_addr, to);
                for released in sent {
                    let why = result.as_ref().err().map(|_| REFUSED);
                    self.saw_departure(now, Way::Down, ends, released, why.map_or(Ok(()), Err));
                }
            }
            if let Err(e) = result {
                self.down.send_failed += sent.len() as u64;
                self.problem(ProblemKind::SendDown, now, || {
                    format!("cannot send to client {to} ({e}): the datagram is lost")
                });
            }
        }
    }
}

/// How a capture names a datagram the system refused to send.
const REFUSED: &str = "the system refused to send it";

/// Puts the leading datagrams of `due` that can go out together (the first one's tag, GSO's
/// rules) into the emptied `batch`, addressed to `to`; returns how many (at least one).
fn fill<T: PartialEq>(batch: &mut SendBatch, to: SocketAddr, due: &[Released<T>]) -> usize {
    batch.clear();
    let Some(first) = due.first() else {
        return 0;
    };
    due.iter()
        .take_while(|r| r.tag == first.tag && batch.push(to, &r.bytes))
        .count()
}

/// A bound proxy, ready to run.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    listen: UdpSocket,
    capture: Option<CaptureFile>,
}

impl Proxy {
    /// Binds the listen address.
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let listen = UdpSocket::bind(config.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: config.listen,
                source,
            })?;
        Ok(Proxy {
            config,
            listen,
            capture: None,
        })
    }

    /// Writes every datagram, both ways, with its fate, to `capture` (see the module
    /// documentation).
    pub fn capture(mut self, capture: CaptureFile) -> Proxy {
        self.capture = Some(capture);
        self
    }

    /// The address actually bound (with the real port if the config said port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ProxyError> {
        Ok(self.listen.local_addr()?)
    }

    /// Relays until `shutdown` completes, calling `report` with the counters every
    /// `stats_interval` and with each failure it survives (rate-limited); returns the final
    /// counters (datagrams still held at shutdown are discarded, and counted as `held`).
    pub async fn run<F, R>(self, shutdown: F, mut report: R) -> Result<ProxyStats, ProxyError>
    where
        F: Future<Output = ()>,
        R: FnMut(ProxyReport<'_>),
    {
        let Proxy {
            config,
            listen,
            capture,
        } = self;
        let listen = BatchSocket::new(listen)?;
        // One batch per source: both receives are pending at once in the select below.
        let mut from_clients = listen.recv_batch();
        let mut from_forward = listen.recv_batch();
        let mut relay = Relay::new(&config, listen, capture);
        let mut ticker = config.stats_interval.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        // Which client socket is polled first, turned each time round so that one busy client
        // cannot starve the others.
        let mut turn = 0usize;
        tokio::pin!(shutdown);

        loop {
            let wake = [
                relay.up.model.next_release(),
                relay.down.model.next_release(),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
            turn = turn.wrapping_add(1);
            tokio::select! {
                () = &mut shutdown => break,
                received = relay.listen.recv(&mut from_clients) => match received {
                    Ok(()) => {
                        relay.listen_failures = 0;
                        let now = Instant::now();
                        for (from, bytes) in from_clients.datagrams() {
                            relay.on_client_datagram(from, bytes, now).await;
                        }
                    }
                    Err(e) => relay.listen_failed(e, Instant::now())?,
                },
                (id, received) = recv_any(&relay.clients, &mut from_forward, turn) => {
                    relay.on_upstream_recv(id, received, &from_forward, Instant::now());
                }
                () = sleep_until(wake), if wake.is_some() => {}
                _ = tick(&mut ticker), if ticker.is_some() => {
                    report(ProxyReport::Counters(&relay.stats()));
                }
            }
            relay.release_due(Instant::now()).await;
            for problem in relay.problems.drain(..) {
                report(ProxyReport::Problem(&problem));
            }
        }
        Ok(relay.stats())
    }
}

/// Opens a socket connected to `forward`, for one client.
async fn upstream_socket(forward: SocketAddr) -> io::Result<BatchSocket> {
    let local: SocketAddr = match forward {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(forward).await?;
    BatchSocket::connected(socket, forward)
}

/// The next datagram (or error) on any client's upstream socket, with the client's id. Polls
/// every socket, starting at a different one each call (`turn`); each socket keeps the task's
/// waker, so the task wakes when any becomes readable. Never completes with no clients.
fn recv_any<'a>(
    clients: &'a Clients<BatchSocket>,
    batch: &'a mut RecvBatch,
    turn: usize,
) -> impl Future<Output = (u64, io::Result<()>)> + 'a {
    std::future::poll_fn(move |cx| {
        let n = clients.by_id.len();
        if n == 0 {
            return Poll::Pending;
        }
        for (&id, client) in clients.by_id.iter().cycle().skip(turn % n).take(n) {
            if let Poll::Ready(received) = client.socket.poll_recv(cx, batch) {
                return Poll::Ready((id, received));
            }
        }
        Poll::Pending
    })
}

/// True if `e` says the process (EMFILE) or the system (ENFILE) has no file to spare: the case
/// where closing one client's socket makes room for another. `io::ErrorKind` has no stable kind
/// for it, hence the raw codes (the same on Linux, macOS and the BSDs; Winsock's WSAEMFILE).
fn is_file_limit(e: &io::Error) -> bool {
    if cfg!(windows) {
        e.raw_os_error() == Some(10_024)
    } else {
        matches!(e.raw_os_error(), Some(23 | 24))
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

async fn sleep_until(wake: Option<tokio::time::Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probability::Probability;
    use std::net::UdpSocket as StdSocket;
    use tokio::task::JoinHandle;

    /// Receives with a deadline, so a broken relay fails the test instead of hanging it.
    async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
        tokio::time::timeout(Duration::from_secs(10), socket.recv_from(buf))
            .await
            .expect("no datagram within 10 s")
            .unwrap()
    }

    fn loopback() -> SocketAddr {
        (Ipv4Addr::LOCALHOST, 0).into()
    }

    fn addr(port: u16) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, port).into()
    }

    /// Runs a proxy in the background; returns its address and a handle to stop it.
    async fn start(
        config: ProxyConfig,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<ProxyStats>,
    ) {
        let (addr, stop, handle, _) = start_watched(config).await;
        (addr, stop, handle)
    }

    /// As [`start`], also returning every counters report as it is made.
    async fn start_watched(
        config: ProxyConfig,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<ProxyStats>,
        tokio::sync::mpsc::UnboundedReceiver<ProxyStats>,
    ) {
        let proxy = Proxy::bind(config).await.unwrap();
        let addr = proxy.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (reports, watched) = tokio::sync::mpsc::unbounded_channel();
        let handle = tokio::spawn(async move {
            proxy
                .run(
                    async {
                        let _ = stopped.await;
                    },
                    move |report| {
                        if let ProxyReport::Counters(stats) = report {
                            let _ = reports.send(stats.clone());
                        }
                    },
                )
                .await
                .unwrap()
        });
        (addr, stop, handle, watched)
    }

    /// Waits (10 s at most) for a counters report that satisfies `done`.
    async fn wait_for(
        reports: &mut tokio::sync::mpsc::UnboundedReceiver<ProxyStats>,
        done: impl Fn(&ProxyStats) -> bool,
    ) -> ProxyStats {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let stats = reports.recv().await.unwrap();
                if done(&stats) {
                    return stats;
                }
            }
        })
        .await
        .expect("no such report within 10 s")
    }

    /// The promise of [`DirectionStats`]: every datagram and duplicate is accounted for once.
    fn assert_accounted(d: &DirectionStats) {
        assert_eq!(
            d.received + d.duplicated,
            d.forwarded + d.dropped() + d.send_errors + d.held,
            "{d}"
        );
    }

    #[tokio::test]
    async fn relays_both_ways_and_counts() {
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut config = ProxyConfig::new(loopback(), server.local_addr().unwrap());
        config.up.duplicate = Probability::ONE;
        config.stats_interval = None;
        let (proxy, stop, handle) = start(config).await;
        let client = UdpSocket::bind(loopback()).await.unwrap();
        client.send_to(b"ping", proxy).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, upstream) = recv(&server, &mut buf).await;
        assert_eq!(&buf[..n], b"ping");
        let (n, again) = recv(&server, &mut buf).await;
        assert_eq!((&buf[..n], again), (&b"ping"[..], upstream), "duplicated");
        server.send_to(b"pong", upstream).await.unwrap();
        let (n, from) = recv(&client, &mut buf).await;
        assert_eq!((&buf[..n], from), (&b"pong"[..], proxy));
        stop.send(()).unwrap();
        let stats = handle.await.unwrap();
        assert_eq!(
            (stats.up.received, stats.up.forwarded, stats.up.duplicated),
            (1, 2, 1)
        );
        assert_eq!((stats.down.received, stats.down.forwarded), (1, 1));
        assert_eq!(stats.clients, 1);
        assert_accounted(&stats.up);
        assert_accounted(&stats.down);
    }

    #[tokio::test]
    async fn each_client_gets_its_own_upstream_address() {
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut config = ProxyConfig::new(loopback(), server.local_addr().unwrap());
        config.stats_interval = None;
        let (proxy, stop, handle) = start(config).await;
        let c1 = StdSocket::bind(loopback()).unwrap();
        let c2 = StdSocket::bind(loopback()).unwrap();
        c1.send_to(b"one", proxy).unwrap();
        let mut buf = [0u8; 64];
        let (_, up1) = recv(&server, &mut buf).await;
        c2.send_to(b"two", proxy).unwrap();
        let (n, up2) = recv(&server, &mut buf).await;
        assert_eq!(&buf[..n], b"two");
        assert_ne!(up1, up2);
        stop.send(()).unwrap();
        assert_eq!(handle.await.unwrap().clients, 2);
    }

    #[tokio::test]
    async fn the_quietest_client_is_forgotten_when_the_table_is_full() {
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut config = ProxyConfig::new(loopback(), server.local_addr().unwrap());
        config.stats_interval = None;
        config.max_clients = 1;
        let (proxy, stop, handle) = start(config).await;
        let c1 = StdSocket::bind(loopback()).unwrap();
        let c2 = StdSocket::bind(loopback()).unwrap();
        let mut buf = [0u8; 64];
        c1.send_to(b"1", proxy).unwrap();
        let (_, first) = recv(&server, &mut buf).await;
        c2.send_to(b"2", proxy).unwrap();
        recv(&server, &mut buf).await;
        // Client 1 was forgotten to make room: it comes back as a new client, with a new socket.
        c1.send_to(b"1", proxy).unwrap();
        let (_, again) = recv(&server, &mut buf).await;
        assert_ne!(first, again);
        stop.send(()).unwrap();
        let stats = handle.await.unwrap();
        assert_eq!(
            (stats.clients, stats.clients_now, stats.clients_forgotten),
            (3, 1, 2)
        );
    }

    #[tokio::test]
    async fn datagrams_beyond_the_byte_bound_are_dropped_and_counted() {
        const SIZE: usize = 60_000;
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut config = ProxyConfig::new(loopback(), server.local_addr().unwrap());
        // Nothing leaves during the test: everything accepted stays held.
        config.up.delay = Duration::from_secs(3600);
        config.max_held_bytes = 3 * SIZE as u64;
        config.stats_interval = Some(Duration::from_millis(10));
        let (proxy, stop, handle, mut reports) = start_watched(config).await;
        let client = StdSocket::bind(loopback()).unwrap();
        let big = vec![7u8; SIZE];
        for sent in 1..=10u64 {
            client.send_to(&big, proxy).unwrap();
            // One at a time, so no datagram is lost in the socket buffers before the proxy.
            wait_for(&mut reports, |s| s.up.received == sent).await;
        }
        stop.send(()).unwrap();
        let stats = handle.await.unwrap();
        assert_eq!(stats.up.received, 10);
        assert_eq!((stats.up.held, stats.up.dropped_memory), (3, 7));
        assert_eq!(stats.up.held_bytes, 3 * SIZE as u64);
        assert_eq!(stats.up.model.received, 3, "dropped before the impairment");
        assert_accounted(&stats.up);
        let text = stats.to_string();
        assert!(text.contains("dropped_memory=7"), "{text}");
        assert!(text.contains(&format!("held_bytes={}", 3 * SIZE)), "{text}");
    }

    /// A relay driven by hand, with virtual time: nothing here depends on the machine's speed.
    async fn relay(server: &UdpSocket, config: impl FnOnce(&mut ProxyConfig)) -> Relay {
        let mut c = ProxyConfig::new(loopback(), server.local_addr().unwrap());
        config(&mut c);
        let listen = UdpSocket::bind(loopback()).await.unwrap();
        Relay::new(&c, BatchSocket::new(listen).unwrap(), None)
    }

    #[tokio::test]
    async fn a_datagram_delayed_for_a_forgotten_client_is_dropped_and_counted() {
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut relay = relay(&server, |c| {
            c.max_clients = 1;
            c.up.delay = Duration::from_secs(1);
        })
        .await;
        let t0 = Instant::now();
        relay.on_client_datagram(addr(1001), b"one", t0).await;
        // The second client takes the only place while the first one's datagram is delayed.
        relay.on_client_datagram(addr(1002), b"two", t0).await;
        assert_eq!(relay.clients.len(), 1);
        let second = relay.clients.touch(addr(1002), t0).unwrap();
        let second_upstream = relay
            .clients
            .get(second)
            .unwrap()
            .socket
            .socket()
            .local_addr()
            .unwrap();
        relay.release_due(t0 + Duration::from_secs(1)).await;
        let mut buf = [0u8; 64];
        let (n, from) = recv(&server, &mut buf).await;
        assert_eq!(
            (&buf[..n], from.port()),
            (&b"two"[..], second_upstream.port())
        );
        let stats = relay.stats();
        assert_eq!(
            (
                stats.up.forwarded,
                stats.up.dropped_forgotten,
                stats.up.held
            ),
            (1, 1, 0)
        );
        assert_eq!((stats.clients, stats.clients_forgotten), (2, 1));
        assert_eq!(stats.up.held_bytes, 0, "released bytes are no longer held");
        assert_accounted(&stats.up);
    }

    #[tokio::test]
    async fn a_flood_of_new_clients_keeps_at_most_max_clients_sockets() {
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut relay = relay(&server, |c| c.max_clients = 8).await;
        let t0 = Instant::now();
        for port in 2000..2500u16 {
            relay.on_client_datagram(addr(port), b"x", t0).await;
            assert!(relay.clients.len() <= 8);
        }
        let stats = relay.stats();
        assert_eq!((stats.clients, stats.clients_now), (500, 8));
        assert_eq!(stats.clients_forgotten, 492);
        assert_eq!(stats.up.send_errors, 0);
    }

    #[tokio::test]
    async fn replies_reach_a_client_even_after_it_was_forgotten() {
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut relay = relay(&server, |c| {
            c.max_clients = 1;
            c.down.delay = Duration::from_secs(1);
        })
        .await;
        let client = UdpSocket::bind(loopback()).await.unwrap();
        let t0 = Instant::now();
        relay
            .on_client_datagram(client.local_addr().unwrap(), b"hi", t0)
            .await;
        let id = relay
            .clients
            .touch(client.local_addr().unwrap(), t0)
            .unwrap();
        relay.on_upstream_datagram(id, b"reply", t0);
        relay.on_client_datagram(addr(3000), b"other", t0).await;
        assert!(relay.clients.get(id).is_none(), "forgotten");
        relay.release_due(t0 + Duration::from_secs(1)).await;
        let mut buf = [0u8; 64];
        let (n, _) = recv(&client, &mut buf).await;
        assert_eq!(&buf[..n], b"reply");
        assert_eq!(relay.stats().down.forwarded, 1);
    }

    #[tokio::test]
    async fn send_errors_are_counted_on_the_direction_where_they_happen() {
        let server = UdpSocket::bind(loopback()).await.unwrap();
        let mut relay = relay(&server, |_| {}).await;
        let t0 = Instant::now();
        // Larger than any IPv4 UDP payload (65,507 bytes): the system refuses to send it.
        relay.on_client_datagram(addr(4000), &[0; 65_508], t0).await;
        relay.release_due(t0).await;
        let stats = relay.stats();
        assert_eq!((stats.up.send_errors, stats.up.forwarded), (1, 0));
        assert_eq!(stats.down.send_errors, 0);
        assert_accounted(&stats.up);
        let problem = relay.problems.pop().unwrap();
        assert_eq!(problem.kind, ProblemKind::SendUp);
        assert!(
            problem.message.contains("the datagram is lost"),
            "{problem}"
        );

        // A reply for an IPv6 client cannot leave an IPv4 listen socket.
        let v6: SocketAddr = (Ipv6Addr::LOCALHOST, 4001).into();
        relay.on_client_datagram(v6, b"hi", t0).await;
        let id = relay.clients.touch(v6, t0).unwrap();
        relay.on_upstream_datagram(id, b"reply", t0);
        relay.release_due(t0).await;
        let stats = relay.stats();
        assert_eq!((stats.down.send_errors, stats.down.forwarded), (1, 0));
        assert_eq!((stats.up.send_errors, stats.up.forwarded), (1, 1));
        assert_accounted(&stats.down);
        assert_eq!(relay.problems.pop().unwrap().kind, ProblemKind::SendDown);
    }

    #[test]
    fn only_running_out_of_files_makes_the_proxy_forget_a_client_for_room() {
        assert!(is_file_limit(&io::Error::from_raw_os_error(
            if cfg!(windows) { 10_024 } else { 24 }
        )));
        assert!(!is_file_limit(&io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no"
        )));
    }

    #[test]
    fn held_bytes_are_bounded_per_direction_and_in_all() {
        let mut held = HeldBytes::new(100, 150);
        assert!(held.admits(Way::Up, 100));
        assert!(!held.admits(Way::Up, 101), "one direction's bound");
        held.add(Way::Up, 100);
        assert!(!held.admits(Way::Up, 1));
        assert!(held.admits(Way::Down, 50));
        assert!(!held.admits(Way::Down, 51), "the total bound");
        held.remove(Way::Up, 60);
        assert!(held.admits(Way::Down, 100), "released bytes make room");
        assert_eq!((held.held(Way::Up), held.held(Way::Down)), (40, 0));
        held.remove(Way::Up, 1000);
        assert_eq!(held.held(Way::Up), 0, "never below zero");
    }

    #[test]
    fn a_duplicate_is_held_with_its_original_and_counted_in_bytes() {
        let mut direction = Direction::<u64>::new(
            ImpairmentConfig {
                duplicate: Probability::ONE,
                delay: Duration::from_secs(1),
                ..ImpairmentConfig::default()
            },
            1,
        );
        let mut held = HeldBytes::new(250, 1000);
        let t0 = Instant::now();
        direction.offer(&mut held, Way::Up, t0, 0, &[0; 100]);
        assert_eq!(held.held(Way::Up), 200, "original and copy");
        direction.offer(&mut held, Way::Up, t0, 0, &[0; 100]);
        assert_eq!(held.held(Way::Up), 200, "a third 100 bytes would pass 250");
        let stats = direction.stats(held.held(Way::Up));
        assert_eq!(
            (stats.received, stats.dropped_memory, stats.held),
            (2, 1, 2)
        );
        assert_accounted(&stats);
    }

    #[test]
    fn the_idlest_client_is_forgotten_and_ids_are_never_reused() {
        let t0 = Instant::now();
        let later = |s: u64| t0 + Duration::from_secs(s);
        let mut clients = Clients::<()>::new(2);
        let a = clients.insert(addr(1), (), later(0));
        let b = clients.insert(addr(2), (), later(1));
        // a is heard again: b is now the idlest.
        assert_eq!(clients.touch(addr(1), later(2)), Some(a));
        let c = clients.insert(addr(3), (), later(3));
        assert_eq!(clients.len(), 2);
        assert!(clients.get(b).is_none());
        assert_eq!(clients.touch(addr(2), later(4)), None, "b was forgotten");
        assert!(clients.get(a).is_some() && clients.get(c).is_some());
        // b comes back as a new client, with a new id.
        let b_again = clients.insert(addr(2), (), later(5));
        assert!(b_again != b && b_again > c);
        assert_eq!(clients.forgotten, 2);
        assert_eq!(clients.forget_idlest(), Some(c));
        assert_eq!(Clients::<()>::new(0).max, 1, "a zero bound is taken as one");
    }

    #[test]
    fn problems_are_reported_at_most_once_per_kind_and_interval() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut log = ProblemLog::new(Duration::from_secs(10));
        assert_eq!(
            log.record(ProblemKind::SendUp, at(0)),
            Some(0),
            "first: at once"
        );
        for ms in 1..=500 {
            assert_eq!(log.record(ProblemKind::SendUp, at(ms)), None);
        }
        assert_eq!(
            log.record(ProblemKind::NoSocket, at(600)),
            Some(0),
            "each kind on its own schedule"
        );
        assert_eq!(
            log.record(ProblemKind::SendUp, at(10_000)),
            Some(500),
            "then one report carrying those left unreported"
        );
        assert_eq!(log.record(ProblemKind::SendUp, at(10_001)), None);
        let problem = ProxyProblem {
            kind: ProblemKind::SendUp,
            message: "cannot send".to_owned(),
            unreported: 500,
        };
        assert_eq!(
            problem.to_string(),
            "cannot send (500 more like this since the last such warning)"
        );
    }

    #[test]
    fn stats_render_as_key_value_lines() {
        let mut stats = ProxyStats::default();
        stats.up.forwarded = 5;
        stats.up.send_errors = 2;
        let text = stats.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("up   (client -> forward): received=0 forwarded=5"));
        assert!(
            lines[0].contains("send_errors=2"),
            "on the direction it happened"
        );
        assert!(lines[1].contains("send_errors=0"));
        assert!(lines[2].starts_with("clients=0 now=0 forgotten=0"));
        assert!(ProxyStats::LEGEND.contains("send_error (the system refused it: lost)"));
        assert_eq!(format_size(DEFAULT_MAX_HELD_BYTES), "32 MiB");
        assert_eq!(format_size(DEFAULT_MAX_HELD_BYTES_TOTAL), "48 MiB");
        assert_eq!(format_size(500_000), "500 kB");
        assert_eq!(format_size(1500), "1500 bytes");
    }
}
