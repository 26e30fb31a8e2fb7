//! A raw-mode chat under loss and jitter in the simulator: prints the summary and the trace.
//!
//! ```text
//! cargo run -p udpchat-lab --example simulate -- [SEED] [LOSS]
//! cargo run -p udpchat-lab --example simulate -- 1 30% | head -40
//! ```
//!
//! Run it twice with the same seed and the output is identical, byte for byte; change the seed
//! and other datagrams are lost. The same code drives the reliable endpoint: swap the endpoints.

use std::process::ExitCode;
use std::time::Duration;

use udpchat_lab::parse::parse_probability;
use udpchat_lab::sim::{Scenario, Side, Simulator, ADDR_A, ADDR_B};
use udpchat_lab::ImpairmentConfig;
use udpchat_reliable::{RawConfig, RawEndpoint};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let seed = match args.next().map(|s| s.parse::<u64>()) {
        None => 1,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("simulate: the seed must be a whole number: {e}");
            return ExitCode::from(2);
        }
    };
    let loss = match args.next().map(|s| parse_probability(&s)) {
        None => parse_probability("30%"),
        Some(parsed) => parsed,
    };
    let loss = match loss {
        Ok(loss) => loss,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(2);
        }
    };

    // Alice sends a line every 100 ms for 3 s, Bob answers every 250 ms, over a link with loss
    // and 40 ms ± 10 ms of delay each way.
    let link = ImpairmentConfig {
        loss,
        delay: Duration::from_millis(40),
        jitter: Duration::from_millis(10),
        ..Default::default()
    };
    let scenario = Scenario::new(seed)
        .links(link)
        .messages_every(
            Side::A,
            "alice",
            Duration::ZERO,
            Duration::from_millis(100),
            30,
        )
        .messages_every(
            Side::B,
            "bob",
            Duration::from_millis(50),
            Duration::from_millis(250),
            12,
        );
    let endpoint = |nick: &str, peer| {
        RawEndpoint::new(RawConfig {
            nick: nick.to_owned(),
            peer: Some(peer),
            ..RawConfig::default()
        })
    };
    let outcome =
        Simulator::new(scenario, endpoint("alice", ADDR_B), endpoint("bob", ADDR_A)).run();

    println!("{}", outcome.summary);
    print!("{}", outcome.trace.to_text());
    ExitCode::SUCCESS
}
