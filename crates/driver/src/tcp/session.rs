//! One TCP connection, from the first byte to the end: what we queue and write, what we read
//! and report, and when it is over. With `--secret`, what we queue waits as plain datagrams
//! until the handshake is done, and every frame is sealed and opened by a
//! [`udpchat_secure::SecureStream`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use udpchat_core::{ConnectionId, Data, DecodeError, EncodeError, Packet, SeqNum};
use udpchat_reliable::{
    DropCause, Event, HandshakeFailure, MessageId, NickError, SendError, Stats,
};
use udpchat_secure::{SecureStream, StreamError, StreamEvent, StreamRole, OVERHEAD};

use super::connect::{Connection, Listening, TurnAway};
use super::frame::{push_frame, FrameError, FrameReader, LineError, LineReader, MAX_FRAME};
use super::{EndReason, Ending, KernelView, TcpConfig, TcpSink, TcpStats, LINGER, MAX_QUEUED};
use crate::Input;

/// How often the end of a graceful session asks the kernel whether our last bytes were
/// acknowledged (a round trip on a LAN is well below it; on loopback the first ask says yes).
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 16 * 1024;

/// Bytes waiting to be handed to the kernel, and which of them end a line: a line is
/// "written" once the kernel took its last byte.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    buf: Vec<u8>,
    /// Bytes ever queued (the stream position of the end of `buf`).
    queued: u64,
    /// Bytes ever handed to the kernel.
    written: u64,
    /// Stream positions where a queued line ends, oldest first.
    line_ends: VecDeque<u64>,
    /// Lines the kernel has taken whole.
    lines_written: u64,
}

impl Outgoing {
    fn push(&mut self, bytes: &[u8], is_line: bool) {
        self.buf.extend_from_slice(bytes);
        self.queued += bytes.len() as u64;
        if is_line {
            self.line_ends.push_back(self.queued);
        }
    }

    /// Puts `bytes` before everything queued; only before anything was written.
    fn prepend(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.written, 0);
        self.buf.splice(0..0, bytes.iter().copied());
        self.queued += bytes.len() as u64;
        for end in &mut self.line_ends {
            *end += bytes.len() as u64;
        }
    }

    /// The kernel took `n` bytes from the front.
    fn wrote(&mut self, n: usize) {
        self.buf.drain(..n);
        self.written += n as u64;
        while self
            .line_ends
            .front()
            .is_some_and(|&end| end <= self.written)
        {
            self.line_ends.pop_front();
            self.lines_written += 1;
        }
    }

    fn unwritten_lines(&self) -> u64 {
        self.line_ends.len() as u64
    }
}

/// What we send, as datagrams (framed, or sealed and framed, when queued), or bare lines with
/// `--plain`.
#[derive(Debug)]
struct Encoder {
    plain: bool,
    /// Frames sent so far: the `seq` of the next one.
    seq: u64,
    /// The largest datagram: a frame's limit, less the sealing's overhead with `--secret` (so a
    /// sealed datagram still fits a frame).
    max_datagram: usize,
}

impl Encoder {
    /// A `Data`-shaped packet body for TCP mode: one whole message, no connection id, token or
    /// ack (TCP's own numbering and acknowledgements do that work).
    fn data(&mut self, message: u64, payload: Vec<u8>) -> Data {
        let seq = SeqNum(self.seq);
        self.seq += 1;
        Data {
            dst: ConnectionId(0),
            seq,
            message,
            fragment: 0,
            fragments: 1,
            token: 0,
            payload,
            ack: None,
        }
    }

    fn datagram(&mut self, packet: &Packet) -> Result<Vec<u8>, EncodeError> {
        udpchat_core::encode(packet, self.max_datagram)
    }

    fn line(&mut self, id: MessageId, text: &str) -> Result<Vec<u8>, SendError> {
        if self.plain {
            let mut out = Vec::with_capacity(text.len() + 1);
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
            return Ok(out);
        }
        let packet = Packet::Data(self.data(id.0, text.as_bytes().to_vec()));
        self.datagram(&packet).map_err(|e| match e {
            EncodeError::TooLarge { needed, max } => SendError::TooLong {
                len: text.len(),
                max: text.len().saturating_sub(needed - max),
            },
            _ => SendError::TooLong {
                len: text.len(),
                max: 0,
            },
        })
    }

