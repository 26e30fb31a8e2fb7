//! Property tests of [`crate::Impairment`]: promises that hold for every configuration and every
//! arrival pattern, not just on average. Each property's name says what it promises.
#![allow(clippy::unwrap_used)]

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::impairment::{Fate, Impairment, ImpairmentConfig};
use crate::parse::{BitRate, QueueLimit};
use crate::probability::Probability;
use crate::GilbertElliott;

fn probability() -> impl Strategy<Value = Probability> {
    prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64].prop_map(|p| Probability::new(p).unwrap())
}

fn config() -> impl Strategy<Value = ImpairmentConfig> {
    (
        (
            probability(),
            proptest::option::of((0.0..0.5f64, 1.0..10.0f64)),
        ),
        (0..100u64, 0..100u64, any::<bool>()),
        (probability(), probability(), probability(), 1..4u32),
        (
            proptest::option::of(1_000..10_000_000u64),
            1..50u64,
            1..200usize,
        ),
    )
        .prop_map(
            |(
                (loss, burst),
                (delay, jitter, jitter_reorders),
                (reorder, duplicate, corrupt, bits),
                (rate, queue, limit),
            )| {
                ImpairmentConfig {
                    loss,
                    burst_loss: burst.and_then(|(l, b)| {
                        GilbertElliott::from_mean(Probability::new(l).unwrap(), b).ok()
                    }),
                    delay: Duration::from_millis(delay),
                    jitter: Duration::from_millis(jitter),
                    jitter_reorders,
                    reorder,
                    duplicate,
                    corrupt,
                    corrupt_bits: NonZeroU32::new(bits).unwrap(),
                    rate: rate.and_then(BitRate::from_bits_per_second),
                    queue: QueueLimit::packets(queue).unwrap(),
                    limit: NonZeroUsize::new(limit).unwrap(),
                }
            },
        )
}

/// Datagrams as (gap before it in microseconds, length).
fn arrivals() -> impl Strategy<Value = Vec<(u64, usize)>> {
    proptest::collection::vec((0..20_000u64, 0..1500usize), 1..300)
}

/// When each datagram was offered, and what became of it and of its copy.
type Offered = Vec<(Instant, Fate, Option<Fate>)>;

/// Offers every datagram at its arrival time, releasing what is due as time passes, then drains.
/// Returns the verdicts and the releases as (time, offer index).
fn run(
    config: &ImpairmentConfig,
    seed: u64,
    arrivals: &[(u64, usize)],
) -> (Impairment<u64>, Offered, Vec<(Instant, u64)>) {
    let t0 = Instant::now();
    let mut imp = Impairment::new(config.clone(), seed);
    let mut now = t0;
    let mut fates = Vec::new();
    let mut released = Vec::new();
    for (i, &(gap, len)) in arrivals.iter().enumerate() {
        let next = now + Duration::from_micros(gap);
        // Release everything due before this arrival, at its own release time.
        while let Some(at) = imp.next_release().filter(|&at| at <= next) {
            while let Some(r) = imp.poll(at) {
                released.push((at, r.index));
            }
        }
        now = next;
        let v = imp.offer(now, i as u64, vec![0x5A; len]);
        fates.push((now, v.original, v.duplicate));
    }
    while let Some(at) = imp.next_release() {
        while let Some(r) = imp.poll(at) {
            released.push((at, r.index));
        }
    }
    (imp, fates, released)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_datagram_is_accounted_for(config in config(), seed in any::<u64>(), arrivals in arrivals()) {
        let (imp, fates, released) = run(&config, seed, &arrivals);
        let s = imp.stats();
        prop_assert!(imp.is_empty());
        prop_assert_eq!(s.received, arrivals.len() as u64);
        // Each offer is one copy, or two if duplicated; each copy is released or dropped.
        prop_assert_eq!(s.received + s.duplicated, s.forwarded + s.dropped());
        prop_assert_eq!(s.forwarded, released.len() as u64);
        let scheduled = fates
            .iter()
            .flat_map(|(_, o, d)| std::iter::once(o).chain(d))
            .filter(|f| matches!(f, Fate::Scheduled { .. }))
            .count() as u64;
        prop_assert_eq!(scheduled, s.forwarded);
    }

    #[test]
    fn nothing_leaves_before_it_arrives_or_later_than_announced(
        config in config(), seed in any::<u64>(), arrivals in arrivals()
    ) {
        let (_, fates, released) = run(&config, seed, &arrivals);
        let mut announced: Vec<Vec<Instant>> = vec![Vec::new(); fates.len()];
        for (i, (offered, o, d)) in fates.iter().enumerate() {
            for fate in std::iter::once(o).chain(d) {
                if let Fate::Scheduled { release, .. } = fate {
                    prop_assert!(release >= offered);
                    // Without a rate limit or FIFO clamping, the delay is within delay ± jitter.
                    if config.rate.is_none() && config.jitter_reorders {
                        prop_assert!(*release - *offered <= config.delay + config.jitter);
                    }
                    announced[i].push(*release);
                }
            }
        }
        for (at, index) in released {
            let slot = &mut announced[index as usize];
            let pos = slot.iter().position(|&r| r == at);
            prop_assert!(pos.is_some(), "released at a time that was not announced");
            slot.remove(pos.unwrap());
        }
    }

    #[test]
    fn without_jitter_reorder_or_the_reorder_knob_order_is_kept(
        mut config in config(), seed in any::<u64>(), arrivals in arrivals()
    ) {
        config.jitter_reorders = false;
        config.reorder = Probability::ZERO;
        let (imp, _, released) = run(&config, seed, &arrivals);
        prop_assert!(released.windows(2).all(|w| w[0].1 <= w[1].1));
        prop_assert_eq!(imp.stats().reordered, 0);
    }

    #[test]
    fn the_limit_bounds_what_is_held(config in config(), arrivals in arrivals()) {
        let t0 = Instant::now();
        let mut imp = Impairment::<()>::new(config.clone(), 1);
        let mut now = t0;
        for &(gap, len) in &arrivals {
            now += Duration::from_micros(gap);
            imp.offer(now, (), vec![0; len]);
            prop_assert!(imp.len() <= config.limit.get());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_fates(config in config(), seed in any::<u64>(), arrivals in arrivals()) {
        let (_, a, ra) = run(&config, seed, &arrivals);
        let (_, b, rb) = run(&config, seed, &arrivals);
        // Instants differ between runs only by their origin: compare offsets.
        let offsets = |f: &[(Instant, Fate, Option<Fate>)]| -> Vec<String> {
            f.iter().map(|(at, o, d)| {
                let rel = |fate: &Fate| match fate {
                    Fate::Scheduled { release, corrupted_bits, sent_ahead } =>
                        format!("{:?}/{corrupted_bits}/{sent_ahead}", *release - *at),
                    Fate::Dropped { cause } => format!("{cause}"),
                };
                format!("{} {:?}", rel(o), d.as_ref().map(rel))
            }).collect()
        };
        prop_assert_eq!(offsets(&a), offsets(&b));
        prop_assert_eq!(
            ra.iter().map(|r| r.1).collect::<Vec<_>>(),
            rb.iter().map(|r| r.1).collect::<Vec<_>>()
        );
    }
}
