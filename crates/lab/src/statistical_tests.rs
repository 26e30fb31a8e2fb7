//! Statistical tests of the impairment model: each knob does, on average, what it says.
//!
//! Every test is deterministic (fixed seeds), uses large samples over many seeds, and asserts
//! that a measured rate lies within a few standard errors of the configured one, so a wrong model
//! fails while a right one cannot flake. Four standard errors leaves a 1-in-15 000 chance of a
//! false alarm per check, and with fixed seeds even that is decided once and for all.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use udpchat_core::{decode, encode, Packet, RawMessage, DEFAULT_MAX_DATAGRAM};

use crate::gilbert::GilbertElliott;
use crate::impairment::{DropCause, Fate, Impairment, ImpairmentConfig};
use crate::parse::{parse_probability, parse_rate, QueueLimit};
use crate::probability::Probability;

const SEEDS: u64 = 20;
const PER_SEED: u64 = 10_000;

fn p(s: &str) -> Probability {
    parse_probability(s).unwrap()
}

/// Asserts `measured` is within `k` standard errors `se` of `expected`.
fn assert_within(what: &str, measured: f64, expected: f64, se: f64, k: f64) {
    let z = (measured - expected) / se;
    assert!(
        z.abs() <= k,
        "{what}: measured {measured:.5}, expected {expected:.5} ± {se:.5} (z = {z:.2})"
    );
}

/// Standard error of a proportion `p` estimated from `n` independent trials.
fn binomial_se(p: f64, n: u64) -> f64 {
    (p * (1.0 - p) / n as f64).sqrt()
}

/// When each datagram was offered, and what became of it and of its copy.
type Offered = Vec<(Instant, Fate, Option<Fate>)>;

/// Offers `n` datagrams of `len` bytes, one every `gap`, and returns the verdicts' fates.
fn offer_many(
    config: &ImpairmentConfig,
    seed: u64,
    n: u64,
    gap: Duration,
    len: usize,
) -> (Impairment<u64>, Offered) {
    let t0 = Instant::now();
    let mut imp = Impairment::new(config.clone(), seed);
    let mut fates = Vec::with_capacity(n as usize);
    for i in 0..n {
        let now = t0 + gap * i as u32;
        let verdict = imp.offer(now, i, vec![0xA5; len]);
        fates.push((now, verdict.original, verdict.duplicate));
        // Release what is due so nothing piles up past the limit.
        while imp.poll(now).is_some() {}
    }
    (imp, fates)
}

#[test]
fn independent_loss_rate_matches_configuration() {
    for rate in ["1%", "10%", "30%", "50%"] {
        let config = ImpairmentConfig {
            loss: p(rate),
            ..Default::default()
        };
        let expected = config.loss.get();
        let mut total_lost = 0;
        for seed in 0..SEEDS {
            let (imp, _) = offer_many(&config, seed, PER_SEED, Duration::ZERO, 10);
            let lost = imp.stats().dropped_loss;
            assert_within(
                &format!("loss {rate} seed {seed}"),
                lost as f64 / PER_SEED as f64,
                expected,
                binomial_se(expected, PER_SEED),
                4.5,
            );
            total_lost += lost;
        }
        let n = SEEDS * PER_SEED;
        assert_within(
            &format!("loss {rate} over all seeds"),
            total_lost as f64 / n as f64,
            expected,
            binomial_se(expected, n),
            4.0,
        );
    }
}

#[test]
fn losses_are_independent_of_the_previous_packet() {
    // Bernoulli loss has no memory: P(lost | previous lost) = P(lost).
    let config = ImpairmentConfig {
        loss: p("20%"),
        ..Default::default()
    };
    let (_, fates) = offer_many(&config, 11, 200_000, Duration::ZERO, 10);
    let lost: Vec<bool> = fates
        .iter()
        .map(|(_, f, _)| matches!(f, Fate::Dropped { .. }))
        .collect();
    let after_loss: Vec<bool> = lost.windows(2).filter(|w| w[0]).map(|w| w[1]).collect();
    let n = after_loss.len() as u64;
    let measured = after_loss.iter().filter(|&&l| l).count() as f64 / n as f64;
    assert_within("P(loss | loss)", measured, 0.2, binomial_se(0.2, n), 4.0);
}

