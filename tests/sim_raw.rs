//! Raw-mode chat in the lab's simulator: what the receiver reports is exactly what the links did.
//!
//! Two real `RawEndpoint`s talk through impaired virtual links. The simulator's trace says which
//! datagram each link dropped, duplicated, corrupted or delivered late; these tests check that
//! the raw endpoint's gap, duplicate and reorder reports match the trace one for one, and that a
//! run replays byte for byte from its seed.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use udpchat_lab::sim::{
    Link, Outcome, PacketSummary, Scenario, Side, Simulator, TraceEvent, ADDR_A, ADDR_B,
};
use udpchat_lab::{ImpairmentConfig, Probability};
use udpchat_reliable::raw::{RawConfig, RawEndpoint};
use udpchat_reliable::{Endpoint, Event};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn p(x: f64) -> Probability {
    Probability::new(x).unwrap()
}

fn raw(nick: &str, peer: std::net::SocketAddr) -> RawEndpoint {
    RawEndpoint::new(RawConfig {
        nick: nick.to_owned(),
        peer: Some(peer),
        ..RawConfig::default()
    })
}

fn run(scenario: Scenario) -> Outcome<RawEndpoint, RawEndpoint> {
    Simulator::new(scenario, raw("alice", ADDR_B), raw("bob", ADDR_A)).run()
}

/// The raw sequence number of every datagram `side` transmitted, by trace datagram id.
fn raw_seqs(outcome: &Outcome<RawEndpoint, RawEndpoint>, side: Side) -> HashMap<u64, u64> {
    outcome
        .trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::Transmit {
                side: s,
                datagram,
                packet: PacketSummary::Raw { seq },
                ..
            } if *s == side => Some((*datagram, *seq)),
            _ => None,
        })
        .collect()
}

/// What the application at `side` was told.
fn app_events(outcome: &Outcome<RawEndpoint, RawEndpoint>, side: Side) -> Vec<&Event> {
    outcome
        .trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::App { side: s, event } if *s == side => Some(event),
            _ => None,
        })
        .collect()
}

/// Checks one direction: the receiver's gaps are exactly the dropped messages before the last
/// one that arrived, and everything else arrived once.
fn check_gaps_match_drops(outcome: &Outcome<RawEndpoint, RawEndpoint>, sender: Side, sent: u64) {
    let receiver = match sender {
        Side::A => Side::B,
        Side::B => Side::A,
    };
    let link = sender.outgoing();
    let seqs = raw_seqs(outcome, sender);
    assert_eq!(seqs.len() as u64, sent);
    let dropped: BTreeSet<u64> = outcome
        .trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::Dropped {
                link: l, datagram, ..
            } if *l == link => Some(seqs[datagram]),
            _ => None,
        })
        .collect();
    let events = app_events(outcome, receiver);
    let delivered: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message { seq, .. } => *seq,
            _ => None,
        })
        .collect();
    let gaps: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Gap { first, last, .. } => Some(*first..=*last),
            _ => None,
        })
        .flatten()
        .collect();

    // Loss only: each message arrives once, in order, or not at all.
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats"
    );
    let delivered_set: BTreeSet<u64> = delivered.iter().copied().collect();
    assert!(delivered_set.is_disjoint(&dropped));
    assert_eq!(delivered_set.len() + dropped.len(), sent as usize);

    // 30% of `sent`, give or take: the link did drop a real share.
    assert!(dropped.len() as u64 > sent / 5 && (dropped.len() as u64) < sent * 2 / 5);

    // The gaps reported are exactly the drops before the last message that arrived (a drop at
    // the very end is invisible to raw mode: nothing later arrives to reveal it).
    let last = *delivered.last().unwrap();
    let visible: BTreeSet<u64> = dropped.iter().copied().filter(|&s| s < last).collect();
    assert_eq!(gaps, visible);

    let stats = match receiver {
        Side::A => outcome.a.stats(),
        Side::B => outcome.b.stats(),
    };
    assert_eq!(stats.gaps, visible.len() as u64);
    assert_eq!(stats.messages_received, delivered.len() as u64);
    let summary = match sender {
        Side::A => &outcome.summary.a_to_b,
        Side::B => &outcome.summary.b_to_a,
    };
    assert_eq!(summary.lost, dropped.len() as u64);
    assert_eq!(summary.link.dropped_loss, dropped.len() as u64);
    assert!(events
        .iter()
        .all(|e| !matches!(e, Event::Duplicate { .. } | Event::Reordered { .. })));
}

#[test]
fn raw_chat_under_30_percent_loss_shows_exactly_the_gaps_the_trace_dropped() {
    let scenario = Scenario::new(1)
        .links(ImpairmentConfig {
            loss: p(0.3),
            delay: ms(20),
            ..Default::default()
        })
        .messages_every(Side::A, "alice", ms(0), ms(10), 300)
        .messages_every(Side::B, "bob", ms(5), ms(15), 200);
    let outcome = run(scenario);
    check_gaps_match_drops(&outcome, Side::A, 300);
    check_gaps_match_drops(&outcome, Side::B, 200);
}

