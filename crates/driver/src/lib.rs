//! The tokio driver: the only place where an [`Endpoint`] meets a real socket and a real clock.
//!
//! It lives in a crate of its own so that `udpchat-reliable` (the sans-IO state machines) builds
//! without a runtime: whoever embeds the transport elsewhere (the simulator, another event loop)
//! does not pull in tokio.
//!
//! It is deliberately short and mode-agnostic, in the manner of quinn's driver around
//! quinn-proto: one loop that waits for whichever comes first — a datagram on the socket
//! (`handle_datagram`), an [`Input`] from the application (`send`, `close`), or the endpoint's
//! next timer (`handle_timeout`) — and after each step hands every pending datagram to the socket
//! and every pending event to a [`Sink`]. The socket side is batched (the lab's [`BatchSocket`]:
//! `recvmmsg` and GRO in, GSO out, through quinn-udp), so a busy chat makes a few system calls
//! per batch of datagrams rather than one per datagram; the endpoint sees no difference. It reads `Instant::now()`, which the state machines
//! never do. When input ends (end of file, `/quit`, Ctrl-C in the binary) it calls `close` and
//! keeps driving until the endpoint says it is closed, so whatever the mode promises to finish
//! (nothing in raw mode; outstanding acks in reliable mode) gets finished. At end of input with
//! a half-close ([`Input::Finish`]) it calls `finish` instead, and drives on while the peer
//! still sends, until both sides have finished and the endpoint has closed.
//!
//! Socket errors do not end the chat: a failed send (e.g. `ECONNREFUSED` after an ICMP port
//! unreachable, or no route) is reported to the sink and the loop goes on, as UDP would. Only a
//! socket that fails to receive many times in a row with no success in between is treated as
//! broken, so a dead socket cannot spin the loop forever.
//!
//! [`Tapped`] wraps an endpoint to capture (`--pcap`) and trace (`-vv`) every datagram it moves.

use std::future::pending;
use std::io;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use udpchat_lab::batch_socket::{BatchSocket, SendBatch};
use udpchat_reliable::{Endpoint, Event, MessageId, NickError, SendError, Stats};

mod tap;
pub use tap::Tapped;

pub mod tcp;

/// What the application asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Send this line as one message.
    Line(String),
    /// Carry this nickname on our next messages (see [`Endpoint::set_nick`]).
    Nick(String),
    /// Report the endpoint's counters to the sink now.
    Stats,
    /// Stop sending and close; the driver returns once the endpoint has closed. A closed input
    /// channel means the same.
    Close,
    /// We have finished sending (end of input with a half-close, [`Endpoint::finish`]): keep
    /// receiving until the peer finishes too; the driver returns once the endpoint has closed.
    /// A later [`Input::Close`] (Ctrl-C) still closes at once.
    Finish,
}

/// Where the driver reports what happened. The binary prints; tests collect.
pub trait Sink {
    /// An event from the endpoint.
    fn event(&mut self, event: Event);
    /// The endpoint accepted a line as message `id`; its `Delivered`/`Lost` event names `id`.
    /// The chat screen uses it to update that line in place; line mode has no use for it.
    fn accepted(&mut self, id: MessageId, line: &str) {
        let _ = (id, line);
    }
    /// The endpoint refused a line; nothing was sent and the chat goes on.
    fn refused(&mut self, line: &str, error: &SendError);
    /// The outcome of [`Input::Nick`]. Only the chat screen sends that input.
    fn nick(&mut self, nick: &str, result: Result<(), NickError>) {
        let _ = (nick, result);
    }
    /// The socket failed to send or receive; the chat goes on.
    fn socket_error(&mut self, error: &io::Error);
    /// The counters, as asked for with [`Input::Stats`].
    fn stats(&mut self, stats: &Stats);
}

/// Consecutive receive failures, with no datagram in between, after which the socket is deemed
/// broken. One-off errors (a stray ICMP report) never come close.
pub const MAX_CONSECUTIVE_RECV_ERRORS: u32 = 64;