#[test]
fn gilbert_elliott_mean_loss_and_burst_length_match() {
    for (loss, burst) in [(0.05, 2.0), (0.1, 4.0), (0.2, 8.0)] {
        let ge = GilbertElliott::from_mean(Probability::new(loss).unwrap(), burst).unwrap();
        let config = ImpairmentConfig {
            burst_loss: Some(ge),
            ..Default::default()
        };
        let mut lost_total = 0u64;
        let mut bursts: Vec<u64> = Vec::new();
        let n_per_seed = 30_000;
        for seed in 0..SEEDS {
            let (_, fates) = offer_many(&config, seed, n_per_seed, Duration::ZERO, 10);
            let mut run = 0u64;
            for (_, fate, _) in &fates {
                if matches!(
                    fate,
                    Fate::Dropped {
                        cause: DropCause::BurstLoss
                    }
                ) {
                    lost_total += 1;
                    run += 1;
                } else if run > 0 {
                    bursts.push(run);
                    run = 0;
                }
            }
        }
        let n = SEEDS * n_per_seed;
        // Losses of a Markov chain are correlated: the variance of their mean is inflated by
        // (1 + λ) / (1 - λ), λ = 1 - p - r being the chain's second eigenvalue.
        let lambda = 1.0 - ge.p.get() - ge.r.get();
        let se = (loss * (1.0 - loss) / n as f64 * (1.0 + lambda) / (1.0 - lambda)).sqrt();
        assert_within(
            &format!("GE({loss},{burst}) loss"),
            lost_total as f64 / n as f64,
            loss,
            se,
            4.0,
        );
        // Burst lengths are geometric with mean 1/r and variance (1 - r) / r².
        let r = ge.r.get();
        let mean = bursts.iter().sum::<u64>() as f64 / bursts.len() as f64;
        let se = ((1.0 - r) / (r * r) / bursts.len() as f64).sqrt();
        assert_within(&format!("GE({loss},{burst}) burst"), mean, burst, se, 4.0);
    }
}

#[test]
fn general_gilbert_elliott_loses_what_its_stationary_distribution_says() {
    // Lossy good state and a leaky bad state (netem's full 4-parameter form).
    let ge: GilbertElliott = "ge:5%,30%,80%,2%".parse().unwrap();
    let expected = ge.mean_loss();
    // π_bad = p / (p + r) = 1/7; loss = 0.8/7 + 0.02·6/7.
    assert!((expected - (0.8 / 7.0 + 0.02 * 6.0 / 7.0)).abs() < 1e-12);
    let config = ImpairmentConfig {
        burst_loss: Some(ge),
        ..Default::default()
    };
    // The spread of the per-seed rates gives the standard error, whatever the correlation.
    let rates: Vec<f64> = (0..SEEDS)
        .map(|seed| {
            let (imp, _) = offer_many(&config, seed, PER_SEED, Duration::ZERO, 10);
            imp.stats().dropped_burst as f64 / PER_SEED as f64
        })
        .collect();
    let k = rates.len() as f64;
    let mean = rates.iter().sum::<f64>() / k;
    let sd = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
    assert_within("general GE loss", mean, expected, sd / k.sqrt(), 4.0);
}

#[test]
fn independent_loss_has_bursts_of_one_over_one_minus_p() {
    // A contrast that shows the burst test can fail: Bernoulli loss of 20% has mean runs of
    // 1 / (1 - 0.2) = 1.25 losses, far from GE's 4.
    let config = ImpairmentConfig {
        loss: p("20%"),
        ..Default::default()
    };
    let (_, fates) = offer_many(&config, 5, 200_000, Duration::ZERO, 10);
    let mut bursts = Vec::new();
    let mut run = 0u64;
    for (_, fate, _) in &fates {
        if matches!(fate, Fate::Dropped { .. }) {
            run += 1;
        } else if run > 0 {
            bursts.push(run);
            run = 0;
        }
    }
    let mean = bursts.iter().sum::<u64>() as f64 / bursts.len() as f64;
    let se = (0.2 / (0.8 * 0.8) / bursts.len() as f64).sqrt();
    assert_within("bernoulli run length", mean, 1.25, se, 4.0);
}

