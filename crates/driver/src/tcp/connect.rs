//! Getting a TCP connection: listen on `--bind`, and with `--peer` also connect to it from the
//! same address and port, retrying while nobody answers (see the module doc of `tcp` for why
//! this makes a simultaneous start one connection).

use std::collections::HashSet;
use std::future::{pending, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use udpchat_reliable::{DropCause, Event, Stats};

use super::session::Early;
use super::{TcpConfig, TcpSink, CONNECT_TIMEOUT, FIRST_RETRY_WAIT, MAX_RETRY_WAIT};
use crate::Input;

/// A listening socket on `--bind`.
#[derive(Debug)]
pub struct Listening {
    pub(super) listener: TcpListener,
    local: SocketAddr,
}

impl Listening {
    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Listens on `bind`. With `connecting` (a `--peer` was given) the port is shared
/// (`SO_REUSEPORT`) with the socket that will connect from it.
pub fn listen(bind: SocketAddr, connecting: bool) -> io::Result<Listening> {
    let socket = socket_for(bind, connecting)?;
    socket.bind(bind)?;
    let listener = socket.listen(16)?;
    let local = listener.local_addr()?;
    Ok(Listening { listener, local })
}

fn socket_for(addr: SocketAddr, share_port: bool) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    if share_port {
        socket.set_reuseport(true)?;
    }
    #[cfg(not(unix))]
    let _ = share_port;
    Ok(socket)
}

/// A connection, with its two addresses.
#[derive(Debug)]
pub(super) struct Connection {
    pub stream: TcpStream,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// Our connect made it (else our listener accepted it). With `--secret`, the side that
    /// connected starts the handshake; when both sides' connects made it (TCP's simultaneous
    /// open), the handshake's own tie-break decides (see `udpchat_secure::stream`).
    pub dialed: bool,
}

impl Connection {
    fn new(stream: TcpStream, dialed: bool) -> io::Result<Connection> {
        Ok(Connection {
            local: stream.local_addr()?,
            peer: stream.peer_addr()?,
            stream,
            dialed,
        })
    }
}

/// Remembers whom we turned away, so each address is named once (and at most
/// [`TurnAway::NAMED`] of them): the network decides how many connect, so the notices must not.
#[derive(Debug, Default)]
pub(super) struct TurnAway {
    named: HashSet<SocketAddr>,
}

impl TurnAway {
    const NAMED: usize = 16;

    /// A connection from `from` was closed at once: counts it (`dropped_foreign`) and reports it the first time.
    pub fn turn_away<S: TcpSink + ?Sized>(
        &mut self,
        from: SocketAddr,
        peer: SocketAddr,
        stats: &mut Stats,
        sink: &mut S,
    ) {
        stats.count_drop(DropCause::Foreign);
        let key = SocketAddr::new(from.ip().to_canonical(), 0);
        if self.named.len() < Self::NAMED && self.named.insert(key) {
            sink.event(Event::TurnedAway { from, peer });
        }
    }
}

/// True if a connection from `from` is the peer's (`--peer`): the same address and port, an
/// IPv4-mapped address counting as IPv4.
fn is_peer(peer: SocketAddr, from: SocketAddr) -> bool {
    peer.ip().to_canonical() == from.ip().to_canonical() && peer.port() == from.port()
}

/// Connect attempts after which a chat whose input has ended gives its queued lines up (the
/// waits add up to about 8 s, as reliable mode's handshake gives up after its retries).
const CLOSING_TRIES: u32 = 6;

type Attempt = Pin<Box<dyn Future<Output = io::Result<TcpStream>>>>;

async fn attempt(local: SocketAddr, peer: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket_for(local, true)?;
    // From the listening port itself, where the platform lets two sockets share it.
    #[cfg(unix)]
    socket.bind(local)?;
    #[cfg(not(unix))]
    socket.bind(SocketAddr::new(local.ip(), 0))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer)).await {
        Ok(connected) => connected,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer to the connection request",
        )),
    }
}

/// Waits for a connection: accepted on `listening`, or made to `config.peer`. Input that comes
/// meanwhile is taken by `early` (lines are queued until there is a connection). Returns `None`
/// if the input closed first.
pub(super) async fn establish<S: TcpSink + ?Sized>(
    listening: &Listening,
    config: &TcpConfig,
    input: &mut mpsc::Receiver<Input>,
    sink: &mut S,
    early: &mut Early,
) -> io::Result<Option<Connection>> {
    let local = listening.local;
    let mut tries = 0u32;
    let mut wait = FIRST_RETRY_WAIT;
    let mut current: Option<Attempt> = config.peer.map(|p| Box::pin(attempt(local, p)) as Attempt);
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = listening.listener.accept() => match accepted {
                Ok((stream, from)) => match config.peer {
                    Some(peer) if !is_peer(peer, from) => {
                        early.turned_away.turn_away(from, peer, &mut early.stats, sink);
                    }
                    _ => return Connection::new(stream, false).map(Some),
                },
                // E.g. out of file descriptors: say so, and go on listening.
                Err(e) => sink.socket_error(&e),
            },
            result = poll_attempt(&mut current) => {
                current = None;
                match (result, config.peer) {
                    (Ok(stream), _) => return Connection::new(stream, true).map(Some),
                    // Input ended while lines wait: a few tries more, then they are given up.
                    (Err(_), Some(_)) if early.closing() && tries >= CLOSING_TRIES => {
                        return Ok(None);
                    }
                    (Err(_), Some(to)) => {
                        tries += 1;
                        sink.event(Event::NoAnswer { to, tries, next_in: wait });
                        retry_at = Some(Instant::now() + wait);
                        wait = (wait * 2).min(MAX_RETRY_WAIT);
                    }
                    (Err(_), None) => {}
                }
            }
            () = sleep_until(retry_at) => {
                retry_at = None;
                current = config.peer.map(|p| Box::pin(attempt(local, p)) as Attempt);
            }
            command = input.recv(), if early.has_room() => {
                if !early.input(command, sink) {
                    return Ok(None);
                }
            }
        }
    }
}

async fn poll_attempt(current: &mut Option<Attempt>) -> io::Result<TcpStream> {
    match current {
        Some(attempt) => attempt.await,
        None => pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_recognised_by_address_and_port() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert!(is_peer(a("127.0.0.1:2323"), a("127.0.0.1:2323")));
        assert!(is_peer(a("127.0.0.1:2323"), a("[::ffff:127.0.0.1]:2323")));
        assert!(!is_peer(a("127.0.0.1:2323"), a("127.0.0.1:40000")));
        assert!(!is_peer(a("127.0.0.1:2323"), a("127.0.0.2:2323")));
    }
}
