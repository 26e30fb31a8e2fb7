//! Workload 4, **clean loopback, real sockets**: udpchat's reliable mode over real UDP sockets on
//! 127.0.0.1, next to a raw UDP send/receive loop in the same run (the ceiling: no headers, no
//! acks, no retransmission, no state).
//!
//! Each side runs on its own thread, with udpchat's own tokio driver (`udpchat_driver::run`, what
//! `udpchat chat` runs: batched sends and receives, timers on time), so the row measures what a
//! user's chat does. The sender hands all its messages to the endpoint at once; the figure is messages delivered to the receiving application per second, from the
//! first send to the last delivery. Raw UDP is measured the same way; what the kernel drops
//! (the sender outruns the receiver) simply does not count as delivered.
//!
//! Nothing is sent anywhere but 127.0.0.1, on ports the kernel picks.

use std::net::{Ipv4Addr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use udpchat_driver::{Input, Sink};
use udpchat_reliable::{Endpoint, Event, ReliableEndpoint, SendError, Stats};

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

/// Counts what one side's driver reports, and closes that side's chat once `count` messages
/// are done (received, for the receiver; delivered or given up, for the sender).
struct Counter {
    size: usize,
    count: u64,
    start: Instant,
    /// Messages of `size` bytes received.
    received: u64,
    /// Messages of ours delivered or given up.
    settled: u64,
    /// When the last message counted arrived.
    last: Instant,
    close: Option<mpsc::Sender<Input>>,
}

impl Counter {
    fn new(size: usize, count: u64, start: Instant, close: mpsc::Sender<Input>) -> Counter {
        Counter {
            size,
            count,
            start,
            received: 0,
            settled: 0,
            last: start,
            close: Some(close),
        }
    }

    fn throughput(&self) -> Throughput {
        Throughput {
            delivered: self.received,
            elapsed: self.last - self.start,
        }
    }
}

impl Sink for Counter {
    fn event(&mut self, event: Event) {
        match event {
            Event::Message { text, .. } if text.len() == self.size => {
                self.received += 1;
                self.last = Instant::now();
            }
            Event::Delivered { .. } | Event::Lost { .. } => self.settled += 1,
            _ => {}
        }
        if self.received.max(self.settled) >= self.count {
            if let Some(close) = self.close.take() {
                // Only fails if the chat is already closing.
                let _ = close.try_send(Input::Close);
            }
        }
    }
    fn refused(&mut self, _line: &str, _error: &SendError) {}
    fn socket_error(&mut self, _error: &std::io::Error) {}
    fn stats(&mut self, _stats: &Stats) {}
}

/// Runs udpchat's own driver (the one `udpchat chat` runs: batched I/O, timers on time) for
/// `endpoint` on `socket`, on a runtime of this thread's own, until the chat closes or the
/// deadline passes.
fn drive(
    socket: UdpSocket,
    endpoint: &mut ReliableEndpoint,
    counter: &mut Counter,
    mut input: mpsc::Receiver<Input>,
) -> Result<(), std::io::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let run = udpchat_driver::run(endpoint, &socket, &mut input, counter);
        match tokio::time::timeout(DEADLINE, run).await {
            Ok(result) => result,
            // Out of time: what was counted so far is the result.
            Err(_) => Ok(()),
        }
    })
}

/// udpchat's reliable mode: `count` messages of `size` bytes from one thread's endpoint to
/// another's, each driven by udpchat's tokio driver.
pub fn udpchat(size: usize, count: u64, seed: u64) -> Result<Throughput, LoopbackError> {
    let a_socket = bind()?;
    let b_socket = bind()?;
    let b_addr = b_socket.local_addr()?;
    // The plain `udpchat` row: what `udpchat chat --mode reliable` builds with no flags.
    let config = crate::system::udpchat_config(System::Udpchat);
    let mut a = ReliableEndpoint::new(config.clone(), Some(b_addr), seed)?;
    let mut b = ReliableEndpoint::new(config, None, seed ^ 0x5eed)?;
    let start = Instant::now();
    let (b_tx, b_rx) = mpsc::channel(4);
    let receiver = {
        let b_tx = b_tx.clone();
        thread::spawn(move || -> Result<Throughput, std::io::Error> {
            let mut counter = Counter::new(size, count, start, b_tx);
            drive(b_socket, &mut b, &mut counter, b_rx)?;
            Ok(counter.throughput())
        })
    };
    let data = payload(size);
    let now = Instant::now();
    for _ in 0..count {
        if a.send(now, &data).is_err() {
            break;
        }
    }
    let (a_tx, a_rx) = mpsc::channel(4);
    let mut counter = Counter::new(size, count, start, a_tx);
    let sent = drive(a_socket, &mut a, &mut counter, a_rx);
    // The sender is done (or gave up): the receiver stops too, whatever it still waits for.
    let _ = b_tx.try_send(Input::Close);
    let received = receiver.join().map_err(|_| LoopbackError::Thread)?;
    sent?;
    Ok(received?)
}

