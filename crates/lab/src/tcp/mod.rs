//! TCP in the simulator: [`TcpEndpoint`], smoltcp's TCP (a real, widely used implementation)
//! behind udpchat's [`Endpoint`], so the simulator, the lab and the bench carry it on exactly the
//! same seeded links as raw and reliable mode.
//!
//! smoltcp is sans-IO as our transports are: [`smoltcp::iface::Interface::poll`] takes the time
//! as an argument and moves packets through a device we write ([`link::Wire`]). The endpoint
//! hands it the simulator's virtual time (microseconds since the first call), seeds its
//! randomness (the initial sequence number) from the run's seed, and reads no clock and no
//! global random source; two runs with one seed are the same, byte for byte.
//!
//! **What crosses the links** is the TCP segment alone, header included: the IPv4 header is
//! taken off on the way out and put back on the way in ([`link`]), as the IP and UDP headers are
//! not on the links of raw and reliable mode either. Bytes per message then compare transport
//! overhead like for like (TCP's 20-byte header and options against our envelope), with neither
//! side's IP header counted; UDP's own 8-byte header is not counted for raw and reliable.
//!
//! **Messages** are frames on the byte stream ([`frame`]): a 4-byte length, then the datagram raw
//! mode would send (the `core` codec, CRC included). The receiver emits one [`Event::Message`] per
//! frame, in order.
//!
//! **What TCP does not say.** A TCP acknowledgement means the peer's *stack* has the bytes, not
//! that its application read them, so this endpoint never reports [`Event::Delivered`]: TCP gives
//! no per-message delivery mark (the socket API offers none either). When the connection dies
//! (the user timeout expires, or a reset arrives) every message whose bytes were not all
//! acknowledged is reported [`Event::Lost`]: those certainly may never have been shown.
//!
//! **Counters** ([`Stats`]): datagrams and bytes, messages, drops by cause (a bad TCP checksum is
//! counted before smoltcp, which drops such a segment silently), and resends, told apart by what
//! ran the stack (a timer: a timeout; an arriving segment: duplicate ACKs). smoltcp exposes no
//! RTT estimate or congestion window, so those fields stay empty.
//!
//! **Settings.** Nagle's algorithm is off: a chat line is small and should go now, not wait for
//! the previous one's ACK (with Nagle on, every line written within an RTT of the last would wait
//! a round trip). Everything else is smoltcp 0.12's default: delayed ACK 10 ms, minimum RTO
//! 10 ms (no 200 ms floor as in Linux), an initial window of two 1024-byte segments' worth
//! (cwnd 2048 bytes), one SACK block sent and none used by the sender (it resends from the
//! cumulative ACK after a timeout or three duplicate ACKs). `docs/tcp-vs-udp.md` sets these
//! beside Linux's. The congestion controller is Cubic or Reno ([`TcpCongestion`]).

pub mod frame;
pub mod link;
pub mod segment;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use serde::Serialize;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, TcpPacket, TcpSeqNumber};
use thiserror::Error;
use udpchat_core::EncodeError;
use udpchat_reliable::{DropCause, Endpoint, Event, MessageId, SendError, Stats};

use frame::{FrameError, FrameReader};
use link::Wire;

/// smoltcp's congestion controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpCongestion {
    /// CUBIC (RFC 8312), Linux's default since 2.6.19.
    Cubic,
    /// Reno.
    Reno,
}

/// How a [`TcpEndpoint`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Our address (IPv4): the IP the segments are from, and the port we connect from or listen
    /// on.
    pub local: SocketAddr,
    /// The nickname carried in each frame. Default `"tcp"`.
    pub nick: String,
    /// The congestion controller. Default Cubic.
    pub congestion: TcpCongestion,
    /// Largest segment on the link, TCP header included (smoltcp's MSS is 20 bytes less).
    /// Default 1200, the largest datagram raw and reliable mode send.
    pub max_segment: usize,
    /// Send and receive buffer, bytes each. Default 256 KiB (window scaling on).
    pub buffer: usize,
    /// Give up when nothing sent has been acknowledged for this long (Linux's
    /// `TCP_USER_TIMEOUT`); `None` (the default) retransmits forever, as smoltcp does.
    pub user_timeout: Option<Duration>,
}

