//! Encrypted sessions (`udpchat_secure::Secured`) in the lab's simulator, keys from the seed.
//!
//! Reliable mode must still deliver everything over links that lose, duplicate, reorder and
//! corrupt (the handshake included); raw mode must still show losses, while corrupted and
//! duplicated datagrams are removed as forgeries and replays; keys change mid-chat without a
//! line lost; a dead link ends the handshake with `NoAnswer`; and a run replays exactly.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use udpchat_lab::sim::{Outcome, Scenario, Side, Simulator, TraceEvent, ADDR_A, ADDR_B};
use udpchat_lab::{ImpairmentConfig, Probability};
use udpchat_reliable::{
    Endpoint, Event, HandshakeFailure, RawConfig, RawEndpoint, ReliableConfig, ReliableEndpoint,
};
use udpchat_secure::{Secured, OVERHEAD};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn p(x: f64) -> Probability {
    Probability::new(x).unwrap()
}

fn link(loss: f64, duplicate: f64, reorder: f64, corrupt: f64) -> ImpairmentConfig {
    ImpairmentConfig {
        loss: p(loss),
        duplicate: p(duplicate),
        reorder: p(reorder),
        corrupt: p(corrupt),
        delay: ms(20),
        jitter: ms(5),
        ..ImpairmentConfig::default()
    }
}

fn reliable(peer: Option<std::net::SocketAddr>, seed: u64) -> ReliableEndpoint {
    let config = ReliableConfig {
        max_datagram: 1200 - OVERHEAD,
        max_retries: 40,
        idle_timeout: Duration::from_secs(900),
        ..ReliableConfig::default()
    };
    ReliableEndpoint::new(config, peer, seed).unwrap()
}

fn raw(nick: &str, peer: Option<std::net::SocketAddr>) -> RawEndpoint {
    RawEndpoint::new(RawConfig {
        nick: nick.into(),
        peer,
        max_datagram: 1200 - OVERHEAD,
        plain: false,
    })
}

