//! [`RunMetrics`]: the numbers of one run, computed from what the simulator recorded.
//!
//! Message-level figures (delivered, duplicates, out of order, latency) come from the simulator's
//! per-direction summary, which matches deliveries to sends by text. Wire-level figures
//! (datagrams, bytes, data transmissions) are counted from the trace's `Transmit` events, so they
//! are what actually went onto the links, whatever the endpoint claims; retransmission causes come
//! from the sender's own counters, since only it knows why it resent.
//!
//! Only A sends messages (to B); B's datagrams are acknowledgements and control.
//!
//! **Connection setup** (`setup_ms`) is the time from the start of the run (when A is created and
//! its first message is due) to the moment A's session is established: A's first
//! [`Event::Peer`], which a reliable sender reports when the peer's `Welcome` arrives. Raw mode
//! has no handshake and no setup time.
//!
//! **Latency** of a message is from the later of two moments, the one A's application handed it
//! over and the one A's session was established, to the moment B's application first got it. So a
//! handshake lost a few times (its timer starts at 1 s and doubles) shows once, in the setup
//! column, instead of being added to every message written meanwhile; what remains in the latency
//! of those messages is what they really waited for once the sender could send (the backlog
//! draining, resends). Raw mode's latency is from the send.
//! Datagrams are counted until the transfer is over (the last data sent, delivered and
//! acknowledged): the keepalives two idle reliable endpoints exchange afterwards are not a cost of
//! the messages.

use std::time::Duration;

use serde::Serialize;
use udpchat_reliable::{Event, Stats};

use super::hol;
use super::stats::percentile;
use crate::sim::{DirectionSummary, PacketSummary, Side, Trace, TraceEvent};

/// What one run of one mode at one sweep point measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    /// The seed of the run.
    pub seed: u64,
    /// Messages the scenario asked A to send.
    pub messages: u64,
    /// Distinct messages B's application got.
    pub delivered: u64,
    /// `delivered / messages`.
    pub delivery_ratio: f64,
    /// Deliveries of a message B already had.
    pub duplicates: u64,
    /// Messages delivered after one sent later.
    pub out_of_order: u64,
    /// Time from the start of the run to A's session being established, in milliseconds; `None`
    /// for raw mode (no handshake) and for a handshake that never completed.
    pub setup_ms: Option<f64>,
    /// Smallest latency, in milliseconds.
    pub latency_min_ms: Option<f64>,
    /// Median latency (nearest rank), in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 90th percentile latency, in milliseconds.
    pub latency_p90_ms: Option<f64>,
    /// 99th percentile latency, in milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// Largest latency, in milliseconds.
    pub latency_max_ms: Option<f64>,
    /// Datagrams both sides put on the links until the transfer was over (data, acks, handshake,
    /// keepalives).
    pub datagrams: u64,
    /// Datagrams A sent that carried message data (first sends and resends).
    pub data_transmissions: u64,
    /// `datagrams / delivered`: everything it cost per message that arrived.
    pub datagrams_per_delivered: Option<f64>,
    /// `data_transmissions / messages`: how often each message went out.
    pub transmissions_per_message: f64,
    /// Resends after a retransmission timeout.
    pub retransmits_timeout: u64,
    /// Resends on selective-ack evidence.
    pub retransmits_fast: u64,
    /// Resends found needless afterwards.
    pub retransmits_spurious: u64,
    /// Messages the sender gave up on (reliable modes).
    pub lost_reported: u64,
    /// Delivered payload, in bits per second, from the first send to the last delivery.
    pub goodput_bps: Option<f64>,
    /// Bytes both sides put on the links (UDP payloads) until the transfer was over.
    pub wire_bytes: u64,
    /// `wire_bytes / delivered payload bytes`.
    pub wire_per_byte: Option<f64>,
    /// Head-of-line blocking ([`super::hol`]): delivered messages that had arrived whole but
    /// waited for an earlier one; `None` where nothing is ever held back (raw mode).
    pub hol_blocked: Option<u64>,
    /// `hol_blocked / delivered`.
    pub hol_blocked_ratio: Option<f64>,
    /// Median wait of the blocked messages, from arrival to delivery, in milliseconds.
    pub hol_wait_p50_ms: Option<f64>,
    /// Longest such wait, in milliseconds.
    pub hol_wait_max_ms: Option<f64>,
    /// True if the run hit its time limit with messages neither delivered nor given up on (the
    /// transport was still resending): its delivery counts only what had arrived by then.
    pub cut_short: bool,
    /// Every delivered message's latency, in milliseconds, sorted: what the sweep pools across
    /// seeds for its percentiles. Not written to results.json (the percentiles above are).
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
    /// Every blocked message's wait, in milliseconds, sorted: pooled across seeds like the
    /// latencies. Not written to results.json.
    #[serde(skip)]
    pub hol_waits_ms: Vec<f64>,
}