/// Socket buffers the driver asks for, each way: a reliable sender's whole window (512
/// datagrams of up to 1,200 bytes, plus the kernel's per-datagram overhead) fits several times.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Drives `endpoint` over `socket` until it has closed, taking lines and commands from `input`
/// and reporting to `sink`. Returns an error only if the socket keeps failing to receive (see
/// [`MAX_CONSECUTIVE_RECV_ERRORS`]), or if batched I/O cannot be set up on it.
///
/// Datagrams move in batches ([`BatchSocket`]): each receive takes as many as one `recvmmsg`
/// (and GRO) returns and hands every one to the endpoint before anything is sent; each flush
/// drains `poll_transmit` into GSO batches, one `sendmsg` per run of equal-sized datagrams to one
/// destination. The order of datagrams is the endpoint's, both ways.
pub async fn run<E, S>(
    endpoint: &mut E,
    socket: &UdpSocket,
    input: &mut mpsc::Receiver<Input>,
    sink: &mut S,
) -> io::Result<()>
where
    E: Endpoint + ?Sized,
    S: Sink + ?Sized,
{
    let socket = BatchSocket::new(socket)?;
    // Larger buffers than the system's default, where it allows: a burst of a full window
    // would otherwise overflow the receiver's. A refusal is not worth failing the chat over.
    let _ = socket.set_buffer_sizes(SOCKET_BUFFER);
    let mut received = socket.recv_batch();
    let mut outgoing = Outgoing::new(&socket);
    let mut input_open = true;
    let mut recv_errors = 0u32;
    loop {
        outgoing.flush(endpoint, &socket, sink).await;
        if endpoint.is_closed() {
            return Ok(());
        }
        let deadline = endpoint.poll_timeout();
        tokio::select! {
            result = socket.recv(&mut received) => match result {
                Ok(()) => {
                    recv_errors = 0;
                    let now = Instant::now();
                    for (from, datagram) in received.datagrams() {
                        endpoint.handle_datagram(now, from, datagram);
                    }
                }
                Err(e) => {
                    sink.socket_error(&e);
                    recv_errors += 1;
                    if recv_errors >= MAX_CONSECUTIVE_RECV_ERRORS {
                        return Err(e);
                    }
                }
            },
            command = input.recv(), if input_open => match command {
                Some(Input::Line(line)) => match endpoint.send(Instant::now(), &line) {
                    Ok(id) => sink.accepted(id, &line),
                    Err(e) => sink.refused(&line, &e),
                },
                Some(Input::Nick(nick)) => sink.nick(&nick, endpoint.set_nick(&nick)),
                Some(Input::Stats) => sink.stats(&endpoint.stats()),
                Some(Input::Finish) => endpoint.finish(Instant::now()),
                Some(Input::Close) | None => {
                    input_open = false;
                    endpoint.close(Instant::now());
                }
            },
            () = sleep_until(deadline) => endpoint.handle_timeout(Instant::now()),
        }
    }
}

/// The sending half's buffers, kept across flushes so the hot path allocates nothing.
struct Outgoing {
    /// One datagram, as `poll_transmit` writes it.
    datagram: Vec<u8>,
    batch: SendBatch,
}

impl Outgoing {
    fn new(socket: &BatchSocket<&UdpSocket>) -> Outgoing {
        Outgoing {
            datagram: Vec::new(),
            batch: socket.send_batch(),
        }
    }

    /// Hands every pending datagram to the socket, in batches, and every pending event to the
    /// sink. A batch goes out as soon as the next datagram cannot join it, or it is full.
    async fn flush<E, S>(
        &mut self,
        endpoint: &mut E,
        socket: &BatchSocket<&UdpSocket>,
        sink: &mut S,
    ) where
        E: Endpoint + ?Sized,
        S: Sink + ?Sized,
    {
        let Outgoing { datagram, batch } = self;
        while let Some(destination) = endpoint.poll_transmit(Instant::now(), datagram) {
            if !batch.push(destination, datagram) {
                send(socket, batch, sink).await;
                // An empty batch takes any datagram.
                batch.push(destination, datagram);
            }
            if batch.is_full() {
                send(socket, batch, sink).await;
            }
        }
        send(socket, batch, sink).await;
        while let Some(event) = endpoint.poll_event() {
            sink.event(event);
        }
    }
}

