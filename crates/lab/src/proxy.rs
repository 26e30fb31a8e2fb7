//! The UDP impairment proxy: a userspace `tc netem` between any two UDP programs.
//!
//! Datagrams that a client sends to the listen address go through the *up* [`Impairment`] and on
//! to the forward address; replies come back through the *down* one to that client. Each client
//! gets its own upstream socket (as a NAT would), so the forward side sees one address per
//! client and several clients can share the proxy; the least recently heard client is forgotten
//! when `max_clients` is reached, so memory stays bounded.
//!
//! The impairment model stays pure: this module only does I/O and timing. One task owns both
//! impairments and the listen socket, and sleeps until the next datagram is due; per-client tasks
//! only read their upstream socket and pass datagrams over a bounded channel. Time comes from the
//! real clock here (this is the I/O layer), and randomness from the seed.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::impairment::{derive_seed, Impairment, ImpairmentConfig, ImpairmentStats};

/// Largest datagram the proxy relays (the largest UDP payload there is).
const MAX_DATAGRAM: usize = 65_536;

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
    /// Most clients remembered at once. Default 256.
    pub max_clients: usize,
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
            max_clients: 256,
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
    /// An upstream socket for a client could not be made.
    #[error("cannot open a socket towards {addr}: {source}")]
    Upstream {
        /// The forward address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The listen socket failed.
    #[error("listen socket failed: {0}")]
    Io(#[from] io::Error),
}

/// The proxy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Client → forward.
    pub up: ImpairmentStats,
    /// Forward → client.
    pub down: ImpairmentStats,
    /// Clients seen since the start.
    pub clients: u64,
    /// Datagrams the operating system refused to send (e.g. nobody listening at the forward
    /// address), after the impairment had let them through.
    pub send_errors: u64,
}

impl fmt::Display for ProxyStats {
    /// Two lines, `up   (client -> forward): key=value ...` and `down (forward -> client): ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "up   (client -> forward): {}", self.up)?;
        write!(
            f,
            "down (forward -> client): {} clients={} send_errors={}",
            self.down, self.clients, self.send_errors
        )
    }
}

/// One client, and the socket that speaks for it towards the forward address.
#[derive(Debug)]
struct Client {
    addr: SocketAddr,
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
    last_heard: Instant,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A bound proxy, ready to run.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    listen: UdpSocket,
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
        Ok(Proxy { config, listen })
    }

    /// The address actually bound (with the real port if the config said port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ProxyError> {
        Ok(self.listen.local_addr()?)
    }

    /// Relays until `shutdown` completes, calling `report` every `stats_interval`; returns the
    /// final counters (datagrams still held at shutdown are discarded).
    pub async fn run<F, R>(self, shutdown: F, mut report: R) -> Result<ProxyStats, ProxyError>
    where
        F: Future<Output = ()>,
        R: FnMut(&ProxyStats),
    {
        let Proxy { config, listen } = self;
        let mut up: Impairment<u64> =
            Impairment::new(config.up.clone(), derive_seed(config.seed, 0));
        let mut down: Impairment<u64> =
            Impairment::new(config.down.clone(), derive_seed(config.seed, 1));
        let mut clients: HashMap<u64, Client> = HashMap::new();
        let mut by_addr: HashMap<SocketAddr, u64> = HashMap::new();
        let mut next_client = 0u64;
        let mut send_errors = 0u64;
        let (replies_tx, mut replies) = mpsc::channel::<(u64, Vec<u8>)>(1024);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut ticker = config.stats_interval.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        tokio::pin!(shutdown);

        let stats =
            |up: &Impairment<u64>, down: &Impairment<u64>, clients: u64, errors: u64| ProxyStats {
                up: up.stats().clone(),
                down: down.stats().clone(),
                clients,
                send_errors: errors,
            };

        loop {
            let wake = [up.next_release(), down.next_release()]
                .into_iter()
                .flatten()
                .min()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                () = &mut shutdown => break,
                received = listen.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        let id = match by_addr.get(&from) {
                            Some(&id) => id,
                            None => {
                                let id = next_client;
                                next_client += 1;
                                if clients.len() >= config.max_clients {
                                    forget_quietest(&mut clients, &mut by_addr);
                                }
                                let client = connect_client(id, from, config.forward, replies_tx.clone()).await?;
                                clients.insert(id, client);
                                by_addr.insert(from, id);
                                id
                            }
                        };
                        if let Some(client) = clients.get_mut(&id) {
                            client.last_heard = Instant::now();
                        }
                        up.offer(Instant::now(), id, buf[..len].to_vec());
                    }
                    // An ICMP "port unreachable" for an earlier reply surfaces here on some
                    // systems; it concerns one client, not the proxy.
                    Err(e) if is_transient(&e) => {}
                    Err(e) => return Err(ProxyError::Io(e)),
                },
                Some((id, datagram)) = replies.recv() => {
                    down.offer(Instant::now(), id, datagram);
                }
                () = sleep_until(wake), if wake.is_some() => {}
                _ = tick(&mut ticker), if ticker.is_some() => {
                    report(&stats(&up, &down, next_client, send_errors));
                }
            }

            let now = Instant::now();
            while let Some(released) = up.poll(now) {
                let Some(client) = clients.get(&released.tag) else {
                    continue;
                };
                if client.socket.send(&released.bytes).await.is_err() {
                    send_errors += 1;
                }
            }
            while let Some(released) = down.poll(now) {
                let Some(client) = clients.get(&released.tag) else {
                    continue;
                };
                if listen.send_to(&released.bytes, client.addr).await.is_err() {
                    send_errors += 1;
                }
            }
        }
        Ok(stats(&up, &down, next_client, send_errors))
    }
}

