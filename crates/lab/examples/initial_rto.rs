//! What the handshake's first timeout (`ReliableConfig::initial_rto`) costs and saves: connection
//! setup over many seeds in the simulator, for a few initial timeouts, on one link.
//!
//! ```text
//! cargo run --release -p udpchat-lab --example initial_rto -- [LOSS] [DELAY_MS]
//! cargo run --release -p udpchat-lab --example initial_rto -- 20% 20
//! ```
//!
//! Each run is the lab's reliable run (100 messages every 10 ms, jitter ±5 ms, patient endpoints)
//! with only `initial_rto` changed; setup is the time to A's session being established, as in
//! `udpchat lab`'s setup column. It prints the mean and percentiles over 400 seeds, and how many
//! `Hello`s A sent per run (more than one: a resend, needed or not) and the data resends A's sender
//! found needless (a too-short timer would show there too). docs/protocol.md quotes it.

use std::process::ExitCode;
use std::time::Duration;

use udpchat_lab::experiment::run::{simulate_with, PATIENT_IDLE, PATIENT_RETRIES};
use udpchat_lab::experiment::stats::percentile;
use udpchat_lab::experiment::{ExperimentConfig, SweepPoint};
use udpchat_lab::impairment::derive_seed;
use udpchat_lab::parse::parse_probability;
use udpchat_lab::sim::{PacketSummary, TraceEvent, ADDR_B};
use udpchat_reliable::{Endpoint, ReliableConfig, ReliableEndpoint};

const SEEDS: u64 = 400;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let loss = match parse_probability(&args.next().unwrap_or_else(|| "20%".to_owned())) {
        Ok(loss) => loss,
        Err(e) => {
            eprintln!("initial_rto: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(delay_ms) = args
        .next()
        .unwrap_or_else(|| "20".to_owned())
        .parse::<u64>()
    else {
        eprintln!("initial_rto: the delay is a whole number of milliseconds");
        return ExitCode::from(2);
    };
    let mut config = ExperimentConfig {
        losses: vec![loss],
        messages: 100,
        ..ExperimentConfig::default()
    };
    config.link.delay = Duration::from_millis(delay_ms);
    let Some(point) = config.points().ok().and_then(|p| p.first().copied()) else {
        eprintln!("initial_rto: no such link");
        return ExitCode::from(2);
    };
    println!(
        "loss {loss} each way, delay {delay_ms} ms ± 5 ms, {SEEDS} seeds: connection setup (ms)"
    );
    for rto_ms in [1000u64, 333, 250] {
        let Some(line) = measure(&config, &point, Duration::from_millis(rto_ms)) else {
            eprintln!("initial_rto: a run failed");
            return ExitCode::FAILURE;
        };
        println!("initial_rto {rto_ms:>4} ms: {line}");
    }
    ExitCode::SUCCESS
}

/// Runs every seed with `initial_rto`; returns the line of figures, `None` if a run failed.
fn measure(config: &ExperimentConfig, point: &SweepPoint, initial_rto: Duration) -> Option<String> {
    let mut setups = Vec::new();
    let (mut hellos, mut spurious) = (0usize, 0u64);
    for seed in 1..=SEEDS {
        let build = |nick: &str, peer, label| {
            let c = ReliableConfig {
                nick: nick.to_owned(),
                initial_rto,
                max_retries: PATIENT_RETRIES,
                idle_timeout: PATIENT_IDLE,
                ..ReliableConfig::default()
            };
            ReliableEndpoint::new(c, peer, derive_seed(seed, label))
                .map(|e| Box::new(e) as Box<dyn Endpoint>)
                .ok()
        };
        let (a, b) = (build("a", Some(ADDR_B), 100)?, build("b", None, 101)?);
        let (outcome, metrics) = simulate_with(config, point, seed, a, b).ok()?;
        hellos += outcome
            .trace
            .entries
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    TraceEvent::Transmit {
                        packet: PacketSummary::Hello,
                        ..
                    }
                )
            })
            .count();
        setups.extend(metrics.setup_ms);
        spurious += metrics.retransmits_spurious;
    }
    setups.sort_by(f64::total_cmp);
    let mean = setups.iter().sum::<f64>() / setups.len().max(1) as f64;
    let at = |q| percentile(&setups, q).unwrap_or(f64::NAN);
    Some(format!(
        "mean {mean:>5.0}  p50 {:>5.0}  p90 {:>5.0}  p99 {:>5.0}  max {:>5.0}; Hellos per run \
         {:.2}, needless data resends per run {:.2}",
        at(50.0),
        at(90.0),
        at(99.0),
        at(100.0),
        hellos as f64 / SEEDS as f64,
        spurious as f64 / SEEDS as f64
    ))
}
