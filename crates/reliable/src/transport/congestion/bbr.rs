//! [`Bbr`]: a model-based congestion controller in the spirit of BBR (version 1), written from
//! Cardwell et al., "BBR: Congestion-Based Congestion Control" (ACM Queue, 2016) and
//! draft-cardwell-iccrg-bbr-congestion-control-00.
//!
//! A loss-based controller reads every loss as a full queue; on a path that drops 1% of
//! datagrams at random, NewReno's window settles near `1.2/√p` datagrams whatever the link's
//! rate. This controller instead keeps a model of the path: the **bottleneck bandwidth**
//! (`BtlBw`, the largest delivery rate measured over the last ten round trips, a windowed max
//! filter) and the **round-trip propagation time** (`RTprop`, the smallest RTT of the last ten
//! seconds). It paces at `pacing_gain × BtlBw` and allows `cwnd_gain × BtlBw × RTprop` (1.75
//! bandwidth-delay products, where the paper has 2: see [`CWND_GAIN`]) in flight, plus the draft's
//! three *send quanta* (a millisecond at the pacing rate each, 64 kB at most): on a path whose
//! round trip is shorter than a driver's timer grain (loopback: tens of microseconds) the BDP is
//! a few datagrams, and a window of that size would stall between batched acks. Random loss
//! changes neither estimate much, so it does not shrink the window.
//!
//! Four phases, as in the paper:
//! - **Startup**: pacing and window gain 2/ln 2 ≈ 2.89, doubling the delivery rate each round,
//!   until three rounds in a row raise `BtlBw` by less than 25% (the pipe is full);
//! - **Drain**: pacing gain 1/2.89 until what is in flight is down to one BDP (the queue that
//!   startup built is gone);
//! - **ProbeBW**: a cycle of eight phases, each one `RTprop` long, with pacing gains
//!   1.25 (probe for more bandwidth), 0.75 (drain what that probe queued), then six at 1;
//! - **ProbeRTT**: when `RTprop` has not been refreshed for ten seconds, the window drops to four
//!   datagrams for 200 ms and a round trip, so that the queue empties and the true minimum RTT
//!   can be seen again.
//!
//! Delivery-rate samples come from the sender (`transport/rate.rs`): application-limited ones
//! update `BtlBw` only when they exceed it (an idle chat must not lower the estimate). A
//! retransmission timeout still collapses the window to one datagram until the lost flight is
//! recovered, then restores it (the model is kept); a fast-retransmit loss only ends a
//! bandwidth probe early. This is BBR v1's loss response, so this controller does not back off
//! on loss alone: competing with a loss-based flow on a shallow queue it takes its
//! bandwidth-delay share or more.
//!
//! The draft starts ProbeBW's cycle at a random phase so that flows desynchronise; randomness
//! must be passed in here, and the factory has none, so every flow starts at the first cruise
//! phase (index 2), which is one of the draft's allowed starts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use udpchat_core::SeqNum;

use super::{
    Acked, CongestionEvent, Controller, DeliverySample, RoundCounter, INITIAL_WINDOW_PACKETS,
};
use crate::transport::pacer::GRANULARITY;