impl TcpConfig {
    /// The defaults, at `local`.
    pub fn new(local: SocketAddr) -> TcpConfig {
        TcpConfig {
            local,
            nick: "tcp".to_owned(),
            congestion: TcpCongestion::Cubic,
            max_segment: udpchat_core::DEFAULT_MAX_DATAGRAM,
            buffer: 256 * 1024,
            user_timeout: None,
        }
    }
}

/// Why a [`TcpEndpoint`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TcpSetupError {
    /// smoltcp's interface here speaks IPv4 only.
    #[error("the simulated TCP speaks IPv4 only; {0} is not an IPv4 address")]
    NotIpv4(SocketAddr),
    /// A segment this small cannot carry a TCP header and data.
    #[error("segments of {0} bytes are too small for TCP (at least 60)")]
    SegmentTooSmall(usize),
    /// smoltcp refused to listen or connect (a zero port).
    #[error("smoltcp refused the socket: {0}")]
    Socket(String),
}

/// Which entry point ran the stack: tells a timeout resend from one on duplicate ACKs, and a
/// reset from a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The application (send, close).
    App,
    /// A segment arrived.
    Arrival,
    /// A timer fired.
    Timer,
}

/// Where the connection is, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting, or listening.
    Opening,
    /// Established (reported with `Event::Peer`).
    Open,
    /// Over; the reason has been reported.
    Over,
}

/// One TCP connection over smoltcp, as an [`Endpoint`]: the side built with
/// [`TcpEndpoint::connect`] opens it, the one built with [`TcpEndpoint::listen`] accepts the
/// first SYN.
pub struct TcpEndpoint {
    config: TcpConfig,
    local: SocketAddrV4,
    iface: Interface,
    wire: Wire,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    peer: Option<SocketAddr>,
    /// Virtual time zero: the first `now` any call brought.
    epoch: Option<Instant>,
    deadline: Option<Instant>,
    /// Segments to hand out, with the entry point that produced them.
    transmits: VecDeque<(SocketAddr, Vec<u8>, Cause)>,
    /// Frame bytes the socket had no room for yet.
    outbox: VecDeque<u8>,
    /// Bytes written into the socket so far.
    written: u64,
    /// Our messages whose bytes are not all acknowledged: (end offset in the stream, id).
    unacked: VecDeque<(u64, MessageId)>,
    /// One past the highest sequence number sent with data: a segment below it is a resend.
    high_water: Option<TcpSeqNumber>,
    reader: FrameReader,
    events: VecDeque<Event>,
    stats: Stats,
    next_message: u64,
    phase: Phase,
    /// `close` or `finish` was called: FIN once the outbox is written.
    finishing: bool,
    fin_sent: bool,
    peer_finished: bool,
    /// We reset the connection ourselves (the peer's framing was broken).
    aborted: bool,
}

