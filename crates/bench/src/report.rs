//! The results document: one [`ResultRow`] per system, workload and link, printed as tables or as
//! one JSON document.
//!
//! The JSON schema (documented in `docs/performance.md`): an object with `versions` (the crates
//! that ran), `quick`, `seed`, and `results`, an array of rows with `system`, `workload`, `loss`
//! (a fraction), `link` (how the loss is drawn) and the figures that apply to the workload:
//! `rtt_avg_ms`, `rtt_p50_ms`, `rtt_p99_ms`, `rtt_max_ms` (chat); `goodput_mbps`,
//! `wire_bytes_per_byte` (bulk); `detect_ms`, `detect_echo_ms` (dead peer); `msgs_per_s` (loopback);
//! `events_per_s` (sim); `competitor`, `flow_mbps`, `shares`, `jain_index` (fairness); plus the supporting counts below. A figure that does not apply to a row is absent, not zero; a figure
//! that applies but could not be measured (nothing delivered, nothing detected) is `null`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::system::System;

/// Which workload a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Small echoed messages on a jittery lossy link.
    Chat,
    /// One-way transfer on a fast link with a finite queue.
    Bulk,
    /// The link goes dark mid-run.
    DeadPeer,
    /// Real UDP sockets on 127.0.0.1.
    Loopback,
    /// The lab's simulator itself, with endpoints that cost nothing.
    Sim,
    /// Two bulk flows through one shared bottleneck queue.
    Fairness,
}

impl Workload {
    /// The name used in tables, JSON and `--workload`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Chat => "chat",
            Workload::Bulk => "bulk",
            Workload::DeadPeer => "dead-peer",
            Workload::Loopback => "loopback",
            Workload::Sim => "sim",
            Workload::Fairness => "fairness",
        }
    }
}

/// How a link loses datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossModel {
    /// Each datagram independently.
    Independent,
    /// Gilbert–Elliott bursts with the same mean.
    Burst,
    /// Real loopback sockets: whatever the kernel drops.
    Kernel,
}

/// One line of results. Figures that do not apply to the workload are `None` and left out of
/// the JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    /// The system.
    pub system: System,
    /// The workload.
    pub workload: Workload,
    /// The link's mean loss, as a fraction.
    pub loss: f64,
    /// How the link loses.
    pub link: LossModel,
    /// Message size in bytes, where the workload varies it (loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_bytes: Option<usize>,
    /// Chat: mean round-trip time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_avg_ms: Option<Option<f64>>,
    /// Chat: median round-trip time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_p50_ms: Option<Option<f64>>,
    /// Chat: 99th-percentile round-trip time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_p99_ms: Option<Option<f64>>,
    /// Chat: largest round-trip time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_max_ms: Option<Option<f64>>,
    /// Bulk: time until the last byte arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_ms: Option<Option<f64>>,
    /// Bulk: application megabits per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_mbps: Option<Option<f64>>,
    /// Bulk: sender's wire bytes per application byte delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire_bytes_per_byte: Option<Option<f64>>,
    /// Bulk: receiver's wire bytes (acks) per application byte delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse_bytes_per_byte: Option<Option<f64>>,
    /// Bulk: sender's datagrams per 1000 application bytes delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams_per_kb: Option<Option<f64>>,
    /// Dead peer: time from the link going dark until the sending side was told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_ms: Option<Option<f64>>,
    /// Dead peer: the same for the side that only echoes (little or nothing in flight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_echo_ms: Option<Option<f64>>,
    /// Loopback: messages delivered per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_s: Option<Option<f64>>,
    /// Loopback: application megabytes (10^6) delivered per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<Option<f64>>,
    /// Sim: datagram events (datagrams delivered) the simulator runs per second of wall clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_s: Option<Option<f64>>,
    /// Fairness: the system of the second flow (the row's `system` runs the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub competitor: Option<System>,
    /// Fairness: each flow's goodput over the steady window, Mbit/s (first flow first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_mbps: Option<Vec<f64>>,
    /// Fairness: each flow's goodput as a fraction of the bottleneck's rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<f64>>,
    /// Fairness: Jain's index of the flows' goodputs, `(Σx)² / (n·Σx²)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jain_index: Option<Option<f64>>,
    /// Fairness: the steady window the shares are measured over, seconds from the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_s: Option<[f64; 2]>,
    /// Messages (chat, loopback) or bytes (bulk; fairness: the bottleneck's capacity over the
    /// window) the workload sent.
    pub expected: u64,
    /// How many of those arrived intact (echoes, for chat).
    pub delivered: u64,
    /// Anything the reader must know to read the row right.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ResultRow {
    /// A row with no figures yet.
    pub fn new(system: System, workload: Workload, loss: f64, link: LossModel) -> ResultRow {
        ResultRow {
            system,
            workload,
            loss,
            link,
            message_bytes: None,
            rtt_avg_ms: None,
            rtt_p50_ms: None,
            rtt_p99_ms: None,
            rtt_max_ms: None,
            completion_ms: None,
            goodput_mbps: None,
            wire_bytes_per_byte: None,
            reverse_bytes_per_byte: None,
            datagrams_per_kb: None,
            detect_ms: None,
            detect_echo_ms: None,
            msgs_per_s: None,
            mb_per_s: None,
            events_per_s: None,
            competitor: None,
            flow_mbps: None,
            shares: None,
            jain_index: None,
            window_s: None,
            expected: 0,
            delivered: 0,
            note: None,
        }
    }
}

