//! `udpchat proxy`: a userspace `tc netem` between any two UDP programs.
//!
//! Binds `--listen`, relays each client's datagrams to `--forward` and the replies back, through
//! the lab's impairment model (`udpchat_lab::proxy`); this module only turns flags into a
//! [`ProxyConfig`], prints, and handles signals. On stderr, the first line is
//! `udpchat: listening on ADDR (proxy to FORWARD)` with the address actually bound (as `chat`
//! prints it), then one line per direction describing its impairment, and the seed. Counters
//! are printed every `--stats-interval` and once more at the end; SIGINT (Ctrl-C) or SIGTERM
//! end the proxy cleanly with exit code 0.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use udpchat_lab::parse::parse_duration;
use udpchat_lab::proxy::{Proxy, ProxyConfig, ProxyStats};

use crate::address::{check_families, parse_destination};
use crate::link_args::ImpairmentArgs;

/// The flags of `udpchat proxy`.
#[derive(Debug, Args)]
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
        ..ProxyConfig::new(args.listen, forward)
    };
    // Signals are caught before the first line is printed, so whoever reads that line may stop
    // the proxy at once and still get the final counters.
    let shutdown = shutdown_signal()?;
    let proxy = Proxy::bind(config.clone()).await?;
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
    for warning in args.impairment.warnings() {
        eprintln!("udpchat proxy: warning: {warning}");
    }

    let stats = proxy
        .run(shutdown, |stats| print_stats("counters", stats))
        .await?;
    print_stats("final counters", &stats);
    Ok(ExitCode::SUCCESS)
}

fn print_stats(title: &str, stats: &ProxyStats) {
    eprintln!("udpchat proxy: {title}:");
    for line in stats.to_string().lines() {
        eprintln!("udpchat proxy: {line}");
    }
}

/// Completes on the first SIGINT or SIGTERM (Ctrl-C on Windows). Registered at once, so a signal
/// that arrives before the proxy starts polling is not lost.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
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
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
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

    #[test]
    fn intervals_are_seconds_unless_a_unit_says_otherwise() {
        assert_eq!(parse_interval("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("soon").is_err());
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
