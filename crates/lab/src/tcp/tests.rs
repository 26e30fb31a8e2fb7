//! The TCP endpoint in the simulator: it delivers everything, in order, on lossy links, and a
//! seed replays it byte for byte.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use udpchat_reliable::{Endpoint, Event};

use super::*;
use crate::impairment::ImpairmentConfig;
use crate::probability::Probability;
use crate::sim::{
    Outcome, PacketSummary, Scenario, Side, Simulator, StopReason, TraceEvent, ADDR_A, ADDR_B,
};

fn pair(congestion: TcpCongestion, seed: u64) -> (TcpEndpoint, TcpEndpoint) {
    let config = |local| TcpConfig {
        congestion,
        ..TcpConfig::new(local)
    };
    (
        TcpEndpoint::connect(config(ADDR_A), ADDR_B, derive(seed, 1)).unwrap(),
        TcpEndpoint::listen(config(ADDR_B), derive(seed, 2)).unwrap(),
    )
}

fn derive(seed: u64, label: u64) -> u64 {
    crate::impairment::derive_seed(seed, label)
}

fn run(loss: f64, seed: u64, count: u32) -> Outcome<TcpEndpoint, TcpEndpoint> {
    let link = ImpairmentConfig {
        loss: Probability::new(loss).unwrap(),
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        ..ImpairmentConfig::default()
    };
    let scenario = Scenario::new(seed).links(link).messages_every(
        Side::A,
        "m",
        Duration::ZERO,
        Duration::from_millis(10),
        count,
    );
    let (a, b) = pair(TcpCongestion::Cubic, seed);
    Simulator::new(scenario, a, b).run()
}

#[test]
fn a_clean_link_delivers_every_message_in_order_after_a_handshake() {
    let outcome = run(0.0, 1, 50);
    let d = &outcome.summary.a_to_b;
    assert_eq!((d.sent, d.delivered, d.lost, d.reordered), (50, 50, 0, 0));
    let kinds: Vec<String> = outcome
        .trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::Transmit {
                packet: PacketSummary::Tcp(s),
                ..
            } => Some(s.flags.clone()),
            _ => None,
        })
        .take(3)
        .collect();
    assert_eq!(kinds, ["S", "SA", "A"], "{}", outcome.trace.to_text());
    assert_eq!(outcome.summary.stop, StopReason::Idle);
    assert_eq!(outcome.a.stats().retransmits_timeout, 0);
}

#[test]
fn every_message_arrives_in_order_at_up_to_thirty_percent_loss_over_many_seeds() {
    let mut resends = 0;
    for seed in 1..=12 {
        for loss in [0.0, 0.1, 0.2, 0.3] {
            let outcome = run(loss, seed, 60);
            let d = &outcome.summary.a_to_b;
            assert_eq!(d.delivered, 60, "loss {loss} seed {seed}: {d:?}");
            assert_eq!(
                (d.duplicated, d.reordered),
                (0, 0),
                "loss {loss} seed {seed}"
            );
            let s = outcome.a.stats();
            if loss == 0.0 {
                assert_eq!(s.retransmits_timeout + s.retransmits_fast, 0, "seed {seed}");
            } else {
                resends += s.retransmits_timeout + s.retransmits_fast;
            }
        }
    }
    // A run whose losses all fell on the handshake sends its queued lines in one go and may
    // resend nothing; across all of them, TCP repaired many losses.
    assert!(resends > 50, "{resends}");
}

#[test]
fn a_seed_replays_the_same_run_byte_for_byte() {
    let one = run(0.2, 7, 40);
    let two = run(0.2, 7, 40);
    assert_eq!(one.trace.to_text(), two.trace.to_text());
    assert_ne!(one.trace.to_text(), run(0.2, 8, 40).trace.to_text());
}

#[test]
fn tcp_gives_no_delivery_marks_and_a_reset_peer_reports_the_unacknowledged_as_lost() {
    let outcome = run(0.0, 3, 5);
    let a_events: Vec<&Event> = outcome
        .trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::App {
                side: Side::A,
                event,
            } => Some(event),
            _ => None,
        })
        .collect();
    assert!(a_events.iter().any(|e| matches!(e, Event::Peer { .. })));
    assert!(!a_events
        .iter()
        .any(|e| matches!(e, Event::Delivered { .. })));
}

#[test]
fn a_dead_peer_is_given_up_on_after_the_user_timeout_and_its_messages_are_lost() {
    let mut scenario = Scenario::new(5).messages_every(
        Side::A,
        "m",
        Duration::ZERO,
        Duration::from_millis(100),
        20,
    );
    scenario.dark_after = Some(Duration::from_millis(550));
    let config = |local| TcpConfig {
        user_timeout: Some(Duration::from_secs(5)),
        ..TcpConfig::new(local)
    };
    let a = TcpEndpoint::connect(config(ADDR_A), ADDR_B, 1).unwrap();
    let b = TcpEndpoint::listen(config(ADDR_B), 2).unwrap();
    let outcome = Simulator::new(scenario, a, b).run();
    let a_events: Vec<&Event> = outcome
        .trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::App {
                side: Side::A,
                event,
            } => Some(event),
            _ => None,
        })
        .collect();
    assert!(
        a_events.iter().any(|e| matches!(e, Event::PeerUnreachable)),
        "{a_events:?}"
    );
    let lost = outcome.a.stats().messages_lost;
    let delivered = outcome.summary.a_to_b.delivered;
    // Every message is either shown at B or reported lost at A (never neither); some of the
    // ones B showed may have had their ACK lost to the dark link and be reported lost too.
    assert!(
        lost > 0 && delivered + lost >= 20,
        "lost {lost}, delivered {delivered}"
    );
    assert!(outcome.a.is_closed());
}

