//! Workload 4, **clean loopback, real sockets**: udpchat's reliable mode over real UDP sockets on
//! 127.0.0.1, next to a raw UDP send/receive loop in the same run (the ceiling: no headers, no
//! acks, no retransmission, no state).
//!
//! Each side runs on its own thread with a blocking socket whose read timeout is the endpoint's
//! next timer: the simplest honest driver for a sans-IO endpoint (socket → `handle_datagram`,
//! `poll_transmit` → socket, timers on time). The sender hands all its messages to the endpoint
//! at once; the figure is messages delivered to the receiving application per second, from the
//! first send to the last delivery. Raw UDP is measured the same way; what the kernel drops
//! (the sender outruns the receiver) simply does not count as delivered.
//!
//! Nothing is sent anywhere but 127.0.0.1, on ports the kernel picks.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use udpchat_reliable::{Endpoint, Event, ReliableEndpoint};

use crate::report::{LossModel, ResultRow, Workload};
use crate::system::System;

/// The message sizes of the issue.
pub const SIZES: [usize; 2] = [64, 1200];
/// A run is abandoned after this long of real time.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Raw UDP: the receiver stops after this long without a datagram (the sender has finished and
/// the rest were dropped).
const RAW_SILENCE: Duration = Duration::from_millis(500);

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Messages delivered to the receiving application.
    pub delivered: u64,
    /// From the first send to the last delivery.
    pub elapsed: Duration,
}

impl Throughput {
    /// Messages per second, if anything arrived.
    pub fn msgs_per_s(&self) -> Option<f64> {
        (self.delivered > 0 && !self.elapsed.is_zero())
            .then(|| self.delivered as f64 / self.elapsed.as_secs_f64())
    }
}

/// Why a loopback run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// A socket could not be opened or used.
    #[error("loopback socket: {0}")]
    Io(#[from] std::io::Error),
    /// udpchat refused its configuration.
    #[error("udpchat configuration refused: {0}")]
    Config(#[from] udpchat_reliable::transport::ConfigError),
    /// A thread panicked.
    #[error("a loopback thread failed")]
    Thread,
}

fn bind() -> Result<UdpSocket, std::io::Error> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
}

fn payload(size: usize) -> String {
    "m".repeat(size)
}

/// Raw UDP: `count` datagrams of `size` bytes as fast as the sender can, counted by the receiver.
pub fn raw_udp(size: usize, count: u64) -> Result<Throughput, LoopbackError> {
    let receiver = bind()?;
    let sender = bind()?;
    let to = receiver.local_addr()?;
    receiver.set_read_timeout(Some(RAW_SILENCE))?;
    let start = Instant::now();
    let counter = thread::spawn(move || -> Throughput {
        let mut buf = vec![0u8; 65_536];
        let mut delivered = 0;
        let mut last = start;
        while delivered < count && start.elapsed() < DEADLINE {
            match receiver.recv_from(&mut buf) {
                Ok((n, _)) if n == size => {
                    delivered += 1;
                    last = Instant::now();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Throughput {
            delivered,
            elapsed: last - start,
        }
    });
    let data = payload(size);
    for _ in 0..count {
        // A full socket buffer is the kernel dropping: it counts as loss, not as an error.
        let _ = sender.send_to(data.as_bytes(), to);
    }
    counter.join().map_err(|_| LoopbackError::Thread)
}

/// Drives `endpoint` on `socket` until `done` says so or the deadline passes; `on_event` sees
/// every application event.
fn drive(
    socket: &UdpSocket,
    endpoint: &mut ReliableEndpoint,
    start: Instant,
    mut done: impl FnMut(&ReliableEndpoint) -> bool,
    mut on_event: impl FnMut(Event),
) -> Result<(), std::io::Error> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        while let Some(t) = endpoint.poll_transmit_owned(now) {
            match socket.send_to(&t.payload, t.destination) {
                Ok(_) => {}
                // The kernel's buffer is full: the datagram is lost, and the transport repairs it.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        while let Some(event) = endpoint.poll_event() {
            on_event(event);
        }
        if done(endpoint) || start.elapsed() > DEADLINE {
            return Ok(());
        }
        let wait = endpoint
            .poll_timeout()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(50), Duration::from_millis(50));
        socket.set_read_timeout(Some(wait))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => endpoint.handle_datagram(Instant::now(), from, &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if endpoint.poll_timeout().is_some_and(|t| t <= now) {
            endpoint.handle_timeout(now);
        }
    }
}

/// udpchat's reliable mode: `count` messages of `size` bytes from one thread's endpoint to
/// another's.
pub fn udpchat(size: usize, count: u64, seed: u64) -> Result<Throughput, LoopbackError> {
    let a_socket = bind()?;
    let b_socket = bind()?;
    let b_addr = b_socket.local_addr()?;
    // The plain `udpchat` row: what `udpchat chat --mode reliable` builds with no flags.
    let config = crate::system::udpchat_config(System::Udpchat);
    let mut a = ReliableEndpoint::new(config.clone(), Some(b_addr), seed)?;
    let mut b = ReliableEndpoint::new(config, None, seed ^ 0x5eed)?;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let receiver = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || -> Result<Throughput, std::io::Error> {
            let mut delivered = 0u64;
            let mut last = start;
            drive(
                &b_socket,
                &mut b,
                start,
                |_| stop.load(Ordering::Relaxed),
                |event| {
                    if let Event::Message { text, .. } = event {
                        if text.len() == size {
                            delivered += 1;
                            last = Instant::now();
                        }
                    }
                },
            )?;
            Ok(Throughput {
                delivered,
                elapsed: last - start,
            })
        })
    };
    let data = payload(size);
    let now = Instant::now();
    for _ in 0..count {
        if a.send(now, &data).is_err() {
            break;
        }
    }
    let sent = drive(
        &a_socket,
        &mut a,
        start,
        |a| a.stats().messages_delivered + a.stats().messages_lost >= count,
        |_| {},
    );
    stop.store(true, Ordering::Relaxed);
    let received = receiver.join().map_err(|_| LoopbackError::Thread)?;
    sent?;
    Ok(received?)
}

/// Runs the loopback workload: for each message size, raw UDP then udpchat, `count` messages.
pub fn run(count: u64, seed: u64) -> Vec<Result<ResultRow, LoopbackError>> {
    let mut rows = Vec::new();
    for size in SIZES {
        for system in [System::RawUdp, System::Udpchat] {
            let measured = match system {
                System::RawUdp => raw_udp(size, count),
                _ => udpchat(size, count, seed),
            };
            rows.push(measured.map(|t| {
                let mut row = ResultRow::new(system, Workload::Loopback, 0.0, LossModel::Kernel);
                row.message_bytes = Some(size);
                row.expected = count;
                row.delivered = t.delivered;
                row.msgs_per_s = Some(t.msgs_per_s());
                row.mb_per_s = Some(t.msgs_per_s().map(|m| m * size as f64 / 1e6));
                if t.delivered < count {
                    row.note = Some(match system {
                        System::RawUdp => format!(
                            "{} of {count} datagrams dropped by the kernel (no retransmission)",
                            count - t.delivered
                        ),
                        _ => format!(
                            "only {} of {count} delivered within {} s",
                            t.delivered,
                            DEADLINE.as_secs()
                        ),
                    });
                }
                row
            }));
        }
    }
    rows
}
