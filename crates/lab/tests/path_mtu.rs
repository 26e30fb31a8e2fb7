//! Path MTU discovery (DPLPMTUD, RFC 8899) on the lab's seeded simulator, whose links drop every
//! datagram above the path MTU without a word, as a router that sends no ICMP does
//! (`Scenario::mtu`): the search settles on the right size for a 1,280-byte path and a
//! 9,000-byte one, and a path whose MTU drops mid-session (a black hole) loses no message.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::sim::{Scenario, Side, Simulator, ADDR_B};
use udpchat_reliable::{Endpoint, Event, ReliableConfig, ReliableEndpoint, Stats};

type Net = Simulator<ReliableEndpoint, ReliableEndpoint>;

/// The search stops within this many bytes below the path's MTU (`SEARCH_GRANULARITY`).
const GRANULARITY: u64 = 16;

fn net(cap: usize, mtu: Option<usize>, seed: u64) -> Net {
    let config = ReliableConfig {
        max_datagram: cap,
        ..ReliableConfig::default()
    };
    let a = ReliableEndpoint::new(config.clone(), Some(ADDR_B), seed).unwrap();
    let b = ReliableEndpoint::new(config, None, seed ^ 0x5eed).unwrap();
    let link = ImpairmentConfig {
        delay: Duration::from_millis(20),
        ..ImpairmentConfig::default()
    };
    let mut scenario = Scenario::new(seed).links(link);
    scenario.mtu = mtu;
    Simulator::new(scenario, a, b).without_trace()
}

/// Lines A has had delivered to B, in order, while running the clock to `until`.
fn run_until(net: &mut Net, until: Duration, got: &mut Vec<String>) {
    let limit = net.at(until);
    while net.advance_within(None, limit) {
        for (side, event) in net.take_events() {
            if let (Side::B, Event::Message { text, .. }) = (side, event) {
                got.push(text);
            }
        }
    }
}

/// A session that sends one line, then runs a minute: the search's settled size, both sides.
fn settle(cap: usize, mtu: usize, seed: u64) -> (Stats, Stats, Net) {
    let mut net = net(cap, Some(mtu), seed);
    net.send(Side::A, "hello").unwrap();
    let mut got = Vec::new();
    run_until(&mut net, Duration::from_secs(60), &mut got);
    assert_eq!(got, ["hello"]);
    (net.a().stats(), net.b().stats(), net)
}

#[test]
fn a_1280_byte_path_settles_just_below_1280_and_a_9000_byte_one_just_below_9000() {
    for seed in 1..=3 {
        for (cap, mtu) in [(1452, 1280), (65_507, 9000), (9000, 9000)] {
            let (a, b, net) = settle(cap, mtu, seed);
            for (side, stats) in [("A", &a), ("B", &b)] {
                let found = stats.path_mtu;
                assert!(
                    found <= mtu as u64 && found + GRANULARITY > mtu as u64,
                    "seed {seed}, cap {cap}, path {mtu}: {side} settled on {found}"
                );
            }
            // Probes above the path MTU were dropped, and cost no resend of data.
            assert!(net.wire(Side::A).dropped_mtu > 0 || cap == mtu);
            assert_eq!(a.retransmits_timeout + a.retransmits_fast, 0);
        }
    }
}

#[test]
fn after_discovery_a_long_message_takes_as_few_datagrams_as_the_path_allows() {
    let (_, _, mut net) = settle(65_507, 9000, 1);
    let before = net.wire(Side::A).datagrams;
    let line = "x".repeat(8000);
    net.send(Side::A, &line).unwrap();
    let mut got = Vec::new();
    let until = net.elapsed() + Duration::from_millis(30);
    run_until(&mut net, until, &mut got);
    assert_eq!(got, [line]);
    // 8,000 bytes in one datagram, not seven of the base size.
    assert_eq!(net.wire(Side::A).datagrams - before, 1);
}

#[test]
fn a_path_whose_mtu_drops_mid_session_falls_back_and_loses_no_message() {
    for seed in 1..=3 {
        let mut net = net(9000, None, seed);
        let lines: Vec<String> = (0..40)
            .map(|i| format!("{i:04} {}", "y".repeat(6000)))
            .collect();
        let mut got = Vec::new();
        net.send(Side::A, "hello").unwrap();
        run_until(&mut net, Duration::from_secs(2), &mut got);
        assert_eq!(net.a().stats().path_mtu, 9000, "seed {seed}");
        // Large lines every 50 ms; halfway the route changes to a 1,500-byte path.
        for (i, line) in lines.iter().enumerate() {
            if i == 20 {
                net.set_mtu(Some(1500));
            }
            net.send(Side::A, line).unwrap();
            let until = net.elapsed() + Duration::from_millis(50);
            run_until(&mut net, until, &mut got);
        }
        run_until(&mut net, Duration::from_secs(200), &mut got);
        let expected: Vec<String> = std::iter::once("hello".to_owned()).chain(lines).collect();
        assert_eq!(got, expected, "seed {seed}: every line once, in order");
        let a = net.a().stats();
        // Lines cut for 9,000 bytes were still on their way when the path shrank: the only way
        // across for their 6,000-byte datagrams is in pieces, so their arrival above shows
        // the pieces at work.
        assert!(net.wire(Side::A).dropped_mtu > 0, "seed {seed}");
        assert_eq!(a.pmtu_black_holes, 1, "seed {seed}");
        // The search ran again after the black hole, and found the new path.
        assert!(
            a.path_mtu <= 1500 && a.path_mtu + GRANULARITY > 1500,
            "seed {seed}: {}",
            a.path_mtu
        );
        assert!(
            net.take_events()
                .iter()
                .all(|(_, e)| !matches!(e, Event::Lost { .. } | Event::PeerUnreachable)),
            "seed {seed}"
        );
    }
}