impl std::fmt::Debug for TcpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpEndpoint")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("phase", &self.phase)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl TcpEndpoint {
    /// An endpoint that connects to `peer` (its first SYN goes out at the first poll).
    pub fn connect(
        config: TcpConfig,
        peer: SocketAddr,
        seed: u64,
    ) -> Result<TcpEndpoint, TcpSetupError> {
        let remote = v4(peer)?;
        let mut endpoint = TcpEndpoint::build(config, seed)?;
        let local = endpoint.local;
        let cx = endpoint.iface.context();
        endpoint
            .sockets
            .get_mut::<tcp::Socket>(endpoint.handle)
            .connect(cx, remote, local.port())
            .map_err(|e| TcpSetupError::Socket(e.to_string()))?;
        endpoint.peer = Some(peer);
        Ok(endpoint)
    }

    /// An endpoint that accepts the first connection to its port.
    pub fn listen(config: TcpConfig, seed: u64) -> Result<TcpEndpoint, TcpSetupError> {
        let mut endpoint = TcpEndpoint::build(config, seed)?;
        let port = endpoint.local.port();
        endpoint
            .sockets
            .get_mut::<tcp::Socket>(endpoint.handle)
            .listen(port)
            .map_err(|e| TcpSetupError::Socket(e.to_string()))?;
        Ok(endpoint)
    }

    fn build(config: TcpConfig, seed: u64) -> Result<TcpEndpoint, TcpSetupError> {
        let local = v4(config.local)?;
        if config.max_segment < 60 {
            return Err(TcpSetupError::SegmentTooSmall(config.max_segment));
        }
        let mut wire = Wire::new(config.max_segment);
        let mut iface_config = Config::new(HardwareAddress::Ip);
        iface_config.random_seed = seed;
        let mut iface = Interface::new(iface_config, &mut wire, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            // Room for one address is always there in a new interface.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(*local.ip()), 24));
        });
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; config.buffer]),
            tcp::SocketBuffer::new(vec![0; config.buffer]),
        );
        socket.set_nagle_enabled(false);
        socket.set_congestion_control(match config.congestion {
            TcpCongestion::Cubic => tcp::CongestionControl::Cubic,
            TcpCongestion::Reno => tcp::CongestionControl::Reno,
        });
        socket.set_timeout(config.user_timeout.map(smol_duration));
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);
        Ok(TcpEndpoint {
            config,
            local,
            iface,
            wire,
            sockets,
            handle,
            peer: None,
            epoch: None,
            deadline: None,
            transmits: VecDeque::new(),
            outbox: VecDeque::new(),
            written: 0,
            unacked: VecDeque::new(),
            high_water: None,
            reader: FrameReader::default(),
            events: VecDeque::new(),
            stats: Stats::default(),
            next_message: 0,
            phase: Phase::Opening,
            finishing: false,
            fin_sent: false,
            peer_finished: false,
            aborted: false,
        })
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handle)
    }

    /// smoltcp's time for `now`: microseconds since the first call.
    fn clock(&mut self, now: Instant) -> SmolInstant {
        let epoch = *self.epoch.get_or_insert(now);
        let micros = now.saturating_duration_since(epoch).as_micros();
        SmolInstant::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// Runs the stack at `now` until it settles: the application's bytes into the socket, the
    /// stack, the socket's bytes out to frames, again while anything moved.
    fn pump(&mut self, now: Instant, cause: Cause) {
        let at = self.clock(now);
        // Each round moves bytes or changes state; a few rounds settle any real situation (the
        // bound only guards against a stack that keeps asking to be polled).
        for _ in 0..16 {
            let wrote = self.write_outbox();
            let polled = self.iface.poll(at, &mut self.wire, &mut self.sockets);
            let read = self.read_frames();
            self.take_segments(cause);
            let changed = polled == smoltcp::iface::PollResult::SocketStateChanged;
            if !(wrote || read || changed) {
                break;
            }
        }
        self.settle_acks();
        self.watch_state(cause);
        let epoch = self.epoch.unwrap_or(now);
        self.deadline = self
            .iface
            .poll_at(at, &self.sockets)
            .map(|t| epoch + Duration::from_micros(u64::try_from(t.total_micros()).unwrap_or(0)))
            // A deadline already passed fires at the next instant the simulator can take, never
            // at one it has left behind (the clock does not go backwards).
            .map(|t| t.max(now + Duration::from_micros(1)));
    }

    /// Moves outbox bytes into the socket; sends the FIN once all are in. True if anything moved.
    fn write_outbox(&mut self) -> bool {
        let mut moved = false;
        while !self.outbox.is_empty() {
            let (head, _) = self.outbox.as_slices();
            let socket = self.sockets.get_mut::<tcp::Socket>(self.handle);
            let n = socket.send_slice(head).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.outbox.drain(..n);
            self.written += n as u64;
            moved = true;
        }
        if self.finishing && !self.fin_sent && self.outbox.is_empty() {
            self.socket().close();
            self.fin_sent = true;
            moved = true;
        }
        moved
    }

    /// Reads what the socket holds and turns complete frames into events. True if bytes moved.
    fn read_frames(&mut self) -> bool {
        let mut moved = false;
        let mut chunk = [0u8; 4096];
        loop {
            let n = match self.socket().recv_slice(&mut chunk) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            self.reader.push(&chunk[..n]);
            moved = true;
        }
        while let Some(result) = self.reader.next_message() {
            let from = self.peer.unwrap_or(SocketAddr::V4(self.local));
            match result {
                Ok(m) => {
                    self.stats.messages_received += 1;
                    self.events.push_back(Event::Message {
                        from,
                        nick: m.nick,
                        seq: Some(m.seq),
                        text: m.text,
                    });
                }
                Err(e) => self.frame_error(from, &e),
            }
        }
        moved
    }

    fn frame_error(&mut self, from: SocketAddr, error: &FrameError) {
        let cause = match error {
            FrameError::Decode(udpchat_core::DecodeError::BadChecksum { .. }) => {
                DropCause::Checksum
            }
            _ => DropCause::Malformed,
        };
        self.stats.count_drop(cause);
        self.events.push_back(Event::Dropped {
            from,
            cause,
            detail: error.to_string(),
        });
        if matches!(error, FrameError::TooLong { .. }) {
            // Framing is lost: nothing after this can be read, so the connection is of no use.
            self.socket().abort();
            self.aborted = true;
        }
    }

    /// Takes what smoltcp sent off the device, noting the entry point that caused each segment.
    fn take_segments(&mut self, cause: Cause) {
        while let Some((dst, segment)) = self.wire.strip() {
            if let Ok(packet) = TcpPacket::new_checked(&segment[..]) {
                let to = SocketAddr::V4(SocketAddrV4::new(dst, packet.dst_port()));
                self.transmits.push_back((to, segment, cause));
            }
        }
    }

    /// Counts `segment` as a resend if its data starts below the highest sequence number sent,
    /// by the entry point that caused it (a timer: a timeout; a segment that arrived: duplicate
    /// ACKs). Counted as it is handed out, so a wrapper reading the counters around
    /// `poll_transmit` (the ladder's) sees which datagram was the resend.
    fn count_resend(&mut self, segment: &[u8], cause: Cause) {
        let Ok(packet) = TcpPacket::new_checked(segment) else {
            return;
        };
        let len = packet.payload().len();
        if len == 0 {
            return;
        }
        let seq = packet.seq_number();
        let end = seq + len;
        match self.high_water {
            Some(high) if seq < high => match cause {
                Cause::Timer => self.stats.retransmits_timeout += 1,
                Cause::Arrival | Cause::App => self.stats.retransmits_fast += 1,
            },
            _ => {}
        }
        if self.high_water.is_none_or(|high| end > high) {
            self.high_water = Some(end);
        }
    }

    /// Forgets our messages whose bytes the peer's stack has acknowledged.
    fn settle_acks(&mut self) {
        let queued = self.socket().send_queue() as u64;
        let acked = self.written.saturating_sub(queued);
        while self.unacked.front().is_some_and(|&(end, _)| end <= acked) {
            self.unacked.pop_front();
        }
    }

    /// Reports what changed in the connection's state.
    fn watch_state(&mut self, cause: Cause) {
        let state = self.socket().state();
        if self.phase == Phase::Opening && state == State::Established {
            self.phase = Phase::Open;
            if let Some(addr) = self.socket().remote_endpoint().map(socket_addr) {
                self.peer = Some(addr);
                self.events.push_back(Event::Peer { addr, nick: None });
            }
        }
        let may_recv = self.socket().may_recv();
        if self.phase == Phase::Open && !self.peer_finished && !may_recv && state != State::Closed {
            self.peer_finished = true;
            self.events.push_back(Event::PeerFinished);
        }
        if self.phase != Phase::Over && matches!(state, State::Closed | State::TimeWait) {
            let listening_closed = self.phase == Phase::Opening && self.peer.is_none();
            self.phase = Phase::Over;
            let orderly = state == State::TimeWait
                || (self.fin_sent && self.peer_finished)
                || (self.finishing && listening_closed);
            if !orderly {
                self.report_lost();
                match cause {
                    // We reset it ourselves: the `Dropped` before says why.
                    _ if self.aborted => {}
                    // Only a segment (a reset) closes the connection as one arrives.
                    Cause::Arrival => self.events.push_back(Event::PeerClosed),
                    Cause::App | Cause::Timer => self.events.push_back(Event::PeerUnreachable),
                }
            }
            if self.finishing || !orderly {
                self.events.push_back(Event::Closed);
            }
        }
    }

    /// The connection died: every message not wholly acknowledged may never have been shown.
    fn report_lost(&mut self) {
        self.outbox.clear();
        for (_, id) in self.unacked.drain(..) {
            self.stats.messages_lost += 1;
            self.events.push_back(Event::Lost { id });
        }
    }

    /// Checks a segment's TCP checksum before smoltcp sees it, so corruption is counted (smoltcp
    /// drops bad segments silently).
    fn accept_segment(&mut self, from: SocketAddr, datagram: &[u8]) -> Result<Ipv4Addr, DropCause> {
        let SocketAddr::V4(from_v4) = from else {
            return Err(DropCause::Foreign);
        };
        if self.peer.is_some_and(|peer| peer != from) {
            return Err(DropCause::Foreign);
        }
        let packet = TcpPacket::new_checked(datagram).map_err(|_| DropCause::Malformed)?;
        let (src, dst) = (
            IpAddress::Ipv4(*from_v4.ip()),
            IpAddress::Ipv4(*self.local.ip()),
        );
        if !packet.verify_checksum(&src, &dst) {
            return Err(DropCause::Checksum);
        }
        Ok(*from_v4.ip())
    }
}

