//! A rerunnable measurement of the reliable transport where a chat lives, and on bulk transfer.
//!
//! ```text
//! cargo run --release -p udpchat-lab --example chat_latency -- [chat|bulk] [LOSS] [SEEDS] [CC] [WINDOW] [REDUNDANCY]
//! cargo run --release -p udpchat-lab --example chat_latency -- chat 10% 5
//! cargo run --release -p udpchat-lab --example chat_latency -- chat 10% 5 none
//! cargo run --release -p udpchat-lab --example chat_latency -- bulk 1% 1
//! cargo run --release -p udpchat-lab --example chat_latency -- bulk 0% 1 newreno 512
//! cargo run --release -p udpchat-lab --example chat_latency -- chat 10% 5 newreno 512 3
//! ```
//!
//! `CC` is `newreno`, `cubic`, `bbr` or `none` (default: the transport's default, `bbr`);
//! `WINDOW` overrides the receive window (packets);
//! `REDUNDANCY` sets `ReliableConfig::redundancy`: `auto` (the default) or a number of copies
//! per datagram (0 is off).
//!
//! **chat** is issue 6's chat workload (KCP's own test shape): A sends a 64-byte message every
//! 20 ms, B echoes each one the moment it arrives, A measures each round trip; both links have
//! 30 ms ± 15 ms one-way delay (uniform jitter, which may reorder) and independent loss. 1,000
//! round trips per seed after one untimed warm-up echo (so the figures describe a conversation,
//! not the handshake). It prints RTT avg/p50/p99/max over all seeds together, the data
//! transmissions per message, and the retransmissions by cause.
//!
//! **bulk** is issue 6's bulk workload: 10 MB from A to B in 16,000-byte messages over 20 ms,
//! 100 Mbit/s each way with a 500 kB tail-drop queue; it prints completion time, goodput and the
//! sender's wire bytes per delivered byte.
//!
//! Both run on the lab's [`Simulator`] in virtual time, seeded exactly like the lab and
//! `udpchat-bench` (seed 1 reproduces the bench's udpchat rows), with [`ReliableConfig::default`]
//! (only the congestion controller, the window and the redundancy can be changed), so the figures
//! are reproducible to the microsecond. The echo is why the scenario holds no messages and the
//! workload drives the simulator step by step ([`Simulator::advance_within`]): B's sends depend
//! on arrivals. `docs/protocol.md` ("Latency and throughput, measured") holds the figures and
//! what they mean.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::parse::{parse_probability, BitRate, QueueLimit};
use udpchat_lab::sim::{Scenario, Side, Simulator, ADDR_B};
use udpchat_lab::Probability;
use udpchat_reliable::{
    CongestionControl, Endpoint, Event, Redundancy, ReliableConfig, ReliableEndpoint, Stats,
};

/// Two reliable endpoints on the lab's simulator, trace off: the workload drives it step by step.
type Net = Simulator<ReliableEndpoint, ReliableEndpoint>;

fn net(config: &ReliableConfig, link: ImpairmentConfig, seed: u64) -> Net {
    let a = ReliableEndpoint::new(config.clone(), Some(ADDR_B), seed);
    let b = ReliableEndpoint::new(config.clone(), None, seed ^ 0x5eed);
    let (Ok(a), Ok(b)) = (a, b) else {
        unreachable!("main validated the configuration")
    };
    Simulator::new(Scenario::new(seed).links(link), a, b).without_trace()
}

const ROUNDS: usize = 1000;
const INTERVAL: Duration = Duration::from_millis(20);

fn text(i: usize) -> String {
    format!("{i:08}-{}", "c".repeat(55))
}