/// Startup's pacing and window gain: 2/ln 2, the smallest gain that doubles the delivery rate
/// every round trip.
pub const STARTUP_GAIN: f64 = 2.885;
/// ProbeBW's pacing gains, one per phase of `RTprop`.
pub const PROBE_BW_GAINS: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The window allows this many bandwidth-delay products in flight outside startup: room for
/// delayed and aggregated acks. The paper's 2 keeps up to a whole BDP queued at the bottleneck;
/// on a queue of one BDP that is all of it, and a loss-based flow sharing it (udpchat's CUBIC,
/// QUIC's Cubic) was left 16–18% of a 100 Mbit/s link. At 1.75 it keeps about 40%, two of these
/// flows still split the link evenly, and goodput under 1% random loss on the bench's bulk link
/// is unchanged at seed 1 (`crates/bench/examples/two_flows.rs`; `docs/performance.md`,
/// "Choosing the default controller").
pub const CWND_GAIN: f64 = 1.75;
/// `BtlBw` is the largest delivery rate of this many round trips.
pub const BW_WINDOW_ROUNDS: u64 = 10;
/// `RTprop` is the smallest RTT of this long.
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// How long ProbeRTT holds the window at its minimum.
pub const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// The smallest window, in full-size datagrams (the draft's `BBRMinPipeCwnd`).
pub const MIN_CWND_PACKETS: u64 = 4;
/// The pipe is full once `BtlBw` grew by less than this factor...
const FULL_BW_GROWTH: f64 = 1.25;
/// ...this many rounds in a row.
const FULL_BW_ROUNDS: u32 = 3;
/// Startup also ends after a round that lost more than 1/`STARTUP_LOSS_DIVISOR` of its bytes
/// (2%, BBRv2's `BBRLossThresh`)...
const STARTUP_LOSS_DIVISOR: u64 = 50;
/// ...and at least this many full-size datagrams' worth, so that one random loss among a small
/// early round does not end the search (in the spirit of BBRv2's `BBRFullLossCnt`).
const STARTUP_LOSS_PACKETS: u64 = 8;
/// Below this pacing rate (1.2 Mbit/s, in bytes per second) the send quantum is one datagram.
const SLOW_PACING_RATE: u64 = 150_000;
/// The largest send quantum: 64 KB, one GSO batch.
const MAX_SEND_QUANTUM: u64 = 64 * 1024;
/// ProbeBW's first phase when it is entered (a cruise phase at gain 1).
const FIRST_CYCLE_PHASE: usize = 2;

/// Where the controller is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Exponential search for the bottleneck bandwidth.
    Startup,
    /// Emptying the queue startup built.
    Drain,
    /// Steady state: cycling the pacing gain around 1.
    ProbeBw {
        /// Index into [`PROBE_BW_GAINS`].
        phase: usize,
        /// When this phase began.
        since: Instant,
    },
    /// Refreshing `RTprop` with an almost empty pipe.
    ProbeRtt {
        /// When the window has been low long enough (armed once the pipe drained).
        until: Option<Instant>,
        /// The round count when it was armed: a round must pass too.
        round: u64,
    },
}

/// The bottleneck-bandwidth max filter: the best delivery rate of each of the last
/// [`BW_WINDOW_ROUNDS`] rounds (bounded memory: at most that many entries).
#[derive(Debug, Clone, Default)]
struct MaxFilter {
    rounds: VecDeque<(u64, u64)>,
}

impl MaxFilter {
    fn update(&mut self, round: u64, bw: u64) {
        match self.rounds.back_mut() {
            Some((r, best)) if *r == round => *best = (*best).max(bw),
            _ => self.rounds.push_back((round, bw)),
        }
        while self
            .rounds
            .front()
            .is_some_and(|&(r, _)| r + BW_WINDOW_ROUNDS <= round)
        {
            self.rounds.pop_front();
        }
    }

    fn get(&self) -> u64 {
        self.rounds.iter().map(|&(_, bw)| bw).max().unwrap_or(0)
    }
}

/// The model-based controller's state. Rates in bytes per second, windows in bytes.
#[derive(Debug, Clone)]
pub struct Bbr {
    mss: u64,
    cap: u64,
    mode: Mode,
    btl_bw: MaxFilter,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    rounds: RoundCounter,
    full_bw: u64,
    full_bw_rounds: u32,
    filled_pipe: bool,
    cwnd: u64,
    pacing_rate: u64,
    /// The window before ProbeRTT or a timeout cut it, restored afterwards.
    prior_cwnd: u64,
    /// After a timeout: the sequence number that, once cumulatively acked, ends the recovery.
    recovery_until: Option<SeqNum>,
    /// A loss was found since the current ProbeBW phase began.
    loss_in_phase: bool,
    /// Bytes declared lost since the current round began.
    round_lost: u64,
    /// Bytes delivered in the session when the current round began.
    round_start_delivered: u64,
    /// `RTprop` had not been refreshed for [`MIN_RTT_WINDOW`] when the last sample replaced it:
    /// time for ProbeRTT.
    probe_rtt_due: bool,
}

