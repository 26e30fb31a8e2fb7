//! [`Results`]: a finished sweep, aggregated across seeds and set beside theory.
//!
//! This is the one value every output is made from (the terminal table, `results.json`,
//! `results.csv`, the charts), so they cannot disagree. It serializes to the documented JSON
//! schema ([`SCHEMA`]), which holds everything needed to run the sweep again: the full
//! configuration, the seeds, the crate version, and the command line itself. It holds no
//! wall-clock time, so the same flags and seed give the same bytes.

use serde::Serialize;

use super::config::{ExperimentConfig, LossPattern, Mode, SweepPoint};
use super::metrics::RunMetrics;
use super::run::SweepRuns;
use super::stats::{Estimate, Pooled, CONFIDENCE};
use super::theory::{self, TheoryCheck, Z};

/// The JSON schema's name and version; bumped when a field changes meaning or goes away. Version
/// 2: latency is from the later of send and session establishment, connection setup has its own
/// metric, latency percentiles are pooled across seeds, and theory checks state their accepted
/// range.
/// Version 3: head-of-line blocking (`hol_*` fields in runs and rows), and the `tcp` and
/// `tcp-reno` modes.
pub const SCHEMA: &str = "udpchat-lab-results/3";

/// Where the runs happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The deterministic virtual-time simulator.
    Simulator,
    /// Real loopback sockets through the impairment proxy (and, for kernel TCP, two network
    /// namespaces through the TUN relay).
    Real,
    /// Real sockets between two network namespaces through the TUN relay, every mode (`--real
    /// --tun`).
    RealTun,
}

/// Each metric of a row across seeds: counts and ratios as the mean with its interval
/// ([`Estimate`]), times as percentiles of all seeds' samples pooled ([`Pooled`]; see
/// [`super::stats`] for why).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowMetrics {
    /// Fraction of messages delivered.
    pub delivery_ratio: Estimate,
    /// Duplicate deliveries per run.
    pub duplicates: Estimate,
    /// Out-of-order deliveries per run.
    pub out_of_order: Estimate,
    /// Connection setup (start to A's session established), ms: the median of the seeds' setup
    /// times, with their range; every value `None` for raw mode.
    pub setup_ms: Pooled,
    /// Smallest latency of all seeds' messages, ms.
    pub latency_min_ms: Pooled,
    /// Median latency of all seeds' messages pooled, ms.
    pub latency_p50_ms: Pooled,
    /// 90th percentile latency, pooled, ms.
    pub latency_p90_ms: Pooled,
    /// 99th percentile latency, pooled, ms.
    pub latency_p99_ms: Pooled,
    /// Largest latency of all seeds' messages, ms.
    pub latency_max_ms: Pooled,
    /// Datagrams (both ways) per delivered message.
    pub datagrams_per_delivered: Estimate,
    /// Data transmissions per message sent.
    pub transmissions_per_message: Estimate,
    /// Timeout retransmissions per run.
    pub retransmits_timeout: Estimate,
    /// Fast retransmissions per run.
    pub retransmits_fast: Estimate,
    /// Spurious retransmissions per run.
    pub retransmits_spurious: Estimate,
    /// Goodput, kbit/s.
    pub goodput_kbps: Estimate,
    /// Wire bytes per delivered payload byte.
    pub wire_per_byte: Estimate,
    /// Fraction of delivered messages held back by head-of-line blocking (every value `None`
    /// for raw mode).
    pub hol_blocked_ratio: Estimate,
    /// Median wait of the blocked messages of all seeds pooled, ms.
    pub hol_wait_p50_ms: Pooled,
    /// Longest wait of a blocked message, ms.
    pub hol_wait_max_ms: Pooled,
}

impl RowMetrics {
    /// Aggregates the runs of one point and mode.
    pub fn of(runs: &[RunMetrics]) -> RowMetrics {
        let est =
            |f: &dyn Fn(&RunMetrics) -> Option<f64>| Estimate::of(runs.iter().map(f).collect());
        let count = |f: &dyn Fn(&RunMetrics) -> u64| {
            Estimate::of(runs.iter().map(|r| Some(f(r) as f64)).collect())
        };
        let latencies: Vec<&[f64]> = runs.iter().map(|r| r.latencies_ms.as_slice()).collect();
        let latency = |q| Pooled::of(&latencies, q);
        let waits: Vec<&[f64]> = runs.iter().map(|r| r.hol_waits_ms.as_slice()).collect();
        let setups: Vec<Vec<f64>> = runs
            .iter()
            .map(|r| r.setup_ms.into_iter().collect())
            .collect();
        let setups: Vec<&[f64]> = setups.iter().map(Vec::as_slice).collect();
        RowMetrics {
            delivery_ratio: est(&|r| Some(r.delivery_ratio)),
            duplicates: count(&|r| r.duplicates),
            out_of_order: count(&|r| r.out_of_order),
            setup_ms: Pooled::of(&setups, 50.0),
            latency_min_ms: latency(0.0),
            latency_p50_ms: latency(50.0),
            latency_p90_ms: latency(90.0),
            latency_p99_ms: latency(99.0),
            latency_max_ms: latency(100.0),
            datagrams_per_delivered: est(&|r| r.datagrams_per_delivered),
            transmissions_per_message: est(&|r| Some(r.transmissions_per_message)),
            retransmits_timeout: count(&|r| r.retransmits_timeout),
            retransmits_fast: count(&|r| r.retransmits_fast),
            retransmits_spurious: count(&|r| r.retransmits_spurious),
            goodput_kbps: est(&|r| r.goodput_bps.map(|b| b / 1000.0)),
            wire_per_byte: est(&|r| r.wire_per_byte),
            hol_blocked_ratio: est(&|r| r.hol_blocked_ratio),
            hol_wait_p50_ms: Pooled::of(&waits, 50.0),
            hol_wait_max_ms: Pooled::of(&waits, 100.0),
        }
    }
}