#[test]
fn delay_with_jitter_is_uniform_around_the_delay() {
    let delay = Duration::from_millis(50);
    let jitter = Duration::from_millis(20);
    let config = ImpairmentConfig {
        delay,
        jitter,
        ..Default::default()
    };
    let mut samples: Vec<f64> = Vec::new();
    for seed in 0..SEEDS {
        let (_, fates) = offer_many(&config, seed, 5_000, Duration::from_micros(100), 10);
        for (sent, fate, _) in fates {
            let Fate::Scheduled { release, .. } = fate else {
                panic!("nothing should be dropped")
            };
            samples.push((release - sent).as_secs_f64() * 1000.0);
        }
    }
    let n = samples.len() as f64;
    let (lo, hi) = (30.0, 70.0);
    assert!(samples.iter().all(|&d| (lo..=hi).contains(&d)));
    // Uniform on [30, 70] ms: mean 50, standard deviation 40 / √12.
    let sd = 40.0 / 12f64.sqrt();
    let mean = samples.iter().sum::<f64>() / n;
    assert_within("jitter mean (ms)", mean, 50.0, sd / n.sqrt(), 4.0);
    let var = samples.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // The variance of a sample variance of a uniform: (μ4 - σ⁴) / n with μ4 = 9σ⁴/5.
    let var_se = ((9.0 / 5.0 - 1.0) * sd.powi(4) / n).sqrt();
    assert_within("jitter variance (ms²)", var, sd * sd, var_se, 4.0);
    // Flat: ten equal bins each hold a tenth.
    let mut bins = [0u64; 10];
    for d in &samples {
        let bin = (((d - lo) / (hi - lo)) * 10.0).floor().clamp(0.0, 9.0) as usize;
        bins[bin] += 1;
    }
    for (i, &count) in bins.iter().enumerate() {
        assert_within(
            &format!("jitter bin {i}"),
            count as f64 / n,
            0.1,
            binomial_se(0.1, n as u64),
            4.0,
        );
    }
}

#[test]
fn jitter_never_makes_delay_negative() {
    let config = ImpairmentConfig {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(20),
        ..Default::default()
    };
    let (_, fates) = offer_many(&config, 1, 20_000, Duration::from_micros(10), 10);
    let at_zero = fates
        .iter()
        .filter(
            |(sent, fate, _)| matches!(fate, Fate::Scheduled { release, .. } if release == sent),
        )
        .count();
    // Delays below zero (draws under -5 ms: 15 of the 40 ms range) are clamped to zero.
    let expected = 15.0 / 40.0;
    assert_within(
        "clamped share",
        at_zero as f64 / 20_000.0,
        expected,
        binomial_se(expected, 20_000),
        4.0,
    );
}

#[test]
fn duplicate_rate_matches_configuration() {
    let config = ImpairmentConfig {
        duplicate: p("5%"),
        ..Default::default()
    };
    let mut duplicated = 0;
    for seed in 0..SEEDS {
        let (imp, fates) = offer_many(&config, seed, PER_SEED, Duration::ZERO, 10);
        assert_eq!(
            fates.iter().filter(|(_, _, d)| d.is_some()).count() as u64,
            imp.stats().duplicated
        );
        assert_eq!(imp.stats().forwarded, PER_SEED + imp.stats().duplicated);
        duplicated += imp.stats().duplicated;
    }
    let n = SEEDS * PER_SEED;
    assert_within(
        "duplicate rate",
        duplicated as f64 / n as f64,
        0.05,
        binomial_se(0.05, n),
        4.0,
    );
}

#[test]
fn reorder_rate_matches_and_sent_ahead_datagrams_overtake() {
    let config = ImpairmentConfig {
        delay: Duration::from_millis(10),
        reorder: p("25%"),
        ..Default::default()
    };
    let mut ahead = 0;
    let mut reordered = 0;
    for seed in 0..SEEDS {
        let (imp, _) = offer_many(&config, seed, PER_SEED, Duration::from_millis(1), 10);
        ahead += imp.stats().sent_ahead;
        reordered += imp.stats().reordered;
    }
    let n = SEEDS * PER_SEED;
    assert_within(
        "reorder rate",
        ahead as f64 / n as f64,
        0.25,
        binomial_se(0.25, n),
        4.0,
    );
    // A datagram sent ahead overtakes those sent in the previous 10 ms that were not themselves
    // sent ahead, so they arrive late: reordering is real, not just counted.
    assert!(reordered > ahead, "{reordered} late vs {ahead} sent ahead");
}

