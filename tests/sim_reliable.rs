//! Reliable mode in the lab's simulator: exactly once, in order, whatever the links do.
//!
//! Two real `ReliableEndpoint`s talk through the lab's impaired virtual links (loss, burst loss,
//! duplication, reordering, corruption, jitter, a rate limit), for every ARQ scheme and many seeds.
//! While the links are merely lossy nothing may be lost; on a dead link every message must be
//! reported lost within the documented give-up bound; and a run replays exactly from its seed.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;
use udpchat_lab::sim::{
    Outcome, Scenario, Side, Simulator, StopReason, TraceEvent, ADDR_A, ADDR_B,
};
use udpchat_lab::{GilbertElliott, ImpairmentConfig, Probability};
use udpchat_reliable::{
    Arq, Delivery, Endpoint, Event, Redundancy, ReliableConfig, ReliableEndpoint,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn p(x: f64) -> Probability {
    Probability::new(x).unwrap()
}

/// A link with every impairment the issue lists, scaled by the arguments.
fn link(loss: f64, duplicate: f64, reorder: f64, corrupt: f64, jitter_ms: u64) -> ImpairmentConfig {
    ImpairmentConfig {
        loss: p(loss),
        duplicate: p(duplicate),
        reorder: p(reorder),
        corrupt: p(corrupt),
        delay: ms(25),
        jitter: ms(jitter_ms),
        ..ImpairmentConfig::default()
    }
}

/// Patient on purpose: these runs are about delivery on bad-but-alive links, where the default
/// give-up (ten timeouts in a row) would, very rarely, fire on a live peer.
fn config(arq: Arq, delivery: Delivery) -> ReliableConfig {
    ReliableConfig {
        arq,
        delivery,
        max_retries: 40,
        idle_timeout: Duration::from_secs(600),
        ..ReliableConfig::default()
    }
}

fn pair(config: &ReliableConfig, seed: u64) -> (ReliableEndpoint, ReliableEndpoint) {
    // The tutorial's symmetric setup: both sides know each other and open at once.
    let a = ReliableEndpoint::new(config.clone(), Some(ADDR_B), seed.wrapping_mul(2)).unwrap();
    let b = ReliableEndpoint::new(config.clone(), Some(ADDR_A), seed.wrapping_mul(2) + 1).unwrap();
    (a, b)
}

fn chat(seed: u64, links: ImpairmentConfig, count: u32) -> Scenario {
    let mut scenario = Scenario::new(seed)
        .links(links)
        .messages_every(Side::A, "a", ms(0), ms(20), count)
        .messages_every(Side::B, "b", ms(5), ms(30), count);
    // No close: the run goes on (keepalives) until the time limit, long enough for the worst of
    // these links; closing is tested on its own.
    scenario.time_limit = Duration::from_secs(900);
    scenario
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

/// Runs `scenario` and checks the promise: every message delivered exactly once (in order unless
/// unordered), every one acknowledged to its sender, none reported lost, and a clean close.
fn assert_delivered(config: &ReliableConfig, scenario: Scenario, label: &str) {
    let count_a = scenario
        .messages
        .iter()
        .filter(|m| m.from == Side::A)
        .count();
    let count_b = scenario.messages.len() - count_a;
    let (a, b) = pair(config, scenario.seed);
    let outcome = Simulator::new(scenario, a, b).run();
    let s = &outcome.summary;
    assert_eq!(
        s.stop,
        StopReason::TimeLimit,
        "{label}: the session stays up"
    );
    for (dir, d, n) in [("A->B", &s.a_to_b, count_a), ("B->A", &s.b_to_a, count_b)] {
        assert_eq!(d.sent, n as u64, "{label} {dir}");
        assert_eq!(d.delivered, n as u64, "{label} {dir}: delivered");
        assert_eq!(d.duplicated, 0, "{label} {dir}: duplicated");
        assert_eq!(d.unmatched, 0, "{label} {dir}: unmatched");
        if config.delivery == Delivery::Ordered {
            assert_eq!(d.reordered, 0, "{label} {dir}: reordered");
        }
    }
    for side in [Side::A, Side::B] {
        let events = app_events(&outcome, side);
        let delivered = events
            .iter()
            .filter(|e| matches!(e, Event::Delivered { .. }))
            .count();
        let lost = events
            .iter()
            .filter(|e| matches!(e, Event::Lost { .. }))
            .count();
        let own = if side == Side::A { count_a } else { count_b };
        assert_eq!(delivered, own, "{label}: {side} told of each delivery");
        assert_eq!(lost, 0, "{label}: {side} lost nothing");
    }
}

#[test]
fn every_arq_scheme_delivers_exactly_once_in_order_over_bad_links() {
    let links = [
        ("clean", link(0.0, 0.0, 0.0, 0.0, 0)),
        ("loss 10%", link(0.10, 0.0, 0.0, 0.0, 5)),
        (
            "loss 30% dup reorder corrupt",
            link(0.30, 0.10, 0.10, 0.05, 10),
        ),
        ("loss 50%", link(0.50, 0.0, 0.0, 0.0, 0)),
        (
            "dup 20% corrupt 10% jitter",
            link(0.05, 0.20, 0.20, 0.10, 20),
        ),
        (
            "burst loss 10%, bursts of 4",
            ImpairmentConfig {
                burst_loss: Some(GilbertElliott::from_mean(p(0.10), 4.0).unwrap()),
                delay: ms(25),
                ..ImpairmentConfig::default()
            },
        ),
    ];
    for arq in [Arq::SelectiveRepeat, Arq::GoBackN, Arq::StopAndWait] {
        for (name, l) in &links {
            for seed in 0..6 {
                let label = format!("{arq:?} / {name} / seed {seed}");
                assert_delivered(
                    &config(arq, Delivery::Ordered),
                    chat(seed, l.clone(), 40),
                    &label,
                );
            }
        }
    }
}

#[test]
fn unordered_delivery_is_exactly_once_over_bad_links() {
    for seed in 0..20 {
        assert_delivered(
            &config(Arq::SelectiveRepeat, Delivery::Unordered),
            chat(seed, link(0.25, 0.1, 0.2, 0.05, 15), 40),
            &format!("unordered seed {seed}"),
        );
    }
}

#[test]
fn a_thousand_seeds_of_selective_repeat_at_twenty_percent_loss() {
    for seed in 0..1000 {
        assert_delivered(
            &config(Arq::SelectiveRepeat, Delivery::Ordered),
            chat(seed, link(0.20, 0.05, 0.10, 0.02, 10), 8),
            &format!("seed {seed}"),
        );
    }
}

#[test]
fn a_dead_link_reports_every_message_lost_within_the_give_up_bound() {
    let config = ReliableConfig::default();
    for arq in [Arq::SelectiveRepeat, Arq::GoBackN, Arq::StopAndWait] {
        let config = ReliableConfig {
            arq,
            ..config.clone()
        };
        let mut scenario = Scenario::new(3)
            .links(ImpairmentConfig {
                loss: Probability::ONE,
                delay: ms(25),
                ..ImpairmentConfig::default()
            })
            .messages_every(Side::A, "void", ms(0), ms(100), 10);
        scenario.time_limit = Duration::from_secs(600);
        let (a, b) = pair(&config, 3);
        let outcome = Simulator::new(scenario, a, b).run();
        // It gives up and then goes quiet: the run ends because nothing more can happen.
        assert_eq!(outcome.summary.stop, StopReason::Idle, "{arq:?}");
        let lost: Vec<u64> = app_events(&outcome, Side::A)
            .iter()
            .filter_map(|e| match e {
                Event::Lost { id } => Some(id.0),
                _ => None,
            })
            .collect();
        assert_eq!(
            lost,
            (0..10).collect::<Vec<_>>(),
            "{arq:?}: every message reported"
        );
        let unreachable_at = outcome
            .trace
            .entries
            .iter()
            .find(|e| {
                matches!(
                    &e.event,
                    TraceEvent::App {
                        side: Side::A,
                        event: Event::PeerUnreachable
                    }
                )
            })
            .map(|e| e.at)
            .unwrap();
        // The last message was sent at 0.9 s; the handshake never completes, so the clock of
        // the give-up starts with the first Hello at 0.
        assert!(
            unreachable_at <= config.give_up_bound(),
            "{arq:?}: {unreachable_at:?} > {:?}",
            config.give_up_bound()
        );
    }
}

#[test]
fn the_same_seed_replays_the_same_run_byte_for_byte() {
    let run = || {
        let config = config(Arq::SelectiveRepeat, Delivery::Ordered);
        let (a, b) = pair(&config, 42);
        let outcome = Simulator::new(chat(42, link(0.2, 0.1, 0.1, 0.05, 10), 30), a, b).run();
        (
            outcome.trace.to_text(),
            outcome.a.stats(),
            outcome.b.stats(),
        )
    };
    let (first, second) = (run(), run());
    assert!(!first.0.is_empty());
    assert_eq!(first, second);
}

#[test]
fn a_fifth_of_datagrams_lost_costs_about_a_quarter_more_transmissions() {
    // Theory: with independent loss p, each message needs 1/(1-p) transmissions on average.
    // Redundancy off: copies would repair losses before any resend, which is their point, and
    // not what this checks.
    let config = ReliableConfig {
        redundancy: Redundancy::Fixed(0),
        ..config(Arq::SelectiveRepeat, Delivery::Ordered)
    };
    let (a, b) = pair(&config, 5);
    let scenario = Scenario::new(5)
        .links(link(0.2, 0.0, 0.0, 0.0, 0))
        .messages_every(Side::A, "m", ms(0), ms(10), 2000);
    let outcome = Simulator::new(scenario, a, b).run();
    assert_eq!(outcome.summary.a_to_b.delivered, 2000);
    let s = outcome.a.stats();
    let resends = s.retransmits_fast + s.retransmits_timeout;
    let per_message = (2000 + resends) as f64 / 2000.0;
    // 1 / (1 - 0.2) = 1.25; acks are lost too, so a few needless resends are expected.
    assert!(
        (1.2..1.45).contains(&per_message),
        "{per_message} transmissions per message"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_message_delivered_once_in_order_for_any_link_and_scheme(
        seed in any::<u64>(),
        loss in 0.0f64..0.5,
        duplicate in 0.0f64..0.2,
        reorder in 0.0f64..0.3,
        corrupt in 0.0f64..0.1,
        jitter in 0u64..30,
        arq in prop_oneof![Just(Arq::SelectiveRepeat), Just(Arq::GoBackN), Just(Arq::StopAndWait)],
        unordered in any::<bool>(),
        count in 1u32..30,
    ) {
        let delivery = if unordered { Delivery::Unordered } else { Delivery::Ordered };
        assert_delivered(
            &config(arq, delivery),
            chat(seed, link(loss, duplicate, reorder, corrupt, jitter), count),
            &format!("seed {seed}"),
        );
    }
}

#[test]
fn closing_after_a_lossy_chat_ends_both_sides_cleanly() {
    for seed in 0..20 {
        let config = config(Arq::SelectiveRepeat, Delivery::Ordered);
        let mut scenario = chat(seed, link(0.2, 0.05, 0.1, 0.02, 10), 20);
        scenario.close_at = Some(Duration::from_secs(120));
        let (a, b) = pair(&config, seed);
        let outcome = Simulator::new(scenario, a, b).run();
        assert_eq!(outcome.summary.stop, StopReason::Closed, "seed {seed}");
        assert_eq!(outcome.summary.a_to_b.delivered, 20);
        assert_eq!(outcome.summary.b_to_a.delivered, 20);
        assert!(outcome.a.is_closed() && outcome.b.is_closed());
        for side in [Side::A, Side::B] {
            let events = app_events(&outcome, side);
            assert!(
                matches!(events.last(), Some(Event::Closed)),
                "seed {seed}: {side}"
            );
            assert!(!events.iter().any(|e| matches!(e, Event::Lost { .. })));
        }
    }
}

#[test]
fn on_a_jittery_lossless_link_no_message_waits_longer_than_the_link() {
    // Issue 6's chat shape: a line every 20 ms each way over 30 ms +- 15 ms of jitter (which
    // reorders). Nothing is lost, so every line must arrive within the link's worst one-way delay
    // (45 ms): no needless resend may shrink the window, and no reordering may stall delivery
    // beyond the packet it waits for.
    let config = ReliableConfig::default();
    let (a, b) = pair(&config, 1);
    let mut l = link(0.0, 0.0, 0.0, 0.0, 15);
    l.delay = ms(30);
    let mut scenario = Scenario::new(1)
        .links(l)
        .messages_every(Side::A, "a", ms(1000), ms(20), 1000)
        .messages_every(Side::B, "b", ms(1010), ms(20), 1000);
    scenario.time_limit = Duration::from_secs(60);
    let outcome = Simulator::new(scenario, a, b).run();
    for d in [&outcome.summary.a_to_b, &outcome.summary.b_to_a] {
        assert_eq!(d.delivered, 1000);
        let worst = d.max_latency().unwrap();
        assert!(worst <= ms(45), "a line took {worst:?}");
    }
}

/// An endpoint that works normally until `dies_at`, then neither hears nor says anything: a
/// peer whose machine was switched off.
struct Vanishing<E> {
    inner: E,
    dies_at: std::time::Instant,
    dead: bool,
}

impl<E: Endpoint> Endpoint for Vanishing<E> {
    fn send(
        &mut self,
        now: std::time::Instant,
        text: &str,
    ) -> Result<udpchat_reliable::MessageId, udpchat_reliable::SendError> {
        self.inner.send(now, text)
    }
    fn handle_datagram(&mut self, now: std::time::Instant, from: std::net::SocketAddr, d: &[u8]) {
        self.dead |= now >= self.dies_at;
        if !self.dead {
            self.inner.handle_datagram(now, from, d);
        }
    }
    fn poll_transmit(
        &mut self,
        now: std::time::Instant,
        buf: &mut Vec<u8>,
    ) -> Option<std::net::SocketAddr> {
        self.dead |= now >= self.dies_at;
        if self.dead {
            None
        } else {
            self.inner.poll_transmit(now, buf)
        }
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        if self.dead {
            None
        } else {
            self.inner.poll_timeout().map(|t| t.min(self.dies_at))
        }
    }
    fn handle_timeout(&mut self, now: std::time::Instant) {
        self.dead |= now >= self.dies_at;
        if !self.dead {
            self.inner.handle_timeout(now);
        }
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.inner.poll_event()
    }
    fn close(&mut self, now: std::time::Instant) {
        self.inner.close(now);
    }
    fn finish(&mut self, now: std::time::Instant) {
        self.inner.finish(now);
    }
    fn is_closed(&self) -> bool {
        self.dead || self.inner.is_closed()
    }
    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.inner.peer()
    }
    fn stats(&self) -> udpchat_reliable::Stats {
        self.inner.stats()
    }
}

#[test]
fn a_peer_that_vanishes_mid_chat_is_reported_within_the_give_up_bound() {
    let config = ReliableConfig::default();
    let epoch = std::time::Instant::now();
    let dies = Duration::from_secs(2);
    let (a, b) = pair(&config, 21);
    let b = Vanishing {
        inner: b,
        dies_at: epoch + dies,
        dead: false,
    };
    let mut scenario = Scenario::new(21)
        .links(link(0.05, 0.0, 0.0, 0.0, 5))
        .messages_every(Side::A, "m", ms(0), ms(100), 40);
    scenario.time_limit = Duration::from_secs(300);
    let outcome = Simulator::starting_at(epoch, scenario, a, b).run();
    let received_by_b: Vec<String> = app_events(&outcome, Side::B)
        .iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    let mut delivered = Vec::new();
    let mut lost = Vec::new();
    let mut unreachable_at = None;
    for entry in &outcome.trace.entries {
        if let TraceEvent::App {
            side: Side::A,
            event,
        } = &entry.event
        {
            match event {
                Event::Delivered { id, .. } => delivered.push(id.0),
                Event::Lost { id } => lost.push(id.0),
                Event::PeerUnreachable => unreachable_at = Some(entry.at),
                _ => {}
            }
        }
    }
    // Every message is settled exactly once: delivered or lost.
    let mut all: Vec<u64> = delivered.iter().chain(&lost).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>());
    // "Delivered" is never a lie: B's application got each of those.
    for id in &delivered {
        assert!(
            received_by_b.contains(&format!("m-{id}")),
            "m-{id} claimed delivered"
        );
    }
    // Everything sent after B died is lost, and A says so in bounded time.
    assert!(lost.iter().all(|&id| id >= 17), "lost {lost:?}");
    assert!((20..40).all(|id| lost.contains(&id)));
    let at = unreachable_at.expect("A reports the peer unreachable");
    assert!(
        at <= dies + config.give_up_bound(),
        "{at:?} > {:?}",
        dies + config.give_up_bound()
    );
}