impl Bbr {
    /// A fresh controller for datagrams of at most `mss` bytes; the window never grows past `cap`
    /// bytes.
    pub fn new(mss: u64, cap: u64) -> Self {
        let mss = mss.max(1);
        let cap = cap.max(mss);
        let cwnd = (INITIAL_WINDOW_PACKETS * mss).min(cap);
        Bbr {
            mss,
            cap,
            mode: Mode::Startup,
            btl_bw: MaxFilter::default(),
            min_rtt: None,
            min_rtt_stamp: None,
            rounds: RoundCounter::default(),
            full_bw: 0,
            full_bw_rounds: 0,
            filled_pipe: false,
            cwnd,
            // Before any RTT is known: the initial window per millisecond, times the gain.
            pacing_rate: (STARTUP_GAIN * cwnd as f64 * 1000.0) as u64,
            prior_cwnd: cwnd,
            recovery_until: None,
            loss_in_phase: false,
            probe_rtt_due: false,
            round_lost: 0,
            round_start_delivered: 0,
        }
    }

    /// The current phase.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The bottleneck-bandwidth estimate, bytes per second.
    pub fn btl_bw(&self) -> u64 {
        self.btl_bw.get()
    }

    /// The round-trip propagation estimate.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    fn min_window(&self) -> u64 {
        (MIN_CWND_PACKETS * self.mss).min(self.cap)
    }

    fn pacing_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup => STARTUP_GAIN,
            Mode::Drain => 1.0 / STARTUP_GAIN,
            Mode::ProbeBw { phase, .. } => PROBE_BW_GAINS[phase],
            Mode::ProbeRtt { .. } => 1.0,
        }
    }

    fn cwnd_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup | Mode::Drain => STARTUP_GAIN,
            _ => CWND_GAIN,
        }
    }

    /// `gain` bandwidth-delay products, in bytes; `None` before the model has both estimates.
    fn bdp(&self, gain: f64) -> Option<u64> {
        let bw = self.btl_bw.get();
        let rtt = self.min_rtt?;
        (bw > 0).then_some((gain * bw as f64 * rtt.as_secs_f64()) as u64)
    }

    fn update_model(&mut self, now: Instant, acked: &Acked, sample: Option<&DeliverySample>) {
        if let Some(rtt) = acked.rtt {
            let expired = self
                .min_rtt_stamp
                .is_some_and(|t| now.saturating_duration_since(t) > MIN_RTT_WINDOW);
            if self.min_rtt.is_none_or(|m| rtt <= m) || expired {
                self.min_rtt = Some(rtt);
                self.min_rtt_stamp = Some(now);
                self.probe_rtt_due |= expired;
            }
        }
        let Some(sample) = sample else { return };
        let Some(rate) = sample.rate() else { return };
        // An application-limited sample is a lower bound: it may only raise the estimate.
        if !sample.app_limited || rate >= self.btl_bw.get() {
            self.btl_bw.update(self.rounds.count, rate);
        }
    }

    /// Startup's exit tests, once per round: the round lost too much (the queue overflowed:
    /// BBR v1 would go on for up to three more rounds, each overflowing it again), or, on a
    /// sample that was not application-limited, the bandwidth stopped growing.
    fn check_full_pipe(&mut self, round_start: bool, sample: Option<&DeliverySample>) {
        let Some(sample) = sample.filter(|_| round_start) else {
            return;
        };
        let delivered = sample
            .delivered_total
            .saturating_sub(self.round_start_delivered);
        let lost = std::mem::take(&mut self.round_lost);
        self.round_start_delivered = sample.delivered_total;
        if self.filled_pipe {
            return;
        }
        if lost >= STARTUP_LOSS_PACKETS * self.mss && lost * STARTUP_LOSS_DIVISOR > delivered + lost
        {
            self.filled_pipe = true;
            return;
        }
        if sample.app_limited {
            return;
        }
        let bw = self.btl_bw.get();
        if bw as f64 >= self.full_bw as f64 * FULL_BW_GROWTH {
            self.full_bw = bw;
            self.full_bw_rounds = 0;
            return;
        }
        self.full_bw_rounds += 1;
        if self.full_bw_rounds >= FULL_BW_ROUNDS {
            self.filled_pipe = true;
        }
    }

    fn update_mode(&mut self, now: Instant, in_flight: u64) {
        match self.mode {
            Mode::Startup if self.filled_pipe => self.mode = Mode::Drain,
            Mode::Drain if self.bdp(1.0).is_some_and(|bdp| in_flight <= bdp) => {
                self.enter_probe_bw(now, FIRST_CYCLE_PHASE);
            }
            Mode::ProbeBw { phase, since } => {
                let elapsed = now.saturating_duration_since(since);
                let full_length = self.min_rtt.is_some_and(|m| elapsed > m);
                let gain = PROBE_BW_GAINS[phase];
                let next = if gain > 1.0 {
                    // Probe until the extra is in flight (or a loss says the queue overflowed).
                    full_length
                        && (self.loss_in_phase
                            || self.bdp(gain).is_some_and(|target| in_flight >= target))
                } else if gain < 1.0 {
                    full_length || self.bdp(1.0).is_some_and(|bdp| in_flight <= bdp)
                } else {
                    full_length
                };
                if next {
                    self.enter_probe_bw(now, (phase + 1) % PROBE_BW_GAINS.len());
                }
            }
            Mode::ProbeRtt { until, round } => {
                if until.is_none() && in_flight <= self.min_window() {
                    self.mode = Mode::ProbeRtt {
                        until: Some(now + PROBE_RTT_DURATION),
                        round: self.rounds.count,
                    };
                } else if until.is_some_and(|t| now >= t) && self.rounds.count > round {
                    self.min_rtt_stamp = Some(now);
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    if self.filled_pipe {
                        self.enter_probe_bw(now, FIRST_CYCLE_PHASE);
                    } else {
                        self.mode = Mode::Startup;
                    }
                }
            }
            _ => {}
        }
        if std::mem::take(&mut self.probe_rtt_due) && !matches!(self.mode, Mode::ProbeRtt { .. }) {
            self.prior_cwnd = self.cwnd;
            self.mode = Mode::ProbeRtt {
                until: None,
                round: self.rounds.count,
            };
        }
    }

    fn enter_probe_bw(&mut self, now: Instant, phase: usize) {
        self.mode = Mode::ProbeBw { phase, since: now };
        self.loss_in_phase = false;
    }

    fn set_pacing_rate(&mut self, smoothed_rtt: Option<Duration>) {
        let bw = self.btl_bw.get();
        if bw == 0 {
            // No rate measured yet: the window per smoothed RTT, with startup's gain.
            if let Some(srtt) = smoothed_rtt.filter(|r| !r.is_zero()) {
                self.pacing_rate =
                    (STARTUP_GAIN * self.cwnd as f64 / srtt.as_secs_f64()).max(1.0) as u64;
            }
            return;
        }
        let rate = (self.pacing_gain() * bw as f64) as u64;
        // In startup the rate never falls (a small sample must not slow the search).
        if self.filled_pipe || rate > self.pacing_rate {
            self.pacing_rate = rate.max(1);
        }
    }

    /// The draft's `BBR.send_quantum`: what the sender may put on the wire at once, one
    /// millisecond at the pacing rate (the pacer's [`GRANULARITY`]: a host's timers and
    /// offloads work at about that grain), at least two datagrams (one below 1.2 Mbit/s), at
    /// most 64 KB.
    fn send_quantum(&self) -> u64 {
        let floor = if self.pacing_rate < SLOW_PACING_RATE {
            self.mss
        } else {
            2 * self.mss
        };
        let grain = u128::from(self.pacing_rate) * GRANULARITY.as_nanos() / 1_000_000_000;
        u64::try_from(grain)
            .unwrap_or(u64::MAX)
            .min(MAX_SEND_QUANTUM)
            .max(floor)
    }

    fn set_cwnd(&mut self, acked: u64, delivered_total: u64) {
        if self.recovery_until.is_some() {
            // After a timeout: packet conservation, one datagram out per one acknowledged.
            self.cwnd = (self.cwnd + acked).min(self.cap);
        } else {
            let target = self
                .bdp(self.cwnd_gain())
                .map(|bdp| bdp + 3 * self.send_quantum())
                .unwrap_or(self.cwnd);
            if self.filled_pipe {
                self.cwnd = (self.cwnd + acked).min(target);
            } else if self.cwnd < target || delivered_total < INITIAL_WINDOW_PACKETS * self.mss {
                self.cwnd += acked;
            }
        }
        self.cwnd = self.cwnd.max(self.min_window());
        if matches!(self.mode, Mode::ProbeRtt { .. }) {
            self.cwnd = self.cwnd.min(self.min_window());
        }
        self.cwnd = self.cwnd.min(self.cap);
    }
}