#[test]
fn corruption_rate_matches_and_the_crc_catches_every_corrupted_datagram() {
    for bits in [1, 2, 3] {
        let config = ImpairmentConfig {
            corrupt: p("10%"),
            corrupt_bits: NonZeroU32::new(bits).unwrap(),
            ..Default::default()
        };
        let t0 = Instant::now();
        let mut corrupted = 0u64;
        let n = 50_000u64;
        let mut imp = Impairment::new(config, u64::from(bits));
        for seq in 0..n {
            let packet = Packet::Raw(RawMessage {
                seq,
                nick: "lab".into(),
                text: format!("message number {seq}"),
            });
            let bytes = encode(&packet, DEFAULT_MAX_DATAGRAM).unwrap();
            let verdict = imp.offer(t0, seq, bytes);
            let released = imp.poll(t0).unwrap();
            let was_corrupted = matches!(verdict.original, Fate::Scheduled { corrupted_bits, .. } if corrupted_bits > 0);
            match decode(&released.bytes) {
                Ok(decoded) => {
                    assert!(!was_corrupted, "a corrupted datagram decoded");
                    assert_eq!(decoded, packet);
                }
                Err(_) => assert!(was_corrupted, "an intact datagram failed to decode"),
            }
            corrupted += u64::from(was_corrupted);
        }
        assert_eq!(imp.stats().corrupted, corrupted);
        assert_within(
            &format!("corrupt rate ({bits} bits)"),
            corrupted as f64 / n as f64,
            0.1,
            binomial_se(0.1, n),
            4.0,
        );
    }
}

#[test]
fn rate_limit_caps_throughput_and_tail_drops_the_excess() {
    // Offer 2 Mbit/s (1000-byte datagrams every 4 ms) to a 1 Mbit/s link with a 50-packet queue.
    let config = ImpairmentConfig {
        rate: Some(parse_rate("1mbit").unwrap()),
        queue: QueueLimit::packets(50).unwrap(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut imp = Impairment::new(config, 1);
    let mut releases = Vec::new();
    let offered = 2_500u64; // 10 s
    for i in 0..offered {
        let now = t0 + Duration::from_millis(4 * i);
        imp.offer(now, i, vec![0; 1000]);
        while let Some(r) = imp.poll(now) {
            releases.push((now, r.index));
        }
    }
    let end = t0 + Duration::from_secs(10);
    let forwarded_by_end = imp.stats().forwarded;
    // 1000 bytes take exactly 8 ms at 1 Mbit/s: 1250 datagrams in 10 s, minus the first 8 ms.
    assert!(
        (1248..=1250).contains(&forwarded_by_end),
        "{forwarded_by_end}"
    );
    // Nothing lost but to the full queue, and everything offered is accounted for.
    let s = imp.stats().clone();
    assert_eq!(s.dropped(), s.dropped_queue);
    assert_eq!(s.received, s.forwarded + s.dropped_queue + imp.len() as u64);
    assert!(imp.len() <= 50);
    // Half the offered load cannot fit: about 1250 drops, none before the queue filled.
    assert!(
        (1190..=1210).contains(&s.dropped_queue),
        "{}",
        s.dropped_queue
    );
    // Everything held leaves eventually, at the link rate, in order.
    let mut last = end;
    while let Some(next) = imp.next_release() {
        assert!(next >= last);
        last = next;
        imp.poll(next);
    }
    assert_eq!(imp.stats().forwarded, s.received - s.dropped_queue);
    assert!(releases.windows(2).all(|w| w[0].1 < w[1].1), "FIFO");
}

#[test]
fn byte_queue_limits_by_size() {
    // A 3000-byte queue holds three 1000-byte datagrams or thirty 100-byte ones.
    let config = ImpairmentConfig {
        rate: Some(parse_rate("8kbit").unwrap()),
        queue: QueueLimit::bytes(3000).unwrap(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut big = Impairment::<()>::new(config.clone(), 1);
    let held = (0..10)
        .filter(|_| {
            matches!(
                big.offer(t0, (), vec![0; 1000]).original,
                Fate::Scheduled { .. }
            )
        })
        .count();
    assert_eq!(held, 3);
    let mut small = Impairment::<()>::new(config, 1);
    let held = (0..100)
        .filter(|_| {
            matches!(
                small.offer(t0, (), vec![0; 100]).original,
                Fate::Scheduled { .. }
            )
        })
        .count();
    assert_eq!(held, 30);
}

#[test]
fn below_the_rate_nothing_is_dropped_and_latency_is_serialization_time() {
    let config = ImpairmentConfig {
        rate: Some(parse_rate("1mbit").unwrap()),
        queue: QueueLimit::packets(5).unwrap(),
        ..Default::default()
    };
    let (imp, fates) = offer_many(&config, 1, 1000, Duration::from_millis(16), 1000);
    assert_eq!(imp.stats().dropped(), 0);
    for (sent, fate, _) in fates {
        assert!(
            matches!(fate, Fate::Scheduled { release, .. } if release - sent == Duration::from_millis(8))
        );
    }
}