impl Endpoint for TcpEndpoint {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        if self.finishing || self.phase == Phase::Over {
            return Err(SendError::Closed);
        }
        if self.peer.is_none() {
            return Err(SendError::NoPeer);
        }
        let frame =
            frame::encode(self.next_message, &self.config.nick, text).map_err(|e| match e {
                EncodeError::TooLarge { max, .. } => SendError::TooLong {
                    len: text.len(),
                    max: max.saturating_sub(frame_overhead(&self.config.nick)),
                },
                _ => SendError::TooLong {
                    len: text.len(),
                    max: 0,
                },
            })?;
        let id = MessageId(self.next_message);
        self.next_message += 1;
        self.stats.messages_sent += 1;
        self.outbox.extend(frame);
        let end = self.written + self.outbox.len() as u64;
        self.unacked.push_back((end, id));
        self.pump(now, Cause::App);
        Ok(id)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        match self.accept_segment(from, datagram) {
            Ok(src) => {
                if self.wire.wrap(src, *self.local.ip(), datagram).is_err() {
                    self.stats.count_drop(DropCause::Malformed);
                    return;
                }
                if self.peer.is_none() {
                    self.peer = Some(from);
                }
                self.pump(now, Cause::Arrival);
            }
            Err(cause) => {
                self.stats.count_drop(cause);
                self.events.push_back(Event::Dropped {
                    from,
                    cause,
                    detail: match cause {
                        DropCause::Checksum => "bad TCP checksum".to_owned(),
                        DropCause::Foreign => "not from the peer".to_owned(),
                        _ => "not a TCP segment".to_owned(),
                    },
                });
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if self.epoch.is_none() {
            // The first call of a connecting side: let the stack send its SYN.
            self.pump(now, Cause::App);
        }
        let (to, segment, cause) = self.transmits.pop_front()?;
        self.count_resend(&segment, cause);
        buf.clear();
        buf.extend_from_slice(&segment);
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += segment.len() as u64;
        Some(to)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.pump(now, Cause::Timer);
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn close(&mut self, now: Instant) {
        self.finish(now);
    }

    fn finish(&mut self, now: Instant) {
        if !self.finishing {
            self.finishing = true;
            self.pump(now, Cause::App);
        }
    }

    fn is_closed(&self) -> bool {
        self.phase == Phase::Over && self.transmits.is_empty()
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

/// Bytes a frame adds to a message's text: the prefix and the raw packet's encoding.
fn frame_overhead(nick: &str) -> usize {
    frame::encode(0, nick, "").map_or(0, |f| f.len())
}

fn v4(addr: SocketAddr) -> Result<SocketAddrV4, TcpSetupError> {
    match addr {
        SocketAddr::V4(v4) => Ok(v4),
        SocketAddr::V6(_) => Err(TcpSetupError::NotIpv4(addr)),
    }
}

fn socket_addr(endpoint: smoltcp::wire::IpEndpoint) -> SocketAddr {
    SocketAddr::new(IpAddr::from(endpoint.addr), endpoint.port)
}

fn smol_duration(d: Duration) -> SmolDuration {
    SmolDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
