//! `udpchat lab --real --modes kernel-tcp:CC`: the kernel's own TCP through the TUN relay.
//!
//! Each run makes its own pair of namespaces joined through a [`Relay`] with the point's
//! impairment both ways (the same knobs as the other modes' proxy, seeded from the run's seed),
//! then creates a listening socket in B's namespace and a client socket in A's (on a short-lived
//! thread that entered the namespace, [`in_namespace`]; a socket stays in the namespace it was
//! made in). Both get the run's congestion control (`TCP_CONGESTION`) and `TCP_NODELAY`: Nagle's
//! algorithm would hold a chat message back until the previous one is acknowledged, which is not
//! what a chat wants (udpchat's transports send at once too).
//!
//! A writes the lab's chat workload on the connection, message `i` at `i * interval`, each framed
//! as a 4-byte big-endian length and the text; B reads the byte stream and records when each
//! message is complete. Metrics mean what they mean for the other modes ([`RunMetrics`]):
//! - **latency**: from the later of the message's scheduled time and the connection being
//!   established to B's application reading it whole; time a message waited behind a full send
//!   buffer or behind a lost segment (head-of-line blocking) is part of it;
//! - **setup**: from the run's start to `connect` returning (the three-way handshake);
//! - **datagrams, bytes, data transmissions**: from the relay's counters: IP packets each side put
//!   on the link (before the impairment drops any), until the last message was delivered. Bytes
//!   are whole IP packets (IP and TCP headers included), where the UDP modes count UDP payloads:
//!   a UDP datagram carries 28 bytes of IP and UDP headers more than that. Data transmissions
//!   are A's TCP segments that carry data; with Nagle off most messages go in one segment, but a
//!   backlog (after a loss, or a full congestion window) is coalesced, so a lossy run can send
//!   fewer segments than messages;
//! - **head-of-line blocking** ([`hol::from_stream`]): the relay logs each A-to-B data segment it
//!   releases towards B (when, and its byte range from A's SYN); a message's arrival is when the
//!   last byte of its frame had come out, its delivery B's read. Real time adds B's own scheduling
//!   to every wait, so a message counts as held only if it came out whole before some earlier
//!   byte of the stream had and waited longer than [`hol::REAL_HELD_THRESHOLD`] (1 ms);
//! - **retransmissions by cause** are not known (the kernel does not say why it resent; the relay
//!   counts resent segments, `tcp_retransmitted`, and they are in the data transmissions), nor is
//!   anything ever "given up on": TCP either delivers in order or breaks the connection.
//!
//! Runs take real time and are not bit-exact: the kernel's timers, not the seed, decide when
//! segments go out, so the same seed gives the same fates to the same packet sequence but the
//! sequence itself may differ between reruns.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Barrier;
use udpchat_lab::derive_seed;
use udpchat_lab::experiment::hol::{self, HeadOfLine, StreamFrame, StreamSegment};
use udpchat_lab::experiment::kernel::KernelTcpJob;
use udpchat_lab::experiment::metrics::RunMetrics;
use udpchat_lab::experiment::real::REAL_TAIL;
use udpchat_lab::experiment::stats::percentile;
use udpchat_lab::experiment::{ExperimentError, KernelCc};

use crate::error::NetemError;
use crate::link::{run_relay, LinkAddresses, NamespaceLink};
use crate::namespace::in_namespace;
use crate::relay::{Direction, DirectionStats, LoggedSegment, Relay};

/// B's listening port.
const PORT: u16 = 5001;

/// The largest frame B accepts: far above any lab message, and a bound on what one bad length
/// prefix could make it buffer.
const MAX_FRAME: usize = 1 << 20;

/// Where the kernel lists the congestion controls a socket may choose.
const AVAILABLE_CC: &str = "/proc/sys/net/ipv4/tcp_available_congestion_control";

