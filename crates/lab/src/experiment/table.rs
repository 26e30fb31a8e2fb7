//! The terminal table: one line per point and mode, columns sized to their contents.
//!
//! Counts and ratios are means across seeds; with more than one seed the interesting ones carry
//! `±` the 95% half-width, so a reader sees at once whether two numbers differ. Latencies are
//! percentiles of all seeds' messages pooled, and connection setup the median and the largest of
//! the seeds' setup times; every time is in milliseconds, whatever its size, so a column reads in
//! one unit. The `theory` column shows the closed form beside each result, how many standard
//! errors away the measurement is, the range the check accepts and its verdict (`ok`, or
//! `warning`, marked `!` and spelled out under the table): table, results.json and the warnings
//! all say the same.

use std::fmt::Write as _;

use super::config::LossPattern;
use super::results::{Engine, Results, Row};
use super::stats::{Estimate, Pooled};
use super::theory::CheckKind;
use crate::probability::Probability;

/// The table's columns (the setup column's title depends on the number of seeds: see
/// [`header`]), and which of them are right-aligned (the numbers).
const HEADER: [&str; 14] = [
    "loss",
    "mode",
    "delivered",
    "dup",
    "ooo",
    "setup ms",
    "latency p50/p90/p99/max ms",
    "hol held, wait p50/max ms",
    "dgrams/msg",
    "tx/msg",
    "retx rto/fast/spur",
    "goodput kbit/s",
    "wire B/B",
    "theory: σ from it, accepted range, verdict",
];
const RIGHT: [bool; 14] = [
    true, false, true, true, true, true, true, true, true, true, true, true, true, false,
];
/// The setup column's index in [`HEADER`].
const SETUP: usize = 5;

/// The header line: with several seeds, setup shows the median and the largest seed's.
fn header(seeds: usize) -> Vec<String> {
    HEADER
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == SETUP && seeds > 1 {
                "setup ms med/max".to_owned()
            } else {
                (*h).to_owned()
            }
        })
        .collect()
}

/// Renders `results` as a table with a heading and, if any, the warnings.
pub fn render(results: &Results) -> String {
    let mut out = heading(results);
    let bursts = results
        .config
        .patterns
        .iter()
        .any(|p| *p != LossPattern::Independent);
    let seeds = results.seeds.len();
    let mut lines: Vec<Vec<String>> = vec![header(seeds)];
    lines.extend(results.rows.iter().map(|row| row_cells(row, bursts, seeds)));
    out.push_str(&align(&lines));
    if !results.warnings.is_empty() {
        let _ = writeln!(out);
        for warning in &results.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
    }
    out
}

/// The lines above the table: what ran, over which link, with which seeds.
fn heading(results: &Results) -> String {
    let config = &results.config;
    let mut out = String::new();
    let kernel = config.modes.iter().any(|m| m.is_kernel());
    let engine = match results.engine {
        Engine::Simulator => "simulator",
        Engine::Real if kernel => {
            "real sockets: loopback through the proxy, kernel-tcp between namespaces through the \
             TUN relay"
        }
        Engine::Real => "real loopback sockets through the proxy",
        Engine::RealTun => "real sockets between two namespaces through the TUN relay",
    };
    let seeds = match results.seeds.as_slice() {
        [one] => format!("seed {one}"),
        [first, .., last] => format!("{} seeds ({first}..={last})", results.seeds.len()),
        [] => "no seeds".to_owned(),
    };
    let _ = writeln!(
        out,
        "udpchat lab ({engine}): {} messages of {} B every {:?} from A to B; link each way: {}; {seeds}",
        config.messages,
        config.size,
        config.interval,
        link_description(results)
    );
    if results.seeds.len() > 1 {
        let _ = writeln!(
            out,
            "means over seeds, ± 95% confidence half-widths (Student's t); latency: percentiles of \
             all seeds' messages pooled, from send or connection setup, whichever is later"
        );
    }
    let _ = writeln!(out);
    out
}