/// Opens the upstream socket for a new client and starts reading replies from it.
async fn connect_client(
    id: u64,
    addr: SocketAddr,
    forward: SocketAddr,
    replies: mpsc::Sender<(u64, Vec<u8>)>,
) -> Result<Client, ProxyError> {
    let local: SocketAddr = match forward {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let upstream = |source| ProxyError::Upstream {
        addr: forward,
        source,
    };
    let socket = UdpSocket::bind(local).await.map_err(upstream)?;
    socket.connect(forward).await.map_err(upstream)?;
    let socket = Arc::new(socket);
    let reader_socket = Arc::clone(&socket);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match reader_socket.recv(&mut buf).await {
                Ok(len) => {
                    if replies.send((id, buf[..len].to_vec())).await.is_err() {
                        return;
                    }
                }
                // Nobody listening at the forward address (yet): keep waiting.
                Err(e) if is_transient(&e) => {}
                Err(_) => return,
            }
        }
    });
    Ok(Client {
        addr,
        socket,
        reader,
        last_heard: Instant::now(),
    })
}

fn forget_quietest(clients: &mut HashMap<u64, Client>, by_addr: &mut HashMap<SocketAddr, u64>) {
    let quietest = clients
        .iter()
        .min_by_key(|(_, c)| c.last_heard)
        .map(|(&id, c)| (id, c.addr));
    if let Some((id, addr)) = quietest {
        clients.remove(&id);
        by_addr.remove(&addr);
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

    /// Runs a proxy in the background; returns its address and a handle to stop it.
    async fn start(
        config: ProxyConfig,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<ProxyStats>,
    ) {
        let proxy = Proxy::bind(config).await.unwrap();
        let addr = proxy.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            proxy
                .run(
                    async {
                        let _ = stopped.await;
                    },
                    |_| {},
                )
                .await
                .unwrap()
        });
        (addr, stop, handle)
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
        assert_eq!(handle.await.unwrap().clients, 3);
    }

    #[test]
    fn stats_render_as_key_value_lines() {
        let text = ProxyStats::default().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("up   (client -> forward): received=0 forwarded=0"));
        assert!(lines[1].contains("clients=0 send_errors=0"));
    }
}
