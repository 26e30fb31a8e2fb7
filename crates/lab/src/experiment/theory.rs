//! What the numbers should be, and how far the measurements are from it.
//!
//! For each point and mode the runner sets its results beside simple closed forms:
//!
//! - **raw delivery ≈ s**, where `s` is the chance that one datagram arrives intact:
//!   `s = (1-p) * ((1-d)(1-c) + d(1-c²))` with `p` the mean loss, `d` the duplication and `c` the
//!   corruption probability (a corrupted copy fails the CRC; a duplicated datagram arrives if
//!   either copy is intact). With no duplication or corruption this is the textbook `1-p`.
//! - **transmissions per message ≈ 1/s** for the selective-repeat modes under independent loss:
//!   a message is resent until one copy gets through, a geometric number of tries, so `1/s` is a
//!   floor no sender can beat. Acks are lost too, and a packet whose acks were all lost is resent
//!   although it arrived; a sender that learned each packet's fate from its own ack alone (as
//!   stop-and-wait does) would need `1/s²` (data and ack must both get through), and selective
//!   repeat, whose every ack repeats what earlier ones said, must do no worse. Resends the sender
//!   itself counted as spurious (jitter reordering packets looks like loss for a moment) come on
//!   top. So the check accepts `[1/s, 1/s² + spurious/messages]`, each side widened by the
//!   statistical bound, and reports how far the
//!   measurement is from the textbook `1/s`. Go-back-n and stop-and-wait resend more by design,
//!   and bursts correlate the tries, so neither is checked.
//! - **reliable delivery = 100%**: a reliable mode that lost messages on a merely lossy link is
//!   broken, whatever the numbers say.
//! - **minimum latency ≥ the link's minimum delay**: `delay - jitter` (jitter is uniform in
//!   `±jitter`), or 0 when the reorder knob lets datagrams skip the delay. Nothing can beat it.
//!
//! The statistical bound is [`Z`] standard errors of the pooled measurement (all seeds' messages
//! together) under the theory: binomial for a delivery ratio, geometric for transmissions. For
//! burst loss the binomial variance is inflated by `(1+λ)/(1-λ)`, with `λ = 1 - p_GE - r_GE` the
//! lag-one correlation of the Gilbert–Elliott chain, since correlated losses average out more
//! slowly. A measurement beyond the bound is a warning: the simulator, the link model or the
//! transport does not do what it claims. Runs cut short by their time limit while still resending
//! are not checked for delivery or transmissions (they have no final count); the results say they
//! were cut short instead. With a rate limit the link also drops on a full queue,
//! which no closed form here covers, so the delivery and transmission checks are skipped.

use serde::Serialize;

use super::config::{ExperimentConfig, LossPattern, Mode, SweepPoint};
use super::metrics::RunMetrics;
use super::stats::{binomial_se, geometric_mean_se};

/// How many standard errors a measurement may be from theory before it is a warning. At 4, a
/// correct system trips one check in about 16,000, so a warning means something.
pub const Z: f64 = 4.0;

/// Which closed form a check compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Raw mode's delivery ratio against the chance one datagram arrives.
    RawDelivery,
    /// Selective repeat's data transmissions per message against `1/s`.
    TransmissionsPerMessage,
    /// A reliable mode's delivery ratio against 100%.
    ReliableDelivery,
    /// The smallest latency against the link's smallest delay.
    MinLatency,
}

/// One measurement beside its theory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TheoryCheck {
    /// Which check.
    pub check: CheckKind,
    /// The closed form, for people: `1-p`, `1/(1-p)`, ...
    pub formula: String,
    /// What theory says.
    pub expected: f64,
    /// What was measured (pooled over seeds).
    pub measured: f64,
    /// How far apart they may be: `Z` standard errors (or, for the latency floor, 0 below).
    pub tolerance: f64,
    /// Where theory allows more than `expected` (transmissions: `1/s²` for lost acks), the
    /// largest value accepted before the tolerance is added.
    pub upper: Option<f64>,
    /// `(measured - expected) / standard error`, where there is one. It may be large while the
    /// check passes: for transmissions, `expected` is the floor `1/s` and the accepted range goes
    /// up to `upper` plus its own tolerance.
    pub sigmas: Option<f64>,
    /// The smallest measurement accepted (tolerance included).
    pub accepted_min: f64,
    /// The largest measurement accepted (tolerance included); `None` for no upper bound (the
    /// latency floor).
    pub accepted_max: Option<f64>,
    /// True if the measurement is within `accepted_min..=accepted_max`.
    pub ok: bool,
}