/// One point of the sweep with one mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Mean loss rate, each direction, as a fraction.
    pub loss: f64,
    /// How the loss is spread.
    pub pattern: LossPattern,
    /// The transport.
    pub mode: Mode,
    /// The metrics across seeds.
    pub metrics: RowMetrics,
    /// The measurements beside theory.
    pub theory: Vec<TheoryCheck>,
    /// Every run, in seed order.
    pub runs: Vec<RunMetrics>,
}

/// A finished sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The version of udpchat-lab that ran it.
    pub version: &'static str,
    /// Simulator or real sockets.
    pub engine: Engine,
    /// The command that runs this sweep again.
    pub command: String,
    /// The full configuration.
    pub config: ExperimentConfig,
    /// The seeds, in run order.
    pub seeds: Vec<u64>,
    /// Confidence level of the intervals (`ci95` fields are half-widths at this level).
    pub confidence: f64,
    /// Standard errors a measurement may stray from theory before a warning.
    pub theory_z: f64,
    /// One row per point and mode: patterns outer, then losses, then modes.
    pub rows: Vec<Row>,
    /// Every theory check that failed, in words.
    pub warnings: Vec<String>,
}

impl Results {
    /// Aggregates a sweep's runs.
    pub fn new(
        config: &ExperimentConfig,
        engine: Engine,
        points: &[SweepPoint],
        runs: SweepRuns,
    ) -> Results {
        let mut rows = Vec::new();
        let mut warnings = Vec::new();
        for (point, per_mode) in points.iter().zip(runs) {
            for (&mode, runs) in config.modes.iter().zip(per_mode) {
                let theory = theory::check(config, point, mode, &runs);
                let cut = runs.iter().filter(|r| r.cut_short).count();
                if cut > 0 {
                    warnings.push(format!(
                        "loss {} ({}), {mode}: {cut} of {} runs hit the time limit still \
                         resending; their delivery counts only what had arrived by then",
                        point.loss,
                        point.pattern,
                        runs.len()
                    ));
                }
                for c in theory.iter().filter(|c| !c.ok) {
                    warnings.push(format!(
                        "loss {} ({}), {mode}: {} is beyond the statistical bound",
                        point.loss,
                        point.pattern,
                        c.describe()
                    ));
                }
                rows.push(Row {
                    loss: point.loss.get(),
                    pattern: point.pattern,
                    mode,
                    metrics: RowMetrics::of(&runs),
                    theory,
                    runs,
                });
            }
        }
        Results {
            schema: SCHEMA,
            version: env!("CARGO_PKG_VERSION"),
            engine,
            command: match engine {
                Engine::Simulator => config.command(),
                Engine::Real => format!("{} --real", config.command()),
                Engine::RealTun => format!("{} --real --tun", config.command()),
            },
            config: config.clone(),
            seeds: config.seed_list(),
            confidence: CONFIDENCE,
            theory_z: Z,
            rows,
            warnings,
        }
    }

    /// The results as pretty JSON, with a final newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::SocketAddr;
    use std::time::Instant;