#[test]
fn a_half_close_ends_both_sides_in_order() {
    let scenario =
        Scenario::new(2).messages_every(Side::A, "m", Duration::ZERO, Duration::from_millis(10), 5);
    let (a, b) = pair(TcpCongestion::Reno, 2);
    let mut sim = Simulator::new(scenario, a, b);
    let until = sim.at(Duration::from_secs(1));
    while sim.advance(until) {}
    let now = sim.now();
    sim.a_mut().finish(now);
    let until = sim.at(Duration::from_secs(2));
    while sim.advance(until) {}
    let events = sim.take_events();
    assert!(events
        .iter()
        .any(|(side, e)| *side == Side::B && matches!(e, Event::PeerFinished)));
    let now = sim.now();
    sim.b_mut().finish(now);
    let until = sim.at(Duration::from_secs(3));
    while sim.advance(until) {}
    assert!(sim.a().is_closed() && sim.b().is_closed());
    let events = sim.take_events();
    assert!(events
        .iter()
        .any(|(side, e)| *side == Side::A && matches!(e, Event::Closed)));
}

#[test]
fn a_corrupted_segment_is_counted_and_the_stream_recovers() {
    let link = ImpairmentConfig {
        corrupt: Probability::new(0.1).unwrap(),
        delay: Duration::from_millis(10),
        ..ImpairmentConfig::default()
    };
    let scenario = Scenario::new(4).links(link).messages_every(
        Side::A,
        "m",
        Duration::ZERO,
        Duration::from_millis(10),
        50,
    );
    let (a, b) = pair(TcpCongestion::Cubic, 4);
    let outcome = Simulator::new(scenario, a, b).run();
    assert_eq!(outcome.summary.a_to_b.delivered, 50);
    let dropped = outcome.a.stats().dropped_checksum + outcome.b.stats().dropped_checksum;
    assert!(dropped > 0);
}

/// A peer whose stream is not udpchat's frames (a length no datagram has) is reset, the
/// reason reported once, and the connection ends without claiming the peer closed it.
#[test]
fn a_stream_of_garbage_is_refused_and_the_connection_reset() {
    let scenario = Scenario::new(9);
    let (a, b) = pair(TcpCongestion::Cubic, 9);
    let mut sim = Simulator::new(scenario, a, b);
    let until = sim.at(Duration::from_millis(200));
    while sim.advance(until) {}
    // Write raw bytes on A's socket, beneath the framing: a 4 GiB length prefix.
    sim.a_mut().socket().send_slice(&[0xff; 8]).unwrap();
    let now = sim.now();
    sim.a_mut().pump(now, Cause::App);
    let until = sim.at(Duration::from_secs(2));
    while sim.advance(until) {}
    let b_events: Vec<Event> = sim
        .take_events()
        .into_iter()
        .filter_map(|(side, e)| (side == Side::B).then_some(e))
        .collect();
    assert!(b_events.iter().any(|e| matches!(
        e,
        Event::Dropped {
            cause: udpchat_reliable::DropCause::Malformed,
            ..
        }
    )));
    assert!(b_events.iter().any(|e| matches!(e, Event::Closed)));
    assert!(!b_events.iter().any(|e| matches!(e, Event::PeerClosed)));
    assert!(sim.b().is_closed());
}

/// Both describers name a TCP segment's flags and numbers instead of calling it malformed, and
/// still call bytes that are neither udpchat's nor TCP's what they are.
#[test]
fn the_describers_name_tcp_segments() {
    let (mut a, _) = pair(TcpCongestion::Cubic, 1);
    let mut syn = Vec::new();
    a.poll_transmit(std::time::Instant::now(), &mut syn)
        .unwrap();
    let described = crate::wire::describe(&syn);
    assert!(described.starts_with("tcp [S] seq="), "{described}");
    assert!(described.contains(" len=0 win=65535"), "{described}");
    match PacketSummary::of(&syn) {
        PacketSummary::Tcp(s) => {
            assert_eq!((s.flags.as_str(), s.ack, s.len), ("S", None, 0));
            assert_eq!(format!("{}", PacketSummary::Tcp(s.clone())), described);
        }
        other => panic!("{other:?}"),
    }
    // One flipped bit breaks the TCP checksum: neither describer takes it for a segment.
    let mut bad = syn.clone();
    bad[4] ^= 0x10;
    assert_eq!(PacketSummary::of(&bad), PacketSummary::Opaque);
    assert!(crate::wire::describe(&bad).starts_with("not a udpchat datagram"));
}
