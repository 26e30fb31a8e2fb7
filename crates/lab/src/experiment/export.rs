//! `results.csv`: one line per point and mode, for spreadsheets and plotting scripts.
//!
//! Columns: `loss` (a fraction), `pattern` (`independent` or `bursts`), `mean_burst` (packets,
//! empty for independent loss), `mode`, `seeds`, then for every metric of
//! [`super::results::RowMetrics`] two columns: `<metric>` (the mean across seeds) and
//! `<metric>_ci95` (the 95% half-width, empty with one seed), then `theory_ok` (`true` if every
//! theory check passed). Empty cells are missing values (e.g. no latency when nothing arrived).
//! No cell ever holds a comma or a quote, so no quoting is needed.

use std::fmt::Write as _;

use super::config::LossPattern;
use super::results::{Results, RowMetrics};
use super::stats::Estimate;

/// The metric columns, in order, with how to read each from a row.
fn metrics(m: &RowMetrics) -> [(&'static str, &Estimate); 15] {
    [
        ("delivery_ratio", &m.delivery_ratio),
        ("duplicates", &m.duplicates),
        ("out_of_order", &m.out_of_order),
        ("latency_min_ms", &m.latency_min_ms),
        ("latency_p50_ms", &m.latency_p50_ms),
        ("latency_p90_ms", &m.latency_p90_ms),
        ("latency_p99_ms", &m.latency_p99_ms),
        ("latency_max_ms", &m.latency_max_ms),
        ("datagrams_per_delivered", &m.datagrams_per_delivered),
        ("transmissions_per_message", &m.transmissions_per_message),
        ("retransmits_timeout", &m.retransmits_timeout),
        ("retransmits_fast", &m.retransmits_fast),
        ("retransmits_spurious", &m.retransmits_spurious),
        ("goodput_kbps", &m.goodput_kbps),
        ("wire_per_byte", &m.wire_per_byte),
    ]
}

/// The CSV text, header first, one line per row, `\n` line ends.
pub fn to_csv(results: &Results) -> String {
    let mut out = String::from("loss,pattern,mean_burst,mode,seeds");
    if let Some(first) = results.rows.first() {
        for (name, _) in metrics(&first.metrics) {
            let _ = write!(out, ",{name},{name}_ci95");
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
        for (_, e) in metrics(&row.metrics) {
            let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = write!(out, ",{},{}", cell(e.mean), cell(e.ci95));
        }
        let _ = writeln!(out, ",{}", row.theory.iter().all(|c| c.ok));
    }
    out
}
