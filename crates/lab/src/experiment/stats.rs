//! The statistics the experiment runner needs, and nothing more: percentiles of one run's
//! latencies, percentiles of all seeds' samples pooled, and the mean and confidence interval of a
//! metric across seeds.
//!
//! - Percentiles use the **nearest-rank** method: the q-th percentile of n sorted samples is the
//!   sample at rank `ceil(q/100 * n)` (1-based). It is always a value that was measured, never an
//!   interpolation between two, which is what a latency report should show ("99% of messages took
//!   at most this long").
//! - Intervals across seeds are **Student's t** intervals: `mean ± t(0.975, n-1) * s / sqrt(n)`
//!   with `s` the sample standard deviation. Each seed is an independent replication of the whole
//!   run, so the per-seed values are i.i.d.; with the handful of seeds an experiment uses (5 by
//!   default), the normal approximation would be too narrow (1.96 against t's 2.776 at 4 degrees
//!   of freedom). One seed gives no interval. Counts and ratios (delivery, transmissions per
//!   message, goodput) are aggregated this way: every seed's value is an average over its own
//!   thousand messages, close to normal, and one seed cannot stray far.
//! - Percentiles across seeds (latency, connection setup) are **pooled** ([`Pooled`]): the
//!   percentile of every seed's samples taken together, as if the seeds were one long run. A mean
//!   of per-seed percentiles is not robust: latency distributions have heavy tails, and one seed
//!   whose handshake was lost four times once made the "mean of medians" 1,959 ms where the
//!   real-socket run of the same sweep said 67 (issue 11). Pooled, a seed weighs only its share of the samples: with `k` seeds
//!   of equal size, whatever one seed's samples are, the pooled `q`-th percentile stays between
//!   the other seeds' pooled `(qk-100)/(k-1)`-th and `qk/(k-1)`-th percentiles (for the median
//!   over 5 seeds: between their 37.5th and 62.5th). And it keeps the meaning a percentile has
//!   for one run ("99% of all the messages sent took at most this long"). The per-seed values
//!   and their range are kept beside it, to show how much the seeds disagree; it is not a
//!   confidence interval (with 5 seeds the only distribution-free interval for a median is
//!   min..max, at 94%).

use serde::Serialize;

/// The confidence level of every interval the lab reports.
pub const CONFIDENCE: f64 = 0.95;

/// The nearest-rank `q`-th percentile (`q` in `0..=100`) of `sorted`, which must be sorted
/// ascending. `None` for no samples. `q` is clamped to `0..=100`; the 0th percentile is the
/// minimum.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 100.0) };
    // Rank in 1..=n; rounding guards against 0.99 * 100 landing a hair above 99.
    let rank = ((q / 100.0 * n as f64) - 1e-9).ceil().max(1.0) as usize;
    sorted.get(rank.min(n) - 1).copied()
}

/// The two-sided 97.5% quantile of Student's t distribution with `dof` degrees of freedom, for a
/// 95% interval. Exact table values up to 30 degrees of freedom; beyond, a Cornish–Fisher
/// expansion around the normal quantile, good to 1e-4. `dof == 0` has no interval: infinity.
pub fn t_quantile_975(dof: u64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::INFINITY,
        1..=30 => TABLE[(dof - 1) as usize],
        _ => {
            let z: f64 = 1.959_964;
            let v = dof as f64;
            z + (z.powi(3) + z) / (4.0 * v)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        }
    }
}

/// A metric across seeds: its mean, the 95% interval around it, and the per-seed values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Mean of the per-seed values (of the finite ones; see `values`).
    pub mean: Option<f64>,
    /// Half-width of the 95% Student's t interval; `None` with fewer than two values.
    pub ci95: Option<f64>,
    /// The per-seed values, in seed order. `None` where a run had no value (e.g. no message
    /// delivered, so no latency).
    pub values: Vec<Option<f64>>,
}