/// One seed of the echo chat: the round trips (None: never came back) and both sides' stats.
fn chat(
    config: &ReliableConfig,
    link: ImpairmentConfig,
    seed: u64,
) -> (Vec<Option<Duration>>, Stats, Stats) {
    let mut net = net(config, link, seed);
    let limit = net.at(Duration::from_secs(120));
    // Warm-up: one echo, untimed.
    let _ = net.send(Side::A, "warm-up");
    let mut start = None;
    while start.is_none() && net.advance_within(None, limit) {
        for (side, e) in net.take_events() {
            if let Event::Message { text, .. } = e {
                if side == Side::A {
                    start = Some(net.now() + INTERVAL);
                } else {
                    let _ = net.send(Side::B, &text);
                }
            }
        }
    }
    let Some(start) = start else {
        return (vec![None; ROUNDS], net.a().stats(), net.b().stats());
    };
    let mut sent: Vec<Instant> = Vec::new();
    let mut rtt = vec![None; ROUNDS];
    let mut back = 0;
    while back < ROUNDS {
        let next_send = (sent.len() < ROUNDS).then(|| start + INTERVAL * sent.len() as u32);
        if next_send.is_some_and(|t| t <= net.now()) {
            let _ = net.send(Side::A, &text(sent.len()));
            sent.push(net.now());
            continue;
        }
        for (side, e) in net.take_events() {
            let Event::Message { text, .. } = e else {
                continue;
            };
            if side == Side::B {
                let _ = net.send(Side::B, &text);
            } else if let Some(i) = text.get(..8).and_then(|s| s.parse::<usize>().ok()) {
                if i < ROUNDS && rtt[i].is_none() {
                    rtt[i] = Some(net.now() - sent[i]);
                    back += 1;
                }
            }
        }
        if back < ROUNDS && !net.advance_within(next_send, limit) {
            break;
        }
    }
    (rtt, net.a().stats(), net.b().stats())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run_chat(config: &ReliableConfig, loss: Probability, seeds: u64) {
    let link = ImpairmentConfig {
        loss,
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(15),
        ..ImpairmentConfig::default()
    };
    let mut all = Vec::new();
    let mut missing = 0;
    let (mut data, mut timeout, mut fast, mut spurious, mut datagrams) = (0, 0, 0, 0, 0);
    let (mut copies, mut repaired, mut bytes) = (0, 0, 0);
    for seed in 1..=seeds {
        let (rtt, a, b) = chat(config, link.clone(), seed);
        let mut sorted: Vec<Duration> = rtt.iter().flatten().copied().collect();
        missing += rtt.len() - sorted.len();
        sorted.sort();
        println!(
            "seed {seed:>3}: p50 {:>6.1} p99 {:>7.1} max {:>7.1} ms  rto {:>3} fast {:>3} spurious {:>3}",
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 0.99)),
            ms(sorted.last().copied().unwrap_or_default()),
            a.retransmits_timeout + b.retransmits_timeout,
            a.retransmits_fast + b.retransmits_fast,
            a.retransmits_spurious + b.retransmits_spurious,
        );
        all.extend(sorted);
        for s in [&a, &b] {
            timeout += s.retransmits_timeout;
            fast += s.retransmits_fast;
            spurious += s.retransmits_spurious;
            datagrams += s.datagrams_sent;
            copies += s.redundant_copies;
            repaired += s.repaired_by_copy;
            bytes += s.bytes_sent;
        }
        // Every message is one fragment: one first transmission each way, plus the warm-up.
        data += 2 * (ROUNDS as u64 + 1);
    }
    all.sort();
    let avg = all.iter().sum::<Duration>() / u32::try_from(all.len().max(1)).unwrap_or(1);
    println!(
        "chat loss {loss} cc {:?}, {seeds} seeds x {ROUNDS} echoes: avg {:.1} p50 {:.1} p99 {:.1} max {:.1} ms; missing {missing}",
        config.congestion,
        ms(avg),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
    );
    let resends = timeout + fast;
    println!(
        "  data transmissions per message {:.3} (resends: {timeout} timeout, {fast} fast, {spurious} spurious); datagrams per message {:.3}",
        (data + resends) as f64 / data as f64,
        datagrams as f64 / data as f64,
    );
    println!(
        "  redundancy {:?}: {copies} copies sent, {repaired} arrived first; wire bytes per message {:.1}",
        config.redundancy,
        bytes as f64 / data as f64,
    );
}

