//! `results.csv`: one line per point and mode, for spreadsheets and plotting scripts.
//!
//! Columns: `loss` (a fraction), `pattern` (`independent` or `bursts`), `mean_burst` (packets,
//! empty for independent loss), `mode`, `seeds`, then for every metric of
//! [`super::results::RowMetrics`], in its order: for a mean, two columns, `<metric>` (the mean
//! across seeds) and `<metric>_ci95` (the 95% half-width, empty with one seed); for a pooled
//! percentile (connection setup and latency), three, `<metric>` (of all seeds' samples pooled),
//! `<metric>_seed_min` and `<metric>_seed_max` (the range of the per-seed values); then
//! `theory_ok` (`true` if every theory check passed). Empty cells are missing values (e.g. no
//! latency when nothing arrived, no setup for raw mode). No cell ever holds a comma or a quote, so
//! no quoting is needed.

use std::fmt::Write as _;

use super::config::LossPattern;
use super::results::{Results, RowMetrics};
use super::stats::{Estimate, Pooled};

/// One metric, aggregated one of the two ways.
enum Metric<'a> {
    Mean(&'a Estimate),
    Pooled(&'a Pooled),
}

impl Metric<'_> {
    /// The column suffixes after `<metric>` itself.
    fn suffixes(&self) -> &'static [&'static str] {
        match self {
            Metric::Mean(_) => &["_ci95"],
            Metric::Pooled(_) => &["_seed_min", "_seed_max"],
        }
    }

    fn cells(&self) -> Vec<Option<f64>> {
        match self {
            Metric::Mean(e) => vec![e.mean, e.ci95],
            Metric::Pooled(p) => vec![p.pooled, p.seed_min, p.seed_max],
        }
    }
}

/// The metric columns, in order, with how to read each from a row.
fn metrics(m: &RowMetrics) -> [(&'static str, Metric<'_>); 19] {
    use Metric::{Mean, Pooled};
    [
        ("delivery_ratio", Mean(&m.delivery_ratio)),
        ("duplicates", Mean(&m.duplicates)),
        ("out_of_order", Mean(&m.out_of_order)),
        ("setup_ms", Pooled(&m.setup_ms)),
        ("latency_min_ms", Pooled(&m.latency_min_ms)),
        ("latency_p50_ms", Pooled(&m.latency_p50_ms)),
        ("latency_p90_ms", Pooled(&m.latency_p90_ms)),
        ("latency_p99_ms", Pooled(&m.latency_p99_ms)),
        ("latency_max_ms", Pooled(&m.latency_max_ms)),
        ("datagrams_per_delivered", Mean(&m.datagrams_per_delivered)),
        (
            "transmissions_per_message",
            Mean(&m.transmissions_per_message),
        ),
        ("retransmits_timeout", Mean(&m.retransmits_timeout)),
        ("retransmits_fast", Mean(&m.retransmits_fast)),
        ("retransmits_spurious", Mean(&m.retransmits_spurious)),
        ("goodput_kbps", Mean(&m.goodput_kbps)),
        ("wire_per_byte", Mean(&m.wire_per_byte)),
        ("hol_blocked_ratio", Mean(&m.hol_blocked_ratio)),
        ("hol_wait_p50_ms", Pooled(&m.hol_wait_p50_ms)),
        ("hol_wait_max_ms", Pooled(&m.hol_wait_max_ms)),
    ]
}

/// The CSV text, header first, one line per row, `\n` line ends.
pub fn to_csv(results: &Results) -> String {
    let mut out = String::from("loss,pattern,mean_burst,mode,seeds");
    if let Some(first) = results.rows.first() {
        for (name, metric) in metrics(&first.metrics) {
            let _ = write!(out, ",{name}");
            for suffix in metric.suffixes() {
                let _ = write!(out, ",{name}{suffix}");
            }
        }
    }
    out.push_str(",theory_ok\n");
    for row in &results.rows {
        let (pattern, burst) = match row.pattern {
            LossPattern::Independent => ("independent", String::new()),
            LossPattern::Bursts { mean_burst } => ("bursts", mean_burst.to_string()),
        };
        let _ = write!(
            out,
            "{},{pattern},{burst},{},{}",
            row.loss,
            row.mode.name(),
            row.runs.len()
        );
        for (_, metric) in metrics(&row.metrics) {
            for v in metric.cells() {
                let _ = write!(out, ",{}", v.map(|v| v.to_string()).unwrap_or_default());
            }
        }
        let _ = writeln!(out, ",{}", row.theory.iter().all(|c| c.ok));
    }
    out
}
