//! The default redundancy (`Redundancy::Auto`) on the lab's seeded simulator: it costs nothing
//! on a clean path, beats no redundancy in chat tails on a lossy one, and stays out of a bulk
//! transfer's way.
//!
//! Every figure compared is a ratio between two runs on the same seeds (no time thresholds): the
//! chat is the bench's shape (a 64-byte line every 20 ms, echoed at once, 30 ms ± 15 ms each
//! way), shortened to 300 round trips per seed.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::parse::{BitRate, QueueLimit};
use udpchat_lab::sim::{Scenario, Side, Simulator, ADDR_B};
use udpchat_lab::Probability;
use udpchat_reliable::{Endpoint, Event, Redundancy, ReliableConfig, ReliableEndpoint, Stats};

type Net = Simulator<ReliableEndpoint, ReliableEndpoint>;

const ROUNDS: usize = 300;
const INTERVAL: Duration = Duration::from_millis(20);

fn net(redundancy: Redundancy, link: ImpairmentConfig, seed: u64) -> Net {
    let config = ReliableConfig {
        redundancy,
        ..ReliableConfig::default()
    };
    let a = ReliableEndpoint::new(config.clone(), Some(ADDR_B), seed).unwrap();
    let b = ReliableEndpoint::new(config, None, seed ^ 0x5eed).unwrap();
    Simulator::new(Scenario::new(seed).links(link), a, b).without_trace()
}

fn chat_link(loss: f64) -> ImpairmentConfig {
    ImpairmentConfig {
        loss: Probability::new(loss).unwrap(),
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(15),
        ..ImpairmentConfig::default()
    }
}

fn line(i: usize) -> String {
    format!("{i:08}-{}", "c".repeat(55))
}

/// One seed of the echo chat: every round trip (all must come back), A's and B's stats, and the
/// bytes both sides put on the wire.
fn chat(redundancy: Redundancy, loss: f64, seed: u64) -> (Vec<Duration>, Stats, Stats, u64) {
    chat_on(redundancy, chat_link(loss), seed)
}

/// [`chat`] on any link.
fn chat_on(
    redundancy: Redundancy,
    link: ImpairmentConfig,
    seed: u64,
) -> (Vec<Duration>, Stats, Stats, u64) {
    let mut net = net(redundancy, link, seed);
    let limit = net.at(Duration::from_secs(120));
    // One untimed echo first, as the bench does: the figures describe an open conversation,
    // not the handshake.
    net.send(Side::A, "warm-up").unwrap();
    let mut warm = false;
    while !warm {
        assert!(net.advance_within(None, limit), "seed {seed}: no handshake");
        for (side, event) in net.take_events() {
            if let Event::Message { text, .. } = event {
                if side == Side::B {
                    net.send(Side::B, &text).unwrap();
                } else {
                    warm = true;
                }
            }
        }
    }
    let start = net.now() + INTERVAL;
    let mut sent: Vec<Instant> = Vec::new();
    let mut rtt = vec![None; ROUNDS];
    let mut back = 0;
    while back < ROUNDS {
        let next_send = (sent.len() < ROUNDS).then(|| start + INTERVAL * sent.len() as u32);
        if next_send.is_some_and(|t| t <= net.now()) {
            net.send(Side::A, &line(sent.len())).unwrap();
            sent.push(net.now());
            continue;
        }
        for (side, event) in net.take_events() {
            let Event::Message { text, .. } = event else {
                continue;
            };
            if side == Side::B {
                net.send(Side::B, &text).unwrap();
            } else {
                let i: usize = text[..8].parse().unwrap();
                if rtt[i].is_none() {
                    rtt[i] = Some(net.now() - sent[i]);
                    back += 1;
                }
            }
        }
        if back < ROUNDS {
            assert!(net.advance_within(next_send, limit), "seed {seed} stalled");
        }
    }
    let bytes = net.wire(Side::A).bytes + net.wire(Side::B).bytes;
    let rtt = rtt.into_iter().map(Option::unwrap).collect();
    (rtt, net.a().stats(), net.b().stats(), bytes)
}

fn p99(mut all: Vec<Duration>) -> Duration {
    all.sort();
    all[(all.len() * 99).div_ceil(100) - 1]
}