    /// A `Nick`, `Fin` or `Close` datagram (none with `--plain`, which has no frames).
    fn control(&mut self, packet: impl FnOnce(&mut Self) -> Packet) -> Option<Vec<u8>> {
        if self.plain {
            return None;
        }
        let packet = packet(self);
        // Control packets are a few bytes, far below the frame limit.
        self.datagram(&packet).ok()
    }

    fn nick(&mut self, nick: &str) -> Option<Vec<u8>> {
        self.control(|e| Packet::Nick(e.data(0, nick.as_bytes().to_vec())))
    }

    fn fin(&mut self) -> Option<Vec<u8>> {
        self.control(|e| Packet::Fin(e.data(0, Vec::new())))
    }

    fn close(&mut self) -> Option<Vec<u8>> {
        self.control(|_| Packet::Close {
            dst: ConnectionId(0),
            ack: None,
        })
    }
}

/// How we said goodbye (queued; sent once everything before it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goodbye {
    /// A half-close: we send nothing more, and keep reading.
    Finish,
    /// We leave.
    Close,
}

/// Everything that can happen before there is a connection: lines are numbered and queued,
/// the nickname may change, we may finish or close.
pub(super) struct Early {
    out: Outgoing,
    /// `--secret`: datagrams (and whether each is a line) waiting for the handshake; sealed and
    /// framed into `out` once it is done.
    held: VecDeque<(Vec<u8>, bool)>,
    /// Bytes in `held`.
    held_bytes: usize,
    /// `--secret` was given.
    secret: bool,
    /// `--secret`: the stream's encryption, once there is a connection.
    stream: Option<SecureStream>,
    /// `--secret`: sealing failed (never, in practice): the connection must end.
    seal_failed: Option<StreamError>,
    /// `--secret`: the handshake was done (the stream may have failed since).
    proven: bool,
    encoder: Encoder,
    nick: String,
    next_id: u64,
    /// Our goodbye, if input ended (or a half-close) before there was a connection.
    pub goodbye: Option<Goodbye>,
    /// A `--peer` was given: lines wait for the connection. Without one, lines are refused
    /// until someone connects (as in the UDP modes, which have nobody to send to either).
    connecting: bool,
    /// There is a connection (the session has taken over).
    connected: bool,
    pub stats: Stats,
    pub turned_away: TurnAway,
}

impl Early {
    pub fn new(config: &TcpConfig) -> Early {
        Early {
            out: Outgoing::default(),
            held: VecDeque::new(),
            held_bytes: 0,
            secret: config.secret.is_some(),
            stream: None,
            seal_failed: None,
            proven: false,
            encoder: Encoder {
                plain: config.plain,
                seq: 0,
                max_datagram: if config.secret.is_some() {
                    MAX_FRAME - OVERHEAD
                } else {
                    MAX_FRAME
                },
            },
            nick: config.nick.clone(),
            next_id: 0,
            goodbye: None,
            connecting: config.peer.is_some(),
            connected: false,
            stats: Stats::default(),
            turned_away: TurnAway::default(),
        }
    }

    /// Lines accepted and not yet handed to the kernel.
    pub fn queued_lines(&self) -> u64 {
        let held = self.held.iter().filter(|(_, line)| *line).count() as u64;
        self.out.unwritten_lines() + held
    }

    /// Whether to read more input (not while too much is queued, see [`MAX_QUEUED`]).
    pub fn has_room(&self) -> bool {
        self.out.buf.len() + self.held_bytes < MAX_QUEUED
    }

    /// Nothing waits to be written: not in `out`, not held for the handshake.
    fn all_written(&self) -> bool {
        self.out.buf.is_empty() && self.held.is_empty()
    }