#[test]
fn raw_reports_the_duplicates_and_late_arrivals_the_links_made() {
    let scenario = Scenario::new(5)
        .links(ImpairmentConfig {
            delay: ms(30),
            jitter: ms(25),
            duplicate: p(0.1),
            ..Default::default()
        })
        .messages_every(Side::A, "m", ms(0), ms(4), 400);
    let outcome = run(scenario);

    // Replay B's deliveries from the trace: a datagram seen before is a duplicate; a first
    // arrival below the highest sequence number seen so far is late (reordered).
    let seqs = raw_seqs(&outcome, Side::A);
    let mut seen = HashSet::new();
    let mut highest = None;
    let (mut duplicates, mut reordered) = (0u64, 0u64);
    for event in outcome.trace.events() {
        if let TraceEvent::Delivered {
            link: Link::AToB,
            datagram,
            ..
        } = event
        {
            let seq = seqs[datagram];
            if !seen.insert(seq) {
                duplicates += 1;
            } else if highest.is_some_and(|h| seq < h) {
                reordered += 1;
            } else {
                highest = Some(seq);
            }
        }
    }
    assert!(duplicates > 20, "the link duplicated ~10%: {duplicates}");
    assert!(
        reordered > 20,
        "jitter of ±25 ms at 4 ms spacing reorders: {reordered}"
    );

    let events = app_events(&outcome, Side::B);
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count() as u64;
    assert_eq!(count(|e| matches!(e, Event::Duplicate { .. })), duplicates);
    assert_eq!(count(|e| matches!(e, Event::Reordered { .. })), reordered);
    assert_eq!(outcome.b.stats().duplicates, duplicates);
    assert_eq!(outcome.b.stats().reordered, reordered);
    // Nothing was lost: every message reached B's application exactly once.
    assert_eq!(outcome.summary.a_to_b.delivered, 400);
    assert_eq!(outcome.summary.a_to_b.link.duplicated, duplicates);
}

#[test]
fn corrupted_datagrams_are_caught_by_the_crc_and_never_shown() {
    let scenario = Scenario::new(9)
        .links(ImpairmentConfig {
            corrupt: p(0.2),
            ..Default::default()
        })
        .messages_every(Side::A, "m", ms(0), ms(1), 500);
    let outcome = run(scenario);
    let corrupted = outcome
        .trace
        .events()
        .filter(|e| {
            matches!(
                e,
                TraceEvent::Corrupted {
                    link: Link::AToB,
                    ..
                }
            )
        })
        .count() as u64;
    assert!(corrupted > 50, "{corrupted}");
    let stats = outcome.b.stats();
    // A flipped bit in the magic or version is "malformed"; anywhere else the CRC catches it.
    assert_eq!(stats.dropped_checksum + stats.dropped_malformed, corrupted);
    assert_eq!(stats.messages_received, 500 - corrupted);
    assert_eq!(outcome.summary.a_to_b.delivered, 500 - corrupted);
    assert_eq!(
        outcome.summary.a_to_b.unmatched, 0,
        "no corrupted text was shown"
    );
}

fn everything_scenario(seed: u64) -> Scenario {
    Scenario::new(seed)
        .links(ImpairmentConfig {
            loss: p(0.2),
            delay: ms(15),
            jitter: ms(10),
            duplicate: p(0.05),
            reorder: p(0.05),
            corrupt: p(0.05),
            ..Default::default()
        })
        .messages_every(Side::A, "a", ms(0), ms(3), 200)
        .messages_every(Side::B, "b", ms(1), ms(7), 100)
}

#[test]
fn the_same_seed_replays_the_same_trace_byte_for_byte() {
    let first = run(everything_scenario(7));
    let second = run(everything_scenario(7));
    assert_eq!(first.trace.to_text(), second.trace.to_text());
    assert_eq!(first.trace.to_json_lines(), second.trace.to_json_lines());
    assert_eq!(first.summary, second.summary);
    assert_eq!(first.b.stats(), second.b.stats());
    // The trace is not trivially equal: it recorded every kind of fate.
    let text = first.trace.to_text();
    for needle in [
        "drop",
        "duplicate",
        "corrupt",
        "deliver",
        "send-ahead",
        "\"event\":\"gap\"",
    ] {
        assert!(text.contains(needle), "no {needle:?} in the trace");
    }
}

#[test]
fn a_different_seed_gives_a_different_trace() {
    let seven = run(everything_scenario(7)).trace.to_text();
    let eight = run(everything_scenario(8)).trace.to_text();
    assert_ne!(seven, eight);
}