async fn send<S: Sink + ?Sized>(
    socket: &BatchSocket<&UdpSocket>,
    batch: &mut SendBatch,
    sink: &mut S,
) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = socket.send(batch).await {
        sink.socket_error(&e);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use udpchat_reliable::{RawConfig, RawEndpoint};

    /// Collects everything; closes its own chat once `want` messages have arrived.
    struct Collect {
        events: Vec<Event>,
        refused: Vec<(String, SendError)>,
        socket_errors: usize,
        stats: Vec<Stats>,
        want: usize,
        close: Option<mpsc::Sender<Input>>,
    }

    impl Collect {
        fn new(want: usize, close: Option<mpsc::Sender<Input>>) -> Self {
            Collect {
                events: Vec::new(),
                refused: Vec::new(),
                socket_errors: 0,
                stats: Vec::new(),
                want,
                close,
            }
        }

        fn texts(&self) -> Vec<&str> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Message { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect()
        }
    }

    impl Sink for Collect {
        fn event(&mut self, event: Event) {
            let is_message = matches!(event, Event::Message { .. });
            self.events.push(event);
            if is_message && self.texts().len() == self.want {
                if let Some(close) = self.close.take() {
                    close.try_send(Input::Close).unwrap();
                }
            }
        }
        fn refused(&mut self, line: &str, error: &SendError) {
            self.refused.push((line.to_owned(), error.clone()));
        }
        fn socket_error(&mut self, _error: &io::Error) {
            self.socket_errors += 1;
        }
        fn stats(&mut self, stats: &Stats) {
            self.stats.push(stats.clone());
        }
    }

    async fn loopback() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    fn raw(nick: &str, peer: Option<SocketAddr>) -> RawEndpoint {
        RawEndpoint::new(RawConfig {
            nick: nick.into(),
            peer,
            ..RawConfig::default()
        })
    }

    #[tokio::test]
    async fn lines_cross_a_real_socket_and_both_sides_close() {
        let (a_sock, b_sock) = (loopback().await, loopback().await);
        let mut alice = raw("alice", Some(b_sock.local_addr().unwrap()));
        let mut bob = raw("bob", None);
        let (a_tx, mut a_rx) = mpsc::channel(8);
        let (b_tx, mut b_rx) = mpsc::channel(8);
        for line in ["one", "two", "three"] {
            a_tx.send(Input::Line(line.into())).await.unwrap();
        }
        a_tx.send(Input::Stats).await.unwrap();
        a_tx.send(Input::Close).await.unwrap();
        let mut a_sink = Collect::new(0, None);
        let mut b_sink = Collect::new(3, Some(b_tx.clone()));
        let both = async {
            tokio::join!(
                run(&mut alice, &a_sock, &mut a_rx, &mut a_sink),
                run(&mut bob, &b_sock, &mut b_rx, &mut b_sink),
            )
        };
        // A deadline, not a sleep: on loopback this finishes in milliseconds.
        let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(20), both)
            .await
            .expect("both drivers should close");
        a.unwrap();
        b.unwrap();
        assert_eq!(b_sink.texts(), vec!["one", "two", "three"]);
        assert_eq!(
            b_sink.events[0],
            Event::Peer {
                addr: a_sock.local_addr().unwrap(),
                nick: None,
            }
        );
        assert_eq!(a_sink.stats.len(), 1);
        assert_eq!(a_sink.stats[0].messages_sent, 3);
        assert_eq!(a_sink.events.last(), Some(&Event::Closed));
        assert!(alice.is_closed() && bob.is_closed());
    }

    /// Both sides send, both finish (a half-close): each gets every line of the other's,
    /// whichever finished first, and both drivers return.
    #[tokio::test]
    async fn with_a_half_close_both_sides_get_everything_then_return() {
        use udpchat_reliable::{ReliableConfig, ReliableEndpoint};
        let (a_sock, b_sock) = (loopback().await, loopback().await);
        let mut alice = ReliableEndpoint::new(
            ReliableConfig::default(),
            Some(b_sock.local_addr().unwrap()),
            1,
        )
        .unwrap();
        let mut bob = ReliableEndpoint::new(ReliableConfig::default(), None, 2).unwrap();
        let (a_tx, mut a_rx) = mpsc::channel(64);
        let (b_tx, mut b_rx) = mpsc::channel(64);
        for i in 0..20 {
            a_tx.send(Input::Line(format!("a{i}"))).await.unwrap();
        }
        a_tx.send(Input::Finish).await.unwrap();
        // Bob writes only once Alice's first line made her his peer, then finishes too.
        let mut a_sink = Collect::new(0, None);
        let mut b_sink = Collect::new(0, None);
        let bob_lines = async {
            for i in 0..20 {
                b_tx.send(Input::Line(format!("b{i}"))).await.unwrap();
            }
            b_tx.send(Input::Finish).await.unwrap();
        };
        let both = async {
            tokio::join!(run(&mut alice, &a_sock, &mut a_rx, &mut a_sink), async {
                // Bob takes Alice's Hello first, so he has a peer before his lines (they
                // would be refused before).
                let mut hello = [0u8; 2048];
                let (len, from) = b_sock.recv_from(&mut hello).await.unwrap();
                bob.handle_datagram(Instant::now(), from, &hello[..len]);
                bob_lines.await;
                run(&mut bob, &b_sock, &mut b_rx, &mut b_sink).await
            },)
        };
        let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(20), both)
            .await
            .expect("both drivers should return");
        a.unwrap();
        b.unwrap();
        let want = |p: &str| (0..20).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        assert_eq!(b_sink.texts(), want("a"));
        assert_eq!(a_sink.texts(), want("b"));
        assert!(a_sink.events.contains(&Event::PeerFinished));
        assert!(b_sink.events.contains(&Event::PeerFinished));
        assert!(!a_sink
            .events
            .iter()
            .any(|e| matches!(e, Event::Lost { .. })));
        assert!(alice.is_closed() && bob.is_closed());
    }

    /// Many lines at once in reliable mode: the driver moves them in batches (GSO runs of
    /// equal-sized datagrams out, `recvmmsg`/GRO in, acks batched back), and every line still
    /// arrives once, in order, and is acknowledged.
    #[tokio::test]
    async fn a_burst_of_lines_crosses_in_batches_complete_and_in_order() {
        use udpchat_reliable::{ReliableConfig, ReliableEndpoint};
        const LINES: usize = 3000;
        let (a_sock, b_sock) = (loopback().await, loopback().await);
        let mut alice = ReliableEndpoint::new(
            ReliableConfig::default(),
            Some(b_sock.local_addr().unwrap()),
            1,
        )
        .unwrap();
        let mut bob = ReliableEndpoint::new(ReliableConfig::default(), None, 2).unwrap();
        // All of Alice's lines are queued before her driver starts: her first flushes are long
        // runs of same-sized datagrams.
        let now = Instant::now();
        for i in 0..LINES {
            alice.send(now, &format!("line {i:05}")).unwrap();
        }
        // Alice's input is closed from the start, like a pipe at end of file: she closes, which
        // in reliable mode waits until everything queued is delivered and acknowledged.
        let (_, mut a_rx) = mpsc::channel(1);
        let (b_tx, mut b_rx) = mpsc::channel(1);
        let mut a_sink = Collect::new(0, None);
        let mut b_sink = Collect::new(LINES, Some(b_tx));
        let both = async {
            tokio::join!(
                run(&mut alice, &a_sock, &mut a_rx, &mut a_sink),
                run(&mut bob, &b_sock, &mut b_rx, &mut b_sink),
            )
        };
        let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(60), both)
            .await
            .expect("both drivers should close");
        a.unwrap();
        b.unwrap();
        let want: Vec<String> = (0..LINES).map(|i| format!("line {i:05}")).collect();
        assert_eq!(b_sink.texts(), want);
        let delivered = a_sink
            .events
            .iter()
            .filter(|e| matches!(e, Event::Delivered { .. }))
            .count();
        assert_eq!(delivered, LINES);
        assert_eq!(a_sink.socket_errors + b_sink.socket_errors, 0);
    }

    #[tokio::test]
    async fn a_refused_line_is_reported_and_the_chat_goes_on() {
        let sock = loopback().await;
        let mut bob = raw("bob", None);
        let (tx, mut rx) = mpsc::channel(8);
        tx.send(Input::Line("anyone?".into())).await.unwrap();
        drop(tx); // a closed input channel closes the endpoint, like end of file
        let mut sink = Collect::new(0, None);
        run(&mut bob, &sock, &mut rx, &mut sink).await.unwrap();
        assert_eq!(sink.refused, vec![("anyone?".into(), SendError::NoPeer)]);
        assert!(bob.is_closed());
    }

    /// Sends one datagram somewhere the socket cannot reach, then closes from a timer.
    struct Unreachable {
        start: Instant,
        sent: bool,
        timer_fired: bool,
        closed: bool,
    }

    impl Endpoint for Unreachable {
        fn send(&mut self, _: Instant, _: &str) -> Result<MessageId, SendError> {
            Err(SendError::Closed)
        }
        fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
        fn poll_transmit(&mut self, _: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
            if self.sent {
                return None;
            }
            self.sent = true;
            // An IPv6 destination from an IPv4 socket fails at once, on every OS.
            *buf = b"x".to_vec();
            Some("[::1]:9".parse().unwrap())
        }
        fn poll_timeout(&self) -> Option<Instant> {
            (!self.timer_fired).then_some(self.start)
        }
        fn handle_timeout(&mut self, now: Instant) {
            assert!(now >= self.start);
            self.timer_fired = true;
            self.closed = true;
        }
        fn poll_event(&mut self) -> Option<Event> {
            None
        }
        fn close(&mut self, _: Instant) {}
        fn finish(&mut self, _: Instant) {}
        fn is_closed(&self) -> bool {
            self.closed
        }
        fn peer(&self) -> Option<SocketAddr> {
            None
        }
        fn stats(&self) -> Stats {
            Stats::default()
        }
    }

    #[tokio::test]
    async fn socket_errors_are_reported_and_timers_fire() {
        let sock = loopback().await;
        let mut endpoint = Unreachable {
            start: Instant::now(),
            sent: false,
            timer_fired: false,
            closed: false,
        };
        // The input stays open: only the timer can end this run.
        let (_tx, mut rx) = mpsc::channel(1);
        let mut sink = Collect::new(0, None);
        run(&mut endpoint, &sock, &mut rx, &mut sink).await.unwrap();
        assert_eq!(sink.socket_errors, 1);
        assert!(endpoint.timer_fired);
    }
}