/// Versions of what ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// This crate (and udpchat's).
    pub udpchat: &'static str,
    /// The `kcp` crate.
    pub kcp: &'static str,
    /// The `quinn-proto` crate.
    #[serde(rename = "quinn-proto")]
    pub quinn_proto: &'static str,
    /// The `rustls` crate under QUIC.
    pub rustls: &'static str,
    /// The `smoltcp` crate (the `tcp` rows).
    pub smoltcp: &'static str,
}

impl Versions {
    /// The versions this binary was built with (read from `Cargo.lock` at build time).
    pub fn built() -> Versions {
        Versions {
            udpchat: env!("CARGO_PKG_VERSION"),
            kcp: env!("UDPCHAT_BENCH_KCP_VERSION"),
            quinn_proto: env!("UDPCHAT_BENCH_QUINN_PROTO_VERSION"),
            rustls: env!("UDPCHAT_BENCH_RUSTLS_VERSION"),
            smoltcp: env!("UDPCHAT_BENCH_SMOLTCP_VERSION"),
        }
    }
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What ran.
    pub versions: Versions,
    /// True for the `--quick` sizes.
    pub quick: bool,
    /// The links' seed.
    pub seed: u64,
    /// The rows.
    pub results: Vec<ResultRow>,
}

fn cell(value: Option<Option<f64>>, decimals: usize) -> String {
    match value {
        None => String::new(),
        Some(None) => "-".to_owned(),
        Some(Some(v)) => format!("{v:.decimals$}"),
    }
}

impl Report {
    /// One table per workload, in the order they ran.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "udpchat {} | kcp {} | quinn-proto {} (rustls {}) | smoltcp {} | seed {}{}",
            self.versions.udpchat,
            self.versions.kcp,
            self.versions.quinn_proto,
            self.versions.rustls,
            self.versions.smoltcp,
            self.seed,
            if self.quick { " | quick sizes" } else { "" }
        );
        let mut workloads: Vec<Workload> = Vec::new();
        for row in &self.results {
            if !workloads.contains(&row.workload) {
                workloads.push(row.workload);
            }
        }
        for workload in workloads {
            let rows: Vec<&ResultRow> = self
                .results
                .iter()
                .filter(|r| r.workload == workload)
                .collect();
            let _ = writeln!(out);
            match workload {
                Workload::Chat => chat_table(&mut out, &rows),
                Workload::Bulk => bulk_table(&mut out, &rows),
                Workload::DeadPeer => dead_peer_table(&mut out, &rows),
                Workload::Loopback => loopback_table(&mut out, &rows),
                Workload::Sim => sim_table(&mut out, &rows),
                Workload::Fairness => fairness_table(&mut out, &rows),
            }
            for r in rows.iter().filter(|r| r.note.is_some()) {
                let _ = writeln!(
                    out,
                    "  note: {} {:.1}% {}: {}",
                    r.system.name(),
                    r.loss * 100.0,
                    link_name(r.link),
                    r.note.as_deref().unwrap_or_default()
                );
            }
        }
        out
    }
}

