//! `udpchat netem`: a userspace replacement for `tc netem`, for IP packets (any protocol).
//!
//! By default it creates two network namespaces joined through the TUN relay of the
//! `udpchat-netem` crate (A: 10.77.0.1, B: 10.77.0.2), prints their names and how to run commands
//! in them, and relays with the lab's impairment (up: A to B, down: B to A) until SIGINT (Ctrl-C)
//! or SIGTERM. With `--tun A,B` it relays between two existing TUN devices instead. On the way
//! out it prints each direction's counters and removes what it created.
//!
//! Root (CAP_NET_ADMIN) is required. Without it, the command prints one line saying so and exits
//! with code 77 (`EX_NOPERM` of sysexits.h), having created nothing. Other failures exit with 1,
//! as every command, after removing whatever was already set up.
//!
//! Output: stdout gets one line per side, `SIDE NAMESPACE ADDRESS DEVICE` (or `SIDE DEVICE` with
//! `--tun`), for scripts; everything for people goes to stderr.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use udpchat_netem::link::run_relay;
use udpchat_netem::{Direction, LinkAddresses, NamespaceLink, NetemError, Relay, TunPair};

use crate::link_args::ImpairmentArgs;

/// Exit code when the process lacks the privilege (`EX_NOPERM` in sysexits.h).
pub const EXIT_NOT_PERMITTED: u8 = 77;

/// The flags of `udpchat netem`.
#[derive(Debug, Args)]
#[command(
    after_help = "Needs root (CAP_NET_ADMIN): without it, one line on stderr and exit \
code 77, nothing created. Counters, in IP packets, per direction at exit (a->b is --up): \
received, forwarded (copies included), dropped_* by cause, duplicated, reordered, corrupted (bits \
flipped after the IP header: the receiving kernel drops the segment on its TCP/UDP checksum), \
malformed (not IP), write_errors, bytes, and TCP data segments and retransmissions seen. \
See README (udpchat netem) and docs/lab.md."
)]
pub struct NetemArgs {
    /// Relay between these two existing TUN devices of this namespace (A,B; e.g. made with
    /// `ip tuntap add dev tunA mode tun`) instead of creating two namespaces. They are left as
    /// they were.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub tun: Vec<String>,

    /// The link's impairments (both directions unless overridden; up is A to B, down is B to A).
    #[command(flatten)]
    pub impairment: ImpairmentArgs,
}

impl NetemArgs {
    /// `--tun` names exactly two devices.
    pub fn check(&self) -> Result<(), clap::Error> {
        if !self.tun.is_empty() && (self.tun.len() != 2 || self.tun[0] == self.tun[1]) {
            return Err(crate::usage_error(
                "netem",
                "--tun takes two different TUN device names: --tun A,B",
            ));
        }
        Ok(())
    }
}

/// Runs the relay until SIGINT or SIGTERM and returns the exit code.
pub fn run(args: NetemArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(netem(args)) {
        Err(e)
            if e.downcast_ref::<NetemError>()
                .is_some_and(NetemError::is_not_permitted) =>
        {
            eprintln!("udpchat netem: {e}");
            Ok(ExitCode::from(EXIT_NOT_PERMITTED))
        }
        other => other,
    }
}

async fn netem(args: NetemArgs) -> Result<ExitCode> {
    // Signals are caught before anything is created: a Ctrl-C during setup then ends the relay
    // as soon as it starts, and the guards remove everything, instead of killing the process
    // with namespaces left behind.
    let stop = crate::proxy::shutdown_signal()?;
    for warning in args.impairment.warnings() {
        eprintln!("udpchat netem: warning: {warning}");
    }
    let seed = args.impairment.seed_or_random();
    let up = args.impairment.up_config();
    let down = args.impairment.down_config();
    let mut relay = Relay::new(up.clone(), down.clone(), seed);
    // Whichever is set up, it lives until the end of this function, after the counters.
    let namespaces;
    let existing;
    let devices = if let [a, b] = args.tun.as_slice() {
        existing = TunPair::open_existing(a, b)?;
        println!("a {a}\nb {b}");
        eprintln!("udpchat netem: relaying between TUN devices {a} (a) and {b} (b)");
        &existing
    } else {
        namespaces = NamespaceLink::create(LinkAddresses::default())?;
        for name in namespaces.swept() {
            eprintln!("udpchat netem: removed namespace {name}, left by a process that is gone");
        }
        announce(&namespaces);
        namespaces.devices()
    };
    std::io::stdout()
        .flush()
        .context("cannot write to stdout")?;
    eprintln!("udpchat netem: up (a->b): {}", up.describe());
    eprintln!("udpchat netem: down (b->a): {}", down.describe());
    eprintln!("udpchat netem: seed {seed}; relaying until Ctrl-C (SIGINT) or SIGTERM");
    let result = run_relay(devices, &mut relay, stop).await;
    eprintln!("udpchat netem: counters, in IP packets (see --help)");
    for direction in Direction::BOTH {
        eprintln!("udpchat netem: {direction}: {}", relay.stats(direction));
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Says where the two sides are and how to use them.
fn announce(link: &NamespaceLink) {
    let addresses = link.addresses();
    let (a, b) = (link.namespace_a().name(), link.namespace_b().name());
    let [device_a, device_b] = link.devices().names();
    println!("a {a} {} {device_a}", addresses.a);
    println!("b {b} {} {device_b}", addresses.b);
    eprintln!(
        "udpchat netem: namespace {a} ({}) and namespace {b} ({}), joined through the relay",
        addresses.a, addresses.b
    );
    eprintln!("udpchat netem: run a command in each, e.g.");
    eprintln!(
        "  ip netns exec {b} udpchat chat --bind {}:2323",
        addresses.b
    );
    eprintln!(
        "  ip netns exec {a} udpchat chat --peer {}:2323",
        addresses.b
    );
}
