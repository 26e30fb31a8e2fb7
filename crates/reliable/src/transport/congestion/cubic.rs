//! [`Cubic`]: CUBIC (RFC 9438), with HyStart++ (RFC 9406) ending slow start.
//!
//! After a loss, CUBIC does not regrow its window by one datagram per round trip as NewReno
//! does; it grows along a cubic curve of the *time* since the loss,
//! `W_cubic(t) = C·(t − K)³ + W_max` (in datagrams, `t` in seconds, `C` = 0.4): fast at first,
//! flat near `W_max` (the window where the last loss came), then probing beyond it. `K` is the
//! time the curve takes to climb back to `W_max` from the reduced window,
//! `K = ∛((W_max − cwnd_epoch)/C)`. The reduction is to `β` = 0.7 of the window, not a half.
//! On a path with a long RTT this regrows in seconds what NewReno regrows in hundreds of round
//! trips, which is why it holds more of a link under rare random loss.
//!
//! Where the cubic curve would grow slower than NewReno would (short RTTs, small windows), CUBIC
//! follows an estimate of NewReno's window instead (`W_est`, the *Reno-friendly region*, §4.3),
//! growing by `α` = 3(1−β)/(1+β) datagrams per round trip, 1 once past the window of the last
//! loss. *Fast convergence* (§4.6): a loss below the previous `W_max` means a new flow is taking
//! its share, so `W_max` is set lower still, `cwnd·(1+β)/2`, to release bandwidth sooner.
//!
//! Slow start is NewReno's, ended by HyStart++ ([`super::hystart`]) when the RTT rises. A
//! timeout restarts from one datagram, losses within one window are one signal, a spurious loss
//! is undone, and application-limited acks earn no window, all as in [`super::new_reno`].

use std::time::Instant;

use udpchat_core::SeqNum;

use super::hystart::{HyStart, Phase};
use super::{
    Acked, CongestionEvent, Controller, RoundCounter, INITIAL_WINDOW_PACKETS, MIN_WINDOW_PACKETS,
};

/// `C`: the cubic curve's aggressiveness, in datagrams per second cubed (RFC 9438 §5.1).
pub const C: f64 = 0.4;
/// `β_cubic`: the window after a loss, as a fraction of the window before it (§4.6).
pub const BETA: f64 = 0.7;
/// `α_cubic` in the Reno-friendly region, before the window passes that of the last loss (§4.3).
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// The state a spurious loss restores.
#[derive(Debug, Clone, Copy)]
struct Saved {
    cwnd: f64,
    ssthresh: f64,
    w_max: f64,
    cwnd_prior: f64,
}

/// The current congestion-avoidance epoch: the cubic curve's origin.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    start: Instant,
    /// Seconds from the epoch's start until the curve is back at `w_max`.
    k: f64,
}

/// CUBIC's state. Windows are kept in bytes (as `f64`, for the curve's fractional growth);
/// `w_max`, `w_est` and `cwnd_prior` are in datagrams, as the RFC writes them.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: u64,
    cap: u64,
    cwnd: f64,
    ssthresh: f64,
    /// The window (datagrams) just before the last reduction, lowered by fast convergence.
    w_max: f64,
    /// The window (datagrams) when the last reduction was decided: `α` becomes 1 past it.
    cwnd_prior: f64,
    /// NewReno's window estimate (datagrams) for the Reno-friendly region.
    w_est: f64,
    epoch: Option<Epoch>,
    /// While in recovery: the sequence number that, once cumulatively acked, ends it.
    recovery_until: Option<SeqNum>,
    before_loss: Option<Saved>,
    hystart: HyStart,
    rounds: RoundCounter,
    /// When the last ack came, to move the epoch past application-limited stretches.
    last_ack: Option<Instant>,
}

impl Cubic {
    /// A fresh controller for datagrams of at most `mss` bytes; the window never grows past `cap`
    /// bytes.
    pub fn new(mss: u64, cap: u64) -> Self {
        let mss = mss.max(1);
        let cap = cap.max(mss);
        Cubic {
            mss,
            cap,
            cwnd: (INITIAL_WINDOW_PACKETS * mss).min(cap) as f64,
            ssthresh: f64::INFINITY,
            w_max: 0.0,
            cwnd_prior: 0.0,
            w_est: 0.0,
            epoch: None,
            recovery_until: None,
            before_loss: None,
            hystart: HyStart::default(),
            rounds: RoundCounter::default(),
            last_ack: None,
        }
    }