/// The inputs [`RunMetrics::compute`] reads.
#[derive(Debug, Clone, Copy)]
pub struct RunRecord<'a> {
    /// The seed of the run.
    pub seed: u64,
    /// Messages scheduled.
    pub messages: u64,
    /// Bytes per message.
    pub size: usize,
    /// Time between two sends (message `i` is sent at `i * interval`).
    pub interval: Duration,
    /// The A-to-B direction's summary.
    pub summary: &'a DirectionSummary,
    /// The run's trace.
    pub trace: &'a Trace,
    /// A's counters (the sender).
    pub sender: &'a Stats,
}

impl RunMetrics {
    /// Computes the metrics of one run.
    pub fn compute(record: RunRecord<'_>) -> RunMetrics {
        let RunRecord {
            seed,
            messages,
            size,
            interval,
            summary,
            trace,
            sender,
        } = record;
        let established = established(trace);
        let deliveries = deliveries(summary, trace, interval);
        let mut sorted: Vec<Duration> = deliveries
            .iter()
            .map(|&(sent, at)| at.saturating_sub(established.map_or(sent, |e| e.max(sent))))
            .collect();
        sorted.sort_unstable();
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let delivered = summary.delivered;
        let Wire {
            datagrams,
            data_transmissions,
            wire_bytes,
        } = Wire::of(trace);

        let last_delivery = deliveries.iter().map(|&(_, at)| at).max();
        let payload_bits = (delivered * size as u64 * 8) as f64;
        let goodput_bps = last_delivery
            .filter(|d| !d.is_zero())
            .map(|d| payload_bits / d.as_secs_f64());
        let per_delivered = |x: u64| (delivered > 0).then(|| x as f64 / delivered as f64);
        let delivered_bytes = delivered * size as u64;

        RunMetrics {
            seed,
            messages,
            delivered,
            delivery_ratio: ratio(delivered, messages),
            duplicates: summary.duplicated,
            out_of_order: summary.reordered,
            setup_ms: ms(established),
            latency_min_ms: ms(sorted.first().copied()),
            latency_p50_ms: ms(percentile(&sorted, 50.0)),
            latency_p90_ms: ms(percentile(&sorted, 90.0)),
            latency_p99_ms: ms(percentile(&sorted, 99.0)),
            latency_max_ms: ms(sorted.last().copied()),
            datagrams,
            data_transmissions,
            datagrams_per_delivered: per_delivered(datagrams),
            transmissions_per_message: ratio(data_transmissions, messages),
            retransmits_timeout: sender.retransmits_timeout,
            retransmits_fast: sender.retransmits_fast,
            retransmits_spurious: sender.retransmits_spurious,
            lost_reported: sender.messages_lost,
            goodput_bps,
            wire_bytes,
            wire_per_byte: (delivered_bytes > 0)
                .then(|| wire_bytes as f64 / delivered_bytes as f64),
            cut_short: false,
            latencies_ms: sorted.iter().map(|&d| ms(Some(d)).unwrap_or(0.0)).collect(),
            ..RunMetrics::default()
        }
        .with_head_of_line(hol::measure(trace))
    }

    /// These metrics with the head-of-line fields filled from `hol` (`None`: the measure does
    /// not apply, and they stay empty); the share is of the delivered messages.
    pub fn with_head_of_line(self, hol: Option<hol::HeadOfLine>) -> RunMetrics {
        let Some(hol) = hol else { return self };
        let blocked_ratio =
            (self.delivered > 0).then(|| ratio(hol.blocked, self.delivered).min(1.0));
        RunMetrics {
            hol_blocked: Some(hol.blocked),
            hol_blocked_ratio: blocked_ratio,
            hol_wait_p50_ms: percentile(&hol.waits_ms, 50.0),
            hol_wait_max_ms: hol.waits_ms.last().copied(),
            hol_waits_ms: hol.waits_ms,
            ..self
        }
    }
}

/// Each delivered message's (send, delivery) times, in sending order. The send times are the
/// accepted sends the trace records for A (the latencies are from these); a trace without them
/// means the schedule was kept: message i at i * interval.
fn deliveries(
    summary: &DirectionSummary,
    trace: &Trace,
    interval: Duration,
) -> Vec<(Duration, Duration)> {
    let sends: Vec<Duration> = trace
        .entries
        .iter()
        .filter(|e| {
            matches!(
                &e.event,
                TraceEvent::Send {
                    side: Side::A,
                    result: Ok(_),
                    ..
                }
            )
        })
        .map(|e| e.at)
        .collect();
    summary
        .latencies
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let scheduled = interval * u32::try_from(i).unwrap_or(u32::MAX);
            let sent = sends.get(i).copied().unwrap_or(scheduled);
            l.map(|l| (sent, sent + l))
        })
        .collect()
}

/// What went onto the links until the transfer was over.
struct Wire {
    datagrams: u64,
    data_transmissions: u64,
    wire_bytes: u64,
}