#[test]
fn on_a_clean_path_auto_sends_no_copy_and_exactly_the_bytes_of_redundancy_off() {
    // No loss, and a steady 30 ms each way: nothing is ever resent, so nothing is copied.
    let steady = ImpairmentConfig {
        jitter: Duration::ZERO,
        ..chat_link(0.0)
    };
    for seed in 1..=4 {
        let (auto_rtt, a, b, auto_bytes) = chat_on(Redundancy::Auto, steady.clone(), seed);
        let (off_rtt, _, _, off_bytes) = chat_on(Redundancy::Fixed(0), steady.clone(), seed);
        assert_eq!(
            (a.redundant_copies, b.redundant_copies),
            (0, 0),
            "seed {seed}"
        );
        // Not one byte more: the same datagrams, so the same run.
        assert_eq!(auto_bytes, off_bytes, "seed {seed}");
        assert_eq!(auto_rtt, off_rtt, "seed {seed}");
    }
}

#[test]
fn on_a_jittery_loss_free_path_auto_copies_only_resends_and_costs_under_one_percent() {
    // The bench's 0% link: ±15 ms of jitter reorders, and some fast retransmits are spurious.
    // Each such resend gets its one copy (see `Sender::pick_copies`), and nothing else does.
    let mut auto_total = 0;
    let mut off_total = 0;
    for seed in 1..=4 {
        let (_, a, b, auto_bytes) = chat(Redundancy::Auto, 0.0, seed);
        let (_, _, _, off_bytes) = chat(Redundancy::Fixed(0), 0.0, seed);
        for side in [a, b] {
            assert!(
                side.redundant_copies <= side.retransmits_fast + side.retransmits_timeout,
                "seed {seed}: {side:?}"
            );
        }
        auto_total += auto_bytes;
        off_total += off_bytes;
    }
    // The bound is 10%; the measured cost is far below it.
    assert!(
        auto_total * 100 <= off_total * 101,
        "{auto_total} vs {off_total}"
    );
}

#[test]
fn at_ten_percent_loss_auto_has_a_shorter_p99_than_redundancy_off_on_the_same_seeds() {
    let mut auto = Vec::new();
    let mut off = Vec::new();
    let mut copies = 0;
    for seed in 1..=8 {
        let (rtt, a, b, _) = chat(Redundancy::Auto, 0.10, seed);
        auto.extend(rtt);
        copies += a.redundant_copies + b.redundant_copies;
        off.extend(chat(Redundancy::Fixed(0), 0.10, seed).0);
    }
    assert!(copies > 0, "auto never turned copies on at 10% loss");
    let (auto, off) = (p99(auto), p99(off));
    // A lost line repaired by the next datagram's copy instead of a resend a round trip later.
    assert!(
        auto.as_secs_f64() < 0.7 * off.as_secs_f64(),
        "p99 auto {auto:?} vs off {off:?}"
    );
}

/// A 10 MB transfer at 2% loss over a 100 Mbit/s, 20 ms path, stopped when B has 7.5 MB: until
/// then A always had data waiting (window- or pacing-limited; the default window of 1,024
/// packets holds about 1.2 MB, so the queue cannot have drained; at the transfer's tail, once it
/// has, the sender is application-limited and copies are allowed). A's stats then, and whether it
/// got that far.
fn bulk(redundancy: Redundancy, seed: u64) -> (Stats, bool) {
    const CHUNK: usize = 16_000;
    const CHUNKS: usize = 625;
    let link = ImpairmentConfig {
        loss: Probability::new(0.02).unwrap(),
        delay: Duration::from_millis(20),
        rate: BitRate::from_bits_per_second(100_000_000),
        queue: QueueLimit::bytes(500_000).unwrap(),
        ..ImpairmentConfig::default()
    };
    let mut net = net(redundancy, link, seed);
    let limit = net.at(Duration::from_secs(300));
    let chunk = "x".repeat(CHUNK);
    for _ in 0..CHUNKS {
        net.send(Side::A, &chunk).unwrap();
    }
    let mut received = 0;
    while received < CHUNKS * 3 / 4 && net.advance_within(None, limit) {
        received += net
            .take_events()
            .iter()
            .filter(|(side, e)| *side == Side::B && matches!(e, Event::Message { .. }))
            .count();
    }
    (net.a().stats(), received >= CHUNKS * 3 / 4)
}

#[test]
fn a_window_limited_bulk_transfer_gets_no_copies_however_lossy_the_path() {
    for seed in 1..=3 {
        let (auto, done) = bulk(Redundancy::Auto, seed);
        assert!(done, "seed {seed}");
        // It saw the loss (and resent), yet copied nothing: data always waited for the window.
        assert!(auto.retransmits_fast > 0, "seed {seed}");
        assert_eq!(auto.redundant_copies, 0, "seed {seed}");
        // Forcing copies does not change that either: the rule is the sender's, not the policy's.
        let (forced, done) = bulk(Redundancy::Fixed(3), seed);
        assert!(done, "seed {seed}");
        assert_eq!(forced.redundant_copies, 0, "seed {seed}");
    }
}
