//! The figures the comparison reports, computed from what a run recorded.
//!
//! Kept apart from the workloads so they can be checked on hand-made traces: a wrong percentile
//! or a goodput off by a factor of eight would otherwise go unnoticed among plausible numbers.
//!
//! - Percentiles use the **nearest-rank** definition: the p-th percentile of `n` sorted samples
//!   is the sample at rank `ceil(p/100 * n)` (1-based). It is always one of the samples, and the
//!   100th percentile is the maximum.
//! - Goodput counts application bytes delivered, in megabits (10^6 bits) per second of virtual
//!   time from the start of the run (handshakes included) to the last byte's delivery.
//! - Wire bytes per byte: UDP payload bytes the sender put on the wire (first transmissions,
//!   retransmissions, headers) divided by application bytes delivered. The optimum for a link
//!   that loses a fraction `p` of datagrams is `1 / (1 - p)`, before headers.

use std::time::Duration;

/// Round-trip figures of a chat run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttFigures {
    /// Mean, in milliseconds.
    pub avg_ms: f64,
    /// Median (nearest rank), in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank), in milliseconds.
    pub p99_ms: f64,
    /// Largest, in milliseconds.
    pub max_ms: f64,
}

/// What a chat run recorded: when each message was sent, and when its echo came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatTrace {
    /// Send time of message `i`, from the start.
    pub sent: Vec<Duration>,
    /// Echoes in arrival order: message number and arrival time. Duplicates and numbers that
    /// were never sent are ignored; only the first echo of a message counts.
    pub echoes: Vec<(usize, Duration)>,
}

impl ChatTrace {
    /// Round-trip time of each message whose echo came back, in sending order.
    pub fn round_trips(&self) -> Vec<Duration> {
        let mut first: Vec<Option<Duration>> = vec![None; self.sent.len()];
        for &(index, at) in &self.echoes {
            if let Some(slot @ None) = first.get_mut(index) {
                *slot = Some(at.saturating_sub(self.sent[index]));
            }
        }
        first.into_iter().flatten().collect()
    }

    /// Messages whose echo never came back.
    pub fn missing(&self) -> usize {
        self.sent.len() - self.round_trips().len()
    }

    /// The figures, if at least one echo came back.
    pub fn figures(&self) -> Option<RttFigures> {
        rtt_figures(&self.round_trips())
    }
}

/// Mean, median, 99th percentile and maximum of `samples`, in milliseconds.
pub fn rtt_figures(samples: &[Duration]) -> Option<RttFigures> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let total: f64 = sorted.iter().map(|d| ms(*d)).sum();
    Some(RttFigures {
        avg_ms: total / sorted.len() as f64,
        p50_ms: ms(percentile(&sorted, 50.0)?),
        p99_ms: ms(percentile(&sorted, 99.0)?),
        max_ms: ms(*sorted.last()?),
    })
}

/// The nearest-rank `p`-th percentile of `sorted` (ascending), `p` in `0..=100`.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// Figures of a bulk transfer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BulkFigures {
    /// Time from the start to the last byte's delivery, in milliseconds.
    pub completion_ms: f64,
    /// Application megabits per second.
    pub goodput_mbps: f64,
    /// Sender's wire bytes per application byte delivered.
    pub wire_bytes_per_byte: f64,
    /// Receiver's wire bytes (acks) per application byte delivered.
    pub reverse_bytes_per_byte: f64,
    /// Sender's datagrams per 1000 application bytes delivered.
    pub datagrams_per_kb: f64,
}