fn app_events<A, B>(outcome: &Outcome<A, B>, side: Side) -> Vec<Event> {
    outcome
        .trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::App { side: s, event } if *s == side => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn sas<A, B>(outcome: &Outcome<A, B>, side: Side) -> Vec<String> {
    app_events(outcome, side)
        .into_iter()
        .filter_map(|e| match e {
            Event::Secured { sas, .. } => Some(sas),
            _ => None,
        })
        .collect()
}

fn chat(seed: u64, links: ImpairmentConfig, count: u32) -> Scenario {
    let mut scenario = Scenario::new(seed)
        .links(links)
        .messages_every(Side::A, "from a", ms(0), ms(40), count)
        .messages_every(Side::B, "from b", ms(10), ms(50), count);
    scenario.time_limit = Duration::from_secs(300);
    scenario
}

#[test]
fn reliable_mode_encrypted_delivers_everything_over_bad_links() {
    for seed in 1..=6 {
        let scenario = chat(seed, link(0.2, 0.1, 0.1, 0.05), 40);
        // Both sides have a peer: a simultaneous open of the handshake too.
        let (a, b) = udpchat_lab::encrypted::wrap(
            seed,
            reliable(Some(ADDR_B), seed * 2),
            reliable(Some(ADDR_A), seed * 2 + 1),
        );
        let outcome = Simulator::new(scenario, a, b).run();
        let s = &outcome.summary;
        for (dir, d) in [("A->B", &s.a_to_b), ("B->A", &s.b_to_a)] {
            assert_eq!(d.delivered, 40, "seed {seed} {dir}: delivered");
            assert_eq!(d.duplicated + d.unmatched, 0, "seed {seed} {dir}");
        }
        let (sa, sb) = (sas(&outcome, Side::A), sas(&outcome, Side::B));
        assert_eq!(sa.len(), 1, "seed {seed}: one session");
        assert_eq!(sa, sb, "seed {seed}: both show the same SAS");
        // Corruption became unauthenticated drops, never a message.
        let stats = outcome.b.stats();
        assert!(
            stats.dropped_unauthenticated + stats.dropped_checksum > 0,
            "seed {seed}"
        );
    }
}

#[test]
fn raw_mode_encrypted_still_shows_losses_and_removes_duplicates_and_corruption() {
    let scenario = chat(7, link(0.2, 0.2, 0.1, 0.1), 100);
    let (a, b) = udpchat_lab::encrypted::wrap(7, raw("alice", Some(ADDR_B)), raw("bob", None));
    let outcome = Simulator::new(scenario, a, b).run();
    let d = &outcome.summary.a_to_b;
    assert!(d.delivered < 100 && d.delivered > 40, "{d:?}");
    assert_eq!(
        d.duplicated + d.unmatched,
        0,
        "nothing shown twice, nothing garbled"
    );
    let events = app_events(&outcome, Side::B);
    assert!(events.iter().any(|e| matches!(e, Event::Gap { .. })));
    assert!(!events.iter().any(|e| matches!(e, Event::Duplicate { .. })));
    let stats = outcome.b.stats();
    assert!(
        stats.dropped_replayed > 0,
        "network duplicates are replays: {stats:?}"
    );
    assert!(
        stats.dropped_unauthenticated > 0,
        "corruption fails the tag: {stats:?}"
    );
}

#[test]
fn keys_change_during_a_long_chat_and_no_line_is_lost() {
    let mut scenario = Scenario::new(3)
        .links(link(0.05, 0.0, 0.2, 0.0))
        .messages_every(Side::A, "tick", ms(0), Duration::from_secs(5), 100);
    scenario.time_limit = Duration::from_secs(520);
    let (a, b) = udpchat_lab::encrypted::wrap(3, reliable(Some(ADDR_B), 6), reliable(None, 7));
    let counters = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&counters);
    let outcome = Simulator::new(scenario, a, b)
        .with_capture(Box::new(move |d| {
            if d.from == ADDR_A {
                if let Some(h) = udpchat_core::sealed::SealedHeader::parse(d.payload) {
                    seen.lock().unwrap().push(h.counter);
                }
            }
        }))
        .run();
    assert_eq!(outcome.summary.a_to_b.delivered, 100);
    let epochs: std::collections::BTreeSet<u64> = counters
        .lock()
        .unwrap()
        .iter()
        .map(|c| c >> udpchat_secure::session::EPOCH_BITS)
        .collect();
    // 500 s of chat at one key per 120 s: epochs 0 to 4.
    assert_eq!(epochs.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
}

#[test]
fn a_dead_link_ends_the_handshake_with_no_answer() {
    let mut scenario = Scenario::new(4)
        .links(link(1.0, 0.0, 0.0, 0.0))
        .messages_every(Side::A, "hello?", ms(0), ms(100), 3);
    scenario.time_limit = Duration::from_secs(30);
    let (a, b) = udpchat_lab::encrypted::wrap(4, raw("alice", Some(ADDR_B)), raw("bob", None));
    let outcome = Simulator::new(scenario, a, b).run();
    let failed: Vec<_> = app_events(&outcome, Side::A)
        .into_iter()
        .filter_map(|e| match e {
            Event::HandshakeFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [HandshakeFailure::NoAnswer]);
    assert_eq!(outcome.summary.a_to_b.delivered, 0);
}

#[test]
fn a_different_key_fails_the_handshake_on_both_sides() {
    let scenario = chat(5, link(0.0, 0.0, 0.0, 0.0), 3);
    let (ca, _) = udpchat_lab::encrypted::configs(5);
    let (_, cb) = udpchat_lab::encrypted::configs(6);
    let a = Secured::new(raw("alice", Some(ADDR_B)), ca);
    let b = Secured::new(raw("bob", None), cb);
    let outcome = Simulator::new(scenario, a, b).run();
    for side in [Side::A, Side::B] {
        let failed = app_events(&outcome, side)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::HandshakeFailed {
                        reason: HandshakeFailure::WrongPassphrase,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(failed, 1, "{side}");
    }
    assert_eq!(outcome.summary.a_to_b.delivered, 0);
}

#[test]
fn an_encrypted_run_replays_exactly_from_its_seed() {
    let run = || {
        let scenario = chat(9, link(0.1, 0.1, 0.1, 0.05), 20);
        let (a, b) =
            udpchat_lab::encrypted::wrap(9, reliable(Some(ADDR_B), 18), reliable(None, 19));
        Simulator::new(scenario, a, b).run().trace.to_text()
    };
    assert_eq!(run(), run());
}