impl TheoryCheck {
    /// A one-line human description, e.g. `raw delivery 89.6% vs 1-p = 90.0% (-0.4σ)`.
    pub fn describe(&self) -> String {
        let (measured, expected) = match self.check {
            CheckKind::RawDelivery | CheckKind::ReliableDelivery => (
                format!("{:.2}%", self.measured * 100.0),
                format!("{:.2}%", self.expected * 100.0),
            ),
            CheckKind::TransmissionsPerMessage => (
                format!("{:.3}", self.measured),
                format!("{:.3}", self.expected),
            ),
            CheckKind::MinLatency => (
                format!("{:.2} ms", self.measured),
                format!("{:.2} ms", self.expected),
            ),
        };
        let what = match self.check {
            CheckKind::RawDelivery => "raw delivery",
            CheckKind::TransmissionsPerMessage => "transmissions/message",
            CheckKind::ReliableDelivery => "reliable delivery",
            CheckKind::MinLatency => "min latency",
        };
        let relation = if self.check == CheckKind::MinLatency {
            ">="
        } else {
            "vs"
        };
        let mut text = format!("{what} {measured} {relation} {} = {expected}", self.formula);
        match (self.sigmas, self.upper) {
            (Some(z), Some(upper)) => {
                text.push_str(&format!(" ({z:+.1}σ; lost acks allow up to {upper:.3})"))
            }
            (Some(z), None) => text.push_str(&format!(" ({z:+.1}σ)")),
            (None, _) => {}
        }
        text.push_str(&format!(", accepted {}", self.accepted_range()));
        text
    }

    /// The accepted range in the measurement's unit, e.g. `88.73%..91.27%`, `1.083..1.265`,
    /// `>= 15.00 ms`.
    pub fn accepted_range(&self) -> String {
        let show = |v: f64| match self.check {
            CheckKind::RawDelivery | CheckKind::ReliableDelivery => format!("{:.2}%", v * 100.0),
            CheckKind::TransmissionsPerMessage => format!("{v:.3}"),
            CheckKind::MinLatency => format!("{v:.2} ms"),
        };
        match self.accepted_max {
            None => format!(">= {}", show(self.accepted_min)),
            Some(max) if (max - self.accepted_min).abs() < 1e-12 => show(max),
            Some(max) => format!("{}..{}", show(self.accepted_min), show(max)),
        }
    }
}

/// Whether `measured` lies in `min..=max`, give or take rounding.
fn within(measured: f64, min: f64, max: Option<f64>) -> bool {
    measured >= min - 1e-9 && max.is_none_or(|max| measured <= max + 1e-9)
}

/// The chance that one datagram carrying a message arrives intact, under `config`'s link at
/// `point`'s loss (see the module documentation).
pub fn datagram_success(config: &ExperimentConfig, point: &SweepPoint) -> f64 {
    let p = point.loss.get();
    let d = config.link.duplicate.get();
    let c = config.link.corrupt.get();
    (1.0 - p) * ((1.0 - d) * (1.0 - c) + d * (1.0 - c * c))
}

/// The variance inflation of a loss fraction averaged over consecutive packets.
fn burst_inflation(config: &ExperimentConfig, point: &SweepPoint) -> f64 {
    let Ok(link) = point.link(&config.link) else {
        return 1.0;
    };
    match (point.pattern, link.burst_loss) {
        (LossPattern::Bursts { .. }, Some(ge)) => {
            let lambda = (1.0 - ge.p.get() - ge.r.get()).clamp(-0.999_999, 0.999_999);
            (1.0 + lambda) / (1.0 - lambda)
        }
        _ => 1.0,
    }
}