impl Controller for Bbr {
    fn window(&self) -> u64 {
        self.cwnd
    }

    fn on_ack(&mut self, now: Instant, acked: &Acked) {
        if let Some(until) = self.recovery_until {
            if acked.cumulative >= until {
                self.recovery_until = None;
                self.cwnd = self.cwnd.max(self.prior_cwnd);
            }
        }
        let sample = acked.delivery;
        let round_start = sample.is_some_and(|s| self.rounds.on_ack(&s));
        self.update_model(now, acked, sample.as_ref());
        self.check_full_pipe(round_start, sample.as_ref());
        self.update_mode(now, acked.bytes_in_flight);
        self.set_pacing_rate(acked.smoothed_rtt);
        let delivered_total = sample.map_or(u64::MAX, |s| s.delivered_total);
        self.set_cwnd(acked.bytes, delivered_total);
    }

    fn on_congestion_event(&mut self, _now: Instant, event: CongestionEvent, next_seq: SeqNum) {
        match event {
            CongestionEvent::Loss => self.loss_in_phase = true,
            CongestionEvent::Timeout => {
                if self.recovery_until.is_none() {
                    self.prior_cwnd = self.cwnd;
                }
                self.cwnd = self.mss.min(self.cap);
                self.recovery_until = Some(next_seq);
            }
        }
    }