impl Wire {
    fn of(trace: &Trace) -> Wire {
        // The transfer is over once the last message went out, arrived, and was acknowledged (or
        // given up on). Reliable endpoints then exchange keepalives until the run's time limit;
        // that idle chatter is not a cost of the messages, so it is not counted.
        let carries_data = |p: &PacketSummary| match p {
            PacketSummary::Data { .. } | PacketSummary::Raw { .. } => true,
            PacketSummary::Tcp(segment) => segment.carries_data(),
            _ => false,
        };
        let end = trace
            .entries
            .iter()
            .filter(|e| match &e.event {
                TraceEvent::Transmit { side, packet, .. } => {
                    *side == Side::A && carries_data(packet)
                }
                TraceEvent::App { side, event } => matches!(
                    (side, event),
                    (Side::B, Event::Message { .. })
                        | (Side::A, Event::Delivered { .. } | Event::Lost { .. })
                ),
                _ => false,
            })
            .map(|e| e.at)
            .max()
            .unwrap_or_default();
        // TCP reports no delivery to A, so the transfer ends with B's next segment (the ACK
        // of the last bytes), which the acks of reliable mode's `Delivered` correspond to.
        let end = trace
            .entries
            .iter()
            .find(|e| {
                e.at >= end
                    && matches!(
                        e.event,
                        TraceEvent::Transmit {
                            side: Side::B,
                            packet: PacketSummary::Tcp(_),
                            ..
                        }
                    )
            })
            .map_or(end, |e| e.at);
        let mut wire = Wire {
            datagrams: 0,
            data_transmissions: 0,
            wire_bytes: 0,
        };
        for entry in trace.entries.iter().take_while(|e| e.at <= end) {
            if let TraceEvent::Transmit {
                side, len, packet, ..
            } = &entry.event
            {
                wire.datagrams += 1;
                wire.wire_bytes += *len as u64;
                if *side == Side::A && carries_data(packet) {
                    wire.data_transmissions += 1;
                }
            }
        }
        wire
    }
}

/// When A's session was established: its first [`Event::Peer`] in the trace. Raw endpoints with
/// a configured peer never report one (they have no handshake).
fn established(trace: &Trace) -> Option<Duration> {
    trace.entries.iter().find_map(|e| match &e.event {
        TraceEvent::App {
            side: Side::A,
            event: Event::Peer { .. },
        } => Some(e.at),
        _ => None,
    })
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sim::{TraceEntry, ADDR_B};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn entry(at: Duration, event: TraceEvent) -> TraceEntry {
        TraceEntry { at, event }
    }

    fn send(at: u64, i: u64) -> TraceEntry {
        entry(
            ms(at),
            TraceEvent::Send {
                side: Side::A,
                text: format!("m{i}"),
                result: Ok(i),
            },
        )
    }

    /// Three messages every 10 ms; the handshake completes at 1000 ms; each message then takes
    /// 20 ms, and the last one, sent at 1500 ms, also 20 ms.
    fn run(established: Option<u64>) -> RunMetrics {
        let mut entries = vec![send(0, 0), send(10, 1), send(1500, 2)];
        if let Some(at) = established {
            entries.push(entry(
                ms(at),
                TraceEvent::App {
                    side: Side::A,
                    event: Event::Peer {
                        addr: ADDR_B,
                        nick: None,
                    },
                },
            ));
        }
        entries.sort_by_key(|e| e.at);
        let trace = Trace { entries };
        let summary = DirectionSummary {
            sent: 3,
            delivered: 3,
            latencies: vec![Some(ms(1020)), Some(ms(1010)), Some(ms(20))],
            ..DirectionSummary::default()
        };
        RunMetrics::compute(RunRecord {
            seed: 1,
            messages: 3,
            size: 8,
            interval: ms(10),
            summary: &summary,
            trace: &trace,
            sender: &Stats::default(),
        })
    }

    #[test]
    fn latency_counts_from_the_later_of_send_and_session_established() {
        let m = run(Some(1000));
        assert_eq!(m.setup_ms, Some(1000.0));
        // From the handshake's end for the two written before it, from the send for the third.
        assert_eq!(m.latencies_ms, vec![20.0, 20.0, 20.0]);
        assert_eq!(
            (m.latency_min_ms, m.latency_max_ms),
            (Some(20.0), Some(20.0))
        );
        // Goodput still runs to the last delivery, at 1520 ms: 3 * 8 B * 8 bit / 1.52 s.
        let goodput = m.goodput_bps.unwrap();
        assert!((goodput - 192.0 / 1.52).abs() < 1e-9, "{goodput}");
    }

    #[test]
    fn without_a_handshake_latency_is_from_the_send_and_there_is_no_setup() {
        let m = run(None);
        assert_eq!(m.setup_ms, None);
        assert_eq!(m.latencies_ms, vec![20.0, 1010.0, 1020.0]);
        assert_eq!(m.latency_p50_ms, Some(1010.0));
    }
}