/// The congestion controls this kernel offers (`net.ipv4.tcp_available_congestion_control`).
pub fn available_congestion_controls() -> Result<Vec<String>, NetemError> {
    let text = std::fs::read_to_string(AVAILABLE_CC)
        .map_err(|e| NetemError::io(format!("cannot read {AVAILABLE_CC}"), e))?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// Refuses a congestion control this kernel does not offer, naming those it does.
pub fn check_congestion_control(cc: KernelCc) -> Result<(), NetemError> {
    let offered = available_congestion_controls()?;
    if offered.iter().any(|name| name == cc.name()) {
        Ok(())
    } else {
        Err(NetemError::CongestionControl {
            asked: cc.name().to_owned(),
            offered: offered.join(" "),
        })
    }
}

pub(crate) fn experiment_error(e: NetemError) -> ExperimentError {
    ExperimentError::Io(e.to_string())
}

/// One run: prepare, wait for every run of the sweep, transfer. (SIGINT and SIGTERM are the
/// sweep's business: it drops this run, whose guards then remove what it made.)
pub async fn run(job: KernelTcpJob, start: Rc<Barrier>) -> Result<RunMetrics, ExperimentError> {
    let prepared = prepare(&job);
    start.wait().await;
    transfer(prepared.map_err(experiment_error)?, &job).await
}

/// Everything a run needs before its clock starts.
struct Prepared {
    link: NamespaceLink,
    relay: Relay,
    listener: TcpListener,
    client: TcpSocket,
    to: SocketAddr,
}

/// The namespaces, the relay and the two sockets.
fn prepare(job: &KernelTcpJob) -> Result<Prepared, NetemError> {
    check_congestion_control(job.cc)?;
    let link = NamespaceLink::create(LinkAddresses::default())?;
    let mut relay = Relay::new(job.link.clone(), job.link.clone(), derive_seed(job.seed, 7));
    relay.log_stream();
    let cc = job.cc.name();
    let to = SocketAddr::from((link.addresses().b, PORT));
    let listener = in_namespace(link.namespace_b().path(), move || listening_socket(to, cc))?
        .map_err(|e| NetemError::io("cannot listen in namespace B", e))?;
    let client = in_namespace(link.namespace_a().path(), move || tcp_socket(cc))?
        .map_err(|e| NetemError::io("cannot create the socket in namespace A", e))?;
    let listener = TcpListener::from_std(listener.into())
        .map_err(|e| NetemError::io("cannot register the listener", e))?;
    let client = TcpSocket::from_std_stream(client.into());
    Ok(Prepared {
        link,
        relay,
        listener,
        client,
        to,
    })
}

/// A non-blocking TCP socket with the congestion control `cc` and Nagle off.
fn tcp_socket(cc: &str) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_tcp_congestion(cc.as_bytes())?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn listening_socket(at: SocketAddr, cc: &str) -> io::Result<Socket> {
    let socket = tcp_socket(cc)?;
    socket.set_reuse_address(true)?;
    socket.bind(&at.into())?;
    socket.listen(1)?;
    Ok(socket)
}

/// What B saw, and when.
struct Exchange {
    start: Instant,
    established: Option<Instant>,
    delivered: Vec<Option<Instant>>,
    out_of_order: u64,
    cut_short: bool,
}

/// Runs the relay and the exchange together; the relay stops when the last message is read.
async fn transfer(prepared: Prepared, job: &KernelTcpJob) -> Result<RunMetrics, ExperimentError> {
    let Prepared {
        link,
        mut relay,
        listener,
        client,
        to,
    } = prepared;
    let texts: Vec<String> = (0..job.config.messages)
        .map(|i| job.config.message(i))
        .collect();
    let exchange = {
        let relaying = run_relay(link.devices(), &mut relay, std::future::pending());
        tokio::pin!(relaying);
        let exchanging = exchange(listener, client, to, &texts, job.config.interval);
        tokio::select! {
            failed = &mut relaying => {
                let reason = failed.err().map_or("stopped".to_owned(), |e| e.to_string());
                return Err(ExperimentError::Io(format!("the TUN relay failed: {reason}")));
            }
            exchanged = exchanging => exchanged,
        }
    };
    let exchange = exchange.map_err(|e| ExperimentError::Io(format!("kernel TCP: {e}")))?;
    let up = relay.stats(Direction::AToB);
    let down = relay.stats(Direction::BToA);
    // The devices and namespaces go now, with `link`, but off this thread: removing a namespace
    // runs `ip` and waits for it, and the sweep's other runs, on this thread, are still
    // measuring. The runtime waits for blocking tasks when it shuts down, so none is left.
    tokio::task::spawn_blocking(move || drop(link));
    let released = relay.stream_log().map_or(&[][..], |log| log.segments());
    let hol = head_of_line(&exchange, &texts, released);
    Ok(metrics(job, &exchange, &up, &down).with_head_of_line(Some(hol)))
}

/// Head-of-line blocking of the run ([`hol::from_stream`]): the segments the relay released
/// towards B, against the frames A wrote (4-byte length and text, in order) and when B read each
/// one whole.
fn head_of_line(ex: &Exchange, texts: &[String], released: &[LoggedSegment]) -> HeadOfLine {
    let since_start = |at: Instant| at.saturating_duration_since(ex.start);
    let released: Vec<StreamSegment> = released
        .iter()
        .map(|s| StreamSegment {
            at: since_start(s.at),
            start: s.start,
            len: s.len,
        })
        .collect();
    let frames: Vec<StreamFrame> = texts
        .iter()
        .zip(&ex.delivered)
        .map(|(text, delivered)| StreamFrame {
            len: 4 + text.len() as u64,
            delivered: delivered.map(since_start),
        })
        .collect();
    hol::from_stream(&released, &frames, hol::REAL_HELD_THRESHOLD)
}

/// A connects and writes the messages on schedule; B reads them. Ends when B has them all, or
/// [`REAL_TAIL`] after the last scheduled send (cut short).
async fn exchange(
    listener: TcpListener,
    client: TcpSocket,
    to: SocketAddr,
    texts: &[String],
    interval: Duration,
) -> io::Result<Exchange> {
    let start = Instant::now();
    let last_send = start + interval * texts.len().saturating_sub(1) as u32;
    let mut ex = Exchange {
        start,
        established: None,
        delivered: vec![None; texts.len()],
        out_of_order: 0,
        cut_short: false,
    };
    let index: HashMap<&str, usize> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let deadline = tokio::time::Instant::from_std(last_send + REAL_TAIL);
    let transfer = async {
        let connect = async {
            let stream = client.connect(to).await?;
            ex.established = Some(Instant::now());
            Ok::<_, io::Error>(stream)
        };
        let (accepted, connected) = tokio::join!(listener.accept(), connect);
        let (mut receiver, _) = accepted?;
        let mut sender = connected?;
        let receiving = receive(
            &mut receiver,
            &index,
            &mut ex.delivered,
            &mut ex.out_of_order,
        );
        tokio::try_join!(send(&mut sender, texts, start, interval), receiving).map(|_| ())
    };
    match tokio::time::timeout_at(deadline, transfer).await {
        Ok(result) => result?,
        Err(_elapsed) => ex.cut_short = true,
    }
    Ok(ex)
}

/// Writes message `i` at `start + i * interval` (at once if that time has passed: the
/// connection came up late, or the send buffer was full).
async fn send(
    stream: &mut TcpStream,
    texts: &[String],
    start: Instant,
    interval: Duration,
) -> io::Result<()> {
    for (i, text) in texts.iter().enumerate() {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let len = u32::try_from(text.len()).map_err(io::Error::other)?;
        let mut frame = Vec::with_capacity(4 + text.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(text.as_bytes());
        stream.write_all(&frame).await?;
    }
    Ok(())
}

/// Reads frames until every message has arrived, recording when each one became whole.
async fn receive(
    stream: &mut TcpStream,
    index: &HashMap<&str, usize>,
    delivered: &mut [Option<Instant>],
    out_of_order: &mut u64,
) -> io::Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 65_536];
    let mut remaining = delivered.len();
    let mut highest: Option<usize> = None;
    while remaining > 0 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "A closed the connection early",
            ));
        }
        let now = Instant::now();
        buffer.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        while let Some(frame) = next_frame(&buffer[consumed..])? {
            consumed += 4 + frame.len();
            let text = std::str::from_utf8(frame).map_err(io::Error::other)?;
            let Some(&i) = index.get(text) else { continue };
            if delivered[i].is_none() {
                delivered[i] = Some(now);
                remaining -= 1;
                match highest {
                    Some(h) if i < h => *out_of_order += 1,
                    _ => highest = Some(i),
                }
            }
        }
        buffer.drain(..consumed);
    }
    Ok(())
}