    fn min_window(&self) -> f64 {
        (MIN_WINDOW_PACKETS * self.mss).min(self.cap) as f64
    }

    fn segments(&self, bytes: f64) -> f64 {
        bytes / self.mss as f64
    }

    /// `W_cubic(t)`, in datagrams, `t` seconds into the current epoch (0 without one).
    pub fn w_cubic(&self, t: f64) -> f64 {
        let k = self.epoch.map_or(0.0, |e| e.k);
        C * (t - k).powi(3) + self.w_max
    }

    /// `K` of the current epoch, in seconds, if one has started.
    pub fn k(&self) -> Option<f64> {
        self.epoch.map(|e| e.k)
    }

    /// `W_max`, in datagrams.
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// Starts an epoch at `now` (the first ack of congestion avoidance after a reduction, or
    /// after slow start ended).
    fn start_epoch(&mut self, now: Instant) -> Epoch {
        let cwnd = self.segments(self.cwnd);
        let k = if self.w_max > cwnd {
            ((self.w_max - cwnd) / C).cbrt()
        } else {
            // No loss yet (slow start ended by HyStart++), or the window is past the last
            // loss's: the curve starts flat here and probes upward.
            self.w_max = cwnd;
            0.0
        };
        self.w_est = cwnd;
        let epoch = Epoch { start: now, k };
        self.epoch = Some(epoch);
        epoch
    }

    /// Congestion avoidance for `acked` bytes at `now` (§4.2–4.4).
    fn avoid(&mut self, now: Instant, acked: &Acked) {
        let epoch = match self.epoch {
            Some(e) => e,
            None => self.start_epoch(now),
        };
        let cwnd = self.segments(self.cwnd);
        let t = now.saturating_duration_since(epoch.start).as_secs_f64();
        let rtt = acked
            .smoothed_rtt
            .or(acked.rtt)
            .map_or(0.0, |r| r.as_secs_f64());
        // Reno-friendly region: NewReno's window, at α per round trip (1 past the last loss).
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * self.segments(acked.bytes as f64) / cwnd;
        if self.w_cubic(t) < self.w_est {
            self.cwnd = self.w_est * self.mss as f64;
        } else {
            // Aim at where the curve will be one RTT from now, no more than 1.5× the window.
            let target = self.w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
            self.cwnd += (target - cwnd) / cwnd * acked.bytes as f64;
        }
    }

    fn save(&mut self) {
        self.before_loss = Some(Saved {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            w_max: self.w_max,
            cwnd_prior: self.cwnd_prior,
        });
    }

    /// The multiplicative decrease's bookkeeping (§4.6–4.7): `W_max` with fast convergence,
    /// `ssthresh` at β of the window, a new epoch at the next ack.
    fn reduce(&mut self) {
        self.save();
        let cwnd = self.segments(self.cwnd);
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        self.ssthresh = (self.cwnd * BETA).max(self.min_window());
        self.epoch = None;
    }
}

impl Controller for Cubic {
    fn window(&self) -> u64 {
        (self.cwnd as u64).clamp(self.mss.min(self.cap), self.cap)
    }

    fn on_ack(&mut self, now: Instant, acked: &Acked) {
        let since_last = self.last_ack.map(|t| now.saturating_duration_since(t));
        self.last_ack = Some(now);
        if let Some(until) = self.recovery_until {
            if acked.cumulative >= until {
                self.recovery_until = None;
            } else {
                return;
            }
        }
        let slow_start = self.cwnd < self.ssthresh;
        if slow_start {
            if acked.delivery.is_some_and(|d| self.rounds.on_ack(&d)) {
                self.hystart.on_round_start();
            }
            if let Some(rtt) = acked.rtt {
                self.hystart.on_rtt_sample(rtt);
            }
        }
        if acked.app_limited {
            // RFC 9438 §5.8: time without use of the window is not time on the curve.
            if let (Some(epoch), Some(idle)) = (self.epoch.as_mut(), since_last) {
                epoch.start += idle;
            }
            return;
        }
        if slow_start {
            if self.hystart.phase() == Phase::Done {
                self.ssthresh = self.cwnd;
            } else {
                self.cwnd += self.hystart.growth(acked.bytes) as f64;
            }
        } else {
            self.avoid(now, acked);
        }
        self.cwnd = self.cwnd.min(self.cap as f64);
    }