/// Runs of each system at each size; the row is the median run. On a shared machine one run
/// can lose a core to something else for a while; the median of runs interleaved with the other
/// system's takes that out of both systems' rows alike.
pub const RUNS: usize = 3;

/// Runs the loopback workload: for each message size, [`RUNS`] rounds of raw UDP then udpchat,
/// `count` messages each; each system's row is its median run (by messages per second).
pub fn run(count: u64, seed: u64) -> Vec<Result<ResultRow, LoopbackError>> {
    let mut rows = Vec::new();
    for size in SIZES {
        let mut runs: [Vec<Throughput>; 2] = [Vec::new(), Vec::new()];
        let mut failed = None;
        for _ in 0..RUNS {
            match (raw_udp(size, count), udpchat(size, count, seed)) {
                (Ok(raw), Ok(ours)) => {
                    runs[0].push(raw);
                    runs[1].push(ours);
                }
                (Err(e), _) | (_, Err(e)) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            rows.push(Err(e));
            continue;
        }
        for (system, runs) in [System::RawUdp, System::Udpchat].into_iter().zip(runs) {
            rows.push(Ok(row(system, size, count, &runs)));
        }
    }
    rows
}

/// The row of `system`'s median run among `runs` (the note lists every run's rate).
fn row(system: System, size: usize, count: u64, runs: &[Throughput]) -> ResultRow {
    let rate = |t: &Throughput| t.msgs_per_s().unwrap_or(0.0);
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let t = sorted.get(sorted.len() / 2).copied().unwrap_or(Throughput {
        delivered: 0,
        elapsed: Duration::ZERO,
    });
    let mut row = ResultRow::new(system, Workload::Loopback, 0.0, LossModel::Kernel);
    row.message_bytes = Some(size);
    row.expected = count;
    row.delivered = t.delivered;
    row.msgs_per_s = Some(t.msgs_per_s());
    row.mb_per_s = Some(t.msgs_per_s().map(|m| m * size as f64 / 1e6));
    let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", rate(r))).collect();
    let mut note = format!("median of {} runs ({} msgs/s)", runs.len(), all.join(", "));
    if t.delivered < count {
        note.push_str(&match system {
            System::RawUdp => format!(
                "; {} of {count} datagrams dropped by the kernel (no retransmission)",
                count - t.delivered
            ),
            _ => format!(
                "; only {} of {count} delivered within {} s",
                t.delivered,
                DEADLINE.as_secs()
            ),
        });
    }
    row.note = Some(note);
    row
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_the_median_run_and_names_them_all() {
        let run = |delivered, millis| Throughput {
            delivered,
            elapsed: Duration::from_millis(millis),
        };
        // 1000/s, 4000/s, 2000/s: the median is the 2000/s run, whatever the order.
        let runs = [run(1000, 1000), run(4000, 1000), run(1000, 500)];
        let row = row(System::RawUdp, 64, 4000, &runs);
        assert_eq!(row.msgs_per_s, Some(Some(2000.0)));
        assert_eq!(row.delivered, 1000);
        let note = row.note.unwrap();
        assert!(
            note.starts_with("median of 3 runs (1000, 4000, 2000 msgs/s)"),
            "{note}"
        );
        assert!(note.contains("3000 of 4000 datagrams dropped"), "{note}");
    }
}
