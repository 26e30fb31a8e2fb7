//! `udpchat-bench`: udpchat's reliable mode next to KCP and QUIC, on the same links.
//!
//! ```text
//! udpchat-bench [--quick] [--workload chat|bulk|dead-peer|loopback|sim|fairness|all]
//!               [--format table|json] [--seed N]
//! ```
//! Tables (or one JSON document) go to stdout; progress goes to stderr.

use anyhow::Result;
use clap::{Parser, ValueEnum};
use udpchat_bench::report::Workload;
use udpchat_bench::run::{Plan, Sizes};
use udpchat_bench::system::System;

/// Which workloads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// 64-byte messages echoed every 20 ms on lossy jittery links: round-trip times.
    Chat,
    /// 10 MB one way over 100 Mbit/s: completion time, goodput, bytes on the wire.
    Bulk,
    /// The link goes dark mid-chat: time until each side is told.
    DeadPeer,
    /// Real sockets on 127.0.0.1: messages per second, vs raw UDP.
    Loopback,
    /// The lab's simulator itself, with null endpoints: datagram events per second.
    Sim,
    /// Two bulk flows through one shared bottleneck: each one's share, Jain's index.
    Fairness,
    /// All six.
    All,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One table per workload.
    Table,
    /// One JSON document with a `results` array.
    Json,
}

/// udpchat's reliable mode side by side with KCP (fast and default) and QUIC (quinn-proto), on
/// the lab's simulated links with the same seeds, plus a loopback run against raw UDP.
#[derive(Debug, Parser)]
#[command(name = "udpchat-bench", version)]
struct Args {
    /// Smaller sizes (200 chat round trips, 1 MB bulk, 20,000 loopback messages, 50,000 sim
    /// messages each way): under a minute in a release build.
    #[arg(long)]
    quick: bool,
    /// Which workload to run.
    #[arg(long, value_enum, default_value = "all")]
    workload: WorkloadArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Seed of the links' randomness (the same for every system).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let workloads = match args.workload {
        WorkloadArg::Chat => vec![Workload::Chat],
        WorkloadArg::Bulk => vec![Workload::Bulk],
        WorkloadArg::DeadPeer => vec![Workload::DeadPeer],
        WorkloadArg::Loopback => vec![Workload::Loopback],
        WorkloadArg::Sim => vec![Workload::Sim],
        WorkloadArg::Fairness => vec![Workload::Fairness],
        WorkloadArg::All => vec![
            Workload::Chat,
            Workload::Bulk,
            Workload::DeadPeer,
            Workload::Loopback,
            Workload::Sim,
            Workload::Fairness,
        ],
    };
    let plan = Plan {
        workloads,
        sizes: if args.quick {
            Sizes::QUICK
        } else {
            Sizes::FULL
        },
        quick: args.quick,
        seed: args.seed,
        // The chat workload has every compared system; the others run those of theirs.
        systems: System::for_workload(Workload::Chat),
    };
    let report = plan.run(|row| {
        eprintln!(
            "done: {} {} loss {:.1}%",
            row.workload.name(),
            row.system,
            row.loss * 100.0
        );
    })?;
    match args.format {
        Format::Table => print!("{}", report.to_table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