/// One row's cells, in [`HEADER`]'s order.
fn row_cells(row: &Row, bursts: bool, seeds: usize) -> Vec<String> {
    let m = &row.metrics;
    let loss = if bursts {
        format!("{} {}", percent(row.loss), pattern_short(row.pattern))
    } else {
        percent(row.loss)
    };
    vec![
        loss,
        row.mode.name().to_owned(),
        with_ci(
            &m.delivery_ratio,
            |v| format!("{:.2}%", v * 100.0),
            100.0,
            2,
        ),
        plain(&m.duplicates, 1),
        plain(&m.out_of_order, 1),
        setup_cell(&m.setup_ms, seeds),
        [
            &m.latency_p50_ms,
            &m.latency_p90_ms,
            &m.latency_p99_ms,
            &m.latency_max_ms,
        ]
        .iter()
        .map(|e| e.pooled.map_or_else(|| "-".to_owned(), ms))
        .collect::<Vec<_>>()
        .join("/"),
        hol_cell(m),
        plain(&m.datagrams_per_delivered, 3),
        plain(&m.transmissions_per_message, 3),
        format!(
            "{}/{}/{}",
            count(&m.retransmits_timeout),
            count(&m.retransmits_fast),
            count(&m.retransmits_spurious)
        ),
        with_ci(&m.goodput_kbps, |v| format!("{v:.1}"), 1.0, 1),
        plain(&m.wire_per_byte, 2),
        theory_cell(row),
    ]
}

/// Head-of-line blocking: the share of delivered messages held back, then the median and
/// longest wait of those (`-` where nothing is held back); `-` alone where it does not apply
/// (raw mode).
fn hol_cell(m: &super::results::RowMetrics) -> String {
    let Some(ratio) = m.hol_blocked_ratio.mean else {
        return "-".to_owned();
    };
    let wait = |p: &Pooled| p.pooled.map_or_else(|| "-".to_owned(), ms);
    format!(
        "{:.1}%, {}/{}",
        ratio * 100.0,
        wait(&m.hol_wait_p50_ms),
        wait(&m.hol_wait_max_ms)
    )
}

/// The lines as text, each column as wide as its widest cell, numbers right-aligned, and no
/// trailing spaces.
fn align(lines: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c > 0 {
                text.push_str("  ");
            }
            let pad = widths[c].saturating_sub(cell.chars().count());
            if RIGHT[c] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if c + 1 < line.len() {
                    text.push_str(&" ".repeat(pad));
                }
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
    out
}

fn link_description(results: &Results) -> String {
    let mut link = results.config.link.clone();
    link.loss = Probability::ZERO;
    link.burst_loss = None;
    let rest = link.describe();
    let loss = "swept loss".to_owned();
    if rest == "perfect" {
        loss
    } else {
        format!("{loss}, {rest}")
    }
}

fn percent(p: f64) -> String {
    let v = (p * 100.0 * 1e6).round() / 1e6;
    format!("{v}%")
}

fn pattern_short(pattern: LossPattern) -> String {
    match pattern {
        LossPattern::Independent => "indep".to_owned(),
        LossPattern::Bursts { mean_burst } => format!("burst{mean_burst}"),
    }
}

/// Milliseconds, always (the unit is in the header): `20.3`, `2230`, `22134`; a decimal only
/// where it is not noise.
fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Connection setup: `-` without a handshake; else the median over seeds and, with several, the
/// slowest seed's.
fn setup_cell(setup: &Pooled, seeds: usize) -> String {
    match (setup.pooled, setup.seed_max) {
        (None, _) => "-".to_owned(),
        (Some(median), Some(max)) if seeds > 1 => format!("{}/{}", ms(median), ms(max)),
        (Some(median), _) => ms(median),
    }
}

/// `value±half` when there is an interval; `scale` converts the half-width to the value's unit.
fn with_ci(e: &Estimate, show: impl Fn(f64) -> String, scale: f64, decimals: usize) -> String {
    match (e.mean, e.ci95) {
        (None, _) => "-".to_owned(),
        (Some(m), None) => show(m),
        (Some(m), Some(0.0)) => show(m),
        (Some(m), Some(h)) => {
            let half = h * scale;
            let main = show(m);
            let main = main.trim_end_matches('%');
            let unit = if show(m).ends_with('%') { "%" } else { "" };
            if half >= 1000.0 {
                format!("{main}±{half:.0}{unit}")
            } else {
                format!("{main}±{half:.decimals$}{unit}")
            }
        }
    }
}