    /// Queues what the encoder made: bare with `--plain`, else as a frame; with `--secret`,
    /// sealed first, or held until the handshake is done.
    fn queue(&mut self, bytes: Vec<u8>, is_line: bool) {
        if self.encoder.plain {
            return self.out.push(&bytes, is_line);
        }
        let sealed = match self.stream.as_mut().filter(|s| s.is_established()) {
            None if self.secret => {
                self.held_bytes += bytes.len();
                return self.held.push_back((bytes, is_line));
            }
            None => bytes,
            Some(stream) => {
                let mut sealed = Vec::with_capacity(bytes.len() + OVERHEAD);
                if let Err(e) = stream.seal(std::time::Instant::now(), &bytes, &mut sealed) {
                    self.seal_failed.get_or_insert(e);
                    return;
                }
                sealed
            }
        };
        let mut frame = Vec::with_capacity(sealed.len() + 4);
        // The encoder's limit keeps every datagram, sealed too, within a frame.
        if push_frame(&sealed, &mut frame).is_ok() {
            self.out.push(&frame, is_line);
        }
    }

    /// Writes what the stream has to send (handshake messages) and passes its events on; once
    /// it is established, seals and queues what was held.
    fn pump<S: TcpSink + ?Sized>(&mut self, peer: SocketAddr, sink: &mut S) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut handshake = Vec::new();
        while let Some(frame) = stream.poll_transmit() {
            handshake.push(frame);
        }
        let mut established = false;
        while let Some(StreamEvent::Established { sas }) = stream.poll_event() {
            sink.event(Event::Secured { peer, sas });
            established = true;
        }
        for frame in handshake {
            self.stats.datagrams_sent += 1;
            let mut bytes = Vec::with_capacity(frame.len() + 4);
            if push_frame(&frame, &mut bytes).is_ok() {
                self.out.push(&bytes, false);
            }
        }
        if established {
            self.proven = true;
            self.held_bytes = 0;
            for (datagram, is_line) in std::mem::take(&mut self.held) {
                self.queue(datagram, is_line);
            }
        }
    }

    /// Takes one input before the connection exists; false if it closes the chat.
    pub fn input<S: TcpSink + ?Sized>(&mut self, command: Option<Input>, sink: &mut S) -> bool {
        match command {
            Some(Input::Line(line)) => self.line(&line, sink),
            Some(Input::Nick(nick)) if self.encoder.plain => {
                sink.nick(&nick, Err(NickError::Unsupported));
            }
            Some(Input::Nick(nick)) => {
                self.nick = nick.clone();
                sink.nick(&nick, Ok(()));
            }
            Some(Input::Stats) => sink.tcp_stats(&TcpStats {
                counters: self.stats.clone(),
                kernel: KernelView::NotConnected,
            }),
            // Nobody to tell yet: go on waiting, so the queued lines still go out, then the
            // Fin after them.
            Some(Input::Finish) => self.goodbye = Some(Goodbye::Finish),
            // Lines are waiting for the peer: connect (a few more tries), send them, close.
            Some(Input::Close) | None if self.queued_lines() > 0 => {
                self.goodbye = Some(Goodbye::Close);
            }
            Some(Input::Close) | None => return false,
        }
        true
    }

    /// True if input closed while lines wait for a connection.
    pub fn closing(&self) -> bool {
        self.goodbye == Some(Goodbye::Close)
    }

    fn line<S: TcpSink + ?Sized>(&mut self, line: &str, sink: &mut S) {
        if self.goodbye.is_some() {
            sink.refused(line, &SendError::Closed);
            return;
        }
        if !self.connecting && !self.connected {
            sink.refused(line, &SendError::NoPeer);
            return;
        }
        let id = MessageId(self.next_id);
        match self.encoder.line(id, line) {
            Ok(bytes) => {
                self.next_id += 1;
                self.stats.messages_sent += 1;
                if !self.encoder.plain {
                    self.stats.datagrams_sent += 1;
                }
                self.queue(bytes, true);
                sink.accepted(id, line);
            }
            Err(e) => sink.refused(line, &e),
        }
    }
}

