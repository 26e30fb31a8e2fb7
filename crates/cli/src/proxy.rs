//! `udpchat proxy`: a userspace `tc netem` between any two UDP programs.
//!
//! Binds `--listen`, relays each client's datagrams to `--forward` and the replies back, through
//! the lab's impairment model (`udpchat_lab::proxy`); this module only turns flags into a
//! [`ProxyConfig`], prints, and handles signals. On stderr, the first line is
//! `udpchat: listening on ADDR (proxy to FORWARD)` with the address actually bound (as `chat`
//! prints it), then one line per direction describing its impairment, the seed, and the bounds
//! on clients and memory. Counters are printed every `--stats-interval` and once more at the end
//! (with a line saying what they mean); failures the proxy survives are printed as warnings, at
//! most one per kind every 10 s. SIGINT (Ctrl-C) or SIGTERM end the proxy cleanly with exit
//! code 0.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use udpchat_lab::capture::CaptureFile;
use udpchat_lab::parse::parse_duration;
use udpchat_lab::proxy::{format_size, Proxy, ProxyConfig, ProxyReport, ProxyStats};

use crate::address::{check_families, parse_destination};
use crate::link_args::ImpairmentArgs;

/// The flags of `udpchat proxy`.
#[derive(Debug, Args)]
#[command(
    after_help = "Counters, in datagrams, per direction (up: client -> forward): each one \
received, and each duplicate, is forwarded (sent on), dropped_* (by the impairment, or by the \
bounds above: dropped_memory, dropped_forgotten), a send_error (the system refused to send it: \
lost), or still held. A failed socket call is a warning (at most one per kind every 10 s), never \
an exit. See docs/lab.md."
)]
pub struct ProxyArgs {
    /// Address clients send to (e.g. 127.0.0.1:4000; port 0 picks a free port, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Where client datagrams go, as HOST:PORT (port 1-65535); replies from there go back to the
    /// client.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_destination)]
    pub forward: String,

    /// How often to print the counters: 10s, 500ms, or a bare number of seconds; 0 prints them
    /// only at the end.
    #[arg(long, value_name = "S", default_value = "10", value_parser = parse_interval,
          allow_hyphen_values = true)]
    pub stats_interval: Duration,

    /// Most clients remembered at once, each with its own socket towards --forward (1 to 4096);
    /// a new client beyond that makes the proxy forget the one heard from least recently. If the
    /// system refuses a socket first (open-file limit, `ulimit -n`), the proxy lowers the bound
    /// to what it holds.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub max_clients: u16,

    /// Most bytes of datagrams held (delayed) per direction, e.g. 32MiB, 500kb, 65536; beyond
    /// it datagrams are dropped (counted as dropped_memory). --limit still bounds their number.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub max_held: u64,

    /// Most bytes of datagrams held by both directions together.
    #[arg(long, value_name = "SIZE", default_value = "48MiB", value_parser = parse_size)]
    pub max_held_total: u64,

    /// Write every datagram to FILE, a pcapng capture for Wireshark (wall-clock times): once as
    /// it reaches the proxy, its comment saying what the impairment does with it (dropped and
    /// why, delayed, duplicated, corrupted), and once as it leaves ("delivered"). A disk error
    /// stops the capture with one warning; the proxy goes on.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,

    /// Trace every datagram on stderr, one line each: direction, addresses, size, fate, kind
    /// and numbers. RUST_LOG, when set, filters the trace instead (RUST_LOG=udpchat::wire=debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The link's impairments (both directions unless overridden with --up/--down).
    #[command(flatten)]
    pub impairment: ImpairmentArgs,
}

impl ProxyArgs {
    /// Refuses a literal `--forward` the `--listen` socket cannot reach (exit code 2, with
    /// proxy's usage).
    pub fn check(&self) -> Result<(), clap::Error> {
        check_families("--listen", self.listen, "--forward", &self.forward)
            .map_err(|m| crate::usage_error("proxy", &m))
    }
}

/// Runs the proxy until SIGINT or SIGTERM and returns the exit code.
pub fn run(args: ProxyArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    crate::trace::init("udpchat proxy", args.verbose >= 1);
    runtime.block_on(proxy(args))
}

