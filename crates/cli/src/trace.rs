//! The live datagram trace (`chat -vv`, `proxy -v`, or `RUST_LOG`) and the chat's capture file
//! (`--pcap`): the binary's side of both.
//!
//! The driver and the proxy log one line per datagram under the `tracing` target
//! `udpchat::wire` (`udpchat_lab::wire::TARGET`), at debug level; nothing else in the workspace
//! logs (the sans-IO crates never do). This module installs the subscriber that prints them on
//! stderr: with the flag's filter (`udpchat::wire=debug`), or with `RUST_LOG` when that is set
//! (the `tracing-subscriber` `EnvFilter` syntax, e.g. `RUST_LOG=debug`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;
use udpchat_driver::Tapped;
use udpchat_lab::capture::{CaptureFile, CaptureStatus};
use udpchat_lab::wire::TARGET;
use udpchat_reliable::Endpoint;

/// Prints the trace on stderr if `datagrams` (the flag) or `RUST_LOG` asks for it; returns
/// whether anything may be printed. A `RUST_LOG` that does not parse is reported and ignored.
pub fn init(program: &str, datagrams: bool) -> bool {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty());
    let filter = match from_env.map(|f| (EnvFilter::try_new(&f), f)) {
        Some((Ok(filter), _)) => filter,
        Some((Err(e), text)) => {
            eprintln!("{program}: warning: ignoring RUST_LOG={text:?}: {e}");
            if !datagrams {
                return false;
            }
            EnvFilter::new(format!("{TARGET}=debug"))
        }
        None if datagrams => EnvFilter::new(format!("{TARGET}=debug")),
        None => return false,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init()
        .is_ok()
}

/// Refuses (exit code 2) a trace that would be written over the chat screen: both go to the
/// terminal. Redirected stderr (`2>trace.log`) is fine.
pub fn check_screen(screen: bool, tracing: bool) {
    if screen && tracing && std::io::stderr().is_terminal() {
        crate::usage_error(
            "chat",
            "the datagram trace (-vv, RUST_LOG) goes to stderr, which the chat screen covers: \
             redirect it (2>trace.log) or use --ui line",
        )
        .exit()
    }
}

/// Wraps `endpoint` (its socket bound at `local`) so that every datagram is traced and, with
/// `pcap`, captured to that file. With the chat `screen`, capture warnings are kept until
/// [`show_warnings`] (they would be drawn over the screen); otherwise printed at once.
pub fn tap(
    endpoint: Box<dyn Endpoint>,
    local: SocketAddr,
    pcap: Option<&Path>,
    screen: bool,
) -> Result<(Box<dyn Endpoint>, Option<CaptureStatus>)> {
    let capture = match pcap {
        Some(path) => Some(
            CaptureFile::create(path, "udpchat", !screen)
                .with_context(|| format!("cannot write the capture {}", path.display()))?,
        ),
        None => None,
    };
    let status = capture.as_ref().map(CaptureFile::status);
    Ok((Box::new(Tapped::new(endpoint, local, capture)), status))
}

/// Prints the capture's warnings kept while the chat screen was up (call once the endpoint,
/// and with it the capture, is gone).
pub fn show_warnings(status: Option<CaptureStatus>) {
    for warning in status.iter().flat_map(CaptureStatus::warnings) {
        eprintln!("udpchat: warning: {warning}");
    }
}