    fn on_packets_lost(&mut self, _now: Instant, bytes: u64) {
        self.round_lost = self.round_lost.saturating_add(bytes);
    }

    fn on_spurious_loss(&mut self) {
        if self.recovery_until.take().is_some() {
            self.cwnd = self.cwnd.max(self.prior_cwnd);
        }
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MSS: u64 = 1000;
    const MS: Duration = Duration::from_millis(1);

    /// A sender on an ideal path of `rate` bytes/s and `rtt`, driven one round trip at a time:
    /// each round, the window (or the pacing rate's worth, whichever is less) is delivered.
    struct Path {
        bbr: Bbr,
        now: Instant,
        delivered: u64,
        seq: u64,
        rate: u64,
        rtt: Duration,
    }

    impl Path {
        fn new(rate: u64, rtt: Duration) -> Self {
            Path {
                bbr: Bbr::new(MSS, 10_000 * MSS),
                now: Instant::now(),
                delivered: 0,
                seq: 0,
                rate,
                rtt,
            }
        }

        /// One round: what the window and pacing allow goes out, the path delivers it at most
        /// at its rate, and it is acked in ten acks spread over the round.
        fn round(&mut self, loss_event: bool) {
            let window = self.bbr.window();
            let paced = (self.bbr.pacing_rate().unwrap() as f64 * self.rtt.as_secs_f64()) as u64;
            let capacity = (self.rate as f64 * self.rtt.as_secs_f64()) as u64;
            let sent = window.min(paced.max(MSS)).max(MSS);
            let through = sent.min(capacity);
            // A queue forms when more is sent than the path carries: the RTT grows with it.
            let queue_delay =
                Duration::from_secs_f64(sent.saturating_sub(capacity) as f64 / self.rate as f64);
            let prior = self.delivered;
            let start = self.now;
            if loss_event {
                let next = SeqNum(self.seq + 10);
                self.bbr
                    .on_congestion_event(self.now, CongestionEvent::Loss, next);
            }
            for i in 1..=10u64 {
                let bytes = through / 10;
                self.delivered += bytes;
                self.seq += 1;
                let now = start + self.rtt.mul_f64(i as f64 / 10.0) + queue_delay;
                let interval = (self.rtt + queue_delay).max(self.rtt);
                let acked = Acked {
                    bytes,
                    cumulative: SeqNum(self.seq),
                    app_limited: false,
                    rtt: Some(self.rtt + queue_delay),
                    min_rtt: Some(self.rtt),
                    smoothed_rtt: Some(self.rtt),
                    bytes_in_flight: through - bytes * i,
                    delivery: Some(DeliverySample {
                        delivered: through,
                        interval: Some(interval),
                        app_limited: false,
                        prior_delivered: prior,
                        delivered_total: self.delivered,
                        bytes_in_flight: through - bytes * i,
                    }),
                };
                self.bbr.on_ack(now, &acked);
                self.now = now;
            }
        }
    }

    #[test]
    fn startup_finds_the_bottleneck_then_drains_and_cruises_at_its_rate() {
        // 12.5 MB/s (100 Mbit/s), 40 ms: a BDP of 500 kB.
        let mut path = Path::new(12_500_000, MS * 40);
        for _ in 0..40 {
            path.round(false);
        }
        assert!(
            matches!(path.bbr.mode(), Mode::ProbeBw { .. }),
            "{:?}",
            path.bbr.mode()
        );
        let bw = path.bbr.btl_bw();
        assert!(
            bw > 12_500_000 * 9 / 10 && bw <= 12_500_000 * 11 / 10,
            "BtlBw {bw}"
        );
        assert_eq!(path.bbr.min_rtt(), Some(MS * 40));
        // CWND_GAIN BDPs plus three send quanta (a millisecond at 12.5 MB/s each), within the
        // estimate's rounding.
        let target = (CWND_GAIN * 500_000.0) as u64;
        let w = path.bbr.window();
        assert!(
            w > target * 9 / 10 && w < target * 11 / 10 + 3 * 12_500,
            "cwnd {w}"
        );
    }

    #[test]
    fn on_a_microsecond_round_trip_the_window_still_holds_three_send_quanta() {
        // Loopback: 200 MB/s and 20 µs, a BDP of 4 kB, four datagrams. A window of 1.75 BDPs
        // would let a sender whose peer acks in batches send 7 kB per wake-up; the draft's three
        // send quanta (64 kB each at this rate) keep the pipe full across the batching.
        let mut path = Path::new(200_000_000, Duration::from_micros(20));
        for _ in 0..200 {
            path.round(false);
        }
        assert!(matches!(path.bbr.mode(), Mode::ProbeBw { .. }));
        let w = path.bbr.window();
        assert!(w >= 3 * MAX_SEND_QUANTUM, "cwnd {w}");
        assert!(w <= 3 * MAX_SEND_QUANTUM + 2 * 4_000 * 11 / 10, "cwnd {w}");
    }

    #[test]
    fn random_loss_does_not_collapse_the_window() {
        let mut path = Path::new(12_500_000, MS * 40);
        for _ in 0..40 {
            path.round(false);
        }
        let before = path.bbr.window();
        // A loss every round (far more than 1% of datagrams).
        for _ in 0..40 {
            path.round(true);
        }
        let after = path.bbr.window();
        assert!(after >= before * 9 / 10, "{before} -> {after}");
        assert!(path.bbr.pacing_rate().unwrap() >= 12_500_000 / 2);
    }

    #[test]
    fn a_timeout_collapses_the_window_until_the_flight_is_recovered() {
        let mut path = Path::new(12_500_000, MS * 40);
        for _ in 0..40 {
            path.round(false);
        }
        let before = path.bbr.window();
        let next = SeqNum(path.seq + 5);
        path.bbr
            .on_congestion_event(path.now, CongestionEvent::Timeout, next);
        assert_eq!(path.bbr.window(), MSS);
        path.round(false);
        assert!(path.bbr.window() >= before, "restored once recovered");
    }

    #[test]
    fn an_application_limited_sample_cannot_lower_the_estimate() {
        let mut path = Path::new(12_500_000, MS * 40);
        for _ in 0..40 {
            path.round(false);
        }
        let bw = path.bbr.btl_bw();
        for i in 0..20u64 {
            let sample = DeliverySample {
                delivered: 100,
                interval: Some(MS * 40),
                app_limited: true,
                prior_delivered: path.delivered,
                delivered_total: path.delivered + 100,
                bytes_in_flight: 0,
            };
            path.delivered += 100;
            path.seq += 1;
            let acked = Acked {
                bytes: 100,
                cumulative: SeqNum(path.seq),
                app_limited: true,
                rtt: Some(MS * 40),
                min_rtt: Some(MS * 40),
                smoothed_rtt: Some(MS * 40),
                bytes_in_flight: 0,
                delivery: Some(sample),
            };
            path.bbr.on_ack(path.now + MS * 40 * (i as u32 + 1), &acked);
        }
        assert_eq!(path.bbr.btl_bw(), bw, "twenty idle rounds later");
    }

    #[test]
    fn probe_rtt_comes_after_ten_seconds_without_a_lower_rtt() {
        let mut path = Path::new(12_500_000, MS * 40);
        for _ in 0..40 {
            path.round(false);
        }
        // 10 s more of rounds whose RTT never beats the minimum (a standing queue of 5 ms).
        path.rtt = MS * 45;
        let mut saw_probe_rtt = false;
        for _ in 0..260 {
            path.round(false);
            if matches!(path.bbr.mode(), Mode::ProbeRtt { .. }) {
                saw_probe_rtt = true;
                assert!(path.bbr.window() <= MIN_CWND_PACKETS * MSS);
            }
        }
        assert!(saw_probe_rtt);
        assert!(matches!(path.bbr.mode(), Mode::ProbeBw { .. }));
        assert!(path.bbr.window() > MIN_CWND_PACKETS * MSS);
    }

    #[test]
    fn startup_ends_after_a_round_that_lost_more_than_two_percent() {
        // A fast path (1.25 GB/s): five rounds of doubling are far from filling it.
        let mut path = Path::new(1_250_000_000, MS * 40);
        for _ in 0..5 {
            path.round(false);
        }
        assert_eq!(path.bbr.mode(), Mode::Startup);
        // One lost datagram in a round of 320 kB: random loss, not an overflow.
        path.bbr.on_packets_lost(path.now, MSS);
        path.round(false);
        path.round(false);
        assert_eq!(path.bbr.mode(), Mode::Startup);
        // Twenty in a round: 3% of it, and more than eight datagrams.
        path.bbr.on_packets_lost(path.now, 20 * MSS);
        path.round(false);
        path.round(false);
        assert_ne!(path.bbr.mode(), Mode::Startup);
    }

    #[test]
    fn the_bandwidth_filter_forgets_after_ten_rounds() {
        let mut f = MaxFilter::default();
        f.update(0, 100);
        f.update(1, 50);
        assert_eq!(f.get(), 100);
        f.update(9, 60);
        assert_eq!(f.get(), 100);
        f.update(10, 40);
        assert_eq!(f.get(), 60);
        assert!(f.rounds.len() <= BW_WINDOW_ROUNDS as usize);
    }
}
