//! The `sim` workload: how fast the lab's [`Simulator`] itself runs, with endpoints that cost
//! nothing, in datagram events per second of wall-clock time on one core.
//!
//! Every other workload measures transports inside the simulator; this one measures the
//! simulator, so that a slow lab is noticed (issue 14 asks for at least 5 M events/s). A and B
//! each send a message every 100 µs of virtual time over 20 ms links, [`NullEndpoint`] turns each
//! into one 64-byte datagram and only counts arrivals, and the trace is off (the lab's sweeps
//! keep it on; the criterion benchmark `simulator` in `benches/hot_paths.rs` measures both). A
//! datagram event is one datagram delivered. The figure is the median of [`REPEATS`] runs, each
//! timed from building the simulator to its summary (building the scenario's texts is not
//! simulation and is left out), by the thread's CPU time where Linux tells it, so that other
//! work on a shared machine does not count (the row's note says which clock was used). It
//! depends on the machine, unlike every other figure here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::sim::{Scenario, Side, Simulator, ADDR_A, ADDR_B};
use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats};

use crate::report::{LossModel, ResultRow, Workload};
use crate::system::System;

/// Timed runs; the row reports the median.
pub const REPEATS: usize = 5;

/// An endpoint that costs nothing: each `send` queues one fixed 64-byte datagram to the peer,
/// arrivals are only counted, and it has no timers and no events. Driving it measures the
/// simulator's own machinery (links, clock, bookkeeping) rather than the codec of the endpoints.
#[derive(Debug)]
pub struct NullEndpoint {
    peer: SocketAddr,
    queued: u32,
    /// Datagrams that arrived.
    pub received: u64,
}

impl NullEndpoint {
    /// An endpoint that sends to `peer`.
    pub fn new(peer: SocketAddr) -> NullEndpoint {
        NullEndpoint {
            peer,
            queued: 0,
            received: 0,
        }
    }
}

impl Endpoint for NullEndpoint {
    fn send(&mut self, _now: Instant, _text: &str) -> Result<MessageId, SendError> {
        self.queued += 1;
        Ok(MessageId(0))
    }
    fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _datagram: &[u8]) {
        self.received += 1;
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        self.queued = self.queued.checked_sub(1)?;
        buf.clear();
        buf.resize(64, 0);
        Some(self.peer)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_event(&mut self) -> Option<Event> {
        None
    }
    fn close(&mut self, _now: Instant) {}
    fn finish(&mut self, _now: Instant) {}
    fn is_closed(&self) -> bool {
        true
    }
    fn peer(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }
    fn stats(&self) -> Stats {
        Stats::default()
    }
}

/// The workload's scenario: `messages` each way, one every 100 µs, over 20 ms links.
pub fn scenario(messages: u32) -> Scenario {
    let every = Duration::from_micros(100);
    Scenario::new(1)
        .links(ImpairmentConfig {
            delay: Duration::from_millis(20),
            ..ImpairmentConfig::default()
        })
        .messages_every(Side::A, "a", Duration::ZERO, every, messages)
        .messages_every(Side::B, "b", Duration::ZERO, every, messages)
}

/// How a run was timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// This thread's CPU time (Linux's `/proc/thread-self/schedstat`): what other processes on
    /// a shared machine do is not counted.
    ThreadCpu,
    /// Wall-clock time, where the thread's CPU time cannot be read.
    Wall,
}

/// The CPU time this thread has run so far, where Linux tells it (no `unsafe` needed).
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// One run of `scenario` with null endpoints, trace off: datagrams delivered, and how long the
/// simulator took, by the thread's CPU time where it can be read.
pub fn time_one(scenario: Scenario) -> (u64, Duration, Clock) {
    let cpu_started = thread_cpu_time();
    let started = Instant::now();
    let out = Simulator::new(
        scenario,
        NullEndpoint::new(ADDR_B),
        NullEndpoint::new(ADDR_A),
    )
    .without_trace()
    .run();
    let wall = started.elapsed();
    let events = out.a.received + out.b.received;
    match (cpu_started, thread_cpu_time()) {
        (Some(start), Some(end)) if end > start => (events, end - start, Clock::ThreadCpu),
        _ => (events, wall, Clock::Wall),
    }
}

/// The `sim` row: `messages` each way, [`REPEATS`] times, the median rate.
pub fn run(messages: u32) -> ResultRow {
    let mut rates = Vec::with_capacity(REPEATS);
    let mut delivered = 0;
    let mut clock = Clock::ThreadCpu;
    for _ in 0..REPEATS {
        let (events, elapsed, timed_by) = time_one(scenario(messages));
        delivered = events;
        if timed_by == Clock::Wall {
            clock = Clock::Wall;
        }
        rates.push(events as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE));
    }
    rates.sort_by(f64::total_cmp);
    let mut row = ResultRow::new(
        System::NullEndpoints,
        Workload::Sim,
        0.0,
        LossModel::Independent,
    );
    row.events_per_s = Some(rates.get(REPEATS / 2).copied());
    row.expected = 2 * u64::from(messages);
    row.delivered = delivered;
    row.note = Some(match clock {
        Clock::ThreadCpu => "per second of the simulating thread's CPU time".to_owned(),
        Clock::Wall => "per second of wall-clock time (thread CPU time unavailable)".to_owned(),
    });
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datagram_of_the_workload_is_one_event() {
        let (events, _, _) = time_one(scenario(100));
        assert_eq!(events, 200);
        let row = run(50);
        assert_eq!((row.expected, row.delivered), (100, 100));
        assert!(row.events_per_s.flatten().is_some_and(|r| r > 0.0));
    }
}
