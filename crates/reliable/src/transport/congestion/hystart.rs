//! [`HyStart`]: HyStart++ (RFC 9406), leaving slow start when the RTT rises rather than when a
//! loss finally comes.
//!
//! Slow start doubles the window every round trip; by the time a queue overflows, the window is
//! up to twice what the path holds, and the losses of that overshoot are a burst. HyStart++
//! watches the smallest RTT of each round: once it grows by more than an eighth of the previous
//! round's (clamped to 4–16 ms), the queue is building, and slow start gives way to
//! *Conservative Slow Start* (CSS): growth at a quarter of the rate for up to five rounds. If the
//! RTT falls back below the baseline during CSS, the rise was jitter and slow start resumes;
//! otherwise, after five rounds, slow start ends (`ssthresh` = the window). Rounds and RTT samples
//! come in as arguments; nothing here reads a clock.
//!
//! RFC 9406 §4.3 limits slow-start growth per ack to `L` datagrams without pacing; our sender
//! paces, so (as the RFC allows) `L` is unbounded here.

use std::time::Duration;

/// RTT samples a round needs before its minimum is compared (RFC 9406 `N_RTT_SAMPLE`).
pub const N_RTT_SAMPLE: u32 = 8;
/// The RTT rise threshold's floor (`MIN_RTT_THRESH`).
pub const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// The RTT rise threshold's ceiling (`MAX_RTT_THRESH`).
pub const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// The threshold is the previous round's minimum RTT divided by this (`MIN_RTT_DIVISOR`).
pub const MIN_RTT_DIVISOR: u32 = 8;
/// Conservative slow start grows by the acked bytes divided by this (`CSS_GROWTH_DIVISOR`).
pub const CSS_GROWTH_DIVISOR: u64 = 4;
/// Rounds of conservative slow start before slow start ends (`CSS_ROUNDS`).
pub const CSS_ROUNDS: u32 = 5;

/// Where slow start stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start: grow by every byte acknowledged.
    SlowStart,
    /// Conservative slow start: grow by a quarter of it.
    Conservative,
    /// Slow start is over: the caller sets `ssthresh` to the window and moves to congestion
    /// avoidance.
    Done,
}

/// HyStart++'s per-round RTT bookkeeping.
#[derive(Debug, Clone)]
pub struct HyStart {
    phase: Phase,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// The round minimum that sent us into CSS.
    css_baseline: Option<Duration>,
    css_rounds: u32,
}

impl Default for HyStart {
    fn default() -> Self {
        HyStart {
            phase: Phase::SlowStart,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
            css_baseline: None,
            css_rounds: 0,
        }
    }
}

impl HyStart {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A new round started (the first packet sent after the last round's end was acked). In CSS,
    /// counts the round and ends slow start after [`CSS_ROUNDS`].
    pub fn on_round_start(&mut self) {
        if self.phase == Phase::Conservative {
            self.css_rounds += 1;
            if self.css_rounds >= CSS_ROUNDS {
                self.phase = Phase::Done;
            }
        }
        self.last_round_min = self.current_round_min;
        self.current_round_min = None;
        self.samples = 0;
    }

    /// One RTT sample in the current round: may move slow start into CSS (the RTT rose) or back
    /// out of it (the rise was not a queue).
    pub fn on_rtt_sample(&mut self, rtt: Duration) {
        self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
        self.samples += 1;
        let (Some(current), Some(last)) = (self.current_round_min, self.last_round_min) else {
            return;
        };
        match self.phase {
            Phase::SlowStart if self.samples >= N_RTT_SAMPLE => {
                let threshold = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + threshold {
                    self.phase = Phase::Conservative;
                    self.css_baseline = Some(current);
                    self.css_rounds = 0;
                }
            }
            // RFC 9406 §4.2: the RTT fell back below the baseline, the rise was spurious.
            Phase::Conservative
                if self.samples >= N_RTT_SAMPLE
                    && self.css_baseline.is_some_and(|base| current < base) =>
            {
                self.phase = Phase::SlowStart;
                self.css_baseline = None;
            }
            _ => {}
        }
    }

    /// The window growth for `acked` bytes in the current phase.
    pub fn growth(&self, acked: u64) -> u64 {
        match self.phase {
            Phase::SlowStart => acked,
            Phase::Conservative => acked / CSS_GROWTH_DIVISOR,
            Phase::Done => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn round(h: &mut HyStart, rtt: Duration) {
        h.on_round_start();
        for _ in 0..N_RTT_SAMPLE {
            h.on_rtt_sample(rtt);
        }
    }

    #[test]
    fn a_rising_rtt_enters_conservative_slow_start_then_ends_it() {
        let mut h = HyStart::default();
        round(&mut h, MS * 40);
        round(&mut h, MS * 40);
        assert_eq!(h.phase(), Phase::SlowStart);
        // 40 ms / 8 = 5 ms threshold: 44 ms is within it, 45 ms is not.
        round(&mut h, MS * 44);
        assert_eq!(h.phase(), Phase::SlowStart);
        round(&mut h, MS * 50);
        assert_eq!(h.phase(), Phase::Conservative);
        assert_eq!(h.growth(4000), 1000);
        for _ in 0..CSS_ROUNDS - 1 {
            round(&mut h, MS * 50);
            assert_eq!(h.phase(), Phase::Conservative);
        }
        h.on_round_start();
        assert_eq!(h.phase(), Phase::Done);
    }

    #[test]
    fn the_threshold_is_clamped_to_4_and_16_ms() {
        // A 10 ms path: 10/8 < 4 ms, so a rise to 13 ms is tolerated and 14 ms is not.
        let mut h = HyStart::default();
        round(&mut h, MS * 10);
        round(&mut h, MS * 13);
        assert_eq!(h.phase(), Phase::SlowStart);
        let mut h = HyStart::default();
        round(&mut h, MS * 10);
        round(&mut h, MS * 14);
        assert_eq!(h.phase(), Phase::Conservative);
        // A 400 ms path: 400/8 = 50 > 16 ms, so a rise of 16 ms is enough.
        let mut h = HyStart::default();
        round(&mut h, MS * 400);
        round(&mut h, MS * 416);
        assert_eq!(h.phase(), Phase::Conservative);
    }

    #[test]
    fn too_few_samples_decide_nothing() {
        let mut h = HyStart::default();
        round(&mut h, MS * 40);
        h.on_round_start();
        for _ in 0..N_RTT_SAMPLE - 1 {
            h.on_rtt_sample(MS * 100);
        }
        assert_eq!(h.phase(), Phase::SlowStart);
        h.on_rtt_sample(MS * 100);
        assert_eq!(h.phase(), Phase::Conservative);
    }

    #[test]
    fn an_rtt_back_below_the_baseline_resumes_slow_start() {
        let mut h = HyStart::default();
        round(&mut h, MS * 40);
        round(&mut h, MS * 50);
        assert_eq!(h.phase(), Phase::Conservative);
        round(&mut h, MS * 45);
        assert_eq!(h.phase(), Phase::SlowStart);
    }
}
