//! Workload 6, **fairness**: two bulk flows through one shared bottleneck queue, and how they
//! split it.
//!
//! A transport that wins bulk by starving others does not count as winning, so this workload
//! runs two flows side by side on the lab's [`Dumbbell`]: each flow's sender always has data
//! waiting (as in the bulk workload, 16,000-byte messages, topped up so the backlog never runs
//! out), every forward datagram of both flows enters one rate limiter with one FIFO queue
//! ([`bottleneck`]: 20 Mbit/s, a 100 kB tail-drop queue, one bandwidth-delay product, 20 ms one
//! way; the acks return over a 20 ms link of their own), and the second flow starts 1 s after
//! the first, so it has to win its share from a flow that already holds the link.
//!
//! What it measures: each flow's goodput (bytes delivered to its receiving application) over a
//! steady window, from a quarter of the run to its end (the full run: 10 s to 40 s; `--quick`:
//! 3.75 s to 15 s), as a share of the bottleneck's rate, and Jain's index of the two goodputs
//! ([`jain_index`]: 1 when equal, 0.5 when one flow takes everything). Goodput leaves out
//! headers and retransmissions, so two shares add up to a little less than 1.
//!
//! The pairs ([`pairs`]): every udpchat system of the run against itself and against `quic`
//! (QUIC with quinn-proto's Cubic), plus `quic` against itself as the reference of what a
//! well-known controller does on this link. A new udpchat system (another controller, say) gets
//! its two pairs by being a udpchat system of the run.

use std::time::{Duration, Instant};

use udpchat_lab::dumbbell::{jain_index, Dumbbell, DumbbellConfig, FlowId};
use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::parse::{BitRate, QueueLimit};
use udpchat_lab::sim::Side;
use udpchat_reliable::{Endpoint, Event};

use crate::bulk::{chunk_text, CHUNK};
use crate::quic_endpoint::QuicIdentity;
use crate::report::{LossModel, ResultRow, Workload};
use crate::system::{build_pair, BuildError, System};

/// The bottleneck's rate, bits per second.
pub const RATE_BPS: u64 = 20_000_000;
/// One-way delay of each direction.
pub const ONE_WAY: Duration = Duration::from_millis(20);
/// The bottleneck's queue: one bandwidth-delay product (20 Mbit/s × 40 ms).
pub const QUEUE_BYTES: u64 = 100_000;
/// When the second flow starts.
pub const SECOND_START: Duration = Duration::from_secs(1);
/// Messages each sender keeps unacknowledged-by-delivery in its transport (1 MB: far above what
/// the path holds, so no sender ever runs dry).
const BACKLOG: u64 = 64;
/// The path MTU, as in the other simulated workloads.
const MTU: usize = 1200;

/// The shared links: the bottleneck forward, a plain delay back.
pub fn bottleneck(seed: u64) -> DumbbellConfig {
    let delay_only = ImpairmentConfig {
        delay: ONE_WAY,
        ..ImpairmentConfig::default()
    };
    DumbbellConfig {
        forward: ImpairmentConfig {
            rate: BitRate::from_bits_per_second(RATE_BPS),
            queue: QueueLimit::bytes(QUEUE_BYTES).unwrap_or(ImpairmentConfig::default().queue),
            ..delay_only.clone()
        },
        reverse: delay_only,
        mtu: Some(MTU),
        seed,
    }
}

/// The pairs to run among `systems`: each udpchat system with itself and with `quic`, then
/// `quic` with itself (each only if `quic` is among `systems`).
pub fn pairs(systems: &[System]) -> Vec<(System, System)> {
    let quic = systems.contains(&System::Quic);
    let mut pairs = Vec::new();
    for &system in systems.iter().filter(|s| s.is_udpchat()) {
        pairs.push((system, system));
        if quic {
            pairs.push((system, System::Quic));
        }
    }
    if quic {
        pairs.push((System::Quic, System::Quic));
    }
    pairs
}

/// The steady window of a run of `duration`: from a quarter of it to its end.
pub fn window(duration: Duration) -> (Duration, Duration) {
    (duration / 4, duration)
}

/// What one run measured, per flow (flow 0 started first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    /// Application bytes each flow delivered within the window.
    pub bytes: [u64; 2],
    /// The window's length.
    pub window: Duration,
}

impl Shares {
    /// Each flow's goodput in Mbit/s (10^6 bit/s).
    pub fn mbps(&self) -> [f64; 2] {
        let secs = self.window.as_secs_f64();
        self.bytes.map(|b| b as f64 * 8.0 / secs / 1e6)
    }

    /// Each flow's goodput as a fraction of the bottleneck's rate.
    pub fn of_bottleneck(&self) -> [f64; 2] {
        self.mbps().map(|m| m * 1e6 / RATE_BPS as f64)
    }

    /// Jain's index of the two goodputs.
    pub fn jain(&self) -> Option<f64> {
        jain_index(&self.mbps())
    }
}