/// A connected session.
pub(super) struct Session {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    local: SocketAddr,
    peer: SocketAddr,
    early: Early,
    listening: Listening,
    frames: FrameReader,
    lines: LineReader,
    peer_nick: Option<String>,
    /// The peer's goodbye frame, if it sent one.
    peer_goodbye: Option<Goodbye>,
    /// The peer's side of the stream ended (we read its FIN).
    peer_eof: bool,
    /// The peer closed first (its `Close` frame); we closed in answer.
    closed_by_peer: bool,
    /// Our write side is shut down (our FIN is queued in the kernel).
    shut: bool,
    /// When to stop waiting for the peer to close, once we closed or it said goodbye.
    linger_until: Option<Instant>,
    /// Set when the connection broke, or the stream became unreadable.
    broken: Option<EndReason>,
    /// `--secret`: the handshake failed; once what is queued (a `Reject` at most) is written,
    /// the connection ends with this.
    failing: Option<EndReason>,
    /// `--secret`: `Event::HandshakeFailed` was reported (once).
    handshake_reported: bool,
}

impl Session {
    pub fn new(
        connection: Connection,
        config: &TcpConfig,
        mut early: Early,
        listening: Listening,
    ) -> Session {
        let Connection {
            stream,
            local,
            peer,
            dialed,
        } = connection;
        // Chat lines are small: Nagle's algorithm would hold one back while an earlier one is
        // unacknowledged, adding a round trip for nothing.
        let _ = stream.set_nodelay(true);
        let mut broken = options::apply(&stream, config)
            .err()
            .map(|e| EndReason::Failed {
                error: format!("cannot set --tcp-user-timeout: {e}"),
            });
        early.connected = true;
        if let Some(nick) = early.encoder.nick(&early.nick.clone()) {
            early.stats.datagrams_sent += 1;
            if early.secret {
                // Held with the lines, sealed first once the handshake is done.
                early.held_bytes += nick.len();
                early.held.push_front((nick, false));
            } else {
                let mut frame = Vec::new();
                if push_frame(&nick, &mut frame).is_ok() {
                    early.out.prepend(&frame);
                }
            }
        }
        if let Some(secret) = config.secret.clone() {
            let role = if dialed {
                StreamRole::Initiator
            } else {
                StreamRole::Responder
            };
            match SecureStream::new(secret, role, peer, std::time::Instant::now()) {
                Ok(stream) => early.stream = Some(stream),
                Err(e) => {
                    broken = Some(EndReason::Failed {
                        error: format!("cannot start the encrypted handshake: {e}"),
                    })
                }
            }
        }
        let (reader, writer) = stream.into_split();
        Session {
            reader,
            writer,
            local,
            peer,
            early,
            listening,
            frames: FrameReader::new(),
            lines: LineReader::new(),
            peer_nick: None,
            peer_goodbye: None,
            peer_eof: false,
            closed_by_peer: false,
            shut: false,
            linger_until: None,
            broken,
            failing: None,
            handshake_reported: false,
        }
    }