/// The checks that apply to `mode` at `point`, from its runs (one per seed).
pub fn check(
    config: &ExperimentConfig,
    point: &SweepPoint,
    mode: Mode,
    runs: &[RunMetrics],
) -> Vec<TheoryCheck> {
    let messages: u64 = runs.iter().map(|r| r.messages).sum();
    if messages == 0 {
        return Vec::new();
    }
    let cx = Measured {
        config,
        point,
        runs,
        messages,
        s: datagram_success(config, point),
        closed_form: config.link.rate.is_none(),
        plain: config.link.duplicate.is_zero() && config.link.corrupt.is_zero(),
        // A run stopped by its time limit while still resending has no final count to check.
        finished: runs.iter().all(|r| !r.cut_short),
    };
    // On a dead link (nothing can get through) no transport can deliver, so there is nothing to
    // hold a reliable one to.
    let alive = cx.s > 0.0;
    [
        (mode == Mode::Raw && cx.closed_form).then(|| raw_delivery(&cx)),
        (mode != Mode::Raw && cx.finished && alive).then(|| reliable_delivery(&cx)),
        (mode.is_selective()
            && point.pattern == LossPattern::Independent
            && cx.closed_form
            && cx.finished
            && alive)
            .then(|| transmissions_per_message(&cx)),
        min_latency(&cx),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What every check reads: the point, its runs and the success probability of one datagram.
struct Measured<'a> {
    config: &'a ExperimentConfig,
    point: &'a SweepPoint,
    runs: &'a [RunMetrics],
    messages: u64,
    s: f64,
    closed_form: bool,
    plain: bool,
    finished: bool,
}

impl Measured<'_> {
    fn delivered(&self) -> u64 {
        self.runs.iter().map(|r| r.delivered).sum()
    }
    fn delivery(&self) -> f64 {
        self.delivered() as f64 / self.messages as f64
    }
}

/// Raw mode delivers a datagram's success probability `1-p` (or `s`), within its spread.
fn raw_delivery(cx: &Measured<'_>) -> TheoryCheck {
    let se = binomial_se(cx.s, cx.messages) * burst_inflation(cx.config, cx.point).sqrt();
    bounded(
        CheckKind::RawDelivery,
        if cx.plain { "1-p" } else { "s" },
        cx.s,
        cx.delivery(),
        se,
    )
}

/// A reliable mode delivers everything.
fn reliable_delivery(cx: &Measured<'_>) -> TheoryCheck {
    TheoryCheck {
        check: CheckKind::ReliableDelivery,
        formula: "100%".to_owned(),
        expected: 1.0,
        measured: cx.delivery(),
        tolerance: 0.0,
        upper: None,
        sigmas: None,
        accepted_min: 1.0,
        accepted_max: Some(1.0),
        ok: cx.delivered() == cx.messages,
    }
}

/// Each message goes out at least `1/(1-p)` times, and at most `1/(1-p)²` (lost acks) plus the
/// resends the sender itself found needless.
fn transmissions_per_message(cx: &Measured<'_>) -> TheoryCheck {
    let transmissions: u64 = cx.runs.iter().map(|r| r.data_transmissions).sum();
    let measured = transmissions as f64 / cx.messages as f64;
    let se = geometric_mean_se(cx.s, cx.messages);
    let floor = 1.0 / cx.s;
    let mut c = bounded(
        CheckKind::TransmissionsPerMessage,
        if cx.plain { "1/(1-p)" } else { "1/s" },
        floor,
        measured,
        se,
    );
    // Resends the sender itself found needless (an ack overtaken by jitter, say) come on top.
    let spurious: u64 = cx.runs.iter().map(|r| r.retransmits_spurious).sum();
    let upper = floor / cx.s.max(f64::MIN_POSITIVE) + spurious as f64 / cx.messages as f64;
    // The ceiling's own spread: geometric with success s², a wider law than the floor's.
    let upper_tolerance = Z * geometric_mean_se(cx.s * cx.s, cx.messages);
    c.accepted_max = Some(upper + upper_tolerance);
    c.ok = within(measured, c.accepted_min, c.accepted_max);
    c.upper = Some(upper);
    c
}

/// No message arrives sooner than the link's delay less its jitter (or at all, with reordering).
fn min_latency(cx: &Measured<'_>) -> Option<TheoryCheck> {
    let measured = cx
        .runs
        .iter()
        .filter_map(|r| r.latency_min_ms)
        .min_by(f64::total_cmp)?;
    let link = &cx.config.link;
    let floor = if link.reorder.is_zero() {
        link.delay.saturating_sub(link.jitter)
    } else {
        std::time::Duration::ZERO
    };
    let expected = floor.as_secs_f64() * 1000.0;
    Some(TheoryCheck {
        check: CheckKind::MinLatency,
        formula: if link.jitter.is_zero() {
            "delay".to_owned()
        } else {
            "delay-jitter".to_owned()
        },
        expected,
        measured,
        tolerance: 0.0,
        upper: None,
        sigmas: None,
        // A microsecond of slack for the float conversion, nothing more.
        accepted_min: expected - 1e-6,
        accepted_max: None,
        ok: measured + 1e-6 >= expected,
    })
}