    use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats};

    use super::*;
    use crate::experiment::run::{endpoints, run_sweep_with, EndpointPair, ExperimentError};
    use crate::experiment::theory::CheckKind;
    use crate::probability::Probability;

    /// A deliberately broken transport: silently ignores every third datagram it receives.
    struct DropsEveryThird<E> {
        inner: E,
        received: u64,
    }

    impl<E: Endpoint> Endpoint for DropsEveryThird<E> {
        fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
            self.inner.send(now, text)
        }
        fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
            self.received += 1;
            if self.received % 3 != 0 {
                self.inner.handle_datagram(now, from, datagram);
            }
        }
        fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
            self.inner.poll_transmit(now, buf)
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.inner.poll_timeout()
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.inner.handle_timeout(now);
        }
        fn poll_event(&mut self) -> Option<Event> {
            self.inner.poll_event()
        }
        fn close(&mut self, now: Instant) {
            self.inner.close(now);
        }
        fn finish(&mut self, now: Instant) {
            self.inner.finish(now);
        }
        fn is_closed(&self) -> bool {
            self.inner.is_closed()
        }
        fn peer(&self) -> Option<SocketAddr> {
            self.inner.peer()
        }
        fn stats(&self) -> Stats {
            self.inner.stats()
        }
    }

    fn config() -> ExperimentConfig {
        ExperimentConfig {
            losses: vec![Probability::ZERO, Probability::new(0.1).unwrap()],
            messages: 500,
            seeds: 2,
            ..ExperimentConfig::default()
        }
    }

    fn results(
        make: impl Fn(Mode, u64) -> Result<EndpointPair, ExperimentError> + Sync,
    ) -> Results {
        let config = config();
        let (points, runs) = run_sweep_with(&config, make, 2, &|_, _| {}).unwrap();
        Results::new(&config, Engine::Simulator, &points, runs)
    }

    fn failed(results: &Results, mode: Mode, kind: CheckKind) -> usize {
        results
            .rows
            .iter()
            .filter(|r| r.mode == mode)
            .flat_map(|r| &r.theory)
            .filter(|c| c.check == kind && !c.ok)
            .count()
    }

    #[test]
    fn an_honest_transport_matches_theory_without_warnings() {
        let r = results(endpoints);
        assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
        assert_eq!(r.rows.len(), 4);
        assert!(r.rows.iter().all(|row| !row.theory.is_empty()));
    }

    #[test]
    fn a_transport_that_drops_every_third_datagram_makes_theory_warn() {
        let broken = |mode: Mode, seed: u64| -> Result<EndpointPair, ExperimentError> {
            let (a, b) = endpoints(mode, seed)?;
            let b: Box<dyn Endpoint> = Box::new(DropsEveryThird {
                inner: b,
                received: 0,
            });
            Ok((a, b))
        };
        let r = results(broken);
        // Raw delivers a third less than 1-p at both loss rates...
        assert_eq!(
            failed(&r, Mode::Raw, CheckKind::RawDelivery),
            2,
            "{:#?}",
            r.warnings
        );
        // ...and reliable needs far more transmissions than even lost acks explain.
        assert_eq!(
            failed(&r, Mode::Reliable, CheckKind::TransmissionsPerMessage),
            2,
            "{:#?}",
            r.warnings
        );
        assert!(r.warnings.len() >= 4);
        assert!(
            r.warnings.iter().any(|w| w.contains("raw delivery")),
            "{:#?}",
            r.warnings
        );
    }

    #[test]
    fn a_lost_handshake_shows_in_setup_and_does_not_set_the_latency() {
        // At 20% loss each way a handshake succeeds at the first try with probability 0.64, so
        // among 20 seeds some lose it (all twenty succeeding: 1.3e-4) and wait a second or more.
        let config = ExperimentConfig {
            losses: vec![Probability::new(0.2).unwrap()],
            modes: vec![Mode::Reliable],
            messages: 100,
            seeds: 20,
            ..ExperimentConfig::default()
        };
        let (points, runs) = run_sweep_with(&config, endpoints, 2, &|_, _| {}).unwrap();
        let r = Results::new(&config, Engine::Simulator, &points, runs);
        let row = &r.rows[0];
        let slow = row
            .runs
            .iter()
            .filter(|run| run.setup_ms.unwrap() > 1000.0)
            .count();
        assert!(slow > 0, "{:?}", row.metrics.setup_ms);
        assert_eq!(
            row.metrics.setup_ms.seed_max,
            row.runs
                .iter()
                .filter_map(|r| r.setup_ms)
                .max_by(f64::total_cmp)
        );
        // The typical connection is a round trip (40 ms), and so is the median setup.
        let setup = row.metrics.setup_ms.pooled.unwrap();
        assert!(setup < 100.0, "{setup}");
        // Latency counts from the session's start: the median message takes about one link
        // delay, whatever the slow seeds waited for their handshake.
        let p50 = row.metrics.latency_p50_ms.pooled.unwrap();
        assert!(p50 < 100.0, "{p50}");
        // Counting from the session's start never makes a message faster than the link.
        let min = row.metrics.latency_min_ms.pooled.unwrap();
        assert!(min >= 15.0, "{min}");
    }

    #[test]
    fn json_is_deterministic_and_carries_what_a_rerun_needs() {
        let a = results(endpoints).to_json().unwrap();
        let b = results(endpoints).to_json().unwrap();
        assert_eq!(a, b);
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert!(v["command"].as_str().unwrap().contains("--seed 1"));
        assert_eq!(v["config"]["seeds"], 2);
    }
}