/// Runs `first` (from 0 s) and `second` (from [`SECOND_START`]) over the bottleneck for
/// `duration` and measures their shares over the [`window`].
pub fn measure(
    first: System,
    second: System,
    duration: Duration,
    seed: u64,
    quic: &QuicIdentity,
) -> Result<Shares, BuildError> {
    let epoch = Instant::now();
    let mut net: Dumbbell<Box<dyn Endpoint>> = Dumbbell::new(epoch, bottleneck(seed));
    for (index, (system, start)) in [(first, Duration::ZERO), (second, SECOND_START)]
        .into_iter()
        .enumerate()
    {
        // Each flow's endpoints start their lives when the flow starts, with seeds of their own.
        let (a, b) = build_pair(system, epoch + start, seed + index as u64, quic)?;
        net.add_flow(start, a, b);
    }
    let (from, to) = window(duration);
    let (from, to) = (epoch + from, epoch + to);
    let mut sent = [0u64; 2];
    let mut received = [0u64; 2];
    let mut bytes = [0u64; 2];
    while net.now() < to {
        top_up(&mut net, &mut sent, &received);
        if !net.advance_within(None, to) {
            break;
        }
        let now = net.now();
        for (flow, side, event) in net.take_events() {
            if let (Side::B, Event::Message { text, .. }) = (side, event) {
                received[flow] += 1;
                if now >= from {
                    bytes[flow] += text.len() as u64;
                }
            }
        }
    }
    Ok(Shares {
        bytes,
        window: to - from,
    })
}

/// Keeps [`BACKLOG`] messages waiting in each started flow's sender.
fn top_up(net: &mut Dumbbell<Box<dyn Endpoint>>, sent: &mut [u64; 2], received: &[u64; 2]) {
    let now = net.now();
    for flow in 0..2 as FlowId {
        if net.started(flow) != Some(true) {
            continue;
        }
        let Some(sender) = net.endpoint_mut(flow, Side::A) else {
            continue;
        };
        while sent[flow] - received[flow] < BACKLOG {
            let index = usize::try_from(sent[flow]).unwrap_or(usize::MAX);
            // A transport that refuses more (a full send buffer) is topped up next time.
            if sender.send(now, &chunk_text(index, CHUNK)).is_err() {
                break;
            }
            sent[flow] += 1;
        }
    }
}

/// Runs the pair and makes its row: `system` is the first flow's, the competitor the second's.
pub fn run(
    (first, second): (System, System),
    duration: Duration,
    seed: u64,
    quic: &QuicIdentity,
) -> Result<ResultRow, BuildError> {
    let shares = measure(first, second, duration, seed, quic)?;
    let mut row = ResultRow::new(first, Workload::Fairness, 0.0, LossModel::Independent);
    row.competitor = Some(second);
    row.flow_mbps = Some(shares.mbps().to_vec());
    row.shares = Some(shares.of_bottleneck().to_vec());
    row.jain_index = Some(shares.jain());
    row.expected = RATE_BPS / 8 * shares.window.as_millis() as u64 / 1000;
    row.delivered = shares.bytes.iter().sum();
    let (from, to) = window(duration);
    row.window_s = Some([from.as_secs_f64(), to.as_secs_f64()]);
    Ok(row)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_udpchat_system_meets_itself_and_quic() {
        let systems = [
            System::Udpchat,
            System::KcpFast,
            System::Quic,
            System::QuicBbr,
        ];
        assert_eq!(
            pairs(&systems),
            vec![
                (System::Udpchat, System::Udpchat),
                (System::Udpchat, System::Quic),
                (System::Quic, System::Quic),
            ]
        );
        assert_eq!(
            pairs(&[System::Udpchat]),
            vec![(System::Udpchat, System::Udpchat)]
        );
    }

    #[test]
    fn shares_are_goodput_over_the_window() {
        // 10 s window, 12.5 MB and 7.5 MB: 10 and 6 Mbit/s, half and 30% of 20 Mbit/s.
        let shares = Shares {
            bytes: [12_500_000, 7_500_000],
            window: Duration::from_secs(10),
        };
        assert_eq!(shares.mbps(), [10.0, 6.0]);
        assert_eq!(shares.of_bottleneck(), [0.5, 0.3]);
        // (16)² / (2 · (100 + 36)) = 256 / 272.
        assert!((shares.jain().unwrap() - 256.0 / 272.0).abs() < 1e-12);
        assert_eq!(
            window(Duration::from_secs(40)),
            (Duration::from_secs(10), Duration::from_secs(40))
        );
    }

    /// Two udpchat flows on the bottleneck: both get a real part of it, together they fill
    /// most of it, and the run is a function of the seed.
    #[test]
    fn two_udpchat_flows_share_the_bottleneck() {
        let quic = QuicIdentity::generate().unwrap();
        let duration = Duration::from_secs(12);
        let shares = measure(System::Udpchat, System::Udpchat, duration, 1, &quic).unwrap();
        let [a, b] = shares.of_bottleneck();
        assert!(a > 0.1 && b > 0.1, "{a} {b}");
        assert!(a + b > 0.8, "{a} {b}");
        let again = measure(System::Udpchat, System::Udpchat, duration, 1, &quic).unwrap();
        assert_eq!(shares, again);
    }
}