async fn proxy(args: ProxyArgs) -> Result<ExitCode> {
    let forward = resolve_forward(&args.forward, args.listen)?;
    let seed = args.impairment.seed_or_random();
    let config = ProxyConfig {
        up: args.impairment.up_config(),
        down: args.impairment.down_config(),
        seed,
        stats_interval: (!args.stats_interval.is_zero()).then_some(args.stats_interval),
        max_clients: usize::from(args.max_clients),
        max_held_bytes: args.max_held,
        max_held_bytes_total: args.max_held_total,
        ..ProxyConfig::new(args.listen, forward)
    };
    // Signals are caught before the first line is printed, so whoever reads that line may stop
    // the proxy at once and still get the final counters.
    let shutdown = shutdown_signal()?;
    let mut proxy = Proxy::bind(config.clone()).await?;
    if let Some(path) = &args.pcap {
        let capture = CaptureFile::create(path, "udpchat proxy", true)
            .with_context(|| format!("cannot write the capture {}", path.display()))?;
        proxy = proxy.capture(capture);
    }
    let local = proxy.local_addr()?;

    eprintln!("udpchat: listening on {local} (proxy to {forward})");
    eprintln!(
        "udpchat proxy: up   (client -> forward): {}",
        config.up.describe()
    );
    eprintln!(
        "udpchat proxy: down (forward -> client): {}",
        config.down.describe()
    );
    eprintln!("udpchat proxy: seed {seed} (pass --seed {seed} to replay the same fates)");
    eprintln!(
        "udpchat proxy: at most {} clients at once, {} held per direction, {} in all",
        config.max_clients,
        format_size(config.max_held_bytes),
        format_size(config.max_held_bytes_total)
    );
    for warning in args.impairment.warnings() {
        eprintln!("udpchat proxy: warning: {warning}");
    }
    if args.max_held > args.max_held_total {
        eprintln!(
            "udpchat proxy: warning: --max-held {} is above --max-held-total {}: the total bounds \
             each direction too",
            format_size(args.max_held),
            format_size(args.max_held_total)
        );
    }

    let stats = proxy
        .run(shutdown, |report| match report {
            ProxyReport::Counters(stats) => print_stats("counters", stats),
            ProxyReport::Problem(problem) => eprintln!("udpchat proxy: warning: {problem}"),
        })
        .await?;
    print_stats("final counters", &stats);
    eprintln!("udpchat proxy: {}", ProxyStats::LEGEND);
    Ok(ExitCode::SUCCESS)
}

fn print_stats(title: &str, stats: &ProxyStats) {
    eprintln!("udpchat proxy: {title} (datagrams):");
    for line in stats.to_string().lines() {
        eprintln!("udpchat proxy: {line}");
    }
}

/// A positive byte count: a bare number of bytes, or a number with a unit, decimal (`b`, `kb`,
/// `mb`, `gb`, as `--queue` takes them) or binary (`kib`, `mib`, `gib`), in any case.
fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| {
            format!("expected a positive size such as 32MiB, 500kb or 65536 (bytes), got {text:?}")
        })
}

/// Completes on the first SIGINT or SIGTERM (Ctrl-C on Windows). Registered at once, so a signal
/// that arrives before the proxy starts polling is not lost.
#[cfg(unix)]
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(windows)]
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    let mut ctrl_c = tokio::signal::windows::ctrl_c().context("cannot catch Ctrl-C")?;
    Ok(async move {
        ctrl_c.recv().await;
    })
}

/// Resolves `text` (HOST:PORT), preferring the listen address's IP family.
fn resolve_forward(text: &str, listen: SocketAddr) -> Result<SocketAddr> {
    let candidates: Vec<SocketAddr> = text
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve --forward {text} (expected HOST:PORT)"))?
        .collect();
    candidates
        .iter()
        .find(|a| a.is_ipv4() == listen.is_ipv4())
        .or(candidates.first())
        .copied()
        .ok_or_else(|| anyhow!("--forward {text} resolved to no address"))
}

/// A bare number is seconds (`--stats-interval 5`); otherwise a duration with a unit.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("expected a non-negative number of seconds, got {text:?}")),
        Err(_) => parse_duration(text).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;
    use udpchat_lab::proxy::{
        DEFAULT_MAX_CLIENTS, DEFAULT_MAX_HELD_BYTES, DEFAULT_MAX_HELD_BYTES_TOTAL,
    };

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    #[test]
    fn the_flags_default_to_the_library_defaults() {
        let cli =
            Cli::try_parse_from(["proxy", "--listen", "127.0.0.1:0", "--forward", "x:9"]).unwrap();
        assert_eq!(usize::from(cli.args.max_clients), DEFAULT_MAX_CLIENTS);
        assert_eq!(cli.args.max_held, DEFAULT_MAX_HELD_BYTES);
        assert_eq!(cli.args.max_held_total, DEFAULT_MAX_HELD_BYTES_TOTAL);
        for bad in [
            &["--max-clients", "0"][..],
            &["--max-clients", "5000"],
            &["--max-held", "0"],
        ] {
            let mut argv = vec!["proxy", "--listen", "127.0.0.1:0", "--forward", "x:9"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn intervals_are_seconds_unless_a_unit_says_otherwise() {
        assert_eq!(parse_interval("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("65536").unwrap(), 65_536);
        assert_eq!(parse_size("1500b").unwrap(), 1_500);
        assert_eq!(parse_size("500kb").unwrap(), 500_000);
        assert_eq!(parse_size("32MiB").unwrap(), DEFAULT_MAX_HELD_BYTES);
        assert_eq!(parse_size("48mib").unwrap(), DEFAULT_MAX_HELD_BYTES_TOTAL);
        assert_eq!(parse_size("1 GiB").unwrap(), 1 << 30);
        for bad in ["0", "0mib", "-1", "lots", "12 parsecs", "99999999999gib"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forward_prefers_the_listen_family() {
        let v4: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(
            resolve_forward("localhost:9", v4).unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(resolve_forward("nowhere", v4).is_err());
    }
}