/// The figures of a transfer of `delivered` bytes that finished at `completion`, the sender
/// having sent `wire_datagrams` datagrams of `wire_bytes` bytes and the receiver
/// `reverse_bytes`. None if nothing was delivered or no time passed.
pub fn bulk_figures(
    delivered: u64,
    completion: Duration,
    wire_datagrams: u64,
    wire_bytes: u64,
    reverse_bytes: u64,
) -> Option<BulkFigures> {
    if delivered == 0 || completion.is_zero() {
        return None;
    }
    let bytes = delivered as f64;
    Some(BulkFigures {
        completion_ms: completion.as_secs_f64() * 1000.0,
        goodput_mbps: bytes * 8.0 / completion.as_secs_f64() / 1e6,
        wire_bytes_per_byte: wire_bytes as f64 / bytes,
        reverse_bytes_per_byte: reverse_bytes as f64 / bytes,
        datagrams_per_kb: wire_datagrams as f64 * 1000.0 / bytes,
    })
}

/// The fewest wire bytes per delivered byte a link losing `loss` of its datagrams allows, before
/// headers: each datagram must be sent `1 / (1 - loss)` times on average.
pub fn optimum_wire_ratio(loss: f64) -> f64 {
    1.0 / (1.0 - loss)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn round_trips_take_the_first_echo_and_skip_strays() {
        let trace = ChatTrace {
            sent: vec![ms(0), ms(20), ms(40), ms(60)],
            // Message 1's echo comes twice, 2 never, 9 was never sent.
            echoes: vec![
                (0, ms(60)),
                (1, ms(85)),
                (1, ms(90)),
                (9, ms(95)),
                (3, ms(200)),
            ],
        };
        assert_eq!(trace.round_trips(), vec![ms(60), ms(65), ms(140)]);
        assert_eq!(trace.missing(), 1);
    }

    #[test]
    fn figures_of_a_hand_made_trace() {
        // 100 round trips: 98 of 60 ms, one of 100 ms, one of 500 ms.
        let mut sent = Vec::new();
        let mut echoes = Vec::new();
        for i in 0..100u64 {
            let start = ms(20 * i);
            let rtt = match i {
                7 => ms(500),
                50 => ms(100),
                _ => ms(60),
            };
            sent.push(start);
            echoes.push((i as usize, start + rtt));
        }
        let f = ChatTrace { sent, echoes }.figures().unwrap();
        assert!((f.avg_ms - (98.0 * 60.0 + 100.0 + 500.0) / 100.0).abs() < 1e-9);
        assert_eq!(f.p50_ms, 60.0);
        // Nearest rank: the 99th of 100 sorted samples is the 100 ms one.
        assert_eq!(f.p99_ms, 100.0);
        assert_eq!(f.max_ms, 500.0);
    }

    #[test]
    fn nearest_rank_percentiles_are_samples() {
        let sorted = [ms(1), ms(2), ms(3), ms(4)];
        assert_eq!(percentile(&sorted, 0.0), Some(ms(1)));
        assert_eq!(percentile(&sorted, 25.0), Some(ms(1)));
        assert_eq!(percentile(&sorted, 26.0), Some(ms(2)));
        assert_eq!(percentile(&sorted, 50.0), Some(ms(2)));
        assert_eq!(percentile(&sorted, 99.0), Some(ms(4)));
        assert_eq!(percentile(&sorted, 100.0), Some(ms(4)));
        assert_eq!(percentile(&sorted, 101.0), None);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(rtt_figures(&[]), None);
    }

    #[test]
    fn bulk_figures_of_a_hand_made_transfer() {
        // 10 MB in 2 s: 40 Mbit/s. 11 MB of datagrams the sender's way, 0.5 MB back.
        let f = bulk_figures(10_000_000, ms(2000), 9_000, 11_000_000, 500_000).unwrap();
        assert_eq!(f.completion_ms, 2000.0);
        assert!((f.goodput_mbps - 40.0).abs() < 1e-9);
        assert!((f.wire_bytes_per_byte - 1.1).abs() < 1e-12);
        assert!((f.reverse_bytes_per_byte - 0.05).abs() < 1e-12);
        assert!((f.datagrams_per_kb - 0.9).abs() < 1e-12);
        assert_eq!(bulk_figures(0, ms(1), 1, 1, 1), None);
        assert!((optimum_wire_ratio(0.01) - 1.0 / 0.99).abs() < 1e-12);
    }
}