impl Estimate {
    /// Mean and interval of `values`, ignoring the missing ones.
    pub fn of(values: Vec<Option<f64>>) -> Estimate {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let n = present.len();
        if n == 0 {
            return Estimate {
                mean: None,
                ci95: None,
                values,
            };
        }
        let mean = present.iter().sum::<f64>() / n as f64;
        let ci95 = (n >= 2).then(|| {
            let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t_quantile_975(n as u64 - 1) * (var / n as f64).sqrt()
        });
        Estimate {
            mean: Some(mean),
            ci95,
            values,
        }
    }

    /// The interval's bounds, if there is one.
    pub fn interval(&self) -> Option<(f64, f64)> {
        match (self.mean, self.ci95) {
            (Some(m), Some(h)) => Some((m - h, m + h)),
            _ => None,
        }
    }
}

/// A percentile across seeds: of all the seeds' samples pooled, with each seed's own beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pooled {
    /// The nearest-rank percentile of every seed's samples taken together; `None` if there were
    /// none.
    pub pooled: Option<f64>,
    /// The smallest of the per-seed values: how far the seeds disagree (not an interval).
    pub seed_min: Option<f64>,
    /// The largest of the per-seed values.
    pub seed_max: Option<f64>,
    /// The same percentile of each seed's samples alone, in seed order; `None` where a seed had
    /// no sample.
    pub values: Vec<Option<f64>>,
}

impl Pooled {
    /// The `q`-th percentile of `per_seed` (each seed's samples, in any order) pooled, and of
    /// each seed alone.
    pub fn of(per_seed: &[&[f64]], q: f64) -> Pooled {
        let sorted = |xs: &[f64]| {
            let mut v = xs.to_vec();
            v.sort_unstable_by(f64::total_cmp);
            v
        };
        let values: Vec<Option<f64>> = per_seed
            .iter()
            .map(|xs| percentile(&sorted(xs), q))
            .collect();
        let all = sorted(&per_seed.concat());
        let present = values.iter().flatten().copied();
        Pooled {
            pooled: percentile(&all, q),
            seed_min: present.clone().min_by(f64::total_cmp),
            seed_max: present.max_by(f64::total_cmp),
            values,
        }
    }
}

/// Standard error of the fraction of successes in `n` Bernoulli trials of probability `p`.
pub fn binomial_se(p: f64, n: u64) -> f64 {
    if n == 0 {
        return f64::INFINITY;
    }
    (p * (1.0 - p) / n as f64).sqrt()
}