    fn on_congestion_event(&mut self, _now: Instant, event: CongestionEvent, next_seq: SeqNum) {
        match event {
            CongestionEvent::Loss => {
                if self.recovery_until.is_some() {
                    return;
                }
                self.reduce();
                self.cwnd = self.ssthresh;
            }
            CongestionEvent::Timeout => {
                if self.recovery_until.is_none() {
                    self.reduce();
                }
                // RFC 9438 §4.8: the pipe drained; slow start again from one datagram.
                self.cwnd = self.mss.min(self.cap) as f64;
            }
        }
        self.recovery_until = Some(next_seq);
    }

    fn on_spurious_loss(&mut self) {
        if let Some(saved) = self.before_loss.take() {
            self.cwnd = self.cwnd.max(saved.cwnd);
            self.ssthresh = saved.ssthresh;
            self.w_max = saved.w_max;
            self.cwnd_prior = saved.cwnd_prior;
            self.epoch = None;
            self.recovery_until = None;
        }
    }

    fn ssthresh(&self) -> Option<u64> {
        Some(if self.ssthresh.is_finite() {
            self.ssthresh as u64
        } else {
            u64::MAX
        })
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    const MSS: u64 = 1000;

    fn cubic() -> Cubic {
        Cubic::new(MSS, 100_000 * MSS)
    }

    fn ack_at(c: &mut Cubic, now: Instant, bytes: u64, cumulative: u64, rtt: Duration) {
        let acked = Acked {
            bytes,
            cumulative: SeqNum(cumulative),
            app_limited: false,
            rtt: Some(rtt),
            min_rtt: Some(rtt),
            smoothed_rtt: Some(rtt),
            bytes_in_flight: 0,
            delivery: None,
        };
        c.on_ack(now, &acked);
    }

    /// Grows a fresh controller in slow start to `segments` datagrams, then loses one.
    fn lose_at(c: &mut Cubic, now: Instant, segments: u64, next: u64) {
        ack_at(c, now, (segments - 10) * MSS, 1, Duration::from_millis(1));
        assert_eq!(c.window(), segments * MSS);
        c.on_congestion_event(now, CongestionEvent::Loss, SeqNum(next));
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn a_loss_keeps_beta_of_the_window_and_the_curve_returns_to_w_max_after_k() {
        let t0 = Instant::now();
        let mut c = cubic();
        lose_at(&mut c, t0, 1000, 2000);
        assert_eq!(c.window(), 700 * MSS, "β = 0.7");
        assert_eq!(c.w_max(), 1000.0);
        // The first ack after recovery starts the epoch: K = ∛((1000 − 700)/0.4) = ∛750.
        ack_at(&mut c, t0, MSS, 2000, Duration::from_millis(100));
        let k = c.k().unwrap();
        assert!(close(k, 750f64.cbrt(), 1e-9), "K = {k}");
        assert!(close(c.w_cubic(0.0), 700.0, 1e-6));
        assert!(close(c.w_cubic(k), 1000.0, 1e-9));
        assert!(close(c.w_cubic(k + 2.0), 1000.0 + 0.4 * 8.0, 1e-9));
    }

    #[test]
    fn the_window_follows_the_response_function() {
        // A long RTT and a large window: the cubic region. Feed a window's worth of acks every
        // RTT and compare with W_cubic(t + RTT) of the RFC, which the window aims at.
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut c = cubic();
        lose_at(&mut c, t0, 1000, 2000);
        let mut now = t0;
        ack_at(&mut c, now, MSS, 2000, rtt);
        let k = c.k().unwrap();
        for round in 1..=120u32 {
            now = t0 + rtt * round;
            let acks = c.window() / MSS;
            for _ in 0..acks {
                ack_at(&mut c, now, MSS, 3000, rtt);
            }
            let t = (rtt * round).as_secs_f64();
            let expected = C * (t + 0.1 - k).powi(3) + 1000.0;
            let got = c.window() as f64 / MSS as f64;
            // Within 2% of the curve (growth per ack lags the target by at most one step).
            assert!(
                (got - expected).abs() <= expected * 0.02,
                "round {round}: {got} vs {expected}"
            );
        }
        // Past K it probes beyond W_max.
        assert!(c.window() > 1000 * MSS);
    }

    #[test]
    fn small_windows_on_short_paths_grow_as_reno_would() {
        // W_max of 20 datagrams and a 1 ms RTT: the curve barely moves in a few ms, so the
        // window follows W_est, growing α = 3(1−β)/(1+β) ≈ 0.53 datagrams per window acked.
        let t0 = Instant::now();
        let rtt = Duration::from_millis(1);
        let mut c = cubic();
        lose_at(&mut c, t0, 20, 100);
        assert_eq!(c.window(), 14 * MSS);
        ack_at(&mut c, t0, MSS, 100, rtt);
        let start = c.window() as f64 / MSS as f64;
        // Ten windows' worth of acks within 10 ms.
        let mut now = t0;
        for _ in 0..10 {
            now += rtt;
            for _ in 0..c.window() / MSS {
                ack_at(&mut c, now, MSS, 200, rtt);
            }
        }
        let grown = c.window() as f64 / MSS as f64 - start;
        assert!(close(ALPHA, 0.5294, 1e-4));
        assert!(
            grown > 10.0 * ALPHA * 0.8 && grown < 10.0 * ALPHA * 1.2,
            "grew {grown} datagrams; Reno-friendly predicts {}",
            10.0 * ALPHA
        );
        assert!(c.w_cubic(0.01) < c.window() as f64 / MSS as f64);
    }

    #[test]
    fn fast_convergence_lowers_w_max_after_a_loss_below_it() {
        let t0 = Instant::now();
        let mut c = cubic();
        lose_at(&mut c, t0, 100, 200);
        assert_eq!(c.w_max(), 100.0);
        assert_eq!(c.window(), 70 * MSS);
        // Recovery over; the next loss comes at 70 datagrams, below W_max = 100.
        ack_at(&mut c, t0, MSS, 200, Duration::from_millis(1));
        let w = c.window() as f64 / MSS as f64;
        c.on_congestion_event(t0, CongestionEvent::Loss, SeqNum(300));
        assert!(
            close(c.w_max(), w * (1.0 + BETA) / 2.0, 0.01),
            "{}",
            c.w_max()
        );
        assert!(close(c.window() as f64, w * BETA * MSS as f64, MSS as f64));
    }

    #[test]
    fn losses_of_one_window_are_one_reduction_and_a_spurious_one_is_undone() {
        let t0 = Instant::now();
        let mut c = cubic();
        lose_at(&mut c, t0, 100, 200);
        c.on_congestion_event(t0, CongestionEvent::Loss, SeqNum(200));
        assert_eq!(c.window(), 70 * MSS);
        c.on_spurious_loss();
        assert_eq!(c.window(), 100 * MSS);
        assert_eq!(c.ssthresh(), Some(u64::MAX));
    }

    #[test]
    fn a_timeout_restarts_from_one_datagram() {
        let t0 = Instant::now();
        let mut c = cubic();
        ack_at(&mut c, t0, 30 * MSS, 30, Duration::from_millis(10));
        c.on_congestion_event(t0, CongestionEvent::Timeout, SeqNum(40));
        assert_eq!(c.window(), MSS);
        assert_eq!(c.ssthresh(), Some(28 * MSS));
    }

    #[test]
    fn hystart_ends_slow_start_when_the_rtt_rises() {
        use super::super::DeliverySample;
        let t0 = Instant::now();
        let mut c = cubic();
        let mut delivered = 0u64;
        let mut feed = |c: &mut Cubic, rtt_ms: u64, round_start: bool| {
            for i in 0..8 {
                let prior = if round_start && i == 0 { delivered } else { 0 };
                delivered += MSS;
                let acked = Acked {
                    bytes: MSS,
                    cumulative: SeqNum(delivered / MSS),
                    app_limited: false,
                    rtt: Some(Duration::from_millis(rtt_ms)),
                    min_rtt: Some(Duration::from_millis(40)),
                    smoothed_rtt: Some(Duration::from_millis(40)),
                    bytes_in_flight: 0,
                    delivery: Some(DeliverySample {
                        delivered: MSS,
                        interval: None,
                        app_limited: false,
                        prior_delivered: prior,
                        delivered_total: delivered,
                        bytes_in_flight: 0,
                    }),
                };
                c.on_ack(t0, &acked);
            }
        };
        feed(&mut c, 40, true);
        feed(&mut c, 40, true);
        assert_eq!(c.ssthresh(), Some(u64::MAX));
        let before = c.window();
        // The RTT rises by 10 ms (> 40/8 = 5 ms): conservative slow start, quarter growth.
        feed(&mut c, 50, true);
        let css = c.window();
        assert!(css - before < 8 * MSS, "{before} -> {css}");
        for _ in 0..5 {
            feed(&mut c, 50, true);
        }
        assert!(c.ssthresh().unwrap() < u64::MAX, "slow start ended");
    }
}