fn chat_table(out: &mut String, rows: &[&ResultRow]) {
    let _ = writeln!(
        out,
        "chat: 64 B echoed every 20 ms, one-way 30 ms ± 15 ms (RTT ms)\n{:<19} {:>6} {:>12} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "system", "loss", "link", "avg", "p50", "p99", "max", "echoed"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<19} {:>5.1}% {:>12} {:>8} {:>8} {:>8} {:>8} {:>10}",
            r.system.name(),
            r.loss * 100.0,
            link_name(r.link),
            cell(r.rtt_avg_ms, 1),
            cell(r.rtt_p50_ms, 1),
            cell(r.rtt_p99_ms, 1),
            cell(r.rtt_max_ms, 1),
            format!("{}/{}", r.delivered, r.expected),
        );
    }
}

fn bulk_table(out: &mut String, rows: &[&ResultRow]) {
    let _ = writeln!(
        out,
        "bulk: one way, 20 ms one-way delay, 100 Mbit/s, 500 kB queue\n{:<19} {:>6} {:>12} {:>9} {:>10} {:>9} {:>9} {:>10}",
        "system", "loss", "time ms", "Mbit/s", "wire B/B", "ack B/B", "dgram/kB", "delivered"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<19} {:>5.1}% {:>12} {:>9} {:>10} {:>9} {:>9} {:>10}",
            r.system.name(),
            r.loss * 100.0,
            cell(r.completion_ms, 0),
            cell(r.goodput_mbps, 2),
            cell(r.wire_bytes_per_byte, 4),
            cell(r.reverse_bytes_per_byte, 4),
            cell(r.datagrams_per_kb, 3),
            r.delivered,
        );
    }
}

fn dead_peer_table(out: &mut String, rows: &[&ResultRow]) {
    let _ = writeln!(
        out,
        "dead peer: chat traffic, then the link goes dark (ms until told)\n{:<19} {:>14} {:>14}",
        "system", "sender told", "echo side told"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<19} {:>14} {:>14}",
            r.system.name(),
            cell(r.detect_ms, 0),
            cell(r.detect_echo_ms, 0),
        );
    }
}

fn loopback_table(out: &mut String, rows: &[&ResultRow]) {
    let _ = writeln!(
        out,
        "loopback: real UDP sockets on 127.0.0.1\n{:<19} {:>7} {:>12} {:>9} {:>16}",
        "system", "bytes", "msgs/s", "MB/s", "delivered"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<19} {:>7} {:>12} {:>9} {:>16}",
            r.system.name(),
            r.message_bytes.unwrap_or(0),
            cell(r.msgs_per_s, 0),
            cell(r.mb_per_s, 1),
            format!("{}/{}", r.delivered, r.expected),
        );
    }
}

fn sim_table(out: &mut String, rows: &[&ResultRow]) {
    let _ = writeln!(
        out,
        "sim: the lab's simulator itself, trace off, one core (wall clock)\n{:<14} {:>14} {:>16}",
        "system", "events/s", "datagrams"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<14} {:>14} {:>16}",
            r.system.name(),
            cell(r.events_per_s, 0),
            format!("{}/{}", r.delivered, r.expected),
        );
    }
}

fn fairness_table(out: &mut String, rows: &[&ResultRow]) {
    let [from, to] = rows.first().and_then(|r| r.window_s).unwrap_or_default();
    let _ = writeln!(
        out,
        "fairness: two bulk flows, one 20 Mbit/s bottleneck (100 kB queue), 20 ms one way; the \
         second starts at 1 s; shares of the link over {from:.2}-{to:.2} s\n\
         {:<19} {:<19} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "system", "with", "Mbit/s 1", "Mbit/s 2", "share 1", "share 2", "Jain"
    );
    for r in rows {
        let pair = |v: &Option<Vec<f64>>, i: usize, decimals: usize| {
            cell(v.as_ref().map(|v| v.get(i).copied()), decimals)
        };
        let _ = writeln!(
            out,
            "{:<19} {:<19} {:>9} {:>9} {:>8} {:>8} {:>7}",
            r.system.name(),
            r.competitor.map_or("", System::name),
            pair(&r.flow_mbps, 0, 2),
            pair(&r.flow_mbps, 1, 2),
            pair(&r.shares, 0, 3),
            pair(&r.shares, 1, 3),
            cell(r.jain_index, 3),
        );
    }
}

fn link_name(link: LossModel) -> &'static str {
    match link {
        LossModel::Independent => "independent",
        LossModel::Burst => "burst",
        LossModel::Kernel => "kernel",
    }
}