/// Standard error of the mean of `n` geometric variables (trials until the first success, success
/// probability `s`): each has mean `1/s` and variance `(1-s)/s^2`.
pub fn geometric_mean_se(s: f64, n: u64) -> f64 {
    if n == 0 || s <= 0.0 {
        return f64::INFINITY;
    }
    ((1.0 - s) / (s * s) / n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank_percentiles_are_measured_values() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        // Five samples: p50 is the 3rd, p90 and p99 the 5th (rank ceil(4.5) = 5).
        let w = [10, 20, 30, 40, 50];
        assert_eq!(percentile(&w, 50.0), Some(30));
        assert_eq!(percentile(&w, 90.0), Some(50));
        assert_eq!(percentile(&w, 20.0), Some(10));
        assert_eq!(percentile(&w, 21.0), Some(20));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
    }

    #[test]
    fn t_quantiles_match_the_table_and_approach_the_normal() {
        assert_eq!(t_quantile_975(4), 2.776);
        assert_eq!(t_quantile_975(1), 12.706);
        assert!(t_quantile_975(0).is_infinite());
        // Published values: t(0.975, 40) = 2.0211, t(0.975, 120) = 1.9799.
        assert!((t_quantile_975(40) - 2.0211).abs() < 1e-3);
        assert!((t_quantile_975(120) - 1.9799).abs() < 1e-3);
        assert!((t_quantile_975(1_000_000) - 1.96).abs() < 1e-3);
        // Monotone decreasing across the table's edge.
        assert!(t_quantile_975(30) > t_quantile_975(31));
    }

    #[test]
    fn estimate_of_known_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample variance 32/7.
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let e = Estimate::of(xs.iter().map(|&x| Some(x)).collect());
        assert_eq!(e.mean, Some(5.0));
        let expected = 2.365 * (32.0 / 7.0 / 8.0f64).sqrt();
        assert!((e.ci95.unwrap() - expected).abs() < 1e-12);
        let (lo, hi) = e.interval().unwrap();
        assert!(lo < 5.0 && hi > 5.0);
    }

    #[test]
    fn estimate_skips_missing_values_and_needs_two_for_an_interval() {
        let e = Estimate::of(vec![Some(3.0), None]);
        assert_eq!(e.mean, Some(3.0));
        assert_eq!(e.ci95, None);
        assert_eq!(e.values.len(), 2);
        let none = Estimate::of(vec![None, None]);
        assert_eq!(none.mean, None);
        let same = Estimate::of(vec![Some(1.0); 4]);
        assert_eq!(same.ci95, Some(0.0));
    }

    #[test]
    fn intervals_cover_the_true_mean_about_95_percent_of_the_time() {
        // Coverage check with a deterministic generator: 2000 intervals from 5 uniform draws each.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let trials = 2000;
        let covered = (0..trials)
            .filter(|_| {
                let e = Estimate::of((0..5).map(|_| Some(rng.random::<f64>())).collect());
                let (lo, hi) = e.interval().unwrap();
                lo <= 0.5 && 0.5 <= hi
            })
            .count();
        let rate = covered as f64 / trials as f64;
        // 95% nominal; the binomial standard error over 2000 trials is 0.5%.
        assert!((0.93..=0.97).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn pooled_percentiles_are_of_all_samples_together() {
        let a: Vec<f64> = (1..=5).map(f64::from).collect();
        let b: Vec<f64> = (6..=10).map(f64::from).collect();
        let p = Pooled::of(&[&a, &b], 50.0);
        // 1..=10 pooled: the 5th of ten. Each seed alone: 3 and 8.
        assert_eq!(p.pooled, Some(5.0));
        assert_eq!(p.values, vec![Some(3.0), Some(8.0)]);
        assert_eq!((p.seed_min, p.seed_max), (Some(3.0), Some(8.0)));
        let none = Pooled::of(&[&[], &a], 99.0);
        assert_eq!(none.values, vec![None, Some(5.0)]);
        assert_eq!(none.pooled, Some(5.0));
        assert_eq!(Pooled::of(&[], 50.0).pooled, None);
    }

    #[test]
    fn one_outlier_seed_cannot_dominate_a_pooled_median() {
        // Four seeds with medians near 30 ms and one whose every message waited 2 s: the mean of
        // the medians is 424 ms, the pooled median stays among the others' samples.
        let normal: Vec<Vec<f64>> = (0..4)
            .map(|s| {
                (0..100)
                    .map(|i| 20.0 + f64::from(i % 21) + f64::from(s))
                    .collect()
            })
            .collect();
        let outlier: Vec<f64> = (0..100).map(|i| 2000.0 + f64::from(i)).collect();
        let mut seeds: Vec<&[f64]> = normal.iter().map(Vec::as_slice).collect();
        seeds.push(&outlier);
        let p = Pooled::of(&seeds, 50.0);
        let medians: Vec<f64> = p.values.iter().flatten().copied().collect();
        let mean_of_medians = medians.iter().sum::<f64>() / medians.len() as f64;
        assert!(mean_of_medians > 400.0, "{mean_of_medians}");
        let pooled = p.pooled.unwrap();
        // Bounded by the other seeds' 62.5th percentile (see the module documentation).
        let mut others: Vec<f64> = normal.concat();
        others.sort_unstable_by(f64::total_cmp);
        assert!(pooled <= percentile(&others, 62.5).unwrap(), "{pooled}");
        assert!(pooled < 45.0, "{pooled}");
        assert_eq!(p.seed_max, Some(2049.0));
    }

    #[test]
    fn standard_errors() {
        assert!((binomial_se(0.5, 100) - 0.05).abs() < 1e-12);
        assert_eq!(binomial_se(0.0, 10), 0.0);
        assert!(binomial_se(0.5, 0).is_infinite());
        // Success 0.5: variance (0.5)/(0.25) = 2, over 200 samples: sqrt(0.01) = 0.1.
        assert!((geometric_mean_se(0.5, 200) - 0.1).abs() < 1e-12);
        assert_eq!(geometric_mean_se(1.0, 10), 0.0);
    }
}