fn run_bulk(config: &ReliableConfig, loss: Probability, seeds: u64) {
    const CHUNK: usize = 16_000;
    const TOTAL: usize = 10_000_000;
    let link = ImpairmentConfig {
        loss,
        delay: Duration::from_millis(20),
        rate: BitRate::from_bits_per_second(100_000_000),
        queue: QueueLimit::bytes(500_000).unwrap_or(ImpairmentConfig::default().queue),
        ..ImpairmentConfig::default()
    };
    for seed in 1..=seeds {
        let mut net = net(config, link.clone(), seed);
        let chunk = "b".repeat(CHUNK);
        for _ in 0..TOTAL / CHUNK {
            let _ = net.send(Side::A, &chunk);
        }
        let limit = net.at(Duration::from_secs(600));
        let mut got = 0usize;
        while got < TOTAL / CHUNK && net.advance_within(None, limit) {
            for (side, e) in net.take_events() {
                if let (Side::B, Event::Message { .. }) = (side, e) {
                    got += 1;
                }
            }
        }
        let secs = net.elapsed().as_secs_f64();
        let delivered = (got * CHUNK) as f64;
        let a = net.a().stats();
        println!(
            "bulk loss {loss} cc {:?} seed {seed}: {} of {} chunks in {secs:.2} s = {:.1} Mbit/s; wire bytes/byte {:.4} (1/(1-p) = {:.4}); resends {} timeout {} fast {} spurious; cwnd {} ; ack datagrams back {}",
            config.congestion,
            got,
            TOTAL / CHUNK,
            delivered * 8.0 / secs / 1e6,
            a.bytes_sent as f64 / delivered,
            1.0 / (1.0 - loss.get()),
            a.retransmits_timeout,
            a.retransmits_fast,
            a.retransmits_spurious,
            a.cwnd,
            net.b().stats().datagrams_sent,
        );
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args.first().map_or("chat", String::as_str);
    let loss = match parse_probability(args.get(1).map_or("10%", String::as_str)) {
        Ok(loss) => loss,
        Err(e) => {
            eprintln!("chat_latency: {e}");
            return ExitCode::from(2);
        }
    };
    let seeds = match args.get(2).map_or(Ok(3), |s| s.parse::<u64>()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("chat_latency: seeds must be a whole number: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = ReliableConfig::default();
    match args.get(3).map(String::as_str) {
        None => {}
        Some("newreno") => config.congestion = CongestionControl::NewReno,
        Some("cubic") => config.congestion = CongestionControl::Cubic,
        Some("bbr") => config.congestion = CongestionControl::Bbr,
        Some("none") => config.congestion = CongestionControl::None,
        Some(other) => {
            eprintln!(
                "chat_latency: unknown congestion control {other:?} (newreno, cubic, bbr or none)"
            );
            return ExitCode::from(2);
        }
    }
    if let Some(window) = args.get(4) {
        match window.parse() {
            Ok(w) => config.window = w,
            Err(e) => {
                eprintln!("chat_latency: the window must be a number of packets: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(redundancy) = args.get(5) {
        match redundancy.as_str() {
            "auto" => config.redundancy = Redundancy::Auto,
            n => match n.parse() {
                Ok(r) => config.redundancy = Redundancy::Fixed(r),
                Err(e) => {
                    eprintln!(
                        "chat_latency: the redundancy must be auto or a number of copies: {e}"
                    );
                    return ExitCode::from(2);
                }
            },
        }
    }
    if let Err(e) = config.validate() {
        eprintln!("chat_latency: {e}");
        return ExitCode::from(2);
    }
    match workload {
        "chat" => run_chat(&config, loss, seeds),
        "bulk" => run_bulk(&config, loss, seeds),
        other => {
            eprintln!("chat_latency: unknown workload {other:?} (chat or bulk)");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