fn bounded(kind: CheckKind, formula: &str, expected: f64, measured: f64, se: f64) -> TheoryCheck {
    let diff = measured - expected;
    let tolerance = Z * se;
    TheoryCheck {
        check: kind,
        formula: formula.to_owned(),
        expected,
        measured,
        tolerance,
        upper: None,
        sigmas: (se > 0.0 && se.is_finite()).then(|| diff / se),
        accepted_min: expected - tolerance,
        accepted_max: Some(expected + tolerance),
        // An exact theory (se = 0, e.g. no loss) allows only rounding.
        ok: within(measured, expected - tolerance, Some(expected + tolerance)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probability::Probability;

    fn run(messages: u64, delivered: u64, transmissions: u64, min_ms: f64) -> RunMetrics {
        RunMetrics {
            seed: 1,
            messages,
            delivered,
            delivery_ratio: delivered as f64 / messages as f64,
            duplicates: 0,
            out_of_order: 0,
            setup_ms: None,
            latency_min_ms: Some(min_ms),
            latency_p50_ms: Some(min_ms),
            latency_p90_ms: Some(min_ms),
            latency_p99_ms: Some(min_ms),
            latency_max_ms: Some(min_ms),
            datagrams: transmissions,
            data_transmissions: transmissions,
            datagrams_per_delivered: None,
            transmissions_per_message: transmissions as f64 / messages as f64,
            retransmits_timeout: 0,
            retransmits_fast: 0,
            retransmits_spurious: 0,
            lost_reported: 0,
            goodput_bps: None,
            wire_bytes: 0,
            wire_per_byte: None,
            hol_blocked: None,
            hol_blocked_ratio: None,
            hol_wait_p50_ms: None,
            hol_wait_max_ms: None,
            cut_short: false,
            latencies_ms: vec![min_ms],
            hol_waits_ms: Vec::new(),
        }
    }

    fn point(p: f64) -> SweepPoint {
        SweepPoint {
            loss: Probability::new(p).unwrap(),
            pattern: LossPattern::Independent,
        }
    }

    #[test]
    fn raw_delivery_within_the_bound_passes_and_beyond_it_warns() {
        let config = ExperimentConfig::default();
        // 10% loss, 5000 messages: se = sqrt(0.09/5000) = 0.42%, bound ±1.7%.
        let near = check(
            &config,
            &point(0.1),
            Mode::Raw,
            &[run(5000, 4460, 5000, 16.0)],
        );
        let raw = near
            .iter()
            .find(|c| c.check == CheckKind::RawDelivery)
            .unwrap();
        assert!(raw.ok, "{raw:?}");
        // 89.2% measured: 0.8% below, which is 1.89 standard errors.
        assert!((raw.sigmas.unwrap() + 1.886).abs() < 0.001);
        let far = check(
            &config,
            &point(0.1),
            Mode::Raw,
            &[run(5000, 4300, 5000, 16.0)],
        );
        assert!(
            !far.iter()
                .find(|c| c.check == CheckKind::RawDelivery)
                .unwrap()
                .ok
        );
    }

    #[test]
    fn transmissions_follow_the_geometric_law_for_selective_repeat_only() {
        let config = ExperimentConfig::default();
        // 20% loss: 1.25 transmissions per message.
        let ok = check(
            &config,
            &point(0.2),
            Mode::Reliable,
            &[run(1000, 1000, 1251, 16.0)],
        );
        let t = ok
            .iter()
            .find(|c| c.check == CheckKind::TransmissionsPerMessage)
            .unwrap();
        assert!(t.ok && (t.expected - 1.25).abs() < 1e-12, "{t:?}");
        // Lost acks may add resends, up to 1/(1-p)^2 = 1.5625.
        let acks = check(
            &config,
            &point(0.2),
            Mode::Reliable,
            &[run(1000, 1000, 1500, 16.0)],
        );
        assert!(acks.iter().all(|c| c.ok), "{acks:?}");
        let bad = check(
            &config,
            &point(0.2),
            Mode::Reliable,
            &[run(1000, 1000, 1800, 16.0)],
        );
        assert!(bad.iter().any(|c| !c.ok));
        let too_few = check(
            &config,
            &point(0.2),
            Mode::Reliable,
            &[run(1000, 1000, 1100, 16.0)],
        );
        assert!(too_few.iter().any(|c| !c.ok));
        let gbn = check(
            &config,
            &point(0.2),
            Mode::GoBackN,
            &[run(1000, 1000, 1500, 16.0)],
        );
        assert!(gbn
            .iter()
            .all(|c| c.check != CheckKind::TransmissionsPerMessage));
    }

    #[test]
    fn a_check_beyond_4_sigma_that_passes_says_which_range_accepts_it() {
        let config = ExperimentConfig::default();
        // 20% loss, 1000 messages: the floor is 1.25 (se 0.0177); 1.40 is +8.5σ above it, but
        // lost acks allow up to 1.5625, so it passes, and the range shown says why.
        let checks = check(
            &config,
            &point(0.2),
            Mode::Reliable,
            &[run(1000, 1000, 1400, 16.0)],
        );
        let t = checks
            .iter()
            .find(|c| c.check == CheckKind::TransmissionsPerMessage)
            .unwrap();
        assert!(t.ok && t.sigmas.unwrap() > 4.0, "{t:?}");
        assert!(
            t.accepted_min < 1.25 && t.accepted_max.unwrap() > 1.5625,
            "{t:?}"
        );
        assert!(within(t.measured, t.accepted_min, t.accepted_max));
        let text = t.describe();
        assert!(text.ends_with("accepted 1.179..1.681"), "{text}");
        // Every check's verdict is its measurement's place in its own range.
        for c in checks.iter().chain(&check(
            &config,
            &point(0.1),
            Mode::Raw,
            &[run(5000, 4300, 5000, 16.0)],
        )) {
            assert_eq!(
                c.ok,
                within(c.measured, c.accepted_min, c.accepted_max),
                "{c:?}"
            );
        }
    }

    #[test]
    fn reliable_modes_must_deliver_everything() {
        let config = ExperimentConfig::default();
        let checks = check(
            &config,
            &point(0.0),
            Mode::StopAndWait,
            &[run(100, 99, 100, 16.0)],
        );
        let c = checks
            .iter()
            .find(|c| c.check == CheckKind::ReliableDelivery)
            .unwrap();
        assert!(!c.ok);
    }

    #[test]
    fn nothing_arrives_before_the_link_allows() {
        let config = ExperimentConfig::default();
        let early = check(&config, &point(0.0), Mode::Raw, &[run(100, 100, 100, 14.0)]);
        let c = early
            .iter()
            .find(|c| c.check == CheckKind::MinLatency)
            .unwrap();
        assert_eq!(c.expected, 15.0);
        assert!(!c.ok);
        let mut reordering = config.clone();
        reordering.link.reorder = Probability::new(0.1).unwrap();
        let fine = check(
            &reordering,
            &point(0.0),
            Mode::Raw,
            &[run(100, 100, 100, 0.5)],
        );
        assert!(fine.iter().all(|c| c.ok), "{fine:?}");
    }

    #[test]
    fn a_dead_link_holds_no_transport_to_delivery() {
        let config = ExperimentConfig::default();
        let checks = check(&config, &point(1.0), Mode::Reliable, &[run(10, 0, 0, 16.0)]);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        let raw = check(&config, &point(1.0), Mode::Raw, &[run(10, 0, 10, 16.0)]);
        assert!(raw.iter().all(|c| c.ok), "{raw:?}");
    }

    #[test]
    fn duplication_and_corruption_enter_the_success_probability() {
        let mut config = ExperimentConfig::default();
        config.link.duplicate = Probability::new(0.5).unwrap();
        config.link.corrupt = Probability::new(0.5).unwrap();
        // (1 - 0.1) * (0.5 * 0.5 + 0.5 * 0.75) = 0.9 * 0.625
        assert!((datagram_success(&config, &point(0.1)) - 0.5625).abs() < 1e-12);
    }

    #[test]
    fn bursts_widen_the_bound() {
        let config = ExperimentConfig::default();
        let bursty = SweepPoint {
            loss: Probability::new(0.1).unwrap(),
            pattern: LossPattern::Bursts { mean_burst: 5.0 },
        };
        let runs = [run(5000, 4400, 5000, 16.0)];
        let indep = check(&config, &point(0.1), Mode::Raw, &runs);
        let burst = check(&config, &bursty, Mode::Raw, &runs);
        let tol = |c: &[TheoryCheck]| {
            c.iter()
                .find(|c| c.check == CheckKind::RawDelivery)
                .unwrap()
                .tolerance
        };
        assert!(tol(&burst) > 2.0 * tol(&indep));
    }
}