/// The first whole frame's body in `bytes`, if one is complete.
fn next_frame(bytes: &[u8]) -> io::Result<Option<&[u8]>> {
    let Some(header) = bytes.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} B is beyond the {MAX_FRAME} B bound"),
        ));
    }
    Ok(bytes.get(4..4 + len))
}

/// The run's metrics, in the lab's terms.
fn metrics(
    job: &KernelTcpJob,
    ex: &Exchange,
    up: &DirectionStats,
    down: &DirectionStats,
) -> RunMetrics {
    let messages = u64::from(job.config.messages);
    let interval = job.config.interval;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut latencies: Vec<Duration> = ex
        .delivered
        .iter()
        .enumerate()
        .filter_map(|(i, at)| {
            let scheduled = ex.start + interval * i as u32;
            let from = ex.established.map_or(scheduled, |e| e.max(scheduled));
            at.map(|at| at.saturating_duration_since(from))
        })
        .collect();
    latencies.sort_unstable();
    let delivered = latencies.len() as u64;
    let datagrams = up.model.received + down.model.received;
    let wire_bytes = up.bytes_in + down.bytes_in;
    let delivered_bytes = delivered * job.config.size as u64;
    let last_delivery = ex.delivered.iter().flatten().max();
    let goodput_bps = last_delivery
        .map(|at| at.saturating_duration_since(ex.start))
        .filter(|d| !d.is_zero())
        .map(|d| (delivered_bytes * 8) as f64 / d.as_secs_f64());
    let ratio = |x: u64, of: u64| if of == 0 { 0.0 } else { x as f64 / of as f64 };
    RunMetrics {
        seed: job.seed,
        messages,
        delivered,
        delivery_ratio: ratio(delivered, messages),
        out_of_order: ex.out_of_order,
        setup_ms: ex
            .established
            .map(|e| ms(e.saturating_duration_since(ex.start))),
        latency_min_ms: latencies.first().map(|&d| ms(d)),
        latency_p50_ms: percentile(&latencies, 50.0).map(ms),
        latency_p90_ms: percentile(&latencies, 90.0).map(ms),
        latency_p99_ms: percentile(&latencies, 99.0).map(ms),
        latency_max_ms: latencies.last().map(|&d| ms(d)),
        datagrams,
        data_transmissions: up.tcp_data_segments,
        datagrams_per_delivered: (delivered > 0).then(|| ratio(datagrams, delivered)),
        transmissions_per_message: ratio(up.tcp_data_segments, messages),
        goodput_bps,
        wire_bytes,
        wire_per_byte: (delivered_bytes > 0).then(|| ratio(wire_bytes, delivered_bytes)),
        cut_short: ex.cut_short && delivered < messages,
        latencies_ms: latencies.iter().map(|&d| ms(d)).collect(),
        // Zero or unknown for kernel TCP: no duplicate deliveries (a byte stream), no message
        // given up on, and no resend causes (the kernel does not say; see the module's doc).
        ..RunMetrics::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metrics_count_latency_from_setup_and_cost_from_the_relay() {
        let config = udpchat_lab::experiment::ExperimentConfig {
            messages: 3,
            interval: Duration::from_millis(10),
            size: 64,
            ..Default::default()
        };
        let job = KernelTcpJob {
            config,
            link: udpchat_lab::ImpairmentConfig::default(),
            cc: KernelCc::Reno,
            seed: 4,
        };
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        // Set up at 15 ms: message 0 (due at 0) and 1 (due at 10) count from then; message 2 (due
        // at 20) from its own time. Message 1 never arrived (cut short).
        let ex = Exchange {
            start: t0,
            established: Some(t0 + ms(15)),
            delivered: vec![Some(t0 + ms(40)), None, Some(t0 + ms(50))],
            out_of_order: 0,
            cut_short: true,
        };
        let mut up = DirectionStats::default();
        up.model.received = 5;
        up.bytes_in = 500;
        up.tcp_data_segments = 3;
        let mut down = DirectionStats::default();
        down.model.received = 3;
        down.bytes_in = 156;
        let m = metrics(&job, &ex, &up, &down);
        assert_eq!((m.seed, m.messages, m.delivered), (4, 3, 2));
        assert_eq!(m.latencies_ms, vec![25.0, 30.0]);
        assert_eq!(m.setup_ms, Some(15.0));
        assert_eq!(
            (m.datagrams, m.wire_bytes, m.data_transmissions),
            (8, 656, 3)
        );
        assert_eq!(m.datagrams_per_delivered, Some(4.0));
        assert_eq!(m.transmissions_per_message, 1.0);
        assert_eq!(m.wire_per_byte, Some(656.0 / 128.0));
        assert!(m.cut_short);
        // 128 B delivered by 50 ms.
        assert_eq!(m.goodput_bps, Some(128.0 * 8.0 / 0.05));
    }

    #[test]
    fn frames_are_read_whole_and_bounded() {
        let mut bytes = 3u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"ab");
        assert_eq!(next_frame(&bytes).unwrap(), None, "incomplete");
        bytes.push(b'c');
        assert_eq!(next_frame(&bytes).unwrap(), Some(&b"abc"[..]));
        assert_eq!(next_frame(&bytes[..3]).unwrap(), None);
        let huge = (MAX_FRAME as u32 + 1).to_be_bytes();
        assert!(next_frame(&huge).is_err());
    }
}