    /// Runs until the connection is over; says how it ended.
    pub async fn run<S: TcpSink + ?Sized>(
        mut self,
        input: &mut mpsc::Receiver<Input>,
        sink: &mut S,
    ) -> Ending {
        sink.event(Event::Peer {
            addr: self.peer,
            nick: None,
        });
        // The initiator's Init goes first.
        self.early.pump(self.peer, sink);
        // A finish asked for while connecting: the queued lines first, then the Fin.
        if let Some(goodbye) = self.early.goodbye.take() {
            self.say_goodbye(goodbye);
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let mut input_open = true;
        loop {
            if let Some(reason) = self.failed_handshake_written() {
                self.close_after_failure(&mut buf).await;
                return self.ending(reason).await;
            }
            if let Some(reason) = self.over() {
                self.unfinished_handshake(&reason, sink);
                return self.ending(reason).await;
            }
            if self.early.all_written() && self.early.goodbye.is_some() && !self.shut {
                self.shut = true;
                // Our FIN: the peer reads the end of our stream after everything we wrote.
                if let Err(e) = self.writer.shutdown().await {
                    self.broken = Some(classify(&e));
                }
                continue;
            }
            // After our half-close, input is still read: a Ctrl-C (Close) must still leave.
            let reading = input_open
                && self.failing.is_none()
                && self.early.has_room()
                && self.early.goodbye != Some(Goodbye::Close)
                && self.peer_goodbye != Some(Goodbye::Close);
            let handshake_deadline = self
                .early
                .stream
                .as_ref()
                .filter(|_| self.failing.is_none())
                .and_then(SecureStream::poll_timeout)
                .map(Instant::from_std);
            tokio::select! {
                read = self.reader.read(&mut buf), if !self.peer_eof && self.failing.is_none() => match read {
                    Ok(0) => self.end_of_stream(sink),
                    Ok(n) => self.received(&buf[..n], sink),
                    Err(e) => self.broken = Some(classify(&e)),
                },
                wrote = self.writer.write(&self.early.out.buf), if !self.early.out.buf.is_empty() => {
                    match wrote {
                        Ok(n) => {
                            self.early.stats.bytes_sent += n as u64;
                            self.early.out.wrote(n);
                        }
                        Err(e) => self.broken = Some(classify(&e)),
                    }
                }
                command = input.recv(), if reading => match command {
                    Some(command) => self.command(command, sink),
                    None => {
                        input_open = false;
                        self.say_goodbye(Goodbye::Close);
                    }
                },
                accepted = self.listening.listener.accept() => {
                    if let Ok((_, from)) = accepted {
                        let peer = self.peer;
                        self.early.turned_away.turn_away(from, peer, &mut self.early.stats, sink);
                    }
                }
                () = sleep_until(self.linger_until) => {
                    // After a failed handshake, the linger only bounds the wait for the Reject
                    // to be written (see `failed_handshake_written`).
                    if self.failing.is_none() {
                        self.broken = Some(EndReason::LingerExpired);
                    }
                }
                () = sleep_until(handshake_deadline) => {
                    let now = std::time::Instant::now();
                    if let Some(Err(e)) = self.early.stream.as_mut().map(|s| s.handle_timeout(now)) {
                        self.stream_failed(e, false, sink);
                    }
                }
            }
        }
    }

    /// After a failed handshake: the ending, once what it queued (a `Reject`) is written or the
    /// linger ran out.
    fn failed_handshake_written(&self) -> Option<EndReason> {
        let failing = self.failing.clone()?;
        let gave_up = self.linger_until.is_some_and(|t| Instant::now() >= t);
        (self.early.out.buf.is_empty() || gave_up).then_some(failing)
    }

    /// Closes after a failed handshake: our FIN after the `Reject`, and what the peer already
    /// sent is read and discarded, so that closing does not reset the connection (a reset can
    /// make the peer's kernel discard the `Reject` before its program reads it).
    async fn close_after_failure(&mut self, buf: &mut [u8]) {
        let _ = self.writer.shutdown().await;
        while matches!(self.reader.try_read(buf), Ok(n) if n > 0) {}
    }

    /// The connection ended before the encrypted handshake was done and nothing said why: it
    /// failed all the same (exit code 4), for want of an answer or of a udpchat peer.
    fn unfinished_handshake<S: TcpSink + ?Sized>(&mut self, reason: &EndReason, sink: &mut S) {
        let unfinished = self.early.stream.is_some() && !self.early.proven;
        if !unfinished || self.handshake_reported {
            return;
        }
        let failure = match reason {
            EndReason::BadStream { .. } => HandshakeFailure::WrongPassphrase,
            _ => HandshakeFailure::NoAnswer,
        };
        self.handshake_reported = true;
        sink.event(Event::HandshakeFailed {
            peer: self.peer,
            reason: failure,
        });
    }

    /// The encryption refused a frame (`frame`), or the handshake ran out of time: a failed
    /// handshake closes once its `Reject` is written; anything after the handshake is an attack
    /// on the stream and ends it at once.
    fn stream_failed<S: TcpSink + ?Sized>(
        &mut self,
        error: StreamError,
        frame: bool,
        sink: &mut S,
    ) {
        if frame {
            let cause = error.cause();
            self.early.stats.count_drop(cause);
            sink.event(self.dropped(cause, error.to_string()));
        }
        match error.handshake_failure() {
            Some(failure) => {
                self.handshake_reported = true;
                sink.event(Event::HandshakeFailed {
                    peer: self.peer,
                    reason: failure,
                });
                self.early.pump(self.peer, sink);
                self.failing = Some(EndReason::HandshakeFailed { failure });
                self.linger_until = Some(Instant::now() + LINGER);
            }
            None => {
                self.broken = Some(EndReason::Unauthenticated {
                    error: error.to_string(),
                });
            }
        }
    }

    fn command<S: TcpSink + ?Sized>(&mut self, command: Input, sink: &mut S) {
        match command {
            Input::Line(line) => self.early.line(&line, sink),
            Input::Nick(nick) if self.early.encoder.plain => {
                sink.nick(&nick, Err(NickError::Unsupported));
            }
            Input::Nick(nick) => {
                if let Some(datagram) = self.early.encoder.nick(&nick) {
                    self.early.queue(datagram, false);
                }
                self.early.stats.datagrams_sent += 1;
                self.early.nick = nick.clone();
                sink.nick(&nick, Ok(()));
            }
            Input::Stats => sink.tcp_stats(&TcpStats {
                counters: self.early.stats.clone(),
                kernel: KernelView::read(self.local, self.peer),
            }),
            Input::Finish => self.say_goodbye(Goodbye::Finish),
            Input::Close => self.say_goodbye(Goodbye::Close),
        }
    }

    /// Queues our goodbye frame; the write side is shut down once it is written. A close also
    /// starts the linger: how long we wait for the peer to close its side.
    fn say_goodbye(&mut self, goodbye: Goodbye) {
        if self.early.goodbye == Some(Goodbye::Close) || (self.shut && goodbye == Goodbye::Finish) {
            return;
        }
        // A close after our half-close: no frame can follow the Fin, so we simply stop.
        if self.early.goodbye == Some(Goodbye::Finish) && goodbye == Goodbye::Close {
            self.broken = Some(EndReason::LeftEarly);
            return;
        }
        if self.early.goodbye.is_none() {
            let datagram = match goodbye {
                Goodbye::Finish => self.early.encoder.fin(),
                Goodbye::Close => self.early.encoder.close(),
            };
            if let Some(datagram) = datagram {
                self.early.stats.datagrams_sent += 1;
                self.early.queue(datagram, false);
            }
        }
        self.early.goodbye = Some(goodbye);
        if goodbye == Goodbye::Close {
            self.linger_until = Some(Instant::now() + LINGER);
        }
    }

    /// Whether the session is over, and why.
    fn over(&mut self) -> Option<EndReason> {
        if let Some(reason) = self.broken.take() {
            return Some(reason);
        }
        if let Some(e) = self.early.seal_failed.take() {
            return Some(EndReason::Failed {
                error: format!("cannot seal a frame: {e}"),
            });
        }
        if !self.peer_eof {
            return None;
        }
        let plain = self.early.encoder.plain;
        match (self.early.goodbye, self.peer_goodbye) {
            _ if self.closed_by_peer => Some(EndReason::PeerLeft),
            (Some(Goodbye::Close), _) if self.shut => Some(EndReason::Closed),
            (_, Some(Goodbye::Close)) => Some(EndReason::PeerLeft),
            (Some(Goodbye::Finish), _) if self.shut && (plain || self.peer_goodbye.is_some()) => {
                Some(EndReason::BothFinished)
            }
            // The peer finished; we may go on sending until our own input ends.
            (_, Some(Goodbye::Finish)) => None,
            // With --plain the end of the peer's stream is all the goodbye there is.
            (_, None) if plain => Some(EndReason::PeerLeft),
            (_, None) => Some(EndReason::PeerVanished),
        }
    }

    async fn ending(&self, reason: EndReason) -> Ending {
        let kernel = self.settled_kernel(&reason).await;
        // Our data bytes the peer has not acknowledged: what we wrote, less what the kernel
        // counts acknowledged (the SYN is not counted there; an acknowledged FIN adds one).
        let written = self.early.out.written;
        let unacked_bytes = match &kernel {
            KernelView::Known(info) => Some(written.saturating_sub(info.bytes_acked)),
            // Gone after a graceful close (FINs exchanged both ways) means all acknowledged;
            // after a reset it means nothing: the kernel threw the connection away.
            KernelView::Closed
                if matches!(
                    reason,
                    EndReason::Closed | EndReason::BothFinished | EndReason::PeerLeft
                ) =>
            {
                Some(0)
            }
            KernelView::Closed => None,
            KernelView::NotConnected | KernelView::Unavailable { .. } => None,
        };
        Ending {
            reason,
            lines_written: self.early.out.lines_written,
            lines_unwritten: self.early.queued_lines(),
            unacked_bytes,
            kernel,
            counters: self.early.stats.clone(),
        }
    }

    /// The kernel's figures at the end. After a graceful ending, our last bytes (and FIN) may
    /// still be on their way: nothing more will come from the peer to say they arrived, so ask
    /// the kernel again, every [`SETTLE_POLL`], until it says they were acknowledged or
    /// [`LINGER`] has passed. Only then is "unacknowledged" a fact worth an exit code.
    async fn settled_kernel(&self, reason: &EndReason) -> KernelView {
        let graceful = matches!(
            reason,
            EndReason::Closed
                | EndReason::BothFinished
                | EndReason::PeerLeft
                | EndReason::LeftEarly
        );
        let deadline = Instant::now() + LINGER;
        loop {
            let kernel = KernelView::read(self.local, self.peer);
            let pending = match &kernel {
                KernelView::Known(info) => info.bytes_acked < self.early.out.written,
                _ => false,
            };
            if !graceful || !pending || Instant::now() >= deadline {
                return kernel;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    fn end_of_stream<S: TcpSink + ?Sized>(&mut self, sink: &mut S) {
        self.peer_eof = true;
        if let Some((text, _)) = self.lines.finish() {
            self.message(None, text, sink);
        }
        let cut = self.frames.pending();
        if cut > 0 {
            self.early.stats.count_drop(DropCause::Malformed);
            sink.event(self.dropped(
                DropCause::Malformed,
                format!("the stream ended inside a frame ({cut} bytes of it arrived)"),
            ));
        }
    }

    fn received<S: TcpSink + ?Sized>(&mut self, bytes: &[u8], sink: &mut S) {
        self.early.stats.bytes_received += bytes.len() as u64;
        if self.early.encoder.plain {
            self.lines.push(bytes);
            while let Some(line) = self.lines.next_line() {
                match line {
                    Ok((text, _)) => self.message(None, text, sink),
                    Err(e @ LineError::TooLong { .. }) => {
                        self.early.stats.count_drop(DropCause::Malformed);
                        sink.event(self.dropped(DropCause::Malformed, e.to_string()));
                    }
                }
            }
            return;
        }
        self.frames.push(bytes);
        // After a fatal error nothing more is read: the connection ends.
        while self.failing.is_none() && self.broken.is_none() {
            let Some(frame) = self.frames.next_datagram() else {
                break;
            };
            match frame {
                Ok((datagram, _)) => {
                    self.early.stats.datagrams_received += 1;
                    self.datagram(&datagram, sink);
                }
                Err(e) => self.bad_frame(e, sink),
            }
        }
    }

    /// One frame's datagram: opened first with `--secret` (or taken as a handshake step).
    fn datagram<S: TcpSink + ?Sized>(&mut self, datagram: &[u8], sink: &mut S) {
        let now = std::time::Instant::now();
        let opened = match self.early.stream.as_mut() {
            None => Some(datagram.to_vec()),
            Some(stream) => match stream.handle_frame(now, datagram) {
                Ok(opened) => opened,
                Err(e) => return self.stream_failed(e, true, sink),
            },
        };
        self.early.pump(self.peer, sink);
        if let Some(plain) = opened {
            match udpchat_core::decode(&plain) {
                Ok(packet) => self.packet(packet, sink),
                Err(e) => self.bad_frame(FrameError::Decode(e), sink),
            }
        }
    }

    fn bad_frame<S: TcpSink + ?Sized>(&mut self, error: FrameError, sink: &mut S) {
        let cause = match error {
            FrameError::Decode(DecodeError::BadChecksum { .. }) => DropCause::Checksum,
            _ => DropCause::Malformed,
        };
        self.early.stats.count_drop(cause);
        sink.event(self.dropped(cause, error.to_string()));
        if error.is_fatal() {
            self.broken = Some(EndReason::BadStream {
                error: error.to_string(),
            });
        }
    }

    fn packet<S: TcpSink + ?Sized>(&mut self, packet: Packet, sink: &mut S) {
        let text = |payload: Vec<u8>| match String::from_utf8(payload) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        match packet {
            Packet::Data(d) if d.fragment == 0 && d.fragments == 1 => {
                self.message(Some(d.message), text(d.payload), sink);
            }
            Packet::Nick(d) => {
                let new = text(d.payload);
                match self.peer_nick.replace(new.clone()) {
                    Some(old) if old != new => sink.event(Event::NickChanged { old, new }),
                    _ => {}
                }
            }
            Packet::Fin(_) if self.peer_goodbye.is_none() => {
                self.peer_goodbye = Some(Goodbye::Finish);
                sink.event(Event::PeerFinished);
            }
            Packet::Close { .. } if self.peer_goodbye != Some(Goodbye::Close) => {
                self.peer_goodbye = Some(Goodbye::Close);
                sink.event(Event::PeerClosed);
                // It reads no more: stop sending (what is queued still goes: it may be read
                // while the peer lingers), and wait a while for its side to close. No Close
                // frame back: it knows.
                if self.early.goodbye != Some(Goodbye::Close) {
                    self.closed_by_peer = true;
                    self.early.goodbye = Some(Goodbye::Close);
                    self.linger_until = Some(Instant::now() + LINGER);
                }
            }
            other => {
                self.early.stats.count_drop(DropCause::Stale);
                let detail = format!(
                    "a {:?} packet, which TCP mode does not use (only whole Data, Nick, Fin \
                     and Close)",
                    other.kind()
                );
                sink.event(self.dropped(DropCause::Stale, detail));
            }
        }
    }

    fn message<S: TcpSink + ?Sized>(&mut self, seq: Option<u64>, text: String, sink: &mut S) {
        self.early.stats.messages_received += 1;
        sink.event(Event::Message {
            from: self.peer,
            nick: self.peer_nick.clone().unwrap_or_default(),
            seq,
            text,
        });
    }

    fn dropped(&self, cause: DropCause, detail: String) -> Event {
        Event::Dropped {
            from: self.peer,
            cause,
            detail,
        }
    }
}

/// What a socket error means for the session.
fn classify(error: &io::Error) -> EndReason {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => EndReason::Reset,
        io::ErrorKind::TimedOut => EndReason::TimedOut,
        _ => EndReason::Failed {
            error: error.to_string(),
        },
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Socket options from the configuration.
mod options {
    use super::*;

    /// `--tcp-user-timeout`, where the platform has it (the binary refuses it elsewhere).
    pub fn apply(stream: &tokio::net::TcpStream, config: &TcpConfig) -> io::Result<()> {
        let Some(timeout) = config.user_timeout else {
            return Ok(());
        };
        #[cfg(target_os = "linux")]
        {
            socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (stream, timeout);
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TCP_USER_TIMEOUT is Linux only",
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_user_timeout_reaches_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let config = TcpConfig {
            peer: None,
            nick: "n".into(),
            plain: false,
            user_timeout: Some(std::time::Duration::from_secs(7)),
            secret: None,
        };
        options::apply(&stream, &config).unwrap();
        let set = socket2::SockRef::from(&stream).tcp_user_timeout().unwrap();
        assert_eq!(set, Some(std::time::Duration::from_secs(7)));
    }

    #[test]
    fn a_line_counts_as_written_once_the_kernel_took_its_last_byte() {
        let mut out = Outgoing::default();
        out.push(b"aaaa", true);
        out.push(b"cc", false);
        out.push(b"bbbb", true);
        out.prepend(b"nn");
        out.wrote(5);
        assert_eq!((out.lines_written, out.unwritten_lines()), (0, 2));
        out.wrote(1);
        assert_eq!((out.lines_written, out.unwritten_lines()), (1, 1));
        out.wrote(6);
        assert_eq!((out.lines_written, out.unwritten_lines()), (2, 0));
        assert!(out.buf.is_empty());
    }
}