fn plain(e: &Estimate, decimals: usize) -> String {
    match e.mean {
        None => "-".to_owned(),
        Some(m) if m.abs() >= 1000.0 => format!("{m:.0}"),
        Some(m) => format!("{m:.decimals$}"),
    }
}

fn count(e: &Estimate) -> String {
    match e.mean {
        None => "-".to_owned(),
        Some(m) if m.fract() == 0.0 => format!("{m:.0}"),
        Some(m) => format!("{m:.1}"),
    }
}

/// The theory beside the result: the closed form's value, the distance in σ, the range the check
/// accepts and the verdict; failed checks are prefixed with `!`.
fn theory_cell(row: &Row) -> String {
    let mut parts = Vec::new();
    for c in &row.theory {
        let flag = if c.ok { "" } else { "!" };
        let verdict = if c.ok { "ok" } else { "warning" };
        let accepted = c.accepted_range();
        let text = match c.check {
            CheckKind::RawDelivery => Some(format!(
                "{flag}{}={:.2}%{} [{accepted}] {verdict}",
                c.formula,
                c.expected * 100.0,
                sigmas(c.sigmas)
            )),
            CheckKind::TransmissionsPerMessage => Some(format!(
                "{flag}{}={:.3}{} [{accepted}] {verdict}",
                c.formula,
                c.expected,
                sigmas(c.sigmas)
            )),
            // Shown only when they fail: passing, they would say the same on every line.
            CheckKind::ReliableDelivery | CheckKind::MinLatency if !c.ok => {
                Some(format!("!{} {verdict}", c.describe()))
            }
            CheckKind::ReliableDelivery | CheckKind::MinLatency => None,
        };
        parts.extend(text);
    }
    parts.join("; ")
}

fn sigmas(z: Option<f64>) -> String {
    z.map(|z| format!(" {z:+.1}σ")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::experiment::config::{ExperimentConfig, Mode};
    use crate::experiment::run::run_sweep;

    fn results(seeds: u32) -> Results {
        let config = ExperimentConfig {
            losses: vec![Probability::ZERO, Probability::new(0.2).unwrap()],
            messages: 100,
            seeds,
            ..ExperimentConfig::default()
        };
        let (points, runs) = run_sweep(&config, &|_, _| {}).unwrap();
        Results::new(&config, Engine::Simulator, &points, runs)
    }

    #[test]
    fn one_aligned_line_per_point_and_mode_under_a_heading() {
        let text = render(&results(2));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("udpchat lab (simulator): 100 messages of 64 B"));
        assert!(lines[1].contains("95% confidence"));
        let header = lines.iter().position(|l| l.starts_with("loss")).unwrap();
        let rows = &lines[header + 1..header + 5];
        let modes: Vec<&str> = rows
            .iter()
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(modes, ["raw", "reliable", "raw", "reliable"]);
        // Right-aligned numeric columns end at the same place on every line.
        let end = |l: &str| l.find("delivered").map(|i| i + "delivered".len());
        let delivered_end = end(lines[header]).unwrap();
        for row in rows {
            assert_eq!(row.chars().nth(delivered_end - 1), Some('%'), "{row}");
        }
        // Two seeds: the lossy raw row carries an interval; a clean one needs none.
        assert!(rows[2].contains('±'), "{}", rows[2]);
        assert!(rows[0].contains("100.00% "), "{}", rows[0]);
        assert!(rows[2].contains("1-p=80.00%"), "{}", rows[2]);
        assert!(!text.contains("warning:"), "{text}");
    }

    #[test]
    fn one_seed_shows_no_intervals_and_failed_checks_are_flagged() {
        let mut r = results(1);
        // (The heading's `20ms±5ms` is the jitter, not an interval.)
        let text = render(&r);
        let table = &text[text.find("\nloss").unwrap()..];
        assert!(!table.contains('±'), "{table}");
        // Pretend a reliable row lost a message: the theory column and a warning say so.
        let row = r
            .rows
            .iter_mut()
            .find(|row| row.mode == Mode::Reliable)
            .unwrap();
        for c in &mut row.theory {
            c.ok = false;
        }
        r.warnings.push("something is off".to_owned());
        let text = render(&r);
        assert!(text.contains("!reliable delivery"), "{text}");
        assert!(text.ends_with("warning: something is off\n"), "{text}");
    }
}
